//! The one error type of the domain. Each variant says why, in words a person can act on.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// No signed-in user.
    #[error("please sign in")]
    Unauthenticated,
    /// Signed in, but this user may not do this to this object.
    #[error("{0}")]
    Forbidden(String),
    /// The object does not exist (or the caller may not know it exists).
    #[error("{0} not found")]
    NotFound(String),
    /// Bad input; `field` names the form field when there is one.
    #[error("{message}")]
    Invalid { field: Option<String>, message: String },
    /// The request conflicts with the current state: already assigned, already pending,
    /// separation of duties, a stale version.
    #[error("{0}")]
    Conflict(String),
    /// The object is no longer at the version the caller read: someone changed it since. The
    /// REST API answers 412 (its `If-Match` failed); the pages, a conflict.
    #[error("{0}")]
    Stale(String),
    /// Someone else decided first (or the request ended) — the loser of a race.
    #[error("already decided: {0}")]
    AlreadyDecided(String),
    /// A fault on our side. The detail is logged, never shown.
    #[error("something went wrong on our side")]
    Internal(String),
}

impl DomainError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        DomainError::Invalid { field: Some(field.to_owned()), message: message.into() }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        DomainError::NotFound(what.into())
    }

    pub fn forbidden(why: impl Into<String>) -> Self {
        DomainError::Forbidden(why.into())
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
