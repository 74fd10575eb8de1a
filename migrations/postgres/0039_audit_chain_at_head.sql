-- The audit chain cannot fork, guarded on a key that grows (issue 10). An event goes in only
-- as the head's successor: its id one past the head's and its `prev_hash` the head's hash
-- (or, into an empty trail, the genesis hash). Two appends from the same head then collide on
-- the primary key, whoever writes them: the second waits for the first's row and fails when it
-- commits. This replaces the unique index on `prev_hash`, whose random 64-character key
-- dirtied a new index page for nearly every event; the checks here read the head, the last
-- page of the primary key.
DROP INDEX audit_events_one_successor;
CREATE FUNCTION audit_events_at_head() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_id BIGINT;
    head_hash TEXT;
BEGIN
    SELECT id, hash INTO head_id, head_hash FROM audit_events ORDER BY id DESC LIMIT 1;
    IF (head_id IS NULL AND NEW.prev_hash = '0000000000000000000000000000000000000000000000000000000000000000')
        OR (NEW.id = head_id + 1 AND NEW.prev_hash = head_hash) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events: event % must follow the head of the chain (%)', NEW.id, head_id
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER audit_events_at_head BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_at_head();
