//! Who is calling. The session holds the signed-in user's id; every request re-reads the
//! user, so a disabled user's session stops working at their next request. Sign-in is through
//! the company's OpenID Connect provider ([`oidc`]), or demo sign-in on a loopback address.

pub mod oidc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tower_sessions::Session;

use crate::domain::authz::Actor;
use crate::domain::ids::UserId;
use crate::domain::DomainError;
use crate::service::directory::AdminBootstrap;
use crate::service::Service;

const USER_KEY: &str = "user_id";
const SIGNED_IN_AT_KEY: &str = "signed_in_at";
const ID_TOKEN_KEY: &str = "id_token";
/// A session ends this long after sign-in, however active (the idle timeout is on the cookie).
pub const ABSOLUTE_SESSION_MS: i64 = 12 * 60 * 60 * 1000;
const LOGIN_COOKIE: &str = "qm_login";

/// What the sign-in handlers need. The server's state hands it out (`FromRef`), so this module
/// does not depend on the server.
#[derive(Clone, Debug)]
pub struct AuthState {
    pub service: Service,
    /// Demo sign-in is on (only ever on a loopback address).
    pub demo: bool,
    /// Sign-in through the company's identity provider, when configured.
    pub oidc: Option<std::sync::Arc<oidc::Oidc>>,
    /// Who becomes an administrator at sign-in.
    pub admins: AdminBootstrap,
    /// Served over https: secure cookies.
    pub https: bool,
}

fn now_ms(service: &Service) -> i64 {
    service.clock().now().timestamp_millis()
}

fn session_error(e: impl std::fmt::Display) -> DomainError {
    DomainError::Internal(format!("session: {e}"))
}

/// The signed-in actor of this session, if any.
pub async fn session_actor(session: &Session, service: &Service) -> Result<Option<Actor>, DomainError> {
    let id: Option<i64> = session.get(USER_KEY).await.map_err(session_error)?;
    let Some(id) = id else { return Ok(None) };
    let signed_in_at: i64 = session.get(SIGNED_IN_AT_KEY).await.map_err(session_error)?.unwrap_or(0);
    if now_ms(service) - signed_in_at > ABSOLUTE_SESSION_MS {
        tracing::info!(user = id, "session reached its absolute lifetime");
        let _ = session.flush().await;
        return Ok(None);
    }
    let actor = service.actor(UserId(id)).await?;
    if actor.is_none() {
        // Unknown or disabled now: end the session.
        let _ = session.flush().await;
    }
    Ok(actor)
}

