//! Reading the audit trail.

use chrono::{DateTime, Utc};

use super::{Backend, Conn, RowExt, Tx};
use crate::domain::audit::{chain_hash, AuditEvent, GENESIS_HASH};
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
    pub token: Option<i64>,
    pub prev_hash: String,
    pub hash: String,
}

const COLUMNS: &str =
    "id, at, actor_id, action, object_type, object_id, before, after, reason, token_id, prev_hash, hash";

fn row_of(row: &sqlx::any::AnyRow) -> Result<AuditRow, sqlx::Error> {
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
        token: row.opt_int("token_id")?,
        prev_hash: row.text("prev_hash")?,
        hash: row.text("hash")?,
    })
}

/// Events after `after_id`, in chain order.
pub async fn page(conn: &mut Conn, after_id: i64, limit: i64) -> Result<Vec<AuditRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2");
    let rows = sqlx::query(&sql).bind(after_id).bind(limit).fetch_all(conn).await?;
    rows.iter().map(row_of).collect()
}

/// What the audit log is narrowed to; every part optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditSearch {
    pub actor: Option<UserId>,
    pub object_type: Option<String>,
    pub object_id: Option<i64>,
    pub action: Option<String>,
    /// From this instant on.
    pub from: Option<DateTime<Utc>>,
    /// Before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// How far an event's time may run behind one appended before it. [`append`] stamps no event
/// earlier than the chain's head ([`not_before`]), so none does; the margin is kept for
/// trails written before that rule, or by other means (seed-scale writes times in order).
const CLOCK_SLACK_MS: i64 = 3_600_000;

/// Events matching `search` older than event `before`, newest first. Each filter is an
/// equality on an indexed column: the person (`audit_events_actor`), the object
/// (`audit_events_object`), the kind of object (`audit_events_type`), the action
/// (`audit_events_action`). A time range is read as a range of ids: its ends are found
/// through `audit_events_at` (widened by [`CLOCK_SLACK_MS`], so no event in the range falls
/// outside), then the ids are read in order and each event's time checked. Reading the
/// time index itself would sort every event of the range for each page. The statement takes
/// one of 64 shapes (which filters are set): bounded, unlike an id list's text, so it stays
/// prepared per connection (sqlx keeps 100).
pub async fn search(
    conn: &mut Conn,
    search: &AuditSearch,
    before: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    enum Param<'a> {
        Int(i64),
        Text(&'a str),
    }
    let (mut after, mut before) = (0, before);
    if let Some(from) = search.from {
        let edge: Option<i64> =
            sqlx::query_scalar("SELECT id FROM audit_events WHERE at < $1 ORDER BY at DESC, id DESC LIMIT 1")
                .bind(super::to_ms(from).saturating_sub(CLOCK_SLACK_MS))
                .fetch_optional(&mut *conn)
                .await?;
        after = edge.unwrap_or(0);
    }
    if let Some(until) = search.until {
        let edge: Option<i64> =
            sqlx::query_scalar("SELECT id FROM audit_events WHERE at >= $1 ORDER BY at, id LIMIT 1")
                .bind(super::to_ms(until).saturating_add(CLOCK_SLACK_MS))
                .fetch_optional(&mut *conn)
                .await?;
        before = before.min(edge.unwrap_or(i64::MAX));
    }
    let mut params = vec![Param::Int(before), Param::Int(after)];
    let mut sql = format!("SELECT {COLUMNS} FROM audit_events WHERE id < $1 AND id > $2");
    // `+at`: the time is checked on the rows read, never used to choose an index.
    let conditions = [
        ("actor_id =", search.actor.map(|u| Param::Int(u.0))),
        ("object_type =", search.object_type.as_deref().map(Param::Text)),
        ("object_id =", search.object_id.map(Param::Int)),
        ("action =", search.action.as_deref().map(Param::Text)),
        ("+at >=", search.from.map(|t| Param::Int(super::to_ms(t)))),
        ("+at <", search.until.map(|t| Param::Int(super::to_ms(t)))),
    ];
    for (condition, param) in conditions {
        if let Some(param) = param {
            params.push(param);
            sql.push_str(&format!(" AND {condition} ${}", params.len()));
        }
    }
    params.push(Param::Int(limit));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", params.len()));
    let query = params.into_iter().fold(sqlx::query(&sql), |q, p| match p {
        Param::Int(v) => q.bind(v),
        Param::Text(t) => q.bind(t),
    });
    let rows = query.fetch_all(conn).await?;
    rows.iter().map(row_of).collect()
}

/// Times never run backwards along the chain: an event is stamped no earlier than the one
/// ahead of it. A commit reads the clock before it takes the chain's lock, so it can find a
/// later time at the head (by its wait for the lock, or a clock stepped back); it then takes
/// that time. The audit log's day filters rely on times ordered like ids.
fn not_before(at: DateTime<Utc>, last_ms: i64) -> DateTime<Utc> {
    let behind = last_ms - at.timestamp_millis();
    if behind <= 0 {
        return at;
    }
    if behind > 1000 {
        tracing::warn!(behind_ms = behind, "the clock is behind the audit chain's head; stamping the head's time");
    }
    DateTime::from_timestamp_millis(last_ms).unwrap_or(at)
}

