//! Catalogs, resources, access packages and their policies.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{ids_json, ids_param, Conn, RowExt};
use crate::domain::ids::*;
use crate::domain::model::{AccessPackage, Catalog, ResourceRoleInfo, ResourceSystemKind};
use crate::domain::policy::{Policy, RequestorRef, RequestorScope};
use crate::domain::sod::SodRules;

fn catalog_from_row(row: &AnyRow) -> Result<Catalog, sqlx::Error> {
    Ok(Catalog {
        id: CatalogId(row.int("id")?),
        name: row.text("name")?,
        description: row.text("description")?,
        enabled: row.flag("enabled")?,
        externally_visible: row.flag("externally_visible")?,
        version: row.int("version")?,
    })
}

pub async fn catalog(conn: &mut Conn, id: CatalogId) -> Result<Option<Catalog>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, name, description, enabled, externally_visible, version FROM catalogs WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id.0)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(catalog_from_row).transpose()
}

pub async fn catalogs(conn: &mut Conn) -> Result<Vec<Catalog>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, description, enabled, externally_visible, version FROM catalogs WHERE deleted_at IS NULL ORDER BY name",
    )
    .fetch_all(conn)
    .await?;
    rows.iter().map(catalog_from_row).collect()
}

fn package_from_row(row: &AnyRow) -> Result<AccessPackage, sqlx::Error> {
    Ok(AccessPackage {
        id: PackageId(row.int("id")?),
        catalog_id: CatalogId(row.int("catalog_id")?),
        name: row.text("name")?,
        description: row.text("description")?,
        hidden: row.flag("hidden")?,
        enabled: row.flag("enabled")?,
        version: row.int("version")?,
    })
}

const PACKAGE_COLUMNS: &str = "p.id, p.catalog_id, p.name, p.description, p.hidden, p.enabled, p.version";

/// The package, if its catalog is not deleted.
pub async fn live_package(conn: &mut Conn, id: PackageId) -> Result<Option<AccessPackage>, sqlx::Error> {
    let sql = format!(
        "SELECT {PACKAGE_COLUMNS} FROM access_packages p JOIN catalogs c ON c.id = p.catalog_id \
         WHERE p.id = $1 AND c.deleted_at IS NULL"
    );
    let row = sqlx::query(&sql).bind(id.0).fetch_optional(conn).await?;
    row.as_ref().map(package_from_row).transpose()
}

pub async fn package(conn: &mut Conn, id: PackageId) -> Result<Option<AccessPackage>, sqlx::Error> {
    let sql = format!("SELECT {PACKAGE_COLUMNS} FROM access_packages p WHERE p.id = $1");
    let row = sqlx::query(&sql).bind(id.0).fetch_optional(conn).await?;
    row.as_ref().map(package_from_row).transpose()
}

const POLICY_COLUMNS: &str = "id, package_id, name, description, requestor_scope, \
    justification_required, schedule_allowed, on_behalf_allowed, approval, questions, expiration, \
    extension_allowed, extension_needs_approval, review, auto_rule, max_lead_days, enabled, version";

fn policy_from_row(row: &AnyRow) -> Result<Policy, sqlx::Error> {
    Ok(Policy {
        id: PolicyId(row.int("id")?),
        package_id: PackageId(row.int("package_id")?),
        name: row.text("name")?,
        description: row.text("description")?,
        scope: row.word("requestor_scope", RequestorScope::parse)?,
        requestors: Vec::new(),
        justification_required: row.flag("justification_required")?,
        schedule_allowed: row.flag("schedule_allowed")?,
        on_behalf_allowed: row.flag("on_behalf_allowed")?,
        approval: row.json("approval")?,
        questions: row.json("questions")?,
        expiration: row.json("expiration")?,
        extension_allowed: row.flag("extension_allowed")?,
        extension_needs_approval: row.flag("extension_needs_approval")?,
        review: row.json("review")?,
        auto_rule: row.opt_text("auto_rule")?,
        max_lead_days: row.small("max_lead_days")?,
        enabled: row.flag("enabled")?,
        version: row.int("version")?,
    })
}

/// The policies of these packages, with their requestor lists.
pub async fn policies_of(conn: &mut Conn, packages: &[PackageId]) -> Result<Vec<Policy>, sqlx::Error> {
    let sql = format!(
        "SELECT {POLICY_COLUMNS} FROM policies WHERE package_id IN {} ORDER BY package_id, id",
        ids_param(conn, 1)
    );
    let rows = sqlx::query(&sql).bind(ids_json(packages.iter().map(|p| p.0))).fetch_all(&mut *conn).await?;
    let mut policies: Vec<Policy> = rows.iter().map(policy_from_row).collect::<Result<_, _>>()?;
    attach_requestors(conn, &mut policies).await?;
    Ok(policies)
}

pub async fn policy(conn: &mut Conn, id: PolicyId) -> Result<Option<Policy>, sqlx::Error> {
    let sql = format!("SELECT {POLICY_COLUMNS} FROM policies WHERE id = $1");
    let row = sqlx::query(&sql).bind(id.0).fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(None) };
    let mut policies = vec![policy_from_row(&row)?];
    attach_requestors(conn, &mut policies).await?;
    Ok(policies.pop())
}

