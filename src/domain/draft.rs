//! The access package builder's draft: what an author has entered so far, and the two
//! directions between it and the builder's forms. [`PackageDraft::apply`] reads one step's
//! form fields into the draft (or refuses them with a message for the field), and
//! [`PackageDraft::form_values`] writes the draft back as the same fields, so a step shows
//! exactly what was saved. The field names live here only, on both sides.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::error::{DomainError, DomainResult};
use super::ids::*;
use super::policy::*;
use crate::states::{DraftMode, WizardStep};

/// Approval stages the builder offers (the policy's own limit).
pub const STAGES: usize = MAX_STAGES;
pub use crate::views::MAX_QUESTIONS;
/// Longest description, question or option list, in characters.
const MAX_TEXT: usize = 2000;
/// Most people named in one list (requestors, approvers).
const MAX_PEOPLE: usize = 100;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackageDraft {
    pub name: String,
    pub description: String,
    pub hidden: bool,
    pub roles: Vec<ResourceRoleId>,
    /// The policy being built: `id` and `version` are the edited policy's (else zero).
    pub policy: Policy,
    pub incompatible_packages: Vec<PackageId>,
    pub incompatible_groups: Vec<GroupId>,
    /// The package's version when an edit began (a change meanwhile is a conflict at saving).
    #[serde(default)]
    pub package_version: i64,
    /// Every question key the policy has used (requests already filed answer by key): a new
    /// question never takes one, even of a question deleted since.
    #[serde(default)]
    pub used_keys: Vec<String>,
    /// An edit's separation-of-duties rules when it began: saving applies only what the author
    /// ticked or unticked since, so a rule someone else changed meanwhile stays as they left it.
    #[serde(default)]
    pub sod_base: (Vec<PackageId>, Vec<GroupId>),
}

impl PackageDraft {
    /// An empty draft for a new package: members may request, no approval, no expiry.
    pub fn new() -> Self {
        PackageDraft {
            name: String::new(),
            description: String::new(),
            hidden: false,
            roles: vec![],
            policy: Policy::new(PackageId(0), "Members", RequestorScope::AllMembers, vec![]),
            incompatible_packages: vec![],
            incompatible_groups: vec![],
            package_version: 0,
            used_keys: vec![],
            sod_base: (vec![], vec![]),
        }
    }
}

impl Default for PackageDraft {
    fn default() -> Self {
        Self::new()
    }
}

/// One step's form fields, as posted.
pub struct Fields<'a>(pub &'a HashMap<String, String>);

impl Fields<'_> {
    fn text(&self, key: &str) -> &str {
        self.0.get(key).map_or("", |v| v.trim())
    }

    fn ticked(&self, key: &str) -> bool {
        matches!(self.text(key), "on" | "true" | "1" | "yes")
    }

    fn bounded(&self, key: &str, max: usize) -> DomainResult<String> {
        let v = self.text(key);
        if v.chars().count() > max {
            return Err(DomainError::invalid(key, format!("at most {max} characters")));
        }
        Ok(v.to_owned())
    }

    fn number(&self, key: &str, range: std::ops::RangeInclusive<u32>, what: &str) -> DomainResult<u32> {
        let n = self
            .text(key)
            .parse::<u32>()
            .map_err(|_| DomainError::invalid(key, format!("{what}: a whole number, please")))?;
        if !range.contains(&n) {
            return Err(DomainError::invalid(key, format!("{what}: from {} to {}", range.start(), range.end())));
        }
        Ok(n)
    }

    /// The ids of the ticked boxes named `{prefix}{id}`, in id order.
    fn ticked_ids(&self, prefix: &str) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .0
            .keys()
            .filter_map(|k| k.strip_prefix(prefix).and_then(|id| id.parse().ok()).filter(|_| self.ticked(k)))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn word<T>(&self, key: &str, parse: fn(&str) -> Option<T>) -> DomainResult<T> {
        parse(self.text(key)).ok_or_else(|| DomainError::invalid(key, "choose one of the options"))
    }
}

/// The emails in a list field: separated by commas, semicolons, spaces or lines.
pub fn emails_in(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.to_lowercase())
        .collect()
}

/// The fields of a step that name people by email (to be looked up before [`PackageDraft::apply`]).
pub fn people_fields(step: WizardStep) -> Vec<String> {
    match step {
        WizardStep::Requestors => vec!["people".into()],
        WizardStep::Approval => (1..=STAGES)
            .flat_map(|i| [format!("s{i}_people"), format!("s{i}_fallback"), format!("s{i}_escalation")])
            .collect(),
        WizardStep::Lifecycle => vec!["review_people".into(), "review_fallback".into()],
        _ => vec![],
    }
}

