-- Open approver work and a person's roles, each read through an index (issue 8).

-- The approver inbox: `active` marks the approvers who may decide a pending request now (its
-- current stage; escalation approvers once it escalated), kept in step by every transition, so
-- the inbox and the navigation count read open work only, never an approver's whole history.
ALTER TABLE request_approvers ADD COLUMN active INTEGER NOT NULL DEFAULT 0;
UPDATE request_approvers SET active = CASE WHEN EXISTS (
    SELECT 1 FROM requests r WHERE r.id = request_approvers.request_id AND r.state = 'pending_approval'
      AND r.current_stage = request_approvers.stage
      AND (request_approvers.source <> 'escalation' OR r.escalated = 1)) THEN 1 ELSE 0 END;
CREATE INDEX request_approvers_inbox ON request_approvers (user_id, request_id) WHERE active = 1;

-- A person's roles, read at every request: the partial unique indexes cannot serve it.
CREATE INDEX role_assignments_user ON role_assignments (user_id);
