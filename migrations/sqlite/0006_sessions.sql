-- Sessions are stored under the SHA-256 of their id (a stolen database copy or backup holds
-- no usable cookie), and carry the signed-in person, so disabling someone deletes their
-- sessions at once. Sessions stored under a plain id cannot be read any more: drop them
-- (everyone signs in again once).
DELETE FROM sessions;
ALTER TABLE sessions ADD COLUMN user_id BIGINT;
CREATE INDEX sessions_user ON sessions (user_id);
