//! The SCIM 2.0 service provider at `/scim/v2` through real HTTP: PyPI scim2-tester passes it
//! with no failure; what an identity provider pushes (as Entra and Okta write it) becomes
//! people, managers, departments and group members here; a person deactivated or deleted
//! leaves (the leaver path); versions guard concurrent changes; only an administrator's token
//! with the `scim` scope gets in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::{spawn_app_with, TestApp};
use quartermaster::domain::ids::{PolicyId, UserId};
use quartermaster::domain::token::Scopes;
use quartermaster::service::tokens::TokenBy;
use quartermaster::store::Backend;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

on_both_databases!(
    scim2_tester_passes_with_no_failure,
    what_the_provider_pushes_becomes_people_managers_and_groups,
    concurrent_changes_of_one_resource_all_land_or_are_told_of_the_version,
    administrators_and_people_disabled_here_stay_as_the_portal_left_them
);

async fn token(app: &TestApp, who: UserId, scopes: &str) -> Result<String, String> {
    let owner = app.service.actor(who).await.unwrap().unwrap();
    let scopes = Scopes::parse(scopes).unwrap();
    app.service
        .create_token(TokenBy::Person(&owner), &owner, "identity provider", &scopes, 30)
        .await
        .map(|(_, secret)| secret)
        .map_err(|e| e.to_string())
}

