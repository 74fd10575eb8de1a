//! Catalog management, policy edits against pending requests, escalation, extension, and the
//! authorization table of operations × roles — on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use quartermaster::views::AccessBucket;

use quartermaster::domain::authz::Operator;

use chrono::Duration;
use common::{ask, World};
use quartermaster::domain::authz::Actor;
use quartermaster::domain::clock::Clock;
use quartermaster::domain::ids::*;
use quartermaster::domain::model::Role;
use quartermaster::domain::policy::*;
use quartermaster::domain::request::{Decision, RequestState};
use quartermaster::domain::DomainError;
use quartermaster::service::Incompatible;
use quartermaster::store::{catalog, Backend};

on_both_databases!(
    policy_edits_leave_pending_requests_their_stages,
    disabled_package_cannot_be_approved,
    time_out_escalates_once_then_expires,
    extension_goes_through_approval,
    catalog_management_and_its_audit,
    catalogs_are_deleted_only_unused_and_always_keep_an_owner,
    the_person_picker_finds_active_people_by_email_or_name,
    what_a_person_has_is_explained_line_by_line,
    global_roles_are_given_and_taken_and_an_administrator_stays,
    administrators_browse_the_directory_a_page_at_a_time,
    connected_organizations_and_their_sponsors_are_managed_by_administrators,
    authorization_table_operations_by_role,
    managers_request_for_their_reports_and_dates_are_honoured,
    delivery_checks_again_and_withdraws_stale_access,
    leavers_lose_access_and_stop_approving,
    failed_delivery_rolls_up_and_an_administrator_retries_it,
    one_bad_entry_never_stops_a_pass,
    sign_in_records_linking_and_profile_changes,
    system_operations_need_a_permission,
    an_existing_account_is_linked_only_on_a_verified_email_of_an_allowed_domain,
    provider_claims_set_only_provider_data,
    the_sign_in_gate_admits_members_it_allows_and_guests_of_connected_organizations,
);

async fn delivery_checks_again_and_withdraws_stale_access(backend: Backend) {
    let w = World::new(backend).await;
    // Approved (no approval needed), then the package is disabled before the worker runs.
    let maya = w.actor(w.ids.maya).await;
    let out = w.service.submit_request(&maya, ask(w.ids.developer_tools, "")).await.unwrap();
    assert_eq!(out.state, RequestState::Delivering);
    let linus = w.actor(w.ids.linus).await;
    let mut pkg = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        catalog::package(&mut conn, w.ids.developer_tools).await.unwrap().unwrap()
    };
    pkg.enabled = false;
    w.service.package_manager_of(&linus, pkg.id).await.unwrap().update_package(pkg).await.unwrap();
    let report = w.service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!((report.delivered, report.withdrawn), (0, 2), "{report:?}");
    let r = w.service.my_requests(&maya, None).await.unwrap().items.remove(0);
    assert_eq!(r.state, quartermaster::views::RequestState::DeliveryFailed);
    assert!(r.reason.contains("no longer available"), "{}", r.reason);
    assert_eq!(w.service.my_access(&maya, None).await.unwrap().items[0].bucket, AccessBucket::Ended);
    let held: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM builtin_memberships").fetch_one(w.db().pool()).await.unwrap();
    assert_eq!(held, 0, "nothing was granted");
    // The removals it queued are harmless: nothing to remove.
    w.service.deliver_pending(&Operator::Workers, 50).await.unwrap();
}

async fn managers_request_for_their_reports_and_dates_are_honoured(backend: Backend) {
    let w = World::new(backend).await;
    let linus = w.actor(w.ids.linus).await;
    let mut for_maya = ask(w.ids.developer_tools, "new joiner");
    for_maya.target = Some(w.ids.maya);
    let out = w.service.submit_request(&linus, for_maya).await.unwrap();
    assert_eq!(out.state, RequestState::Delivering);
    let maya = w.actor(w.ids.maya).await;
    let mine = w.service.my_requests(&maya, None).await.unwrap().items;
    assert_eq!((mine[0].requestor.as_str(), mine[0].target.as_str()), ("Linus Park", "Maya Chen"));
    let mut for_jamal = ask(w.ids.developer_tools, "");
    for_jamal.target = Some(w.ids.jamal);
    assert!(
        matches!(w.service.submit_request(&linus, for_jamal).await, Err(DomainError::Forbidden(_))),
        "not his report"
    );

    // Sales Analytics lets the requestor pick dates, within its 30 days.
    let jamal = w.actor(w.ids.jamal).await;
    let now = {
        use quartermaster::domain::clock::Clock;
        w.clock.now()
    };
    let mut dated = ask(w.ids.sales_analytics, "");
    dated.end = Some(now + Duration::days(10));
    w.service.submit_request(&jamal, dated).await.unwrap();
    let a = w.service.my_access(&jamal, None).await.unwrap().items.remove(0);
    assert_eq!(a.end_at, Some((now + Duration::days(10)).timestamp_millis()));
    let mut too_long = ask(w.ids.sales_analytics, "");
    too_long.end = Some(now + Duration::days(40));
    let priya = w.actor(w.ids.priya).await;
    let err = w.service.submit_request(&priya, too_long).await.unwrap_err();
    assert!(matches!(err, DomainError::Invalid { field: Some(ref f), .. } if f == "end"), "{err:?}");
}

async fn policy_of(w: &World, package: PackageId) -> Policy {
    let mut conn = w.db().pool().acquire().await.unwrap();
    catalog::policies_of(&mut conn, &[package]).await.unwrap().remove(0)
}

async fn policy_edits_leave_pending_requests_their_stages(backend: Backend) {
    let w = World::new(backend).await;
    let jamal = w.actor(w.ids.jamal).await;
    let pending = w.service.submit_request(&jamal, ask(w.ids.sales_crm, "")).await.unwrap();
    // The owner adds a second stage (the Finance director).
    let sofia = w.actor(w.ids.sofia).await;
    let mut p = policy_of(&w, w.ids.sales_crm).await;
    p.approval.stages.push(Stage { timeout_days: 5, ..Stage::new(vec![ApproverSpec::User { id: w.ids.elena }]) });
    let sales = w.service.package_manager_of(&sofia, w.ids.sales_crm).await.unwrap();
    sales.update_policy(p.clone()).await.unwrap();
    // A stale edit (old version) is refused.
    let stale = sales.update_policy(p).await.unwrap_err();
    assert!(matches!(stale, DomainError::Stale(_)), "{stale:?}");
    // The pending request keeps its one stage.
    let done = w.service.decide(&sofia, pending.request, Decision::Approve, "").await.unwrap();
    assert_eq!(done.state, RequestState::Delivering);
    // A new request gets both.
    let priya = w.actor(w.ids.priya).await;
    let fresh = w.service.submit_request(&priya, ask(w.ids.sales_crm, "")).await.unwrap();
    let next = w.service.decide(&sofia, fresh.request, Decision::Approve, "").await.unwrap();
    assert_eq!(next.state, RequestState::PendingApproval);
}

async fn disabled_package_cannot_be_approved(backend: Backend) {
    let w = World::new(backend).await;
    let maya = w.actor(w.ids.maya).await;
    let mut r = ask(w.ids.production_access, "incident");
    r.answers = vec![Answer { question_id: "service".into(), value: "Data platform".into() }];
    let out = w.service.submit_request(&maya, r).await.unwrap();
    let linus = w.actor(w.ids.linus).await;
    let mut conn = w.db().pool().acquire().await.unwrap();
    let mut pkg = catalog::package(&mut conn, w.ids.production_access).await.unwrap().unwrap();
    drop(conn);
    pkg.enabled = false;
    w.service.package_manager_of(&linus, pkg.id).await.unwrap().update_package(pkg).await.unwrap();
    let decided = w.service.decide(&linus, out.request, Decision::Approve, "").await.unwrap();
    assert_eq!(decided.state, RequestState::Rejected);
    assert!(decided.message.contains("no longer available"), "{}", decided.message);
    let missing = w.service.submit_request(&maya, ask(w.ids.production_access, "x")).await.unwrap_err();
    assert!(matches!(missing, DomainError::Conflict(_)));
}