async fn attach_requestors(conn: &mut Conn, policies: &mut [Policy]) -> Result<(), sqlx::Error> {
    if policies.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT policy_id, user_id, group_id, org_id FROM policy_requestors WHERE policy_id IN {}",
        ids_param(conn, 1)
    );
    let rows = sqlx::query(&sql).bind(ids_json(policies.iter().map(|p| p.id.0))).fetch_all(conn).await?;
    let at: std::collections::HashMap<PolicyId, usize> = policies.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
    for row in &rows {
        let policy_id = PolicyId(row.int("policy_id")?);
        let entry = if let Some(u) = row.opt_int("user_id")? {
            RequestorRef::User(UserId(u))
        } else if let Some(g) = row.opt_int("group_id")? {
            RequestorRef::Group(GroupId(g))
        } else if let Some(o) = row.opt_int("org_id")? {
            RequestorRef::Org(OrgId(o))
        } else {
            continue;
        };
        if let Some(&i) = at.get(&policy_id) {
            policies[i].requestors.push(entry);
        }
    }
    Ok(())
}

/// The resource roles each of these packages grants.
pub async fn package_roles(
    conn: &mut Conn,
    packages: &[PackageId],
) -> Result<Vec<(PackageId, ResourceRoleInfo)>, sqlx::Error> {
    let sql = format!(
        "SELECT prr.package_id, rr.id, rr.resource_id, rr.name AS role_name, r.name AS resource_name, \
                s.kind AS system_kind
         FROM package_resource_roles prr
         JOIN resource_roles rr ON rr.id = prr.resource_role_id
         JOIN resources r ON r.id = rr.resource_id
         JOIN resource_systems s ON s.id = r.system_id
         WHERE prr.package_id IN {}
         ORDER BY prr.package_id, r.name, rr.name",
        ids_param(conn, 1)
    );
    let rows = sqlx::query(&sql).bind(ids_json(packages.iter().map(|p| p.0))).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok((
                PackageId(row.int("package_id")?),
                ResourceRoleInfo {
                    id: ResourceRoleId(row.int("id")?),
                    resource_id: ResourceId(row.int("resource_id")?),
                    resource_name: row.text("resource_name")?,
                    role_name: row.text("role_name")?,
                    system_kind: row.word("system_kind", ResourceSystemKind::parse)?,
                },
            ))
        })
        .collect()
}

/// Separation-of-duties rules of a package, both directions.
pub async fn sod_rules(conn: &mut Conn, package: PackageId) -> Result<SodRules, sqlx::Error> {
    Ok(sod_rules_of(conn, &[package]).await?.remove(&package).unwrap_or_default())
}

/// The separation-of-duties rules of several packages in two statements (both directions of
/// each package–package rule merged); a package without rules has an empty entry.
pub async fn sod_rules_of(
    conn: &mut Conn,
    packages: &[PackageId],
) -> Result<std::collections::HashMap<PackageId, SodRules>, sqlx::Error> {
    let mut out: std::collections::HashMap<PackageId, SodRules> =
        packages.iter().map(|p| (*p, SodRules::default())).collect();
    if packages.is_empty() {
        return Ok(out);
    }
    let (list, ids) = (ids_param(conn, 1), ids_json(packages.iter().map(|p| p.0)));
    let sql = format!(
        "SELECT i.package_id AS owner, p.id, p.name FROM package_incompatible_packages i
           JOIN access_packages p ON p.id = i.other_package_id WHERE i.package_id IN {list}
         UNION
         SELECT i.other_package_id AS owner, p.id, p.name FROM package_incompatible_packages i
           JOIN access_packages p ON p.id = i.package_id WHERE i.other_package_id IN {list}
         ORDER BY owner, id"
    );
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(&sql).bind(&ids).fetch_all(&mut *conn).await?;
    for (owner, id, name) in rows {
        out.entry(PackageId(owner)).or_default().incompatible_packages.push((PackageId(id), name));
    }
    let sql = format!(
        "SELECT i.package_id, g.id, g.name FROM package_incompatible_groups i
           JOIN directory_groups g ON g.id = i.group_id WHERE i.package_id IN {list} ORDER BY i.package_id, g.id"
    );
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(&sql).bind(&ids).fetch_all(conn).await?;
    for (owner, id, name) in rows {
        out.entry(PackageId(owner)).or_default().incompatible_groups.push((GroupId(id), name));
    }
    Ok(out)
}

/// The catalog's generation: one more after every committed change to the catalog's tables
/// (triggers of migration 0010), so a kept copy is current while it matches.
pub async fn generation(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT generation FROM catalog_generation WHERE id = 1").fetch_one(conn).await
}

/// Everything of the catalog a page shows, and the generation it is as of.
pub struct CatalogContents {
    pub generation: i64,
    /// By name.
    pub catalogs: Vec<Catalog>,
    pub packages: Vec<AccessPackage>,
    /// With their requestor lists, by package and id.
    pub policies: Vec<Policy>,
    pub roles: Vec<(PackageId, ResourceRoleInfo)>,
    pub sod: std::collections::HashMap<PackageId, SodRules>,
}

