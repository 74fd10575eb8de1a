//! Leavers lose access: when a person is disabled (by an administrator, from the identity
//! provider's data, or by SCIM), their sessions are deleted, their open requests are canceled,
//! their assignments end through the normal audited path (removals enqueued,
//! reference-counted), and they stop being a pending approver: each stage they were on falls back, escalates or expires as its policy
//! says.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::assignments::end_assignment;
use super::requests::{escalate_or_expire, resolve_stages};
use super::Service;
use crate::domain::approvers::ApproverSource;
use crate::domain::audit::AuditEvent;
use crate::domain::ids::UserId;
use crate::domain::policy::OnTimeout;
use crate::domain::request::{AssignmentState, Decision, RequestState};
use crate::domain::{DomainError, DomainResult};
use crate::store::requests::{self, RequestRow};
use crate::store::{assignments, catalog, directory, Tx};

/// What leaving took away, for the caller's message and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offboarded {
    pub requests_canceled: usize,
    pub assignments_ended: usize,
    pub approvals_reassigned: usize,
    /// Sessions deleted: a leaver is signed out everywhere at once, not at their next request.
    pub sessions_ended: u64,
    /// API tokens revoked.
    pub tokens_revoked: u64,
}

impl Service {
    /// Take away what a disabled person holds, in the caller's transaction (which disabled
    /// them). `actor` is who disabled them (`None`: the system, from provider data).
    pub(super) async fn offboard(
        &self,
        tx: &mut Tx,
        user: UserId,
        actor: Option<UserId>,
        now: DateTime<Utc>,
        events: &mut Vec<AuditEvent>,
    ) -> DomainResult<Offboarded> {
        let mut done = Offboarded::default();
        self.db.lock_user(tx, user).await?;
        let reason = "the person's account was disabled";
        done.sessions_ended = crate::store::sessions::delete_for_user(tx, user).await?;
        done.tokens_revoked = crate::store::tokens::revoke_all(tx, user, actor, now).await?;
        if done.tokens_revoked > 0 {
            events.push(
                AuditEvent::new(actor, "user.tokens_revoked", "user", user.0)
                    .after(json!({"tokens": done.tokens_revoked}))
                    .reason(reason),
            );
        }
        // Nobody stands in for a leaver any more: their stages go to replacements instead.
        if crate::store::deputies::end_all(tx, user, now).await? > 0 {
            events.push(AuditEvent::new(actor, "user.deputy_ended", "user", user.0).reason(reason));
        }

        for req in requests::open_for_target(tx, user).await? {
            // Guarded by state, not version: an escalation by the clock meanwhile must not
            // leave a leaver's request open.
            if requests::cancel_open(tx, req.id, reason, now).await? {
                events.push(
                    AuditEvent::new(actor, "request.canceled", "request", req.id.0)
                        .before(json!({"state": req.state.as_str()}))
                        .after(json!({"state": "canceled"}))
                        .reason(reason),
                );
                done.requests_canceled += 1;
            }
        }

        for a in assignments::live_of_user(tx, user).await? {
            let mut ended = vec![AuditEvent::new(actor, "assignment.removed", "assignment", a.id.0)
                .before(json!({"state": a.state.as_str()}))
                .after(json!({"state": "removed"}))
                .reason(reason)];
            if end_assignment(self, tx, &a, AssignmentState::Removed, now, &mut ended).await? {
                events.append(&mut ended);
                done.assignments_ended += 1;
            }
        }

        for req in requests::open_with_approver(tx, user).await? {
            // Hold the request while its approvers change (after the person's lock, as
            // `decide` takes them), and read it again under that lock: one no longer waiting
            // for approval is left alone (and not locked).
            self.db.lock_pending_request(tx, req.id).await?;
            let Some(req) = requests::request(tx, req.id).await? else { continue };
            if req.state != RequestState::PendingApproval {
                continue;
            }
            let removed = requests::remove_approver(tx, req.id, user, req.current_stage).await?;
            if removed > 0 {
                events.push(
                    AuditEvent::new(actor, "request.approver_removed", "request", req.id.0)
                        .after(json!({"approver": user, "from_stage": req.current_stage}))
                        .reason(reason),
                );
            }
            self.replace_approvers(tx, &req, user, now, events).await?;
            done.approvals_reassigned += 1;
        }
        Ok(done)
    }

    /// `leaver` is no longer an approver of `req`. Stages left with nobody who may decide get
    /// their approvers resolved again (the fallback approvers when the primary ones resolve to
    /// nobody); a current stage that still has nobody escalates where its policy says so, and
    /// otherwise the request expires with the reason.
    async fn replace_approvers(
        &self,
        tx: &mut Tx,
        req: &RequestRow,
        leaver: UserId,
        now: DateTime<Utc>,
        events: &mut Vec<AuditEvent>,
    ) -> DomainResult<()> {
        let target = directory::user(tx, req.target).await?.ok_or_else(|| DomainError::not_found("person"))?;
        let package =
            catalog::package(tx, req.package).await?.ok_or_else(|| DomainError::not_found("access package"))?;
        let (resolved, _) = resolve_stages(tx, &req.stages, &target, req.requestor, package.catalog_id).await?;
        let mut current_has_deciders = true;
        for (i, fresh) in resolved.iter().enumerate() {
            let stage = (i + 1) as u32;
            if stage < req.current_stage {
                continue;
            }
            let left = requests::stage_approvers(tx, req.id, stage).await?;
            let may_decide = |list: &[(UserId, ApproverSource)]| {
                list.iter()
                    .any(|(_, s)| *s != ApproverSource::Escalation || (stage == req.current_stage && req.escalated))
            };
            if may_decide(&left) {
                continue;
            }
            let added: Vec<(UserId, ApproverSource)> =
                fresh.iter().filter(|(u, _)| *u != leaver && !left.iter().any(|(l, _)| l == u)).copied().collect();
            requests::insert_approvers(tx, req.id, stage, &added).await?;
            if !added.is_empty() {
                events.push(
                    AuditEvent::new(None, "request.approvers_replaced", "request", req.id.0)
                        .after(json!({"stage": stage, "added": added.iter().map(|(u, _)| u.0).collect::<Vec<_>>()}))
                        .reason("an approver's account was disabled"),
                );
            }
            if stage == req.current_stage {
                if !added.is_empty() {
                    // Replacements away now have their deputies too.
                    crate::store::deputies::add_to_stage(tx, req.id, stage, now).await?;
                }
                let now_left: Vec<_> = left.iter().chain(&added).copied().collect();
                current_has_deciders = may_decide(&now_left);
            }
        }
        if current_has_deciders {
            return Ok(());
        }
        let stage = req.stages.get(req.current_stage.saturating_sub(1) as usize);
        let can_escalate = stage.is_some_and(|s| s.on_timeout == OnTimeout::Escalate) && !req.escalated;
        let escalation_left = requests::stage_approvers(tx, req.id, req.current_stage)
            .await?
            .iter()
            .any(|(_, s)| *s == ApproverSource::Escalation);
        let (t, event) =
            escalate_or_expire(req, can_escalate && escalation_left, now, "no approver is left for this stage")?;
        // A decision committed meanwhile moved the request on: nothing more to do.
        if requests::transition(tx, req.id, req.version, &t, now).await? {
            if t.state == RequestState::Expired {
                requests::insert_decision(tx, req.id, req.current_stage, None, Decision::Timeout, "", now).await?;
            } else {
                crate::store::deputies::add_to_stage(tx, req.id, req.current_stage, now).await?;
            }
            events.push(event);
        }
        Ok(())
    }
}
