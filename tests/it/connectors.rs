//! Provisioning into real targets (issue 12), on SQLite and PostgreSQL: a SCIM 2.0 target
//! (PyPI scim2-server, started by the test command: `QM_TEST_SCIM_URL`, `QM_TEST_SCIM_TOKEN`).
//! A person assigned a package whose role is a SCIM group appears in that group, created in
//! the target first; removed, they are gone from it. The bearer token is stored sealed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use base64::Engine as _;
use chrono::Duration;
use common::World;
use hmac::{Hmac, Mac};
use quartermaster::connectors::secret::SecretKey;
use quartermaster::domain::authz::Operator;
use quartermaster::domain::clock::Clock;
use quartermaster::domain::ids::*;
use quartermaster::domain::policy::{Policy, RequestorScope};
use quartermaster::service::Service;
use quartermaster::store::Backend;
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

on_both_databases!(
    a_scim_group_gains_and_loses_the_member_a_package_gives,
    an_unavailable_target_is_waited_for_and_called_within_its_limit,
    one_membership_is_never_delivered_twice_at_once,
    two_instances_deliver_side_by_side_each_entry_once,
    a_webhook_hears_each_grant_and_revoke_once_signed,
    a_webhook_hears_the_lifecycle_of_requests_once_each,
    a_directory_s_groups_are_imported_a_page_at_a_time,
    an_ldap_group_follows_the_packages_that_grant_it,
    the_connectors_page_adds_tests_and_shows_a_system,
    drift_is_reported_and_repaired_behind_a_threshold,
    delivery_converges_after_twenty_sigkills,
);

/// The SCIM target the test command started.
fn target() -> (String, String) {
    let (Ok(url), Ok(token)) = (std::env::var("QM_TEST_SCIM_URL"), std::env::var("QM_TEST_SCIM_TOKEN")) else {
        panic!(
            "QM_TEST_SCIM_URL / QM_TEST_SCIM_TOKEN are not set: run the tests with scripts/test.sh, which starts \
             scim2-server, or `source scripts/scim-peer.sh start` first"
        );
    };
    (url, token)
}

/// Straight to the target, as its own administrator would.
async fn scim(method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let (url, token) = target();
    let mut request = reqwest::Client::new().request(method, format!("{url}/{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.header("content-type", "application/scim+json").body(body.to_string());
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap_or(Value::Null)
}

/// The userNames of the group's members.
async fn members(group: &str) -> Vec<String> {
    let group = scim(reqwest::Method::GET, &format!("Groups/{group}"), None).await;
    let mut names = Vec::new();
    for m in group["members"].as_array().cloned().unwrap_or_default() {
        let id = m["value"].as_str().unwrap().to_owned();
        let user = scim(reqwest::Method::GET, &format!("Users/{id}"), None).await;
        names.push(user["userName"].as_str().unwrap().to_owned());
    }
    names
}

async fn a_scim_group_gains_and_loses_the_member_a_package_gives(backend: Backend) {
    let w = World::new(backend).await;
    let key = SecretKey::from_hex(&"5a".repeat(32)).unwrap();
    let service = w.service.clone().with_secret_key(Some(key));
    let (url, token) = target();
    // The target's group, made there by its own administrator.
    let name = format!("qm-{backend:?}-{}", rand::random::<u32>());
    let group = scim(
        reqwest::Method::POST,
        "Groups",
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name})),
    )
    .await;
    let group = group["id"].as_str().unwrap().to_owned();

    let grace = w.actor(w.ids.grace).await;
    let admin = service.administrator(&grace).unwrap();
    // Without a usable base URL, or a token, nothing is added.
    assert!(admin.add_scim_system("Bad", "ftp://x/v2", &token, true).await.is_err());
    assert!(admin.add_scim_system("Bad", &url, " ", true).await.is_err());
    let system = admin.add_scim_system(&format!("Directory {name}"), &url, &token, true).await.unwrap();
    let stored: String = sqlx::query_scalar("SELECT secret FROM resource_systems WHERE id = $1")
        .bind(system.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert!(stored.starts_with("v1:") && !stored.contains(&token), "the token is sealed");
    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE after LIKE $1 OR before LIKE $1 OR reason LIKE $1")
            .bind(format!("%{token}%"))
            .fetch_one(w.db().pool())
            .await
            .unwrap();
    assert_eq!(audited, 0, "and never audited in the clear");

    let linus = w.actor(w.ids.linus).await;
    let eng: CatalogId = CatalogId(
        sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Engineering'")
            .fetch_one(w.db().pool())
            .await
            .unwrap(),
    );
    // Binding a target's group is for administrators; Grace holds Engineering's roles through it.
    let owner = service.catalog_owner(&grace, eng).unwrap();
    let roles = owner.add_resource_as(system, &group, &name, "A SCIM group", &["Member"]).await.unwrap();
    let pm = service.package_manager(&linus, eng).unwrap();
    let package = pm.create_package(&format!("SCIM {name}"), "", &roles).await.unwrap();
    let policy = pm.create_policy(Policy::new(package, "Everyone", RequestorScope::Nobody, vec![])).await.unwrap();
    let am = service.assignment_manager(&linus, eng).unwrap();
    // A catalog owner who is not an administrator cannot bind a target's group (they could
    // give it to themselves), and a connected system's group has one role.
    let sofia = w.actor(w.ids.sofia).await;
    let sales_owner = service.catalog_owner(&sofia, sales(&w).await).unwrap();
    let refused = sales_owner.add_resource_as(system, &group, "Mine", "", &["Member"]).await.unwrap_err();
    assert!(matches!(refused, quartermaster::domain::DomainError::Forbidden(_)), "{refused:?}");
    assert!(owner.add_resource_as(system, &group, "Two", "", &["Member", "Owner"]).await.is_err());
    // Someone else is in the target already, whose name the filter must tell apart.
    scim(
        reqwest::Method::POST,
        "Users",
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("not-maya-{name}@x.example")})),
    )
    .await;
    am.assign_directly(w.ids.maya, package, policy, None, "pairing").await.unwrap();
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(members(&group).await, ["maya@quartermaster.example"], "Maya is in the target's group");
    let state: String = sqlx::query_scalar("SELECT state FROM assignments WHERE user_id = $1 AND package_id = $2")
        .bind(w.ids.maya.0)
        .bind(package.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(state, "delivered");

    let assignment: i64 = sqlx::query_scalar("SELECT id FROM assignments WHERE user_id = $1 AND package_id = $2")
        .bind(w.ids.maya.0)
        .bind(package.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    // Her email changes at the identity provider before she is removed: the target's id kept
    // when she was added still finds her account.
    sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
        .bind(format!("maya.{name}@quartermaster.example"))
        .bind(w.ids.maya.0)
        .execute(w.db().pool())
        .await
        .unwrap();
    am.remove_from_package(package, AssignmentId(assignment), "done").await.unwrap();
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(members(&group).await, Vec::<String>::new(), "and gone once removed");
    let removed: String = sqlx::query_scalar("SELECT g.state FROM grants g WHERE g.assignment_id = $1")
        .bind(assignment)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(removed, "removed");

    // Someone with the database points the system elsewhere: the token, sealed for the address
    // it was given for, does not open, and nothing is sent there.
    sqlx::query("UPDATE resource_systems SET config = $1 WHERE id = $2")
        .bind(json!({"base_url": "http://127.0.0.1:9/v2", "create_users": true}).to_string())
        .bind(system.0)
        .execute(w.db().pool())
        .await
        .unwrap();
    am.assign_directly(w.ids.omar, package, policy, None, "").await.unwrap();
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    let error: String =
        sqlx::query_scalar("SELECT o.last_error FROM outbox o JOIN grants g ON g.id = o.grant_id WHERE g.user_id = $1")
            .bind(w.ids.omar.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap();
    assert!(error.contains("does not open"), "{error}");
}

async fn sales(w: &World) -> CatalogId {
    CatalogId(
        sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Sales & Marketing'")
            .fetch_one(w.db().pool())
            .await
            .unwrap(),
    )
}

/// A group made in the target by its own administrator; its id there.
async fn new_group(name: &str) -> String {
    let group = scim(
        reqwest::Method::POST,
        "Groups",
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name})),
    )
    .await;
    group["id"].as_str().unwrap().to_owned()
}

