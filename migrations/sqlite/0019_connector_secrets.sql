-- A resource system's secret (a SCIM bearer token), sealed with the operator's key
-- (`connectors::secret`): never stored, logged or shown in the clear.
ALTER TABLE resource_systems ADD COLUMN secret TEXT NOT NULL DEFAULT '';

-- The target's own id for a person, kept when they were first added there: taking them out
-- uses it, so a changed email (the identity provider's, at sign-in) still finds their account.
CREATE TABLE connector_accounts (
    system_id    BIGINT NOT NULL REFERENCES resource_systems (id),
    user_id      BIGINT NOT NULL REFERENCES users (id),
    external_id  TEXT NOT NULL,
    PRIMARY KEY (system_id, user_id)
);
