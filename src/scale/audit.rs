//! The audit trail: every item's events in the order they happened, hashed into one chain
//! with the application's own function ([`chain_hash`]), so `quartermaster verify` proves it.
//!
//! Items are walked in the order their requests were filed; each one's later events (the
//! approvals, the grant, the deliveries, an expiry months later) wait in a min-heap until the
//! walk passes their time, so ids and times rise together.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::plan::{Item, Kind, Outcome, Plan, DAY};
use super::rows::{self, Rows, Sink};
use super::ScaleError;
use crate::domain::audit::{chain_hash, AuditEvent, GENESIS_HASH};
use crate::domain::ids::UserId;

/// An event about one object, by a person (an index into the plan's people) or the system.
pub fn event(actor: Option<u32>, action: &str, object_type: &str, object_id: i64) -> AuditEvent {
    AuditEvent::new(actor.map(|a| UserId(Plan::person_id(a))), action, object_type, object_id)
}

fn time(ms: i64) -> Value {
    json!(DateTime::<Utc>::from_timestamp_millis(ms))
}

/// The big package's description after `edits` edits.
pub fn package_description(plan: &Plan, package: u32, edits: i64) -> String {
    let base = &plan.packages[package as usize].description;
    if edits == 0 {
        base.clone()
    } else {
        format!("{base} Revision {edits}.")
    }
}

/// When the big package was edited for the `k`-th time (0-based): spread over the history.
pub fn package_edited_at(plan: &Plan, k: u64) -> i64 {
    let span = plan.now - plan.founded - 2 * DAY;
    plan.founded + DAY + (span / (plan.counts.audit_object_events as i64 + 1)) * (k as i64 + 1)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum What {
    Submitted,
    AdminAssigned,
    StageApproved,
    Approved,
    AssignmentCreated,
    GrantDelivered,
    AssignmentDelivered,
    Expired,
    Removed,
    GivenUp,
    RemovalEnqueued,
    GrantRemoved,
    Escalated,
    Denied,
    Canceled,
    RequestExpired,
    PackageEdited,
}

/// (time, order of scheduling, item, what, stage/grant/edit number)
type Scheduled = Reverse<(i64, u64, u32, What, u32)>;

struct Chain<'s> {
    rows: Rows<'s>,
    prev: String,
    id: i64,
}

impl Chain<'_> {
    fn push(&mut self, at: i64, e: AuditEvent) -> Result<(), ScaleError> {
        let before = e.before.to_string();
        let after = e.after.to_string();
        let when = DateTime::<Utc>::from_timestamp_millis(at)
            .ok_or_else(|| ScaleError::Invalid(format!("an event time is out of range: {at}")))?;
        let hash = chain_hash(&self.prev, when, &e, &before, &after);
        self.id += 1;
        let prev = std::mem::replace(&mut self.prev, hash.clone());
        self.rows
            .int(self.id)
            .int(at)
            .opt_int(e.actor.map(|a| a.0))
            .text(e.action)
            .text(e.object_type)
            .int(e.object_id)
            .text(before)
            .text(after)
            .text(e.reason)
            .text(prev)
            .text(hash);
        self.rows.end_row()
    }
}

struct Schedule {
    heap: BinaryHeap<Scheduled>,
    seq: u64,
}

