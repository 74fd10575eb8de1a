-- A connected system that answered "not now" (unreachable, 429 or 503 with its Retry-After):
-- no instance claims its work before this time (Unix ms).
ALTER TABLE resource_systems ADD COLUMN paused_until BIGINT;