/// A package in Engineering whose one role is membership of the target's `group`, and a
/// policy for direct assignment by Linus (its package manager).
async fn package_for(
    service: &Service,
    ids: &quartermaster::demo::DemoIds,
    system: ResourceSystemId,
    group: &str,
) -> (PackageId, PolicyId) {
    let actor = async |id| service.actor(id).await.unwrap().unwrap();
    let (grace, linus) = (actor(ids.grace).await, actor(ids.linus).await);
    let eng = CatalogId(
        sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Engineering'")
            .fetch_one(service.db().pool())
            .await
            .unwrap(),
    );
    let name = format!("group {group}");
    let roles =
        service.catalog_owner(&grace, eng).unwrap().add_resource_as(system, group, &name, "", &["Member"]).await;
    let pm = service.package_manager(&linus, eng).unwrap();
    let package = pm.create_package(&name, "", &roles.unwrap()).await.unwrap();
    let policy = pm.create_policy(Policy::new(package, "Direct", RequestorScope::Nobody, vec![])).await.unwrap();
    (package, policy)
}

/// A SCIM target's front door that the test controls: it answers 429 with `Retry-After: 120`,
/// or passes every call on to the real target (after a short delay, so calls at once are
/// seen), counting calls and the most at once.
#[derive(Clone, Default)]
struct FrontDoor {
    throttle: Arc<std::sync::atomic::AtomicBool>,
    calls: Arc<AtomicUsize>,
    /// PATCH calls (a membership added or taken away), by the group's path.
    patches: Arc<std::sync::Mutex<Vec<String>>>,
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl FrontDoor {
    /// Open on `port` (127.0.0.1), in front of the target the test command started.
    async fn open(port: u16) -> Self {
        use axum::{body::Bytes, extract::State, http, response::IntoResponse};
        let door = FrontDoor::default();
        let (url, _) = target();
        let upstream = url::Url::parse(&url).unwrap();
        let origin = format!("http://{}:{}", upstream.host_str().unwrap(), upstream.port().unwrap());
        let relay = async move |State((door, origin)): State<(FrontDoor, String)>,
                                method: http::Method,
                                uri: http::Uri,
                                headers: http::HeaderMap,
                                body: Bytes| {
            door.calls.fetch_add(1, SeqCst);
            if method == http::Method::PATCH {
                door.patches.lock().unwrap().push(uri.path().to_owned());
            }
            let at_once = door.now.fetch_add(1, SeqCst) + 1;
            door.most.fetch_max(at_once, SeqCst);
            let answer = if door.throttle.load(SeqCst) {
                (http::StatusCode::TOO_MANY_REQUESTS, [(http::header::RETRY_AFTER, "120")], "slow down").into_response()
            } else {
                tokio::time::sleep(std::time::Duration::from_millis(40)).await;
                let mut call = reqwest::Client::new().request(method, format!("{origin}{uri}")).body(body);
                for name in [http::header::AUTHORIZATION, http::header::CONTENT_TYPE, http::header::ACCEPT] {
                    if let Some(v) = headers.get(&name) {
                        call = call.header(name, v);
                    }
                }
                let answer = call.send().await.unwrap();
                let status = answer.status();
                let kind = answer.headers().get(http::header::CONTENT_TYPE).cloned();
                let mut response = answer.bytes().await.unwrap().into_response();
                *response.status_mut() = status;
                if let Some(kind) = kind {
                    response.headers_mut().insert(http::header::CONTENT_TYPE, kind);
                }
                response
            };
            door.now.fetch_sub(1, SeqCst);
            answer
        };
        let router = axum::Router::new().fallback(relay).with_state((door.clone(), origin));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        door
    }
}

async fn pending_entries(w: &World) -> Vec<(i64, i64)> {
    sqlx::query_as("SELECT attempts, next_attempt_at FROM outbox WHERE state = 'pending' ORDER BY id")
        .fetch_all(w.db().pool())
        .await
        .unwrap()
}

/// A target that is down, then throttling, then back: the work waits without spending
/// attempts, honours `Retry-After`, and is delivered once the target is back, at most the
/// system's limit of calls at once. A call the target refuses outright fails at once.
async fn an_unavailable_target_is_waited_for_and_called_within_its_limit(backend: Backend) {
    let w = World::new(backend).await;
    let service = w.service.clone().with_secret_key(Some(SecretKey::from_hex(&"5b".repeat(32)).unwrap()));
    let (_, token) = target();
    let grace = w.actor(w.ids.grace).await;
    let admin = service.administrator(&grace).unwrap();
    // Nothing listens on the port yet: the target is down.
    let port = common::free_port();
    let door_url = format!("http://127.0.0.1:{port}/v2");
    let system = admin.add_scim_system(&format!("Flaky {port}"), &door_url, &token, true).await.unwrap();
    assert!(admin.edit_scim_system(system, &door_url, None, true, 0, None).await.is_err(), "at least one call");
    assert!(
        admin.edit_scim_system(system, "http://127.0.0.1:1/v2", None, true, 2, None).await.is_err(),
        "new URL, no token"
    );
    admin.edit_scim_system(system, &door_url, None, true, 2, None).await.unwrap();
    let group = new_group(&format!("flaky-{backend:?}-{}", rand::random::<u32>())).await;
    let (package, policy) = package_for(&service, &w.ids, system, &group).await;
    let linus = w.actor(w.ids.linus).await;
    let am = service.assignment_manager_of(&linus, package).await.unwrap();
    let people = [w.ids.maya, w.ids.omar, w.ids.jamal, w.ids.hana, w.ids.tom, w.ids.kai];
    for person in &people {
        am.assign_directly(*person, package, policy, None, "").await.unwrap();
    }

    // Down: the first calls (two at once at most) find nobody; the rest wait untried.
    let report = service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!((report.claimed(), report.delivered, report.failed), (6, 0, 0), "{report:?}");
    assert!((1..=2).contains(&report.retried) && report.deferred == 6 - report.retried, "{report:?}");
    let now = w.clock.now().timestamp_millis();
    let entries = pending_entries(&w).await;
    assert!(entries.iter().all(|e| e.0 == 0), "an unavailable target spends no attempt: {entries:?}");
    assert!(entries.iter().all(|e| e.1 > now && e.1 <= now + 10_000), "{entries:?}");

    // Throttling: the target's Retry-After is honoured, for the system's other work too.
    let door = FrontDoor::open(port).await;
    door.throttle.store(true, SeqCst);
    w.clock.advance(Duration::hours(1));
    let report = service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!((report.claimed(), report.delivered), (6, 0), "{report:?}");
    assert!((1..=2).contains(&door.calls.load(SeqCst)), "{} calls", door.calls.load(SeqCst));
    let due = w.clock.now().timestamp_millis() + 120_000;
    assert!(pending_entries(&w).await.iter().all(|e| e.1 == due), "{:?}", pending_entries(&w).await);
    w.clock.advance(Duration::seconds(60));
    assert_eq!(service.deliver_pending(&Operator::Workers, 50).await.unwrap().claimed(), 0, "not before");
    // Work queued meanwhile waits for the system too, on every instance (the pause is kept
    // with the system): nothing is claimed, nothing reaches the target.
    am.assign_directly(w.ids.lucas, package, policy, None, "").await.unwrap();
    let calls = door.calls.load(SeqCst);
    assert_eq!(service.deliver_pending(&Operator::Workers, 50).await.unwrap().claimed(), 0, "the system waits");
    assert_eq!(door.calls.load(SeqCst), calls);

    // Back: everyone is delivered, two calls at once and never more.
    door.throttle.store(false, SeqCst);
    door.most.store(0, SeqCst);
    w.clock.advance(Duration::seconds(61));
    let report = service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(report.delivered, 7, "{report:?}");
    assert_eq!(door.most.load(SeqCst), 2, "the system's limit, used");
    let mut expected = Vec::new();
    for person in people.iter().chain([&w.ids.lucas]) {
        expected.push(
            sqlx::query_scalar::<_, String>("SELECT email FROM users WHERE id = $1")
                .bind(person.0)
                .fetch_one(w.db().pool())
                .await
                .unwrap(),
        );
    }
    let mut seen = members(&group).await;
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);

    // A group the target does not have: refused (404), failed at the first attempt.
    let (missing, missing_policy) = package_for(&service, &w.ids, system, "no-such-group").await;
    service
        .assignment_manager_of(&linus, missing)
        .await
        .unwrap()
        .assign_directly(w.ids.maya, missing, missing_policy, None, "")
        .await
        .unwrap();
    let report = service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    let (attempts, error): (i64, String) =
        sqlx::query_as("SELECT attempts, last_error FROM outbox WHERE state = 'failed'")
            .fetch_one(w.db().pool())
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert!(error.contains("404"), "{error}");

    // Pointed at another target (with its token), the ids kept for people there are forgotten.
    let kept = "SELECT COUNT(*) FROM connector_accounts WHERE system_id = $1";
    let accounts = async || sqlx::query_scalar::<_, i64>(kept).bind(system.0).fetch_one(w.db().pool()).await.unwrap();
    assert_eq!(accounts().await, 7, "one per person, Maya's once for both groups");
    admin.edit_scim_system(system, &door_url, None, false, 2, None).await.unwrap();
    assert_eq!(accounts().await, 7, "the same target");
    admin.edit_scim_system(system, "http://localhost:1/v2", Some(&token), false, 2, None).await.unwrap();
    assert_eq!(accounts().await, 0);
}

