//! The REST API under `/api/v1` through real HTTP: an API token acts as its owner with only
//! its scopes; errors are problem details; every operation the OpenAPI document lists needs a
//! token, and the scope it names; the document and Swagger UI are served from the binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::{spawn_app_with, TestApp};
use quartermaster::domain::authz::{Actor, Operator};
use quartermaster::domain::ids::UserId;
use quartermaster::domain::token::Scopes;
use quartermaster::service::tokens::TokenBy;
use quartermaster::store::Backend;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

on_both_databases!(
    a_token_acts_as_its_owner_with_only_its_scopes,
    every_operation_in_the_document_needs_a_token_and_its_scope,
    tokens_are_made_for_oneself_within_ones_rights_and_revoked_once,
    a_package_changes_only_from_the_version_its_changer_read,
    the_admin_operations_answer_only_for_what_the_roles_reach,
    an_assignment_manager_assigns_and_removes_through_the_api,
    a_review_is_answered_ended_and_applied_through_the_api,
    a_catalog_changes_only_from_the_version_its_changer_read,
    a_policy_is_replaced_only_from_the_version_its_changer_read,
    a_package_is_made_and_given_a_policy_through_the_api,
    ones_own_settings_are_read_and_changed_through_the_api,
    an_organization_changes_only_from_the_version_its_changer_read,
    a_service_account_acts_only_through_the_tokens_administrators_make,
    ones_tokens_are_made_and_revoked_through_the_api_within_the_calling_one,
    many_decisions_deputies_and_connectors_through_the_api,
    a_bulk_assignment_is_started_and_followed_through_the_api,
    a_package_is_built_from_a_draft_through_the_api
);

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |args| args.no_workers = true).await
}

async fn actor(app: &TestApp, id: UserId) -> Actor {
    app.service.actor(id).await.unwrap().unwrap()
}

/// A token for `who` with `scopes`, made by themselves; its secret.
async fn token(app: &TestApp, who: UserId, scopes: &str) -> String {
    let owner = actor(app, who).await;
    let scopes = Scopes::parse(scopes).unwrap();
    app.service.create_token(TokenBy::Person(&owner), &owner, "test", &scopes, 30).await.unwrap().1
}

/// A call to the API with `secret` (none: no Authorization header); its status and JSON.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    secret: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, _, json) = call_full(app, method, path, secret, body).await;
    (status, json)
}

