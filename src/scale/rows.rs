//! The rows of every table, from the plan, as multi-row `INSERT` batches.
//!
//! Generators run on a blocking thread and hand full batches to the writer over a bounded
//! channel, so making rows (and hashing the audit chain) overlaps with the database writing
//! the previous batch.

use std::sync::Arc;

use serde_json::json;
use sqlx::any::AnyArguments;
use sqlx::Arguments;
use tokio::sync::mpsc;

use super::audit::event;
use super::plan::{Item, Kind, Outcome, Plan, DAY, HOUR, MINUTE, NONE};
use super::store::{insert_sql, parameter_limit, Batch};
use super::ScaleError;
use crate::domain::audit::AuditEvent;
use crate::domain::model::Role;
use crate::domain::policy::RequestorRef;
use crate::store::Backend;

/// Where batches go: the writer at the other end of the channel.
pub struct Sink {
    tx: mpsc::Sender<Batch>,
    backend: Backend,
}

impl Sink {
    pub fn new(tx: mpsc::Sender<Batch>, backend: Backend) -> Self {
        Self { tx, backend }
    }

    /// Rows of one table.
    pub fn table(&self, table: &'static str, columns: &'static [&'static str]) -> Rows<'_> {
        // Large statements amortize the round trip; beyond a thousand rows little is won, and
        // each statement stays well under a second (and under the parameter limit).
        let per_statement = (parameter_limit(self.backend) / columns.len()).clamp(1, 1_000);
        Rows {
            sink: self,
            table,
            columns,
            per_statement,
            full: Arc::from(insert_sql(self.backend, table, columns, per_statement)),
            args: AnyArguments::default(),
            rows: 0,
            values: 0,
            error: None,
        }
    }
}

/// A table's rows being gathered into batches.
pub struct Rows<'s> {
    sink: &'s Sink,
    table: &'static str,
    columns: &'static [&'static str],
    per_statement: usize,
    full: Arc<str>,
    args: AnyArguments<'static>,
    rows: usize,
    values: usize,
    error: Option<String>,
}

impl Rows<'_> {
    fn add<T>(&mut self, value: T) -> &mut Self
    where
        T: 'static + sqlx::Encode<'static, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert_with(|| format!("{}: {e}", self.table));
        }
        self.values += 1;
        self
    }

    pub fn int(&mut self, value: i64) -> &mut Self {
        self.add(value)
    }

    pub fn opt_int(&mut self, value: Option<i64>) -> &mut Self {
        self.add(value)
    }

    pub fn text(&mut self, value: impl Into<String>) -> &mut Self {
        self.add(value.into())
    }

    pub fn flag(&mut self, value: bool) -> &mut Self {
        self.add(i64::from(value))
    }

    /// The row is complete: send the batch when it is full.
    pub fn end_row(&mut self) -> Result<(), ScaleError> {
        if let Some(e) = self.error.take() {
            return Err(ScaleError::Invalid(format!("cannot encode a value for {e}")));
        }
        self.rows += 1;
        if self.values != self.rows * self.columns.len() {
            return Err(ScaleError::Invalid(format!("a row of {} has the wrong number of values", self.table)));
        }
        if self.rows == self.per_statement {
            self.send(self.full.clone())?;
        }
        Ok(())
    }

    fn send(&mut self, sql: Arc<str>) -> Result<(), ScaleError> {
        let batch = Batch { sql, args: std::mem::take(&mut self.args), rows: self.rows };
        self.rows = 0;
        self.values = 0;
        self.sink.tx.blocking_send(batch).map_err(|_| ScaleError::Aborted)
    }

    /// Send what is left.
    pub fn finish(mut self) -> Result<(), ScaleError> {
        if self.rows > 0 {
            let sql = Arc::from(insert_sql(self.sink.backend, self.table, self.columns, self.rows));
            self.send(sql)?;
        }
        Ok(())
    }
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String, ScaleError> {
    serde_json::to_string(value).map_err(|e| ScaleError::Invalid(e.to_string()))
}

