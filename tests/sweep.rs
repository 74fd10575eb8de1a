//! The authorization sweep: every registered route and server function — enumerated from the
//! router's own sources, so a new one cannot slip past — called as anonymous, member,
//! approver, catalog owner and administrator. Anonymous callers get 401 or the sign-in
//! redirect; the others get only what their role allows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use quartermaster::domain::authz::Operator;

use std::collections::BTreeMap;

use common::{client, spawn_app};
use quartermaster::domain::policy::Answer;
use quartermaster::service::NewRequest;
use quartermaster::store::Backend;

on_both_databases!(every_route_and_server_function_by_role);

const ROLES: [&str; 5] = ["anonymous", "member", "approver", "catalog owner", "administrator"];

/// What each role may get: `A` allowed (2xx, a redirect to a page, or 409 "already decided"),
/// `D` denied (401/403/404 or the sign-in redirect).
fn expected(name: &str) -> Option<&'static str> {
    Some(match name {
        // anonymous, member, approver, catalog owner, administrator
        "get_viewer" | "take_notice" | "sign_in_options" => "AAAAA",
        "browse_packages" | "load_package" | "request_access" | "my_requests" | "my_access" | "pending_approvals"
        | "decision_history" => "DAAAA",
        // Omar's request: only Omar may cancel it; he is none of these.
        "cancel_request" => "DDDDD",
        // Omar's assignment in Engineering: its owner and administrators may remove it.
        "give_up_access" => "DDDAA",
        // Only the holder may ask to extend.
        "extend_access" => "DDDDD",
        // Omar's Production Access request at stage 1: his manager (Linus, the owner) decides;
        // then stage 2 belongs to Security, which Grace (administrator) is part of. Hana (the
        // approver) is refused at stage 1: it is not her stage yet.
        "decide" | "decide_many" => "DDDAA",
        // Pages.
        // Anonymous visitors of the landing page get the sign-in choices there.
        "/" | "/approvals" | "/packages/{id}" => "DAAAA",
        "/admin" => "DDDAA",
        "builtin_groups" => "DDDDA",
        // Failed provisioning work: administrators and catalog owners see theirs. Omar's
        // failed GitHub entry is Engineering's: Linus (its owner) retries it; Grace then finds
        // it retried already (409).
        "failed_work" => "DDDAA",
        "retry_delivery" => "DDDAA",
        "/signin" => "AAAAA",
        // Plain routes.
        "/healthz" | "/readyz" | "/auth/signout" => "AAAAA",
        // Demo sign-in is off here; OIDC is not configured: nobody gets in through them.
        "/auth/demo" | "/auth/login" | "/auth/callback" => "DDDDD",
        _ => return None,
    })
}

fn verdict(path: &str, status: u16, location: Option<&str>) -> char {
    match status {
        401 | 403 | 404 => 'D',
        // Malformed input is refused too, but the sweep sends well-formed calls.
        400 | 422 => panic!("the sweep sent a malformed call"),
        // Signing out lands on the sign-in page by design.
        303 if path == "/auth/signout" => 'A',
        302 | 303 if location.is_some_and(|l| l.starts_with("/signin")) => 'D',
        200..=399 | 409 => 'A',
        other => panic!("unexpected status {other}"),
    }
}

