//! The error every server function returns: what a person can act on, nothing internal.
//!
//! Converting to it never touches the response. Its HTTP status comes from one table,
//! [`AppError::status`], applied once at the boundary: to a server function's error answer by
//! the server (`server.rs`), and to a page by the page that shows the error (`ErrorPanel`).

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
    /// The HTTP status this error answers with: the one table for server functions and pages.
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
        match value {
            // Bad input from the caller: say so, change nothing.
            ServerFnErrorErr::Args(e) | ServerFnErrorErr::MissingArg(e) | ServerFnErrorErr::Deserialization(e) => {
                AppError::Invalid { field: None, message: format!("the request is incomplete or malformed: {e}") }
            }
            other => AppError::Transport(other.to_string()),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<crate::domain::DomainError> for AppError {
    fn from(err: crate::domain::DomainError) -> Self {
        use crate::domain::DomainError as D;
        match err {
            D::Unauthenticated => AppError::Unauthenticated,
            D::Forbidden(why) => AppError::Forbidden(why),
            D::NotFound(what) => AppError::NotFound(what),
            D::Invalid { field, message } => AppError::Invalid { field, message },
            D::Conflict(why) | D::Stale(why) => AppError::Conflict(why),
            D::AlreadyDecided(why) => AppError::AlreadyDecided(why),
            D::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                AppError::Internal
            }
        }
    }
}
