//! Read models for the pages: my requests with their timelines, my access, my approvals.

use chrono::Duration;

use super::Service;
use crate::domain::approvers::ApproverSource;
use crate::domain::authz::Actor;
use crate::domain::eligibility::{may_request, RequestorFacts};
use crate::domain::ids::*;
use crate::domain::policy::{ApproverSpec, Expiration, Policy, QuestionKind};
use crate::domain::request::{Decision, GrantState, RequestKind, RequestState};
use crate::domain::sod;
use crate::domain::{DomainError, DomainResult};
use crate::store::requests::{DecisionRow, RequestRow};
use crate::store::{assignments, catalog, directory, requests, to_ms};
use crate::views::*;

/// How many requests My Access shows at once, each with its timeline (older ones a page on).
const REQUESTS_PAGE: i64 = 10;
/// How many assignments My Access shows at once.
const ACCESS_PAGE: i64 = 50;
/// How many requests an approver sees at once, each with what a decision needs.
const APPROVALS_PAGE: i64 = 25;
/// How many past decisions an approver sees at once.
const HISTORY_PAGE: i64 = 50;
/// Access ending within this window counts as "expiring soon".
const EXPIRING_SOON_DAYS: i64 = 14;

impl Service {
    /// A package's page: its resources, and the policies this person may request under.
    #[tracing::instrument(name = "package_detail", skip_all, fields(actor = actor.id().0, package = id.0))]
    pub async fn package_detail(&self, actor: &Actor, id: PackageId) -> DomainResult<PackageDetail> {
        let mut conn = self.db.pool().acquire().await?;
        let known = self.catalog_snapshot(&mut conn).await?;
        let package = known.package(id).ok_or_else(|| DomainError::not_found("access package"))?;
        let catalog_row = known.catalog(package.catalog_id).ok_or_else(|| DomainError::not_found("access package"))?;
        let (groups, org_configured) = directory::requestor_context(&mut conn, &actor.user).await?;
        let facts = RequestorFacts { user: &actor.user, groups: &groups, org_configured };
        let policies: Vec<&Policy> = known.policies_of(id).iter().filter(|p| may_request(&facts, p)).collect();
        // A guest who has a link to a package in a catalog not visible to externals learns
        // nothing about it.
        if policies.is_empty()
            || !package.enabled
            || !crate::domain::eligibility::may_see_catalog(&actor.user, catalog_row)
        {
            return Err(DomainError::not_found("access package"));
        }
        let roles = known.roles_of(id);
        let rules = known.sod_rules(id);
        // What the person holds matters only to a rule against another package.
        let held = if rules.incompatible_packages.is_empty() {
            Vec::new()
        } else {
            assignments::live_packages(&mut conn, actor.id()).await?
        };
        let holdings = sod::Holdings { packages: held, groups };
        let conflicts = sod::conflicts(&rules, &holdings);
        let mut approver_names = std::collections::HashMap::new();
        let named: Vec<UserId> = policies
            .iter()
            .flat_map(|p| p.approval.stages.iter().flat_map(|s| s.primary.iter()))
            .filter_map(|s| match s {
                ApproverSpec::User { id } => Some(*id),
                _ => None,
            })
            .collect();
        approver_names.extend(directory::names(&mut conn, &named).await?);
        let by_group = policies
            .iter()
            .flat_map(|p| p.approval.stages.iter().flat_map(|s| s.primary.iter()))
            .any(|s| matches!(s, ApproverSpec::Group { .. }));
        let group_names =
            if by_group { directory::group_names(&mut conn).await? } else { std::collections::HashMap::new() };
        let describe = |spec: &ApproverSpec| match spec {
            ApproverSpec::User { id } => approver_names.get(id).cloned().unwrap_or_else(|| "a named approver".into()),
            ApproverSpec::Group { id } => format!("{} group", group_names.get(id).cloned().unwrap_or_default()),
            ApproverSpec::Manager => "your manager".into(),
            ApproverSpec::CatalogOwners => "the catalog owners".into(),
            ApproverSpec::Sponsors => "your organisation's sponsors".into(),
        };
        let policy_views = policies
            .iter()
            .map(|p| PolicyView {
                id: p.id.0,
                name: p.name.clone(),
                on_behalf_allowed: p.on_behalf_allowed,
                stages: p
                    .approval
                    .stages
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let who: Vec<String> = s.primary.iter().map(describe).collect();
                        format!("Stage {}: {} (within {} days)", i + 1, who.join(" or "), s.timeout_days)
                    })
                    .collect(),
                justification_required: p.justification_required,
                schedule_allowed: p.schedule_allowed,
                expiration: p.expiration.describe(),
                questions: p
                    .questions
                    .iter()
                    .map(|q| QuestionView {
                        id: q.id.clone(),
                        prompt: q.prompt.clone(),
                        required: q.required,
                        options: match &q.kind {
                            QuestionKind::Choice { options } => options.clone(),
                            QuestionKind::Text { .. } => vec![],
                        },
                    })
                    .collect(),
            })
            .collect();
        let reports = if policies.iter().any(|p| p.on_behalf_allowed) {
            directory::direct_reports(&mut conn, actor.id()).await?.into_iter().map(|(id, n)| (id.0, n)).collect()
        } else {
            Vec::new()
        };
        Ok(PackageDetail {
            reports,
            card: PackageCard {
                id: package.id.0,
                name: package.name.clone(),
                description: package.description.clone(),
                catalog: catalog_row.name.clone(),
                resources: roles,
                approval_stages: policies.iter().map(|p| p.approval.stages.len() as u32).max().unwrap_or(0),
                expiration: policies.first().map(|p| p.expiration.describe()).unwrap_or_default(),
                status: PackageStatus::Available,
            },
            policies: policy_views,
            sod_warning: (!conflicts.is_empty()).then(|| sod::explain(&conflicts)),
        })
    }

    /// Requests I filed or that were filed for me, newest first, each with its timeline;
    /// one page before request id `before`.
    #[tracing::instrument(name = "my_requests", skip_all, fields(actor = actor.id().0, before = before))]
    pub async fn my_requests(&self, actor: &Actor, before: Option<i64>) -> DomainResult<Page<RequestView>> {
        let now = self.now();
        let mut conn = self.db.pool().acquire().await?;
        let mut rows = requests::of_user(&mut conn, actor.id(), before.unwrap_or(i64::MAX), REQUESTS_PAGE + 1).await?;
        let next = page_cursor(&mut rows, REQUESTS_PAGE, |r| r.id.0);
        if rows.is_empty() {
            return Ok(Page::empty(to_ms(now)));
        }
        let ids: Vec<RequestId> = rows.iter().map(|r| r.id).collect();
        let known = self.catalog_snapshot(&mut conn).await?;
        let people: Vec<UserId> = rows.iter().flat_map(|r| [r.requestor, r.target]).collect();
        let names = directory::names(&mut conn, &people).await?;
        let decisions = requests::decisions_of(&mut conn, &ids).await?;
        let approvers = requests::approver_names(&mut conn, &ids).await?;
        let grants =
            assignments::grants_described(&mut conn, &rows.iter().filter_map(|r| r.assignment).collect::<Vec<_>>())
                .await?;
        let name = |u: &UserId| names.get(u).cloned().unwrap_or_default();
        let items = rows
            .iter()
            .map(|r| RequestView {
                id: r.id.0,
                package: known.package_name(r.package),
                requestor: name(&r.requestor),
                target: name(&r.target),
                state: r.state,
                created_at: to_ms(r.created_at),
                reason: r.outcome_reason.clone(),
                can_cancel: r.state.is_open() && r.requestor == actor.id(),
                timeline: timeline(r, &decisions, &approvers, &grants, now),
            })
            .collect();
        Ok(Page { items, next, as_of: to_ms(now) })
    }

    /// My assignments (live ones first, then ended ones), each part newest first; one page
    /// after the cursor `before` (the previous page's `next`).
    #[tracing::instrument(name = "my_access", skip_all, fields(actor = actor.id().0, before = before))]
    pub async fn my_access(&self, actor: &Actor, before: Option<i64>) -> DomainResult<Page<AssignmentView>> {
        let now = self.now();
        let mut conn = self.db.pool().acquire().await?;
        let mut rows =
            assignments::of_user(&mut conn, actor.id(), before.map_or(i64::MAX, |c| c.max(-i64::MAX)), ACCESS_PAGE + 1)
                .await?;
        // The order comes from the query, so pages never overlap or skip.
        let next = page_cursor(&mut rows, ACCESS_PAGE, assignments::live_first_key);
        if rows.is_empty() {
            return Ok(Page::empty(to_ms(now)));
        }
        let known = self.catalog_snapshot(&mut conn).await?;
        let list: Vec<AssignmentView> = rows
            .into_iter()
            .map(|a| {
                let bucket = if !a.state.is_live() {
                    AccessBucket::Ended
                } else if a.start_at > now {
                    AccessBucket::Scheduled
                } else if a.end_at.is_some_and(|end| end - now < Duration::days(EXPIRING_SOON_DAYS)) {
                    AccessBucket::Expiring
                } else {
                    AccessBucket::Active
                };
                AssignmentView {
                    id: a.id.0,
                    package: known.package_name(a.package),
                    state: a.state,
                    start_at: to_ms(a.start_at),
                    end_at: a.end_at.map(to_ms),
                    bucket,
                    resources: known.roles_of(a.package),
                    can_extend: a.state.is_live()
                        && known.policy(a.policy).is_some_and(|p| {
                            p.extension_allowed
                                && !matches!(p.expiration, Expiration::Never | Expiration::OnDate { .. })
                        }),
                }
            })
            .collect();
        Ok(Page { items: list, next, as_of: to_ms(now) })
    }

    /// Requests waiting for my decision, oldest first, with what an approver needs to know;
    /// one page after request id `after`.
    #[tracing::instrument(name = "pending_approvals", skip_all, fields(actor = actor.id().0, after = after))]
    pub async fn pending_approvals(&self, actor: &Actor, after: Option<i64>) -> DomainResult<Page<ApprovalItem>> {
        let mut conn = self.db.pool().acquire().await?;
        let mut rows = requests::pending_for(&mut conn, actor.id(), after.unwrap_or(0), APPROVALS_PAGE + 1).await?;
        let next = page_cursor(&mut rows, APPROVALS_PAGE, |r| r.id.0);
        if rows.is_empty() {
            return Ok(Page::empty(to_ms(self.now())));
        }
        let people: Vec<UserId> = rows.iter().flat_map(|r| [r.requestor, r.target]).collect();
        let targets: Vec<UserId> = rows.iter().map(|r| r.target).collect();
        let users = directory::users(&mut conn, &people).await?;
        let held = assignments::live_packages_of(&mut conn, &targets).await?;
        let groups = directory::groups_of_users(&mut conn, &targets).await?;
        let known = self.catalog_snapshot(&mut conn).await?;
        let items = rows
            .into_iter()
            .map(|r| {
                let target = users.iter().find(|u| u.id == r.target);
                let requestor = users.iter().find(|u| u.id == r.requestor);
                let holdings = sod::Holdings {
                    packages: held.iter().filter(|(u, _)| *u == r.target).map(|(_, p)| *p).collect(),
                    groups: groups.iter().filter(|(u, _)| *u == r.target).map(|(_, g)| *g).collect(),
                };
                let conflicts = sod::conflicts(&known.sod_rules(r.package), &holdings);
                let stage = r.stages.get(r.current_stage.saturating_sub(1) as usize);
                let policy = known.policy(r.policy);
                let prompt = |qid: &str| {
                    policy
                        .and_then(|p| p.questions.iter().find(|q| q.id == qid))
                        .map_or_else(|| qid.to_owned(), |q| q.prompt.clone())
                };
                ApprovalItem {
                    request_id: r.id.0,
                    requestor: requestor.map(|u| u.display_name.clone()).unwrap_or_default(),
                    target: target.map(|u| u.display_name.clone()).unwrap_or_default(),
                    target_title: target.map(|u| format!("{} · {}", u.job_title, u.department)).unwrap_or_default(),
                    package: known.package_name(r.package),
                    stage: r.current_stage,
                    stage_count: r.stages.len() as u32,
                    created_at: to_ms(r.created_at),
                    due_at: r.stage_due_at.map(to_ms),
                    justification: r.justification.clone(),
                    answers: r.answers.iter().map(|a| (prompt(&a.question_id), a.value.clone())).collect(),
                    justification_required: stage.is_some_and(|s| s.justification_required),
                    resources: known.roles_of(r.package),
                    current_access: holdings
                        .packages
                        .iter()
                        .filter_map(|p| known.package(*p).map(|p| p.name.clone()))
                        .collect(),
                    sod_warning: (!conflicts.is_empty()).then(|| sod::explain(&conflicts)),
                    is_extension: r.kind == RequestKind::UserExtend,
                    start_at: r.start_at.map(to_ms),
                    end_at: r.end_at.map(to_ms),
                    period: policy
                        .map(|p| period_in_words(p.expiration, r.kind == RequestKind::UserExtend, r.start_at.is_some()))
                        .unwrap_or_default(),
                }
            })
            .collect();
        Ok(Page { items, next, as_of: to_ms(self.now()) })
    }

    /// Decisions I made, newest first; one page before decision id `before`.
    #[tracing::instrument(name = "decision_history", skip_all, fields(actor = actor.id().0, before = before))]
    pub async fn decision_history(&self, actor: &Actor, before: Option<i64>) -> DomainResult<Page<DecisionView>> {
        let mut conn = self.db.pool().acquire().await?;
        let mut rows =
            requests::decisions_by(&mut conn, actor.id(), before.unwrap_or(i64::MAX), HISTORY_PAGE + 1).await?;
        let next = page_cursor(&mut rows, HISTORY_PAGE, |d| d.id);
        let items = rows
            .into_iter()
            .map(|d| DecisionView {
                request_id: d.request.0,
                package: d.package,
                target: d.target,
                stage: d.stage,
                decision: d.decision,
                justification: d.justification,
                decided_at: to_ms(d.decided_at),
            })
            .collect();
        Ok(Page { items, next, as_of: to_ms(self.now()) })
    }
}