/// Append events to the hash chain inside the caller's transaction, under the chain lock. On
/// SQLite the write transaction already excludes every other writer; on PostgreSQL a
/// transaction-scoped advisory lock orders appends. Each event is written with its id, one
/// past the one before it: the database refuses any event that is not the head's successor
/// (the trigger `audit_events_at_head`), so should two appends ever read the same head anyway,
/// the second collides with the first on the primary key and fails: the chain cannot fork.
pub async fn append(
    tx: &mut Tx,
    backend: Backend,
    at: DateTime<Utc>,
    events: &[AuditEvent],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(7270001)").execute(&mut **tx).await?;
    }
    let last: Option<(i64, String, i64)> =
        sqlx::query_as("SELECT id, hash, at FROM audit_events ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    let (mut id, mut prev, at) = match last {
        None => (0, GENESIS_HASH.to_owned(), at),
        Some((id, hash, last_ms)) => (id, hash, not_before(at, last_ms)),
    };
    // Many events (an expiry batch) go in as few statements.
    for chunk in events.chunks(APPEND_CHUNK) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", (1..=12).map(|k| format!("${}", i * 12 + k)).collect::<Vec<_>>().join(", ")))
            .collect();
        let sql = format!(
            "INSERT INTO audit_events (id, at, actor_id, action, object_type, object_id, before, after, reason, \
             token_id, prev_hash, hash) VALUES {}",
            rows.join(", ")
        );
        // Statements of the common sizes stay prepared; rarer ones are not cached.
        let mut query = sqlx::query(&sql).persistent(chunk.len() <= 4 || chunk.len() == APPEND_CHUNK);
        for event in chunk {
            let before = event.before.to_string();
            let after = event.after.to_string();
            let hash = chain_hash(&prev, at, event, &before, &after);
            id += 1;
            query = query
                .bind(id)
                .bind(at.timestamp_millis())
                .bind(event.actor.map(|a| a.0))
                .bind(event.action.clone())
                .bind(event.object_type.clone())
                .bind(event.object_id)
                .bind(before)
                .bind(after)
                .bind(event.reason.clone())
                .bind(event.token)
                .bind(std::mem::replace(&mut prev, hash.clone()))
                .bind(hash);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Events per `INSERT` (twelve parameters each, well inside SQLite's limit of 32,766).
const APPEND_CHUNK: usize = 50;

/// The hash stored for one event.
pub async fn hash_of(conn: &mut Conn, id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT hash FROM audit_events WHERE id = $1").bind(id).fetch_optional(conn).await
}

/// A walk of the audit chain as recorded.
pub struct VerificationRow {
    pub at: DateTime<Utc>,
    pub by: Option<UserId>,
    pub intact: bool,
    pub events: i64,
    pub head: Option<(i64, String)>,
    pub broken_event: Option<i64>,
    pub why: String,
}

/// Record a walk of the chain.
pub async fn record_verification(conn: &mut Conn, v: &VerificationRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_verifications (at, by_user_id, intact, events, head_id, head_hash, broken_event_id, why) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(super::to_ms(v.at))
    .bind(v.by.map(|u| u.0))
    .bind(i64::from(v.intact))
    .bind(v.events)
    .bind(v.head.as_ref().map(|(id, _)| *id))
    .bind(v.head.as_ref().map(|(_, hash)| hash.clone()))
    .bind(v.broken_event)
    .bind(&v.why)
    .execute(conn)
    .await?;
    Ok(())
}

/// The latest walk of the chain, and the head the latest intact walk recorded.
pub async fn latest_verifications(
    conn: &mut Conn,
) -> Result<(Option<VerificationRow>, Option<(i64, String)>), sqlx::Error> {
    let latest = sqlx::query(
        "SELECT at, by_user_id, intact, events, head_id, head_hash, broken_event_id, why FROM audit_verifications \
         ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let latest = latest
        .map(|row| -> Result<VerificationRow, sqlx::Error> {
            let head = match (row.opt_int("head_id")?, row.opt_text("head_hash")?) {
                (Some(id), Some(hash)) => Some((id, hash)),
                _ => None,
            };
            Ok(VerificationRow {
                at: row.time("at")?,
                by: row.opt_int("by_user_id")?.map(UserId),
                intact: row.flag("intact")?,
                events: row.int("events")?,
                head,
                broken_event: row.opt_int("broken_event_id")?,
                why: row.text("why")?,
            })
        })
        .transpose()?;
    let anchor: Option<(i64, String)> = sqlx::query_as(
        "SELECT head_id, head_hash FROM audit_verifications WHERE intact = 1 AND head_id IS NOT NULL \
         AND head_hash IS NOT NULL ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    Ok((latest, anchor))
}
