//! Read models: what pages and the API show. Plain serde types compiled for the server and the
//! browser alike; the service layer fills them, the UI renders them.

use serde::{Deserialize, Serialize};

pub use crate::states::{
    AccessBucket, AssignmentState, CatalogRole, Decision, PackageStatus, RequestState, StepStatus,
};

/// Timestamps cross the wire as Unix milliseconds; the browser shows them in its own zone.
pub type Millis = i64;

/// The signed-in person, as the navigation needs them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Viewer {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub department: String,
    pub job_title: String,
    pub is_admin: bool,
    /// Holds any role that opens the admin area.
    pub admin_area: bool,
    /// Is (or has been) an approver, or manages people.
    pub approver: bool,
    pub pending_approvals: i64,
    /// Assignments of running reviews waiting for the viewer's answer.
    pub pending_reviews: i64,
}

/// The signed-in person's email settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EmailChoices {
    /// Notifications are emailed at all (the portal has an SMTP server).
    pub sends: bool,
    /// They also get the optional emails (a stage of their request approved, access ready).
    pub optional: bool,
    /// They get a daily digest of the decisions waiting for them.
    pub digest: bool,
    /// The time zone they chose (an IANA name); `None`: automatic.
    pub time_zone: Option<String>,
    /// Automatic's: the one their sign-in provider's `zoneinfo` last gave (`None`: UTC).
    pub provider_time_zone: Option<String>,
}

/// The time zones a person can choose: the tz database's `zone.tab` (one or more per
/// country), and UTC first. The server accepts any name the tz database knows.
pub fn time_zones() -> impl Iterator<Item = &'static str> {
    include_str!("time_zones.txt").lines().map(str::trim).filter(|l| !l.is_empty())
}

/// An API token as its owner sees it (never its secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    /// Neither revoked nor expired.
    pub active: bool,
}

/// A service account as administrators see it: it signs in nowhere and acts through its API
/// tokens, with the roles and access it has been given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ServiceAccountView {
    pub id: i64,
    pub name: String,
    /// Its address in the directory (`…@service-accounts.invalid`): how roles and access are
    /// given to it.
    pub email: String,
    pub purpose: String,
    /// Not disabled (a disabled account's tokens no longer work).
    pub active: bool,
    /// Newest first (the last 50), revoked and expired ones too.
    pub tokens: Vec<TokenView>,
}

/// The service accounts page: every account with its tokens, and a token just made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceAccounts {
    pub items: Vec<ServiceAccountView>,
    /// Every scope (an account's token gets only those within its rights), and the longest a
    /// token may last, in days.
    pub scopes: Vec<String>,
    pub max_days: u32,
    /// The secret of the token just made by a plain form post, shown this once.
    pub fresh: Option<FreshToken>,
}

/// A secret shown once, and whose token it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FreshToken {
    pub account: String,
    pub secret: String,
}

/// The signed-in person's API tokens, and the scopes they may give a new one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenList {
    pub items: Vec<TokenView>,
    pub scopes: Vec<String>,
    /// The longest a token may last, in days.
    pub max_days: u32,
    /// The secret of the token just made by a plain form post, shown this once.
    pub fresh_secret: Option<String>,
}

/// The time zone field's value for "automatic: the sign-in provider's" (an empty value would
/// arrive as no field at all, which leaves the choice as it is).
pub const AUTOMATIC_TIME_ZONE: &str = "automatic";

/// The name under which [`time_zones`] lists the zone `name`, which may be an old name a
/// browser still reports (`Asia/Calcutta` for `Asia/Kolkata`); `None` when it is not listed.
pub fn listed_time_zone(name: &str) -> Option<&'static str> {
    const RENAMED: &[(&str, &str)] = &[
        ("Asia/Calcutta", "Asia/Kolkata"),
        ("Europe/Kiev", "Europe/Kyiv"),
        ("Asia/Saigon", "Asia/Ho_Chi_Minh"),
        ("Asia/Katmandu", "Asia/Kathmandu"),
        ("Asia/Rangoon", "Asia/Yangon"),
        ("America/Godthab", "America/Nuuk"),
        ("Atlantic/Faeroe", "Atlantic/Faroe"),
        ("Pacific/Enderbury", "Pacific/Kanton"),
        ("Pacific/Truk", "Pacific/Chuuk"),
        ("Pacific/Ponape", "Pacific/Pohnpei"),
        ("America/Buenos_Aires", "America/Argentina/Buenos_Aires"),
        ("America/Indianapolis", "America/Indiana/Indianapolis"),
        ("Etc/UTC", "UTC"),
        ("Etc/GMT", "UTC"),
    ];
    let name = RENAMED.iter().find(|(old, _)| *old == name).map_or(name, |(_, new)| new);
    time_zones().find(|z| *z == name)
}