async fn time_out_escalates_once_then_expires(backend: Backend) {
    let w = World::new(backend).await;
    let sofia = w.actor(w.ids.sofia).await;
    let mut p = policy_of(&w, w.ids.sales_crm).await;
    p.approval.stages[0].on_timeout = OnTimeout::Escalate;
    p.approval.stages[0].escalation = vec![ApproverSpec::User { id: w.ids.grace }];
    p.approval.stages[0].timeout_days = 2;
    w.service.package_manager_of(&sofia, w.ids.sales_crm).await.unwrap().update_policy(p).await.unwrap();
    let jamal = w.actor(w.ids.jamal).await;
    let out = w.service.submit_request(&jamal, ask(w.ids.sales_crm, "")).await.unwrap();
    let grace = w.actor(w.ids.grace).await;
    assert!(w.service.pending_approvals(&grace, None).await.unwrap().items.is_empty(), "escalation approvers wait");
    w.clock.advance(Duration::days(3));
    assert_eq!(w.service.time_out_stages(&Operator::Workers).await.unwrap(), 1);
    assert_eq!(w.service.pending_approvals(&grace, None).await.unwrap().items.len(), 1, "escalated to Grace");
    assert_eq!(
        w.service.pending_approvals(&sofia, None).await.unwrap().items.len(),
        1,
        "the primary approver can still act"
    );
    w.clock.advance(Duration::days(3));
    assert_eq!(w.service.time_out_stages(&Operator::Workers).await.unwrap(), 1);
    let late = w.service.decide(&grace, out.request, Decision::Approve, "").await.unwrap_err();
    assert!(matches!(late, DomainError::AlreadyDecided(_)));
}

async fn extension_goes_through_approval(backend: Backend) {
    let w = World::new(backend).await;
    let omar = w.actor(w.ids.omar).await;
    let mut r = ask(w.ids.production_access, "on call");
    r.answers = vec![Answer { question_id: "service".into(), value: "Payments API".into() }];
    let out = w.service.submit_request(&omar, r).await.unwrap();
    let linus = w.actor(w.ids.linus).await;
    let hana = w.actor(w.ids.hana).await;
    w.service.decide(&linus, out.request, Decision::Approve, "").await.unwrap();
    w.service.decide(&hana, out.request, Decision::Approve, "ok").await.unwrap();
    w.service.deliver_pending(&Operator::Workers, 10).await.unwrap();
    let a = w.service.my_access(&omar, None).await.unwrap().items.remove(0);
    let first_end = a.end_at.unwrap();

    w.clock.advance(Duration::days(25));
    let ext = w.service.extend_assignment(&omar, AssignmentId(a.id), "rotation continues").await.unwrap();
    assert_eq!(ext.state, RequestState::PendingApproval);
    let twice = w.service.extend_assignment(&omar, AssignmentId(a.id), "again").await.unwrap_err();
    assert!(matches!(twice, DomainError::Conflict(_)));
    w.service.decide(&linus, ext.request, Decision::Approve, "").await.unwrap();
    let done = w.service.decide(&hana, ext.request, Decision::Approve, "fine").await.unwrap();
    assert_eq!(done.state, RequestState::Delivered);
    let extended = w.service.my_access(&omar, None).await.unwrap().items.remove(0);
    assert!(extended.end_at.unwrap() > first_end + 20 * 86_400_000, "extended by the policy's 30 days from now");
    // Developer Tools does not expire and does not allow extension.
    let maya = w.actor(w.ids.maya).await;
    w.service.submit_request(&maya, ask(w.ids.developer_tools, "")).await.unwrap();
    let dev = w.service.my_access(&maya, None).await.unwrap().items.remove(0);
    assert!(matches!(
        w.service.extend_assignment(&maya, AssignmentId(dev.id), "").await,
        Err(DomainError::Forbidden(_))
    ));
}

async fn catalog_management_and_its_audit(backend: Backend) {
    let w = World::new(backend).await;
    let grace = w.actor(w.ids.grace).await;
    let linus = w.actor(w.ids.linus).await;
    // Administrators make catalog creators; creators own what they create.
    w.service.administrator(&grace).unwrap().grant_role(w.ids.omar, Role::CatalogCreator).await.unwrap();
    let omar = w.actor(w.ids.omar).await;
    let creator = w.service.catalog_creator(&omar).unwrap();
    let cat = creator.create_catalog("Data Platform", "Warehouses and pipelines", false).await.unwrap();
    let dup = creator.create_catalog("Data Platform", "", false).await.unwrap_err();
    assert!(matches!(dup, DomainError::Conflict(_)));
    let omar = w.actor(w.ids.omar).await; // now holds catalog_owner for it
    let owner = w.service.catalog_owner(&omar, cat).unwrap();
    let system: i64 =
        sqlx::query_scalar("SELECT id FROM resource_systems LIMIT 1").fetch_one(w.db().pool()).await.unwrap();
    let roles =
        owner.add_resource(ResourceSystemId(system), "Warehouse", "Snowflake", &["Reader", "Writer"]).await.unwrap();
    let stray = owner.create_package("Bad", "", &[w.ids.production_role]).await.unwrap_err();
    assert!(matches!(stray, DomainError::Invalid { .. }), "roles of another catalog are refused");
    let pkg = owner.create_package("Warehouse readers", "Read the warehouse", &[roles[0]]).await.unwrap();
    let mut p = policy_of(&w, w.ids.developer_tools).await;
    p.package_id = pkg;
    p.name = "Engineers".into();
    p.approval.stages = vec![Stage { timeout_days: 3, ..Stage::new(vec![ApproverSpec::CatalogOwners]) }];
    owner.create_policy(p.clone()).await.unwrap();
    let mut bad = p.clone();
    bad.approval.stages[0].timeout_days = 0;
    assert!(matches!(owner.create_policy(bad).await, Err(DomainError::Invalid { .. })));
    assert!(
        matches!(w.service.package_manager_of(&linus, pkg).await, Err(DomainError::NotFound(_))),
        "Linus does not manage that catalog: to him it is not there"
    );
    // His own catalog's handle does not reach into Omar's either.
    let engineering = w.service.package_manager_of(&linus, w.ids.developer_tools).await.unwrap();
    assert!(matches!(engineering.create_policy(p).await, Err(DomainError::NotFound(_))));
    owner.add_incompatibility(pkg, Incompatible::Group(GroupId(2))).await.unwrap(); // Finance
                                                                                    // Maya can request it; Omar (owner) approves.
    let maya = w.actor(w.ids.maya).await;
    let out = w.service.submit_request(&maya, ask(pkg, "analysis")).await.unwrap();
    w.service.decide(&omar, out.request, Decision::Approve, "").await.unwrap();
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id").fetch_all(w.db().pool()).await.unwrap();
    for expected in [
        "role.granted",
        "catalog.created",
        "resource.added",
        "package.created",
        "policy.created",
        "package.incompatibility_added",
        "request.submitted",
        "request.approved",
        "assignment.created",
    ] {
        assert!(actions.iter().any(|a| a == expected), "no {expected} event in {actions:?}");
    }
}

