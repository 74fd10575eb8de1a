//! Deputies: who decides for an approver while they are away, and adding them to a stage as
//! it starts.

use chrono::{DateTime, Utc};

use super::{to_ms, Conn, RowExt};
use crate::domain::ids::{RequestId, UserId};

/// A deputy period, with the names the pages show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deputy {
    pub id: i64,
    pub user: UserId,
    pub user_name: String,
    pub deputy: UserId,
    pub deputy_name: String,
    pub deputy_email: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

const DEPUTY_SELECT: &str = "SELECT d.id, d.ended_at, d.user_id, u.display_name AS user_name, d.deputy_id, \
     v.display_name AS deputy_name, v.email AS deputy_email, d.starts_at, d.ends_at \
     FROM deputies d JOIN users u ON u.id = d.user_id JOIN users v ON v.id = d.deputy_id";

fn deputy_from_row(row: &sqlx::any::AnyRow) -> Result<Deputy, sqlx::Error> {
    Ok(Deputy {
        id: row.int("id")?,
        user: UserId(row.int("user_id")?),
        user_name: row.text("user_name")?,
        deputy: UserId(row.int("deputy_id")?),
        deputy_name: row.text("deputy_name")?,
        deputy_email: row.text("deputy_email")?,
        starts_at: row.time("starts_at")?,
        ends_at: row.time("ends_at")?,
    })
}

/// The person's deputy period now or to come (not ended), if any, and the periods in which
/// they stand in for someone (one statement, through the two partial indexes).
pub async fn around(
    conn: &mut Conn,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<(Option<Deputy>, Vec<Deputy>), sqlx::Error> {
    let sql = format!(
        "{DEPUTY_SELECT} WHERE (d.user_id = $1 OR d.deputy_id = $1) AND d.ended_at IS NULL AND d.ends_at > $2 \
         ORDER BY d.starts_at, d.id"
    );
    let rows = sqlx::query(&sql).bind(user.0).bind(to_ms(now)).fetch_all(conn).await?;
    let all = rows.iter().map(deputy_from_row).collect::<Result<Vec<_>, _>>()?;
    let (own, standing_in): (Vec<Deputy>, Vec<Deputy>) = all.into_iter().partition(|d| d.user == user);
    Ok((own.into_iter().last(), standing_in))
}

/// One period by id (ended or not).
pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<(Deputy, bool)>, sqlx::Error> {
    let sql = format!("{DEPUTY_SELECT} WHERE d.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(|r| Ok((deputy_from_row(r)?, r.opt_int("ended_at")?.is_some()))).transpose()
}

/// End every period of `user` not yet ended: now, or when it ran out if it already has. How
/// many were still running or to come.
pub async fn end_all(conn: &mut Conn, user: UserId, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let running: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM deputies WHERE user_id = $1 AND ended_at IS NULL AND ends_at > $2")
            .bind(user.0)
            .bind(to_ms(now))
            .fetch_one(&mut *conn)
            .await?;
    sqlx::query(
        "UPDATE deputies SET ended_at = CASE WHEN ends_at < $1 THEN ends_at ELSE $1 END \
         WHERE user_id = $2 AND ended_at IS NULL",
    )
    .bind(to_ms(now))
    .bind(user.0)
    .execute(conn)
    .await?;
    Ok(running as u64)
}

/// End one period, if it is not ended yet; false otherwise.
pub async fn end(conn: &mut Conn, id: i64, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE deputies SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
        .bind(to_ms(now))
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A new period: `deputy` decides for `user` from `starts_at` until `ends_at`.
pub async fn insert(
    conn: &mut Conn,
    (user, deputy, set_by): (UserId, UserId, UserId),
    (starts_at, ends_at): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO deputies (user_id, deputy_id, starts_at, ends_at, set_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(user.0)
    .bind(deputy.0)
    .bind(to_ms(starts_at))
    .bind(to_ms(ends_at))
    .bind(set_by.0)
    .bind(to_ms(now))
    .fetch_one(conn)
    .await
}

/// As stage `stage` of the request starts, add the deputies of its approvers who are away at
/// `now` (each with the source of the approver they stand in for), never the person the
/// request is for nor the one who asked, nor anyone already an approver of the stage; then
/// the inbox is refreshed. Returns how many were added.
pub async fn add_to_stage(
    conn: &mut Conn,
    request: RequestId,
    stage: u32,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut added = 0;
    // The deputies of the stage's own approvers first, then of its alternates: a deputy of
    // both is there from the start.
    for whose in ["ra.source <> 'escalation'", "ra.source = 'escalation'"] {
        let done = sqlx::query(&format!(
            "INSERT INTO request_approvers (request_id, stage, user_id, source, deputy_for) \
             SELECT DISTINCT ra.request_id, ra.stage, d.deputy_id, ra.source, ra.user_id \
             FROM request_approvers ra \
             JOIN deputies d ON d.user_id = ra.user_id AND d.ended_at IS NULL AND d.starts_at <= $3 AND d.ends_at > $3 \
             JOIN users v ON v.id = d.deputy_id AND v.state = 'active' \
             JOIN requests r ON r.id = ra.request_id \
             WHERE ra.request_id = $1 AND ra.stage = $2 AND ra.deputy_for IS NULL AND {whose} \
               AND d.deputy_id <> r.requestor_id AND d.deputy_id <> r.target_user_id \
               AND NOT EXISTS (SELECT 1 FROM decisions x WHERE x.request_id = r.id AND x.approver_id = d.deputy_id) \
             ON CONFLICT (request_id, stage, user_id) DO NOTHING"
        ))
        .bind(request.0)
        .bind(i64::from(stage))
        .bind(to_ms(now))
        .execute(&mut *conn)
        .await?;
        added += done.rows_affected();
    }
    if added > 0 {
        super::requests::refresh_inbox(conn, request).await?;
    }
    Ok(added)
}