/// When the directory was imported.
fn imported(plan: &Plan) -> i64 {
    plan.founded - DAY
}

pub fn people(plan: &Plan, sink: &Sink) -> Result<(), ScaleError> {
    let mut t = sink.table(
        "users",
        &[
            "id",
            "email",
            "display_name",
            "department",
            "job_title",
            "manager_id",
            "kind",
            "state",
            "created_at",
            "updated_at",
        ],
    );
    let at = imported(plan);
    for (i, p) in plan.people.iter().enumerate() {
        let i = i as u32;
        t.int(Plan::person_id(i))
            .text(p.email(i))
            .text(p.display_name())
            .text(super::plan::DEPARTMENTS[p.dept as usize])
            .text(p.job_title(i))
            .opt_int((p.manager != NONE).then(|| Plan::person_id(p.manager)))
            .text("member")
            .text("active")
            .int(at)
            .int(at);
        t.end_row()?;
    }
    t.finish()
}

pub fn groups(plan: &Plan, sink: &Sink) -> Result<(), ScaleError> {
    let mut t = sink.table("directory_groups", &["id", "name", "description", "source", "created_at"]);
    for (i, g) in plan.groups.iter().enumerate() {
        t.int(i as i64 + 1).text(g.name.clone()).text(g.description.clone()).text("local").int(imported(plan));
        t.end_row()?;
    }
    t.finish()?;
    let mut t = sink.table("group_members", &["group_id", "user_id"]);
    for (i, p) in plan.people.iter().enumerate() {
        for g in [plan.dept_groups[p.dept as usize], p.team] {
            if g != NONE {
                t.int(i64::from(g) + 1).int(Plan::person_id(i as u32));
                t.end_row()?;
            }
        }
    }
    for (g, group) in plan.groups.iter().enumerate() {
        for u in &group.members {
            t.int(g as i64 + 1).int(Plan::person_id(*u));
            t.end_row()?;
        }
    }
    t.finish()
}

/// When each setup object was created (all before the first request).
pub fn catalog_created(plan: &Plan, c: usize) -> i64 {
    plan.founded + c as i64 * 1_000
}
pub fn role_granted(plan: &Plan, k: usize) -> i64 {
    plan.founded + HOUR + k as i64 * 1_000
}
pub fn package_created(plan: &Plan, p: usize) -> i64 {
    plan.founded + 2 * HOUR + p as i64 * 2_000
}

