-- A deleted catalog stays as a row: the requests, assignments and audit events of its
-- packages keep naming it. Deleting marks it (and disables it and its packages); every list
-- and the catalog copy leave it out, and its name is free again (the row's name gains the
-- word "deleted" and its id).
ALTER TABLE catalogs ADD COLUMN deleted_at BIGINT;
