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
//! transaction (atomically with the reference-count check); external connectors (issue 12)
//! are called between the two transactions.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::Service;
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Actor, Operator, Permission};
use crate::domain::model::ResourceSystemKind;
use crate::domain::request::{AssignmentState, GrantState, RequestState};
use crate::domain::{DomainError, DomainResult};
use crate::store::assignments::{self, OutboxItem};
use crate::store::{catalog, requests, Conn, Tx};

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
}

/// Attempts before an entry is given up and its grant marked failed for repair.
pub const MAX_ATTEMPTS: i64 = 8;

/// How long a claim holds. Every call to a target must time out well within it.
pub const LEASE: Duration = Duration::minutes(5);

fn backoff(attempts: i64) -> Duration {
    Duration::seconds(5 * 2_i64.pow(attempts.clamp(0, 10) as u32))
}

/// What became of one entry.
enum Delivered {
    Done,
    Withdrawn,
    Retry,
    Failed,
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
    /// is logged with its id and the others go on.
    pub async fn deliver_pending(&self, by: &Operator<'_>, limit: i64) -> DomainResult<DeliveryReport> {
        by.require(Permission::Administer)?;
        let now = self.now();
        let lease_until = now + LEASE;
        let claimed = {
            let mut tx = self.db.begin().await?;
            let items =
                assignments::claim_due(&mut tx, self.db.backend(), &self.worker, now, lease_until, limit).await?;
            tx.commit().await?;
            items
        };
        let mut report = DeliveryReport::default();
        for item in claimed {
            match self.deliver_one(&item, now).await {
                Ok(Delivered::Done) => report.delivered += 1,
                Ok(Delivered::Withdrawn) => report.withdrawn += 1,
                Ok(Delivered::Retry) => report.retried += 1,
                Ok(Delivered::Failed) => report.failed += 1,
                Err(e) => {
                    tracing::error!(outbox = item.id, kind = %item.kind, error = ?e, "delivery of this entry failed");
                    report.errors += 1;
                }
            }
        }
        Ok(report)
    }

    async fn deliver_one(&self, item: &OutboxItem, now: DateTime<Utc>) -> DomainResult<Delivered> {
        self.checkpoint("delivery.claimed").await;
        // External targets are called outside any transaction; the built-in one is applied in
        // the recording transaction below.
        let external = match item.system_kind {
            ResourceSystemKind::Builtin => None,
            other => Some(self.call_connector(other, item).await),
        };
        let mut tx = self.db.begin().await?;
        self.db.lock_user(&mut tx, item.user).await?;
        if !assignments::still_claimed(&mut tx, item.id, &self.worker).await? {
            return Err(DomainError::Internal(format!("lost the lease on outbox entry {}", item.id)));
        }
        let mut events = Vec::new();
        // Checked anew at delivery: a stale approval cannot slip through.
        if item.kind == "add_member" {
            if let Some(why) = withdraw_if_stale(self, &mut tx, item, now, &mut events).await? {
                assignments::finish(&mut tx, item.id, "done", &why, now).await?;
                self.commit(tx, events).await?;
                return Ok(Delivered::Withdrawn);
            }
        }
        let result = match external {
            Some(result) => result,
            None => apply_builtin(&mut tx, item, now).await,
        };
        let outcome = match result {
            Ok(()) => {
                assignments::finish(&mut tx, item.id, "done", "", now).await?;
                settle(&mut tx, item, now, &mut events).await?;
                Delivered::Done
            }
            Err(error) if item.attempts >= MAX_ATTEMPTS => {
                assignments::finish(&mut tx, item.id, "failed", &error, now).await?;
                give_up(&mut tx, item, &error, now, &mut events).await?;
                Delivered::Failed
            }
            Err(error) => {
                assignments::retry_later(&mut tx, item.id, &error, now + backoff(item.attempts), now).await?;
                Delivered::Retry
            }
        };
        self.commit(tx, events).await?;
        Ok(outcome)
    }

