//! What reconciliation compares: the groups bound from a connected system, who holds each
//! one's role in Quartermaster (and how far delivery has got), the target's ids kept for
//! people, and the work it queues to repair drift.

use chrono::{DateTime, Utc};

use super::assignments::LIVE;
use super::{to_ms, Conn};
use crate::domain::ids::{GrantId, ResourceRoleId, ResourceSystemId, UserId};

/// A group of the system bound to a catalog: its role, its id there, and its name here.
pub async fn bound_groups(
    conn: &mut Conn,
    system: ResourceSystemId,
) -> Result<Vec<(ResourceRoleId, String, String)>, sqlx::Error> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT rr.id, r.external_id, r.name FROM resources r JOIN resource_roles rr ON rr.resource_id = r.id \
         WHERE r.system_id = $1 ORDER BY r.name, rr.id",
    )
    .bind(system.0)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(role, external, name)| (ResourceRoleId(role), external, name)).collect())
}

/// Who holds the role through a live assignment, with their grant and its state
/// (`delivered`: the target should have them; `pending` or `failed`: on its way, or waiting
/// for a repair), and who has work for the role still queued (their membership is changing:
/// neither missing nor unexpected yet).
pub struct Holders {
    pub delivered: Vec<(UserId, GrantId)>,
    pub changing: Vec<UserId>,
}

pub async fn holders(conn: &mut Conn, role: ResourceRoleId) -> Result<Holders, sqlx::Error> {
    // A failed grant whose package still grants the role counts as held (as delivery counts
    // it): it is waiting for a repair, so its member is neither missing nor unexpected.
    let sql = format!(
        "SELECT g.user_id, g.id, g.state FROM grants g JOIN assignments a ON a.id = g.assignment_id \
         WHERE g.resource_role_id = $1 AND a.state IN {LIVE} AND (g.state IN ('pending', 'delivered') \
           OR (g.state = 'failed' AND EXISTS (SELECT 1 FROM package_resource_roles prr \
               WHERE prr.package_id = a.package_id AND prr.resource_role_id = g.resource_role_id))) ORDER BY g.id"
    );
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(&sql).bind(role.0).fetch_all(&mut *conn).await?;
    let mut changing: Vec<UserId> = sqlx::query_scalar::<_, i64>(
        "SELECT DISTINCT user_id FROM outbox WHERE resource_role_id = $1 AND state = 'pending'",
    )
    .bind(role.0)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(UserId)
    .collect();
    let mut delivered = Vec::new();
    for (user, grant, state) in rows {
        if state == "delivered" {
            delivered.push((UserId(user), GrantId(grant)));
        } else {
            changing.push(UserId(user));
        }
    }
    changing.sort();
    changing.dedup();
    delivered.retain(|(user, _)| changing.binary_search(user).is_err());
    Ok(Holders { delivered, changing })
}

/// The target's ids kept for people of this system, with their emails: (user, email, id there).
pub async fn accounts(conn: &mut Conn, system: ResourceSystemId) -> Result<Vec<(UserId, String, String)>, sqlx::Error> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT c.user_id, u.email, c.external_id FROM connector_accounts c JOIN users u ON u.id = c.user_id \
         WHERE c.system_id = $1",
    )
    .bind(system.0)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(user, email, id)| (UserId(user), email, id)).collect())
}

/// Queue the membership of a grant again (it was taken away behind our back), due now.
pub async fn requeue_addition(conn: &mut Conn, grant: GrantId, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (kind, resource_role_id, user_id, grant_id, next_attempt_at, created_at, updated_at) \
         SELECT 'add_member', resource_role_id, user_id, id, $1, $1, $1 FROM grants WHERE id = $2",
    )
    .bind(to_ms(now))
    .bind(grant.0)
    .execute(conn)
    .await?;
    Ok(())
}

/// Queue the removal of a membership nobody was granted, due now (delivery checks again, under
/// the person's lock, that no live assignment holds the role).
pub async fn queue_removal(
    conn: &mut Conn,
    user: UserId,
    role: ResourceRoleId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (kind, resource_role_id, user_id, next_attempt_at, created_at, updated_at) \
         VALUES ('remove_member', $1, $2, $3, $3, $3)",
    )
    .bind(role.0)
    .bind(user.0)
    .bind(to_ms(now))
    .execute(conn)
    .await?;
    Ok(())
}
