//! Delivery into a SCIM 2.0 target (BENCHMARKS.md), beside the target's own ceiling.
//!
//!   cargo bench --bench delivery -- --scim-url URL --scim-token TOKEN [--grants 10000]
//!       [--groups 1] [--in-flight 4] [--rate R]
//!
//! `scripts/bench.sh --delivery` starts scim2-server and runs it. On a fresh SQLite database
//! (`target/bench/delivery.db`, made anew) with the demo organisation and `--grants` new
//! people, it:
//! 1. **The ceiling**: makes the same calls a delivery makes (find the user by `userName`,
//!    create them, PATCH them into a group) straight to the target, `--in-flight` at once, for
//!    as many other people, and reports calls and grants a second. With `--groups G` the
//!    people are spread over G target groups in turn (scim2-server copies a whole group on
//!    every PATCH, so one group of 10,000 would measure that copy, not delivery).
//! 2. **Quartermaster**: a SCIM system allowing `--in-flight` calls at once, G packages each
//!    granting one target group (person i gets package i mod G), and the delivery workers running (their loop, as `serve` runs
//!    them; a pass every 100 ms while idle); then every person is assigned the package
//!    directly, one transaction each, as fast as that goes (a backlog: the latency is the
//!    queue) or `--rate` a second (a steady load). It reports grants delivered a
//!    second (from the first assignment to the last delivery) and each one's time from its
//!    assignment to its delivery (p50, p99, max, from the database's timestamps).
//! 3. **Checks**: every assignment delivered, the groups hold every person once, nothing
//!    failed. Exit status 1 otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use quartermaster::domain::policy::{Policy, RequestorScope};
use serde_json::{json, Value};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let scim_url = arg("--scim-url").expect("--scim-url http://127.0.0.1:PORT/v2");
    let token = arg("--scim-token").expect("--scim-token TOKEN");
    let grants: usize = arg("--grants").map_or(10_000, |v| v.parse().expect("--grants N"));
    let in_flight: usize = arg("--in-flight").map_or(4, |v| v.parse().expect("--in-flight N"));
    let groups: usize = arg("--groups").map_or(1, |v| v.parse().expect("--groups G"));
    assert!(groups >= 1 && grants >= 1, "--groups and --grants: at least one");
    let rate: Option<f64> = arg("--rate").map(|v| v.parse().expect("--rate R (assignments a second)"));
    let run = format!("{:08x}", rand::random::<u32>());
    let http = reqwest::Client::new();
    let scim = Scim { http: http.clone(), url: scim_url.clone(), token: token.clone() };

    // 1. The ceiling: the target alone, the same calls, as many at once.
    let mut ceiling_groups = Vec::with_capacity(groups);
    for g in 0..groups {
        ceiling_groups.push(scim.group(&format!("ceiling-{run}-{g}")).await);
    }
    let started = Instant::now();
    futures_util::stream::iter(0..grants)
        .map(|i| {
            let (scim, group) = (scim.clone(), ceiling_groups[i % groups].clone());
            let name = format!("ceiling-{run}-{i}@bench.example");
            async move {
                let filter = format!("userName eq \"{name}\"");
                let found = scim.call(reqwest::Method::GET, "Users", None, Some(&filter)).await;
                assert_eq!(found["totalResults"], 0);
                let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
                let made = scim.call(reqwest::Method::POST, "Users", Some(user), None).await;
                let id = made["id"].as_str().unwrap().to_owned();
                let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]});
                scim.call(reqwest::Method::PATCH, &format!("Groups/{group}"), Some(patch), None).await;
            }
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<_>>()
        .await;
    let ceiling = started.elapsed();
    println!(
        "ceiling: {grants} grants ({} calls) straight to the target, {in_flight} at once: {:.1} s, {:.0} grants/s, {:.0} calls/s",
        grants * 3,
        ceiling.as_secs_f64(),
        grants as f64 / ceiling.as_secs_f64(),
        (grants * 3) as f64 / ceiling.as_secs_f64()
    );

    // 2. Quartermaster delivering the same.
    std::fs::create_dir_all("target/bench").unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("target/bench/delivery.db{suffix}"));
    }
    let db = quartermaster::store::Db::connect("sqlite://target/bench/delivery.db", 8).await.unwrap();
    db.migrate().await.unwrap();
    let ids = quartermaster::demo::seed_directory_and_catalogs(&db).await.unwrap();
    let key = quartermaster::connectors::secret::SecretKey::from_hex(&"4b".repeat(32)).unwrap();
    let service = quartermaster::service::Service::new(db.clone()).with_secret_key(Some(key));
    let people = {
        let mut tx = db.begin().await.unwrap();
        let mut people = Vec::with_capacity(grants);
        let now = chrono::Utc::now().timestamp_millis();
        for i in 0..grants {
            let email = format!("qm-{run}-{i}@quartermaster.example");
            let user = quartermaster::store::directory::NewUser {
                email: &email,
                display_name: &format!("Bench {i}"),
                department: "Engineering",
                job_title: "Engineer",
                manager_id: Some(ids.grace),
                kind: quartermaster::domain::model::UserKind::Member,
                connected_org_id: None,
            };
            people.push(quartermaster::store::directory::insert_user(&mut tx, &user, now).await.unwrap());
        }
        tx.commit().await.unwrap();
        people
    };
    let grace = service.actor(ids.grace).await.unwrap().unwrap();
    let admin = service.administrator(&grace).unwrap();
    let system = admin.add_scim_system("Bench SCIM", &scim_url, &token, true).await.unwrap();
    admin.edit_scim_system(system, &scim_url, None, true, u16::try_from(in_flight).unwrap(), None).await.unwrap();
    let eng: i64 =
        sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Engineering'").fetch_one(db.pool()).await.unwrap();
    let eng = quartermaster::domain::ids::CatalogId(eng);
    let owner = service.catalog_owner(&grace, eng).unwrap();
    let pm = service.package_manager(&grace, eng).unwrap();
    let mut targets = Vec::with_capacity(groups);
    for g in 0..groups {
        let group = scim.group(&format!("qm-{run}-{g}")).await;
        let roles = owner.add_resource_as(system, &group, &format!("Bench group {g}"), "", &["Member"]).await.unwrap();
        let package = pm.create_package(&format!("Bench package {g}"), "", &roles).await.unwrap();
        let policy = pm.create_policy(Policy::new(package, "Direct", RequestorScope::Nobody, vec![])).await.unwrap();
        targets.push((group, package, policy));
    }
    let am = service.assignment_manager(&grace, eng).unwrap();

    let workers = tokio::spawn(quartermaster::service::run_workers(service.clone(), Duration::from_millis(100)));
    let started = Instant::now();
    for (i, person) in people.iter().enumerate() {
        if let Some(rate) = rate {
            tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into()).await;
        }
        let (_, package, policy) = &targets[i % groups];
        am.assign_directly(*person, *package, *policy, None, "bench").await.unwrap();
    }
    let assigned = started.elapsed();
    // Every assignment in this fresh database is the benchmark's.
    let delivered = "SELECT COUNT(*) FROM assignments WHERE state = 'delivered'";
    let count = |sql: &'static str| {
        let db = db.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(db.pool()).await.unwrap() }
    };
    let mut last = Instant::now();
    while count(delivered).await < grants as i64 {
        assert!(last.elapsed() < Duration::from_secs(120), "no delivery for two minutes");
        let before = count(delivered).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if count(delivered).await > before {
            last = Instant::now();
        }
    }
    let took = started.elapsed();
    workers.abort();
    let latencies: Vec<i64> =
        sqlx::query_scalar("SELECT delivered_at - created_at FROM assignments ORDER BY delivered_at - created_at")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "quartermaster: {grants} grants assigned in {:.1} s and delivered by {:.1} s, {in_flight} calls at once: {:.0} grants/s \
         ({:.0} % of the ceiling); assignment to delivery p50 {} ms, p99 {} ms, max {} ms",
        assigned.as_secs_f64(),
        took.as_secs_f64(),
        grants as f64 / took.as_secs_f64(),
        100.0 * ceiling.as_secs_f64() / took.as_secs_f64(),
        at(0.5),
        at(0.99),
        latencies.last().unwrap()
    );

    // 3. Checks.
    let failed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'failed'").fetch_one(db.pool()).await.unwrap();
    // Each group holds as many people as were assigned its package (person i: group i mod G),
    // each once.
    let mut members = 0;
    let mut as_assigned = true;
    for (g, (group, _, _)) in targets.iter().enumerate() {
        let held = scim.call(reqwest::Method::GET, &format!("Groups/{group}"), None, None).await;
        let ids: Vec<&str> =
            held["members"].as_array().map_or(Vec::new(), |m| m.iter().filter_map(|m| m["value"].as_str()).collect());
        let once: std::collections::HashSet<&str> = ids.iter().copied().collect();
        as_assigned &= once.len() == ids.len() && ids.len() == (g..grants).step_by(groups).count();
        members += ids.len();
    }
    let ok = failed == 0 && members == grants && as_assigned;
    println!(
        "checks: {grants} delivered, {members} in the {groups} group(s) (each once), {failed} failed: {}",
        if ok { "ok" } else { "FAILED" }
    );
    if !ok {
        std::process::exit(1);
    }
}

/// The SCIM target, called as its own administrator would.
#[derive(Clone)]
struct Scim {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Scim {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>, filter: Option<&str>) -> Value {
        let mut request = self.http.request(method, format!("{}/{path}", self.url)).bearer_auth(&self.token);
        if let Some(filter) = filter {
            request = request.query(&[("filter", filter)]);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/scim+json").body(body.to_string());
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap_or(Value::Null)
    }

    /// A new group; its id.
    async fn group(&self, name: &str) -> String {
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name});
        self.call(reqwest::Method::POST, "Groups", Some(body), None).await["id"].as_str().unwrap().to_owned()
    }
}