/// A page of a list, with the cursor of the next page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
    /// When the page was read (for "in 3 days" hints that match on server and browser).
    pub as_of: Millis,
}

impl<T> Page<T> {
    /// A list with nothing in it (and so no next page), read at `as_of`.
    pub fn empty(as_of: Millis) -> Self {
        Page { items: Vec::new(), next: None, as_of }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogOption {
    pub id: i64,
    pub name: String,
}

/// One resource role a package grants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ResourceRoleView {
    pub id: i64,
    pub resource: String,
    pub role: String,
    pub system: String,
}

/// A package as the requestor browses it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PackageCard {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub catalog: String,
    pub resources: Vec<ResourceRoleView>,
    /// The largest number of approval stages among the policies that apply.
    pub approval_stages: u32,
    pub expiration: String,
    /// The viewer holds it already, waits for it, or may ask for it.
    pub status: PackageStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoPerson {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub title: String,
    pub department: String,
    pub roles: Vec<String>,
}

/// A question of a policy's request form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct QuestionView {
    pub id: String,
    pub prompt: String,
    pub required: bool,
    /// Empty for a text question.
    pub options: Vec<String>,
}

/// A policy as the requestor sees it: what it will ask and who approves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PolicyView {
    pub id: i64,
    pub name: String,
    /// Managers may request under it for their direct reports.
    pub on_behalf_allowed: bool,
    /// One line per approval stage: "Stage 1: your manager".
    pub stages: Vec<String>,
    pub justification_required: bool,
    pub schedule_allowed: bool,
    pub expiration: String,
    pub questions: Vec<QuestionView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PackageDetail {
    pub card: PackageCard,
    pub policies: Vec<PolicyView>,
    /// The viewer's direct reports, when some policy lets managers request for them.
    pub reports: Vec<(i64, String)>,
    /// Separation-of-duties conflicts the viewer would run into.
    pub sod_warning: Option<String>,
}

/// One step of a request's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TimelineStep {
    pub title: String,
    pub detail: String,
    pub at: Option<Millis>,
    pub status: StepStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RequestView {
    pub id: i64,
    pub package: String,
    pub requestor: String,
    pub target: String,
    pub state: RequestState,
    pub created_at: Millis,
    pub reason: String,
    pub can_cancel: bool,
    pub timeline: Vec<TimelineStep>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AssignmentView {
    pub id: i64,
    pub package: String,
    pub state: AssignmentState,
    pub start_at: Millis,
    pub end_at: Option<Millis>,
    pub bucket: AccessBucket,
    pub resources: Vec<ResourceRoleView>,
    /// The policy allows asking for more time.
    pub can_extend: bool,
}

/// A request waiting for the viewer's decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ApprovalItem {
    pub request_id: i64,
    pub requestor: String,
    pub target: String,
    pub target_title: String,
    pub package: String,
    pub stage: u32,
    pub stage_count: u32,
    pub created_at: Millis,
    pub due_at: Option<Millis>,
    pub justification: String,
    pub answers: Vec<(String, String)>,
    pub justification_required: bool,
    pub resources: Vec<ResourceRoleView>,
    /// What the target already has.
    pub current_access: Vec<String>,
    pub sod_warning: Option<String>,
    /// An extension of access already held, rather than new access.
    pub is_extension: bool,
    /// The start the requestor asked for (`None`: as soon as approved).
    pub start_at: Option<Millis>,
    /// The end the requestor chose (`None`: the policy's period, in `period`).
    pub end_at: Option<Millis>,
    /// The policy's period in words, counted when access is granted: "30 days from approval",
    /// "does not expire", "on 2027-01-31"; for an extension "extends by 30 days from approval".
    pub period: String,
}