/// Two instances: while one is taking Maya out of the group (checked, its call under way),
/// she is assigned again. The other instance does not add her meanwhile (the target would
/// see the addition and then the removal, and she would end outside the group she holds);
/// the addition is delivered once the removal is done.
async fn one_membership_is_never_delivered_twice_at_once(backend: Backend) {
    let w = World::new(backend).await;
    let service = w.service.clone().with_secret_key(Some(SecretKey::from_hex(&"5c".repeat(32)).unwrap()));
    let (url, token) = target();
    let grace = w.actor(w.ids.grace).await;
    let system = service
        .administrator(&grace)
        .unwrap()
        .add_scim_system(&format!("Ordered {backend:?}"), &url, &token, true)
        .await
        .unwrap();
    let group = new_group(&format!("ordered-{backend:?}-{}", rand::random::<u32>())).await;
    let (package, policy) = package_for(&service, &w.ids, system, &group).await;
    let linus = w.actor(w.ids.linus).await;
    let am = service.assignment_manager_of(&linus, package).await.unwrap();
    am.assign_directly(w.ids.maya, package, policy, None, "").await.unwrap();
    let first = newest_assignment(w.db(), w.ids.maya, package).await;
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(members(&group).await, ["maya@quartermaster.example"]);

    am.remove_from_package(package, first, "rotating").await.unwrap();
    let mut one = crate::race::park_at(&service, "delivery.calling");
    let removing = {
        let s = one.service.clone();
        tokio::spawn(async move { s.deliver_pending(&Operator::Workers, 50).await })
    };
    one.arrived.recv().await.unwrap();
    am.assign_directly(w.ids.maya, package, policy, None, "back again").await.unwrap();
    let again = newest_assignment(w.db(), w.ids.maya, package).await;
    assert_ne!(again, first);
    let other = service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(other.claimed(), 0, "the other instance waits for the removal under way: {other:?}");
    one.release();
    assert_eq!(removing.await.unwrap().unwrap().delivered, 1);
    assert_eq!(members(&group).await, Vec::<String>::new());
    let after = service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(after.delivered, 1, "{after:?}");
    assert_eq!(members(&group).await, ["maya@quartermaster.example"], "she holds it again, and is in the group");
    let state: String = sqlx::query_scalar("SELECT state FROM assignments WHERE id = $1")
        .bind(again.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(state, "delivered");
}

async fn newest_assignment(db: &quartermaster::store::Db, user: UserId, package: PackageId) -> AssignmentId {
    AssignmentId(
        sqlx::query_scalar("SELECT MAX(id) FROM assignments WHERE user_id = $1 AND package_id = $2")
            .bind(user.0)
            .bind(package.0)
            .fetch_one(db.pool())
            .await
            .unwrap(),
    )
}

/// One call a receiver heard: its id, timestamp and signature headers, its body, and the
/// status it was answered.
type Heard = (String, i64, String, Value, u16, String);

/// A webhook receiver the test runs: it keeps every call (its headers and body) and answers
/// `fail_with` (500 unless set) to the next `fail` calls, 204 after.
#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<std::sync::Mutex<Vec<Heard>>>,
    fail: Arc<AtomicUsize>,
    fail_with: Arc<AtomicUsize>,
}

impl Receiver {
    async fn open() -> (Self, String) {
        use axum::{body::Bytes, extract::State, http};
        let receiver = Receiver::default();
        let hear = async |State(r): State<Receiver>, headers: http::HeaderMap, body: Bytes| {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let failing = r.fail.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok();
            let status = match (failing, r.fail_with.load(SeqCst)) {
                (false, _) => 204,
                (true, 0) => 500,
                (true, code) => u16::try_from(code).unwrap(),
            };
            let body = String::from_utf8(body.to_vec()).unwrap();
            r.calls.lock().unwrap().push((
                header("webhook-id"),
                header("webhook-timestamp").parse().unwrap(),
                header("webhook-signature"),
                serde_json::from_str(&body).unwrap(),
                status,
                body,
            ));
            http::StatusCode::from_u16(status).unwrap()
        };
        let router = axum::Router::new().route("/hooks/qm", axum::routing::post(hear)).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/qm", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (receiver, url)
    }

    /// The calls so far, each one's signature checked as a receiver would (docs/webhooks.md),
    /// over the body as it came.
    fn calls(&self) -> Vec<Heard> {
        let calls = self.calls.lock().unwrap().clone();
        for (id, timestamp, signature, _, _, body) in &calls {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"a shared secret, long enough").unwrap();
            mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
            let expected =
                format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
            assert_eq!(signature, &expected, "signed as docs/webhooks.md says");
        }
        calls
    }
}

/// A package whose role is a webhook resource: each grant and each revoke reaches the
/// receiver signed, once answered 2xx; a failed call is retried with the same idempotency
/// key; nothing is sent twice for one change.
async fn a_webhook_hears_each_grant_and_revoke_once_signed(backend: Backend) {
    let w = World::new(backend).await;
    let service = w.service.clone().with_secret_key(Some(SecretKey::from_hex(&"5d".repeat(32)).unwrap()));
    let (receiver, url) = Receiver::open().await;
    let grace = w.actor(w.ids.grace).await;
    let admin = service.administrator(&grace).unwrap();
    assert!(admin.add_webhook_system("Hooks", &url, "too short", false).await.is_err());
    assert!(admin
        .add_webhook_system("Hooks", "http://hooks.example/qm", "a shared secret, long enough", false)
        .await
        .is_err());
    let system = admin.add_webhook_system("Hooks", &url, "a shared secret, long enough", false).await.unwrap();
    let sealed: String = sqlx::query_scalar("SELECT secret FROM resource_systems WHERE id = $1")
        .bind(system.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert!(!sealed.contains("shared secret"), "sealed at rest");
    let (package, policy) = package_for(&service, &w.ids, system, "payroll-app").await;
    let linus = w.actor(w.ids.linus).await;
    let am = service.assignment_manager_of(&linus, package).await.unwrap();

    am.assign_directly(w.ids.maya, package, policy, None, "").await.unwrap();
    assert_eq!(service.deliver_pending(&Operator::Workers, 50).await.unwrap().delivered, 1);
    let calls = receiver.calls();
    assert_eq!(calls.len(), 1);
    let (id, timestamp, _, event, _, _) = &calls[0];
    assert_eq!(*timestamp, w.clock.now().timestamp());
    assert_eq!(event["type"], "access.granted");
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["person"]["email"], "maya@quartermaster.example");
    assert_eq!(event["resource"]["external_id"], "payroll-app");

    // The receiver fails once: the change is retried, with the same key, and done.
    receiver.fail.store(1, SeqCst);
    am.assign_directly(w.ids.omar, package, policy, None, "").await.unwrap();
    assert_eq!(service.deliver_pending(&Operator::Workers, 50).await.unwrap().retried, 1);
    w.clock.advance(Duration::hours(1));
    assert_eq!(service.deliver_pending(&Operator::Workers, 50).await.unwrap().delivered, 1);
    let calls = receiver.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!((calls[1].0.as_str(), calls[1].4), (calls[2].0.as_str(), 500), "the failed call");
    assert_eq!(calls[2].4, 204);
    assert_eq!(calls[2].3["person"]["email"], "omar@quartermaster.example");

    // Taken back: one revoke; nothing more is sent on later passes.
    am.remove_from_package(package, newest_assignment(w.db(), w.ids.maya, package).await, "moved").await.unwrap();
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    w.clock.advance(Duration::days(1));
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    let calls = receiver.calls();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[3].3["type"], "access.revoked");
    assert_eq!(calls[3].3["person"]["email"], "maya@quartermaster.example");
    let answered: std::collections::HashSet<&str> = calls.iter().filter(|c| c.4 == 204).map(|c| c.0.as_str()).collect();
    assert_eq!(answered.len(), 3, "one answered call per change: {calls:?}");
    let first: i64 = sqlx::query_scalar("SELECT MIN(id) FROM outbox").fetch_one(w.db().pool()).await.unwrap();
    assert_eq!(calls[0].0, format!("qm-outbox-{first}"), "the key names the change");

    // A call the receiver refuses outright (422) fails at once, for an administrator.
    receiver.fail.store(1, SeqCst);
    receiver.fail_with.store(422, SeqCst);
    am.assign_directly(w.ids.hana, package, policy, None, "").await.unwrap();
    let report = service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!((report.failed, report.retried), (1, 0), "{report:?}");
}

