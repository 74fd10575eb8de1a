//! Assignments: given directly, given up or removed, expired by the clock, extended — and
//! ending one with its reference-counted removals. Every change to a person's access holds
//! that person's lock ([`crate::store::Db::lock_user`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::capability::{InCatalog, MayAssign};
use super::requests::{load_available_package, resolve_stages, sod_conflicts, stage_due};
use super::{RequestOutcome, Service};
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Actor, Operator, Permission};
use crate::domain::eligibility::{may_request, RequestorFacts};
use crate::domain::ids::*;
use crate::domain::model::User;
use crate::domain::policy::Expiration;
use crate::domain::request::{AssignmentState, RequestKind, RequestState};
use crate::domain::sod;
use crate::domain::{DomainError, DomainResult};
use crate::store::requests::{NewRequestRow, RequestRow, Transition};
use crate::store::{assignments, catalog, directory, is_unique_violation, requests, Conn, Tx};

impl<S: MayAssign> InCatalog<'_, S> {
    /// Assign a package of this catalog directly (an `admin_add` request, approved by its
    /// maker). Separation of duties still applies.
    #[tracing::instrument(name = "assign_directly", skip_all, fields(actor = self.actor.id().0, user = user.0, package = package.0, policy = policy.0))]
    pub async fn assign_directly(
        &self,
        user: UserId,
        package: PackageId,
        policy: PolicyId,
        end: Option<DateTime<Utc>>,
        justification: &str,
    ) -> DomainResult<RequestOutcome> {
        self.assign_directly_marked(user, package, policy, (None, end), justification, None).await
    }

    /// [`Self::assign_directly`] from a start (`None`: now) to an end (`None`: the policy's
    /// period), recording `mark` — a bulk job's row — as assigned in the same transaction: a
    /// row is assigned and marked so together, or neither. Access that starts later is
    /// delivered when it starts.
    pub(super) async fn assign_directly_marked(
        &self,
        user: UserId,
        package: PackageId,
        policy: PolicyId,
        (start, end): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        justification: &str,
        mark: Option<(i64, i64)>,
    ) -> DomainResult<RequestOutcome> {
        let (service, actor) = (self.service, self.actor);
        let now = service.now();
        let mut tx = service.db.begin().await?;
        let pkg = catalog::package(&mut tx, package).await?.ok_or_else(|| DomainError::not_found("access package"))?;
        self.owns(pkg.catalog_id, "access package")?;
        let pkg = load_available_package(&mut tx, package).await?;
        let pol = catalog::policy(&mut tx, policy)
            .await?
            .filter(|p| p.package_id == pkg.id)
            .ok_or_else(|| DomainError::not_found("policy"))?;
        let target = directory::user(&mut tx, user)
            .await?
            .filter(User::is_active)
            .ok_or_else(|| DomainError::not_found("person"))?;
        service.db.lock_user(&mut tx, target.id).await?;
        if assignments::live_assignment(&mut tx, target.id, pkg.id).await?.is_some() {
            return Err(DomainError::Conflict(format!("{} already has this access", target.display_name)));
        }
        let conflicts = sod_conflicts(&mut tx, pkg.id, target.id).await?;
        if !conflicts.is_empty() {
            return Err(DomainError::Conflict(sod::explain(&conflicts)));
        }
        // A start today (its midnight has passed) means now; an earlier day is refused.
        if start.is_some_and(|s| s.date_naive() < now.date_naive()) {
            return Err(DomainError::invalid("start", "the start cannot be in the past"));
        }
        let start = start.filter(|s| *s > now);
        let from = start.unwrap_or(now);
        if start.is_some_and(|s| s > now + chrono::Duration::days(i64::from(crate::domain::policy::MAX_LEAD_DAYS))) {
            return Err(DomainError::invalid(
                "start",
                format!("at most {} days ahead", crate::domain::policy::MAX_LEAD_DAYS),
            ));
        }
        let latest = pol.expiration.end_for(from)?;
        if pol.expiration.is_fixed_date() && latest.is_some_and(|l| l <= from) {
            return Err(DomainError::invalid("end", "this policy's end date has passed"));
        }
        match (end, latest) {
            (Some(e), _) if e <= from => return Err(DomainError::invalid("end", "the end must come after the start")),
            (Some(e), Some(l)) if e > l => return Err(DomainError::invalid("end", "past what the policy allows")),
            _ => {}
        }
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
            start_at: start,
            end_at: end,
            outcome_reason: "",
        };
        let id = requests::insert(&mut tx, &row, now).await?;
        let mut events = vec![AuditEvent::new(Some(actor.id()), "request.admin_assigned", "request", id.0)
            .after(json!({"package": pkg.id, "policy": pol.id, "target": target.id, "start": start, "end": end}))
            .reason(justification.trim())];
        let current = requests::request(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("request"))?;
        let state = service.approve_and_grant(&mut tx, &current, &mut events, now).await?;
        if !matches!(state, RequestState::Delivering | RequestState::Delivered) {
            let reason = requests::request(&mut tx, id).await?.map(|r| r.outcome_reason).unwrap_or_default();
            return Err(DomainError::Conflict(reason));
        }
        let message = match start {
            Some(s) => format!("{} gets access from {}.", target.display_name, s.format("%Y-%m-%d")),
            None => format!("{} is being given access.", target.display_name),
        };
        if let Some((job, line)) = mark {
            if !crate::store::bulk::record_row(&mut tx, job, line, "assigned", &message).await? {
                return Err(DomainError::Conflict("this row was already done".into()));
            }
        }
        service.commit(tx, events).await?;
        Ok(RequestOutcome { request: id, state, message })
    }

    /// Remove someone's assignment to a package of this catalog.
    #[tracing::instrument(name = "remove_assignment", skip_all, fields(actor = self.actor.id().0, assignment = id.0))]
    pub async fn remove_assignment(&self, id: AssignmentId, reason: &str) -> DomainResult<()> {
        end_by_person(self.service, self.actor, id, reason, Some((self.catalog, None))).await
    }

    /// Remove someone's assignment to `package` (a package's page removes only its own).
    #[tracing::instrument(name = "remove_package_assignment", skip_all, fields(actor = self.actor.id().0, package = package.0, assignment = id.0))]
    pub async fn remove_from_package(&self, package: PackageId, id: AssignmentId, reason: &str) -> DomainResult<()> {
        end_by_person(self.service, self.actor, id, reason, Some((self.catalog, Some(package)))).await
    }
}

