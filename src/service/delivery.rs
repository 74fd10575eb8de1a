//! The delivery worker: takes provisioning work from the outbox and applies it to the target
//! system, idempotently, with retries and backoff.
//!
//! Delivery is a state machine with a way out of every state:
//!
//! ```text
//! pending ──claim (lease, committed first)──▶ claimed ──target answers──▶ done
//!    ▲                                           │  └──error, attempts left──▶ pending (backoff)
//!    │                                           │  └──error, last attempt──▶ failed (grant failed,
//!    │                                           │        assignment/request rolled up, audited)
//!    └──── lease ran out (worker died) ◀─────────┘
//! failed ──retry by an administrator or the catalog's owner (audited)──▶ pending
//! ```
//!
//! A worker claims a batch in one short transaction and commits it before it talks to any
//! target, so a slow target holds no database lock. It records each result in another short
//! transaction, under the person's lock, only while it still holds the claim. The built-in
//! resource system lives in our own database, so it is applied inside that recording
//! transaction (atomically with the reference-count check), a batch of entries
//! ([`DELIVERY_BATCH`]) per transaction, their people locked in id order; a batch that fails
//! is undone and done again one entry at a time. External connectors (issue 12) are called
//! between two transactions of their own.
//!
//! External targets, per pass:
//! - **Side by side, within limits.** Each system's entries are delivered concurrently, at
//!   most its `max_in_flight` calls at once from this instance, and all systems together at
//!   most [`PASS_IN_FLIGHT`], in turns. Removals go before additions. Work not started by
//!   half the lease is given back, due at once.
//! - **One piece of work per membership at a time.** The claim takes no entry of a (person,
//!   role) pair while another of the pair is held under a live lease, by any instance; the
//!   entries of a pair claimed together are delivered in turn, in queue order. Should two
//!   instances still claim entries of one pair in the same instant, the check under the
//!   person's lock sends back each that sees the other ([`assignments::pair_in_flight`]).
//! - **An unavailable target is left alone.** Unreachable, timed out, answering 429/503, or
//!   refusing our credentials (401/403): the entry is retried after the target's
//!   `Retry-After` (else a backoff of at most a minute), the system is paused until then for
//!   every instance (`resource_systems.paused_until`), its other entries of the pass are
//!   given back untried, and no attempt is spent: an outage fails nothing. A target that
//!   refuses the call itself (another 4xx, a redirect) fails the entry at once, for an
//!   administrator to fix and retry; anything else is retried with exponential backoff and
//!   jitter, [`MAX_ATTEMPTS`] in all.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::Service;
use crate::connectors::CallError;
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Actor, Operator, Permission};
use crate::domain::ids::{CatalogId, ResourceSystemId};
use crate::domain::model::ResourceSystemKind;
use crate::domain::policy::checked_after;
use crate::domain::request::{AssignmentState, GrantState, RequestState};
use crate::domain::{DomainError, DomainResult};
use crate::store::assignments::{self, OutboxItem};
use crate::store::{requests, Conn, Tx};

/// How many outbox entries one pass handled, and how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: usize,
    pub retried: usize,
    pub failed: usize,
    /// Not delivered because the access was no longer allowed (or had ended) by then.
    pub withdrawn: usize,
    /// Entries whose result could not be recorded (a database fault, or the lease was lost);
    /// their lease runs out and they are picked up again.
    pub errors: usize,
    /// Given back untried (their target was unavailable, or other work for the same
    /// membership came first), without spending an attempt.
    pub deferred: usize,
}

impl DeliveryReport {
    fn count(&mut self, outcome: Delivered) {
        match outcome {
            Delivered::Done => self.delivered += 1,
            Delivered::Withdrawn => self.withdrawn += 1,
            Delivered::Retry | Delivered::Unavailable(_) => self.retried += 1,
            Delivered::Failed => self.failed += 1,
            Delivered::Deferred => self.deferred += 1,
        }
    }

    /// Every entry the pass claimed, whatever became of it.
    pub fn claimed(&self) -> usize {
        self.delivered + self.retried + self.failed + self.withdrawn + self.errors + self.deferred
    }
}

/// Built-in entries recorded per transaction. Every other writer waits for the batch in
/// progress, so it stays small (as the expiry batches do).
pub const DELIVERY_BATCH: usize = 25;

/// Attempts before an entry is given up and its grant marked failed for repair.
pub const MAX_ATTEMPTS: i64 = 8;

/// How long a claim holds. Every call to a target must time out well within it.
pub const LEASE: Duration = Duration::minutes(5);

/// The wait before attempt `attempts + 1`: 5 s doubled per attempt (at most 2¹⁰), with
/// jitter (between half and all of it), so entries that failed together do not all come back
/// in the same instant.
pub(super) fn backoff(attempts: i64) -> Duration {
    let full_ms = 5_000 * 2_i64.pow(attempts.clamp(0, 10) as u32);
    Duration::milliseconds(full_ms / 2 + rand::random_range(0..=full_ms / 2))
}