/// A webhook that asks for lifecycle events hears each request for a package granting one of
/// its roles through its life (created, approved, delivered, removed), once each, signed,
/// with the grant and the revoke in between; a request for another package tells it nothing;
/// a receiver that was unavailable hears the event once it is back, under the same key.
async fn a_webhook_hears_the_lifecycle_of_requests_once_each(backend: Backend) {
    use quartermaster::domain::policy::{ApproverSpec, Stage};
    use quartermaster::domain::request::Decision;
    let w = World::new(backend).await;
    let service = w.service.clone().with_secret_key(Some(SecretKey::from_hex(&"5e".repeat(32)).unwrap()));
    let (receiver, url) = Receiver::open().await;
    let grace = w.actor(w.ids.grace).await;
    let admin = service.administrator(&grace).unwrap();
    let system = admin.add_webhook_system("Lifecycle", &url, "a shared secret, long enough", true).await.unwrap();
    let (package, _) = package_for(&service, &w.ids, system, "crm-hooks").await;
    let eng: i64 = sqlx::query_scalar("SELECT catalog_id FROM access_packages WHERE id = $1")
        .bind(package.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    let linus = w.actor(w.ids.linus).await;
    let mut asking = Policy::new(package, "Ask", RequestorScope::AllMembers, vec![]);
    asking.approval.stages.push(Stage { timeout_days: 5, ..Stage::new(vec![ApproverSpec::User { id: w.ids.sofia }]) });
    service.package_manager(&linus, CatalogId(eng)).unwrap().create_policy(asking).await.unwrap();
    let (jamal, sofia) = (w.actor(w.ids.jamal).await, w.actor(w.ids.sofia).await);
    let told = async || service.deliver_events(&Operator::Workers, 50).await.unwrap();

    // Created: told once; a request for a package without its role is not told.
    let asked = service.submit_request(&jamal, common::ask(package, "customer calls")).await.unwrap();
    service.submit_request(&jamal, common::ask(w.ids.developer_tools, "builds")).await.unwrap();
    assert_eq!(told().await, 1);
    let calls = receiver.calls();
    assert_eq!(calls.len(), 1);
    let created = &calls[0].3;
    assert_eq!(
        (created["type"].as_str(), created["id"].as_str()),
        (Some("request.created"), Some(calls[0].0.as_str()))
    );
    assert_eq!(created["request"]["id"], asked.request.0);
    assert_eq!(created["person"]["email"], "jamal@quartermaster.example");
    assert_eq!(created["package"]["id"], package.0);

    // Approved, then delivered: the grant goes out between them.
    service.decide(&sofia, asked.request, Decision::Approve, "fine").await.unwrap();
    assert_eq!(told().await, 1);
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(told().await, 1);
    let calls = receiver.calls();
    let types: Vec<&str> = calls.iter().map(|c| c.3["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["request.created", "request.approved", "access.granted", "assignment.delivered"]);
    assert_eq!(calls[1].3["by"], "sofia@quartermaster.example");
    assert_eq!(calls[1].3["reason"], "fine");
    let assignment = calls[1].3["assignment"]["id"].as_i64().unwrap();
    assert_eq!(calls[3].3["assignment"]["id"], assignment);

    // Removed while the receiver is unavailable (503): the event waits, spends no attempt,
    // and is told once the receiver is back, under the same key.
    let am = service.assignment_manager_of(&linus, package).await.unwrap();
    am.remove_from_package(package, AssignmentId(assignment), "moved teams").await.unwrap();
    receiver.fail.store(1, SeqCst);
    receiver.fail_with.store(503, SeqCst);
    assert_eq!(told().await, 1);
    let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM webhook_events WHERE event = 'assignment.removed'")
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(attempts, 0, "an unavailable receiver costs no attempt");
    assert_eq!(told().await, 0, "the system is paused");
    w.clock.advance(Duration::minutes(2));
    assert_eq!(told().await, 1);
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    w.clock.advance(Duration::days(1));
    assert_eq!(told().await, 0, "nothing more to tell");
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    let calls = receiver.calls();
    let answered: Vec<(&str, &str)> =
        calls.iter().filter(|c| c.4 == 204).map(|c| (c.3["type"].as_str().unwrap(), c.0.as_str())).collect();
    let types: Vec<&str> = answered.iter().map(|a| a.0).collect();
    assert_eq!(
        types,
        [
            "request.created",
            "request.approved",
            "access.granted",
            "assignment.delivered",
            "assignment.removed",
            "access.revoked"
        ]
    );
    let keys: std::collections::HashSet<&str> = answered.iter().map(|a| a.1).collect();
    assert_eq!(keys.len(), 6, "one key per change");
    let refused = calls.iter().find(|c| c.4 == 503).unwrap();
    assert_eq!(refused.0, answered[4].1, "the refused call is told again under its key");
    assert_eq!(calls[calls.len() - 2].3["reason"], "moved teams");

    // An event that cannot be read (its request gone) is failed, saying why, not claimed
    // again and again.
    let now = w.clock.now().timestamp_millis();
    sqlx::query(
        "INSERT INTO webhook_events (system_id, event, occurred_at, next_attempt_at, updated_at) \
         VALUES ($1, 'request.created', $2, $2, $2)",
    )
    .bind(system.0)
    .bind(now)
    .execute(w.db().pool())
    .await
    .unwrap();
    assert_eq!(told().await, 1);
    let (state, why): (String, String) = sqlx::query_as(
        "SELECT state, last_error FROM webhook_events WHERE request_id IS NULL AND assignment_id IS NULL",
    )
    .fetch_one(w.db().pool())
    .await
    .unwrap();
    assert_eq!(state, "failed", "{why}");
    assert_eq!(told().await, 0);

    // Lifecycle events off: grants and revokes only.
    let page = admin.edit_webhook_system(system, &url, None, false, 4, None).await;
    page.unwrap();
    service.submit_request(&jamal, common::ask(package, "again")).await.unwrap();
    assert_eq!(told().await, 0);
}

/// The LDAP target the test command started (slapd): URL, suffix, bind DN, password.
fn directory() -> (String, String, String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: run the tests with scripts/test.sh, which starts slapd, or `source \
                 scripts/ldap-peer.sh start` first"
            )
        })
    };
    (var("QM_TEST_LDAP_URL"), var("QM_TEST_LDAP_BASE"), var("QM_TEST_LDAP_BIND_DN"), var("QM_TEST_LDAP_PASSWORD"))
}

/// LDAP over TLS: ldaps:// and StartTLS bind and read with the directory's certificate
/// verified (its CA trusted through `SSL_CERT_FILE`, as an operator trusts an internal CA);
/// a certificate for another name is refused either way, so TLS was in force.
#[tokio::test]
async fn ldaps_and_starttls_bind_with_the_certificate_verified() {
    use quartermaster::connectors::ldap::{Directory, LdapConfig, MemberAttribute};
    let (plain, base, bind_dn, password) = directory();
    let (Ok(ldaps), Ok(ca)) = (std::env::var("QM_TEST_LDAPS_URL"), std::env::var("QM_TEST_LDAP_CA")) else {
        panic!("QM_TEST_LDAPS_URL / QM_TEST_LDAP_CA are not set: scripts/ldap-peer.sh starts slapd with TLS")
    };
    assert_eq!(
        std::env::var("SSL_CERT_FILE").ok().as_deref(),
        Some(ca.as_str()),
        "run with SSL_CERT_FILE=$QM_TEST_LDAP_CA (scripts/test.sh does) so the run's CA is trusted"
    );
    let people = format!("ou=people,{base}");
    let probe = async |url: &str, starttls: bool| {
        let config = LdapConfig::checked(url, starttls, &bind_dn, &people, MemberAttribute::Member).unwrap();
        Directory { config: &config, password: &password }.probe().await
    };
    let said = probe(&ldaps, false).await.unwrap();
    assert!(said.contains("is there"), "{said}");
    let said = probe(&plain, true).await.unwrap();
    assert!(said.contains("is there"), "StartTLS: {said}");
    // The certificate names 127.0.0.1 only.
    let by_name = |url: &str| url.replace("127.0.0.1", "localhost");
    for (url, starttls) in [(by_name(&ldaps), false), (by_name(&plain), true)] {
        let refused = probe(&url, starttls).await.unwrap_err();
        assert!(
            refused.message().contains("certificate not valid for name"),
            "{url} (StartTLS {starttls}): {refused:?}"
        );
    }
}

/// Straight to the directory, as its own administrator would.
async fn ldap_admin() -> ldap3::Ldap {
    let (url, _, bind_dn, password) = directory();
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&url).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(&bind_dn, &password).await.unwrap().success().unwrap();
    ldap
}