impl Service {
    /// The holder gives up their own assignment.
    #[tracing::instrument(name = "give_up_assignment", skip_all, fields(actor = actor.id().0, assignment = id.0))]
    pub async fn give_up_assignment(&self, actor: &Actor, id: AssignmentId, reason: &str) -> DomainResult<()> {
        end_by_person(self, actor, id, reason, None).await
    }

    /// The clock's turn: end the assignments whose end has passed, up to `EXPIRY_PASS` of
    /// them, oldest end first. Returns how many ended (the worker loop calls again while this
    /// makes progress, so a backlog drains without waiting for the next tick).
    #[tracing::instrument(name = "expire_assignments", skip_all, fields(operator = %by))]
    pub async fn expire_assignments(&self, by: &Operator<'_>) -> DomainResult<usize> {
        by.require(Permission::Administer)?;
        let now = self.now();
        let due = {
            let mut conn = self.db.pool().acquire().await?;
            assignments::due_to_expire(&mut conn, now, EXPIRY_PASS as i64).await?
        };
        let mut expired = 0;
        for batch in due.chunks(EXPIRY_BATCH) {
            match self.expire_batch(batch, now).await {
                Ok(n) => expired += n,
                Err(e) => {
                    // One bad assignment never stops the pass: the batch is done again one at
                    // a time, and the one that fails is logged while the others go on.
                    tracing::warn!(first = batch[0].0, error = ?e, "expiry batch failed; one at a time");
                    for id in batch {
                        match self.expire_one(*id, now).await {
                            Ok(true) => expired += 1,
                            Ok(false) => {}
                            Err(e) => {
                                tracing::error!(assignment = id.0, error = ?e, "expiry of this assignment failed")
                            }
                        }
                    }
                }
            }
        }
        Ok(expired)
    }

    /// Expire a batch in one transaction (one commit and one turn at the audit chain for many
    /// expiries). Each assignment is read again under its holder's lock, as in
    /// [`Self::expire_one`]; the holders are locked in id order, so two batches never wait on
    /// each other in a circle.
    async fn expire_batch(&self, ids: &[AssignmentId], now: DateTime<Utc>) -> DomainResult<usize> {
        let mut tx = self.db.begin().await?;
        let done = self.expire_in(&mut tx, ids, now).await;
        self.end_batch(tx, done, "expiry batch").await
    }

