//! The real server on 127.0.0.1:0: health, readiness, sign-in, server-rendered pages with their
//! data, request security — on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{client, spawn_app};
use quartermaster::store::Backend;

on_both_databases!(
    health_and_readiness,
    pages_render_on_the_server_with_data,
    cross_site_posts_are_refused,
    plain_form_actions_work_without_javascript,
    content_security_policy_carries_the_script_nonce,
    sessions_end_when_the_user_is_disabled_or_too_old,
    demo_mode_is_refused_off_loopback,
    over_https_cookies_are_secure_and_hsts_is_sent,
    a_bulk_decision_answers_by_its_outcome,
    sessions_follow_the_injected_clock,
);

async fn over_https_cookies_are_secure_and_hsts_is_sent(backend: Backend) {
    let app = common::spawn_app_with(backend, |args| {
        args.demo = true;
        args.public_url = Some("https://access.example.com".into());
    })
    .await;
    let c = client();
    let res = c
        .post(format!("{}/auth/demo", app.base))
        .header("origin", &app.base)
        .form(&[("user_id", app.ids.maya.0.to_string())])
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-qm_session="), "{cookie}");
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing from {cookie}");
    }
    assert!(res.headers()["strict-transport-security"].to_str().unwrap().contains("max-age="));
}

