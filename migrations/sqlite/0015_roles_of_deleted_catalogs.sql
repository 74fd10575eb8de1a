-- Nobody manages a deleted catalog: deleting one now takes its roles with it; this takes the
-- roles of catalogs deleted before that.
DELETE FROM role_assignments WHERE catalog_id IN (SELECT id FROM catalogs WHERE deleted_at IS NOT NULL);