/// The group's `member` values, sorted.
async fn ldap_members(group: &str) -> Vec<String> {
    let mut ldap = ldap_admin().await;
    let (entries, _) =
        ldap.search(group, ldap3::Scope::Base, "(objectClass=*)", vec!["member"]).await.unwrap().success().unwrap();
    let entry = ldap3::SearchEntry::construct(entries.into_iter().next().unwrap());
    let mut members = entry.attrs.get("member").cloned().unwrap_or_default();
    members.sort();
    members
}

/// An LDAP directory's groups under a base are imported into a catalog a page at a time, read
/// with paged results by an account the directory caps at 100 entries a plain search: the
/// progress shows after each page, a worker stopped mid-import is taken over from the next
/// page, a group bound already is counted and not bound twice, and a second import binds
/// nothing. SCIM groups are imported the same way.
async fn a_directory_s_groups_are_imported_a_page_at_a_time(backend: Backend) {
    use std::collections::HashSet;
    let w = World::new(backend).await;
    let service = w.service.clone().with_secret_key(Some(SecretKey::from_hex(&"6a".repeat(32)).unwrap()));
    let (url, base, bind_dn, _) = directory();
    let tag = format!("{backend:?}-{}", rand::random::<u32>()).to_lowercase();
    let under = format!("ou=imp-{tag},ou=groups,{base}");
    let mut ldap = ldap_admin().await;
    let ou = format!("imp-{tag}");
    let unit = vec![("objectClass", HashSet::from(["organizationalUnit"])), ("ou", HashSet::from([ou.as_str()]))];
    ldap.add(&under, unit).await.unwrap().success().unwrap();
    for n in 0..150 {
        let cn = format!("team-{n:03}");
        let attrs = vec![
            ("objectClass", HashSet::from(["groupOfNames"])),
            ("cn", HashSet::from([cn.as_str()])),
            ("member", HashSet::from([bind_dn.as_str()])),
        ];
        ldap.add(&format!("cn={cn},{under}"), attrs).await.unwrap().success().unwrap();
    }
    // Not the directory's administrator: a service account, whose plain searches stop at 100.
    let importer = format!("cn=importer-{tag},ou=people,{base}");
    let importer_password = format!("importer {tag}");
    let cn = format!("importer-{tag}");
    let account = vec![
        ("objectClass", HashSet::from(["inetOrgPerson"])),
        ("cn", HashSet::from([cn.as_str()])),
        ("sn", HashSet::from(["importer"])),
        ("userPassword", HashSet::from([importer_password.as_str()])),
    ];
    ldap.add(&importer, account).await.unwrap().success().unwrap();
    let grace = w.actor(w.ids.grace).await;
    let admin = service.administrator(&grace).unwrap();
    let settings = quartermaster::connectors::ldap::LdapConfig {
        url,
        starttls: false,
        bind_dn: importer.clone(),
        people_base: format!("ou=people,{base}"),
        member_attribute: Default::default(),
        placeholder: None,
        max_in_flight: None,
        removal_threshold: None,
    };
    let system = admin.add_ldap_system(&format!("Import {tag}"), settings, &importer_password).await.unwrap();
    let eng = CatalogId(
        sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Engineering'")
            .fetch_one(w.db().pool())
            .await
            .unwrap(),
    );
    // One group bound by hand beforehand.
    service
        .catalog_owner(&grace, eng)
        .unwrap()
        .add_resource_as(system, &format!("cn=team-007,{under}"), "Team 7", "", &["Member"])
        .await
        .unwrap();
    assert!(admin.start_group_import(system, eng, "").await.is_err(), "an LDAP import needs its base");
    let job = admin.start_group_import(system, eng, &under).await.unwrap();
    assert!(admin.start_group_import(system, eng, &under).await.is_err(), "one import of a system at a time");

    // A worker binds the first page, then stops before recording the second.
    let mut parked = crate::race::park_at(&service, "import.page");
    let first = tokio::spawn({
        let s = parked.service.clone();
        async move { s.resume_group_imports().await }
    });
    parked.arrived.recv().await.unwrap();
    parked.release();
    parked.arrived.recv().await.unwrap();
    let shown = admin.group_imports(system).await.unwrap();
    assert_eq!(shown.len(), 1);
    let now = &shown[0];
    assert_eq!((now.id, now.running, now.done, now.total), (job, true, 100, Some(150)), "{now:?}");
    assert_eq!((now.imported, now.already), (99, 1));
    first.abort();
    let _ = first.await;
    // Its claim runs out; the next pass takes the job up from the second page.
    assert_eq!(service.resume_group_imports().await.unwrap(), 0, "still claimed");
    w.clock.advance(Duration::minutes(2));
    assert_eq!(service.resume_group_imports().await.unwrap(), 1);
    let done = &admin.group_imports(system).await.unwrap()[0];
    assert_eq!((done.running, done.failed, done.done, done.imported, done.already), (false, false, 150, 149, 1));
    let bound: Vec<(String, i64)> = sqlx::query_as(
        "SELECT r.external_id, (SELECT COUNT(*) FROM resource_roles rr WHERE rr.resource_id = r.id) \
         FROM resources r JOIN catalog_resources cr ON cr.resource_id = r.id \
         WHERE r.system_id = $1 AND cr.catalog_id = $2",
    )
    .bind(system.0)
    .bind(eng.0)
    .fetch_all(w.db().pool())
    .await
    .unwrap();
    assert_eq!(bound.len(), 150, "each group once");
    assert!(bound.iter().all(|(_, roles)| *roles == 1), "one role each: its membership");
    let team = sqlx::query_scalar::<_, String>("SELECT name FROM resources WHERE external_id = $1")
        .bind(format!("cn=team-042,{under}"))
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(team, "team-042", "named by its cn");

    // Again: nothing new.
    admin.start_group_import(system, eng, &under).await.unwrap();
    service.resume_group_imports().await.unwrap();
    let again = &admin.group_imports(system).await.unwrap()[0];
    assert_eq!((again.running, again.imported, again.already), (false, 0, 150));

    // A SCIM target's groups: those made there are bound.
    let (scim_url, token) = target();
    let scim_system = admin.add_scim_system(&format!("Import SCIM {tag}"), &scim_url, &token, false).await.unwrap();
    let made = [new_group(&format!("imp-a-{tag}")).await, new_group(&format!("imp-b-{tag}")).await];
    admin.start_group_import(scim_system, eng, "").await.unwrap();
    service.resume_group_imports().await.unwrap();
    let scim_job = &admin.group_imports(scim_system).await.unwrap()[0];
    assert!(!scim_job.running && !scim_job.failed && scim_job.imported >= 2, "{scim_job:?}");
    for id in made {
        let name: String = sqlx::query_scalar("SELECT name FROM resources WHERE system_id = $1 AND external_id = $2")
            .bind(scim_system.0)
            .bind(&id)
            .fetch_one(w.db().pool())
            .await
            .unwrap();
        assert!(name.starts_with("imp-"), "{name}");
    }
    // A webhook system has no groups to import.
    let hooks = admin.add_webhook_system("No groups", "http://127.0.0.1:9/h", "a shared secret, long enough", false);
    let hooks = hooks.await.unwrap();
    assert!(admin.start_group_import(hooks, eng, "").await.is_err());
}

