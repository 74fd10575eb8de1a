//! A webhook target: access given and taken back is told to a URL the customer runs, as a
//! signed JSON POST (like Entra's custom extensions). A 2xx answer means done; anything else
//! is retried (or failed) like any target's answer.
//!
//! Each call carries (the scheme of the Standard Webhooks specification, with the shared
//! secret's UTF-8 bytes as the key):
//! - `webhook-id`: the idempotency key, the same on every retry of one change
//!   (`qm-outbox-{id}`): a receiver that saw it already answers 2xx and does nothing;
//! - `webhook-timestamp`: seconds since the Unix epoch when the call was made;
//! - `webhook-signature`: `v1,` and the base64 of HMAC-SHA256 over
//!   `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the secret.
//!
//! `docs/webhooks.md` has the receiver's recipe.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::CallError;

/// Where a webhook system is reached (its `config`; the secret is kept sealed apart).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookConfig {
    pub url: String,
    /// Calls this instance makes to the receiver at once (1–32; 4 when not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u16>,
    /// Also tell it the lifecycle of requests for packages that grant one of its roles
    /// (created, approved, delivered, removed).
    #[serde(default)]
    pub lifecycle_events: bool,
}

impl WebhookConfig {
    /// A URL an administrator may give: see [`super::checked_url`].
    pub fn checked(url: &str) -> Result<Self, String> {
        let url = super::checked_url(url).map_err(|e| format!("the URL: {e}"))?;
        Ok(WebhookConfig { url, max_in_flight: None, lifecycle_events: false })
    }

    /// What the system's secret is sealed for: it opens only for the URL it was given for.
    pub fn seal_context(&self) -> String {
        format!("webhook {}", self.url)
    }
}

/// The signature of one call: `v1,` and base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")).
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// One webhook target with its secret.
pub struct Webhook<'a> {
    pub config: &'a WebhookConfig,
    pub secret: &'a str,
    /// The time of the call (its timestamp).
    pub now: chrono::DateTime<chrono::Utc>,
}

impl Webhook<'_> {
    /// POST the event, signed; done on a 2xx answer.
    pub async fn send(&self, id: &str, event: &serde_json::Value) -> Result<(), CallError> {
        let body = serde_json::to_vec(event).map_err(|e| format!("webhook: the event could not be written: {e}"))?;
        let timestamp = self.now.timestamp();
        let response = super::http()?
            .post(&self.config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature(self.secret, id, timestamp, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| CallError::Unavailable {
                message: format!("webhook receiver unreachable: {}", super::without_url(&e)),
                after: None,
            })?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(super::refusal(response, "webhook receiver", self.secret, self.now).await)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_signature_is_the_documented_recipe() {
        // Computed apart, with Python's standard library (docs/webhooks.md):
        // base64.b64encode(hmac.new(b"s3cret-s3cret-s3cret", b'qm-outbox-7.1764500000.{"a":1}',
        //                           hashlib.sha256).digest())
        assert_eq!(
            signature("s3cret-s3cret-s3cret", "qm-outbox-7", 1_764_500_000, br#"{"a":1}"#),
            "v1,qQegwWWQgodizlpEIN/QIRFkew+h83RNm5NFhhPk9Sc="
        );
        assert!(WebhookConfig::checked("http://hooks.example/x").is_err(), "the secret's signatures in clear");
        assert_eq!(WebhookConfig::checked("https://hooks.example/qm/").unwrap().url, "https://hooks.example/qm");
    }
}
