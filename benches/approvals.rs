//! Approvals by many approvers at once, against a running server (BENCHMARKS.md).
//!
//!   cargo bench --bench approvals -- --base http://127.0.0.1:PORT --database-url URL
//!       [--approvers 32] [--requests 10000]
//!
//! `scripts/bench.sh --approvals` runs it on the scale data. It reads from the database who
//! may decide what now (the approvers' inboxes), takes the `--approvers` with the most waiting
//! and up to `--requests` of their requests not due within the hour (dealt out in turns, so
//! every approver has a share), signs each approver in (demo sign-in) and has
//! all of them approve at once, each through `/api/decide` as the page does. Every tenth request
//! is also sent by a second chosen approver who may decide it, so the two race. It reports the time and the
//! throughput, then checks in the database that every request was decided at its stage (the
//! schema allows one decision a stage), that every approval answered is a decision by that
//! approver, and that each request's answers were one approval and, for a raced one, a lost
//! race (409) or the next stage met (200 or 403). Exit status 1 otherwise.

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
         WHERE a.active = 1 AND r.state = 'pending_approval' AND (r.stage_due_at IS NULL OR r.stage_due_at > $1)
         ORDER BY r.id",
    )
    // Not those due within the hour: the server's time-out pass would decide them meanwhile.
    .bind(chrono::Utc::now().timestamp_millis() + 3_600_000)
    .fetch_all(db.pool())
    .await
    .expect("the inboxes");
    let mut inbox: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for (user, request, stage) in &open {
        inbox.entry(*user).or_default().push((*request, *stage));
    }
    // The approvers with the most waiting, and the requests they cover, dealt out in turns
    // (each request to the first approver whose turn finds it), so that all of them work.
    let mut busiest: Vec<(i64, Vec<(i64, i64)>)> = inbox.iter().map(|(u, l)| (*u, l.clone())).collect();
    busiest.sort_by_key(|(user, list)| (std::cmp::Reverse(list.len()), *user));
    busiest.truncate(approvers);
    let mut chosen: BTreeMap<i64, i64> = BTreeMap::new();
    // (approver, the requests it sends)
    let mut work: Vec<(i64, Vec<i64>)> = busiest.iter().map(|(u, _)| (*u, Vec::new())).collect();
    let mut next = vec![0usize; busiest.len()];
    'deal: loop {
        let mut dealt = false;
        for (i, (_, list)) in busiest.iter().enumerate() {
            while let Some((request, stage)) = list.get(next[i]) {
                next[i] += 1;
                if !chosen.contains_key(request) {
                    chosen.insert(*request, *stage);
                    work[i].1.push(*request);
                    dealt = true;
                    break;
                }
            }
            if chosen.len() >= wanted {
                break 'deal;
            }
        }
        if !dealt {
            break;
        }
    }
    // Races: every tenth request is also sent by another chosen approver who may decide it.
    let racers: BTreeMap<i64, Vec<i64>> = inbox
        .iter()
        .filter(|(user, _)| work.iter().any(|(w, _)| w == *user))
        .map(|(user, list)| (*user, list.iter().map(|(r, _)| *r).collect()))
        .collect();
    // Each request's first sender and its place in that sender's list: the second send goes
    // to the same place in the other's list, so the two arrive at about the same time.
    let owner: BTreeMap<i64, (i64, usize)> =
        work.iter().flat_map(|(u, l)| l.iter().enumerate().map(move |(at, r)| (*r, (*u, at)))).collect();
    let mut raced = 0;
    for (i, (request, (first, at))) in owner.iter().enumerate() {
        if i % 10 != 0 {
            continue;
        }
        let other = racers.iter().find(|(u, list)| *u != first && list.contains(request)).map(|(u, _)| *u);
        if let Some(other) = other {
            if let Some((_, list)) = work.iter_mut().find(|(u, _)| *u == other) {
                list.insert((*at).min(list.len()), *request);
                raced += 1;
            }
        }
    }
    if chosen.is_empty() {
        eprintln!("no pending request to approve: seed anew (scripts/bench.sh --approvals reseeds)");
        std::process::exit(1);
    }
    if chosen.len() < wanted {
        eprintln!("only {} of the {wanted} requests asked for are waiting for these approvers", chosen.len());
    }
    let sends: usize = work.iter().map(|(_, l)| l.len()).sum();
    println!(
        "{} approvers, {} requests, {} sends ({} requests sent by two approvers, who race)",
        work.len(),
        chosen.len(),
        sends,
        raced
    );

    // Sign everyone in first (demo sign-in), then start them together.
    // Redirects not followed: the demo sign-in's answer carries the session cookie.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
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
        signed_in.push((user, cookie, list));
    }
    let started = Instant::now();
    let tasks: Vec<_> = signed_in
        .into_iter()
        .map(|(user, cookie, list)| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let mut answers = Vec::with_capacity(list.len());
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
                    answers.push((request, user, status));
                }
                answers
            })
        })
        .collect();
    // Each request's answers, and how many of each status.
    let mut answers: BTreeMap<i64, Vec<u16>> = BTreeMap::new();
    let mut approved_by: Vec<(i64, i64)> = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for task in tasks {
        for (request, user, status) in task.await.expect("an approver's task") {
            answers.entry(request).or_default().push(status);
            if status == 200 {
                approved_by.push((request, user));
            }
            *statuses.entry(status).or_default() += 1;
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

    // Exactly one outcome each: a decision at the stage each request was at (the schema
    // allows one per stage), and each approval answered is a decision by that approver.
    let ids: Vec<i64> = chosen.keys().copied().collect();
    let mut decided = BTreeSet::new();
    let mut deciders = BTreeSet::new();
    let mut conn = db.pool().acquire().await.unwrap();
    let sql = format!(
        "SELECT request_id, stage, approver_id FROM decisions WHERE request_id IN {}",
        quartermaster::store::ids_param(&conn, 1)
    );
    let rows: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(&sql)
        .bind(quartermaster::store::ids_json(ids.iter().copied()))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    for (request, stage, approver) in rows {
        if chosen.get(&request) == Some(&stage) {
            decided.insert(request);
        }
        if let Some(approver) = approver {
            deciders.insert((request, approver));
        }
    }
    let wrong: Vec<String> = approved_by
        .iter()
        .filter(|pair| !deciders.contains(pair))
        .map(|(request, user)| format!("request {request}: approved for {user}, who decided nothing on it"))
        .collect();
    let undecided = ids.iter().filter(|r| !decided.contains(r)).count();
    // A request sent once is approved (200). One sent by two approvers is approved by one; the
    // other loses the race (409), or finds it at its next stage, which it may or may not
    // decide (200 or 403).
    let unexpected: Vec<(&i64, &Vec<u16>)> = answers
        .iter()
        .filter(|(_, got)| match got.as_slice() {
            [one] => *one != 200,
            two => !two.contains(&200) || two.iter().any(|s| !matches!(s, 200 | 403 | 409)),
        })
        .collect();
    println!(
        "{} requests: {} decided at their stage, {} undecided, {} approvals answered without a decision; \
         {} with answers other than one approval and lost races",
        ids.len(),
        decided.len(),
        undecided,
        wrong.len(),
        unexpected.len(),
    );
    for (request, got) in unexpected.iter().take(10) {
        eprintln!("request {request}: answers {got:?}");
    }
    if !wrong.is_empty() || undecided > 0 || !unexpected.is_empty() {
        for w in wrong.iter().take(10) {
            eprintln!("{w}");
        }
        std::process::exit(1);
    }
}
