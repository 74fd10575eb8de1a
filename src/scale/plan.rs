//! The organisation, decided in memory before anything is written: people and their managers,
//! groups, catalogs with their roles and resources, packages with their policies, and one
//! [`Item`] per request (with the assignment it led to, if any), in the order they happened.
//!
//! Everything is drawn from one seeded generator, so a seed gives the same organisation (at
//! the same `now`). Details that several phases need again (how long a stage waited, who
//! decided it) come from a per-item seed through [`mix`], never from shared state.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::seq::index;
use rand::{Rng, SeedableRng};

use super::ScaleError;
use crate::domain::approvers::ApproverSource;
use crate::domain::ids::{GroupId, PackageId, PolicyId, UserId};
use crate::domain::model::Role;
use crate::domain::policy::{
    ApproverSpec, Expiration, OnTimeout, Policy, Question, QuestionKind, RequestorRef, RequestorScope, Stage,
};

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

/// "No one": no manager, no team group.
pub const NONE: u32 = u32::MAX;

/// The email domain of the people: the demo organisation's, so `serve --demo` accepts the
/// database and demo sign-in can act as anyone in it (the benchmark signs in that way).
pub const EMAIL_DOMAIN: &str = "quartermaster.example";

/// Index 0 is the chief executive's own; the others each have a vice-president, a group,
/// catalogs and packages.
pub const DEPARTMENTS: [&str; 13] = [
    "Executive",
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Operations",
    "IT",
    "Security",
    "Human Resources",
    "Legal",
    "Customer Success",
    "Product",
    "Data",
];

const FIRST_NAMES: [&str; 48] = [
    "Ada", "Alan", "Amara", "Ana", "Arjun", "Ben", "Bianca", "Carlos", "Chen", "Chloe", "Dana", "David", "Elif",
    "Emma", "Farah", "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jamal", "Jin", "Julia", "Kai", "Lea", "Leila",
    "Linus", "Lucas", "Maya", "Mei", "Mateo", "Nadia", "Noah", "Omar", "Olga", "Priya", "Rafael", "Sara", "Sofia",
    "Tariq", "Tom", "Uma", "Victor", "Wen", "Yara", "Yusuf", "Zoe",
];

const LAST_NAMES: [&str; 48] = [
    "Abbott", "Alvarez", "Becker", "Bianchi", "Carter", "Chen", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia",
    "Haddad", "Hansen", "Hopper", "Ito", "Jansen", "Kaur", "Kowalski", "Larsen", "Lopez", "Martin", "Meyer", "Moreau",
    "Murphy", "Nair", "Nakamura", "Novak", "Okafor", "Olsen", "Park", "Patel", "Petrova", "Quinn", "Rossi", "Santos",
    "Sato", "Schmidt", "Silva", "Singh", "Tanaka", "Varga", "Walsh", "Weber", "Williams", "Xu", "Yilmaz", "Zhang",
    "Zimmer",
];

const INDIVIDUAL_TITLES: [&str; 8] = [
    "Associate",
    "Analyst",
    "Specialist",
    "Senior Specialist",
    "Engineer",
    "Senior Engineer",
    "Consultant",
    "Coordinator",
];

const APPS: [&str; 40] = [
    "Jira",
    "Confluence",
    "GitHub",
    "GitLab",
    "Jenkins",
    "Grafana",
    "Datadog",
    "PagerDuty",
    "Kubernetes",
    "Vault",
    "Salesforce",
    "HubSpot",
    "Gong",
    "Zendesk",
    "Intercom",
    "Marketo",
    "Figma",
    "Miro",
    "Notion",
    "Slack",
    "Workday",
    "NetSuite",
    "Coupa",
    "Expensify",
    "SAP",
    "Tableau",
    "Looker",
    "Snowflake",
    "Databricks",
    "Airflow",
    "ServiceNow",
    "Okta",
    "CrowdStrike",
    "Splunk",
    "Wiz",
    "DocuSign",
    "Ironclad",
    "Greenhouse",
    "Lattice",
    "Zoom",
];

const RESOURCE_ROLES: [&str; 3] = ["Member", "Administrator", "Viewer"];

const CATALOG_KINDS: [&str; 5] = ["Applications", "Platforms", "Data", "Tools", "Shared Services"];

const APPROVER_GROUPS: [(&str, usize); 4] = [
    ("Security Review Board", 7),
    ("Finance Controllers", 4),
    ("Data Governance Council", 12),
    ("IT Change Advisory Board", 6),
];

const PROJECTS: [&str; 16] = [
    "Atlas", "Beacon", "Comet", "Delta", "Ember", "Falcon", "Glacier", "Harbor", "Iris", "Juniper", "Kestrel", "Lumen",
    "Meridian", "Nimbus", "Orion", "Polaris",
];

pub const JUSTIFICATIONS: [&str; 8] = [
    "Needed for my day-to-day work",
    "Joining the project team this quarter",
    "Covering for a colleague on leave",
    "Onboarding to the team",
    "Required for the quarterly audit",
    "Migrating our service to the new platform",
    "On-call rotation starts next week",
    "Customer escalation needs this access",
];

pub const REGIONS: [&str; 4] = ["EMEA", "North America", "APAC", "LATAM"];
pub const PURPOSES: [&str; 3] = ["Project work", "On-call", "Audit"];

/// How many of each thing, at a scale.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Sizes {
    pub people: u32,
    pub groups: u32,
    pub catalogs: u32,
    pub packages: u32,
    pub assignments: u64,
    pub pending_requests: u64,
    pub audit_events: u64,
    /// Assignments of the one big package.
    pub big_package_assignments: u64,
    /// Assignments of the person with many.
    pub heavy_person_assignments: u32,
    /// Edits of the big package (the audit object with many events).
    pub audit_object_events: u64,
}

fn scaled(default: f64, scale: f64) -> u64 {
    (default * scale).round().max(0.0) as u64
}

impl Sizes {
    pub fn new(scale: f64, people: Option<u32>) -> Result<Self, ScaleError> {
        if !(scale.is_finite() && scale > 0.0 && scale <= 10.0) {
            return Err(ScaleError::Invalid(format!("--scale must be above 0 and at most 10, not {scale}")));
        }
        let people = people.map_or_else(|| scaled(100_000.0, scale), u64::from).max(50);
        let people = u32::try_from(people).map_err(|_| ScaleError::Invalid("too many people".into()))?;
        let packages = scaled(2_000.0, scale).max(100) as u32;
        let assignments = scaled(1_000_000.0, scale);
        let pending = scaled(20_000.0, scale);
        let sizes = Sizes {
            people,
            groups: scaled(500.0, scale).max(20) as u32,
            catalogs: scaled(50.0, scale).max(4) as u32,
            packages,
            assignments,
            pending_requests: pending,
            audit_events: scaled(10_000_000.0, scale),
            big_package_assignments: scaled(50_000.0, scale).min(u64::from(people) * 3 / 5),
            heavy_person_assignments: 50.min(packages / 2),
            audit_object_events: scaled(1_000.0, scale).max(10),
        };
        // Each person holds distinct packages, and can ask for a few more: leave room.
        let room = u64::from(people) * u64::from(packages) / 4;
        if assignments + pending > room {
            return Err(ScaleError::Invalid(format!(
                "{assignments} assignments and {pending} pending requests do not fit {people} people and \
                 {packages} packages (each person holds a package once); use more people or a smaller scale"
            )));
        }
        if sizes.big_package_assignments + u64::from(sizes.heavy_person_assignments) > assignments {
            return Err(ScaleError::Invalid("the scale is too small for the big package and the busy person".into()));
        }
        Ok(sizes)
    }
}

/// A person. Their id is their index + 1; managers come before their reports.
#[derive(Clone, Copy, Debug)]
pub struct Person {
    pub manager: u32,
    pub dept: u8,
    pub depth: u8,
    pub first: u8,
    pub last: u8,
    pub reports: u32,
    /// The team group of their director's organisation, if it has one.
    pub team: u32,
}

