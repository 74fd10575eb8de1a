//! Appending audit events to the hash chain, inside the transaction of the change.

use chrono::{DateTime, Utc};

use super::Service;
use crate::domain::audit::{chain_hash, AuditEvent, GENESIS_HASH};
use crate::domain::DomainResult;
use crate::store::{Backend, Tx};

impl Service {
    /// Append the events and commit: the change, its audit trail and its outbox entries land
    /// together or not at all.
    pub(super) async fn commit(&self, mut tx: Tx, events: Vec<AuditEvent>) -> DomainResult<()> {
        append(&mut tx, self.db.backend(), self.now(), &events).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Append events under the chain lock. On SQLite the write transaction already excludes every
/// other writer; on PostgreSQL a transaction-scoped advisory lock orders appends, so two
/// transactions never link to the same predecessor.
pub(crate) async fn append(
    tx: &mut Tx,
    backend: Backend,
    at: DateTime<Utc>,
    events: &[AuditEvent],
) -> DomainResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(7270001)").execute(&mut **tx).await?;
    }
    let mut prev: String = sqlx::query_scalar("SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?
        .unwrap_or_else(|| GENESIS_HASH.to_owned());
    for event in events {
        let before = event.before.to_string();
        let after = event.after.to_string();
        let hash = chain_hash(&prev, at, event, &before, &after);
        sqlx::query(
            "INSERT INTO audit_events (at, actor_id, action, object_type, object_id, before, after, \
             reason, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(at.timestamp_millis())
        .bind(event.actor.map(|a| a.0))
        .bind(&event.action)
        .bind(&event.object_type)
        .bind(event.object_id)
        .bind(&before)
        .bind(&after)
        .bind(&event.reason)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
        prev = hash;
    }
    Ok(())
}

/// The result of walking the audit chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainCheck {
    /// Every event links to the one before and its hash matches its content.
    Intact { events: u64 },
    /// The first event whose link or hash does not hold.
    Broken { event_id: i64, why: String },
}

impl Service {
    /// Recompute the hash chain from the first event on; names the first broken link.
    pub async fn verify_audit_chain(&self) -> DomainResult<ChainCheck> {
        let mut conn = self.db.pool().acquire().await?;
        let mut prev = GENESIS_HASH.to_owned();
        let mut after_id = 0;
        let mut count = 0;
        loop {
            let page = crate::store::audit::page(&mut conn, after_id, 1000).await?;
            if page.is_empty() {
                return Ok(ChainCheck::Intact { events: count });
            }
            for row in page {
                if row.prev_hash != prev {
                    return Ok(ChainCheck::Broken {
                        event_id: row.id,
                        why: "links to a different predecessor (an event before it was removed or changed)".into(),
                    });
                }
                let event = AuditEvent {
                    actor: row.actor,
                    action: row.action,
                    object_type: row.object_type,
                    object_id: row.object_id,
                    before: serde_json::Value::Null,
                    after: serde_json::Value::Null,
                    reason: row.reason,
                };
                let expected = chain_hash(&prev, row.at, &event, &row.before, &row.after);
                if expected != row.hash {
                    return Ok(ChainCheck::Broken {
                        event_id: row.id,
                        why: "its content does not match its hash (it was edited)".into(),
                    });
                }
                prev = row.hash;
                after_id = row.id;
                count += 1;
            }
        }
    }
}