/// A decision the viewer made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DecisionView {
    pub request_id: i64,
    pub package: String,
    pub target: String,
    pub stage: u32,
    pub decision: Decision,
    pub justification: String,
    pub decided_at: Millis,
}

/// The result of an action, shown to the person who took it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub ok: bool,
    pub text: String,
    /// The form field the message is about, if any.
    pub field: Option<String>,
}

/// What the sign-in page offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignInChoices {
    /// "Sign in with …", when an identity provider is configured.
    pub provider: Option<String>,
    /// Demo mode: the people to pick from.
    pub people: Vec<DemoPerson>,
}

/// A group held by Quartermaster itself, with who is in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BuiltinGroupView {
    pub role_id: i64,
    pub resource: String,
    pub role: String,
    pub members: Vec<String>,
}

/// Provisioning work that failed after its last attempt, as an administrator (or the owner of
/// the catalog) sees it on the Admin page, with a way to retry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FailedWorkView {
    pub outbox_id: i64,
    /// `add_member` or `remove_member`.
    pub kind: String,
    pub person: String,
    pub resource: String,
    pub role: String,
    pub attempts: i64,
    pub error: String,
}

/// What the audit log is narrowed to, as the filter form sends it: every field optional
/// (empty), dates as `YYYY-MM-DD` (whole days, UTC).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// A person's email address, or their id.
    #[serde(default)]
    pub who: String,
    #[serde(default)]
    pub object_type: String,
    #[serde(default)]
    pub object_id: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

impl AuditFilter {
    /// Each field with its form name.
    pub fn fields(&self) -> [(&'static str, &str); 6] {
        [
            ("who", &self.who),
            ("object_type", &self.object_type),
            ("object_id", &self.object_id),
            ("action", &self.action),
            ("from", &self.from),
            ("to", &self.to),
        ]
    }
}

/// One event of the audit trail, as the audit log shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditEventView {
    pub id: i64,
    pub at: Millis,
    /// Who acted: a person's name, or "Quartermaster" for the system's own work.
    pub actor: String,
    pub actor_id: Option<i64>,
    pub action: String,
    pub object_type: String,
    pub object_id: i64,
    /// The values before and after, as the JSON that was hashed.
    pub before: String,
    pub after: String,
    pub reason: String,
    /// The API token the change came through, if it came through one.
    pub token: Option<i64>,
}

/// A catalog in the admin list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CatalogSummary {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub externally_visible: bool,
    pub packages: i64,
    pub resources: i64,
    /// The version a change names (the API's `ETag`).
    pub version: i64,
}

/// The catalogs someone manages (all of them for administrators), and whether they may
/// create one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CatalogList {
    pub items: Vec<CatalogSummary>,
    pub may_create: bool,
}

/// Someone holding a role in a catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RoleHolder {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    pub role: CatalogRole,
}

/// A resource of a catalog, with its roles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CatalogResource {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub system: String,
    pub roles: Vec<String>,
    /// The roles' ids, in the order of `roles` (what a package grants).
    pub role_ids: Vec<i64>,
}

/// A package of a catalog, as its admin page lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogPackage {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub hidden: bool,
}

/// A system resources come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemOption {
    pub id: i64,
    pub name: String,
    pub kind: String,
}

/// One catalog's admin page: its settings, who manages it, its resources and packages, and
/// what the viewer may change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogAdmin {
    pub summary: CatalogSummary,
    pub holders: Vec<RoleHolder>,
    pub resources: Vec<CatalogResource>,
    pub packages: Vec<CatalogPackage>,
    /// The built-in system (resources added by name).
    pub systems: Vec<SystemOption>,
    /// Connected systems whose groups the viewer may bind here (administrators only).
    pub connected: Vec<SystemOption>,
    /// The viewer owns it (or administers): settings, roles, resources, deletion.
    pub may_own: bool,
    /// The viewer builds and edits its packages (owner, package manager, administrator).
    pub may_build: bool,
    /// The viewer's own builder drafts in this catalog, most recent first.
    pub drafts: Vec<DraftSummary>,
}