    /// Talk to an external target. Connectors arrive with issue 12; until then this work
    /// retries and then fails visibly, like any unreachable target.
    async fn call_connector(&self, kind: ResourceSystemKind, _item: &OutboxItem) -> Result<(), String> {
        Err(format!("no connector for {} systems is configured", kind.as_str()))
    }

    /// Failed provisioning work, newest first, that this person may see and retry:
    /// everything for administrators, their catalogs' work for catalog owners.
    pub async fn failed_deliveries(&self, actor: &Actor) -> DomainResult<Vec<FailedWork>> {
        let mut conn = self.db.pool().acquire().await?;
        let mut out = Vec::new();
        for item in assignments::failed_outbox(&mut conn, 200).await? {
            if may_repair(&mut conn, actor, &item).await? {
                out.push(FailedWork {
                    outbox_id: item.id,
                    kind: item.kind,
                    user: item.user,
                    role: item.role,
                    attempts: item.attempts,
                    error: item.last_error,
                });
            }
        }
        Ok(out)
    }

    /// Put failed work back in the queue (an administrator, or the owner of a catalog whose
    /// package holds the resource role). Audited; the grant goes back to waiting.
    pub async fn retry_delivery(&self, actor: &Actor, outbox_id: i64) -> DomainResult<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let item = assignments::outbox_item(&mut tx, outbox_id)
            .await?
            .ok_or_else(|| DomainError::not_found("provisioning work"))?;
        if !may_repair(&mut tx, actor, &item).await? {
            return Err(DomainError::not_found("provisioning work"));
        }
        self.db.lock_user(&mut tx, item.user).await?;
        if !assignments::requeue_failed(&mut tx, outbox_id, now).await? {
            return Err(DomainError::AlreadyDecided("this work is not failed (it was retried already)".into()));
        }
        if let Some(grant) = item.grant {
            let back = if item.kind == "add_member" { GrantState::Pending } else { GrantState::Removing };
            assignments::set_grant_state(&mut tx, grant, back, "", now).await?;
        }
        let event = AuditEvent::new(Some(actor.id()), "delivery.retried", "outbox", outbox_id)
            .before(json!({"state": "failed", "error": item.last_error, "attempts": item.attempts}))
            .after(json!({"state": "pending"}));
        self.commit(tx, vec![event]).await
    }
}

/// Administrators repair everything; a catalog's owners repair work for resource roles that a
/// package of their catalog grants.
async fn may_repair(conn: &mut Conn, actor: &Actor, item: &OutboxItem) -> DomainResult<bool> {
    if actor.can(Permission::Administer) {
        return Ok(true);
    }
    let catalogs = catalog::catalogs_granting_role(conn, item.role).await?;
    Ok(catalogs.into_iter().any(|c| actor.can(Permission::ManageCatalog(c))))
}

/// Before granting: is the assignment still live, and may the person still have the package?
/// If not, the grant is not delivered; a live assignment is ended (its request marked
/// `delivery_failed` with the reason). Returns why it was withdrawn.
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
    let Some(why) = super::requests::access_blocker(conn, assignment.package, assignment.user).await? else {
        return Ok(None);
    };
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
/// not there is a no-op, so a retried entry does no harm.
async fn apply_builtin(conn: &mut Conn, item: &OutboxItem, now: DateTime<Utc>) -> Result<(), String> {
    let result = match item.kind.as_str() {
        "add_member" => assignments::builtin_add(conn, item.role, item.user, now).await,
        "remove_member" => {
            // Reference count at delivery time, under the person's lock: a newer assignment
            // may hold the role again.
            match assignments::other_live_holders(conn, item.user, item.role, None).await {
                Ok(0) => assignments::builtin_remove(conn, item.role, item.user).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            }
        }
        other => return Err(format!("unknown outbox entry kind {other}")),
    };
    result.map_err(|e| format!("built-in directory: {e}"))
}

