//! Approve, approve, deny, cancel and time-out racing on the same requests from many tasks,
//! on SQLite and PostgreSQL: exactly one outcome per request, no duplicate assignment, grant
//! or outbox entry, and every loser told "already decided".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use quartermaster::domain::authz::Operator;

use std::collections::BTreeMap;

use chrono::Duration;
use common::World;
use quartermaster::domain::request::{Decision, RequestState};
use quartermaster::domain::DomainError;
use quartermaster::service::NewRequest;
use quartermaster::store::directory::{self, NewUser};
use quartermaster::store::Backend;

const ROUNDS: usize = 200;

on_both_databases!(
    racing_decisions_have_exactly_one_winner,
    two_workers_never_deliver_the_same_entry_and_a_lapsed_lease_is_taken_over,
    a_delivery_batch_that_lost_one_claim_still_delivers_the_others,
    a_backlog_of_expiries_drains_in_batches_each_ended_once,
);

async fn racing_decisions_have_exactly_one_winner(backend: Backend) {
    let w = World::new(backend).await;
    // Each round, a new Sales employee (manager: Sofia) asks for Sales CRM, whose one
    // approval stage is the requestor's manager.
    let mut conn = w.db().pool().acquire().await.unwrap();
    let now = w.clock_now_ms();
    let mut people = Vec::new();
    for i in 0..ROUNDS {
        let email = format!("racer{i}@quartermaster.example");
        let id = directory::insert_user(
            &mut conn,
            &NewUser {
                email: &email,
                display_name: &format!("Racer {i}"),
                department: "Sales",
                job_title: "Account Executive",
                manager_id: Some(w.ids.sofia),
                kind: quartermaster::domain::model::UserKind::Member,
                connected_org_id: None,
            },
            now,
        )
        .await
        .unwrap();
        people.push(id);
    }
    drop(conn);
    let sofia = w.actor(w.ids.sofia).await;
    let mut requests = Vec::new();
    for id in &people {
        let actor = w.actor(*id).await;
        let req = NewRequest {
            package: w.ids.sales_crm,
            policy: None,
            target: None,
            justification: String::new(),
            answers: vec![],
            start: None,
            end: None,
        };
        requests.push((actor.clone(), w.service.submit_request(&actor, req).await.unwrap().request));
    }
    // The clock races too: a worker whose clock has passed every stage's due time, against
    // deciders whose clock has not (a decision after the due time is refused as timed out).
    let late_clock = quartermaster::domain::clock::ManualClock::new(
        chrono::DateTime::from_timestamp_millis(w.clock_now_ms()).unwrap() + Duration::days(8),
    );
    let late = quartermaster::service::Service::with_clock(w.db().clone(), std::sync::Arc::new(late_clock));

    let mut outcomes: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut losers = 0;
    for (requestor, request) in &requests {
        let tasks: Vec<tokio::task::JoinHandle<(&'static str, Result<bool, DomainError>)>> = vec![
            {
                let (s, a, r) = (w.service.clone(), sofia.clone(), *request);
                tokio::spawn(async move { ("approve", s.decide(&a, r, Decision::Approve, "").await.map(|_| true)) })
            },
            {
                let (s, a, r) = (w.service.clone(), sofia.clone(), *request);
                tokio::spawn(async move { ("approve", s.decide(&a, r, Decision::Approve, "").await.map(|_| true)) })
            },
            {
                let (s, a, r) = (w.service.clone(), sofia.clone(), *request);
                tokio::spawn(async move { ("deny", s.decide(&a, r, Decision::Deny, "no").await.map(|_| true)) })
            },
            {
                let (s, a, r) = (w.service.clone(), requestor.clone(), *request);
                tokio::spawn(async move { ("cancel", s.cancel_request(&a, r).await.map(|_| true)) })
            },
            {
                let (s, r) = (late.clone(), *request);
                tokio::spawn(async move { ("time-out", s.time_out_request(&Operator::Workers, r).await) })
            },
        ];
        let mut winners = Vec::new();
        let mut told = Vec::new();
        for t in tasks {
            let (what, result) = t.await.unwrap();
            match result {
                Ok(true) => winners.push(what),
                Ok(false) => losers += 1,
                Err(DomainError::AlreadyDecided(why)) => {
                    told.push(why);
                    losers += 1;
                }
                Err(other) => panic!("{what} on {request:?} failed unexpectedly: {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "request {request:?}: winners {winners:?}");
        // Every loser is told what happened: who approved or denied, or that it was canceled
        // or expired.
        let word = match winners[0] {
            "approve" => "approved",
            "deny" => "denied",
            "cancel" => "canceled",
            _ => "expired",
        };
        for why in &told {
            assert!(why.contains(word), "request {request:?} was {word}, but a loser was told {why:?}");
        }
        *outcomes.entry(winners[0]).or_default() += 1;
    }

    // The database agrees: one decision per request at most, one assignment and one grant and
    // one outbox entry per approved request, none for the others.
    let pool = w.db().pool().clone();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };
    let approved = outcomes.get("approve").copied().unwrap_or(0) as i64;
    let grants_per = 2; // Sales CRM grants Salesforce · User and Sales Dashboards · Viewer.
    assert_eq!(
        count("SELECT COUNT(*) FROM (SELECT request_id FROM decisions GROUP BY request_id HAVING COUNT(*) > 1) d")
            .await,
        0
    );
    assert_eq!(count("SELECT COUNT(*) FROM assignments").await, approved);
    assert_eq!(count("SELECT COUNT(*) FROM grants").await, approved * grants_per);
    assert_eq!(count("SELECT COUNT(*) FROM outbox").await, approved * grants_per);
    assert_eq!(count("SELECT COUNT(*) FROM requests WHERE state = 'pending_approval'").await, 0);
    // Progress: with five racers over many rounds, more than one kind of outcome wins.
    assert!(outcomes.len() >= 2, "only one kind of racer ever won: {outcomes:?}");
    assert!(matches!(
        w.service.verify_audit_chain(&Operator::Workers).await.unwrap(),
        quartermaster::service::ChainCheck::Intact { .. }
    ));
    println!(
        "race on {}: {ROUNDS} rounds × 5 racers; winners {outcomes:?}; {losers} losers told it was already decided",
        backend.name()
    );
}

trait ClockMs {
    fn clock_now_ms(&self) -> i64;
}

impl ClockMs for World {
    fn clock_now_ms(&self) -> i64 {
        use quartermaster::domain::clock::Clock;
        self.clock.now().timestamp_millis()
    }
}

// ---- Deterministic interleavings --------------------------------------------------------
//
// Each test parks one operation at a checkpoint (after it has read what its rule depends on,
// before it writes), then starts a second operation and waits until that one either parks at
// its own checkpoint too (it read the same state: nothing serialized them) or is seen waiting
// for a lock in PostgreSQL (the person's lock serialized them). Then both finish and the test
// checks the rule. Without the lock, the second operation parks and the rule breaks; with it,
// the second waits and reads the first one's result.

use std::sync::Arc;

use quartermaster::domain::authz::Actor;
use quartermaster::domain::clock::{Clock, ManualClock};
use quartermaster::domain::ids::*;
use quartermaster::service::Service;
use tokio::sync::{mpsc, Semaphore};

/// A copy of a service that stops at the named checkpoint until released.
pub(crate) struct Parked {
    pub(crate) service: Service,
    pub(crate) arrived: mpsc::UnboundedReceiver<()>,
    release: Arc<Semaphore>,
}

pub(crate) fn park_at(service: &Service, at: &'static str) -> Parked {
    let (tx, arrived) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let gate = release.clone();
    let service = service.clone().with_checkpoints(move |name| {
        let (tx, gate) = (tx.clone(), gate.clone());
        Box::pin(async move {
            if name == at {
                let _ = tx.send(());
                if let Ok(permit) = gate.acquire().await {
                    permit.forget();
                }
            }
        })
    });
    Parked { service, arrived, release }
}

impl Parked {
    pub(crate) fn release(&self) {
        self.release.add_permits(1);
    }
}

#[derive(Debug, PartialEq)]
pub(crate) enum Second {
    /// It reached its checkpoint too: it read the same state as the first.
    Parked,
    /// It waits for a lock the first holds.
    Blocked,
    /// It finished before the first wrote anything.
    Finished,
}

/// What became of the second operation while the first is parked.
pub(crate) async fn second_operation<T>(
    w: &World,
    parked: Option<&mut Parked>,
    handle: &tokio::task::JoinHandle<T>,
) -> Second {
    let mut parked = parked;
    for _ in 0..4000 {
        if let Some(p) = parked.as_mut() {
            if p.arrived.try_recv().is_ok() {
                return Second::Parked;
            }
        }
        if handle.is_finished() {
            return Second::Finished;
        }
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(w.db().pool())
        .await
        .unwrap();
        if waiting > 0 {
            return Second::Blocked;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the second operation neither parked, finished nor waited for a lock");
}

fn clock_at(at: chrono::DateTime<chrono::Utc>) -> ManualClock {
    ManualClock::new(at)
}

async fn count(w: &World, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(w.db().pool()).await.unwrap()
}

/// The removals of a Sales Dashboards role queued so far.
async fn dashboard_removals(w: &World) -> i64 {
    count(
        w,
        "SELECT COUNT(*) FROM outbox o JOIN resource_roles rr ON rr.id = o.resource_role_id \
         JOIN resources r ON r.id = rr.resource_id WHERE o.kind = 'remove_member' AND r.name = 'Sales Dashboards'",
    )
    .await
}

/// Jamal holds Sales CRM (approved by his manager Sofia) and Sales Analytics (30 days, no
/// approval): both grant Sales Dashboards · Viewer. Returns their assignments (CRM, analytics).
async fn jamal_with_two_holdings(w: &World) -> (Actor, AssignmentId, AssignmentId) {
    let jamal = w.actor(w.ids.jamal).await;
    let sofia = w.actor(w.ids.sofia).await;
    let crm = w.service.submit_request(&jamal, common::ask(w.ids.sales_crm, "")).await.unwrap();
    w.service.decide(&sofia, crm.request, Decision::Approve, "").await.unwrap();
    w.service.submit_request(&jamal, common::ask(w.ids.sales_analytics, "")).await.unwrap();
    w.service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    let mine = w.service.my_access(&jamal, None).await.unwrap().items;
    let id = |name: &str| AssignmentId(mine.iter().find(|a| a.package.starts_with(name)).unwrap().id);
    (jamal.clone(), id("Sales CRM"), id("Sales Analytics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interleaved_endings_enqueue_exactly_one_removal() {
    let w = World::new(Backend::Postgres).await;
    let (jamal, crm, _analytics) = jamal_with_two_holdings(&w).await;
    // The analytics access has run out; the expiry job and Jamal giving up CRM meet.
    w.clock.advance(Duration::days(31));
    let mut first = park_at(&w.service, "assignment.ending");
    let mut second = park_at(&w.service, "assignment.ending");
    let expiry = {
        let s = first.service.clone();
        tokio::spawn(async move { s.expire_assignments(&Operator::Workers).await })
    };
    first.arrived.recv().await.unwrap();
    let give_up = {
        let (s, a) = (second.service.clone(), jamal.clone());
        tokio::spawn(async move { s.give_up_assignment(&a, crm, "done with it").await })
    };
    let seen = second_operation(&w, Some(&mut second), &give_up).await;
    first.release();
    second.release();
    assert_eq!(expiry.await.unwrap().unwrap(), 1);
    give_up.await.unwrap().unwrap();
    let removals = dashboard_removals(&w).await;
    assert_eq!(removals, 1, "the shared role must be removed exactly once (second operation: {seen:?})");
    assert_eq!(seen, Second::Blocked);
    w.service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(count(&w, "SELECT COUNT(*) FROM builtin_memberships WHERE user_id IN (SELECT id FROM users WHERE display_name LIKE 'Jamal%')").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn incompatible_packages_granted_at_the_same_moment_cannot_both_succeed() {
    let w = World::new(Backend::Postgres).await;
    let tom = w.actor(w.ids.tom).await;
    let elena = w.actor(w.ids.elena).await;
    let payments_policy = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        quartermaster::store::catalog::policies_of(&mut conn, &[w.ids.payments_approver]).await.unwrap()[0].id
    };
    let mut first = park_at(&w.service, "access.granting");
    let mut second = park_at(&w.service, "access.granting");
    let submit = {
        let (s, a, p) = (first.service.clone(), tom.clone(), w.ids.invoice_processing);
        tokio::spawn(async move { s.submit_request(&a, common::ask(p, "month-end")).await })
    };
    first.arrived.recv().await.unwrap();
    let assign = {
        let (s, a, u, p) = (second.service.clone(), elena.clone(), w.ids.tom, w.ids.payments_approver);
        tokio::spawn(async move {
            s.assignment_manager_of(&a, p).await?.assign_directly(u, p, payments_policy, None, "cover").await
        })
    };
    let seen = second_operation(&w, Some(&mut second), &assign).await;
    first.release();
    second.release();
    let submitted = submit.await.unwrap();
    let assigned = assign.await.unwrap();
    let granted = [submitted.as_ref().is_ok_and(|o| o.state == RequestState::Delivering), assigned.as_ref().is_ok()];
    assert_eq!(
        granted.iter().filter(|g| **g).count(),
        1,
        "exactly one of two incompatible packages (second operation: {seen:?}): {submitted:?} / {assigned:?}"
    );
    assert!(
        matches!(assigned, Err(DomainError::Conflict(ref why)) if why.contains("Invoice Processing")),
        "{assigned:?}"
    );
    assert_eq!(count(&w, "SELECT COUNT(*) FROM assignments").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_racing_an_extension_never_loses_it() {
    let w = World::new(Backend::Postgres).await;
    // Sales Analytics may be extended without approval.
    w.allow_extension_without_approval(w.ids.sales_analytics).await;
    let jamal = w.actor(w.ids.jamal).await;
    w.service.submit_request(&jamal, common::ask(w.ids.sales_analytics, "")).await.unwrap();
    let assignment = AssignmentId(w.service.my_access(&jamal, None).await.unwrap().items[0].id);
    // The expiry job runs a minute after the end; Jamal extends a minute before it (his clock).
    let end = w.clock.now() + Duration::days(30);
    let late = Service::with_clock(w.db().clone(), Arc::new(clock_at(end + Duration::minutes(1))));
    let early = Service::with_clock(w.db().clone(), Arc::new(clock_at(end - Duration::minutes(1))));
    let mut first = park_at(&late, "assignment.expiring");
    let expiry = {
        let s = first.service.clone();
        tokio::spawn(async move { s.expire_assignments(&Operator::Workers).await })
    };
    first.arrived.recv().await.unwrap();
    let extend = {
        let a = jamal.clone();
        tokio::spawn(async move { early.extend_assignment(&a, assignment, "").await })
    };
    let seen = second_operation(&w, None, &extend).await;
    first.release();
    let expired = expiry.await.unwrap().unwrap();
    let extended = extend.await.unwrap();
    let state: String = sqlx::query_scalar("SELECT state FROM assignments WHERE id = $1")
        .bind(assignment.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    match &extended {
        Ok(_) => {
            assert_eq!(state, "delivering", "the extension was confirmed, so the access must still be live ({seen:?})")
        }
        Err(DomainError::AlreadyDecided(_)) => assert_eq!(state, "expired"),
        Err(other) => panic!("unexpected: {other:?}"),
    }
    assert_eq!((expired, seen), (1, Second::Blocked), "{extended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_bookkeeping_does_not_fail_an_extension() {
    let w = World::new(Backend::Postgres).await;
    // Sales Analytics may be extended without approval.
    w.allow_extension_without_approval(w.ids.sales_analytics).await;
    let jamal = w.actor(w.ids.jamal).await;
    w.service.submit_request(&jamal, common::ask(w.ids.sales_analytics, "")).await.unwrap();
    let assignment = AssignmentId(w.service.my_access(&jamal, None).await.unwrap().items[0].id);
    w.clock.advance(Duration::days(20));
    // Jamal extends while the worker delivers his access (it moves delivering → delivered).
    let mut first = park_at(&w.service, "assignment.extending");
    let extend = {
        let (s, a) = (first.service.clone(), jamal.clone());
        tokio::spawn(async move { s.extend_assignment(&a, assignment, "still needed").await })
    };
    first.arrived.recv().await.unwrap();
    let deliver = {
        let s = w.service.clone();
        tokio::spawn(async move { s.deliver_pending(&Operator::Workers, 50).await })
    };
    let seen = second_operation(&w, None, &deliver).await;
    first.release();
    let extended = extend.await.unwrap();
    assert!(extended.is_ok(), "the worker's bookkeeping made the extension fail: {extended:?} ({seen:?})");
    assert_eq!(deliver.await.unwrap().unwrap().delivered, 1);
    let end: i64 = sqlx::query_scalar("SELECT end_at FROM assignments WHERE id = $1")
        .bind(assignment.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(end, (w.clock.now() + Duration::days(30)).timestamp_millis(), "30 days from the extension");
}

async fn two_workers_never_deliver_the_same_entry_and_a_lapsed_lease_is_taken_over(backend: Backend) {
    let w = World::new(backend).await;
    let jamal = w.actor(w.ids.jamal).await;
    w.service.submit_request(&jamal, common::ask(w.ids.sales_analytics, "")).await.unwrap();
    // Worker A claims the entry and stalls (a slow target, a crash) before recording anything.
    let mut a = park_at(&w.service, "delivery.claimed");
    let worker_a = {
        let s = a.service.clone();
        tokio::spawn(async move { s.deliver_pending(&Operator::Workers, 50).await })
    };
    a.arrived.recv().await.unwrap();
    // Worker B, another instance, finds nothing to do: the lease is A's.
    let b = Service::with_clock(w.db().clone(), Arc::new(w.clock.clone()));
    let report = b.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(report, quartermaster::service::DeliveryReport::default(), "B must not take A's entry");
    // Once A's lease has lapsed, B takes the entry over and delivers it.
    w.clock.advance(Duration::minutes(6));
    assert_eq!(b.deliver_pending(&Operator::Workers, 50).await.unwrap().delivered, 1);
    // A wakes up, finds it lost the lease, and records nothing.
    a.release();
    let report_a = worker_a.await.unwrap().unwrap();
    assert_eq!((report_a.delivered, report_a.errors), (0, 1), "{report_a:?}");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'grant.delivered'").await, 1);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM outbox WHERE state = 'done'").await, 1);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM builtin_memberships").await, 1);
}

/// Built-in entries are recorded a batch per transaction. When one of them can no longer be
/// recorded (its claim was taken over meanwhile), the batch is undone and done again one
/// entry at a time: the others are delivered, the lost one is reported, nothing twice.
async fn a_delivery_batch_that_lost_one_claim_still_delivers_the_others(backend: Backend) {
    let w = World::new(backend).await;
    let now = w.clock.now().timestamp_millis();
    for id in common::hire(w.db(), "batch", 3, w.ids.linus, now).await {
        let who = w.actor(id).await;
        w.service.submit_request(&who, common::ask(w.ids.developer_tools, "")).await.unwrap();
    }
    let entries = count(&w, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").await;
    assert_eq!(entries, 6, "two roles for each of three people");
    // A claims them all and stands before recording any.
    let mut a = park_at(&w.service, "delivery.claimed");
    let worker_a = {
        let s = a.service.clone();
        tokio::spawn(async move { s.deliver_pending(&Operator::Workers, 50).await })
    };
    a.arrived.recv().await.unwrap();
    // One entry is taken from it, as by another worker once a lease has lapsed: the last, so
    // the batch has done the others' work before it finds out (and must undo it).
    let lost: i64 = sqlx::query_scalar("SELECT MAX(id) FROM outbox").fetch_one(w.db().pool()).await.unwrap();
    sqlx::query("UPDATE outbox SET claimed_by = 'another worker' WHERE id = $1")
        .bind(lost)
        .execute(w.db().pool())
        .await
        .unwrap();
    a.release.add_permits(entries as usize);
    let report = worker_a.await.unwrap().unwrap();
    assert_eq!((report.delivered, report.errors), (entries as usize - 1, 1), "{report:?}");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM outbox WHERE state = 'done'").await, entries - 1);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM builtin_memberships").await, entries - 1);
    assert_eq!(
        count(&w, "SELECT COUNT(DISTINCT object_id) FROM audit_events WHERE action = 'grant.delivered'").await,
        entries - 1
    );
    assert_eq!(count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'grant.delivered'").await, entries - 1);
    // Two of the three people got both roles: their assignments were delivered, once each.
    assert_eq!(count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'assignment.delivered'").await, 2);
    assert_eq!(
        count(&w, "SELECT COUNT(DISTINCT object_id) FROM audit_events WHERE action = 'assignment.delivered'").await,
        2
    );
    // The lost entry is left as the other worker has it.
    let untouched = format!(
        "SELECT COUNT(*) FROM outbox WHERE id = {lost} AND state = 'pending' AND claimed_by = 'another worker' \
         AND attempts = 1 AND last_error = ''"
    );
    assert_eq!(count(&w, &untouched).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_people_approving_each_others_requests_do_not_deadlock() {
    use quartermaster::domain::policy::{ApproverSpec, Policy, RequestorScope, Stage};
    let w = World::new(Backend::Postgres).await;
    // A Sales package that Jamal approves; Sofia asks for it. Jamal asks for Sales CRM, which
    // his manager Sofia approves.
    let sofia = w.actor(w.ids.sofia).await;
    let jamal = w.actor(w.ids.jamal).await;
    let now = w.clock.now().timestamp_millis();
    let package = {
        let mut tx = w.db().begin().await.unwrap();
        let cat = quartermaster::store::catalog::package(&mut tx, w.ids.sales_crm).await.unwrap().unwrap().catalog_id;
        let p =
            quartermaster::store::catalog::insert_package(&mut tx, cat, "Forecast review", "", &[], now).await.unwrap();
        let policy = Policy::new(
            p,
            "Jamal approves",
            RequestorScope::AllMembers,
            vec![Stage::new(vec![ApproverSpec::User { id: w.ids.jamal }])],
        );
        quartermaster::store::catalog::insert_policy(&mut tx, &policy, now).await.unwrap();
        tx.commit().await.unwrap();
        p
    };
    let hers = w.service.submit_request(&sofia, common::ask(package, "")).await.unwrap().request;
    let his = w.service.submit_request(&jamal, common::ask(w.ids.sales_crm, "")).await.unwrap().request;
    // Each decision has locked its requestor's row when the other starts.
    let mut first = park_at(&w.service, "decision.locked");
    let mut second = park_at(&w.service, "decision.locked");
    let by_sofia = {
        let (s, a) = (first.service.clone(), sofia.clone());
        tokio::spawn(async move { s.decide(&a, his, Decision::Approve, "").await })
    };
    first.arrived.recv().await.unwrap();
    let by_jamal = {
        let (s, a) = (second.service.clone(), jamal.clone());
        tokio::spawn(async move { s.decide(&a, hers, Decision::Approve, "").await })
    };
    let seen = second_operation(&w, Some(&mut second), &by_jamal).await;
    assert_eq!(seen, Second::Parked, "different people: nothing to wait for");
    first.release();
    second.release();
    let (a, b) = (by_sofia.await.unwrap(), by_jamal.await.unwrap());
    assert!(a.is_ok() && b.is_ok(), "both decisions go through: {a:?} / {b:?}");
}

/// A sign-in's session is written after the sign-in committed; a disabling that commits in
/// between must still leave no session behind. The session insert reads the person under a
/// share lock, so it waits for the disabling under way and then sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_written_while_the_person_is_being_disabled_is_not_kept() {
    use tower_sessions::session::{Id, Record};
    use tower_sessions::SessionStore;
    let w = World::new(Backend::Postgres).await;
    let maya = w.ids.maya;
    // The disabling, held open after it has changed the person's state.
    let mut disabling = w.db().begin().await.unwrap();
    w.db().lock_user(&mut disabling, maya).await.unwrap();
    directory::set_state(&mut disabling, maya, quartermaster::domain::model::UserState::Disabled, w.clock_now_ms())
        .await
        .unwrap();
    quartermaster::store::sessions::delete_for_user(&mut disabling, maya).await.unwrap();
    let store = quartermaster::store::sessions::DbSessionStore::new(w.db().clone());
    let writing = tokio::spawn(async move {
        let mut data = std::collections::HashMap::new();
        data.insert("user_id".to_owned(), serde_json::json!(maya.0));
        let expiry = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        store.create(&mut Record { id: Id::default(), data, expiry_date: expiry }).await
    });
    assert_eq!(second_operation(&w, None, &writing).await, Second::Blocked, "the session write waits");
    disabling.commit().await.unwrap();
    writing.await.unwrap().unwrap();
    let kept = count(&w, &format!("SELECT COUNT(*) FROM sessions WHERE user_id = {}", maya.0)).await;
    assert_eq!(kept, 0, "no session for a person disabled meanwhile");
}

/// Two sign-ins with the same verified email link one never-linked account: the second one
/// waits for the first (the person's lock), then finds the account linked and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_identities_racing_to_link_one_account_link_it_once() {
    use quartermaster::service::directory::{AdminBootstrap, ProviderIdentity};
    let w = World::new(Backend::Postgres).await;
    let maya = w.ids.maya;
    let rules = AdminBootstrap { link_domains: vec!["quartermaster.example".into()], ..Default::default() };
    // The first linker, holding Maya's lock, has linked her and not yet committed.
    let mut first = w.db().begin().await.unwrap();
    w.db().lock_user(&mut first, maya).await.unwrap();
    sqlx::query("UPDATE users SET issuer = 'https://idp.example', subject = 'first' WHERE id = $1")
        .bind(maya.0)
        .execute(&mut *first)
        .await
        .unwrap();
    let second = {
        let service = w.service.clone();
        tokio::spawn(async move {
            let who = ProviderIdentity {
                issuer: "https://idp.example".into(),
                subject: "second".into(),
                email: "maya@quartermaster.example".into(),
                email_verified: true,
                display_name: "Maya".into(),
                ..Default::default()
            };
            service.sign_in_from_provider(&who, &rules).await
        })
    };
    assert_eq!(second_operation(&w, None, &second).await, Second::Blocked, "the second linker waits");
    first.commit().await.unwrap();
    let r = second.await.unwrap();
    assert!(matches!(r, Err(DomainError::Conflict(_))), "{r:?}");
    let subject: Option<String> = sqlx::query_scalar("SELECT subject FROM users WHERE id = $1")
        .bind(maya.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(subject.as_deref(), Some("first"), "linked once, to the first identity");
}

/// 160 assignments run out at once (40 people, four packages each, all four granting the same
/// built-in role): two workers on two instances sweep them together, one pass each, which
/// takes more than one batch; between them every assignment ends exactly once with its audit
/// event, and each person's role is queued for removal once (when the last of their four
/// ends), the other three grants kept.
async fn a_backlog_of_expiries_drains_in_batches_each_ended_once(backend: Backend) {
    use quartermaster::domain::ids::{PolicyId, ResourceRoleId};
    use quartermaster::domain::policy::{Policy, RequestorScope};
    use quartermaster::store::catalog;
    let w = World::new(backend).await;
    let now = w.clock_now_ms();
    let mut tx = w.db().begin().await.unwrap();
    let cat = catalog::package(&mut tx, w.ids.sales_crm).await.unwrap().unwrap().catalog_id;
    let role: i64 = sqlx::query_scalar(
        "SELECT rr.id FROM resource_roles rr JOIN resources r ON r.id = rr.resource_id WHERE r.name = 'Sales Dashboards'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let mut packages = Vec::new();
    for i in 0..4 {
        let p = catalog::insert_package(&mut tx, cat, &format!("Quarter {i}"), "", &[ResourceRoleId(role)], now)
            .await
            .unwrap();
        let policy = catalog::insert_policy(&mut tx, &Policy::new(p, "All", RequestorScope::AllMembers, vec![]), now)
            .await
            .unwrap();
        packages.push((p, policy));
    }
    tx.commit().await.unwrap();
    let people = common::hire(w.db(), "quarter", 40, w.ids.sofia, now).await;
    let grace = w.actor(w.ids.grace).await;
    let end = w.clock.now() + Duration::days(1);
    for person in &people {
        for (package, policy) in &packages {
            let policy: PolicyId = *policy;
            w.service
                .assignment_manager_of(&grace, *package)
                .await
                .unwrap()
                .assign_directly(*person, *package, policy, Some(end), "quarter close")
                .await
                .unwrap();
        }
    }
    while w.service.deliver_pending(&Operator::Workers, 500).await.unwrap().claimed() > 0 {}
    let live = "SELECT COUNT(*) FROM assignments a JOIN access_packages p ON p.id = a.package_id \
                WHERE p.name LIKE 'Quarter %' AND a.state = 'delivered'";
    assert_eq!(count(&w, live).await, 160);
    let removals_before = count(&w, "SELECT COUNT(*) FROM outbox WHERE kind = 'remove_member'").await;

    w.clock.advance(Duration::days(2));
    let other = Service::with_clock(w.db().clone(), Arc::new(w.clock.clone()));
    let sweep = |s: Service| tokio::spawn(async move { s.expire_assignments(&Operator::Workers).await });
    let (a, b) = tokio::join!(sweep(w.service.clone()), sweep(other));
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    // One pass each: 160 between them is more than one batch each (25 a transaction).
    assert_eq!(a + b, 160, "every assignment ended once between the two workers ({a} + {b})");
    assert_eq!(count(&w, live).await, 0);
    let expired_events = "SELECT COUNT(*) FROM audit_events e JOIN assignments a ON a.id = e.object_id \
                          JOIN access_packages p ON p.id = a.package_id \
                          WHERE e.action = 'assignment.expired' AND p.name LIKE 'Quarter %'";
    assert_eq!(count(&w, expired_events).await, 160, "one audit event per expiry");
    let removals = count(&w, "SELECT COUNT(*) FROM outbox WHERE kind = 'remove_member'").await - removals_before;
    assert_eq!(removals, 40, "one removal per person, queued when their last holding ended");
    let kept = "SELECT COUNT(*) FROM grants g JOIN assignments a ON a.id = g.assignment_id \
                JOIN access_packages p ON p.id = a.package_id \
                WHERE p.name LIKE 'Quarter %' AND g.state = 'removed'";
    assert_eq!(count(&w, kept).await, 120, "the other three grants of each person kept the role");
    let admin = w.actor(w.ids.grace).await;
    let chain = w.service.verify_audit_chain(&Operator::Person(&admin)).await.unwrap();
    assert!(matches!(chain, quartermaster::service::ChainCheck::Intact { .. }), "{chain:?}");
    // The removals are delivered: nobody keeps the role.
    while w.service.deliver_pending(&Operator::Workers, 500).await.unwrap().claimed() > 0 {}
    let members = format!(
        "SELECT COUNT(*) FROM builtin_memberships WHERE resource_role_id = {role} AND user_id IN ({})",
        people.iter().map(|p| p.0.to_string()).collect::<Vec<_>>().join(", ")
    );
    assert_eq!(count(&w, &members).await, 0);
}

/// SQLite has one writer, and a connection that finds it busy sleeps between tries: a worker
/// committing transaction after transaction (an expiry sweep) would keep winning the writer
/// over a sign-in or an approval that asked first. This process's writers take turns in the
/// order they asked, so a writer waits for the transaction running when it asked, and not
/// for the sweep's next ones: counted here as the sweep's commits while a writer waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writers_take_turns_in_the_order_they_asked() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let test_db = common::fresh_db(Backend::Sqlite).await;
    let db = test_db.db.clone();
    let commits = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sweep = {
        let (db, commits, stop) = (db.clone(), commits.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                // A batch's worth of work while holding the writer (a few milliseconds).
                let mut tx = db.begin().await.unwrap();
                sqlx::query("UPDATE users SET job_title = job_title WHERE id = 1").execute(&mut *tx).await.unwrap();
                let _: i64 = sqlx::query_scalar(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) \
                     SELECT SUM(x) FROM c",
                )
                .fetch_one(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
                commits.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while commits.load(Ordering::SeqCst) < 3 {
        tokio::task::yield_now().await;
    }
    let mut overtaken = Vec::new();
    for _ in 0..5 {
        let before = commits.load(Ordering::SeqCst);
        let tx = db.begin().await.unwrap();
        overtaken.push(commits.load(Ordering::SeqCst) - before);
        tx.commit().await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    sweep.await.unwrap();
    assert!(commits.load(Ordering::SeqCst) > 3, "the sweep made progress");
    // The transaction running when the writer asked, and perhaps one that had committed but
    // not yet been counted; never a run of them.
    assert!(
        overtaken.iter().min().is_some_and(|n| *n <= 3),
        "the sweep's commits while a writer waited: {overtaken:?}"
    );
}

/// One new person signing in from two tabs: the second looks the identity up (nobody yet),
/// the first then creates the person and commits, and the second finds the email already
/// linked — to this very identity. It signs in as that person, not "linked to another
/// sign-in".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_tab_finding_its_identity_just_linked_signs_in_as_it() {
    use quartermaster::service::directory::{AdminBootstrap, ProviderIdentity};
    let w = World::new(Backend::Postgres).await;
    let twin = ProviderIdentity {
        issuer: "https://idp.example".into(),
        subject: "twin".into(),
        email: "twin@example.test".into(),
        email_verified: true,
        ..Default::default()
    };
    let second = park_at(&w.service, "sign_in.identity_read");
    let mut arrived = second.arrived;
    let tab_b = {
        let (s, who) = (second.service.clone(), twin.clone());
        tokio::spawn(async move { s.sign_in_from_provider(&who, &AdminBootstrap::default()).await })
    };
    arrived.recv().await.unwrap();
    let a = w.service.sign_in_from_provider(&twin, &AdminBootstrap::default()).await.unwrap();
    // Once past the lookup, and once more if it tries again.
    second.release.add_permits(2);
    let b = tab_b.await.unwrap();
    assert_eq!(b.as_ref().ok(), Some(&a), "{b:?}");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM users WHERE LOWER(email) = 'twin@example.test'").await, 1);
}

/// Two owners of a catalog take each other's role at the same moment: the catalog keeps one
/// owner. The first is parked after its count, before it commits; the second waits for the
/// catalog's lock, then counts what the first left and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_owners_taking_each_others_role_leave_one_owner() {
    use quartermaster::domain::model::Role;
    use quartermaster::views::CatalogRole;
    let w = World::new(Backend::Postgres).await;
    let grace = w.actor(w.ids.grace).await;
    let eng = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        quartermaster::store::catalog::package(&mut conn, w.ids.developer_tools).await.unwrap().unwrap().catalog_id
    };
    w.service.catalog_owner(&grace, eng).unwrap().grant_role(w.ids.hana, Role::CatalogOwner).await.unwrap();
    let (linus, hana) = (w.actor(w.ids.linus).await, w.actor(w.ids.hana).await);
    let mut first = park_at(&w.service, "catalog.role_revoking");
    let by_linus = {
        let (s, a, hana_id) = (first.service.clone(), linus.clone(), w.ids.hana);
        tokio::spawn(async move { s.catalog_owner(&a, eng)?.revoke_role(hana_id, CatalogRole::CatalogOwner).await })
    };
    first.arrived.recv().await.unwrap();
    let by_hana = {
        let (s, a, linus_id) = (w.service.clone(), hana.clone(), w.ids.linus);
        tokio::spawn(async move { s.catalog_owner(&a, eng)?.revoke_role(linus_id, CatalogRole::CatalogOwner).await })
    };
    let seen = second_operation(&w, None, &by_hana).await;
    first.release();
    let (a, b) = (by_linus.await.unwrap(), by_hana.await.unwrap());
    let owners: Vec<i64> =
        sqlx::query_scalar("SELECT user_id FROM role_assignments WHERE catalog_id = $1 AND role = 'catalog_owner'")
            .bind(eng.0)
            .fetch_all(w.db().pool())
            .await
            .unwrap();
    assert_eq!(owners, vec![w.ids.linus.0], "exactly one owner is left (first: {a:?}, second: {b:?}, {seen:?})");
    assert!(a.is_ok() && matches!(b, Err(DomainError::Conflict(_))), "first: {a:?}, second: {b:?}");
    assert_eq!(seen, Second::Blocked, "the second waited for the catalog's lock");
}

/// A catalog is deleted while someone's request in it is being granted: the deletion waits for
/// the request (which holds the catalog in share mode), then counts the new assignment and is
/// refused — a live assignment never ends up in a deleted catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_catalog_waits_for_a_request_being_granted_in_it() {
    let w = World::new(Backend::Postgres).await;
    let grace = w.actor(w.ids.grace).await;
    let maya = w.actor(w.ids.maya).await;
    let eng = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        quartermaster::store::catalog::package(&mut conn, w.ids.developer_tools).await.unwrap().unwrap().catalog_id
    };
    // Engineering in use only by what this test grants: its demo holders give theirs up.
    let held: Vec<i64> = sqlx::query_scalar(
        "SELECT a.id FROM assignments a JOIN access_packages p ON p.id = a.package_id WHERE p.catalog_id = $1 \
         AND a.state IN ('delivering', 'delivered', 'partially_delivered', 'delivery_failed')",
    )
    .bind(eng.0)
    .fetch_all(w.db().pool())
    .await
    .unwrap();
    let manager = w.service.assignment_manager(&grace, eng).unwrap();
    for id in held {
        manager.remove_assignment(AssignmentId(id), "clearing the catalog").await.unwrap();
    }
    let mut first = park_at(&w.service, "access.granting");
    let submit = {
        let (s, a, p) = (first.service.clone(), maya.clone(), w.ids.developer_tools);
        tokio::spawn(async move { s.submit_request(&a, common::ask(p, "tools")).await })
    };
    first.arrived.recv().await.unwrap();
    let delete = {
        let (s, a) = (w.service.clone(), grace.clone());
        tokio::spawn(async move { s.catalog_owner(&a, eng)?.delete_catalog().await })
    };
    let seen = second_operation(&w, None, &delete).await;
    first.release();
    let granted = submit.await.unwrap();
    let deleted = delete.await.unwrap();
    let gone: Option<i64> = sqlx::query_scalar("SELECT deleted_at FROM catalogs WHERE id = $1")
        .bind(eng.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert!(granted.is_ok(), "{granted:?}");
    assert!(matches!(deleted, Err(DomainError::Conflict(_))), "the deletion counts the new assignment: {deleted:?}");
    assert_eq!(gone, None, "the catalog is still there ({seen:?})");
    assert_eq!(seen, Second::Blocked, "the deletion waited for the request");
}

/// The two administrators take the role from each other at the same moment: one stays. The
/// first is parked after its count; the second waits for the administrators' grants (locked
/// by the first), then counts what the first left and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_administrators_demoting_each_other_leave_one() {
    use quartermaster::domain::model::Role;
    let w = World::new(Backend::Postgres).await;
    let grace = w.actor(w.ids.grace).await;
    w.service.administrator(&grace).unwrap().grant_role(w.ids.linus, Role::Administrator).await.unwrap();
    let linus = w.actor(w.ids.linus).await;
    let mut first = park_at(&w.service, "role.revoking");
    let by_grace = {
        let (s, a, other) = (first.service.clone(), grace.clone(), w.ids.linus);
        tokio::spawn(async move { s.administrator(&a)?.revoke_role(other, Role::Administrator).await })
    };
    first.arrived.recv().await.unwrap();
    let by_linus = {
        let (s, a, other) = (w.service.clone(), linus.clone(), w.ids.grace);
        tokio::spawn(async move { s.administrator(&a)?.revoke_role(other, Role::Administrator).await })
    };
    let seen = second_operation(&w, None, &by_linus).await;
    first.release();
    let (a, b) = (by_grace.await.unwrap(), by_linus.await.unwrap());
    let admins: Vec<i64> =
        sqlx::query_scalar("SELECT user_id FROM role_assignments WHERE role = 'administrator' AND catalog_id IS NULL")
            .fetch_all(w.db().pool())
            .await
            .unwrap();
    assert_eq!(admins, vec![w.ids.grace.0], "one administrator stays (first: {a:?}, second: {b:?}, {seen:?})");
    assert!(a.is_ok() && matches!(b, Err(DomainError::Conflict(_))), "first: {a:?}, second: {b:?}");
    assert_eq!(seen, Second::Blocked);
}

/// Sales CRM stops granting Sales Dashboards · Viewer while Jamal gives up Sales Analytics,
/// the other package that grants it: the role sync (parked under Jamal's lock, before it counts
/// who else holds the role) and the ending meet. Exactly one of them queues the removal, and
/// Jamal ends up without the role; without the sync taking the person's lock each would count
/// the other's grant, and the membership would stay for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_role_sync_and_an_ending_sharing_a_role_remove_it_once() {
    use quartermaster::service::drafts::{DraftStart, Go};
    use quartermaster::states::WizardStep;
    let w = World::new(Backend::Postgres).await;
    let (jamal, _crm, analytics) = jamal_with_two_holdings(&w).await;
    let sofia = w.actor(w.ids.sofia).await;
    let crm_user: i64 = sqlx::query_scalar(
        "SELECT rr.id FROM resource_roles rr JOIN resources r ON r.id = rr.resource_id \
         WHERE r.name = 'Salesforce CRM' AND rr.name = 'User'",
    )
    .fetch_one(w.db().pool())
    .await
    .unwrap();
    let policy: i64 = sqlx::query_scalar("SELECT id FROM policies WHERE package_id = $1 ORDER BY id LIMIT 1")
        .bind(w.ids.sales_crm.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    let pm = w.service.package_manager_of(&sofia, w.ids.sales_crm).await.unwrap();
    let draft = pm.start_draft(DraftStart::Edit(w.ids.sales_crm, PolicyId(policy))).await.unwrap();
    let fields: std::collections::HashMap<String, String> =
        [(format!("role_{crm_user}"), "on".to_owned()), ("roles_shown".to_owned(), "on".to_owned())].into();
    w.service.draft(&sofia, draft).await.unwrap().save_step(WizardStep::Roles, Go::Next, &fields).await.unwrap();
    w.service.draft(&sofia, draft).await.unwrap().finish(None).await.unwrap();

    let mut first = park_at(&w.service, "role_sync.locked");
    let sync = {
        let s = first.service.clone();
        tokio::spawn(async move { s.sync_package_roles(&Operator::Workers, 100).await })
    };
    first.arrived.recv().await.unwrap();
    let mut second = park_at(&w.service, "assignment.ending");
    let give_up = {
        let (s, a) = (second.service.clone(), jamal.clone());
        tokio::spawn(async move { s.give_up_assignment(&a, analytics, "done with it").await })
    };
    let seen = second_operation(&w, Some(&mut second), &give_up).await;
    first.release();
    second.release();
    sync.await.unwrap().unwrap();
    give_up.await.unwrap().unwrap();
    let removals = dashboard_removals(&w).await;
    assert_eq!(removals, 1, "the shared role is removed exactly once (second operation: {seen:?})");
    assert_eq!(seen, Second::Blocked);
    for _ in 0..3 {
        w.service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    }
    let viewer = count(
        &w,
        &format!(
            "SELECT COUNT(*) FROM builtin_memberships m JOIN resource_roles rr ON rr.id = m.resource_role_id \
             JOIN resources r ON r.id = rr.resource_id WHERE r.name = 'Sales Dashboards' AND m.user_id = {}",
            w.ids.jamal.0
        ),
    )
    .await;
    assert_eq!(viewer, 0, "Jamal no longer has the role");
}
