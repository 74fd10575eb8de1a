-- An event's place in the audit chain is fixed once written (issue 10): its id and the hash it
-- links to cannot change, so no update can fork the chain either, as no insert can since 0039
-- (the unique index on `prev_hash` it replaced refused both). Any other rewrite is for the
-- verifier to find.
CREATE FUNCTION audit_events_links_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events: an event''s id and its link to the one before cannot change'
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER audit_events_links_fixed BEFORE UPDATE OF id, prev_hash ON audit_events
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id OR NEW.prev_hash IS DISTINCT FROM OLD.prev_hash)
    EXECUTE FUNCTION audit_events_links_fixed();
