-- Index only the requests still open (issue 10). The two indexes whose key held a request's
-- state took an entry for every request ever filed, and every decision moved its request's
-- entries (pending → delivering → fulfilled: a delete and an insert in each, on pages
-- anywhere in indexes of millions of entries). Partial indexes hold the open requests alone,
-- so settling a request only removes its entries. The queries they serve repeat their
-- condition word for word, which SQLite needs to use them.

-- Open requests by state (what `/metrics` counts) and, for the stage time-outs, by due time.
DROP INDEX requests_pending_due;
CREATE INDEX requests_open ON requests (state, stage_due_at)
    WHERE state IN ('submitted', 'pending_approval', 'approved', 'delivering');

-- Requests waiting for a decision, by package and policy (what keeps a catalog from being
-- deleted, what a package's change must reckon with).
DROP INDEX requests_package;
CREATE INDEX requests_undecided_by_package ON requests (package_id, policy_id)
    WHERE state IN ('submitted', 'pending_approval');