/// After a delivery: the grant's state, and the assignment's and request's when every grant
/// of the assignment is delivered (also after a repaired failure).
async fn settle(
    conn: &mut Conn,
    item: &OutboxItem,
    now: DateTime<Utc>,
    events: &mut Vec<AuditEvent>,
) -> DomainResult<()> {
    let Some(grant) = item.grant else { return Ok(()) };
    let added = item.kind == "add_member";
    let new_state = if added { GrantState::Delivered } else { GrantState::Removed };
    assignments::set_grant_state(conn, grant, new_state, "", now).await?;
    let Some(assignment) = assignments::assignment_of_grant(conn, grant).await? else { return Ok(()) };
    events.push(
        AuditEvent::new(None, if added { "grant.delivered" } else { "grant.removed" }, "grant", grant.0).after(json!({
            "assignment": assignment.id, "user": item.user, "resource_role": item.role,
            "system": item.system_kind.as_str(),
        })),
    );
    if !added {
        return Ok(());
    }
    let grants = assignments::grants_of(conn, assignment.id).await?;
    let unsettled = matches!(
        assignment.state,
        AssignmentState::Delivering | AssignmentState::PartiallyDelivered | AssignmentState::DeliveryFailed
    );
    if unsettled && grants.iter().all(|g| g.state == GrantState::Delivered) {
        assignments::set_state(conn, assignment.id, AssignmentState::Delivered, now).await?;
        if let Some(request) = assignment.request {
            requests::set_state_if(
                conn,
                request,
                &[RequestState::Delivering, RequestState::PartiallyDelivered, RequestState::DeliveryFailed],
                RequestState::Delivered,
                now,
            )
            .await?;
        }
        events.push(
            AuditEvent::new(None, "assignment.delivered", "assignment", assignment.id.0)
                .after(json!({"state": "delivered", "grants": grants.len()})),
        );
    }
    Ok(())
}

/// The last attempt failed: the grant is `failed`, and for an addition the assignment and its
/// request roll up to `partially_delivered` (some grants delivered) or `delivery_failed`, with
/// the reason. A failed removal leaves the grant `failed` on the ended assignment, where the
/// failed-work list shows it like any other.
async fn give_up(
    tx: &mut Tx,
    item: &OutboxItem,
    error: &str,
    now: DateTime<Utc>,
    events: &mut Vec<AuditEvent>,
) -> DomainResult<()> {
    let Some(grant) = item.grant else { return Ok(()) };
    assignments::set_grant_state(tx, grant, GrantState::Failed, error, now).await?;
    let what = if item.kind == "add_member" { "adding" } else { "removing" };
    events.push(
        AuditEvent::new(None, "grant.delivery_failed", "grant", grant.0)
            .after(json!({"kind": item.kind, "user": item.user, "resource_role": item.role, "attempts": item.attempts}))
            .reason(format!("{what} failed after {} attempts: {error}", item.attempts)),
    );
    if item.kind != "add_member" {
        return Ok(());
    }
    let Some(assignment) = assignments::assignment_of_grant(tx, grant).await? else { return Ok(()) };
    if !assignment.state.is_live() {
        return Ok(());
    }
    let grants = assignments::grants_of(tx, assignment.id).await?;
    let some_delivered = grants.iter().any(|g| g.state == GrantState::Delivered);
    let (a_state, r_state) = if some_delivered {
        (AssignmentState::PartiallyDelivered, RequestState::PartiallyDelivered)
    } else {
        (AssignmentState::DeliveryFailed, RequestState::DeliveryFailed)
    };
    assignments::set_state(tx, assignment.id, a_state, now).await?;
    if let Some(request) = assignment.request {
        let reason = format!("could not be delivered: {error}");
        requests::roll_up_delivery(tx, request, r_state, &reason, now).await?;
    }
    events.push(
        AuditEvent::new(None, "assignment.delivery_failed", "assignment", assignment.id.0)
            .before(json!({"state": assignment.state.as_str()}))
            .after(json!({"state": a_state.as_str()}))
            .reason(error),
    );
    Ok(())
}
