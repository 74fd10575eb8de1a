//! Two instances on one PostgreSQL database (issue 10, point 6): two real servers, each with
//! its own listener, connection pool and background workers, over one fresh database. A
//! session made on one works on the other; the workers of both deliver every outbox entry
//! exactly once; a stage time-out and an expiry are applied once; and when one instance is
//! killed mid-delivery, the other finishes its work once the dead one's lease has lapsed.
//!
//! The workers poll every `WORKER_INTERVAL` (2 s): the tests wait for results by polling the
//! database against a generous deadline, never by sleeping a fixed time. Each instance's
//! service counts the checkpoints it passes (`Service::with_checkpoints`), so a test can tell
//! which instance took up which work.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::Utc;
use quartermaster::config::ServeArgs;
use quartermaster::domain::authz::{Actor, Operator};
use quartermaster::domain::clock::ManualClock;
use quartermaster::domain::ids::{PackageId, UserId};
use quartermaster::domain::request::Decision;
use quartermaster::server::Application;
use quartermaster::service::{ChainCheck, DeliveryReport, Service};
use quartermaster::store::{Backend, Db};
use tokio::sync::Notify;

/// How long any wait for the workers may take before the test fails (they poll every 2 s and
/// each pass here takes well under a second; the margin is for a loaded machine).
const DEADLINE: StdDuration = StdDuration::from_secs(90);

/// The checkpoints one instance's service passed, by name.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashMap<&'static str, usize>>>);

impl Seen {
    fn bump(&self, name: &'static str) -> usize {
        let mut counts = self.0.lock().unwrap();
        let n = counts.entry(name).or_default();
        *n += 1;
        *n
    }