/// External entries of one pass being delivered at once, all systems together (each holds a
/// pool connection while it records its result).
pub(super) const PASS_IN_FLIGHT: usize = 8;

/// The longest a system is left alone after it could not be reached (without a
/// `Retry-After` of its own): then one call tries it again.
pub(super) const SYSTEM_PAUSE: Duration = Duration::seconds(60);

/// How long an entry steps back while another claim delivers the same membership.
const PAIR_WAIT: Duration = Duration::seconds(5);

/// What became of one entry.
enum Delivered {
    Done,
    Withdrawn,
    Retry,
    Failed,
    /// Given back untried (see [`DeliveryReport::deferred`]).
    Deferred,
    /// Tried and retried later; the target is unavailable until then, so the system's other
    /// entries of this pass wait too.
    Unavailable(DateTime<Utc>),
}

/// A failed entry as an administrator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedWork {
    pub outbox_id: i64,
    pub kind: String,
    pub user: crate::domain::ids::UserId,
    pub role: crate::domain::ids::ResourceRoleId,
    pub attempts: i64,
    pub error: String,
}

impl Service {
    /// One pass over the due outbox entries. One bad entry never stops the pass: its failure
    /// is logged with its id, recorded on the entry, and the others go on.
    #[tracing::instrument(name = "deliver_pending", skip_all, fields(operator = %by, limit = limit))]
    pub async fn deliver_pending(&self, by: &Operator<'_>, limit: i64) -> DomainResult<DeliveryReport> {
        by.require(Permission::Administer)?;
        let now = self.now();
        // One token per pass: two passes of the same instance never mistake each other's claims.
        let token = format!("{}#{:08x}", self.worker, rand::random::<u32>());
        let lease_until = checked_after(now, LEASE, "lease")?;
        // Leases run from here: a pass gives back what it has not started by half of one.
        let started = std::time::Instant::now();
        let claimed = {
            let mut tx = self.db.begin().await?;
            let ids = assignments::claim_due(&mut tx, self.db.backend(), &token, now, lease_until, limit).await?;
            tx.commit().await?;
            ids
        };
        let mut report = DeliveryReport::default();
        let mut alone = Vec::new();
        for chunk in claimed.chunks(DELIVERY_BATCH) {
            for _ in chunk {
                // Once per entry taken up (tests count them, and park here).
                self.checkpoint("delivery.claimed").await;
            }
            let now = self.now();
            match self.deliver_batch(chunk, &token, now).await {
                Ok((outcomes, rest)) => {
                    outcomes.into_iter().for_each(|o| report.count(o));
                    alone.extend(rest);
                }
                Err(e) => {
                    // One bad entry never stops the pass: the batch is done again one at a
                    // time, and the one that fails is logged and recorded while the others go on.
                    tracing::warn!(first = chunk[0], error = ?e, "delivery batch failed; one at a time");
                    alone.extend_from_slice(chunk);
                }
            }
        }
        self.deliver_alone(alone, &token, started, &mut report).await;
        self.metrics.delivered(&report);
        Ok(report)
    }

    /// The entries delivered one at a time: external targets, side by side per system within
    /// its limit (removals first), and entries of a failed batch or unreadable ones, in turn.
    async fn deliver_alone(
        &self,
        ids: Vec<i64>,
        token: &str,
        started: std::time::Instant,
        report: &mut DeliveryReport,
    ) {
        use futures_util::StreamExt;
        if ids.is_empty() {
            return;
        }
        let items = match self.db.pool().acquire().await {
            Ok(mut conn) => assignments::outbox_items(&mut conn, &ids).await,
            Err(e) => Err(e),
        };
        let items = items.unwrap_or_else(|e| {
            // Safe (each entry is then read and delivered on its own, in turn), but slower.
            tracing::warn!(error = %e, "the pass's entries could not be read together; one at a time");
            Vec::new()
        });
        // A pass gives back what it has not started by half its lease (a slow target), so no
        // entry it holds lapses to another instance while it waits here.
        let budget = (LEASE / 2).to_std().unwrap_or(std::time::Duration::from_secs(60));
        // All systems together hold at most this many of the pool's connections.
        let pass_limit = tokio::sync::Semaphore::new(PASS_IN_FLIGHT);
        let (pass_limit, started) = (&pass_limit, &started);
        let mut systems: std::collections::BTreeMap<_, Vec<OutboxItem>> = Default::default();
        for item in items.into_iter().filter(|i| i.system_kind != ResourceSystemKind::Builtin) {
            systems.entry(item.system).or_default().push(item);
        }
        let external: std::collections::HashSet<i64> = systems.values().flatten().map(|i| i.id).collect();
        for id in ids.iter().copied().filter(|id| !external.contains(id)) {
            let now = self.now();
            let outcome = self.deliver_one(id, token, now).await;
            self.tally(report, id, token, outcome, now).await;
        }
        let runs = systems.into_iter().map(|(system, items)| async move {
            // The entries of one membership in turn, in queue order; memberships side by side,
            // those with a removal first.
            let mut pairs: std::collections::BTreeMap<_, Vec<OutboxItem>> = Default::default();
            for item in items {
                pairs.entry((item.user, item.role)).or_default().push(item);
            }
            let mut pairs: Vec<Vec<OutboxItem>> = pairs.into_values().collect();
            pairs.sort_by_key(|p| (p.iter().all(|i| i.kind == "add_member"), p[0].id));
            // At most the pass's share: the systems' calls queue in turns for it.
            let limit = self.in_flight(system).await.min(PASS_IN_FLIGHT);
            let pause = std::sync::Mutex::new(None::<DateTime<Utc>>);
            let pause = &pause;
            futures_util::stream::iter(pairs)
                .map(|pair| async move {
                    let mut outcomes = Vec::with_capacity(pair.len());
                    let _turn = pass_limit.acquire().await;
                    for item in pair {
                        let late = started.elapsed() > budget;
                        outcomes.push(self.deliver_unless_paused(item.id, token, pause, late).await);
                    }
                    outcomes
                })
                .buffer_unordered(limit)
                .collect::<Vec<_>>()
                .await
        });
        for (id, now, outcome) in futures_util::future::join_all(runs).await.into_iter().flatten().flatten() {
            self.tally(report, id, token, outcome, now).await;
        }
    }

