//! Sign-in through a real OpenID Connect provider (npm `oidc-provider`), and every way a
//! callback can be bad: each ends on a clear error page with no session created. The provider's
//! test control changes an account's claims between sign-ins (unverified or differently cased
//! emails, groups dropped, groups named like local ones) and rotates its signing key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::sync::Arc;

use common::peers::OidcProvider;
use common::{free_port, try_spawn_app_with, TestApp};
use quartermaster::config::ServeArgs;
use quartermaster::domain::ids::UserId;
use quartermaster::store::Backend;
use reqwest::cookie::Jar;
use reqwest::header::{ACCEPT, LOCATION};
use reqwest::{Client, StatusCode, Url};
use serde_json::json;

on_both_databases!(
    provider_sign_in_creates_the_person_and_signs_out_everywhere,
    bad_callbacks_are_refused_without_a_session,
    an_unverified_email_is_not_linked_to_an_existing_account,
    an_email_in_another_case_is_the_same_person,
    leaving_the_admin_group_revokes_administrator,
    a_provider_group_named_like_a_local_group_is_not_joined,
    a_return_to_with_a_tab_never_leaves_the_site,
    new_people_at_a_provider_configured_unlike_ours,
    the_providers_time_zone_holds_until_the_person_chooses_one,
    a_rotated_provider_key_is_followed
);

struct Setup {
    app: TestApp,
    provider: OidcProvider,
}

async fn setup(backend: Backend) -> Setup {
    setup_with(backend, |_| {}).await
}

/// The portal and the provider, with the portal's arguments adjusted by `configure` after the
/// common ones.
async fn setup_with(backend: Backend, configure: fn(&mut ServeArgs)) -> Setup {
    // The portal's port must be known before the provider starts (its redirect URI); another
    // test may take a free port before we bind it, so pick again when that happens.
    for _ in 0..5 {
        if let Some(s) = try_setup(backend, configure).await {
            return s;
        }
    }
    panic!("no free port for the portal after 5 tries");
}

async fn try_setup(backend: Backend, configure: fn(&mut ServeArgs)) -> Option<Setup> {
    let port = free_port();
    let portal = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(&portal).await;
    let issuer = provider.issuer.clone();
    // The secret comes from the environment, never a flag.
    std::env::set_var("QM_OIDC_CLIENT_SECRET", "test-client-secret");
    let app = try_spawn_app_with(backend, move |args| {
        args.addr = format!("127.0.0.1:{port}").parse().unwrap();
        args.oidc.issuer = Some(issuer);
        args.oidc.client_id = Some("quartermaster".into());
        args.oidc.scopes = vec!["openid".into(), "email".into(), "profile".into(), "groups".into()];
        args.oidc.display_name = "Example IdP".into();
        args.oidc.claim_email = "email".into();
        args.oidc.claim_name = "name".into();
        args.oidc.claim_groups = "groups".into();
        args.oidc.claim_department = "department".into();
        args.oidc.claim_job_title = "job_title".into();
        args.oidc.claim_manager = "manager_email".into();
        args.oidc.admin_group = Some("qm-admins".into());
        configure(args);
    })
    .await;
    match app {
        Ok(app) => Some(Setup { app, provider }),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
        Err(e) => panic!("the portal did not start: {e}"),
    }
}

fn browser(jar: Arc<Jar>) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(ACCEPT, "text/html".parse().unwrap());
    Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

fn location(res: &reqwest::Response, base: &Url) -> Url {
    base.join(res.headers()[LOCATION].to_str().unwrap()).unwrap()
}

/// Go from the portal's sign-in to the provider, log in as `account`, consent, and return the
/// callback URL the provider sends the browser to (not yet followed).
async fn authorize(c: &Client, s: &Setup, account: &str) -> Url {
    authorize_from(c, s, account, "/auth/login").await
}

