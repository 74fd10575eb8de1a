//! The domain engine end to end over real databases: the same suite on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use quartermaster::views::AccessBucket;

use quartermaster::domain::authz::Operator;

use chrono::Duration;
use common::{ask, World};
use quartermaster::domain::audit::GENESIS_HASH;
use quartermaster::domain::clock::Clock;
use quartermaster::domain::ids::*;
use quartermaster::domain::policy::Answer;
use quartermaster::domain::request::{Decision, RequestState};
use quartermaster::domain::DomainError;
use quartermaster::service::{AuditAnchor, ChainCheck, NewRequest};
use quartermaster::store::{assignments, Backend};

on_both_databases!(
    each_walk_of_the_chain_is_recorded_and_the_next_checks_its_head,
    two_stage_request_is_approved_and_delivered,
    deny_ends_the_request_with_the_reason,
    cancel_while_pending_and_late_deciders_are_told,
    nobody_decides_their_own_request,
    refusals_say_why,
    separation_of_duties_rejects_and_names_the_conflict,
    stage_time_out_expires_the_request,
    grants_are_reference_counted,
    direct_assignment_needs_the_catalog_role,
    audit_chain_detects_tampering,
    audit_chain_cannot_fork,
    audit_chain_detects_removal_reordering_and_a_cut_tail,
    a_requested_start_is_honoured,
    waiting_for_approval_does_not_shorten_access,
    an_explicit_end_stays_as_chosen_and_bad_dates_are_refused_by_field,
    a_decision_after_the_due_time_is_refused_as_timed_out,
    an_assignment_past_its_end_cannot_be_extended,
    stored_values_that_cannot_be_decoded_are_errors,
    guests_cannot_reach_packages_of_catalogs_hidden_from_them,
    an_incompatibility_needs_both_catalogs,
    package_pages_are_full_until_the_last,
    my_access_pages_keep_one_order,
    my_requests_pages_hold_what_i_filed_and_what_was_filed_for_me,
    open_work_and_roles_are_read_through_their_indexes,
    catalog_changes_show_on_the_next_page,
    browsing_shows_only_what_may_be_requested,
    the_audit_log_narrows_pages_and_is_for_administrators,
);

fn production(w: &World) -> NewRequest {
    let mut r = ask(w.ids.production_access, "On call next week");
    r.answers = vec![Answer { question_id: "service".into(), value: "Payments API".into() }];
    r
}

/// Names of the packages offered to `who` for a search.
async fn offered(w: &World, who: &quartermaster::domain::authz::Actor, search: &str) -> Vec<String> {
    w.service.requestable_packages(who, search, None, None).await.unwrap().items.into_iter().map(|p| p.name).collect()
}

async fn members(w: &World, role: ResourceRoleId) -> Vec<UserId> {
    let mut conn = w.db().pool().acquire().await.unwrap();
    assignments::builtin_members(&mut conn, role).await.unwrap()
}

async fn two_stage_request_is_approved_and_delivered(backend: Backend) {
    let w = World::new(backend).await;
    let omar = w.actor(w.ids.omar).await;
    let out = w.service.submit_request(&omar, production(&w)).await.unwrap();
    assert_eq!(out.state, RequestState::PendingApproval);

    // Stage 1: Omar's manager. Security cannot act yet.
    let hana = w.actor(w.ids.hana).await;
    assert!(matches!(
        w.service.decide(&hana, out.request, Decision::Approve, "ok").await,
        Err(DomainError::Forbidden(_))
    ));
    let linus = w.actor(w.ids.linus).await;
    assert_eq!(w.service.pending_approvals(&linus, None).await.unwrap().items.len(), 1);
    let s1 = w.service.decide(&linus, out.request, Decision::Approve, "").await.unwrap();
    assert_eq!(s1.state, RequestState::PendingApproval);

    // Stage 2: the Security group, whose stage requires a reason.
    let err = w.service.decide(&hana, out.request, Decision::Approve, " ").await.unwrap_err();
    assert!(matches!(err, DomainError::Invalid { .. }), "{err:?}");
    let s2 = w.service.decide(&hana, out.request, Decision::Approve, "Rotation confirmed").await.unwrap();
    assert_eq!(s2.state, RequestState::Delivering);

    let report = w.service.deliver_pending(&Operator::Workers, 10).await.unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(members(&w, w.ids.production_role).await, vec![w.ids.omar]);
    let mine = w.service.my_requests(&omar, None).await.unwrap().items;
    assert_eq!(mine[0].state, RequestState::Delivered);
    let steps: Vec<_> = mine[0].timeline.iter().map(|s| (s.title.as_str(), s.status.as_str())).collect();
    assert_eq!(
        steps,
        vec![("Submitted", "done"), ("Approval stage 1", "done"), ("Approval stage 2", "done"), ("Delivered", "done")]
    );
    let access = w.service.my_access(&omar, None).await.unwrap().items;
    assert_eq!(access[0].state, quartermaster::views::AssignmentState::Delivered);
    assert!(access[0].end_at.is_some(), "30-day policy sets an end");
    assert!(
        matches!(w.service.verify_audit_chain(&Operator::Workers).await.unwrap(), ChainCheck::Intact { events, .. } if events >= 5)
    );
}

async fn deny_ends_the_request_with_the_reason(backend: Backend) {
    let w = World::new(backend).await;
    let jamal = w.actor(w.ids.jamal).await;
    let out = w.service.submit_request(&jamal, ask(w.ids.sales_crm, "EMEA accounts")).await.unwrap();
    let sofia = w.actor(w.ids.sofia).await;
    let denied = w.service.decide(&sofia, out.request, Decision::Deny, "Use the shared EMEA licence").await.unwrap();
    assert_eq!(denied.state, RequestState::Denied);
    let mine = w.service.my_requests(&jamal, None).await.unwrap().items;
    assert_eq!(mine[0].state, RequestState::Denied);
    assert!(mine[0].timeline.iter().any(|s| s.detail.contains("Use the shared EMEA licence")));
    let again = w.service.decide(&sofia, out.request, Decision::Approve, "").await.unwrap_err();
    assert_eq!(again, DomainError::AlreadyDecided("Sofia Rossi denied this request first".into()));
}

async fn cancel_while_pending_and_late_deciders_are_told(backend: Backend) {
    let w = World::new(backend).await;
    let jamal = w.actor(w.ids.jamal).await;
    let out = w.service.submit_request(&jamal, ask(w.ids.sales_crm, "")).await.unwrap();
    let sofia = w.actor(w.ids.sofia).await;
    assert!(matches!(
        w.service.cancel_request(&sofia, out.request).await,
        Err(DomainError::NotFound(_) | DomainError::Forbidden(_))
    ));
    w.service.cancel_request(&jamal, out.request).await.unwrap();
    let late = w.service.decide(&sofia, out.request, Decision::Approve, "").await.unwrap_err();
    assert_eq!(late, DomainError::AlreadyDecided("the requestor canceled this request".into()));
    assert!(matches!(w.service.cancel_request(&jamal, out.request).await, Err(DomainError::AlreadyDecided(_))));
    // Asking again is allowed once the old request ended.
    w.service.submit_request(&jamal, ask(w.ids.sales_crm, "")).await.unwrap();
}

async fn nobody_decides_their_own_request(backend: Backend) {
    let w = World::new(backend).await;
    // Grace has no manager: her Sales CRM request falls back to the catalog owner, Sofia.
    let grace = w.actor(w.ids.grace).await;
    let out = w.service.submit_request(&grace, ask(w.ids.sales_crm, "Board demo")).await.unwrap();
    assert_eq!(out.state, RequestState::PendingApproval);
    assert!(w.service.pending_approvals(&grace, None).await.unwrap().items.is_empty(), "not offered her own request");
    let forged = w.service.decide(&grace, out.request, Decision::Approve, "").await.unwrap_err();
    assert!(matches!(forged, DomainError::Forbidden(_)), "{forged:?}");
    let sofia = w.actor(w.ids.sofia).await;
    assert_eq!(w.service.pending_approvals(&sofia, None).await.unwrap().items.len(), 1);
    // Someone unrelated learns nothing about the request.
    let tom = w.actor(w.ids.tom).await;
    assert!(matches!(w.service.decide(&tom, out.request, Decision::Approve, "").await, Err(DomainError::NotFound(_))));
}