impl Person {
    pub fn display_name(&self) -> String {
        format!("{} {}", FIRST_NAMES[self.first as usize], LAST_NAMES[self.last as usize])
    }

    pub fn email(&self, index: u32) -> String {
        format!(
            "{}.{}.{}@{EMAIL_DOMAIN}",
            FIRST_NAMES[self.first as usize].to_ascii_lowercase(),
            LAST_NAMES[self.last as usize].to_ascii_lowercase(),
            index + 1
        )
    }

    pub fn job_title(&self, index: u32) -> String {
        let dept = DEPARTMENTS[self.dept as usize];
        match (self.depth, self.reports) {
            (0, _) => "Chief Executive Officer".to_owned(),
            (1, _) => format!("Vice President, {dept}"),
            (2, r) if r > 0 => format!("Director, {dept}"),
            (3, r) if r > 0 => "Senior Manager".to_owned(),
            (_, r) if r > 0 => "Manager".to_owned(),
            _ => INDIVIDUAL_TITLES[index as usize % INDIVIDUAL_TITLES.len()].to_owned(),
        }
    }
}

#[derive(Clone, Debug)]
/// A directory group. Department and team groups have implicit members (from the people's
/// department and director); approver and project groups list theirs.
pub struct GroupPlan {
    pub name: String,
    pub description: String,
    pub members: Vec<u32>,
}

#[derive(Clone, Debug)]
pub struct CatalogPlan {
    pub name: String,
    pub description: String,
    pub dept: u8,
    pub externally_visible: bool,
    pub owners: Vec<u32>,
    pub package_managers: Vec<u32>,
    pub assignment_managers: Vec<u32>,
}

#[derive(Clone, Debug)]
pub struct ResourcePlan {
    pub catalog: u32,
    pub name: String,
    /// Its roles: indexes into [`Plan::resource_roles`].
    pub first_role: u32,
    pub role_count: u32,
}

/// The shapes of policy the packages use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// Every employee, no approval.
    NoApproval,
    /// Every employee, their manager approves (catalog owners when there is none).
    Manager,
    /// Every employee: the manager, then the catalog owners.
    ManagerThenOwners,
    /// The catalog's department only: an approver group reviews; escalates to the owners.
    GroupReview,
    /// Every employee: the manager, then an approver group.
    ManagerThenGroup,
    /// Every employee: one named person (the catalog's package manager) approves.
    NamedApprover,
}

#[derive(Clone, Debug)]
pub struct PackagePlan {
    pub catalog: u32,
    pub name: String,
    pub description: String,
    /// Resource roles granted (indexes into [`Plan::resource_roles`]).
    pub roles: Vec<u32>,
    pub template: Template,
    pub policy: Policy,
    /// The policy's approval stages as stored on a request (a snapshot).
    pub stages_json: String,
    pub approval_json: String,
    pub questions_json: String,
    pub expiration_json: String,
    pub review_json: String,
    /// `Some(days)` for an access period counted from the grant.
    pub days: Option<i64>,
    /// A fixed end (`Expiration::OnDate`), in milliseconds.
    pub fixed_end: Option<i64>,
    /// Packages it may not be held with (both directions).
    pub incompatible: Vec<u32>,
    pub weight: f64,
}

impl PackagePlan {
    pub fn stages(&self) -> &[Stage] {
        &self.policy.approval.stages
    }

    pub fn expires(&self) -> bool {
        self.days.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Requested (by the person or their manager), approved through the stages, assigned.
    Assigned,
    /// Assigned directly by an assignment manager.
    AdminAssigned,
    /// Still waiting for a decision.
    Pending,
    /// Ended without access: denied, canceled or expired.
    Refused,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered and current.
    Live,
    /// Delivered, and its end has passed: the next expiry sweep ends it.
    Due,
    /// Granted moments ago: its grants wait in the outbox.
    Delivering,
    Expired,
    /// Removed by an assignment manager.
    Removed,
    /// Given up by its holder.
    GivenUp,
    Waiting,
    Denied,
    Canceled,
    TimedOut,
}

impl Outcome {
    pub fn ended(self) -> bool {
        matches!(self, Outcome::Expired | Outcome::Removed | Outcome::GivenUp)
    }
}

/// One request, and the assignment it led to.
#[derive(Clone, Copy, Debug)]
pub struct Item {
    /// When the request was filed.
    pub created: i64,
    /// Assigned: the access period's start (the final approval). Pending: when the current
    /// stage started.
    pub start: i64,
    /// Assigned: the access period's end. Pending: the current stage's due time.
    pub end: Option<i64>,
    /// When it ended: the expiry or removal of an assignment; the end of a refused request.
    pub ended: i64,
    pub seed: u64,
    pub user: u32,
    pub requestor: u32,
    pub package: u32,
    /// Assignment id, first grant id and first decision id (set once the items are in order).
    pub aid: u32,
    pub gid: u32,
    pub did: u32,
    pub kind: Kind,
    pub outcome: Outcome,
    /// Pending: the current stage; refused: the stage it ended at (1-based).
    pub stage: u8,
    pub escalated: bool,
}

impl Item {
    pub fn request_kind(&self) -> &'static str {
        if self.kind == Kind::AdminAssigned {
            "admin_add"
        } else {
            "user_add"
        }
    }

    pub fn has_assignment(&self) -> bool {
        matches!(self.kind, Kind::Assigned | Kind::AdminAssigned)
    }
}

/// A small, fast, portable mixing function (SplitMix64's finalizer) for per-item details.
pub fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `mix` as a number in `[lo, hi)`.
pub fn mix_range(seed: u64, salt: u64, lo: i64, hi: i64) -> i64 {
    if hi <= lo {
        return lo;
    }
    lo + (mix(seed, salt) % (hi - lo) as u64) as i64
}

/// Weighted choice by binary search over cumulative weights.
#[derive(Clone, Debug, Default)]
struct Sampler {
    cumulative: Vec<f64>,
    packages: Vec<u32>,
}

impl Sampler {
    fn push(&mut self, package: u32, weight: f64) {
        let last = self.cumulative.last().copied().unwrap_or(0.0);
        self.cumulative.push(last + weight);
        self.packages.push(package);
    }

    fn pick(&self, rng: &mut StdRng) -> Option<u32> {
        let total = *self.cumulative.last()?;
        let x = rng.random::<f64>() * total;
        let i = self.cumulative.partition_point(|c| *c <= x).min(self.packages.len() - 1);
        Some(self.packages[i])
    }
}

/// Everything to write, in memory.
pub struct Plan {
    pub now: i64,
    pub sizes: Sizes,
    pub people: Vec<Person>,
    pub groups: Vec<GroupPlan>,
    /// The department groups, by department (`NONE` for the executive's).
    pub dept_groups: Vec<u32>,
    pub catalogs: Vec<CatalogPlan>,
    /// Role assignments: (person, role, catalog).
    pub roles: Vec<(u32, Role, Option<u32>)>,
    pub resources: Vec<ResourcePlan>,
    /// (resource, role name)
    pub resource_roles: Vec<(u32, &'static str)>,
    pub packages: Vec<PackagePlan>,
    /// Separation-of-duties pairs.
    pub incompatible: Vec<(u32, u32)>,
    /// Requests in the order they were filed: request id = index + 1.
    pub items: Vec<Item>,
    /// Built-in group memberships: (resource role, person, since), one per pair.
    pub memberships: Vec<(u32, u32, i64)>,
    pub administrator: u32,
    pub heavy_person: u32,
    pub big_package: u32,
    /// The members of the approver groups: the busiest approvers.
    pub busy_approvers: Vec<u32>,
    /// The approver groups (indexes into `groups`).
    pub approver_groups: Vec<u32>,
    /// When the organisation was set up (catalogs, packages, roles): before any request.
    pub founded: i64,
    pub counts: Counts,
}

/// Rows per table, known before writing (for progress and the check at the end).
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub group_members: u64,
    pub requests: u64,
    pub request_approvers: u64,
    pub decisions: u64,
    pub assignments: u64,
    pub grants: u64,
    pub outbox: u64,
    pub audit_events: u64,
    pub audit_object_events: u64,
}