async fn catalogs_are_deleted_only_unused_and_always_keep_an_owner(backend: Backend) {
    use quartermaster::views::CatalogRole;
    let w = World::new(backend).await;
    let grace = w.actor(w.ids.grace).await;
    let sales = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        catalog::package(&mut conn, w.ids.sales_crm).await.unwrap().unwrap().catalog_id
    };
    // Jamal holds Sales CRM: Sales cannot be deleted, and the refusal names the package.
    let jamal = w.actor(w.ids.jamal).await;
    let crm = w.service.submit_request(&jamal, ask(w.ids.sales_crm, "")).await.unwrap();
    let sofia = w.actor(w.ids.sofia).await;
    w.service.decide(&sofia, crm.request, Decision::Approve, "").await.unwrap();
    let owner = w.service.catalog_owner(&sofia, sales).unwrap();
    let refused = owner.delete_catalog().await.unwrap_err();
    match &refused {
        DomainError::Conflict(why) => assert!(why.contains("Sales CRM: 1 live assignment"), "{why}"),
        other => panic!("expected a conflict naming the package, got {other:?}"),
    }
    // Once the access is gone, the catalog goes: out of every list, its packages no longer
    // requestable, its name free again, its history kept.
    let held = w.service.my_access(&jamal, None).await.unwrap().items;
    let crm_assignment = held.iter().find(|a| a.package == "Sales CRM").unwrap().id;
    w.service.give_up_assignment(&jamal, AssignmentId(crm_assignment), "").await.unwrap();
    let as_admin = w.service.catalog_owner(&grace, sales).unwrap();
    as_admin.delete_catalog().await.unwrap();
    let names: Vec<String> =
        w.service.admin_catalogs(&grace).await.unwrap().items.into_iter().map(|c| c.name).collect();
    assert!(!names.iter().any(|n| n.starts_with("Sales")), "{names:?}");
    assert!(matches!(
        w.service.catalog_reader(&grace, sales).unwrap().admin_view().await,
        Err(DomainError::NotFound(_))
    ));
    let refused = w.service.submit_request(&jamal, ask(w.ids.sales_crm, "")).await.unwrap_err();
    assert!(matches!(refused, DomainError::NotFound(_) | DomainError::Conflict(_)), "{refused:?}");
    assert!(!offered(&w, &jamal).await.iter().any(|n| n == "Sales CRM"));
    w.service.catalog_creator(&grace).unwrap().create_catalog("Sales & Marketing", "again", false).await.unwrap();
    let again = as_admin.delete_catalog().await.unwrap_err();
    assert!(matches!(again, DomainError::NotFound(_)), "{again:?}");
    // Nothing in a deleted catalog changes any more, even through a handle made before, and
    // nobody manages it: its roles went with it.
    let mut crm_row = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        catalog::package(&mut conn, w.ids.sales_crm).await.unwrap().unwrap()
    };
    crm_row.enabled = true;
    let refusals = [
        ("edit a package", as_admin.update_package(crm_row).await),
        ("edit a policy", as_admin.update_policy(policy_of(&w, w.ids.sales_crm).await).await),
        ("grant a role", as_admin.grant_role(w.ids.maya, Role::CatalogReader).await),
        ("take a role back", as_admin.revoke_role(w.ids.sofia, CatalogRole::CatalogOwner).await),
    ];
    for (what, refused) in refusals {
        assert!(matches!(refused, Err(DomainError::NotFound(_))), "{what}: {refused:?}");
    }
    let roles_left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM role_assignments WHERE catalog_id = $1")
        .bind(sales.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(roles_left, 0);
    assert!(matches!(w.service.catalog_owner(&w.actor(w.ids.sofia).await, sales), Err(DomainError::NotFound(_))));
    // Its packages are gone with it, for their lists and exports too.
    assert!(matches!(w.service.package_reader(&grace, w.ids.sales_crm).await, Err(DomainError::NotFound(_))));
    let reader = w.service.catalog_reader(&grace, sales).unwrap();
    let filter = quartermaster::views::AssignmentFilter::default();
    assert!(matches!(reader.export_assignments(w.ids.sales_crm, &filter).await, Err(DomainError::NotFound(_))));
    let deleted = count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'catalog.deleted'").await;
    assert_eq!(deleted, 1);

    // Engineering's owner cannot leave it without an owner; with a second owner he can go.
    let eng = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        catalog::package(&mut conn, w.ids.developer_tools).await.unwrap().unwrap().catalog_id
    };
    let linus = w.actor(w.ids.linus).await;
    let engineering = w.service.catalog_owner(&linus, eng).unwrap();
    let owners = |w: &World| {
        let pool = w.db().pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM role_assignments WHERE catalog_id = $1 AND role = 'catalog_owner'",
            )
            .bind(eng.0)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(owners(&w).await, 1, "Linus owns Engineering alone");
    let last = engineering.revoke_role(w.ids.linus, CatalogRole::CatalogOwner).await;
    assert!(matches!(last, Err(DomainError::Conflict(_))), "{last:?}");
    assert_eq!(owners(&w).await, 1, "refused, and nothing changed");
    engineering.grant_role_to("hana@quartermaster.example", CatalogRole::CatalogOwner).await.unwrap();
    engineering.revoke_role(w.ids.linus, CatalogRole::CatalogOwner).await.unwrap();
    let who: Vec<i64> =
        sqlx::query_scalar("SELECT user_id FROM role_assignments WHERE catalog_id = $1 AND role = 'catalog_owner'")
            .bind(eng.0)
            .fetch_all(w.db().pool())
            .await
            .unwrap();
    assert!(!who.contains(&w.ids.linus.0) && !who.is_empty(), "{who:?}");
    // A picker entry that names nobody is a message on the field, and changes nothing.
    let hana = w.actor(w.ids.hana).await;
    let by_hana = w.service.catalog_owner(&hana, eng).unwrap();
    let nobody = by_hana.grant_role_to("nobody@nowhere.example", CatalogRole::CatalogReader).await.unwrap_err();
    assert!(matches!(&nobody, DomainError::Invalid { field: Some(f), .. } if f == "person"), "{nobody:?}");
    let vague = by_hana.grant_role_to("Tom", CatalogRole::CatalogReader).await.unwrap_err();
    assert!(matches!(&vague, DomainError::Invalid { field: Some(f), .. } if f == "person"), "{vague:?}");
}

/// The access explain: each package a person holds, with its catalog, policy, the request (or
/// who assigned it), every stage's decision and the dates; only what the viewer's catalogs hold.
async fn what_a_person_has_is_explained_line_by_line(backend: Backend) {
    let w = World::new(backend).await;
    let grace = w.actor(w.ids.grace).await;
    let (maya, linus, hana) = (w.actor(w.ids.maya).await, w.actor(w.ids.linus).await, w.actor(w.ids.hana).await);
    // Production Access: Linus (her manager) then Security approve, each with a reason.
    let mut prod = ask(w.ids.production_access, "On call");
    prod.answers = vec![Answer { question_id: "service".into(), value: "Payments API".into() }];
    let out = w.service.submit_request(&maya, prod).await.unwrap();
    w.service.decide(&linus, out.request, Decision::Approve, "Rotation confirmed").await.unwrap();
    w.service.decide(&hana, out.request, Decision::Approve, "Security ok").await.unwrap();
    // Sales CRM, assigned directly by Grace.
    let crm_policy = policy_of(&w, w.ids.sales_crm).await.id;
    let sales = w.service.assignment_manager_of(&grace, w.ids.sales_crm).await.unwrap();
    sales.assign_directly(w.ids.maya, w.ids.sales_crm, crm_policy, None, "Pairing with sales").await.unwrap();

    let all = w.service.person_access(&grace, w.ids.maya).await.unwrap();
    assert_eq!(all.person.name, "Maya Chen");
    assert_eq!(all.hidden, 0);
    let line = |name: &str| all.access.iter().find(|a| a.package == name).unwrap_or_else(|| panic!("no {name}"));
    let prod = line("Production Access");
    assert_eq!(prod.catalog, "Engineering");
    assert_eq!(prod.how, "Requested by themselves");
    assert_eq!(prod.request_id, Some(out.request.0));
    let steps: Vec<(i64, &str, &str)> =
        prod.decisions.iter().map(|d| (d.stage, d.approver.as_str(), d.justification.as_str())).collect();
    assert_eq!(steps, [(1, "Linus Park", "Rotation confirmed"), (2, "Hana Sato", "Security ok")]);
    let crm = line("Sales CRM");
    assert_eq!(crm.how, "Assigned directly by Grace Hopper");
    assert_eq!(crm.justification, "Pairing with sales");
    assert!(crm.decisions.is_empty());
    // Sofia owns Sales only: she sees Sales CRM, and that one more line exists elsewhere.
    let sofia = w.actor(w.ids.sofia).await;
    let hers = w.service.person_access(&sofia, w.ids.maya).await.unwrap();
    let shown: Vec<&str> = hers.access.iter().map(|a| a.package.as_str()).collect();
    assert_eq!(shown, ["Sales CRM"]);
    assert_eq!(hers.hidden, all.access.len() - 1);
    // Who manages another catalog is that catalog's business: Grace sees Linus own
    // Engineering, Sofia does not.
    let owner = |a: &quartermaster::views::PersonAccess| a.roles.iter().any(|r| r.contains("Engineering"));
    assert!(owner(&w.service.person_access(&grace, w.ids.linus).await.unwrap()));
    assert!(!owner(&w.service.person_access(&sofia, w.ids.linus).await.unwrap()));
    // A member sees nobody's.
    let omar = w.actor(w.ids.omar).await;
    assert!(matches!(w.service.person_access(&omar, w.ids.maya).await, Err(DomainError::Forbidden(_))));
}

