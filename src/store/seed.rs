//! The few writes only the demo seed needs (connected organisations and their sponsors are
//! not yet managed anywhere else), and the "is this database empty?" check before seeding.

use super::Conn;
use crate::domain::ids::{OrgId, UserId};

/// Whether the directory has no users yet.
pub async fn no_users(conn: &mut Conn) -> Result<bool, sqlx::Error> {
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(conn).await?;
    Ok(users == 0)
}

/// A configured connected (partner) organisation.
pub async fn insert_connected_org(conn: &mut Conn, name: &str, domain: &str, now: i64) -> Result<OrgId, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO connected_orgs (name, domain, state, created_at) VALUES ($1, $2, 'configured', $3) RETURNING id",
    )
    .bind(name)
    .bind(domain)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(OrgId(id))
}

/// An internal sponsor of a connected organisation (approves its guests' requests).
pub async fn add_internal_sponsor(conn: &mut Conn, org: OrgId, user: UserId) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO connected_org_sponsors (org_id, user_id, kind) VALUES ($1, $2, 'internal')")
        .bind(org.0)
        .bind(user.0)
        .execute(conn)
        .await?;
    Ok(())
}
