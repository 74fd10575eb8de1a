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