/// Read the whole catalog in one read transaction on this connection (a repeatable-read
/// snapshot on PostgreSQL, SQLite's read snapshot), so its parts and its generation agree.
pub async fn contents(conn: &mut Conn) -> Result<CatalogContents, sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    }
    let generation = generation(&mut tx).await?;
    let catalogs = catalogs(&mut tx).await?;
    let sql = format!("SELECT {PACKAGE_COLUMNS} FROM access_packages p ORDER BY p.id");
    let rows = sqlx::query(&sql).fetch_all(&mut *tx).await?;
    let packages: Vec<AccessPackage> = rows.iter().map(package_from_row).collect::<Result<_, _>>()?;
    let ids: Vec<PackageId> = packages.iter().map(|p| p.id).collect();
    let policies = policies_of(&mut tx, &ids).await?;
    let roles = package_roles(&mut tx, &ids).await?;
    let sod = sod_rules_of(&mut tx, &ids).await?;
    tx.commit().await?;
    Ok(CatalogContents { generation, catalogs, packages, policies, roles, sod })
}

// ---- writes used by the admin operations and the demo seed ----

pub async fn insert_catalog(
    conn: &mut Conn,
    name: &str,
    description: &str,
    externally_visible: bool,
    now: i64,
) -> Result<CatalogId, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO catalogs (name, description, enabled, externally_visible, created_at) \
         VALUES ($1, $2, 1, $3, $4) RETURNING id",
    )
    .bind(name)
    .bind(description)
    .bind(i64::from(externally_visible))
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(CatalogId(id))
}

pub async fn insert_resource_system(
    conn: &mut Conn,
    name: &str,
    kind: ResourceSystemKind,
    now: i64,
) -> Result<ResourceSystemId, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO resource_systems (name, kind, health, created_at) VALUES ($1, $2, 'healthy', $3) RETURNING id",
    )
    .bind(name)
    .bind(kind.as_str())
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(ResourceSystemId(id))
}

/// A connector's resource system: its config (JSON) and its sealed secret.
pub async fn insert_connector(
    conn: &mut Conn,
    name: &str,
    kind: ResourceSystemKind,
    config: &str,
    secret: &str,
    now: i64,
) -> Result<ResourceSystemId, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO resource_systems (name, kind, config, secret, health, created_at) \
         VALUES ($1, $2, $3, $4, 'unknown', $5) RETURNING id",
    )
    .bind(name)
    .bind(kind.as_str())
    .bind(config)
    .bind(secret)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(ResourceSystemId(id))
}

/// A connected system's kind, config and sealed secret.
pub async fn connector(
    conn: &mut Conn,
    system: ResourceSystemId,
) -> Result<Option<(ResourceSystemKind, String, String)>, sqlx::Error> {
    let row = sqlx::query("SELECT kind, config, secret FROM resource_systems WHERE id = $1")
        .bind(system.0)
        .fetch_optional(conn)
        .await?;
    row.map(|row| Ok((row.word("kind", ResourceSystemKind::parse)?, row.text("config")?, row.text("secret")?)))
        .transpose()
}

/// A connected system's row for the connectors page.
pub struct ConnectorHealth {
    pub id: ResourceSystemId,
    pub name: String,
    pub kind: ResourceSystemKind,
    pub config: String,
    pub resources: i64,
    pub queued: i64,
    pub failed: i64,
    pub last_success_at: Option<i64>,
    pub last_error: String,
    pub last_error_at: Option<i64>,
    pub paused_until: Option<i64>,
    pub drift: String,
    pub drift_checked_at: Option<i64>,
}

/// Every connected system (not the built-in one), by name: its settings, its resources, its
/// waiting and failed work (the outbox's and its lifecycle events', through their state
/// indexes), and its health; `only` one of them.
pub async fn connector_health(
    conn: &mut Conn,
    only: Option<ResourceSystemId>,
) -> Result<Vec<ConnectorHealth>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT s.id, s.name, s.kind, s.config, s.last_success_at, s.last_error, s.last_error_at, s.paused_until,
             s.drift, s.drift_checked_at,
             (SELECT COUNT(*) FROM resources r WHERE r.system_id = s.id) AS resources,
             (SELECT COUNT(*) FROM outbox o JOIN resource_roles rr ON rr.id = o.resource_role_id
                 JOIN resources r ON r.id = rr.resource_id
                 WHERE o.state = 'pending' AND r.system_id = s.id)
             + (SELECT COUNT(*) FROM webhook_events e WHERE e.system_id = s.id AND e.state = 'pending') AS queued,
             (SELECT COUNT(*) FROM outbox o JOIN resource_roles rr ON rr.id = o.resource_role_id
                 JOIN resources r ON r.id = rr.resource_id
                 WHERE o.state = 'failed' AND r.system_id = s.id)
             + (SELECT COUNT(*) FROM webhook_events e WHERE e.system_id = s.id AND e.state = 'failed') AS failed
         FROM resource_systems s WHERE s.kind <> 'builtin' AND ($1 IS NULL OR s.id = $1) ORDER BY s.name, s.id",
    )
    .bind(only.map(|s| s.0))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ConnectorHealth {
                id: ResourceSystemId(row.int("id")?),
                name: row.text("name")?,
                kind: row.word("kind", ResourceSystemKind::parse)?,
                config: row.text("config")?,
                resources: row.int("resources")?,
                queued: row.int("queued")?,
                failed: row.int("failed")?,
                last_success_at: row.opt_int("last_success_at")?,
                last_error: row.text("last_error")?,
                last_error_at: row.opt_int("last_error_at")?,
                paused_until: row.opt_int("paused_until")?,
                drift: row.text("drift")?,
                drift_checked_at: row.opt_int("drift_checked_at")?,
            })
        })
        .collect()
}