async fn refusals_say_why(backend: Backend) {
    let w = World::new(backend).await;
    let jamal = w.actor(w.ids.jamal).await;
    let not_eligible = w.service.submit_request(&jamal, production(&w)).await.unwrap_err();
    assert_eq!(not_eligible, DomainError::Forbidden("you are not eligible to request this access package".into()));
    let maya = w.actor(w.ids.maya).await;
    let missing = w.service.submit_request(&maya, ask(w.ids.production_access, "x")).await.unwrap_err();
    assert!(matches!(missing, DomainError::Invalid { field: Some(ref f), .. } if f == "q_service"), "{missing:?}");
    let no_reason = w
        .service
        .submit_request(&maya, {
            let mut r = production(&w);
            r.justification = String::new();
            r
        })
        .await
        .unwrap_err();
    assert!(matches!(no_reason, DomainError::Invalid { field: Some(ref f), .. } if f == "justification"));
    w.service.submit_request(&maya, production(&w)).await.unwrap();
    let pending = w.service.submit_request(&maya, production(&w)).await.unwrap_err();
    assert_eq!(pending, DomainError::Conflict("you already have a request for this access pending".into()));
    let done = w.service.submit_request(&maya, ask(w.ids.developer_tools, "")).await.unwrap();
    assert_eq!(done.state, RequestState::Delivering, "no approval needed");
    let have = w.service.submit_request(&maya, ask(w.ids.developer_tools, "")).await.unwrap_err();
    assert_eq!(have, DomainError::Conflict("you already have this access".into()));
    // The catalog says so too, before anyone clicks.
    let cards = w.service.requestable_packages(&maya, "", None, None).await.unwrap().items;
    let status = |name: &str| cards.iter().find(|c| c.name == name).map(|c| c.status).unwrap();
    use quartermaster::views::PackageStatus;
    assert_eq!(
        (status("Developer Tools"), status("Production Access"), status("Sales CRM")),
        (PackageStatus::Held, PackageStatus::Pending, PackageStatus::Available)
    );
    // Packages offered to Jamal are only those he may request.
    let names = offered(&w, &jamal, "").await;
    assert_eq!(names, vec!["Developer Tools", "Sales Analytics (30 days)", "Sales CRM"]);
    let found = offered(&w, &jamal, "dashboards").await;
    assert_eq!(found, vec!["Sales Analytics (30 days)", "Sales CRM"], "search matches resource names");
    let noah = w.actor(w.ids.noah).await;
    let guest = offered(&w, &noah, "").await;
    assert_eq!(guest, vec!["Sales CRM"], "a partner guest sees only the package its organisation may request");
}

async fn separation_of_duties_rejects_and_names_the_conflict(backend: Backend) {
    let w = World::new(backend).await;
    let tom = w.actor(w.ids.tom).await;
    w.service.submit_request(&tom, ask(w.ids.invoice_processing, "")).await.unwrap();
    let out = w.service.submit_request(&tom, ask(w.ids.payments_approver, "Cover for Elena")).await.unwrap();
    assert_eq!(out.state, RequestState::Rejected);
    assert!(out.message.contains("Invoice Processing"), "{}", out.message);
    // The package's page warns before anyone files.
    let page = w.service.package_detail(&tom, w.ids.payments_approver).await.unwrap();
    assert!(page.sod_warning.as_deref().is_some_and(|s| s.contains("Invoice Processing")), "{:?}", page.sod_warning);
    let mine = w.service.my_requests(&tom, None).await.unwrap().items;
    assert_eq!(mine[0].state, RequestState::Rejected);
    assert!(mine[0].reason.contains("separation of duties"));
}

async fn stage_time_out_expires_the_request(backend: Backend) {
    let w = World::new(backend).await;
    let jamal = w.actor(w.ids.jamal).await;
    let out = w.service.submit_request(&jamal, ask(w.ids.sales_crm, "")).await.unwrap();
    w.clock.advance(Duration::days(6));
    assert_eq!(w.service.time_out_stages(&Operator::Workers).await.unwrap(), 0, "not due yet");
    w.clock.advance(Duration::days(2));
    assert_eq!(w.service.time_out_stages(&Operator::Workers).await.unwrap(), 1);
    let sofia = w.actor(w.ids.sofia).await;
    let late = w.service.decide(&sofia, out.request, Decision::Approve, "").await.unwrap_err();
    assert_eq!(late, DomainError::AlreadyDecided("this request expired: nobody decided in time".into()));
}

async fn grants_are_reference_counted(backend: Backend) {
    let w = World::new(backend).await;
    let priya = w.actor(w.ids.priya).await;
    // Sales Analytics (30 days) and Sales CRM both grant "Sales Dashboards · Viewer".
    w.service.submit_request(&priya, ask(w.ids.sales_analytics, "")).await.unwrap();
    let crm = w.service.submit_request(&priya, ask(w.ids.sales_crm, "")).await.unwrap();
    let sofia = w.actor(w.ids.sofia).await;
    w.service.decide(&sofia, crm.request, Decision::Approve, "").await.unwrap();
    w.service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    let dashboards = w.service.my_access(&priya, None).await.unwrap().items;
    let viewer_role =
        dashboards.iter().flat_map(|a| &a.resources).find(|r| r.resource == "Sales Dashboards").unwrap().id;
    let viewer_role = ResourceRoleId(viewer_role);
    assert_eq!(members(&w, viewer_role).await, vec![w.ids.priya]);

    // The 30-day package expires: the role stays, held through Sales CRM.
    w.clock.advance(Duration::days(31));
    assert_eq!(w.service.expire_assignments(&Operator::Workers).await.unwrap(), 1);
    w.service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(members(&w, viewer_role).await, vec![w.ids.priya]);

    // Giving up Sales CRM takes the last holder away.
    let crm_assignment =
        w.service.my_access(&priya, None).await.unwrap().items.into_iter().find(|a| a.package == "Sales CRM").unwrap();
    w.service.give_up_assignment(&priya, AssignmentId(crm_assignment.id), "no longer needed").await.unwrap();
    w.service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert!(members(&w, viewer_role).await.is_empty());
    let again = w.service.give_up_assignment(&priya, AssignmentId(crm_assignment.id), "").await.unwrap_err();
    assert!(matches!(again, DomainError::AlreadyDecided(_)));
}