    /// One external entry: given back untried while its system is unavailable (as an earlier
    /// call of this pass found), or when the pass is `late` (due again at once), else
    /// delivered; an unavailable answer pauses the system.
    async fn deliver_unless_paused(
        &self,
        id: i64,
        token: &str,
        pause: &std::sync::Mutex<Option<DateTime<Utc>>>,
        late: bool,
    ) -> (i64, DateTime<Utc>, DomainResult<Delivered>) {
        let now = self.now();
        let paused = pause.lock().map(|p| *p).unwrap_or(None).filter(|until| *until > now);
        let outcome = match paused {
            Some(until) => self.defer(id, token, until, now).await,
            None if late => self.defer(id, token, now, now).await,
            None => self.deliver_one(id, token, now).await,
        };
        if let Ok(Delivered::Unavailable(until)) = &outcome {
            if let Ok(mut p) = pause.lock() {
                *p = Some(p.map_or(*until, |p| p.max(*until)));
            }
        }
        (id, now, outcome)
    }

    /// One entry's outcome counted; a fault of our own is logged and recorded on the entry.
    async fn tally(
        &self,
        report: &mut DeliveryReport,
        id: i64,
        token: &str,
        outcome: DomainResult<Delivered>,
        now: DateTime<Utc>,
    ) {
        match outcome {
            Ok(outcome) => report.count(outcome),
            Err(e) => {
                tracing::error!(outbox = id, error = ?e, "delivery of this entry failed");
                report.errors += 1;
                if let Err(e2) = self.record_fault(id, token, &e, now).await {
                    tracing::error!(outbox = id, error = ?e2, "could not record the delivery fault");
                }
            }
        }
    }

    /// How many calls this instance makes to the system at once (its settings; one at a time
    /// when they cannot be read).
    async fn in_flight(&self, system: crate::domain::ids::ResourceSystemId) -> usize {
        let Ok(mut conn) = self.db.pool().acquire().await else { return 1 };
        match crate::store::catalog::connector(&mut conn, system).await {
            Ok(Some((kind, config, _))) => crate::connectors::in_flight(kind, &config),
            _ => 1,
        }
    }

    /// Give a claimed entry back untried, due at `until`.
    async fn defer(&self, id: i64, token: &str, until: DateTime<Utc>, now: DateTime<Utc>) -> DomainResult<Delivered> {
        let mut tx = self.db.begin().await?;
        if !assignments::release(&mut tx, id, token, until, now).await? {
            return Err(DomainError::Internal(format!("lost the lease on outbox entry {id}")));
        }
        tx.commit().await?;
        Ok(Delivered::Deferred)
    }

    /// The built-in entries of a batch recorded in one transaction (one commit and one turn at
    /// the writer for many: a sweep's removals, a burst of approvals), their people locked in
    /// id order in one statement, each entry checked and applied as [`Self::deliver_one`]
    /// does. Returns their outcomes, and the entries to deliver one at a time (external
    /// targets, which are called outside any transaction). On an error nothing of the batch
    /// is kept.
    async fn deliver_batch(
        &self,
        ids: &[i64],
        token: &str,
        now: DateTime<Utc>,
    ) -> DomainResult<(Vec<Delivered>, Vec<i64>)> {
        let mut tx = self.db.begin().await?;
        let done = self.deliver_batch_in(&mut tx, ids, token, now).await;
        self.end_batch(tx, done, "delivery batch").await
    }