async fn call_full(
    app: &TestApp,
    method: &str,
    path: &str,
    secret: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = Client::new().request(method.parse().unwrap(), app.url(path));
    if let Some(secret) = secret {
        req = req.bearer_auth(secret);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let text = res.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(app.service.db().pool()).await.unwrap()
}

/// Omar asks for Production Access through the API; Linus, his manager, decides its first
/// stage through the API; each only with a token whose scope allows it, and nobody decides
/// their own request.
async fn a_token_acts_as_its_owner_with_only_its_scopes(backend: Backend) {
    let app = app(backend).await;
    let ids = &app.ids;

    // No token, a malformed one, an unknown one: 401 as a problem, with the scheme to use.
    let (status, headers, problem) = call_full(&app, "GET", "/api/v1/me", None, None).await;
    assert_eq!(status, 401);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(problem["type"], "urn:quartermaster:problem:unauthenticated");
    assert_eq!(problem["status"], 401);
    assert_eq!(call(&app, "GET", "/api/v1/me", Some("nonsense"), None).await.0, 401);
    let unknown = quartermaster::domain::token::new_secret();
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&unknown), None).await.0, 401);
    // A session cookie is not a token.
    let cookie = app.session_cookie(ids.omar).await;
    let res = Client::new().get(app.url("/api/v1/me")).header("cookie", cookie).send().await.unwrap();
    assert_eq!(res.status(), 401, "the API takes tokens only");

    let read = token(&app, ids.omar, "read").await;
    let (status, me) = call(&app, "GET", "/api/v1/me", Some(&read), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!((me["email"].as_str(), me["scopes"].clone()), (Some("omar@quartermaster.example"), json!(["read"])));
    let (status, packages) = call(&app, "GET", "/api/v1/packages?q=developer", Some(&read), None).await;
    assert_eq!(status, 200, "{packages}");
    assert_eq!(packages["items"][0]["name"], "Developer Tools", "{packages}");
    let (status, problem) = call(&app, "GET", "/api/v1/packages?catalog=abc", Some(&read), None).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("urn:quartermaster:problem:invalid"))
    );

    // Asking needs the request scope: refused, nothing filed.
    let ask = json!({"package_id": ids.production_access.0, "justification": "on call",
                     "answers": {"service": "Payments API"}});
    let requests = || count(&app, "SELECT COUNT(*) FROM requests");
    let before = requests().await;
    let (status, problem) = call(&app, "POST", "/api/v1/requests", Some(&read), Some(ask.clone())).await;
    assert_eq!(status, 403, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("\"request\" scope"), "{problem}");
    assert_eq!(requests().await, before, "nothing filed");

    // With it: filed, 201 with where it is.
    let asker = token(&app, ids.omar, "read,request,decide").await;
    let (status, problem) =
        call(&app, "POST", "/api/v1/requests", Some(&asker), Some(json!({"package_id": "x"}))).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("urn:quartermaster:problem:invalid"))
    );
    let (status, problem) =
        call(&app, "POST", "/api/v1/requests", Some(&asker), Some(json!({"package_id": 1, "sudo": true}))).await;
    assert_eq!(status, 422, "an unknown field is refused: {problem}");
    let res =
        Client::new().post(app.url("/api/v1/requests")).bearer_auth(&asker).body(ask.to_string()).send().await.unwrap();
    assert_eq!(res.status(), 415, "not said to be JSON");
    assert_eq!(requests().await, before, "nothing filed");
    let (status, outcome) = call(&app, "POST", "/api/v1/requests", Some(&asker), Some(ask.clone())).await;
    assert_eq!(status, 201, "{outcome}");
    assert_eq!(outcome["state"], "pending_approval", "{outcome}");
    let id = outcome["request_id"].as_i64().unwrap();
    let (_, mine) = call(&app, "GET", "/api/v1/requests", Some(&read), None).await;
    assert_eq!(mine["items"][0]["id"], id, "{mine}");
    let (status, problem) = call(&app, "POST", "/api/v1/requests", Some(&asker), Some(ask)).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::CONFLICT, Some("urn:quartermaster:problem:conflict")),
        "already waiting: {problem}"
    );
    let by: Option<i64> =
        sqlx::query_scalar("SELECT actor_id FROM audit_events WHERE action = 'request.submitted' AND object_id = $1")
            .bind(id)
            .fetch_one(app.service.db().pool())
            .await
            .unwrap();
    assert_eq!(by, Some(ids.omar.0), "audited as its owner");

    // Omar cannot decide his own request, whatever his token.
    let decision = |d: &str| json!({"decision": d, "justification": "ok"});
    let path = format!("/api/v1/requests/{id}/decision");
    let (status, _) = call(&app, "POST", &path, Some(&asker), Some(decision("approve"))).await;
    assert!(status == 403 || status == 404, "{status}");

    // Linus sees it waiting; deciding needs the decide scope.
    let linus_read = token(&app, ids.linus, "read").await;
    let (_, waiting) = call(&app, "GET", "/api/v1/approvals", Some(&linus_read), None).await;
    assert!(waiting["items"].as_array().unwrap().iter().any(|i| i["request_id"] == id), "{waiting}");
    let (status, _) = call(&app, "POST", &path, Some(&linus_read), Some(decision("approve"))).await;
    assert_eq!(status, 403);
    let (status, problem) = call(&app, "POST", &path, Some(&linus_read), Some(json!({"decision": "maybe"}))).await;
    assert_eq!(status, 403, "the scope comes before the input: {problem}");
    let linus = token(&app, ids.linus, "decide").await;
    let (status, problem) = call(&app, "POST", &path, Some(&linus), Some(json!({"decision": "maybe"}))).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("urn:quartermaster:problem:invalid"))
    );
    let (status, problem) =
        call(&app, "POST", "/api/v1/requests/abc/decision", Some(&linus), Some(decision("approve"))).await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("id")), "{problem}");
    let (status, outcome) = call(&app, "POST", &path, Some(&linus), Some(decision("approve"))).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["state"], "pending_approval", "the second stage waits: {outcome}");
    let (status, problem) = call(&app, "POST", &path, Some(&linus), Some(decision("deny"))).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (StatusCode::FORBIDDEN, Some("urn:quartermaster:problem:forbidden")),
        "not his stage now: {problem}"
    );

    // Omar cancels it (his request scope); Hana, the second stage's approver, then finds it
    // decided.
    let cancel = format!("/api/v1/requests/{id}/cancel");
    let (status, outcome) = call(&app, "POST", &cancel, Some(&read), None).await;
    assert_eq!(status, 403, "canceling needs the request scope: {outcome}");
    let (status, outcome) = call(&app, "POST", &cancel, Some(&asker), None).await;
    assert_eq!((status, outcome["state"].as_str()), (StatusCode::OK, Some("canceled")), "{outcome}");
    let hana = token(&app, ids.hana, "decide").await;
    let (status, problem) = call(&app, "POST", &path, Some(&hana), Some(decision("approve"))).await;
    assert_eq!(status, 409, "ended: {problem}");
    assert_eq!(problem["type"], "urn:quartermaster:problem:already-decided", "{problem}");

    // A token is no session: the server functions do not take it.
    let res = Client::new()
        .post(app.url("/api/my_requests"))
        .bearer_auth(&read)
        .header("accept", "application/json")
        .form(&[("before", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "{}", res.text().await.unwrap());

    // Used: recorded.
    let used = count(&app, "SELECT COUNT(*) FROM api_tokens WHERE last_used_at IS NOT NULL").await;
    assert!(used >= 3, "{used}");
}

/// Every operation the OpenAPI document lists: 401 without a token; a read-only token gets
/// through to a `GET` (whatever it then answers) and is refused (403) everything else.
async fn every_operation_in_the_document_needs_a_token_and_its_scope(backend: Backend) {
    let app = app(backend).await;
    let res = Client::new().get(app.url("/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let all = ["read", "request", "decide", "admin", "metrics", "scim"];
    let mut only = std::collections::BTreeMap::new();
    let mut others = std::collections::BTreeMap::new();
    for scope in all {
        only.insert(scope, token(&app, app.ids.grace, scope).await);
        let rest: Vec<&str> = all.iter().copied().filter(|s| *s != scope).collect();
        others.insert(scope, token(&app, app.ids.grace, &rest.join(",")).await);
    }
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with("/api/v1/"), "{path}");
        let concrete = path
            .replace("{id}", &app.ids.developer_tools.0.to_string())
            .replace("{assignment}", "1")
            .replace("{person}", "1");
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let verb = method.to_uppercase();
            let body = (method != "get").then(|| json!({}));
            let needs: Vec<&str> = item[method]["security"][0]["bearer"]
                .as_array()
                .unwrap_or_else(|| panic!("{verb} {path} names no scope"))
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            assert_eq!(needs.len(), 1, "{verb} {path}: {needs:?}");
            let scope = needs[0];
            let (status, problem) = call(&app, &verb, &concrete, None, body.clone()).await;
            assert_eq!(status, 401, "{verb} {path} without a token: {problem}");
            assert_eq!(problem["type"], "urn:quartermaster:problem:unauthenticated", "{verb} {path}");
            let (status, problem) = call(&app, &verb, &concrete, Some(&others[scope]), body.clone()).await;
            assert_eq!(status, 403, "{verb} {path} with every scope but {scope}: {problem}");
            assert_eq!(problem["type"], "urn:quartermaster:problem:forbidden", "{verb} {path}");
            let (status, problem) = call(&app, &verb, &concrete, Some(&only[scope]), body).await;
            assert!(
                status != 401 && status != 403 && status.as_u16() < 500,
                "{verb} {path} with {scope}: {status} {problem}"
            );
        }
    }
    assert!(operations >= 9, "{operations} operations");

    // Swagger UI, from the binary, reading the document.
    let res = Client::new().get(app.url("/api/v1/docs/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("swagger-ui"), "Swagger UI's page");
    let init = Client::new().get(app.url("/api/v1/docs/swagger-initializer.js")).send().await.unwrap();
    assert!(init.text().await.unwrap().contains("/api/v1/openapi.json"), "it reads our document");
}

/// Tokens: for oneself only, never beyond one's rights, each audited, at most a year; revoked
/// (or expired) ones stop at once; an administrator's token without `admin` has no roles.
async fn tokens_are_made_for_oneself_within_ones_rights_and_revoked_once(backend: Backend) {
    let app = app(backend).await;
    let ids = &app.ids;
    let (omar, grace) = (actor(&app, ids.omar).await, actor(&app, ids.grace).await);
    let scopes = |s: &str| Scopes::parse(s).unwrap();
    let made = |by: &Actor, owner: &Actor, s: &str, days: u32| {
        let (service, by, owner, s) = (app.service.clone(), by.clone(), owner.clone(), scopes(s));
        async move { service.create_token(TokenBy::Person(&by), &owner, "t", &s, days).await }
    };
    assert!(made(&grace, &omar, "read", 30).await.is_err(), "not for someone else");
    let refused = made(&omar, &omar, "admin", 30).await.unwrap_err().to_string();
    assert!(refused.contains("admin scope"), "{refused}");
    assert!(made(&omar, &omar, "read", 400).await.is_err(), "at most a year");
    assert!(Scopes::parse("read,root").is_err());

    // Grace's token without admin has none of her roles; with it, it has them.
    let plain = made(&grace, &grace, "read", 30).await.unwrap().1;
    let caller = app.service.token_caller(&plain).await.unwrap().unwrap();
    assert!(caller.actor.roles.is_empty() && !caller.actor.is_admin());
    let full = made(&grace, &grace, "read,admin", 30).await.unwrap().1;
    assert!(app.service.token_caller(&full).await.unwrap().unwrap().actor.is_admin());

    // Revoked: refused at once; by its owner or an administrator, once; someone else is told
    // it does not exist.
    let (view, secret) = made(&omar, &omar, "read", 30).await.unwrap();
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&secret), None).await.0, 200);
    let maya = actor(&app, ids.maya).await;
    let err = app.service.revoke_token(TokenBy::Person(&maya), view.id).await.unwrap_err();
    assert!(matches!(err, quartermaster::domain::DomainError::NotFound(_)), "{err:?}");
    app.service.revoke_token(TokenBy::Person(&omar), view.id).await.unwrap();
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&secret), None).await.0, 401);
    let again = app.service.revoke_token(TokenBy::Person(&grace), view.id).await.unwrap_err();
    assert!(matches!(again, quartermaster::domain::DomainError::Conflict(_)), "once: {again:?}");
    // An administrator revokes someone else's.
    let (other, other_secret) = made(&omar, &omar, "read", 30).await.unwrap();
    app.service.revoke_token(TokenBy::Person(&grace), other.id).await.unwrap();
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&other_secret), None).await.0, 401);
    let listed = app.service.tokens(TokenBy::Person(&omar), ids.omar).await.unwrap();
    assert!(listed.iter().any(|t| t.id == view.id && !t.active && t.revoked_at.is_some()));
    assert!(app.service.tokens(TokenBy::Person(&maya), ids.omar).await.is_err(), "not someone else's");

    // Expired: refused.
    let (view, secret) = made(&omar, &omar, "read", 1).await.unwrap();
    sqlx::query("UPDATE api_tokens SET expires_at = 1 WHERE id = $1")
        .bind(view.id)
        .execute(app.service.db().pool())
        .await
        .unwrap();
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&secret), None).await.0, 401);

    // A disabled owner's token: refused.
    let (_, omars) = made(&omar, &omar, "read", 30).await.unwrap();
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&omars), None).await.0, 200);
    app.service.administrator(&grace).unwrap().set_user_active(ids.omar, false).await.unwrap();
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&omars), None).await.0, 401);

    // Only the hash is kept (the secret nowhere); each making and revoking is audited.
    let hash = quartermaster::domain::token::secret_hash(&omars).unwrap();
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM api_tokens WHERE secret_hash = '{hash}'")).await, 1);
    let secret_in = |columns: &str| format!("SELECT COUNT(*) FROM {columns} LIKE '%{omars}%'");
    assert_eq!(count(&app, &secret_in("api_tokens WHERE secret_hash || name")).await, 0);
    assert_eq!(count(&app, &secret_in("audit_events WHERE after || before || reason")).await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'api_token.created'").await, 6);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'api_token.revoked'").await, 2);
    let by_cli = app.service.person_by_email(&Operator::Workers, "maya@quartermaster.example").await.unwrap();
    assert_eq!(by_cli.id(), ids.maya);
    let disabled = app.service.person_by_email(&Operator::Workers, "omar@quartermaster.example").await;
    assert!(disabled.is_err(), "a disabled person gets no new token");
    let leaver = app.service.person_id_by_email(&Operator::Workers, "omar@quartermaster.example").await.unwrap();
    let theirs = app.service.tokens(TokenBy::CommandLine, leaver).await.unwrap();
    assert!(theirs.len() >= 3, "a leaver's tokens are listed: {theirs:?}");
    assert!(
        theirs.iter().all(|t| t.revoked_at.is_some() || t.expires_at == 1),
        "leaving revoked the live ones: {theirs:?}"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'user.tokens_revoked'").await, 1);
}

/// The ETag of a package's settings, read by `secret`.
async fn settings_etag(app: &TestApp, package: i64, secret: &str) -> (String, Value) {
    let path = format!("/api/v1/packages/{package}/settings");
    let (status, headers, settings) = call_full(app, "GET", &path, Some(secret), None).await;
    assert_eq!(status, 200, "{settings}");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", settings["version"]), "the ETag is the version read");
    (etag, settings)
}

async fn patch_settings(
    app: &TestApp,
    package: i64,
    secret: &str,
    if_match: Option<&str>,
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req =
        Client::new().patch(app.url(&format!("/api/v1/packages/{package}/settings"))).bearer_auth(secret).json(&body);
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.json().await.unwrap())
}

