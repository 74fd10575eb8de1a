//! ID token validation: a token with the wrong nonce, past its expiry, for another audience,
//! from another issuer, with a broken signature, "signed" with the client secret (HS256), or
//! issued in the future is refused with a clear page and no session; so is a sign-in whose
//! userinfo is about someone else. The provider's keys are fetched again when a token names a
//! key we do not know (key rotation), at most once a minute.
//!
//! The tokens here are minted by the test itself (signed with test keys whose public halves a
//! small in-test issuer publishes), because a real provider never issues such tokens; the
//! sign-in flow itself is tested against a real provider in `oidc.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use common::{free_port, spawn_app_with, TestApp};
use openidconnect::core::*;
use openidconnect::*;
use quartermaster::store::Backend;
use reqwest::cookie::Jar;

const KEY: &str = include_str!("../fixtures/oidc-test-signing-key.pem");
/// The key the issuer rotates to (Ed25519, kid `rotated-key`).
const ROTATED_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMUmsn2oQ9EHb7bnYB1J9Q1h0euhWAZnrk5sQUob+nX1
-----END PRIVATE KEY-----
";
/// A key the issuer never publishes (Ed25519, kid `unpublished-key`).
const UNPUBLISHED_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIPAuZr6ponNv3Bq98q+nw2Ayy5X+u1axL4Bsh6DtkrYy
-----END PRIVATE KEY-----
";
const CLIENT_SECRET: &str = "test-client-secret";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mint {
    Good,
    WrongNonce,
    Expired,
    OtherAudience,
    OtherIssuer,
    BrokenSignature,
    /// HS256 with the client secret as the key: anyone who knows the secret could make it.
    Hs256WithClientSecret,
    /// `iat` an hour ahead of now (and `exp` after that).
    IssuedInTheFuture,
    /// `iat` a minute ahead of now: clock skew, tolerated.
    IssuedAMinuteAhead,
    /// A good token, but userinfo answers about another subject.
    UserinfoAboutSomeoneElse,
    /// A good token; userinfo answers correctly the first time, about someone else after that.
    UserinfoChangesAfterFirstRead,
    /// Signed by the key the issuer rotates to.
    RotatedKey,
    /// Signed by a key the issuer never publishes.
    UnpublishedKey,
}

#[derive(Clone)]
struct Issuer {
    url: String,
    mint: Arc<Mutex<(Mint, String)>>, // what to mint, and the nonce the portal sent
    /// The key set publishes only the rotated key (instead of only the original one).
    rotated: Arc<AtomicBool>,
    jwks_reads: Arc<AtomicUsize>,
    userinfo_reads: Arc<AtomicUsize>,
}

async fn discovery(State(s): State<Issuer>) -> Json<serde_json::Value> {
    let md = ProviderMetadataWithLogout::new(
        IssuerUrl::new(s.url.clone()).unwrap(),
        AuthUrl::new(format!("{}/authorize", s.url)).unwrap(),
        JsonWebKeySetUrl::new(format!("{}/jwks", s.url)).unwrap(),
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        // HS256 advertised too: the portal must not take the provider's word for which
        // algorithms it accepts.
        vec![
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::HmacSha256,
            CoreJwsSigningAlgorithm::EdDsa,
        ],
        LogoutProviderMetadata { end_session_endpoint: None, additional_metadata: EmptyAdditionalProviderMetadata {} },
    )
    .set_token_endpoint(Some(TokenUrl::new(format!("{}/token", s.url)).unwrap()))
    .set_userinfo_endpoint(Some(UserInfoUrl::new(format!("{}/userinfo", s.url)).unwrap()));
    Json(serde_json::to_value(md).unwrap())
}

fn key() -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(KEY, Some(JsonWebKeyId::new("test-key".into()))).unwrap()
}

fn rotated_key() -> CoreEdDsaPrivateSigningKey {
    CoreEdDsaPrivateSigningKey::from_ed25519_pem(ROTATED_KEY, Some(JsonWebKeyId::new("rotated-key".into()))).unwrap()
}

fn unpublished_key() -> CoreEdDsaPrivateSigningKey {
    CoreEdDsaPrivateSigningKey::from_ed25519_pem(UNPUBLISHED_KEY, Some(JsonWebKeyId::new("unpublished-key".into())))
        .unwrap()
}

async fn jwks(State(s): State<Issuer>) -> Json<serde_json::Value> {
    s.jwks_reads.fetch_add(1, Ordering::SeqCst);
    let published = if s.rotated.load(Ordering::SeqCst) {
        rotated_key().as_verification_key()
    } else {
        key().as_verification_key()
    };
    Json(serde_json::to_value(CoreJsonWebKeySet::new(vec![published])).unwrap())
}