    /// The batch's work inside its transaction: what [`Self::deliver_batch`] returns, and the
    /// audit events.
    async fn deliver_batch_in(
        &self,
        tx: &mut Tx,
        ids: &[i64],
        token: &str,
        now: DateTime<Utc>,
    ) -> DomainResult<((Vec<Delivered>, Vec<i64>), Vec<AuditEvent>)> {
        let mut events = Vec::new();
        let builtin: Vec<OutboxItem> = assignments::outbox_items(tx, ids)
            .await?
            .into_iter()
            .filter(|i| i.system_kind == ResourceSystemKind::Builtin)
            .collect();
        let mut people: Vec<_> = builtin.iter().map(|i| i.user).collect();
        people.sort();
        people.dedup();
        self.db.lock_users(tx, &people).await?;
        let mut outcomes = Vec::with_capacity(builtin.len());
        for item in &builtin {
            let outcome = match check_claimed(self, tx, item, token, now, &mut events).await? {
                Some(settled) => settled,
                None => {
                    let result = apply_builtin_isolated(tx, item, now).await?.map_err(CallError::Transient);
                    record(tx, item, token, result, now, &mut events).await?
                }
            };
            outcomes.push(outcome);
        }
        // The rest (external targets; entries missing or unreadable, which the one-at-a-time
        // path reports) go one at a time.
        let recorded: std::collections::HashSet<i64> = builtin.iter().map(|i| i.id).collect();
        let alone = ids.iter().copied().filter(|id| !recorded.contains(id)).collect();
        Ok(((outcomes, alone), events))
    }

    /// Deliver one claimed entry. First, under the person's lock: is the claim still ours, and
    /// is the work still wanted (the access still allowed; a removal still needed by the
    /// reference count)? The built-in target is then applied in the same transaction (inside a
    /// savepoint, so a failed statement is recorded like any failure); an external one is
    /// called after that transaction commits, with the lease renewed, and its answer recorded
    /// in a second one.
    async fn deliver_one(&self, id: i64, token: &str, now: DateTime<Utc>) -> DomainResult<Delivered> {
        let mut tx = self.db.begin().await?;
        let item =
            assignments::outbox_item(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("outbox entry"))?;
        self.db.lock_user(&mut tx, item.user).await?;
        let mut events = Vec::new();
        let outcome = match check_claimed(self, &mut tx, &item, token, now, &mut events).await? {
            Some(settled) => settled,
            None => {
                let result = match item.system_kind {
                    ResourceSystemKind::Builtin => {
                        apply_builtin_isolated(&mut tx, &item, now).await?.map_err(CallError::Transient)
                    }
                    other => {
                        if assignments::pair_in_flight(&mut tx, &item, token, now).await? {
                            // Another claim is delivering this membership: step back.
                            let at = checked_after(now, PAIR_WAIT, "retry")?;
                            if !assignments::release(&mut tx, id, token, at, now).await? {
                                return Err(DomainError::Internal(format!("lost the lease on outbox entry {id}")));
                            }
                            tx.commit().await?;
                            return Ok(Delivered::Deferred);
                        }
                        let until = checked_after(now, LEASE, "lease")?;
                        if !assignments::renew_lease(&mut tx, id, token, until).await? {
                            return Err(DomainError::Internal(format!("lost the lease on outbox entry {id}")));
                        }
                        tx.commit().await?;
                        // Checked and committed, not yet called (tests park here).
                        self.checkpoint("delivery.calling").await;
                        let result = self.call_connector(other, &item).await;
                        tx = self.db.begin().await?;
                        self.db.lock_user(&mut tx, item.user).await?;
                        result
                    }
                };
                record(&mut tx, &item, token, result, now, &mut events).await?
            }
        };
        self.commit(tx, events).await?;
        Ok(outcome)
    }

    /// An entry whose delivery hit a fault of our own (the database, a row that cannot be read)
    /// is not left claimed and pending forever: the fault is recorded on it, it is retried
    /// with backoff, and after the last attempt it is `failed`, where administrators see it.
    async fn record_fault(&self, id: i64, token: &str, fault: &DomainError, now: DateTime<Utc>) -> DomainResult<()> {
        let mut tx = self.db.begin().await?;
        let Some(attempts) = assignments::attempts_of(&mut tx, id).await? else { return Ok(()) };
        let error = format!("internal fault: {fault:?}");
        let recorded = if attempts >= MAX_ATTEMPTS {
            assignments::finish(&mut tx, id, token, "failed", &error, now).await?
        } else {
            let retry_at = checked_after(now, backoff(attempts), "retry")?;
            assignments::retry_later(&mut tx, id, token, (&error, true), retry_at, now).await?
        };
        if !recorded {
            return Ok(()); // another worker holds it now
        }
        let event = AuditEvent::new(None, "delivery.fault", "outbox", id)
            .after(json!({"attempts": attempts, "failed": attempts >= MAX_ATTEMPTS}))
            .reason(&error);
        self.commit(tx, vec![event]).await
    }