pub fn catalogs(plan: &Plan, sink: &Sink) -> Result<(), ScaleError> {
    let mut t = sink.table("catalogs", &["id", "name", "description", "enabled", "externally_visible", "created_at"]);
    for (i, c) in plan.catalogs.iter().enumerate() {
        t.int(i as i64 + 1)
            .text(c.name.clone())
            .text(c.description.clone())
            .int(1)
            .flag(c.externally_visible)
            .int(catalog_created(plan, i));
        t.end_row()?;
    }
    t.finish()?;
    let mut t = sink.table("role_assignments", &["id", "user_id", "role", "catalog_id", "created_at", "source"]);
    for (k, (user, role, catalog)) in plan.roles.iter().enumerate() {
        t.int(k as i64 + 1)
            .int(Plan::person_id(*user))
            .text(role.as_str())
            .opt_int(catalog.map(|c| i64::from(c) + 1))
            .int(role_granted(plan, k))
            .text("manual");
        t.end_row()?;
    }
    t.finish()?;
    let mut t = sink.table("resource_systems", &["id", "name", "kind", "config", "health", "created_at"]);
    t.int(1).text("Quartermaster groups").text("builtin").text("{}").text("healthy").int(plan.founded);
    t.end_row()?;
    t.finish()?;
    let mut t =
        sink.table("resources", &["id", "system_id", "external_id", "name", "description", "kind", "created_at"]);
    for (i, r) in plan.resources.iter().enumerate() {
        t.int(i as i64 + 1)
            .int(1)
            .text(format!("grp-{:07}", i + 1))
            .text(r.name.clone())
            .text(format!("{} access groups", r.name))
            .text("group")
            .int(catalog_created(plan, r.catalog as usize));
        t.end_row()?;
    }
    t.finish()?;
    let mut t = sink.table("catalog_resources", &["catalog_id", "resource_id"]);
    for (i, r) in plan.resources.iter().enumerate() {
        t.int(i64::from(r.catalog) + 1).int(i as i64 + 1);
        t.end_row()?;
    }
    t.finish()?;
    let mut t = sink.table("resource_roles", &["id", "resource_id", "name"]);
    for (i, (resource, name)) in plan.resource_roles.iter().enumerate() {
        t.int(i as i64 + 1).int(i64::from(*resource) + 1).text(*name);
        t.end_row()?;
    }
    t.finish()?;
    let mut t = sink.table(
        "access_packages",
        &["id", "catalog_id", "name", "description", "hidden", "enabled", "version", "created_at", "updated_at"],
    );
    for (i, p) in plan.packages.iter().enumerate() {
        let edits = if i as u32 == plan.big_package { plan.counts.audit_object_events as i64 } else { 0 };
        t.int(i as i64 + 1)
            .int(i64::from(p.catalog) + 1)
            .text(p.name.clone())
            .text(super::audit::package_description(plan, i as u32, edits))
            .int(0)
            .int(1)
            .int(1 + edits)
            .int(package_created(plan, i))
            .int(if edits > 0 {
                super::audit::package_edited_at(plan, edits as u64 - 1)
            } else {
                package_created(plan, i)
            });
        t.end_row()?;
    }
    t.finish()?;
    let mut t = sink.table("package_resource_roles", &["package_id", "resource_role_id"]);
    for (i, p) in plan.packages.iter().enumerate() {
        for role in &p.roles {
            t.int(i as i64 + 1).int(i64::from(*role) + 1);
            t.end_row()?;
        }
    }
    t.finish()?;
    let mut t = sink.table("package_incompatible_packages", &["package_id", "other_package_id"]);
    for (a, b) in &plan.incompatible {
        t.int(i64::from(*a) + 1).int(i64::from(*b) + 1);
        t.end_row()?;
    }
    t.finish()?;
    let mut t = sink.table(
        "policies",
        &[
            "id",
            "package_id",
            "name",
            "description",
            "requestor_scope",
            "justification_required",
            "schedule_allowed",
            "on_behalf_allowed",
            "approval",
            "questions",
            "expiration",
            "extension_allowed",
            "extension_needs_approval",
            "review",
            "enabled",
            "version",
            "max_lead_days",
            "created_at",
            "updated_at",
        ],
    );
    for (i, p) in plan.packages.iter().enumerate() {
        let pol = &p.policy;
        let at = package_created(plan, i) + 1_000;
        t.int(pol.id.0)
            .int(i as i64 + 1)
            .text(pol.name.clone())
            .text(pol.description.clone())
            .text(pol.scope.as_str())
            .flag(pol.justification_required)
            .flag(pol.schedule_allowed)
            .flag(pol.on_behalf_allowed)
            .text(p.approval_json.clone())
            .text(p.questions_json.clone())
            .text(p.expiration_json.clone())
            .flag(pol.extension_allowed)
            .flag(pol.extension_needs_approval)
            .text(p.review_json.clone())
            .flag(pol.enabled)
            .int(pol.version)
            .int(i64::from(pol.max_lead_days))
            .int(at)
            .int(at);
        t.end_row()?;
    }
    t.finish()?;
    let mut t = sink.table("policy_requestors", &["policy_id", "user_id", "group_id", "org_id"]);
    for p in &plan.packages {
        for r in &p.policy.requestors {
            let (u, g, o) = match *r {
                RequestorRef::User(u) => (Some(u.0), None, None),
                RequestorRef::Group(g) => (None, Some(g.0), None),
                RequestorRef::Org(o) => (None, None, Some(o.0)),
            };
            t.int(p.policy.id.0).opt_int(u).opt_int(g).opt_int(o);
            t.end_row()?;
        }
    }
    t.finish()
}

