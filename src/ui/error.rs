//! The error every server function returns: what a person can act on, nothing internal.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("Please sign in.")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("Not found: {0}.")]
    NotFound(String),
    #[error("{message}")]
    Invalid { field: Option<String>, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("Already decided: {0}.")]
    AlreadyDecided(String),
    #[error("Something went wrong on our side. It has been logged; please try again.")]
    Internal,
    #[error("The server could not be reached ({0}).")]
    Transport(String),
}

impl AppError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Unauthenticated => 401,
            AppError::Forbidden(_) => 403,
            AppError::NotFound(_) => 404,
            AppError::Invalid { .. } => 422,
            AppError::Conflict(_) | AppError::AlreadyDecided(_) => 409,
            AppError::Internal => 500,
            AppError::Transport(_) => 502,
        }
    }

    /// Set the response status for this error (server side). A plain HTML form post keeps its
    /// redirect back to the page, which shows the outcome instead.
    #[cfg(feature = "ssr")]
    pub fn set_response_status(&self) {
        use leptos::prelude::use_context;
        let plain_form = use_context::<http::request::Parts>()
            .and_then(|p| {
                p.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok().map(|s| s.contains("text/html")))
            })
            .unwrap_or(false);
        if plain_form {
            return;
        }
        if let (Some(res), Ok(code)) =
            (use_context::<leptos_axum::ResponseOptions>(), http::StatusCode::from_u16(self.status()))
        {
            res.set_status(code);
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            AppError::Invalid { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let err = match value {
            // Bad input from the caller: say so, change nothing.
            ServerFnErrorErr::Args(e) | ServerFnErrorErr::MissingArg(e) | ServerFnErrorErr::Deserialization(e) => {
                AppError::Invalid { field: None, message: format!("the request is incomplete or malformed: {e}") }
            }
            other => AppError::Transport(other.to_string()),
        };
        #[cfg(feature = "ssr")]
        err.set_response_status();
        err
    }
}

#[cfg(feature = "ssr")]
impl From<crate::domain::DomainError> for AppError {
    fn from(err: crate::domain::DomainError) -> Self {
        use crate::domain::DomainError as D;
        let app = match err {
            D::Unauthenticated => AppError::Unauthenticated,
            D::Forbidden(why) => AppError::Forbidden(why),
            D::NotFound(what) => AppError::NotFound(what),
            D::Invalid { field, message } => AppError::Invalid { field, message },
            D::Conflict(why) => AppError::Conflict(why),
            D::AlreadyDecided(why) => AppError::AlreadyDecided(why),
            D::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                AppError::Internal
            }
        };
        app.set_response_status();
        app
    }
}
