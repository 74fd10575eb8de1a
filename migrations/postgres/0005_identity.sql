-- A person is (issuer, subject); emails are kept in lower case and unique whatever their case.
UPDATE users SET email = LOWER(email) WHERE email <> LOWER(email);
CREATE UNIQUE INDEX users_email_lower ON users (LOWER(email));

-- Where a role came from: granted by a person ('manual'), or bootstrapped at sign-in by the
-- operator's email list ('bootstrap_email', once) or group ('bootstrap_group', revoked when the
-- person leaves the group).
ALTER TABLE role_assignments ADD COLUMN source TEXT NOT NULL DEFAULT 'manual';
ALTER TABLE users ADD COLUMN admin_bootstrapped_at BIGINT;