/// Questions one policy may ask (the builder shows as many rows at most).
pub const MAX_QUESTIONS: usize = 20;

/// A bulk assignment: its progress and each row's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BulkJobView {
    pub id: i64,
    pub package_id: i64,
    pub package: String,
    pub total: i64,
    pub assigned: i64,
    pub skipped: i64,
    /// Rows that could not be assigned for a reason of ours (to try again).
    pub failed: i64,
    pub running: bool,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// While it runs, the rows skipped so far; once done, every row.
    pub rows: Vec<BulkRowView>,
}

/// One row of a bulk assignment: `outcome` is `assigned` or `skipped` (with why), or none yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BulkRowView {
    pub line: i64,
    pub person: String,
    pub outcome: Option<String>,
    pub why: String,
}

/// A builder draft in progress, for resuming or discarding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DraftSummary {
    pub id: i64,
    pub name: String,
    pub mode: crate::states::DraftMode,
    pub step: crate::states::WizardStep,
    pub updated_at: i64,
}

/// Something the builder offers to pick: a resource role, a package, a group, an organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Choice {
    pub id: i64,
    pub name: String,
    pub detail: String,
}

/// One step of the access package builder: the draft as its form fields (the names the server
/// reads back), what can be picked, and on the last step what will be made and what the change
/// does to requests already waiting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DraftView {
    pub id: i64,
    pub catalog_id: i64,
    pub catalog: String,
    pub mode: crate::states::DraftMode,
    /// The package edited or given a policy (none for a new package).
    pub package_id: Option<i64>,
    pub step: crate::states::WizardStep,
    /// When it was last saved (the Review step sends it back with Create).
    pub updated_at: i64,
    pub values: std::collections::BTreeMap<String, String>,
    pub roles: Vec<Choice>,
    pub packages: Vec<Choice>,
    pub groups: Vec<Choice>,
    pub orgs: Vec<Choice>,
    /// The Review step: (what, how), in the steps' order.
    #[cfg_attr(feature = "ssr", schema(value_type = Vec<Vec<String>>))]
    pub summary: Vec<(String, String)>,
    /// The Review step of an edit: what saving does to requests already filed.
    pub impact: Vec<String>,
    /// The Review step of a policy that assigns by rule: who would gain and lose the package.
    pub what_if: Option<WhatIf>,
    /// The Review step when who can request changes: who could newly ask for the package,
    /// and who no longer could (by any of its policies).
    pub who_may_request: Option<WhatIf>,
}

/// Who a rule would give a package to, and take it from, by name (everyone).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WhatIf {
    pub gains: Vec<String>,
    pub losses: Vec<String>,
    /// Who matches but cannot have it, and why.
    pub blocked: Vec<String>,
    /// Names exactly who gains and loses: saving refuses if that has changed since.
    pub fingerprint: String,
}

/// A person a picker offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PersonOption {
    pub id: i64,
    pub name: String,
    pub email: String,
}

/// What a package's assignment list is narrowed to: a state (`live`, the default; `ended`;
/// `all`; or one state's word) and the start of a person's email or name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AssignmentFilter {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub q: String,
}

/// One assignment in a package's admin list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PackageAssignment {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub email: String,
    pub state: AssignmentState,
    pub start_at: Millis,
    pub end_at: Option<Millis>,
    pub policy: String,
    /// The request it came from (a direct assignment is an `admin_add` request too).
    pub request_id: Option<i64>,
}

/// A policy to pick when assigning directly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyOption {
    pub id: i64,
    pub name: String,
}

/// A package's admin page: its assignments (a page of them) and what the viewer may do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackageAssignments {
    pub package_id: i64,
    pub package: String,
    pub catalog_id: i64,
    pub catalog: String,
    pub assignments: Page<PackageAssignment>,
    pub policies: Vec<PolicyOption>,
    /// The viewer assigns and removes in this catalog.
    pub may_assign: bool,
    /// The viewer edits, copies and adds policies to the package (the builder).
    pub may_build: bool,
    /// The package's roles changed and this many holders wait to be brought in line (with
    /// why the sync is stuck at one, if it is).
    pub roles_syncing: Option<(i64, String)>,
}