fn lognormal(rng: &mut StdRng, sigma: f64) -> f64 {
    // Box–Muller.
    let u1 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2 = rng.random::<f64>();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (sigma * z).exp()
}

/// Distribute `total` over weights, exactly, each share at most its cap (largest remainder,
/// then what did not fit goes to whoever still has room).
fn apportion(rng: &mut StdRng, weights: &[f64], caps: &[u32], total: u64) -> Vec<u32> {
    let sum: f64 = weights.iter().sum();
    let mut out = vec![0u32; weights.len()];
    if sum <= 0.0 || total == 0 {
        return out;
    }
    let mut given = 0u64;
    let mut rest: Vec<(f64, usize)> = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let exact = total as f64 * w / sum;
        let share = (exact.floor() as u64).min(u64::from(caps[i]));
        out[i] = share as u32;
        given += share;
        rest.push((exact - exact.floor(), i));
    }
    rest.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let mut left = total.saturating_sub(given);
    for (_, i) in &rest {
        if left == 0 {
            break;
        }
        if out[*i] < caps[*i] {
            out[*i] += 1;
            left -= 1;
        }
    }
    while left > 0 {
        let open: Vec<usize> = (0..out.len()).filter(|i| out[*i] < caps[*i]).collect();
        if open.is_empty() {
            break;
        }
        for i in open {
            if left == 0 {
                break;
            }
            if rng.random_bool(0.5) {
                out[i] += 1;
                left -= 1;
            }
        }
    }
    out
}

struct Builder {
    rng: StdRng,
    now: i64,
}

impl Plan {
    pub fn new(sizes: Sizes, seed: u64, now: DateTime<Utc>) -> Result<Plan, ScaleError> {
        let now = now.timestamp_millis();
        let mut b = Builder { rng: StdRng::seed_from_u64(seed), now };
        let people = b.people(sizes.people);
        let mut plan = Plan {
            now,
            founded: now - 731 * DAY,
            sizes,
            people,
            groups: Vec::new(),
            dept_groups: Vec::new(),
            catalogs: Vec::new(),
            roles: Vec::new(),
            resources: Vec::new(),
            resource_roles: Vec::new(),
            packages: Vec::new(),
            incompatible: Vec::new(),
            items: Vec::new(),
            memberships: Vec::new(),
            administrator: 0,
            heavy_person: 0,
            big_package: 0,
            busy_approvers: Vec::new(),
            approver_groups: Vec::new(),
            counts: Counts::default(),
        };
        b.groups(&mut plan);
        b.catalogs(&mut plan);
        b.packages(&mut plan)?;
        b.items(&mut plan);
        plan.order_and_count();
        Ok(plan)
    }

    pub fn person_id(index: u32) -> i64 {
        i64::from(index) + 1
    }

    pub fn manager_of(&self, person: u32) -> Option<u32> {
        let m = self.people[person as usize].manager;
        (m != NONE).then_some(m)
    }

    /// The people one approver spec names for this target.
    fn expand(&self, spec: &ApproverSpec, package: &PackagePlan, target: u32, out: &mut Vec<u32>) {
        match *spec {
            ApproverSpec::User { id } => out.push((id.0 - 1) as u32),
            // Approval stages name approver groups only, whose members are explicit.
            ApproverSpec::Group { id } => {
                if let Some(g) = self.groups.get((id.0 - 1) as usize) {
                    out.extend(&g.members);
                }
            }
            ApproverSpec::Manager => out.extend(self.manager_of(target)),
            ApproverSpec::CatalogOwners => out.extend(&self.catalogs[package.catalog as usize].owners),
            ApproverSpec::Sponsors => {}
        }
    }

    fn resolve(&self, specs: &[ApproverSpec], package: &PackagePlan, target: u32, requestor: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for s in specs {
            self.expand(s, package, target, &mut out);
        }
        out.retain(|u| *u != target && *u != requestor);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The approvers of one stage (0-based), resolved as the application does
    /// (`domain::approvers::resolve_stage`): the primary approvers, or the fallback ones when
    /// there are none, and the escalation approvers apart; never the requestor or the target.
    pub fn stage_approvers(
        &self,
        package: u32,
        stage: usize,
        target: u32,
        requestor: u32,
    ) -> Vec<(u32, ApproverSource)> {
        let p = &self.packages[package as usize];
        let Some(s) = p.stages().get(stage) else { return Vec::new() };
        let primary = self.resolve(&s.primary, p, target, requestor);
        let mut out: Vec<(u32, ApproverSource)> = if primary.is_empty() {
            self.resolve(&s.fallback, p, target, requestor).into_iter().map(|u| (u, ApproverSource::Fallback)).collect()
        } else {
            primary.into_iter().map(|u| (u, ApproverSource::Primary)).collect()
        };
        for u in self.resolve(&s.escalation, p, target, requestor) {
            if !out.iter().any(|(id, _)| *id == u) {
                out.push((u, ApproverSource::Escalation));
            }
        }
        out
    }

    /// Every stage has someone (not the requestor or the target) who can decide it.
    fn has_deciders(&self, package: u32, target: u32, requestor: u32) -> bool {
        (0..self.packages[package as usize].stages().len()).all(|s| {
            self.stage_approvers(package, s, target, requestor)
                .iter()
                .any(|(_, src)| *src != ApproverSource::Escalation)
        })
    }

    /// Who decided stage `stage` (1-based) of an item.
    pub fn decider(&self, item: &Item, stage: usize) -> u32 {
        let approvers: Vec<u32> = self
            .stage_approvers(item.package, stage - 1, item.user, item.requestor)
            .into_iter()
            .filter(|(_, s)| *s != ApproverSource::Escalation)
            .map(|(u, _)| u)
            .collect();
        if approvers.is_empty() {
            return item.requestor;
        }
        approvers[(mix(item.seed, 100 + stage as u64) % approvers.len() as u64) as usize]
    }

    /// How long stage `stage` (1-based) waited for its decision.
    pub fn stage_delay(seed: u64, stage: usize) -> i64 {
        mix_range(seed, 10 + stage as u64, 5 * MINUTE, 2 * DAY)
    }

    /// When stage `stage` (1-based) was decided; `decided_at(0)` is when the request was filed.
    pub fn decided_at(item: &Item, stage: usize) -> i64 {
        item.created + (1..=stage).map(|k| Self::stage_delay(item.seed, k)).sum::<i64>()
    }

    /// When grant `j` (0-based) of an assignment was delivered.
    pub fn grant_delivered_at(item: &Item, j: usize) -> i64 {
        item.start + (0..=j).map(|k| mix_range(item.seed, 40 + k as u64, 300, 3_000)).sum::<i64>()
    }

    /// When grant `j` (0-based) of an ended assignment was taken away.
    pub fn grant_removed_at(item: &Item, j: usize) -> i64 {
        item.ended + (0..=j).map(|k| mix_range(item.seed, 50 + k as u64, 300, 3_000)).sum::<i64>()
    }

    /// When an assignment was fully delivered (its last grant).
    pub fn delivered_at(&self, item: &Item) -> i64 {
        let roles = self.packages[item.package as usize].roles.len();
        Self::grant_delivered_at(item, roles.saturating_sub(1))
    }

    pub fn justification(item: &Item, salt: u64) -> &'static str {
        JUSTIFICATIONS[(mix(item.seed, salt) % JUSTIFICATIONS.len() as u64) as usize]
    }