/// A SCIM call: status, headers and JSON.
async fn scim(
    app: &TestApp,
    method: &str,
    path: &str,
    secret: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = Client::new().request(method.parse().unwrap(), app.url(&format!("/scim/v2{path}")));
    if !secret.is_empty() {
        req = req.bearer_auth(secret);
    }
    if let Some(body) = body {
        req = req.header("content-type", "application/scim+json").body(body.to_string());
    }
    if let Some(v) = if_match {
        req = req.header("if-match", v);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let text = res.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(app.service.db().pool()).await.unwrap()
}

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

async fn scim2_tester_passes_with_no_failure(backend: Backend) {
    let Ok(tester) = std::env::var("QM_TEST_SCIM_TESTER") else {
        panic!("QM_TEST_SCIM_TESTER is not set: run the tests with scripts/test.sh (scripts/scim-peer.sh installs it)");
    };
    let app = spawn_app_with(backend, |args| args.no_workers = true).await;
    let secret = token(&app, app.ids.grace, "scim").await.unwrap();
    let url = app.url("/scim/v2");
    // Run beside the server (which answers on this test's runtime).
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(tester)
            .args(["--url", &url, "test"])
            .env("SCIM_CLI_HEADERS", format!("Authorization: Bearer {secret}"))
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scim2-tester failed:\n{printed}");
    let succeeded = printed.lines().filter(|l| l.starts_with("SUCCESS")).count();
    let failed: Vec<&str> = printed.lines().filter(|l| l.starts_with("ERROR") || l.starts_with("CRITICAL")).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // Discovery, each resource's create/read/replace/delete and the PATCH of every attribute.
    assert!(succeeded >= 110, "only {succeeded} checks passed:\n{printed}");
    for check in ["object_creation", "check_add_attribute", "check_remove_attribute", "search_with_attributes"] {
        assert!(printed.contains(&format!("SUCCESS {check}")), "{check} did not run:\n{printed}");
    }
    // What it did is audited as Grace, with the token.
    let audited = count(
        &app,
        "SELECT COUNT(*) FROM audit_events WHERE action = 'user.provisioned' AND reason = 'SCIM' AND token_id IS NOT NULL",
    )
    .await;
    assert!(audited >= 10, "{audited}");
}

async fn what_the_provider_pushes_becomes_people_managers_and_groups(backend: Backend) {
    let app = spawn_app_with(backend, |args| args.no_workers = true).await;
    let ids = &app.ids;

    // Only an administrator's token with the scim scope gets in.
    let (status, headers, body) = scim(&app, "GET", "/Users", "", None, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
    let read = token(&app, ids.grace, "read,admin").await.unwrap();
    assert_eq!(scim(&app, "GET", "/Users", &read, None, None).await.0, 403);
    assert_eq!(scim(&app, "GET", "/ServiceProviderConfig", &read, None, None).await.0, 403);
    assert!(token(&app, ids.omar, "scim").await.unwrap_err().contains("only for administrators"));
    let idp = token(&app, ids.grace, "scim").await.unwrap();
    // A token of someone no longer an administrator stops working.
    let grace = app.service.actor(ids.grace).await.unwrap().unwrap();
    let admin = app.service.administrator(&grace).unwrap();
    admin.grant_role(ids.linus, quartermaster::domain::model::Role::Administrator).await.unwrap();
    let linus = token(&app, ids.linus, "scim").await.unwrap();
    assert_eq!(scim(&app, "GET", "/Users", &linus, None, None).await.0, 200);
    admin.revoke_role(ids.linus, quartermaster::domain::model::Role::Administrator).await.unwrap();
    assert_eq!(scim(&app, "GET", "/Users", &linus, None, None).await.0, 403);

    // Entra creates a manager, then a report of hers, with the enterprise extension.
    let (status, headers, boss) = scim(
        &app,
        "POST",
        "/Users",
        &idp,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "userName": "ines.boss@corp.example", "active": true, "externalId": "e-1",
            "name": {"givenName": "Ines", "familyName": "Boss"},
            "emails": [{"value": "ines.boss@corp.example", "type": "work", "primary": true}],
            ENTERPRISE: {"department": "Finance", "employeeNumber": "1001"},
        })),
        None,
    )
    .await;
    assert_eq!(status, 201, "{boss}");
    assert_eq!(headers["content-type"], "application/scim+json");
    let boss_id = boss["id"].as_str().unwrap().to_owned();
    assert_eq!(headers["location"].to_str().unwrap(), app.url(&format!("/scim/v2/Users/{boss_id}")));
    assert_eq!(headers["etag"], "W/\"1\"");
    let (status, _, ray) = scim(
        &app,
        "POST",
        "/Users",
        &idp,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "userName": "ray@corp.example", "displayName": "Ray Report", "title": "Analyst", "active": "True",
            ENTERPRISE: {"department": "Finance", "manager": {"value": boss_id}},
        })),
        None,
    )
    .await;
    assert_eq!(status, 201, "{ray}");
    let ray_id: i64 = ray["id"].as_str().unwrap().parse().unwrap();
    let row: (String, String, String, String, Option<i64>) =
        sqlx::query_as("SELECT email, display_name, department, job_title, manager_id FROM users WHERE id = $1")
            .bind(ray_id)
            .fetch_one(app.service.db().pool())
            .await
            .unwrap();
    assert_eq!(
        row,
        (
            "ray@corp.example".into(),
            "Ray Report".into(),
            "Finance".into(),
            "Analyst".into(),
            Some(boss_id.parse().unwrap())
        )
    );
    let boss_name: String = sqlx::query_scalar("SELECT display_name FROM users WHERE id = $1")
        .bind(boss_id.parse::<i64>().unwrap())
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    assert_eq!(boss_name, "Ines Boss", "from name when there is no displayName");

    // The same userName again (any case) is refused; an unknown manager is refused and
    // changes nothing.
    let (status, _, body) =
        scim(&app, "POST", "/Users", &idp, Some(json!({"userName": "RAY@corp.example"})), None).await;
    assert_eq!((status.as_u16(), body["scimType"].as_str()), (409, Some("uniqueness")), "{body}");
    let people = count(&app, "SELECT COUNT(*) FROM users").await;
    let (status, _, body) = scim(
        &app,
        "POST",
        "/Users",
        &idp,
        Some(json!({
            "userName": "ghost@corp.example", ENTERPRISE: {"manager": {"value": "999999"}},
        })),
        None,
    )
    .await;
    assert_eq!((status.as_u16(), body["scimType"].as_str()), (400, Some("invalidValue")), "{body}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, people, "nothing written");

    // Someone here already (Omar signed in before) is linked by email, not made twice.
    let (status, _, omar) = scim(
        &app,
        "POST",
        "/Users",
        &idp,
        Some(json!({
            "userName": "OMAR@quartermaster.example", "title": "Platform engineer",
        })),
        None,
    )
    .await;
    assert_eq!(status, 201, "{omar}");
    assert_eq!(omar["id"], ids.omar.0.to_string());
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users").await, people);

    // Filters as providers send them: by userName (its index), externalId, and others.
    let find =
        |f: &str| format!("/Users?filter={}", url::form_urlencoded::byte_serialize(f.as_bytes()).collect::<String>());
    let (_, _, list) = scim(&app, "GET", &find("userName eq \"Ray@Corp.Example\""), &idp, None, None).await;
    assert_eq!(
        (list["totalResults"].as_i64(), list["Resources"][0]["id"].as_str()),
        (Some(1), Some(ray["id"].as_str().unwrap()))
    );
    let (_, _, list) = scim(&app, "GET", &find("externalId eq \"e-1\""), &idp, None, None).await;
    assert_eq!(list["Resources"][0]["id"], boss_id.as_str());
    let (_, _, list) =
        scim(&app, "GET", &find(&format!("{ENTERPRISE}:department eq \"finance\" and title pr")), &idp, None, None)
            .await;
    assert_eq!(list["totalResults"], 1, "{list}");
    let (status, _, body) = scim(&app, "GET", &find("userName eq"), &idp, None, None).await;
    assert_eq!((status.as_u16(), body["scimType"].as_str()), (400, Some("invalidFilter")));
    let (_, _, page) = scim(&app, "GET", "/Users?startIndex=2&count=1&attributes=userName", &idp, None, None).await;
    assert_eq!(
        (page["totalResults"].as_i64(), page["itemsPerPage"].as_i64(), page["startIndex"].as_i64()),
        (Some(3), Some(1), Some(2))
    );
    assert_eq!(page["Resources"][0].as_object().unwrap().keys().collect::<Vec<_>>(), ["id", "schemas", "userName"]);

    // A group with Ray and Omar: its members are the directory group's.
    let (status, _, group) = scim(
        &app,
        "POST",
        "/Groups",
        &idp,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Finance Analysts",
            "members": [{"value": ray_id.to_string()}, {"value": ids.omar.0.to_string()}],
        })),
        None,
    )
    .await;
    assert_eq!(status, 201, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();
    let members = format!("SELECT COUNT(*) FROM group_members WHERE group_id = {group_id}");
    assert_eq!(count(&app, &members).await, 2);
    let source: String = sqlx::query_scalar(&format!("SELECT source FROM directory_groups WHERE id = {group_id}"))
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    assert_eq!(source, "scim");
    // Entra's PATCH: remove Omar by value, add Ines; a member who is nobody is refused.
    let (status, _, group) = scim(
        &app,
        "PATCH",
        &format!("/Groups/{group_id}"),
        &idp,
        Some(json!({"schemas": [PATCH], "Operations": [
            {"op": "Remove", "path": "members", "value": [{"value": ids.omar.0.to_string()}]},
            {"op": "Add", "path": "members", "value": [{"value": boss_id}]},
        ]})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{group}");
    assert_eq!(count(&app, &members).await, 2);
    assert_eq!(count(&app, &format!("{members} AND user_id = {}", ids.omar.0)).await, 0);
    let (status, _, body) = scim(
        &app,
        "PATCH",
        &format!("/Groups/{group_id}"),
        &idp,
        Some(json!({"schemas": [PATCH], "Operations": [
            {"op": "add", "path": "members", "value": [{"value": "424242"}]},
        ]})),
        None,
    )
    .await;
    assert_eq!((status.as_u16(), body["scimType"].as_str()), (400, Some("invalidValue")), "{body}");
    assert_eq!(count(&app, &members).await, 2, "unchanged");
    // A group kept here by that name is not taken over.
    let (status, _, _) = scim(&app, "POST", "/Groups", &idp, Some(json!({"displayName": "Engineering"})), None).await;
    let engineering_here =
        count(&app, "SELECT COUNT(*) FROM directory_groups WHERE name = 'Engineering' AND source <> 'scim'").await;
    if engineering_here > 0 {
        assert_eq!(status, 409);
    }

    // Ray holds Developer Tools; Entra deactivates him ("False", as it sends it): he leaves,
    // and his access ends.
    let dev_policy: i64 = sqlx::query_scalar("SELECT MIN(id) FROM policies WHERE package_id = $1")
        .bind(ids.developer_tools.0)
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    let am = app.service.assignment_manager_of(&grace, ids.developer_tools).await.unwrap();
    am.assign_directly(UserId(ray_id), ids.developer_tools, PolicyId(dev_policy), None, "team").await.unwrap();
    let live =
        format!("SELECT COUNT(*) FROM assignments WHERE user_id = {ray_id} AND state NOT IN ('expired', 'removed')");
    assert_eq!(count(&app, &live).await, 1);
    // A stale version is refused (412) and changes nothing.
    let (status, _, _) = scim(
        &app,
        "PATCH",
        &format!("/Users/{ray_id}"),
        &idp,
        Some(json!({"schemas": [PATCH], "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
        ]})),
        Some("W/\"7\""),
    )
    .await;
    assert_eq!(status, 412);
    assert_eq!(count(&app, &live).await, 1);
    let (status, headers, body) = scim(
        &app,
        "PATCH",
        &format!("/Users/{ray_id}"),
        &idp,
        Some(json!({"schemas": [PATCH], "Operations": [
            {"op": "Replace", "value": {"active": "False", "title": "Former analyst"}},
        ]})),
        Some("W/\"1\""),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["active"].as_bool(), headers["etag"].to_str().unwrap()), (Some(false), "W/\"2\""));
    assert_eq!(count(&app, &live).await, 0, "the leaver path ended his access");
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM users WHERE id = {ray_id} AND state = 'disabled'")).await, 1);
    // Back: active again; then DELETE: gone from SCIM, disabled here, in the audit trail.
    let (status, _, _) = scim(
        &app,
        "PATCH",
        &format!("/Users/{ray_id}"),
        &idp,
        Some(json!({"schemas": [PATCH], "Operations": [
            {"op": "replace", "path": "active", "value": true},
        ]})),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM users WHERE id = {ray_id} AND state = 'active'")).await, 1);
    let (status, _, _) = scim(&app, "DELETE", &format!("/Users/{ray_id}"), &idp, None, None).await;
    assert_eq!(status, 204);
    assert_eq!(scim(&app, "GET", &format!("/Users/{ray_id}"), &idp, None, None).await.0, 404);
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM users WHERE id = {ray_id} AND state = 'disabled'")).await, 1);
    let audited: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT action FROM audit_events WHERE object_type = 'user' AND object_id = {ray_id} ORDER BY id"
    ))
    .fetch_all(app.service.db().pool())
    .await
    .unwrap();
    for action in ["user.provisioned", "user.updated", "user.disabled", "user.enabled", "user.deprovisioned"] {
        assert!(audited.iter().any(|a| a == action), "{action} in {audited:?}");
    }
    let reasons: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT reason FROM audit_events WHERE object_type = 'user' AND object_id = {ray_id} AND action = 'user.provisioned'"
    ))
    .fetch_all(app.service.db().pool())
    .await
    .unwrap();
    assert_eq!(reasons[0], "SCIM", "{reasons:?}");
    // Every event of his names the provider's token: the leaver path's and rules' too.
    let unattributed = count(
        &app,
        &format!("SELECT COUNT(*) FROM audit_events WHERE object_type = 'user' AND object_id = {ray_id} AND token_id IS NULL"),
    )
    .await;
    assert_eq!(unattributed, 0);
    // A path this service does not have, and a method an endpoint does not take.
    assert_eq!(scim(&app, "GET", "/Bulk", &idp, None, None).await.0, 404);
    assert_eq!(scim(&app, "DELETE", "/Schemas", &idp, None, None).await.0, 405);
}

