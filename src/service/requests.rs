//! Requesting access, deciding, canceling, timing out — and turning approval into an
//! assignment with its grants and provisioning work.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::Service;
use crate::domain::approvers::{has_deciders, resolve_stage, ApproverDirectory, ApproverSource};
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Actor, Permission};
use crate::domain::eligibility::{may_request, RequestorFacts};
use crate::domain::ids::*;
use crate::domain::model::User;
use crate::domain::policy::{Answer, ApproverSpec, Expiration, OnTimeout, Policy, Stage};
use crate::domain::request::AssignmentState;
use crate::domain::request::{self, Decision, DecisionOutcome, PendingRequest, RequestKind, RequestState};
use crate::domain::sod::{self, Holdings};
use crate::domain::{DomainError, DomainResult};
use crate::store::requests::{NewRequestRow, RequestRow, Transition};
use crate::store::{assignments, catalog, directory, is_unique_violation, requests, Conn, Tx};

/// What a person asks for.
#[derive(Clone, Debug)]
pub struct NewRequest {
    pub package: PackageId,
    /// Which policy, when more than one applies.
    pub policy: Option<PolicyId>,
    /// On behalf of a direct report; `None` for oneself.
    pub target: Option<UserId>,
    pub justification: String,
    pub answers: Vec<Answer>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// Where a request stands after an operation, in words for the person who acted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestOutcome {
    pub request: RequestId,
    pub state: RequestState,
    pub message: String,
}

impl Service {
    /// File a request. Refused (with nothing stored) when the person is not eligible, already
    /// has the access, or already waits for it; stored as `rejected`, with the reason, when
    /// separation of duties forbids it or no approver can be found.
    pub async fn submit_request(&self, actor: &Actor, new: NewRequest) -> DomainResult<RequestOutcome> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let package = load_available_package(&mut tx, new.package).await?;

        // Who the access is for: oneself, or a direct report where the policy allows.
        let target = match new.target {
            None => actor.user.clone(),
            Some(id) if id == actor.id() => actor.user.clone(),
            Some(id) => {
                let user = directory::user(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("person"))?;
                if user.manager_id != Some(actor.id()) {
                    return Err(DomainError::forbidden("you can request on behalf of your direct reports only"));
                }
                user
            }
        };
        let on_behalf = target.id != actor.id();

        let policies = catalog::policies_of(&mut tx, &[package.id]).await?;
        let groups = directory::groups_of(&mut tx, target.id).await?;
        let org_configured = match target.connected_org_id {
            Some(org) => directory::org_is_configured(&mut tx, org).await?,
            None => false,
        };
        let facts = RequestorFacts { user: &target, groups: &groups, org_configured };
        let eligible: Vec<&Policy> =
            policies.iter().filter(|p| may_request(&facts, p) && (!on_behalf || p.on_behalf_allowed)).collect();
        let policy = match (new.policy, eligible.as_slice()) {
            (_, []) => {
                return Err(DomainError::forbidden(if on_behalf {
                    "this access package cannot be requested for that person"
                } else {
                    "you are not eligible to request this access package"
                }))
            }
            (Some(id), list) => *list
                .iter()
                .find(|p| p.id == id)
                .ok_or_else(|| DomainError::invalid("policy", "that policy does not apply to you"))?,
            (None, [only]) => *only,
            (None, _) => return Err(DomainError::invalid("policy", "choose which policy to request under")),
        };

        let answers = policy.check_request_form(&new.justification, &new.answers)?;
        let (start, end) = policy.schedule(now, new.start, new.end)?;

        let who = if on_behalf { format!("{} already", target.display_name) } else { "you already".into() };
        if assignments::live_assignment(&mut tx, target.id, package.id).await?.is_some() {
            return Err(DomainError::Conflict(format!("{who} have this access")));
        }
        if requests::open_request_exists(&mut tx, target.id, package.id).await? {
            return Err(DomainError::Conflict(format!("{who} have a request for this access pending")));
        }

        // Separation of duties and approver resolution decide whether it goes to approval.
        let conflicts = sod_conflicts(&mut tx, package.id, target.id).await?;
        let stages = policy.approval.stages.clone();
        let (resolved, unresolvable) =
            resolve_stages(&mut tx, &stages, &target, actor.id(), package.catalog_id).await?;

