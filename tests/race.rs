//! Approve, approve, deny, cancel and time-out racing on the same requests from many tasks,
//! on SQLite and PostgreSQL: exactly one outcome per request, no duplicate assignment, grant
//! or outbox entry, and every loser told "already decided".

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use chrono::Duration;
use common::World;
use quartermaster::domain::request::Decision;
use quartermaster::domain::DomainError;
use quartermaster::service::NewRequest;
use quartermaster::store::directory::{self, NewUser};
use quartermaster::store::Backend;

const ROUNDS: usize = 200;

on_both_databases!(racing_decisions_have_exactly_one_winner);

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
    // Every stage is now overdue, so the clock races too.
    w.clock.advance(Duration::days(8));

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
                let (s, r) = (w.service.clone(), *request);
                tokio::spawn(async move { ("time-out", s.time_out_request(r).await) })
            },
        ];
        let mut winners = Vec::new();
        for t in tasks {
            let (what, result) = t.await.unwrap();
            match result {
                Ok(true) => winners.push(what),
                Ok(false) => losers += 1,
                Err(DomainError::AlreadyDecided(why)) => {
                    assert!(!why.is_empty());
                    losers += 1;
                }
                Err(other) => panic!("{what} on {request:?} failed unexpectedly: {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "request {request:?}: winners {winners:?}");
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
    assert!(matches!(w.service.verify_audit_chain().await.unwrap(), quartermaster::service::ChainCheck::Intact { .. }));
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
