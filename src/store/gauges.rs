//! What `/metrics` reads at each scrape: counts of open work, by the indexes that serve each
//! one (`requests_open`, `outbox_due`, `notifications_due`).

use sqlx::Row;

use super::Conn;

/// The work waiting at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Waiting {
    /// Requests not yet settled, by state (every such state listed, zero when none).
    pub requests: Vec<(&'static str, i64)>,
    /// Pending outbox entries by connected system's name: how many, and the oldest one's
    /// creation (Unix ms). Every system is listed, with `(0, None)` when nothing waits.
    pub outbox: Vec<(String, i64, Option<i64>)>,
    /// Emails waiting to be sent, and the oldest one's time (Unix ms).
    pub notifications: (i64, Option<i64>),
}

/// The states of a request still under way (waiting for a decision or for its access).
pub const OPEN_REQUEST_STATES: [&str; 4] = ["submitted", "pending_approval", "approved", "delivering"];

/// The open requests by state, through the partial index that holds them (`requests_open`,
/// whose condition this repeats word for word).
pub const OPEN_REQUESTS_SQL: &str = "SELECT state, COUNT(*) AS n FROM requests \
     WHERE state IN ('submitted', 'pending_approval', 'approved', 'delivering') GROUP BY state";

pub async fn waiting(conn: &mut Conn) -> Result<Waiting, sqlx::Error> {
    let rows = sqlx::query(OPEN_REQUESTS_SQL).fetch_all(&mut *conn).await?;
    let mut requests: Vec<(&'static str, i64)> = OPEN_REQUEST_STATES.iter().map(|s| (*s, 0)).collect();
    for row in rows {
        let state: String = row.try_get("state")?;
        if let Some(slot) = requests.iter_mut().find(|(s, _)| *s == state) {
            slot.1 = row.try_get("n")?;
        }
    }

    let mut outbox: Vec<(String, i64, Option<i64>)> =
        sqlx::query_scalar("SELECT name FROM resource_systems ORDER BY name")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|name: String| (name, 0, None))
            .collect();
    let rows = sqlx::query(
        "SELECT s.name AS system, COUNT(*) AS n, MIN(o.created_at) AS oldest FROM outbox o \
         JOIN resource_roles rr ON rr.id = o.resource_role_id \
         JOIN resources r ON r.id = rr.resource_id \
         JOIN resource_systems s ON s.id = r.system_id \
         WHERE o.state = 'pending' GROUP BY s.name",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let system: String = row.try_get("system")?;
        if let Some(slot) = outbox.iter_mut().find(|(s, _, _)| *s == system) {
            slot.1 = row.try_get("n")?;
            slot.2 = row.try_get("oldest")?;
        }
    }

    let row =
        sqlx::query("SELECT COUNT(*) AS n, MIN(occurred_at) AS oldest FROM notifications WHERE state = 'pending'")
            .fetch_one(&mut *conn)
            .await?;
    let notifications = (row.try_get("n")?, row.try_get("oldest")?);
    Ok(Waiting { requests, outbox, notifications })
}
