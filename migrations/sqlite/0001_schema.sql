-- Quartermaster schema (SQLite). Timestamps are Unix milliseconds (BIGINT) so the same
-- queries and the same Rust types serve SQLite and PostgreSQL. Flags are 0/1 integers.
-- Never edit an applied migration: add a new one (see migrations/README.md).

CREATE TABLE connected_orgs (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    domain      TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL DEFAULT 'configured' CHECK (state IN ('configured', 'proposed')),
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id               INTEGER PRIMARY KEY,
    email            TEXT NOT NULL UNIQUE,
    display_name     TEXT NOT NULL,
    issuer           TEXT,
    subject          TEXT,
    department       TEXT NOT NULL DEFAULT '',
    job_title        TEXT NOT NULL DEFAULT '',
    manager_id       BIGINT REFERENCES users (id),
    kind             TEXT NOT NULL DEFAULT 'member' CHECK (kind IN ('member', 'guest')),
    connected_org_id BIGINT REFERENCES connected_orgs (id),
    state            TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'disabled')),
    last_sign_in_at  BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_oidc_identity ON users (issuer, subject) WHERE issuer IS NOT NULL;
CREATE INDEX users_manager ON users (manager_id);

CREATE TABLE connected_org_sponsors (
    org_id   BIGINT NOT NULL REFERENCES connected_orgs (id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL REFERENCES users (id),
    kind     TEXT NOT NULL CHECK (kind IN ('internal', 'external')),
    PRIMARY KEY (org_id, user_id)
);

CREATE TABLE directory_groups (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT '',
    source       TEXT NOT NULL DEFAULT 'local' CHECK (source IN ('local', 'oidc', 'scim')),
    created_at   BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id  BIGINT NOT NULL REFERENCES directory_groups (id) ON DELETE CASCADE,
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE catalogs (
    id                  INTEGER PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    description         TEXT NOT NULL DEFAULT '',
    enabled             INTEGER NOT NULL DEFAULT 1,
    externally_visible  INTEGER NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL
);

-- Roles are data: global (catalog_id NULL) or scoped to one catalog.
CREATE TABLE role_assignments (
    id          INTEGER PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('administrator', 'catalog_creator', 'catalog_owner',
                    'catalog_reader', 'access_package_manager', 'assignment_manager')),
    catalog_id  BIGINT REFERENCES catalogs (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX role_assignments_global ON role_assignments (user_id, role) WHERE catalog_id IS NULL;
CREATE UNIQUE INDEX role_assignments_scoped ON role_assignments (user_id, role, catalog_id) WHERE catalog_id IS NOT NULL;
CREATE INDEX role_assignments_catalog ON role_assignments (catalog_id, role);

CREATE TABLE resource_systems (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('builtin', 'scim', 'ldap', 'webhook')),
    config      TEXT NOT NULL DEFAULT '{}',
    health      TEXT NOT NULL DEFAULT 'unknown',
    created_at  BIGINT NOT NULL
);

CREATE TABLE resources (
    id           INTEGER PRIMARY KEY,
    system_id    BIGINT NOT NULL REFERENCES resource_systems (id),
    external_id  TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    kind         TEXT NOT NULL DEFAULT 'group' CHECK (kind IN ('group', 'application', 'site')),
    created_at   BIGINT NOT NULL,
    UNIQUE (system_id, external_id)
);

CREATE TABLE resource_roles (
    id           INTEGER PRIMARY KEY,
    resource_id  BIGINT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    UNIQUE (resource_id, name)
);

CREATE TABLE catalog_resources (
    catalog_id   BIGINT NOT NULL REFERENCES catalogs (id) ON DELETE CASCADE,
    resource_id  BIGINT NOT NULL REFERENCES resources (id),
    PRIMARY KEY (catalog_id, resource_id)
);

CREATE TABLE access_packages (
    id           INTEGER PRIMARY KEY,
    catalog_id   BIGINT NOT NULL REFERENCES catalogs (id),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    hidden       INTEGER NOT NULL DEFAULT 0,
    enabled      INTEGER NOT NULL DEFAULT 1,
    version      BIGINT NOT NULL DEFAULT 1,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (catalog_id, name)
);

CREATE TABLE package_resource_roles (
    package_id        BIGINT NOT NULL REFERENCES access_packages (id) ON DELETE CASCADE,
    resource_role_id  BIGINT NOT NULL REFERENCES resource_roles (id),
    PRIMARY KEY (package_id, resource_role_id)
);
CREATE INDEX package_resource_roles_role ON package_resource_roles (resource_role_id);

CREATE TABLE package_incompatible_packages (
    package_id        BIGINT NOT NULL REFERENCES access_packages (id) ON DELETE CASCADE,
    other_package_id  BIGINT NOT NULL REFERENCES access_packages (id) ON DELETE CASCADE,
    PRIMARY KEY (package_id, other_package_id)
);

CREATE TABLE package_incompatible_groups (
    package_id  BIGINT NOT NULL REFERENCES access_packages (id) ON DELETE CASCADE,
    group_id    BIGINT NOT NULL REFERENCES directory_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (package_id, group_id)
);

-- Assignment policy. The structured parts that are always read whole (approval stages,
-- questions, review settings) are JSON documents validated by the domain; a request keeps a
-- snapshot of the stages it was filed under.
CREATE TABLE policies (
    id                        INTEGER PRIMARY KEY,
    package_id                BIGINT NOT NULL REFERENCES access_packages (id) ON DELETE CASCADE,
    name                      TEXT NOT NULL,
    description               TEXT NOT NULL DEFAULT '',
    requestor_scope           TEXT NOT NULL CHECK (requestor_scope IN
                                  ('none', 'all_members', 'specific', 'connected_orgs', 'all_externals')),
    justification_required    INTEGER NOT NULL DEFAULT 0,
    schedule_allowed          INTEGER NOT NULL DEFAULT 0,
    on_behalf_allowed         INTEGER NOT NULL DEFAULT 0,
    approval                  TEXT NOT NULL DEFAULT '{"stages":[]}',
    questions                 TEXT NOT NULL DEFAULT '[]',
    expiration                TEXT NOT NULL DEFAULT '{"kind":"never"}',
    extension_allowed         INTEGER NOT NULL DEFAULT 0,
    extension_needs_approval  INTEGER NOT NULL DEFAULT 1,
    review                    TEXT NOT NULL DEFAULT '{"kind":"off"}',
    auto_rule                 TEXT,
    enabled                   INTEGER NOT NULL DEFAULT 1,
    version                   BIGINT NOT NULL DEFAULT 1,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL
);
CREATE INDEX policies_package ON policies (package_id);

-- Who may request under a 'specific' or 'connected_orgs' policy: exactly one of the three.
CREATE TABLE policy_requestors (
    policy_id  BIGINT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    user_id    BIGINT REFERENCES users (id) ON DELETE CASCADE,
    group_id   BIGINT REFERENCES directory_groups (id) ON DELETE CASCADE,
    org_id     BIGINT REFERENCES connected_orgs (id) ON DELETE CASCADE
);
CREATE INDEX policy_requestors_policy ON policy_requestors (policy_id);

CREATE TABLE requests (
    id                INTEGER PRIMARY KEY,
    kind              TEXT NOT NULL,
    state             TEXT NOT NULL,
    requestor_id      BIGINT NOT NULL REFERENCES users (id),
    target_user_id    BIGINT NOT NULL REFERENCES users (id),
    package_id        BIGINT NOT NULL REFERENCES access_packages (id),
    policy_id         BIGINT NOT NULL REFERENCES policies (id),
    assignment_id     BIGINT,
    stages            TEXT NOT NULL DEFAULT '[]',
    current_stage     BIGINT NOT NULL DEFAULT 0,
    stage_started_at  BIGINT,
    stage_due_at      BIGINT,
    escalated         INTEGER NOT NULL DEFAULT 0,
    justification     TEXT NOT NULL DEFAULT '',
    answers           TEXT NOT NULL DEFAULT '[]',
    start_at          BIGINT,
    end_at            BIGINT,
    outcome_reason    TEXT NOT NULL DEFAULT '',
    version           BIGINT NOT NULL DEFAULT 1,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX requests_target ON requests (target_user_id, id);
CREATE INDEX requests_requestor ON requests (requestor_id, id);
CREATE INDEX requests_pending_due ON requests (state, stage_due_at);
CREATE INDEX requests_package ON requests (package_id, state);
-- At most one open (not yet ended) request per user and package.
CREATE UNIQUE INDEX requests_one_open ON requests (target_user_id, package_id, kind)
    WHERE state IN ('submitted', 'pending_approval');

-- The approvers resolved for a stage when it starts (the stage's snapshot of who may decide).
CREATE TABLE request_approvers (
    request_id  BIGINT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    stage       BIGINT NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    source      TEXT NOT NULL CHECK (source IN ('primary', 'fallback', 'escalation')),
    PRIMARY KEY (request_id, stage, user_id)
);
CREATE INDEX request_approvers_user ON request_approvers (user_id, request_id);

-- One decision per stage: the unique key is the last line of defence for "first decision wins".
CREATE TABLE decisions (
    id             INTEGER PRIMARY KEY,
    request_id     BIGINT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    stage          BIGINT NOT NULL,
    approver_id    BIGINT REFERENCES users (id),
    decision       TEXT NOT NULL CHECK (decision IN ('approve', 'deny', 'timeout')),
    justification  TEXT NOT NULL DEFAULT '',
    decided_at     BIGINT NOT NULL,
    UNIQUE (request_id, stage)
);
CREATE INDEX decisions_approver ON decisions (approver_id, id);

CREATE TABLE assignments (
    id          INTEGER PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    package_id  BIGINT NOT NULL REFERENCES access_packages (id),
    policy_id   BIGINT NOT NULL REFERENCES policies (id),
    request_id  BIGINT REFERENCES requests (id),
    state       TEXT NOT NULL,
    start_at    BIGINT NOT NULL,
    end_at      BIGINT,
    version     BIGINT NOT NULL DEFAULT 1,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX assignments_user ON assignments (user_id, id);
CREATE INDEX assignments_package ON assignments (package_id, state, id);
CREATE INDEX assignments_end ON assignments (state, end_at);
-- One live assignment per user and package.
CREATE UNIQUE INDEX assignments_one_live ON assignments (user_id, package_id)
    WHERE state IN ('delivering', 'delivered', 'delivery_failed', 'partially_delivered');

-- One resource role provisioned for one assignment.
CREATE TABLE grants (
    id                INTEGER PRIMARY KEY,
    assignment_id     BIGINT NOT NULL REFERENCES assignments (id),
    resource_role_id  BIGINT NOT NULL REFERENCES resource_roles (id),
    user_id           BIGINT NOT NULL REFERENCES users (id),
    state             TEXT NOT NULL,
    attempts          BIGINT NOT NULL DEFAULT 0,
    last_error        TEXT NOT NULL DEFAULT '',
    updated_at        BIGINT NOT NULL,
    UNIQUE (assignment_id, resource_role_id)
);
CREATE INDEX grants_holder ON grants (user_id, resource_role_id, state);

-- Provisioning work, written in the same transaction as the change that needs it.
CREATE TABLE outbox (
    id                INTEGER PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('add_member', 'remove_member', 'email')),
    resource_role_id  BIGINT REFERENCES resource_roles (id),
    user_id           BIGINT REFERENCES users (id),
    grant_id          BIGINT REFERENCES grants (id),
    payload           TEXT NOT NULL DEFAULT '{}',
    state             TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts          BIGINT NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT NOT NULL,
    last_error        TEXT NOT NULL DEFAULT '',
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at, id);

-- The built-in resource system: group memberships held by Quartermaster itself.
CREATE TABLE builtin_memberships (
    resource_role_id  BIGINT NOT NULL REFERENCES resource_roles (id),
    user_id           BIGINT NOT NULL REFERENCES users (id),
    added_at          BIGINT NOT NULL,
    PRIMARY KEY (resource_role_id, user_id)
);

-- Tamper-evident audit trail: each event carries the hash of the one before it.
CREATE TABLE audit_events (
    id           INTEGER PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor_id     BIGINT,
    action       TEXT NOT NULL,
    object_type  TEXT NOT NULL,
    object_id    BIGINT NOT NULL,
    before       TEXT NOT NULL DEFAULT 'null',
    after        TEXT NOT NULL DEFAULT 'null',
    reason       TEXT NOT NULL DEFAULT '',
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_events_object ON audit_events (object_type, object_id, id);
CREATE INDEX audit_events_actor ON audit_events (actor_id, id);

-- Server-side sessions (tower-sessions store).
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    data         TEXT NOT NULL,
    expiry_date  BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expiry_date);