/// Start a session for this user: a fresh session id (no fixation), then the user id.
pub async fn sign_in(
    session: &Session,
    service: &Service,
    user: UserId,
    id_token: Option<String>,
) -> Result<(), DomainError> {
    session.cycle_id().await.map_err(session_error)?;
    session.insert(USER_KEY, user.0).await.map_err(session_error)?;
    session.insert(SIGNED_IN_AT_KEY, now_ms(service)).await.map_err(session_error)?;
    if let Some(token) = id_token {
        session.insert(ID_TOKEN_KEY, token).await.map_err(session_error)?;
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct DemoSignIn {
    user_id: i64,
}

/// Demo sign-in: pick a person. Only when the server runs with `--demo` (which is refused on
/// anything but a loopback address).
pub async fn demo_sign_in(State(state): State<AuthState>, session: Session, Form(form): Form<DemoSignIn>) -> Response {
    if !state.demo {
        return (StatusCode::NOT_FOUND, "Demo sign-in is not enabled.").into_response();
    }
    match state.service.actor(UserId(form.user_id)).await {
        Ok(Some(actor)) => match sign_in(&session, &state.service, actor.id(), None).await {
            Ok(()) => {
                tracing::info!(user = actor.id().0, "demo sign-in");
                Redirect::to("/").into_response()
            }
            Err(e) => {
                failure_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed; please try again.", &format!("{e:?}"))
            }
        },
        Ok(None) => (StatusCode::BAD_REQUEST, "That person cannot sign in.").into_response(),
        Err(e) => {
            failure_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed; please try again.", &format!("{e:?}"))
        }
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

fn login_cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    // SameSite=Lax: the cookie must come back on the provider's top-level redirect.
    HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={value}; Path=/auth; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("qm_login=; Path=/auth; Max-Age=0"))
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Leave for the identity provider.
pub async fn oidc_login(State(state): State<AuthState>, Query(q): Query<LoginQuery>) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return failure_page(
            StatusCode::NOT_FOUND,
            "Sign-in with a company account is not configured on this server.",
            "no OIDC issuer configured",
        );
    };
    let return_to = oidc::safe_return_to(q.return_to.as_deref());
    match oidc.begin(state.service.db(), &return_to, now_ms(&state.service)).await {
        Ok((url, login_id)) => {
            let mut res = Redirect::to(&url).into_response();
            res.headers_mut()
                .append(header::SET_COOKIE, login_cookie(&login_id, oidc::LOGIN_TTL_MS / 1000, state.https));
            res
        }
        Err(e) => failure_page(StatusCode::BAD_GATEWAY, e.shown, &e.logged),
    }
}

/// Come back from the identity provider. Any failure ends on a clear page, logged, with no
/// session created.
pub async fn oidc_callback(
    State(state): State<AuthState>,
    session: Session,
    headers: HeaderMap,
    Query(params): Query<oidc::CallbackParams>,
) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return failure_page(
            StatusCode::NOT_FOUND,
            "Sign-in with a company account is not configured on this server.",
            "no OIDC issuer configured",
        );
    };
    let login_id = cookie_value(&headers, LOGIN_COOKIE);
    let now = now_ms(&state.service);
    let mut res = match oidc.complete(state.service.db(), login_id.as_deref(), &params, now).await {
        Err(e) => failure_page(StatusCode::BAD_REQUEST, e.shown, &e.logged),
        Ok(done) => match state.service.sign_in_from_provider(&done.identity, &state.admins).await {
            Ok(user) => match sign_in(&session, &state.service, user, Some(done.id_token)).await {
                Ok(()) => {
                    tracing::info!(user = user.0, issuer = %done.identity.issuer, "signed in");
                    Redirect::to(&done.return_to).into_response()
                }
                Err(e) => failure_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sign-in failed; please try again.",
                    &format!("{e:?}"),
                ),
            },
            Err(DomainError::Forbidden(why) | DomainError::Conflict(why)) => {
                failure_page(StatusCode::FORBIDDEN, "You cannot sign in to Quartermaster.", &why)
            }
            Err(DomainError::Invalid { message, .. }) => failure_page(
                StatusCode::BAD_REQUEST,
                "Your account is missing information Quartermaster needs.",
                &message,
            ),
            Err(e) => {
                failure_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed; please try again.", &format!("{e:?}"))
            }
        },
    };
    // The login cookie has done its job either way.
    res.headers_mut().append(header::SET_COOKIE, login_cookie("", 0, state.https));
    res
}

/// Sign out: the server-side session is deleted (not just the cookie), and the provider's
/// session is ended too where it supports RP-initiated logout.
pub async fn sign_out(State(state): State<AuthState>, session: Session) -> Response {
    let id_token: Option<String> = session.get(ID_TOKEN_KEY).await.ok().flatten();
    if let Err(e) = session.flush().await {
        tracing::error!(error = %e, "sign-out failed");
    }
    if let (Some(oidc), Some(token)) = (state.oidc.as_ref(), id_token) {
        if let Some(url) = oidc.logout_url(Some(&token)).await {
            return Redirect::to(&url).into_response();
        }
    }
    Redirect::to("/signin").into_response()
}

/// A small page that says what went wrong and where to go; the detail goes to the log only.
fn failure_page(status: StatusCode, shown: &str, logged: &str) -> Response {
    tracing::warn!(status = status.as_u16(), detail = %logged, "sign-in refused");
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign-in problem · Quartermaster</title><link rel=\"stylesheet\" href=\"/pkg/quartermaster.css\"></head>\
         <body><main class=\"main\"><section class=\"error-page\" role=\"alert\"><p class=\"error-code\">{}</p>\
         <h1>Sign-in did not work</h1><p>{}</p><p><a class=\"btn\" href=\"/signin\">Back to sign-in</a></p></section></main></body></html>",
        status.as_u16(),
        html_escape(shown)
    );
    (status, Html(body)).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