    /// The batch's work inside its transaction: the number ended and their audit events.
    async fn expire_in(
        &self,
        tx: &mut Tx,
        ids: &[AssignmentId],
        now: DateTime<Utc>,
    ) -> DomainResult<(usize, Vec<AuditEvent>)> {
        let holders = assignments::holders_of(tx, ids).await?;
        self.db.lock_users(tx, &holders).await?;
        // Read again under the locks: an extension committed meanwhile moved the end.
        let due = assignments::due_among(tx, ids, now).await?;
        for _ in &due {
            // Once per assignment about to expire (tests count them, and park here).
            self.checkpoint("assignment.expiring").await;
        }
        let due_ids: Vec<AssignmentId> = due.iter().map(|a| a.id).collect();
        let ended = end_assignments(self, tx, &due_ids, AssignmentState::Expired, now).await?;
        let rows: HashMap<AssignmentId, &assignments::AssignmentRow> = due.iter().map(|a| (a.id, a)).collect();
        let mut events = Vec::with_capacity(ended.len() * 2);
        for (id, removal) in &ended {
            if let Some(a) = rows.get(id) {
                events.push(expired_event(a));
                events.extend(removal.clone());
            }
        }
        Ok((ended.len(), events))
    }

    /// Expire one assignment if its end has passed, read under the holder's lock: an extension
    /// committed meanwhile moved the end, and is never lost.
    async fn expire_one(&self, id: AssignmentId, now: DateTime<Utc>) -> DomainResult<bool> {
        let mut tx = self.db.begin().await?;
        let Some(a) = assignments::assignment(&mut tx, id).await? else { return Ok(false) };
        self.db.lock_user(&mut tx, a.user).await?;
        let Some(a) = assignments::assignment(&mut tx, id).await? else { return Ok(false) };
        if !a.state.is_live() || a.end_at.is_none_or(|end| end > now) {
            return Ok(false);
        }
        let mut events = vec![expired_event(&a)];
        self.checkpoint("assignment.expiring").await;
        if !end_assignment(self, &mut tx, &a, AssignmentState::Expired, now, &mut events).await? {
            return Ok(false);
        }
        self.commit(tx, events).await?;
        Ok(true)
    }

    /// Ask to keep access longer. Where the policy allows extension without approval the new
    /// end applies at once; otherwise a `user_extend` request goes through the policy's stages.
    /// The holder must still be eligible, and a fixed end date cannot be passed.
    #[tracing::instrument(name = "extend_assignment", skip_all, fields(actor = actor.id().0, assignment = id.0))]
    pub async fn extend_assignment(
        &self,
        actor: &Actor,
        id: AssignmentId,
        justification: &str,
    ) -> DomainResult<RequestOutcome> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        // Only the holder extends: serialize with the expiry and every other change to it.
        self.db.lock_user(&mut tx, actor.id()).await?;
        let a = assignments::assignment(&mut tx, id)
            .await?
            .filter(|a| a.user == actor.id())
            .ok_or_else(|| DomainError::not_found("assignment"))?;
        if !a.state.is_live() {
            return Err(DomainError::AlreadyDecided(format!("this access has already {}", a.state.as_str())));
        }
        if a.end_at.is_some_and(|end| end <= now) {
            return Err(DomainError::AlreadyDecided("this access has ended and can no longer be extended".into()));
        }
        let package = load_available_package(&mut tx, a.package).await?;
        let policy = catalog::policy(&mut tx, a.policy).await?.ok_or_else(|| DomainError::not_found("policy"))?;
        if !policy.extension_allowed {
            return Err(DomainError::forbidden("the policy of this access does not allow extensions"));
        }
        let (groups, org_configured) = directory::requestor_context(&mut tx, &actor.user).await?;
        if !may_request(&RequestorFacts { user: &actor.user, groups: &groups, org_configured }, &policy) {
            return Err(DomainError::forbidden("you are no longer eligible for this access, so it cannot be extended"));
        }
        let new_end = match policy.expiration {
            Expiration::Never => return Err(DomainError::invalid("end", "this access does not expire")),
            Expiration::OnDate { .. } => {
                return Err(DomainError::invalid("end", "this access ends on a fixed date and cannot be extended"))
            }
            other => extended_end(other, a.end_at, now)?,
        };
        if policy.justification_required && justification.trim().is_empty() {
            return Err(DomainError::invalid("justification", "say why you need this access longer"));
        }
        if !policy.extension_needs_approval || policy.approval.stages.is_empty() {
            self.checkpoint("assignment.extending").await;
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
            stage_due_at: Some(stage_due(&stages[0], now)?),
            justification: justification.trim(),
            answers: &[],
            start_at: None,
            // The new end is counted when the extension is approved, not now.
            end_at: None,
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
        crate::store::deputies::add_to_stage(&mut tx, request, 1, now).await?;
        let event = AuditEvent::new(Some(actor.id()), "request.submitted", "request", request.0)
            .after(json!({"kind": "user_extend", "assignment": a.id, "period": policy.expiration.describe()}));
        self.commit(tx, vec![event]).await?;
        Ok(RequestOutcome {
            request,
            state: RequestState::PendingApproval,
            message: "Your extension is waiting for approval.".into(),
        })
    }
}

