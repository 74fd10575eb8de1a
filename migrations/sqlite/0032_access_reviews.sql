-- Access reviews (issue 13). A policy that reviews its access recurringly gets one review per
-- period (`UNIQUE (policy_id, period_start)`: created once however many instances or restarts
-- try), holding one item per assignment live when it started, each with the people who may
-- decide it and a recommendation. Reviewers decide keep / remove / don't know until it ends;
-- at its end the policy's default answers the undecided, and the results are applied (at once,
-- or by the package's managers): a removal ends the assignment through the normal path.
-- `state`: running → ended (decisions final, outcomes set) → applied.
CREATE TABLE reviews (
    id                   INTEGER PRIMARY KEY,
    policy_id            BIGINT NOT NULL REFERENCES policies (id),
    package_id           BIGINT NOT NULL REFERENCES access_packages (id),
    period_start         BIGINT NOT NULL,
    ends_at              BIGINT NOT NULL,
    -- The midpoint reminder, cleared once sent.
    remind_at            BIGINT,
    state                TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'ended', 'applied')),
    default_decision     TEXT NOT NULL,
    apply_automatically  SMALLINT NOT NULL,
    created_at           BIGINT NOT NULL,
    ended_at             BIGINT,
    ended_by             BIGINT REFERENCES users (id),
    applied_at           BIGINT,
    applied_by           BIGINT REFERENCES users (id)
);
CREATE UNIQUE INDEX reviews_once ON reviews (policy_id, period_start);
CREATE INDEX reviews_running ON reviews (state, ends_at);
CREATE INDEX reviews_package ON reviews (package_id, id);

CREATE TABLE review_items (
    id                     INTEGER PRIMARY KEY,
    review_id              BIGINT NOT NULL REFERENCES reviews (id),
    assignment_id          BIGINT NOT NULL REFERENCES assignments (id),
    user_id                BIGINT NOT NULL REFERENCES users (id),
    recommendation         TEXT NOT NULL CHECK (recommendation IN ('keep', 'remove')),
    recommendation_reason  TEXT NOT NULL,
    decision               TEXT CHECK (decision IN ('keep', 'remove', 'dont_know')),
    justification          TEXT NOT NULL DEFAULT '',
    decided_by             BIGINT REFERENCES users (id),
    decided_at             BIGINT,
    -- Set when the review ends: what happens to the access (`keep` or `remove`), and why.
    outcome                TEXT CHECK (outcome IN ('keep', 'remove')),
    outcome_reason         TEXT NOT NULL DEFAULT '',
    -- Set when a removal is applied (or found already ended).
    applied_at             BIGINT
);
CREATE UNIQUE INDEX review_items_once ON review_items (review_id, assignment_id);
CREATE INDEX review_items_to_apply ON review_items (review_id, id) WHERE outcome = 'remove' AND applied_at IS NULL;

-- Who may decide an item (the holder for a self-review, their manager, named people).
CREATE TABLE review_reviewers (
    item_id  BIGINT NOT NULL REFERENCES review_items (id),
    user_id  BIGINT NOT NULL REFERENCES users (id),
    PRIMARY KEY (item_id, user_id)
);
CREATE INDEX review_reviewers_user ON review_reviewers (user_id, item_id);

-- When the person's department last changed (a review recommends removing access given
-- before a move).
ALTER TABLE users ADD COLUMN department_since BIGINT;

-- A notification about a review (assigned, reminder).
ALTER TABLE notifications ADD COLUMN review_id BIGINT REFERENCES reviews (id);