async fn direct_assignment_needs_the_catalog_role(backend: Backend) {
    let w = World::new(backend).await;
    let pool = w.db().pool().clone();
    let policies = |pkg| {
        let pool = pool.clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            quartermaster::store::catalog::policies_of(&mut conn, &[pkg]).await.unwrap()[0].id
        }
    };
    let dev_policy = policies(w.ids.developer_tools).await;
    let crm_policy = policies(w.ids.sales_crm).await;
    let maya = w.actor(w.ids.maya).await;
    // Maya holds no role: the catalog is not even there for her.
    let denied = w.service.assignment_manager_of(&maya, w.ids.developer_tools).await.err();
    assert!(matches!(denied, Some(DomainError::NotFound(_))), "{denied:?}");
    let lucas = w.actor(w.ids.lucas).await;
    let engineering = w.service.assignment_manager_of(&lucas, w.ids.developer_tools).await.unwrap();
    let out =
        engineering.assign_directly(w.ids.omar, w.ids.developer_tools, dev_policy, None, "Onboarding").await.unwrap();
    assert_eq!(out.state, RequestState::Delivering);
    // Sales is not his: no handle for it, and his Engineering handle does not reach into it.
    let other_catalog = w.service.assignment_manager_of(&lucas, w.ids.sales_crm).await.err();
    assert!(matches!(other_catalog, Some(DomainError::NotFound(_))), "{other_catalog:?}");
    let reach = engineering.assign_directly(w.ids.omar, w.ids.sales_crm, crm_policy, None, "").await.unwrap_err();
    assert!(matches!(reach, DomainError::NotFound(_)), "{reach:?}");
    let grace = w.actor(w.ids.grace).await;
    let sales = w.service.assignment_manager_of(&grace, w.ids.sales_crm).await.unwrap();
    sales.assign_directly(w.ids.omar, w.ids.sales_crm, crm_policy, None, "").await.unwrap();
    // An administrator's Sales handle reaches into Sales only: every operation on an
    // Engineering object through it is "not found".
    let elsewhere = sales.assign_directly(w.ids.tom, w.ids.developer_tools, dev_policy, None, "").await.unwrap_err();
    assert!(matches!(elsewhere, DomainError::NotFound(_)), "{elsewhere:?}");
    let sales_packages = w.service.package_manager_of(&grace, w.ids.sales_crm).await.unwrap();
    let dev_row = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        quartermaster::store::catalog::package(&mut conn, w.ids.developer_tools).await.unwrap().unwrap()
    };
    let dev_policy_row = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        quartermaster::store::catalog::policies_of(&mut conn, &[w.ids.developer_tools]).await.unwrap().remove(0)
    };
    let omar_dev: i64 = sqlx::query_scalar("SELECT id FROM assignments WHERE user_id = $1 AND package_id = $2")
        .bind(w.ids.omar.0)
        .bind(w.ids.developer_tools.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    let mut new_policy = dev_policy_row.clone();
    new_policy.name = "Reached in".into();
    let reached = [
        ("edit a package", sales_packages.update_package(dev_row).await),
        ("edit a policy", sales_packages.update_policy(dev_policy_row).await),
        ("add a policy", sales_packages.create_policy(new_policy).await.map(|_| ())),
        (
            "add an incompatibility",
            sales_packages
                .add_incompatibility(
                    w.ids.developer_tools,
                    quartermaster::service::Incompatible::Package(w.ids.sales_crm),
                )
                .await,
        ),
        ("remove an assignment", sales.remove_assignment(AssignmentId(omar_dev), "").await),
    ];
    for (what, outcome) in reached {
        assert!(matches!(outcome, Err(DomainError::NotFound(_))), "{what}: {outcome:?}");
    }
}

async fn audit_chain_detects_tampering(backend: Backend) {
    let w = World::new(backend).await;
    let maya = w.actor(w.ids.maya).await;
    w.service.submit_request(&maya, ask(w.ids.developer_tools, "first")).await.unwrap();
    w.service.deliver_pending(&Operator::Workers, 10).await.unwrap();
    let ChainCheck::Intact { events, .. } = w.service.verify_audit_chain(&Operator::Workers).await.unwrap() else {
        panic!("chain broken")
    };
    assert!(events >= 3);
    let second: i64 = sqlx::query_scalar("SELECT id FROM audit_events ORDER BY id LIMIT 1 OFFSET 1")
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET reason = 'nothing to see' WHERE id = $1")
        .bind(second)
        .execute(w.db().pool())
        .await
        .unwrap();
    match w.service.verify_audit_chain(&Operator::Workers).await.unwrap() {
        ChainCheck::Broken { event_id, .. } => assert_eq!(event_id, second),
        other => panic!("tampering not detected: {other:?}"),
    }
}

async fn count(w: &World, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(w.db().pool()).await.unwrap()
}

