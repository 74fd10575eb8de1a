//! Catalog management, policy edits against pending requests, escalation, extension, and the
//! authorization table of operations × roles — on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::Duration;
use common::{ask, World};
use quartermaster::domain::authz::Actor;
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
    authorization_table_operations_by_role,
    managers_request_for_their_reports_and_dates_are_honoured,
    delivery_checks_again_and_withdraws_stale_access,
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
    w.service.update_package(&linus, pkg).await.unwrap();
    let report = w.service.deliver_pending(50).await.unwrap();
    assert_eq!((report.delivered, report.withdrawn), (0, 2), "{report:?}");
    let r = w.service.my_requests(&maya, None).await.unwrap().items.remove(0);
    assert_eq!(r.state, "delivery_failed");
    assert!(r.reason.contains("no longer available"), "{}", r.reason);
    assert_eq!(w.service.my_access(&maya, None).await.unwrap().items[0].bucket, "ended");
    let held: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM builtin_memberships").fetch_one(w.db().pool()).await.unwrap();
    assert_eq!(held, 0, "nothing was granted");
    // The removals it queued are harmless: nothing to remove.
    w.service.deliver_pending(50).await.unwrap();
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
    w.service.update_policy(&sofia, p.clone()).await.unwrap();
    // A stale edit (old version) is refused.
    let stale = w.service.update_policy(&sofia, p).await.unwrap_err();
    assert!(matches!(stale, DomainError::Conflict(_)), "{stale:?}");
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
    w.service.update_package(&linus, pkg).await.unwrap();
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
    w.service.update_policy(&sofia, p).await.unwrap();
    let jamal = w.actor(w.ids.jamal).await;
    let out = w.service.submit_request(&jamal, ask(w.ids.sales_crm, "")).await.unwrap();
    let grace = w.actor(w.ids.grace).await;
    assert!(w.service.pending_approvals(&grace, None).await.unwrap().items.is_empty(), "escalation approvers wait");
    w.clock.advance(Duration::days(3));
    assert_eq!(w.service.time_out_stages().await.unwrap(), 1);
    assert_eq!(w.service.pending_approvals(&grace, None).await.unwrap().items.len(), 1, "escalated to Grace");
    assert_eq!(
        w.service.pending_approvals(&sofia, None).await.unwrap().items.len(),
        1,
        "the primary approver can still act"
    );
    w.clock.advance(Duration::days(3));
    assert_eq!(w.service.time_out_stages().await.unwrap(), 1);
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
    w.service.deliver_pending(10).await.unwrap();
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
    w.service.grant_role(&grace, w.ids.omar, Role::CatalogCreator, None).await.unwrap();
    let omar = w.actor(w.ids.omar).await;
    let cat = w.service.create_catalog(&omar, "Data Platform", "Warehouses and pipelines", false).await.unwrap();
    let dup = w.service.create_catalog(&omar, "Data Platform", "", false).await.unwrap_err();
    assert!(matches!(dup, DomainError::Conflict(_)));
    let omar = w.actor(w.ids.omar).await; // now holds catalog_owner for it
    let system: i64 =
        sqlx::query_scalar("SELECT id FROM resource_systems LIMIT 1").fetch_one(w.db().pool()).await.unwrap();
    let roles = w
        .service
        .add_resource(&omar, cat, ResourceSystemId(system), "Warehouse", "Snowflake", &["Reader", "Writer"])
        .await
        .unwrap();
    let stray = w.service.create_package(&omar, cat, "Bad", "", &[w.ids.production_role]).await.unwrap_err();
    assert!(matches!(stray, DomainError::Invalid { .. }), "roles of another catalog are refused");
    let pkg =
        w.service.create_package(&omar, cat, "Warehouse readers", "Read the warehouse", &[roles[0]]).await.unwrap();
    let mut p = policy_of(&w, w.ids.developer_tools).await;
    p.package_id = pkg;
    p.name = "Engineers".into();
    p.approval.stages = vec![Stage { timeout_days: 3, ..Stage::new(vec![ApproverSpec::CatalogOwners]) }];
    w.service.create_policy(&omar, p.clone()).await.unwrap();
    let mut bad = p.clone();
    bad.approval.stages[0].timeout_days = 0;
    assert!(matches!(w.service.create_policy(&omar, bad).await, Err(DomainError::Invalid { .. })));
    assert!(
        matches!(w.service.create_policy(&linus, p).await, Err(DomainError::Forbidden(_))),
        "Linus does not manage that catalog"
    );
    w.service.add_incompatibility(&omar, pkg, Incompatible::Group(GroupId(2))).await.unwrap(); // Finance
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

