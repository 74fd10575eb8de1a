//! Appending audit events to the hash chain, inside the transaction of the change, and
//! proving the chain.

use super::Service;
use crate::domain::audit::{chain_hash, AuditEvent, GENESIS_HASH};
use crate::domain::authz::{Operator, Permission};
use crate::domain::DomainResult;
use crate::store::Tx;

impl Service {
    /// Append the events and commit: the change, its audit trail and its outbox entries land
    /// together or not at all.
    pub(super) async fn commit(&self, mut tx: Tx, events: Vec<AuditEvent>) -> DomainResult<()> {
        crate::store::audit::append(&mut tx, self.db.backend(), self.now(), &events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// End a batch's transaction (expiry, delivery): commit it with the batch's audit events,
    /// or, when the batch failed, roll it back at once, since the one-at-a-time retry that
    /// follows needs the locks it holds.
    pub(super) async fn end_batch<T>(
        &self,
        tx: Tx,
        done: DomainResult<(T, Vec<AuditEvent>)>,
        what: &str,
    ) -> DomainResult<T> {
        match done {
            Ok((out, events)) => {
                self.commit(tx, events).await?;
                Ok(out)
            }
            Err(e) => {
                if let Err(rollback) = tx.rollback().await {
                    tracing::warn!(error = %rollback, "rolling back the failed {what}");
                }
                Err(e)
            }
        }
    }
}

/// The result of walking the audit chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainCheck {
    /// Every event links to the one before and its hash matches its content. `head` is the
    /// last event's hash: keep it somewhere the database's writers cannot reach (print it, a
    /// ticket, a signed log) and pass it back as an [`AuditAnchor`] to detect a cut tail.
    Intact { events: u64, head: Option<AuditAnchor> },
    /// The first event whose link or hash does not hold.
    Broken { event_id: i64, why: String },
}

/// A point of the chain recorded outside the database: event `id` had hash `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditAnchor {
    pub id: i64,
    pub hash: String,
}

impl std::fmt::Display for AuditAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.id, self.hash)
    }
}

impl std::str::FromStr for AuditAnchor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, hash) = s.split_once(':').ok_or("an anchor is ID:HASH, as verify prints it")?;
        let id = id.trim().parse().map_err(|_| "the anchor's event id is not a number")?;
        let hash = hash.trim();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the anchor's hash is not 64 hex digits".into());
        }
        Ok(AuditAnchor { id, hash: hash.to_ascii_lowercase() })
    }
}

impl Service {
    /// Recompute the hash chain from the first event on; names the first broken link.
    #[tracing::instrument(name = "verify_audit_chain", skip_all, fields(operator = %by))]
    pub async fn verify_audit_chain(&self, by: &Operator<'_>) -> DomainResult<ChainCheck> {
        self.verify_audit_chain_against(by, None).await
    }

    /// The same, and the chain must still hold the anchored event with the anchored hash:
    /// deleting the newest events (which leaves a shorter chain that is intact by itself) is
    /// caught here.
    #[tracing::instrument(name = "verify_audit_chain_against", skip_all, fields(operator = %by))]
    pub async fn verify_audit_chain_against(
        &self,
        by: &Operator<'_>,
        anchor: Option<&AuditAnchor>,
    ) -> DomainResult<ChainCheck> {
        by.require(Permission::ReadAudit)?;
        let mut conn = self.db.pool().acquire().await?;
        let mut prev = GENESIS_HASH.to_owned();
        let mut after_id = 0;
        let mut count = 0;
        let mut head = None;
        loop {
            let page = crate::store::audit::page(&mut conn, after_id, 1000).await?;
            if page.is_empty() {
                break;
            }
            for row in page {
                if row.prev_hash != prev {
                    return Ok(ChainCheck::Broken {
                        event_id: row.id,
                        why: "links to a different predecessor (an event before it was removed, reordered or changed)"
                            .into(),
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
                head = Some(AuditAnchor { id: row.id, hash: prev.clone() });
            }
        }
        if let Some(anchor) = anchor {
            match crate::store::audit::hash_of(&mut conn, anchor.id).await? {
                Some(hash) if hash == anchor.hash => {}
                Some(_) => {
                    return Ok(ChainCheck::Broken {
                        event_id: anchor.id,
                        why: "its hash differs from the anchor recorded earlier (the chain was rewritten)".into(),
                    })
                }
                None => {
                    return Ok(ChainCheck::Broken {
                        event_id: anchor.id,
                        why: format!(
                            "the anchored event is missing: the chain ends at event {} (its tail was cut)",
                            head.as_ref().map_or(0, |h| h.id)
                        ),
                    })
                }
            }
        }
        Ok(ChainCheck::Intact { events: count, head })
    }
}