async fn token(State(s): State<Issuer>) -> Json<serde_json::Value> {
    let (mint, nonce) = s.mint.lock().unwrap().clone();
    let now = Utc::now();
    let issuer = if mint == Mint::OtherIssuer { "http://127.0.0.1:1/elsewhere".to_owned() } else { s.url.clone() };
    let audience = if mint == Mint::OtherAudience { "someone-else" } else { "quartermaster" };
    let (iat, exp) = match mint {
        Mint::Expired => (now - Duration::hours(2), now - Duration::hours(1)),
        Mint::IssuedInTheFuture => (now + Duration::hours(1), now + Duration::hours(2)),
        Mint::IssuedAMinuteAhead => (now + Duration::minutes(1), now + Duration::minutes(6)),
        _ => (now, now + Duration::minutes(5)),
    };
    let nonce = if mint == Mint::WrongNonce { "not-the-nonce".to_owned() } else { nonce };
    let claims = CoreIdTokenClaims::new(
        IssuerUrl::new(issuer).unwrap(),
        vec![Audience::new(audience.into())],
        exp,
        iat,
        StandardClaims::new(SubjectIdentifier::new("dave".into()))
            .set_email(Some(EndUserEmail::new("dave@example.test".into())))
            .set_email_verified(Some(true))
            .set_name(Some(EndUserName::new("Dave Tester".into()).into())),
        EmptyAdditionalClaims {},
    )
    .set_nonce(Some(Nonce::new(nonce)));
    let signed = match mint {
        Mint::Hs256WithClientSecret => {
            CoreIdToken::new(claims, &CoreHmacKey::new(CLIENT_SECRET), CoreJwsSigningAlgorithm::HmacSha256, None, None)
        }
        Mint::RotatedKey => CoreIdToken::new(claims, &rotated_key(), CoreJwsSigningAlgorithm::EdDsa, None, None),
        Mint::UnpublishedKey => {
            CoreIdToken::new(claims, &unpublished_key(), CoreJwsSigningAlgorithm::EdDsa, None, None)
        }
        _ => CoreIdToken::new(claims, &key(), CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, None, None),
    };
    let mut id_token = signed.unwrap().to_string();
    if mint == Mint::BrokenSignature {
        // Change a character in the middle of the signature (the last one may only carry
        // padding bits).
        let at = id_token.rfind('.').unwrap() + 20;
        let flipped = if &id_token[at..=at] == "A" { "B" } else { "A" };
        id_token.replace_range(at..=at, flipped);
    }
    Json(serde_json::json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
}

/// Userinfo about the token's subject (with a department the ID token does not carry), except
/// where the mint says otherwise.
async fn userinfo(State(s): State<Issuer>) -> Json<serde_json::Value> {
    let read = s.userinfo_reads.fetch_add(1, Ordering::SeqCst);
    let (mint, _) = s.mint.lock().unwrap().clone();
    let about_someone_else =
        mint == Mint::UserinfoAboutSomeoneElse || (mint == Mint::UserinfoChangesAfterFirstRead && read > 0);
    Json(if about_someone_else {
        serde_json::json!({"sub": "mallory", "email": "mallory@example.test", "department": "Injected"})
    } else {
        serde_json::json!({"sub": "dave", "email": "dave@example.test", "department": "Support"})
    })
}

/// The in-test issuer on a free port, and the portal using it.
async fn start(backend: Backend) -> (Issuer, TestApp) {
    let issuer_port = free_port();
    let issuer = Issuer {
        url: format!("http://127.0.0.1:{issuer_port}"),
        mint: Arc::new(Mutex::new((Mint::Good, String::new()))),
        rotated: Arc::new(AtomicBool::new(false)),
        jwks_reads: Arc::new(AtomicUsize::new(0)),
        userinfo_reads: Arc::new(AtomicUsize::new(0)),
    };
    let router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo))
        .with_state(issuer.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", issuer_port)).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    std::env::set_var("QM_OIDC_CLIENT_SECRET", CLIENT_SECRET);
    let url = issuer.url.clone();
    let app = spawn_app_with(backend, move |args| {
        args.oidc.issuer = Some(url);
        args.oidc.client_id = Some("quartermaster".into());
        args.oidc.scopes = vec!["openid".into(), "email".into()];
        args.oidc.claim_email = "email".into();
        args.oidc.claim_name = "name".into();
        args.oidc.claim_department = "department".into();
    })
    .await;
    (issuer, app)
}

struct Outcome {
    status: u16,
    body: String,
    signed_in: bool,
}

