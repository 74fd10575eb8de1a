//! Automatic assignment (birthright access, issue 13): a policy may carry a rule over the
//! person ([`crate::domain::rule`]); everyone active who matches it gets the package, and
//! those it gave the package to lose it once they no longer match — as they arrive, change
//! and leave: after a sign-in that updates the person, and on a pass every ten minutes that
//! also sees directory changes (groups, imports). Each change is its own transaction under
//! the person's lock, checked again there, audited and provisioned like any assignment: a
//! `system_add` request approved at once, or the assignment removed.
//!
//! What a rule would do is computed without changing anything ([`Service::rule_diff`]): the
//! builder shows it before saving, and saving applies the same computation.

use std::collections::HashMap;

use serde_json::json;

use super::Service;
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Operator, Permission};
use crate::domain::ids::*;
use crate::domain::policy::Policy;
use crate::domain::request::{AssignmentState, RequestKind, RequestState};
use crate::domain::rule::{PersonFacts, Rule};
use crate::domain::{DomainError, DomainResult};
use crate::store::requests::NewRequestRow;
use crate::store::{assignments, birthright, catalog, requests, Conn};

/// Who a rule would give a package to, and whose access from it would end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleDiff {
    /// People who match and do not hold the package, by id, with their names.
    pub gains: Vec<(UserId, String)>,
    /// Assignments the rule made under this policy whose holders no longer match.
    pub losses: Vec<(AssignmentId, UserId, String)>,
    /// People who match but cannot have it (separation of duties, the package closed): why.
    pub blocked: Vec<(UserId, String, String)>,
}

impl RuleDiff {
    /// Names who gains and who loses, to tell whether it is still what someone reviewed.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let gains: Vec<String> = self.gains.iter().map(|(u, _)| u.0.to_string()).collect();
        let losses: Vec<String> = self.losses.iter().map(|(a, _, _)| a.0.to_string()).collect();
        let text = format!("gains:{};losses:{}", gains.join(","), losses.join(","));
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    }
}

/// A person as a what-if names them.
fn named(name: &str, facts: &PersonFacts) -> String {
    format!("{name} ({})", facts.email)
}

impl Service {
    /// What `rule` would do for `package` under `policy` (none: a policy not saved yet) to
    /// `people` (active, with what rules read), changing nothing. Someone the rule cannot be
    /// evaluated for is neither given nor taken anything.
    pub(super) async fn rule_diff(
        &self,
        conn: &mut Conn,
        (package, policy): (PackageId, Option<PolicyId>),
        rule: &Rule,
        people: &[(UserId, String, PersonFacts)],
        one: Option<UserId>,
    ) -> DomainResult<RuleDiff> {
        let mut held: HashMap<UserId, Vec<birthright::Held>> = HashMap::new();
        for h in birthright::held(conn, package, one).await? {
            held.entry(h.user).or_default().push(h);
        }
        let mut diff = RuleDiff::default();
        for (id, name, facts) in people.iter().filter(|(id, ..)| one.is_none_or(|o| o == *id)) {
            let mine = held.get(id).map(Vec::as_slice).unwrap_or_default();
            match rule.matches(facts) {
                Some(true) if mine.is_empty() => {
                    // (A package not made yet has nothing to block it.)
                    let blocker = match package.0 {
                        0 => None,
                        _ => super::requests::access_blocker(conn, package, *id).await?,
                    };
                    match blocker {
                        Some(why) => diff.blocked.push((*id, named(name, facts), why)),
                        None => diff.gains.push((*id, named(name, facts))),
                    }
                }
                Some(false) => {
                    for h in mine.iter().filter(|h| h.by_rule && Some(h.policy) == policy) {
                        diff.losses.push((h.assignment, *id, named(name, facts)));
                    }
                }
                _ => {}
            }
        }
        Ok(diff)
    }

    /// The pass: every policy with a rule brought in line with it. Returns (given, removed).
    #[tracing::instrument(name = "apply_rules", skip_all, fields(operator = %by))]
    pub async fn apply_rules(&self, by: &Operator<'_>) -> DomainResult<(usize, usize)> {
        by.require(Permission::Administer)?;
        self.apply_rules_to(None).await
    }

    /// One person brought in line with every rule (after their sign-in changed them).
    #[tracing::instrument(name = "apply_rules_for", skip_all, fields(user = user.0))]
    pub async fn apply_rules_for(&self, user: UserId) -> DomainResult<(usize, usize)> {
        self.apply_rules_to(Some(user)).await
    }

    pub(super) async fn apply_rules_to(&self, one: Option<UserId>) -> DomainResult<(usize, usize)> {
        let (policies, people) = {
            let mut conn = self.db.pool().acquire().await?;
            let snapshot = self.catalog_snapshot(&mut conn).await?;
            let policies: Vec<Policy> = snapshot.ruled_policies().cloned().collect();
            // Read once for every rule of the pass.
            let people = if policies.is_empty() { Vec::new() } else { birthright::people(&mut conn, one).await? };
            (policies, people)
        };
        let (mut given, mut removed) = (0, 0);
        for p in policies {
            match self.apply_rule(&p, &people, one).await {
                Ok((g, r)) => (given, removed) = (given + g, removed + r),
                Err(e) => tracing::error!(policy = p.id.0, error = ?e, "applying a rule failed"),
            }
        }
        Ok((given, removed))
    }