/// A package's settings change only from the version their changer read: without `If-Match`
/// 428, with an old or weak one 412, bad input 422, each changing nothing; of eight changes
/// sent at once from the same read, exactly one lands. What lands is audited with the token.
async fn a_package_changes_only_from_the_version_its_changer_read(backend: Backend) {
    let app = app(backend).await;
    let dev = app.ids.developer_tools.0;
    let linus = token(&app, app.ids.linus, "read,admin").await;
    let (etag, before) = settings_etag(&app, dev, &linus).await;

    let (status, _, problem) = patch_settings(&app, dev, &linus, None, json!({"hidden": true})).await;
    assert_eq!(
        (status.as_u16(), problem["type"].as_str()),
        (428, Some("urn:quartermaster:problem:precondition-required")),
        "{problem}"
    );
    let weak = format!("W/{etag}");
    for tag in ["\"0\"", weak.as_str()] {
        let (status, _, problem) = patch_settings(&app, dev, &linus, Some(tag), json!({"hidden": true})).await;
        assert_eq!(
            (status.as_u16(), problem["type"].as_str()),
            (412, Some("urn:quartermaster:problem:stale")),
            "{tag}: {problem}"
        );
    }
    for (bad, field) in [(json!({"name": "  "}), "name"), (json!({"description": "x".repeat(2001)}), "description")] {
        let (status, _, problem) = patch_settings(&app, dev, &linus, Some(&etag), bad).await;
        assert_eq!((status.as_u16(), problem["field"].as_str()), (422, Some(field)), "{problem}");
    }
    let (status, _, problem) = patch_settings(&app, dev, &linus, Some(&etag), json!({"catalog_id": 1})).await;
    assert_eq!(status, 422, "no such setting: {problem}");
    assert_eq!(settings_etag(&app, dev, &linus).await.1, before, "nothing changed");

    // Eight changes from the same read, at once: one lands, the others are told it changed.
    let sends =
        (0..8).map(|i| {
            let (app, linus, etag) = (&app, linus.clone(), etag.clone());
            async move {
                patch_settings(app, dev, &linus, Some(&etag), json!({"name": format!("Developer Tools {i}")})).await
            }
        });
    let answers = futures_util::future::join_all(sends).await;
    let landed: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 200).collect();
    assert_eq!(landed.len(), 1, "{answers:?}");
    assert!(
        answers.iter().all(|(s, _, p)| *s == 200 || (*s == 412 && p["type"] == "urn:quartermaster:problem:stale")),
        "{answers:?}"
    );
    let (_, headers, won) = landed[0];
    let version = before["version"].as_i64().unwrap() + 1;
    assert_eq!(
        (won["version"].as_i64(), headers["etag"].to_str().unwrap()),
        (Some(version), format!("\"{version}\"").as_str())
    );
    let (now_tag, now) = settings_etag(&app, dev, &linus).await;
    assert_eq!((now["name"].clone(), now_tag), (won["name"].clone(), format!("\"{version}\"")));
    let (status, _, _) = patch_settings(&app, dev, &linus, Some(&etag), json!({"hidden": true})).await;
    assert_eq!(status, 412, "the first read is stale now");
    let (status, _, after) =
        patch_settings(&app, dev, &linus, Some(&format!("\"1\", \"{version}\"")), json!({"hidden": true})).await;
    assert_eq!((status.as_u16(), after["hidden"].as_bool()), (200, Some(true)), "a list naming the version: {after}");
    // The list may come as several lines; a change that changes nothing makes no new version.
    let current = format!("\"{}\"", version + 1);
    let res = Client::new()
        .patch(app.url(&format!("/api/v1/packages/{dev}/settings")))
        .bearer_auth(&linus)
        .header("if-match", "\"1\"")
        .header("if-match", current.as_str())
        .json(&json!({"hidden": true}))
        .send()
        .await
        .unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["etag"].to_str().unwrap()), (200, current.as_str()));

    // Two changes landed, each audited naming Linus's token.
    let me = call(&app, "GET", "/api/v1/me", Some(&linus), None).await.1;
    let through = me["token"].as_i64().unwrap();
    let audited = count(&app, &format!(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'package.updated' AND object_id = {dev} AND token_id = {through} AND actor_id = {}",
        app.ids.linus.0
    )).await;
    assert_eq!(audited, 2);
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM audit_events WHERE action = 'package.updated' AND object_id = {dev}")
        )
        .await,
        2
    );
}

