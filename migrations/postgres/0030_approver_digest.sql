-- A daily digest of the decisions waiting for an approver, for those who choose it (issue 13).
ALTER TABLE users ADD COLUMN email_digest SMALLINT NOT NULL DEFAULT 0;
CREATE INDEX users_digest ON users (id) WHERE email_digest = 1;