    /// Talk to an external target: ensure the person is (or is not) a member of the SCIM or
    /// LDAP group, or tell the webhook receiver that access was given or taken back.
    async fn call_connector(&self, kind: ResourceSystemKind, item: &OutboxItem) -> Result<(), CallError> {
        let db = |e: sqlx::Error| CallError::Transient(format!("database: {e}"));
        let mut conn = self.db.pool().acquire().await.map_err(db)?;
        let target = crate::store::catalog::target_of(&mut conn, item.role)
            .await
            .map_err(db)?
            .ok_or(CallError::Transient("the resource role is gone".to_owned()))?;
        let person = crate::store::directory::user(&mut conn, item.user)
            .await
            .map_err(db)?
            .ok_or(CallError::Transient("the person is gone".to_owned()))?;
        let known = crate::store::catalog::connector_account(&mut conn, target.system, item.user).await.map_err(db)?;
        drop(conn);
        use crate::connectors::{ldap, scim, webhook, Opened};
        let opened = match kind {
            ResourceSystemKind::Builtin => {
                return Err(CallError::Transient("no connector for builtin systems is configured".into()))
            }
            kind => Opened::open(kind, &target.config, &target.secret, self.secret_key.as_deref())?,
        };
        let adding = item.kind == "add_member";
        match opened {
            Opened::Scim(config, token) => {
                let scim = scim::Scim { config: &config, token: &token, now: self.now() };
                if adding {
                    let id = scim.ensure_member(&target.external_id, &person.email, &person.display_name).await?;
                    self.keep_account(item, target.system, known.as_deref(), &id).await;
                    Ok(())
                } else {
                    scim.ensure_not_member(&target.external_id, known.as_deref(), &person.email).await
                }
            }
            Opened::Ldap(config, password) => {
                let directory = ldap::Directory { config: &config, password: &password };
                if adding {
                    let dn = directory.ensure_member(&target.external_id, &person.email).await?;
                    self.keep_account(item, target.system, known.as_deref(), &dn).await;
                    Ok(())
                } else {
                    directory.ensure_not_member(&target.external_id, known.as_deref(), &person.email).await
                }
            }
            Opened::Webhook(config, secret) => {
                // One key per change, the same on every retry of it.
                let id = format!("qm-outbox-{}", item.id);
                let event = json!({
                    "type": if adding { "access.granted" } else { "access.revoked" },
                    "id": id,
                    "person": {"id": item.user, "email": person.email, "display_name": person.display_name},
                    "resource": {"external_id": target.external_id, "resource_role_id": item.role},
                    "grant_id": item.grant,
                });
                webhook::Webhook { config: &config, secret: &secret, now: self.now() }.send(&id, &event).await
            }
        }
    }

    /// The target's id for the person, kept for removal (an email may change). The work is
    /// done either way, and a removal without it finds the person by email.
    async fn keep_account(&self, item: &OutboxItem, system: ResourceSystemId, known: Option<&str>, id: &str) {
        if known == Some(id) {
            return;
        }
        let kept = async {
            let mut tx = self.db.begin().await?;
            crate::store::catalog::keep_connector_account(&mut tx, system, item.user, id).await?;
            tx.commit().await
        };
        if let Err(e) = kept.await {
            tracing::warn!(outbox = item.id, error = %e, "the target's id for the person was not kept");
        }
    }

    /// Failed provisioning work, newest first, that this person may see and retry:
    /// everything for administrators, the work their catalogs' packages made for catalog owners.
    #[tracing::instrument(name = "failed_deliveries", skip_all, fields(actor = actor.id().0))]
    pub async fn failed_deliveries(&self, actor: &Actor) -> DomainResult<Vec<FailedWork>> {
        let mut conn = self.db.pool().acquire().await?;
        let owned: Vec<CatalogId> = actor
            .roles
            .iter()
            .filter(|g| g.role == crate::domain::model::Role::CatalogOwner)
            .filter_map(|g| g.catalog)
            .collect();
        let scope = if actor.can(Permission::Administer) { None } else { Some(owned.as_slice()) };
        if scope.is_some_and(|c| c.is_empty()) {
            return Ok(Vec::new());
        }
        let items = assignments::failed_outbox(&mut conn, scope, 200).await?;
        Ok(items
            .into_iter()
            .map(|item| FailedWork {
                outbox_id: item.id,
                kind: item.kind,
                user: item.user,
                role: item.role,
                attempts: item.attempts,
                error: item.last_error,
            })
            .collect())
    }

