-- A connected organization's version, for optimistic concurrency (the REST API's ETag): each
-- change of its settings or its guests' lifecycle makes the next one, and one made from an
-- older version is refused.
ALTER TABLE connected_orgs ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