/// The admin operations reach what the owner's roles reach and no further: Sofia (Sales's
/// owner) neither reads nor changes an Engineering package; Lucas (Engineering's assignment
/// manager) reads it and may not change it; a catalog made through the API is its maker's;
/// the audit trail is for administrators. Refusals change nothing.
async fn the_admin_operations_answer_only_for_what_the_roles_reach(backend: Backend) {
    let app = app(backend).await;
    let (ids, dev) = (&app.ids, app.ids.developer_tools.0);
    let sofia = token(&app, ids.sofia, "read,admin").await;
    let lucas = token(&app, ids.lucas, "read,admin").await;
    let grace = token(&app, ids.grace, "admin").await;
    let (etag, before) = settings_etag(&app, dev, &grace).await;

    let path = format!("/api/v1/packages/{dev}/settings");
    let (status, problem) = call(&app, "GET", &path, Some(&sofia), None).await;
    assert_eq!(status, 404, "not her catalog's: {problem}");
    let (status, _, problem) = patch_settings(&app, dev, &sofia, Some(&etag), json!({"enabled": false})).await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(settings_etag(&app, dev, &lucas).await.1, before, "an assignment manager reads it");
    let (status, _, problem) = patch_settings(&app, dev, &lucas, Some(&etag), json!({"enabled": false})).await;
    assert_eq!(status, 403, "and may not change it: {problem}");
    assert_eq!(settings_etag(&app, dev, &grace).await.1, before, "nothing changed");

    // Catalogs: Sofia lists hers; Grace all of them; Sofia may not make one, Grace may.
    let listed = |secret: String| {
        let app = &app;
        async move {
            let (status, list) = call(app, "GET", "/api/v1/catalogs", Some(&secret), None).await;
            assert_eq!(status, 200, "{list}");
            list["items"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(sofia.clone()).await, vec!["Sales & Marketing".to_owned()]);
    let all = listed(grace.clone()).await;
    assert!(all.len() >= 3 && all.contains(&"Engineering".to_owned()), "{all:?}");
    let catalogs = count(&app, "SELECT COUNT(*) FROM catalogs").await;
    let (status, problem) =
        call(&app, "POST", "/api/v1/catalogs", Some(&sofia), Some(json!({"name": "Marketing"}))).await;
    assert_eq!(status, 403, "{problem}");
    let (status, problem) =
        call(&app, "POST", "/api/v1/catalogs", Some(&grace), Some(json!({"name": "Sales & Marketing"}))).await;
    assert_eq!(
        (status.as_u16(), problem["type"].as_str()),
        (409, Some("urn:quartermaster:problem:conflict")),
        "{problem}"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM catalogs").await, catalogs, "refusals make nothing");
    let (status, headers, made) = call_full(
        &app,
        "POST",
        "/api/v1/catalogs",
        Some(&grace),
        Some(json!({"name": "Marketing", "description": "Campaign tools"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let location = headers["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/catalogs/{}", made["id"]));
    assert_eq!(call(&app, "GET", &location, Some(&grace), None).await.1, made);
    let (status, _) = call(&app, "GET", &location, Some(&sofia), None).await;
    assert_eq!(status, 404, "not hers");

    // The audit trail: Grace reads it, filtered, a page at a time; Sofia may not.
    let (status, problem) = call(&app, "GET", "/api/v1/audit-events", Some(&sofia), None).await;
    assert_eq!(status, 403, "{problem}");
    let (status, page) = call(&app, "GET", "/api/v1/audit-events?action=catalog.created", Some(&grace), None).await;
    assert_eq!(status, 200, "{page}");
    let first = &page["items"][0];
    assert_eq!((first["object_id"].clone(), first["actor_id"].clone()), (made["id"].clone(), json!(ids.grace.0)));
    let graces = call(&app, "GET", "/api/v1/me", Some(&grace), None).await;
    assert_eq!(graces.0, 403, "her token has admin, not read");
    assert!(first["token"].as_i64().is_some_and(|t| t > 0), "made through her token: {first}");
    let (status, problem) = call(&app, "GET", "/api/v1/audit-events?from=yesterday", Some(&grace), None).await;
    assert_eq!((status.as_u16(), problem["field"].as_str()), (422, Some("from")), "{problem}");
    let (status, problem) = call(&app, "GET", "/api/v1/audit-events?cursor=x", Some(&grace), None).await;
    assert_eq!((status.as_u16(), problem["field"].as_str()), (422, Some("cursor")), "{problem}");
}

/// Over the per-address rate limit the API answers 429 as problem details (as its document
/// declares for every operation), with `Retry-After`, before any handler runs.
#[tokio::test]
async fn over_the_rate_limit_the_api_answers_problem_details() {
    let app = spawn_app_with(Backend::Sqlite, |args| {
        args.no_workers = true;
        args.limits.rate_api_per_address = 1;
    })
    .await;
    let secret = token(&app, app.ids.omar, "read").await;
    let mut answers = Vec::new();
    for _ in 0..15 {
        answers.push(call_full(&app, "GET", "/api/v1/me", Some(&secret), None).await);
    }
    let (status, headers, problem) = answers.last().unwrap();
    assert_eq!(*status, 429, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(problem["type"], "urn:quartermaster:problem:rate-limited");
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(answers[0].0, 200, "the first calls get through");
}

/// An assignment manager assigns, lists and removes through the API, as on the package's
/// page; another catalog's owner is told the package does not exist; each change names the
/// token in the audit trail.
async fn an_assignment_manager_assigns_and_removes_through_the_api(backend: Backend) {
    let app = app(backend).await;
    let dev = app.ids.developer_tools.0;
    let lucas = token(&app, app.ids.lucas, "read,admin").await;
    let sofia = token(&app, app.ids.sofia, "read,admin").await;
    let policy: i64 = sqlx::query_scalar("SELECT id FROM policies WHERE package_id = $1 ORDER BY id LIMIT 1")
        .bind(dev)
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    let path = format!("/api/v1/packages/{dev}/assignments");
    let tom = json!({"person": "tom@quartermaster.example", "policy_id": policy, "justification": "audit season"});
    let (status, problem) = call(&app, "POST", &path, Some(&sofia), Some(tom.clone())).await;
    assert_eq!(status, 404, "not her catalog's: {problem}");
    let (status, outcome) = call(&app, "POST", &path, Some(&lucas), Some(tom.clone())).await;
    assert_eq!(status, 201, "{outcome}");
    let (status, problem) = call(&app, "POST", &path, Some(&lucas), Some(tom)).await;
    assert_eq!(status, 409, "already assigned: {problem}");

    let (status, page) = call(&app, "GET", &format!("{path}?q=tom"), Some(&lucas), None).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["email"], "tom@quartermaster.example");
    let assignment = items[0]["id"].as_i64().unwrap();
    assert_eq!(call(&app, "GET", &format!("{path}?state=nonsense"), Some(&lucas), None).await.0, 422);

    let one = format!("{path}/{assignment}?reason=left%20the%20team");
    assert_eq!(call(&app, "DELETE", &one, Some(&sofia), None).await.0, 404);
    let (status, _, body) = call_full(&app, "DELETE", &one, Some(&lucas), None).await;
    assert_eq!((status.as_u16(), body), (204, Value::String(String::new())), "removed, nothing to say");
    assert_eq!(call(&app, "DELETE", &one, Some(&lucas), None).await.0, 409, "it ended already");
    let (status, page) = call(&app, "GET", &format!("{path}?q=tom&state=ended"), Some(&lucas), None).await;
    assert_eq!((status.as_u16(), page["items"].as_array().unwrap().len()), (200, 1), "{page}");

    let me = call(&app, "GET", "/api/v1/me", Some(&lucas), None).await.1;
    let through = me["token"].as_i64().unwrap();
    let audited = count(
        &app,
        &format!(
            "SELECT COUNT(DISTINCT action) FROM audit_events WHERE token_id = {through} AND actor_id = {} \
             AND object_type IN ('request', 'assignment')",
            app.ids.lucas.0
        ),
    )
    .await;
    assert!(audited >= 2, "{audited} kinds of event name his token (assigning, removing)");
    let (status, people) = call(&app, "GET", "/api/v1/people?q=to", Some(&lucas), None).await;
    assert_eq!(status, 200, "{people}");
    assert!(people.as_array().unwrap().iter().any(|p| p["email"] == "tom@quartermaster.example"), "{people}");
}

async fn a_review_is_answered_ended_and_applied_through_the_api(backend: Backend) {
    use quartermaster::domain::ids::PolicyId;
    use quartermaster::domain::policy::{ApproverSpec, ReviewDefault, ReviewFrequency, ReviewSettings};
    let app = app(backend).await;
    let (s, ids, pool) = (&app.service, &app.ids, app.service.db().pool());
    let grace = actor(&app, ids.grace).await;
    let policy: i64 = sqlx::query_scalar("SELECT id FROM policies WHERE package_id = $1 ORDER BY id LIMIT 1")
        .bind(ids.developer_tools.0)
        .fetch_one(pool)
        .await
        .unwrap();
    // Developer Tools reviewed from today by Hana; Tom holds it.
    let am = s.assignment_manager_of(&grace, ids.developer_tools).await.unwrap();
    am.assign_directly(ids.tom, ids.developer_tools, PolicyId(policy), None, "review me").await.unwrap();
    let pm = s.package_manager_of(&grace, ids.developer_tools).await.unwrap();
    let mut dev = {
        let mut conn = pool.acquire().await.unwrap();
        quartermaster::store::catalog::policy(&mut conn, PolicyId(policy)).await.unwrap().unwrap()
    };
    dev.review = ReviewSettings::Recurring {
        frequency: ReviewFrequency::Quarterly,
        reviewers: vec![ApproverSpec::User { id: ids.hana }],
        self_review: false,
        duration_days: 14,
        default_decision: ReviewDefault::Keep,
        apply_automatically: false,
        starts_on: Some(chrono::Utc::now().date_naive()),
        fallback: vec![],
    };
    pm.update_policy(dev).await.unwrap();
    assert_eq!(s.start_reviews(&Operator::Workers).await.unwrap(), 1);

    let (hana_reads, hana) = (token(&app, ids.hana, "read").await, token(&app, ids.hana, "read,decide").await);
    let (status, page) = call(&app, "GET", "/api/v1/review-items", Some(&hana_reads), None).await;
    assert_eq!(status, 200, "{page}");
    let tom = page["items"].as_array().unwrap().iter().find(|i| i["email"] == "tom@quartermaster.example");
    let item = tom.unwrap_or_else(|| panic!("Tom's item: {page}"))["id"].as_i64().unwrap();
    assert!(page["items"].as_array().unwrap().iter().all(|i| i["decision"].is_null()), "{page}");
    let answer = format!("/api/v1/review-items/{item}/answer");
    let remove = json!({"decision": "remove", "justification": "left the team"});
    assert_eq!(call(&app, "POST", &answer, Some(&hana_reads), Some(remove.clone())).await.0, 403, "needs decide");
    let (status, problem) = call(&app, "POST", &answer, Some(&hana), Some(json!({"decision": "maybe"}))).await;
    assert_eq!(status, 422, "{problem}");
    let maya = token(&app, ids.maya, "read,decide").await;
    assert_eq!(call(&app, "POST", &answer, Some(&maya), Some(remove.clone())).await.0, 404, "not hers to answer");
    let answered = "SELECT COUNT(*) FROM review_items WHERE decision IS NOT NULL";
    assert_eq!(count(&app, answered).await, 0, "refused answers change nothing");
    let (status, _, body) = call_full(&app, "POST", &answer, Some(&hana), Some(remove)).await;
    assert_eq!((status.as_u16(), body), (204, Value::String(String::new())));
    assert_eq!(count(&app, answered).await, 1);

    let admin = token(&app, ids.grace, "read,admin").await;
    let sofia = token(&app, ids.sofia, "read,admin").await;
    let (status, page) = call(&app, "GET", "/api/v1/reviews", Some(&admin), None).await;
    assert_eq!(status, 200, "{page}");
    let review = &page["items"][0];
    assert_eq!((review["state"].as_str(), review["decided"].as_i64()), (Some("running"), Some(1)), "{page}");
    let id = review["id"].as_i64().unwrap();
    let (end, apply) = (format!("/api/v1/reviews/{id}/end"), format!("/api/v1/reviews/{id}/apply"));
    assert_eq!(call(&app, "POST", &apply, Some(&admin), None).await.0, 409, "running still");
    assert_eq!(call(&app, "POST", &end, Some(&sofia), None).await.0, 404, "not her catalog's");
    assert_eq!(call(&app, "POST", &end, Some(&admin), None).await.0, 204);
    assert_eq!(call(&app, "POST", &end, Some(&admin), None).await.0, 409, "ended already");
    let (status, applied) = call(&app, "POST", &apply, Some(&admin), None).await;
    assert_eq!((status.as_u16(), &applied), (200, &json!({"removed": 1})), "Tom's removal alone: the rest kept");
    assert_eq!(call(&app, "POST", &apply, Some(&admin), None).await.0, 409, "applied already");
    let live = format!(
        "SELECT COUNT(*) FROM assignments WHERE user_id = {} AND package_id = {} AND state NOT IN ('expired', 'removed')",
        ids.tom.0, ids.developer_tools.0
    );
    assert_eq!(count(&app, &live).await, 0, "his access is being taken back");
}

/// Of `answers` to changes sent at once from one read, exactly one landed (the others were
/// told it changed), making `version`; what it answered.
fn one_lands(answers: Vec<(u16, reqwest::header::HeaderMap, Value)>, version: i64) -> Value {
    let landed: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 200).collect();
    assert_eq!(landed.len(), 1, "{answers:?}");
    assert!(answers.iter().all(|(s, _, p)| *s == 200 || (*s == 412 && p["type"] == "urn:quartermaster:problem:stale")));
    let (_, headers, won) = landed[0];
    assert_eq!(
        (won["version"].as_i64(), headers["etag"].to_str().unwrap()),
        (Some(version), format!("\"{version}\"").as_str())
    );
    won.clone()
}

/// `req` sent with `secret`, `If-Match: tag` (if any) and `body`: its status, headers, JSON.
async fn conditional(
    req: reqwest::RequestBuilder,
    secret: String,
    tag: Option<String>,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = req.bearer_auth(secret).json(&body);
    if let Some(tag) = tag {
        req = req.header("if-match", tag);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    (status, headers, res.json::<Value>().await.unwrap())
}

/// A catalog, like a package, changes only from the version its changer read: 428 without
/// `If-Match`, 412 from an old one; of eight changes sent at once from one read, one lands;
/// a change that changes nothing makes no version. The settings form names its version too.
async fn a_catalog_changes_only_from_the_version_its_changer_read(backend: Backend) {
    let app = app(backend).await;
    let eng: i64 = sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Engineering'")
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    let path = format!("/api/v1/catalogs/{eng}");
    let linus = token(&app, app.ids.linus, "read,admin").await;
    let lucas = token(&app, app.ids.lucas, "read,admin").await;
    let (status, headers, before) = call_full(&app, "GET", &path, Some(&linus), None).await;
    assert_eq!(status, 200, "{before}");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", before["version"]));
    let patch = |secret: String, tag: Option<String>, body: Value| {
        conditional(Client::new().patch(app.url(&path)), secret, tag, body)
    };
    let opened = json!({"externally_visible": true});
    assert_eq!(patch(linus.clone(), None, opened.clone()).await.0, 428);
    assert_eq!(patch(linus.clone(), Some("\"0\"".into()), opened.clone()).await.0, 412);
    assert_eq!(patch(lucas.clone(), Some(etag.clone()), opened.clone()).await.0, 403, "an assignment manager");
    let events = "SELECT COUNT(*) FROM audit_events WHERE action = 'catalog.updated'";
    assert_eq!(count(&app, events).await, 0, "refusals change nothing");

    let sends = (0..8).map(|i| patch(linus.clone(), Some(etag.clone()), json!({"description": format!("take {i}")})));
    let version = before["version"].as_i64().unwrap() + 1;
    let won = one_lands(futures_util::future::join_all(sends).await, version);
    assert_eq!(count(&app, events).await, 1);
    let same = json!({"description": won["description"].clone()});
    let (status, headers, _) = patch(linus.clone(), Some(format!("\"{version}\"")), same).await;
    assert_eq!((status, headers["etag"].to_str().unwrap()), (200, format!("\"{version}\"").as_str()), "no new version");
    assert_eq!(count(&app, events).await, 1, "nor an event");

    // The settings form: saved from the version it showed, refused from an older one.
    let owner = app.service.actor(app.ids.linus).await.unwrap().unwrap();
    let form = |version: i64| {
        let (service, owner) = (app.service.clone(), owner.clone());
        async move {
            let mut changed =
                service.catalog_owner(&owner, quartermaster::domain::ids::CatalogId(eng))?.settings().await?;
            changed.description = format!("from version {version}");
            changed.version = version;
            service.catalog_owner(&owner, changed.id)?.update_catalog(changed).await
        }
    };
    assert!(matches!(form(version - 1).await, Err(quartermaster::domain::DomainError::Stale(_))));
    form(version).await.unwrap();
    assert_eq!(count(&app, events).await, 2);
}

/// A policy is read as the engine keeps it and replaced whole from the version read: 428
/// without `If-Match`, 412 from an old one, 422 for a policy the engine would refuse or one
/// moved to another id, each changing nothing; of eight replacements from one read, one
/// lands, audited with its token. Who may not build Engineering's packages may not.
async fn a_policy_is_replaced_only_from_the_version_its_changer_read(backend: Backend) {
    let app = app(backend).await;
    let dev = app.ids.developer_tools.0;
    let linus = token(&app, app.ids.linus, "read,admin").await;
    let (status, list) = call(&app, "GET", &format!("/api/v1/packages/{dev}/policies"), Some(&linus), None).await;
    assert_eq!(status, 200, "{list}");
    let id = list[0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/policies/{id}");
    let (status, headers, before) = call_full(&app, "GET", &path, Some(&linus), None).await;
    assert_eq!((status.as_u16(), &before), (200, &list[0]));
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", before["version"]));
    let put = |secret: String, tag: Option<String>, body: Value| {
        conditional(Client::new().put(app.url(&path)), secret, tag, body)
    };
    let renamed = |name: &str| {
        let mut p = before.clone();
        p["name"] = json!(name);
        p
    };
    let updated = "SELECT COUNT(*) FROM audit_events WHERE action = 'policy.updated'";
    let lucas = token(&app, app.ids.lucas, "read,admin").await;
    let sofia = token(&app, app.ids.sofia, "read,admin").await;
    assert_eq!(put(linus.clone(), None, renamed("x")).await.0, 428);
    assert_eq!(put(linus.clone(), Some("\"0\"".into()), renamed("x")).await.0, 412);
    assert_eq!(put(lucas.clone(), Some(etag.clone()), renamed("x")).await.0, 403, "assigns, does not build");
    assert_eq!(put(sofia.clone(), Some(etag.clone()), renamed("x")).await.0, 404, "not her catalog's");
    assert_eq!(call(&app, "GET", &path, Some(&sofia), None).await.0, 404);
    let (status, _, problem) = put(linus.clone(), Some(etag.clone()), renamed("  ")).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("name")), "{problem}");
    let mut moved = renamed("Moved");
    moved["id"] = json!(999_999);
    assert_eq!(put(linus.clone(), Some(etag.clone()), moved).await.0, 422);
    let mut elsewhere = renamed("Elsewhere");
    elsewhere["package_id"] = json!(app.ids.sales_crm.0);
    assert_eq!(put(linus.clone(), Some(etag.clone()), elsewhere).await.0, 422, "a policy stays with its package");
    // Someone who is not there, as approver or requestor: the field, not a failure of ours.
    let mut nobody_approves = renamed("Nobody approves");
    nobody_approves["approval"]["stages"] = json!([{"primary": [{"kind": "user", "id": 999_999}], "timeout_days": 7}]);
    let (status, _, problem) = put(linus.clone(), Some(etag.clone()), nobody_approves).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("approval")), "{problem}");
    let mut nobody_asks = renamed("Nobody asks");
    nobody_asks["scope"] = json!("specific");
    nobody_asks["requestors"] = json!([{"kind": "user", "id": 999_999}]);
    let (status, _, problem) = put(linus.clone(), Some(etag.clone()), nobody_asks).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("people")), "{problem}");
    assert_eq!(count(&app, updated).await, 0, "refusals change nothing");
    assert_eq!(call(&app, "GET", &path, Some(&linus), None).await.1, before);

    let sends = (0..8).map(|i| put(linus.clone(), Some(etag.clone()), renamed(&format!("Take {i}"))));
    let version = before["version"].as_i64().unwrap() + 1;
    let won = one_lands(futures_util::future::join_all(sends).await, version);
    let (status, _, same) = put(linus.clone(), Some(format!("\"{version}\"")), won.clone()).await;
    assert_eq!((status, same["version"].as_i64()), (200, Some(version)), "the same policy again: no new version");
    let through = call(&app, "GET", "/api/v1/me", Some(&linus), None).await.1["token"].as_i64().unwrap();
    assert_eq!(count(&app, &format!("{updated} AND object_id = {id} AND token_id = {through}")).await, 1);
    assert_eq!(count(&app, updated).await, 1);
}

/// A package made through the API grants roles of its catalog only, has no policy until one
/// is added (so nobody can ask for it), and then is asked for under that policy.
async fn a_package_is_made_and_given_a_policy_through_the_api(backend: Backend) {
    let app = app(backend).await;
    let linus = token(&app, app.ids.linus, "read,admin").await;
    let eng: i64 = sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Engineering'")
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    let sales: i64 = sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Sales & Marketing'")
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    let (status, resources) = call(&app, "GET", &format!("/api/v1/catalogs/{eng}/resources"), Some(&linus), None).await;
    assert_eq!(status, 200, "{resources}");
    let role = resources[0]["role_ids"][0].as_i64().unwrap();
    let sofia = token(&app, app.ids.sofia, "read,admin").await;
    let (_, theirs) = call(&app, "GET", &format!("/api/v1/catalogs/{sales}/resources"), Some(&sofia), None).await;
    let stray = theirs[0]["role_ids"][0].as_i64().unwrap();

    let packages = format!("/api/v1/catalogs/{eng}/packages");
    let body = |roles: Vec<i64>| json!({"name": "Data Lake", "description": "Raw data", "role_ids": roles});
    let (status, made) =
        call(&app, "POST", &packages, Some(&linus), Some(json!({"name": "Twice", "role_ids": [role, role]}))).await;
    assert_eq!(status, 201, "a role named twice is granted once: {made}");
    let (status, problem) = call(&app, "POST", &packages, Some(&linus), Some(body(vec![stray]))).await;
    assert_eq!((status.as_u16(), problem["field"].as_str()), (422, Some("roles")), "another catalog's role: {problem}");
    assert_eq!(call(&app, "POST", &packages, Some(&sofia), Some(body(vec![role]))).await.0, 404);
    let (status, headers, made) = call_full(&app, "POST", &packages, Some(&linus), Some(body(vec![role]))).await;
    assert_eq!(status, 201, "{made}");
    let package = made["id"].as_i64().unwrap();
    assert_eq!(headers["location"].to_str().unwrap(), format!("/api/v1/packages/{package}/settings"));
    assert_eq!(headers["etag"].to_str().unwrap(), format!("\"{}\"", made["version"]));
    assert_eq!(call(&app, "POST", &packages, Some(&linus), Some(body(vec![role]))).await.0, 409, "the name is taken");

    let omar = token(&app, app.ids.omar, "read,request").await;
    let ask = json!({"package_id": package, "justification": "lakes"});
    let (status, problem) = call(&app, "POST", "/api/v1/requests", Some(&omar), Some(ask.clone())).await;
    assert_eq!(status, 403, "no policy admits him yet: {problem}");

    // A policy like Developer Tools' first, for the new package.
    let dev = app.ids.developer_tools.0;
    let (_, policies) = call(&app, "GET", &format!("/api/v1/packages/{dev}/policies"), Some(&linus), None).await;
    let mut policy = policies[0].clone();
    policy["name"] = json!("Everyone, manager approves");
    let policies = format!("/api/v1/packages/{package}/policies");
    assert_eq!(call(&app, "POST", &policies, Some(&linus), Some(policy.clone())).await.0, 422, "another package's");
    policy["package_id"] = json!(package);
    // Automatic assignment is for administrators to set, through the API as on the pages.
    let mut automatic = policy.clone();
    automatic["auto_rule"] = json!("department == \"Engineering\"");
    automatic["scope"] = json!("nobody");
    automatic["requestors"] = json!([]);
    assert_eq!(call(&app, "POST", &policies, Some(&linus), Some(automatic)).await.0, 403);
    let (status, headers, added) = call_full(&app, "POST", &policies, Some(&linus), Some(policy)).await;
    assert_eq!(status, 201, "{added}");
    let id = added["id"].as_i64().unwrap();
    assert_eq!(headers["location"].to_str().unwrap(), format!("/api/v1/policies/{id}"));
    assert_eq!((added["version"].as_i64(), added["package_id"].as_i64()), (Some(1), Some(package)));
    let (status, outcome) = call(&app, "POST", "/api/v1/requests", Some(&omar), Some(ask)).await;
    assert_eq!(status, 201, "under its policy now: {outcome}");
    let events = count(
        &app,
        &format!(
            "SELECT COUNT(*) FROM audit_events WHERE (action = 'package.created' AND object_id = {package}) \
         OR (action = 'policy.created' AND object_id = {id})"
        ),
    )
    .await;
    assert_eq!(events, 2);
}

/// The caller's email settings: a time zone left out stays, null goes back to automatic, a
/// zone the tz database does not know is refused; their out-of-office set, seen and ended.
async fn ones_own_settings_are_read_and_changed_through_the_api(backend: Backend) {
    let app = app(backend).await;
    let (reads, omar) = (token(&app, app.ids.omar, "read").await, token(&app, app.ids.omar, "read,request").await);
    let path = "/api/v1/me/email-settings";
    let berlin = json!({"optional": true, "digest": false, "time_zone": "Europe/Berlin"});
    assert_eq!(call(&app, "PUT", path, Some(&reads), Some(berlin.clone())).await.0, 403, "needs request");
    let (status, now) = call(&app, "PUT", path, Some(&omar), Some(berlin)).await;
    assert_eq!(
        (status.as_u16(), now["time_zone"].as_str(), now["optional"].as_bool()),
        (200, Some("Europe/Berlin"), Some(true))
    );
    let (_, kept) = call(&app, "PUT", path, Some(&omar), Some(json!({"optional": false, "digest": true}))).await;
    assert_eq!((kept["time_zone"].as_str(), kept["digest"].as_bool()), (Some("Europe/Berlin"), Some(true)), "{kept}");
    let (status, problem) = call(
        &app,
        "PUT",
        path,
        Some(&omar),
        Some(json!({"optional": false, "digest": true, "time_zone": "Mars/Olympus"})),
    )
    .await;
    assert_eq!((status.as_u16(), problem["field"].as_str()), (422, Some("time_zone")), "{problem}");
    let (_, reset) =
        call(&app, "PUT", path, Some(&omar), Some(json!({"optional": false, "digest": true, "time_zone": null}))).await;
    assert!(reset["time_zone"].is_null(), "automatic again: {reset}");
    assert_eq!(call(&app, "GET", path, Some(&reads), None).await.1, reset);

    let deputies = "/api/v1/me/deputies";
    let until = (chrono::Utc::now() + chrono::Duration::days(10)).format("%Y-%m-%d").to_string();
    let (status, problem) = call(
        &app,
        "POST",
        deputies,
        Some(&omar),
        Some(json!({"deputy": "tom@quartermaster.example", "until": "soon"})),
    )
    .await;
    assert_eq!((status.as_u16(), problem["field"].as_str()), (422, Some("until")), "{problem}");
    let (status, made) =
        call(&app, "POST", deputies, Some(&omar), Some(json!({"deputy": "tom@quartermaster.example", "until": until})))
            .await;
    assert_eq!(status, 201, "{made}");
    let (_, panel) = call(&app, "GET", deputies, Some(&reads), None).await;
    assert_eq!(
        (panel["own"]["id"].clone(), panel["own"]["deputy_email"].as_str()),
        (made["id"].clone(), Some("tom@quartermaster.example"))
    );
    let one = format!("{deputies}/{}", made["id"]);
    let maya = token(&app, app.ids.maya, "read,request").await;
    assert_eq!(call(&app, "DELETE", &one, Some(&maya), None).await.0, 404, "not hers");
    assert_eq!(call(&app, "DELETE", &one, Some(&omar), None).await.0, 204);
    assert_eq!(call(&app, "DELETE", &one, Some(&omar), None).await.0, 409, "ended already");
    assert!(call(&app, "GET", deputies, Some(&reads), None).await.1["own"].is_null());
}

/// A connected organization's settings and its guests' lifecycle share one version: a change
/// of either from an old read is refused (412), of eight from one read one lands, and the
/// same settings again make no version.
async fn an_organization_changes_only_from_the_version_its_changer_read(backend: Backend) {
    let app = app(backend).await;
    let grace = token(&app, app.ids.grace, "read,admin").await;
    let linus = token(&app, app.ids.linus, "read,admin").await;
    let (_, orgs) = call(&app, "GET", "/api/v1/organizations", Some(&grace), None).await;
    let id = orgs[0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/organizations/{id}");
    let (status, headers, before) = call_full(&app, "GET", &path, Some(&grace), None).await;
    assert_eq!((status.as_u16(), &before), (200, &orgs[0]));
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let lifecycle = format!("{path}/guest-lifecycle");
    let patch =
        |tag: Option<String>, body: Value| conditional(Client::new().patch(app.url(&path)), grace.clone(), tag, body);
    let put = |tag: Option<String>, body: Value| {
        conditional(Client::new().put(app.url(&lifecycle)), grace.clone(), tag, body)
    };
    let events = "SELECT COUNT(*) FROM audit_events WHERE action IN ('org.updated', 'org.guest_lifecycle')";
    assert_eq!(patch(None, json!({"name": "Renamed"})).await.0, 428);
    assert_eq!(put(Some("\"0\"".into()), json!({"block_after_days": 7, "remove_after_days": null})).await.0, 412);
    assert_eq!(call(&app, "GET", &path, Some(&linus), None).await.0, 403, "administrators only");
    let (status, _, problem) = put(Some(etag.clone()), json!({"block_after_days": 0, "remove_after_days": null})).await;
    assert_eq!((status, problem["field"].as_str()), (422, Some("block_after_days")), "{problem}");
    assert_eq!(count(&app, events).await, 0, "refusals change nothing");

    let version = before["version"].as_i64().unwrap() + 1;
    let sends = (0..8).map(|i| patch(Some(etag.clone()), json!({"name": format!("Partner {i}")})));
    let won = one_lands(futures_util::future::join_all(sends).await, version);
    // The lifecycle from the read before that change: refused.
    let (status, _, _) = put(Some(etag.clone()), json!({"block_after_days": 7, "remove_after_days": 30})).await;
    assert_eq!(status, 412, "the same version covers both");
    let (status, headers, after) =
        put(Some(format!("\"{version}\"")), json!({"block_after_days": 7, "remove_after_days": 30})).await;
    assert_eq!(
        (status, after["block_after_days"].as_i64(), after["name"].clone()),
        (200, Some(7), won["name"].clone())
    );
    let latest = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(latest, format!("\"{}\"", version + 1));
    let (status, headers, _) = patch(Some(latest.clone()), json!({"name": won["name"].clone()})).await;
    assert_eq!((status, headers["etag"].to_str().unwrap()), (200, latest.as_str()), "no change, no version");
    let domain = before["domain"].as_str().unwrap().to_uppercase();
    let (status, headers, _) = patch(Some(latest.clone()), json!({"domain": domain})).await;
    assert_eq!((status, headers["etag"].to_str().unwrap()), (200, latest.as_str()), "the same domain, as stored");
    assert_eq!(count(&app, events).await, 2);
    // The lifecycle from one read, eight times at once: one lands.
    let sends =
        (0..8).map(|i| put(Some(latest.clone()), json!({"block_after_days": 10 + i, "remove_after_days": null})));
    one_lands(futures_util::future::join_all(sends).await, version + 2);
    assert_eq!(count(&app, events).await, 3);
}

/// Grace (an administrator) makes a service account and a token for it: the account acts
/// only through that token, with no scope beyond the rights it was given (a role given it
/// through the API widens them), signs in nowhere, and stops when disabled. Nobody else makes
/// its tokens, and an administrator makes none for a person.
async fn a_service_account_acts_only_through_the_tokens_administrators_make(backend: Backend) {
    use quartermaster::service::directory::{AdminBootstrap, ProviderIdentity};
    let app = app(backend).await;
    let ids = &app.ids;
    let grace = token(&app, ids.grace, "read,request,admin,scim").await;
    let narrow = token(&app, ids.grace, "read,admin").await;
    let linus = token(&app, ids.linus, "read,admin").await;
    let account = json!({"name": "Nightly HR Sync", "purpose": "reads who has what each night"});
    let (status, _) = call(&app, "POST", "/api/v1/service-accounts", Some(&linus), Some(account.clone())).await;
    assert_eq!(status, 403, "administrators only");
    let (status, made) = call(&app, "POST", "/api/v1/service-accounts", Some(&grace), Some(account.clone())).await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_i64().unwrap();
    let (status, problem) = call(&app, "POST", "/api/v1/service-accounts", Some(&grace), Some(account)).await;
    assert_eq!(status, 409, "one of that name: {problem}");
    let (status, problem) =
        call(&app, "POST", "/api/v1/service-accounts", Some(&grace), Some(json!({"name": "***"}))).await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("name")), "{problem}");
    let (_, listed) = call(&app, "GET", "/api/v1/service-accounts", Some(&grace), None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // In the directory, as administrators browse it (a catalog owner searches instead).
    let (status, page) = call(&app, "GET", "/api/v1/directory", Some(&grace), None).await;
    assert_eq!(status, 200, "{page}");
    assert!(page["items"].to_string().contains("nightly-hr-sync@service-accounts.invalid"), "{page}");
    assert_eq!(call(&app, "GET", "/api/v1/directory", Some(&linus), None).await.0, 403);
    assert_eq!(
        (listed[0]["email"].as_str(), listed[0]["active"].as_bool(), listed[0]["tokens"].clone()),
        (Some("nightly-hr-sync@service-accounts.invalid"), Some(true), json!([]))
    );

    // Its tokens: by an administrator, within the account's own rights.
    let tokens = format!("/api/v1/service-accounts/{id}/tokens");
    let ask = |scopes: &[&str]| json!({"name": "nightly", "scopes": scopes, "days": 7});
    let (status, _) = call(&app, "POST", &tokens, Some(&linus), Some(ask(&["read"]))).await;
    assert_eq!(status, 403, "not a catalog owner's to make");
    let (status, problem) = call(&app, "POST", &tokens, Some(&grace), Some(ask(&["read", "admin"]))).await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("scopes")), "{problem}");
    let person = format!("/api/v1/service-accounts/{}/tokens", ids.omar.0);
    let (status, problem) = call(&app, "POST", &person, Some(&grace), Some(ask(&["read"]))).await;
    assert_eq!(status, 403, "not for a person: {problem}");
    let own = format!("/api/v1/service-accounts/{}/tokens", ids.grace.0);
    let (status, problem) = call(&app, "POST", &own, Some(&grace), Some(ask(&["read"]))).await;
    assert_eq!(status, 403, "not for oneself either (that is /me/tokens, within the calling token): {problem}");
    let (status, problem) = call(&app, "POST", &tokens, Some(&narrow), Some(ask(&["read", "request"]))).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("scopes")),
        "no wider than the calling token: {problem}"
    );
    let (status, made) = call(&app, "POST", &tokens, Some(&grace), Some(ask(&["read", "request"]))).await;
    assert_eq!(status, 201, "{made}");
    let robot = made["secret"].as_str().unwrap().to_owned();
    let (_, me) = call(&app, "GET", "/api/v1/me", Some(&robot), None).await;
    assert_eq!((me["id"].as_i64(), me["email"].as_str()), (Some(id), Some("nightly-hr-sync@service-accounts.invalid")));
    assert_eq!(call(&app, "GET", "/api/v1/packages", Some(&robot), None).await.0, 200);
    let catalog = json!({"name": "Robots' Catalog", "description": ""});
    assert_eq!(call(&app, "POST", "/api/v1/catalogs", Some(&robot), Some(catalog.clone())).await.0, 403);
    let by: Option<i64> = sqlx::query_scalar(
        "SELECT actor_id FROM audit_events WHERE action = 'api_token.created' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(app.service.db().pool())
    .await
    .unwrap();
    assert_eq!(by, Some(ids.grace.0), "made by Grace, on the record");

    // A global role given to the account through the API widens what its tokens may have.
    let role = format!("/api/v1/people/{id}/roles/catalog_creator");
    assert_eq!(call(&app, "PUT", &role, Some(&linus), None).await.0, 403);
    assert_eq!(call(&app, "PUT", &role, Some(&grace), None).await.0, 204);
    let (status, made) = call(&app, "POST", &tokens, Some(&grace), Some(ask(&["read", "admin"]))).await;
    assert_eq!(status, 201, "{made}");
    let creator = made["secret"].as_str().unwrap().to_owned();
    let (status, answer) = call(&app, "POST", "/api/v1/catalogs", Some(&creator), Some(catalog)).await;
    assert_eq!(status, 201, "{answer}");
    let wrong = format!("/api/v1/people/{id}/roles/root");
    let (status, problem) = call(&app, "PUT", &wrong, Some(&grace), None).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(call(&app, "DELETE", &role, Some(&grace), None).await.0, 204);
    assert_eq!(call(&app, "DELETE", &role, Some(&grace), None).await.0, 404, "not held any more");
    let last = format!("/api/v1/people/{}/roles/administrator", ids.grace.0);
    let (status, problem) = call(&app, "DELETE", &last, Some(&grace), None).await;
    assert_eq!(status, 409, "the last administrator stays: {problem}");

    // It signs in nowhere: an identity with its address is not linked to it.
    let rules = AdminBootstrap { link_domains: vec!["service-accounts.invalid".into()], ..Default::default() };
    let identity = ProviderIdentity {
        issuer: "https://idp.example".into(),
        subject: "robot".into(),
        email: "nightly-hr-sync@service-accounts.invalid".into(),
        email_verified: true,
        display_name: "Robot".into(),
        ..Default::default()
    };
    let signed_in = app.service.sign_in_from_provider(&identity, &rules).await;
    assert!(signed_in.is_err(), "{signed_in:?}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users WHERE issuer = 'https://idp.example'").await, 0);
    // Nor does an identity provider's SCIM take it over as a person of its own.
    let res = Client::new()
        .post(app.url("/scim/v2/Users"))
        .bearer_auth(&grace)
        .header("content-type", "application/scim+json")
        .body(json!({"userName": "nightly-hr-sync@service-accounts.invalid", "active": false}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409, "{}", res.text().await.unwrap());
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&robot), None).await.0, 200, "still working");

    // Disabled: its tokens stop, and it gets no new one.
    let g = actor(&app, ids.grace).await;
    app.service.administrator(&g).unwrap().set_user_active(UserId(id), false).await.unwrap();
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&robot), None).await.0, 401);
    assert_eq!(call(&app, "POST", &tokens, Some(&grace), Some(ask(&["read"]))).await.0, 404);
    let (_, listed) = call(&app, "GET", "/api/v1/service-accounts", Some(&grace), None).await;
    assert_eq!(listed[0]["active"], false, "{listed}");
    assert_eq!(listed[0]["tokens"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_events WHERE action = 'user.service_account_created'").await, 1);
}

/// Omar makes and revokes his tokens through the API: none wider than the token he calls
/// with, in scopes or in life; someone else's is not his to revoke, but an administrator's
/// token with `admin` revokes anyone's.
async fn ones_tokens_are_made_and_revoked_through_the_api_within_the_calling_one(backend: Backend) {
    let app = app(backend).await;
    let ids = &app.ids;
    let omar = token(&app, ids.omar, "read,request").await;
    let ask = |scopes: &[&str], days: u32| json!({"name": "script", "scopes": scopes, "days": days});
    let (status, problem) =
        call(&app, "POST", "/api/v1/me/tokens", Some(&omar), Some(ask(&["read", "decide"], 7))).await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("scopes")), "{problem}");
    let (status, problem) = call(&app, "POST", "/api/v1/me/tokens", Some(&omar), Some(ask(&["read"], 31))).await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("days")), "{problem}");
    let (status, problem) =
        call(&app, "POST", "/api/v1/me/tokens", Some(&omar), Some(ask(&["read"], 4_000_000_000))).await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("days")), "{problem}");
    let (status, made) = call(&app, "POST", "/api/v1/me/tokens", Some(&omar), Some(ask(&["read"], 7))).await;
    assert_eq!(status, 201, "{made}");
    let (id, secret) = (made["token"]["id"].as_i64().unwrap(), made["secret"].as_str().unwrap().to_owned());
    let (_, me) = call(&app, "GET", "/api/v1/me", Some(&secret), None).await;
    assert_eq!(me["scopes"], json!(["read"]), "{me}");
    let (_, mine) = call(&app, "GET", "/api/v1/me/tokens", Some(&omar), None).await;
    assert_eq!(mine.as_array().unwrap().len(), 2, "{mine}");
    assert!(!mine.to_string().contains(&secret), "never shown again");

    let revoke = format!("/api/v1/tokens/{id}");
    let maya = token(&app, ids.maya, "read").await;
    assert_eq!(call(&app, "DELETE", &revoke, Some(&maya), None).await.0, 404, "not hers to know of");
    let grace_plain = token(&app, ids.grace, "read").await;
    assert_eq!(call(&app, "DELETE", &revoke, Some(&grace_plain), None).await.0, 404, "no admin scope, no one else's");
    assert_eq!(call(&app, "DELETE", &revoke, Some(&omar), None).await.0, 204);
    assert_eq!(call(&app, "GET", "/api/v1/me", Some(&secret), None).await.0, 401);
    assert_eq!(call(&app, "DELETE", &revoke, Some(&omar), None).await.0, 409, "once");
    let grace = token(&app, ids.grace, "read,admin").await;
    let (_, made) = call(&app, "POST", "/api/v1/me/tokens", Some(&omar), Some(ask(&["read"], 7))).await;
    let other = format!("/api/v1/tokens/{}", made["token"]["id"]);
    assert_eq!(call(&app, "DELETE", &other, Some(&grace), None).await.0, 204, "an administrator revokes anyone's");
}

