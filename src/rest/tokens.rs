//! API tokens: the caller's own (read with `read`), revoking one (the owner's, or with
//! `admin` an administrator anyone's), and service accounts with the tokens administrators
//! make for them (`admin`). A token made through the API has at most the calling token's
//! scopes and does not outlive it.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::governance::Created;
use super::{body, path_id, Caller, Problem};
use crate::domain::ids::UserId;
use crate::domain::token::{Scope, Scopes};
use crate::service::tokens::{TokenBy, MAX_TOKEN_DAYS};
use crate::views::{ServiceAccountView, TokenView};

#[utoipa::path(get, path = "/api/v1/me/tokens", tag = "me", security(("bearer" = ["read"])),
    responses((status = 200, body = Vec<TokenView>, description = "The caller's tokens, newest first (never their secrets)")))]
pub(super) async fn my_tokens(caller: Caller) -> Result<Json<Vec<TokenView>>, Problem> {
    let actor = caller.with(Scope::Read)?;
    Ok(Json(caller.service.my_tokens(actor).await?.items))
}

/// A token to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    /// What it is for, to know it by.
    name: String,
    /// `read`, `request`, `decide`, `admin`, `metrics`, `scim`: none beyond its owner's rights.
    scopes: Vec<String>,
    /// How many days it lasts (1 to 366).
    days: u32,
}

/// A token just made, with its secret: shown this once, kept nowhere.
#[derive(Serialize, ToSchema)]
pub(super) struct MadeToken {
    token: TokenView,
    /// `Authorization: Bearer <secret>`.
    secret: String,
}

fn scopes(b: &NewToken) -> Result<Scopes, Problem> {
    if b.scopes.len() > Scope::ALL.len() {
        return Err(Problem::invalid(Some("scopes"), "each scope once"));
    }
    Scopes::parse(&b.scopes.join(" ")).map_err(|why| Problem::invalid(Some("scopes"), why))
}

/// A token made through the API is no wider than the token it is made with: none of the
/// scopes it lacks, and expiring no later. (Its own owner's rights bound it too, in the
/// service.)
fn within_calling_token(caller: &Caller, scopes: &Scopes, days: u32) -> Result<(), Problem> {
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        return Err(Problem::invalid(Some("days"), format!("a token lasts 1 to {MAX_TOKEN_DAYS} days")));
    }
    if let Some(beyond) = Scope::ALL.into_iter().find(|s| scopes.has(*s) && !caller.token.scopes.has(*s)) {
        return Err(Problem::invalid(
            Some("scopes"),
            format!(
                "the token this call is made with lacks the {} scope, so the new one cannot have it",
                beyond.word()
            ),
        ));
    }
    let ends = caller.service.clock().now() + chrono::Duration::days(i64::from(days));
    if ends > caller.token.expires_at {
        return Err(Problem::invalid(
            Some("days"),
            "a token made through the API expires no later than the token it is made with",
        ));
    }
    Ok(())
}

fn made(token: TokenView, secret: String) -> Response {
    (StatusCode::CREATED, Json(MadeToken { token, secret })).into_response()
}

#[utoipa::path(post, path = "/api/v1/me/tokens", tag = "me", security(("bearer" = ["read"])), request_body = NewToken,
    responses((status = 201, body = MadeToken, description = "Made for the caller, audited; its secret is in this answer only"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "Too many live tokens")))]
pub(super) async fn create_my_token(
    caller: Caller,
    b: Result<Json<NewToken>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Read)?;
    let b = body(b)?;
    let scopes = scopes(&b)?;
    within_calling_token(&caller, &scopes, b.days)?;
    let (token, secret) = caller.service.create_token(TokenBy::Person(actor), actor, &b.name, &scopes, b.days).await?;
    Ok(made(token, secret))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "me", security(("bearer" = ["read"])), params(("id" = i64, Path)),
    responses((status = 204, description = "Revoked, audited: it no longer works"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "No such token of the caller's (an administrator's token with `admin`: of anyone's)"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "Revoked already")))]
pub(super) async fn revoke_token(caller: Caller, id: Result<Path<i64>, PathRejection>) -> Result<StatusCode, Problem> {
    let actor = caller.with(Scope::Read)?;
    caller.service.revoke_token(TokenBy::Person(actor), path_id(id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/service-accounts", tag = "people", security(("bearer" = ["admin"])),
    responses((status = 200, body = Vec<ServiceAccountView>, description = "Every service account, by name, with its tokens")))]
pub(super) async fn service_accounts(caller: Caller) -> Result<Json<Vec<ServiceAccountView>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    Ok(Json(caller.service.service_accounts(actor).await?))
}

/// A service account to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewServiceAccount {
    /// Its name; its address is made from it.
    name: String,
    /// What it does, for who finds it later.
    #[serde(default)]
    purpose: String,
}

#[utoipa::path(post, path = "/api/v1/service-accounts", tag = "people", security(("bearer" = ["admin"])), request_body = NewServiceAccount,
    responses((status = 201, body = Created, description = "Made (administrators), audited: give it roles or access by its address, then a token"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "One of that name exists")))]
pub(super) async fn create_service_account(
    caller: Caller,
    b: Result<Json<NewServiceAccount>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let b = body(b)?;
    let id = caller.service.create_service_account(actor, &b.name, &b.purpose).await?;
    Ok((StatusCode::CREATED, Json(Created::new(id.0))).into_response())
}

#[utoipa::path(post, path = "/api/v1/service-accounts/{id}/tokens", tag = "people", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = NewToken,
    responses((status = 201, body = MadeToken, description = "Made for the account (administrators), audited, with no scope beyond the account's own rights; its secret is in this answer only"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "No such account, or it is disabled"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "The account has too many live tokens")))]
pub(super) async fn create_service_token(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NewToken>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    caller.service.administrator(actor)?;
    let account = UserId(path_id(id)?);
    let b = body(b)?;
    let scopes = scopes(&b)?;
    within_calling_token(&caller, &scopes, b.days)?;
    let (token, secret) = caller.service.create_service_account_token(actor, account, &b.name, &scopes, b.days).await?;
    Ok(made(token, secret))
}