/// Claim the system's scheduled drift check: true (and marked checked now) when it was not
/// checked since `before` — the instance that gets true checks it.
pub async fn claim_drift_check(
    conn: &mut Conn,
    system: ResourceSystemId,
    now: i64,
    before: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE resource_systems SET drift_checked_at = $1 WHERE id = $2 \
         AND (drift_checked_at IS NULL OR drift_checked_at <= $3)",
    )
    .bind(now)
    .bind(system.0)
    .bind(before)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The last drift check's summary, kept on the system's row.
pub async fn keep_drift(conn: &mut Conn, system: ResourceSystemId, summary: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE resource_systems SET drift = $1, drift_checked_at = $2 WHERE id = $3")
        .bind(summary)
        .bind(now)
        .bind(system.0)
        .execute(conn)
        .await?;
    Ok(())
}

/// A system's work in `state` (`pending` or `failed`), oldest first, at most `limit` of each
/// queue: memberships to add or take away, and lifecycle events to tell.
pub async fn work_of_system(
    conn: &mut Conn,
    system: ResourceSystemId,
    state: &str,
    limit: i64,
) -> Result<Vec<crate::views::QueuedWork>, sqlx::Error> {
    let outbox = sqlx::query(
        "SELECT CASE o.kind WHEN 'add_member' THEN 'add' ELSE 'remove' END AS what, u.email, r.name, o.attempts, \
         o.next_attempt_at, o.last_error FROM outbox o JOIN resource_roles rr ON rr.id = o.resource_role_id \
         JOIN resources r ON r.id = rr.resource_id JOIN users u ON u.id = o.user_id \
         WHERE o.state = $1 AND r.system_id = $2 ORDER BY o.id LIMIT $3",
    )
    .bind(state)
    .bind(system.0)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let events = sqlx::query(
        "SELECT e.event AS what, u.email, '' AS name, e.attempts, e.next_attempt_at, e.last_error \
         FROM webhook_events e LEFT JOIN assignments a ON a.id = e.assignment_id \
         LEFT JOIN requests q ON q.id = COALESCE(e.request_id, a.request_id) \
         JOIN users u ON u.id = COALESCE(a.user_id, q.target_user_id) \
         WHERE e.system_id = $2 AND e.state = $1 ORDER BY e.id LIMIT $3",
    )
    .bind(state)
    .bind(system.0)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    outbox
        .iter()
        .chain(events.iter())
        .map(|row| {
            Ok(crate::views::QueuedWork {
                what: row.text("what")?,
                person: row.text("email")?,
                resource: row.text("name")?,
                attempts: row.int("attempts")?,
                next_attempt: row.int("next_attempt_at")?,
                last_error: row.text("last_error")?,
            })
        })
        .collect()
}

/// A delivery to the system went through (`error` empty), or failed with this error.
pub async fn record_health(
    conn: &mut Conn,
    system: ResourceSystemId,
    error: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let query = if error.is_empty() {
        // At most every ten seconds: every delivery to a system would otherwise queue on its
        // one row (PostgreSQL holds the row lock to the end of each recording transaction).
        sqlx::query(
            "UPDATE resource_systems SET last_success_at = $1 WHERE id = $2 \
             AND (last_success_at IS NULL OR last_success_at < $1 - 10000)",
        )
        .bind(now)
        .bind(system.0)
    } else {
        sqlx::query("UPDATE resource_systems SET last_error_at = $1, last_error = $2 WHERE id = $3")
            .bind(now)
            .bind(error)
            .bind(system.0)
    };
    query.execute(conn).await?;
    Ok(())
}

/// Forget the target's ids kept for people (the system now points at another target).
pub async fn forget_connector_accounts(conn: &mut Conn, system: ResourceSystemId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM connector_accounts WHERE system_id = $1").bind(system.0).execute(conn).await?;
    Ok(())
}

/// A connected system's new settings (and no pause: they may be what it needed), only while
/// it still has the config and secret the change was made from (two administrators saving
/// at once: the second is refused).
pub async fn update_connector(
    conn: &mut Conn,
    system: ResourceSystemId,
    (config_before, secret_before): (&str, &str),
    (config, secret): (&str, &str),
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE resource_systems SET config = $1, secret = $2, paused_until = NULL \
         WHERE id = $3 AND config = $4 AND secret = $5",
    )
    .bind(config)
    .bind(secret)
    .bind(system.0)
    .bind(config_before)
    .bind(secret_before)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Where a role is delivered: its system's kind, config and sealed secret, and the resource's
/// id in that system.
pub struct Target {
    pub system: ResourceSystemId,
    pub kind: ResourceSystemKind,
    pub config: String,
    pub secret: String,
    pub external_id: String,
}

pub async fn target_of(conn: &mut Conn, role: ResourceRoleId) -> Result<Option<Target>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT s.id, s.kind, s.config, s.secret, r.external_id FROM resource_roles rr \
         JOIN resources r ON r.id = rr.resource_id JOIN resource_systems s ON s.id = r.system_id WHERE rr.id = $1",
    )
    .bind(role.0)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        Ok(Target {
            system: ResourceSystemId(row.int("id")?),
            kind: row.word("kind", ResourceSystemKind::parse)?,
            config: row.text("config")?,
            secret: row.text("secret")?,
            external_id: row.text("external_id")?,
        })
    })
    .transpose()
}