/// Linus decides several requests at once through the API: each on its own, those that cannot
/// be listed with why; none decided is an error as one decision's would be. An administrator
/// names a deputy for someone else; connectors are added with a secret never answered.
async fn many_decisions_deputies_and_connectors_through_the_api(backend: Backend) {
    let app = app(backend).await;
    let ids = &app.ids;
    let ask = json!({"package_id": ids.production_access.0, "justification": "on call",
                     "answers": {"service": "Payments API"}});
    let mut requests = vec![];
    for who in [ids.maya, ids.kai] {
        let asker = token(&app, who, "request").await;
        let (status, outcome) = call(&app, "POST", "/api/v1/requests", Some(&asker), Some(ask.clone())).await;
        assert_eq!(status, 201, "{outcome}");
        requests.push(outcome["request_id"].as_i64().unwrap());
    }
    let linus = token(&app, ids.linus, "decide").await;
    let many = |ids: Vec<i64>| json!({"request_ids": ids, "decision": "approve", "justification": "ok"});
    let (status, problem) = call(&app, "POST", "/api/v1/decisions", Some(&linus), Some(many(vec![]))).await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("request_ids")));
    let hana = token(&app, ids.hana, "decide").await;
    let (status, _) = call(&app, "POST", "/api/v1/decisions", Some(&hana), Some(many(requests.clone()))).await;
    assert_eq!(status, 403, "not Hana's stage yet");
    let with_bogus = vec![requests[0], requests[1], requests[0], 999_999];
    let (status, done) = call(&app, "POST", "/api/v1/decisions", Some(&linus), Some(many(with_bogus))).await;
    assert_eq!(status, 200, "{done}");
    let decided: Vec<i64> =
        done["decided"].as_array().unwrap().iter().map(|o| o["request_id"].as_i64().unwrap()).collect();
    assert_eq!(decided, requests, "each once: {done}");
    assert_eq!(done["refused"], json!([{"request_id": 999_999, "problem": done["refused"][0]["problem"].clone()}]));
    assert_eq!(done["refused"][0]["problem"]["status"], 404, "{done}");
    let (status, _) = call(&app, "POST", "/api/v1/decisions", Some(&linus), Some(many(requests.clone()))).await;
    assert_eq!(status, 403, "decided already: his stage is past");
    let (status, done) = call(&app, "POST", "/api/v1/decisions", Some(&hana), Some(many(requests.clone()))).await;
    assert_eq!((status, done["decided"].as_array().map(Vec::len)), (StatusCode::OK, Some(2)), "{done}");

    // A deputy for Omar, set by an administrator; not by Omar through this path.
    let until = (chrono::Utc::now() + chrono::Duration::days(7)).format("%Y-%m-%d").to_string();
    let deputy = json!({"deputy": "kai@quartermaster.example", "until": until});
    let path = format!("/api/v1/people/{}/deputies", ids.omar.0);
    let omar = token(&app, ids.omar, "read,request").await;
    assert_eq!(call(&app, "POST", &path, Some(&omar), Some(deputy.clone())).await.0, 403);
    let grace = token(&app, ids.grace, "read,admin").await;
    assert_eq!(call(&app, "POST", &path, Some(&grace), Some(deputy)).await.0, 201);
    let (_, panel) = call(&app, "GET", "/api/v1/me/deputies", Some(&omar), None).await;
    assert!(panel.to_string().contains("kai@quartermaster.example"), "{panel}");
    let (status, read) = call(&app, "GET", &path, Some(&grace), None).await;
    assert_eq!((status, &read["own"]), (StatusCode::OK, &panel["own"]));

    // A connector added and changed: its secret goes in and never comes out.
    let secret = "a webhook secret of the test, long enough";
    let hooks = json!({"kind": "webhook", "name": "Test Hooks",
                       "settings": {"url": "http://127.0.0.1:9/hooks", "secret": secret}});
    let (status, made) = call(&app, "POST", "/api/v1/connectors", Some(&grace), Some(hooks)).await;
    assert_eq!(status, 201, "{made}");
    let path = format!("/api/v1/connectors/{}", made["id"]);
    let settings = format!("{path}/settings");
    let (_, headers, _) = call_full(&app, "GET", &path, Some(&grace), None).await;
    let read_tag = headers["etag"].to_str().unwrap().to_owned();
    let put = |tag: Option<String>, body: Value| {
        let (secret, url) = (grace.clone(), app.url(&settings));
        async move {
            let mut req = Client::new().put(url).bearer_auth(secret).json(&body);
            if let Some(tag) = tag {
                req = req.header("if-match", tag);
            }
            let res = req.send().await.unwrap();
            let tag = res.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
            (res.status().as_u16(), tag, res.text().await.unwrap())
        }
    };
    let change = json!({"url": "http://127.0.0.1:9/other", "lifecycle_events": true, "max_in_flight": 2});
    let (status, _, problem) = put(Some(read_tag.clone()), change).await;
    assert_eq!(status, 422, "a new address needs a new secret: {problem}");
    let change = json!({"url": "http://127.0.0.1:9/hooks", "lifecycle_events": true, "max_in_flight": 2});
    assert_eq!(put(None, change.clone()).await.0, 428, "not blind");
    assert_eq!(put(Some("\"0\"".into()), change.clone()).await.0, 412);
    // Two changes from one read, at once: one lands, the other is refused.
    let other = json!({"url": "http://127.0.0.1:9/hooks", "lifecycle_events": false, "max_in_flight": 3});
    let (a, b) = tokio::join!(put(Some(read_tag.clone()), change.clone()), put(Some(read_tag.clone()), other));
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 412], "{a:?} {b:?}");
    if a.0 == 412 {
        // The one that landed was the other: make this one's from its tag.
        assert_eq!(put(b.1.clone(), change.clone()).await.0, 204);
    }
    assert_eq!(put(Some(read_tag), change).await.0, 412, "the first read is stale now");
    let (status, read) = call(&app, "GET", &path, Some(&grace), None).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        (
            read["system"]["editable"]["lifecycle_events"].as_bool(),
            read["system"]["editable"]["max_in_flight"].as_i64()
        ),
        (Some(true), Some(2))
    );
    assert!(!read.to_string().contains(secret), "{read}");
    let (status, drift) = call(&app, "POST", &format!("{path}/drift"), Some(&grace), None).await;
    assert_eq!(
        (status, drift["compared"].as_bool()),
        (StatusCode::OK, Some(false)),
        "a webhook keeps no members: {drift}"
    );
    let linus = token(&app, ids.linus, "read,admin").await;
    assert_eq!(call(&app, "GET", &path, Some(&linus), None).await.0, 403);
}

