-- What the connectors page shows of each connected system without scanning its outbox: the
-- last delivery it took, and the last error it gave (with when).
ALTER TABLE resource_systems ADD COLUMN last_success_at BIGINT;
ALTER TABLE resource_systems ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
ALTER TABLE resource_systems ADD COLUMN last_error_at BIGINT;
