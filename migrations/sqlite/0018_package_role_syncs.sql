-- A package whose resource roles changed while people hold it: the holders' grants are brought
-- in line batch by batch (new roles added, dropped ones removed unless held elsewhere), in
-- assignment id order after `after_id`. An edit that changes the roles again bumps
-- `generation` and starts over from the first holder; a batch commits only if the generation
-- it read is still current. The row goes when the last holder is done.
CREATE TABLE package_role_syncs (
    package_id    BIGINT PRIMARY KEY REFERENCES access_packages (id),
    generation    BIGINT NOT NULL DEFAULT 1,
    after_id      BIGINT NOT NULL DEFAULT 0,
    requested_at  BIGINT NOT NULL
);
