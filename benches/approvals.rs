//! Approvals by many approvers at once, against a running server (BENCHMARKS.md).
//!
//!   cargo bench --bench approvals -- --base http://127.0.0.1:PORT --database-url URL
//!       [--approvers 32] [--requests 10000]
//!
//! `scripts/bench.sh --approvals` runs it on the scale data. It reads from the database who
//! may decide what now (the approvers' inboxes), takes the approvers with the most waiting and
//! up to `--requests` of their requests, signs each approver in (demo sign-in) and has all of
//! them approve at once, each through `/api/decide` as the page does. A request two chosen
//! approvers may both decide is sent by both, so they race. It reports the time and the
//! throughput, then checks in the database that every request got exactly one decision at its
//! stage, and that every answer was an approval or a lost race (409). Exit status 1 otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let base = arg("--base").expect("--base http://127.0.0.1:PORT");
    let url = arg("--database-url").or_else(|| std::env::var("QM_DATABASE_URL").ok()).expect("--database-url");
    let approvers: usize = arg("--approvers").map_or(32, |v| v.parse().expect("--approvers N"));
    let wanted: usize = arg("--requests").map_or(10_000, |v| v.parse().expect("--requests N"));
    let db = quartermaster::store::Db::connect(&url, 2).await.expect("the database");

    // Every open decision: (approver, request, stage).
    let open: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT a.user_id, r.id, r.current_stage FROM request_approvers a JOIN requests r ON r.id = a.request_id
         WHERE a.active = 1 AND r.state = 'pending_approval' ORDER BY r.id",
    )
    .fetch_all(db.pool())
    .await
    .expect("the inboxes");
    let mut inbox: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for (user, request, stage) in &open {
        inbox.entry(*user).or_default().push((*request, *stage));
    }
    let mut busiest: Vec<(i64, Vec<(i64, i64)>)> = inbox.into_iter().collect();
    busiest.sort_by_key(|(user, list)| (std::cmp::Reverse(list.len()), *user));
    busiest.truncate(approvers);
    // The requests to decide: the first `wanted` distinct ones across the chosen inboxes.
    let mut chosen: BTreeMap<i64, i64> = BTreeMap::new();
    'fill: for round in 0.. {
        let mut any = false;
        for (_, list) in &busiest {
            if let Some((request, stage)) = list.get(round) {
                any = true;
                chosen.insert(*request, *stage);
                if chosen.len() >= wanted {
                    break 'fill;
                }
            }
        }
        if !any {
            break;
        }
    }
    let work: Vec<(i64, Vec<i64>)> = busiest
        .iter()
        .map(|(user, list)| (*user, list.iter().map(|(r, _)| *r).filter(|r| chosen.contains_key(r)).collect()))
        .collect();
    let sends: usize = work.iter().map(|(_, l)| l.len()).sum();
    println!(
        "{} approvers, {} requests ({} sends: requests two chosen approvers share are sent by both)",
        work.len(),
        chosen.len(),
        sends
    );

    // Sign everyone in first (demo sign-in), then start them together.
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let mut signed_in = Vec::new();
    for (user, list) in work {
        let res = client
            .post(format!("{base}/auth/demo"))
            .header("origin", &base)
            .form(&[("user_id", user.to_string())])
            .send()
            .await
            .expect("demo sign-in");
        let cookie = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.split(';').next().filter(|c| c.contains("qm_session")).map(str::to_owned))
            .unwrap_or_else(|| panic!("no session for {user}: {}", res.status()));
        signed_in.push((cookie, list));
    }
    let started = Instant::now();
    let tasks: Vec<_> = signed_in
        .into_iter()
        .map(|(cookie, list)| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
                for request in list {
                    let status = client
                        .post(format!("{base}/api/decide"))
                        .header("origin", &base)
                        .header("cookie", &cookie)
                        .header("accept", "application/json")
                        .form(&[
                            ("request_id", request.to_string()),
                            ("decision", "approve".to_owned()),
                            ("justification", "Benchmark".to_owned()),
                        ])
                        .send()
                        .await
                        .map_or(0, |r| r.status().as_u16());
                    *statuses.entry(status).or_default() += 1;
                }
                statuses
            })
        })
        .collect();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for task in tasks {
        for (status, n) in task.await.expect("an approver's task") {
            *statuses.entry(status).or_default() += n;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{} decisions sent in {:.2} s: {:.0} per second; answers {:?}",
        sends,
        elapsed.as_secs_f64(),
        sends as f64 / elapsed.as_secs_f64(),
        statuses
    );

    // Exactly one outcome each: one decision at the stage each request was at.
    let mut wrong = Vec::new();
    let ids: Vec<i64> = chosen.keys().copied().collect();
    let mut decided = BTreeSet::new();
    for chunk in ids.chunks(500) {
        let list = quartermaster::store::id_list(chunk.iter().copied());
        let sql = format!(
            "SELECT request_id, stage, COUNT(*) FROM decisions WHERE request_id IN ({list}) GROUP BY request_id, stage"
        );
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(&sql).persistent(false).fetch_all(db.pool()).await.unwrap();
        for (request, stage, n) in rows {
            if chosen.get(&request) == Some(&stage) {
                decided.insert(request);
                if n != 1 {
                    wrong.push(format!("request {request} has {n} decisions at stage {stage}"));
                }
            }
        }
    }
    let undecided = ids.iter().filter(|r| !decided.contains(r)).count();
    let approved = statuses.get(&200).copied().unwrap_or(0);
    let refused: usize = statuses.iter().filter(|(s, _)| !matches!(s, 200 | 409)).map(|(_, n)| n).sum();
    println!(
        "{} requests: {} decided once, {} undecided, {} decided more than once; {} approvals answered, {} other answers",
        ids.len(),
        decided.len() - wrong.len(),
        undecided,
        wrong.len(),
        approved,
        refused
    );
    if !wrong.is_empty() || undecided > 0 || approved != ids.len() || refused > 0 {
        for w in wrong.iter().take(10) {
            eprintln!("{w}");
        }
        std::process::exit(1);
    }
}