async fn global_roles_are_given_and_taken_and_an_administrator_stays(backend: Backend) {
    let w = World::new(backend).await;
    let grace = w.actor(w.ids.grace).await;
    let admin = w.service.administrator(&grace).unwrap();
    // Grace is the only administrator: she cannot leave the organisation without one.
    let alone = admin.revoke_role(w.ids.grace, Role::Administrator).await;
    assert!(matches!(alone, Err(DomainError::Conflict(_))), "{alone:?}");
    assert!(w.actor(w.ids.grace).await.is_admin(), "refused, and nothing changed");
    // She makes Linus an administrator and Maya a catalog creator, then steps down.
    admin.grant_role(w.ids.linus, Role::Administrator).await.unwrap();
    admin.grant_role(w.ids.maya, Role::CatalogCreator).await.unwrap();
    assert!(w.service.catalog_creator(&w.actor(w.ids.maya).await).is_ok());
    admin.revoke_role(w.ids.grace, Role::Administrator).await.unwrap();
    assert!(!w.actor(w.ids.grace).await.is_admin());
    let linus = w.actor(w.ids.linus).await;
    let by_linus = w.service.administrator(&linus).unwrap();
    by_linus.revoke_role(w.ids.maya, Role::CatalogCreator).await.unwrap();
    assert!(w.service.catalog_creator(&w.actor(w.ids.maya).await).is_err());
    // Not held: not found; a catalog role here: refused by field; a non-administrator: no handle.
    assert!(matches!(by_linus.revoke_role(w.ids.maya, Role::CatalogCreator).await, Err(DomainError::NotFound(_))));
    assert!(matches!(
        by_linus.revoke_role(w.ids.maya, Role::CatalogOwner).await,
        Err(DomainError::Invalid { field: Some(f), .. }) if f == "role"
    ));
    assert!(matches!(w.service.administrator(&w.actor(w.ids.maya).await), Err(DomainError::Forbidden(_))));
    let revoked = count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'role.revoked'").await;
    assert_eq!(revoked, 2);
}

async fn administrators_browse_the_directory_a_page_at_a_time(backend: Backend) {
    let w = World::new(backend).await;
    let now = {
        use quartermaster::domain::clock::Clock;
        w.clock.now().timestamp_millis()
    };
    common::hire(w.db(), "Zoe", 60, w.ids.linus, now).await;
    // Namesakes across a page boundary: the id breaks the tie, none is skipped or repeated.
    let mut conn = w.db().pool().acquire().await.unwrap();
    for i in 0..5 {
        let email = format!("sam{i}@quartermaster.example");
        let sam = quartermaster::store::directory::NewUser {
            email: &email,
            display_name: "Sam Same",
            department: "Engineering",
            job_title: "Engineer",
            manager_id: None,
            kind: quartermaster::domain::model::UserKind::Member,
            connected_org_id: None,
        };
        quartermaster::store::directory::insert_user(&mut conn, &sam, now).await.unwrap();
    }
    drop(conn);
    let grace = w.actor(w.ids.grace).await;
    let mut seen: Vec<(String, i64)> = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let d = w.service.directory(&grace, after.as_deref()).await.unwrap();
        assert!(d.may_browse && d.people.items.len() <= 50);
        seen.extend(d.people.items.iter().map(|p| (p.name.clone(), p.id)));
        pages += 1;
        match d.people.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let active: i64 = count(&w, "SELECT COUNT(*) FROM users WHERE state = 'active'").await;
    assert_eq!(seen.len() as i64, active, "every active person once");
    assert!(pages >= 2, "{pages} pages");
    // In the database's own order (its collation), whatever that is.
    let ordered: Vec<(String, i64)> =
        sqlx::query_as("SELECT display_name, id FROM users WHERE state = 'active' ORDER BY display_name, id")
            .fetch_all(w.db().pool())
            .await
            .unwrap();
    assert_eq!(seen, ordered, "by name, then id, each once");
    let d = w.service.directory(&grace, None).await.unwrap();
    assert!(d.groups.iter().any(|g| g.name == "Finance"), "{:?}", d.groups);
    assert!(matches!(w.service.directory(&grace, Some("zz")).await, Err(DomainError::Invalid { .. })));
    // Engineering's owner searches instead; a member sees nothing.
    let linus = w.actor(w.ids.linus).await;
    let his = w.service.directory(&linus, None).await.unwrap();
    assert!(!his.may_browse && his.people.items.is_empty() && his.groups.is_empty());
    let maya = w.actor(w.ids.maya).await;
    assert!(matches!(w.service.directory(&maya, None).await, Err(DomainError::Forbidden(_))));
}

async fn connected_organizations_and_their_sponsors_are_managed_by_administrators(backend: Backend) {
    let w = World::new(backend).await;
    let grace = w.actor(w.ids.grace).await;
    let admin = w.service.administrator(&grace).unwrap();
    let noah = w.actor(w.ids.noah).await;
    let northwind = noah.user.connected_org_id.unwrap();
    assert!(offered(&w, &noah).await.iter().any(|p| p == "Sales CRM"), "a configured partner's guest is offered it");
    // A bad domain is a message on its field; a taken one a conflict; nothing is added.
    let bad = admin.create_org("Contoso", "not a domain", true).await.unwrap_err();
    assert!(matches!(&bad, DomainError::Invalid { field: Some(f), .. } if f == "domain"), "{bad:?}");
    let taken = admin.create_org("Someone Else", "northwind.example", true).await.unwrap_err();
    assert!(matches!(taken, DomainError::Conflict(_)), "{taken:?}");
    // Our own people's domain (or a parent of it) is never a partner's: new staff would
    // become its guests at sign-in.
    for ours in ["quartermaster.example", "example"] {
        let refused = admin.create_org("Us", ours, true).await.unwrap_err();
        assert!(
            matches!(&refused, DomainError::Invalid { field: Some(f), .. } if f == "domain"),
            "{ours}: {refused:?}"
        );
    }
    for bad in ["a..b", "-x.example", "x.example-", "ex ample.com", "é.example"] {
        assert!(admin.create_org("Bad", bad, true).await.is_err(), "{bad}");
    }
    let contoso = admin.create_org("Contoso", "@Contoso.Example", false).await.unwrap();
    let orgs = admin.connected_orgs().await.unwrap();
    let c = orgs.iter().find(|o| o.id == contoso.0).unwrap();
    assert_eq!((c.domain.as_str(), c.configured), ("contoso.example", false));
    // Northwind proposed again: new guests from its domain are not admitted at sign-in (and
    // policies open to all configured organizations leave its guests out) until it is
    // configured; a policy naming it keeps working, as in the reference.
    let admitted = |w: &World| {
        let pool = w.db().pool().clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            quartermaster::store::directory::configured_org_by_domain(&mut conn, "northwind.example").await.unwrap()
        }
    };
    assert_eq!(admitted(&w).await, Some(northwind));
    admin.update_org(northwind, ("Northwind Partners", "northwind.example", false), None).await.unwrap();
    assert_eq!(admitted(&w).await, None);
    admin.update_org(northwind, ("Northwind Partners", "northwind.example", true), None).await.unwrap();
    assert_eq!(admitted(&w).await, Some(northwind));
    // Its guest signs in with an address in its domain: the domain stays while it has guests.
    let moved = admin.update_org(northwind, ("Northwind Partners", "northwind.test", true), None).await.unwrap_err();
    assert!(matches!(&moved, DomainError::Conflict(why) if why.contains("1 guest")), "{moved:?}");
    assert_eq!(admitted(&w).await, Some(northwind));
    // Sponsors: members inside, the organization's own guests outside.
    admin.add_sponsor(northwind, "tom@quartermaster.example", false).await.unwrap();
    let outsider = admin.add_sponsor(northwind, "maya@quartermaster.example", true).await.unwrap_err();
    assert!(matches!(&outsider, DomainError::Invalid { field: Some(f), .. } if f == "person"), "{outsider:?}");
    admin.add_sponsor(northwind, "noah@northwind.example", true).await.unwrap();
    let again = admin.add_sponsor(northwind, "tom@quartermaster.example", false).await.unwrap_err();
    assert!(matches!(again, DomainError::Conflict(_)), "{again:?}");
    let n = admin.connected_orgs().await.unwrap().into_iter().find(|o| o.id == northwind.0).unwrap();
    assert!(n.sponsors.iter().any(|s| s.name == "Tom Becker" && !s.external), "{:?}", n.sponsors);
    assert!(n.sponsors.iter().any(|s| s.name == "Noah Williams" && s.external), "{:?}", n.sponsors);
    admin.remove_sponsor(northwind, w.ids.tom).await.unwrap();
    assert!(matches!(admin.remove_sponsor(northwind, w.ids.tom).await, Err(DomainError::NotFound(_))));
    let events = count(&w, "SELECT COUNT(*) FROM audit_events WHERE action LIKE 'org.%'").await;
    assert_eq!(events, 6, "created, updated twice, two sponsors added, one removed (refusals record nothing)");
    // Only administrators manage them.
    assert!(w.service.administrator(&w.actor(w.ids.linus).await).is_err());
}

