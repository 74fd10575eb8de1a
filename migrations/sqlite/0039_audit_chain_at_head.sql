-- The audit chain cannot fork, guarded on a key that grows (issue 10). An event goes in only
-- as the head's successor: its id one past the head's and its `prev_hash` the head's hash
-- (or, into an empty trail, the genesis hash). Two appends from the same head then collide on
-- the primary key, whoever writes them. This replaces the unique index on `prev_hash`, whose
-- random 64-character key dirtied a new index page for nearly every event (a fifth of the
-- pages a decision wrote); the checks here read the head, the last page of the table.
-- `IS` rather than `=`, so that a missing id (or an empty trail) is refused, never let by.
DROP INDEX audit_events_one_successor;
CREATE TRIGGER audit_events_at_head BEFORE INSERT ON audit_events
WHEN NOT (
    (NEW.id - 1 IS (SELECT max(id) FROM audit_events)
        AND NEW.prev_hash IS (SELECT hash FROM audit_events WHERE id = NEW.id - 1))
    OR (NOT EXISTS (SELECT 1 FROM audit_events)
        AND NEW.prev_hash IS '0000000000000000000000000000000000000000000000000000000000000000')
)
BEGIN
    SELECT RAISE(ABORT, 'audit_events: an event must follow the head of the chain');
END;