/// Everyone a draft names, to show their emails.
impl PackageDraft {
    pub fn people(&self) -> Vec<UserId> {
        let mut ids: Vec<UserId> = self
            .policy
            .requestors
            .iter()
            .filter_map(|r| match r {
                RequestorRef::User(u) => Some(*u),
                _ => None,
            })
            .collect();
        let specs =
            self.policy.approval.stages.iter().flat_map(|s| s.primary.iter().chain(&s.fallback).chain(&s.escalation));
        let (reviewers, fallback) = match &self.policy.review {
            ReviewSettings::Recurring { reviewers, fallback, .. } => (reviewers.as_slice(), fallback.as_slice()),
            ReviewSettings::Off => (&[][..], &[][..]),
        };
        ids.extend(specs.chain(reviewers).chain(fallback).filter_map(|s| match s {
            ApproverSpec::User { id } => Some(*id),
            _ => None,
        }));
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Looks people up by their (lower-case) email.
pub type People = HashMap<String, UserId>;

fn people_in(fields: &Fields<'_>, key: &str, people: &People) -> DomainResult<Vec<UserId>> {
    let emails = emails_in(fields.text(key));
    if emails.len() > MAX_PEOPLE {
        return Err(DomainError::invalid(key, format!("at most {MAX_PEOPLE} people")));
    }
    let mut ids = Vec::new();
    for email in emails {
        let id = people
            .get(&email)
            .ok_or_else(|| DomainError::invalid(key, format!("nobody active has the email {email}")))?;
        if !ids.contains(id) {
            ids.push(*id);
        }
    }
    Ok(ids)
}

fn users(ids: Vec<UserId>) -> Vec<ApproverSpec> {
    ids.into_iter().map(|id| ApproverSpec::User { id }).collect()
}

fn join_emails(ids: impl Iterator<Item = UserId>, emails: &HashMap<UserId, String>) -> String {
    ids.filter_map(|id| emails.get(&id).cloned()).collect::<Vec<_>>().join(", ")
}

fn spec_users(specs: &[ApproverSpec]) -> impl Iterator<Item = UserId> + '_ {
    specs.iter().filter_map(|s| match s {
        ApproverSpec::User { id } => Some(*id),
        _ => None,
    })
}

/// Approvers a step's form cannot show (a stage's catalog owners as fallback, a second kind of
/// primary approver, a group of reviewers…): written as JSON in a hidden field beside a "keep
/// them" box, so an edit never drops what it cannot show.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    #[serde(default)]
    pub primary: Vec<ApproverSpec>,
    #[serde(default)]
    pub fallback: Vec<ApproverSpec>,
    #[serde(default)]
    pub escalation: Vec<ApproverSpec>,
}

impl Kept {
    pub fn is_empty(&self) -> bool {
        self.primary.is_empty() && self.fallback.is_empty() && self.escalation.is_empty()
    }

    pub fn all(&self) -> impl Iterator<Item = &ApproverSpec> {
        self.primary.iter().chain(&self.fallback).chain(&self.escalation)
    }
}

/// The kept approvers of a `{prefix}_kept` field, when its `{prefix}_keep` box is ticked.
fn kept_in(f: &Fields<'_>, prefix: &str) -> DomainResult<Kept> {
    let (key, json) = (format!("{prefix}_kept"), f.text(&format!("{prefix}_kept")));
    if json.is_empty() || !f.ticked(&format!("{prefix}_keep")) {
        return Ok(Kept::default());
    }
    let kept: Kept = serde_json::from_str(json).map_err(|_| DomainError::invalid(&key, "this field was changed"))?;
    if kept.all().count() > MAX_PEOPLE {
        return Err(DomainError::invalid(&key, format!("at most {MAX_PEOPLE} approvers")));
    }
    Ok(kept)
}

fn merged(mut list: Vec<ApproverSpec>, more: Vec<ApproverSpec>) -> Vec<ApproverSpec> {
    for spec in more {
        if !list.contains(&spec) {
            list.push(spec);
        }
    }
    list
}

fn not_users(specs: &[ApproverSpec]) -> Vec<ApproverSpec> {
    specs.iter().filter(|s| !matches!(s, ApproverSpec::User { .. })).copied().collect()
}

/// A policy with its approver and reviewer lists in one order (the builder may give them back
/// in another), for telling whether an edit changed anything.
pub fn normalized(policy: &Policy) -> Policy {
    let key = |s: &ApproverSpec| serde_json::to_string(s).unwrap_or_default();
    let mut p = policy.clone();
    for stage in &mut p.approval.stages {
        for list in [&mut stage.primary, &mut stage.fallback, &mut stage.escalation] {
            list.sort_by_key(key);
        }
    }
    if let ReviewSettings::Recurring { reviewers, .. } = &mut p.review {
        reviewers.sort_by_key(key);
    }
    p
}

const ON: &str = "on";

fn flag(v: bool) -> String {
    if v { ON } else { "" }.to_owned()
}

impl PackageDraft {
    /// Read one step's fields into the draft, after checking them; on a refusal the draft is
    /// unchanged and the error names the field. `mode` decides which parts a step may change
    /// (a new policy keeps the package's basics and roles).
    pub fn apply(
        &mut self,
        mode: DraftMode,
        step: WizardStep,
        fields: &Fields<'_>,
        people: &People,
        now: DateTime<Utc>,
    ) -> DomainResult<()> {
        let mut next = self.clone();
        match step {
            WizardStep::Basics => next.basics(mode, fields)?,
            WizardStep::Roles => match mode {
                DraftMode::NewPackage => {
                    next.resource_roles(fields)?;
                    next.separation_of_duties(fields);
                }
                // An edit changes the package's roles and its separation-of-duties rules, each
                // when the form showed them.
                DraftMode::Edit => {
                    if fields.ticked("roles_shown") {
                        next.resource_roles(fields)?;
                    }
                    if fields.ticked("sod_shown") {
                        next.separation_of_duties(fields);
                    }
                }
                DraftMode::NewPolicy => {}
            },
            WizardStep::Requestors => next.requestors(fields, people)?,
            WizardStep::Approval => next.approval(fields, people)?,
            WizardStep::Lifecycle => next.lifecycle(fields, people, now)?,
            WizardStep::Questions => next.questions(fields)?,
            WizardStep::Review => {}
        }
        *self = next;
        Ok(())
    }

