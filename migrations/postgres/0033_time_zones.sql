-- A person's time zone (IANA names), for the times their emails show and the hour of their
-- digest (issue 13): the one they chose on My Access (`time_zone`; NULL: automatic), else the
-- one their sign-in provider's `zoneinfo` claim last gave (`provider_time_zone`), else UTC.
ALTER TABLE users ADD COLUMN time_zone TEXT;
ALTER TABLE users ADD COLUMN provider_time_zone TEXT;