    /// Put failed work back in the queue (an administrator, or the owner of the catalog whose
    /// package made it). Audited; the grant goes back to waiting. An addition whose access
    /// has ended meanwhile is not retried.
    #[tracing::instrument(name = "retry_delivery", skip_all, fields(actor = actor.id().0, outbox = outbox_id))]
    pub async fn retry_delivery(&self, actor: &Actor, outbox_id: i64) -> DomainResult<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let item = assignments::outbox_item(&mut tx, outbox_id)
            .await?
            .ok_or_else(|| DomainError::not_found("provisioning work"))?;
        if !may_repair(self, &mut tx, actor, item.id).await? {
            return Err(DomainError::not_found("provisioning work"));
        }
        self.db.lock_user(&mut tx, item.user).await?;
        if item.kind == "add_member" {
            if let Some(grant) = item.grant {
                let live = assignments::assignment_of_grant(&mut tx, grant).await?.is_some_and(|a| a.state.is_live());
                if !live {
                    return Err(DomainError::AlreadyDecided("this access has ended; there is nothing to add".into()));
                }
            }
        }
        if !assignments::requeue_failed(&mut tx, outbox_id, now).await? {
            return Err(DomainError::AlreadyDecided("this work is not failed (it was retried already)".into()));
        }
        if let Some(grant) = item.grant {
            let back = if item.kind == "add_member" { GrantState::Pending } else { GrantState::Removing };
            assignments::set_grant_state_if(&mut tx, grant, (GrantState::Failed, back), "", now).await?;
        }
        let event = AuditEvent::new(Some(actor.id()), "delivery.retried", "outbox", outbox_id)
            .before(json!({"state": "failed", "error": item.last_error, "attempts": item.attempts}))
            .after(json!({"state": "pending"}));
        self.commit(tx, vec![event]).await
    }
}

/// Under the person's lock, before any work: fails when the claim is no longer ours, and
/// settles the entry when the work is no longer wanted (an addition whose access is no longer
/// allowed or has ended; a removal of a role another live assignment holds again). `None`:
/// go on and deliver it.
async fn check_claimed(
    service: &Service,
    tx: &mut Tx,
    item: &OutboxItem,
    token: &str,
    now: DateTime<Utc>,
    events: &mut Vec<AuditEvent>,
) -> DomainResult<Option<Delivered>> {
    if !assignments::still_claimed(tx, item.id, token).await? {
        return Err(DomainError::Internal(format!("lost the lease on outbox entry {}", item.id)));
    }
    if item.kind == "add_member" {
        if let Some(why) = withdraw_if_stale(service, tx, item, now, events).await? {
            finish(tx, item, token, "done", &why, now).await?;
            return Ok(Some(Delivered::Withdrawn));
        }
    } else if assignments::other_live_holders(tx, item.user, item.role, None).await? > 0 {
        // Another live assignment holds the role again: the membership stays.
        let why = "still held through another assignment";
        finish(tx, item, token, "done", why, now).await?;
        if let Some(grant) = item.grant {
            // (A grant taken up again meanwhile is `pending`, and stays so.)
            if assignments::set_grant_state_if(tx, grant, (GrantState::Removing, GrantState::Removed), why, now).await?
            {
                events.push(AuditEvent::new(None, "grant.kept", "grant", grant.0).reason(why));
            }
        }
        return Ok(Some(Delivered::Done));
    }
    Ok(None)
}

/// The built-in target applied inside a savepoint: a failed statement is rolled back alone
/// and comes back as the target's answer, recorded like any failure.
async fn apply_builtin_isolated(
    tx: &mut Tx,
    item: &OutboxItem,
    now: DateTime<Utc>,
) -> DomainResult<Result<(), String>> {
    let mut savepoint = crate::store::savepoint(tx).await?;
    match apply_builtin(&mut savepoint, item, now).await {
        Ok(()) => {
            savepoint.commit().await?;
            Ok(Ok(()))
        }
        Err(e) => {
            savepoint.rollback().await?;
            Ok(Err(e))
        }
    }
}

/// The target's answer recorded on the claimed entry: done (and the grant settled), failed
/// after the last attempt (and given up), or due again after a backoff.
async fn record(
    tx: &mut Tx,
    item: &OutboxItem,
    token: &str,
    result: Result<(), CallError>,
    now: DateTime<Utc>,
    events: &mut Vec<AuditEvent>,
) -> DomainResult<Delivered> {
    if item.system_kind != ResourceSystemKind::Builtin {
        // What the connectors page shows: the system's last success, or its last error.
        let error = result.as_ref().err().map_or("", CallError::message);
        crate::store::catalog::record_health(tx, item.system, error, now.timestamp_millis()).await?;
    }
    let error = match result {
        Ok(()) => {
            finish(tx, item, token, "done", "", now).await?;
            settle(tx, item, now, events).await?;
            return Ok(Delivered::Done);
        }
        Err(error) => error,
    };
    let lost = || DomainError::Internal(format!("lost the lease on outbox entry {}", item.id));
    if let CallError::Unavailable { message, after } = &error {
        // The system failed, not this work: the attempt is given back (an outage, however
        // long, fails nothing), and no instance calls the system before the target's own
        // word (at least a second) or a short backoff (at most a minute).
        let wait = match after {
            Some(after) => Duration::from_std(*after).unwrap_or(LEASE).max(Duration::seconds(1)),
            None => backoff(item.attempts).min(SYSTEM_PAUSE),
        };
        let until = checked_after(now, wait, "retry")?;
        if !assignments::retry_later(tx, item.id, token, (message, false), until, now).await? {
            return Err(lost());
        }
        assignments::pause_system(tx, item.system, until).await?;
        return Ok(Delivered::Unavailable(until));
    }
    if matches!(error, CallError::Permanent(_)) || item.attempts >= MAX_ATTEMPTS {
        finish(tx, item, token, "failed", error.message(), now).await?;
        give_up(tx, item, error.message(), now, events).await?;
        return Ok(Delivered::Failed);
    }
    let retry_at = checked_after(now, backoff(item.attempts), "retry")?;
    if !assignments::retry_later(tx, item.id, token, (error.message(), true), retry_at, now).await? {
        return Err(lost());
    }
    Ok(Delivered::Retry)
}