/// Ten PATCHes of one group at once, each adding a different member: all ten land (they
/// take turns at the resource; none is lost to another's write). With an If-Match of the
/// same version, exactly one lands and the others are told it changed.
async fn concurrent_changes_of_one_resource_all_land_or_are_told_of_the_version(backend: Backend) {
    let app = spawn_app_with(backend, |args| args.no_workers = true).await;
    let idp = token(&app, app.ids.grace, "scim").await.unwrap();
    let (_, _, group) = scim(&app, "POST", "/Groups", &idp, Some(json!({"displayName": "Racers"})), None).await;
    let path = format!("/Groups/{}", group["id"].as_str().unwrap());
    let people: Vec<i64> =
        common::hire(app.service.db(), "racer", 10, app.ids.linus, chrono::Utc::now().timestamp_millis())
            .await
            .into_iter()
            .map(|u| u.0)
            .collect();
    let add = |who: i64| json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": who.to_string()}]}]});
    let calls = people.iter().map(|p| scim(&app, "PATCH", &path, &idp, Some(add(*p)), None));
    let statuses: Vec<u16> = futures_util::future::join_all(calls).await.into_iter().map(|r| r.0.as_u16()).collect();
    assert_eq!(statuses, vec![200; 10]);
    let (_, headers, group) = scim(&app, "GET", &path, &idp, None, None).await;
    assert_eq!(group["members"].as_array().unwrap().len(), 10, "{group}");
    assert_eq!(headers["etag"], "W/\"11\"");

    // The same version for all: one wins.
    let more: Vec<i64> =
        common::hire(app.service.db(), "late", 5, app.ids.linus, chrono::Utc::now().timestamp_millis())
            .await
            .into_iter()
            .map(|u| u.0)
            .collect();
    let calls = more.iter().map(|p| scim(&app, "PATCH", &path, &idp, Some(add(*p)), Some("W/\"11\"")));
    let mut statuses: Vec<u16> =
        futures_util::future::join_all(calls).await.into_iter().map(|r| r.0.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 412, 412, 412, 412]);
    let (_, _, group) = scim(&app, "GET", &path, &idp, None, None).await;
    assert_eq!(group["members"].as_array().unwrap().len(), 11);
}

