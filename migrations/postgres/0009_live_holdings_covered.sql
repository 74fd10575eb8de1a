-- SQLite's migration 0009 recreates `assignments_one_live` with its condition written as the
-- queries write it, which SQLite needs to use a partial index. PostgreSQL proves a query's
-- condition implies the index's whatever the order of an IN list, so nothing changes here
-- (rebuilding a unique index over a million assignments would block writes while it ran).
SELECT 1;
