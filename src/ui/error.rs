//! The error every server function returns: what a person can act on, nothing internal.

use serde::{Deserialize, Serialize};
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};

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
        AppError::Transport(value.to_string())
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
            D::Conflict(why) => AppError::Conflict(why),
            D::AlreadyDecided(why) => AppError::AlreadyDecided(why),
            D::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                AppError::Internal
            }
        }
    }
}