impl Schedule {
    fn at(&mut self, at: i64, item: u32, what: What, n: u32) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, item, what, n)));
    }

    /// Every event of one item, in the order they happen.
    fn item(&mut self, plan: &Plan, index: u32, item: &Item) {
        let p = &plan.packages[item.package as usize];
        let stages = p.stages().len() as u32;
        match item.kind {
            Kind::Assigned => {
                self.at(item.created, index, What::Submitted, 0);
                for k in 1..stages {
                    self.at(Plan::decided_at(item, k as usize), index, What::StageApproved, k);
                }
                if stages > 0 {
                    self.at(Plan::decided_at(item, stages as usize), index, What::Approved, stages);
                }
                self.granted(plan, index, item);
            }
            Kind::AdminAssigned => {
                self.at(item.created, index, What::AdminAssigned, 0);
                self.granted(plan, index, item);
            }
            Kind::Pending => {
                self.at(item.created, index, What::Submitted, 0);
                for k in 1..u32::from(item.stage) {
                    self.at(Plan::decided_at(item, k as usize), index, What::StageApproved, k);
                }
                if item.escalated {
                    self.at(rows::escalated_at(plan, item), index, What::Escalated, u32::from(item.stage));
                }
            }
            Kind::Refused => {
                self.at(item.created, index, What::Submitted, 0);
                for k in 1..u32::from(item.stage) {
                    self.at(Plan::decided_at(item, k as usize), index, What::StageApproved, k);
                }
                let what = match item.outcome {
                    Outcome::Denied => What::Denied,
                    Outcome::Canceled => What::Canceled,
                    _ => What::RequestExpired,
                };
                self.at(item.ended, index, what, u32::from(item.stage));
            }
        }
    }

    /// The assignment, its delivery, and its end.
    fn granted(&mut self, plan: &Plan, index: u32, item: &Item) {
        let roles = plan.packages[item.package as usize].roles.len() as u32;
        self.at(item.start, index, What::AssignmentCreated, 0);
        if item.outcome == Outcome::Delivering {
            return;
        }
        for j in 0..roles {
            self.at(Plan::grant_delivered_at(item, j as usize), index, What::GrantDelivered, j);
        }
        self.at(plan.delivered_at(item), index, What::AssignmentDelivered, 0);
        let end = match item.outcome {
            Outcome::Expired => What::Expired,
            Outcome::Removed => What::Removed,
            Outcome::GivenUp => What::GivenUp,
            _ => return,
        };
        self.at(item.ended, index, end, 0);
        self.at(item.ended, index, What::RemovalEnqueued, 0);
        for j in 0..roles {
            self.at(Plan::grant_removed_at(item, j as usize), index, What::GrantRemoved, j);
        }
    }
}

/// The event itself.
fn build(plan: &Plan, index: u32, what: What, n: u32) -> AuditEvent {
    if what == What::PackageEdited {
        return package_edit(plan, n);
    }
    let item = &plan.items[index as usize];
    let request = i64::from(index) + 1;
    let p = &plan.packages[item.package as usize];
    let package = i64::from(item.package) + 1;
    let policy = p.policy.id.0;
    let user = Plan::person_id(item.user);
    let aid = i64::from(item.aid);
    let grant = |j: u32| {
        let role = i64::from(p.roles[j as usize]) + 1;
        (
            i64::from(item.gid) + i64::from(j),
            json!({"assignment": aid, "user": user, "resource_role": role, "system": "builtin"}),
        )
    };
    let roles = p.roles.len();
    let stage = |k: u32| json!({"state": "pending_approval", "stage": k});
    match what {
        What::Submitted => {
            let state = if p.stages().is_empty() { "approved" } else { "pending_approval" };
            event(Some(item.requestor), "request.submitted", "request", request).after(json!({
                "state": state, "package": package, "policy": policy, "target": user,
                "justification": plan.request_justification(item), "answers": plan.answers(item),
                "requested_start": Value::Null, "requested_end": Value::Null,
            }))
        }
        What::AdminAssigned => event(Some(item.requestor), "request.admin_assigned", "request", request)
            .after(json!({"package": package, "policy": policy, "target": user, "end": Value::Null}))
            .reason(plan.request_justification(item)),
        What::StageApproved => {
            event(Some(plan.decider(item, n as usize)), "request.stage_approved", "request", request)
                .before(stage(n))
                .after(stage(n + 1))
                .reason(rows::approval_justification(plan, item, n as usize))
        }
        What::Approved => event(Some(plan.decider(item, n as usize)), "request.approved", "request", request)
            .before(stage(n))
            .after(json!({"state": "approved", "stage": n}))
            .reason(rows::approval_justification(plan, item, n as usize)),
        What::AssignmentCreated => event(None, "assignment.created", "assignment", aid).after(json!({
            "user": user, "package": package, "policy": policy, "request": request,
            "start": time(item.start), "end": item.end.map(time), "grants": roles,
        })),
        What::GrantDelivered => {
            let (id, after) = grant(n);
            event(None, "grant.delivered", "grant", id).after(after)
        }
        What::AssignmentDelivered => event(None, "assignment.delivered", "assignment", aid)
            .before(json!({"state": "delivering"}))
            .after(json!({"state": "delivered", "grants": roles, "delivered": roles})),
        What::Expired => event(None, "assignment.expired", "assignment", aid)
            .before(json!({"state": "delivered", "end": item.end.map(time)}))
            .after(json!({"state": "expired"})),
        What::Removed => event(Some(plan.remover(item)), "assignment.removed", "assignment", aid)
            .before(json!({"state": "delivered"}))
            .after(json!({"state": "removed"}))
            .reason("No longer needed in this team"),
        What::GivenUp => event(Some(item.user), "assignment.given_up", "assignment", aid)
            .before(json!({"state": "delivered"}))
            .after(json!({"state": "removed"}))
            .reason("I do not need this any more"),
        What::RemovalEnqueued => {
            let removing: Vec<i64> = p.roles.iter().map(|r| i64::from(*r) + 1).collect();
            event(None, "grants.removal_enqueued", "assignment", aid)
                .after(json!({"removing": removing, "still_held_elsewhere": Vec::<i64>::new()}))
        }
        What::GrantRemoved => {
            let (id, after) = grant(n);
            event(None, "grant.removed", "grant", id).after(after)
        }
        What::Escalated => event(None, "request.escalated", "request", request)
            .after(json!({"stage": n}))
            .reason("no decision in time"),
        What::Denied => event(Some(plan.decider(item, n as usize)), "request.denied", "request", request)
            .before(stage(n))
            .after(json!({"state": "denied", "stage": n}))
            .reason(rows::deny_justification(item)),
        What::Canceled => event(Some(item.requestor), "request.canceled", "request", request)
            .before(json!({"state": "pending_approval"}))
            .after(json!({"state": "canceled"})),
        What::RequestExpired => event(None, "request.expired", "request", request)
            .before(stage(n))
            .after(json!({"state": "expired"}))
            .reason("no decision in time"),
        What::PackageEdited => package_edit(plan, n),
    }
}