/// The same, starting at `login` (the portal's sign-in path with its query).
async fn authorize_from(c: &Client, s: &Setup, account: &str, login: &str) -> Url {
    let res = s.app.get(c, login).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let url = location(&res, &Url::parse(&s.app.base).unwrap());
    assert!(url.as_str().starts_with(&s.provider.issuer), "sent to the provider: {url}");
    let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert!(q.iter().any(|(k, v)| k == "code_challenge_method" && v == "S256"), "PKCE S256");
    assert!(q.iter().any(|(k, _)| k == "nonce") && q.iter().any(|(k, _)| k == "state"));
    s.provider.log_in(c, url, &s.app.base, account).await
}

async fn signed_in_name(c: &Client, s: &Setup) -> Option<String> {
    let res = s.app.get(c, "/approvals").await;
    if res.status() != StatusCode::OK {
        return None;
    }
    let html = res.text().await.unwrap();
    html.split("class=\"who-name\">").nth(1).and_then(|t| t.split('<').next()).map(str::to_owned)
}

async fn provider_sign_in_creates_the_person_and_signs_out_everywhere(backend: Backend) {
    let s = setup(backend).await;
    let jar = Arc::new(Jar::default());
    let c = browser(jar.clone());
    // The sign-in page offers the provider.
    let page = s.app.page(&c, "/signin").await;
    assert!(page.contains("Sign in with Example IdP"));

    let callback = authorize(&c, &s, "alice").await;
    assert!(callback.query_pairs().any(|(k, _)| k == "iss"), "RFC 9207 iss parameter present");
    let res = c.get(callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", res.text().await.unwrap());
    assert_eq!(signed_in_name(&c, &s).await.as_deref(), Some("Alice Admin"));
    let home = s.app.page(&c, "/").await;
    assert!(home.contains(">Admin<"), "administrator bootstrapped by the qm-admins group claim");

    // Bob: created just in time, with department, title, groups and manager from the claims.
    let jar_b = Arc::new(Jar::default());
    let b = browser(jar_b);
    let callback = authorize(&b, &s, "bob").await;
    assert_eq!(b.get(callback).send().await.unwrap().status(), StatusCode::SEE_OTHER);
    let pool = s.app.service.db().pool().clone();
    let (dept, title, manager): (String, String, Option<i64>) =
        sqlx::query_as("SELECT department, job_title, manager_id FROM users WHERE email = 'bob@example.test'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((dept.as_str(), title.as_str()), ("Engineering", "Engineer"));
    let alice: i64 =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'alice@example.test'").fetch_one(&pool).await.unwrap();
    assert_eq!(manager, Some(alice));
    let groups: Vec<String> = sqlx::query_scalar(
        "SELECT g.name FROM group_members m JOIN directory_groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id \
         WHERE u.email = 'bob@example.test' ORDER BY g.name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // "Engineering" is a group kept here (the demo's local group): a provider claim naming it
    // does not join it, so it does not make Bob eligible for what that group may request.
    assert!(groups.is_empty(), "{groups:?}");
    let home_b = s.app.page(&b, "/").await;
    assert!(!home_b.contains(">Admin<"));
    assert!(!home_b.contains("Production Access"), "a provider group named like a local group grants nothing");

    // Sign-out ends the portal session and sends the browser to the provider's logout.
    let res = s.app.sign_out(&c).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(to.starts_with(&format!("{}/session/end", s.provider.issuer)) && to.contains("id_token_hint="), "{to}");
    assert_eq!(signed_in_name(&c, &s).await, None, "the session is gone");
}

async fn expect_refused(c: &Client, s: &Setup, url: Url, why: &str) {
    let res = c.get(url).send().await.unwrap();
    let status = res.status();
    let html = res.text().await.unwrap();
    assert!(status.is_client_error(), "{why}: got {status}");
    assert!(html.contains("Sign-in did not work"), "{why}: a clear error page");
    assert_eq!(signed_in_name(c, s).await, None, "{why}: no session");
}

async fn bad_callbacks_are_refused_without_a_session(backend: Backend) {
    let s = setup(backend).await;

    // Tampered state.
    let jar = Arc::new(Jar::default());
    let c = browser(jar.clone());
    let mut cb = authorize(&c, &s, "carol").await;
    let tampered: Vec<(String, String)> =
        cb.query_pairs().into_owned().map(|(k, v)| if k == "state" { (k, format!("{v}x")) } else { (k, v) }).collect();
    cb.query_pairs_mut().clear().extend_pairs(tampered);
    expect_refused(&c, &s, cb, "tampered state").await;

    // Unknown issuer named in the callback.
    let c = browser(Arc::new(Jar::default()));
    let mut cb = authorize(&c, &s, "carol").await;
    let forged: Vec<(String, String)> = cb
        .query_pairs()
        .into_owned()
        .map(|(k, v)| if k == "iss" { (k, "https://evil.example".into()) } else { (k, v) })
        .collect();
    cb.query_pairs_mut().clear().extend_pairs(forged);
    expect_refused(&c, &s, cb, "unknown issuer").await;

    // A replayed callback: the first use signs in; the same state again is refused even with
    // the login cookie put back.
    let jar = Arc::new(Jar::default());
    let c = browser(jar.clone());
    let login = s.app.get(&c, "/auth/login").await;
    let login_cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("qm_login="))
        .unwrap();
    let cb = authorize(&c, &s, "carol").await;
    let first = c.get(cb.clone()).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let c2 = browser({
        let jar = Arc::new(Jar::default());
        jar.add_cookie_str(&login_cookie, &Url::parse(&s.app.url("/auth/")).unwrap());
        jar
    });
    expect_refused(&c2, &s, cb.clone(), "replayed state").await;

    // A reused code: a fresh sign-in (new state and cookie) presenting the old code.
    let c3 = browser(Arc::new(Jar::default()));
    let fresh = authorize(&c3, &s, "carol").await;
    let old_code = cb.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let reused: Vec<(String, String)> = fresh
        .query_pairs()
        .into_owned()
        .map(|(k, v)| if k == "code" { (k, old_code.clone()) } else { (k, v) })
        .collect();
    let mut reused_url = fresh.clone();
    reused_url.query_pairs_mut().clear().extend_pairs(reused);
    expect_refused(&c3, &s, reused_url, "reused code").await;

    // No login cookie at all (a link opened in another browser).
    let c4 = browser(Arc::new(Jar::default()));
    expect_refused(&c4, &s, fresh, "missing login cookie").await;

    // The provider reports an error.
    let mut err = Url::parse(&s.app.url("/auth/callback")).unwrap();
    err.query_pairs_mut().append_pair("error", "access_denied").append_pair("state", "x");
    expect_refused(&c4, &s, err, "provider error").await;
}

/// A full sign-in as `account` in a fresh browser: the browser and the callback's answer.
async fn sign_in(s: &Setup, account: &str) -> (Client, reqwest::Response) {
    let c = browser(Arc::new(Jar::default()));
    let callback = authorize(&c, s, account).await;
    let res = c.get(callback).send().await.unwrap();
    (c, res)
}

async fn assert_signed_in(s: &Setup, account: &str, why: &str) -> Client {
    let (c, res) = sign_in(s, account).await;
    let status = res.status();
    assert_eq!(status, StatusCode::SEE_OTHER, "{why}: {}", res.text().await.unwrap());
    assert!(signed_in_name(&c, s).await.is_some(), "{why}: a session");
    c
}

/// Someone known here before signing in (imported, SCIM, …): never linked to a provider.
async fn existing_person(s: &Setup, email: &str, name: &str) -> i64 {
    use quartermaster::domain::model::UserKind;
    use quartermaster::store::directory::{insert_user, NewUser};
    let mut conn = s.app.service.db().pool().acquire().await.unwrap();
    let user = NewUser {
        email,
        display_name: name,
        department: "",
        job_title: "",
        manager_id: None,
        kind: UserKind::Member,
        connected_org_id: None,
    };
    insert_user(&mut conn, &user, chrono::Utc::now().timestamp_millis()).await.unwrap().0
}

/// Everyone whose email is this one in any case: (id, stored email, issuer).
async fn people_with_email(s: &Setup, email: &str) -> Vec<(i64, String, Option<String>)> {
    sqlx::query_as("SELECT id, email, issuer FROM users WHERE LOWER(email) = LOWER($1) ORDER BY id")
        .bind(email)
        .fetch_all(s.app.service.db().pool())
        .await
        .unwrap()
}

/// The audit events with this action about this user: their reasons.
async fn audited(s: &Setup, action: &str, user: i64) -> Vec<String> {
    sqlx::query_scalar("SELECT reason FROM audit_events WHERE action = $1 AND object_type = 'user' AND object_id = $2")
        .bind(action)
        .bind(user)
        .fetch_all(s.app.service.db().pool())
        .await
        .unwrap()
}

async fn is_admin(s: &Setup, user: i64) -> bool {
    s.app.service.actor(UserId(user)).await.unwrap().expect("an active person").is_admin()
}

async fn an_unverified_email_is_not_linked_to_an_existing_account(backend: Backend) {
    // The domain may be linked: only the verification is missing.
    let s = setup_with(backend, |args| args.oidc.link_domains = vec!["example.test".into()]).await;
    let erin = existing_person(&s, "erin@example.test", "Erin Imported").await;
    s.provider
        .set_claims("erin", json!({"email": "erin@example.test", "email_verified": false, "name": "Erin Example"}))
        .await;

    let (c, res) = sign_in(&s, "erin").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("Sign-in did not work"), "a clear page");
    assert_eq!(signed_in_name(&c, &s).await, None, "no session");
    let refused = audited(&s, "user.link_refused", erin).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("did not verify"), "refused for the unverified email: {refused:?}");
    assert_eq!(people_with_email(&s, "erin@example.test").await, vec![(erin, "erin@example.test".into(), None)]);

    // Control: the same person, verified, is linked to the existing account.
    s.provider.set_claims("erin", json!({"email_verified": true})).await;
    let c = assert_signed_in(&s, "erin", "a verified email").await;
    assert_eq!(signed_in_name(&c, &s).await.as_deref(), Some("Erin Example"));
    let people = people_with_email(&s, "erin@example.test").await;
    assert_eq!(people.len(), 1, "{people:?}");
    assert_eq!((people[0].0, people[0].2.as_deref()), (erin, Some(s.provider.issuer.as_str())), "linked");
    assert_eq!(audited(&s, "user.linked", erin).await.len(), 1);
}