async fn audit_chain_cannot_fork(backend: Backend) {
    let w = World::new(backend).await;
    let maya = w.actor(w.ids.maya).await;
    w.service.submit_request(&maya, ask(w.ids.developer_tools, "")).await.unwrap();
    let pool = w.db().pool();
    let (head, prev, hash): (i64, String, String) =
        sqlx::query_as("SELECT id, prev_hash, hash FROM audit_events ORDER BY id DESC LIMIT 1")
            .fetch_one(pool)
            .await
            .unwrap();
    let insert = "INSERT INTO audit_events (id, at, action, object_type, object_id, prev_hash, hash) \
                  VALUES ($1, 0, 'forged', 'request', 1, $2, $3)";
    // A second event linking to the same predecessor as an existing one is refused by the
    // database itself, whoever writes it: with an id of its own, with the database's next id,
    // or into a hole in the ids. Only the head's successor goes in.
    let hole: String = sqlx::query_scalar("DELETE FROM audit_events WHERE id = $1 RETURNING prev_hash")
        .bind(head - 1)
        .fetch_one(pool)
        .await
        .unwrap();
    let forks = [
        (Some(head + 1), prev.clone()),
        (None, prev.clone()),
        (Some(head + 2), hash.clone()),
        (Some(head - 1), hole),
        (Some(head + 1), GENESIS_HASH.to_owned()),
    ];
    for (id, links_to) in forks {
        let forked = match id {
            Some(id) => sqlx::query(insert).bind(id).bind(&links_to).bind("forged").execute(pool).await,
            None => {
                sqlx::query(
                    "INSERT INTO audit_events (at, action, object_type, object_id, prev_hash, hash) \
                     VALUES (0, 'forged', 'request', 1, $1, 'forged')",
                )
                .bind(&links_to)
                .execute(pool)
                .await
            }
        };
        assert!(forked.is_err(), "a fork went in at {id:?} after {links_to}");
    }
    assert_eq!(count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'forged'").await, 0);
    // Nor can an event written be moved or relinked: an update would fork the chain as well.
    for rewrite in [
        "UPDATE audit_events SET prev_hash = $1 WHERE id = $2",
        "UPDATE audit_events SET id = 0 WHERE $1 <> '' AND id = $2",
    ] {
        let moved = sqlx::query(rewrite).bind(&hash).bind(head).execute(pool).await;
        assert!(moved.is_err(), "{rewrite}");
    }

    // Two writers that read the same head and each append its successor, outside the chain's
    // lock: exactly one is stored. On PostgreSQL the second waits for the first's row and fails
    // when it commits; on SQLite the second writes after the first has committed.
    let mut first = pool.begin().await.unwrap();
    sqlx::query(insert).bind(head + 1).bind(&hash).bind("first").execute(&mut *first).await.unwrap();
    let second = {
        let pool = pool.clone();
        let (insert, hash) = (insert.to_owned(), hash.clone());
        let go = async move {
            let mut tx = pool.begin().await?;
            sqlx::query(&insert).bind(head + 1).bind(&hash).bind("second").execute(&mut *tx).await?;
            tx.commit().await
        };
        if backend == Backend::Postgres {
            let handle = tokio::spawn(go);
            assert_eq!(crate::race::second_operation(&w, None, &handle).await, crate::race::Second::Blocked);
            first.commit().await.unwrap();
            handle.await.unwrap()
        } else {
            first.commit().await.unwrap();
            go.await
        }
    };
    match second {
        Err(e) if backend == Backend::Postgres => assert!(quartermaster::store::is_unique_violation(&e), "{e}"),
        Err(_) => {}
        Ok(()) => panic!("two successors of one head were stored"),
    }
    let stored: Vec<String> = sqlx::query_scalar("SELECT hash FROM audit_events WHERE id > $1 ORDER BY id")
        .bind(head)
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(stored, ["first"]);
    // The service's appends go on from the head.
    let omar = w.actor(w.ids.omar).await;
    w.service.submit_request(&omar, production(&w)).await.unwrap();
    let next: String = sqlx::query_scalar("SELECT prev_hash FROM audit_events WHERE id = $1")
        .bind(head + 2)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(next, "first");
}

/// An audit event's content columns, as the tampering tests read and write them.
type Event = (i64, Option<i64>, String, String, i64, String, String, String);

/// Each walk of the chain is recorded and shown to administrators; the next walk checks the
/// head the last intact one recorded, so a cut tail is found without an anchor kept by hand.
async fn each_walk_of_the_chain_is_recorded_and_the_next_checks_its_head(backend: Backend) {
    let w = World::new(backend).await;
    let grace = w.actor(w.ids.grace).await;
    let maya = w.actor(w.ids.maya).await;
    assert_eq!(w.service.audit_chain_status(&grace).await.unwrap(), None, "never walked yet");
    w.service.submit_request(&maya, ask(w.ids.developer_tools, "")).await.unwrap();
    let by_grace = Operator::Person(&grace);
    let ChainCheck::Intact { events, head: Some(head) } =
        w.service.verify_and_record_audit_chain(&by_grace).await.unwrap()
    else {
        panic!("chain broken")
    };
    let status = w.service.audit_chain_status(&grace).await.unwrap().unwrap();
    assert!(status.intact && status.events == events as i64 && status.head_id == Some(head.id), "{status:?}");
    assert_eq!(status.by, "Grace Hopper");
    // Only who reads the audit trail walks it or sees the result.
    assert!(matches!(w.service.audit_chain_status(&maya).await, Err(DomainError::Forbidden(_))));
    assert!(matches!(
        w.service.verify_and_record_audit_chain(&Operator::Person(&maya)).await,
        Err(DomainError::Forbidden(_))
    ));
    // The newest events are cut: the chain left is intact by itself, but not the recorded head.
    sqlx::query("DELETE FROM audit_events WHERE id >= $1").bind(head.id).execute(w.db().pool()).await.unwrap();
    match w.service.verify_and_record_audit_chain(&Operator::Workers).await.unwrap() {
        ChainCheck::Broken { event_id, why } => {
            assert_eq!(event_id, head.id);
            assert!(why.contains("tail was cut"), "{why}");
        }
        other => panic!("a cut tail was not found: {other:?}"),
    }
    let status = w.service.audit_chain_status(&grace).await.unwrap().unwrap();
    assert!(!status.intact && status.broken_event_id == Some(head.id), "{status:?}");
    assert_eq!(status.by, "the command line");
}

async fn audit_chain_detects_removal_reordering_and_a_cut_tail(backend: Backend) {
    let w = World::new(backend).await;
    let maya = w.actor(w.ids.maya).await;
    let omar = w.actor(w.ids.omar).await;
    w.service.submit_request(&maya, ask(w.ids.developer_tools, "")).await.unwrap();
    w.service.submit_request(&omar, ask(w.ids.developer_tools, "")).await.unwrap();
    let ChainCheck::Intact { events, head: Some(anchor) } =
        w.service.verify_audit_chain(&Operator::Workers).await.unwrap()
    else {
        panic!("chain broken")
    };
    assert!(events >= 4, "{events}");
    // The anchor prints as ID:HASH and reads back.
    assert_eq!(anchor.to_string().parse::<AuditAnchor>().unwrap(), anchor);
    assert!(matches!(
        w.service.verify_audit_chain_against(&Operator::Workers, Some(&anchor)).await.unwrap(),
        ChainCheck::Intact { .. }
    ));
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM audit_events ORDER BY id").fetch_all(w.db().pool()).await.unwrap();

    // Cutting the tail leaves a chain that is intact by itself: only the anchor catches it.
    sqlx::query("DELETE FROM audit_events WHERE id = $1").bind(anchor.id).execute(w.db().pool()).await.unwrap();
    assert!(matches!(w.service.verify_audit_chain(&Operator::Workers).await.unwrap(), ChainCheck::Intact { .. }));
    match w.service.verify_audit_chain_against(&Operator::Workers, Some(&anchor)).await.unwrap() {
        ChainCheck::Broken { event_id, why } => {
            assert_eq!(event_id, anchor.id);
            assert!(why.contains("tail was cut"), "{why}");
        }
        other => panic!("a cut tail was not detected: {other:?}"),
    }

    // Swapping two events' content (reordering) breaks the chain at the first of them.
    let (a, b) = (ids[1], ids[2]);
    let row = |id: i64| {
        let pool = w.db().pool().clone();
        async move {
            sqlx::query_as::<_, Event>(
                "SELECT at, actor_id, action, object_type, object_id, before, after, reason FROM audit_events WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (ra, rb) = (row(a).await, row(b).await);
    let write = |id: i64, r: &Event| {
        let (pool, r) = (w.db().pool().clone(), r.clone());
        async move {
            sqlx::query(
                "UPDATE audit_events SET at = $1, actor_id = $2, action = $3, object_type = $4, object_id = $5, \
                 before = $6, after = $7, reason = $8 WHERE id = $9",
            )
            .bind(r.0)
            .bind(r.1)
            .bind(r.2)
            .bind(r.3)
            .bind(r.4)
            .bind(r.5)
            .bind(r.6)
            .bind(r.7)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    for (id, r) in [(a, &rb), (b, &ra)] {
        write(id, r).await;
    }
    assert!(
        matches!(w.service.verify_audit_chain(&Operator::Workers).await.unwrap(), ChainCheck::Broken { event_id, .. } if event_id == a)
    );
    // Put them back, then delete one in the middle: the next one no longer links.
    for (id, r) in [(a, &ra), (b, &rb)] {
        write(id, r).await;
    }
    assert!(matches!(w.service.verify_audit_chain(&Operator::Workers).await.unwrap(), ChainCheck::Intact { .. }));
    sqlx::query("DELETE FROM audit_events WHERE id = $1").bind(a).execute(w.db().pool()).await.unwrap();
    match w.service.verify_audit_chain(&Operator::Workers).await.unwrap() {
        ChainCheck::Broken { event_id, why } => {
            assert_eq!(event_id, b);
            assert!(why.contains("different predecessor"), "{why}");
        }
        other => panic!("a removed event was not detected: {other:?}"),
    }
}

/// Sales Analytics: no approval, 30 days, the requestor may pick dates.
fn analytics(w: &World) -> NewRequest {
    ask(w.ids.sales_analytics, "")
}

async fn a_requested_start_is_honoured(backend: Backend) {
    let w = World::new(backend).await;
    let jamal = w.actor(w.ids.jamal).await;
    let start = w.clock.now() + Duration::days(10);
    let mut r = analytics(&w);
    r.start = Some(start);
    w.service.submit_request(&jamal, r).await.unwrap();
    let a = &w.service.my_access(&jamal, None).await.unwrap().items[0];
    assert_eq!(
        (a.start_at, a.end_at),
        (start.timestamp_millis(), Some((start + Duration::days(30)).timestamp_millis()))
    );
    // Nothing is provisioned before the start.
    assert_eq!(w.service.deliver_pending(&Operator::Workers, 50).await.unwrap().delivered, 0);
    w.clock.advance(Duration::days(9));
    assert_eq!(w.service.deliver_pending(&Operator::Workers, 50).await.unwrap().delivered, 0);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM builtin_memberships").await, 0);
    w.clock.advance(Duration::days(1));
    assert_eq!(w.service.deliver_pending(&Operator::Workers, 50).await.unwrap().delivered, 1);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM builtin_memberships").await, 1);
    // The lead time is bounded (90 days by default).
    let omar = w.actor(w.ids.omar).await;
    let mut far = analytics(&w);
    far.start = Some(w.clock.now() + Duration::days(91));
    match w.service.submit_request(&omar, far).await {
        Err(DomainError::Invalid { field: Some(f), message }) => assert_eq!(f, "start", "{message}"),
        other => panic!("a start beyond the lead time was accepted: {other:?}"),
    }
}

async fn waiting_for_approval_does_not_shorten_access(backend: Backend) {
    let w = World::new(backend).await;
    // The partners' policy on Sales CRM: sponsor approval, 90 days of access.
    let partner = w.actor(w.ids.noah).await;
    let sofia = w.actor(w.ids.sofia).await;
    let out = w.service.submit_request(&partner, ask(w.ids.sales_crm, "Joint campaign")).await.unwrap();
    assert_eq!(out.state, RequestState::PendingApproval);
    w.clock.advance(Duration::days(6));
    let approved_at = w.clock.now();
    w.service.decide(&sofia, out.request, Decision::Approve, "ok").await.unwrap();
    let a = &w.service.my_access(&partner, None).await.unwrap().items[0];
    assert_eq!(a.start_at, approved_at.timestamp_millis());
    assert_eq!(a.end_at, Some((approved_at + Duration::days(90)).timestamp_millis()), "90 days from the approval");
}

async fn an_explicit_end_stays_as_chosen_and_bad_dates_are_refused_by_field(backend: Backend) {
    let w = World::new(backend).await;
    let jamal = w.actor(w.ids.jamal).await;
    let now = w.clock.now();
    let field = |r: Result<quartermaster::service::RequestOutcome, DomainError>| match r {
        Err(DomainError::Invalid { field: Some(f), .. }) => f,
        other => panic!("expected a field error, got {other:?}"),
    };
    let mut backwards = analytics(&w);
    backwards.start = Some(now + Duration::days(5));
    backwards.end = Some(now + Duration::days(4));
    assert_eq!(field(w.service.submit_request(&jamal, backwards).await), "end");
    let mut too_long = analytics(&w);
    too_long.end = Some(now + Duration::days(31));
    assert_eq!(field(w.service.submit_request(&jamal, too_long).await), "end");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM requests").await, 0, "refusals store nothing");
    let mut chosen = analytics(&w);
    chosen.end = Some(now + Duration::days(3));
    w.service.submit_request(&jamal, chosen).await.unwrap();
    let a = &w.service.my_access(&jamal, None).await.unwrap().items[0];
    assert_eq!(a.end_at, Some((now + Duration::days(3)).timestamp_millis()));
}

async fn a_decision_after_the_due_time_is_refused_as_timed_out(backend: Backend) {
    let w = World::new(backend).await;
    let jamal = w.actor(w.ids.jamal).await;
    let sofia = w.actor(w.ids.sofia).await;
    let out = w.service.submit_request(&jamal, ask(w.ids.sales_crm, "")).await.unwrap();
    // The stage is due in 7 days; the worker has not run when Sofia decides on day 8.
    w.clock.advance(Duration::days(8));
    match w.service.decide(&sofia, out.request, Decision::Approve, "").await {
        Err(DomainError::AlreadyDecided(why)) => assert!(why.contains("expired"), "{why}"),
        other => panic!("a late approval went through: {other:?}"),
    }
    assert_eq!(count(&w, "SELECT COUNT(*) FROM assignments").await, 0);
    let state: String = sqlx::query_scalar("SELECT state FROM requests WHERE id = $1")
        .bind(out.request.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(state, "expired");
    // A cancel after the due time is told the same.
    let omar = w.actor(w.ids.omar).await;
    let prod = w.service.submit_request(&omar, production(&w)).await.unwrap();
    w.clock.advance(Duration::days(15));
    assert!(matches!(w.service.cancel_request(&omar, prod.request).await, Err(DomainError::AlreadyDecided(_))));
}

async fn an_assignment_past_its_end_cannot_be_extended(backend: Backend) {
    let w = World::new(backend).await;
    // Sales Analytics may be extended without approval.
    w.allow_extension_without_approval(w.ids.sales_analytics).await;
    let jamal = w.actor(w.ids.jamal).await;
    w.service.submit_request(&jamal, analytics(&w)).await.unwrap();
    let id = AssignmentId(w.service.my_access(&jamal, None).await.unwrap().items[0].id);
    // Extending counts from now: 10 days in, the new end is 30 days from today.
    w.clock.advance(Duration::days(10));
    w.service.extend_assignment(&jamal, id, "").await.unwrap();
    let end = w.service.my_access(&jamal, None).await.unwrap().items[0].end_at;
    assert_eq!(end, Some((w.clock.now() + Duration::days(30)).timestamp_millis()));
    // Past the end (the expiry job has not run yet): refused.
    w.clock.advance(Duration::days(31));
    assert!(matches!(w.service.extend_assignment(&jamal, id, "").await, Err(DomainError::AlreadyDecided(_))));
}

async fn stored_values_that_cannot_be_decoded_are_errors(backend: Backend) {
    let w = World::new(backend).await;
    let jamal = w.actor(w.ids.jamal).await;
    let out = w.service.submit_request(&jamal, ask(w.ids.sales_crm, "")).await.unwrap();
    // An unknown state word is not read as some default.
    sqlx::query("UPDATE requests SET state = 'maybe' WHERE id = $1")
        .bind(out.request.0)
        .execute(w.db().pool())
        .await
        .unwrap();
    assert!(matches!(w.service.my_requests(&jamal, None).await, Err(DomainError::Internal(_))));
    // A timestamp out of range is not read as 1970.
    sqlx::query("UPDATE requests SET state = 'pending_approval', created_at = $1 WHERE id = $2")
        .bind(i64::MAX)
        .bind(out.request.0)
        .execute(w.db().pool())
        .await
        .unwrap();
    assert!(matches!(w.service.my_requests(&jamal, None).await, Err(DomainError::Internal(_))));
}

async fn guests_cannot_reach_packages_of_catalogs_hidden_from_them(backend: Backend) {
    let w = World::new(backend).await;
    // An (ill-advised) policy on an Engineering package admits all external users; the
    // Engineering catalog is not visible to them, so a guest with a link still gets nothing.
    let grace = w.actor(w.ids.grace).await;
    let mut open = quartermaster::domain::policy::Policy::new(
        w.ids.developer_tools,
        "Everyone outside",
        quartermaster::domain::policy::RequestorScope::AllExternals,
        vec![],
    );
    open.on_behalf_allowed = false;
    w.service.package_manager_of(&grace, w.ids.developer_tools).await.unwrap().create_policy(open).await.unwrap();
    let noah = w.actor(w.ids.noah).await;
    assert!(matches!(w.service.package_detail(&noah, w.ids.developer_tools).await, Err(DomainError::NotFound(_))));
    assert!(matches!(
        w.service.submit_request(&noah, ask(w.ids.developer_tools, "")).await,
        Err(DomainError::NotFound(_))
    ));
    assert!(!offered(&w, &noah, "").await.contains(&"Developer Tools".to_owned()));
    // The Sales catalog is visible to partners: the same guest opens its package.
    w.service.package_detail(&noah, w.ids.sales_crm).await.unwrap();
}

async fn an_incompatibility_needs_both_catalogs(backend: Backend) {
    use quartermaster::service::Incompatible;
    let w = World::new(backend).await;
    let linus = w.actor(w.ids.linus).await;
    let grace = w.actor(w.ids.grace).await;
    // Linus owns Engineering, not Finance: he cannot bind a Finance package with his rule.
    let engineering = w.service.package_manager_of(&linus, w.ids.developer_tools).await.unwrap();
    let refused =
        engineering.add_incompatibility(w.ids.developer_tools, Incompatible::Package(w.ids.payments_approver)).await;
    assert!(matches!(refused, Err(DomainError::NotFound(_))), "{refused:?}");
    assert!(engineering
        .add_incompatibility(w.ids.developer_tools, Incompatible::Package(w.ids.production_access))
        .await
        .is_ok());
    let as_admin = w.service.package_manager_of(&grace, w.ids.developer_tools).await.unwrap();
    assert!(as_admin
        .add_incompatibility(w.ids.developer_tools, Incompatible::Package(w.ids.payments_approver))
        .await
        .is_ok());
}

/// `n` packages in the catalog of `like`, each with the given policy scope, named `prefix NN`.
async fn packages_in_catalog_of(
    w: &World,
    like: PackageId,
    prefix: &str,
    n: usize,
    policy: impl Fn(PackageId) -> quartermaster::domain::policy::Policy,
) -> Vec<PackageId> {
    let now = w.clock.now().timestamp_millis();
    let mut tx = w.db().begin().await.unwrap();
    let cat = quartermaster::store::catalog::package(&mut tx, like).await.unwrap().unwrap().catalog_id;
    let mut out = Vec::new();
    for i in 0..n {
        let id = quartermaster::store::catalog::insert_package(&mut tx, cat, &format!("{prefix} {i:02}"), "", &[], now)
            .await
            .unwrap();
        quartermaster::store::catalog::insert_policy(&mut tx, &policy(id), now).await.unwrap();
        out.push(id);
    }
    tx.commit().await.unwrap();
    out
}

async fn package_pages_are_full_until_the_last(backend: Backend) {
    use quartermaster::domain::policy::{Policy, RequestorRef, RequestorScope};
    let w = World::new(backend).await;
    let org: i64 = sqlx::query_scalar("SELECT id FROM connected_orgs").fetch_one(w.db().pool()).await.unwrap();
    // Northwind is only proposed: "all external users" policies do not admit its people, though
    // the policy's scope alone cannot tell. Interleave such packages with ones that do admit them.
    sqlx::query("UPDATE connected_orgs SET state = 'proposed'").execute(w.db().pool()).await.unwrap();
    for i in 0..30 {
        packages_in_catalog_of(&w, w.ids.sales_crm, &format!("Partner kit {i:02}a"), 1, |p| {
            Policy::new(p, "Externals", RequestorScope::AllExternals, vec![])
        })
        .await;
        packages_in_catalog_of(&w, w.ids.sales_crm, &format!("Partner kit {i:02}b"), 1, |p| {
            let mut policy = Policy::new(p, "Northwind", RequestorScope::ConnectedOrgs, vec![]);
            policy.requestors = vec![RequestorRef::Org(OrgId(org))];
            policy
        })
        .await;
    }
    let noah = w.actor(w.ids.noah).await;
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = Vec::new();
    loop {
        let page = w.service.requestable_packages(&noah, "Partner kit", None, cursor.as_deref()).await.unwrap();
        pages.push(page.items.len());
        seen.extend(page.items.into_iter().map(|p| p.name));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, vec![24, 6], "every page but the last is full");
    assert!(seen.iter().all(|n| n.ends_with("b 00")), "only packages Noah may request: {seen:?}");
    assert_eq!(seen.iter().collect::<std::collections::HashSet<_>>().len(), 30);
}

/// My requests are those I filed and those filed for me, newest first, a page at a time: each
/// side is read by its own index (`store::requests::of_user`), and the pages must still
/// interleave them as one list, with nobody else's.
async fn my_requests_pages_hold_what_i_filed_and_what_was_filed_for_me(backend: Backend) {
    let w = World::new(backend).await;
    let (maya, linus, omar) = (w.ids.maya, w.ids.linus, w.ids.omar);
    let (package, policy): (i64, i64) = sqlx::query_as("SELECT package_id, id FROM policies ORDER BY id LIMIT 1")
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    // 60 requests between three people in runs of twelve: filed by Maya for Linus, by Linus
    // for her, a mixed run, none of hers, then hers for herself; so a page of hers holds only
    // what she filed, only what was filed for her, or both.
    let pairs = [(maya, linus), (linus, maya), (maya, maya), (omar, linus), (linus, omar), (omar, maya)];
    let mut expected = Vec::new();
    for i in 0..60usize {
        let (requestor, target) = match i / 12 {
            0 => (maya, linus),
            1 => (linus, maya),
            2 => pairs[i % pairs.len()],
            3 => (omar, linus),
            _ => (maya, maya),
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO requests (kind, state, requestor_id, target_user_id, package_id, policy_id, created_at, updated_at) \
             VALUES ('user_add', 'canceled', $1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(requestor.0)
        .bind(target.0)
        .bind(package)
        .bind(policy)
        .bind(1_700_000_000_000_i64 + i as i64)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
        if requestor == maya || target == maya {
            expected.push(id);
        }
    }
    expected.reverse();
    let me = w.actor(maya).await;
    let (mut seen, mut before, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = w.service.my_requests(&me, before).await.unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|r| r.id));
        match page.next {
            Some(next) => before = Some(next.parse::<i64>().unwrap()),
            None => break,
        }
    }
    assert!(expected.len() > 30, "several pages: {}", expected.len());
    assert_eq!(seen, expected, "every request of Maya's once, newest first, and no one else's");
    assert_eq!(pages, expected.len().div_ceil(10), "full pages until the last");
}

async fn my_access_pages_keep_one_order(backend: Backend) {
    use quartermaster::domain::policy::{Policy, RequestorScope};
    use quartermaster::store::assignments::{self as store, NewAssignment};
    let w = World::new(backend).await;
    let packages = packages_in_catalog_of(&w, w.ids.sales_crm, "Bundle", 70, |p| {
        Policy::new(p, "All", RequestorScope::AllMembers, vec![])
    })
    .await;
    let policies: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM policies ORDER BY id DESC LIMIT 70").fetch_all(w.db().pool()).await.unwrap();
    let now = w.clock.now();
    let mut tx = w.db().begin().await.unwrap();
    for (i, (package, policy)) in packages.iter().zip(policies.iter().rev()).enumerate() {
        let a = NewAssignment {
            user: w.ids.jamal,
            package: *package,
            policy: PolicyId(*policy),
            request: None,
            start: now,
            end: None,
        };
        let id = store::insert(&mut tx, &a, now).await.unwrap();
        // Every third one has ended: live and ended interleave by id.
        if i % 3 == 0 {
            store::end_many(&mut tx, &[id], quartermaster::domain::request::AssignmentState::Removed, now)
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
    let jamal = w.actor(w.ids.jamal).await;
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = w.service.my_access(&jamal, cursor).await.unwrap();
        all.extend(page.items.into_iter().map(|a| (a.bucket != AccessBucket::Ended, a.id)));
        match page.next {
            Some(next) => cursor = Some(next.parse::<i64>().unwrap()),
            None => break,
        }
    }
    assert_eq!(all.len(), 70, "no row skipped or repeated");
    let mut expected = all.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(all, expected, "live first, each part newest first, across pages");
}

async fn open_work_and_roles_are_read_through_their_indexes(backend: Backend) {
    let w = World::new(backend).await;
    let plan_of = |sql: String| {
        let pool = w.db().pool().clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            let lines: Vec<String> = match backend {
                Backend::Sqlite => {
                    let rows: Vec<(i64, i64, i64, String)> =
                        sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}")).fetch_all(&mut *conn).await.unwrap();
                    rows.into_iter().map(|r| r.3).collect()
                }
                Backend::Postgres => {
                    // The tables are tiny here; forbid sequential scans to see whether an index
                    // can serve the query at all.
                    sqlx::query("SET enable_seqscan = off").execute(&mut *conn).await.unwrap();
                    sqlx::query_scalar(&format!("EXPLAIN {sql}")).fetch_all(&mut *conn).await.unwrap()
                }
            };
            lines.join("\n")
        }
    };
    let plan = |sql: &'static str| plan_of(sql.to_owned());
    let inbox = plan(
        "SELECT r.id FROM request_approvers a JOIN requests r ON r.id = a.request_id \
         WHERE a.user_id = 5 AND a.active = 1 AND a.request_id > 0 ORDER BY a.request_id LIMIT 51",
    )
    .await;
    assert!(inbox.contains("request_approvers_inbox"), "{inbox}");
    // What people hold, as every query asks it (live states in the same order as the
    // partial index's condition, which SQLite needs to use the index).
    let held = plan_of(format!(
        "SELECT user_id, package_id FROM assignments WHERE state IN {} AND user_id IN (5, 6)",
        assignments::LIVE
    ))
    .await;
    if backend == Backend::Sqlite {
        assert!(held.contains("assignments_one_live"), "{held}");
    }
    // My requests: what I filed and what was filed for me, each side down its own index, and
    // no sort of all my requests (which `target OR requestor` made).
    let mine = plan_of(
        quartermaster::store::requests::of_user_sql().replace("$1", "5").replace("$2", "1000").replace("$3", "11"),
    )
    .await;
    assert!(mine.contains("requests_target") && mine.contains("requests_requestor"), "{mine}");
    if backend == Backend::Sqlite {
        assert!(!mine.contains("MULTI-INDEX OR") && !mine.contains("FOR ORDER BY"), "{mine}");
    }
    let roles = plan("SELECT role, catalog_id FROM role_assignments WHERE user_id = 5").await;
    assert!(roles.contains("role_assignments_user"), "{roles}");
    // Open requests through the partial indexes that hold only them: the stage time-outs, the
    // counts `/metrics` shows, what waits for a decision by package.
    let overdue = plan_of(quartermaster::store::requests::OVERDUE_SQL.replace("$1", "0").replace("$2", "10")).await;
    assert!(overdue.contains("requests_open"), "{overdue}");
    let open = plan(quartermaster::store::gauges::OPEN_REQUESTS_SQL).await;
    assert!(open.contains("requests_open"), "{open}");
    let undecided = plan(
        "SELECT package_id, policy_id, COUNT(*) FROM requests \
         WHERE package_id IN (1, 2) AND state IN ('submitted', 'pending_approval') GROUP BY package_id, policy_id",
    )
    .await;
    assert!(undecided.contains("requests_undecided_by_package"), "{undecided}");
    let under_policy =
        plan_of(quartermaster::store::requests::PENDING_UNDER_POLICY_SQL.replace("$1", "1").replace("$2", "1")).await;
    assert!(under_policy.contains("requests_undecided_by_package"), "{under_policy}");
    if backend == Backend::Sqlite {
        assert!(!under_policy.contains("SCAN"), "{under_policy}");
    }
    // Demo sign-in's people, first by name: read in index order, not sorted from a scan.
    let people = plan("SELECT id FROM users WHERE state = 'active' ORDER BY display_name, id LIMIT 100").await;
    assert!(people.contains("users_active_by_name"), "{people}");
    assert!(!people.contains("TEMP B-TREE") && !people.contains("Sort"), "{people}");
    // The audit log, newest first, by action and by one object: each through its index, in
    // the index's order (no sort of the matching events).
    let audit = |filter: &str| {
        plan_of(format!("SELECT id FROM audit_events WHERE id < 1000 AND {filter} ORDER BY id DESC LIMIT 51"))
    };
    for (filter, index) in [
        ("action = 'request.approved'", "audit_events_action"),
        ("object_type = 'request' AND object_id = 5", "audit_events_object"),
        ("actor_id = 5", "audit_events_actor"),
        ("object_type = 'catalog'", "audit_events_type"),
    ] {
        let used = audit(filter).await;
        // On the test's near-empty table PostgreSQL may as well read the kind-of-object index
        // and check the id on each row (both read in order); with a real table's statistics it
        // takes the object's own.
        let also = backend == Backend::Postgres && index == "audit_events_object" && used.contains("audit_events_type");
        assert!(used.contains(index) || also, "{filter}: {used}");
        assert!(!used.contains("TEMP B-TREE") && !used.contains("Sort"), "{filter}: {used}");
    }
    // Days: the range's ends found through the time index, then its ids read in order.
    let edge = plan("SELECT id FROM audit_events WHERE at < 5000 ORDER BY at DESC, id DESC LIMIT 1").await;
    assert!(edge.contains("audit_events_at"), "{edge}");
    assert!(!edge.contains("TEMP B-TREE") && !edge.contains("Sort"), "{edge}");
    let by_day = audit("id > 10 AND +at >= 1000 AND +at < 2000").await;
    assert!(!by_day.contains("TEMP B-TREE") && !by_day.contains("Sort"), "{by_day}");
}

/// Pages read the catalog from the instance's kept snapshot. A change committed by anyone,
/// through the service or straight in the database as another instance would, shows on the
/// next page: packages, their resource roles, their policies, and the group names of rules.
async fn catalog_changes_show_on_the_next_page(backend: Backend) {
    let w = World::new(backend).await;
    let omar = w.actor(w.ids.omar).await;
    let pool = w.db().pool();
    // A change straight in the database, its parameters all ids.
    let change = async |sql: &str, ids: &[i64]| {
        ids.iter().fold(sqlx::query(sql), |q, id| q.bind(*id)).execute(pool).await.unwrap();
    };
    let package = w.ids.developer_tools;
    let before = w.service.package_detail(&omar, package).await.unwrap();
    assert_eq!(before.card.name, "Developer Tools");
    change("UPDATE access_packages SET name = 'Developer Tools (2027)' WHERE id = $1", &[package.0]).await;
    let renamed = w.service.package_detail(&omar, package).await.unwrap();
    assert_eq!(renamed.card.name, "Developer Tools (2027)");
    let dropped = before.card.resources[0].id;
    change("DELETE FROM package_resource_roles WHERE package_id = $1 AND resource_role_id = $2", &[package.0, dropped])
        .await;
    let fewer = w.service.package_detail(&omar, package).await.unwrap();
    assert_eq!(fewer.card.resources.len(), before.card.resources.len() - 1);
    assert!(fewer.card.resources.iter().all(|r| r.id != dropped));
    // A rule against a group: its name shows in the warning, and a rename shows too.
    let grace = w.actor(w.ids.grace).await;
    let group: i64 = sqlx::query_scalar("SELECT group_id FROM group_members WHERE user_id = $1 LIMIT 1")
        .bind(w.ids.omar.0)
        .fetch_one(pool)
        .await
        .unwrap();
    change("INSERT INTO package_incompatible_groups (package_id, group_id) VALUES ($1, $2)", &[package.0, group]).await;
    change("UPDATE directory_groups SET name = 'Renamed Group' WHERE id = $1", &[group]).await;
    let warned = w.service.package_detail(&omar, package).await.unwrap();
    assert!(warned.sod_warning.as_deref().is_some_and(|s| s.contains("Renamed Group")), "{:?}", warned.sod_warning);
    // Its policies switched off: the package is offered no more, through the service too.
    change("UPDATE policies SET enabled = 0 WHERE package_id = $1", &[package.0]).await;
    assert!(matches!(w.service.package_detail(&omar, package).await, Err(DomainError::NotFound(_))));
    let mut open = quartermaster::domain::policy::Policy::new(
        package,
        "Everyone again",
        quartermaster::domain::policy::RequestorScope::AllMembers,
        vec![],
    );
    open.on_behalf_allowed = false;
    w.service.package_manager_of(&grace, package).await.unwrap().create_policy(open).await.unwrap();
    let back = w.service.package_detail(&omar, package).await.unwrap();
    assert_eq!(back.policies.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Everyone again"]);
    // A database restored from a backup carries an older generation: any other number is a
    // change, not only a higher one.
    change("UPDATE access_packages SET name = 'Developer Tools (restored)' WHERE id = $1", &[package.0]).await;
    change("UPDATE catalog_generation SET generation = 1", &[]).await;
    assert_eq!(w.service.package_detail(&omar, package).await.unwrap().card.name, "Developer Tools (restored)");
    // A row that cannot be decoded fails the pages that need the catalog (every time, not
    // with a half-read copy); mended, they work again at once.
    let approval: String = sqlx::query_scalar("SELECT approval FROM policies WHERE package_id = $1 AND enabled = 1")
        .bind(package.0)
        .fetch_one(pool)
        .await
        .unwrap();
    change("UPDATE policies SET approval = 'not json' WHERE package_id = $1", &[package.0]).await;
    for _ in 0..2 {
        let broken = w.service.package_detail(&omar, package).await;
        assert!(matches!(&broken, Err(DomainError::Internal(why)) if why.contains("catalog")), "{broken:?}");
        assert!(w.service.requestable_packages(&omar, "", None, None).await.is_err(), "the same for every page");
    }
    sqlx::query("UPDATE policies SET approval = $1 WHERE package_id = $2 AND enabled = 1")
        .bind(&approval)
        .bind(package.0)
        .execute(pool)
        .await
        .unwrap();
    change("DELETE FROM policies WHERE package_id = $1 AND enabled = 0", &[package.0]).await;
    assert_eq!(w.service.package_detail(&omar, package).await.unwrap().card.name, "Developer Tools (restored)");
}

/// Browsing is answered from the instance's copy of the catalog: it must apply every rule the
/// database query it replaced applied, and see each change on the next page.
async fn browsing_shows_only_what_may_be_requested(backend: Backend) {
    let w = World::new(backend).await;
    let jamal = w.actor(w.ids.jamal).await;
    let noah = w.actor(w.ids.noah).await;
    let pool = w.db().pool();
    let change = async |sql: &str, id: i64| {
        sqlx::query(sql).bind(id).execute(pool).await.unwrap();
    };
    let all = vec!["Developer Tools", "Sales Analytics (30 days)", "Sales CRM"];
    assert_eq!(offered(&w, &jamal, "").await, all);
    assert_eq!(
        offered(&w, &jamal, "  DashBoards ").await,
        offered(&w, &jamal, "dashboards").await,
        "any case, trimmed"
    );
    // A description matches too, in any case, beyond ASCII.
    change(
        "UPDATE access_packages SET description = 'Le débogueur et les compilateurs' WHERE id = $1",
        w.ids.developer_tools.0,
    )
    .await;
    assert_eq!(offered(&w, &jamal, "DÉBOGUEUR").await, vec!["Developer Tools"]);
    assert!(offered(&w, &jamal, "no such thing").await.is_empty());
    // One catalog only.
    let tools_catalog: i64 = sqlx::query_scalar("SELECT catalog_id FROM access_packages WHERE id = $1")
        .bind(w.ids.developer_tools.0)
        .fetch_one(pool)
        .await
        .unwrap();
    let in_catalog = w.service.requestable_packages(&jamal, "", Some(CatalogId(tools_catalog)), None).await.unwrap();
    let in_catalog: Vec<String> = in_catalog.items.into_iter().map(|p| p.name).collect();
    assert!(in_catalog.contains(&"Developer Tools".to_owned()), "{in_catalog:?}");
    assert!(in_catalog.len() < all.len(), "the filter leaves out the other catalogs: {in_catalog:?}");
    // Hidden and disabled packages are not offered; a disabled catalog takes its packages along.
    change("UPDATE access_packages SET hidden = 1 WHERE id = $1", w.ids.sales_crm.0).await;
    assert_eq!(offered(&w, &jamal, "").await, vec!["Developer Tools", "Sales Analytics (30 days)"]);
    change("UPDATE access_packages SET hidden = 0, enabled = 0 WHERE id = $1", w.ids.sales_crm.0).await;
    assert_eq!(offered(&w, &jamal, "").await, vec!["Developer Tools", "Sales Analytics (30 days)"]);
    change("UPDATE access_packages SET enabled = 1 WHERE id = $1", w.ids.sales_crm.0).await;
    assert_eq!(offered(&w, &jamal, "").await, all);
    assert_eq!(offered(&w, &noah, "").await, vec!["Sales CRM"]);
    // A guest sees only catalogs marked visible to external users.
    change(
        "UPDATE catalogs SET externally_visible = 0 WHERE id = (SELECT catalog_id FROM access_packages WHERE id = $1)",
        w.ids.sales_crm.0,
    )
    .await;
    assert!(offered(&w, &noah, "").await.is_empty(), "the catalog is no longer visible to guests");
    assert!(offered(&w, &jamal, "").await.contains(&"Sales CRM".to_owned()), "members still see it");
    change("UPDATE catalogs SET enabled = 0 WHERE id = $1", tools_catalog).await;
    let left = offered(&w, &jamal, "").await;
    assert!(!left.contains(&"Developer Tools".to_owned()), "{left:?}");
}

/// The audit log: one request's whole story by its object, one person's doings by email or
/// id, days, pages that neither overlap nor skip, refusals of bad filters (naming the field)
/// and of everyone but administrators.
async fn the_audit_log_narrows_pages_and_is_for_administrators(backend: Backend) {
    use quartermaster::views::AuditFilter;
    let w = World::new(backend).await;
    let maya = w.actor(w.ids.maya).await;
    let grace = w.actor(w.ids.grace).await;
    let out = w.service.submit_request(&maya, production(&w)).await.unwrap();
    let request = out.request.0;
    w.service.cancel_request(&maya, out.request).await.unwrap();
    let by_object = AuditFilter { object_type: "request".into(), object_id: request.to_string(), ..Default::default() };
    let story = w.service.audit_log(&grace, &by_object, None).await.unwrap();
    let actions: Vec<&str> = story.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["request.canceled", "request.submitted"], "newest first, this request only");
    assert!(story.items.iter().all(|e| e.object_id == request && e.actor == "Maya Chen"), "{:?}", story.items);
    // One person, by email or by id: the same events.
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(w.ids.maya.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    let by_email = AuditFilter { who: email.to_uppercase(), ..Default::default() };
    let mine = w.service.audit_log(&grace, &by_email, None).await.unwrap().items;
    let by_id = AuditFilter { who: w.ids.maya.0.to_string(), ..Default::default() };
    assert_eq!(mine, w.service.audit_log(&grace, &by_id, None).await.unwrap().items);
    assert!(mine.len() >= 2 && mine.iter().all(|e| e.actor_id == Some(w.ids.maya.0)), "{mine:?}");
    // Days: today holds them, tomorrow nothing.
    let today = w.clock.now().date_naive();
    let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    let on = |from: chrono::NaiveDate, to: chrono::NaiveDate| AuditFilter {
        from: day(from),
        to: day(to),
        ..by_object.clone()
    };
    assert_eq!(w.service.audit_log(&grace, &on(today, today), None).await.unwrap().items.len(), 2);
    let tomorrow = today + Duration::days(1);
    assert!(w.service.audit_log(&grace, &on(tomorrow, tomorrow), None).await.unwrap().items.is_empty());
    // Three days apart, three stories: a middle day holds the middle one only, whole.
    let mut days = Vec::new();
    for _ in 0..3 {
        w.clock.advance(Duration::days(3));
        let again = w.service.submit_request(&maya, production(&w)).await.unwrap();
        w.service.cancel_request(&maya, again.request).await.unwrap();
        days.push((w.clock.now().date_naive(), again.request.0));
    }
    let (middle, middle_request) = days[1];
    let that_day = AuditFilter { from: day(middle), to: day(middle), ..Default::default() };
    let held = w.service.audit_log(&grace, &that_day, None).await.unwrap().items;
    assert_eq!(held.iter().map(|e| e.object_id).collect::<Vec<_>>(), vec![middle_request, middle_request], "{held:?}");
    let from_middle = AuditFilter { from: day(middle), ..Default::default() };
    let since = w.service.audit_log(&grace, &from_middle, None).await.unwrap().items;
    assert_eq!(since.len(), 4, "the middle day's and the last day's: {since:?}");
    // A clock stepped back two days: the next events take the chain head's time, so times
    // stay ordered like the chain and the last day's filter finds them.
    let (last_day, _) = days[2];
    w.clock.advance(Duration::days(-2));
    let late = w.service.submit_request(&maya, production(&w)).await.unwrap();
    w.service.cancel_request(&maya, late.request).await.unwrap();
    let on_last = AuditFilter { from: day(last_day), to: day(last_day), ..Default::default() };
    let last = w.service.audit_log(&grace, &on_last, None).await.unwrap().items;
    assert_eq!(last.len(), 4, "the last day's story and the late one: {last:?}");
    assert!(last.windows(2).all(|p| p[0].at >= p[1].at), "times ordered like ids: {last:?}");
    w.clock.advance(Duration::days(2));
    // Pages of the whole log: each older than the last, none repeated, down to the first.
    for _ in 0..30 {
        let again = w.service.submit_request(&maya, production(&w)).await.unwrap();
        w.service.cancel_request(&maya, again.request).await.unwrap();
    }
    let everything = AuditFilter::default();
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events").fetch_one(w.db().pool()).await.unwrap();
    assert!(total > 50, "more than one page: {total}");
    let (mut seen, mut before) = (Vec::new(), None);
    loop {
        let page = w.service.audit_log(&grace, &everything, before).await.unwrap();
        seen.extend(page.items.iter().map(|e| e.id));
        match page.next {
            Some(next) => before = Some(next.parse::<i64>().unwrap()),
            None => break,
        }
    }
    assert!(seen.windows(2).all(|p| p[0] > p[1]), "newest first, no repeats");
    assert_eq!(seen.len() as i64, total, "every event, once");
    // Bad filters name their field; nobody but an administrator reads the trail.
    for (filter, field) in [
        (AuditFilter { object_id: "seven".into(), ..Default::default() }, "object_id"),
        (AuditFilter { who: "nobody@example.invalid".into(), ..Default::default() }, "who"),
        (AuditFilter { from: "31/12/2026".into(), ..Default::default() }, "from"),
        (AuditFilter { from: day(tomorrow), to: day(today), ..Default::default() }, "to"),
        // The last day chrono knows: the day after it does not exist.
        (AuditFilter { to: "+262142-12-31".into(), ..Default::default() }, "to"),
        (AuditFilter { action: "x".repeat(201), ..Default::default() }, "action"),
    ] {
        let refused = w.service.audit_log(&grace, &filter, None).await.unwrap_err();
        assert!(
            matches!(refused, DomainError::Invalid { field: Some(ref f), .. } if f == field),
            "{field}: {refused:?}"
        );
    }
    for who in [w.ids.maya, w.ids.linus, w.ids.omar] {
        let someone = w.actor(who).await;
        let refused = w.service.audit_log(&someone, &everything, None).await.unwrap_err();
        assert!(matches!(refused, DomainError::Forbidden(_)), "{refused:?}");
    }
}
