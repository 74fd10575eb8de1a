-- API tokens for the REST API under /api/v1 (issue 14). A person makes one for themselves
-- with some of their rights (`scopes`, space-separated: read, request, decide, admin); the
-- secret is shown once and only its SHA-256 is kept (`secret_hash`, looked up by its
-- unique index). A token ends at `expires_at` or when revoked; `last_used_at` is updated
-- at most every five minutes.
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id),
    name          TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    BIGINT REFERENCES users (id),
    expires_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT,
    revoked_by    BIGINT REFERENCES users (id)
);
CREATE UNIQUE INDEX api_tokens_secret ON api_tokens (secret_hash);
CREATE INDEX api_tokens_user ON api_tokens (user_id, id);