async fn every_route_and_server_function_by_role(backend: Backend) {
    let app = spawn_app(backend, false).await;
    let ids = &app.ids;
    // Objects to aim at: Omar's delivered Developer Tools and his pending Production Access.
    let omar = app.service.actor(ids.omar).await.unwrap().unwrap();
    let ask = |package, answers: Vec<Answer>| NewRequest {
        package,
        policy: None,
        target: None,
        justification: "sweep".into(),
        answers,
        start: None,
        end: None,
    };
    app.service.submit_request(&omar, ask(ids.developer_tools, vec![])).await.unwrap();
    let prod = app
        .service
        .submit_request(
            &omar,
            ask(ids.production_access, vec![Answer { question_id: "service".into(), value: "Payments API".into() }]),
        )
        .await
        .unwrap();
    let kai = app.service.actor(ids.kai).await.unwrap().unwrap();
    let prod_kai = app
        .service
        .submit_request(
            &kai,
            ask(ids.production_access, vec![Answer { question_id: "service".into(), value: "Data platform".into() }]),
        )
        .await
        .unwrap();
    app.service.deliver_pending(&Operator::Workers, 10).await.unwrap();
    let assignment = app.service.my_access(&omar, None).await.unwrap().items[0].id;
    // One of Omar's entries as it is after its last attempt failed.
    let failed: i64 = sqlx::query_scalar("SELECT id FROM outbox WHERE user_id = $1 ORDER BY id LIMIT 1")
        .bind(ids.omar.0)
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    sqlx::query("UPDATE outbox SET state = 'failed', last_error = 'unreachable' WHERE id = $1")
        .bind(failed)
        .execute(app.service.db().pool())
        .await
        .unwrap();

    let server_fn_args = |name: &str| -> Vec<(&'static str, String)> {
        match name {
            "browse_packages" => vec![("q", String::new())],
            "load_package" => vec![("id", ids.developer_tools.0.to_string())],
            "request_access" => {
                vec![("package_id", ids.sales_analytics.0.to_string()), ("justification", "sweep".into())]
            }
            "cancel_request" => vec![("request_id", prod.request.0.to_string())],
            "retry_delivery" => vec![("outbox_id", failed.to_string())],
            "give_up_access" | "extend_access" => {
                vec![("assignment_id", assignment.to_string()), ("justification", "sweep".into())]
            }
            "decide" => vec![
                ("request_id", prod.request.0.to_string()),
                ("decision", "approve".into()),
                ("justification", "sweep".into()),
            ],
            "decide_many" => vec![
                ("request_ids[0]", prod_kai.request.0.to_string()),
                ("decision", "approve".into()),
                ("justification", "sweep".into()),
            ],
            _ => vec![],
        }
    };

    // Enumerate from the router's sources.
    // (name in the table, concrete path, method, form arguments)
    type Call = (String, String, http::Method, Vec<(&'static str, String)>);
    let mut calls: Vec<Call> = Vec::new();
    for (path, method) in leptos::server_fn::axum::server_fn_paths() {
        // No server function is reachable by GET: a state change must never be a link.
        assert_eq!(method, http::Method::POST, "{path} must be POST-only");
        let name = path.trim_start_matches("/api/").trim_end_matches(|c: char| c.is_ascii_digit()).to_owned();
        let args = server_fn_args(&name);
        calls.push((name, path.to_owned(), method, args));
    }
    for route in leptos_axum::generate_route_list(quartermaster::ui::App) {
        let path = route.path().to_owned();
        let concrete = path.replace("{id}", &ids.developer_tools.0.to_string());
        calls.push((path, concrete, http::Method::GET, vec![]));
    }
    for (path, method, _) in quartermaster::server::plain_routes() {
        let args = if path == "/auth/demo" { vec![("user_id", ids.grace.0.to_string())] } else { vec![] };
        calls.push((path.to_owned(), path.to_owned(), method, args));
    }
    calls.sort_by(|a, b| a.0.cmp(&b.0));
    calls.dedup_by(|a, b| a.0 == b.0);
    // Signing out ends the session: do it last.
    calls.sort_by_key(|c| c.0 == "/auth/signout");

    let people = [None, Some(ids.maya), Some(ids.hana), Some(ids.linus), Some(ids.grace)];
    let mut table: BTreeMap<String, String> = BTreeMap::new();
    for person in people {
        // Each role has its own session (demo sign-in is off here, so the session is made the
        // way sign-in makes one).
        let c = client();
        let cookie = match person {
            Some(user) => Some(common::session_cookie(&app, user).await),
            None => None,
        };
        for (name, path, method, args) in &calls {
            let v = call(&c, &app.base, path, method, args, cookie.as_deref()).await;
            table.entry(name.clone()).or_default().push(v);
        }
    }
    println!("authorization sweep ({}): route or server function × {}", backend.name(), ROLES.join(" | "));
    for (name, row) in &table {
        println!(
            "  {name:<20} {}",
            row.chars().map(|c| if c == 'A' { " allowed " } else { " denied  " }).collect::<Vec<_>>().join("|")
        );
    }
    for (name, row) in &table {
        let want =
            expected(name).unwrap_or_else(|| panic!("{name} is not in the sweep's table: add what each role may do"));
        assert_eq!(row, want, "{name}: got {row}, want {want} ({})", ROLES.join(", "));
    }
}

async fn call(
    c: &reqwest::Client,
    base: &str,
    path: &str,
    method: &http::Method,
    args: &[(&'static str, String)],
    cookie: Option<&str>,
) -> char {
    let url = format!("{base}{path}");
    let mut req = match *method {
        http::Method::GET => c.get(&url),
        _ => c.post(&url).form(args).header("origin", base),
    };
    if path.starts_with("/api/") {
        // A hydrated page calls server functions this way (no HTML redirect dance).
        req = req.header("accept", "application/json");
    }
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let res = req.send().await.unwrap();
    let location = res.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
    let status = res.status().as_u16();
    if status == 200 && *method == http::Method::GET && path != "/signin" {
        let body = res.text().await.unwrap();
        if body.contains("<section class=\"signin\">") {
            return 'D'; // shown the sign-in page instead
        }
    }
    verdict(path, status, location.as_deref())
}
