-- Email notifications (issue 13). Each is written in the transaction of the change it tells
-- about (as its audit event is), for one recipient, and sent later by the worker that claims it
-- (claimed_by until claimed_until, as the outbox): a crash loses none. `dedupe` names what it
-- tells (a request's stage, an assignment's end), so the same news is queued once per person.
-- `skipped`: no longer worth sending when its turn came (a decision asked of someone who
-- can no longer make it, an access that ended, a recipient disabled since). `cause`: the
-- audited action that made it (`assignment.expired`, `assignment.removed`, …).
CREATE TABLE notifications (
    id               INTEGER PRIMARY KEY,
    recipient_id     BIGINT NOT NULL REFERENCES users (id),
    kind             TEXT NOT NULL,
    dedupe           TEXT NOT NULL,
    request_id       BIGINT REFERENCES requests (id),
    assignment_id    BIGINT REFERENCES assignments (id),
    actor_id         BIGINT REFERENCES users (id),
    reason           TEXT NOT NULL DEFAULT '',
    cause            TEXT NOT NULL DEFAULT '',
    occurred_at      BIGINT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'skipped', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    claimed_by       TEXT NOT NULL DEFAULT '',
    claimed_until    BIGINT,
    last_error       TEXT NOT NULL DEFAULT '',
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX notifications_once ON notifications (recipient_id, dedupe);
CREATE INDEX notifications_due ON notifications (state, next_attempt_at, id);

-- A person may turn off the optional emails (a stage decided, access ready, access ending soon).
ALTER TABLE users ADD COLUMN email_optional INTEGER NOT NULL DEFAULT 1;

-- "Your access ends in N days": for each warning (days before the end), how far ahead the
-- assignments ending have been looked at. A pass moves it forward an hour of end times at a
-- time, queueing a warning for each live assignment ending in that hour, so the same
-- assignment is never looked at twice for one warning, however many there are.
CREATE TABLE expiry_warning_marks (
    days     BIGINT PRIMARY KEY,
    through  BIGINT NOT NULL
);
