-- The audit log page lists events newest first, filtered by who, what kind of object, which
-- object, action and time. Who and which object have their indexes (0001); these serve a
-- filter on the kind of object alone and on the action, in the page's order, and find the
-- ends of a time range (the page then reads that range of ids in order).
CREATE INDEX audit_events_type ON audit_events (object_type, id);
CREATE INDEX audit_events_action ON audit_events (action, id);
CREATE INDEX audit_events_at ON audit_events (at, id);