        let (state, reason) = if !conflicts.is_empty() {
            (RequestState::Rejected, sod::explain(&conflicts))
        } else if let Some(k) = unresolvable {
            (RequestState::Rejected, format!("no approver can be found for approval stage {}", k + 1))
        } else if stages.is_empty() {
            (RequestState::Approved, String::new())
        } else {
            (RequestState::PendingApproval, String::new())
        };
        let pending = state == RequestState::PendingApproval;
        let row = NewRequestRow {
            kind: RequestKind::UserAdd,
            state,
            requestor: actor.id(),
            target: target.id,
            package: package.id,
            policy: policy.id,
            stages: &stages,
            current_stage: u32::from(pending),
            stage_due_at: pending.then(|| stage_due(&stages[0], now)),
            justification: new.justification.trim(),
            answers: &answers,
            start_at: Some(start),
            end_at: end,
            outcome_reason: &reason,
        };
        let id = match requests::insert(&mut tx, &row, now).await {
            Ok(id) => id,
            Err(e) if is_unique_violation(&e) => {
                return Err(DomainError::Conflict(format!("{who} have a request for this access pending")))
            }
            Err(e) => return Err(e.into()),
        };
        for (i, approvers) in resolved.iter().enumerate() {
            if state != RequestState::Rejected {
                requests::insert_approvers(&mut tx, id, (i + 1) as u32, approvers).await?;
            }
        }
        let mut events = vec![AuditEvent::new(Some(actor.id()), "request.submitted", "request", id.0).after(json!({
            "state": state.as_str(), "package": package.id, "policy": policy.id, "target": target.id,
            "justification": row.justification, "answers": answers, "start": start, "end": end,
        }))];
        let mut outcome_state = state;
        let message = match state {
            RequestState::Rejected => {
                events.push(AuditEvent::new(None, "request.rejected", "request", id.0).reason(&reason));
                reason
            }
            RequestState::PendingApproval => "Your request is waiting for approval.".to_owned(),
            _ => {
                // No approval needed: grant it now.
                let current = requests::request(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("request"))?;
                outcome_state = self.approve_and_grant(&mut tx, &current, &mut events, now).await?;
                if matches!(outcome_state, RequestState::Delivering | RequestState::Delivered) {
                    "Approved: your access is being delivered.".to_owned()
                } else {
                    requests::request(&mut tx, id).await?.map(|r| r.outcome_reason).unwrap_or_default()
                }
            }
        };
        self.commit(tx, events).await?;
        Ok(RequestOutcome { request: id, state: outcome_state, message })
    }

    /// Approve or deny the current stage of a request. Exactly one decision per stage wins;
    /// everyone else is told who decided first.
    pub async fn decide(
        &self,
        actor: &Actor,
        id: RequestId,
        decision: Decision,
        justification: &str,
    ) -> DomainResult<RequestOutcome> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let req = requests::request(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("request"))?;
        let stage = req.current_stage;
        let may = stage > 0 && requests::may_decide(&mut tx, id, stage, actor.id(), req.escalated).await?;
        if !may
            && actor.id() != req.requestor
            && actor.id() != req.target
            && !requests::approves_any_stage(&mut tx, id, actor.id()).await?
        {
            // Someone who is no approver of this request learns nothing about it.
            return Err(DomainError::not_found("request"));
        }
        let justification_required =
            req.stages.get(stage.saturating_sub(1) as usize).is_some_and(|s| s.justification_required);
        let pending = PendingRequest {
            id,
            state: req.state,
            requestor: req.requestor,
            target: req.target,
            current_stage: stage,
            stage_count: req.stages.len() as u32,
            escalated: req.escalated,
        };
        let outcome = match request::decide(&pending, actor.id(), may, decision, justification, justification_required)
        {
            Err(DomainError::AlreadyDecided(_)) => return Err(already_decided(&mut tx, &req).await?),
            other => other?,
        };
        let justification = justification.trim();
        // An approval that moves to the next stage is checked anew too.
        let stale = match outcome {
            DecisionOutcome::NextStage(_) => stale_reason(&mut tx, &req).await?,
            _ => None,
        };
        let (next_state, next_stage, due) = match (outcome, &stale) {
            (_, Some(_)) => (RequestState::Rejected, stage, None),
            (outcome, None) => match outcome {
                DecisionOutcome::Denied => (RequestState::Denied, stage, None),
                DecisionOutcome::NextStage(k) => {
                    let due = req.stages.get(k as usize - 1).map(|s| stage_due(s, now));
                    (RequestState::PendingApproval, k, due)
                }
                DecisionOutcome::Approved => (RequestState::Approved, stage, None),
            },
        };
        let t = Transition {
            state: next_state,
            current_stage: next_stage,
            stage_due_at: due,
            escalated: false,
            outcome_reason: match (&stale, next_state) {
                (Some(reason), _) => reason,
                (None, RequestState::Denied) => justification,
                _ => "",
            },
            assignment: None,
        };
        if !requests::transition(&mut tx, id, req.version, &t, now).await?
            || !requests::insert_decision(&mut tx, id, stage, Some(actor.id()), decision, justification, now).await?
        {
            return Err(already_decided(&mut tx, &req).await?);
        }
        let action = match outcome {
            DecisionOutcome::Denied => "request.denied",
            DecisionOutcome::NextStage(_) => "request.stage_approved",
            DecisionOutcome::Approved => "request.approved",
        };
        let mut events = vec![AuditEvent::new(Some(actor.id()), action, "request", id.0)
            .before(json!({"state": req.state.as_str(), "stage": stage}))
            .after(json!({"state": next_state.as_str(), "stage": next_stage}))
            .reason(justification)];
        let (state, message) = match outcome {
            _ if stale.is_some() => {
                let reason = stale.clone().unwrap_or_default();
                events.push(AuditEvent::new(None, "request.rejected", "request", id.0).reason(&reason));
                (RequestState::Rejected, reason)
            }
            DecisionOutcome::Denied => (RequestState::Denied, "Denied.".to_owned()),
            DecisionOutcome::NextStage(k) => {
                (RequestState::PendingApproval, format!("Approved stage {stage}; stage {k} is next."))
            }
            DecisionOutcome::Approved => {
                let current = requests::request(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("request"))?;
                let state = self.approve_and_grant(&mut tx, &current, &mut events, now).await?;
                let message = if matches!(state, RequestState::Delivering | RequestState::Delivered) {
                    "Approved: access is being delivered.".to_owned()
                } else {
                    requests::request(&mut tx, id).await?.map(|r| r.outcome_reason).unwrap_or_default()
                };
                (state, message)
            }
        };
        self.commit(tx, events).await?;
        Ok(RequestOutcome { request: id, state, message })
    }

    /// The requestor withdraws a request that is still waiting for a decision.
    pub async fn cancel_request(&self, actor: &Actor, id: RequestId) -> DomainResult<RequestOutcome> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let req = requests::request(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("request"))?;
        if actor.id() != req.requestor && actor.id() != req.target {
            return Err(DomainError::not_found("request"));
        }
        match request::cancel(req.state, actor.id(), req.requestor) {
            Err(DomainError::AlreadyDecided(_)) => return Err(already_decided(&mut tx, &req).await?),
            other => other?,
        }
        let t = Transition {
            state: RequestState::Canceled,
            current_stage: req.current_stage,
            stage_due_at: None,
            escalated: req.escalated,
            outcome_reason: "canceled by the requestor",
            assignment: None,
        };
        if !requests::transition(&mut tx, id, req.version, &t, now).await? {
            return Err(already_decided(&mut tx, &req).await?);
        }
        let event = AuditEvent::new(Some(actor.id()), "request.canceled", "request", id.0)
            .before(json!({"state": req.state.as_str()}))
            .after(json!({"state": "canceled"}));
        self.commit(tx, vec![event]).await?;
        Ok(RequestOutcome { request: id, state: RequestState::Canceled, message: "Canceled.".into() })
    }

    /// The clock's turn: every pending stage past its due time escalates (once, where the
    /// stage says so) or ends the request as expired. Returns how many requests it moved.
    pub async fn time_out_stages(&self) -> DomainResult<usize> {
        let now = self.now();
        let due = {
            let mut conn = self.db.pool().acquire().await?;
            requests::overdue(&mut conn, now, 500).await?
        };
        let mut moved = 0;
        for id in due {
            match self.time_out_one(id, now).await {
                Ok(true) => moved += 1,
                Ok(false) | Err(DomainError::AlreadyDecided(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(moved)
    }

    /// Time out one request's stage, if it is still the overdue stage that was read.
    pub async fn time_out_request(&self, id: RequestId) -> DomainResult<bool> {
        self.time_out_one(id, self.now()).await
    }

    async fn time_out_one(&self, id: RequestId, now: DateTime<Utc>) -> DomainResult<bool> {
        let mut tx = self.db.begin().await?;
        let Some(req) = requests::request(&mut tx, id).await? else { return Ok(false) };
        if req.state != RequestState::PendingApproval {
            return Err(already_decided(&mut tx, &req).await?);
        }
        if req.stage_due_at.is_none_or(|due| due > now) {
            return Ok(false);
        }
        let stage = req.stages.get(req.current_stage.saturating_sub(1) as usize);
        let escalate = stage.is_some_and(|s| s.on_timeout == OnTimeout::Escalate) && !req.escalated;
        let (t, event) = if escalate {
            let due = stage.map(|s| stage_due(s, now));
            (
                Transition {
                    state: RequestState::PendingApproval,
                    current_stage: req.current_stage,
                    stage_due_at: due,
                    escalated: true,
                    outcome_reason: "",
                    assignment: None,
                },
                AuditEvent::new(None, "request.escalated", "request", id.0).after(json!({"stage": req.current_stage})),
            )
        } else {
            (
                Transition {
                    state: RequestState::Expired,
                    current_stage: req.current_stage,
                    stage_due_at: None,
                    escalated: req.escalated,
                    outcome_reason: "no decision in time",
                    assignment: None,
                },
                AuditEvent::new(None, "request.expired", "request", id.0)
                    .before(json!({"state": "pending_approval", "stage": req.current_stage}))
                    .after(json!({"state": "expired"})),
            )
        };
        if !requests::transition(&mut tx, id, req.version, &t, now).await? {
            return Err(already_decided(&mut tx, &req).await?);
        }
        if !escalate
            && !requests::insert_decision(&mut tx, id, req.current_stage, None, Decision::Timeout, "", now).await?
        {
            return Err(already_decided(&mut tx, &req).await?);
        }
        self.commit(tx, vec![event]).await?;
        Ok(true)
    }

    /// An assignment manager assigns a package directly (an `admin_add` request, approved by
    /// its maker). Separation of duties still applies.
    pub async fn assign_directly(
        &self,
        actor: &Actor,
        user: UserId,
        package: PackageId,
        policy: PolicyId,
        end: Option<DateTime<Utc>>,
        justification: &str,
    ) -> DomainResult<RequestOutcome> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let pkg = catalog::package(&mut tx, package).await?.ok_or_else(|| DomainError::not_found("access package"))?;
        actor.require(Permission::AssignInCatalog(pkg.catalog_id))?;
        let pkg = load_available_package(&mut tx, package).await?;
        let pol = catalog::policy(&mut tx, policy)
            .await?
            .filter(|p| p.package_id == pkg.id)
            .ok_or_else(|| DomainError::not_found("policy"))?;
        let target = directory::user(&mut tx, user)
            .await?
            .filter(User::is_active)
            .ok_or_else(|| DomainError::not_found("person"))?;
        if assignments::live_assignment(&mut tx, target.id, pkg.id).await?.is_some() {
            return Err(DomainError::Conflict(format!("{} already has this access", target.display_name)));
        }
        let conflicts = sod_conflicts(&mut tx, pkg.id, target.id).await?;
        if !conflicts.is_empty() {
            return Err(DomainError::Conflict(sod::explain(&conflicts)));
        }
        let latest = pol.expiration.end_for(now);
        let end = match (end, latest) {
            (Some(e), _) if e <= now => return Err(DomainError::invalid("end", "the end must be in the future")),
            (Some(e), Some(l)) if e > l => return Err(DomainError::invalid("end", "past what the policy allows")),
            (Some(e), _) => Some(e),
            (None, l) => l,
        };
        let row = NewRequestRow {
            kind: RequestKind::AdminAdd,
            state: RequestState::Approved,
            requestor: actor.id(),
            target: target.id,
            package: pkg.id,
            policy: pol.id,
            stages: &[],
            current_stage: 0,
            stage_due_at: None,
            justification: justification.trim(),
            answers: &[],
            start_at: Some(now),
            end_at: end,
            outcome_reason: "",
        };
        let id = requests::insert(&mut tx, &row, now).await?;
        let mut events = vec![AuditEvent::new(Some(actor.id()), "request.admin_assigned", "request", id.0)
            .after(json!({"package": pkg.id, "policy": pol.id, "target": target.id, "end": end}))
            .reason(justification.trim())];
        let current = requests::request(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("request"))?;
        let state = self.approve_and_grant(&mut tx, &current, &mut events, now).await?;
        if !matches!(state, RequestState::Delivering | RequestState::Delivered) {
            let reason = requests::request(&mut tx, id).await?.map(|r| r.outcome_reason).unwrap_or_default();
            return Err(DomainError::Conflict(reason));
        }
        self.commit(tx, events).await?;
        Ok(RequestOutcome { request: id, state, message: format!("{} is being given access.", target.display_name) })
    }

    /// End an assignment: the holder gives it up, or an assignment manager removes it.
    pub async fn remove_assignment(&self, actor: &Actor, id: AssignmentId, reason: &str) -> DomainResult<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let a = assignments::assignment(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("assignment"))?;
        if a.user != actor.id() {
            let pkg =
                catalog::package(&mut tx, a.package).await?.ok_or_else(|| DomainError::not_found("assignment"))?;
            if !actor.can(Permission::AssignInCatalog(pkg.catalog_id)) {
                return Err(DomainError::not_found("assignment"));
            }
        }
        if !a.state.is_live() {
            return Err(DomainError::AlreadyDecided(format!("this access has already {}", a.state.as_str())));
        }
        let action = if a.user == actor.id() { "assignment.given_up" } else { "assignment.removed" };
        let mut events = vec![AuditEvent::new(Some(actor.id()), action, "assignment", id.0)
            .before(json!({"state": a.state.as_str()}))
            .after(json!({"state": "removed"}))
            .reason(reason.trim())];
        if !end_assignment(&mut tx, &a, AssignmentState::Removed, now, &mut events).await? {
            return Err(DomainError::AlreadyDecided("this access has already ended".into()));
        }
        self.commit(tx, events).await?;
        Ok(())
    }

    /// The clock's turn: end every assignment whose end has passed. Returns how many.
    pub async fn expire_assignments(&self) -> DomainResult<usize> {
        let now = self.now();
        let due = {
            let mut conn = self.db.pool().acquire().await?;
            assignments::due_to_expire(&mut conn, now, 500).await?
        };
        let mut expired = 0;
        for id in due {
            let mut tx = self.db.begin().await?;
            let Some(a) = assignments::assignment(&mut tx, id).await? else { continue };
            if !a.state.is_live() || a.end_at.is_none_or(|end| end > now) {
                continue;
            }
            let mut events = vec![AuditEvent::new(None, "assignment.expired", "assignment", id.0)
                .before(json!({"state": a.state.as_str()}))
                .after(json!({"state": "expired"}))];
            if end_assignment(&mut tx, &a, AssignmentState::Expired, now, &mut events).await? {
                self.commit(tx, events).await?;
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// Ask to keep access longer. Where the policy allows extension without approval the new
    /// end applies at once; otherwise a `user_extend` request goes through the policy's stages.
    /// The holder must still be eligible, and a fixed end date cannot be passed.
    pub async fn extend_assignment(
        &self,
        actor: &Actor,
        id: AssignmentId,
        justification: &str,
    ) -> DomainResult<RequestOutcome> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let a = assignments::assignment(&mut tx, id)
            .await?
            .filter(|a| a.user == actor.id())
            .ok_or_else(|| DomainError::not_found("assignment"))?;
        if !a.state.is_live() {
            return Err(DomainError::AlreadyDecided(format!("this access has already {}", a.state.as_str())));
        }
        let package = load_available_package(&mut tx, a.package).await?;
        let policy = catalog::policy(&mut tx, a.policy).await?.ok_or_else(|| DomainError::not_found("policy"))?;
        if !policy.extension_allowed {
            return Err(DomainError::forbidden("the policy of this access does not allow extensions"));
        }
        let groups = directory::groups_of(&mut tx, actor.id()).await?;
        let org_configured = match actor.user.connected_org_id {
            Some(org) => directory::org_is_configured(&mut tx, org).await?,
            None => false,
        };
        if !may_request(&RequestorFacts { user: &actor.user, groups: &groups, org_configured }, &policy) {
            return Err(DomainError::forbidden("you are no longer eligible for this access, so it cannot be extended"));
        }
        let new_end = match policy.expiration {
            Expiration::Never => return Err(DomainError::invalid("end", "this access does not expire")),
            Expiration::OnDate { .. } => {
                return Err(DomainError::invalid("end", "this access ends on a fixed date and cannot be extended"))
            }
            other => other.end_for(now),
        };
        if policy.justification_required && justification.trim().is_empty() {
            return Err(DomainError::invalid("justification", "say why you need this access longer"));
        }
        if !policy.extension_needs_approval || policy.approval.stages.is_empty() {
            if !assignments::set_end(&mut tx, a.id, new_end, a.version, now).await? {
                return Err(DomainError::AlreadyDecided("this access changed meanwhile".into()));
            }
            let event = AuditEvent::new(Some(actor.id()), "assignment.extended", "assignment", a.id.0)
                .before(json!({"end": a.end_at}))
                .after(json!({"end": new_end}))
                .reason(justification.trim());
            self.commit(tx, vec![event]).await?;
            return Ok(RequestOutcome {
                request: RequestId(0),
                state: RequestState::Delivered,
                message: "Extended.".into(),
            });
        }
        let stages = policy.approval.stages.clone();
        let (resolved, unresolvable) =
            resolve_stages(&mut tx, &stages, &actor.user, actor.id(), package.catalog_id).await?;
        if let Some(k) = unresolvable {
            return Err(DomainError::Conflict(format!("no approver can be found for approval stage {}", k + 1)));
        }
        let row = NewRequestRow {
            kind: RequestKind::UserExtend,
            state: RequestState::PendingApproval,
            requestor: actor.id(),
            target: actor.id(),
            package: package.id,
            policy: policy.id,
            stages: &stages,
            current_stage: 1,
            stage_due_at: Some(stage_due(&stages[0], now)),
            justification: justification.trim(),
            answers: &[],
            start_at: Some(a.start_at),
            end_at: new_end,
            outcome_reason: "",
        };
        let request = match requests::insert(&mut tx, &row, now).await {
            Ok(id) => id,
            Err(e) if is_unique_violation(&e) => {
                return Err(DomainError::Conflict("you already asked to extend this access".into()))
            }
            Err(e) => return Err(e.into()),
        };
        for (i, approvers) in resolved.iter().enumerate() {
            requests::insert_approvers(&mut tx, request, (i + 1) as u32, approvers).await?;
        }
        let event = AuditEvent::new(Some(actor.id()), "request.submitted", "request", request.0)
            .after(json!({"kind": "user_extend", "assignment": a.id, "end": new_end}));
        self.commit(tx, vec![event]).await?;
        Ok(RequestOutcome {
            request,
            state: RequestState::PendingApproval,
            message: "Your extension is waiting for approval.".into(),
        })
    }

    /// The final approval: checked anew (package still there and enabled, separation of
    /// duties, not already held), then the assignment, its grants and their provisioning
    /// work are written in the caller's transaction. Returns the request's new state.
    async fn approve_and_grant(
        &self,
        tx: &mut Tx,
        req: &RequestRow,
        events: &mut Vec<AuditEvent>,
        now: DateTime<Utc>,
    ) -> DomainResult<RequestState> {
        let problem = stale_reason(tx, req).await?;
        if problem.is_none() && req.kind == RequestKind::UserExtend {
            return extend_on_approval(tx, req, events, now).await;
        }
        if let Some(reason) = problem {
            let t = Transition {
                state: RequestState::Rejected,
                current_stage: req.current_stage,
                stage_due_at: None,
                escalated: req.escalated,
                outcome_reason: &reason,
                assignment: None,
            };
            if !requests::transition(tx, req.id, req.version, &t, now).await? {
                return Err(DomainError::AlreadyDecided("the request changed meanwhile".into()));
            }
            events.push(AuditEvent::new(None, "request.rejected", "request", req.id.0).reason(reason));
            return Ok(RequestState::Rejected);
        }
        let start = req.start_at.unwrap_or(now).max(now);
        let new = assignments::NewAssignment {
            user: req.target,
            package: req.package,
            policy: req.policy,
            request: Some(req.id),
            start,
            end: req.end_at,
        };
        let assignment = match assignments::insert(tx, &new, now).await {
            Ok(a) => a,
            Err(e) if is_unique_violation(&e) => {
                return Err(DomainError::Conflict("this access is already assigned".into()))
            }
            Err(e) => return Err(e.into()),
        };
        let roles = catalog::package_roles(tx, &[req.package]).await?;
        for (_, role) in &roles {
            let grant = assignments::insert_grant(tx, assignment, req.target, role.id, now).await?;
            assignments::enqueue(tx, "add_member", role.id, req.target, grant, now).await?;
        }
        // A package that grants nothing is delivered at once.
        let state = if roles.is_empty() { RequestState::Delivered } else { RequestState::Delivering };
        if roles.is_empty() {
            assignments::set_state(tx, assignment, AssignmentState::Delivered, now).await?;
        }
        let t = Transition {
            state,
            current_stage: req.current_stage,
            stage_due_at: None,
            escalated: req.escalated,
            outcome_reason: "",
            assignment: Some(assignment),
        };
        if !requests::transition(tx, req.id, req.version, &t, now).await? {
            return Err(DomainError::AlreadyDecided("the request changed meanwhile".into()));
        }
        events.push(AuditEvent::new(None, "assignment.created", "assignment", assignment.0).after(json!({
            "user": req.target, "package": req.package, "policy": req.policy, "request": req.id,
            "start": start, "end": req.end_at, "grants": roles.len(),
        })));
        Ok(state)
    }
}

/// Why an approval can no longer go ahead, checked at every decision and again when access is
/// granted: the package is gone or disabled, separation of duties now forbids it, or the
/// person already holds it.
async fn stale_reason(conn: &mut Conn, req: &RequestRow) -> DomainResult<Option<String>> {
    if let Some(reason) = access_blocker(conn, req.package, req.target).await? {
        return Ok(Some(reason));
    }
    if req.kind != RequestKind::UserExtend
        && assignments::live_assignment(conn, req.target, req.package).await?.is_some()
    {
        return Ok(Some("this access is already assigned".to_owned()));
    }
    Ok(None)
}

/// Why this person may not (any longer) get this package: it is gone or disabled, or
/// separation of duties forbids it. Checked at every decision and again at delivery.
pub(super) async fn access_blocker(conn: &mut Conn, package: PackageId, user: UserId) -> DomainResult<Option<String>> {
    match load_available_package(conn, package).await {
        Err(DomainError::NotFound(_)) | Err(DomainError::Conflict(_)) => {
            return Ok(Some("the access package is no longer available".to_owned()))
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let conflicts = sod_conflicts(conn, package, user).await?;
    Ok((!conflicts.is_empty()).then(|| sod::explain(&conflicts)))
}

/// An approved extension: the live assignment gets the requested end.
async fn extend_on_approval(
    tx: &mut Tx,
    req: &RequestRow,
    events: &mut Vec<AuditEvent>,
    now: DateTime<Utc>,
) -> DomainResult<RequestState> {
    let live = assignments::live_assignment(tx, req.target, req.package).await?;
    let assignment = match live {
        Some(id) => assignments::assignment(tx, id).await?,
        None => None,
    };
    let (state, reason) = match assignment {
        Some(a) if assignments::set_end(tx, a.id, req.end_at, a.version, now).await? => {
            events.push(
                AuditEvent::new(None, "assignment.extended", "assignment", a.id.0)
                    .before(json!({"end": a.end_at}))
                    .after(json!({"end": req.end_at, "request": req.id})),
            );
            (RequestState::Delivered, String::new())
        }
        _ => (RequestState::Rejected, "the access ended before the extension was approved".to_owned()),
    };
    let t = Transition {
        state,
        current_stage: req.current_stage,
        stage_due_at: None,
        escalated: req.escalated,
        outcome_reason: &reason,
        assignment: live,
    };
    if !requests::transition(tx, req.id, req.version, &t, now).await? {
        return Err(DomainError::AlreadyDecided("the request changed meanwhile".into()));
    }
    Ok(state)
}

/// Resolve every stage's approvers for this target; also says which stage (if any) has nobody
/// who could decide it.
async fn resolve_stages(
    conn: &mut Conn,
    stages: &[Stage],
    target: &User,
    requestor: UserId,
    catalog: CatalogId,
) -> DomainResult<(Vec<Vec<(UserId, ApproverSource)>>, Option<usize>)> {
    let directory = approver_directory(conn, stages, target, catalog).await?;
    let resolved: Vec<_> = stages.iter().map(|s| resolve_stage(s, &directory, requestor, target.id)).collect();
    let unresolvable = resolved.iter().position(|r| !has_deciders(r));
    Ok((resolved, unresolvable))
}

/// End a live assignment and enqueue the removal of each grant no other live assignment
/// still holds (reference counting). False when the assignment was no longer live.
pub(super) async fn end_assignment(
    tx: &mut Conn,
    a: &assignments::AssignmentRow,
    to: AssignmentState,
    now: DateTime<Utc>,
    events: &mut Vec<AuditEvent>,
) -> DomainResult<bool> {
    if !assignments::end(tx, a.id, to, now).await? {
        return Ok(false);
    }
    use crate::domain::request::GrantState;
    for g in assignments::grants_of(tx, a.id).await? {
        if matches!(g.state, GrantState::Removed | GrantState::Removing) {
            continue;
        }
        if assignments::other_live_holders(tx, g.user, g.role, Some(a.id)).await? > 0 {
            assignments::set_grant_state(tx, g.id, GrantState::Removed, "still held through another assignment", now)
                .await?;
        } else {
            assignments::set_grant_state(tx, g.id, GrantState::Removing, "", now).await?;
            assignments::enqueue(tx, "remove_member", g.role, g.user, g.id, now).await?;
        }
    }
    events.push(AuditEvent::new(None, "grants.removal_enqueued", "assignment", a.id.0));
    Ok(true)
}

fn stage_due(stage: &Stage, now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::days(i64::from(stage.timeout_days.max(1)))
}

/// The package, if it still exists and may be requested (enabled, in an enabled catalog).
async fn load_available_package(conn: &mut Conn, id: PackageId) -> DomainResult<crate::domain::model::AccessPackage> {
    let package = catalog::package(conn, id).await?.ok_or_else(|| DomainError::not_found("access package"))?;
    let catalog = catalog::catalog(conn, package.catalog_id).await?.ok_or_else(|| DomainError::not_found("catalog"))?;
    if !package.enabled || !catalog.enabled {
        return Err(DomainError::Conflict("this access package is not available at the moment".into()));
    }
    Ok(package)
}

/// Conflicts between a package and what the user holds or waits for (other than this package).
async fn sod_conflicts(conn: &mut Conn, package: PackageId, user: UserId) -> DomainResult<Vec<sod::Conflict>> {
    let rules = catalog::sod_rules(conn, package).await?;
    if rules.incompatible_packages.is_empty() && rules.incompatible_groups.is_empty() {
        return Ok(Vec::new());
    }
    let mut packages = assignments::live_packages(conn, user).await?;
    let open = requests::open_request_packages(conn, user).await?;
    packages.extend(open.into_iter().filter(|p| *p != package));
    let groups = directory::groups_of(conn, user).await?;
    Ok(sod::conflicts(&rules, &Holdings { packages, groups }))
}

/// Look up everyone an approval spec can name, for this target and catalog.
async fn approver_directory(
    conn: &mut Conn,
    stages: &[Stage],
    target: &User,
    catalog: CatalogId,
) -> DomainResult<ApproverDirectory> {
    let specs: Vec<ApproverSpec> =
        stages.iter().flat_map(|s| s.primary.iter().chain(&s.fallback).chain(&s.escalation).copied()).collect();
    let mut dir = ApproverDirectory::default();
    let mut named = Vec::new();
    for spec in &specs {
        match *spec {
            ApproverSpec::User { id } => named.push(id),
            ApproverSpec::Group { id } => {
                if let std::collections::btree_map::Entry::Vacant(slot) = dir.group_members.entry(id) {
                    slot.insert(directory::group_members(conn, id).await?);
                }
            }
            ApproverSpec::Manager => {
                if let Some(m) = target.manager_id {
                    dir.manager = directory::active_among(conn, &[m]).await?.first().copied();
                }
            }
            ApproverSpec::CatalogOwners => dir.catalog_owners = directory::catalog_owners(conn, catalog).await?,
            ApproverSpec::Sponsors => {
                if let Some(org) = target.connected_org_id {
                    dir.sponsors = directory::sponsors(conn, org).await?;
                }
            }
        }
    }
    dir.active_users = directory::active_among(conn, &named).await?;
    Ok(dir)
}

/// The "already decided" answer for the loser of a race: what happened, and who did it.
async fn already_decided(conn: &mut Conn, before: &RequestRow) -> DomainResult<DomainError> {
    let now = requests::request(conn, before.id).await?.ok_or_else(|| DomainError::not_found("request"))?;
    let last = requests::last_decision(conn, before.id).await?;
    let text = match (now.state, last) {
        (RequestState::PendingApproval, Some((stage, Decision::Approve, Some(name)))) => {
            format!("{name} approved stage {stage} first; the request has moved on to stage {}", now.current_stage)
        }
        (RequestState::PendingApproval, _) => "the request changed meanwhile; reload and try again".into(),
        (RequestState::Canceled, _) => "the requestor canceled this request".into(),
        (RequestState::Expired, _) => "this request expired: nobody decided in time".into(),
        (_, Some((_, Decision::Approve, Some(name)))) => format!("{name} approved this request first"),
        (_, Some((_, Decision::Deny, Some(name)))) => format!("{name} denied this request first"),
        (state, _) => format!("this request is {}", state.label().to_lowercase()),
    };
    Ok(DomainError::AlreadyDecided(text))
}