/// The target's id for the person, kept when they were first added there.
pub async fn connector_account(
    conn: &mut Conn,
    system: ResourceSystemId,
    user: UserId,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT external_id FROM connector_accounts WHERE system_id = $1 AND user_id = $2")
        .bind(system.0)
        .bind(user.0)
        .fetch_optional(conn)
        .await
}

/// Keep the target's id for the person (the latest the target gave).
pub async fn keep_connector_account(
    conn: &mut Conn,
    system: ResourceSystemId,
    user: UserId,
    external_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO connector_accounts (system_id, user_id, external_id) VALUES ($1, $2, $3) \
         ON CONFLICT (system_id, user_id) DO UPDATE SET external_id = excluded.external_id",
    )
    .bind(system.0)
    .bind(user.0)
    .bind(external_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A resource system's kind, if it exists.
pub async fn resource_system_kind(
    conn: &mut Conn,
    id: ResourceSystemId,
) -> Result<Option<ResourceSystemKind>, sqlx::Error> {
    let kind: Option<String> =
        sqlx::query_scalar("SELECT kind FROM resource_systems WHERE id = $1").bind(id.0).fetch_optional(conn).await?;
    kind.map(|k| super::parse_word("kind", &k, ResourceSystemKind::parse)).transpose()
}

/// A resource with its roles, added to a catalog. Returns the role ids in the order given.
pub async fn insert_resource(
    conn: &mut Conn,
    system: ResourceSystemId,
    catalog: CatalogId,
    name: &str,
    description: &str,
    roles: &[&str],
    now: i64,
) -> Result<Vec<ResourceRoleId>, sqlx::Error> {
    let external_id = name.to_lowercase().replace(' ', "-");
    insert_resource_as(conn, system, catalog, &external_id, name, description, roles, now).await
}

/// [`insert_resource`] with the resource's id in its system (a target group's id).
#[allow(clippy::too_many_arguments)]
pub async fn insert_resource_as(
    conn: &mut Conn,
    system: ResourceSystemId,
    catalog: CatalogId,
    external_id: &str,
    name: &str,
    description: &str,
    roles: &[&str],
    now: i64,
) -> Result<Vec<ResourceRoleId>, sqlx::Error> {
    let resource: i64 = sqlx::query_scalar(
        "INSERT INTO resources (system_id, external_id, name, description, kind, created_at) \
         VALUES ($1, $2, $3, $4, 'group', $5) RETURNING id",
    )
    .bind(system.0)
    .bind(external_id)
    .bind(name)
    .bind(description)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO catalog_resources (catalog_id, resource_id) VALUES ($1, $2)")
        .bind(catalog.0)
        .bind(resource)
        .execute(&mut *conn)
        .await?;
    let mut ids = Vec::new();
    for role in roles {
        let id: i64 = sqlx::query_scalar("INSERT INTO resource_roles (resource_id, name) VALUES ($1, $2) RETURNING id")
            .bind(resource)
            .bind(*role)
            .fetch_one(&mut *conn)
            .await?;
        ids.push(ResourceRoleId(id));
    }
    Ok(ids)
}

pub async fn insert_package(
    conn: &mut Conn,
    catalog: CatalogId,
    name: &str,
    description: &str,
    roles: &[ResourceRoleId],
    now: i64,
) -> Result<PackageId, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO access_packages (catalog_id, name, description, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) RETURNING id",
    )
    .bind(catalog.0)
    .bind(name)
    .bind(description)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    for role in roles {
        sqlx::query("INSERT INTO package_resource_roles (package_id, resource_role_id) VALUES ($1, $2)")
            .bind(id)
            .bind(role.0)
            .execute(&mut *conn)
            .await?;
    }
    Ok(PackageId(id))
}

/// Make these the package's resource roles; the roles added and the roles taken out.
pub async fn set_package_roles(
    conn: &mut Conn,
    package: PackageId,
    roles: &[ResourceRoleId],
) -> Result<(Vec<ResourceRoleId>, Vec<ResourceRoleId>), sqlx::Error> {
    let now: Vec<i64> =
        sqlx::query_scalar("SELECT resource_role_id FROM package_resource_roles WHERE package_id = $1 ORDER BY 1")
            .bind(package.0)
            .fetch_all(&mut *conn)
            .await?;
    let added: Vec<ResourceRoleId> = roles.iter().filter(|r| !now.contains(&r.0)).copied().collect();
    let removed: Vec<ResourceRoleId> =
        now.iter().filter(|r| !roles.iter().any(|x| x.0 == **r)).map(|r| ResourceRoleId(*r)).collect();
    for role in &removed {
        sqlx::query("DELETE FROM package_resource_roles WHERE package_id = $1 AND resource_role_id = $2")
            .bind(package.0)
            .bind(role.0)
            .execute(&mut *conn)
            .await?;
    }
    for role in &added {
        sqlx::query("INSERT INTO package_resource_roles (package_id, resource_role_id) VALUES ($1, $2)")
            .bind(package.0)
            .bind(role.0)
            .execute(&mut *conn)
            .await?;
    }
    Ok((added, removed))
}

