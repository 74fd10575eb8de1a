//! The authorization sweep: every registered route and server function — enumerated from the
//! router's own sources, so a new one cannot slip past (and `src/tidy.rs` checks that the
//! router mounts nothing else) — called by every role the spec names, each column in a fresh
//! application with fresh objects, so an allowed call must really succeed (2xx, and the object
//! it aims at really changes) and a state conflict (409) never counts as allowed. Object-level
//! reads are rows of their own: allowed only when the answer shows the object. Then the CSRF
//! sweep: every unsafe route and server function, called with a valid session from another
//! site or without saying where it comes from, is refused and changes nothing, while the same
//! call from this site goes through. Rows nobody passes here get their positive control in a
//! differently configured application (demo sign-in on, an OpenID provider).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::peers::OidcProvider;
use common::{ask, bare_client, free_port, session_cookie_of, spawn_app, try_spawn_app_with, TestApp};
use quartermaster::domain::authz::Operator;
use quartermaster::domain::ids::{AssignmentId, CatalogId, PackageId, PolicyId, RequestId, ResourceSystemId, UserId};
use quartermaster::domain::model::{ResourceSystemKind, Role};
use quartermaster::domain::policy::{Answer, ApproverSpec, Expiration, Policy, RequestorRef, RequestorScope, Stage};
use quartermaster::domain::request::Decision;
use quartermaster::store::{catalog, Backend, Tx};

on_both_databases!(
    every_route_and_server_function_by_role,
    unsafe_calls_from_elsewhere_are_refused_and_change_nothing,
    rows_nobody_passes_here_pass_elsewhere
);

/// The columns: every role the spec names, and the owner of the objects the calls aim at.
const ROLES: [&str; 12] = [
    "anonymous",
    "member",
    "guest",
    "manager",
    "approver",
    "catalog creator",
    "catalog owner",
    "another catalog's owner",
    "access package manager",
    "assignment manager",
    "administrator",
    "owner",
];
/// Column headings for the printed table.
const HEADINGS: [&str; 12] =
    ["anon", "memb", "gues", "mngr", "appr", "crea", "cown", "ocow", "pkgm", "asgm", "admn", "ownr"];

/// Who fills each column of [`ROLES`]: people of the demo organisation, with the roles the
/// fixtures give them (each holds exactly the role of the column, as far as the objects go).
fn person(ids: &quartermaster::demo::DemoIds, column: usize) -> Option<UserId> {
    match column {
        0 => None,
        1 => Some(ids.maya),   // an engineer, no role, nobody's approver here
        2 => Some(ids.noah),   // kind 'guest', of the connected organisation Northwind
        3 => Some(ids.kai),    // Omar's manager (the fixtures make him so), no role
        4 => Some(ids.hana),   // the approver the objects' policies name (and nothing else)
        5 => Some(ids.priya),  // catalog creator (global), granted by the fixtures
        6 => Some(ids.linus),  // owner of Engineering, the catalog of every object
        7 => Some(ids.sofia),  // owner of Sales & Marketing only
        8 => Some(ids.jamal),  // access package manager of Engineering, granted by the fixtures
        9 => Some(ids.lucas),  // assignment manager of Engineering
        10 => Some(ids.grace), // administrator
        11 => Some(ids.omar),  // whose requests, assignments and failed work the calls aim at
        _ => unreachable!(),
    }
}