/// An approved extension: the live assignment gets the requested end.
pub(super) async fn extend_on_approval(
    tx: &mut Tx,
    req: &RequestRow,
    events: &mut Vec<AuditEvent>,
    now: DateTime<Utc>,
) -> DomainResult<RequestState> {
    // The caller holds the person's lock, so what is read here is current.
    let live = assignments::live_assignment(tx, req.target, req.package).await?;
    let assignment = match live {
        Some(id) => assignments::assignment(tx, id).await?.filter(|a| a.end_at.is_none_or(|end| end > now)),
        None => None,
    };
    let policy = catalog::policy(tx, req.policy).await?.ok_or_else(|| DomainError::not_found("policy"))?;
    let (state, reason) = match assignment {
        Some(a) => {
            // Counted from the approval: waiting for it does not come out of the extension.
            let end = extended_end(policy.expiration, a.end_at, now)?;
            if !assignments::set_end(tx, a.id, end, a.version, now).await? {
                return Err(DomainError::AlreadyDecided("the access changed meanwhile".into()));
            }
            events.push(
                AuditEvent::new(None, "assignment.extended", "assignment", a.id.0)
                    .before(json!({"end": a.end_at}))
                    .after(json!({"end": end, "request": req.id})),
            );
            (RequestState::Delivered, String::new())
        }
        None => (RequestState::Rejected, "the access ended before the extension was approved".to_owned()),
    };
    let t = Transition {
        state,
        current_stage: req.current_stage,
        stage_due_at: None,
        remind_at: None,
        escalated: req.escalated,
        outcome_reason: &reason,
        assignment: live,
    };
    if !requests::transition(tx, req.id, req.version, &t, now).await? {
        return Err(DomainError::AlreadyDecided("the request changed meanwhile".into()));
    }
    Ok(state)
}

/// Due assignments one expiry pass takes.
pub(super) const EXPIRY_PASS: usize = 500;
/// Expiries per transaction: on SQLite every other writer (a sign-in, an approval, a
/// delivery) waits for the batch running when it asked, so it stays short (25: a few
/// milliseconds; 100 made the sweep 6 % faster and a sign-in's p99 2.5 times longer).
const EXPIRY_BATCH: usize = 25;

fn expired_event(a: &assignments::AssignmentRow) -> AuditEvent {
    AuditEvent::new(None, "assignment.expired", "assignment", a.id.0)
        .before(json!({"state": a.state.as_str(), "end": a.end_at}))
        .after(json!({"state": "expired"}))
}

/// End an assignment for a person: its holder (`catalog` is `None`), or someone removing it
/// from a package of `catalog` (that package, when one is named). An assignment elsewhere, or
/// someone else's without a catalog, is "not found".
async fn end_by_person(
    service: &Service,
    actor: &Actor,
    id: AssignmentId,
    reason: &str,
    catalog: Option<(CatalogId, Option<PackageId>)>,
) -> DomainResult<()> {
    let now = service.now();
    let mut tx = service.db.begin().await?;
    let a = assignments::assignment(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("assignment"))?;
    // Serialize with every other change to this person's access, then read it again.
    service.db.lock_user(&mut tx, a.user).await?;
    let a = assignments::assignment(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("assignment"))?;
    let removing = match catalog {
        None if a.user == actor.id() => false,
        None => return Err(DomainError::not_found("assignment")),
        Some((c, package)) => {
            let pkg =
                catalog::package(&mut tx, a.package).await?.ok_or_else(|| DomainError::not_found("assignment"))?;
            if pkg.catalog_id != c || package.is_some_and(|p| p != a.package) {
                return Err(DomainError::not_found("assignment"));
            }
            true
        }
    };
    if !a.state.is_live() {
        return Err(DomainError::AlreadyDecided(format!("this access has already {}", a.state.as_str())));
    }
    let action = if removing { "assignment.removed" } else { "assignment.given_up" };
    let mut events = vec![AuditEvent::new(Some(actor.id()), action, "assignment", id.0)
        .before(json!({"state": a.state.as_str()}))
        .after(json!({"state": "removed"}))
        .reason(reason.trim())];
    if !end_assignment(service, &mut tx, &a, AssignmentState::Removed, now, &mut events).await? {
        return Err(DomainError::AlreadyDecided("this access has already ended".into()));
    }
    service.commit(tx, events).await
}