/// Grace gives Developer Tools to a list of people through the API: a bad list is refused
/// whole (nothing started), a good one runs in the background and each row's outcome is
/// read back; another catalog's owner neither starts nor reads one.
async fn a_bulk_assignment_is_started_and_followed_through_the_api(backend: Backend) {
    let app = app(backend).await;
    let ids = &app.ids;
    let grace = token(&app, ids.grace, "read,admin").await;
    let sofia = token(&app, ids.sofia, "read,admin").await;
    let dev = ids.developer_tools.0;
    let policy: i64 = sqlx::query_scalar("SELECT id FROM policies WHERE package_id = $1 ORDER BY id LIMIT 1")
        .bind(dev)
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    let path = format!("/api/v1/packages/{dev}/bulk-assignments");
    let jobs = || count(&app, "SELECT COUNT(*) FROM bulk_jobs");
    let rows = |rows: &str| json!({"policy_id": policy, "rows": rows, "justification": "team onboarding"});
    let (status, problem) = call(&app, "POST", &path, Some(&grace), Some(rows("email\n\n"))).await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("rows")), "{problem}");
    let rows = rows("email\nkai@quartermaster.example\nnobody@quartermaster.example\n");
    assert_eq!(call(&app, "POST", &path, Some(&sofia), Some(rows.clone())).await.0, 404, "not her catalog's");
    assert_eq!(jobs().await, 0, "refusals start nothing");
    let (status, started) = call(&app, "POST", &path, Some(&grace), Some(rows)).await;
    assert_eq!(status, 202, "{started}");
    let job = format!("/api/v1/bulk-assignments/{}", started["id"]);
    let mut done = Value::Null;
    for _ in 0..200 {
        let (status, read) = call(&app, "GET", &job, Some(&grace), None).await;
        assert_eq!(status, 200, "{read}");
        if read["running"] == false {
            done = read;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        (done["total"].as_i64(), done["assigned"].as_i64(), done["skipped"].as_i64()),
        (Some(2), Some(1), Some(1)),
        "{done}"
    );
    assert_eq!(call(&app, "GET", &job, Some(&sofia), None).await.0, 404);
}

