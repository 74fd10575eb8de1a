-- A catalog's version, for optimistic concurrency (the REST API's ETag, the settings form):
-- a change names the version it was made from, and is refused when another came first.
ALTER TABLE catalogs ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