async fn offered(w: &World, who: &Actor) -> Vec<String> {
    w.service.requestable_packages(who, "", None, None).await.unwrap().items.into_iter().map(|c| c.name).collect()
}

async fn the_person_picker_finds_active_people_by_email_or_name(backend: Backend) {
    let w = World::new(backend).await;
    let linus = w.actor(w.ids.linus).await;
    let names =
        |people: Vec<quartermaster::views::PersonOption>| people.into_iter().map(|p| p.name).collect::<Vec<_>>();
    // By the start of the email, of the name as typed, and of the name in lower case.
    assert_eq!(names(w.service.find_people(&linus, "tom@").await.unwrap()), ["Tom Becker"]);
    assert_eq!(names(w.service.find_people(&linus, "Hana").await.unwrap()), ["Hana Sato"]);
    assert_eq!(names(w.service.find_people(&linus, "  hana ").await.unwrap()), ["Hana Sato"]);
    assert!(w.service.find_people(&linus, "").await.unwrap().is_empty());
    assert!(w.service.find_people(&linus, "zzz").await.unwrap().is_empty());
    // A prefix ending in z (whose range end is punctuation in most collations) still finds.
    let now = {
        use quartermaster::domain::clock::Clock;
        w.clock.now().timestamp_millis()
    };
    common::hire(w.db(), "Inez", 1, w.ids.linus, now).await;
    assert_eq!(names(w.service.find_people(&linus, "inez").await.unwrap()), ["Inez 0"]);
    assert_eq!(names(w.service.find_people(&linus, "inez0@quartermaster.exam").await.unwrap()), ["Inez 0"]);
    // Disabled people are not offered.
    let grace = w.actor(w.ids.grace).await;
    w.service.administrator(&grace).unwrap().set_user_active(w.ids.tom, false).await.unwrap();
    assert!(w.service.find_people(&linus, "tom").await.unwrap().is_empty());
    // Only people who give roles or access look others up: not members, not readers.
    let maya = w.actor(w.ids.maya).await;
    assert!(matches!(w.service.find_people(&maya, "tom").await, Err(DomainError::Forbidden(_))));
    let eng = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        catalog::package(&mut conn, w.ids.developer_tools).await.unwrap().unwrap().catalog_id
    };
    w.service.catalog_owner(&grace, eng).unwrap().grant_role(w.ids.maya, Role::CatalogReader).await.unwrap();
    let reader = w.actor(w.ids.maya).await;
    assert!(matches!(w.service.find_people(&reader, "tom").await, Err(DomainError::Forbidden(_))));
}

/// Each operation × each role, through the capability handles: an allowed operation really
/// succeeds (each row starts from the same state), a refused one is forbidden or — for
/// someone who may not even see the catalog — "not found". Nothing else counts.
async fn authorization_table_operations_by_role(backend: Backend) {
    let w = World::new(backend).await;
    let eng: i64 = sqlx::query_scalar("SELECT catalog_id FROM access_packages WHERE id = $1")
        .bind(w.ids.developer_tools.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    let eng = CatalogId(eng);
    let builtin: i64 = sqlx::query_scalar("SELECT id FROM resource_systems WHERE kind = 'builtin'")
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    let grace = w.actor(w.ids.grace).await;
    let as_admin = w.service.catalog_owner(&grace, eng).unwrap();
    as_admin.grant_role(w.ids.jamal, Role::AccessPackageManager).await.unwrap();
    w.service.administrator(&grace).unwrap().grant_role(w.ids.priya, Role::CatalogCreator).await.unwrap();
    let dev_policy = policy_of(&w, w.ids.developer_tools).await.id;
    let live = |user: UserId| {
        let pool = w.db().pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT id FROM assignments WHERE user_id = $1 AND package_id = $2 \
                 AND state IN ('delivering', 'delivered', 'partially_delivered', 'delivery_failed')",
            )
            .bind(user.0)
            .bind(w.ids.developer_tools.0)
            .fetch_optional(&pool)
            .await
            .unwrap()
        }
    };
    // The people: one per role the spec names.
    let roles: [(&str, UserId); 8] = [
        ("member", w.ids.maya),
        ("approver", w.ids.hana),
        ("catalog creator", w.ids.priya),
        ("catalog owner", w.ids.linus),
        ("another catalog's owner", w.ids.sofia),
        ("package manager", w.ids.jamal),
        ("assignment manager", w.ids.lucas),
        ("administrator", w.ids.grace),
    ];
    const OPS: [&str; 10] = [
        "create catalog",
        "grant global role",
        "edit catalog",
        "grant catalog role",
        "add resource",
        "create package",
        "edit package",
        "edit policy",
        "assign directly",
        "remove assignment",
    ];
    let mut table = Vec::new();
    for (name, id) in roles {
        // Every row starts alike: Tom lacks Developer Tools (to be assigned), Elena holds it
        // (to be removed).
        let assign = w.service.assignment_manager(&grace, eng).unwrap();
        if let Some(a) = live(w.ids.tom).await {
            assign.remove_assignment(AssignmentId(a), "reset").await.unwrap();
        }
        if live(w.ids.elena).await.is_none() {
            assign.assign_directly(w.ids.elena, w.ids.developer_tools, dev_policy, None, "reset").await.unwrap();
        }
        let elena = AssignmentId(live(w.ids.elena).await.unwrap());
        let actor: Actor = w.actor(id).await;
        let mut pkg_row = {
            let mut conn = w.db().pool().acquire().await.unwrap();
            catalog::package(&mut conn, w.ids.developer_tools).await.unwrap().unwrap()
        };
        pkg_row.description = format!("edited by {name}");
        let mut catalog_row = {
            let mut conn = w.db().pool().acquire().await.unwrap();
            catalog::catalog(&mut conn, eng).await.unwrap().unwrap()
        };
        catalog_row.description = format!("edited by {name}");
        let s = &w.service;
        let results: [Result<(), DomainError>; 10] = [
            async {
                s.catalog_creator(&actor)?.create_catalog(&format!("Catalog of {name}"), "", false).await.map(|_| ())
            }
            .await,
            async { s.administrator(&actor)?.grant_role(w.ids.omar, Role::CatalogCreator).await }.await,
            async { s.catalog_owner(&actor, eng)?.update_catalog(catalog_row).await }.await,
            async { s.catalog_owner(&actor, eng)?.grant_role(w.ids.omar, Role::CatalogReader).await }.await,
            async {
                let owner = s.catalog_owner(&actor, eng)?;
                owner
                    .add_resource(ResourceSystemId(builtin), &format!("Resource of {name}"), "", &["Member"])
                    .await
                    .map(|_| ())
            }
            .await,
            async {
                let roles = [w.ids.production_role];
                s.package_manager(&actor, eng)?
                    .create_package(&format!("Package of {name}"), "", &roles)
                    .await
                    .map(|_| ())
            }
            .await,
            async { s.package_manager(&actor, eng)?.update_package(pkg_row).await }.await,
            async { s.package_manager(&actor, eng)?.update_policy(policy_of(&w, w.ids.developer_tools).await).await }
                .await,
            async {
                let handle = s.assignment_manager(&actor, eng)?;
                handle.assign_directly(w.ids.tom, w.ids.developer_tools, dev_policy, None, "").await.map(|_| ())
            }
            .await,
            async { s.assignment_manager(&actor, eng)?.remove_assignment(elena, "").await }.await,
        ];
        let row: Vec<char> = results
            .iter()
            .zip(OPS)
            .map(|(r, op)| match r {
                Ok(()) => 'A',
                Err(DomainError::Forbidden(_) | DomainError::NotFound(_)) => 'D',
                Err(other) => panic!("{name}, {op}: neither done nor refused: {other:?}"),
            })
            .collect();
        table.push((name, row));
    }
    //                                     create catalog, grant global role, edit catalog, grant catalog role,
    //                                     add resource, create package, edit package, edit policy, assign, remove
    let expect: [(&str, &str); 8] = [
        ("member", "DDDDDDDDDD"),
        ("approver", "DDDDDDDDDD"),
        ("catalog creator", "ADDDDDDDDD"),
        ("catalog owner", "DDAAAAAAAA"),
        ("another catalog's owner", "DDDDDDDDDD"),
        ("package manager", "DDDDDAAAAA"),
        ("assignment manager", "DDDDDDDDAA"),
        ("administrator", "AAAAAAAAAA"),
    ];
    println!("operation × role ({}): {}", backend.name(), OPS.join(", "));
    for ((name, row), (ename, erow)) in table.iter().zip(expect.iter()) {
        assert_eq!(name, ename);
        let got: String = row.iter().collect();
        println!("  {name:<24} {got}");
        assert_eq!(got, *erow, "{name}");
    }
}

