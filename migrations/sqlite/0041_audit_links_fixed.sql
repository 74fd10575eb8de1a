-- An event's place in the audit chain is fixed once written (issue 10): its id and the hash it
-- links to cannot change, so no update can fork the chain either, as no insert can since 0039
-- (the unique index on `prev_hash` it replaced refused both). Any other rewrite is for the
-- verifier to find.
CREATE TRIGGER audit_events_links_fixed BEFORE UPDATE OF id, prev_hash ON audit_events
WHEN NEW.id IS NOT OLD.id OR NEW.prev_hash IS NOT OLD.prev_hash
BEGIN
    SELECT RAISE(ABORT, 'audit_events: an event''s id and its link to the one before cannot change');
END;
