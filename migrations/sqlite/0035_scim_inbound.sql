-- SCIM 2.0 inbound (issue 14): the identity provider pushes people and groups. Each SCIM
-- resource is a person (users.id) or a directory group (directory_groups.id, source 'scim'),
-- whose id is the SCIM id; the document as the provider wrote it (normalised to the schema's
-- attribute names) is kept beside it, with a version for ETag/If-Match. `name_key` is the
-- lower-cased userName (a group's displayName): unique per kind, as SCIM requires.
CREATE TABLE scim_resources (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('User', 'Group')),
    object_id    BIGINT NOT NULL,
    name_key     TEXT NOT NULL,
    external_id  TEXT,
    document     TEXT NOT NULL,
    version      BIGINT NOT NULL DEFAULT 1,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (kind, object_id),
    UNIQUE (kind, name_key)
);
CREATE INDEX scim_resources_external ON scim_resources (kind, external_id);
