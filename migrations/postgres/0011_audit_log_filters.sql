-- The audit log page lists events newest first, filtered by who, what kind of object, which
-- object, action and time. Who and which object have their indexes (0001); these serve a
-- filter on the action, and on a time range, in the page's order.
CREATE INDEX audit_events_action ON audit_events (action, id);
CREATE INDEX audit_events_at ON audit_events (at, id);