/// Settle the claimed entry, or fail: the claim was lost meanwhile.
async fn finish(
    tx: &mut Tx,
    item: &OutboxItem,
    token: &str,
    state: &str,
    why: &str,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    if assignments::finish(tx, item.id, token, state, why, now).await? {
        Ok(())
    } else {
        Err(DomainError::Internal(format!("lost the lease on outbox entry {}", item.id)))
    }
}

/// Administrators repair everything; a catalog's owners repair the work its packages made.
async fn may_repair(service: &Service, conn: &mut Conn, actor: &Actor, outbox_id: i64) -> DomainResult<bool> {
    if actor.can(Permission::Administer) {
        return Ok(true);
    }
    Ok(assignments::catalog_of_outbox(conn, outbox_id).await?.is_some_and(|c| service.catalog_owner(actor, c).is_ok()))
}

/// Before granting: is the assignment still live and not past its end, and may the person
/// still have the package? If not, the grant is not delivered; a live assignment is ended (its
/// request marked `delivery_failed` with the reason). Returns why it was withdrawn.
async fn withdraw_if_stale(
    service: &Service,
    conn: &mut Conn,
    item: &OutboxItem,
    now: DateTime<Utc>,
    events: &mut Vec<AuditEvent>,
) -> DomainResult<Option<String>> {
    let Some(grant) = item.grant else { return Ok(None) };
    let Some(assignment) = assignments::assignment_of_grant(conn, grant).await? else { return Ok(None) };
    if !assignment.state.is_live() {
        return Ok(Some(format!("the assignment had already {}", assignment.state.as_str())));
    }
    if assignment.end_at.is_some_and(|end| end <= now) {
        // The expiry job ends it (and records that); nothing is added in the meantime.
        return Ok(Some("the access period had ended".to_owned()));
    }
    if assignments::grant_state(conn, grant)
        .await?
        .is_some_and(|s| matches!(s, GrantState::Removing | GrantState::Removed))
    {
        return Ok(Some("the role was taken out of the package".to_owned()));
    }
    let Some(why) = super::requests::access_blocker(conn, assignment.package, assignment.user).await? else {
        return Ok(None);
    };
    // Access that has arrived already (a role added to a package they hold): a rule met since
    // (the package disabled, a separation-of-duties rule added) does not take it away; it
    // decides new access only.
    if assignment.delivered_at.is_some() {
        return Ok(None);
    }
    events.push(
        AuditEvent::new(None, "assignment.withdrawn", "assignment", assignment.id.0)
            .before(json!({"state": assignment.state.as_str()}))
            .after(json!({"state": "removed"}))
            .reason(&why),
    );
    super::assignments::end_assignment(service, conn, &assignment, AssignmentState::Removed, now, events).await?;
    if let Some(request) = assignment.request {
        requests::fail_delivery(conn, request, &why, now).await?;
    }
    Ok(Some(why))
}

/// Built-in groups: membership rows in our own database. Adding twice or removing what is
/// not there is a no-op, so a retried entry does no harm. (The reference count was checked
/// under the person's lock just before.)
async fn apply_builtin(conn: &mut Conn, item: &OutboxItem, now: DateTime<Utc>) -> Result<(), String> {
    let result = match item.kind.as_str() {
        "add_member" => assignments::builtin_add(conn, item.role, item.user, now).await,
        "remove_member" => assignments::builtin_remove(conn, item.role, item.user).await,
        other => return Err(format!("unknown outbox entry kind {other}")),
    };
    result.map_err(|e| format!("built-in directory: {e}"))
}

