-- A person's time zone (an IANA name), for the times their emails show and the hour of their
-- digest (issue 13). `time_zone_chosen` is 1 when they chose it on My Access: their sign-in
-- provider's `zoneinfo` claim then no longer changes it.
ALTER TABLE users ADD COLUMN time_zone TEXT;
ALTER TABLE users ADD COLUMN time_zone_chosen INTEGER NOT NULL DEFAULT 0;