/// Move a package to its next version, if it is still at `version` (a change that is not one
/// of its own columns, such as its roles, still makes older edits stale).
pub async fn bump_package_version(
    conn: &mut Conn,
    package: PackageId,
    version: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE access_packages SET version = version + 1, updated_at = $1 WHERE id = $2 AND version = $3")
            .bind(now)
            .bind(package.0)
            .bind(version)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn add_incompatible_package(conn: &mut Conn, a: PackageId, b: PackageId) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO package_incompatible_packages (package_id, other_package_id) VALUES ($1, $2)")
        .bind(a.0)
        .bind(b.0)
        .execute(conn)
        .await?;
    Ok(())
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Bind a policy's settings as `$1`–`$15`, in the same order for insert and update.
fn bind_settings<'q>(q: AnyQuery<'q>, p: &'q Policy) -> Result<AnyQuery<'q>, sqlx::Error> {
    Ok(q.bind(&p.name)
        .bind(&p.description)
        .bind(p.scope.as_str())
        .bind(i64::from(p.justification_required))
        .bind(i64::from(p.schedule_allowed))
        .bind(i64::from(p.on_behalf_allowed))
        .bind(to_json(&p.approval)?)
        .bind(to_json(&p.questions)?)
        .bind(to_json(&p.expiration)?)
        .bind(i64::from(p.extension_allowed))
        .bind(i64::from(p.extension_needs_approval))
        .bind(to_json(&p.review)?)
        .bind(p.auto_rule.as_deref())
        .bind(i64::from(p.enabled))
        .bind(i64::from(p.max_lead_days)))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Store a new policy (already validated by the domain); returns its id.
pub async fn insert_policy(conn: &mut Conn, p: &Policy, now: i64) -> Result<PolicyId, sqlx::Error> {
    let id: i64 = bind_settings(
        sqlx::query(
            "INSERT INTO policies (name, description, requestor_scope, justification_required, schedule_allowed,
                on_behalf_allowed, approval, questions, expiration, extension_allowed, extension_needs_approval,
                review, auto_rule, enabled, max_lead_days, package_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17) RETURNING id",
        ),
        p,
    )?
    .bind(p.package_id.0)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?
    .try_get("id")?;
    insert_requestors(conn, PolicyId(id), &p.requestors).await?;
    Ok(PolicyId(id))
}

async fn insert_requestors(conn: &mut Conn, policy: PolicyId, requestors: &[RequestorRef]) -> Result<(), sqlx::Error> {
    for r in requestors {
        let (u, g, o) = match *r {
            RequestorRef::User(u) => (Some(u.0), None, None),
            RequestorRef::Group(g) => (None, Some(g.0), None),
            RequestorRef::Org(o) => (None, None, Some(o.0)),
        };
        sqlx::query("INSERT INTO policy_requestors (policy_id, user_id, group_id, org_id) VALUES ($1, $2, $3, $4)")
            .bind(policy.0)
            .bind(u)
            .bind(g)
            .bind(o)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Change a catalog's settings.
/// Change a catalog, if it is still at `c.version` (the change makes the next one).
pub async fn update_catalog(conn: &mut Conn, c: &Catalog) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE catalogs SET name = $1, description = $2, enabled = $3, externally_visible = $4, \
         version = version + 1 WHERE id = $5 AND version = $6 AND deleted_at IS NULL",
    )
    .bind(&c.name)
    .bind(&c.description)
    .bind(i64::from(c.enabled))
    .bind(i64::from(c.externally_visible))
    .bind(c.id.0)
    .bind(c.version)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Change a package, if it is still at `version`.
pub async fn update_package(conn: &mut Conn, p: &AccessPackage, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE access_packages SET name = $1, description = $2, hidden = $3, enabled = $4, \
         version = version + 1, updated_at = $5 WHERE id = $6 AND version = $7",
    )
    .bind(&p.name)
    .bind(&p.description)
    .bind(i64::from(p.hidden))
    .bind(i64::from(p.enabled))
    .bind(now)
    .bind(p.id.0)
    .bind(p.version)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The catalogs each resource role's resource belongs to.
pub async fn role_catalogs(
    conn: &mut Conn,
    roles: &[ResourceRoleId],
) -> Result<Vec<(ResourceRoleId, CatalogId)>, sqlx::Error> {
    let sql = format!(
        "SELECT rr.id, cr.catalog_id FROM resource_roles rr JOIN catalog_resources cr ON cr.resource_id = rr.resource_id \
         WHERE rr.id IN {}",
        ids_param(conn, 1)
    );
    let rows: Vec<(i64, i64)> = sqlx::query_as(&sql).bind(ids_json(roles.iter().map(|r| r.0))).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(r, c)| (ResourceRoleId(r), CatalogId(c))).collect())
}