    fn get(&self, name: &str) -> usize {
        self.0.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

/// Hold this instance's delivery worker when it takes up its entry number `after + 1`, and say
/// so; let it go on when `release` is told, never without one (a hung instance, about to be
/// killed). Entries are taken up a batch at a time ([`quartermaster::service::DELIVERY_BATCH`])
/// before the batch is recorded: held at a batch's first entry, it has delivered `after`.
#[derive(Clone)]
struct Hold {
    after: usize,
    held: Arc<Notify>,
    release: Option<Arc<Notify>>,
}

/// One running instance: its address, its service (with the checkpoint counter) and its task.
struct Instance {
    base: String,
    service: Service,
    seen: Seen,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A built, bound, not yet running instance over its own connection pool to `url`; on `clock`
/// when given (else the system clock, as in production).
async fn build(url: &str, clock: Option<&ManualClock>, demo: bool, hold: Option<Hold>) -> (Application, Seen) {
    common::init_logging();
    let db = Db::connect(url, 8).await.unwrap();
    let service = match clock {
        Some(clock) => Service::with_clock(db, Arc::new(clock.clone())),
        None => Service::new(db),
    };
    let seen = Seen::default();
    let service = service.with_checkpoints({
        let seen = seen.clone();
        move |name| {
            let n = seen.bump(name);
            let hold = hold.clone().filter(|h| name == "delivery.claimed" && n == h.after + 1);
            Box::pin(async move {
                if let Some(hold) = hold {
                    hold.held.notify_one();
                    match hold.release {
                        Some(release) => release.notified().await,
                        None => std::future::pending::<()>().await,
                    }
                }
            }) as Pin<Box<dyn Future<Output = ()> + Send>>
        }
    });
    let args = ServeArgs {
        addr: "127.0.0.1:0".parse().unwrap(),
        demo,
        site_root: common::site_root(),
        public_url: None,
        no_workers: false,
        metrics_addr: None,
        oidc: Default::default(),
        limits: Default::default(),
        mail: Default::default(),
    };
    (Application::build_with(service, args).await.unwrap(), seen)
}

/// Run a built instance, serving and with its workers, until its task is aborted.
fn run((app, seen): (Application, Seen)) -> Instance {
    let base = format!("http://{}", app.local_addr());
    let service = app.service().clone();
    let task = tokio::spawn(app.run_until_stopped(std::future::pending()));
    Instance { base, service, seen, task }
}

/// Two instances over `url`, both built before either runs, then started back to back: their
/// workers tick in step, so they contend for the same work.
async fn two(url: &str, clock: Option<&ManualClock>, demo: bool) -> (Instance, Instance) {
    let a = build(url, clock, demo, None).await;
    let b = build(url, clock, demo, None).await;
    (run(a), run(b))
}

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap()
}

/// Poll `sql` (a count) until it reaches at least `want`; fail after [`DEADLINE`]. Returns the
/// count seen, which the caller checks for equality (overshooting is a finding too).
async fn wait_for(db: &Db, what: &str, sql: &str, want: i64) -> i64 {
    let started = Instant::now();
    loop {
        let got = count(db, sql).await;
        if got >= want {
            return got;
        }
        assert!(started.elapsed() < DEADLINE, "{what}: after {DEADLINE:?} {got} of {want}");
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

async fn actor(service: &Service, id: UserId) -> Actor {
    service.actor(id).await.unwrap().expect("an active person")
}

/// The (resource role, person) pairs that `people` holding `packages` make, from the catalog.
async fn pairs(db: &Db, packages: &[PackageId], people: &[UserId]) -> BTreeSet<(i64, i64)> {
    let mut roles = Vec::new();
    for p in packages {
        let rows: Vec<i64> =
            sqlx::query_scalar("SELECT resource_role_id FROM package_resource_roles WHERE package_id = $1")
                .bind(p.0)
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert!(!rows.is_empty(), "package {p:?} grants no role");
        roles.extend(rows);
    }
    people.iter().flat_map(|u| roles.iter().map(move |r| (*r, u.0))).collect()
}

async fn memberships(db: &Db) -> BTreeSet<(i64, i64)> {
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT resource_role_id, user_id FROM builtin_memberships").fetch_all(db.pool()).await.unwrap();
    let n = rows.len();
    let set: BTreeSet<_> = rows.into_iter().collect();
    assert_eq!(set.len(), n, "a membership row twice");
    set
}

async fn assert_chain_intact(service: &Service) {
    match service.verify_audit_chain(&Operator::Workers).await.unwrap() {
        ChainCheck::Intact { .. } => {}
        broken => panic!("the audit chain broke with two instances writing: {broken:?}"),
    }
}

/// Each of these audit actions appears exactly `n` times, once per object.
async fn once_per_object(db: &Db, action: &str, n: i64) {
    let total = count(db, &format!("SELECT COUNT(*) FROM audit_events WHERE action = '{action}'")).await;
    let objects =
        count(db, &format!("SELECT COUNT(DISTINCT object_id) FROM audit_events WHERE action = '{action}'")).await;
    assert_eq!((total, objects), (n, n), "{action}: {total} events over {objects} objects, expected one each for {n}");
}

// ---- 1. Sessions ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_made_on_one_instance_works_on_the_other() {
    let test_db = common::fresh_db(Backend::Postgres).await;
    let ids = quartermaster::demo::seed_directory_and_catalogs(&test_db.db).await.unwrap();
    let (a, b) = two(&test_db.url, None, true).await;
    assert_ne!(a.base, b.base);
    // No cookie store: the cookie goes exactly where the test sends it.
    let c = common::bare_client();
    let approvals = async |base: &str, cookie: Option<&str>| {
        let mut req = c.get(format!("{base}/approvals")).header("accept", "text/html");
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.text().await.unwrap())
    };
    // Without a session, both send the visitor to sign in.
    assert_eq!(approvals(&a.base, None).await.0, 302);
    assert_eq!(approvals(&b.base, None).await.0, 302);

    // Sign in on A (Sofia approves for Sales).
    let res = c
        .post(format!("{}/auth/demo", a.base))
        .header("origin", &a.base)
        .form(&[("user_id", ids.sofia.0.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "demo sign-in on A");
    let cookie = common::session_cookie_of(&res);
    let (status, page) = approvals(&a.base, Some(&cookie)).await;
    assert_eq!(status, 200, "signed in on A");
    assert!(page.contains("Sofia Rossi"), "A's page is Sofia's");

    // B knows the session: it lives in the database, not in A.
    let (status, page) = approvals(&b.base, Some(&cookie)).await;
    assert_eq!(status, 200, "A's session on B");
    assert!(page.contains("Sofia Rossi"), "B's page is Sofia's");
    assert_eq!(count(&test_db.db, "SELECT COUNT(*) FROM sessions").await, 1);

    // Sign out on B: the session ends on A too.
    let out = c
        .post(format!("{}/auth/signout", b.base))
        .header("origin", &b.base)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303, "sign-out on B");
    assert_eq!(approvals(&a.base, Some(&cookie)).await.0, 302, "signed out on B, still signed in on A");
    assert_eq!(approvals(&b.base, Some(&cookie)).await.0, 302, "signed out on B");
    assert_eq!(count(&test_db.db, "SELECT COUNT(*) FROM sessions").await, 0);
}

// ---- 2. Delivery by both -------------------------------------------------------------------

/// People per run: each gets Developer Tools (no approval: GitHub and Staging) and Sales CRM
/// (their manager approves: Salesforce and the dashboards), four entries each: more than one
/// pass's claim (200).
const PEOPLE: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_workers_of_both_instances_deliver_every_entry_exactly_once() {
    let test_db = common::fresh_db(Backend::Postgres).await;
    let db = &test_db.db;
    let ids = quartermaster::demo::seed_directory_and_catalogs(db).await.unwrap();
    let setup = Service::new(db.clone());
    let people = common::hire(db, "builder", PEOPLE, ids.linus, Utc::now().timestamp_millis()).await;
    let linus = actor(&setup, ids.linus).await;
    for id in &people {
        let who = actor(&setup, *id).await;
        setup.submit_request(&who, common::ask(ids.developer_tools, "")).await.unwrap();
        let crm = setup.submit_request(&who, common::ask(ids.sales_crm, "")).await.unwrap();
        setup.decide(&linus, crm.request, Decision::Approve, "").await.unwrap();
    }
    let entries = (PEOPLE * 4) as i64;
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").await, entries);
    assert_eq!(count(db, "SELECT COUNT(*) FROM builtin_memberships").await, 0);

    // A starts, claims a pass (200 entries) and is held after delivering its first batch. B
    // starts then, while A's claim is in flight, and takes up work of its own; then A goes on.
    // A claim that did not exclude entries another instance holds would take A's here.
    let started = Instant::now();
    let (held, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let after = quartermaster::service::DELIVERY_BATCH;
    let hold = Hold { after, held: held.clone(), release: Some(release.clone()) };
    let a = run(build(&test_db.url, None, false, Some(hold)).await);
    tokio::time::timeout(DEADLINE, held.notified()).await.expect("A claimed work");
    let b = run(build(&test_db.url, None, false, None).await);
    while b.seen.get("delivery.claimed") == 0 {
        assert!(started.elapsed() < DEADLINE, "B never took up an entry");
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    release.notify_one();
    let done = wait_for(db, "entries delivered", "SELECT COUNT(*) FROM outbox WHERE state <> 'pending'", entries).await;
    let took = started.elapsed();
    assert_eq!(done, entries);

    // Every entry: done at the first attempt, no error, no lease left behind.
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM outbox WHERE state = 'done' AND attempts = 1 AND last_error = '' \
             AND claimed_until IS NULL AND claimed_by = ''"
        )
        .await,
        entries,
        "every entry done once, at its first attempt"
    );
    // Each entry was taken up by exactly one instance, and both took part.
    let (by_a, by_b) = (a.seen.get("delivery.claimed"), b.seen.get("delivery.claimed"));
    assert_eq!((by_a + by_b) as i64, entries, "entries taken up: A {by_a}, B {by_b}");
    assert!(by_a > 0 && by_b > 0, "both instances delivered: A {by_a}, B {by_b}");
    // One delivery event per grant, one roll-up per assignment; the memberships are exactly the
    // packages' roles for these people.
    once_per_object(db, "grant.delivered", entries).await;
    once_per_object(db, "assignment.delivered", (PEOPLE * 2) as i64).await;
    assert_eq!(count(db, "SELECT COUNT(*) FROM grants WHERE state = 'delivered'").await, entries);
    assert_eq!(count(db, "SELECT COUNT(*) FROM requests WHERE state = 'delivered'").await, (PEOPLE * 2) as i64);
    let expected = pairs(db, &[ids.developer_tools, ids.sales_crm], &people).await;
    assert_eq!(expected.len() as i64, entries);
    assert_eq!(memberships(db).await, expected);
    assert_chain_intact(&setup).await;
    println!("{entries} entries delivered by two instances in {took:?}: A took {by_a}, B {by_b}");
}

// ---- 3. Time-outs and expiry ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stage_time_out_and_an_expiry_are_each_applied_once() {
    const N: usize = 60;
    let test_db = common::fresh_db(Backend::Postgres).await;
    let db = &test_db.db;
    let ids = quartermaster::demo::seed_directory_and_catalogs(db).await.unwrap();
    let clock = ManualClock::new(Utc::now());
    let setup = Service::with_clock(db.clone(), Arc::new(clock.clone()));
    let people = common::hire(db, "temp", N, ids.linus, Utc::now().timestamp_millis()).await;
    // Each asks for Sales CRM (one stage, their manager, 7 days, then the request expires) and
    // nobody decides; each gets Sales Analytics (no approval, 30 days of access).
    let mut crm = Vec::new();
    for id in &people {
        let who = actor(&setup, *id).await;
        crm.push(setup.submit_request(&who, common::ask(ids.sales_crm, "")).await.unwrap().request.0);
        setup.submit_request(&who, common::ask(ids.sales_analytics, "")).await.unwrap();
    }
    let n = N as i64;
    let (a, b) = two(&test_db.url, Some(&clock), false).await;
    // The instances deliver the analytics access; nothing is due to time out or expire yet.
    wait_for(db, "access delivered", "SELECT COUNT(*) FROM outbox WHERE state = 'done'", n).await;
    assert_eq!(count(db, "SELECT COUNT(*) FROM requests WHERE state = 'pending_approval'").await, n);
    assert_eq!(count(db, "SELECT COUNT(*) FROM builtin_memberships").await, n);

    // 31 days later: every stage is past its due time and every assignment past its end.
    clock.advance(chrono::Duration::days(31));
    let started = Instant::now();
    wait_for(db, "requests timed out", "SELECT COUNT(*) FROM requests WHERE state = 'expired'", n).await;
    wait_for(db, "assignments expired", "SELECT COUNT(*) FROM assignments WHERE state = 'expired'", n).await;
    wait_for(
        db,
        "removals delivered",
        "SELECT COUNT(*) FROM outbox WHERE kind = 'remove_member' AND state <> 'pending'",
        n,
    )
    .await;
    let took = started.elapsed();

    // Exactly one time-out per request: one decision, one event.
    let timed_out: Vec<i64> =
        sqlx::query_scalar("SELECT request_id FROM decisions WHERE decision = 'timeout' ORDER BY request_id")
            .fetch_all(db.pool())
            .await
            .unwrap();
    crm.sort_unstable();
    assert_eq!(timed_out, crm, "one time-out decision per request");
    once_per_object(db, "request.expired", n).await;
    assert_eq!(count(db, "SELECT COUNT(*) FROM requests WHERE state = 'pending_approval'").await, 0);
    // Exactly one expiry per assignment: one event, one removal queued and delivered.
    once_per_object(db, "assignment.expired", n).await;
    once_per_object(db, "grants.removal_enqueued", n).await;
    once_per_object(db, "grant.removed", n).await;
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox WHERE kind = 'remove_member'").await, n);
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM outbox WHERE state = 'done' AND attempts = 1 AND last_error = ''").await,
        2 * n,
        "every addition and removal delivered once"
    );
    assert_eq!(count(db, "SELECT COUNT(*) FROM builtin_memberships").await, 0);
    // Every expiry went past its checkpoint once, in one instance or the other: an instance
    // that found the assignment already expired (under the holder's lock) stopped before it.
    let (exp_a, exp_b) = (a.seen.get("assignment.expiring"), b.seen.get("assignment.expiring"));
    assert_eq!(exp_a + exp_b, N, "expiries: A {exp_a}, B {exp_b}");
    assert_chain_intact(&setup).await;
    println!("{n} time-outs and {n} expiries applied by two instances in {took:?}; expiries: A {exp_a}, B {exp_b}");
}

// ---- 4. One instance killed ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_instance_leaves_its_work_to_the_other() {
    // 125 people × Developer Tools (two roles) = 250 entries: A claims the first 200 (one
    // pass's limit), delivers one batch (25) and hangs; 50 stay unclaimed.
    const N: usize = 125;
    const DELIVERED_BY_A: usize = quartermaster::service::DELIVERY_BATCH;
    let test_db = common::fresh_db(Backend::Postgres).await;
    let db = &test_db.db;
    let ids = quartermaster::demo::seed_directory_and_catalogs(db).await.unwrap();
    let clock = ManualClock::new(Utc::now());
    let setup = Service::with_clock(db.clone(), Arc::new(clock.clone()));
    let people = common::hire(db, "worker", N, ids.linus, Utc::now().timestamp_millis()).await;
    for id in &people {
        let who = actor(&setup, *id).await;
        setup.submit_request(&who, common::ask(ids.developer_tools, "")).await.unwrap();
    }
    let entries = (N * 2) as i64;
    let claim = 200_i64;
    let unclaimed = entries - claim;
    let stranded = claim - DELIVERED_BY_A as i64;

