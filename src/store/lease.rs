//! Work claimed under a lease (the outbox, webhook lifecycle events, notifications): the same columns
//! (`state`, `attempts`, `claimed_by`, `claimed_until`, `last_error`, `next_attempt_at`,
//! `updated_at`), settled or given back only by the claim that holds it.

use chrono::{DateTime, Utc};

use super::{to_ms, Conn};

/// A table of claimed work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    Outbox,
    WebhookEvents,
    Notifications,
}

impl Queue {
    fn table(self) -> &'static str {
        match self {
            Queue::Outbox => "outbox",
            Queue::WebhookEvents => "webhook_events",
            Queue::Notifications => "notifications",
        }
    }
}

/// Claim up to `limit` due pieces of work of `queue` for `token` until `lease_until`,
/// counting the attempt: pending, due by `now`, not under another live lease, and meeting
/// `also` (a condition on the row `q`, which may read `now` as `$3`); their ids, in queue
/// order. PostgreSQL skips rows another claim has locked.
pub async fn claim_due(
    conn: &mut Conn,
    backend: super::Backend,
    queue: Queue,
    (token, now, lease_until): (&str, DateTime<Utc>, DateTime<Utc>),
    limit: i64,
    also: &str,
) -> Result<Vec<i64>, sqlx::Error> {
    let skip_locked = if backend == super::Backend::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
    let table = queue.table();
    let sql = format!(
        "UPDATE {table} SET claimed_until = $1, claimed_by = $2, attempts = attempts + 1, updated_at = $3
         WHERE id IN (SELECT q.id FROM {table} q
             WHERE q.state = 'pending' AND q.next_attempt_at <= $3
               AND (q.claimed_until IS NULL OR q.claimed_until <= $3) AND {also}
             ORDER BY q.next_attempt_at, q.id LIMIT $4 {skip_locked})
         RETURNING id"
    );
    let mut ids: Vec<i64> = sqlx::query_scalar(&sql)
        .bind(to_ms(lease_until))
        .bind(token)
        .bind(to_ms(now))
        .bind(limit)
        .fetch_all(conn)
        .await?;
    ids.sort_unstable();
    Ok(ids)
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