/// Keyset paging: rows were fetched one past the page size; drop the extra one and return the
/// key of the last kept row as the next cursor.
pub(super) fn page_cursor<T>(rows: &mut Vec<T>, size: i64, key: impl Fn(&T) -> i64) -> Option<String> {
    if rows.len() as i64 > size {
        rows.truncate(size as usize);
        rows.last().map(|r| key(r).to_string())
    } else {
        None
    }
}

/// The policy's access period in words, as an approver weighs it: counted from approval (or
/// from the requested start, when one was asked for), a fixed date, or no end at all.
fn period_in_words(expiration: Expiration, extension: bool, from_requested_start: bool) -> String {
    let counted = |n: u32, unit: &str| {
        let plural = if n == 1 { "" } else { "s" };
        let from = if from_requested_start { "the requested start" } else { "approval" };
        format!("{n} {unit}{plural} from {from}")
    };
    match expiration {
        Expiration::Never => "does not expire".to_owned(),
        Expiration::OnDate { date } => format!("on {date}"),
        Expiration::AfterDays { days } if extension => format!("extends by {}", counted(days, "day")),
        Expiration::AfterHours { hours } if extension => format!("extends by {}", counted(hours, "hour")),
        Expiration::AfterDays { days } => counted(days, "day"),
        Expiration::AfterHours { hours } => counted(hours, "hour"),
    }
}

