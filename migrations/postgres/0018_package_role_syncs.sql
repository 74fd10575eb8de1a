-- A package whose resource roles changed while people hold it: the holders' grants are brought
-- in line batch by batch (new roles added, dropped ones removed unless held elsewhere), in
-- assignment id order after `after_id`. An edit that changes the roles again bumps
-- `generation` and starts over from the first holder; a batch commits only if the generation
-- it read is still current. A holder whose sync keeps failing holds the cursor: `failures`
-- counts the passes that failed there and `last_error` says why (the package's page shows
-- it). The row goes when the last holder is done.
CREATE TABLE package_role_syncs (
    package_id    BIGINT PRIMARY KEY REFERENCES access_packages (id),
    generation    BIGINT NOT NULL DEFAULT 1,
    after_id      BIGINT NOT NULL DEFAULT 0,
    failures      BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT '',
    requested_at  BIGINT NOT NULL
);

-- When some of an assignment's access first arrived. A rule met later (the package disabled, a
-- separation-of-duties rule added) decides new access only: a role added to access already
-- held is delivered.
ALTER TABLE assignments ADD COLUMN delivered_at BIGINT;
UPDATE assignments SET delivered_at = updated_at WHERE state IN ('delivered', 'partially_delivered');