    // A starts alone, claims, delivers a few entries and hangs on the next one.
    let held = Arc::new(Notify::new());
    let hold = Hold { after: DELIVERED_BY_A, held: held.clone(), release: None };
    let mut a = run(build(&test_db.url, Some(&clock), false, Some(hold)).await);
    tokio::time::timeout(DEADLINE, held.notified()).await.expect("A's worker claimed work and hung");
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox WHERE state = 'done'").await, DELIVERED_BY_A as i64);
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox WHERE claimed_by <> ''").await, stranded);

    // B starts; A is killed: its task is dropped mid-pass, its listener closed.
    let b = run(build(&test_db.url, Some(&clock), false, None).await);
    a.task.abort();
    let killed = (&mut a.task).await;
    assert!(killed.as_ref().is_err_and(|e| e.is_cancelled()), "A was killed: {killed:?}");
    assert!(reqwest::get(format!("{}/healthz", a.base)).await.is_err(), "A no longer answers");
    assert_eq!(reqwest::get(format!("{}/healthz", b.base)).await.unwrap().status(), 200, "B does");

    // B delivers what nobody held; A's claimed entries wait for their lease.
    let done = wait_for(db, "unclaimed entries delivered", "SELECT COUNT(*) FROM outbox WHERE state = 'done'", {
        DELIVERED_BY_A as i64 + unclaimed
    })
    .await;
    assert_eq!(done, DELIVERED_BY_A as i64 + unclaimed, "B took none of A's leased entries");
    let report = b.service.deliver_pending(&Operator::Workers, 500).await.unwrap();
    assert_eq!(report, DeliveryReport::default(), "while A's lease holds, B takes none of its entries");
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND claimed_by <> ''").await, stranded);

    // The lease (5 minutes) lapses: B takes A's entries over and finishes them.
    clock.advance(chrono::Duration::minutes(6));
    let started = Instant::now();
    let done = wait_for(db, "every entry delivered", "SELECT COUNT(*) FROM outbox WHERE state = 'done'", entries).await;
    let took = started.elapsed();
    assert_eq!(done, entries);
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox WHERE last_error <> '' OR claimed_by <> ''").await, 0);
    // A's stranded entries took two attempts (A's claim, then B's); every other entry one.
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox WHERE attempts = 2").await, stranded);
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox WHERE attempts = 1").await, entries - stranded);
    assert_eq!(b.seen.get("delivery.claimed") as i64, entries - DELIVERED_BY_A as i64, "B took up each entry once");
    once_per_object(db, "grant.delivered", entries).await;
    once_per_object(db, "assignment.delivered", N as i64).await;
    assert_eq!(memberships(db).await, pairs(db, &[ids.developer_tools], &people).await);
    assert_chain_intact(&setup).await;
    println!("A killed after {DELIVERED_BY_A} of its {claim} entries; B delivered the other {} ({took:?} after the lease lapsed)", entries - DELIVERED_BY_A as i64);
}
