//! Guests whose access has ended: blocked from signing in, then removed, as their connected
//! organization's settings say.

use chrono::{DateTime, Utc};

use super::{to_ms, Conn, RowExt};
use crate::domain::ids::{OrgId, UserId};

/// A guest holding nothing, of an organization that blocks or removes such guests.
#[derive(Clone, Debug)]
pub struct IdleGuest {
    pub user: UserId,
    pub org: String,
    pub block_after_days: Option<i64>,
    pub remove_after_days: Option<i64>,
    pub blocked_at: Option<DateTime<Utc>>,
    /// When their last access ended (its end, or when it was taken away if sooner), or when
    /// an administrator let them back in, whichever is later.
    pub idle_since: DateTime<Utc>,
}

/// Active guests who held access and hold none now, with no request open, who sponsor
/// nobody, of organizations that block or remove such guests (a few hundred at most).
pub async fn idle(conn: &mut Conn, only: Option<UserId>) -> Result<Vec<IdleGuest>, sqlx::Error> {
    let live = super::assignments::LIVE;
    let sql = format!(
        "SELECT u.id, o.name, o.block_after_days, o.remove_after_days, u.blocked_at, u.lifecycle_from, \
                (SELECT MAX(CASE WHEN a.end_at IS NOT NULL AND a.end_at < a.updated_at THEN a.end_at \
                                 ELSE a.updated_at END) FROM assignments a WHERE a.user_id = u.id) AS last_end \
         FROM users u JOIN connected_orgs o ON o.id = u.connected_org_id \
         WHERE u.kind = 'guest' AND u.state = 'active' AND ($1 IS NULL OR u.id = $1) \
           AND (o.block_after_days IS NOT NULL OR o.remove_after_days IS NOT NULL) \
           AND EXISTS (SELECT 1 FROM assignments e WHERE e.user_id = u.id) \
           AND NOT EXISTS (SELECT 1 FROM assignments l WHERE l.user_id = u.id AND l.state IN {live}) \
           AND NOT EXISTS (SELECT 1 FROM requests q WHERE q.target_user_id = u.id \
                           AND q.state IN ('submitted', 'pending_approval', 'approved')) \
           AND NOT EXISTS (SELECT 1 FROM connected_org_sponsors s WHERE s.user_id = u.id) \
         ORDER BY u.id"
    );
    let rows = sqlx::query(&sql).bind(only.map(|u| u.0)).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            let last_end = row.time("last_end")?;
            Ok(IdleGuest {
                user: UserId(row.int("id")?),
                org: row.text("name")?,
                block_after_days: row.opt_int("block_after_days")?,
                remove_after_days: row.opt_int("remove_after_days")?,
                blocked_at: row.opt_time("blocked_at")?,
                idle_since: row.opt_time("lifecycle_from")?.map_or(last_end, |from| from.max(last_end)),
            })
        })
        .collect()
}

/// SQL: the users row `u` is a guest blocked from signing in: blocked since their access last
/// ended, by an organization that still blocks, and given no access since.
pub fn blocked_sql() -> String {
    let live = super::assignments::LIVE;
    format!(
        "(u.blocked_at IS NOT NULL \
          AND EXISTS (SELECT 1 FROM connected_orgs o WHERE o.id = u.connected_org_id AND o.block_after_days IS NOT NULL) \
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.user_id = u.id \
                          AND (a.state IN {live} OR a.created_at >= u.blocked_at)))"
    )
}

/// A person an administrator lets back in: not blocked, and the days count from now.
pub async fn restart(conn: &mut Conn, user: UserId, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET blocked_at = NULL, lifecycle_from = $1 WHERE id = $2")
        .bind(to_ms(now))
        .bind(user.0)
        .execute(conn)
        .await?;
    Ok(())
}

/// An organization's settings for guests whose access ended (`None` when it is gone).
pub async fn lifecycle_of(conn: &mut Conn, org: OrgId) -> Result<Option<(Option<i64>, Option<i64>, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT block_after_days, remove_after_days, version FROM connected_orgs WHERE id = $1")
        .bind(org.0)
        .fetch_optional(conn)
        .await
}

/// Block the guest from signing in (now); false when they are not an active guest.
pub async fn block(conn: &mut Conn, user: UserId, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE users SET blocked_at = $1, updated_at = $1 WHERE id = $2 AND kind = 'guest' AND state = 'active'",
    )
    .bind(to_ms(now))
    .bind(user.0)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The person is a guest blocked from signing in (see [`blocked_sql`]).
pub async fn blocked(conn: &mut Conn, user: UserId) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM users u WHERE u.id = $1 AND {}", blocked_sql()))
        .bind(user.0)
        .fetch_one(conn)
        .await?;
    Ok(n > 0)
}

/// An organization's settings for guests whose access ended; false when it is gone.
pub async fn set_lifecycle(
    conn: &mut Conn,
    org: OrgId,
    block_after_days: Option<i64>,
    remove_after_days: Option<i64>,
    version: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE connected_orgs SET block_after_days = $1, remove_after_days = $2, version = version + 1 \
         WHERE id = $3 AND version = $4",
    )
    .bind(block_after_days)
    .bind(remove_after_days)
    .bind(org.0)
    .bind(version)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