/// One sign-in in a fresh browser, with the issuer minting `mint` at the token endpoint.
async fn sign_in(issuer: &Issuer, app: &TestApp, mint: Mint) -> Outcome {
    let jar = Arc::new(Jar::default());
    let c =
        reqwest::Client::builder().cookie_provider(jar).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = app.get(&c, "/auth/login").await;
    let to = reqwest::Url::parse(login.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
    *issuer.mint.lock().unwrap() = (mint, q["nonce"].clone());
    issuer.userinfo_reads.store(0, Ordering::SeqCst);
    let callback = app.url(&format!("/auth/callback?code=abc&state={}", q["state"]));
    let res = c.get(callback).send().await.unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    let home = c.get(app.url("/approvals")).header("accept", "text/html").send().await.unwrap();
    Outcome { status, body, signed_in: home.status() == 200 }
}

fn assert_refused(outcome: &Outcome, why: &str) {
    assert_eq!(outcome.status, 400, "{why} must be refused: {}", outcome.body);
    assert!(outcome.body.contains("could not be verified"), "{why}: {}", outcome.body);
    assert!(!outcome.signed_in, "{why}: no session");
}

fn assert_signed_in(outcome: &Outcome, why: &str) {
    assert_eq!(outcome.status, 303, "{why} signs in: {}", outcome.body);
    assert!(outcome.signed_in, "{why}: a session");
}

async fn daves_department(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT department FROM users WHERE email = 'dave@example.test'")
        .fetch_one(app.service.db().pool())
        .await
        .unwrap()
}

on_both_databases!(
    invalid_id_tokens_are_refused,
    userinfo_is_read_once_and_must_be_about_the_same_subject,
    a_rotated_signing_key_is_fetched,
    an_unknown_signing_key_is_refused_and_fetched_at_most_once_a_minute
);

async fn invalid_id_tokens_are_refused(backend: Backend) {
    let (issuer, app) = start(backend).await;
    for mint in [
        Mint::WrongNonce,
        Mint::Expired,
        Mint::OtherAudience,
        Mint::OtherIssuer,
        Mint::BrokenSignature,
        Mint::Hs256WithClientSecret,
        Mint::IssuedInTheFuture,
    ] {
        assert_refused(&sign_in(&issuer, &app, mint).await, &format!("{mint:?}"));
    }
    // A provider clock a minute ahead of ours is tolerated.
    assert_signed_in(&sign_in(&issuer, &app, Mint::IssuedAMinuteAhead).await, "iat a minute ahead");
    let good = sign_in(&issuer, &app, Mint::Good).await;
    assert_signed_in(&good, "a good token");
    // Userinfo was read and used for what the ID token lacks.
    assert_eq!(daves_department(&app).await, "Support");
}

async fn userinfo_is_read_once_and_must_be_about_the_same_subject(backend: Backend) {
    let (issuer, app) = start(backend).await;
    let other = sign_in(&issuer, &app, Mint::UserinfoAboutSomeoneElse).await;
    assert_refused(&other, "userinfo about another subject");

    // One read, checked, and its claims used: a second answer (about someone else) is never
    // asked for.
    let once = sign_in(&issuer, &app, Mint::UserinfoChangesAfterFirstRead).await;
    assert_signed_in(&once, "userinfo about the same subject");
    assert_eq!(daves_department(&app).await, "Support", "claims come from the checked userinfo document");
    assert_eq!(issuer.userinfo_reads.load(Ordering::SeqCst), 1, "userinfo is read once per sign-in");
}

async fn a_rotated_signing_key_is_fetched(backend: Backend) {
    let (issuer, app) = start(backend).await;
    assert_signed_in(&sign_in(&issuer, &app, Mint::Good).await, "before the rotation");
    assert_eq!(issuer.jwks_reads.load(Ordering::SeqCst), 1, "the keys are fetched once and kept");

    // The provider replaces its key (the portal still holds the old key set): a token signed
    // by the new key makes the portal fetch the keys again, and verifies.
    issuer.rotated.store(true, Ordering::SeqCst);
    assert_signed_in(&sign_in(&issuer, &app, Mint::RotatedKey).await, "a token signed by the new key");
    assert_eq!(issuer.jwks_reads.load(Ordering::SeqCst), 2, "the keys were fetched again");
    // And the old key is no longer trusted.
    assert_refused(&sign_in(&issuer, &app, Mint::Good).await, "a token signed by the removed key");
}

async fn an_unknown_signing_key_is_refused_and_fetched_at_most_once_a_minute(backend: Backend) {
    let (issuer, app) = start(backend).await;
    assert_signed_in(&sign_in(&issuer, &app, Mint::Good).await, "before");
    assert_eq!(issuer.jwks_reads.load(Ordering::SeqCst), 1);

    // A key the provider does not publish: the keys are fetched again, once, and the token
    // is still refused.
    assert_refused(&sign_in(&issuer, &app, Mint::UnpublishedKey).await, "a token signed by an unpublished key");
    assert_eq!(issuer.jwks_reads.load(Ordering::SeqCst), 2, "one fetch for the unknown key");
    // More such tokens within the minute do not make the portal ask the provider again.
    for _ in 0..3 {
        assert_refused(&sign_in(&issuer, &app, Mint::UnpublishedKey).await, "again");
    }
    assert_eq!(issuer.jwks_reads.load(Ordering::SeqCst), 2, "at most one fetch a minute");
    assert_signed_in(&sign_in(&issuer, &app, Mint::Good).await, "the published key still works");
}
