-- Demo sign-in offers the first active people by name: an index on exactly that order, so
-- the page reads a hundred index entries instead of sorting the whole directory (100,000
-- people at the benchmark's scale).
CREATE INDEX users_active_by_name ON users (display_name, id) WHERE state = 'active';
