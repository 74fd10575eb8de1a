//! Requesting access, deciding, canceling, timing out — and turning approval into an
//! assignment with its grants and provisioning work.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::Service;
use crate::domain::approvers::{has_deciders, resolve_stage, ApproverDirectory, ApproverSource};
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Actor, Operator, Permission};
use crate::domain::eligibility::{choose_policy, may_see_catalog, RequestorFacts};
use crate::domain::ids::*;
use crate::domain::model::User;
use crate::domain::policy::{checked_after, Answer, ApproverSpec, OnTimeout, RequestedSchedule, Stage};
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

/// Overdue requests one time-out pass takes.
pub(super) const TIME_OUT_PASS: usize = 500;

impl Service {
    /// File a request. Refused (with nothing stored) when the person is not eligible, already
    /// has the access, or already waits for it; stored as `rejected`, with the reason, when
    /// separation of duties forbids it or no approver can be found.
    #[tracing::instrument(name = "submit_request", skip_all, fields(actor = actor.id().0, package = new.package.0, target = new.target.map(|t| t.0)))]
    pub async fn submit_request(&self, actor: &Actor, new: NewRequest) -> DomainResult<RequestOutcome> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let package = load_available_package(&mut tx, new.package).await?;
        let catalog_row = catalog::catalog(&mut tx, package.catalog_id)
            .await?
            .ok_or_else(|| DomainError::not_found("access package"))?;

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
        // Everything below reads what this person holds and waits for: serialize with every
        // other change to their access (separation of duties across simultaneous grants), and
        // with their leaving.
        self.db.lock_user(&mut tx, target.id).await?;
        if !directory::user(&mut tx, target.id).await?.is_some_and(|u| u.is_active()) {
            return Err(DomainError::not_found("person"));
        }

        let policies = catalog::policies_of(&mut tx, &[package.id]).await?;
        let (groups, org_configured) = directory::requestor_context(&mut tx, &target).await?;
        if !may_see_catalog(&target, &catalog_row) {
            return Err(DomainError::not_found("access package"));
        }
        let facts = RequestorFacts { user: &target, groups: &groups, org_configured };
        let policy = choose_policy(&policies, &facts, on_behalf, new.policy)?;