/// Each operation × each role: the outcome is allowed (Ok or a business refusal) or
/// forbidden, exactly as the roles say.
async fn authorization_table_operations_by_role(backend: Backend) {
    let w = World::new(backend).await;
    let eng: i64 = sqlx::query_scalar("SELECT catalog_id FROM access_packages WHERE id = $1")
        .bind(w.ids.developer_tools.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    let eng = CatalogId(eng);
    // The people: a plain member, an approver, the catalog's owner, its assignment manager, an administrator.
    let roles: [(&str, UserId); 5] = [
        ("member", w.ids.maya),
        ("approver", w.ids.hana),
        ("catalog owner", w.ids.linus),
        ("assignment manager", w.ids.lucas),
        ("administrator", w.ids.grace),
    ];
    let allowed = |r: &Result<(), DomainError>| !matches!(r, Err(DomainError::Forbidden(_)));
    let mut table = Vec::new();
    for (name, id) in roles {
        let actor: Actor = w.actor(id).await;
        let dev_policy = policy_of(&w, w.ids.developer_tools).await;
        let mut pkg_row = {
            let mut conn = w.db().pool().acquire().await.unwrap();
            catalog::package(&mut conn, w.ids.developer_tools).await.unwrap().unwrap()
        };
        pkg_row.description = format!("edited by {name}");
        let results = [
            (
                "create catalog",
                w.service.create_catalog(&actor, &format!("Catalog of {name}"), "", false).await.map(|_| ()),
            ),
            ("grant catalog role", w.service.grant_role(&actor, w.ids.omar, Role::CatalogReader, Some(eng)).await),
            ("grant global role", w.service.grant_role(&actor, w.ids.omar, Role::CatalogCreator, None).await),
            ("edit package", w.service.update_package(&actor, pkg_row).await),
            ("edit policy", w.service.update_policy(&actor, dev_policy).await),
            (
                "assign directly",
                w.service
                    .assign_directly(
                        &actor,
                        w.ids.tom,
                        w.ids.developer_tools,
                        policy_of(&w, w.ids.developer_tools).await.id,
                        None,
                        "",
                    )
                    .await
                    .map(|_| ()),
            ),
        ];
        let row: Vec<(&str, bool)> = results.iter().map(|(op, r)| (*op, allowed(r))).collect();
        table.push((name, row));
    }
    let expect: [(&str, [bool; 6]); 5] = [
        ("member", [false, false, false, false, false, false]),
        ("approver", [false, false, false, false, false, false]),
        ("catalog owner", [false, true, false, true, true, true]),
        ("assignment manager", [false, false, false, false, false, true]),
        ("administrator", [true, true, true, true, true, true]),
    ];
    println!("operation × role ({}):", backend.name());
    for ((name, row), (ename, erow)) in table.iter().zip(expect.iter()) {
        assert_eq!(name, ename);
        let got: Vec<bool> = row.iter().map(|(_, a)| *a).collect();
        println!(
            "  {name:<20} {}",
            row.iter()
                .map(|(op, a)| format!("{op}: {}", if *a { "allowed" } else { "forbidden" }))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert_eq!(got, erow.to_vec(), "{name}");
    }
}
