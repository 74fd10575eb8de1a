//! Property tests: random sequences of operations driven through the real service over a real
//! database, with the invariants of the request and assignment state machines checked after
//! every step. SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use quartermaster::views::AccessBucket;

use quartermaster::domain::authz::Operator;

use chrono::Duration;
use common::World;
use proptest::prelude::*;
use quartermaster::domain::ids::*;
use quartermaster::domain::policy::Answer;
use quartermaster::domain::request::Decision;
use quartermaster::domain::DomainError;
use quartermaster::service::{ChainCheck, NewRequest};
use quartermaster::store::Backend;

#[derive(Clone, Debug)]
enum Op {
    Submit { who: usize, package: usize },
    Decide { who: usize, request: usize, approve: bool },
    Cancel { request: usize },
    GiveUp { who: usize },
    Advance { days: i64 },
    TimeOut,
    Expire,
    Deliver,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..6usize, 0..4usize).prop_map(|(who, package)| Op::Submit { who, package }),
        8 => (0..6usize, 0..8usize, prop::bool::weighted(0.75))
            .prop_map(|(who, request, approve)| Op::Decide { who, request, approve }),
        1 => (0..8usize).prop_map(|request| Op::Cancel { request }),
        2 => (0..6usize).prop_map(|who| Op::GiveUp { who }),
        // Mostly short steps (stages time out after 7 days, access after 30), now and then a leap.
        1 => prop_oneof![4 => 1..6i64, 1 => 6..40i64].prop_map(|days| Op::Advance { days }),
        1 => Just(Op::TimeOut),
        1 => Just(Op::Expire),
        2 => Just(Op::Deliver),
    ]
}

/// Refusals a person can get; anything else (an internal error) fails the property.
fn acceptable(e: &DomainError) -> bool {
    !matches!(e, DomainError::Internal(_) | DomainError::Unauthenticated)
}

/// What succeeded across all cases: a property that passes because nothing ever happened
/// proves nothing, so the test also asserts that the operations made progress.
#[derive(Debug, Default)]
struct Progress {
    submitted: usize,
    approved: usize,
    delivered: usize,
    ended: usize,
}

async fn run(backend: Backend, ops: Vec<Op>, progress: &std::sync::Mutex<Progress>) {
    let w = World::new(backend).await;
    let people = [w.ids.maya, w.ids.omar, w.ids.linus, w.ids.jamal, w.ids.sofia, w.ids.hana];
    let packages = [w.ids.developer_tools, w.ids.production_access, w.ids.sales_crm, w.ids.sales_analytics];
    let mut requests: Vec<RequestId> = Vec::new();
    for op in ops {
        let result: Result<(), DomainError> = match op.clone() {
            Op::Submit { who, package } => {
                let actor = w.actor(people[who]).await;
                let mut r = NewRequest {
                    package: packages[package],
                    policy: None,
                    target: None,
                    justification: "needed".into(),
                    answers: vec![],
                    start: None,
                    end: None,
                };
                r.answers = vec![Answer { question_id: "service".into(), value: "Payments API".into() }];
                w.service.submit_request(&actor, r).await.map(|o| {
                    requests.push(o.request);
                    progress.lock().unwrap().submitted += 1;
                })
            }
            Op::Decide { who, request, approve } => match {
                // Mostly a request still waiting for a decision; sometimes any request.
                let open: Vec<i64> =
                    sqlx::query_scalar("SELECT id FROM requests WHERE state = 'pending_approval' ORDER BY id")
                        .fetch_all(w.db().pool())
                        .await
                        .unwrap();
                if request < 6 && !open.is_empty() {
                    Some(RequestId(open[request % open.len()]))
                } else {
                    requests.get(request).copied()
                }
            }
            .as_ref()
            {
                Some(id) => {
                    // Mostly someone who may decide the current stage; sometimes anyone.
                    let approvers: Vec<i64> = sqlx::query_scalar(
                        "SELECT ra.user_id FROM request_approvers ra JOIN requests r ON r.id = ra.request_id \
                         WHERE r.id = $1 AND ra.stage = r.current_stage ORDER BY ra.user_id",
                    )
                    .bind(id.0)
                    .fetch_all(w.db().pool())
                    .await
                    .unwrap();
                    let person = match approvers.get(who) {
                        Some(a) if who < 4 => UserId(*a),
                        _ => approvers.first().filter(|_| who < 4).map_or(people[who], |a| UserId(*a)),
                    };
                    let actor = w.actor(person).await;
                    let d = if approve { Decision::Approve } else { Decision::Deny };
                    w.service.decide(&actor, *id, d, "reason").await.map(|_| {
                        if approve {
                            progress.lock().unwrap().approved += 1;
                        }
                    })
                }
                None => Ok(()),
            },
            Op::Cancel { request } => match requests.get(request) {
                Some(id) => {
                    let row = {
                        let mut conn = w.db().pool().acquire().await.unwrap();
                        quartermaster::store::requests::request(&mut conn, *id).await.unwrap().unwrap()
                    };
                    let actor = w.actor(row.requestor).await;
                    w.service.cancel_request(&actor, *id).await.map(|_| ())
                }
                None => Ok(()),
            },
            Op::GiveUp { who } => {
                let actor = w.actor(people[who]).await;
                match w
                    .service
                    .my_access(&actor, None)
                    .await
                    .unwrap()
                    .items
                    .into_iter()
                    .find(|a| a.bucket != AccessBucket::Ended)
                {
                    Some(a) => w.service.give_up_assignment(&actor, AssignmentId(a.id), "").await.map(|()| {
                        progress.lock().unwrap().ended += 1;
                    }),
                    None => Ok(()),
                }
            }
            Op::Advance { days } => {
                w.clock.advance(Duration::days(days));
                Ok(())
            }
            Op::TimeOut => w.service.time_out_stages(&Operator::Workers).await.map(|_| ()),
            Op::Expire => {
                w.service.expire_assignments(&Operator::Workers).await.map(|n| progress.lock().unwrap().ended += n)
            }
            Op::Deliver => w.service.deliver_pending(&Operator::Workers, 100).await.map(|r| {
                assert_eq!(r.errors, 0, "a delivery pass hit an internal error: {r:?}");
                progress.lock().unwrap().delivered += r.delivered;
            }),
        };
        if let Err(e) = &result {
            assert!(acceptable(e), "{op:?} failed internally: {e:?}");
        }
        check_invariants(&w).await;
    }
    // Settle (what the workers do each round: expire what has ended, deliver), then what the
    // built-in groups hold is exactly what live grants say.
    w.service.expire_assignments(&Operator::Workers).await.unwrap();
    w.service.deliver_pending(&Operator::Workers, 1000).await.unwrap();
    let pool = w.db().pool();
    let expected: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT DISTINCT g.user_id, g.resource_role_id FROM grants g JOIN assignments a ON a.id = g.assignment_id
         WHERE a.state IN ('delivering', 'delivered', 'partially_delivered', 'delivery_failed') ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let held: Vec<(i64, i64)> =
        sqlx::query_as("SELECT user_id, resource_role_id FROM builtin_memberships ORDER BY 1, 2")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(held, expected, "built-in memberships match live grants");
}