/// After a delivery: the grant's state, its event, and the assignment's and request's state
/// rolled up from all its grants (also after a repaired failure).
async fn settle(
    conn: &mut Conn,
    item: &OutboxItem,
    now: DateTime<Utc>,
    events: &mut Vec<AuditEvent>,
) -> DomainResult<()> {
    let Some(grant) = item.grant else { return Ok(()) };
    let added = item.kind == "add_member";
    // Only from the state the work was queued in: a grant given up or taken up again while an
    // external target was being called keeps its new state (its own work follows).
    let (from, to) =
        if added { (GrantState::Pending, GrantState::Delivered) } else { (GrantState::Removing, GrantState::Removed) };
    if !assignments::set_grant_state_if(conn, grant, (from, to), "", now).await? {
        // Moot: the grant's newer work (a removal, an addition) follows and is recorded then.
        return Ok(());
    }
    let Some(assignment) = assignments::assignment_of_grant(conn, grant).await? else { return Ok(()) };
    events.push(
        AuditEvent::new(None, if added { "grant.delivered" } else { "grant.removed" }, "grant", grant.0).after(json!({
            "assignment": assignment.id, "user": item.user, "resource_role": item.role,
            "system": item.system_kind.as_str(),
        })),
    );
    if added {
        roll_up(conn, &assignment, "", now, events).await?;
    }
    Ok(())
}

/// The last attempt failed: the grant is `failed`, and for an addition the assignment and its
/// request roll up with the reason. A failed removal leaves the grant `failed` on the ended
/// assignment, where the failed-work list shows it like any other.
async fn give_up(
    tx: &mut Tx,
    item: &OutboxItem,
    error: &str,
    now: DateTime<Utc>,
    events: &mut Vec<AuditEvent>,
) -> DomainResult<()> {
    let Some(grant) = item.grant else { return Ok(()) };
    let from = if item.kind == "add_member" { GrantState::Pending } else { GrantState::Removing };
    if !assignments::set_grant_state_if(tx, grant, (from, GrantState::Failed), error, now).await? {
        // Given up or taken up again meanwhile: this work is moot, its successor decides.
        return Ok(());
    }
    let what = if item.kind == "add_member" { "adding" } else { "removing" };
    events.push(
        AuditEvent::new(None, "grant.delivery_failed", "grant", grant.0)
            .after(json!({"kind": item.kind, "user": item.user, "resource_role": item.role, "attempts": item.attempts}))
            .reason(format!(
                "{what} failed after {} attempt{}: {error}",
                item.attempts,
                if item.attempts == 1 { "" } else { "s" }
            )),
    );
    if item.kind != "add_member" {
        return Ok(());
    }
    if let Some(assignment) = assignments::assignment_of_grant(tx, grant).await? {
        roll_up(tx, &assignment, &format!("could not be delivered: {error}"), now, events).await?;
    }
    Ok(())
}

/// The assignment's (and its request's) delivery state, from all its grants: every grant
/// delivered → `delivered`; some failed → `partially_delivered` when others were delivered,
/// else `delivery_failed`; otherwise still `delivering`. Only a change is written and audited.
pub(super) async fn roll_up(
    conn: &mut Conn,
    assignment: &assignments::AssignmentRow,
    reason: &str,
    now: DateTime<Utc>,
    events: &mut Vec<AuditEvent>,
) -> DomainResult<()> {
    if !assignment.state.is_live() {
        return Ok(());
    }
    // Every role the package grants now: one taken out no longer counts, one added and not
    // reached by the sync yet (no grant) or being taken up again is still to deliver.
    let grants = assignments::role_states(conn, assignment.id).await?;
    let delivered = grants.iter().filter(|g| **g == Some(GrantState::Delivered)).count();
    let failed = grants.contains(&Some(GrantState::Failed));
    let (a_state, r_state) = if delivered == grants.len() {
        (AssignmentState::Delivered, RequestState::Delivered)
    } else if failed && delivered > 0 {
        (AssignmentState::PartiallyDelivered, RequestState::PartiallyDelivered)
    } else if failed {
        (AssignmentState::DeliveryFailed, RequestState::DeliveryFailed)
    } else {
        (AssignmentState::Delivering, RequestState::Delivering)
    };
    if a_state == assignment.state {
        return Ok(());
    }
    assignments::set_state(conn, assignment.id, a_state, now).await?;
    if let Some(request) = assignment.request {
        requests::roll_up_delivery(conn, request, r_state, reason, now).await?;
    }
    let action =
        if a_state == AssignmentState::Delivered { "assignment.delivered" } else { "assignment.delivery_state" };
    // Its access arrives whole for the first time (or after a failure), rather than again
    // after a role was added to its package: what a lifecycle event reports.
    let first = assignment.delivered_at.is_none()
        || matches!(assignment.state, AssignmentState::PartiallyDelivered | AssignmentState::DeliveryFailed);
    events.push(
        AuditEvent::new(None, action, "assignment", assignment.id.0)
            .before(json!({"state": assignment.state.as_str()}))
            .after(json!({"state": a_state.as_str(), "grants": grants.len(), "delivered": delivered, "first": first}))
            .reason(reason),
    );
    Ok(())
}
