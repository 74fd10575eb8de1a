-- One piece of provisioning work per (person, role) at a time: the claim looks for older or
-- in-flight pending work of the same pair through this index (pending entries only).
CREATE INDEX outbox_pending_pair ON outbox (user_id, resource_role_id, id) WHERE state = 'pending';
