-- A resource system's secret (a SCIM bearer token), sealed with the operator's key
-- (`connectors::secret`): never stored, logged or shown in the clear.
ALTER TABLE resource_systems ADD COLUMN secret TEXT NOT NULL DEFAULT '';
