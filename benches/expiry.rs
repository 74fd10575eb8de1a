//! The expiry of every live assignment at once, while pages keep serving (BENCHMARKS.md).
//!
//!   cargo bench --bench expiry -- prepare --database-url URL --baseline FILE
//!   cargo bench --bench expiry -- watch --database-url URL --baseline FILE [--timeout-seconds 1800]
//!       [--sweep-only]
//!
//! `scripts/bench.sh --expiry` runs it on a copy of the scale data. `prepare` moves the end
//! of every live assignment to a minute ago, before the server starts. `watch`, started with the server, follows
//! the running server's workers from the database: how many assignments are still due, how
//! many removals wait to be delivered. It prints a progress line a second, and at the end
//! the sweep's time (its first expiry event to its last), the delivery of the removals it
//! queued (from the first expiry to the last removal done, and entries/s), and checks: every assignment that was due ended exactly once (one
//! `assignment.expired` event each, none live), every removal queued was delivered or is
//! waiting for a retry, nothing failed. Exit status 1 otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

const LIVE: &str = "('delivering', 'delivered', 'partially_delivered', 'delivery_failed')";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let url = arg("--database-url").or_else(|| std::env::var("QM_DATABASE_URL").ok()).expect("--database-url");
    let db = quartermaster::store::Db::connect(&url, 2).await.expect("the database");
    let pool = db.pool();
    let count = |sql: String| async move { sqlx::query_scalar::<_, i64>(&sql).fetch_one(pool).await.expect(&sql) };
    let now = || chrono::Utc::now().timestamp_millis();

    let baseline = arg("--baseline").expect("--baseline FILE");
    let expired_events = "SELECT COUNT(*) FROM audit_events WHERE action = 'assignment.expired'";
    if args.iter().any(|a| a == "prepare") {
        // The ends move to a minute ago, before the server starts: its first pass finds them
        // all due. What the checks compare with is kept in the baseline file.
        let events = count(expired_events.into()).await;
        let audit = count("SELECT COALESCE(MAX(id), 0) FROM audit_events".into()).await;
        let outbox = count("SELECT COALESCE(MAX(id), 0) FROM outbox".into()).await;
        let moved = sqlx::query(&format!("UPDATE assignments SET end_at = $1 WHERE state IN {LIVE}"))
            .bind(now() - 60_000)
            .execute(pool)
            .await
            .expect("moving the ends")
            .rows_affected();
        std::fs::write(&baseline, format!("{moved} {events} {outbox} {} {audit}", now())).expect("the baseline file");
        println!("{moved} assignments now due");
        return;
    }
    let numbers: Vec<i64> = std::fs::read_to_string(&baseline)
        .expect("the baseline file (run prepare first)")
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect();
    let [due_at_start, events_before, outbox_before, prepared_ms, audit_before] = numbers[..] else {
        panic!("a bad baseline file")
    };

    let timeout =
        Duration::from_secs(arg("--timeout-seconds").map_or(1800, |v| v.parse().expect("--timeout-seconds N")));
    let due_sql = || {
        format!("SELECT COUNT(*) FROM assignments WHERE state IN {LIVE} AND end_at IS NOT NULL AND end_at <= {}", now())
    };
    let removals_due = || {
        format!(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'remove_member' AND state = 'pending' AND next_attempt_at <= {}",
            now()
        )
    };
    let start = Instant::now();
    let (mut swept, mut drained) = (None, None);
    let mut last = (due_at_start, 0);
    eprintln!("due at start: {due_at_start}");
    // `--sweep-only`: stop when nothing is due any more (at a million, delivering every
    // removal takes far longer than the sweep).
    let sweep_only = args.iter().any(|a| a == "--sweep-only");
    while drained.is_none() && !(sweep_only && swept.is_some()) && start.elapsed() < timeout {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let due = count(due_sql()).await;
        let waiting = count(removals_due()).await;
        let t = start.elapsed().as_secs_f64();
        eprintln!(
            "{t:6.1} s  due {due:>9}  ({:>6}/s)  removals waiting {waiting:>9}  ({:+}/s)",
            last.0 - due,
            waiting - last.1
        );
        last = (due, waiting);
        if due == 0 && swept.is_none() {
            swept = Some(t);
        }
        if swept.is_some() && waiting == 0 {
            drained = Some(t);
        }
    }
    let expired_events = count(expired_events.into()).await - events_before;
    let queued =
        count(format!("SELECT COUNT(*) FROM outbox WHERE kind = 'remove_member' AND id > {outbox_before}")).await;
    let done = count(format!(
        "SELECT COUNT(*) FROM outbox WHERE kind = 'remove_member' AND id > {outbox_before} AND state = 'done'"
    ))
    .await;
    let failed = count(format!(
        "SELECT COUNT(*) FROM outbox WHERE kind = 'remove_member' AND id > {outbox_before} AND state = 'failed'"
    ))
    .await;
    let still_live = count(format!(
        "SELECT COUNT(*) FROM assignments WHERE state IN {LIVE} AND end_at IS NOT NULL AND end_at <= {prepared_ms}"
    ))
    .await;
    let twice = count(
        "SELECT COUNT(*) FROM (SELECT object_id FROM audit_events WHERE action = 'assignment.expired' \
         GROUP BY object_id HAVING COUNT(*) > 1) t"
            .into(),
    )
    .await;

    // The times come from the database: the sweep from its first expiry event to its last,
    // the removals until the last one was done (the watch's own clock starts late).
    let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(&format!(
        "SELECT MIN(at), MAX(at) FROM audit_events WHERE id > {audit_before} AND action = 'assignment.expired'"
    ))
    .fetch_one(pool)
    .await
    .expect("the sweep's events");
    let delivered_at: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT MAX(updated_at) FROM outbox WHERE kind = 'remove_member' AND id > {outbox_before} AND state = 'done'"
    ))
    .fetch_one(pool)
    .await
    .expect("the removals' times");
    let seconds = |from: Option<i64>, to: Option<i64>| match (from, to) {
        (Some(from), Some(to)) => (to - from).max(1) as f64 / 1000.0,
        _ => f64::NAN,
    };
    let swept_s = seconds(first, last);
    let drained_s = seconds(first, delivered_at);
    println!("| assignments due | sweep | expiries/s | removals queued | delivered | delivery done at | removals/s |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {due_at_start} | {swept_s:.1} s | {:.0} | {queued} | {done} | {drained_s:.1} s | {:.0} |",
        expired_events as f64 / swept_s,
        done as f64 / drained_s
    );
    let mut ok = true;
    let mut check = |holds: bool, what: String| {
        println!("{} {what}", if holds { "ok:" } else { "FAILED:" });
        ok &= holds;
    };
    if sweep_only {
        check(swept.is_some(), format!("the sweep finished within {timeout:?} (removals not awaited)"));
    } else {
        check(swept.is_some() && drained.is_some(), format!("the sweep and its removals finished within {timeout:?}"));
    }
    check(still_live == 0, format!("no assignment due at the start is still live ({still_live})"));
    check(expired_events == due_at_start, format!("one expiry event each ({expired_events} for {due_at_start})"));
    check(twice == 0, format!("no assignment expired twice ({twice})"));
    check(failed == 0, format!("no removal failed ({failed})"));
    if !ok {
        std::process::exit(1);
    }
}
