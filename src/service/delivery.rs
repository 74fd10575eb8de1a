//! The delivery worker: takes provisioning work from the outbox and applies it to the target
//! system, idempotently, with retries and backoff. The built-in resource system (groups held
//! by Quartermaster itself) is delivered here; external connectors plug in by system kind.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::Service;
use crate::domain::audit::AuditEvent;
use crate::domain::model::ResourceSystemKind;
use crate::domain::request::{AssignmentState, GrantState, RequestState};
use crate::domain::DomainResult;
use crate::store::assignments::{self, OutboxItem};
use crate::store::{requests, Conn};

/// How many outbox entries one pass handled, and how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: usize,
    pub retried: usize,
    pub failed: usize,
    /// Not delivered because the access was no longer allowed (or had ended) by then.
    pub withdrawn: usize,
}

/// Attempts before an entry is given up and its grant marked failed for repair.
pub const MAX_ATTEMPTS: i64 = 8;

fn backoff(attempts: i64) -> Duration {
    Duration::seconds(5 * 2_i64.pow(attempts.clamp(0, 10) as u32))
}

impl Service {
    /// One pass over the due outbox entries.
    pub async fn deliver_pending(&self, limit: i64) -> DomainResult<DeliveryReport> {
        let now = self.now();
        let due = {
            let mut conn = self.db.pool().acquire().await?;
            assignments::due_outbox(&mut conn, now, limit).await?
        };
        let mut report = DeliveryReport::default();
        for item in due {
            let mut tx = self.db.begin().await?;
            // Claim it: another worker (or instance) that got there first wins.
            if !assignments::claim(&mut tx, item.id, item.attempts, now, now + backoff(item.attempts)).await? {
                continue;
            }
            let mut events = Vec::new();
            // Checked anew at delivery: a stale approval cannot slip through.
            if item.kind == "add_member" {
                if let Some(why) = withdraw_if_stale(&mut tx, &item, now, &mut events).await? {
                    assignments::finish(&mut tx, item.id, "done", &why, now).await?;
                    self.commit(tx, events).await?;
                    report.withdrawn += 1;
                    continue;
                }
            }
            let result = match item.system_kind {
                ResourceSystemKind::Builtin => apply_builtin(&mut tx, &item, now).await,
                other => Err(format!("no connector for {} systems is configured", other.as_str())),
            };
            match result {
                Ok(()) => {
                    assignments::finish(&mut tx, item.id, "done", "", now).await?;
                    settle(&mut tx, &item, now, &mut events).await?;
                    report.delivered += 1;
                }
                Err(error) if item.attempts + 1 >= MAX_ATTEMPTS => {
                    assignments::finish(&mut tx, item.id, "failed", &error, now).await?;
                    if let Some(grant) = item.grant {
                        assignments::set_grant_state(&mut tx, grant, GrantState::Failed, &error, now).await?;
                    }
                    events.push(
                        AuditEvent::new(None, "grant.delivery_failed", "grant", item.grant.map_or(0, |g| g.0))
                            .reason(&error),
                    );
                    report.failed += 1;
                }
                Err(error) => {
                    assignments::outbox_error(&mut tx, item.id, &error).await?;
                    report.retried += 1;
                }
            }
            self.commit(tx, events).await?;
        }
        Ok(report)
    }
}

/// Before granting: is the assignment still live, and may the person still have the package?
/// If not, the grant is not delivered; a live assignment is ended (its request marked
/// `delivery_failed` with the reason). Returns why it was withdrawn.
async fn withdraw_if_stale(
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
    super::requests::end_assignment(conn, &assignment, AssignmentState::Removed, now, events).await?;
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
            // Reference count at delivery time: a newer assignment may hold the role again.
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
/// of the assignment is settled.
async fn settle(
    conn: &mut Conn,
    item: &OutboxItem,
    now: DateTime<Utc>,
    events: &mut Vec<AuditEvent>,
) -> DomainResult<()> {
    let Some(grant) = item.grant else { return Ok(()) };
    let new_state = if item.kind == "add_member" { GrantState::Delivered } else { GrantState::Removed };
    assignments::set_grant_state(conn, grant, new_state, "", now).await?;
    if item.kind != "add_member" {
        return Ok(());
    }
    let Some(assignment) = assignments::assignment_of_grant(conn, grant).await? else { return Ok(()) };
    let grants = assignments::grants_of(conn, assignment.id).await?;
    if assignment.state == AssignmentState::Delivering && grants.iter().all(|g| g.state == GrantState::Delivered) {
        assignments::set_state(conn, assignment.id, AssignmentState::Delivered, now).await?;
        if let Some(request) = assignment.request {
            requests::set_state_if(conn, request, &[RequestState::Delivering], RequestState::Delivered, now).await?;
        }
        events.push(
            AuditEvent::new(None, "assignment.delivered", "assignment", assignment.id.0)
                .after(json!({"state": "delivered", "grants": grants.len()})),
        );
    }
    Ok(())
}
