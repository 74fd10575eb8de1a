-- The API token a change came through (the REST API, SCIM), when it came through one: a
-- column of its own, hashed into the chain with the rest, so a reason someone typed cannot
-- pass for it. Events from before it have none (and hash as they always did).
ALTER TABLE audit_events ADD COLUMN token_id BIGINT;