async fn count(w: &World, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(w.db().pool()).await.unwrap()
}

async fn leavers_lose_access_and_stop_approving(backend: Backend) {
    let w = World::new(backend).await;
    let grace = w.actor(w.ids.grace).await;
    let sofia = w.actor(w.ids.sofia).await;
    let jamal = w.actor(w.ids.jamal).await;
    let priya = w.actor(w.ids.priya).await;
    // Sofia holds Sales Analytics, has a request of her own pending, and is the manager who
    // must approve Jamal's and Priya's Sales CRM requests. Hana co-owns the Sales catalog.
    let sales = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        catalog::package(&mut conn, w.ids.sales_crm).await.unwrap().unwrap().catalog_id
    };
    w.service.catalog_owner(&grace, sales).unwrap().grant_role(w.ids.hana, Role::CatalogOwner).await.unwrap();
    w.service.submit_request(&sofia, ask(w.ids.sales_analytics, "")).await.unwrap();
    w.service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    let own = w.service.submit_request(&sofia, ask(w.ids.sales_crm, "")).await.unwrap();
    assert_eq!(own.state, RequestState::PendingApproval);
    let jamals = w.service.submit_request(&jamal, ask(w.ids.sales_crm, "")).await.unwrap();
    let priyas = w.service.submit_request(&priya, ask(w.ids.sales_crm, "")).await.unwrap();
    assert!(!w.service.pending_approvals(&sofia, None).await.unwrap().items.is_empty());

    w.service.administrator(&grace).unwrap().set_user_active(w.ids.sofia, false).await.unwrap();

    // Her own request is canceled, her access ended through the audited path, its removal queued.
    let state = |id: RequestId| {
        let pool = w.db().pool().clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT state FROM requests WHERE id = $1")
                .bind(id.0)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(state(own.request).await, "canceled");
    let ended: Vec<String> = sqlx::query_scalar("SELECT state FROM assignments WHERE user_id = $1")
        .bind(w.ids.sofia.0)
        .fetch_all(w.db().pool())
        .await
        .unwrap();
    assert_eq!(ended, vec!["removed".to_owned()]);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM outbox WHERE kind = 'remove_member'").await, 1);
    w.service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(count(&w, "SELECT COUNT(*) FROM builtin_memberships").await, 0);
    // She is no longer an approver: the stage falls back to the catalog's other owner, Hana.
    let disabled_approvers = count(
        &w,
        "SELECT COUNT(*) FROM request_approvers WHERE user_id IN (SELECT id FROM users WHERE state = 'disabled')",
    )
    .await;
    assert_eq!(disabled_approvers, 0);
    let hana = w.actor(w.ids.hana).await;
    for r in [jamals.request, priyas.request] {
        assert_eq!(state(r).await, "pending_approval");
    }
    assert_eq!(w.service.pending_approvals(&hana, None).await.unwrap().items.len(), 2);
    // When Hana leaves too, nobody is left: the requests expire, with the reason.
    w.service.administrator(&grace).unwrap().set_user_active(w.ids.hana, false).await.unwrap();
    for r in [jamals.request, priyas.request] {
        assert_eq!(state(r).await, "expired");
        let reason: String = sqlx::query_scalar("SELECT outcome_reason FROM requests WHERE id = $1")
            .bind(r.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap();
        assert!(reason.contains("no approver is left"), "{reason}");
    }
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id").fetch_all(w.db().pool()).await.unwrap();
    for expected in ["user.disabled", "request.canceled", "assignment.removed"] {
        assert!(actions.iter().any(|a| a == expected), "no {expected} in {actions:?}");
    }
    // A disabled person is refused at approval and at delivery.
    let grace_assigns = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        catalog::policies_of(&mut conn, &[w.ids.sales_analytics]).await.unwrap()[0].id
    };
    let sales = w.service.assignment_manager_of(&grace, w.ids.sales_analytics).await.unwrap();
    assert!(sales.assign_directly(w.ids.sofia, w.ids.sales_analytics, grace_assigns, None, "").await.is_err());
}

async fn failed_delivery_rolls_up_and_an_administrator_retries_it(backend: Backend) {
    let w = World::new(backend).await;
    let pkg =
        common::package_with_an_unreachable_target(w.db(), quartermaster::domain::clock::Clock::now(&w.clock)).await;
    let jamal = w.actor(w.ids.jamal).await;
    let out = w.service.submit_request(&jamal, ask(pkg, "")).await.unwrap();
    // Attempt after attempt, a day apart, until the last one.
    let mut failed = 0;
    for _ in 0..12 {
        let report = w.service.deliver_pending(&Operator::Workers, 50).await.unwrap();
        failed += report.failed;
        w.clock.advance(Duration::days(1));
    }
    assert_eq!(failed, 1, "the external grant is given up once");
    // The built-in grant was delivered: the request and assignment are partially delivered,
    // with the reason.
    let r = w.service.my_requests(&jamal, None).await.unwrap().items.remove(0);
    assert_eq!(r.id, out.request.0);
    assert_eq!(r.state, quartermaster::views::RequestState::PartiallyDelivered);
    assert!(r.reason.contains("the SCIM system is not configured"), "{}", r.reason);
    let a_state: String = sqlx::query_scalar("SELECT state FROM assignments").fetch_one(w.db().pool()).await.unwrap();
    assert_eq!(a_state, "partially_delivered");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'grant.delivery_failed'").await, 1);
    // The failed work is visible to an administrator and to the catalog's owner, not to others.
    let grace = w.actor(w.ids.grace).await;
    let sofia = w.actor(w.ids.sofia).await;
    let linus = w.actor(w.ids.linus).await;
    let seen = w.service.failed_deliveries(&grace).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].error.contains("the SCIM system is not configured"), "{:?}", seen[0]);
    assert_eq!(w.service.failed_deliveries(&sofia).await.unwrap().len(), 1);
    assert!(w.service.failed_deliveries(&linus).await.unwrap().is_empty());
    assert!(matches!(w.service.retry_delivery(&linus, seen[0].outbox_id).await, Err(DomainError::NotFound(_))));
    // Retried by the owner: back in the queue, audited; a second retry is told it is not failed.
    w.service.retry_delivery(&sofia, seen[0].outbox_id).await.unwrap();
    assert!(matches!(w.service.retry_delivery(&grace, seen[0].outbox_id).await, Err(DomainError::AlreadyDecided(_))));
    assert_eq!(count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'delivery.retried'").await, 1);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").await, 1);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM grants WHERE state = 'pending'").await, 1);
}