async fn health_and_readiness(backend: Backend) {
    let app = spawn_app(backend, false).await;
    let c = client();
    let res = c.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"), "every response carries a request id");
    let res = c.get(format!("{}/readyz", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ready");
}

async fn sign_in_as(c: &reqwest::Client, base: &str, user: i64) {
    let res = c
        .post(format!("{base}/auth/demo"))
        .header("origin", base)
        .form(&[("user_id", user.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "demo sign-in redirects home");
}

async fn pages_render_on_the_server_with_data(backend: Backend) {
    let app = spawn_app(backend, true).await;
    let c = client();
    // Anonymous: the landing page offers sign-in, listing the demo people (even to a client
    // that does not ask for HTML, like plain curl); other pages redirect to sign-in.
    let res = reqwest::get(format!("{}/", app.base)).await.unwrap();
    assert_eq!(res.status(), 200);
    let landing = res.text().await.unwrap();
    assert!(landing.contains("Maya Chen") && landing.contains("/auth/demo"), "demo people listed");
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/approvals", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "/signin?return_to=%2Fapprovals");

    sign_in_as(&c, &app.base, app.ids.maya.0).await;
    let home = c.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let csp = home.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = home.text().await.unwrap();
    for expected in ["Maya Chen", "Developer Tools", "Production Access", "Request access", "quartermaster.js"] {
        assert!(html.contains(expected), "home page lacks {expected:?}");
    }
    assert!(!html.contains("Payments Approver"), "only packages Maya may request");
    // Navigation shows what the role allows: Maya has no admin role.
    assert!(!html.contains(">Admin<"));

    // The assets the page asks for are served (when the client was built: scripts/test.sh does).
    if std::env::var("QM_REQUIRE_SITE").is_ok() {
        let wasm = c.get(format!("{}/pkg/quartermaster_bg.wasm", app.base)).send().await.unwrap();
        assert_eq!(wasm.status(), 200);
        assert_eq!(wasm.headers()["content-type"], "application/wasm");
        assert_eq!(wasm.headers()["cache-control"], "no-cache");
        let plain_len = wasm.bytes().await.unwrap().len();
        let gz = c
            .get(format!("{}/pkg/quartermaster_bg.wasm", app.base))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(gz.headers()["content-encoding"], "gzip");
        assert!(gz.bytes().await.unwrap().len() < plain_len / 2, "precompressed wasm is served");
        let css = c.get(format!("{}/pkg/quartermaster.css", app.base)).send().await.unwrap();
        assert_eq!(css.status(), 200);
    }

    // 404 is a page a person understands, with the right status.
    let missing = c.get(format!("{}/no/such/page", app.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("Not found"));

    // Sign-out ends the server-side session.
    let out = c.post(format!("{}/auth/signout", app.base)).header("origin", &app.base).send().await.unwrap();
    assert_eq!(out.status(), 303);
    let after = c.get(format!("{}/approvals", app.base)).send().await.unwrap();
    assert_eq!(after.status(), 302);
}

async fn cross_site_posts_are_refused(backend: Backend) {
    let app = spawn_app(backend, true).await;
    let c = client();
    let res = c
        .post(format!("{}/auth/demo", app.base))
        .header("origin", "https://evil.example")
        .form(&[("user_id", app.ids.grace.0.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = c
        .post(format!("{}/auth/demo", app.base))
        .header("sec-fetch-site", "cross-site")
        .form(&[("user_id", app.ids.grace.0.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("set-cookie").is_none(), "no session was created");
    // Server functions too: a forged cross-site form post to one is refused before it runs.
    let cookie = common::session_cookie(&app, app.ids.maya).await;
    let forged = c
        .post(format!("{}/api/request_access", app.base))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&[("package_id", app.ids.developer_tools.0.to_string()), ("justification", "x".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let maya = app.service.actor(app.ids.maya).await.unwrap().unwrap();
    assert!(app.service.my_requests(&maya, None).await.unwrap().items.is_empty(), "nothing was requested");
}

async fn content_security_policy_carries_the_script_nonce(backend: Backend) {
    let app = spawn_app(backend, true).await;
    let c = client();
    let res = c.get(format!("{}/signin", app.base)).send().await.unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let html = res.text().await.unwrap();
    let nonce =
        csp.split("'nonce-").nth(1).and_then(|n| n.split('\'').next()).expect("a nonce in the policy").to_owned();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("'wasm-unsafe-eval'"), "{csp}");
    let scripts = html.matches("<script").count();
    assert!(scripts > 0);
    assert_eq!(
        html.matches(&format!("nonce=\"{nonce}\"")).count(),
        scripts,
        "every script carries this response's nonce"
    );
    let other = c.get(format!("{}/signin", app.base)).send().await.unwrap();
    assert!(
        !other.headers()["content-security-policy"].to_str().unwrap().contains(&nonce),
        "a fresh nonce per response"
    );
    assert_eq!(other.headers()["x-content-type-options"], "nosniff");
    assert!(other.headers().contains_key("referrer-policy"));
}

async fn sessions_end_when_the_user_is_disabled_or_too_old(backend: Backend) {
    let app = spawn_app(backend, false).await;
    let c = client();
    let cookie = common::session_cookie(&app, app.ids.maya).await;
    let home = c.get(format!("{}/", app.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let grace = app.service.actor(app.ids.grace).await.unwrap().unwrap();
    app.service.set_user_active(&grace, app.ids.maya, false).await.unwrap();
    let after = c.get(format!("{}/approvals", app.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(after.status(), 302, "a disabled user's session stops at the next request");

    let old = chrono::Utc::now().timestamp_millis() - quartermaster::auth::ABSOLUTE_SESSION_MS - 1000;
    let stale = common::session_cookie_signed_in_at(&app, app.ids.omar, old).await;
    let res = c.get(format!("{}/approvals", app.base)).header("cookie", &stale).send().await.unwrap();
    assert_eq!(res.status(), 302, "a session past its absolute lifetime ends");
}

async fn demo_mode_is_refused_off_loopback(backend: Backend) {
    let db = common::fresh_db(backend).await;
    let args = quartermaster::config::ServeArgs {
        addr: "0.0.0.0:0".parse().unwrap(),
        demo: true,
        site_root: common::site_root(),
        public_url: None,
        oidc: Default::default(),
    };
    let err = quartermaster::server::Application::build(db.db.clone(), args).await.err().expect("refused");
    assert!(err.to_string().contains("loopback"), "{err}");
}

async fn plain_form_actions_work_without_javascript(backend: Backend) {
    let app = spawn_app(backend, true).await;
    let c = client();
    sign_in_as(&c, &app.base, app.ids.jamal.0).await;
    let page = format!("{}/packages/{}", app.base, app.ids.sales_crm.0);
    let html = c.get(&page).send().await.unwrap().text().await.unwrap();
    let action = html
        .split("action=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .find(|a| a.starts_with("/api/request_access"))
        .expect("the request form posts to its server function");
    // A browser with JavaScript off posts the form and follows the redirect back.
    let res = c
        .post(format!("{}{}", app.base, action))
        .header("origin", &app.base)
        .header("referer", &page)
        .header("accept", "text/html")
        .form(&[
            ("package_id", app.ids.sales_crm.0.to_string()),
            ("justification", "EMEA".into()),
            ("answers[region]", "EMEA".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let back = c.get(&page).send().await.unwrap().text().await.unwrap();
    assert!(back.contains("waiting for approval"), "the outcome is shown after the redirect");
    // The approver sees it on the server-rendered Approvals page.
    let c2 = client();
    sign_in_as(&c2, &app.base, app.ids.sofia.0).await;
    let approvals = c2.get(format!("{}/approvals", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(approvals.contains("Jamal Carter") && approvals.contains("Sales CRM"));

    // Several at once, as a plain form: Priya asks too, Sofia ticks both and approves.
    let c3 = client();
    sign_in_as(&c3, &app.base, app.ids.priya.0).await;
    c3.post(format!("{}/api/request_access", app.base))
        .header("origin", &app.base)
        .header("referer", &page)
        .form(&[("package_id", app.ids.sales_crm.0.to_string()), ("justification", "APAC".into())])
        .send()
        .await
        .unwrap();
    let sofia = app.service.actor(app.ids.sofia).await.unwrap().unwrap();
    let pending: Vec<i64> =
        app.service.pending_approvals(&sofia, None).await.unwrap().items.iter().map(|i| i.request_id).collect();
    assert_eq!(pending.len(), 2);
    let approvals_page = format!("{}/approvals", app.base);
    let res = c2
        .post(format!("{}/api/decide_many", app.base))
        .header("origin", &app.base)
        .header("referer", &approvals_page)
        .form(&[
            ("request_ids[0]", pending[0].to_string()),
            ("request_ids[2]", pending[1].to_string()),
            ("decision", "approve".into()),
            ("justification", "Q1 hires".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let after = c2.get(&approvals_page).send().await.unwrap().text().await.unwrap();
    assert!(after.contains("Approved 2 of 2 selected requests."), "bulk outcome shown");
    assert!(app.service.pending_approvals(&sofia, None).await.unwrap().items.is_empty());
}

/// A server function called the way the hydrated page calls it (no HTML, no redirect).
async fn call_server_fn(base: &str, cookie: &str, name: &str, form: &[(&str, String)]) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/api/{name}"))
        .header("origin", base)
        .header("accept", "application/json")
        .form(form);
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    req.send().await.unwrap()
}

/// Deciding several requests where one of them was decided meanwhile (or never existed): the
/// answer is the outcome, 200, "1 of 2", with the valid one applied — not a 4xx around an Ok
/// body. The status of a real error comes from the same table, once.
async fn a_bulk_decision_answers_by_its_outcome(backend: Backend) {
    use quartermaster::domain::request::Decision;
    let app = spawn_app(backend, true).await;
    let ids = &app.ids;
    let actor = async |id: quartermaster::domain::ids::UserId| app.service.actor(id).await.unwrap().unwrap();
    let (jamal, priya, noah, sofia) =
        (actor(ids.jamal).await, actor(ids.priya).await, actor(ids.noah).await, actor(ids.sofia).await);
    // Sofia approves them all: manager of Jamal and Priya, sponsor of Noah's organisation.
    let filed = async |who: &quartermaster::domain::authz::Actor, why: &str| {
        app.service.submit_request(who, common::ask(ids.sales_crm, why)).await.unwrap().request
    };
    let jamal_req = filed(&jamal, "EMEA accounts").await;
    let priya_req = filed(&priya, "Pipeline reports").await;
    let noah_req = filed(&noah, "Partner onboarding").await;
    // Someone else's tab got there first: Priya's request is decided already.
    app.service.decide(&sofia, priya_req, Decision::Approve, "ok").await.unwrap();
    let state_of = async |who: &quartermaster::domain::authz::Actor, id: quartermaster::domain::ids::RequestId| {
        app.service.my_requests(who, None).await.unwrap().items.into_iter().find(|r| r.id == id.0).unwrap().state
    };

    let cookie = common::session_cookie(&app, ids.sofia).await;
    let bulk = |requests: &[i64]| {
        let mut form: Vec<(String, String)> =
            requests.iter().enumerate().map(|(i, id)| (format!("request_ids[{i}]"), id.to_string())).collect();
        form.push(("decision".into(), "approve".into()));
        form.push(("justification".into(), "Q1 hires".into()));
        form
    };
    fn as_refs(form: &[(String, String)]) -> Vec<(&str, String)> {
        form.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
    }

    // With JavaScript: one valid, one already decided.
    let form = bulk(&[jamal_req.0, priya_req.0]);
    let res = call_server_fn(&app.base, &cookie, "decide_many", &as_refs(&form)).await;
    assert_eq!(res.status(), 200, "a partial success is an answer, not an error");
    let notice: quartermaster::views::Notice = res.json().await.unwrap();
    assert!(notice.text.starts_with("Approved 1 of 2 selected requests."), "{}", notice.text);
    assert!(
        notice.text.contains(&format!("request {}", priya_req.0)),
        "says which one was not decided: {}",
        notice.text
    );
    assert!(!notice.ok);
    let state = state_of(&jamal, jamal_req).await;
    assert!(["approved", "delivering", "delivered"].contains(&state.as_str()), "Jamal's request was approved: {state}");

    // When nothing went through, the error answers with its own status (409), as JSON.
    let form = bulk(&[priya_req.0]);
    let res = call_server_fn(&app.base, &cookie, "decide_many", &as_refs(&form)).await;
    assert_eq!(res.status(), 409);
    let error: quartermaster::ui::error::AppError = res.json().await.unwrap();
    assert!(matches!(error, quartermaster::ui::error::AppError::AlreadyDecided(_)), "{error:?}");
    // A call whose arguments do not parse is refused as invalid (422), not as a server fault.
    let res = call_server_fn(&app.base, &cookie, "decide_many", &[("request_ids[0]", jamal_req.0.to_string())]).await;
    assert_eq!(res.status(), 422);
    // Nobody signed in: 401.
    let res = call_server_fn(&app.base, "", "decide_many", &as_refs(&bulk(&[noah_req.0]))).await;
    assert_eq!(res.status(), 401);

    // Without JavaScript: a plain form with one valid and one unknown request is redirected
    // back, and the page shows the outcome once.
    let c = client();
    let page = format!("{}/approvals", app.base);
    let form = bulk(&[noah_req.0, 987_654_321]);
    let res = c
        .post(format!("{}/api/decide_many", app.base))
        .header("origin", &app.base)
        .header("referer", &page)
        .header("cookie", &cookie)
        .form(&as_refs(&form))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let back = res.headers()["location"].to_str().unwrap();
    assert!(back.starts_with(&page) && !back.contains("__err"), "back to the page, no error in the address: {back}");
    let html = c.get(&page).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Approved 1 of 2 selected requests."), "the outcome is shown after the redirect");
    let again = c.get(&page).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(!again.contains("selected requests."), "shown once");
    let state = state_of(&noah, noah_req).await;
    assert!(["approved", "delivering", "delivered"].contains(&state.as_str()), "Noah's request was approved: {state}");
}

/// Session lifetimes follow the service's clock: the idle timeout (8 hours) and the absolute
/// lifetime (12 hours after sign-in, however active).
async fn sessions_follow_the_injected_clock(backend: Backend) {
    let clock = quartermaster::domain::clock::ManualClock::new(chrono::Utc::now());
    let app = common::spawn_app_with_clock(backend, clock.clone()).await;
    let page = format!("{}/approvals", app.base);
    let status = async |c: &reqwest::Client| c.get(&page).send().await.unwrap().status().as_u16();
    let hours = |h: i64| chrono::Duration::hours(h);

    // Active every 7 hours: the idle timeout never strikes, the absolute lifetime does.
    let c = client();
    sign_in_as(&c, &app.base, app.ids.maya.0).await;
    assert_eq!(status(&c).await, 200);
    clock.advance(hours(7));
    assert_eq!(status(&c).await, 200, "7 hours idle is within the 8-hour idle timeout");
    clock.advance(hours(5) - chrono::Duration::minutes(1));
    assert_eq!(status(&c).await, 200, "just under 12 hours since sign-in");
    clock.advance(chrono::Duration::minutes(2));
    assert_eq!(status(&c).await, 302, "past 12 hours since sign-in the session ends, however active");

    // Idle for more than 8 hours: the session is gone.
    let c = client();
    sign_in_as(&c, &app.base, app.ids.maya.0).await;
    assert_eq!(status(&c).await, 200);
    clock.advance(hours(8) + chrono::Duration::minutes(1));
    assert_eq!(status(&c).await, 302, "idle past 8 hours");
}
