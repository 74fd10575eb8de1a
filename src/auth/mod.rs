//! Who is calling: the session holds the signed-in user's id; every request re-reads the user,
//! so a disabled user's session stops working at their next request.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use axum::http::StatusCode;
use serde::Deserialize;
use tower_sessions::Session;

use crate::domain::authz::Actor;
use crate::domain::ids::UserId;
use crate::domain::DomainError;
use crate::server::AppState;
use crate::service::Service;

const USER_KEY: &str = "user_id";

/// The signed-in actor of this session, if any.
pub async fn session_actor(session: &Session, service: &Service) -> Result<Option<Actor>, DomainError> {
    let id: Option<i64> = session
        .get(USER_KEY)
        .await
        .map_err(|e| DomainError::Internal(format!("session: {e}")))?;
    let Some(id) = id else { return Ok(None) };
    let actor = service.actor(UserId(id)).await?;
    if actor.is_none() {
        // Unknown or disabled now: end the session.
        let _ = session.flush().await;
    }
    Ok(actor)
}

/// Start a session for this user: a fresh session id (no fixation), then the user id.
pub async fn sign_in(session: &Session, user: UserId) -> Result<(), DomainError> {
    session.cycle_id().await.map_err(|e| DomainError::Internal(format!("session: {e}")))?;
    session.insert(USER_KEY, user.0).await.map_err(|e| DomainError::Internal(format!("session: {e}")))?;
    Ok(())
}

#[derive(Deserialize)]
pub struct DemoSignIn {
    user_id: i64,
}

/// Demo sign-in: pick a person. Only routed to a user when the server runs with `--demo`
/// (which is refused on anything but a loopback address).
pub async fn demo_sign_in(State(state): State<AppState>, session: Session, Form(form): Form<DemoSignIn>) -> Response {
    if !state.demo {
        return (StatusCode::NOT_FOUND, "Demo sign-in is not enabled.").into_response();
    }
    match state.service.actor(UserId(form.user_id)).await {
        Ok(Some(actor)) => match sign_in(&session, actor.id()).await {
            Ok(()) => {
                tracing::info!(user = actor.id().0, "demo sign-in");
                Redirect::to("/").into_response()
            }
            Err(e) => {
                tracing::error!(error = ?e, "demo sign-in failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed; please try again.").into_response()
            }
        },
        Ok(None) => (StatusCode::BAD_REQUEST, "That person cannot sign in.").into_response(),
        Err(e) => {
            tracing::error!(error = ?e, "demo sign-in failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed; please try again.").into_response()
        }
    }
}

/// Sign out: the server-side session is deleted, not just the cookie.
pub async fn sign_out(session: Session) -> Response {
    if let Err(e) = session.flush().await {
        tracing::error!(error = %e, "sign-out failed");
    }
    Redirect::to("/signin").into_response()
}