async fn one_bad_entry_never_stops_a_pass(backend: Backend) {
    let w = World::new(backend).await;
    let maya = w.actor(w.ids.maya).await;
    let omar = w.actor(w.ids.omar).await;
    w.service.submit_request(&maya, ask(w.ids.developer_tools, "")).await.unwrap();
    w.service.submit_request(&omar, ask(w.ids.developer_tools, "")).await.unwrap();
    // Maya's assignment row is damaged: it cannot be read.
    sqlx::query("UPDATE assignments SET state = 'garbled' WHERE user_id = $1")
        .bind(w.ids.maya.0)
        .execute(w.db().pool())
        .await
        .unwrap();
    let report = w.service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!((report.delivered, report.errors), (2, 2), "Omar's two grants are delivered: {report:?}");
}

async fn sign_in_records_linking_and_profile_changes(backend: Backend) {
    use quartermaster::service::directory::{AdminBootstrap, ProviderIdentity};
    let w = World::new(backend).await;
    let events = |action: &'static str| {
        let pool = w.db().pool().clone();
        async move {
            sqlx::query_as::<_, (String, String)>(
                "SELECT before, after FROM audit_events WHERE action = $1 ORDER BY id",
            )
            .bind(action)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let mut jamal = ProviderIdentity {
        issuer: "https://idp.example".into(),
        subject: "jamal-1".into(),
        email: "jamal@quartermaster.example".into(),
        email_verified: true,
        display_name: "Jamal Carter".into(),
        department: Some("Sales".into()),
        ..Default::default()
    };
    let rules = AdminBootstrap { link_domains: vec!["quartermaster.example".into()], ..Default::default() };
    // First sign-in links the existing person to the provider identity: recorded.
    let id = w.service.sign_in_from_provider(&jamal, &rules).await.unwrap();
    assert_eq!(id, w.ids.jamal);
    assert_eq!(events("user.linked").await.len(), 1);
    assert!(events("user.profile_updated").await.is_empty(), "nothing changed");
    // He moves to Marketing: the change is recorded with before and after.
    jamal.department = Some("Marketing".into());
    w.service.sign_in_from_provider(&jamal, &rules).await.unwrap();
    let changed = events("user.profile_updated").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0], (r#"{"department":"Sales"}"#.to_owned(), r#"{"department":"Marketing"}"#.to_owned()));
    // The move is remembered for access reviews (they recommend removing access given
    // before it), and signing in again with the same claims records nothing more.
    let moved_at = async || -> Option<i64> {
        sqlx::query_scalar("SELECT department_since FROM users WHERE id = $1")
            .bind(w.ids.jamal.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap()
    };
    let moved = moved_at().await;
    assert_eq!(moved, Some(w.clock.now().timestamp_millis()), "the move is dated");
    w.clock.advance(chrono::Duration::days(1));
    w.service.sign_in_from_provider(&jamal, &rules).await.unwrap();
    assert_eq!(events("user.profile_updated").await.len(), 1);
    assert_eq!(moved_at().await, moved, "no move, no new date");
    assert_eq!(events("user.linked").await.len(), 1);
}

async fn system_operations_need_a_permission(backend: Backend) {
    let w = World::new(backend).await;
    let maya = w.actor(w.ids.maya).await;
    let grace = w.actor(w.ids.grace).await;
    let member = Operator::Person(&maya);
    let admin = Operator::Person(&grace);
    assert!(matches!(w.service.deliver_pending(&member, 10).await, Err(DomainError::Forbidden(_))));
    assert!(matches!(w.service.time_out_stages(&member).await, Err(DomainError::Forbidden(_))));
    assert!(matches!(w.service.expire_assignments(&member).await, Err(DomainError::Forbidden(_))));
    assert!(matches!(w.service.verify_audit_chain(&member).await, Err(DomainError::Forbidden(_))));
    w.service.deliver_pending(&admin, 10).await.unwrap();
    w.service.time_out_stages(&admin).await.unwrap();
    w.service.expire_assignments(&admin).await.unwrap();
    w.service.verify_audit_chain(&admin).await.unwrap();
}

async fn an_existing_account_is_linked_only_on_a_verified_email_of_an_allowed_domain(backend: Backend) {
    use quartermaster::service::directory::{AdminBootstrap, ProviderIdentity};
    let w = World::new(backend).await;
    let rules = AdminBootstrap { link_domains: vec!["quartermaster.example".into()], ..Default::default() };
    let at = |subject: &str, email: &str, verified: bool| ProviderIdentity {
        issuer: "https://idp.example".into(),
        subject: subject.into(),
        email: email.into(),
        email_verified: verified,
        display_name: "Someone".into(),
        ..Default::default()
    };
    let refused = || count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'user.link_refused'");
    // Unverified: refused, audited, nothing linked.
    let r = w.service.sign_in_from_provider(&at("x1", "maya@quartermaster.example", false), &rules).await;
    assert!(matches!(r, Err(DomainError::Forbidden(ref why)) if why.contains("did not verify")), "{r:?}");
    assert_eq!(refused().await, 1);
    // A domain the operator did not allow: refused.
    let open = AdminBootstrap::default();
    let r = w.service.sign_in_from_provider(&at("x2", "maya@quartermaster.example", true), &open).await;
    assert!(matches!(r, Err(DomainError::Forbidden(_))), "{r:?}");
    assert_eq!(refused().await, 2);
    let linked: i64 = count(&w, "SELECT COUNT(*) FROM users WHERE issuer IS NOT NULL").await;
    assert_eq!(linked, 0);
    // Verified, allowed, and in another case: linked to Maya, email kept in lower case.
    let id = w.service.sign_in_from_provider(&at("x3", "Maya@QuarterMaster.example", true), &rules).await.unwrap();
    assert_eq!(id, w.ids.maya);
    // Now linked: another identity with the same email is refused (409), audited.
    let r = w.service.sign_in_from_provider(&at("x4", "maya@quartermaster.example", true), &rules).await;
    assert!(matches!(r, Err(DomainError::Conflict(_))), "{r:?}");
    assert_eq!(refused().await, 3);
    // A new person whose email differs only in case from an existing one cannot be created
    // beside it: the lower-case index holds.
    let dup = sqlx::query(
        "INSERT INTO users (email, display_name, created_at, updated_at) VALUES ('OMAR@quartermaster.example', 'x', 0, 0)",
    )
    .execute(w.db().pool())
    .await;
    assert!(dup.is_err_and(|e| quartermaster::store::is_unique_violation(&e)));
    // Nobody signs in on an unverified email (it could be anyone's), unless the operator
    // vouches for the provider's emails.
    let admins = AdminBootstrap { emails: vec!["new@example.test".into()], ..Default::default() };
    let before = count(&w, "SELECT COUNT(*) FROM users").await;
    let r = w.service.sign_in_from_provider(&at("n1", "new@example.test", false), &admins).await;
    assert!(matches!(r, Err(DomainError::Forbidden(ref why)) if why.contains("did not verify")), "{r:?}");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM users").await, before, "nobody created");
    let vouched = AdminBootstrap { trust_provider_emails: true, ..Default::default() };
    let t = w.service.sign_in_from_provider(&at("t1", "trusted@example.test", false), &vouched).await.unwrap();
    assert!(!w.actor(t).await.is_admin());
    let id = w.service.sign_in_from_provider(&at("n1", "new@example.test", true), &admins).await.unwrap();
    assert!(w.actor(id).await.is_admin());
    // Once: an administrator who takes the role away is not overruled at the next sign-in.
    sqlx::query("DELETE FROM role_assignments WHERE user_id = $1").bind(id.0).execute(w.db().pool()).await.unwrap();
    w.service.sign_in_from_provider(&at("n1", "new@example.test", true), &admins).await.unwrap();
    assert!(!w.actor(id).await.is_admin(), "bootstrap by email happens once");
    // By group: while in the group; revoked when the provider no longer sends it.
    let group = AdminBootstrap { group: Some("qm-admins".into()), ..Default::default() };
    let mut g = at("g1", "gina@example.test", true);
    g.groups = Some(vec!["qm-admins".into()]);
    let gina = w.service.sign_in_from_provider(&g, &group).await.unwrap();
    assert!(w.actor(gina).await.is_admin());
    g.groups = Some(vec!["Engineering".into()]);
    w.service.sign_in_from_provider(&g, &group).await.unwrap();
    assert!(!w.actor(gina).await.is_admin(), "left the group: no longer an administrator");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'role.revoked'").await, 1);
    // Back in the group, then an administrator also grants her the role by hand: leaving the
    // group again no longer takes it (it is a person's grant now).
    g.groups = Some(vec!["qm-admins".into()]);
    w.service.sign_in_from_provider(&g, &group).await.unwrap();
    let grace = w.actor(w.ids.grace).await;
    w.service.administrator(&grace).unwrap().grant_role(gina, Role::Administrator).await.unwrap();
    g.groups = Some(vec![]);
    w.service.sign_in_from_provider(&g, &group).await.unwrap();
    assert!(w.actor(gina).await.is_admin(), "a grant by hand outlives the bootstrap");
    // Her provider now sends someone else's email: a conflict (409), not a failure, and
    // nothing about her changes.
    let mut taken = g.clone();
    taken.email = "omar@quartermaster.example".into();
    let r = w.service.sign_in_from_provider(&taken, &group).await;
    assert!(matches!(r, Err(DomainError::Conflict(_))), "{r:?}");
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(gina.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(email, "gina@example.test");
    // One new person signing in from two tabs at once: one person, both sign-ins succeed.
    let twin = at("tw", "twin@example.test", true);
    let open = AdminBootstrap::default();
    let (a, b) =
        tokio::join!(w.service.sign_in_from_provider(&twin, &open), w.service.sign_in_from_provider(&twin, &open));
    assert_eq!(a.unwrap(), b.unwrap());
}

async fn provider_claims_set_only_provider_data(backend: Backend) {
    use quartermaster::service::directory::{AdminBootstrap, ProviderIdentity};
    let w = World::new(backend).await;
    let mut who = ProviderIdentity {
        issuer: "https://idp.example".into(),
        subject: "p1".into(),
        email: "pat@example.test".into(),
        email_verified: true,
        display_name: "Pat".into(),
        manager_email: Some("linus@quartermaster.example".into()),
        // "Finance" is a group kept here (local): a provider claim does not join it.
        groups: Some(vec!["Finance".into(), "idp-only".into()]),
        ..Default::default()
    };
    let id = w.service.sign_in_from_provider(&who, &AdminBootstrap::default()).await.unwrap();
    let groups: Vec<String> = sqlx::query_scalar(
        "SELECT g.name FROM group_members m JOIN directory_groups g ON g.id = m.group_id WHERE m.user_id = $1 ORDER BY 1",
    )
    .bind(id.0)
    .fetch_all(w.db().pool())
    .await
    .unwrap();
    assert_eq!(groups, vec!["idp-only".to_owned()]);
    let manager: Option<i64> = sqlx::query_scalar("SELECT manager_id FROM users WHERE id = $1")
        .bind(id.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(manager, Some(w.ids.linus.0));
    // The provider stops sending the group: the membership goes. It names an unknown manager:
    // reported, and the known one kept.
    who.groups = Some(vec![]);
    who.manager_email = Some("nobody@example.test".into());
    w.service.sign_in_from_provider(&who, &AdminBootstrap::default()).await.unwrap();
    assert_eq!(count(&w, &format!("SELECT COUNT(*) FROM group_members WHERE user_id = {}", id.0)).await, 0);
    let manager: Option<i64> = sqlx::query_scalar("SELECT manager_id FROM users WHERE id = $1")
        .bind(id.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(manager, Some(w.ids.linus.0), "an unknown manager does not clear the known one");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'user.manager_unknown'").await, 1);
}

async fn the_sign_in_gate_admits_members_it_allows_and_guests_of_connected_organizations(backend: Backend) {
    use quartermaster::domain::model::UserKind;
    use quartermaster::service::directory::{AdminBootstrap, ProviderIdentity};
    let w = World::new(backend).await;
    let gate = AdminBootstrap {
        sign_in_domains: vec!["example.test".into()],
        sign_in_group: Some("portal-users".into()),
        group: Some("qm-admins".into()),
        ..Default::default()
    };
    let at = |subject: &str, email: &str, verified: bool, groups: &[&str]| ProviderIdentity {
        issuer: "https://idp.example".into(),
        subject: subject.into(),
        email: email.into(),
        email_verified: verified,
        display_name: "Someone".into(),
        groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
        ..Default::default()
    };
    let people = || count(&w, "SELECT COUNT(*) FROM users");
    let before = people().await;
    let refused = |r: Result<UserId, DomainError>, why: &str| {
        assert!(matches!(r, Err(DomainError::Forbidden(ref m)) if m.contains(why)), "{why}: {r:?}");
    };
    // Another domain, an unverified email, or not in the group: refused, nobody created.
    refused(
        w.service.sign_in_from_provider(&at("a", "ann@other.test", true, &["portal-users"]), &gate).await,
        "domain",
    );
    refused(
        w.service.sign_in_from_provider(&at("b", "ben@example.test", false, &["portal-users"]), &gate).await,
        "verify",
    );
    refused(w.service.sign_in_from_provider(&at("c", "cy@example.test", true, &["Finance"]), &gate).await, "group");
    assert_eq!(people().await, before, "a refused sign-in creates nobody");
    // Positive control: the allowed domain, verified, in the group.
    let dee =
        w.service.sign_in_from_provider(&at("d", "Dee@Example.test", true, &["portal-users"]), &gate).await.unwrap();
    let user = w.actor(dee).await;
    assert_eq!(user.user.kind, UserKind::Member);
    // Dee leaves the group: her next sign-in is refused, and that is on her record.
    refused(w.service.sign_in_from_provider(&at("d", "dee@example.test", true, &[]), &gate).await, "group");
    let on_record = count(
        &w,
        &format!("SELECT COUNT(*) FROM audit_events WHERE action = 'user.sign_in_refused' AND object_id = {}", dee.0),
    )
    .await;
    assert_eq!(on_record, 1);

    // Northwind is a connected organization: its people arrive as its guests, not members,
    // without the members' gate; a guest in the administrators' group is not bootstrapped.
    let org: i64 = sqlx::query_scalar("SELECT id FROM connected_orgs WHERE domain = 'northwind.example'")
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    let gus = at("g", "gus@northwind.example", true, &["qm-admins"]);
    let id = w.service.sign_in_from_provider(&gus, &gate).await.unwrap();
    let guest = w.actor(id).await;
    assert_eq!(guest.user.kind, UserKind::Guest);
    assert_eq!(guest.user.connected_org_id.map(|o| o.0), Some(org));
    assert!(!guest.is_admin(), "guests are never bootstrapped as administrators");
    // A subdomain of the organization's domain is the organization's too.
    let sub = w.service.sign_in_from_provider(&at("s", "sam@EU.northwind.example.", true, &[]), &gate).await.unwrap();
    assert_eq!(w.actor(sub).await.user.connected_org_id.map(|o| o.0), Some(org));
    // An unverified email in the organization's domain is no guest: the members' gate applies.
    refused(w.service.sign_in_from_provider(&at("h", "hal@northwind.example", false, &[]), &gate).await, "verify");
    // The organization is disconnected (proposed again): its guest can no longer sign in.
    sqlx::query("UPDATE connected_orgs SET state = 'proposed' WHERE id = $1")
        .bind(org)
        .execute(w.db().pool())
        .await
        .unwrap();
    refused(w.service.sign_in_from_provider(&gus, &gate).await, "not connected");
}
