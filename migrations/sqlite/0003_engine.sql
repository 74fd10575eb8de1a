-- The engine under time, concurrency and failure (issue 8).

-- How far ahead a requestor may ask access to start.
ALTER TABLE policies ADD COLUMN max_lead_days BIGINT NOT NULL DEFAULT 90;

-- The audit chain cannot fork: no two events link to the same predecessor.
CREATE UNIQUE INDEX audit_events_one_successor ON audit_events (prev_hash);

-- Delivery leases: a worker claims an entry until `claimed_until` (committed before it talks to
-- the target); an entry whose lease ran out is picked up again.
ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;
ALTER TABLE outbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
