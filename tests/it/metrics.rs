//! `/metrics` through real HTTP: Prometheus text, with each instance's own registry; for an
//! administrator's token with the `metrics` scope on the portal's listener, or without a token
//! on the operators' listener (`--metrics-addr`), and for nobody else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use crate::common;

use common::{spawn_app_with, TestApp};
use quartermaster::domain::ids::{PolicyId, UserId};
use quartermaster::domain::model::Role;
use quartermaster::domain::policy::Answer;
use quartermaster::domain::token::Scopes;
use quartermaster::service::tokens::TokenBy;
use quartermaster::store::Backend;
use reqwest::Client;

on_both_databases!(metrics_count_what_happens_and_read_what_waits);

async fn token(app: &TestApp, who: UserId, scopes: &str) -> Result<String, String> {
    let owner = app.service.actor(who).await.unwrap().unwrap();
    let scopes = Scopes::parse(scopes).unwrap();
    app.service
        .create_token(TokenBy::Person(&owner), &owner, "scraper", &scopes, 30)
        .await
        .map(|(_, secret)| secret)
        .map_err(|e| e.to_string())
}

async fn scrape(url: &str, secret: Option<&str>) -> (u16, String) {
    let mut req = Client::new().get(url);
    if let Some(secret) = secret {
        req = req.bearer_auth(secret);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

/// The value of the sample `name{labels}` (labels as written, in order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.parse().unwrap()))
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(app.service.db().pool()).await.unwrap()
}

async fn metrics_count_what_happens_and_read_what_waits(backend: Backend) {
    let port = common::free_port();
    let app = spawn_app_with(backend, |args| args.metrics_addr = Some(([127, 0, 0, 1], port).into())).await;
    let ids = &app.ids;
    let portal = app.url("/metrics");

    // Nobody without a token; a token without the scope, or of someone who is not an
    // administrator, is refused; only an administrator's token may carry the scope.
    let (status, _) = scrape(&portal, None).await;
    assert_eq!(status, 401);
    let no_scope = token(&app, ids.grace, "read,admin").await.unwrap();
    let (status, body) = scrape(&portal, Some(&no_scope)).await;
    assert_eq!(status, 403, "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["detail"], "this token does not have the \"metrics\" scope");
    let refused = token(&app, ids.omar, "metrics").await.unwrap_err();
    assert!(refused.contains("only for administrators"), "{refused}");

    // Linus, made an administrator, makes a scraper's token; it stops working once he is
    // no longer one.
    let grace = app.service.actor(ids.grace).await.unwrap().unwrap();
    app.service.administrator(&grace).unwrap().grant_role(ids.linus, Role::Administrator).await.unwrap();
    let linus = token(&app, ids.linus, "metrics").await.unwrap();
    let (status, _) = scrape(&portal, Some(&linus)).await;
    assert_eq!(status, 200);
    app.service.administrator(&grace).unwrap().revoke_role(ids.linus, Role::Administrator).await.unwrap();
    let (status, body) = scrape(&portal, Some(&linus)).await;
    assert_eq!(status, 403, "{body}");
    let scraper = token(&app, ids.grace, "metrics").await.unwrap();

    // Requests counted by the route they matched: a page by its pattern, not its id (signed
    // out: sent to sign in); a path no route matched under one name.
    let c = common::bare_client();
    for _ in 0..3 {
        assert_eq!(c.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    }
    let package = format!("/packages/{}", ids.developer_tools.0);
    c.get(app.url(&package)).send().await.unwrap();
    c.get(app.url("/no/such/page/4711")).send().await.unwrap();
    // Any token is a method to HTTP: made-up ones count together.
    for method in ["BREW", "WHEN"] {
        c.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), app.url("/healthz")).send().await.unwrap();
    }

    // Work waiting: Omar asks for Production Access (two stages: it waits); Grace gives Maya
    // Developer Tools directly (its grants go to the outbox).
    let omar = app.service.actor(ids.omar).await.unwrap().unwrap();
    let mut on_call = common::ask(ids.production_access, "on call");
    on_call.answers = vec![Answer { question_id: "service".into(), value: "Payments API".into() }];
    app.service.submit_request(&omar, on_call).await.unwrap();
    let dev_policy: i64 = sqlx::query_scalar("SELECT MIN(id) FROM policies WHERE package_id = $1")
        .bind(ids.developer_tools.0)
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    let am = app.service.assignment_manager_of(&grace, ids.developer_tools).await.unwrap();
    am.assign_directly(ids.maya, ids.developer_tools, PolicyId(dev_policy), None, "pairing").await.unwrap();

    // The workers run beside the server; wait until a delivery pass has delivered something.
    let started = Instant::now();
    let text = loop {
        let (status, text) = scrape(&portal, Some(&scraper)).await;
        assert_eq!(status, 200, "{text}");
        if sample(&text, r#"quartermaster_deliveries_total{result="delivered"}"#).is_some_and(|n| n >= 1.0) {
            break text;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "nothing delivered:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text");
    assert_eq!(
        sample(
            &text,
            r#"quartermaster_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"quartermaster_http_request_duration_seconds_count{method="GET",route="/packages/{id}",status="302"}"#
        ) == Some(1.0),
        "a page by its pattern:\n{text}"
    );
    assert!(!text.contains(&package) && !text.contains("4711"), "no series per id or unknown path");
    assert!(!text.contains("BREW") && !text.contains("WHEN"), "no series per made-up method");
    assert!(text.contains(r#"method="OTHER""#), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"quartermaster_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
    // The scrapes so far were counted too, refused ones with their status.
    assert!(
        sample(
            &text,
            r#"quartermaster_http_request_duration_seconds_count{method="GET",route="/metrics",status="401"}"#
        ) == Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, r#"quartermaster_worker_pass_duration_seconds_count{pass="delivery"}"#).is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(&text, r#"quartermaster_worker_pass_duration_seconds_count{pass="expiry"}"#).is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // What waits, as the database has it (open requests change only when someone acts, and
    // nobody does meanwhile).
    let waiting = count(&app, "SELECT COUNT(*) FROM requests WHERE state = 'pending_approval'").await;
    assert!(waiting >= 1);
    assert_eq!(sample(&text, r#"quartermaster_open_requests{state="pending_approval"}"#), Some(waiting as f64));
    assert!(sample(&text, r#"quartermaster_open_requests{state="delivering"}"#).is_some(), "every open state");
    let systems: Vec<String> =
        sqlx::query_scalar("SELECT name FROM resource_systems").fetch_all(app.service.db().pool()).await.unwrap();
    assert!(!systems.is_empty());
    for system in &systems {
        let series = format!(r#"quartermaster_outbox_pending{{system="{system}"}}"#);
        assert!(sample(&text, &series).is_some(), "{series}:\n{text}");
    }
    assert!(sample(&text, "quartermaster_notifications_pending").is_some(), "{text}");

    // Access into a system that cannot take it yet (no connector) waits in the outbox: its
    // system's depth is what the database holds, and its oldest entry's age.
    let unreachable = common::package_with_an_unreachable_target(app.service.db(), chrono::Utc::now()).await;
    app.service.submit_request(&omar, common::ask(unreachable, "reports")).await.unwrap();
    let stuck = "SELECT COUNT(*) FROM outbox o JOIN resource_roles rr ON rr.id = o.resource_role_id \
                 JOIN resources r ON r.id = rr.resource_id JOIN resource_systems s ON s.id = r.system_id \
                 WHERE o.state = 'pending' AND s.name = 'Corporate SCIM'";
    assert_eq!(count(&app, stuck).await, 1);
    // Queued a minute and a half ago.
    sqlx::query(
        "UPDATE outbox SET created_at = created_at - 90000 WHERE state = 'pending' AND resource_role_id IN \
         (SELECT rr.id FROM resource_roles rr JOIN resources r ON r.id = rr.resource_id \
          JOIN resource_systems s ON s.id = r.system_id WHERE s.name = 'Corporate SCIM')",
    )
    .execute(app.service.db().pool())
    .await
    .unwrap();
    let (status, text) = scrape(&portal, Some(&scraper)).await;
    assert_eq!(status, 200);
    assert_eq!(sample(&text, r#"quartermaster_outbox_pending{system="Corporate SCIM"}"#), Some(1.0), "{text}");
    let age = sample(&text, r#"quartermaster_outbox_oldest_age_seconds{system="Corporate SCIM"}"#).unwrap();
    assert!((90.0..150.0).contains(&age), "{age}");

    // The operators' listener: the same metrics without a token, and nothing else.
    let unguarded = format!("http://127.0.0.1:{port}");
    let (status, body) = scrape(&format!("{unguarded}/metrics"), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("quartermaster_open_requests"), "{body}");
    let (status, _) = scrape(&format!("{unguarded}/"), None).await;
    assert_eq!(status, 404, "no pages there");
    let (status, _) = scrape(&format!("{unguarded}/api/v1/me"), None).await;
    assert_eq!(status, 404, "no API there");
}