/// End these assignments (guarded: only those still live move to `to`) and give up their
/// grants: a role no other live assignment of the person holds has its removal queued, once
/// per person and role; a role still held elsewhere is kept (the grant marked removed).
/// Returns the assignments ended, in the order given, each with its `grants.removal_enqueued`
/// event saying exactly what was queued and what stays held. The callers hold the lock of
/// every person concerned.
pub(super) async fn end_assignments(
    service: &Service,
    tx: &mut Conn,
    ids: &[AssignmentId],
    to: AssignmentState,
    now: DateTime<Utc>,
) -> DomainResult<Vec<(AssignmentId, Option<AuditEvent>)>> {
    use crate::domain::request::GrantState;
    service.checkpoint("assignment.ending").await;
    let ended = assignments::end_many(tx, ids, to, now).await?;
    // In the order given, as if one after the other: the last of several holding the same
    // role queues its removal, the earlier ones see it still held.
    let ended: Vec<AssignmentId> = ids.iter().filter(|id| ended.contains(id)).copied().collect();
    let grants = assignments::grants_held_by(tx, &ended).await?;
    let pairs: Vec<(UserId, ResourceRoleId)> = grants.iter().map(|g| (g.user, g.role)).collect();
    let held_elsewhere = assignments::still_held(tx, &pairs).await?;
    let position = |a: AssignmentId| ended.iter().position(|e| *e == a).unwrap_or(usize::MAX);
    let mut last_holder: HashMap<(UserId, ResourceRoleId), (usize, GrantId)> = HashMap::new();
    for g in &grants {
        let key = (position(g.assignment), g.id);
        let slot = last_holder.entry((g.user, g.role)).or_insert(key);
        *slot = (*slot).max(key);
    }
    let (mut removing, mut kept) = (Vec::new(), Vec::new());
    let mut told: HashMap<AssignmentId, (Vec<i64>, Vec<i64>)> = HashMap::new();
    for g in &grants {
        let pair = (g.user, g.role);
        let entry = told.entry(g.assignment).or_default();
        if !held_elsewhere.contains(&pair) && last_holder.get(&pair).is_some_and(|(_, id)| *id == g.id) {
            removing.push(g.id);
            entry.0.push(g.role.0);
        } else {
            kept.push(g.id);
            entry.1.push(g.role.0);
        }
    }
    assignments::set_grants_state(tx, &kept, GrantState::Removed, "still held through another assignment", now).await?;
    assignments::set_grants_state(tx, &removing, GrantState::Removing, "", now).await?;
    assignments::enqueue_removals(tx, &removing, now).await?;
    Ok(ended
        .into_iter()
        .map(|id| {
            // Say exactly what was done: which removals were queued, which roles stay held.
            let event = told.remove(&id).map(|(enqueued, kept)| {
                AuditEvent::new(None, "grants.removal_enqueued", "assignment", id.0)
                    .after(json!({"removing": enqueued, "still_held_elsewhere": kept}))
            });
            (id, event)
        })
        .collect())
}

/// [`end_assignments`] for one: whether it was still live and ended; its event pushed.
pub(super) async fn end_assignment(
    service: &Service,
    tx: &mut Conn,
    a: &assignments::AssignmentRow,
    to: AssignmentState,
    now: DateTime<Utc>,
    events: &mut Vec<AuditEvent>,
) -> DomainResult<bool> {
    let Some((_, event)) = end_assignments(service, tx, &[a.id], to, now).await?.pop() else { return Ok(false) };
    events.extend(event);
    Ok(true)
}

/// The end an extension gives, counted from `now` (the moment it is granted): the policy's
/// period again, never shorter than what the holder already has.
fn extended_end(
    expiration: Expiration,
    current: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DomainResult<Option<DateTime<Utc>>> {
    let fresh = expiration.end_for(now)?;
    Ok(match (fresh, current) {
        (Some(f), Some(c)) => Some(f.max(c)),
        (fresh, _) => fresh,
    })
}
