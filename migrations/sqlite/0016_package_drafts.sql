-- The access package builder's drafts: what an author has entered so far, kept on the server
-- at every Back and Next, so a reload, a second tab or a browser without JavaScript loses
-- nothing. A draft is its author's alone; it builds a new package (no package), adds a policy
-- to a package (a package, no policy), or edits a package and one of its policies (both).
-- Creating from it, or discarding it, deletes it.
CREATE TABLE package_drafts (
    -- AUTOINCREMENT: an id is never given again (a stale tab must not reach a newer draft).
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id   BIGINT NOT NULL REFERENCES users (id),
    catalog_id  BIGINT NOT NULL REFERENCES catalogs (id),
    package_id  BIGINT REFERENCES access_packages (id),
    policy_id   BIGINT REFERENCES policies (id),
    step        TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX package_drafts_author ON package_drafts (author_id, catalog_id, id);