/// What each column gets: `A` allowed — 2xx (or the redirect a plain route answers with) and,
/// for a call that changes something, the object really changed; for a read of an object
/// (`… → …` rows), the answer shows it. `D` denied — 401/403/404, the sign-in page or a
/// redirect to it, or a read whose answer does not show the object. The sweep itself can also
/// find `C` (a 409 conflict) and `N` (2xx but nothing changed): never expected, always a failure.
///
/// Columns: anonymous, member, guest, manager, approver, catalog creator, catalog owner,
/// another catalog's owner, access package manager, assignment manager, administrator, owner.
const TABLE: &[(&str, &str)] = &[
    // Server functions.
    ("get_viewer", "AAAAAAAAAAAA"),
    ("take_notice", "AAAAAAAAAAAA"),
    ("sign_in_options", "AAAAAAAAAAAA"),
    ("browse_packages", "DAAAAAAAAAAA"),
    // Developer Tools: Engineering is not open to partners; the guest learns nothing of it.
    ("load_package", "DADAAAAAAAAA"),
    ("load_package → Sales CRM (open to partners)", "DAAAAAAAAAAA"),
    // A package whose policy admits the partners, in a catalog that is not open to them.
    ("load_package → partners' package in an internal catalog", "DADAAAAAAAAA"),
    // Sales Analytics is for employees only.
    ("request_access", "DADAAAAAAAAA"),
    ("request_access → Sales CRM (open to partners)", "DAAAAAAAAAAA"),
    ("request_access → partners' package in an internal catalog", "DADAAAAAAAAA"),
    ("my_requests", "DAAAAAAAAAAA"),
    ("my_requests → Omar's request", "DDDDDDDDDDDA"),
    ("cancel_request", "DDDDDDDDDDDA"),
    ("my_access", "DAAAAAAAAAAA"),
    ("my_access → Omar's assignment", "DDDDDDDDDDDA"),
    ("extend_access", "DDDDDDDDDDDA"),
    // Giving up an assignment: its holder only (removing someone's is an assignment manager's
    // operation, on the package's assignments).
    ("give_up_access", "DDDDDDDDDDDA"),
    // Everyone signed in reads and sets their own email settings (nobody else's: no argument
    // names a person).
    ("email_settings", "DAAAAAAAAAAA"),
    // API tokens: everyone signed in makes and lists their own; Omar's is revoked by him and
    // by administrators (anyone else is told it does not exist).
    ("my_tokens", "DAAAAAAAAAAA"),
    ("create_my_token", "DAAAAAAAAAAA"),
    ("revoke_my_token", "DDDDDDDDDDAA"),
    ("load_service_accounts", "DDDDDDDDDDAD"),
    ("create_service_account", "DDDDDDDDDDAD"),
    ("create_service_token", "DDDDDDDDDDAD"),
    ("/tokens", "DAAAAAAAAAAA"),
    ("/settings", "DAAAAAAAAAAA"),
    ("save_email_settings", "DAAAAAAAAAAA"),
    // Omar's out-of-office: his own to read, set and end, and an administrator's.
    ("load_deputies", "DDDDDDDDDDAA"),
    ("set_deputy", "DDDDDDDDDDAA"),
    ("set_guest_lifecycle", "DDDDDDDDDDAD"),
    ("end_deputy", "DDDDDDDDDDAA"),
    // Access reviews: everyone reads what they are asked to review; Omar's Developer Tools is
    // reviewed by his manager alone (not by Omar, nor by the catalog's managers).
    ("my_reviews", "DAAAAAAAAAAA"),
    ("my_reviews → Omar's review item", "DDDADDDDDDDD"),
    ("answer_review", "DDDADDDDDDDD"),
    // The reviews themselves: listed to who holds a role in a catalog (each sees its own
    // catalogs'), ended early and applied by who may assign in the package's catalog.
    ("load_reviews", "DDDDDDAAAAAD"),
    ("load_reviews → the Engineering review", "DDDDDDADAAAD"),
    ("end_review", "DDDDDDADAAAD"),
    ("apply_review", "DDDDDDADAAAD"),
    ("pending_approvals", "DAAAAAAAAAAA"),
    ("pending_approvals → Omar's request", "DDDDADDDDDDD"),
    ("decision_history", "DAAAAAAAAAAA"),
    ("decision_history → a decision on Omar's request", "DDDDADDDDDDD"),
    // Only the approver the stage names decides: not the requestor, not the catalog's owner
    // (the policy does not name owners), not the administrator.
    ("decide", "DDDDADDDDDDD"),
    ("decide_many", "DDDDADDDDDDD"),
    // Where a policy names the requestor's manager, he decides (and nobody else) ...
    ("decide → at the manager's stage", "DDDADDDDDDDD"),
    // ... and he may ask for his direct reports (Omar asking "for" himself asks for himself).
    ("request_access → for a direct report", "DDDADDDDDDDA"),
    ("builtin_groups", "DDDDDDDDDDAD"),
    // The audit trail is for administrators only: not catalog owners, not the people in it.
    ("audit_log", "DDDDDDDDDDAD"),
    ("audit_chain_status", "DDDDDDDDDDAD"),
    ("verify_audit_chain", "DDDDDDDDDDAD"),
    // Anyone holding a role opens the list; it shows Engineering's failed work to
    // Engineering's owner and administrators only.
    ("failed_work", "DDDDDAAAAAAD"),
    ("failed_work → Omar's failed entry", "DDDDDDADDDAD"),
    ("retry_delivery", "DDDDDDADDDAD"),
    // Pages. The landing page shows anonymous visitors the sign-in choices.
    ("/", "DAAAAAAAAAAA"),
    ("/ → Omar's request", "DDDDDDDDDDDA"),
    ("/approvals", "DAAAAAAAAAAA"),
    // (The page's own read of Omar's item is the server function's: the page names its
    // viewer, so "Omar Haddad" is on Omar's own page whatever it lists.)
    ("/reviews", "DAAAAAAAAAAA"),
    ("/admin/reviews", "DDDDDDAAAAAD"),
    ("/admin/reviews → the Engineering review", "DDDDDDADAAAD"),
    ("/approvals → Omar's request", "DDDDADDDDDDD"),
    ("/admin", "DDDDDAAAAAAD"),
    ("/admin/audit", "DDDDDDDDDDAD"),
    ("/admin → Omar's failed entry", "DDDDDDADDDAD"),
    ("/packages/{id}", "DADAAAAAAAAA"),
    ("/signin", "AAAAAAAAAAAA"),
    // Plain routes.
    ("/healthz", "AAAAAAAAAAAA"),
    ("/readyz", "AAAAAAAAAAAA"),
    ("/auth/signout", "AAAAAAAAAAAA"),
    ("/auth/demo", "DDDDDDDDDDDD"),
    ("/auth/login", "DDDDDDDDDDDD"),
    ("/auth/callback", "DDDDDDDDDDDD"),
    ("/admin/audit.csv", "DDDDDDDDDDAD"),
    // The REST API's description and Swagger UI are public (the operations themselves take
    // tokens: tests/it/api.rs walks each).
    ("/api/v1/openapi.json", "AAAAAAAAAAAA"),
    ("/api/v1/docs", "AAAAAAAAAAAA"),
    ("/api/v1/docs/", "AAAAAAAAAAAA"),
    ("/api/v1/docs/{*file}", "AAAAAAAAAAAA"),
    // The REST API, with each column's own API token (every scope they may have): as the
    // server functions the same operations make.
    ("REST GET /api/v1/me", "DAAAAAAAAAAA"),
    ("REST GET /api/v1/packages", "DAAAAAAAAAAA"),
    ("REST GET /api/v1/packages/{id}", "DADAAAAAAAAA"),
    ("REST GET /api/v1/requests", "DAAAAAAAAAAA"),
    ("REST GET /api/v1/requests → Omar's request", "DDDDDDDDDDDA"),
    ("REST POST /api/v1/requests", "DADAAAAAAAAA"),
    ("REST POST /api/v1/requests/{id}/cancel", "DDDDDDDDDDDA"),
    ("REST POST /api/v1/requests/{id}/decision", "DDDDADDDDDDD"),
    ("REST GET /api/v1/approvals", "DAAAAAAAAAAA"),
    ("REST GET /api/v1/approvals → Omar's request", "DDDDADDDDDDD"),
    ("REST GET /api/v1/assignments", "DAAAAAAAAAAA"),
    ("REST GET /api/v1/assignments → Omar's assignment", "DDDDDDDDDDDA"),
    ("REST GET /api/v1/catalogs", "DDDDDAAAAAAD"),
    ("REST GET /api/v1/catalogs → Engineering", "DDDDDDADAAAD"),
    ("REST POST /api/v1/catalogs", "DDDDDADDDDAD"),
    ("REST GET /api/v1/catalogs/{id}", "DDDDDDADAAAD"),
    ("REST PATCH /api/v1/catalogs/{id}", "DDDDDDADDDAD"),
    ("REST DELETE /api/v1/catalogs/{id}", "DDDDDDADDDAD"),
    // A package's settings: read by who holds a role in its catalog, changed by who builds its
    // packages (its owner, its package manager, administrators; not its assignment manager).
    ("REST GET /api/v1/packages/{id}/settings", "DDDDDDADAAAD"),
    ("REST PATCH /api/v1/packages/{id}/settings", "DDDDDDADADAD"),
    ("REST GET /api/v1/audit-events", "DDDDDDDDDDAD"),
    // A package's assignments: read by who holds a role in its catalog, changed by who may
    // assign there (its owner, its package and assignment managers, administrators).
    ("REST GET /api/v1/packages/{id}/assignments", "DDDDDDADAAAD"),
    ("REST POST /api/v1/packages/{id}/assignments", "DDDDDDADAAAD"),
    ("REST DELETE /api/v1/packages/{id}/assignments/{assignment}", "DDDDDDADAAAD"),
    ("REST GET /api/v1/people", "DDDDDDAAAAAD"),
    ("REST POST /api/v1/assignments/{id}/extend", "DDDDDDDDDDDA"),
    ("REST DELETE /api/v1/assignments/{id}", "DDDDDDDDDDDA"),
    ("REST GET /api/v1/decisions", "DAAAAAAAAAAA"),
    ("REST GET /api/v1/decisions → a decision on Omar's request", "DDDDADDDDDDD"),
    ("REST GET /api/v1/catalogs/{id}/roles", "DDDDDDADAAAD"),
    ("REST POST /api/v1/catalogs/{id}/roles", "DDDDDDADDDAD"),
    ("REST DELETE /api/v1/catalogs/{id}/roles/{person}", "DDDDDDADDDAD"),
    ("REST GET /api/v1/failed-work", "DDDDDAAAAAAD"),
    ("REST GET /api/v1/failed-work → Omar's failed entry", "DDDDDDADDDAD"),
    ("REST POST /api/v1/failed-work/{id}/retry", "DDDDDDADDDAD"),
    ("REST GET /api/v1/audit-chain", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/audit-chain/verify", "DDDDDDDDDDAD"),
    ("REST GET /api/v1/me/email-settings", "DAAAAAAAAAAA"),
    ("REST PUT /api/v1/me/email-settings", "DAAAAAAAAAAA"),
    ("REST GET /api/v1/me/deputies", "DAAAAAAAAAAA"),
    // A guest names no deputy (as on the page); a period is ended by its person or an
    // administrator.
    ("REST POST /api/v1/me/deputies", "DADAAAAAAAAA"),
    ("REST DELETE /api/v1/me/deputies/{id}", "DDDDDDDDDDAA"),
    ("REST GET /api/v1/packages/{id}/policies", "DDDDDDADAAAD"),
    ("REST POST /api/v1/packages/{id}/policies", "DDDDDDADADAD"),
    ("REST POST /api/v1/catalogs/{id}/packages", "DDDDDDADADAD"),
    ("REST GET /api/v1/policies/{id}", "DDDDDDADAAAD"),
    ("REST PUT /api/v1/policies/{id}", "DDDDDDADADAD"),
    ("REST GET /api/v1/people/{id}/access", "DDDDDDAAAAAD"),
    ("REST GET /api/v1/people/{id}/access → Omar's Engineering access", "DDDDDDADAAAD"),
    ("REST GET /api/v1/groups", "DDDDDDDDDDAD"),
    ("REST GET /api/v1/catalogs/{id}/resources", "DDDDDDADAAAD"),
    ("REST POST /api/v1/catalogs/{id}/resources", "DDDDDDADDDAD"),
    ("REST GET /api/v1/review-items", "DAAAAAAAAAAA"),
    ("REST GET /api/v1/review-items → Omar's review item", "DDDADDDDDDDD"),
    ("REST POST /api/v1/review-items/{id}/answer", "DDDADDDDDDDD"),
    ("REST GET /api/v1/reviews", "DDDDDDAAAAAD"),
    ("REST GET /api/v1/reviews → the Engineering review", "DDDDDDADAAAD"),
    ("REST POST /api/v1/reviews/{id}/end", "DDDDDDADAAAD"),
    ("REST POST /api/v1/reviews/{id}/apply", "DDDDDDADAAAD"),
    ("REST GET /api/v1/organizations", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/organizations", "DDDDDDDDDDAD"),
    ("REST GET /api/v1/organizations/{id}", "DDDDDDDDDDAD"),
    ("REST PATCH /api/v1/organizations/{id}", "DDDDDDDDDDAD"),
    ("REST PUT /api/v1/organizations/{id}/guest-lifecycle", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/organizations/{id}/sponsors", "DDDDDDDDDDAD"),
    ("REST DELETE /api/v1/organizations/{id}/sponsors/{person}", "DDDDDDDDDDAD"),
    ("REST GET /api/v1/connectors", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/connectors/{id}/test", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/connectors/{id}/retry", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/connectors", "DDDDDDDDDDAD"),
    ("REST GET /api/v1/connectors/{id}", "DDDDDDDDDDAD"),
    ("REST PUT /api/v1/connectors/{id}/settings", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/connectors/{id}/drift", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/connectors/{id}/drift/repair", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/connectors/{id}/group-imports", "DDDDDDDDDDAD"),
    ("REST GET /api/v1/builtin-groups", "DDDDDDDDDDAD"),
    ("REST PUT /api/v1/people/{id}/roles/{role}", "DDDDDDDDDDAD"),
    ("REST DELETE /api/v1/people/{id}/roles/{role}", "DDDDDDDDDDAD"),
    ("REST GET /api/v1/people/{id}/deputies", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/people/{id}/deputies", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/decisions", "DDDDADDDDDDD"),
    ("REST GET /api/v1/me/tokens", "DAAAAAAAAAAA"),
    ("REST POST /api/v1/me/tokens", "DAAAAAAAAAAA"),
    ("REST DELETE /api/v1/tokens/{id}", "DDDDDDDDDDAA"),
    ("REST GET /api/v1/service-accounts", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/service-accounts", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/service-accounts/{id}/tokens", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/packages/{id}/bulk-assignments", "DDDDDDADAAAD"),
    ("REST GET /api/v1/bulk-assignments/{id}", "DDDDDDADAAAD"),
    ("REST GET /api/v1/directory", "DDDDDDDDDDAD"),
    ("REST POST /api/v1/catalogs/{id}/drafts", "DDDDDDADADAD"),
    ("REST GET /api/v1/drafts/{id}", "DDDDDDADDDDD"),
    ("REST PUT /api/v1/drafts/{id}/steps/{step}", "DDDDDDADDDDD"),
    ("REST POST /api/v1/drafts/{id}/finish", "DDDDDDADDDDD"),
    ("REST DELETE /api/v1/drafts/{id}", "DDDDDDADDDDD"),
    // The metrics take an administrator's token with the `metrics` scope, never a session
    // (tests/it/metrics.rs).
    ("/metrics", "DDDDDDDDDDDD"),
    // Catalogs in the admin area: the list for anyone holding a role, each catalog for who
    // holds a role in it (another catalog's owner is told it does not exist).
    ("admin_catalogs", "DDDDDAAAAAAD"),
    ("admin_catalogs → Engineering", "DDDDDDADAAAD"),
    ("/admin/catalogs", "DDDDDAAAAAAD"),
    ("/admin/catalogs/{catalog}", "DDDDDDADAAAD"),
    ("load_catalog", "DDDDDDADAAAD"),
    // The person picker: for who gives roles or access (not a catalog creator owning nothing).
    ("find_people", "DDDDDDAAAAAD"),
    // Catalog creators and administrators create catalogs; only the owner (and
    // administrators) change one, its roles and resources — not its package or assignment
    // managers.
    ("create_catalog", "DDDDDADDDDAD"),
    ("update_catalog", "DDDDDDADDDAD"),
    ("delete_catalog", "DDDDDDADDDAD"),
    ("grant_catalog_role", "DDDDDDADDDAD"),
    ("revoke_catalog_role", "DDDDDDADDDAD"),
    ("add_resource", "DDDDDDADDDAD"),
    // Binding a connected system's group: administrators only (a catalog's owner could give
    // themselves any group there).
    ("bind_group", "DDDDDDDDDDAD"),
    // A package's assignments (Developer Tools, in Engineering): read by who holds a role in
    // its catalog, changed by who may assign there — its owner and its package and assignment
    // managers; not another catalog's owner.
    ("load_package_assignments", "DDDDDDADAAAD"),
    ("/admin/packages/{package}", "DDDDDDADAAAD"),
    ("/admin/packages/{package}/assignments.csv", "DDDDDDADAAAD"),
    ("assign_package", "DDDDDDADAAAD"),
    ("remove_package_assignment", "DDDDDDADAAAD"),
    // People, and what one has and why: for who gives roles or access; each sees the lines
    // in the catalogs they read (another catalog's owner opens the page, without Omar's
    // Engineering access on it).
    ("load_person_access", "DDDDDDAAAAAD"),
    // The directory: administrators browse it; others who look people up are told to search.
    ("load_directory", "DDDDDDAAAAAD"),
    ("load_directory → everyone by name", "DDDDDDDDDDAD"),
    ("load_person_access → Omar's Engineering access", "DDDDDDADAAAD"),
    ("/admin/people", "DDDDDDAAAAAD"),
    ("/admin/people/{user}", "DDDDDDAAAAAD"),
    ("/admin/people/{user} → Omar's Engineering access", "DDDDDDADAAAD"),
    // Global roles are given and taken back by administrators only.
    ("set_global_role", "DDDDDDDDDDAD"),
    // Connected organizations and their sponsors: administrators only.
    ("load_orgs", "DDDDDDDDDDAD"),
    ("/admin/orgs", "DDDDDDDDDDAD"),
    ("/admin/service-accounts", "DDDDDDDDDDAD"),
    ("create_org", "DDDDDDDDDDAD"),
    ("update_org", "DDDDDDDDDDAD"),
    ("add_sponsor", "DDDDDDDDDDAD"),
    ("remove_sponsor", "DDDDDDDDDDAD"),
    // Connected systems (SCIM, LDAP, webhooks): administrators only.
    ("load_connectors", "DDDDDDDDDDAD"),
    ("/admin/connectors", "DDDDDDDDDDAD"),
    ("add_connector", "DDDDDDDDDDAD"),
    ("edit_connector", "DDDDDDDDDDAD"),
    ("test_connector", "DDDDDDDDDDAD"),
    ("retry_connector", "DDDDDDDDDDAD"),
    ("load_connector", "DDDDDDDDDDAD"),
    ("/admin/connectors/{system}", "DDDDDDDDDDAD"),
    ("import_groups", "DDDDDDDDDDAD"),
    ("check_drift", "DDDDDDDDDDAD"),
    ("repair_drift", "DDDDDDDDDDAD"),
    // The package builder: who builds packages in Engineering starts a draft (its owner, its
    // package manager, administrators); a draft is its author's alone (Linus's here), so
    // nobody else — not even an administrator — opens, saves, discards or finishes it.
    ("start_package_draft", "DDDDDDADADAD"),
    ("load_package_draft", "DDDDDDADDDDD"),
    ("/admin/drafts/{draft}/{step}", "DDDDDDADDDDD"),
    ("save_draft_step", "DDDDDDADDDDD"),
    ("discard_package_draft", "DDDDDDADDDDD"),
    ("finish_package_draft", "DDDDDDADDDDD"),
    // Bulk assignment from a file: who may assign in Engineering starts one and follows it.
    ("/admin/packages/{package}/bulk", "DDDDDDADAAAD"),
    ("load_bulk_job", "DDDDDDADAAAD"),
    ("/admin/bulk/{job}", "DDDDDDADAAAD"),
];

/// Rows nobody passes in the sweep's application, why, and where their positive control is.
const NOBODY_HERE: &[(&str, &str)] = &[
    ("/auth/demo", "demo sign-in is off here; with it on (`serve --demo`) the same post signs in"),
    ("/auth/login", "no OpenID provider is configured here; with one, it sends the browser there"),
    ("/auth/callback", "no OpenID provider is configured here; with one, a completed login signs in"),
    (
        "/metrics",
        "a session is no way in: an administrator's API token with the metrics scope is (tests/it/metrics.rs)",
    ),
];

/// Unique words in the objects the reads aim at.
const READ_MARK: &str = "sweep-read-request-7d1e";
const DECISION_MARK: &str = "sweep-decision-4b2a";
const FAILED_MARK: &str = "sweep-failed-entry-9c3f";
const HELD_PACKAGE: &str = "Sweep Held Access";
const NEW_CATALOG: &str = "Sweep New Catalog";

/// The objects the calls aim at, fresh in each application. Every call has its own, so no
/// call in a column can spoil another's.
struct Fixtures {
    /// Omar's Production Access request, waiting at stage 1 (his manager).
    cancel: RequestId,
    /// Omar's requests waiting for Hana.
    decide: RequestId,
    decide_many: RequestId,
    /// Omar's request waiting for his manager.
    decide_manager: RequestId,
    /// A package open to all (and to requests for a direct report) that Omar does not hold.
    for_report: PackageId,
    /// A package in Engineering (not open to partners) with a policy admitting Northwind.
    internal: PackageId,
    /// Omar's delivered assignments: Developer Tools, and one whose policy lets him extend it.
    give_up: AssignmentId,
    extend: AssignmentId,
    /// One of Omar's provisioning entries in Engineering, as it is after its last attempt failed.
    retry: i64,
    /// The catalog every object is in (Engineering), and the built-in resource system.
    catalog: CatalogId,
    builtin: ResourceSystemId,
    /// An empty catalog Engineering's owner also owns (to be deleted).
    empty: CatalogId,
    /// Someone holding a role in Engineering that no column holds (to be taken back).
    reader: UserId,
    /// Developer Tools' policy (for assigning directly).
    dev_policy: PolicyId,
    /// Developer Tools' policy with another name (the REST API replaces it with this).
    renamed_policy: serde_json::Value,
    /// A resource role of Engineering (what a package made through the API grants).
    role: quartermaster::domain::ids::ResourceRoleId,
    /// Elena's Developer Tools, assigned directly (to be removed from the package's page).
    remove: AssignmentId,
    /// Northwind, the connected organization (Sofia sponsors it).
    org: i64,
    /// A connected system (a webhook receiver nobody runs) with one failed removal.
    system: ResourceSystemId,
    /// A SCIM system nobody runs (its settings to change).
    scim: ResourceSystemId,
    /// A service account (of nothing), for administrators to make tokens for.
    service_account: UserId,
    /// Builder drafts of Engineering's owner: one to read, one to save a step of, one to
    /// discard, and a complete one (a copy of a package) to finish.
    draft_read: i64,
    draft_save: i64,
    draft_discard: i64,
    draft_finish: i64,
    /// A bulk assignment to Developer Tools (its one row names nobody: it changes nothing).
    bulk_job: i64,
    /// Omar's out-of-office: Maya decides for him for ten days.
    deputy: i64,
    /// A running review of Developer Tools with Omar's item (his manager reviews it), and an
    /// ended one whose results are to be applied.
    review: i64,
    review_item: i64,
    ended_review: i64,
    /// One of Omar's API tokens.
    token: i64,
}

/// A package of the sweep's own in a catalog: its own built-in resource (so removing one
/// assignment touches no other), open to all members, approved by `stages`.
async fn sweep_package(
    tx: &mut Tx,
    system: ResourceSystemId,
    catalog_id: CatalogId,
    name: &str,
    stages: Vec<Stage>,
    extendable: bool,
) -> PackageId {
    let now = chrono::Utc::now().timestamp_millis();
    let roles = catalog::insert_resource(tx, system, catalog_id, name, "", &["Member"], now).await.unwrap();
    let package = catalog::insert_package(tx, catalog_id, name, "", &roles, now).await.unwrap();
    let mut policy = Policy::new(package, "Everyone", RequestorScope::AllMembers, stages);
    if extendable {
        policy.expiration = Expiration::AfterDays { days: 30 };
        policy.extension_allowed = true;
        policy.extension_needs_approval = false;
    }
    policy.validate().unwrap();
    catalog::insert_policy(tx, &policy, now).await.unwrap();
    package
}

async fn fixtures(app: &TestApp) -> Fixtures {
    let ids = &app.ids;
    let s = &app.service;
    let pool = s.db().pool();
    // Omar's manager is Kai here, who holds no role (in the demo it is Linus, Engineering's
    // owner: one person would fill two columns).
    sqlx::query("UPDATE users SET manager_id = $1 WHERE id = $2")
        .bind(ids.kai.0)
        .bind(ids.omar.0)
        .execute(pool)
        .await
        .unwrap();
    let actor = |id: UserId| async move { s.actor(id).await.unwrap().unwrap() };
    let (grace, omar, hana) = (actor(ids.grace).await, actor(ids.omar).await, actor(ids.hana).await);
    let eng = CatalogId(
        sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Engineering'").fetch_one(pool).await.unwrap(),
    );
    let builtin = ResourceSystemId(
        sqlx::query_scalar("SELECT id FROM resource_systems WHERE kind = 'builtin'").fetch_one(pool).await.unwrap(),
    );
    // The roles the demo does not hand out, through the audited service.
    s.administrator(&grace).unwrap().grant_role(ids.priya, Role::CatalogCreator).await.unwrap();
    s.catalog_owner(&grace, eng).unwrap().grant_role(ids.jamal, Role::AccessPackageManager).await.unwrap();
    s.catalog_owner(&grace, eng).unwrap().grant_role(ids.elena, Role::CatalogReader).await.unwrap();
    let empty = s.catalog_creator(&grace).unwrap().create_catalog("Sweep Empty", "", false).await.unwrap();
    s.catalog_owner(&grace, empty).unwrap().grant_role(ids.linus, Role::CatalogOwner).await.unwrap();

    let by_hana = || vec![Stage::new(vec![ApproverSpec::User { id: ids.hana }])];
    let mut tx = s.db().begin().await.unwrap();
    let decide = sweep_package(&mut tx, builtin, eng, "Sweep Decide", by_hana(), false).await;
    let decide_many = sweep_package(&mut tx, builtin, eng, "Sweep Decide Many", by_hana(), false).await;
    let read = sweep_package(&mut tx, builtin, eng, "Sweep Read", by_hana(), false).await;
    let decided = sweep_package(&mut tx, builtin, eng, "Sweep Decided", by_hana(), false).await;
    let by_manager = vec![Stage::new(vec![ApproverSpec::Manager])];
    let decide_manager = sweep_package(&mut tx, builtin, eng, "Sweep Manager", by_manager, false).await;
    let for_report = sweep_package(&mut tx, builtin, eng, "Sweep For A Report", vec![], false).await;
    let internal = sweep_package(&mut tx, builtin, eng, "Sweep Internal", vec![], false).await;
    let mut partners = Policy::new(internal, "Northwind partners", RequestorScope::ConnectedOrgs, vec![]);
    partners.requestors = vec![RequestorRef::Org(actor(ids.noah).await.user.connected_org_id.unwrap())];
    partners.validate().unwrap();
    catalog::insert_policy(&mut tx, &partners, chrono::Utc::now().timestamp_millis()).await.unwrap();
    let extend = sweep_package(&mut tx, builtin, eng, "Sweep Extend", vec![], true).await;
    let held = sweep_package(&mut tx, builtin, eng, HELD_PACKAGE, vec![], false).await;
    let retry = sweep_package(&mut tx, builtin, eng, "Sweep Retry", vec![], false).await;
    let failed = sweep_package(&mut tx, builtin, eng, "Sweep Failed", vec![], false).await;
    tx.commit().await.unwrap();

    let mut prod = ask(ids.production_access, "sweep");
    prod.answers = vec![Answer { question_id: "service".into(), value: "Payments API".into() }];
    let cancel = s.submit_request(&omar, prod).await.unwrap().request;
    let decide = s.submit_request(&omar, ask(decide, "sweep")).await.unwrap().request;
    let decide_many = s.submit_request(&omar, ask(decide_many, "sweep")).await.unwrap().request;
    let decide_manager = s.submit_request(&omar, ask(decide_manager, "sweep")).await.unwrap().request;
    s.submit_request(&omar, ask(read, READ_MARK)).await.unwrap();
    let decided = s.submit_request(&omar, ask(decided, "sweep")).await.unwrap().request;
    s.decide(&hana, decided, Decision::Deny, DECISION_MARK).await.unwrap();
    for package in [ids.developer_tools, extend, held, retry, failed] {
        s.submit_request(&omar, ask(package, "sweep")).await.unwrap();
    }
    // Deliver everything now, so the background workers have nothing left to change (they
    // may have claimed some entries themselves: wait for those too).
    for _ in 0..200 {
        s.deliver_pending(&Operator::Workers, 100).await.unwrap();
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetch_one(pool).await.unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let assignment = |package: PackageId| async move {
        let id: i64 = sqlx::query_scalar(
            "SELECT id FROM assignments WHERE user_id = $1 AND package_id = $2 AND state = 'delivered'",
        )
        .bind(ids.omar.0)
        .bind(package.0)
        .fetch_one(pool)
        .await
        .unwrap();
        AssignmentId(id)
    };
    let entry = |package: PackageId, error: &'static str| async move {
        let id: i64 = sqlx::query_scalar(
            "SELECT o.id FROM outbox o JOIN grants g ON g.id = o.grant_id \
             JOIN assignments a ON a.id = g.assignment_id WHERE a.package_id = $1 AND o.state = 'done'",
        )
        .bind(package.0)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query("UPDATE outbox SET state = 'failed', attempts = 5, last_error = $1 WHERE id = $2")
            .bind(error)
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
        id
    };
    entry(failed, FAILED_MARK).await;
    let dev_policy = PolicyId(
        sqlx::query_scalar("SELECT id FROM policies WHERE package_id = $1 ORDER BY id LIMIT 1")
            .bind(ids.developer_tools.0)
            .fetch_one(pool)
            .await
            .unwrap(),
    );
    let linus = actor(ids.linus).await;
    let builder = s.package_manager(&linus, eng).unwrap();
    let draft = || async { builder.start_draft(quartermaster::service::drafts::DraftStart::New).await.unwrap() };
    let (draft_read, draft_save, draft_discard) = (draft().await, draft().await, draft().await);
    let draft_finish = builder.start_draft(quartermaster::service::drafts::DraftStart::Copy(for_report)).await.unwrap();
    let dev = s.assignment_manager_of(&grace, ids.developer_tools).await.unwrap();
    let bulk_job =
        dev.start_bulk(ids.developer_tools, dev_policy, "nobody@quartermaster.example\n", "sweep").await.unwrap();
    dev.assign_directly(ids.elena, ids.developer_tools, dev_policy, None, "sweep").await.unwrap();
    let assignment_of = |user: UserId, package: PackageId| async move {
        let id: i64 = sqlx::query_scalar(
            "SELECT id FROM assignments WHERE user_id = $1 AND package_id = $2 \
             AND state IN ('delivering', 'delivered', 'partially_delivered', 'delivery_failed')",
        )
        .bind(user.0)
        .bind(package.0)
        .fetch_one(pool)
        .await
        .unwrap();
        AssignmentId(id)
    };
    let reviews = review_fixtures(app, dev_policy).await;
    // Developer Tools' policy as the API gives it, renamed: what the API's replacement sends.
    let mut renamed = {
        let mut conn = app.service.db().pool().acquire().await.unwrap();
        catalog::policy(&mut conn, dev_policy).await.unwrap().unwrap()
    };
    renamed.name = "Renamed by the sweep".into();
    let role = {
        let mut conn = app.service.db().pool().acquire().await.unwrap();
        catalog::role_choices(&mut conn, eng).await.unwrap()[0].0
    };
    Fixtures {
        role,
        renamed_policy: serde_json::to_value(&renamed).unwrap(),
        cancel,
        decide,
        decide_many,
        decide_manager,
        for_report,
        internal,
        give_up: assignment(ids.developer_tools).await,
        extend: assignment(extend).await,
        retry: entry(retry, "unreachable").await,
        catalog: eng,
        builtin,
        empty,
        reader: ids.elena,
        dev_policy,
        remove: assignment_of(ids.elena, ids.developer_tools).await,
        org: sqlx::query_scalar("SELECT id FROM connected_orgs WHERE domain = 'northwind.example'")
            .fetch_one(pool)
            .await
            .unwrap(),
        draft_read,
        draft_save,
        draft_discard,
        draft_finish,
        bulk_job,
        deputy: {
            let omar = app.service.actor(ids.omar).await.unwrap().unwrap();
            let now = chrono::Utc::now();
            let period = (now, now + chrono::Duration::days(10));
            app.service.set_deputy(&omar, ids.omar, "maya@quartermaster.example", period).await.unwrap()
        },
        system: connected_system(app, eng).await,
        review: reviews.0,
        review_item: reviews.1,
        ended_review: reviews.2,
        token: {
            let omar = app.service.actor(ids.omar).await.unwrap().unwrap();
            let scopes = quartermaster::domain::token::Scopes::parse("read").unwrap();
            let by = quartermaster::service::tokens::TokenBy::Person(&omar);
            app.service.create_token(by, &omar, "omar's script", &scopes, 30).await.unwrap().0.id
        },
        service_account: {
            let grace = app.service.actor(ids.grace).await.unwrap().unwrap();
            app.service.create_service_account(&grace, "Sweep Robot", "sweep").await.unwrap()
        },
        scim: {
            let grace = app.service.actor(ids.grace).await.unwrap().unwrap();
            let admin = app.service.administrator(&grace).unwrap();
            admin.add_scim_system("Sweep SCIM", "http://127.0.0.1:9/v2", "a token", false).await.unwrap()
        },
    }
}

/// Developer Tools reviewed quarterly from today by managers: the running review (and
/// Omar's item in it); and a second policy of the package, whose review holds Tom's access
/// and has ended, its results not applied.
async fn review_fixtures(app: &TestApp, dev_policy: PolicyId) -> (i64, i64, i64) {
    use quartermaster::domain::policy::{ReviewDefault, ReviewFrequency, ReviewSettings};
    let (s, ids, pool) = (&app.service, &app.ids, app.service.db().pool());
    let grace = s.actor(ids.grace).await.unwrap().unwrap();
    let review = |apply_automatically: bool| ReviewSettings::Recurring {
        frequency: ReviewFrequency::Quarterly,
        reviewers: vec![ApproverSpec::Manager],
        self_review: false,
        duration_days: 14,
        default_decision: ReviewDefault::Remove,
        apply_automatically,
        starts_on: Some(chrono::Utc::now().date_naive()),
        fallback: vec![],
    };
    let pm = s.package_manager_of(&grace, ids.developer_tools).await.unwrap();
    let mut dev = {
        let mut conn = pool.acquire().await.unwrap();
        quartermaster::store::catalog::policy(&mut conn, dev_policy).await.unwrap().unwrap()
    };
    // Ending it early (a row of its own) applies nothing: the rows after it still find
    // Developer Tools where they left it.
    dev.review = review(false);
    pm.update_policy(dev).await.unwrap();
    let mut other = Policy::new(ids.developer_tools, "Reviewed (sweep)", RequestorScope::Nobody, vec![]);
    other.review = review(false);
    let other = pm.create_policy(other).await.unwrap();
    let am = s.assignment_manager_of(&grace, ids.developer_tools).await.unwrap();
    am.assign_directly(ids.tom, ids.developer_tools, other, None, "sweep").await.unwrap();
    assert_eq!(s.start_reviews(&Operator::Workers).await.unwrap(), 2);
    let of = async |policy: PolicyId| -> i64 {
        sqlx::query_scalar("SELECT id FROM reviews WHERE policy_id = $1").bind(policy.0).fetch_one(pool).await.unwrap()
    };
    let (running, ended) = (of(dev_policy).await, of(other).await);
    s.end_review_early(&grace, ended).await.unwrap();
    // Delivered now, not by the workers while the calls read their effects.
    s.deliver_pending(&Operator::Workers, 200).await.unwrap();
    let item = sqlx::query_scalar("SELECT id FROM review_items WHERE review_id = $1 AND user_id = $2")
        .bind(running)
        .bind(ids.omar.0)
        .fetch_one(pool)
        .await
        .unwrap();
    (running, item, ended)
}

/// A webhook receiver nobody runs, bound to `catalog`, with one of Omar's removals there
/// given up after its last attempt.
async fn connected_system(app: &TestApp, catalog: CatalogId) -> ResourceSystemId {
    use quartermaster::store::catalog as store;
    let mut tx = app.service.db().begin().await.unwrap();
    let config = r#"{"url":"http://127.0.0.1:9/hooks"}"#;
    let system =
        store::insert_connector(&mut tx, "Sweep Receiver", ResourceSystemKind::Webhook, config, "", 0).await.unwrap();
    let roles = store::insert_resource_as(&mut tx, system, catalog, "sweep-app", "Sweep App", "", &["Member"], 0)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO outbox (kind, resource_role_id, user_id, state, attempts, next_attempt_at, last_error, \
         created_at, updated_at) VALUES ('remove_member', $1, $2, 'failed', 8, 0, 'unreachable', 0, 0)",
    )
    .bind(roles[0].0)
    .bind(app.ids.omar.0)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    system
}

/// What a call changes, read before and after it.
#[derive(Clone, Copy, Debug)]
enum Effect {
    Request(RequestId),
    Assignment(AssignmentId),
    Outbox(i64),
    /// A new request (not rejected) for this package.
    RequestFor(PackageId),
    /// Who the caller's session belongs to.
    Session,
    /// A catalog's settings (and whether it is deleted).
    Catalog(CatalogId),
    /// Who holds roles in a catalog, and its resources.
    CatalogContents(CatalogId),
    /// The catalogs named so.
    CatalogsNamed(&'static str),
    /// A person's live assignments to a package.
    LiveAssignments(UserId, PackageId),
    /// The walks of the audit chain recorded.
    Verifications,
    /// A person's global roles.
    GlobalRoles(UserId),
    /// The connected organizations: their rows and sponsors.
    Orgs,
    /// The connected systems, and their failed work.
    Connectors,
    /// A builder draft: its step and body, or gone.
    Draft(i64),
    /// How many builder drafts a catalog has.
    DraftsIn(CatalogId),
    /// How many bulk assignments a package has had.
    BulkJobs(PackageId),
    /// Everyone's choice of optional emails.
    EmailSettings,
    /// Every deputy period and whether it ended.
    Deputies,
    /// A review's state and its items' answers and outcomes.
    Review(i64),
    /// A package's settings and version.
    Package(PackageId),
    /// A policy's name and version.
    Policy(PolicyId),
    /// A package's policies, by name.
    Policies(PackageId),
    /// A catalog's packages, by name.
    Packages(CatalogId),
    /// How many API tokens there are.
    Tokens,
    /// Whether an API token is revoked.
    Token(i64),
    /// The service accounts.
    ServiceAccounts,
}

#[derive(Clone, Debug)]
struct Call {
    /// The row in [`TABLE`].
    name: String,
    path: String,
    method: http::Method,
    args: Vec<(&'static str, String)>,
    effect: Option<Effect>,
    /// A read of an object: allowed only when the answer shows this.
    shows: Option<&'static str>,
    /// A JSON body (the REST API's operations).
    body: Option<serde_json::Value>,
    /// A REST API operation: sent with the column's API token, never a cookie.
    bearer: bool,
}

impl Call {
    /// A call of a page, a plain route or a server function (a form, with the session).
    fn form(
        name: &str,
        path: String,
        method: http::Method,
        args: Vec<(&'static str, String)>,
        effect: Option<Effect>,
    ) -> Call {
        Call { name: name.to_owned(), path, method, args, effect, shows: None, body: None, bearer: false }
    }
}

/// Every route and server function, enumerated from the router's own sources, with the
/// arguments that aim it at its object; then the object-level reads.
fn calls(app: &TestApp, fx: &Fixtures) -> Vec<Call> {
    let ids = &app.ids;
    let request_ids = |id: RequestId| vec![("request_ids[0]", id.0.to_string())];
    let decision = |mut args: Vec<(&'static str, String)>| {
        args.extend([("decision", "approve".to_owned()), ("justification", "sweep".to_owned())]);
        args
    };
    let server_fn = |name: &str| -> (Vec<(&'static str, String)>, Option<Effect>) {
        match name {
            "browse_packages" => (vec![("q", String::new())], None),
            "load_package" => (vec![("id", ids.developer_tools.0.to_string())], None),
            "request_access" => (
                vec![("package_id", ids.sales_analytics.0.to_string()), ("justification", "sweep".into())],
                Some(Effect::RequestFor(ids.sales_analytics)),
            ),
            "cancel_request" => (vec![("request_id", fx.cancel.0.to_string())], Some(Effect::Request(fx.cancel))),
            "retry_delivery" => (vec![("outbox_id", fx.retry.to_string())], Some(Effect::Outbox(fx.retry))),
            "save_email_settings" => (vec![], Some(Effect::EmailSettings)),
            "load_deputies" => (vec![("user_id", ids.omar.0.to_string())], None),
            "set_guest_lifecycle" => (
                vec![
                    ("org_id", fx.org.to_string()),
                    ("block_after_days", "7".into()),
                    ("remove_after_days", "30".into()),
                ],
                Some(Effect::Orgs),
            ),
            "set_deputy" => (
                vec![
                    ("user_id", ids.omar.0.to_string()),
                    ("deputy", "tom@quartermaster.example".into()),
                    ("until", (chrono::Utc::now() + chrono::Duration::days(30)).format("%Y-%m-%d").to_string()),
                ],
                Some(Effect::Deputies),
            ),
            "end_deputy" => (vec![("deputy_id", fx.deputy.to_string())], Some(Effect::Deputies)),
            "answer_review" => (
                vec![
                    ("item_ids[0]", fx.review_item.to_string()),
                    ("decision", "keep".into()),
                    ("justification", "sweep".into()),
                ],
                Some(Effect::Review(fx.review)),
            ),
            "create_my_token" => (
                vec![("name", "sweep".into()), ("days", "7".into()), ("scopes[read]", "on".into())],
                Some(Effect::Tokens),
            ),
            "revoke_my_token" => (vec![("token_id", fx.token.to_string())], Some(Effect::Token(fx.token))),
            "create_service_account" => {
                (vec![("name", "Sweep Sync".into()), ("purpose", "sweep".into())], Some(Effect::ServiceAccounts))
            }
            "create_service_token" => (
                vec![
                    ("account_id", fx.service_account.0.to_string()),
                    ("name", "sweep".into()),
                    ("days", "7".into()),
                    ("scopes[read]", "on".into()),
                ],
                Some(Effect::Tokens),
            ),
            "end_review" => (vec![("review_id", fx.review.to_string())], Some(Effect::Review(fx.review))),
            "apply_review" => (vec![("review_id", fx.ended_review.to_string())], Some(Effect::Review(fx.ended_review))),
            "give_up_access" => {
                (vec![("assignment_id", fx.give_up.0.to_string())], Some(Effect::Assignment(fx.give_up)))
            }
            "extend_access" => (
                vec![("assignment_id", fx.extend.0.to_string()), ("justification", "sweep".into())],
                Some(Effect::Assignment(fx.extend)),
            ),
            "decide" => (decision(vec![("request_id", fx.decide.0.to_string())]), Some(Effect::Request(fx.decide))),
            "decide_many" => (decision(request_ids(fx.decide_many)), Some(Effect::Request(fx.decide_many))),
            "audit_log" => (vec![("filter[action]", String::new())], None),
            "admin_catalogs" => (vec![], None),
            "load_person_access" => (vec![("user_id", ids.omar.0.to_string())], None),
            "create_org" => (
                vec![
                    ("name", "Sweep Partners".into()),
                    ("domain", "sweep.example".into()),
                    ("configured", "on".into()),
                ],
                Some(Effect::Orgs),
            ),
            "update_org" => (
                vec![
                    ("org_id", fx.org.to_string()),
                    ("name", "Northwind Renamed".into()),
                    ("domain", "northwind.example".into()),
                    ("configured", "on".into()),
                ],
                Some(Effect::Orgs),
            ),
            "add_sponsor" => (
                vec![
                    ("org_id", fx.org.to_string()),
                    ("person", "tom@quartermaster.example".into()),
                    ("kind", "internal".into()),
                ],
                Some(Effect::Orgs),
            ),
            "add_connector" => (
                vec![
                    ("kind", "webhook".into()),
                    ("name", "Sweep Hooks".into()),
                    ("url", "http://127.0.0.1:9/hooks".into()),
                    ("secret", "a sweep secret, long enough".into()),
                ],
                Some(Effect::Connectors),
            ),
            "test_connector" => (vec![("system_id", fx.system.0.to_string())], None),
            "edit_connector" => (
                vec![
                    ("system_id", fx.scim.0.to_string()),
                    ("url", "http://127.0.0.1:9/v2".into()),
                    ("secret", String::new()),
                    ("max_in_flight", "2".into()),
                ],
                Some(Effect::Connectors),
            ),
            "check_drift" => (vec![("system_id", fx.system.0.to_string())], None),
            "repair_drift" => (vec![("system_id", fx.system.0.to_string())], None),
            "bind_group" => (
                vec![
                    ("catalog_id", fx.catalog.0.to_string()),
                    ("system_id", fx.system.0.to_string()),
                    ("external_id", "sweep-group".into()),
                    ("name", "Sweep Group".into()),
                    ("description", String::new()),
                ],
                Some(Effect::CatalogContents(fx.catalog)),
            ),
            "retry_connector" => (vec![("system_id", fx.system.0.to_string())], Some(Effect::Connectors)),
            "load_connector" => (vec![("system_id", fx.system.0.to_string())], None),
            "import_groups" => (
                vec![("system_id", fx.scim.0.to_string()), ("catalog_id", fx.catalog.0.to_string())],
                Some(Effect::Connectors),
            ),
            "remove_sponsor" => {
                (vec![("org_id", fx.org.to_string()), ("user_id", ids.sofia.0.to_string())], Some(Effect::Orgs))
            }
            "set_global_role" => (
                vec![("user_id", ids.omar.0.to_string()), ("role", "catalog_creator".into()), ("grant", "true".into())],
                Some(Effect::GlobalRoles(ids.omar)),
            ),
            "verify_audit_chain" => (vec![], Some(Effect::Verifications)),
            "start_package_draft" => (
                vec![("catalog_id", fx.catalog.0.to_string()), ("from", "new".into())],
                Some(Effect::DraftsIn(fx.catalog)),
            ),
            "load_package_draft" => (vec![("draft_id", fx.draft_read.to_string())], None),
            "load_bulk_job" => (vec![("job_id", fx.bulk_job.to_string())], None),
            "save_draft_step" => (
                vec![
                    ("draft_id", fx.draft_save.to_string()),
                    ("step", "basics".into()),
                    ("go", "next".into()),
                    ("f[name]", "Sweep Draft".into()),
                    ("f[policy_name]", "Everyone".into()),
                ],
                Some(Effect::Draft(fx.draft_save)),
            ),
            "discard_package_draft" => {
                (vec![("draft_id", fx.draft_discard.to_string())], Some(Effect::Draft(fx.draft_discard)))
            }
            "finish_package_draft" => {
                (vec![("draft_id", fx.draft_finish.to_string())], Some(Effect::Draft(fx.draft_finish)))
            }
            "load_package_assignments" => {
                (vec![("package_id", ids.developer_tools.0.to_string()), ("filter[state]", "live".into())], None)
            }
            "assign_package" => (
                vec![
                    ("package_id", ids.developer_tools.0.to_string()),
                    ("person", "tom@quartermaster.example".into()),
                    ("policy_id", fx.dev_policy.0.to_string()),
                    ("end", String::new()),
                    ("justification", "sweep".into()),
                ],
                Some(Effect::LiveAssignments(ids.tom, ids.developer_tools)),
            ),
            "remove_package_assignment" => (
                vec![
                    ("package_id", ids.developer_tools.0.to_string()),
                    ("assignment_id", fx.remove.0.to_string()),
                    ("reason", "sweep".into()),
                ],
                Some(Effect::Assignment(fx.remove)),
            ),
            "load_catalog" => (vec![("catalog_id", fx.catalog.0.to_string())], None),
            "find_people" => (vec![("query", "gr".into())], None),
            "create_catalog" => (
                vec![("name", NEW_CATALOG.into()), ("description", "sweep".into())],
                Some(Effect::CatalogsNamed(NEW_CATALOG)),
            ),
            "update_catalog" => (
                vec![
                    ("catalog_id", fx.catalog.0.to_string()),
                    ("name", "Engineering".into()),
                    ("description", "edited by the sweep".into()),
                    ("enabled", "on".into()),
                ],
                Some(Effect::Catalog(fx.catalog)),
            ),
            "delete_catalog" => (vec![("catalog_id", fx.empty.0.to_string())], Some(Effect::Catalog(fx.empty))),
            "grant_catalog_role" => (
                vec![
                    ("catalog_id", fx.catalog.0.to_string()),
                    ("person", "tom@quartermaster.example".into()),
                    ("role", "catalog_reader".into()),
                ],
                Some(Effect::CatalogContents(fx.catalog)),
            ),
            "revoke_catalog_role" => (
                vec![
                    ("catalog_id", fx.catalog.0.to_string()),
                    ("user_id", fx.reader.0.to_string()),
                    ("role", "catalog_reader".into()),
                ],
                Some(Effect::CatalogContents(fx.catalog)),
            ),
            "add_resource" => (
                vec![
                    ("catalog_id", fx.catalog.0.to_string()),
                    ("system_id", fx.builtin.0.to_string()),
                    ("name", "Sweep Resource".into()),
                    ("description", String::new()),
                    ("roles", "Member".into()),
                ],
                Some(Effect::CatalogContents(fx.catalog)),
            ),
            _ => (vec![], None),
        }
    };

    let mut calls: Vec<Call> = Vec::new();
    for (path, method) in leptos::server_fn::axum::server_fn_paths() {
        // No server function is reachable by GET: a state change must never be a link.
        assert_eq!(method, http::Method::POST, "{path} must be POST-only");
        // The name is the path, exactly: every server function has an explicit, stable
        // endpoint (a name the macro made up would end in a hash of digits).
        let name = path.strip_prefix("/api/").unwrap_or_else(|| panic!("{path}: server functions live under /api/"));
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{path}: give the server function an explicit endpoint (#[server(endpoint = \"its_name\")])"
        );
        let (args, effect) = server_fn(name);
        calls.push(Call::form(name, path.to_owned(), method, args, effect));
    }
    for route in leptos_axum::generate_route_list(quartermaster::ui::App) {
        for method in route.methods() {
            assert_eq!(
                method,
                leptos_router::Method::Get,
                "{}: a page answering {method:?} needs its own arguments in the sweep",
                route.path()
            );
            let path = route.path().to_owned();
            let concrete = path
                .replace("{id}", &ids.developer_tools.0.to_string())
                .replace("{catalog}", &fx.catalog.0.to_string())
                .replace("{package}", &ids.developer_tools.0.to_string())
                .replace("{user}", &ids.omar.0.to_string())
                .replace("{draft}", &fx.draft_read.to_string())
                .replace("{step}", "basics")
                .replace("{job}", &fx.bulk_job.to_string())
                .replace("{system}", &fx.system.0.to_string());
            calls.push(Call {
                name: path,
                path: concrete,
                method: http::Method::GET,
                args: vec![],
                effect: None,
                shows: None,
                body: None,
                bearer: false,
            });
        }
    }
    for (path, method, _) in quartermaster::server::plain_routes() {
        let (args, effect) = match path {
            "/auth/demo" => (vec![("user_id", ids.grace.0.to_string())], Some(Effect::Session)),
            "/auth/signout" => (vec![], Some(Effect::Session)),
            "/admin/packages/{package}/bulk" => (
                vec![
                    ("csv", "nobody@quartermaster.example".to_owned()),
                    ("policy_id", fx.dev_policy.0.to_string()),
                    ("justification", "sweep".to_owned()),
                ],
                Some(Effect::BulkJobs(ids.developer_tools)),
            ),
            _ => (vec![], None),
        };
        let concrete =
            path.replace("{package}", &ids.developer_tools.0.to_string()).replace("{*file}", "swagger-ui.css");
        calls.push(Call::form(path, concrete, method, args, effect));
    }
    // The REST API's operations, from its OpenAPI document (the list its router is made
    // from), each sent with the column's API token.
    let doc = serde_json::to_value(quartermaster::rest::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<http::Method>() else { continue };
            let (concrete, body, effect) = rest_operation(app, fx, &method, path);
            calls.push(Call {
                name: format!("REST {method} {path}"),
                path: concrete,
                method,
                args: vec![],
                effect,
                shows: None,
                body,
                bearer: true,
            });
        }
    }
    // One row per route: two routes under one name would hide one of them.
    let mut seen = BTreeSet::new();
    for c in &calls {
        assert!(seen.insert(c.name.clone()), "two routes are both named {}", c.name);
    }

    // Object-level reads and the partners' package: the same calls, aimed elsewhere.
    let base = |name: &str| calls.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name}")).clone();
    let read = |name: &str, on: &str, shows: &'static str| Call {
        name: format!("{on} → {name}"),
        shows: Some(shows),
        ..base(on)
    };
    let crm = ids.sales_crm.0.to_string();
    let derived = vec![
        read("Omar's request", "my_requests", READ_MARK),
        read("Omar's assignment", "my_access", HELD_PACKAGE),
        read("Omar's request", "pending_approvals", READ_MARK),
        read("a decision on Omar's request", "decision_history", DECISION_MARK),
        read("Omar's failed entry", "failed_work", FAILED_MARK),
        read("Omar's request", "/", READ_MARK),
        read("Omar's request", "/approvals", READ_MARK),
        read("Omar's review item", "my_reviews", "Omar Haddad"),
        read("the Engineering review", "load_reviews", "Developer Tools"),
        read("the Engineering review", "/admin/reviews", "Developer Tools"),
        read("Omar's failed entry", "/admin", FAILED_MARK),
        read("Engineering", "admin_catalogs", "Engineering"),
        read("Omar's request", "REST GET /api/v1/requests", READ_MARK),
        read("Omar's assignment", "REST GET /api/v1/assignments", HELD_PACKAGE),
        read("Omar's request", "REST GET /api/v1/approvals", READ_MARK),
        read("Engineering", "REST GET /api/v1/catalogs", "Engineering"),
        read("Omar's review item", "REST GET /api/v1/review-items", "Omar Haddad"),
        read("a decision on Omar's request", "REST GET /api/v1/decisions", DECISION_MARK),
        read("Omar's failed entry", "REST GET /api/v1/failed-work", FAILED_MARK),
        read("the Engineering review", "REST GET /api/v1/reviews", "Developer Tools"),
        read("Omar's Engineering access", "REST GET /api/v1/people/{id}/access", HELD_PACKAGE),
        read("Omar's Engineering access", "load_person_access", HELD_PACKAGE),
        read("everyone by name", "load_directory", "Maya Chen"),
        read("Omar's Engineering access", "/admin/people/{user}", HELD_PACKAGE),
        Call {
            name: "load_package → Sales CRM (open to partners)".into(),
            args: vec![("id", crm.clone())],
            ..base("load_package")
        },
        Call {
            name: "request_access → Sales CRM (open to partners)".into(),
            args: vec![("package_id", crm), ("justification", "sweep".into())],
            effect: Some(Effect::RequestFor(ids.sales_crm)),
            ..base("request_access")
        },
        Call {
            name: "load_package → partners' package in an internal catalog".into(),
            args: vec![("id", fx.internal.0.to_string())],
            ..base("load_package")
        },
        Call {
            name: "request_access → partners' package in an internal catalog".into(),
            args: vec![("package_id", fx.internal.0.to_string()), ("justification", "sweep".into())],
            effect: Some(Effect::RequestFor(fx.internal)),
            ..base("request_access")
        },
        Call {
            name: "decide → at the manager's stage".into(),
            args: decision(vec![("request_id", fx.decide_manager.0.to_string())]),
            effect: Some(Effect::Request(fx.decide_manager)),
            ..base("decide")
        },
        Call {
            name: "request_access → for a direct report".into(),
            args: vec![
                ("package_id", fx.for_report.0.to_string()),
                ("justification", "sweep".into()),
                ("on_behalf_of", ids.omar.0.to_string()),
            ],
            effect: Some(Effect::RequestFor(fx.for_report)),
            ..base("request_access")
        },
    ];
    calls.extend(derived);
    // Reads first, then changes; signing out ends the session, so it comes last.
    calls.sort_by_key(|c| (c.name == "/auth/signout", c.effect.is_some(), c.name.clone()));
    calls
}

struct Reply {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Reply {
    /// The start of the body, for messages.
    fn start(&self) -> String {
        self.body.chars().take(300).collect()
    }
}

/// Send `call` with the session `cookie` (if any) and `headers` (where the call says it
/// comes from).
async fn send(c: &reqwest::Client, base: &str, call: &Call, cookie: Option<&str>, headers: &[(&str, &str)]) -> Reply {
    let url = format!("{base}{}", call.path);
    let mut req = match (&call.body, &call.method) {
        (Some(body), method) => c.request(method.clone(), &url).json(body),
        (None, &http::Method::GET) => c.get(&url),
        (None, method) => c.request(method.clone(), &url).form(&call.args),
    };
    if call.method == http::Method::PATCH || call.method == http::Method::PUT {
        // The sweep asks who may change the object, not whether they read it last.
        req = req.header("if-match", "*");
    }
    // A hydrated page calls server functions asking for JSON (no redirect back to the page).
    let accept = if call.path.starts_with("/api/") { "application/json" } else { "text/html" };
    req = req.header("accept", accept);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let location = res.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
    Reply { status, location, body: res.text().await.unwrap() }
}

/// What a same-origin browser says about an unsafe request.
fn same_origin(base: &str) -> [(&str, &str); 2] {
    [("origin", base), ("sec-fetch-site", "same-origin")]
}

/// The state `effect` names, as text (nothing when it does not apply: no session to end).
/// A count of rows about one object.
async fn count_of(pool: &sqlx::AnyPool, sql: &str, id: i64) -> i64 {
    sqlx::query_scalar(sql).bind(id).fetch_one(pool).await.unwrap()
}

async fn state_of(app: &TestApp, effect: Effect, cookie: Option<&str>) -> Option<String> {
    let pool = app.service.db().pool();
    Some(match effect {
        Effect::Request(id) => {
            let row: (String, i64, i64) =
                sqlx::query_as("SELECT state, current_stage, version FROM requests WHERE id = $1")
                    .bind(id.0)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            format!("{row:?}")
        }
        Effect::Assignment(id) => {
            let row: (String, Option<i64>, i64) =
                sqlx::query_as("SELECT state, end_at, version FROM assignments WHERE id = $1")
                    .bind(id.0)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            format!("{row:?}")
        }
        Effect::Tokens => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens").fetch_one(pool).await.unwrap();
            format!("{n} tokens")
        }
        Effect::ServiceAccounts => {
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT display_name FROM users WHERE issuer = 'urn:quartermaster:service-account' ORDER BY id",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            format!("{names:?}")
        }
        Effect::Token(id) => {
            let revoked: Option<i64> = sqlx::query_scalar("SELECT revoked_at FROM api_tokens WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap();
            format!("revoked {}", revoked.is_some())
        }
        Effect::Policies(id) => {
            let names: Vec<String> =
                sqlx::query_scalar("SELECT name FROM policies WHERE package_id = $1 ORDER BY name")
                    .bind(id.0)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            format!("{names:?}")
        }
        Effect::Packages(id) => {
            let names: Vec<String> =
                sqlx::query_scalar("SELECT name FROM access_packages WHERE catalog_id = $1 ORDER BY name")
                    .bind(id.0)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            format!("{names:?}")
        }
        Effect::Policy(id) => {
            let row: (String, i64) = sqlx::query_as("SELECT name, version FROM policies WHERE id = $1")
                .bind(id.0)
                .fetch_one(pool)
                .await
                .unwrap();
            format!("{row:?}")
        }
        Effect::Package(id) => {
            let row: (String, String, i64, i64, i64) =
                sqlx::query_as("SELECT name, description, hidden, enabled, version FROM access_packages WHERE id = $1")
                    .bind(id.0)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            format!("{row:?}")
        }
        Effect::Outbox(id) => {
            let row: (String, i64) = sqlx::query_as("SELECT state, attempts FROM outbox WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap();
            format!("{row:?}")
        }
        Effect::RequestFor(package) => {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM requests WHERE package_id = $1 AND state <> 'rejected'")
                    .bind(package.0)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            format!("{n} requests")
        }
        Effect::Catalog(id) => {
            let row: (String, String, i64, i64, Option<i64>) = sqlx::query_as(
                "SELECT name, description, enabled, externally_visible, deleted_at FROM catalogs WHERE id = $1",
            )
            .bind(id.0)
            .fetch_one(pool)
            .await
            .unwrap();
            format!("{row:?}")
        }
        Effect::CatalogContents(id) => {
            let roles: Vec<(i64, String)> = sqlx::query_as(
                "SELECT user_id, role FROM role_assignments WHERE catalog_id = $1 ORDER BY user_id, role",
            )
            .bind(id.0)
            .fetch_all(pool)
            .await
            .unwrap();
            let resources: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM catalog_resources WHERE catalog_id = $1")
                .bind(id.0)
                .fetch_one(pool)
                .await
                .unwrap();
            format!("{roles:?}, {resources} resources")
        }
        Effect::LiveAssignments(user, package) => {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM assignments WHERE user_id = $1 AND package_id = $2 \
                 AND state IN ('delivering', 'delivered', 'partially_delivered', 'delivery_failed')",
            )
            .bind(user.0)
            .bind(package.0)
            .fetch_one(pool)
            .await
            .unwrap();
            format!("{n} live")
        }
        Effect::Connectors => {
            let systems: Vec<(i64, String, String)> =
                sqlx::query_as("SELECT id, name, config FROM resource_systems ORDER BY id")
                    .fetch_all(pool)
                    .await
                    .unwrap();
            let failed: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, state FROM outbox WHERE state = 'failed' ORDER BY id")
                    .fetch_all(pool)
                    .await
                    .unwrap();
            let imports: Vec<(i64, i64, i64)> =
                sqlx::query_as("SELECT id, system_id, catalog_id FROM group_imports ORDER BY id")
                    .fetch_all(pool)
                    .await
                    .unwrap();
            format!("{systems:?} {failed:?} {imports:?}")
        }
        Effect::Orgs => {
            #[allow(clippy::type_complexity)]
            let orgs: Vec<(i64, String, String, String, Option<i64>, Option<i64>)> = sqlx::query_as(
                "SELECT id, name, domain, state, block_after_days, remove_after_days FROM connected_orgs ORDER BY id",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            let sponsors: Vec<(i64, i64, String)> =
                sqlx::query_as("SELECT org_id, user_id, kind FROM connected_org_sponsors ORDER BY org_id, user_id")
                    .fetch_all(pool)
                    .await
                    .unwrap();
            format!("{orgs:?} {sponsors:?}")
        }
        Effect::Review(id) => {
            let state: String =
                sqlx::query_scalar("SELECT state FROM reviews WHERE id = $1").bind(id).fetch_one(pool).await.unwrap();
            type Item = (i64, Option<String>, Option<String>, Option<i64>);
            let items: Vec<Item> = sqlx::query_as(
                "SELECT id, decision, outcome, applied_at FROM review_items WHERE review_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(pool)
            .await
            .unwrap();
            format!("{state} {items:?}")
        }
        Effect::Deputies => {
            let rows: Vec<(i64, i64, i64, Option<i64>)> =
                sqlx::query_as("SELECT id, user_id, deputy_id, ended_at FROM deputies ORDER BY id")
                    .fetch_all(pool)
                    .await
                    .unwrap();
            format!("{rows:?}")
        }
        Effect::EmailSettings => {
            let on: Vec<(i64, i64, i64)> = sqlx::query_as(
                "SELECT id, CAST(email_optional AS BIGINT), CAST(email_digest AS BIGINT) FROM users ORDER BY id",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            format!("{on:?}")
        }
        Effect::GlobalRoles(user) => {
            let roles: Vec<String> =
                sqlx::query_scalar("SELECT role FROM role_assignments WHERE user_id = $1 AND catalog_id IS NULL")
                    .bind(user.0)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            format!("{roles:?}")
        }
        Effect::Draft(id) => {
            let row: Option<(String, String)> = sqlx::query_as("SELECT step, body FROM package_drafts WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
                .unwrap();
            format!("{row:?}")
        }
        Effect::BulkJobs(package) => {
            format!("{} jobs", count_of(pool, "SELECT COUNT(*) FROM bulk_jobs WHERE package_id = $1", package.0).await)
        }
        Effect::DraftsIn(catalog) => format!(
            "{} drafts",
            count_of(pool, "SELECT COUNT(*) FROM package_drafts WHERE catalog_id = $1", catalog.0).await
        ),
        Effect::Verifications => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_verifications").fetch_one(pool).await.unwrap();
            format!("{n} walks")
        }
        Effect::CatalogsNamed(name) => {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM catalogs WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await
                .unwrap();
            format!("{n} catalogs")
        }
        Effect::Session => {
            let cookie = cookie?;
            let viewer = Call {
                name: "get_viewer".into(),
                path: "/api/get_viewer".into(),
                method: http::Method::POST,
                args: vec![],
                effect: None,
                shows: None,
                body: None,
                bearer: false,
            };
            let reply = send(&bare_client(), &app.base, &viewer, Some(cookie), &same_origin(&app.base)).await;
            assert_eq!(reply.status, 200, "get_viewer: {}", reply.start());
            reply.body
        }
    })
}

/// Events recorded by a person (the workers record theirs as nobody).
async fn audit_by_people(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE actor_id IS NOT NULL")
        .fetch_one(app.service.db().pool())
        .await
        .unwrap()
}

/// Call, and say what it came to (see [`TABLE`]). A refusal that changed something, a
/// malformed call, a rate limit or a server error stop the sweep.
async fn try_call(
    app: &TestApp,
    c: &reqwest::Client,
    call: &Call,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
) -> char {
    let before = match call.effect {
        Some(effect) => state_of(app, effect, cookie).await,
        None => None,
    };
    let reply = send(c, &app.base, call, cookie, headers).await;
    let after = match call.effect {
        Some(effect) => state_of(app, effect, cookie).await,
        None => None,
    };
    let changed = before.is_some().then(|| before != after);
    let get = call.method == http::Method::GET;
    let to_signin = reply.location.as_deref().is_some_and(|l| l.starts_with("/signin"));
    let refused = match reply.status {
        401 | 403 | 404 => true,
        // A page sends who is not signed in to the sign-in page, or shows it in place.
        302 | 303 if get && to_signin => true,
        200 if get && call.path != "/signin" => reply.body.contains("<section class=\"signin\">"),
        _ => false,
    };
    if refused {
        assert_ne!(changed, Some(true), "{}: refused ({}) yet {before:?} became {after:?}", call.name, reply.status);
        return 'D';
    }
    match reply.status {
        409 => 'C',
        400 | 422 => panic!("{}: the sweep sent a malformed call ({}): {}", call.name, reply.status, reply.start()),
        429 => panic!("{}: rate limited: the sweep must stay under the limits", call.name),
        200..=399 => match call.shows {
            Some(mark) => {
                if reply.body.contains(mark) {
                    'A'
                } else {
                    'D'
                }
            }
            None if changed == Some(false) => 'N',
            None => 'A',
        },
        other => panic!("{}: unexpected status {other}: {}", call.name, reply.start()),
    }
}

/// An API token for `user` with every scope a person may give themselves (`admin` only to who
/// holds a role in the admin area); none for someone who may not have one.
async fn api_token(app: &TestApp, user: UserId) -> Option<String> {
    let actor = app.service.actor(user).await.unwrap()?;
    let scopes = if actor.has_admin_area() { "read,request,decide,admin" } else { "read,request,decide" };
    let scopes = quartermaster::domain::token::Scopes::parse(scopes).unwrap();
    let by = quartermaster::service::tokens::TokenBy::Person(&actor);
    app.service.create_token(by, &actor, "sweep", &scopes, 30).await.ok().map(|(_, secret)| secret)
}

/// A REST operation aimed at the sweep's objects: its path, body and what it changes.
fn rest_operation(
    app: &TestApp,
    fx: &Fixtures,
    method: &http::Method,
    path: &str,
) -> (String, Option<serde_json::Value>, Option<Effect>) {
    use serde_json::json;
    let ids = &app.ids;
    let at = |id: i64| path.replace("{id}", &id.to_string());
    match (method.as_str(), path) {
        ("GET", "/api/v1/packages/{id}" | "/api/v1/packages/{id}/settings") => (at(ids.developer_tools.0), None, None),
        ("GET", "/api/v1/catalogs/{id}") => (at(fx.catalog.0), None, None),
        ("GET", "/api/v1/packages/{id}/assignments") => (at(ids.developer_tools.0), None, None),
        ("GET", "/api/v1/people") => (format!("{path}?q=gr"), None, None),
        ("GET", "/api/v1/people/{id}/access") => (at(ids.omar.0), None, None),
        ("GET", "/api/v1/packages/{id}/policies") => (at(ids.developer_tools.0), None, None),
        ("GET", "/api/v1/catalogs/{id}/roles") => (at(fx.catalog.0), None, None),
        ("GET", "/api/v1/organizations/{id}") => (at(fx.org), None, None),
        ("GET", "/api/v1/policies/{id}") => (at(fx.dev_policy.0), None, None),
        ("PUT", "/api/v1/policies/{id}") => {
            (at(fx.dev_policy.0), Some(fx.renamed_policy.clone()), Some(Effect::Policy(fx.dev_policy)))
        }
        ("GET", "/api/v1/catalogs/{id}/resources") => (at(fx.catalog.0), None, None),
        ("GET", "/api/v1/connectors/{id}") => (at(fx.system.0), None, None),
        ("GET", "/api/v1/bulk-assignments/{id}") => (at(fx.bulk_job), None, None),
        ("GET", "/api/v1/drafts/{id}") => (at(fx.draft_read), None, None),
        ("POST", "/api/v1/catalogs/{id}/drafts") => {
            (at(fx.catalog.0), Some(json!({"from": "new"})), Some(Effect::DraftsIn(fx.catalog)))
        }
        ("PUT", "/api/v1/drafts/{id}/steps/{step}") => (
            at(fx.draft_save).replace("{step}", "basics"),
            Some(json!({"fields": {"name": "Sweep Draft", "policy_name": "Everyone"}, "go": "next"})),
            Some(Effect::Draft(fx.draft_save)),
        ),
        ("POST", "/api/v1/drafts/{id}/finish") => {
            (at(fx.draft_finish), Some(json!({})), Some(Effect::Draft(fx.draft_finish)))
        }
        ("DELETE", "/api/v1/drafts/{id}") => (at(fx.draft_discard), None, Some(Effect::Draft(fx.draft_discard))),
        ("POST", "/api/v1/packages/{id}/bulk-assignments") => (
            at(ids.developer_tools.0),
            Some(
                json!({"policy_id": fx.dev_policy.0, "rows": "email\nkai@quartermaster.example\n", "justification": "sweep"}),
            ),
            Some(Effect::BulkJobs(ids.developer_tools)),
        ),
        ("GET", "/api/v1/people/{id}/deputies") => (at(ids.omar.0), None, None),
        ("GET", _) => (path.to_owned(), None, None),
        ("POST", "/api/v1/requests") => (
            path.to_owned(),
            Some(json!({"package_id": ids.sales_analytics.0, "justification": "sweep"})),
            Some(Effect::RequestFor(ids.sales_analytics)),
        ),
        ("POST", "/api/v1/requests/{id}/cancel") => (at(fx.cancel.0), None, Some(Effect::Request(fx.cancel))),
        ("POST", "/api/v1/requests/{id}/decision") => (
            at(fx.decide.0),
            Some(json!({"decision": "approve", "justification": "sweep"})),
            Some(Effect::Request(fx.decide)),
        ),
        ("POST", "/api/v1/catalogs") => (
            path.to_owned(),
            Some(json!({"name": NEW_CATALOG, "description": "sweep"})),
            Some(Effect::CatalogsNamed(NEW_CATALOG)),
        ),
        ("PATCH", "/api/v1/packages/{id}/settings") => (
            at(ids.developer_tools.0),
            Some(json!({"description": "edited by the sweep"})),
            Some(Effect::Package(ids.developer_tools)),
        ),
        ("POST", "/api/v1/packages/{id}/assignments") => (
            at(ids.developer_tools.0),
            // Not Tom, whom the reviews' fixtures assign (the server function finds him removed
            // by an earlier row): Kai does not hold it.
            Some(
                json!({"person": "kai@quartermaster.example", "policy_id": fx.dev_policy.0, "justification": "sweep"}),
            ),
            Some(Effect::LiveAssignments(ids.kai, ids.developer_tools)),
        ),
        ("DELETE", "/api/v1/packages/{id}/assignments/{assignment}") => (
            at(ids.developer_tools.0).replace("{assignment}", &fx.remove.0.to_string()) + "?reason=sweep",
            None,
            Some(Effect::Assignment(fx.remove)),
        ),
        ("PATCH", "/api/v1/catalogs/{id}") => {
            (at(fx.catalog.0), Some(json!({"description": "edited by the sweep"})), Some(Effect::Catalog(fx.catalog)))
        }
        ("DELETE", "/api/v1/catalogs/{id}") => (at(fx.empty.0), None, Some(Effect::Catalog(fx.empty))),
        ("POST", "/api/v1/catalogs/{id}/resources") => (
            at(fx.catalog.0),
            Some(json!({"system_id": fx.builtin.0, "name": "Sweep Resource", "roles": ["Member"]})),
            Some(Effect::CatalogContents(fx.catalog)),
        ),
        ("POST", "/api/v1/assignments/{id}/extend") => {
            (at(fx.extend.0), Some(json!({"justification": "sweep"})), Some(Effect::Assignment(fx.extend)))
        }
        ("DELETE", "/api/v1/assignments/{id}") => (at(fx.give_up.0), None, Some(Effect::Assignment(fx.give_up))),
        ("POST", "/api/v1/catalogs/{id}/roles") => (
            at(fx.catalog.0),
            Some(json!({"person": "tom@quartermaster.example", "role": "catalog_reader"})),
            Some(Effect::CatalogContents(fx.catalog)),
        ),
        ("DELETE", "/api/v1/catalogs/{id}/roles/{person}") => (
            at(fx.catalog.0).replace("{person}", &fx.reader.0.to_string()) + "?role=catalog_reader",
            None,
            Some(Effect::CatalogContents(fx.catalog)),
        ),
        ("POST", "/api/v1/packages/{id}/policies") => {
            let mut added = fx.renamed_policy.clone();
            added["name"] = json!("Added by the sweep");
            (at(ids.developer_tools.0), Some(added), Some(Effect::Policies(ids.developer_tools)))
        }
        ("POST", "/api/v1/catalogs/{id}/packages") => (
            at(fx.catalog.0),
            Some(json!({"name": "Sweep Package", "role_ids": [fx.role.0]})),
            Some(Effect::Packages(fx.catalog)),
        ),
        ("PUT", "/api/v1/me/email-settings") => {
            (path.to_owned(), Some(json!({"optional": true, "digest": true})), Some(Effect::EmailSettings))
        }
        ("POST", "/api/v1/me/deputies") => {
            let until = (chrono::Utc::now() + chrono::Duration::days(30)).format("%Y-%m-%d").to_string();
            (
                path.to_owned(),
                Some(json!({"deputy": "tom@quartermaster.example", "until": until})),
                Some(Effect::Deputies),
            )
        }
        ("DELETE", "/api/v1/me/deputies/{id}") => (at(fx.deputy), None, Some(Effect::Deputies)),
        ("POST", "/api/v1/failed-work/{id}/retry") => (at(fx.retry), None, Some(Effect::Outbox(fx.retry))),
        ("POST", "/api/v1/audit-chain/verify") => (path.to_owned(), None, Some(Effect::Verifications)),
        ("POST", "/api/v1/review-items/{id}/answer") => (
            at(fx.review_item),
            Some(json!({"decision": "keep", "justification": "sweep"})),
            Some(Effect::Review(fx.review)),
        ),
        ("POST", "/api/v1/reviews/{id}/end") => (at(fx.review), None, Some(Effect::Review(fx.review))),
        ("POST", "/api/v1/reviews/{id}/apply") => (at(fx.ended_review), None, Some(Effect::Review(fx.ended_review))),
        ("POST", "/api/v1/organizations") => (
            path.to_owned(),
            Some(json!({"name": "Sweep Partners", "domain": "sweep.example", "configured": true})),
            Some(Effect::Orgs),
        ),
        ("PATCH", "/api/v1/organizations/{id}") => {
            (at(fx.org), Some(json!({"name": "Northwind Renamed"})), Some(Effect::Orgs))
        }
        ("PUT", "/api/v1/organizations/{id}/guest-lifecycle") => {
            (at(fx.org), Some(json!({"block_after_days": 7, "remove_after_days": 30})), Some(Effect::Orgs))
        }
        ("POST", "/api/v1/organizations/{id}/sponsors") => {
            (at(fx.org), Some(json!({"person": "tom@quartermaster.example"})), Some(Effect::Orgs))
        }
        ("DELETE", "/api/v1/organizations/{id}/sponsors/{person}") => {
            (at(fx.org).replace("{person}", &ids.sofia.0.to_string()), None, Some(Effect::Orgs))
        }
        ("POST", "/api/v1/connectors/{id}/test") => (at(fx.system.0), None, None),
        ("POST", "/api/v1/connectors/{id}/retry") => (at(fx.system.0), None, Some(Effect::Connectors)),
        ("POST", "/api/v1/connectors") => (
            path.to_owned(),
            Some(json!({"kind": "webhook", "name": "Sweep Hooks",
                        "settings": {"url": "http://127.0.0.1:9/hooks", "secret": "a sweep secret, long enough"}})),
            Some(Effect::Connectors),
        ),
        ("PUT", "/api/v1/connectors/{id}/settings") => {
            (at(fx.scim.0), Some(json!({"url": "http://127.0.0.1:9/v2", "max_in_flight": 2})), Some(Effect::Connectors))
        }
        ("POST", "/api/v1/connectors/{id}/drift") => (at(fx.system.0), None, None),
        ("POST", "/api/v1/connectors/{id}/drift/repair") => (at(fx.system.0), Some(json!({})), None),
        ("POST", "/api/v1/connectors/{id}/group-imports") => {
            (at(fx.scim.0), Some(json!({"catalog_id": fx.catalog.0})), Some(Effect::Connectors))
        }
        ("PUT", "/api/v1/people/{id}/roles/{role}") => {
            (at(ids.omar.0).replace("{role}", "catalog_creator"), None, Some(Effect::GlobalRoles(ids.omar)))
        }
        ("DELETE", "/api/v1/people/{id}/roles/{role}") => {
            (at(ids.priya.0).replace("{role}", "catalog_creator"), None, Some(Effect::GlobalRoles(ids.priya)))
        }
        ("POST", "/api/v1/people/{id}/deputies") => {
            let until = (chrono::Utc::now() + chrono::Duration::days(30)).format("%Y-%m-%d").to_string();
            (
                at(ids.omar.0),
                Some(json!({"deputy": "tom@quartermaster.example", "until": until})),
                Some(Effect::Deputies),
            )
        }
        ("POST", "/api/v1/decisions") => (
            path.to_owned(),
            Some(json!({"request_ids": [fx.decide_many.0], "decision": "approve", "justification": "sweep"})),
            Some(Effect::Request(fx.decide_many)),
        ),
        ("POST", "/api/v1/me/tokens") => {
            (path.to_owned(), Some(json!({"name": "sweep", "scopes": ["read"], "days": 7})), Some(Effect::Tokens))
        }
        ("DELETE", "/api/v1/tokens/{id}") => (at(fx.token), None, Some(Effect::Token(fx.token))),
        ("POST", "/api/v1/service-accounts") => {
            (path.to_owned(), Some(json!({"name": "Sweep Sync", "purpose": "sweep"})), Some(Effect::ServiceAccounts))
        }
        ("POST", "/api/v1/service-accounts/{id}/tokens") => (
            at(fx.service_account.0),
            Some(json!({"name": "sweep", "scopes": ["read"], "days": 7})),
            Some(Effect::Tokens),
        ),
        _ => panic!("{method} {path}: give the sweep its arguments and what it changes"),
    }
}

fn expected(name: &str) -> &'static str {
    TABLE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, want)| *want)
        .unwrap_or_else(|| panic!("{name} is not in the sweep's table: add what each role may do"))
}

/// The table itself is sound: one row per name, a letter per column, and every row that
/// denies someone allows someone — or says why not, and has a control elsewhere.
fn check_the_table() {
    let mut names = BTreeSet::new();
    for (name, want) in TABLE {
        assert!(names.insert(*name), "{name} is in the table twice");
        assert_eq!(want.len(), ROLES.len(), "{name}: one letter per column");
        assert!(want.chars().all(|c| c == 'A' || c == 'D'), "{name}: A or D only");
        let nobody = !want.contains('A');
        let explained = NOBODY_HERE.iter().any(|(n, _)| n == name);
        assert_eq!(
            nobody, explained,
            "{name}: a row that allows nobody needs an entry in NOBODY_HERE, and only such a row"
        );
    }
}

async fn every_route_and_server_function_by_role(backend: Backend) {
    check_the_table();
    let mut table: BTreeMap<String, String> = BTreeMap::new();
    // Each column in an application of its own: whatever one role changes, the next finds
    // every object as the fixtures made it.
    for column in 0..ROLES.len() {
        let app = spawn_app(backend, false).await;
        let fx = fixtures(&app).await;
        let calls = calls(&app, &fx);
        let cookie = match person(&app.ids, column) {
            Some(user) => Some(app.session_cookie(user).await),
            None => None,
        };
        let c = bare_client();
        let here = same_origin(&app.base);
        for call in calls.iter().filter(|c| !c.bearer) {
            let headers: &[(&str, &str)] = if call.method == http::Method::GET { &[] } else { &here };
            let v = try_call(&app, &c, call, cookie.as_deref(), headers).await;
            table.entry(call.name.clone()).or_default().push(v);
        }
        // The REST API in an application of its own too: the same operations as the server
        // functions, on the same objects as the fixtures made them.
        let app = spawn_app(backend, false).await;
        let fx = fixtures(&app).await;
        let bearer = match person(&app.ids, column) {
            Some(user) => api_token(&app, user).await.map(|secret| format!("Bearer {secret}")),
            None => None,
        };
        let auth: Vec<(&str, &str)> = bearer.iter().map(|b| ("authorization", b.as_str())).collect();
        for call in self::calls(&app, &fx).iter().filter(|c| c.bearer) {
            let v = try_call(&app, &c, call, None, &auth).await;
            table.entry(call.name.clone()).or_default().push(v);
        }
    }

    println!(
        "authorization sweep ({}): A allowed, D denied (C conflict, N answered but changed nothing)",
        backend.name()
    );
    println!("  {:<58} {}", "", HEADINGS.join(" "));
    for (name, row) in &table {
        println!("  {name:<58} {}", row.chars().map(|c| format!("{c:<4}")).collect::<Vec<_>>().join(" "));
    }
    for (name, why) in NOBODY_HERE {
        println!("  {name}: nobody here — {why}");
    }
    let missing: Vec<&str> = TABLE.iter().map(|(n, _)| *n).filter(|n| !table.contains_key(*n)).collect();
    assert!(missing.is_empty(), "rows for routes that are no longer registered: {missing:?}");
    for (name, row) in &table {
        let want = expected(name);
        assert_eq!(row, want, "{name}: got {row}, want {want} ({})", ROLES.join(", "));
    }
}

/// Ways an unsafe request can come from elsewhere, each refused when it carries a session.
const ELSEWHERE: [(&str, &[(&str, &str)]); 6] = [
    ("Origin of another site", &[("origin", "https://evil.example")]),
    ("Sec-Fetch-Site: cross-site", &[("sec-fetch-site", "cross-site")]),
    ("a browser's cross-site form post", &[("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")]),
    ("Sec-Fetch-Site: same-site (a sibling subdomain)", &[("sec-fetch-site", "same-site")]),
    ("Origin: null (a sandboxed frame)", &[("origin", "null")]),
    ("neither Origin nor Sec-Fetch-Site", &[]),
];

async fn unsafe_calls_from_elsewhere_are_refused_and_change_nothing(backend: Backend) {
    // Demo sign-in on, so that it too is a call that would go through from this site.
    let app = spawn_app(backend, true).await;
    let fx = fixtures(&app).await;
    let c = bare_client();
    let unsafe_calls: Vec<Call> = {
        let mut seen = BTreeSet::new();
        // One call per route (the object reads are the same routes).
        // The REST API takes no cookie (a browser sends no API token by itself): nothing to forge.
        calls(&app, &fx)
            .into_iter()
            .filter(|c| c.method != http::Method::GET && !c.bearer && seen.insert(c.path.clone()))
            .collect()
    };
    assert!(unsafe_calls.len() > 15, "only {} unsafe routes found", unsafe_calls.len());
    let mut refused = 0;
    for call in &unsafe_calls {
        // Someone the table allows (nobody for demo sign-in: anyone signed in will do).
        let want = TABLE.iter().find(|(n, _)| *n == call.name).map_or("", |(_, w)| *w);
        let column = (1..ROLES.len()).rev().find(|&i| want.as_bytes().get(i) == Some(&b'A')).unwrap_or(ROLES.len() - 1);
        let user = person(&app.ids, column).unwrap();
        let cookie = app.session_cookie(user).await;
        let people_events = audit_by_people(&app).await;
        let before = match call.effect {
            Some(effect) => state_of(&app, effect, Some(&cookie)).await,
            None => None,
        };
        for (how, headers) in ELSEWHERE {
            let reply = send(&c, &app.base, call, Some(&cookie), headers).await;
            assert_eq!(
                reply.status,
                403,
                "{} as {}, {how}: must be refused: {}",
                call.name,
                ROLES[column],
                reply.start()
            );
            if let Some(effect) = call.effect {
                let after = state_of(&app, effect, Some(&cookie)).await;
                assert_eq!(before, after, "{}, {how}: refused, yet it changed", call.name);
            }
            assert_eq!(
                audit_by_people(&app).await,
                people_events,
                "{}, {how}: refused, yet something was recorded",
                call.name
            );
            refused += 1;
        }
        // The control: from this site, the same call by the same person goes through.
        let v = try_call(&app, &c, call, Some(&cookie), &same_origin(&app.base)).await;
        assert_eq!(
            v, 'A',
            "{} as {}: from this site the call must go through (else the refusals prove nothing)",
            call.name, ROLES[column]
        );
    }
    println!(
        "CSRF sweep ({}): {} unsafe routes × {} ways from elsewhere: {refused} refusals, nothing changed; each allowed from this site",
        backend.name(),
        unsafe_calls.len(),
        ELSEWHERE.len()
    );
}

/// The rows of [`NOBODY_HERE`], allowed where the application is configured for them.
async fn rows_nobody_passes_here_pass_elsewhere(backend: Backend) {
    let controlled = ["/auth/demo", "/auth/login", "/auth/callback", "/metrics"];
    let listed: Vec<&str> = NOBODY_HERE.iter().map(|(n, _)| *n).collect();
    assert_eq!(listed, controlled, "every row in NOBODY_HERE needs its control here");

    // Demo sign-in, on: the same post the sweep sends signs in as the person picked.
    let app = spawn_app(backend, true).await;
    let res = app
        .post(&bare_client(), "/auth/demo")
        .header("sec-fetch-site", "same-origin")
        .form(&[("user_id", app.ids.grace.0.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "demo sign-in with demo on");
    let cookie = session_cookie_of(&res);
    let who = state_of(&app, Effect::Session, Some(&cookie)).await.unwrap();
    assert!(who.contains("grace@quartermaster.example"), "signed in as Grace: {who}");
    println!("control ({}): /auth/demo with demo sign-in on signs in", backend.name());

    // The metrics, with an administrator's token of the metrics scope.
    let grace = app.service.actor(app.ids.grace).await.unwrap().unwrap();
    let scopes = quartermaster::domain::token::Scopes::parse("metrics").unwrap();
    let by = quartermaster::service::tokens::TokenBy::Person(&grace);
    let (_, secret) = app.service.create_token(by, &grace, "scraper", &scopes, 1).await.unwrap();
    let res = bare_client().get(app.url("/metrics")).bearer_auth(secret).send().await.unwrap();
    assert_eq!(res.status(), 200, "/metrics with an administrator's metrics token");
    println!("control ({}): /metrics with an administrator's metrics token", backend.name());

    // OpenID Connect, configured: login sends the browser to the provider, and the callback
    // of a completed login signs in.
    let (app, provider) = app_with_provider(backend).await;
    let c = common::client();
    let base = reqwest::Url::parse(&app.base).unwrap();
    let res = app.get(&c, "/auth/login").await;
    assert_eq!(res.status(), 303, "/auth/login with a provider");
    let url = base.join(res.headers()["location"].to_str().unwrap()).unwrap();
    assert!(url.as_str().starts_with(&provider.issuer), "sent to the provider: {url}");
    let url = provider.log_in(&c, url, &app.base, "alice").await;
    let res = c.get(url).send().await.unwrap();
    assert_eq!(res.status(), 303, "/auth/callback of a completed login: {}", res.text().await.unwrap());
    let viewer: serde_json::Value = app.server_fn(&c, "get_viewer").send().await.unwrap().json().await.unwrap();
    assert_eq!(viewer["email"], "alice@example.test", "signed in through the provider");
    println!("control ({}): /auth/login and /auth/callback with a provider sign in", backend.name());
}

/// The application with an OpenID provider (npm `oidc-provider`, as tests/oidc.rs uses it).
async fn app_with_provider(backend: Backend) -> (TestApp, OidcProvider) {
    // The portal's port is in the provider's redirect URIs: pick it first, and again when
    // another test took it meanwhile.
    for _ in 0..5 {
        let port = free_port();
        let provider = OidcProvider::start(&format!("http://127.0.0.1:{port}")).await;
        let issuer = provider.issuer.clone();
        std::env::set_var("QM_OIDC_CLIENT_SECRET", "test-client-secret");
        let app = try_spawn_app_with(backend, move |args| {
            args.addr = format!("127.0.0.1:{port}").parse().unwrap();
            args.oidc.issuer = Some(issuer);
            args.oidc.client_id = Some("quartermaster".into());
            args.oidc.scopes = vec!["openid".into(), "email".into(), "profile".into()];
            args.oidc.display_name = "Example IdP".into();
            args.oidc.claim_email = "email".into();
            args.oidc.claim_name = "name".into();
            args.oidc.claim_groups = "groups".into();
            args.oidc.claim_department = "department".into();
            args.oidc.claim_job_title = "job_title".into();
            args.oidc.claim_manager = "manager_email".into();
        })
        .await;
        match app {
            Ok(app) => return (app, provider),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => panic!("the portal did not start: {e}"),
        }
    }
    panic!("no free port for the portal after 5 tries");
}
