-- The expiry sweep takes live assignments by end date, oldest first, a batch at a time: an
-- index on exactly that (without it every pass sorts every due row, near-quadratic over a
-- million expiries). The predicate is spelled as the query spells it (store/assignments.rs
-- LIVE), so both planners match it. It replaces `assignments_end (state, end_at)`, which
-- served the same query one state at a time and then sorted.
DROP INDEX assignments_end;
CREATE INDEX assignments_live_end ON assignments (end_at)
    WHERE state IN ('delivering', 'delivered', 'partially_delivered', 'delivery_failed') AND end_at IS NOT NULL;
