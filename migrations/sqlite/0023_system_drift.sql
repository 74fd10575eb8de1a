-- The last drift check of a connected system (scheduled, or asked for on the connectors
-- page): its summary, and when.
ALTER TABLE resource_systems ADD COLUMN drift TEXT NOT NULL DEFAULT '';
ALTER TABLE resource_systems ADD COLUMN drift_checked_at BIGINT;
