-- Out of office (issue 13): an approver names a deputy for a period. While it runs, a stage
-- that starts with the approver among its approvers gets the deputy too (never the person
-- the request is for, nor the one who asked). Set and ended by the approver or an
-- administrator; one period per approver at a time (setting another ends the one before).
CREATE TABLE deputies (
    id          INTEGER PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    deputy_id   BIGINT NOT NULL REFERENCES users (id),
    starts_at   BIGINT NOT NULL,
    ends_at     BIGINT NOT NULL,
    set_by      BIGINT NOT NULL REFERENCES users (id),
    created_at  BIGINT NOT NULL,
    ended_at    BIGINT
);
-- One period per approver not ended yet (naming another ends it: see `deputies::end_all`).
CREATE UNIQUE INDEX deputies_one_open ON deputies (user_id) WHERE ended_at IS NULL;
CREATE INDEX deputies_deputy ON deputies (deputy_id, ends_at) WHERE ended_at IS NULL;

-- The approver a deputy stands in for, on the deputy's row (the row keeps the approver's source).
ALTER TABLE request_approvers ADD COLUMN deputy_for BIGINT REFERENCES users (id);
