-- Importing a connected system's groups into a catalog as resources (one role each: its
-- membership): a job a worker claims (claimed_by until claimed_until) and runs a page of the
-- target's groups at a time, each page in one transaction with its progress (`next_start`,
-- counts), so the page shows progress and a restart carries on from the next page.
CREATE TABLE group_imports (
    id             INTEGER PRIMARY KEY,
    system_id      BIGINT NOT NULL REFERENCES resource_systems (id),
    catalog_id     BIGINT NOT NULL REFERENCES catalogs (id),
    author_id      BIGINT NOT NULL REFERENCES users (id),
    search_base    TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    next_start     BIGINT NOT NULL DEFAULT 1,
    total          BIGINT,
    imported       BIGINT NOT NULL DEFAULT 0,
    already        BIGINT NOT NULL DEFAULT 0,
    skipped        BIGINT NOT NULL DEFAULT 0,
    error          TEXT NOT NULL DEFAULT '',
    claimed_by     TEXT NOT NULL DEFAULT '',
    claimed_until  BIGINT,
    created_at     BIGINT NOT NULL,
    finished_at    BIGINT
);
CREATE INDEX group_imports_running ON group_imports (state, claimed_until);
CREATE INDEX group_imports_system ON group_imports (system_id, id);
-- One running import per system.
CREATE UNIQUE INDEX group_imports_one_running ON group_imports (system_id) WHERE state = 'running';