async fn check_invariants(w: &World) {
    let pool = w.db().pool();
    let n = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap() };
    // A stage has at most one decision, and a pending request has one for each stage before it.
    assert_eq!(n("SELECT COUNT(*) FROM (SELECT request_id, stage FROM decisions GROUP BY request_id, stage HAVING COUNT(*) > 1) x").await, 0);
    assert_eq!(
        n("SELECT COUNT(*) FROM requests r WHERE r.state = 'pending_approval'
             AND (SELECT COUNT(*) FROM decisions d WHERE d.request_id = r.id) <> r.current_stage - 1")
        .await,
        0,
        "pending requests have exactly the earlier stages decided"
    );
    // Requests past approval point at a live or ended assignment of the same user and package.
    assert_eq!(
        n("SELECT COUNT(*) FROM requests r WHERE r.state IN ('delivering', 'delivered') AND r.kind = 'user_add'
             AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.id = r.assignment_id AND a.user_id = r.target_user_id AND a.package_id = r.package_id)").await,
        0
    );
    // Refused requests never made an assignment (whatever the request row says, by the
    // assignment's own link to the request that made it).
    assert_eq!(n("SELECT COUNT(*) FROM assignments a JOIN requests r ON r.id = a.request_id WHERE r.state IN ('denied', 'canceled', 'expired', 'rejected')").await, 0);
    assert_eq!(n("SELECT COUNT(*) FROM requests r WHERE r.state IN ('denied', 'canceled', 'expired', 'rejected') AND r.assignment_id IS NOT NULL").await, 0);
    // One live assignment per user and package, each with a grant per resource role.
    assert_eq!(
        n("SELECT COUNT(*) FROM (SELECT user_id, package_id FROM assignments
             WHERE state IN ('delivering', 'delivered', 'partially_delivered', 'delivery_failed')
             GROUP BY user_id, package_id HAVING COUNT(*) > 1) x")
        .await,
        0
    );
    assert_eq!(
        n("SELECT COUNT(*) FROM assignments a WHERE
             (SELECT COUNT(*) FROM grants g WHERE g.assignment_id = a.id) <>
             (SELECT COUNT(*) FROM package_resource_roles p WHERE p.package_id = a.package_id)")
        .await,
        0
    );
    // The inbox flag says exactly who may decide each request now.
    assert_eq!(
        n("SELECT COUNT(*) FROM request_approvers a JOIN requests r ON r.id = a.request_id WHERE a.active <>
             CASE WHEN r.state = 'pending_approval' AND r.current_stage = a.stage
                   AND (a.source <> 'escalation' OR r.escalated = 1) THEN 1 ELSE 0 END")
        .await,
        0,
        "request_approvers.active is out of step"
    );
    // Nobody decided on their own request.
    assert_eq!(n("SELECT COUNT(*) FROM decisions d JOIN requests r ON r.id = d.request_id WHERE d.approver_id IN (r.requestor_id, r.target_user_id)").await, 0);
    assert!(matches!(w.service.verify_audit_chain(&Operator::Workers).await.unwrap(), ChainCheck::Intact { .. }));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Run `cases` random sequences on `backend`, then check that they made progress.
fn property(backend: Backend, cases: u32) {
    use proptest::test_runner::{Config, TestRunner};
    let progress = std::sync::Mutex::new(Progress::default());
    let mut runner = TestRunner::new(Config { cases, max_shrink_iters: 40, ..Config::default() });
    let result = runner.run(&prop::collection::vec(op(), 5..35), |ops| {
        runtime().block_on(run(backend, ops, &progress));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let p = progress.into_inner().unwrap();
    println!("progress on {}: {p:?}", backend.name());
    assert!(p.submitted > 0 && p.approved > 0 && p.delivered > 0 && p.ended > 0, "no progress: {p:?}");
}

#[test]
fn sqlite_random_operations_keep_the_invariants() {
    property(Backend::Sqlite, 32);
}

#[test]
fn postgres_random_operations_keep_the_invariants() {
    property(Backend::Postgres, 32);
}