pub async fn add_incompatible_group(conn: &mut Conn, package: PackageId, group: GroupId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO package_incompatible_groups (package_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(package.0)
    .bind(group.0)
    .execute(conn)
    .await?;
    Ok(())
}

/// Replace a policy's settings, if it is still at `p.version`. Requests already filed keep
/// the stages they were filed under (they hold a snapshot).
pub async fn update_policy(conn: &mut Conn, p: &Policy, now: i64) -> Result<bool, sqlx::Error> {
    let done = bind_settings(
        sqlx::query(
            "UPDATE policies SET name = $1, description = $2, requestor_scope = $3, justification_required = $4,
                schedule_allowed = $5, on_behalf_allowed = $6, approval = $7, questions = $8, expiration = $9,
                extension_allowed = $10, extension_needs_approval = $11, review = $12, auto_rule = $13, enabled = $14,
                max_lead_days = $15, version = version + 1, updated_at = $16
             WHERE id = $17 AND version = $18",
        ),
        p,
    )?
    .bind(now)
    .bind(p.id.0)
    .bind(p.version)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM policy_requestors WHERE policy_id = $1").bind(p.id.0).execute(&mut *conn).await?;
    insert_requestors(conn, p.id, &p.requestors).await?;
    Ok(true)
}

/// Resource and role names of these resource roles, by id (one query).
pub async fn role_names(
    conn: &mut Conn,
    roles: &[ResourceRoleId],
) -> Result<std::collections::HashMap<ResourceRoleId, (String, String)>, sqlx::Error> {
    let sql = format!(
        "SELECT rr.id, r.name, rr.name FROM resource_roles rr JOIN resources r ON r.id = rr.resource_id \
         WHERE rr.id IN {}",
        ids_param(conn, 1)
    );
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as(&sql).bind(ids_json(roles.iter().map(|r| r.0))).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(id, resource, role)| (ResourceRoleId(id), (resource, role))).collect())
}

// ---- what the catalog admin pages show ----

/// A catalog in the admin list, with how much is in it.
pub struct CatalogSummaryRow {
    pub catalog: Catalog,
    pub packages: i64,
    pub resources: i64,
}

/// Catalogs (all, or these), by name, with their package and resource counts.
pub async fn catalog_summaries(
    conn: &mut Conn,
    only: Option<&[CatalogId]>,
) -> Result<Vec<CatalogSummaryRow>, sqlx::Error> {
    let filter = match only {
        Some(_) => format!("AND c.id IN {}", ids_param(conn, 1)),
        None => String::new(),
    };
    let sql = format!(
        "SELECT c.id, c.name, c.description, c.enabled, c.externally_visible, c.version, \
         (SELECT COUNT(*) FROM access_packages p WHERE p.catalog_id = c.id) AS packages, \
         (SELECT COUNT(*) FROM catalog_resources r WHERE r.catalog_id = c.id) AS resources \
         FROM catalogs c WHERE c.deleted_at IS NULL {filter} ORDER BY c.name, c.id"
    );
    let mut query = sqlx::query(&sql);
    if let Some(ids) = only {
        query = query.bind(ids_json(ids.iter().map(|c| c.0)));
    }
    let rows = query.fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok(CatalogSummaryRow {
                catalog: catalog_from_row(row)?,
                packages: row.int("packages")?,
                resources: row.int("resources")?,
            })
        })
        .collect()
}

/// Who holds a role in the catalog: (person, role word, name, email), by role then name.
pub async fn role_holders(
    conn: &mut Conn,
    catalog: CatalogId,
) -> Result<Vec<(UserId, String, String, String)>, sqlx::Error> {
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT u.id, ra.role, u.display_name, u.email FROM role_assignments ra \
         JOIN users u ON u.id = ra.user_id WHERE ra.catalog_id = $1 ORDER BY ra.role, u.display_name, u.id",
    )
    .bind(catalog.0)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id, role, name, email)| (UserId(id), role, name, email)).collect())
}

/// A resource of a catalog, with its system and its roles.
pub struct CatalogResourceRow {
    pub id: ResourceId,
    pub name: String,
    pub description: String,
    pub system: String,
    pub roles: Vec<String>,
    /// The roles' ids, in the order of `roles`.
    pub role_ids: Vec<ResourceRoleId>,
}

/// The catalog's resources by name, each with its roles by name.
pub async fn catalog_resources(conn: &mut Conn, catalog: CatalogId) -> Result<Vec<CatalogResourceRow>, sqlx::Error> {
    // (resource, its name, description, system's name, a role's name and id).
    type Row = (i64, String, String, String, Option<String>, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT r.id, r.name, r.description, s.name, rr.name, rr.id FROM catalog_resources cr \
         JOIN resources r ON r.id = cr.resource_id JOIN resource_systems s ON s.id = r.system_id \
         LEFT JOIN resource_roles rr ON rr.resource_id = r.id \
         WHERE cr.catalog_id = $1 ORDER BY r.name, r.id, rr.name",
    )
    .bind(catalog.0)
    .fetch_all(conn)
    .await?;
    let mut out: Vec<CatalogResourceRow> = Vec::new();
    for (id, name, description, system, role, role_id) in rows {
        if out.last().is_none_or(|r| r.id.0 != id) {
            let (roles, role_ids) = (Vec::new(), Vec::new());
            out.push(CatalogResourceRow { id: ResourceId(id), name, description, system, roles, role_ids });
        }
        if let (Some(role), Some(role_id), Some(last)) = (role, role_id, out.last_mut()) {
            last.roles.push(role);
            last.role_ids.push(ResourceRoleId(role_id));
        }
    }
    Ok(out)
}

/// The catalog's packages by name.
pub async fn packages_in(conn: &mut Conn, catalog: CatalogId) -> Result<Vec<AccessPackage>, sqlx::Error> {
    let sql = format!("SELECT {PACKAGE_COLUMNS} FROM access_packages p WHERE p.catalog_id = $1 ORDER BY p.name, p.id");
    let rows = sqlx::query(&sql).bind(catalog.0).fetch_all(conn).await?;
    rows.iter().map(package_from_row).collect()
}