    /// What the requestor wrote.
    pub fn request_justification(&self, item: &Item) -> &'static str {
        let p = &self.packages[item.package as usize];
        if item.kind == Kind::AdminAssigned || p.policy.justification_required || mix(item.seed, 60).is_multiple_of(2) {
            Self::justification(item, 61)
        } else {
            ""
        }
    }

    /// The answers to the policy's questions.
    pub fn answers(&self, item: &Item) -> Vec<crate::domain::policy::Answer> {
        if item.kind == Kind::AdminAssigned {
            return Vec::new();
        }
        let p = &self.packages[item.package as usize];
        p.policy
            .questions
            .iter()
            .enumerate()
            .filter_map(|(i, q)| {
                let value = match &q.kind {
                    QuestionKind::Choice { options } => {
                        options.get((mix(item.seed, 70 + i as u64) % options.len().max(1) as u64) as usize)?.clone()
                    }
                    QuestionKind::Text { .. } if q.required || !mix(item.seed, 80 + i as u64).is_multiple_of(3) => {
                        REGIONS[(mix(item.seed, 90 + i as u64) % REGIONS.len() as u64) as usize].to_owned()
                    }
                    QuestionKind::Text { .. } => return None,
                };
                Some(crate::domain::policy::Answer { question_id: q.id.clone(), value })
            })
            .collect()
    }

    /// Who removed an assignment an assignment manager took away.
    pub fn remover(&self, item: &Item) -> u32 {
        let c = &self.catalogs[self.packages[item.package as usize].catalog as usize];
        let list: Vec<u32> =
            c.assignment_managers.iter().chain(&c.owners).copied().filter(|u| *u != item.user).collect();
        list.get((mix(item.seed, 95) % list.len().max(1) as u64) as usize).copied().unwrap_or(self.administrator)
    }

    /// Audit events of one item (the same count the audit phase writes).
    pub fn events_of(&self, item: &Item) -> u64 {
        let p = &self.packages[item.package as usize];
        let roles = p.roles.len() as u64;
        let stages = p.stages().len() as u64;
        let granted = |item: &Item| {
            1 + if item.outcome == Outcome::Delivering { 0 } else { roles + 1 }
                + if item.outcome.ended() { 2 + roles } else { 0 }
        };
        match item.kind {
            Kind::Assigned => 1 + stages + granted(item),
            Kind::AdminAssigned => 1 + granted(item),
            Kind::Pending => 1 + u64::from(item.stage) - 1 + u64::from(item.escalated),
            Kind::Refused => 1 + u64::from(item.stage) - 1 + 1,
        }
    }

    /// Decisions recorded for one item.
    pub fn decisions_of(&self, item: &Item) -> u64 {
        let stages = self.packages[item.package as usize].stages().len() as u64;
        match item.kind {
            Kind::Assigned => stages,
            Kind::AdminAssigned => 0,
            Kind::Pending => u64::from(item.stage) - 1,
            Kind::Refused => u64::from(item.stage) - u64::from(item.outcome == Outcome::Canceled),
        }
    }

    /// Events at the very start: catalogs, role grants, packages and policies created.
    pub fn setup_events(&self) -> u64 {
        (self.catalogs.len() + self.roles.len() + 2 * self.packages.len()) as u64
    }

    /// Put the requests in the order they were filed, give them their ids, and count rows.
    fn order_and_count(&mut self) {
        self.items.sort_unstable_by_key(|i| (i.created, i.seed));
        let (mut aid, mut gid, mut did) = (1u32, 1u32, 1u32);
        let mut counts = Counts { audit_object_events: self.counts.audit_object_events, ..Counts::default() };
        let mut memberships: Vec<(u64, i64)> = Vec::new();
        for n in 0..self.items.len() {
            let item = self.items[n];
            let p = &self.packages[item.package as usize];
            let roles = p.roles.len() as u32;
            let decisions = self.decisions_of(&item) as u32;
            let events = self.events_of(&item);
            let mut approvers = 0u64;
            if item.kind != Kind::AdminAssigned {
                for s in 0..p.stages().len() {
                    approvers += self.stage_approvers(item.package, s, item.user, item.requestor).len() as u64;
                }
            }
            let it = &mut self.items[n];
            it.did = did;
            did += decisions;
            if it.has_assignment() {
                it.aid = aid;
                it.gid = gid;
                aid += 1;
                gid += roles;
                counts.assignments += 1;
                counts.grants += u64::from(roles);
                if it.outcome == Outcome::Delivering {
                    counts.outbox += u64::from(roles);
                } else if !it.outcome.ended() {
                    for (j, role) in p.roles.iter().enumerate() {
                        memberships
                            .push(((u64::from(*role) << 32) | u64::from(it.user), Self::grant_delivered_at(it, j)));
                    }
                }
            }
            counts.requests += 1;
            counts.decisions += u64::from(decisions);
            counts.request_approvers += approvers;
            counts.audit_events += events;
        }
        memberships.sort_unstable();
        memberships.dedup_by_key(|m| m.0);
        self.memberships = memberships.into_iter().map(|(k, at)| ((k >> 32) as u32, k as u32, at)).collect();
        counts.group_members = self.group_member_count();
        counts.audit_events += self.setup_events() + counts.audit_object_events;
        self.counts = counts;
    }

    fn group_member_count(&self) -> u64 {
        let implicit: u64 = self
            .people
            .iter()
            .map(|p| u64::from(self.dept_groups[p.dept as usize] != NONE) + u64::from(p.team != NONE))
            .sum();
        implicit + self.groups.iter().map(|g| g.members.len() as u64).sum::<u64>()
    }
}

impl Builder {
    /// The tree: the chief executive, a vice-president per department, then each manager
    /// gets four to twelve reports (about eight), breadth first, so managers have lower ids.
    fn people(&mut self, n: u32) -> Vec<Person> {
        let mut people = Vec::with_capacity(n as usize);
        let person = |rng: &mut StdRng, manager: u32, dept: u8, depth: u8| Person {
            manager,
            dept,
            depth,
            first: rng.random_range(0..FIRST_NAMES.len()) as u8,
            last: rng.random_range(0..LAST_NAMES.len()) as u8,
            reports: 0,
            team: NONE,
        };
        people.push(person(&mut self.rng, NONE, 0, 0));
        let mut queue = std::collections::VecDeque::from([0u32]);
        while (people.len() as u32) < n {
            let Some(m) = queue.pop_front() else { break };
            let span = if m == 0 { DEPARTMENTS.len() as u32 - 1 } else { self.rng.random_range(4..=12) };
            for k in 0..span {
                if people.len() as u32 >= n {
                    break;
                }
                let (dept, depth) = {
                    let boss: &Person = &people[m as usize];
                    (if m == 0 { (k + 1) as u8 } else { boss.dept }, boss.depth + 1)
                };
                let p = person(&mut self.rng, m, dept, depth);
                people[m as usize].reports += 1;
                queue.push_back(people.len() as u32);
                people.push(p);
            }
        }
        people
    }