/// Submitted → each stage (approvers, decision) → delivered, or how it ended. Approved access
/// that starts later says when it starts.
fn timeline(
    r: &RequestRow,
    decisions: &[DecisionRow],
    approvers: &[(RequestId, u32, String, ApproverSource)],
    grants: &[(AssignmentId, String, GrantState)],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<TimelineStep> {
    // Delivery, resource by resource.
    let per_resource: Vec<String> = grants
        .iter()
        .filter(|(a, _, _)| Some(*a) == r.assignment)
        .map(|(_, what, state)| {
            let word = match state {
                GrantState::Delivered => "delivered",
                GrantState::Pending => "being delivered",
                GrantState::Failed => "failed (an administrator has been told)",
                GrantState::Removing => "being removed",
                GrantState::Removed => "removed",
            };
            format!("{what}: {word}")
        })
        .collect();
    let delivery = if per_resource.is_empty() { None } else { Some(per_resource.join("; ")) };
    let mut steps = vec![TimelineStep {
        title: "Submitted".into(),
        detail: if r.justification.is_empty() { String::new() } else { format!("“{}”", r.justification) },
        at: Some(to_ms(r.created_at)),
        status: StepStatus::Done,
    }];
    for (i, _) in r.stages.iter().enumerate() {
        let k = (i + 1) as u32;
        let names: Vec<&str> = approvers
            .iter()
            .filter(|(id, stage, _, source)| {
                *id == r.id && *stage == k && (*source != ApproverSource::Escalation || r.escalated)
            })
            .map(|(_, _, n, _)| n.as_str())
            .collect();
        let decision = decisions.iter().find(|d| d.request == r.id && d.stage == k);
        let (status, detail, at) = match decision {
            Some(d) => {
                let who = d.approver.clone().unwrap_or_else(|| "No one".into());
                let verb = match d.decision {
                    Decision::Approve => "approved",
                    Decision::Deny => "denied",
                    Decision::Timeout => "decided in time (expired)",
                };
                let why =
                    if d.justification.is_empty() { String::new() } else { format!(": “{}”", d.justification) };
                let status = if d.decision == Decision::Approve { StepStatus::Done } else { StepStatus::Failed };
                (status, format!("{who} {verb}{why}"), Some(to_ms(d.decided_at)))
            }
            None if r.state == RequestState::PendingApproval && r.current_stage == k => {
                (StepStatus::Current, format!("Waiting for {}", names.join(", ")), r.stage_due_at.map(to_ms))
            }
            None if r.state.is_refused() => (StepStatus::Skipped, "Not reached".into(), None),
            None => (StepStatus::Upcoming, format!("Approvers: {}", names.join(", ")), None),
        };
        steps.push(TimelineStep { title: format!("Approval stage {k}"), detail, at, status });
    }
    let starts_later =
        r.start_at.filter(|s| *s > now && matches!(r.state, RequestState::Approved | RequestState::Delivering));
    let (title, status, detail) = match r.state {
        _ if starts_later.is_some() => {
            ("Starts", StepStatus::Current, "Access begins on the date asked for".to_owned())
        }
        RequestState::Delivered => {
            ("Delivered", StepStatus::Done, delivery.unwrap_or_else(|| "Access granted in every resource".to_owned()))
        }
        RequestState::Delivering | RequestState::Approved => {
            ("Delivering", StepStatus::Current, delivery.unwrap_or_else(|| "Access is being granted".to_owned()))
        }
        RequestState::PartiallyDelivered => {
            ("Partially delivered", StepStatus::Failed, "Some resources are still being granted".to_owned())
        }
        RequestState::DeliveryFailed => (
            "Delivery failed",
            StepStatus::Failed,
            if r.outcome_reason.is_empty() {
                "An administrator has been told".to_owned()
            } else {
                r.outcome_reason.clone()
            },
        ),
        RequestState::Denied => ("Denied", StepStatus::Failed, r.outcome_reason.clone()),
        RequestState::Canceled => ("Canceled", StepStatus::Failed, r.outcome_reason.clone()),
        RequestState::Expired => {
            ("Expired", StepStatus::Failed, "Nobody decided in time; you can ask again".to_owned())
        }
        RequestState::Rejected => ("Rejected", StepStatus::Failed, r.outcome_reason.clone()),
        RequestState::Submitted | RequestState::PendingApproval => ("Delivered", StepStatus::Upcoming, String::new()),
    };
    steps.push(TimelineStep { title: title.into(), detail, at: starts_later.map(to_ms), status });
    steps
}

impl Service {
    /// Failed provisioning work with the names an administrator needs (person, resource,
    /// role), newest first: everything for administrators, their catalogs' work for catalog
    /// owners ([`Service::failed_deliveries`] decides); refused to people without an admin role.
    #[tracing::instrument(name = "failed_work", skip_all, fields(actor = actor.id().0))]
    pub async fn failed_work(&self, actor: &Actor) -> DomainResult<Vec<FailedWorkView>> {
        if !actor.has_admin_area() {
            return Err(DomainError::forbidden("failed provisioning work is for administrators and catalog owners"));
        }
        let failed = self.failed_deliveries(actor).await?;
        let mut conn = self.db.pool().acquire().await?;
        let people = directory::names(&mut conn, &failed.iter().map(|f| f.user).collect::<Vec<_>>()).await?;
        let roles = catalog::role_names(&mut conn, &failed.iter().map(|f| f.role).collect::<Vec<_>>()).await?;
        Ok(failed
            .into_iter()
            .map(|f| {
                let (resource, role) = roles
                    .get(&f.role)
                    .cloned()
                    .unwrap_or_else(|| (format!("resource role {}", f.role.0), String::new()));
                FailedWorkView {
                    outbox_id: f.outbox_id,
                    kind: f.kind,
                    person: people.get(&f.user).cloned().unwrap_or_default(),
                    resource,
                    role,
                    attempts: f.attempts,
                    error: f.error,
                }
            })
            .collect())
    }

    /// The built-in resource system's groups and their members (administrators).
    #[tracing::instrument(name = "builtin_groups", skip_all, fields(actor = actor.id().0))]
    pub async fn builtin_groups(&self, actor: &Actor) -> DomainResult<Vec<BuiltinGroupView>> {
        actor.require(crate::domain::authz::Permission::Administer)?;
        let mut conn = self.db.pool().acquire().await?;
        let mut out: Vec<BuiltinGroupView> = Vec::new();
        for (id, resource, role, member) in assignments::builtin_roster(&mut conn).await? {
            match out.last_mut() {
                Some(last) if last.role_id == id.0 => last.members.extend(member),
                _ => {
                    out.push(BuiltinGroupView { role_id: id.0, resource, role, members: member.into_iter().collect() })
                }
            }
        }
        Ok(out)
    }
}
