//! Provisioning targets outside Quartermaster: the calls the delivery worker makes to add a
//! person to a group in a target system and take them out again, each idempotent ("ensure
//! member", "ensure not member"), and the encryption of the secrets they need at rest.
//! Only SCIM 2.0 so far; LDAP and webhooks follow (issue 12).
//!
//! A call that fails says what to do about it ([`CallError`]): try this entry again later,
//! leave the whole system alone for a while (it is unreachable, or asked us to slow down), or
//! give up at once (the target refused the call itself, and asking again will not change its
//! mind).

pub mod scim;
pub mod secret;

use std::sync::OnceLock;
use std::time::Duration;

/// Why a call to a target did not succeed, and so what the delivery worker does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The target as a whole cannot take calls now: unreachable, timed out, or it answered
    /// 429 or 503. Its other work waits too, until `after` (the target's `Retry-After`) or the
    /// entry's backoff.
    Unavailable { message: String, after: Option<Duration> },
    /// This call failed in a way that may pass (a 5xx, a 408, our own database or settings):
    /// retried with backoff.
    Transient(String),
    /// The target refused the call itself (a 4xx: a bad token, an unknown group, a rejected
    /// value): given up at once, for an administrator to fix and retry.
    Permanent(String),
}

impl CallError {
    /// What is recorded on the entry and shown to administrators.
    pub fn message(&self) -> &str {
        match self {
            CallError::Unavailable { message, .. } | CallError::Transient(message) | CallError::Permanent(message) => {
                message
            }
        }
    }

    /// How a refusal with this status is treated (a success status is no error).
    pub fn from_status(status: reqwest::StatusCode, message: String, after: Option<Duration>) -> Self {
        use reqwest::StatusCode as S;
        match status {
            S::TOO_MANY_REQUESTS | S::SERVICE_UNAVAILABLE => CallError::Unavailable { message, after },
            S::REQUEST_TIMEOUT | S::TOO_EARLY => CallError::Transient(message),
            s if s.is_client_error() => CallError::Permanent(message),
            _ => CallError::Transient(message),
        }
    }
}

impl From<String> for CallError {
    fn from(message: String) -> Self {
        CallError::Transient(message)
    }
}

impl From<&str> for CallError {
    fn from(message: &str) -> Self {
        CallError::Transient(message.to_owned())
    }
}

/// The longest wait a target's `Retry-After` may impose (a larger one is cut to this).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A `Retry-After` header (RFC 9110 §10.2.3): seconds, or an HTTP date (read against `now`,
/// this machine's time); capped at [`MAX_RETRY_AFTER`]. None when absent or unreadable.
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&chrono::Utc);
            (at - now).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Every outbound call gives up after this long.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The one HTTP client of this process for targets: a timeout on every call, no redirects
/// followed (a target that redirects is misconfigured, and following would send the bearer
/// token elsewhere), rustls.
pub fn http() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .connect_timeout(CALL_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("the HTTP client could not be built: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        let with = |v: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::RETRY_AFTER, v.parse().unwrap());
            retry_after(&h, now)
        };
        assert_eq!(with("120"), Some(Duration::from_secs(120)));
        assert_eq!(with("Mon, 30 Nov 2026 12:01:30 GMT"), Some(Duration::from_secs(90)));
        assert_eq!(with("Mon, 30 Nov 2026 11:00:00 GMT"), Some(Duration::ZERO), "a date past is now");
        assert_eq!(with("999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(with("soon"), None);
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new(), now), None);
    }

    #[test]
    fn statuses_say_what_to_do() {
        use reqwest::StatusCode as S;
        let of = |s| CallError::from_status(s, String::new(), None);
        assert!(matches!(of(S::TOO_MANY_REQUESTS), CallError::Unavailable { .. }));
        assert!(matches!(of(S::SERVICE_UNAVAILABLE), CallError::Unavailable { .. }));
        assert!(matches!(of(S::INTERNAL_SERVER_ERROR), CallError::Transient(_)));
        assert!(matches!(of(S::REQUEST_TIMEOUT), CallError::Transient(_)));
        assert!(matches!(of(S::NOT_FOUND), CallError::Permanent(_)));
        assert!(matches!(of(S::UNAUTHORIZED), CallError::Permanent(_)));
    }
}
