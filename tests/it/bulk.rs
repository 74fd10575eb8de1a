//! Bulk assignment from a CSV (issue 11 point 3), on SQLite and PostgreSQL: 50 rows with 2 bad
//! ones assign 48, each as its own audited operation, and name the 2 with why; a file that
//! cannot be read starts nothing; a job nobody works on is taken up again, never twice; only
//! who may assign in the package's catalog starts or reads one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use common::{hire, World};
use quartermaster::domain::clock::Clock;
use quartermaster::domain::ids::*;
use quartermaster::domain::DomainError;
use quartermaster::store::Backend;

on_both_databases!(
    a_bulk_file_assigns_each_row_on_its_own_and_names_the_skipped_ones,
    a_direct_assignment_can_be_scheduled
);

async fn count(w: &World, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(w.db().pool()).await.unwrap()
}

async fn a_bulk_file_assigns_each_row_on_its_own_and_names_the_skipped_ones(backend: Backend) {
    let w = World::new(backend).await;
    let now = w.clock.now().timestamp_millis();
    hire(w.db(), "bulk", 48, w.ids.linus, now).await;
    let policy = PolicyId(
        sqlx::query_scalar("SELECT id FROM policies WHERE package_id = $1 ORDER BY id LIMIT 1")
            .bind(w.ids.developer_tools.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap(),
    );
    // 48 new people, one nobody has heard of, one with a date that is not one: 50 rows.
    let mut csv = String::from("email,end\n");
    for i in 0..48 {
        csv.push_str(&format!("bulk{i}@quartermaster.example\n"));
        if i == 10 {
            csv.push_str("ghost@quartermaster.example\n");
        }
        if i == 30 {
            csv.push_str("maya@quartermaster.example,31/12/2027\n");
        }
    }
    let lucas = w.actor(w.ids.lucas).await; // Engineering's assignment manager
    let manager = w.service.assignment_manager_of(&lucas, w.ids.developer_tools).await.unwrap();

    // A file naming nobody starts nothing.
    let empty = manager.start_bulk(w.ids.developer_tools, policy, "email\n\n", "").await.unwrap_err();
    assert!(matches!(empty, DomainError::Invalid { .. }), "{empty:?}");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM bulk_jobs").await, 0);
    // Another catalog's owner is told the package is not there.
    let sofia = w.actor(w.ids.sofia).await;
    assert!(matches!(
        w.service.assignment_manager_of(&sofia, w.ids.developer_tools).await,
        Err(DomainError::NotFound(_))
    ));

    let job = manager.start_bulk(w.ids.developer_tools, policy, &csv, "Team onboarding").await.unwrap();
    let before = w.service.bulk_job(&lucas, job).await.unwrap();
    assert_eq!((before.total, before.assigned, before.skipped, before.running), (50, 0, 0, true));
    assert!(matches!(w.service.bulk_job(&sofia, job).await, Err(DomainError::NotFound(_))));

    // Another worker holds it: it is not run twice.
    let held = w.service.clone();
    sqlx::query("UPDATE bulk_jobs SET claimed_until = $1 WHERE id = $2")
        .bind(now + 3_600_000)
        .bind(job)
        .execute(w.db().pool())
        .await
        .unwrap();
    assert!(!held.run_bulk_job(job).await.unwrap(), "claimed elsewhere: not run here");
    assert_eq!(w.service.resume_bulk_jobs().await.unwrap(), 0);
    // The claim runs out (that worker stopped): two instances go for it at once; one takes it
    // up and finishes it, the other leaves it alone.
    w.clock.advance(chrono::Duration::hours(2));
    let other = quartermaster::service::Service::with_clock(w.db().clone(), std::sync::Arc::new(w.clock.clone()));
    let (a, b) = tokio::join!(w.service.resume_bulk_jobs(), other.resume_bulk_jobs());
    assert_eq!(a.unwrap() + b.unwrap(), 1, "exactly one instance ran it");

    let done = w.service.bulk_job(&lucas, job).await.unwrap();
    assert_eq!((done.assigned, done.skipped, done.running), (48, 2, false), "{:?}", done.rows);
    let skipped: Vec<(i64, &str, &str)> = done
        .rows
        .iter()
        .filter(|r| r.outcome.as_deref() == Some("skipped"))
        .map(|r| (r.line, r.person.as_str(), r.why.as_str()))
        .collect();
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[0].1, "ghost@quartermaster.example");
    assert!(skipped[0].2.contains("no active person"), "{skipped:?}");
    assert_eq!(skipped[1].1, "maya@quartermaster.example");
    assert!(skipped[1].2.contains("a date like"), "{skipped:?}");
    assert_eq!(skipped[0].0, 13, "the line in the file (after the header)");

    // Each assigned row is an assignment of its own, with its own audit event; the job's start
    // is audited too. Nothing was done for the skipped ones.
    let live = count(
        &w,
        &format!(
            "SELECT COUNT(*) FROM assignments a JOIN users u ON u.id = a.user_id \
             WHERE a.package_id = {} AND u.email LIKE 'bulk%'",
            w.ids.developer_tools.0
        ),
    )
    .await;
    assert_eq!(live, 48);
    let maya = count(
        &w,
        &format!(
            "SELECT COUNT(*) FROM assignments WHERE package_id = {} AND user_id = {}",
            w.ids.developer_tools.0, w.ids.maya.0
        ),
    )
    .await;
    assert_eq!(maya, 0);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'request.admin_assigned'").await, 48);
    assert_eq!(
        count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'package.bulk_assignment_started'").await,
        1
    );
    // A finished job is not run again.
    assert!(!w.service.run_bulk_job(job).await.unwrap());

    // The uploader loses the right to assign before the rows are done: none is assigned, and
    // each says why.
    let later = manager
        .start_bulk(w.ids.developer_tools, policy, "omar@quartermaster.example\ntom@quartermaster.example\n", "")
        .await
        .unwrap();
    let eng = CatalogId(
        sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Engineering'")
            .fetch_one(w.db().pool())
            .await
            .unwrap(),
    );
    let grace = w.actor(w.ids.grace).await;
    w.service
        .catalog_owner(&grace, eng)
        .unwrap()
        .revoke_role(w.ids.lucas, quartermaster::views::CatalogRole::AssignmentManager)
        .await
        .unwrap();
    assert!(w.service.run_bulk_job(later).await.unwrap());
    let stopped = w.service.bulk_job(&grace, later).await.unwrap();
    assert_eq!((stopped.assigned, stopped.skipped, stopped.running), (0, 2, false));
    assert!(stopped.rows.iter().all(|r| r.why.starts_with("not assigned")), "{:?}", stopped.rows);
    // Lucas no longer sees it either.
    let lucas = w.actor(w.ids.lucas).await;
    assert!(matches!(w.service.bulk_job(&lucas, later).await, Err(DomainError::NotFound(_))));
}

