-- Bulk assignment from an uploaded CSV: the job (who, which package and policy, why) and its
-- rows, each assigned as its own audited operation and its outcome recorded as it goes, so the
-- page shows progress and a restart carries on where the last row ended. A job is claimed by
-- one worker at a time (claimed_by until claimed_until), like the outbox; a row's outcome
-- "assigned" is written in the transaction that assigns it.
CREATE TABLE bulk_jobs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id      BIGINT NOT NULL REFERENCES users (id),
    package_id     BIGINT NOT NULL REFERENCES access_packages (id),
    policy_id      BIGINT NOT NULL REFERENCES policies (id),
    justification  TEXT NOT NULL DEFAULT '',
    total          BIGINT NOT NULL,
    state          TEXT NOT NULL,
    claimed_by     TEXT,
    claimed_until  BIGINT,
    created_at     BIGINT NOT NULL,
    finished_at    BIGINT
);
CREATE INDEX bulk_jobs_running ON bulk_jobs (state, claimed_until);
CREATE INDEX bulk_jobs_package ON bulk_jobs (package_id, id);
CREATE TABLE bulk_job_rows (
    job_id   BIGINT NOT NULL REFERENCES bulk_jobs (id),
    line     BIGINT NOT NULL,
    person   TEXT NOT NULL,
    end_day  TEXT NOT NULL DEFAULT '',
    outcome  TEXT,
    why      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, line)
);