/// When an approver group or the clock decided the end of a refused request, what was said.
pub fn refusal_reason(plan: &Plan, item: &Item) -> String {
    match item.outcome {
        Outcome::Denied => deny_justification(item).to_owned(),
        Outcome::Canceled => "canceled by the requestor".to_owned(),
        _ => {
            let _ = plan;
            "no decision in time".to_owned()
        }
    }
}

pub fn deny_justification(item: &Item) -> &'static str {
    const WHY: [&str; 4] = [
        "Not needed for this role",
        "Please use the read-only package instead",
        "Ask again when the project starts",
        "Duplicate of an existing access",
    ];
    WHY[(super::plan::mix(item.seed, 300) % WHY.len() as u64) as usize]
}

/// What an approver wrote when approving stage `stage` (1-based).
pub fn approval_justification(plan: &Plan, item: &Item, stage: usize) -> &'static str {
    let p = &plan.packages[item.package as usize];
    if p.stages().get(stage - 1).is_some_and(|s| s.justification_required) {
        Plan::justification(item, 200 + stage as u64)
    } else {
        ""
    }
}

/// When a pending request escalated (its first due time, plus the worker's tick).
pub fn escalated_at(plan: &Plan, item: &Item) -> i64 {
    let p = &plan.packages[item.package as usize];
    let timeout = p.stages().get(item.stage as usize - 1).map_or(1, |s| i64::from(s.timeout_days.max(1))) * DAY;
    item.start + timeout + super::plan::mix_range(item.seed, 30, 0, MINUTE)
}

pub fn requests(plan: &Plan, sink: &Sink) -> Result<(), ScaleError> {
    let mut t = sink.table(
        "requests",
        &[
            "id",
            "kind",
            "state",
            "requestor_id",
            "target_user_id",
            "package_id",
            "policy_id",
            "assignment_id",
            "stages",
            "current_stage",
            "stage_started_at",
            "stage_due_at",
            "escalated",
            "justification",
            "answers",
            "start_at",
            "end_at",
            "outcome_reason",
            "version",
            "created_at",
            "updated_at",
        ],
    );
    for (n, item) in plan.items.iter().enumerate() {
        let p = &plan.packages[item.package as usize];
        let stages = p.stages().len() as i64;
        let delivered = plan.delivered_at(item);
        let (state, stage, started, due, reason, version, updated) = match item.kind {
            Kind::Assigned | Kind::AdminAssigned => {
                let stage = if item.kind == Kind::Assigned { stages } else { 0 };
                let (state, version, updated) = if item.outcome == Outcome::Delivering {
                    ("delivering", 2 + stage, item.start)
                } else {
                    ("delivered", 3 + stage, delivered)
                };
                (state, stage, item.start, None, String::new(), version, updated)
            }
            Kind::Pending => {
                let updated = if item.escalated { escalated_at(plan, item) } else { item.start };
                let version = i64::from(item.stage) + i64::from(item.escalated);
                ("pending_approval", i64::from(item.stage), updated, item.end, String::new(), version, updated)
            }
            Kind::Refused => {
                let state = match item.outcome {
                    Outcome::Denied => "denied",
                    Outcome::Canceled => "canceled",
                    _ => "expired",
                };
                let version = i64::from(item.stage) + 1;
                (state, i64::from(item.stage), item.ended, None, refusal_reason(plan, item), version, item.ended)
            }
        };
        let stages_json = if item.kind == Kind::AdminAssigned { "[]".to_owned() } else { p.stages_json.clone() };
        t.int(n as i64 + 1)
            .text(item.request_kind())
            .text(state)
            .int(Plan::person_id(item.requestor))
            .int(Plan::person_id(item.user))
            .int(i64::from(item.package) + 1)
            .int(p.policy.id.0)
            .opt_int(item.has_assignment().then_some(i64::from(item.aid)))
            .text(stages_json)
            .int(stage)
            .int(started)
            .opt_int(due)
            .flag(item.escalated)
            .text(plan.request_justification(item))
            .text(json_text(&plan.answers(item))?)
            .opt_int(None)
            .opt_int(None)
            .text(reason)
            .int(version)
            .int(item.created)
            .int(updated);
        t.end_row()?;
    }
    t.finish()
}

