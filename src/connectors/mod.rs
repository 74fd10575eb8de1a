//! Provisioning targets outside Quartermaster: the calls the delivery worker makes to add a
//! person to a group in a target system and take them out again, each idempotent ("ensure
//! member", "ensure not member"), and the encryption of the secrets they need at rest.
//! SCIM 2.0 groups, LDAP groups, and webhook receivers.
//!
//! A call that fails says what to do about it ([`CallError`]): try this entry again later,
//! leave the whole system alone for a while (it is unreachable, or asked us to slow down), or
//! give up at once (the target refused the call itself, and asking again will not change its
//! mind).

pub mod ldap;
pub mod scim;
pub mod secret;
pub mod webhook;

use std::sync::OnceLock;
use std::time::Duration;

/// Why a call to a target did not succeed, and so what the delivery worker does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The target as a whole cannot take calls now: unreachable, timed out, it answered 429
    /// or 503, or it refused our credentials (401, 403). Its other work waits too, on every
    /// instance, until `after` (the target's `Retry-After`) or a backoff of at most a
    /// minute; the entry spends no attempt.
    Unavailable { message: String, after: Option<Duration> },
    /// This call failed in a way that may pass (a 5xx, a 408, our own database or settings):
    /// retried with backoff.
    Transient(String),
    /// The target refused the call itself (another 4xx: an unknown group, a rejected value;
    /// or a redirect): given up at once, for an administrator to fix and retry.
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
            // The token was refused (expired, revoked): no call to the system can succeed
            // until an administrator gives a new one, so its work waits rather than failing
            // entry by entry.
            S::UNAUTHORIZED | S::FORBIDDEN => CallError::Unavailable { message, after: None },
            // Redirects are not followed: the address is wrong, and asking again will not help.
            s if s.is_redirection() => CallError::Permanent(message),
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
/// the service's clock); capped at [`MAX_RETRY_AFTER`]. None when absent or unreadable.
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

/// What a target said when it refused a call (`response` is not a success): the status and
/// the start of the body (read up to 2 KiB), `secret` blanked out should a gateway echo it,
/// classified by the status, with the target's `Retry-After`.
pub async fn refusal(
    mut response: reqwest::Response,
    target: &str,
    secret: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> CallError {
    let status = response.status();
    let after = retry_after(response.headers(), now);
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= 2048 {
            break;
        }
    }
    let mut text = String::from_utf8_lossy(&body).into_owned();
    if !secret.is_empty() {
        text = text.replace(secret, "(secret)");
    }
    let text: String = text.chars().take(300).collect();
    CallError::from_status(status, format!("{target} answered {status}: {text}"), after)
}

/// A target's address an administrator may give: http or https, a host, no credentials, no
/// query or fragment; plain http only to this machine (a secret goes with every call).
pub fn checked_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text.trim()).map_err(|_| "not a URL".to_owned())?;
    let loopback = match url.host() {
        Some(host) => is_loopback(&host),
        None => return Err("it must be https://host/…".into()),
    };
    if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
        return Err("it must be https:// (plain http only to this machine)".into());
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err("it takes no credentials, query or fragment (the secret is given apart)".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Is this URL host this machine? (A scheme the URL standard does not know, such as
/// `ldap`, leaves its host a name: an address written there is read here.)
pub fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => {
            d.eq_ignore_ascii_case("localhost")
                || d.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// One group of a connected system, as an import lists it: its id there (a SCIM id, an LDAP
/// DN) and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetGroup {
    pub id: String,
    pub name: String,
}

/// A connected system's settings with its secret opened: what every call to it needs.
pub enum Opened {
    Scim(scim::ScimConfig, String),
    Ldap(ldap::LdapConfig, String),
    Webhook(webhook::WebhookConfig, String),
}

impl Opened {
    /// The system's settings read and its sealed secret opened with the operator's key (for
    /// the address it was sealed for); why not, when it cannot be.
    pub fn open(
        kind: crate::domain::model::ResourceSystemKind,
        config: &str,
        sealed: &str,
        key: Option<&secret::SecretKey>,
    ) -> Result<Self, String> {
        use crate::domain::model::ResourceSystemKind as K;
        let key = || key.ok_or("QM_SECRET_KEY is not set: the connector's secret cannot be read".to_owned());
        Ok(match kind {
            K::Scim => {
                let config: scim::ScimConfig = serde_json::from_str(config)
                    .map_err(|_| "the SCIM system is not configured (no base URL)".to_owned())?;
                let token = key()?.open(sealed, &config.seal_context())?;
                Opened::Scim(config, token)
            }
            K::Ldap => {
                let config: ldap::LdapConfig = serde_json::from_str(config)
                    .map_err(|_| "the LDAP system is not configured (no URL)".to_owned())?;
                let password = key()?.open(sealed, &config.seal_context())?;
                Opened::Ldap(config, password)
            }
            K::Webhook => {
                let config: webhook::WebhookConfig = serde_json::from_str(config)
                    .map_err(|_| "the webhook system is not configured (no URL)".to_owned())?;
                let secret = key()?.open(sealed, &config.seal_context())?;
                Opened::Webhook(config, secret)
            }
            K::Builtin => return Err("the built-in system has no connector".to_owned()),
        })
    }
}

/// How many calls this instance makes to a connected system at once, from its settings.
pub fn in_flight(kind: crate::domain::model::ResourceSystemKind, config: &str) -> usize {
    use crate::domain::model::ResourceSystemKind as K;
    let set = match kind {
        K::Scim => serde_json::from_str::<scim::ScimConfig>(config).ok().and_then(|c| c.max_in_flight),
        K::Webhook => serde_json::from_str::<webhook::WebhookConfig>(config).ok().and_then(|c| c.max_in_flight),
        K::Ldap => serde_json::from_str::<ldap::LdapConfig>(config).ok().and_then(|c| c.max_in_flight),
        _ => None,
    };
    usize::from(set.unwrap_or(DEFAULT_IN_FLIGHT).clamp(1, MAX_IN_FLIGHT))
}

/// Calls at once to a target whose settings do not say.
pub const DEFAULT_IN_FLIGHT: u16 = 4;
/// The most calls at once an administrator may allow one target.
pub const MAX_IN_FLIGHT: u16 = 32;

/// A transport error without its URL (which the logs and the failed-work list do not need).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection refused or failed"
    } else {
        "request failed"
    };
    kind.to_owned()
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
        assert!(matches!(of(S::UNAUTHORIZED), CallError::Unavailable { after: None, .. }));
        assert!(matches!(of(S::UNPROCESSABLE_ENTITY), CallError::Permanent(_)));
        assert!(matches!(of(S::FOUND), CallError::Permanent(_)));
    }
}
