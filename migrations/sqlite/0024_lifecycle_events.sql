-- Request lifecycle events (created, approved, delivered, removed) told to webhook systems
-- whose settings ask for them (`lifecycle_events` in their config), for the requests of packages that grant one of their roles. An event is
-- written in the transaction of the change it reports (as its audit event is), and sent
-- later, signed, by the worker that claims it (claimed_by until claimed_until, like the
-- outbox): it is never lost, and the receiver knows a repeat by its id.
CREATE TABLE webhook_events (
    id               INTEGER PRIMARY KEY,
    system_id        BIGINT NOT NULL REFERENCES resource_systems (id),
    event            TEXT NOT NULL,
    request_id       BIGINT REFERENCES requests (id),
    assignment_id    BIGINT REFERENCES assignments (id),
    actor_id         BIGINT REFERENCES users (id),
    reason           TEXT NOT NULL DEFAULT '',
    occurred_at      BIGINT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    claimed_by       TEXT NOT NULL DEFAULT '',
    claimed_until    BIGINT,
    last_error       TEXT NOT NULL DEFAULT '',
    updated_at       BIGINT NOT NULL
);
CREATE INDEX webhook_events_due ON webhook_events (state, next_attempt_at, id);
CREATE INDEX webhook_events_system ON webhook_events (system_id, state, id);
