-- Each walk of the audit chain and what it found, newest last: the audit log shows the latest,
-- and a walk checks that the chain still holds the head the last intact walk recorded (a
-- cut tail is caught as well as an edit). By a person, or by the command line (no one).
CREATE TABLE audit_verifications (
    id               INTEGER PRIMARY KEY,
    at               BIGINT NOT NULL,
    by_user_id       BIGINT REFERENCES users (id),
    intact           INTEGER NOT NULL,
    events           BIGINT NOT NULL,
    head_id          BIGINT,
    head_hash        TEXT,
    broken_event_id  BIGINT,
    why              TEXT NOT NULL DEFAULT ''
);