pub fn request_approvers(plan: &Plan, sink: &Sink) -> Result<(), ScaleError> {
    let mut t = sink.table("request_approvers", &["request_id", "stage", "user_id", "source", "active"]);
    for (n, item) in plan.items.iter().enumerate() {
        if item.kind == Kind::AdminAssigned {
            continue;
        }
        let stages = plan.packages[item.package as usize].stages().len();
        for s in 0..stages {
            let stage = s as u8 + 1;
            for (user, source) in plan.stage_approvers(item.package, s, item.user, item.requestor) {
                // The inbox's rule (`requests::refresh_inbox`): the current stage of a pending
                // request; escalation approvers once it escalated.
                let active = item.kind == Kind::Pending
                    && item.stage == stage
                    && (source != crate::domain::approvers::ApproverSource::Escalation || item.escalated);
                t.int(n as i64 + 1).int(i64::from(stage)).int(Plan::person_id(user)).text(source.as_str()).flag(active);
                t.end_row()?;
            }
        }
    }
    t.finish()
}

pub fn decisions(plan: &Plan, sink: &Sink) -> Result<(), ScaleError> {
    let mut t = sink
        .table("decisions", &["id", "request_id", "stage", "approver_id", "decision", "justification", "decided_at"]);
    for (n, item) in plan.items.iter().enumerate() {
        let approved = match item.kind {
            Kind::Assigned => plan.packages[item.package as usize].stages().len(),
            Kind::AdminAssigned => 0,
            Kind::Pending | Kind::Refused => item.stage as usize - 1,
        };
        let mut id = i64::from(item.did);
        for stage in 1..=approved {
            t.int(id)
                .int(n as i64 + 1)
                .int(stage as i64)
                .opt_int(Some(Plan::person_id(plan.decider(item, stage))))
                .text("approve")
                .text(approval_justification(plan, item, stage))
                .int(Plan::decided_at(item, stage));
            t.end_row()?;
            id += 1;
        }
        if item.kind == Kind::Refused && item.outcome != Outcome::Canceled {
            let stage = item.stage as usize;
            let (approver, decision, why) = if item.outcome == Outcome::Denied {
                (Some(Plan::person_id(plan.decider(item, stage))), "deny", deny_justification(item))
            } else {
                (None, "timeout", "")
            };
            t.int(id).int(n as i64 + 1).int(stage as i64).opt_int(approver).text(decision).text(why).int(item.ended);
            t.end_row()?;
            id += 1;
        }
    }
    t.finish()
}

pub fn assignment_state(item: &Item) -> &'static str {
    match item.outcome {
        Outcome::Delivering => "delivering",
        Outcome::Expired => "expired",
        Outcome::Removed | Outcome::GivenUp => "removed",
        _ => "delivered",
    }
}

pub fn assignments(plan: &Plan, sink: &Sink) -> Result<(), ScaleError> {
    let mut t = sink.table(
        "assignments",
        &[
            "id",
            "user_id",
            "package_id",
            "policy_id",
            "request_id",
            "state",
            "start_at",
            "end_at",
            "version",
            "created_at",
            "updated_at",
        ],
    );
    for (n, item) in plan.items.iter().enumerate() {
        if !item.has_assignment() {
            continue;
        }
        let p = &plan.packages[item.package as usize];
        let updated = match item.outcome {
            Outcome::Delivering => item.start,
            o if o.ended() => item.ended,
            _ => plan.delivered_at(item),
        };
        t.int(i64::from(item.aid))
            .int(Plan::person_id(item.user))
            .int(i64::from(item.package) + 1)
            .int(p.policy.id.0)
            .int(n as i64 + 1)
            .text(assignment_state(item))
            .int(item.start)
            .opt_int(item.end)
            .int(1 + i64::from(item.outcome.ended()))
            .int(item.start)
            .int(updated);
        t.end_row()?;
    }
    t.finish()
}