async fn an_email_in_another_case_is_the_same_person(backend: Backend) {
    let s = setup_with(backend, |args| args.oidc.link_domains = vec!["example.test".into()]).await;
    let bob = existing_person(&s, "bob@example.test", "Bob Imported").await;
    s.provider.set_claims("bob", json!({"email": "Bob@Example.TEST"})).await;

    // Linked to the account with that email (no second account, no collision), kept in lower
    // case.
    assert_signed_in(&s, "bob", "a differently cased email").await;
    let expected = vec![(bob, "bob@example.test".to_owned(), Some(s.provider.issuer.clone()))];
    assert_eq!(people_with_email(&s, "bob@example.test").await, expected);
    assert_eq!(audited(&s, "user.linked", bob).await.len(), 1);

    // Signing in again with the same email is no change of email.
    assert_signed_in(&s, "bob", "again").await;
    assert_eq!(people_with_email(&s, "bob@example.test").await, expected);
    let changes: Vec<String> = sqlx::query_scalar(
        "SELECT after FROM audit_events WHERE action = 'user.profile_updated' AND object_type = 'user' AND object_id = $1",
    )
    .bind(bob)
    .fetch_all(s.app.service.db().pool())
    .await
    .unwrap();
    assert!(changes.iter().all(|c| !c.contains("\"email\"")), "no email change recorded: {changes:?}");
}

