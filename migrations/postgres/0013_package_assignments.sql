-- A package's assignments, newest first, whatever their state (the admin list and its CSV
-- export): the package's rows in id order, the state filtered as they are read.
CREATE INDEX assignments_package_order ON assignments (package_id, id);

-- The person picker finds people by the start of their email or name. PostgreSQL compares
-- text by the database's collation, where a range like ['liz', 'li{') need not hold every
-- name starting with "liz"; it matches with LIKE 'liz%' instead, which these indexes serve
-- whatever the collation. (SQLite compares bytes: its ranges are exact, on 0005 and 0008.)
CREATE INDEX users_email_lower_pattern ON users (LOWER(email) text_pattern_ops);
CREATE INDEX users_active_name_pattern ON users (display_name text_pattern_ops) WHERE state = 'active';
