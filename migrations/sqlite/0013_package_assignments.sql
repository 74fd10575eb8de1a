-- A package's assignments, newest first, whatever their state (the admin list and its CSV
-- export): the package's rows in id order, the state filtered as they are read.
CREATE INDEX assignments_package_order ON assignments (package_id, id);
