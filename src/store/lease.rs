//! Work claimed under a lease (the outbox, webhook lifecycle events): the same columns
//! (`state`, `attempts`, `claimed_by`, `claimed_until`, `last_error`, `next_attempt_at`,
//! `updated_at`), settled or given back only by the claim that holds it.

use chrono::{DateTime, Utc};

use super::{to_ms, Conn};

/// A table of claimed work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    Outbox,
    WebhookEvents,
}

impl Queue {
    fn table(self) -> &'static str {
        match self {
            Queue::Outbox => "outbox",
            Queue::WebhookEvents => "webhook_events",
        }
    }
}

/// The claimed piece of work (`id` under the claim `token`) is settled: `done` or `failed`,
/// with the reason; the lease is released. False (nothing written) when the claim no longer
/// holds it.
pub async fn finish(
    conn: &mut Conn,
    queue: Queue,
    (id, token): (i64, &str),
    state: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&format!(
        "UPDATE {} SET state = $1, last_error = $2, updated_at = $3, claimed_until = NULL, claimed_by = '' \
         WHERE id = $4 AND state = 'pending' AND claimed_by = $5",
        queue.table()
    ))
    .bind(state)
    .bind(error)
    .bind(to_ms(now))
    .bind(id)
    .bind(token)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The attempt failed (with `error`) and another follows at `at`; the lease is released.
/// `spent`: the attempt counts (else it is given back: the target as a whole was unavailable,
/// not this work). False (nothing written) when the claim no longer holds it.
pub async fn retry_later(
    conn: &mut Conn,
    queue: Queue,
    (id, token): (i64, &str),
    (error, spent): (&str, bool),
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let attempts = if spent { "attempts" } else { "CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END" };
    let done = sqlx::query(&format!(
        "UPDATE {} SET last_error = $1, next_attempt_at = $2, updated_at = $3, claimed_until = NULL, \
         claimed_by = '', attempts = {attempts} WHERE id = $4 AND state = 'pending' AND claimed_by = $5",
        queue.table()
    ))
    .bind(error)
    .bind(to_ms(at))
    .bind(to_ms(now))
    .bind(id)
    .bind(token)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
