//! The request and assignment state machines.
//!
//! Request: `submitted → pending_approval(stage k) → approved → delivering → delivered`, with
//! `partially_delivered` and `delivery_failed`, and the ends `denied`, `canceled`, `expired`,
//! `rejected`. Each transition below is a pure function from the state the caller read to the
//! state it may write; the store writes it only if the row still holds the state read.

use serde::{Deserialize, Serialize};

use super::error::{DomainError, DomainResult};
use super::ids::*;
use super::model::word_enum;
pub use crate::states::{AssignmentState, Decision, RequestState};

word_enum!(RequestKind {
    UserAdd = "user_add",
    UserExtend = "user_extend",
    UserRemove = "user_remove",
    AdminAdd = "admin_add",
    AdminRemove = "admin_remove",
    SystemAdd = "system_add",
    SystemRemove = "system_remove",
});

word_enum!(GrantState {
    Pending = "pending",
    Delivered = "delivered",
    Failed = "failed",
    Removing = "removing",
    Removed = "removed",
});

/// The part of a request the decision rules need.
#[derive(Clone, Debug)]
pub struct PendingRequest {
    pub id: RequestId,
    pub state: RequestState,
    pub requestor: UserId,
    pub target: UserId,
    /// 1-based stage being decided.
    pub current_stage: u32,
    pub stage_count: u32,
    pub escalated: bool,
}

/// What a decision leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionOutcome {
    /// Approved at stage k; stage k+1 starts.
    NextStage(u32),
    /// The last stage approved: the assignment is created.
    Approved,
    /// Denied: the request ends.
    Denied,
}

/// Decide on a pending request. `may_decide` is whether the actor is among the stage's
/// resolved approvers (escalation approvers only after escalation).
pub fn decide(
    req: &PendingRequest,
    actor: UserId,
    may_decide: bool,
    decision: Decision,
    justification: &str,
    justification_required: bool,
) -> DomainResult<DecisionOutcome> {
    if actor == req.requestor || actor == req.target {
        return Err(DomainError::forbidden("you cannot decide on your own request"));
    }
    if req.state != RequestState::PendingApproval {
        return Err(DomainError::AlreadyDecided(format!("this request is {}", req.state.label().to_lowercase())));
    }
    if !may_decide {
        return Err(DomainError::forbidden("you are not an approver for this stage of the request"));
    }
    if justification_required && justification.trim().is_empty() {
        return Err(DomainError::invalid("justification", "this stage asks approvers to give a reason"));
    }
    Ok(match decision {
        Decision::Deny => DecisionOutcome::Denied,
        Decision::Approve if req.current_stage >= req.stage_count => DecisionOutcome::Approved,
        Decision::Approve => DecisionOutcome::NextStage(req.current_stage + 1),
        Decision::Timeout => return Err(DomainError::invalid("decision", "time-outs are decided by the clock")),
    })
}

/// The step a request takes after a decision on one of its stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterDecision {
    pub state: RequestState,
    /// The stage it is at afterwards.
    pub stage: u32,
    /// A new stage starts (its approvers get a new due time).
    pub starts_stage: bool,
    /// The audit action of the decision.
    pub action: &'static str,
}

/// The next-state table of a decision on stage `stage`. `blocked`: the access can no longer
/// be granted (the package went away, or separation of duties now forbids it), checked
/// before a request moves on to another stage; the request is then rejected.
pub fn after_decision(outcome: DecisionOutcome, stage: u32, blocked: bool) -> AfterDecision {
    let (state, at, starts_stage) = match outcome {
        _ if blocked => (RequestState::Rejected, stage, false),
        DecisionOutcome::Denied => (RequestState::Denied, stage, false),
        DecisionOutcome::NextStage(k) => (RequestState::PendingApproval, k, true),
        DecisionOutcome::Approved => (RequestState::Approved, stage, false),
    };
    let action = match outcome {
        DecisionOutcome::Denied => "request.denied",
        DecisionOutcome::NextStage(_) => "request.stage_approved",
        DecisionOutcome::Approved => "request.approved",
    };
    AfterDecision { state, stage: at, starts_stage, action }
}

/// The requestor may cancel while the request waits for a decision.
pub fn cancel(state: RequestState, actor: UserId, requestor: UserId) -> DomainResult<()> {
    if actor != requestor {
        return Err(DomainError::forbidden("only the person who asked can cancel a request"));
    }
    if !state.is_open() {
        return Err(DomainError::AlreadyDecided(format!("this request is {}", state.label().to_lowercase())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(stage: u32, of: u32) -> PendingRequest {
        PendingRequest {
            id: RequestId(1),
            state: RequestState::PendingApproval,
            requestor: UserId(1),
            target: UserId(1),
            current_stage: stage,
            stage_count: of,
            escalated: false,
        }
    }

    #[test]
    fn stages_advance_then_approve() {
        let r = pending(1, 2);
        assert_eq!(decide(&r, UserId(2), true, Decision::Approve, "", false), Ok(DecisionOutcome::NextStage(2)));
        let r = pending(2, 2);
        assert_eq!(decide(&r, UserId(2), true, Decision::Approve, "", false), Ok(DecisionOutcome::Approved));
        assert_eq!(decide(&r, UserId(2), true, Decision::Deny, "", false), Ok(DecisionOutcome::Denied));
    }

    #[test]
    fn self_approval_is_refused_even_when_named() {
        let r = pending(1, 1);
        assert!(matches!(decide(&r, UserId(1), true, Decision::Approve, "", false), Err(DomainError::Forbidden(_))));
    }

    #[test]
    fn late_deciders_are_told_it_is_decided() {
        let mut r = pending(1, 1);
        r.state = RequestState::Denied;
        assert!(matches!(
            decide(&r, UserId(2), true, Decision::Approve, "", false),
            Err(DomainError::AlreadyDecided(_))
        ));
        assert!(matches!(cancel(RequestState::Approved, UserId(1), UserId(1)), Err(DomainError::AlreadyDecided(_))));
        assert!(matches!(cancel(RequestState::PendingApproval, UserId(2), UserId(1)), Err(DomainError::Forbidden(_))));
    }

    #[test]
    fn next_state_table() {
        let step = |o, blocked| {
            let s = after_decision(o, 1, blocked);
            (s.state, s.stage, s.starts_stage)
        };
        assert_eq!(step(DecisionOutcome::NextStage(2), false), (RequestState::PendingApproval, 2, true));
        assert_eq!(step(DecisionOutcome::NextStage(2), true), (RequestState::Rejected, 1, false));
        assert_eq!(step(DecisionOutcome::Denied, false), (RequestState::Denied, 1, false));
        assert_eq!(step(DecisionOutcome::Approved, false), (RequestState::Approved, 1, false));
        assert_eq!(after_decision(DecisionOutcome::Denied, 1, false).action, "request.denied");
        assert_eq!(after_decision(DecisionOutcome::NextStage(2), 1, false).action, "request.stage_approved");
    }

    #[test]
    fn justification_enforced_per_stage() {
        let r = pending(1, 1);
        assert!(matches!(decide(&r, UserId(2), true, Decision::Deny, " ", true), Err(DomainError::Invalid { .. })));
    }
}
