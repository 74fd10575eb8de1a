//! Request lifecycle events for webhook systems: written in the transaction of the change
//! they report, claimed under a lease and sent by a worker, recorded as done, retried or
//! failed. (The outbox's twin for news rather than access: nothing here grants anything.)

use chrono::{DateTime, Utc};

use super::{to_ms, Conn, RowExt};
use crate::domain::ids::{ResourceSystemId, UserId};

/// One event to tell: what happened, to which request or assignment, by whom, when.
pub struct NewEvent<'a> {
    pub event: &'a str,
    pub request: Option<i64>,
    pub assignment: Option<i64>,
    pub actor: Option<UserId>,
    pub reason: &'a str,
}

/// The webhook systems and their settings (a few rows: whoever asks for lifecycle events is
/// among them).
pub async fn webhooks(conn: &mut Conn) -> Result<Vec<(ResourceSystemId, String)>, sqlx::Error> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, config FROM resource_systems WHERE kind = 'webhook'").fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(id, config)| (ResourceSystemId(id), config)).collect())
}

/// Queue the event for each of the `listening` systems that has a role in the package of the
/// request (or assignment): due at once.
pub async fn enqueue(
    conn: &mut Conn,
    listening: &[ResourceSystemId],
    event: &NewEvent<'_>,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let list = listening.iter().map(|s| s.0.to_string()).collect::<Vec<_>>().join(", ");
    let done = sqlx::query(&format!(
        "INSERT INTO webhook_events (system_id, event, request_id, assignment_id, actor_id, reason, occurred_at, \
         next_attempt_at, updated_at) \
         SELECT s.id, $1, $2, $3, $4, $5, $6, $6, $6 FROM resource_systems s \
         WHERE s.id IN ({list}) AND EXISTS ( \
             SELECT 1 FROM package_resource_roles pr JOIN resource_roles rr ON rr.id = pr.resource_role_id \
             JOIN resources r ON r.id = rr.resource_id \
             WHERE r.system_id = s.id AND pr.package_id = COALESCE( \
                 (SELECT package_id FROM requests WHERE id = $2), \
                 (SELECT package_id FROM assignments WHERE id = $3)))",
    ))
    .bind(event.event)
    .bind(event.request)
    .bind(event.assignment)
    .bind(event.actor.map(|a| a.0))
    .bind(event.reason)
    .bind(to_ms(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A claimed event with what its call says: the person, the package, the request and the
/// assignment as they are now.
pub struct ClaimedEvent {
    pub id: i64,
    pub system: ResourceSystemId,
    pub attempts: i64,
    pub body: serde_json::Value,
}

/// The claimed events, read with what their calls say (one statement). One whose person or
/// package cannot be found is left out (the caller fails it).
pub async fn claimed(conn: &mut Conn, ids: &[i64]) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT e.id, e.system_id, e.attempts, e.event, e.reason, e.occurred_at, \
                e.request_id AS event_request, e.assignment_id, a.state AS assignment_state, a.end_at, \
                q.id AS request_id, q.state AS request_state, \
                u.id AS person_id, u.email, u.display_name, p.id AS package_id, p.name AS package_name, \
                b.email AS actor_email \
         FROM webhook_events e \
         LEFT JOIN assignments a ON a.id = e.assignment_id \
         LEFT JOIN requests q ON q.id = COALESCE(e.request_id, a.request_id) \
         LEFT JOIN users u ON u.id = COALESCE(a.user_id, q.target_user_id) \
         LEFT JOIN access_packages p ON p.id = COALESCE(a.package_id, q.package_id) \
         LEFT JOIN users b ON b.id = e.actor_id \
         WHERE e.id IN ({list}) ORDER BY e.id"
    );
    let rows = sqlx::query(&sql).fetch_all(conn).await?;
    rows.iter()
        .filter(|row| row.opt_int("person_id").ok().flatten().is_some() && row.opt_int("package_id").ok().flatten().is_some())
        .map(|row| {
            let id = row.int("id")?;
            let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let request = match row.opt_int("request_id")? {
                Some(r) => serde_json::json!({"id": r, "state": row.text("request_state")?}),
                None => serde_json::Value::Null,
            };
            let assignment = match row.opt_int("assignment_id")? {
                Some(a) => serde_json::json!({
                    "id": a,
                    "state": row.text("assignment_state")?,
                    "ends_at": row.opt_time("end_at")?.map(iso),
                }),
                None => serde_json::Value::Null,
            };
            let reason = row.text("reason")?;
            let body = serde_json::json!({
                "id": format!("qm-event-{id}"),
                "type": row.text("event")?,
                "occurred_at": iso(row.time("occurred_at")?),
                "person": {"id": row.int("person_id")?, "email": row.text("email")?, "display_name": row.text("display_name")?},
                "package": {"id": row.int("package_id")?, "name": row.text("package_name")?},
                "request": request,
                "assignment": assignment,
                "by": row.opt_text("actor_email")?,
                "reason": (!reason.is_empty()).then_some(reason),
            });
            Ok(ClaimedEvent {
                id,
                system: ResourceSystemId(row.int("system_id")?),
                attempts: row.int("attempts")?,
                body,
            })
        })
        .collect()
}

/// Failed events of a system due again at once, their attempts reset (an administrator's
/// "retry failed"); how many.
pub async fn retry_failed(conn: &mut Conn, system: ResourceSystemId, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE webhook_events SET state = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $1 \
         WHERE system_id = $2 AND state = 'failed'",
    )
    .bind(to_ms(now))
    .bind(system.0)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