    /// Bring `policy`'s package in line with its rule (for everyone, or one person): each
    /// gain and loss in its own transaction. Returns (given, removed).
    pub(super) async fn apply_rule(
        &self,
        policy: &Policy,
        people: &[(UserId, String, PersonFacts)],
        one: Option<UserId>,
    ) -> DomainResult<(usize, usize)> {
        let Some(source) = policy.auto_rule.as_deref() else { return Ok((0, 0)) };
        let rule = Rule::parse(source)?;
        let diff = {
            let mut conn = self.db.pool().acquire().await?;
            self.rule_diff(&mut conn, (policy.package_id, Some(policy.id)), &rule, people, one).await?
        };
        let (mut given, mut removed) = (0, 0);
        for (user, _) in &diff.gains {
            match self.give_by_rule(policy.id, &rule, *user).await {
                Ok(true) => given += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(policy = policy.id.0, user = user.0, error = ?e, "a rule's assignment failed")
                }
            }
        }
        for (assignment, user, _) in &diff.losses {
            match self.take_by_rule(policy.id, &rule, *assignment, *user).await {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(policy = policy.id.0, user = user.0, error = ?e, "a rule's removal failed"),
            }
        }
        Ok((given, removed))
    }

    /// Give the person the policy's package, under their lock, if they still match, hold
    /// nothing of it, and nothing (separation of duties, the package closed) stands in the way.
    async fn give_by_rule(&self, policy: PolicyId, rule: &Rule, user: UserId) -> DomainResult<bool> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        self.db.lock_user(&mut tx, user).await?;
        // Read again under the lock: the rule as it is now (an edit may have changed it since
        // the pass began), and the person as they are now.
        let Some(p) = catalog::policy(&mut tx, policy).await? else { return Ok(false) };
        let still = birthright::people(&mut tx, Some(user)).await?;
        if p.auto_rule.as_deref().map(str::trim) != Some(rule.source())
            || !p.enabled
            || still.first().and_then(|(_, _, facts)| rule.matches(facts)) != Some(true)
        {
            return Ok(false);
        }
        if assignments::live_assignment(&mut tx, user, p.package_id).await?.is_some()
            || super::requests::access_blocker(&mut tx, p.package_id, user).await?.is_some()
        {
            return Ok(false);
        }
        let row = NewRequestRow {
            kind: RequestKind::SystemAdd,
            state: RequestState::Approved,
            requestor: user,
            target: user,
            package: p.package_id,
            policy: p.id,
            stages: &[],
            current_stage: 0,
            stage_due_at: None,
            justification: "",
            answers: &[],
            start_at: None,
            end_at: None,
            outcome_reason: "",
        };
        let id = requests::insert(&mut tx, &row, now).await?;
        let mut events = vec![AuditEvent::new(None, "request.auto_assigned", "request", id.0)
            .after(json!({"package": p.package_id, "policy": p.id, "target": user}))
            .reason(format!("matches the rule of “{}”", p.name))];
        let current = requests::request(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("request"))?;
        let state = self.approve_and_grant(&mut tx, &current, &mut events, now).await?;
        if !matches!(state, RequestState::Delivering | RequestState::Delivered) {
            return Ok(false);
        }
        self.commit(tx, events).await?;
        Ok(true)
    }

    /// End an assignment the rule made, under the holder's lock, if they still do not match.
    async fn take_by_rule(
        &self,
        policy: PolicyId,
        rule: &Rule,
        assignment: AssignmentId,
        user: UserId,
    ) -> DomainResult<bool> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        self.db.lock_user(&mut tx, user).await?;
        let Some(a) = assignments::assignment(&mut tx, assignment).await? else { return Ok(false) };
        let Some(p) = catalog::policy(&mut tx, policy).await? else { return Ok(false) };
        let still = birthright::people(&mut tx, Some(user)).await?;
        // Only a person the rule, as it is now, says no to (a disabled person is the leaver
        // path's, not the rule's).
        if a.policy != policy
            || !a.state.is_live()
            || p.auto_rule.as_deref().map(str::trim) != Some(rule.source())
            || !p.enabled
            || still.first().and_then(|(_, _, facts)| rule.matches(facts)) != Some(false)
        {
            return Ok(false);
        }
        let name = p.name;
        let mut events = vec![AuditEvent::new(None, "assignment.removed", "assignment", assignment.0)
            .before(json!({"state": a.state.as_str()}))
            .after(json!({"state": "removed"}))
            .reason(format!("no longer matches the rule of “{name}”"))];
        if !super::assignments::end_assignment(self, &mut tx, &a, AssignmentState::Removed, now, &mut events).await? {
            return Ok(false);
        }
        self.commit(tx, events).await?;
        Ok(true)
    }
}
