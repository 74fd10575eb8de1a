-- Guests whose access has ended (issue 13): a connected organization may block its guests
-- from signing in a number of days after their last access ended, and remove them (the
-- leaver path) a number of days after that. NULL: never.
ALTER TABLE connected_orgs ADD COLUMN block_after_days BIGINT;
ALTER TABLE connected_orgs ADD COLUMN remove_after_days BIGINT;
-- When a guest was blocked from signing in (NULL: never). Access given to them again lets
-- them in again; when that ends too, the days count anew.
ALTER TABLE users ADD COLUMN blocked_at BIGINT;
-- When an administrator let the person back in (re-enabled them): the days count from then.
ALTER TABLE users ADD COLUMN lifecycle_from BIGINT;