    fn basics(&mut self, mode: DraftMode, f: &Fields<'_>) -> DomainResult<()> {
        if mode != DraftMode::NewPolicy {
            let name = f.bounded("name", 200)?;
            if name.is_empty() {
                return Err(DomainError::invalid("name", "the package needs a name"));
            }
            self.name = name;
            self.description = f.bounded("description", MAX_TEXT)?;
            self.hidden = f.ticked("hidden");
        }
        let policy_name = f.bounded("policy_name", 200)?;
        if policy_name.is_empty() {
            return Err(DomainError::invalid("policy_name", "the policy needs a name (for example: Employees)"));
        }
        self.policy.name = policy_name;
        self.policy.description = f.bounded("policy_description", MAX_TEXT)?;
        Ok(())
    }

    fn resource_roles(&mut self, f: &Fields<'_>) -> DomainResult<()> {
        let roles: Vec<ResourceRoleId> = f.ticked_ids("role_").into_iter().map(ResourceRoleId).collect();
        if roles.is_empty() {
            return Err(DomainError::invalid("roles", "pick at least one resource role"));
        }
        self.roles = roles;
        Ok(())
    }

    fn separation_of_duties(&mut self, f: &Fields<'_>) {
        self.incompatible_packages = f.ticked_ids("sod_package_").into_iter().map(PackageId).collect();
        self.incompatible_groups = f.ticked_ids("sod_group_").into_iter().map(GroupId).collect();
    }

    fn requestors(&mut self, f: &Fields<'_>, people: &People) -> DomainResult<()> {
        let scope = f.word("scope", RequestorScope::parse)?;
        let requestors: Vec<RequestorRef> = match scope {
            RequestorScope::Specific => {
                let mut list: Vec<RequestorRef> =
                    people_in(f, "people", people)?.into_iter().map(RequestorRef::User).collect();
                list.extend(f.ticked_ids("group_").into_iter().map(|g| RequestorRef::Group(GroupId(g))));
                if list.is_empty() {
                    return Err(DomainError::invalid("people", "name at least one person or group who may request"));
                }
                list
            }
            RequestorScope::ConnectedOrgs => {
                let list: Vec<RequestorRef> =
                    f.ticked_ids("org_").into_iter().map(|o| RequestorRef::Org(OrgId(o))).collect();
                if list.is_empty() {
                    return Err(DomainError::invalid("orgs", "pick at least one connected organization"));
                }
                list
            }
            _ => vec![],
        };
        self.policy.scope = scope;
        self.policy.requestors = requestors;
        self.policy.justification_required = f.ticked("justification_required");
        self.policy.on_behalf_allowed = f.ticked("on_behalf_allowed");
        // Assigned automatically to everyone a rule matches (administrators only: checked
        // when the draft is made into the policy).
        self.policy.auto_rule = match f.text("auto_rule").trim() {
            "" => None,
            rule => {
                super::rule::Rule::parse(rule)?;
                if scope != RequestorScope::Nobody {
                    return Err(DomainError::invalid(
                        "auto_rule",
                        "a policy that assigns automatically takes no requests: choose “nobody” above",
                    ));
                }
                Some(rule.to_owned())
            }
        };
        Ok(())
    }

    fn approval(&mut self, f: &Fields<'_>, people: &People) -> DomainResult<()> {
        let count = f.number("stages", 0..=STAGES as u32, "approval stages")? as usize;
        let mut stages = Vec::with_capacity(count);
        for i in 1..=count {
            let key = |k: &str| format!("s{i}_{k}");
            let kept = kept_in(f, &format!("s{i}"))?;
            let primary = match f.text(&key("approver")) {
                "people" => {
                    let ids = people_in(f, &key("people"), people)?;
                    if ids.is_empty() && kept.primary.is_empty() {
                        return Err(DomainError::invalid(&key("people"), format!("stage {i}: name who approves")));
                    }
                    users(ids)
                }
                "group" => {
                    let group = f.text(&key("group")).parse::<i64>().ok().filter(|g| *g > 0).ok_or_else(|| {
                        DomainError::invalid(&key("group"), format!("stage {i}: pick the group that approves"))
                    })?;
                    vec![ApproverSpec::Group { id: GroupId(group) }]
                }
                "manager" => vec![ApproverSpec::Manager],
                "catalog_owners" => vec![ApproverSpec::CatalogOwners],
                "sponsors" => vec![ApproverSpec::Sponsors],
                _ => return Err(DomainError::invalid(&key("approver"), format!("stage {i}: choose who approves"))),
            };
            let on_timeout = match f.text(&key("on_timeout")) {
                "escalate" => OnTimeout::Escalate,
                _ => OnTimeout::Expire,
            };
            let primary = merged(primary, kept.primary);
            let escalation = merged(users(people_in(f, &key("escalation"), people)?), kept.escalation);
            if on_timeout == OnTimeout::Escalate && escalation.is_empty() {
                return Err(DomainError::invalid(
                    &key("escalation"),
                    format!("stage {i}: name who the request goes to when nobody decides in time"),
                ));
            }
            let timeout_days =
                f.number(&key("timeout"), 1..=MAX_TIMEOUT_DAYS, &format!("stage {i}: days to decide"))?;
            let remind_after_days = match f.text(&key("remind")).trim() {
                "" | "0" => None,
                _ if timeout_days < 2 => {
                    return Err(DomainError::invalid(
                        &key("remind"),
                        format!("stage {i}: a reminder needs at least two days to decide (leave it empty)"),
                    ))
                }
                _ => Some(f.number(
                    &key("remind"),
                    1..=timeout_days - 1,
                    &format!("stage {i}: days before the reminder"),
                )?),
            };
            stages.push(Stage {
                primary,
                fallback: merged(users(people_in(f, &key("fallback"), people)?), kept.fallback),
                escalation,
                justification_required: f.ticked(&key("justification")),
                timeout_days,
                remind_after_days,
                on_timeout,
            });
        }
        self.policy.approval = Approval { stages };
        Ok(())
    }

