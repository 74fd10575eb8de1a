-- The guest lifecycle pass reads the guests of organizations that block or remove them:
-- through this index rather than every person.
CREATE INDEX users_guests_by_org ON users (connected_org_id) WHERE kind = 'guest';