/// Direct assignment with a schedule: from a day ahead until a later one; an end before the
/// start, or a start past the longest lead time, is refused with nothing made.
async fn a_direct_assignment_can_be_scheduled(backend: Backend) {
    let w = World::new(backend).await;
    let lucas = w.actor(w.ids.lucas).await;
    let policy = PolicyId(
        sqlx::query_scalar("SELECT id FROM policies WHERE package_id = $1 ORDER BY id LIMIT 1")
            .bind(w.ids.developer_tools.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap(),
    );
    let manager = w.service.assignment_manager_of(&lucas, w.ids.developer_tools).await.unwrap();
    let today = w.clock.now().date_naive();
    let day = |n: i64| (today + chrono::Duration::days(n)).format("%Y-%m-%d").to_string();
    let assign = |start: String, end: String| {
        let manager = &manager;
        async move {
            manager
                .assign_person(w.ids.developer_tools, "tom@quartermaster.example", policy, (&start, &end), "cover")
                .await
        }
    };
    for (start, end, field) in [
        (day(-1), String::new(), "start"),
        (day(10), day(5), "end"),
        (day(400), String::new(), "start"),
        ("10/12/2026".into(), String::new(), "start"),
    ] {
        let refused = assign(start, end).await.unwrap_err();
        assert!(matches!(&refused, DomainError::Invalid { field: Some(f), .. } if f == field), "{refused:?}");
    }
    assert_eq!(count(&w, "SELECT COUNT(*) FROM assignments WHERE user_id IN (SELECT id FROM users WHERE email = 'tom@quartermaster.example')").await, 0);
    let out = assign(day(3), day(20)).await.unwrap();
    assert!(out.message.contains(&format!("from {}", day(3))), "{}", out.message);
    let (start, end): (i64, Option<i64>) = sqlx::query_as(
        "SELECT a.start_at, a.end_at FROM assignments a JOIN users u ON u.id = a.user_id WHERE u.email = 'tom@quartermaster.example'",
    )
    .fetch_one(w.db().pool())
    .await
    .unwrap();
    let midnight =
        |n: i64| (today + chrono::Duration::days(n)).and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
    assert_eq!(start, midnight(3), "starts at the beginning of its day");
    assert_eq!(end, Some(midnight(21) - 1000), "ends at the end of its day");
}
