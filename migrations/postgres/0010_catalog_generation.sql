-- The catalog (catalogs, packages, their policies, resource roles and separation-of-duties
-- rules) changes seldom and is read by every page. Each instance keeps it in memory
-- (`service::snapshot`) and checks this one number before using it: any change to those
-- tables adds one to it in the same transaction, so a page sees a change as soon as it is
-- committed, on this instance or another. A group's rename counts too (rules show group names).
CREATE TABLE catalog_generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  BIGINT NOT NULL
);
INSERT INTO catalog_generation (id, generation) VALUES (1, 1);

-- Before the statement, so the generation's row is locked before any catalog row the
-- statement locks: two catalog writers queue on it and cannot hold each other's rows.
CREATE FUNCTION bump_catalog_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_generation SET generation = generation + 1;
    RETURN NULL;
END
$$;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['catalogs', 'resource_systems', 'resources', 'resource_roles', 'access_packages', 'package_resource_roles', 'package_incompatible_packages', 'package_incompatible_groups', 'policies', 'policy_requestors'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_generation()', t || '_generation', t);
    END LOOP;
END
$$;
CREATE TRIGGER directory_groups_rename_generation BEFORE UPDATE OF name ON directory_groups
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_generation();
