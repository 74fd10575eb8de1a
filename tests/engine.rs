//! The domain engine end to end over real databases: the same suite on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::Duration;
use common::{ask, World};
use quartermaster::domain::ids::*;
use quartermaster::domain::policy::Answer;
use quartermaster::domain::request::{Decision, RequestState};
use quartermaster::domain::DomainError;
use quartermaster::service::{ChainCheck, NewRequest};
use quartermaster::store::{assignments, Backend};

on_both_databases!(
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

    let report = w.service.deliver_pending(10).await.unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(members(&w, w.ids.production_role).await, vec![w.ids.omar]);
    let mine = w.service.my_requests(&omar, None).await.unwrap().items;
    assert_eq!(mine[0].state, "delivered");
    let steps: Vec<_> = mine[0].timeline.iter().map(|s| (s.title.as_str(), s.status.as_str())).collect();
    assert_eq!(
        steps,
        vec![("Submitted", "done"), ("Approval stage 1", "done"), ("Approval stage 2", "done"), ("Delivered", "done")]
    );
    let access = w.service.my_access(&omar, None).await.unwrap().items;
    assert_eq!(access[0].state, "delivered");
    assert!(access[0].end_at.is_some(), "30-day policy sets an end");
    assert!(matches!(w.service.verify_audit_chain().await.unwrap(), ChainCheck::Intact { events } if events >= 5));
}

async fn deny_ends_the_request_with_the_reason(backend: Backend) {
    let w = World::new(backend).await;
    let jamal = w.actor(w.ids.jamal).await;
    let out = w.service.submit_request(&jamal, ask(w.ids.sales_crm, "EMEA accounts")).await.unwrap();
    let sofia = w.actor(w.ids.sofia).await;
    let denied = w.service.decide(&sofia, out.request, Decision::Deny, "Use the shared EMEA licence").await.unwrap();
    assert_eq!(denied.state, RequestState::Denied);
    let mine = w.service.my_requests(&jamal, None).await.unwrap().items;
    assert_eq!(mine[0].state, "denied");
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
    let status = |name: &str| cards.iter().find(|c| c.name == name).map(|c| c.status.clone()).unwrap();
    assert_eq!(
        (status("Developer Tools").as_str(), status("Production Access").as_str(), status("Sales CRM").as_str()),
        ("held", "pending", "")
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
    let mine = w.service.my_requests(&tom, None).await.unwrap().items;
    assert_eq!(mine[0].state, "rejected");
    assert!(mine[0].reason.contains("separation of duties"));
}

async fn stage_time_out_expires_the_request(backend: Backend) {
    let w = World::new(backend).await;
    let jamal = w.actor(w.ids.jamal).await;
    let out = w.service.submit_request(&jamal, ask(w.ids.sales_crm, "")).await.unwrap();
    w.clock.advance(Duration::days(6));
    assert_eq!(w.service.time_out_stages().await.unwrap(), 0, "not due yet");
    w.clock.advance(Duration::days(2));
    assert_eq!(w.service.time_out_stages().await.unwrap(), 1);
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
    w.service.deliver_pending(50).await.unwrap();
    let dashboards = w.service.my_access(&priya, None).await.unwrap().items;
    let viewer_role =
        dashboards.iter().flat_map(|a| &a.resources).find(|r| r.resource == "Sales Dashboards").unwrap().id;
    let viewer_role = ResourceRoleId(viewer_role);
    assert_eq!(members(&w, viewer_role).await, vec![w.ids.priya]);

    // The 30-day package expires: the role stays, held through Sales CRM.
    w.clock.advance(Duration::days(31));
    assert_eq!(w.service.expire_assignments().await.unwrap(), 1);
    w.service.deliver_pending(50).await.unwrap();
    assert_eq!(members(&w, viewer_role).await, vec![w.ids.priya]);

    // Giving up Sales CRM takes the last holder away.
    let crm_assignment =
        w.service.my_access(&priya, None).await.unwrap().items.into_iter().find(|a| a.package == "Sales CRM").unwrap();
    w.service.remove_assignment(&priya, AssignmentId(crm_assignment.id), "no longer needed").await.unwrap();
    w.service.deliver_pending(50).await.unwrap();
    assert!(members(&w, viewer_role).await.is_empty());
    let again = w.service.remove_assignment(&priya, AssignmentId(crm_assignment.id), "").await.unwrap_err();
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
    let denied =
        w.service.assign_directly(&maya, w.ids.omar, w.ids.developer_tools, dev_policy, None, "").await.unwrap_err();
    assert!(matches!(denied, DomainError::Forbidden(_)));
    let lucas = w.actor(w.ids.lucas).await;
    let out = w
        .service
        .assign_directly(&lucas, w.ids.omar, w.ids.developer_tools, dev_policy, None, "Onboarding")
        .await
        .unwrap();
    assert_eq!(out.state, RequestState::Delivering);
    let other_catalog =
        w.service.assign_directly(&lucas, w.ids.omar, w.ids.sales_crm, crm_policy, None, "").await.unwrap_err();
    assert!(matches!(other_catalog, DomainError::Forbidden(_)));
    let grace = w.actor(w.ids.grace).await;
    w.service.assign_directly(&grace, w.ids.omar, w.ids.sales_crm, crm_policy, None, "").await.unwrap();
}

async fn audit_chain_detects_tampering(backend: Backend) {
    let w = World::new(backend).await;
    let maya = w.actor(w.ids.maya).await;
    w.service.submit_request(&maya, ask(w.ids.developer_tools, "first")).await.unwrap();
    w.service.deliver_pending(10).await.unwrap();
    let ChainCheck::Intact { events } = w.service.verify_audit_chain().await.unwrap() else { panic!("chain broken") };
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
    match w.service.verify_audit_chain().await.unwrap() {
        ChainCheck::Broken { event_id, .. } => assert_eq!(event_id, second),
        other => panic!("tampering not detected: {other:?}"),
    }
}