/// The latest walk of the audit chain, as the audit log shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ChainStatus {
    pub at: Millis,
    /// Who walked it: a person's name, or "the command line".
    pub by: String,
    pub intact: bool,
    pub events: i64,
    pub head_id: Option<i64>,
    pub broken_event_id: Option<i64>,
    pub why: String,
}

/// A person as the admin area shows them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PersonSummary {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub department: String,
    pub job_title: String,
    pub guest: bool,
    pub active: bool,
    pub manager: Option<String>,
}

/// One approval stage's decision on the request that gave an assignment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DecisionStep {
    pub stage: i64,
    pub approver: String,
    pub decision: Decision,
    pub at: Millis,
    pub justification: String,
}

/// Why a person has a package: the package and its catalog, the policy, the request (who
/// asked, when, why — or who assigned it directly), each stage's decision, and the dates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AccessExplain {
    pub assignment_id: i64,
    pub package_id: i64,
    pub package: String,
    pub catalog: String,
    pub policy: String,
    pub state: AssignmentState,
    pub start_at: Millis,
    pub end_at: Option<Millis>,
    pub request_id: Option<i64>,
    /// "Requested by …" or "Assigned directly by …".
    pub how: String,
    pub requested_at: Option<Millis>,
    pub justification: String,
    pub decisions: Vec<DecisionStep>,
}

/// What a person has, as far as the viewer may see (the catalogs they read; all for
/// administrators), each line with its path; and the roles they hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PersonAccess {
    pub person: PersonSummary,
    pub roles: Vec<String>,
    pub access: Vec<AccessExplain>,
    /// Live assignments in catalogs the viewer does not read (not shown).
    pub hidden: usize,
    /// The global roles they hold (administrator, catalog creator), and whether the viewer
    /// may change them (administrators).
    pub administrator: bool,
    pub catalog_creator: bool,
    pub may_change_global_roles: bool,
}

/// A directory group, as the people page lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct GroupSummary {
    pub id: i64,
    pub name: String,
    /// Where it comes from: `local`, `oidc` or `scim`.
    pub source: String,
    pub members: i64,
}

/// The directory as administrators browse it: active people by name, a page at a time, and
/// the groups. Others who look people up get `may_browse: false` and search instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Directory {
    pub may_browse: bool,
    pub people: Page<PersonOption>,
    pub groups: Vec<GroupSummary>,
}

/// A sponsor of a connected organization: internal (one of ours) or external (one of theirs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Sponsor {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    pub external: bool,
}

/// A connected resource system (SCIM, LDAP, webhook) as the connectors page shows it: where
/// it is, its queue and failures, its last success and last error, and whether it is paused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ConnectorView {
    pub id: i64,
    pub name: String,
    /// `scim`, `ldap` or `webhook`.
    pub kind: String,
    /// The base URL or URL (never a secret).
    pub address: String,
    /// Its other settings, in a line.
    pub settings: String,
    /// What its edit form shows.
    pub editable: EditableSettings,
    /// Resources bound to catalogs.
    pub resources: i64,
    /// Work waiting or under way.
    pub queued: i64,
    /// Work given up after its last attempt (retry below).
    pub failed: i64,
    pub last_success: Option<Millis>,
    pub last_error: String,
    pub last_error_at: Option<Millis>,
    /// No instance calls it before this (it was unavailable).
    pub paused_until: Option<Millis>,
    /// The last drift check's summary (empty: never checked), and when.
    pub drift: String,
    pub drift_checked_at: Option<Millis>,
}

/// A connected system's settings as its edit form shows them (each kind uses its own).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EditableSettings {
    pub max_in_flight: u16,
    /// SCIM.
    pub create_users: bool,
    /// Webhook.
    pub lifecycle_events: bool,
    /// LDAP.
    pub starttls: bool,
    pub bind_dn: String,
    pub people_base: String,
    /// `member` or `uniqueMember`.
    pub member_attribute: String,
}

