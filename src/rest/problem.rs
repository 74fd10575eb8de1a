//! Errors as RFC 9457 problem details (`application/problem+json`), one stable `type` per
//! kind of error, with the HTTP status that kind means.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::DomainError;

/// A problem: what went wrong, for a program (`type`, `status`) and for a person (`title`,
/// `detail`, and the input `field` it is about).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable for each kind: `urn:quartermaster:problem:not-found`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The input field the problem is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:quartermaster:problem:{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Not signed in", detail)
    }

    pub fn invalid(field: Option<&str>, detail: impl Into<String>) -> Self {
        let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "Invalid input", detail);
        p.field = field.map(str::to_owned);
        p
    }

    /// The response for a request the API cannot read (a malformed body or query).
    pub fn unreadable(status: StatusCode, detail: impl Into<String>) -> Self {
        if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            Problem::new(status, "unsupported-media-type", "Send JSON", detail)
        } else {
            Problem::invalid(None, detail)
        }
    }
}

impl From<DomainError> for Problem {
    fn from(e: DomainError) -> Self {
        let message = e.to_string();
        match e {
            DomainError::Unauthenticated => Problem::unauthenticated("send an API token: Authorization: Bearer qm_…"),
            DomainError::Forbidden(_) => Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", message),
            DomainError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", message),
            DomainError::Invalid { field, message } => Problem::invalid(field.as_deref(), message),
            DomainError::Conflict(_) => Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", message),
            DomainError::Stale(_) => {
                Problem::new(StatusCode::PRECONDITION_FAILED, "stale", "Changed since it was read", message)
            }
            DomainError::AlreadyDecided(_) => {
                Problem::new(StatusCode::CONFLICT, "already-decided", "Already decided", message)
            }
            DomainError::Internal(detail) => {
                tracing::error!(%detail, "internal error answering an API call");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", message)
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let unauthenticated = status == StatusCode::UNAUTHORIZED;
        let mut res = (status, axum::Json(self)).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if unauthenticated {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"quartermaster\""));
        }
        res
    }
}