/// The provider's `zoneinfo` claim gives a person's time zone at each sign-in; a zone they
/// choose in their settings comes first, until they go back to automatic (the provider's again at
/// once). A name the tz database does not know changes nothing, from the provider or the
/// form; a form without the field leaves the choice alone.
async fn the_providers_time_zone_holds_until_the_person_chooses_one(backend: Backend) {
    let s = setup(backend).await;
    let zones = |id: i64| {
        let pool = s.app.service.db().pool().clone();
        async move {
            sqlx::query_as::<_, (Option<String>, Option<String>)>(
                "SELECT time_zone, provider_time_zone FROM users WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let zone = |z: &str| Some(z.to_owned());
    s.provider.set_claims("carol", json!({"zoneinfo": "Europe/Berlin"})).await;
    let c = assert_signed_in(&s, "carol", "with a time zone").await;
    let carol = people_with_email(&s, "carol@example.test").await[0].0;
    assert_eq!(zones(carol).await, (None, zone("Europe/Berlin")));
    s.provider.set_claims("carol", json!({"zoneinfo": "Mars/Olympus_Mons"})).await;
    assert_signed_in(&s, "carol", "with a zone nobody knows").await;
    assert_eq!(zones(carol).await, (None, zone("Europe/Berlin")), "an unknown zone is ignored");

    // She chooses her own in her settings: it comes first, whatever the provider says.
    let save = |form: Vec<(&'static str, String)>| {
        let req = s.app.server_fn(&c, "save_email_settings").form(&form);
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.text().await.unwrap())
        }
    };
    let on = || ("optional", "on".to_owned());
    let (_, body) = save(vec![on(), ("time_zone", "Mars/Olympus_Mons".into())]).await;
    assert!(body.contains("is not a time zone"), "{body}");
    assert_eq!(zones(carol).await, (None, zone("Europe/Berlin")), "refused: nothing changed");
    let (status, body) = save(vec![on(), ("time_zone", "Asia/Tokyo".into())]).await;
    assert!(status.is_success() && body.contains("Times in your emails are in Asia/Tokyo"), "{body}");
    assert_eq!(zones(carol).await, (zone("Asia/Tokyo"), zone("Europe/Berlin")));
    let page = s.app.page(&c, "/settings").await;
    assert!(page.contains(r#"<option value="Asia/Tokyo" selected"#), "the form shows her choice");
    s.provider.set_claims("carol", json!({"zoneinfo": "America/Chicago"})).await;
    assert_signed_in(&s, "carol", "after choosing").await;
    assert_eq!(zones(carol).await, (zone("Asia/Tokyo"), zone("America/Chicago")), "her choice holds");
    save(vec![on()]).await;
    assert_eq!(zones(carol).await.0, zone("Asia/Tokyo"), "a form without the field leaves it");

    // Back to automatic: the provider's, at once.
    let (_, body) = save(vec![on(), ("time_zone", "automatic".into())]).await;
    assert!(body.contains("Times in your emails are in America/Chicago"), "{body}");
    assert_eq!(zones(carol).await, (None, zone("America/Chicago")));
    let page = s.app.page(&c, "/settings").await;
    assert!(page.contains("Automatic: America/Chicago, as your sign-in provider says"), "{page}");

    // Each change audited: hers as her choices, the provider's as profile changes.
    let choices = audited(&s, "user.email_preferences", carol).await;
    assert_eq!(choices.len(), 2, "Tokyo, then automatic: {choices:?}");
    let from_provider: Vec<String> = sqlx::query_scalar(
        "SELECT after FROM audit_events WHERE action = 'user.profile_updated' AND object_id = $1 ORDER BY id",
    )
    .bind(carol)
    .fetch_all(s.app.service.db().pool())
    .await
    .unwrap();
    let zones_given: Vec<&String> = from_provider.iter().filter(|a| a.contains("time_zone")).collect();
    assert_eq!(zones_given.len(), 1, "Berlin to Chicago (the first came with her account): {from_provider:?}");
    assert!(zones_given[0].contains("America/Chicago"), "{zones_given:?}");
}

async fn leaving_the_admin_group_revokes_administrator(backend: Backend) {
    let s = setup(backend).await;
    assert_signed_in(&s, "alice", "in qm-admins").await;
    let alice = people_with_email(&s, "alice@example.test").await[0].0;
    assert!(is_admin(&s, alice).await, "administrator while in qm-admins");

    s.provider.set_claims("alice", json!({"groups": ["Engineering"]})).await;
    let c = assert_signed_in(&s, "alice", "no longer in qm-admins").await;
    assert!(!is_admin(&s, alice).await, "administrator revoked");
    assert_eq!(audited(&s, "role.revoked", alice).await.len(), 1);
    let home = s.app.page(&c, "/").await;
    assert!(!home.contains(">Admin<"), "no Admin area");
}

async fn a_provider_group_named_like_a_local_group_is_not_joined(backend: Backend) {
    let s = setup(backend).await;
    let local = {
        let mut conn = s.app.service.db().pool().acquire().await.unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        quartermaster::store::directory::ensure_group(&mut conn, "Finance-local", "local", now).await.unwrap().unwrap()
    };
    s.provider.set_claims("carol", json!({"groups": ["Finance-local", "Payroll"]})).await;
    assert_signed_in(&s, "carol", "with a group named like a local one").await;

    let carol = people_with_email(&s, "carol@example.test").await[0].0;
    let groups: Vec<(String, String)> = sqlx::query_as(
        "SELECT g.name, g.source FROM group_members m JOIN directory_groups g ON g.id = m.group_id \
         WHERE m.user_id = $1 ORDER BY g.name",
    )
    .bind(carol)
    .fetch_all(s.app.service.db().pool())
    .await
    .unwrap();
    // The provider's own group is joined; the local one is not.
    assert_eq!(groups, vec![("Payroll".to_owned(), "oidc".to_owned())]);
    let members: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM group_members WHERE group_id = $1")
        .bind(local.0)
        .fetch_one(s.app.service.db().pool())
        .await
        .unwrap();
    assert_eq!(members, 0, "nobody joined the local group");
}

async fn a_return_to_with_a_tab_never_leaves_the_site(backend: Backend) {
    let s = setup(backend).await;
    // A browser drops the tab from `/\t/evil.example`, leaving `//evil.example`: another host.
    for (login, expected) in [
        ("/auth/login?return_to=%2F%09%2Fevil.example", "/"),
        // Control: a same-site path is where the sign-in ends.
        ("/auth/login?return_to=%2Fapprovals", "/approvals"),
    ] {
        let c = browser(Arc::new(Jar::default()));
        let callback = authorize_from(&c, &s, "carol", login).await;
        let res = c.get(callback).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{login}");
        let to = res.headers()[LOCATION].to_str().unwrap().to_owned();
        assert_eq!(to, expected, "{login}");
        let resolved = Url::parse(&s.app.base).unwrap().join(&to).unwrap();
        assert_eq!(resolved.origin(), Url::parse(&s.app.base).unwrap().origin(), "{login}: same origin");
    }
}

async fn a_rotated_provider_key_is_followed(backend: Backend) {
    let s = setup(backend).await;
    // The first sign-in makes the portal fetch and keep the provider's keys.
    assert_signed_in(&s, "alice", "before the rotation").await;

    let kid = s.provider.rotate_key().await;
    let c = assert_signed_in(&s, "bob", "after the rotation").await;
    // The ID token of that sign-in was signed by the new key (it is the sign-out's hint).
    let res = s.app.sign_out(&c).await;
    let to = Url::parse(res.headers()[LOCATION].to_str().unwrap()).unwrap();
    let hint = to.query_pairs().find(|(k, _)| k == "id_token_hint").unwrap().1.into_owned();
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(hint.split('.').next().unwrap()).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["kid"].as_str(), Some(kid.as_str()), "signed by the rotated key");
}

/// New people signing in as they would at a provider configured unlike the project's own:
/// ID tokens signed with ES256 that carry no profile claims (email, name and groups come from
/// userinfo only), behind a sign-in gate. A member of an allowed domain gets in; someone of a
/// connected organization's domain arrives as its guest; another domain and an unverified
/// email are refused with a clear page and no session.
async fn new_people_at_a_provider_configured_unlike_ours(backend: Backend) {
    // nextest runs each test in its own process: the variable reaches only this provider.
    std::env::set_var("OIDC_PROFILE", "strict");
    let s = setup_with(backend, |args| {
        args.oidc.sign_in_domains = vec!["example.test".into()];
        args.oidc.sign_in_group = Some("Staff".into());
    })
    .await;
    let discovery: serde_json::Value = reqwest::get(format!(
        "{}/.well-known/openid-configuration",
        s.provider.issuer.replace("localhost", "127.0.0.1")
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let jwks: serde_json::Value =
        reqwest::get(discovery["jwks_uri"].as_str().unwrap().replace("localhost", "127.0.0.1"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "EC", "the provider signs with an EC key: {jwks}");
    let kind_of = async |email: &str| -> Option<(String, Option<i64>)> {
        sqlx::query_as("SELECT kind, connected_org_id FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(s.app.service.db().pool())
            .await
            .unwrap()
    };
    s.provider
        .set_claims("dana", json!({"email": "dana@example.test", "name": "Dana New", "groups": ["Staff", "Design"]}))
        .await;
    let c = assert_signed_in(&s, "dana", "a member of an allowed domain, in the required group").await;
    assert_eq!(signed_in_name(&c, &s).await.as_deref(), Some("Dana New"), "the name came from userinfo");
    assert_eq!(kind_of("dana@example.test").await, Some(("member".into(), None)));

    let northwind: i64 = sqlx::query_scalar("SELECT id FROM connected_orgs WHERE domain = 'northwind.example'")
        .fetch_one(s.app.service.db().pool())
        .await
        .unwrap();
    s.provider.set_claims("gwen", json!({"email": "gwen@northwind.example", "name": "Gwen Guest"})).await;
    assert_signed_in(&s, "gwen", "a guest of a connected organization").await;
    assert_eq!(kind_of("gwen@northwind.example").await, Some(("guest".into(), Some(northwind))));
    // Northwind blocks guests whose access ended; Gwen is one (blocked by the guest pass, as
    // `notifications::a_guest_whose_access_ended_is_blocked_then_removed` shows): the
    // provider's sign-in is refused too, with a page saying why, no session, and audited.
    let pool = s.app.service.db().pool();
    sqlx::query("UPDATE connected_orgs SET block_after_days = 7 WHERE id = $1")
        .bind(northwind)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET blocked_at = 1 WHERE email = 'gwen@northwind.example'").execute(pool).await.unwrap();
    let (c, res) = sign_in(&s, "gwen").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "a blocked guest");
    assert!(res.text().await.unwrap().contains("Sign-in did not work"), "a clear page");
    assert_eq!(signed_in_name(&c, &s).await, None, "no session");
    let refused: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events e JOIN users u ON u.id = e.object_id \
         WHERE e.action = 'user.sign_in_refused' AND u.email = 'gwen@northwind.example'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(refused, 1, "audited");

    for (account, claims, why) in [
        ("mal", json!({"email": "mal@elsewhere.test", "name": "Mal", "groups": ["Staff"]}), "another domain"),
        ("olaf", json!({"email": "olaf@example.test", "name": "Olaf", "groups": ["Design"]}), "not in the group"),
        (
            "uma",
            json!({"email": "uma@example.test", "email_verified": false, "groups": ["Staff"]}),
            "an unverified email",
        ),
    ] {
        s.provider.set_claims(account, claims.clone()).await;
        let (c, res) = sign_in(&s, account).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{why}");
        assert!(res.text().await.unwrap().contains("Sign-in did not work"), "{why}: a clear page");
        assert_eq!(signed_in_name(&c, &s).await, None, "{why}: no session");
        assert_eq!(kind_of(claims["email"].as_str().unwrap()).await, None, "{why}: nobody created");
    }
}