/// Linus copies Developer Tools in the builder through the API: the draft is his alone, each
/// step's fields are saved as the pages save them, and it is made from the version he
/// reviewed (a save since is refused); a draft thrown away is gone.
async fn a_package_is_built_from_a_draft_through_the_api(backend: Backend) {
    let app = app(backend).await;
    let ids = &app.ids;
    let linus = token(&app, ids.linus, "read,admin").await;
    let grace = token(&app, ids.grace, "read,admin").await;
    let engineering: i64 = sqlx::query_scalar("SELECT catalog_id FROM access_packages WHERE id = $1")
        .bind(ids.developer_tools.0)
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    let start = format!("/api/v1/catalogs/{engineering}/drafts");
    let (status, problem) = call(&app, "POST", &start, Some(&linus), Some(json!({"from": "copy"}))).await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("package_id")));
    let copy = json!({"from": "copy", "package_id": ids.developer_tools.0});
    let (status, made) = call(&app, "POST", &start, Some(&linus), Some(copy)).await;
    assert_eq!(status, 201, "{made}");
    let draft = format!("/api/v1/drafts/{}", made["id"]);
    assert_eq!(call(&app, "GET", &draft, Some(&grace), None).await.0, 404, "his alone");
    let (status, basics) = call(&app, "GET", &format!("{draft}?step=basics"), Some(&linus), None).await;
    assert_eq!((status, basics["step"].as_str()), (StatusCode::OK, Some("basics")), "{basics}");
    let mut fields = basics["values"].clone();
    fields["name"] = json!("Developer Tools (contractors)");
    let save = json!({"fields": fields, "go": "to", "to": "review"});
    let (status, at) = call(&app, "PUT", &format!("{draft}/steps/basics"), Some(&linus), Some(save)).await;
    assert_eq!((status, at["step"].as_str()), (StatusCode::OK, Some("review")), "{at}");
    let (_, review) = call(&app, "GET", &draft, Some(&linus), None).await;
    assert!(review["summary"].to_string().contains("Developer Tools (contractors)"), "{review}");
    let seen = review["updated_at"].as_i64().unwrap();
    let finish = format!("{draft}/finish");
    let (status, _) = call(&app, "POST", &finish, Some(&linus), Some(json!({"seen": seen - 1}))).await;
    assert_eq!(status, 409, "saved since what was reviewed");
    let (status, done) = call(&app, "POST", &finish, Some(&linus), Some(json!({"seen": seen}))).await;
    assert_eq!(status, 200, "{done}");
    let (_, package) =
        call(&app, "GET", &format!("/api/v1/packages/{}/settings", done["package_id"]), Some(&linus), None).await;
    assert_eq!(package["name"], "Developer Tools (contractors)", "{package}");
    assert_eq!(call(&app, "GET", &draft, Some(&linus), None).await.0, 404, "made: the draft is gone");

    let (_, made) = call(&app, "POST", &start, Some(&linus), Some(json!({"from": "new"}))).await;
    let draft = format!("/api/v1/drafts/{}", made["id"]);
    assert_eq!(call(&app, "DELETE", &draft, Some(&grace), None).await.0, 404, "not hers to throw away");
    assert_eq!(call(&app, "DELETE", &draft, Some(&linus), None).await.0, 204);
    assert_eq!(call(&app, "GET", &draft, Some(&linus), None).await.0, 404);
}