/// The `k`-th edit of the big package (its description), by its catalog's package manager.
fn package_edit(plan: &Plan, k: u32) -> AuditEvent {
    let id = plan.big_package;
    let p = &plan.packages[id as usize];
    let by = plan.catalogs[p.catalog as usize].package_managers.first().copied().unwrap_or(plan.administrator);
    let shape = |edits: i64| {
        json!({
            "id": i64::from(id) + 1, "catalog_id": i64::from(p.catalog) + 1, "name": p.name,
            "description": package_description(plan, id, edits), "hidden": false, "enabled": true,
            "version": 1 + edits,
        })
    };
    event(Some(by), "package.updated", "package", i64::from(id) + 1)
        .before(shape(i64::from(k)))
        .after(shape(i64::from(k) + 1))
}

/// Write the whole trail; returns the head (`id`, `hash`).
pub fn audit_events(plan: &Plan, sink: &Sink) -> Result<(i64, String), ScaleError> {
    let rows = sink.table(
        "audit_events",
        &[
            "id",
            "at",
            "actor_id",
            "action",
            "object_type",
            "object_id",
            "before",
            "after",
            "reason",
            "prev_hash",
            "hash",
        ],
    );
    let mut chain = Chain { rows, prev: GENESIS_HASH.to_owned(), id: 0 };
    rows::setup_events(plan, |at, e| chain.push(at, e))?;
    let mut schedule = Schedule { heap: BinaryHeap::new(), seq: 0 };
    let edits = u32::try_from(plan.counts.audit_object_events).unwrap_or(u32::MAX);
    for k in 0..edits {
        schedule.at(package_edited_at(plan, u64::from(k)), u32::MAX, What::PackageEdited, k);
    }
    let flush = |schedule: &mut Schedule, until: i64, chain: &mut Chain| -> Result<(), ScaleError> {
        while let Some(Reverse((at, _, index, what, n))) = schedule.heap.peek().copied() {
            if at >= until {
                break;
            }
            schedule.heap.pop();
            chain.push(at, build(plan, index, what, n))?;
        }
        Ok(())
    };
    for (index, item) in plan.items.iter().enumerate() {
        flush(&mut schedule, item.created, &mut chain)?;
        schedule.item(plan, index as u32, item);
    }
    flush(&mut schedule, i64::MAX, &mut chain)?;
    let (id, head) = (chain.id, chain.prev.clone());
    chain.rows.finish()?;
    if id as u64 != plan.counts.audit_events {
        return Err(ScaleError::Invalid(format!(
            "wrote {id} audit events where the plan counted {}",
            plan.counts.audit_events
        )));
    }
    Ok((id, head))
}
