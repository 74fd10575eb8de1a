//! ID token validation: a token with the wrong nonce, past its expiry, for another audience,
//! from another issuer, or with a broken signature is refused with a clear page and no session.
//!
//! The tokens here are minted by the test itself (signed with a test key whose public half a
//! small in-test issuer publishes), because a real provider never issues such tokens; the
//! sign-in flow itself is tested against a real provider in `oidc.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use common::{free_port, spawn_app_with};
use openidconnect::core::*;
use openidconnect::*;
use quartermaster::store::Backend;
use reqwest::cookie::Jar;

const KEY: &str = include_str!("fixtures/oidc-test-signing-key.pem");

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mint {
    Good,
    WrongNonce,
    Expired,
    OtherAudience,
    OtherIssuer,
    BrokenSignature,
}

#[derive(Clone)]
struct Issuer {
    url: String,
    mint: Arc<Mutex<(Mint, String)>>, // what to mint, and the nonce the portal sent
}

async fn discovery(State(s): State<Issuer>) -> Json<serde_json::Value> {
    let md = ProviderMetadataWithLogout::new(
        IssuerUrl::new(s.url.clone()).unwrap(),
        AuthUrl::new(format!("{}/authorize", s.url)).unwrap(),
        JsonWebKeySetUrl::new(format!("{}/jwks", s.url)).unwrap(),
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
        LogoutProviderMetadata { end_session_endpoint: None, additional_metadata: EmptyAdditionalProviderMetadata {} },
    )
    .set_token_endpoint(Some(TokenUrl::new(format!("{}/token", s.url)).unwrap()));
    Json(serde_json::to_value(md).unwrap())
}

fn key() -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(KEY, Some(JsonWebKeyId::new("test-key".into()))).unwrap()
}

async fn jwks() -> Json<serde_json::Value> {
    Json(serde_json::to_value(CoreJsonWebKeySet::new(vec![key().as_verification_key()])).unwrap())
}

async fn token(State(s): State<Issuer>) -> Json<serde_json::Value> {
    let (mint, nonce) = s.mint.lock().unwrap().clone();
    let now = Utc::now();
    let issuer = if mint == Mint::OtherIssuer { "http://127.0.0.1:1/elsewhere".to_owned() } else { s.url.clone() };
    let audience = if mint == Mint::OtherAudience { "someone-else" } else { "quartermaster" };
    let (iat, exp) = if mint == Mint::Expired {
        (now - Duration::hours(2), now - Duration::hours(1))
    } else {
        (now, now + Duration::minutes(5))
    };
    let nonce = if mint == Mint::WrongNonce { "not-the-nonce".to_owned() } else { nonce };
    let claims = CoreIdTokenClaims::new(
        IssuerUrl::new(issuer).unwrap(),
        vec![Audience::new(audience.into())],
        exp,
        iat,
        StandardClaims::new(SubjectIdentifier::new("dave".into()))
            .set_email(Some(EndUserEmail::new("dave@example.test".into())))
            .set_name(Some(EndUserName::new("Dave Tester".into()).into())),
        EmptyAdditionalClaims {},
    )
    .set_nonce(Some(Nonce::new(nonce)));
    let mut id_token = CoreIdToken::new(claims, &key(), CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, None, None)
        .unwrap()
        .to_string();
    if mint == Mint::BrokenSignature {
        // Change a character in the middle of the signature (the last one may only carry
        // padding bits).
        let at = id_token.rfind('.').unwrap() + 20;
        let flipped = if &id_token[at..=at] == "A" { "B" } else { "A" };
        id_token.replace_range(at..=at, flipped);
    }
    Json(serde_json::json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
}

on_both_databases!(invalid_id_tokens_are_refused);

async fn invalid_id_tokens_are_refused(backend: Backend) {
    let issuer_port = free_port();
    let issuer = Issuer {
        url: format!("http://127.0.0.1:{issuer_port}"),
        mint: Arc::new(Mutex::new((Mint::Good, String::new()))),
    };
    let router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .with_state(issuer.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", issuer_port)).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    std::env::set_var("QM_OIDC_CLIENT_SECRET", "test-client-secret");
    let url = issuer.url.clone();
    let app = spawn_app_with(backend, move |args| {
        args.oidc.issuer = Some(url);
        args.oidc.client_id = Some("quartermaster".into());
        args.oidc.scopes = vec!["openid".into(), "email".into()];
        args.oidc.claim_email = "email".into();
        args.oidc.claim_name = "name".into();
    })
    .await;

    for mint in
        [Mint::WrongNonce, Mint::Expired, Mint::OtherAudience, Mint::OtherIssuer, Mint::BrokenSignature, Mint::Good]
    {
        let jar = Arc::new(Jar::default());
        let c = reqwest::Client::builder()
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = c.get(format!("{}/auth/login", app.base)).send().await.unwrap();
        let to = reqwest::Url::parse(login.headers()["location"].to_str().unwrap()).unwrap();
        let q: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
        *issuer.mint.lock().unwrap() = (mint, q["nonce"].clone());
        let callback = format!("{}/auth/callback?code=abc&state={}", app.base, q["state"]);
        let res = c.get(callback).send().await.unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        let home = c.get(format!("{}/approvals", app.base)).header("accept", "text/html").send().await.unwrap();
        if mint == Mint::Good {
            assert_eq!(status, 303, "a good token signs in: {body}");
            assert_eq!(home.status(), 200);
        } else {
            assert_eq!(status, 400, "{mint:?} must be refused");
            assert!(body.contains("could not be verified"), "{mint:?}: {body}");
            assert_eq!(home.status(), 302, "{mint:?}: no session");
        }
    }
}
