-- Reminders (issue 13): when the approvers of a request's current stage are reminded, if
-- they are (a stage's `remind_after_days` from its start). Set when a stage starts, cleared
-- by the pass that sends the reminder (guarded by its value), and by every transition.
ALTER TABLE requests ADD COLUMN remind_at BIGINT;
CREATE INDEX requests_remind ON requests (remind_at) WHERE remind_at IS NOT NULL;