/// The provider does not take over or take out an administrator (not even the token's owner),
/// a person disabled here is not brought back by a change that does not touch `active`, and
/// what it sends is checked as sign-in checks it.
async fn administrators_and_people_disabled_here_stay_as_the_portal_left_them(backend: Backend) {
    use quartermaster::domain::authz::Operator;
    use quartermaster::domain::model::Role;
    let app = spawn_app_with(backend, |args| args.no_workers = true).await;
    let secret = token(&app, app.ids.grace, "scim").await.unwrap();
    let user = |email: &str, active: bool| {
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": email,
               "emails": [{"value": email, "primary": true}], "active": active})
    };
    let active = |id: UserId| {
        let service = app.service.clone();
        async move { service.actor(id).await.unwrap().is_some() }
    };
    // Grace owns the token and is an administrator: not linked, so not deactivated either.
    let (status, _, body) =
        scim(&app, "POST", "/Users", &secret, Some(user("grace@quartermaster.example", false)), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(active(app.ids.grace).await);
    // Linus is linked, then made an administrator: his title may change, his email and
    // whether he may sign in not; nor is he deleted.
    let (status, _, body) =
        scim(&app, "POST", "/Users", &secret, Some(user("linus@quartermaster.example", true)), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let linus = body["id"].as_str().unwrap().to_owned();
    let grace = app.service.actor(app.ids.grace).await.unwrap().unwrap();
    app.service.administrator(&grace).unwrap().grant_role(app.ids.linus, Role::Administrator).await.unwrap();
    let path = format!("/Users/{linus}");
    let (status, body) =
        patched(&app, &secret, &path, json!([{"op": "replace", "path": "active", "value": false}])).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = patched(
        &app,
        &secret,
        &path,
        json!([{"op": "replace", "path": "emails[primary eq true].value", "value": "mallory@evil.example"}]),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) =
        patched(&app, &secret, &path, json!([{"op": "replace", "path": "title", "value": "Director"}])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(scim(&app, "DELETE", &path, &secret, None, None).await.0, StatusCode::CONFLICT);
    assert!(active(app.ids.linus).await);

    // Zed comes from the provider and is disabled here; a new title does not bring him back,
    // the provider saying active (after inactive) does.
    let (status, _, body) =
        scim(&app, "POST", "/Users", &secret, Some(user("zed@quartermaster.example", true)), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let zed = body["id"].as_str().unwrap().to_owned();
    let zed_id = UserId(zed.parse().unwrap());
    app.service.disable_person(&Operator::Workers, "zed@quartermaster.example").await.unwrap();
    let path = format!("/Users/{zed}");
    let (status, _) =
        patched(&app, &secret, &path, json!([{"op": "replace", "path": "title", "value": "Analyst"}])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!active(zed_id).await, "a change that does not touch active leaves him disabled");
    for (value, expected) in [(false, false), (true, true)] {
        let (status, _) =
            patched(&app, &secret, &path, json!([{"op": "replace", "path": "active", "value": value}])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(active(zed_id).await, expected);
    }

    // Checked as sign-in checks it: a key without spaces, names of a sensible length, a
    // bounded document.
    let (status, _, body) = scim(
        &app,
        "POST",
        "/Users",
        &secret,
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "no body"})),
        None,
    )
    .await;
    assert_eq!((status, body["scimType"].as_str()), (StatusCode::BAD_REQUEST, Some("invalidValue")), "{body}");
    let mut long = user("long@quartermaster.example", true);
    long["displayName"] = Value::from("x".repeat(201));
    assert_eq!(scim(&app, "POST", "/Users", &secret, Some(long), None).await.0, StatusCode::BAD_REQUEST);
    let mut big = user("big@quartermaster.example", true);
    big["nickName"] = Value::from("x".repeat(70_000));
    assert_eq!(scim(&app, "POST", "/Users", &secret, Some(big), None).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM users WHERE email IN ('long@quartermaster.example', 'big@quartermaster.example')"
        )
        .await,
        0
    );
}

/// A SCIM PATCH of `path` with these operations: its status and body.
async fn patched(app: &TestApp, secret: &str, path: &str, ops: Value) -> (StatusCode, Value) {
    let (status, _, body) =
        scim(app, "PATCH", path, secret, Some(json!({"schemas": [PATCH], "Operations": ops})), None).await;
    (status, body)
}
