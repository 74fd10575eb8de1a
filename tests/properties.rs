//! Property tests: random sequences of operations driven through the real service over a real
//! database, with the invariants of the request and assignment state machines checked after
//! every step. SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

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
        4 => (0..6usize, 0..8usize, any::<bool>()).prop_map(|(who, request, approve)| Op::Decide { who, request, approve }),
        1 => (0..8usize).prop_map(|request| Op::Cancel { request }),
        1 => (0..6usize).prop_map(|who| Op::GiveUp { who }),
        1 => (1..40i64).prop_map(|days| Op::Advance { days }),
        1 => Just(Op::TimeOut),
        1 => Just(Op::Expire),
        2 => Just(Op::Deliver),
    ]
}

/// Refusals a person can get; anything else (an internal error) fails the property.
fn acceptable(e: &DomainError) -> bool {
    !matches!(e, DomainError::Internal(_) | DomainError::Unauthenticated)
}

async fn run(backend: Backend, ops: Vec<Op>) {
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
                w.service.submit_request(&actor, r).await.map(|o| requests.push(o.request))
            }
            Op::Decide { who, request, approve } => match requests.get(request) {
                Some(id) => {
                    let actor = w.actor(people[who]).await;
                    let d = if approve { Decision::Approve } else { Decision::Deny };
                    w.service.decide(&actor, *id, d, "reason").await.map(|_| ())
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
                match w.service.my_access(&actor, None).await.unwrap().items.into_iter().find(|a| a.bucket != "ended") {
                    Some(a) => w.service.remove_assignment(&actor, AssignmentId(a.id), "").await,
                    None => Ok(()),
                }
            }
            Op::Advance { days } => {
                w.clock.advance(Duration::days(days));
                Ok(())
            }
            Op::TimeOut => w.service.time_out_stages().await.map(|_| ()),
            Op::Expire => w.service.expire_assignments().await.map(|_| ()),
            Op::Deliver => w.service.deliver_pending(100).await.map(|_| ()),
        };
        if let Err(e) = &result {
            assert!(acceptable(e), "{op:?} failed internally: {e:?}");
        }
        check_invariants(&w).await;
    }
    // Settle delivery, then what the built-in groups hold is exactly what live grants say.
    w.service.deliver_pending(1000).await.unwrap();
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
    // Refused requests never made an assignment.
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
    // Nobody decided on their own request.
    assert_eq!(n("SELECT COUNT(*) FROM decisions d JOIN requests r ON r.id = d.request_id WHERE d.approver_id IN (r.requestor_id, r.target_user_id)").await, 0);
    assert!(matches!(w.service.verify_audit_chain().await.unwrap(), ChainCheck::Intact { .. }));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 50, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_random_operations_keep_the_invariants(ops in prop::collection::vec(op(), 1..30)) {
        runtime().block_on(run(Backend::Sqlite, ops));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 30, ..ProptestConfig::default() })]

    #[test]
    fn postgres_random_operations_keep_the_invariants(ops in prop::collection::vec(op(), 1..30)) {
        runtime().block_on(run(Backend::Postgres, ops));
    }
}