        let answers = policy.check_request_form(&new.justification, &new.answers)?;
        let schedule = policy.check_schedule(now, new.start, new.end)?;

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
            stage_due_at: if pending { Some(stage_due(&stages[0], now)?) } else { None },
            justification: new.justification.trim(),
            answers: &answers,
            start_at: schedule.start,
            end_at: schedule.end,
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
        if pending {
            crate::store::deputies::add_to_stage(&mut tx, id, 1, now).await?;
        }
        let mut events = vec![AuditEvent::new(Some(actor.id()), "request.submitted", "request", id.0).after(json!({
            "state": state.as_str(), "package": package.id, "policy": policy.id, "target": target.id,
            "justification": row.justification, "answers": answers,
            "requested_start": schedule.start, "requested_end": schedule.end,
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
    #[tracing::instrument(name = "decide", skip_all, fields(actor = actor.id().0, request = id.0, ?decision))]
    pub async fn decide(
        &self,
        actor: &Actor,
        id: RequestId,
        decision: Decision,
        justification: &str,
    ) -> DomainResult<RequestOutcome> {
        let now = self.now();
        let (mut tx, req) = self.begin_on_request(id, now).await?;
        self.db.lock_user(&mut tx, req.target).await?;
        self.checkpoint("decision.locked").await;
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
        let step = request::after_decision(outcome, stage, stale.is_some());
        let (next_state, next_stage) = (step.state, step.stage);
        let starting = req.stages.get(next_stage.saturating_sub(1) as usize).filter(|_| step.starts_stage);
        let due = starting.map(|s| stage_due(s, now)).transpose()?;
        let t = Transition {
            state: next_state,
            current_stage: next_stage,
            stage_due_at: due,
            remind_at: starting.and_then(|s| s.reminder(now)),
            escalated: false,
            outcome_reason: match (&stale, next_state) {
                (Some(reason), _) => reason,
                (None, RequestState::Denied) => justification,
                _ => "",
            },
            assignment: None,
        };
        // The final approval's state change is the granting's own (below, guarded by the same
        // version): an intermediate `approved` row would be one more update of the request and
        // its inbox, and one more read, in the busiest write there is. Either way the guarded
        // update comes before the decision's row, as in every other writer (a time-out, a
        // leaver's replacement): the other order could deadlock with them on PostgreSQL.
        let record = async |tx: &mut Tx| {
            requests::insert_decision(tx, id, stage, Some(actor.id()), decision, justification, now).await
        };
        if outcome != DecisionOutcome::Approved
            && (!requests::transition(&mut tx, id, req.version, &t, now).await? || !record(&mut tx).await?)
        {
            return Err(already_decided(&mut tx, &req).await?);
        }
        if step.starts_stage && next_state == RequestState::PendingApproval {
            crate::store::deputies::add_to_stage(&mut tx, id, next_stage, now).await?;
        }
        let mut events = vec![AuditEvent::new(Some(actor.id()), step.action, "request", id.0)
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
                // The request as the skipped transition would have left it: its stage decided,
                // nothing due, no longer escalated; still at the version read, which the
                // granting's transition is guarded by. A decision that lost a race to a cancel
                // or a time-out is told which, as above.
                let current = RequestRow { state: next_state, stage_due_at: None, escalated: false, ..req.clone() };
                let state = match self.approve_and_grant(&mut tx, &current, &mut events, now).await {
                    Err(DomainError::AlreadyDecided(_)) => return Err(already_decided(&mut tx, &req).await?),
                    other => other?,
                };
                if !record(&mut tx).await? {
                    return Err(already_decided(&mut tx, &req).await?);
                }
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
    #[tracing::instrument(name = "cancel_request", skip_all, fields(actor = actor.id().0, request = id.0))]
    pub async fn cancel_request(&self, actor: &Actor, id: RequestId) -> DomainResult<RequestOutcome> {
        let now = self.now();
        let (mut tx, req) = self.begin_on_request(id, now).await?;
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
            remind_at: None,
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
    #[tracing::instrument(name = "time_out_stages", skip_all, fields(operator = %by))]
    pub async fn time_out_stages(&self, by: &Operator<'_>) -> DomainResult<usize> {
        by.require(Permission::Administer)?;
        let now = self.now();
        let due = {
            let mut conn = self.db.pool().acquire().await?;
            requests::overdue(&mut conn, now, TIME_OUT_PASS as i64).await?
        };
        let mut moved = 0;
        for id in due {
            // One bad request never stops the pass: it is logged and the others go on.
            match self.time_out_one(id, now).await {
                Ok(true) => moved += 1,
                Ok(false) | Err(DomainError::AlreadyDecided(_)) => {}
                Err(e) => tracing::error!(request = id.0, error = ?e, "time-out of this request failed"),
            }
        }
        Ok(moved)
    }

    /// The clock's turn for reminders: the approvers of every pending stage whose reminder is
    /// due are reminded (by email) once, audited as `request.reminded`. Each is taken by a
    /// guarded update of its reminder time, so a decision, a time-out or another instance
    /// racing it leaves exactly one outcome. Nothing is done while no email is sent. Returns
    /// how many requests it reminded about.
    #[tracing::instrument(name = "send_reminders", skip_all, fields(operator = %by))]
    pub async fn send_reminders(&self, by: &Operator<'_>) -> DomainResult<usize> {
        by.require(Permission::Administer)?;
        if !self.sends_email() {
            return Ok(0);
        }
        let now = self.now();
        let due = {
            let mut conn = self.db.pool().acquire().await?;
            requests::reminders_due(&mut conn, now, TIME_OUT_PASS as i64).await?
        };
        let mut reminded = 0;
        for (id, at) in due {
            // One bad request never stops the pass: it is logged and the others go on.
            match self.remind_one(id, at, now).await {
                Ok(true) => reminded += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(request = id.0, error = ?e, "the reminder of this request failed"),
            }
        }
        Ok(reminded)
    }

    async fn remind_one(&self, id: RequestId, at: DateTime<Utc>, now: DateTime<Utc>) -> DomainResult<bool> {
        let mut tx = self.db.begin().await?;
        if !requests::take_reminder(&mut tx, id, at, now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let stage = requests::request(&mut tx, id).await?.map_or(0, |r| r.current_stage);
        let event = AuditEvent::new(None, "request.reminded", "request", id.0).after(json!({"stage": stage}));
        self.commit(tx, vec![event]).await?;
        Ok(true)
    }

    /// Open a transaction on a request as it stands now. A stage whose due time has passed is
    /// timed out first (escalated or expired, as the stage says), whether or not the worker
    /// has run yet: nobody decides or cancels after the deadline.
    async fn begin_on_request(&self, id: RequestId, now: DateTime<Utc>) -> DomainResult<(Tx, RequestRow)> {
        let mut tx = self.db.begin().await?;
        let req = requests::request(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("request"))?;
        if req.state != RequestState::PendingApproval || req.stage_due_at.is_none_or(|due| due > now) {
            return Ok((tx, req));
        }
        tx.rollback().await?;
        match self.time_out_one(id, now).await {
            Ok(_) | Err(DomainError::AlreadyDecided(_)) => {}
            Err(e) => return Err(e),
        }
        let mut tx = self.db.begin().await?;
        let req = requests::request(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("request"))?;
        Ok((tx, req))
    }

    /// Time out one request's stage, if it is still the overdue stage that was read.
    #[tracing::instrument(name = "time_out_request", skip_all, fields(operator = %by, request = id.0))]
    pub async fn time_out_request(&self, by: &Operator<'_>, id: RequestId) -> DomainResult<bool> {
        by.require(Permission::Administer)?;
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
        let (t, event) = escalate_or_expire(&req, escalate, now, "no decision in time")?;
        if !requests::transition(&mut tx, id, req.version, &t, now).await? {
            return Err(already_decided(&mut tx, &req).await?);
        }
        if !escalate
            && !requests::insert_decision(&mut tx, id, req.current_stage, None, Decision::Timeout, "", now).await?
        {
            return Err(already_decided(&mut tx, &req).await?);
        }
        if escalate {
            // Alternates away now have their deputies too.
            crate::store::deputies::add_to_stage(&mut tx, id, req.current_stage, now).await?;
        }
        self.commit(tx, vec![event]).await?;
        Ok(true)
    }

    /// The final approval: checked anew (package still there and enabled, separation of
    /// duties, not already held), then the assignment, its grants and their provisioning
    /// work are written in the caller's transaction. Returns the request's new state.
    pub(super) async fn approve_and_grant(
        &self,
        tx: &mut Tx,
        req: &RequestRow,
        events: &mut Vec<AuditEvent>,
        now: DateTime<Utc>,
    ) -> DomainResult<RequestState> {
        let mut problem = stale_reason(tx, req).await?;
        self.checkpoint("access.granting").await;
        if problem.is_none() && req.kind == RequestKind::UserExtend {
            return super::assignments::extend_on_approval(tx, req, events, now).await;
        }
        // The access period is decided now: waiting for approval does not shorten it.
        let mut period = None;
        if problem.is_none() {
            let policy = catalog::policy(tx, req.policy).await?.ok_or_else(|| DomainError::not_found("policy"))?;
            match policy.access_period(now, RequestedSchedule { start: req.start_at, end: req.end_at }) {
                Ok(p) => period = Some(p),
                Err(DomainError::Conflict(why)) => problem = Some(why),
                Err(e) => return Err(e),
            }
        }
        let (start, end) = match (period, problem) {
            (Some(period), None) => period,
            (_, problem) => {
                let reason = problem.unwrap_or_else(|| "the access period could not be decided".to_owned());
                let t = Transition {
                    state: RequestState::Rejected,
                    current_stage: req.current_stage,
                    stage_due_at: None,
                    remind_at: None,
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
        };
        let new = assignments::NewAssignment {
            user: req.target,
            package: req.package,
            policy: req.policy,
            request: Some(req.id),
            start,
            end,
        };
        let assignment = match assignments::insert(tx, &new, now).await {
            Ok(a) => a,
            Err(e) if is_unique_violation(&e) => {
                return Err(DomainError::Conflict("this access is already assigned".into()))
            }
            Err(e) => return Err(e.into()),
        };
        // Access that starts later is provisioned when it starts.
        let grants = assignments::grant_package_roles(tx, assignment, req.target, req.package, start, now).await?;
        // A package that grants nothing is delivered at once.
        let state = if grants == 0 { RequestState::Delivered } else { RequestState::Delivering };
        if grants == 0 {
            assignments::set_state(tx, assignment, AssignmentState::Delivered, now).await?;
        }
        let t = Transition {
            state,
            current_stage: req.current_stage,
            stage_due_at: None,
            remind_at: None,
            escalated: req.escalated,
            outcome_reason: "",
            assignment: Some(assignment),
        };
        if !requests::transition(tx, req.id, req.version, &t, now).await? {
            return Err(DomainError::AlreadyDecided("the request changed meanwhile".into()));
        }
        events.push(AuditEvent::new(None, "assignment.created", "assignment", assignment.0).after(json!({
            "user": req.target, "package": req.package, "policy": req.policy, "request": req.id,
            "start": start, "end": end, "grants": grants,
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
    if !directory::user(conn, user).await?.is_some_and(|u| u.is_active()) {
        return Ok(Some("the person's account is disabled".to_owned()));
    }
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

/// Resolve every stage's approvers for this target; also says which stage (if any) has nobody
/// who could decide it.
pub(super) async fn resolve_stages(
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

/// The current stage of `req` ran out of time (or of approvers): it escalates (a new due
/// time; the escalation approvers may now decide) or the request expires with `reason`.
pub(super) fn escalate_or_expire<'a>(
    req: &RequestRow,
    escalate: bool,
    now: DateTime<Utc>,
    reason: &'a str,
) -> DomainResult<(Transition<'a>, AuditEvent)> {
    let id = req.id.0;
    Ok(if escalate {
        let stage = req.stages.get(req.current_stage.saturating_sub(1) as usize);
        let due = stage.map(|s| stage_due(s, now)).transpose()?;
        (
            Transition {
                state: RequestState::PendingApproval,
                current_stage: req.current_stage,
                stage_due_at: due,
                // The alternates get the stage's time again, and its reminder.
                remind_at: stage.and_then(|s| s.reminder(now)),
                escalated: true,
                outcome_reason: "",
                assignment: None,
            },
            AuditEvent::new(None, "request.escalated", "request", id)
                .after(json!({"stage": req.current_stage}))
                .reason(reason),
        )
    } else {
        (
            Transition {
                state: RequestState::Expired,
                current_stage: req.current_stage,
                stage_due_at: None,
                remind_at: None,
                escalated: req.escalated,
                outcome_reason: reason,
                assignment: None,
            },
            AuditEvent::new(None, "request.expired", "request", id)
                .before(json!({"state": "pending_approval", "stage": req.current_stage}))
                .after(json!({"state": "expired"}))
                .reason(reason),
        )
    })
}

pub(super) fn stage_due(stage: &Stage, now: DateTime<Utc>) -> DomainResult<DateTime<Utc>> {
    checked_after(now, Duration::days(i64::from(stage.timeout_days.max(1))), "approval")
}

/// The package, if it still exists and may be requested (enabled, in an enabled catalog).
pub(super) async fn load_available_package(
    conn: &mut Conn,
    id: PackageId,
) -> DomainResult<crate::domain::model::AccessPackage> {
    let package = catalog::package(conn, id).await?.ok_or_else(|| DomainError::not_found("access package"))?;
    // Held until the transaction ends: a catalog being deleted waits for this request or
    // assignment (and counts it), or this waits for the deletion and finds the catalog gone.
    let catalog =
        catalog::catalog_held(conn, package.catalog_id).await?.ok_or_else(|| DomainError::not_found("catalog"))?;
    if !package.enabled || !catalog.enabled {
        return Err(DomainError::Conflict("this access package is not available at the moment".into()));
    }
    Ok(package)
}

/// Conflicts between a package and what the user holds or waits for (other than this package).
pub(super) async fn sod_conflicts(
    conn: &mut Conn,
    package: PackageId,
    user: UserId,
) -> DomainResult<Vec<sod::Conflict>> {
    let rules = catalog::sod_rules(conn, package).await?;
    if rules.incompatible_packages.is_empty() && rules.incompatible_groups.is_empty() {
        return Ok(Vec::new());
    }
    let (mut packages, open) = assignments::held_and_awaited_packages(conn, user).await?;
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
    let mut dir = specs_directory(conn, &specs, catalog).await?;
    if specs.contains(&ApproverSpec::Manager) {
        if let Some(m) = target.manager_id {
            dir.manager = directory::active_among(conn, &[m]).await?.first().copied();
        }
    }
    if specs.contains(&ApproverSpec::Sponsors) {
        if let Some(org) = target.connected_org_id {
            dir.sponsors = directory::sponsors(conn, org).await?;
        }
    }
    Ok(dir)
}

/// Everyone `specs` can name whatever the target: the members of its groups, the catalog's
/// owners, and which of the people it names are active (the manager and the sponsors, which
/// depend on the target, are left to the caller).
pub(super) async fn specs_directory(
    conn: &mut Conn,
    specs: &[ApproverSpec],
    catalog: CatalogId,
) -> DomainResult<ApproverDirectory> {
    let mut dir = ApproverDirectory::default();
    let mut named = Vec::new();
    for spec in specs {
        match *spec {
            ApproverSpec::User { id } => named.push(id),
            ApproverSpec::Group { id } => {
                if let std::collections::btree_map::Entry::Vacant(slot) = dir.group_members.entry(id) {
                    slot.insert(directory::group_members(conn, id).await?);
                }
            }
            ApproverSpec::CatalogOwners => dir.catalog_owners = directory::catalog_owners(conn, catalog).await?,
            ApproverSpec::Manager | ApproverSpec::Sponsors => {}
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