/// An import of a connected system's groups into a catalog, as it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct GroupImportView {
    pub id: i64,
    /// The catalog the groups go to.
    pub catalog: String,
    /// LDAP: the DN the groups are under.
    pub search_base: String,
    pub running: bool,
    pub failed: bool,
    /// Groups read so far, and how many the target has (once its first page is read).
    pub done: i64,
    pub total: Option<i64>,
    /// Bound as resources by this import, and found bound already.
    pub imported: i64,
    pub already: i64,
    /// Passed over: an id a resource cannot keep (longer than 200 characters).
    pub skipped: i64,
    /// Why it failed, or why it is waiting.
    pub error: String,
    pub started: Millis,
    pub finished: Option<Millis>,
}

/// One piece of a connected system's work waiting (or failed): a membership to add or take
/// away, or a lifecycle event to tell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct QueuedWork {
    /// `add`, `remove` or the event's type.
    pub what: String,
    pub person: String,
    /// The resource's name (empty for an event).
    pub resource: String,
    pub attempts: i64,
    pub next_attempt: Millis,
    pub last_error: String,
}

/// One connected system's page: its row, its queue and failures (oldest first, the first of
/// each), its imports, and the catalogs its groups can be imported into.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectorDetail {
    pub system: ConnectorView,
    pub queue: Vec<QueuedWork>,
    pub failures: Vec<QueuedWork>,
    pub imports: Vec<GroupImportView>,
    pub catalogs: Vec<(i64, String)>,
}

/// Drift found in one bound group of a connected system.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct GroupDrift {
    /// The resource's name here, and the group's id there.
    pub resource: String,
    pub external_id: String,
    /// Members the target lists.
    pub members: i64,
    /// Holders the group lacks (emails).
    pub missing: Vec<String>,
    /// Members nobody granted (emails, or the target's id of an account unknown here).
    pub unexpected: Vec<String>,
}

/// A connected system's drift, group by group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DriftReport {
    pub groups: Vec<GroupDrift>,
}

/// A connected organization: its guests sign in and request what its policies allow while it
/// is `configured`; a `proposed` one is known but admits nobody.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ConnectedOrg {
    pub id: i64,
    pub name: String,
    pub domain: String,
    pub configured: bool,
    pub sponsors: Vec<Sponsor>,
    pub guests: i64,
    /// Guests whose access ended are blocked from signing in after these days, and removed
    /// these days after that (`None`: never).
    pub block_after_days: Option<i64>,
    pub remove_after_days: Option<i64>,
    /// The version a change names (the API's `ETag`).
    pub version: i64,
}

/// A deputy period: who is away, who decides for them, when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeputyView {
    pub id: i64,
    pub person: String,
    pub deputy: String,
    pub deputy_email: String,
    pub starts_at: Millis,
    pub ends_at: Millis,
}

/// A person's out-of-office: their own deputy period (now or to come), and the people they
/// stand in for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeputyPanel {
    pub own: Option<DeputyView>,
    pub standing_in: Vec<DeputyView>,
    pub now: Millis,
}

/// An assignment a reviewer is asked about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReviewItemView {
    pub id: i64,
    pub package: String,
    pub person: String,
    pub email: String,
    pub department: String,
    /// The reviewer is reviewing their own access (a self-review).
    pub own: bool,
    pub given_at: Millis,
    /// `keep` or `remove`, and why.
    pub recommendation: String,
    pub recommendation_reason: String,
    /// `keep`, `remove` or `dont_know`; `None` before an answer.
    pub decision: Option<String>,
    pub justification: String,
    pub decided_by: Option<String>,
    pub ends_at: Millis,
}

/// A review as its owners see it: its progress and what it decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReviewView {
    pub id: i64,
    pub package_id: i64,
    pub package: String,
    pub policy: String,
    pub starts_at: Millis,
    pub ends_at: Millis,
    /// `running`, `ended` (results not all applied) or `applied`.
    pub state: String,
    pub default_decision: String,
    pub apply_automatically: bool,
    pub items: i64,
    pub decided: i64,
    pub removing: i64,
    pub removed: i64,
    /// The viewer may end it early or apply its results.
    pub may_act: bool,
}