pub fn grants(plan: &Plan, sink: &Sink) -> Result<(), ScaleError> {
    let mut t = sink.table(
        "grants",
        &["id", "assignment_id", "resource_role_id", "user_id", "state", "attempts", "last_error", "updated_at"],
    );
    for item in plan.items.iter().filter(|i| i.has_assignment()) {
        let p = &plan.packages[item.package as usize];
        for (j, role) in p.roles.iter().enumerate() {
            let (state, attempts, at) = match item.outcome {
                Outcome::Delivering => ("pending", 0, item.start),
                o if o.ended() => ("removed", 3, Plan::grant_removed_at(item, j)),
                _ => ("delivered", 1, Plan::grant_delivered_at(item, j)),
            };
            t.int(i64::from(item.gid) + j as i64)
                .int(i64::from(item.aid))
                .int(i64::from(*role) + 1)
                .int(Plan::person_id(item.user))
                .text(state)
                .int(attempts)
                .text("")
                .int(at);
            t.end_row()?;
        }
    }
    t.finish()
}

/// The built-in groups' members (one per role and person held through a live delivered
/// grant), and the provisioning work still waiting (the grants of assignments being delivered).
pub fn memberships_and_outbox(plan: &Plan, sink: &Sink) -> Result<(), ScaleError> {
    let mut t = sink.table("builtin_memberships", &["resource_role_id", "user_id", "added_at"]);
    for (role, user, at) in &plan.memberships {
        t.int(i64::from(*role) + 1).int(Plan::person_id(*user)).int(*at);
        t.end_row()?;
    }
    t.finish()?;
    let mut t = sink.table(
        "outbox",
        &[
            "id",
            "kind",
            "resource_role_id",
            "user_id",
            "grant_id",
            "state",
            "next_attempt_at",
            "created_at",
            "updated_at",
        ],
    );
    let mut id = 1i64;
    for item in plan.items.iter().filter(|i| i.has_assignment() && i.outcome == Outcome::Delivering) {
        let p = &plan.packages[item.package as usize];
        for (j, role) in p.roles.iter().enumerate() {
            t.int(id)
                .text("add_member")
                .int(i64::from(*role) + 1)
                .int(Plan::person_id(item.user))
                .int(i64::from(item.gid) + j as i64)
                .text("pending")
                .int(item.start)
                .int(item.start)
                .int(item.start);
            t.end_row()?;
            id += 1;
        }
    }
    t.finish()
}

/// The audit events of the setup, in order: catalogs, roles, packages and their policies.
pub fn setup_events(
    plan: &Plan,
    mut emit: impl FnMut(i64, AuditEvent) -> Result<(), ScaleError>,
) -> Result<(), ScaleError> {
    let admin = Some(plan.administrator);
    for (c, cat) in plan.catalogs.iter().enumerate() {
        emit(
            catalog_created(plan, c),
            event(admin, "catalog.created", "catalog", c as i64 + 1).after(json!({
                "name": cat.name, "description": cat.description, "externally_visible": cat.externally_visible,
            })),
        )?;
    }
    for (k, (user, role, catalog)) in plan.roles.iter().enumerate() {
        let scope = catalog.map(|c| i64::from(c) + 1);
        emit(
            role_granted(plan, k),
            event(admin, "role.granted", "user", Plan::person_id(*user))
                .after(json!({"role": Role::as_str(*role), "catalog": scope})),
        )?;
    }
    for (i, p) in plan.packages.iter().enumerate() {
        let at = package_created(plan, i);
        let roles: Vec<i64> = p.roles.iter().map(|r| i64::from(*r) + 1).collect();
        emit(
            at,
            event(admin, "package.created", "package", i as i64 + 1)
                .after(json!({"catalog": p.catalog + 1, "name": p.name, "roles": roles})),
        )?;
        emit(at + 1_000, event(admin, "policy.created", "policy", p.policy.id.0).after(json!(p.policy)))?;
    }
    Ok(())
}