/// Two packages grant one LDAP group: the group follows who holds either, keeps a person
/// while one of them does, and keeps the placeholder when its last member goes.
async fn an_ldap_group_follows_the_packages_that_grant_it(backend: Backend) {
    use ldap3::Mod;
    use std::collections::HashSet;
    let w = World::new(backend).await;
    let service = w.service.clone().with_secret_key(Some(SecretKey::from_hex(&"5e".repeat(32)).unwrap()));
    let (url, base, bind_dn, password) = directory();
    // This run's people and group, made by the directory's administrator.
    let tag = format!("{backend:?}-{}", rand::random::<u32>()).to_lowercase();
    let people = format!("ou=run-{tag},ou=people,{base}");
    let group = format!("cn=qm-{tag},ou=groups,{base}");
    let mut ldap = ldap_admin().await;
    ldap.add(
        &people,
        vec![
            ("objectClass", HashSet::from(["organizationalUnit"])),
            ("ou", HashSet::from([format!("run-{tag}").as_str()])),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let person = |name: &str| format!("cn={name},{people}");
    for name in ["maya", "omar", "decoy"] {
        let mail = format!("{name}@quartermaster.example");
        let attrs = vec![
            ("objectClass", HashSet::from(["inetOrgPerson"])),
            ("cn", HashSet::from([name])),
            ("sn", HashSet::from([name])),
            ("mail", HashSet::from([mail.as_str()])),
        ];
        ldap.add(&person(name), attrs).await.unwrap().success().unwrap();
    }
    let decoy = person("decoy");
    ldap.add(
        &group,
        vec![("objectClass", HashSet::from(["groupOfNames"])), ("member", HashSet::from([decoy.as_str()]))],
    )
    .await
    .unwrap()
    .success()
    .unwrap();

    let grace = w.actor(w.ids.grace).await;
    let admin = service.administrator(&grace).unwrap();
    let settings = |url: &str| quartermaster::connectors::ldap::LdapConfig {
        url: url.to_owned(),
        starttls: false,
        bind_dn: bind_dn.clone(),
        people_base: people.clone(),
        member_attribute: Default::default(),
        placeholder: None,
        max_in_flight: None,
        removal_threshold: None,
    };
    let refused = admin.add_ldap_system("Directory", settings("ldap://dir.example"), &password).await;
    assert!(refused.is_err(), "a bind password in clear to another machine");
    let system = admin.add_ldap_system(&format!("Directory {tag}"), settings(&url), &password).await.unwrap();
    let (first, first_policy) = package_for(&service, &w.ids, system, &group).await;
    let linus = w.actor(w.ids.linus).await;
    let eng = CatalogId(
        sqlx::query_scalar("SELECT catalog_id FROM access_packages WHERE id = $1")
            .bind(first.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap(),
    );
    let role = ResourceRoleId(
        sqlx::query_scalar("SELECT resource_role_id FROM package_resource_roles WHERE package_id = $1")
            .bind(first.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap(),
    );
    let pm = service.package_manager(&linus, eng).unwrap();
    let second = pm.create_package(&format!("Second {tag}"), "", &[role]).await.unwrap();
    let second_policy = pm.create_policy(Policy::new(second, "Direct", RequestorScope::Nobody, vec![])).await.unwrap();
    let am = service.assignment_manager(&linus, eng).unwrap();
    am.assign_directly(w.ids.maya, first, first_policy, None, "").await.unwrap();
    am.assign_directly(w.ids.maya, second, second_policy, None, "").await.unwrap();
    am.assign_directly(w.ids.omar, first, first_policy, None, "").await.unwrap();
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    let mut expected = vec![decoy.clone(), person("maya"), person("omar")];
    expected.sort();
    assert_eq!(ldap_members(&group).await, expected);

    // Maya gives up one of the two: she stays in the group; then the other: she is gone.
    am.remove_from_package(first, newest_assignment(w.db(), w.ids.maya, first).await, "").await.unwrap();
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert!(ldap_members(&group).await.contains(&person("maya")), "still held through the second package");
    am.remove_from_package(second, newest_assignment(w.db(), w.ids.maya, second).await, "").await.unwrap();
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(ldap_members(&group).await, [decoy.clone(), person("omar")]);

    // The group's last member goes: the placeholder keeps the group valid, and goes when
    // someone is added again.
    ldap.modify(&group, vec![Mod::Delete("member", HashSet::from([decoy.as_str()]))]).await.unwrap().success().unwrap();
    am.remove_from_package(first, newest_assignment(w.db(), w.ids.omar, first).await, "").await.unwrap();
    let report = service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(ldap_members(&group).await, [format!("cn=quartermaster-placeholder,{people}")]);
    am.assign_directly(w.ids.omar, first, first_policy, None, "").await.unwrap();
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(ldap_members(&group).await, [person("omar")]);
}

/// The connectors page, without JavaScript: an administrator adds a SCIM system (its token
/// never shown again), tests it and sees the target's answer, sees its queue and last success
/// once work is delivered, and a test of a directory with a wrong password says the bind was
/// refused. Others are refused the page.
async fn the_connectors_page_adds_tests_and_shows_a_system(backend: Backend) {
    let app = common::spawn_app(backend, true).await;
    let (url, token) = target();
    let c = common::client();
    app.sign_in(&c, app.ids.grace).await;
    let page = "/admin/connectors";
    let name = format!("Directory {backend:?} {}", rand::random::<u32>());
    let form = [
        ("kind", "scim"),
        ("name", name.as_str()),
        ("url", url.as_str()),
        ("secret", token.as_str()),
        ("create_users", "on"),
    ];
    let res = app.submit(&c, page, "/api/add_connector", &form).await;
    assert_eq!(res.status(), 302);
    let html = app.page(&c, page).await;
    assert!(html.contains(&format!("“{name}” added")), "the outcome, after the redirect");
    assert!(html.contains(&name) && html.contains(&url), "listed with its address");
    assert!(!html.contains(&token), "the token is never shown");
    let system: i64 = sqlx::query_scalar("SELECT id FROM resource_systems WHERE name = $1")
        .bind(&name)
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    // A bad address is a message by its field, and nothing is added.
    let bad = [("kind", "scim"), ("name", "Elsewhere"), ("url", "http://idp.example/v2"), ("secret", "t")];
    app.submit(&c, page, "/api/add_connector", &bad).await;
    let html = app.page(&c, page).await;
    assert!(html.contains("plain http only to this machine"), "why it was refused");
    assert!(!html.contains("Elsewhere"));

    app.submit(&c, page, "/api/test_connector", &[("system_id", system.to_string())]).await;
    let html = app.page(&c, page).await;
    assert!(html.contains("It works: the target answered 200 OK: PATCH supported"), "the target's answer is shown");

    // Its settings changed from the page: the token is kept unless a new one is given, and a
    // new address without one is refused (the token is sealed for the old one).
    let id = system.to_string();
    let keep = [
        ("system_id", id.as_str()),
        ("url", url.as_str()),
        ("secret", ""),
        ("create_users", "on"),
        ("max_in_flight", "3"),
    ];
    app.submit(&c, page, "/api/edit_connector", &keep).await;
    let html = app.page(&c, page).await;
    assert!(html.contains("Saved; the token is kept.") && html.contains("3 calls at once"), "saved");
    let moved = [("system_id", id.as_str()), ("url", "http://localhost:1/v2"), ("secret", ""), ("max_in_flight", "3")];
    app.submit(&c, page, "/api/edit_connector", &moved).await;
    let html = app.page(&c, page).await;
    assert!(html.contains("a new base URL needs the token again"), "refused, saying why");
    assert!(html.contains(&url), "the address is unchanged");

    // Work delivered there shows as its last success.
    let group = new_group(&format!("page-{backend:?}-{}", rand::random::<u32>())).await;
    let (package, policy) = package_for(&app.service, &app.ids, ResourceSystemId(system), &group).await;
    let grace = app.service.actor(app.ids.grace).await.unwrap().unwrap();
    let am = app.service.assignment_manager_of(&grace, package).await.unwrap();
    am.assign_directly(app.ids.maya, package, policy, None, "").await.unwrap();
    let html = app.page(&c, page).await;
    assert!(html.contains(&format!("id=\"connector-{system}\"")), "its row");
    // Without Leptos's hydration markers (`<!>` after a text the client may replace).
    let queue = app.page(&c, &format!("/admin/connectors/{system}")).await.replace("<!>", "");
    assert!(queue.contains("<td>add</td><td>maya@quartermaster.example</td>"), "the queue lists the work waiting");
    app.service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    let views = app.service.administrator(&grace).unwrap().connectors().await.unwrap();
    let view = views.iter().find(|v| v.id == system).unwrap();
    assert_eq!((view.resources, view.queued, view.failed), (1, 0, 0));
    assert!(view.last_success.is_some() && view.last_error.is_empty(), "{view:?}");
    app.submit(&c, page, "/api/check_drift", &[("system_id", system.to_string())]).await;
    let html = app.page(&c, page).await;
    assert!(html.contains("No drift: 1 group(s) hold exactly what is granted."), "the check's answer");
    assert!(html.contains("Drift, checked"), "and kept on the system's row");

    // The system's own page: its queue, its failures, and an import of its groups, whose
    // progress shows there.
    let own = format!("/admin/connectors/{system}");
    let html = app.page(&c, &own).await;
    assert!(html.contains("Nothing is waiting.") && html.contains("Nothing has failed."), "its queues");
    let eng: i64 = sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Engineering'")
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    let import = [("system_id", system.to_string()), ("catalog_id", eng.to_string())];
    let res = app.submit(&c, &own, "/api/import_groups", &import).await;
    assert_eq!(res.status(), 302);
    let html = app.page(&c, &own).await;
    assert!(html.contains("Import started") && html.contains("id=\"imports\""), "started, and listed");
    assert!(html.contains("http-equiv=\"refresh\""), "the page follows a running import");
    app.service.resume_group_imports().await.unwrap();
    let html = app.page(&c, &own).await;
    assert!(html.contains(">done<") && !html.contains("http-equiv=\"refresh\""), "done, and still");

    // A directory with a wrong password: the test says the bind was refused.
    let (ldap_url, base, bind_dn, _) = directory();
    let wrong = [
        ("kind", "ldap"),
        ("name", "Wrong password"),
        ("url", ldap_url.as_str()),
        ("secret", "not the password"),
        ("ldap[bind_dn]", bind_dn.as_str()),
        ("ldap[people_base]", base.as_str()),
        ("ldap[member_attribute]", "member"),
    ];
    app.submit(&c, page, "/api/add_connector", &wrong).await;
    let ldap: i64 = sqlx::query_scalar("SELECT id FROM resource_systems WHERE name = 'Wrong password'")
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    app.submit(&c, page, "/api/test_connector", &[("system_id", ldap.to_string())]).await;
    let html = app.page(&c, page).await;
    assert!(html.contains("refused the bind: result 49"), "the directory's answer");
    // Its settings changed from the page: the right password; the member attribute stays what
    // it was (its groups' schema); a new bind DN without the password again is refused (it is
    // sealed for the old one).
    let (_, _, _, right) = directory();
    let ldap_id = ldap.to_string();
    let fixed = [
        ("system_id", ldap_id.as_str()),
        ("url", ldap_url.as_str()),
        ("secret", right.as_str()),
        ("ldap[bind_dn]", bind_dn.as_str()),
        ("ldap[people_base]", base.as_str()),
        ("ldap[member_attribute]", "uniqueMember"),
        ("max_in_flight", "3"),
    ];
    app.submit(&c, page, "/api/edit_connector", &fixed).await;
    let html = app.page(&c, page).await;
    assert!(html.contains("Saved, with the new password.") && html.contains("· member · 3 calls at once"));
    app.submit(&c, page, "/api/test_connector", &[("system_id", ldap_id.clone())]).await;
    assert!(app.page(&c, page).await.contains("It works: bound as"), "the new password binds");
    let other_dn = format!("cn=someone-else,{base}");
    let moved = [
        ("system_id", ldap_id.as_str()),
        ("url", ldap_url.as_str()),
        ("secret", ""),
        ("ldap[bind_dn]", other_dn.as_str()),
        ("ldap[people_base]", base.as_str()),
        ("max_in_flight", "3"),
    ];
    app.submit(&c, page, "/api/edit_connector", &moved).await;
    let html = app.page(&c, page).await;
    assert!(html.contains("a new URL or bind DN needs the password again"), "refused, saying why");
    let wrong = ("secret", "not the password");
    app.submit(&c, page, "/api/edit_connector", &[fixed[0], fixed[1], wrong, fixed[3], fixed[4], fixed[5], fixed[6]])
        .await;
    // The scheduled check reads every SCIM and LDAP system, and keeps why one could not be read.
    package_for(&app.service, &app.ids, ResourceSystemId(ldap), &format!("cn=nobody-{backend:?},{base}")).await;
    let everything = chrono::Duration::zero();
    assert_eq!(app.service.check_drift_everywhere(&Operator::Workers, everything).await.unwrap(), 2);
    let views = app.service.administrator(&grace).unwrap().connectors().await.unwrap();
    let ldap_view = views.iter().find(|v| v.id == ldap).unwrap();
    assert!(ldap_view.drift.starts_with("not checked") && ldap_view.drift.contains("49"), "{ldap_view:?}");

    // A webhook receiver hearing lifecycle events, added and then changed from the page: a
    // new URL needs the signing secret again; without it nothing changes.
    let hooks = [
        ("kind", "webhook"),
        ("name", "Ticketing"),
        ("url", "https://hooks.example/qm"),
        ("secret", "a signing secret, long enough"),
        ("lifecycle_events", "on"),
    ];
    app.submit(&c, page, "/api/add_connector", &hooks).await;
    let hook: i64 = sqlx::query_scalar("SELECT id FROM resource_systems WHERE name = 'Ticketing'")
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    let html = app.page(&c, page).await;
    assert!(html.contains("signed JSON POST · lifecycle events · 4 calls at once"), "its settings");
    assert!(!html.contains("a signing secret, long enough"), "the secret is never shown");
    let hook_id = hook.to_string();
    let quiet =
        [("system_id", hook_id.as_str()), ("url", "https://hooks.example/qm"), ("secret", ""), ("max_in_flight", "2")];
    app.submit(&c, page, "/api/edit_connector", &quiet).await;
    let html = app.page(&c, page).await;
    assert!(html.contains("Saved; the secret is kept.") && html.contains("signed JSON POST · 2 calls at once"));
    let elsewhere = [
        ("system_id", hook_id.as_str()),
        ("url", "https://other.example/qm"),
        ("secret", ""),
        ("lifecycle_events", "on"),
        ("max_in_flight", "2"),
    ];
    app.submit(&c, page, "/api/edit_connector", &elsewhere).await;
    let html = app.page(&c, page).await;
    assert!(html.contains("a new URL needs the secret again"), "refused, saying why");
    assert!(!html.contains("other.example") && !html.contains("· lifecycle events"), "nothing changed");

    // Not for catalog owners.
    let linus = common::client();
    app.sign_in(&linus, app.ids.linus).await;
    let res = app.server_fn(&linus, "load_connectors").send().await.unwrap();
    assert_eq!(res.status(), 403);
}

/// Changes made behind Quartermaster's back are reported and repaired: a holder taken out
/// is put back, a person whose access ended and an account nobody here knows are taken out;
/// a repair removing more than a tenth of a group waits for a confirmation. Ended access is
/// never re-added.
async fn drift_is_reported_and_repaired_behind_a_threshold(backend: Backend) {
    let w = World::new(backend).await;
    let service = w.service.clone().with_secret_key(Some(SecretKey::from_hex(&"5f".repeat(32)).unwrap()));
    let (url, token) = target();
    let grace = w.actor(w.ids.grace).await;
    let admin = service.administrator(&grace).unwrap();
    let system = admin.add_scim_system(&format!("Drifting {backend:?}"), &url, &token, true).await.unwrap();
    let group = new_group(&format!("drift-{backend:?}-{}", rand::random::<u32>())).await;
    let (package, policy) = package_for(&service, &w.ids, system, &group).await;
    let linus = w.actor(w.ids.linus).await;
    let am = service.assignment_manager_of(&linus, package).await.unwrap();
    for person in [w.ids.maya, w.ids.omar, w.ids.jamal] {
        am.assign_directly(person, package, policy, None, "").await.unwrap();
    }
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    am.remove_from_package(package, newest_assignment(w.db(), w.ids.jamal, package).await, "moved on").await.unwrap();
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    let clean = |r: &quartermaster::views::DriftReport| {
        r.groups.iter().all(|g| g.missing.is_empty() && g.unexpected.is_empty())
    };
    assert!(clean(&admin.drift(system).await.unwrap()), "in line after delivery");

    // Behind its back: Maya taken out; Jamal (whose access ended) and a stranger put in.
    let account = async |user: UserId| -> String {
        sqlx::query_scalar("SELECT external_id FROM connector_accounts WHERE system_id = $1 AND user_id = $2")
            .bind(system.0)
            .bind(user.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap()
    };
    let (maya, jamal) = (account(w.ids.maya).await, account(w.ids.jamal).await);
    let stranger = scim(
        reqwest::Method::POST,
        "Users",
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("stranger-{group}@elsewhere.example")})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = |op: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [op]});
    let path = format!("Groups/{group}");
    scim(
        reqwest::Method::PATCH,
        &path,
        Some(patch(json!({"op": "remove", "path": format!("members[value eq \"{maya}\"]")}))),
    )
    .await;
    scim(
        reqwest::Method::PATCH,
        &path,
        Some(patch(json!({"op": "add", "path": "members", "value": [{"value": jamal}, {"value": stranger}]}))),
    )
    .await;
    // Kai, a person here who holds nothing, added there by hand; and Omar's kept id lost here.
    let kai = scim_user("kai@quartermaster.example").await;
    let add_kai = patch(json!({"op": "add", "path": "members", "value": [{"value": kai}]}));
    scim(reqwest::Method::PATCH, &path, Some(add_kai)).await;
    sqlx::query("DELETE FROM connector_accounts WHERE system_id = $1 AND user_id = $2")
        .bind(system.0)
        .bind(w.ids.omar.0)
        .execute(w.db().pool())
        .await
        .unwrap();

    let report = admin.drift(system).await.unwrap();
    let g = &report.groups[0];
    assert_eq!(g.missing, ["maya@quartermaster.example"]);
    let mut unexpected = g.unexpected.clone();
    unexpected.sort();
    assert_eq!(
        unexpected,
        [
            format!("{stranger} (not known here)"),
            "jamal@quartermaster.example".into(),
            "kai@quartermaster.example".into()
        ],
        "Omar, whose id was lost, is found by asking the target: he is neither missing nor unexpected"
    );

    // Three of four members to remove: refused without a confirmation, and nothing changes.
    let refused = admin.repair_drift(system, false).await.unwrap_err();
    assert!(format!("{refused:?}").contains("confirm"), "{refused:?}");
    let queued = "SELECT COUNT(*) FROM outbox WHERE state = 'pending'";
    assert_eq!(sqlx::query_scalar::<_, i64>(queued).fetch_one(w.db().pool()).await.unwrap(), 0);
    assert_eq!(members(&group).await.len(), 4);

    let done = admin.repair_drift(system, true).await.unwrap();
    assert_eq!(
        done,
        quartermaster::service::Repaired {
            additions_queued: 1,
            removals_queued: 2,
            strangers_removed: 1,
            strangers_not_removed: 0
        }
    );
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    let mut now_in = members(&group).await;
    now_in.sort();
    assert_eq!(
        now_in,
        ["maya@quartermaster.example", "omar@quartermaster.example"],
        "Jamal's ended access is not back"
    );
    assert!(clean(&admin.drift(system).await.unwrap()), "in line after the repair");
    let audited = "SELECT COUNT(*) FROM audit_events WHERE action = 'resource_system.repaired'";
    assert_eq!(sqlx::query_scalar::<_, i64>(audited).fetch_one(w.db().pool()).await.unwrap(), 1);
}

/// The target's user with this userName, made there (as its own administrator would) when it
/// has none: tests share one target.
async fn scim_user(name: &str) -> String {
    let found = users_named(name).await;
    if let Some(id) = found["Resources"][0]["id"].as_str() {
        return id.to_owned();
    }
    let made = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
    let (url, token) = target();
    let answer = reqwest::Client::new()
        .post(format!("{url}/Users"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(made.to_string())
        .send()
        .await
        .unwrap();
    if answer.status() == reqwest::StatusCode::CONFLICT {
        // Made meanwhile by a test running beside this one.
        return Box::pin(scim_user(name)).await;
    }
    assert!(answer.status().is_success(), "{}", answer.status());
    answer.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// The server process killed with SIGKILL twenty times while it delivers to a SCIM target,
/// each time as soon as it has recorded some of its work (additions, and from the tenth
/// round removals too): once it runs undisturbed, everything has converged. Nobody is
/// missing or left behind in the group, nobody is in it twice or created twice there, and
/// nothing failed. Between rounds the dead process's leases are made to lapse, as its
/// five minutes would.
async fn delivery_converges_after_twenty_sigkills(backend: Backend) {
    let test_db = common::fresh_db(backend).await;
    let db = test_db.db.clone();
    let ids = quartermaster::demo::seed_directory_and_catalogs(&db).await.unwrap();
    let hex = "6a".repeat(32);
    let service = Service::new(db.clone()).with_secret_key(Some(SecretKey::from_hex(&hex).unwrap()));
    let (url, token) = target();
    let grace = service.actor(ids.grace).await.unwrap().unwrap();
    let system = service.administrator(&grace).unwrap().add_scim_system("Killed", &url, &token, true).await.unwrap();
    let tag = format!("kill-{backend:?}-{}", rand::random::<u32>()).to_lowercase();
    let group = new_group(&tag).await;
    let (package, policy) = package_for(&service, &ids, system, &group).await;
    let people = common::hire(&db, &format!("{tag}-"), 40, ids.grace, chrono::Utc::now().timestamp_millis()).await;
    let linus = service.actor(ids.linus).await.unwrap().unwrap();
    let am = service.assignment_manager_of(&linus, package).await.unwrap();
    for person in &people {
        am.assign_directly(*person, package, policy, None, "").await.unwrap();
    }
    let count = async |sql: &str| sqlx::query_scalar::<_, i64>(sql).fetch_one(db.pool()).await.unwrap();
    let settled = "SELECT COUNT(*) FROM outbox WHERE state <> 'pending'";
    let pending = "SELECT COUNT(*) FROM outbox WHERE state = 'pending'";
    let serve = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_quartermaster"))
            .args(["serve", "--addr", "127.0.0.1:0", "--database-url", &test_db.url])
            .arg("--site-root")
            .arg(common::site_root())
            .env("QM_SECRET_KEY", &hex)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let lapse = async || {
        sqlx::query("UPDATE outbox SET claimed_until = NULL WHERE state = 'pending'").execute(db.pool()).await.unwrap();
    };
    let mut killed_mid_work = 0;
    for round in 0..20 {
        if round == 10 {
            // A third of them leave while the rest is still arriving.
            for person in &people[..15] {
                am.remove_from_package(package, newest_assignment(&db, *person, package).await, "left").await.unwrap();
            }
        }
        lapse().await;
        let before = count(settled).await;
        let mut server = serve();
        let started = std::time::Instant::now();
        while count(settled).await == before && count(pending).await > 0 {
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "round {round}: no progress");
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        if count(pending).await > 0 {
            killed_mid_work += 1;
        }
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
    }
    assert!(killed_mid_work >= 15, "the kills must land while work is left ({killed_mid_work} of 20 did)");

    // Undisturbed, it finishes.
    lapse().await;
    let mut server = serve();
    let started = std::time::Instant::now();
    while count(pending).await > 0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the work never finished");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();

    assert_eq!(count("SELECT COUNT(*) FROM outbox WHERE state = 'failed'").await, 0, "nothing failed");
    let mut expected: Vec<String> = (15..40).map(|i| format!("{tag}-{i}@quartermaster.example")).collect();
    expected.sort();
    let mut seen = members(&group).await;
    seen.sort();
    assert_eq!(seen, expected, "the group holds exactly who holds the package, each once");
    for i in 0..40 {
        let name = format!("{tag}-{i}@quartermaster.example");
        let found = users_named(&name).await;
        // Those who left may have gone before they were ever added there.
        let once = found["totalResults"].as_i64().unwrap();
        assert!(once == 1 || (i < 15 && once == 0), "{name} was created {once} times in the target");
    }
    let delivered = "SELECT COUNT(*) FROM assignments WHERE state = 'delivered'";
    assert_eq!(count(delivered).await, 25);
}

/// Two instances' workers deliver one backlog to one target side by side: each piece of work
/// reaches the target exactly once (one PATCH per membership), both instances take part, and
/// everyone is in the group.
async fn two_instances_deliver_side_by_side_each_entry_once(backend: Backend) {
    let w = World::new(backend).await;
    let service = w.service.clone().with_secret_key(Some(SecretKey::from_hex(&"6b".repeat(32)).unwrap()));
    let (_, token) = target();
    let port = common::free_port();
    let door = FrontDoor::open(port).await;
    let door_url = format!("http://127.0.0.1:{port}/v2");
    let grace = w.actor(w.ids.grace).await;
    let system =
        service.administrator(&grace).unwrap().add_scim_system("Shared", &door_url, &token, true).await.unwrap();
    let group = new_group(&format!("shared-{backend:?}-{}", rand::random::<u32>())).await;
    let (package, policy) = package_for(&service, &w.ids, system, &group).await;
    let tag = format!("shared-{backend:?}-{}", rand::random::<u32>()).to_lowercase();
    let people = common::hire(w.db(), &format!("{tag}-"), 24, w.ids.grace, w.clock.now().timestamp_millis()).await;
    let linus = w.actor(w.ids.linus).await;
    let am = service.assignment_manager_of(&linus, package).await.unwrap();
    for person in &people {
        am.assign_directly(*person, package, policy, None, "").await.unwrap();
    }
    // Two instances (each pass its own claim token), each taking a few entries a pass, side by
    // side until the backlog is gone.
    let instance = |service: Service| async move {
        let mut delivered = 0;
        loop {
            let report = service.deliver_pending(&Operator::Workers, 4).await.unwrap();
            delivered += report.delivered;
            if report.claimed() == 0 {
                return delivered;
            }
        }
    };
    let (a, b) = tokio::join!(instance(service.clone()), instance(service.clone()));
    assert_eq!(a + b, 24, "every entry delivered once: {a} + {b}");
    assert!(a > 0 && b > 0, "both instances took part: {a} and {b}");
    let patches = door.patches.lock().unwrap().clone();
    assert_eq!(patches.len(), 24, "one PATCH per membership");
    let mut expected: Vec<String> = (0..24).map(|i| format!("{tag}-{i}@quartermaster.example")).collect();
    expected.sort();
    let mut seen = members(&group).await;
    seen.sort();
    assert_eq!(seen, expected);
}

/// The target's list of users with this userName (its own answer to the filter).
async fn users_named(name: &str) -> Value {
    let filter = format!("userName eq \"{name}\"");
    let (url, token) = target();
    let list = reqwest::Client::new().get(format!("{url}/Users")).query(&[("filter", filter)]).bearer_auth(&token);
    list.send().await.unwrap().json().await.unwrap()
}
