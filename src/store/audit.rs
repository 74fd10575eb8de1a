//! Reading the audit trail.

use chrono::{DateTime, Utc};

use super::{Conn, RowExt};
use crate::domain::ids::UserId;

/// An audit event as stored, with its JSON kept as the exact text that was hashed.
#[derive(Clone, Debug)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: Option<UserId>,
    pub action: String,
    pub object_type: String,
    pub object_id: i64,
    pub before: String,
    pub after: String,
    pub reason: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Events after `after_id`, in chain order.
pub async fn page(conn: &mut Conn, after_id: i64, limit: i64) -> Result<Vec<AuditRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, at, actor_id, action, object_type, object_id, before, after, reason, prev_hash, hash \
         FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(AuditRow {
                id: row.int("id")?,
                at: row.time("at")?,
                actor: row.opt_int("actor_id")?.map(UserId),
                action: row.text("action")?,
                object_type: row.text("object_type")?,
                object_id: row.int("object_id")?,
                before: row.text("before")?,
                after: row.text("after")?,
                reason: row.text("reason")?,
                prev_hash: row.text("prev_hash")?,
                hash: row.text("hash")?,
            })
        })
        .collect()
}
