//! Provisioning into real targets (issue 12), on SQLite and PostgreSQL: a SCIM 2.0 target
//! (PyPI scim2-server, started by the test command: `QM_TEST_SCIM_URL`, `QM_TEST_SCIM_TOKEN`).
//! A person assigned a package whose role is a SCIM group appears in that group, created in
//! the target first; removed, they are gone from it. The bearer token is stored sealed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use common::World;
use quartermaster::connectors::secret::SecretKey;
use quartermaster::domain::authz::Operator;
use quartermaster::domain::ids::*;
use quartermaster::domain::policy::{Policy, RequestorScope};
use quartermaster::store::Backend;
use serde_json::{json, Value};

on_both_databases!(a_scim_group_gains_and_loses_the_member_a_package_gives);

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