    fn groups(&mut self, plan: &mut Plan) {
        let total = plan.sizes.groups as usize;
        plan.dept_groups = vec![NONE; DEPARTMENTS.len()];
        for (d, name) in DEPARTMENTS.iter().enumerate().skip(1) {
            plan.dept_groups[d] = plan.groups.len() as u32;
            plan.groups.push(GroupPlan {
                name: (*name).to_owned(),
                description: format!("Everyone in {name}"),
                members: Vec::new(),
            });
        }
        // Approver groups: five reviewers each, from the department that owns the topic.
        let mut taken = HashSet::new();
        for (name, dept) in APPROVER_GROUPS {
            let mut pool: Vec<u32> = (0..plan.people.len() as u32)
                .filter(|i| {
                    let p = &plan.people[*i as usize];
                    p.dept as usize == dept && p.depth >= 2 && !taken.contains(i)
                })
                .collect();
            if pool.len() < 5 {
                pool = (1..plan.people.len() as u32).filter(|i| !taken.contains(i)).collect();
            }
            let members: Vec<u32> =
                index::sample(&mut self.rng, pool.len(), 5.min(pool.len())).into_iter().map(|i| pool[i]).collect();
            taken.extend(members.iter().copied());
            plan.busy_approvers.extend(members.iter().copied());
            plan.approver_groups.push(plan.groups.len() as u32);
            plan.groups.push(GroupPlan { name: name.to_owned(), description: format!("Reviewers: {name}"), members });
        }
        // Team groups: one per director's organisation, as many as fit.
        let fixed = plan.groups.len();
        let teams_room = total.saturating_sub(fixed) / 4;
        let directors: Vec<u32> = (0..plan.people.len() as u32)
            .filter(|i| plan.people[*i as usize].depth == 2 && plan.people[*i as usize].reports > 0)
            .take(teams_room)
            .collect();
        for d in directors {
            let p = plan.people[d as usize];
            let g = plan.groups.len() as u32;
            plan.groups.push(GroupPlan {
                name: format!("{} · {}'s organization ({})", DEPARTMENTS[p.dept as usize], p.display_name(), d + 1),
                description: format!("Everyone reporting to {}", p.display_name()),
                members: Vec::new(),
            });
            plan.people[d as usize].team = g;
        }
        // Everyone under a director with a team is in it (managers come before reports).
        for i in 0..plan.people.len() {
            let m = plan.people[i].manager;
            if m != NONE && plan.people[i].team == NONE && plan.people[i].depth > 2 {
                plan.people[i].team = plan.people[m as usize].team;
            }
        }
        // Project groups fill the rest: ten to three hundred people each.
        let n = plan.people.len();
        let mut k = 0;
        while plan.groups.len() < total.max(fixed) {
            let size = self.rng.random_range(10..=300).min(n / 4).max(1);
            let members: Vec<u32> = index::sample(&mut self.rng, n, size).into_iter().map(|i| i as u32).collect();
            plan.groups.push(GroupPlan {
                name: format!("Project {} {}", PROJECTS[k % PROJECTS.len()], k / PROJECTS.len() + 1),
                description: "Project team".to_owned(),
                members,
            });
            k += 1;
        }
    }

    /// Pick `count` distinct people of a department among managers first, then anyone.
    fn staff(&mut self, plan: &Plan, dept: u8, count: usize, avoid: &[u32]) -> Vec<u32> {
        let mut pool: Vec<u32> = (1..plan.people.len() as u32)
            .filter(|i| {
                let p = &plan.people[*i as usize];
                p.dept == dept && (2..=4).contains(&p.depth) && !avoid.contains(i)
            })
            .collect();
        if pool.len() < count {
            pool = (1..plan.people.len() as u32).filter(|i| !avoid.contains(i)).collect();
        }
        index::sample(&mut self.rng, pool.len(), count.min(pool.len())).into_iter().map(|i| pool[i]).collect()
    }

    fn catalogs(&mut self, plan: &mut Plan) {
        let it = DEPARTMENTS.iter().position(|d| *d == "IT").unwrap_or(1) as u8;
        plan.administrator = self.staff(plan, it, 1, &plan.busy_approvers.clone()).first().copied().unwrap_or(0);
        plan.roles.push((plan.administrator, Role::Administrator, None));
        for c in self.staff(plan, it, 2, &[plan.administrator]) {
            plan.roles.push((c, Role::CatalogCreator, None));
        }
        let avoid = plan.busy_approvers.clone();
        for c in 0..plan.sizes.catalogs {
            let dept = (1 + c as usize % (DEPARTMENTS.len() - 1)) as u8;
            let kind = CATALOG_KINDS[(c as usize / (DEPARTMENTS.len() - 1)) % CATALOG_KINDS.len()];
            let round = c as usize / ((DEPARTMENTS.len() - 1) * CATALOG_KINDS.len());
            let name = if round == 0 {
                format!("{} {kind}", DEPARTMENTS[dept as usize])
            } else {
                format!("{} {kind} {}", DEPARTMENTS[dept as usize], round + 1)
            };
            let owners_n = self.rng.random_range(2..=3);
            let owners = self.staff(plan, dept, owners_n, &avoid);
            let mut not = avoid.clone();
            not.extend(&owners);
            let package_managers = self.staff(plan, dept, 1, &not);
            not.extend(&package_managers);
            let am_n = self.rng.random_range(1..=2);
            let assignment_managers = self.staff(plan, dept, am_n, &not);
            for u in &owners {
                plan.roles.push((*u, Role::CatalogOwner, Some(c)));
            }
            for u in &package_managers {
                plan.roles.push((*u, Role::AccessPackageManager, Some(c)));
            }
            for u in &assignment_managers {
                plan.roles.push((*u, Role::AssignmentManager, Some(c)));
            }
            plan.catalogs.push(CatalogPlan {
                description: format!("{kind} of {} and who may use them", DEPARTMENTS[dept as usize]),
                name,
                dept,
                externally_visible: c % 7 == 3,
                owners,
                package_managers,
                assignment_managers,
            });
        }
    }