    fn lifecycle(&mut self, f: &Fields<'_>, people: &People, now: DateTime<Utc>) -> DomainResult<()> {
        let expiration = match f.text("expires") {
            "never" => Expiration::Never,
            "on_date" => {
                let date = NaiveDate::parse_from_str(f.text("exp_date"), "%Y-%m-%d")
                    .map_err(|_| DomainError::invalid("exp_date", "a date, as YYYY-MM-DD"))?;
                if date <= now.date_naive() {
                    return Err(DomainError::invalid("exp_date", "the end date must lie ahead"));
                }
                Expiration::OnDate { date }
            }
            "after_days" => Expiration::AfterDays { days: f.number("exp_days", 1..=3660, "days")? },
            "after_hours" => Expiration::AfterHours { hours: f.number("exp_hours", 1..=3660 * 24, "hours")? },
            _ => return Err(DomainError::invalid("expires", "choose when access ends")),
        };
        let schedule_allowed = f.ticked("schedule_allowed");
        let max_lead_days = if schedule_allowed {
            f.number("max_lead_days", 0..=MAX_LEAD_DAYS, "days ahead")?
        } else {
            self.policy.max_lead_days
        };
        let review = match f.text("review") {
            "off" | "" => ReviewSettings::Off,
            word => {
                let frequency = match word {
                    "weekly" => ReviewFrequency::Weekly,
                    "monthly" => ReviewFrequency::Monthly,
                    "quarterly" => ReviewFrequency::Quarterly,
                    "annually" => ReviewFrequency::Annually,
                    _ => return Err(DomainError::invalid("review", "choose how often access is reviewed")),
                };
                let kept = kept_in(f, "review")?.primary;
                let (reviewers, self_review) = match f.text("review_by") {
                    "self" => (kept, true),
                    "manager" => (merged(vec![ApproverSpec::Manager], kept), false),
                    "people" => {
                        let ids = people_in(f, "review_people", people)?;
                        if ids.is_empty() && kept.is_empty() {
                            return Err(DomainError::invalid("review_people", "name who reviews"));
                        }
                        (merged(users(ids), kept), false)
                    }
                    _ => return Err(DomainError::invalid("review_by", "choose who reviews")),
                };
                let starts_on = match f.text("review_starts").trim() {
                    "" => None,
                    day => Some(NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| {
                        DomainError::invalid(
                            "review_starts",
                            "a date such as 2027-01-04, or empty to follow the calendar",
                        )
                    })?),
                };
                // Who reviews when a person has no manager (none: the catalog's owners).
                let fallback = match f.text("review_by") {
                    "manager" => users(people_in(f, "review_fallback", people)?),
                    _ => vec![],
                };
                let default_decision = super::review::default_of(f.text("review_default"))
                    .ok_or_else(|| DomainError::invalid("review_default", "choose what happens without an answer"))?;
                ReviewSettings::Recurring {
                    frequency,
                    reviewers,
                    self_review,
                    duration_days: f.number("review_days", 1..=90, "review duration in days")?,
                    default_decision,
                    apply_automatically: f.ticked("review_auto"),
                    starts_on,
                    fallback,
                }
            }
        };
        let extension_allowed = f.ticked("extension_allowed");
        if extension_allowed && expiration == Expiration::Never {
            return Err(DomainError::invalid("extension_allowed", "access that never ends needs no extension"));
        }
        let p = &mut self.policy;
        p.expiration = expiration;
        p.schedule_allowed = schedule_allowed;
        p.max_lead_days = max_lead_days;
        p.extension_allowed = extension_allowed;
        p.extension_needs_approval = f.ticked("extension_needs_approval");
        p.review = review;
        Ok(())
    }

    fn questions(&mut self, f: &Fields<'_>) -> DomainResult<()> {
        // Every row the form has (each numbered `q{i}_…`), the empty ones skipped.
        let rows =
            f.0.keys()
                .filter_map(|k| {
                    k.strip_prefix('q').and_then(|rest| rest.split_once('_')).and_then(|(i, _)| i.parse::<usize>().ok())
                })
                .max()
                .unwrap_or(0);
        let known: Vec<String> =
            self.used_keys.iter().chain(self.policy.questions.iter().map(|q| &q.id)).cloned().collect();
        let mut found: Vec<(u32, usize, Question)> = Vec::new();
        for i in 1..=rows {
            let key = |k: &str| format!("q{i}_{k}");
            let prompt = f.bounded(&key("prompt"), 500)?;
            if prompt.is_empty() {
                continue;
            }
            if found.len() == MAX_QUESTIONS {
                return Err(DomainError::invalid("questions", format!("at most {MAX_QUESTIONS} questions")));
            }
            let kind = match f.text(&key("kind")) {
                "choice" => {
                    let options: Vec<String> = f
                        .bounded(&key("options"), MAX_TEXT)?
                        .lines()
                        .map(|o| o.trim().to_owned())
                        .filter(|o| !o.is_empty())
                        .collect();
                    if options.is_empty() {
                        return Err(DomainError::invalid(&key("options"), "offer the options, one per line"));
                    }
                    QuestionKind::Choice { options }
                }
                _ => QuestionKind::Text { multiline: f.ticked(&key("multiline")) },
            };
            let order = match f.text(&key("order")) {
                "" => u32::try_from(i).unwrap_or(u32::MAX),
                _ => f.number(&key("order"), 1..=99, "position")?,
            };
            // A question keeps its key only if the policy gave it (else it is new).
            let id = Some(f.text(&key("id"))).filter(|id| known.iter().any(|k| k == id)).unwrap_or("").to_owned();
            found.push((order, i, Question { id, prompt, required: f.ticked(&key("required")), kind }));
        }
        found.sort_by_key(|(order, i, _)| (*order, *i));
        // A new question gets the first key no question of this policy ever had.
        let mut used = known;
        let mut questions: Vec<Question> = Vec::with_capacity(found.len());
        for (_, _, mut q) in found {
            if q.id.is_empty() || questions.iter().any(|o| o.id == q.id) {
                let n = (1..).find(|n| !used.contains(&format!("q{n}"))).unwrap_or(0);
                q.id = format!("q{n}");
            }
            if !used.contains(&q.id) {
                used.push(q.id.clone());
            }
            questions.push(q);
        }
        used.sort_unstable();
        used.dedup();
        self.used_keys = used;
        self.policy.questions = questions;
        Ok(())
    }

    /// Everything checked again, as at saving: every step's rules and the policy's own.
    pub fn validate(&self, mode: DraftMode, now: DateTime<Utc>) -> DomainResult<()> {
        if mode != DraftMode::NewPolicy && self.name.trim().is_empty() {
            return Err(DomainError::invalid("name", "the package needs a name"));
        }
        if mode == DraftMode::NewPackage && self.roles.is_empty() {
            return Err(DomainError::invalid("roles", "pick at least one resource role"));
        }
        if self.policy.name.trim().is_empty() {
            return Err(DomainError::invalid("policy_name", "the policy needs a name (for example: Employees)"));
        }
        self.policy.validate_at(now)
    }

    /// Where the first problem is: the step to send the author back to.
    pub fn step_of_field(field: &str) -> WizardStep {
        let numbered =
            |prefix: char| field.starts_with(prefix) && field.chars().nth(1).is_some_and(|c| c.is_ascii_digit());
        match field {
            "name" | "description" | "policy_name" | "policy_description" => WizardStep::Basics,
            "roles" => WizardStep::Roles,
            "requestors" | "people" | "orgs" | "scope" | "auto_rule" => WizardStep::Requestors,
            "approval" | "stages" => WizardStep::Approval,
            "expiration" | "expires" | "exp_date" | "exp_days" | "exp_hours" | "max_lead_days"
            | "extension_allowed" => WizardStep::Lifecycle,
            f if f.starts_with("review") => WizardStep::Lifecycle,
            "questions" => WizardStep::Questions,
            _ if numbered('s') => WizardStep::Approval,
            _ if numbered('q') => WizardStep::Questions,
            _ => WizardStep::Review,
        }
    }

    /// The draft as the builder's form fields (the inverse of [`Self::apply`]): `emails` names
    /// the people it refers to.
    pub fn form_values(&self, emails: &HashMap<UserId, String>) -> HashMap<String, String> {
        let p = &self.policy;
        let mut v: HashMap<String, String> = HashMap::new();
        let mut set = |k: &str, value: String| {
            v.insert(k.to_owned(), value);
        };
        set("name", self.name.clone());
        set("description", self.description.clone());
        set("hidden", flag(self.hidden));
        set("sod_shown", ON.into());
        set("roles_shown", ON.into());
        set("policy_name", p.name.clone());
        set("policy_description", p.description.clone());
        for r in &self.roles {
            set(&format!("role_{r}"), ON.into());
        }
        for pk in &self.incompatible_packages {
            set(&format!("sod_package_{pk}"), ON.into());
        }
        for g in &self.incompatible_groups {
            set(&format!("sod_group_{g}"), ON.into());
        }
        set("scope", p.scope.as_str().into());
        let users = p.requestors.iter().filter_map(|r| match r {
            RequestorRef::User(u) => Some(*u),
            _ => None,
        });
        set("people", join_emails(users, emails));
        for r in &p.requestors {
            match r {
                RequestorRef::Group(g) => set(&format!("group_{g}"), ON.into()),
                RequestorRef::Org(o) => set(&format!("org_{o}"), ON.into()),
                RequestorRef::User(_) => {}
            }
        }
        set("justification_required", flag(p.justification_required));
        set("on_behalf_allowed", flag(p.on_behalf_allowed));
        set("auto_rule", p.auto_rule.clone().unwrap_or_default());
        set("stages", p.approval.stages.len().to_string());
        for i in 1..=STAGES {
            let key = |k: &str| format!("s{i}_{k}");
            let Some(stage) = p.approval.stages.get(i - 1) else {
                set(&key("approver"), "people".into());
                set(&key("timeout"), "7".into());
                set(&key("on_timeout"), "expire".into());
                continue;
            };
            // The form shows one kind of primary approver (all the people, or the first other
            // kind); the rest is kept.
            let (approver, shown): (&str, Vec<ApproverSpec>) = match stage.primary.first() {
                Some(first @ ApproverSpec::Group { id }) => {
                    set(&key("group"), id.to_string());
                    ("group", vec![*first])
                }
                Some(first @ ApproverSpec::Manager) => ("manager", vec![*first]),
                Some(first @ ApproverSpec::CatalogOwners) => ("catalog_owners", vec![*first]),
                Some(first @ ApproverSpec::Sponsors) => ("sponsors", vec![*first]),
                Some(ApproverSpec::User { .. }) | None => (
                    "people",
                    stage.primary.iter().filter(|s| matches!(s, ApproverSpec::User { .. })).copied().collect(),
                ),
            };
            set(&key("approver"), approver.into());
            if approver == "people" {
                set(&key("people"), join_emails(spec_users(&stage.primary), emails));
            }
            let kept = Kept {
                primary: stage.primary.iter().filter(|s| !shown.contains(s)).copied().collect(),
                fallback: not_users(&stage.fallback),
                escalation: not_users(&stage.escalation),
            };
            if !kept.is_empty() {
                set(&key("kept"), serde_json::to_string(&kept).unwrap_or_default());
                set(&key("keep"), ON.into());
            }
            set(&key("fallback"), join_emails(spec_users(&stage.fallback), emails));
            set(&key("escalation"), join_emails(spec_users(&stage.escalation), emails));
            set(&key("justification"), flag(stage.justification_required));
            set(&key("timeout"), stage.timeout_days.to_string());
            set(&key("remind"), stage.remind_after_days.map(|d| d.to_string()).unwrap_or_default());
            set(
                &key("on_timeout"),
                match stage.on_timeout {
                    OnTimeout::Expire => "expire",
                    OnTimeout::Escalate => "escalate",
                }
                .into(),
            );
        }
        let expires = match p.expiration {
            Expiration::Never => "never",
            Expiration::OnDate { date } => {
                set("exp_date", date.format("%Y-%m-%d").to_string());
                "on_date"
            }
            Expiration::AfterDays { days } => {
                set("exp_days", days.to_string());
                "after_days"
            }
            Expiration::AfterHours { hours } => {
                set("exp_hours", hours.to_string());
                "after_hours"
            }
        };
        set("expires", expires.into());
        set("schedule_allowed", flag(p.schedule_allowed));
        set("max_lead_days", p.max_lead_days.to_string());
        set("extension_allowed", flag(p.extension_allowed));
        set("extension_needs_approval", flag(p.extension_needs_approval));
        match &p.review {
            ReviewSettings::Off => {
                set("review", "off".into());
                set("review_by", "manager".into());
                set("review_days", "14".into());
                set("review_default", "keep".into());
            }
            ReviewSettings::Recurring {
                frequency,
                reviewers,
                self_review,
                duration_days,
                default_decision,
                apply_automatically,
                starts_on,
                fallback,
            } => {
                let word = match frequency {
                    ReviewFrequency::Weekly => "weekly",
                    ReviewFrequency::Monthly => "monthly",
                    ReviewFrequency::Quarterly => "quarterly",
                    ReviewFrequency::Annually => "annually",
                };
                set("review", word.into());
                let (by, shown): (&str, Vec<ApproverSpec>) = if *self_review {
                    ("self", vec![])
                } else if reviewers.contains(&ApproverSpec::Manager) {
                    ("manager", vec![ApproverSpec::Manager])
                } else {
                    ("people", reviewers.iter().filter(|s| matches!(s, ApproverSpec::User { .. })).copied().collect())
                };
                set("review_by", by.into());
                if by == "people" {
                    set("review_people", join_emails(spec_users(reviewers), emails));
                }
                let kept = Kept {
                    primary: reviewers.iter().filter(|s| !shown.contains(s)).copied().collect(),
                    ..Kept::default()
                };
                if !kept.is_empty() {
                    set("review_kept", serde_json::to_string(&kept).unwrap_or_default());
                    set("review_keep", ON.into());
                }
                set("review_days", duration_days.to_string());
                set("review_default", super::review::default_word(*default_decision).into());
                set("review_auto", flag(*apply_automatically));
                set("review_starts", starts_on.map(|d| d.to_string()).unwrap_or_default());
                set("review_fallback", join_emails(spec_users(fallback), emails));
            }
        }
        for (n, q) in p.questions.iter().enumerate() {
            let i = n + 1;
            let key = |k: &str| format!("q{i}_{k}");
            set(&key("id"), q.id.clone());
            set(&key("prompt"), q.prompt.clone());
            set(&key("required"), flag(q.required));
            set(&key("order"), i.to_string());
            match &q.kind {
                QuestionKind::Text { multiline } => {
                    set(&key("kind"), "text".into());
                    set(&key("multiline"), flag(*multiline));
                }
                QuestionKind::Choice { options } => {
                    set(&key("kind"), "choice".into());
                    set(&key("options"), options.join("\n"));
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn people() -> People {
        [("hana@x.example".to_owned(), UserId(7)), ("tom@x.example".to_owned(), UserId(9))].into_iter().collect()
    }

    fn emails() -> HashMap<UserId, String> {
        people().into_iter().map(|(e, id)| (id, e)).collect()
    }

    /// Every step, filled as an admin would, then written back as form values and read again:
    /// the same draft (what a step shows is what was saved).
    #[test]
    fn steps_read_back_what_they_wrote() {
        let mut d = PackageDraft::new();
        let steps = [
            (WizardStep::Basics, fields(&[("name", " Payroll "), ("policy_name", "Finance"), ("hidden", "on")])),
            (WizardStep::Roles, fields(&[("role_3", "on"), ("role_11", "on"), ("role_5", ""), ("sod_group_2", "on")])),
            (
                WizardStep::Requestors,
                fields(&[
                    ("scope", "specific"),
                    ("people", "Tom@x.example"),
                    ("group_4", "on"),
                    ("justification_required", "on"),
                ]),
            ),
            (
                WizardStep::Approval,
                fields(&[
                    ("stages", "2"),
                    ("s1_approver", "manager"),
                    ("s1_timeout", "3"),
                    ("s1_on_timeout", "escalate"),
                    ("s1_escalation", "hana@x.example"),
                    ("s2_approver", "people"),
                    ("s2_people", "hana@x.example, tom@x.example"),
                    ("s2_timeout", "7"),
                    ("s2_justification", "on"),
                    ("s3_approver", "group"),
                ]),
            ),
            (
                WizardStep::Lifecycle,
                fields(&[
                    ("expires", "after_days"),
                    ("exp_days", "30"),
                    ("schedule_allowed", "on"),
                    ("max_lead_days", "14"),
                    ("extension_allowed", "on"),
                    ("review", "quarterly"),
                    ("review_by", "people"),
                    ("review_people", "hana@x.example"),
                    ("review_days", "10"),
                    ("review_default", "remove"),
                ]),
            ),
            (
                WizardStep::Questions,
                fields(&[
                    ("q1_prompt", "Which cost centre?"),
                    ("q1_kind", "choice"),
                    ("q1_options", "CC-1\nCC-2"),
                    ("q1_order", "2"),
                    ("q2_prompt", "Why now?"),
                    ("q2_required", "on"),
                    ("q2_order", "1"),
                    ("q3_prompt", ""),
                ]),
            ),
        ];
        for (step, f) in &steps {
            d.apply(DraftMode::NewPackage, *step, &Fields(f), &people(), now()).unwrap();
        }
        assert_eq!(d.name, "Payroll");
        assert_eq!(d.roles, vec![ResourceRoleId(3), ResourceRoleId(11)]);
        assert_eq!(d.incompatible_groups, vec![GroupId(2)]);
        assert_eq!(d.policy.requestors, vec![RequestorRef::User(UserId(9)), RequestorRef::Group(GroupId(4))]);
        assert_eq!(d.policy.approval.stages.len(), 2);
        assert_eq!(d.policy.approval.stages[0].escalation, vec![ApproverSpec::User { id: UserId(7) }]);
        assert_eq!(d.policy.expiration, Expiration::AfterDays { days: 30 });
        assert_eq!(
            d.policy.questions.iter().map(|q| q.prompt.as_str()).collect::<Vec<_>>(),
            ["Why now?", "Which cost centre?"]
        );
        assert!(d.policy.questions[0].required);
        d.validate(DraftMode::NewPackage, now()).unwrap();

        let values = d.form_values(&emails());
        let mut again = PackageDraft::new();
        for step in WizardStep::ALL {
            again.apply(DraftMode::NewPackage, *step, &Fields(&values), &people(), now()).unwrap();
        }
        assert_eq!(again, d);
    }

    #[test]
    fn a_refused_step_changes_nothing_and_names_its_field() {
        let mut d = PackageDraft::new();
        let before = d.clone();
        let cases = [
            (WizardStep::Basics, fields(&[("name", ""), ("policy_name", "x")]), "name"),
            (WizardStep::Roles, fields(&[("role_3", "")]), "roles"),
            (WizardStep::Requestors, fields(&[("scope", "specific"), ("people", "nobody@x.example")]), "people"),
            (WizardStep::Requestors, fields(&[("scope", "connected_orgs")]), "orgs"),
            (WizardStep::Approval, fields(&[("stages", "4")]), "stages"),
            (
                WizardStep::Approval,
                fields(&[("stages", "1"), ("s1_approver", "people"), ("s1_timeout", "3")]),
                "s1_people",
            ),
            (
                WizardStep::Approval,
                fields(&[("stages", "1"), ("s1_approver", "manager"), ("s1_timeout", "30")]),
                "s1_timeout",
            ),
            (
                WizardStep::Approval,
                fields(&[
                    ("stages", "1"),
                    ("s1_approver", "manager"),
                    ("s1_timeout", "3"),
                    ("s1_on_timeout", "escalate"),
                ]),
                "s1_escalation",
            ),
            (WizardStep::Lifecycle, fields(&[("expires", "on_date"), ("exp_date", "2026-11-30")]), "exp_date"),
            (WizardStep::Lifecycle, fields(&[("expires", "after_days"), ("exp_days", "zero")]), "exp_days"),
            (WizardStep::Lifecycle, fields(&[("expires", "never"), ("extension_allowed", "on")]), "extension_allowed"),
            (
                WizardStep::Questions,
                fields(&[("q1_prompt", "Pick"), ("q1_kind", "choice"), ("q1_options", " \n ")]),
                "q1_options",
            ),
            (
                WizardStep::Approval,
                fields(&[
                    ("stages", "1"),
                    ("s1_approver", "manager"),
                    ("s1_timeout", "3"),
                    ("s1_kept", "{"),
                    ("s1_keep", "on"),
                ]),
                "s1_kept",
            ),
        ];
        for (step, f, field) in cases {
            let err = d.apply(DraftMode::NewPackage, step, &Fields(&f), &people(), now()).unwrap_err();
            assert!(
                matches!(&err, DomainError::Invalid { field: Some(got), .. } if got == field),
                "{step}: {err:?} should name {field}"
            );
            assert_eq!(d, before, "{step}: refused, yet changed");
            assert_eq!(PackageDraft::step_of_field(field), step, "{field} belongs to {step}");
        }
    }

    #[test]
    fn an_edit_changes_only_what_its_form_showed_and_a_new_policy_keeps_the_package() {
        let mut d = PackageDraft {
            name: "Payroll".into(),
            roles: vec![ResourceRoleId(1)],
            incompatible_groups: vec![GroupId(4)],
            ..PackageDraft::new()
        };
        let f = fields(&[("role_2", "on"), ("sod_package_9", "on"), ("sod_shown", "on")]);
        d.apply(DraftMode::NewPolicy, WizardStep::Roles, &Fields(&f), &people(), now()).unwrap();
        assert_eq!(
            (d.incompatible_packages.len(), d.incompatible_groups.len()),
            (0, 1),
            "a new policy leaves the rules"
        );
        assert_eq!(d.roles, vec![ResourceRoleId(1)], "a new policy leaves the roles");
        d.apply(DraftMode::Edit, WizardStep::Roles, &Fields(&f), &people(), now()).unwrap();
        assert_eq!(d.roles, vec![ResourceRoleId(1)], "the form did not show the roles");
        assert_eq!((d.incompatible_packages.clone(), d.incompatible_groups.clone()), (vec![PackageId(9)], vec![]));
        let shown = fields(&[("role_2", "on"), ("role_3", "on"), ("roles_shown", "on")]);
        d.apply(DraftMode::Edit, WizardStep::Roles, &Fields(&shown), &people(), now()).unwrap();
        assert_eq!(d.roles, vec![ResourceRoleId(2), ResourceRoleId(3)], "an edit changes the roles it showed");
        assert_eq!(d.incompatible_packages, vec![PackageId(9)], "and leaves the rules it did not show");
        let none = fields(&[("roles_shown", "on")]);
        let err = d.apply(DraftMode::Edit, WizardStep::Roles, &Fields(&none), &people(), now()).unwrap_err();
        assert!(matches!(&err, DomainError::Invalid { field: Some(f), .. } if f == "roles"), "{err:?}");
        let f = fields(&[("name", "Renamed"), ("policy_name", "Contractors")]);
        d.apply(DraftMode::NewPolicy, WizardStep::Basics, &Fields(&f), &people(), now()).unwrap();
        assert_eq!((d.name.as_str(), d.policy.name.as_str()), ("Payroll", "Contractors"));
    }

    #[test]
    fn questions_keep_their_keys_and_new_ones_never_reuse_one() {
        let mut d = PackageDraft::new();
        let old = |id: &str| Question {
            id: id.into(),
            prompt: format!("Old {id}"),
            required: false,
            kind: QuestionKind::Text { multiline: true },
        };
        d.policy.questions = vec![old("q1"), old("q2")];
        d.used_keys = vec!["q1".into(), "q2".into()];
        // q1 deleted, q2 kept (and still multi-line), one new, one with a forged key.
        let f = fields(&[
            ("q1_id", "q2"),
            ("q1_prompt", "Old q2"),
            ("q1_multiline", "on"),
            ("q2_prompt", "New"),
            ("q3_id", "zzz"),
            ("q3_prompt", "Forged"),
        ]);
        d.apply(DraftMode::Edit, WizardStep::Questions, &Fields(&f), &people(), now()).unwrap();
        let ids: Vec<&str> = d.policy.questions.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, ["q2", "q3", "q4"], "q1 is never given to another question");
        assert_eq!(d.policy.questions[0].kind, QuestionKind::Text { multiline: true });
        assert_eq!(d.used_keys, ["q1", "q2", "q3", "q4"]);
    }

    /// What a step's form cannot show (other kinds of approvers and reviewers) is kept beside
    /// it, and comes back unchanged.
    #[test]
    fn approvers_the_form_cannot_show_are_kept() {
        let mut d = PackageDraft { name: "Payroll".into(), roles: vec![ResourceRoleId(1)], ..PackageDraft::new() };
        d.policy.approval.stages = vec![Stage {
            primary: vec![ApproverSpec::Manager, ApproverSpec::User { id: UserId(7) }],
            fallback: vec![ApproverSpec::CatalogOwners, ApproverSpec::User { id: UserId(9) }],
            escalation: vec![ApproverSpec::Group { id: GroupId(3) }],
            justification_required: true,
            timeout_days: 5,
            remind_after_days: Some(3),
            on_timeout: OnTimeout::Escalate,
        }];
        d.policy.expiration = Expiration::AfterDays { days: 10 };
        d.policy.review = ReviewSettings::Recurring {
            frequency: ReviewFrequency::Monthly,
            reviewers: vec![ApproverSpec::Group { id: GroupId(2) }, ApproverSpec::Manager],
            self_review: false,
            duration_days: 7,
            default_decision: ReviewDefault::Keep,
            apply_automatically: true,
            starts_on: NaiveDate::from_ymd_opt(2027, 1, 4),
            fallback: vec![ApproverSpec::User { id: UserId(9) }],
        };
        let values = d.form_values(&emails());
        let mut again = d.clone();
        for step in WizardStep::ALL {
            again.apply(DraftMode::Edit, *step, &Fields(&values), &people(), now()).unwrap();
        }
        assert_eq!(normalized(&again.policy), normalized(&d.policy));
        // Unticking "keep" drops them.
        let mut dropped = values.clone();
        dropped.remove("s1_keep");
        dropped.insert("s1_on_timeout".into(), "expire".into());
        again.apply(DraftMode::Edit, WizardStep::Approval, &Fields(&dropped), &people(), now()).unwrap();
        assert_eq!(again.policy.approval.stages[0].primary, vec![ApproverSpec::Manager]);
        assert_eq!(again.policy.approval.stages[0].fallback, vec![ApproverSpec::User { id: UserId(9) }]);
    }
}