/// The resource systems resources can come from: (id, name, kind word), by name.
pub async fn resource_systems(conn: &mut Conn) -> Result<Vec<(ResourceSystemId, String, String)>, sqlx::Error> {
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, name, kind FROM resource_systems ORDER BY name, id").fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(id, name, kind)| (ResourceSystemId(id), name, kind)).collect())
}

/// What keeps a catalog from being deleted: per package (by name), its live assignments and
/// its open requests, for the packages that have any.
pub async fn deletion_blockers(conn: &mut Conn, catalog: CatalogId) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.name, \
         (SELECT COUNT(*) FROM assignments a WHERE a.package_id = p.id \
          AND a.state IN ('delivering', 'delivered', 'partially_delivered', 'delivery_failed')) AS live, \
         (SELECT COUNT(*) FROM requests q WHERE q.package_id = p.id \
          AND q.state IN ('submitted', 'pending_approval')) AS open \
         FROM access_packages p WHERE p.catalog_id = $1 ORDER BY p.name, p.id",
    )
    .bind(catalog.0)
    .fetch_all(conn)
    .await
    .map(|rows: Vec<(String, i64, i64)>| rows.into_iter().filter(|(_, live, open)| *live > 0 || *open > 0).collect())
}

/// Mark a catalog deleted: disabled, its packages disabled, its name freed. False when it
/// was already gone.
pub async fn mark_deleted(conn: &mut Conn, catalog: CatalogId, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE catalogs SET deleted_at = $1, enabled = 0, name = name || ' (deleted ' || CAST(id AS TEXT) || ')' \
         WHERE id = $2 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(catalog.0)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("UPDATE access_packages SET enabled = 0, version = version + 1, updated_at = $1 WHERE catalog_id = $2")
        .bind(now)
        .bind(catalog.0)
        .execute(&mut *conn)
        .await?;
    // Nobody manages a deleted catalog.
    sqlx::query("DELETE FROM role_assignments WHERE catalog_id = $1").bind(catalog.0).execute(conn).await?;
    Ok(true)
}

/// Before changing anything in a catalog: take the catalog's row, then the catalog
/// generation's row, for this transaction (PostgreSQL; on SQLite the transaction already holds
/// the one writer). Every change to a catalog's tables starts here, so they all take the two
/// in this order and cannot hold each other's (creating a catalog takes the generation only);
/// waiting for the catalog's row — behind requests holding it in share mode — holds nothing
/// that changes to other catalogs need. False when the catalog is not there (or deleted):
/// nothing may change in a deleted catalog.
pub async fn lock_catalog(conn: &mut Conn, catalog: CatalogId) -> Result<bool, sqlx::Error> {
    if conn.backend_name() != "PostgreSQL" {
        let sql = "SELECT id FROM catalogs WHERE id = $1 AND deleted_at IS NULL";
        return Ok(sqlx::query_scalar::<_, i64>(sql).bind(catalog.0).fetch_optional(conn).await?.is_some());
    }
    let sql = "SELECT id FROM catalogs WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE";
    if sqlx::query_scalar::<_, i64>(sql).bind(catalog.0).fetch_optional(&mut *conn).await?.is_none() {
        return Ok(false);
    }
    sqlx::query("SELECT generation FROM catalog_generation WHERE id = 1 FOR UPDATE").execute(conn).await?;
    Ok(true)
}

/// The catalog, held in share mode for this transaction on PostgreSQL (a deletion waits for
/// it, and it waits for a deletion under way): what a request or an assignment is made in.
pub async fn catalog_held(conn: &mut Conn, id: CatalogId) -> Result<Option<Catalog>, sqlx::Error> {
    let lock = if conn.backend_name() == "PostgreSQL" { " FOR SHARE" } else { "" };
    let sql = format!(
        "SELECT id, name, description, enabled, externally_visible, version FROM catalogs WHERE id = $1 AND deleted_at IS NULL{lock}"
    );
    let row = sqlx::query(&sql).bind(id.0).fetch_optional(conn).await?;
    row.as_ref().map(catalog_from_row).transpose()
}

/// The resource roles of a catalog's resources, for picking: (role, resource, role name,
/// system name), by resource then role.
pub async fn role_choices(
    conn: &mut Conn,
    catalog: CatalogId,
) -> Result<Vec<(ResourceRoleId, String, String, String)>, sqlx::Error> {
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT rr.id, r.name, rr.name, s.name FROM catalog_resources cr \
         JOIN resources r ON r.id = cr.resource_id JOIN resource_systems s ON s.id = r.system_id \
         JOIN resource_roles rr ON rr.resource_id = r.id \
         WHERE cr.catalog_id = $1 ORDER BY r.name, r.id, rr.name, rr.id",
    )
    .bind(catalog.0)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id, r, rr, s)| (ResourceRoleId(id), r, rr, s)).collect())
}

/// Take back a rule that two packages cannot be held together (whichever names the other).
pub async fn remove_incompatible_package(conn: &mut Conn, a: PackageId, b: PackageId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM package_incompatible_packages WHERE (package_id = $1 AND other_package_id = $2) \
         OR (package_id = $2 AND other_package_id = $1)",
    )
    .bind(a.0)
    .bind(b.0)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Take back a rule that a package cannot be held with a group's membership.
pub async fn remove_incompatible_group(
    conn: &mut Conn,
    package: PackageId,
    group: GroupId,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM package_incompatible_groups WHERE package_id = $1 AND group_id = $2")
        .bind(package.0)
        .bind(group.0)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}
