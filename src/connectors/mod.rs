//! Provisioning targets outside Quartermaster: the calls the delivery worker makes to add a
//! person to a group in a target system and take them out again, each idempotent ("ensure
//! member", "ensure not member"), and the encryption of the secrets they need at rest.
//! Only SCIM 2.0 so far; LDAP and webhooks follow (issue 12).

pub mod scim;
pub mod secret;

use std::sync::OnceLock;
use std::time::Duration;

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