    fn packages(&mut self, plan: &mut Plan) -> Result<(), ScaleError> {
        let catalogs = plan.catalogs.len();
        // Packages per catalog: a few big catalogs, a long tail (at least one each).
        let weights: Vec<f64> = (0..catalogs).map(|c| 1.0 / ((c + 3) as f64).powf(0.7)).collect();
        let caps = vec![u32::MAX; catalogs];
        let extra = u64::from(plan.sizes.packages).saturating_sub(catalogs as u64);
        let per_catalog: Vec<u32> = apportion(&mut self.rng, &weights, &caps, extra).iter().map(|n| n + 1).collect();
        // Resources: each catalog gets about as many as it has packages, each with one to
        // three roles.
        for (c, n) in per_catalog.iter().enumerate() {
            for _ in 0..(n * 4 / 5 + 2) {
                let r = plan.resources.len();
                let first_role = plan.resource_roles.len() as u32;
                let role_count = 1 + (r % 3) as u32;
                for k in 0..role_count {
                    plan.resource_roles.push((r as u32, RESOURCE_ROLES[k as usize]));
                }
                let app = APPS[r % APPS.len()];
                let name = if r < APPS.len() { app.to_owned() } else { format!("{app} {}", r / APPS.len() + 1) };
                plan.resources.push(ResourcePlan { catalog: c as u32, name, first_role, role_count });
            }
        }
        let mut by_catalog: Vec<Vec<u32>> = vec![Vec::new(); catalogs];
        for (i, r) in plan.resources.iter().enumerate() {
            by_catalog[r.catalog as usize].push(i as u32);
        }
        let total = plan.sizes.packages as usize;
        let mut ranks: Vec<usize> = (0..total).collect();
        rand::seq::SliceRandom::shuffle(ranks.as_mut_slice(), &mut self.rng);
        let fixed_end = chrono::DateTime::from_timestamp_millis(self.now + 200 * DAY).map(|d| d.date_naive());
        let mut index = 0usize;
        for (c, n) in per_catalog.iter().enumerate() {
            let mut names = HashSet::new();
            for _ in 0..*n {
                let id = index as u32;
                // The first packages make sure every template and approver group is used.
                let template = match index {
                    0 => Template::Manager,
                    1..=4 => Template::ManagerThenGroup,
                    5..=8 => Template::GroupReview,
                    _ => match self.rng.random_range(0..100) {
                        0..25 => Template::NoApproval,
                        25..55 => Template::Manager,
                        55..67 => Template::ManagerThenOwners,
                        67..82 => Template::GroupReview,
                        82..95 => Template::ManagerThenGroup,
                        _ => Template::NamedApprover,
                    },
                };
                let pool = &by_catalog[c];
                let mut roles = Vec::new();
                let want = self.rng.random_range(1..=3usize);
                for _ in 0..want * 3 {
                    if roles.len() >= want {
                        break;
                    }
                    let r = &plan.resources[pool[self.rng.random_range(0..pool.len())] as usize];
                    let role = r.first_role + self.rng.random_range(0..r.role_count);
                    if !roles.contains(&role) {
                        roles.push(role);
                    }
                }
                let (first_res, first_role) = plan.resource_roles[roles[0] as usize];
                let base = if index == 0 {
                    "Workspace Essentials".to_owned()
                } else {
                    format!("{} {}", plan.resources[first_res as usize].name, first_role)
                };
                let mut name = base.clone();
                let mut k = 2;
                while !names.insert(name.clone()) {
                    name = format!("{base} ({k})");
                    k += 1;
                }
                let dept = plan.catalogs[c].dept;
                let approver_group = plan.approver_groups[id as usize % plan.approver_groups.len()];
                let approver_group_id = GroupId(i64::from(approver_group) + 1);
                let policy =
                    self.policy(plan, PackageId(i64::from(id) + 1), c, dept, template, approver_group_id, fixed_end);
                policy.validate().map_err(|e| ScaleError::Invalid(format!("a generated policy is invalid: {e:?}")))?;
                let json = |v: Result<String, serde_json::Error>| v.map_err(|e| ScaleError::Invalid(e.to_string()));
                let (days, fixed) = match policy.expiration {
                    Expiration::AfterDays { days } => (Some(i64::from(days)), None),
                    Expiration::OnDate { date } => {
                        (None, date.and_hms_opt(23, 59, 59).map(|d| d.and_utc().timestamp_millis()))
                    }
                    _ => (None, None),
                };
                plan.packages.push(PackagePlan {
                    catalog: c as u32,
                    description: format!("{name}, for people in and around {}.", DEPARTMENTS[dept as usize]),
                    name,
                    roles,
                    template,
                    stages_json: json(serde_json::to_string(&policy.approval.stages))?,
                    approval_json: json(serde_json::to_string(&policy.approval))?,
                    questions_json: json(serde_json::to_string(&policy.questions))?,
                    expiration_json: json(serde_json::to_string(&policy.expiration))?,
                    review_json: json(serde_json::to_string(&policy.review))?,
                    policy,
                    days,
                    fixed_end: fixed,
                    incompatible: Vec::new(),
                    weight: if index == 0 { 0.0 } else { 1.0 / ((ranks[index] + 8) as f64).powf(1.1) },
                });
                index += 1;
            }
        }
        plan.big_package = 0;
        // Separation of duties: a few pairs inside a catalog.
        let pairs = (total / 100).max(1);
        let mut tries = 0;
        while plan.incompatible.len() < pairs && tries < pairs * 20 {
            tries += 1;
            let a = self.rng.random_range(1..total) as u32;
            let b = self.rng.random_range(1..total) as u32;
            let (pa, pb) = (&plan.packages[a as usize], &plan.packages[b as usize]);
            if a == b || pa.catalog != pb.catalog || !pa.incompatible.is_empty() || !pb.incompatible.is_empty() {
                continue;
            }
            plan.packages[a as usize].incompatible.push(b);
            plan.packages[b as usize].incompatible.push(a);
            plan.incompatible.push((a, b));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn policy(
        &mut self,
        plan: &Plan,
        package: PackageId,
        catalog: usize,
        dept: u8,
        template: Template,
        approver_group: GroupId,
        fixed_end: Option<chrono::NaiveDate>,
    ) -> Policy {
        let manager =
            || Stage { fallback: vec![ApproverSpec::CatalogOwners], ..Stage::new(vec![ApproverSpec::Manager]) };
        let mut p = match template {
            Template::NoApproval => {
                let mut p = Policy::new(package, "Employees (no approval)", RequestorScope::AllMembers, vec![]);
                p.expiration =
                    if self.rng.random_bool(0.6) { Expiration::Never } else { Expiration::AfterDays { days: 365 } };
                p
            }
            Template::Manager => {
                let mut p =
                    Policy::new(package, "Employees: manager approval", RequestorScope::AllMembers, vec![manager()]);
                // The big package (the first) lasts a year.
                p.expiration = if package.0 == 1 {
                    Expiration::AfterDays { days: 365 }
                } else if self.rng.random_bool(0.7) {
                    Expiration::AfterDays { days: 180 }
                } else {
                    Expiration::Never
                };
                p.questions = vec![Question {
                    id: "region".into(),
                    prompt: "Which region will you work in?".into(),
                    required: false,
                    kind: QuestionKind::Text { multiline: false },
                }];
                p
            }
            Template::ManagerThenOwners => {
                let owners = Stage { justification_required: true, ..Stage::new(vec![ApproverSpec::CatalogOwners]) };
                let mut p = Policy::new(
                    package,
                    "Employees: manager, then the catalog owners",
                    RequestorScope::AllMembers,
                    vec![manager(), owners],
                );
                p.justification_required = true;
                p.expiration = Expiration::AfterDays { days: 90 };
                p.extension_allowed = true;
                p
            }
            Template::GroupReview => {
                let review = Stage {
                    escalation: vec![ApproverSpec::CatalogOwners],
                    justification_required: true,
                    timeout_days: 14,
                    on_timeout: OnTimeout::Escalate,
                    ..Stage::new(vec![ApproverSpec::Group { id: approver_group }])
                };
                let mut p = Policy::new(
                    package,
                    &format!("{}: reviewed", DEPARTMENTS[dept as usize]),
                    RequestorScope::Specific,
                    vec![review],
                );
                let dept_group = plan.dept_groups[dept as usize];
                p.requestors = vec![RequestorRef::Group(GroupId(i64::from(dept_group) + 1))];
                p.justification_required = true;
                p.expiration = Expiration::AfterDays { days: if self.rng.random_bool(0.5) { 30 } else { 90 } };
                p.extension_allowed = true;
                p.extension_needs_approval = self.rng.random_bool(0.5);
                p
            }
            Template::ManagerThenGroup => {
                let review = Stage {
                    justification_required: true,
                    ..Stage::new(vec![ApproverSpec::Group { id: approver_group }])
                };
                let mut p = Policy::new(
                    package,
                    "Employees: manager, then review",
                    RequestorScope::AllMembers,
                    vec![manager(), review],
                );
                p.expiration = Expiration::AfterDays { days: 30 };
                p.extension_allowed = true;
                p.questions = vec![Question {
                    id: "purpose".into(),
                    prompt: "What do you need it for?".into(),
                    required: true,
                    kind: QuestionKind::Choice { options: PURPOSES.iter().map(|s| (*s).to_owned()).collect() },
                }];
                p
            }
            Template::NamedApprover => {
                let approver = plan.catalogs[catalog].package_managers.first().copied().unwrap_or(plan.administrator);
                let stage = Stage {
                    fallback: vec![ApproverSpec::CatalogOwners],
                    ..Stage::new(vec![ApproverSpec::User { id: UserId(Plan::person_id(approver)) }])
                };
                let mut p =
                    Policy::new(package, "Employees: the package's approver", RequestorScope::AllMembers, vec![stage]);
                p.expiration = match fixed_end {
                    Some(date) if self.rng.random_bool(0.5) => Expiration::OnDate { date },
                    _ => Expiration::AfterDays { days: 365 },
                };
                p
            }
        };
        p.id = PolicyId(package.0);
        p.description = format!("Who may request {} and who approves", package.0);
        p
    }

    /// One sampler per department: the packages its people may request (every employee's,
    /// and their department's own), by popularity.
    fn samplers(&self, plan: &Plan, staged_only: bool) -> Vec<Sampler> {
        (0..DEPARTMENTS.len())
            .map(|d| {
                let mut s = Sampler::default();
                for (i, p) in plan.packages.iter().enumerate() {
                    let eligible =
                        p.template != Template::GroupReview || plan.catalogs[p.catalog as usize].dept as usize == d;
                    if eligible && p.weight > 0.0 && (!staged_only || !p.stages().is_empty()) {
                        s.push(i as u32, p.weight);
                    }
                }
                s
            })
            .collect()
    }

    fn fits(plan: &Plan, package: u32, user: u32, held: &[u32]) -> bool {
        let p = &plan.packages[package as usize];
        !held.contains(&package)
            && !p.incompatible.iter().any(|q| held.contains(q))
            && plan.has_deciders(package, user, user)
    }

    fn items(&mut self, plan: &mut Plan) {
        let n = plan.people.len();
        let sizes = plan.sizes.clone();
        let all = self.samplers(plan, false);
        let staged = self.samplers(plan, true);
        let reviewed: Vec<u32> = (0..plan.packages.len() as u32)
            .filter(|p| plan.packages[*p as usize].template == Template::ManagerThenGroup)
            .collect();
        // The person with many assignments: an engineer, not a reviewer.
        let heavy = (0..n as u32)
            .filter(|i| {
                let p = &plan.people[*i as usize];
                p.dept == 1 && p.reports == 0 && !plan.busy_approvers.contains(i)
            })
            .nth(7)
            .unwrap_or((n - 1) as u32);
        plan.heavy_person = heavy;
        // The big package's holders.
        let mut big = vec![false; n];
        for i in index::sample(&mut self.rng, n, sizes.big_package_assignments as usize) {
            big[i] = true;
        }
        // Assignments per person: about the mean, a long tail (log-normal); the heavy person
        // gets theirs exactly.
        let heavy_extra = sizes.heavy_person_assignments.saturating_sub(u32::from(big[heavy as usize]));
        let rest =
            sizes.assignments.saturating_sub(sizes.big_package_assignments).saturating_sub(u64::from(heavy_extra));
        let eligible = all.iter().map(|s| s.packages.len() as u32).min().unwrap_or(0);
        let weights: Vec<f64> =
            (0..n).map(|i| if i == heavy as usize { 0.0 } else { lognormal(&mut self.rng, 0.6) }).collect();
        let caps: Vec<u32> = (0..n).map(|i| if i == heavy as usize { 0 } else { eligible * 3 / 5 }).collect();
        let mut extra = apportion(&mut self.rng, &weights, &caps, rest);
        extra[heavy as usize] = heavy_extra;
        let mut pending = vec![0u32; n];
        for _ in 0..sizes.pending_requests {
            pending[self.rng.random_range(0..n)] += 1;
        }
        let mut held: Vec<Vec<u32>> = vec![Vec::new(); n];
        let (mut carry_assign, mut carry_pending) = (0u64, 0u64);
        for u in 0..n as u32 {
            let dept = plan.people[u as usize].dept as usize;
            let want = u64::from(pending[u as usize]) + carry_pending;
            carry_pending = 0;
            for _ in 0..want {
                let pick = self.pick(plan, u, &held[u as usize], |b| {
                    if !reviewed.is_empty() && b.rng.random_bool(0.45) {
                        Some(reviewed[b.rng.random_range(0..reviewed.len())])
                    } else {
                        staged[dept].pick(&mut b.rng)
                    }
                });
                match pick {
                    Some(p) => {
                        held[u as usize].push(p);
                        let item = self.pending_item(plan, u, p);
                        plan.items.push(item);
                    }
                    None => carry_pending += 1,
                }
            }
            if big[u as usize] {
                held[u as usize].push(plan.big_package);
                let item = self.assigned_item(plan, u, plan.big_package);
                plan.items.push(item);
            }
            let want = u64::from(extra[u as usize]) + carry_assign;
            carry_assign = 0;
            for _ in 0..want {
                match self.pick(plan, u, &held[u as usize], |b| all[dept].pick(&mut b.rng)) {
                    Some(p) => {
                        held[u as usize].push(p);
                        let item = self.assigned_item(plan, u, p);
                        plan.items.push(item);
                    }
                    None => carry_assign += 1,
                }
            }
        }
        // Whatever did not fit someone goes to others with room.
        let mut tries = 0;
        while (carry_assign > 0 || carry_pending > 0) && tries < 100 * n {
            tries += 1;
            let u = self.rng.random_range(0..n) as u32;
            if u == heavy {
                continue;
            }
            let dept = plan.people[u as usize].dept as usize;
            let pending_turn = carry_pending > 0;
            let sampler = if pending_turn { &staged[dept] } else { &all[dept] };
            if let Some(p) = self.pick(plan, u, &held[u as usize], |b| sampler.pick(&mut b.rng)) {
                held[u as usize].push(p);
                let item = if pending_turn {
                    carry_pending -= 1;
                    self.pending_item(plan, u, p)
                } else {
                    carry_assign -= 1;
                    self.assigned_item(plan, u, p)
                };
                plan.items.push(item);
            }
        }
        drop(held);
        // Requests that ended without access fill the audit trail up to its size.
        plan.counts.audit_object_events = sizes.audit_object_events;
        let mut left = i128::from(sizes.audit_events)
            - i128::from(sizes.audit_object_events)
            - i128::from(plan.setup_events())
            - plan.items.iter().map(|i| i128::from(plan.events_of(i))).sum::<i128>();
        while left >= 2 {
            let u = self.rng.random_range(0..n) as u32;
            let dept = plan.people[u as usize].dept as usize;
            let Some(p) = self.pick(plan, u, &[], |b| staged[dept].pick(&mut b.rng)) else { continue };
            let item = self.refused_item(plan, u, p, left);
            left -= i128::from(plan.events_of(&item));
            plan.items.push(item);
        }
        if left == 1 {
            plan.counts.audit_object_events += 1;
        }
    }

    /// A package for this person that they may request, do not hold, that conflicts with
    /// nothing they hold, and whose every stage has an approver.
    fn pick(
        &mut self,
        plan: &Plan,
        user: u32,
        held: &[u32],
        mut draw: impl FnMut(&mut Self) -> Option<u32>,
    ) -> Option<u32> {
        for _ in 0..64 {
            let p = draw(self)?;
            if Self::fits(plan, p, user, held) {
                return Some(p);
            }
        }
        None
    }

    fn assigned_item(&mut self, plan: &Plan, user: u32, package: u32) -> Item {
        let now = self.now;
        let seed = self.rng.random::<u64>();
        let p = &plan.packages[package as usize];
        let kind = if self.rng.random_bool(0.04) { Kind::AdminAssigned } else { Kind::Assigned };
        let requestor = match kind {
            Kind::AdminAssigned => {
                let c = &plan.catalogs[p.catalog as usize];
                c.assignment_managers
                    .iter()
                    .chain(&c.owners)
                    .copied()
                    .find(|u| *u != user)
                    .unwrap_or(plan.administrator)
            }
            _ => match plan.manager_of(user) {
                Some(m) if self.rng.random_bool(0.03) && plan.has_deciders(package, user, m) => m,
                _ => user,
            },
        };
        let r = self.rng.random::<f64>();
        let expires = p.expires();
        // Mostly delivered; some ended (removed, given up, expired); a few being delivered
        // right now (their grants wait in the outbox) or past their end (the next expiry
        // sweep's work).
        let outcome = if r < 0.02 {
            Outcome::Removed
        } else if r < 0.03 {
            Outcome::GivenUp
        } else if r < 0.031 {
            Outcome::Delivering
        } else if !expires {
            Outcome::Live
        } else if r < 0.10 {
            Outcome::Expired
        } else if r < 0.11 {
            Outcome::Due
        } else {
            Outcome::Live
        };
        let days = p.days.unwrap_or(0) * DAY;
        let rand = |rng: &mut StdRng, lo: i64, hi: i64| if hi > lo { rng.random_range(lo..hi) } else { lo };
        let (start, end, ended) = match outcome {
            Outcome::Live => match (p.days, p.fixed_end) {
                (Some(_), _) => {
                    let end = now + rand(&mut self.rng, HOUR, days - HOUR);
                    (end - days, Some(end), 0)
                }
                (None, Some(fixed)) => (now - rand(&mut self.rng, DAY, 300 * DAY), Some(fixed), 0),
                (None, None) => (now - rand(&mut self.rng, DAY, 700 * DAY), None, 0),
            },
            Outcome::Due => {
                let end = now - rand(&mut self.rng, MINUTE, 2 * DAY);
                (end - days, Some(end), 0)
            }
            Outcome::Delivering => {
                let start = now - rand(&mut self.rng, 0, MINUTE);
                let end = match (p.days, p.fixed_end) {
                    (Some(_), _) => Some(start + days),
                    (None, fixed) => fixed,
                };
                (start, end, 0)
            }
            Outcome::Expired => {
                let end = now - rand(&mut self.rng, DAY, (700 * DAY - days).min(600 * DAY));
                (end - days, Some(end), end + rand(&mut self.rng, 0, MINUTE))
            }
            _ => {
                let start = now - rand(&mut self.rng, 30 * DAY, 700 * DAY);
                let planned = match (p.days, p.fixed_end) {
                    (Some(_), _) => Some(start + days),
                    (None, fixed) => fixed,
                };
                let latest = planned.unwrap_or(now).min(now) - start - HOUR;
                let removed = start + rand(&mut self.rng, DAY, latest.max(DAY + 1));
                (start, Some(planned.unwrap_or(removed)), removed)
            }
        };
        let mut item = Item {
            created: start,
            start,
            end,
            ended,
            seed,
            user,
            requestor,
            package,
            aid: 0,
            gid: 0,
            did: 0,
            kind,
            outcome,
            stage: p.stages().len() as u8,
            escalated: false,
        };
        if kind == Kind::Assigned {
            item.created = start - Plan::decided_at(&Item { created: 0, ..item }, p.stages().len());
        }
        item
    }

    fn pending_item(&mut self, plan: &Plan, user: u32, package: u32) -> Item {
        let now = self.now;
        let seed = self.rng.random::<u64>();
        let p = &plan.packages[package as usize];
        let stages = p.stages().len();
        let stage = if p.template == Template::ManagerThenGroup || (stages > 1 && self.rng.random_bool(0.5)) {
            stages
        } else {
            1
        };
        let s = &p.stages()[stage - 1];
        let timeout = i64::from(s.timeout_days.max(1)) * DAY;
        let escalated = s.on_timeout == OnTimeout::Escalate && self.rng.random_bool(0.05);
        let r = self.rng.random::<f64>();
        let (stage_start, due) = if escalated {
            let started = now - timeout - self.rng.random_range(HOUR..timeout - HOUR);
            let escalated_at = started + timeout + mix_range(seed, 30, 0, MINUTE);
            (started, escalated_at + timeout)
        } else if r < 0.02 {
            let started = now - timeout - self.rng.random_range(HOUR..2 * DAY);
            (started, started + timeout)
        } else {
            let started = now - self.rng.random_range(5 * MINUTE..timeout * 9 / 10);
            (started, started + timeout)
        };
        let mut item = Item {
            created: 0,
            start: stage_start,
            end: Some(due),
            ended: 0,
            seed,
            user,
            requestor: user,
            package,
            aid: 0,
            gid: 0,
            did: 0,
            kind: Kind::Pending,
            outcome: Outcome::Waiting,
            stage: stage as u8,
            escalated,
        };
        item.created = stage_start - Plan::decided_at(&item, stage - 1);
        item
    }

    /// A request that ended without access, with at most `budget` audit events.
    fn refused_item(&mut self, plan: &Plan, user: u32, package: u32, budget: i128) -> Item {
        let now = self.now;
        let seed = self.rng.random::<u64>();
        let p = &plan.packages[package as usize];
        let stages = p.stages().len();
        let mut stage = self.rng.random_range(1..=stages);
        // Events: submitted, one per approved stage, the end.
        if (stage + 1) as i128 > budget {
            stage = (budget - 1).max(1) as usize;
        }
        let escalates = p.stages()[stage - 1].on_timeout == OnTimeout::Escalate;
        let outcome = match self.rng.random_range(0..4) {
            0 | 1 => Outcome::Denied,
            2 => Outcome::Canceled,
            _ if escalates => Outcome::Denied,
            _ => Outcome::TimedOut,
        };
        let created = now - self.rng.random_range(30 * DAY..700 * DAY);
        let mut item = Item {
            created,
            start: 0,
            end: None,
            ended: 0,
            seed,
            user,
            requestor: user,
            package,
            aid: 0,
            gid: 0,
            did: 0,
            kind: Kind::Refused,
            outcome,
            stage: stage as u8,
            escalated: false,
        };
        let stage_start = Plan::decided_at(&item, stage - 1);
        item.start = stage_start;
        item.ended = match outcome {
            Outcome::Denied => stage_start + Plan::stage_delay(seed, stage),
            Outcome::Canceled => stage_start + mix_range(seed, 31, HOUR, 3 * DAY),
            _ => {
                stage_start
                    + i64::from(p.stages()[stage - 1].timeout_days.max(1)) * DAY
                    + mix_range(seed, 32, 0, MINUTE)
            }
        };
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::approvers::{resolve_stage, ApproverDirectory};

    fn small() -> Plan {
        let now = chrono::DateTime::from_timestamp_millis(1_790_000_000_000).unwrap();
        Plan::new(Sizes::new(0.003, None).unwrap(), 7, now).unwrap()
    }

    #[test]
    fn approvers_resolve_as_the_domain_does() {
        let plan = small();
        let mut checked = 0;
        for item in plan.items.iter().take(2_000) {
            let p = &plan.packages[item.package as usize];
            let c = &plan.catalogs[p.catalog as usize];
            let uid = |u: u32| UserId(Plan::person_id(u));
            let dir = ApproverDirectory {
                manager: plan.manager_of(item.user).map(uid),
                group_members: plan
                    .groups
                    .iter()
                    .enumerate()
                    .map(|(i, g)| (GroupId(i as i64 + 1), g.members.iter().map(|u| uid(*u)).collect()))
                    .collect(),
                catalog_owners: c.owners.iter().map(|u| uid(*u)).collect(),
                sponsors: vec![],
                active_users: (0..plan.people.len() as u32).map(uid).collect(),
            };
            for (s, stage) in p.stages().iter().enumerate() {
                let want = resolve_stage(stage, &dir, uid(item.requestor), uid(item.user));
                let got: Vec<_> = plan
                    .stage_approvers(item.package, s, item.user, item.requestor)
                    .into_iter()
                    .map(|(u, src)| (uid(u), src))
                    .collect();
                assert_eq!(got, want, "{item:?} stage {s}");
                checked += 1;
            }
        }
        assert!(checked > 100, "{checked}");
    }

    #[test]
    fn the_same_seed_gives_the_same_organisation() {
        let (a, b) = (small(), small());
        assert_eq!(a.items.len(), b.items.len());
        assert!(a.items.iter().zip(&b.items).all(|(x, y)| x.seed == y.seed && x.created == y.created));
        assert_eq!(a.counts.audit_events, a.sizes.audit_events);
    }

    #[test]
    fn assigned_requests_are_approved_when_access_starts() {
        let plan = small();
        for item in plan.items.iter().filter(|i| i.kind == Kind::Assigned) {
            let stages = plan.packages[item.package as usize].stages().len();
            assert_eq!(Plan::decided_at(item, stages), item.start, "{item:?}");
            assert!(item.created <= item.start && item.start <= plan.now || item.outcome == Outcome::Delivering);
        }
    }
}
