//! `seed-scale`: a small organisation on SQLite and PostgreSQL — the counts asked for, a chain
//! `verify` proves, the unique indexes held, the ids of the summary true, the application's own
//! operations working on the data, and a second run refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::process::Command;

use quartermaster::domain::authz::{Actor, Operator};
use quartermaster::domain::clock::{Clock, SystemClock};
use quartermaster::domain::ids::{PackageId, UserId};
use quartermaster::domain::request::{Decision, RequestState};
use quartermaster::scale::{seed_scale, ScaleError, ScaleOptions};
use quartermaster::service::{ChainCheck, NewRequest, Service};
use quartermaster::store::{is_unique_violation, Backend, Db};

on_both_databases!(a_small_organisation_is_seeded_and_the_application_works_on_it);

const LIVE: &str = "('delivering', 'delivered', 'partially_delivered', 'delivery_failed')";

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn count_for(db: &Db, sql: &str, id: i64) -> i64 {
    sqlx::query_scalar(sql).bind(id).fetch_one(db.pool()).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every index of the schema, with its definition.
async fn indexes(db: &Db, backend: Backend) -> Vec<(String, String)> {
    let sql = match backend {
        Backend::Sqlite => "SELECT name, COALESCE(sql, '') FROM sqlite_master WHERE type = 'index' ORDER BY name",
        Backend::Postgres => {
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname"
        }
    };
    let found: Vec<(String, String)> = sqlx::query_as(sql).fetch_all(db.pool()).await.unwrap();
    assert!(found.len() > 40, "{found:?}");
    found
}

async fn actor(service: &Service, id: i64) -> Actor {
    service.actor(UserId(id)).await.unwrap().expect("an active person")
}

async fn a_small_organisation_is_seeded_and_the_application_works_on_it(backend: Backend) {
    let test_db = common::fresh_db(backend).await;
    let db = &test_db.db;
    let options = ScaleOptions { scale: 0.01, people: None, seed: 42, progress: false };
    let summary = seed_scale(db, &options, SystemClock.now()).await.unwrap();

    // The counts asked for, as the summary says and as the tables hold.
    let sizes = &summary.sizes;
    assert_eq!((sizes.people, sizes.assignments, sizes.audit_events), (1_000, 10_000, 100_000));
    assert_eq!(sizes.pending_requests, 200);
    for (table, want) in [
        ("users", i64::from(sizes.people)),
        ("directory_groups", i64::from(sizes.groups)),
        ("catalogs", i64::from(sizes.catalogs)),
        ("access_packages", i64::from(sizes.packages)),
        ("policies", i64::from(sizes.packages)),
        ("assignments", sizes.assignments as i64),
        ("audit_events", sizes.audit_events as i64),
    ] {
        assert_eq!(count(db, &format!("SELECT COUNT(*) FROM {table}")).await, want, "{table}");
        assert_eq!(summary.counts[table], want, "{table} in the summary");
    }
    assert_eq!(count(db, "SELECT COUNT(*) FROM requests WHERE state = 'pending_approval'").await, 200);
    assert_eq!(summary.counts["requests.pending_approval"], 200);
    // Every assignment came from a request, and has one grant per resource role of its package.
    assert_eq!(count(db, "SELECT COUNT(*) FROM assignments a JOIN requests r ON r.id = a.request_id").await, 10_000);
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM grants").await,
        count(db, "SELECT COUNT(*) FROM assignments a JOIN package_resource_roles p ON p.package_id = a.package_id")
            .await
    );
    let mostly_delivered = count(db, "SELECT COUNT(*) FROM assignments WHERE state = 'delivered'").await;
    assert!(mostly_delivered > 8_000 && mostly_delivered < 10_000, "{mostly_delivered}");
    let ended = count(db, "SELECT COUNT(*) FROM assignments WHERE state IN ('expired', 'removed')").await;
    assert!(ended > 0, "some expired or removed");
    // Every reference holds (PostgreSQL checked each row as it was written; SQLite's load runs
    // without foreign-key checks, so check them all now).
    if backend == Backend::Sqlite {
        let broken = sqlx::query("PRAGMA foreign_key_check").fetch_all(db.pool()).await.unwrap();
        assert!(broken.is_empty(), "{} rows break a foreign key", broken.len());
    }

    // The indexes the load set aside while it wrote are back, exactly as migrated.
    let fresh = common::fresh_db(backend).await;
    assert_eq!(indexes(db, backend).await, indexes(&fresh.db, backend).await);

    // The unique indexes held, and still hold: no two live assignments of one package for one
    // person, no two open requests; a copy of a live assignment is refused.
    let doubles = format!(
        "SELECT COUNT(*) FROM (SELECT user_id, package_id FROM assignments WHERE state IN {LIVE} \
         GROUP BY user_id, package_id HAVING COUNT(*) > 1) d"
    );
    assert_eq!(count(db, &doubles).await, 0);
    let heavy = summary.ids.heavy_person.person.id;
    let copy = sqlx::query(&format!(
        "INSERT INTO assignments (user_id, package_id, policy_id, state, start_at, created_at, updated_at) \
         SELECT user_id, package_id, policy_id, state, start_at, created_at, updated_at FROM assignments \
         WHERE user_id = $1 AND state IN {LIVE} ORDER BY id LIMIT 1"
    ))
    .bind(heavy)
    .execute(db.pool())
    .await;
    assert!(copy.as_ref().is_err_and(is_unique_violation), "{copy:?}");

    // The ids of the summary have what it says.
    assert_eq!(summary.ids.heavy_person.assignments, 50);
    assert_eq!(count_for(db, "SELECT COUNT(*) FROM assignments WHERE user_id = $1", heavy).await, 50);
    let inbox = "SELECT COUNT(*) FROM request_approvers a JOIN requests r ON r.id = a.request_id \
                 WHERE a.user_id = $1 AND a.active = 1 AND r.state = 'pending_approval' AND r.current_stage = a.stage";
    let busiest = &summary.ids.busiest_approver;
    assert_eq!(count_for(db, inbox, busiest.person.id).await, busiest.pending);
    assert_eq!(summary.ids.busy_approvers.len(), 20);
    for a in &summary.ids.busy_approvers {
        // A thousand or more at the default scale, a hundredth of that here.
        assert!(a.pending >= 10, "{a:?}");
        assert_eq!(count_for(db, inbox, a.person.id).await, a.pending);
    }
    // Active inbox rows are exactly the current stage of pending requests.
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM request_approvers a JOIN requests r ON r.id = a.request_id WHERE a.active = 1 \
                   AND NOT (r.state = 'pending_approval' AND r.current_stage = a.stage)"
        )
        .await,
        0
    );
    let big = &summary.ids.big_package;
    assert_eq!(big.assignments, 500);
    assert_eq!(count_for(db, "SELECT COUNT(*) FROM assignments WHERE package_id = $1", big.id).await, 500);
    let object = &summary.ids.audit_object;
    assert!(object.events >= 10, "{object:?}");
    assert_eq!(
        count_for(
            db,
            "SELECT COUNT(*) FROM audit_events WHERE object_type = 'package' AND object_id = $1",
            object.object_id
        )
        .await,
        object.events
    );

    // The chain verifies, with the head the summary printed.
    let service = Service::new(db.clone());
    let admin = actor(&service, summary.ids.administrator.id).await;
    match service.verify_audit_chain(&Operator::Person(&admin)).await.unwrap() {
        ChainCheck::Intact { events, head } => {
            assert_eq!(events, 100_000);
            assert_eq!(head.unwrap().to_string(), summary.audit_head);
        }
        broken => panic!("{broken:?}"),
    }

    // The application's own reads and operations work on the data.
    let person = actor(&service, heavy).await;
    let page = service.my_access(&person, None).await.unwrap();
    assert_eq!(page.items.len(), 50);
    let approver = actor(&service, busiest.person.id).await;
    let inbox_page = service.pending_approvals(&approver, None).await.unwrap();
    assert_eq!(inbox_page.items.len() as i64, busiest.pending.min(25), "a page of the inbox");
    // Approving the oldest one moves it on (to its next stage, or to delivery).
    let first = inbox_page.items.iter().find(|i| i.due_at.is_some_and(|d| d > SystemClock.now().timestamp_millis()));
    let first = first.expect("a request not yet due");
    let out = service
        .decide(&approver, quartermaster::domain::ids::RequestId(first.request_id), Decision::Approve, "Fine")
        .await
        .unwrap();
    assert!(matches!(out.state, RequestState::PendingApproval | RequestState::Delivering), "{out:?}");
    // A typical person asks for a package open to everyone without approval, and gets it.
    let typical = summary.ids.typical_person.person.id;
    let package: i64 = sqlx::query_scalar(
        "SELECT p.id FROM access_packages p JOIN policies pol ON pol.package_id = p.id \
         WHERE pol.requestor_scope = 'all_members' AND pol.approval = '{\"stages\":[]}' \
           AND p.id NOT IN (SELECT package_id FROM assignments WHERE user_id = $1) \
           AND p.id NOT IN (SELECT package_id FROM package_incompatible_packages) \
           AND p.id NOT IN (SELECT other_package_id FROM package_incompatible_packages) \
         ORDER BY p.id LIMIT 1",
    )
    .bind(typical)
    .fetch_one(db.pool())
    .await
    .unwrap();
    let asked = service
        .submit_request(
            &actor(&service, typical).await,
            NewRequest {
                package: PackageId(package),
                policy: None,
                target: None,
                justification: "For the benchmark".into(),
                answers: vec![],
                start: None,
                end: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(asked.state, RequestState::Delivering, "{asked:?}");
    // The sweeps find their work: assignments past their end, grants waiting for delivery.
    let expired = service.expire_assignments(&Operator::Person(&admin)).await.unwrap();
    assert!(expired > 0, "assignments past their end are expired");
    let delivered = service.deliver_pending(&Operator::Person(&admin), 10_000).await.unwrap();
    assert!(delivered.delivered > 0 && delivered.errors == 0 && delivered.failed == 0, "{delivered:?}");
    service.time_out_stages(&Operator::Person(&admin)).await.unwrap();
    // Their events continue the seeded chain.
    match service.verify_audit_chain(&Operator::Person(&admin)).await.unwrap() {
        ChainCheck::Intact { events, .. } => assert!(events > 100_000, "{events}"),
        broken => panic!("{broken:?}"),
    }

    // A second run is refused, and writes nothing.
    let again = seed_scale(db, &options, SystemClock.now()).await;
    assert!(matches!(again, Err(ScaleError::NotEmpty(ref why)) if why.contains("1000 people")), "{again:?}");
    assert_eq!(count(db, "SELECT COUNT(*) FROM users").await, 1_000);
}

/// The command: a summary file a script can read, `verify` agreeing with its head, and a
/// second run refused with a clear message.
#[test]
fn the_command_seeds_writes_its_summary_and_refuses_a_second_run() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/scale.db", dir.path().display());
    let summary_file = dir.path().join("summary.json");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quartermaster")).args(args).env("QM_DATABASE_URL", &url).output().unwrap()
    };
    let out = run(&["seed-scale", "--scale", "0.002", "--seed", "7", "--summary", summary_file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("audit events") && stderr.contains("rows/s"), "a progress line per phase: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("busiest approver"), "{stdout}");
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary_file).unwrap()).unwrap();
    assert_eq!(summary["counts"]["users"], 200);
    assert_eq!(summary["counts"]["assignments"], 2_000);
    assert_eq!(summary["counts"]["audit_events"], 20_000);
    assert!(summary["ids"]["heavy_person"]["id"].as_i64().is_some());
    let head = summary["audit_head"].as_str().unwrap().to_owned();

    let verified = run(&["verify", "--anchor", &head]);
    let text = String::from_utf8_lossy(&verified.stdout).to_string();
    assert!(verified.status.success(), "{text} {}", String::from_utf8_lossy(&verified.stderr));
    assert!(text.contains("20000 events") && text.contains(&head), "{text}");

    let again = run(&["seed-scale", "--scale", "0.002"]);
    assert!(!again.status.success());
    let why = String::from_utf8_lossy(&again.stderr).to_string();
    assert!(why.contains("already holds 200 people") && why.contains("empty database"), "{why}");
}
