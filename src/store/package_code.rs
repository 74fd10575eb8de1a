//! What packages as code reads besides the catalog's own queries: a catalog's resources with
//! their ids in their systems, and what a plan's changes reach (open requests, live
//! assignments).

use super::{ids_json, ids_param, Conn};
use crate::domain::ids::*;

/// A resource of a catalog: its system's name, its id there, name, description and roles.
pub struct ResourceRow {
    pub id: ResourceId,
    pub system: String,
    pub external_id: String,
    pub name: String,
    pub description: String,
    pub roles: Vec<(ResourceRoleId, String)>,
}

/// The catalog's resources, by name, each with its roles by name.
pub async fn resources_of(conn: &mut Conn, catalog: CatalogId) -> Result<Vec<ResourceRow>, sqlx::Error> {
    #[allow(clippy::type_complexity)]
    let rows: Vec<(i64, String, String, String, String, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT r.id, s.name, r.external_id, r.name, r.description, rr.id, rr.name FROM catalog_resources cr \
         JOIN resources r ON r.id = cr.resource_id JOIN resource_systems s ON s.id = r.system_id \
         LEFT JOIN resource_roles rr ON rr.resource_id = r.id \
         WHERE cr.catalog_id = $1 ORDER BY r.name, r.id, rr.name, rr.id",
    )
    .bind(catalog.0)
    .fetch_all(conn)
    .await?;
    let mut out: Vec<ResourceRow> = Vec::new();
    for (id, system, external_id, name, description, role_id, role) in rows {
        if out.last().is_none_or(|r| r.id.0 != id) {
            out.push(ResourceRow { id: ResourceId(id), system, external_id, name, description, roles: Vec::new() });
        }
        if let (Some(role_id), Some(role), Some(last)) = (role_id, role, out.last_mut()) {
            last.roles.push((ResourceRoleId(role_id), role));
        }
    }
    Ok(out)
}

/// The resource a system knows by this id, if it is here (in any catalog).
pub async fn resource_by_external_id(
    conn: &mut Conn,
    system: ResourceSystemId,
    external_id: &str,
) -> Result<Option<ResourceId>, sqlx::Error> {
    let id: Option<i64> = sqlx::query_scalar("SELECT id FROM resources WHERE system_id = $1 AND external_id = $2")
        .bind(system.0)
        .bind(external_id)
        .fetch_optional(conn)
        .await?;
    Ok(id.map(ResourceId))
}

/// Open requests (submitted or waiting for approval) of these packages, per policy.
pub async fn open_requests_by_policy(
    conn: &mut Conn,
    packages: &[PackageId],
) -> Result<Vec<(PackageId, PolicyId, i64)>, sqlx::Error> {
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT package_id, policy_id, COUNT(*) FROM requests \
         WHERE package_id IN {} AND state IN ('submitted', 'pending_approval') GROUP BY package_id, policy_id",
        ids_param(conn, 1)
    );
    let rows: Vec<(i64, i64, i64)> =
        sqlx::query_as(&sql).bind(ids_json(packages.iter().map(|p| p.0))).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(p, q, n)| (PackageId(p), PolicyId(q), n)).collect())
}

/// Live assignments of these packages (being delivered, delivered or failing), per package.
pub async fn live_assignments_by_package(
    conn: &mut Conn,
    packages: &[PackageId],
) -> Result<Vec<(PackageId, i64)>, sqlx::Error> {
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT package_id, COUNT(*) FROM assignments WHERE package_id IN {} \
         AND state IN ('delivering', 'delivered', 'partially_delivered', 'delivery_failed') GROUP BY package_id",
        ids_param(conn, 1)
    );
    let rows: Vec<(i64, i64)> =
        sqlx::query_as(&sql).bind(ids_json(packages.iter().map(|p| p.0))).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(p, n)| (PackageId(p), n)).collect())
}
