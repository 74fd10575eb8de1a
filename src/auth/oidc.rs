//! The OpenID Connect relying party: discovery, authorization code flow with PKCE (S256),
//! `state` and `nonce` bound to a short-lived login cookie, ID token validation (issuer,
//! audience, signature with asymmetric algorithms only, expiry, issue time, nonce), the RFC 9207
//! `iss` parameter, userinfo (its `sub` checked), and RP-initiated logout.
//!
//! The provider's metadata and keys are kept for [`METADATA_MAX_AGE`] and discovered again
//! after that; an ID token signed by a key we do not know makes us discover again at once (at
//! most every [`KEY_REFRESH_MIN_INTERVAL`]), so a provider can rotate its signing key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{CoreClient, CoreIdToken, CoreIdTokenClaims, CoreJwsSigningAlgorithm, CoreResponseType};
use openidconnect::{
    reqwest, AccessToken, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope,
    SignatureVerificationError, SubjectIdentifier, TokenResponse,
};
use tokio::sync::{Mutex, RwLock};

use crate::service::directory::ProviderIdentity;
use crate::store::{logins, Db};

/// How long a sign-in may take between leaving for the provider and coming back.
pub const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;

/// How long the provider's metadata and keys are kept before they are discovered again (keys
/// are rotated on a schedule; a removed key must stop being trusted).
pub const METADATA_MAX_AGE: Duration = Duration::from_secs(60 * 60);

/// An ID token signed by a key we do not know makes us discover again, but at most this often,
/// so that tokens with made-up key ids cannot make us hammer the provider.
pub const KEY_REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// How far ahead of our clock an ID token's `iat` may be (clock skew between us and the provider).
pub const MAX_ISSUED_AHEAD_MS: i64 = 5 * 60 * 1000;

/// The only ID token signature algorithms accepted: asymmetric ones. Without this list the
/// verifier takes the algorithms the provider advertises (`id_token_signing_alg_values_supported`,
/// which may include `HS256`: a token "signed" with the client secret, which is no proof that
/// the provider issued it); openidconnect's own default, without metadata, is RS256 only.
const ID_TOKEN_ALGS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// The client built from the provider's metadata (authorization endpoint set, token and
/// userinfo endpoints as discovered).
type ProviderClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// Which claims carry what (providers differ).
#[derive(Clone, Debug)]
pub struct ClaimNames {
    pub email: String,
    pub name: String,
    pub groups: String,
    pub department: String,
    pub job_title: String,
    pub manager: String,
}

#[derive(Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// The exact redirect URI registered at the provider: `{public url}/auth/callback`.
    pub redirect_uri: String,
    /// Where the provider sends people after signing out: `{public url}/signin`.
    pub post_logout_redirect_uri: String,
    pub scopes: Vec<String>,
    pub claims: ClaimNames,
    /// "Sign in with …" on the sign-in page.
    pub display_name: String,
}

/// `Debug` never prints the client secret.
impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("redirect_uri", &self.redirect_uri)
            .field("post_logout_redirect_uri", &self.post_logout_redirect_uri)
            .field("scopes", &self.scopes)
            .field("claims", &self.claims)
            .field("display_name", &self.display_name)
            .finish()
    }
}

/// A sign-in that did not work, with what to tell the person and what to log.
#[derive(Debug)]
pub struct OidcError {
    pub shown: &'static str,
    pub logged: String,
}

impl OidcError {
    fn new(shown: &'static str, logged: impl Into<String>) -> Self {
        Self { shown, logged: logged.into() }
    }
}

pub struct Oidc {
    config: OidcConfig,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    http: reqwest::Client,
    metadata: RwLock<Option<Discovered>>,
    /// Held while discovering, so that concurrent sign-ins discover once.
    discovering: Mutex<()>,
    /// When an unknown signing key last made us discover again.
    last_key_refresh: Mutex<Option<Instant>>,
}

/// The provider's metadata (with its keys) and when it was fetched.
#[derive(Clone)]
struct Discovered {
    metadata: Arc<ProviderMetadataWithLogout>,
    at: Instant,
}

impl Discovered {
    fn is_fresh(&self, now: Instant) -> bool {
        metadata_is_fresh(self.at, now)
    }
}

fn metadata_is_fresh(fetched: Instant, now: Instant) -> bool {
    now.saturating_duration_since(fetched) < METADATA_MAX_AGE
}

/// Whether an unknown-key refresh may happen now, given when the last one happened.
fn key_refresh_allowed(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|at| now.saturating_duration_since(at) >= KEY_REFRESH_MIN_INTERVAL)
}

/// Verification failed in a way fresh keys could fix: no key with the token's `kid`, or the
/// key under that id no longer matches (the provider replaced it).
fn may_be_fixed_by_new_keys(e: &ClaimsVerificationError) -> bool {
    matches!(
        e,
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey
                | SignatureVerificationError::CryptoError(_)
                | SignatureVerificationError::InvalidKey(_)
                | SignatureVerificationError::AmbiguousKeyId(_)
        )
    )
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the client secret.
        f.debug_struct("Oidc").field("issuer", &self.config.issuer).field("client_id", &self.config.client_id).finish()
    }
}

/// The callback's query.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A completed sign-in.
pub struct SignedIn {
    pub identity: ProviderIdentity,
    pub id_token: String,
    pub return_to: String,
}

fn random_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Oidc {
    pub fn new(config: OidcConfig) -> Result<Self, String> {
        let issuer = IssuerUrl::new(config.issuer.clone()).map_err(|e| format!("OIDC issuer URL: {e}"))?;
        let redirect = RedirectUrl::new(config.redirect_uri.clone()).map_err(|e| format!("OIDC redirect URI: {e}"))?;
        let http = reqwest::ClientBuilder::new()
            // Following redirects from the provider's endpoints invites SSRF.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            config,
            issuer,
            redirect,
            http,
            metadata: RwLock::new(None),
            discovering: Mutex::new(()),
            last_key_refresh: Mutex::new(None),
        })
    }

    pub fn display_name(&self) -> &str {
        &self.config.display_name
    }

    /// The provider's metadata with its keys: discovered, kept for [`METADATA_MAX_AGE`], then
    /// discovered again; a failed discovery is retried at the next call.
    async fn metadata(&self) -> Result<Arc<ProviderMetadataWithLogout>, OidcError> {
        if let Some(d) = self.metadata.read().await.as_ref().filter(|d| d.is_fresh(Instant::now())) {
            return Ok(d.metadata.clone());
        }
        let _discovering = self.discovering.lock().await;
        // Someone else may have discovered while we waited.
        if let Some(d) = self.metadata.read().await.as_ref().filter(|d| d.is_fresh(Instant::now())) {
            return Ok(d.metadata.clone());
        }
        self.discover().await
    }

    /// Discover now and keep the result (callers hold `discovering`).
    async fn discover(&self) -> Result<Arc<ProviderMetadataWithLogout>, OidcError> {
        let discovered =
            ProviderMetadataWithLogout::discover_async(self.issuer.clone(), &self.http).await.map_err(|e| {
                OidcError::new(
                    "The identity provider cannot be reached right now. Please try again shortly.",
                    format!("discovery failed: {e}"),
                )
            })?;
        let discovered = Arc::new(discovered);
        *self.metadata.write().await = Some(Discovered { metadata: discovered.clone(), at: Instant::now() });
        Ok(discovered)
    }

    /// The provider's keys did not verify an ID token: discover again (new keys), unless that
    /// was done less than [`KEY_REFRESH_MIN_INTERVAL`] ago. `seen` is the metadata the token
    /// failed with; when another sign-in has replaced it meanwhile, that copy is used. `None`:
    /// nothing new to try.
    async fn refresh_keys(&self, seen: &Arc<ProviderMetadataWithLogout>) -> Option<Arc<ProviderMetadataWithLogout>> {
        let _discovering = self.discovering.lock().await;
        if let Some(d) = self.metadata.read().await.as_ref() {
            if !Arc::ptr_eq(&d.metadata, seen) {
                return Some(d.metadata.clone());
            }
        }
        {
            let mut last = self.last_key_refresh.lock().await;
            let now = Instant::now();
            if !key_refresh_allowed(*last, now) {
                tracing::warn!("an ID token's signing key is unknown; keys were refreshed less than a minute ago");
                return None;
            }
            *last = Some(now);
        }
        tracing::info!("an ID token's signing key is unknown; discovering the provider's keys again");
        match self.discover().await {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %crate::auth::sanitize_for_log(&e.logged), "key refresh failed");
                None
            }
        }
    }

    fn client(&self, metadata: &ProviderMetadataWithLogout) -> ProviderClient {
        CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// Verify the ID token with the keys in `metadata`: asymmetric algorithms only, expiry on
    /// our clock (`now_ms`), `iat` not more than [`MAX_ISSUED_AHEAD_MS`] ahead of it, the nonce.
    fn verify_id_token(
        &self,
        metadata: &ProviderMetadataWithLogout,
        id_token: &CoreIdToken,
        nonce: &Nonce,
        now_ms: i64,
    ) -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
        let client = self.client(metadata);
        let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_else(chrono::Utc::now);
        let latest_iat = now + chrono::Duration::milliseconds(MAX_ISSUED_AHEAD_MS);
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs(ID_TOKEN_ALGS)
            .set_time_fn(move || now)
            .set_issue_time_verifier_fn(move |iat| {
                if iat > latest_iat {
                    Err(format!("issued at {iat}, in the future (now is {now})"))
                } else {
                    Ok(())
                }
            });
        id_token.claims(&verifier, nonce).cloned()
    }

    /// Start a sign-in: store state, nonce and PKCE verifier under a fresh login id (the value
    /// of the login cookie) and return where to send the browser.
    pub async fn begin(&self, db: &Db, return_to: &str, now_ms: i64) -> Result<(String, String), OidcError> {
        let metadata = self.metadata().await?;
        let client = self.client(&metadata);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.config.scopes.iter().filter(|s| s.as_str() != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        let login_id = random_id();
        let _turn = db.write_turn().await.map_err(sign_in_failed)?;
        let mut conn = db.pool().acquire().await.map_err(sign_in_failed)?;
        let _ = logins::purge(&mut conn, now_ms - LOGIN_TTL_MS).await;
        logins::insert(
            &mut conn,
            &login_id,
            &logins::LoginState {
                csrf_state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                return_to: crate::auth::same_origin_path(Some(return_to), None),
                created_at: now_ms,
            },
        )
        .await
        .map_err(sign_in_failed)?;
        Ok((url.to_string(), login_id))
    }

    /// Finish a sign-in from the callback. The login state is taken (so a replayed callback
    /// fails), `state` and `iss` are checked, the code is exchanged with the PKCE verifier, the
    /// ID token is validated, and userinfo fills in what the token lacks.
    pub async fn complete(
        &self,
        db: &Db,
        login_id: Option<&str>,
        params: &CallbackParams,
        now_ms: i64,
    ) -> Result<SignedIn, OidcError> {
        const RESTART: &str = "This sign-in link is no longer valid. Please sign in again.";
        if let Some(error) = &params.error {
            return Err(OidcError::new(
                "The identity provider did not sign you in.",
                format!("provider error {error}: {}", params.error_description.clone().unwrap_or_default()),
            ));
        }
        let login_id = login_id.ok_or_else(|| OidcError::new(RESTART, "callback without a login cookie"))?;
        let stored = {
            let _turn = db.write_turn().await.map_err(sign_in_failed)?;
            let mut conn = db.pool().acquire().await.map_err(sign_in_failed)?;
            logins::take(&mut conn, login_id)
                .await
                .map_err(sign_in_failed)?
                .ok_or_else(|| OidcError::new(RESTART, "unknown or already used login state"))?
        };
        if now_ms - stored.created_at > LOGIN_TTL_MS {
            return Err(OidcError::new(RESTART, "login state expired"));
        }
        let state = params.state.as_deref().unwrap_or("");
        if !constant_time_eq(state.as_bytes(), stored.csrf_state.as_bytes()) {
            return Err(OidcError::new(RESTART, "state mismatch (tampered or from another sign-in)"));
        }
        let metadata = self.metadata().await?;
        // RFC 9207: when the provider names itself in the callback, it must be ours.
        if let Some(iss) = &params.iss {
            if iss != metadata.issuer().as_str() {
                return Err(OidcError::new(
                    "The sign-in came back from an unexpected identity provider.",
                    format!("callback iss {iss} is not {}", metadata.issuer().as_str()),
                ));
            }
        }
        let code = params.code.clone().ok_or_else(|| OidcError::new(RESTART, "callback without a code"))?;
        let client = self.client(&metadata);
        let token = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::new("Sign-in failed; please try again.", format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(stored.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| {
                OidcError::new(
                    "The identity provider refused the sign-in. Please sign in again.",
                    format!("code exchange failed: {e}"),
                )
            })?;
        let id_token = token
            .id_token()
            .ok_or_else(|| OidcError::new("Sign-in failed; please try again.", "token response without an ID token"))?;
        let nonce = Nonce::new(stored.nonce);
        let rejected = |e: ClaimsVerificationError| {
            OidcError::new(
                "Your sign-in could not be verified. Please sign in again.",
                format!("ID token rejected: {e}"),
            )
        };
        let claims = match self.verify_id_token(&metadata, id_token, &nonce, now_ms) {
            Ok(claims) => claims,
            // The provider may have rotated its signing key since we fetched its keys.
            Err(e) if may_be_fixed_by_new_keys(&e) => match self.refresh_keys(&metadata).await {
                Some(fresh) => self.verify_id_token(&fresh, id_token, &nonce, now_ms).map_err(rejected)?,
                None => return Err(rejected(e)),
            },
            Err(e) => return Err(rejected(e)),
        };
        // The token is verified: read every claim it carries (groups, department, …).
        let raw = jwt_payload(&id_token.to_string()).unwrap_or_default();
        let userinfo = self.userinfo(&metadata, token.access_token(), claims.subject()).await?;
        let claim = |name: &str| -> Option<serde_json::Value> {
            raw.get(name).cloned().or_else(|| userinfo.as_ref().and_then(|u| u.get(name).cloned()))
        };
        let text =
            |name: &str| claim(name).and_then(|v| v.as_str().map(str::to_owned)).filter(|s| !s.trim().is_empty());
        let names = &self.config.claims;
        let identity = ProviderIdentity {
            issuer: metadata.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email: text(&names.email).unwrap_or_default(),
            // Only a real `true` (or "true", as some providers send it) counts as verified, and
            // only for the `email` claim it speaks of: an address read from another claim is
            // verified only when the operator says so (`--oidc-trust-email`).
            // And from the same document that supplied the email.
            email_verified: names.email == "email" && {
                let source = if raw.contains_key("email") { Some(&raw) } else { userinfo.as_ref() };
                source
                    .and_then(|doc| doc.get("email_verified"))
                    .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"))
            },
            display_name: text(&names.name).unwrap_or_default(),
            department: text(&names.department),
            job_title: text(&names.job_title),
            manager_email: if names.manager.is_empty() { None } else { text(&names.manager) },
            time_zone: text("zoneinfo"),
            groups: claim(&names.groups)
                .and_then(|v| v.as_array().map(|a| a.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect())),
        };
        Ok(SignedIn { identity, id_token: id_token.to_string(), return_to: stored.return_to })
    }

    /// Userinfo as a JSON object, read once: `None` when the provider has no userinfo endpoint
    /// or it does not answer with a JSON object (the ID token's claims are used alone). A
    /// document about someone else (its `sub` is not the ID token's, or missing) refuses the
    /// sign-in: its claims must not be used, and a provider sending it is misbehaving.
    async fn userinfo(
        &self,
        metadata: &ProviderMetadataWithLogout,
        access_token: &AccessToken,
        subject: &SubjectIdentifier,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, OidcError> {
        let Some(endpoint) = metadata.userinfo_endpoint() else { return Ok(None) };
        let ignored = |why: String| {
            tracing::warn!(detail = %crate::auth::sanitize_for_log(&why), "userinfo not used; using the ID token's claims");
            Ok(None)
        };
        let res = match self
            .http
            .get(endpoint.url().clone())
            .bearer_auth(access_token.secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
        {
            Ok(res) => res,
            Err(e) => return ignored(format!("userinfo request failed: {e}")),
        };
        if !res.status().is_success() {
            return ignored(format!("userinfo answered {}", res.status()));
        }
        let body = match res.bytes().await {
            Ok(body) => body,
            Err(e) => return ignored(format!("userinfo body: {e}")),
        };
        let document: serde_json::Map<String, serde_json::Value> = match serde_json::from_slice(&body) {
            Ok(document) => document,
            Err(e) => return ignored(format!("userinfo is not a JSON object: {e}")),
        };
        match document.get("sub").and_then(|v| v.as_str()) {
            Some(sub) if sub == subject.as_str() => Ok(Some(document)),
            other => Err(OidcError::new(
                "Your sign-in could not be verified. Please sign in again.",
                format!("userinfo is about {other:?}, not the ID token's subject {:?}", subject.as_str()),
            )),
        }
    }

    /// Where to send the browser to end the provider session too (RP-initiated logout), when
    /// the provider supports it.
    pub async fn logout_url(&self, id_token: Option<&str>) -> Option<String> {
        let metadata = self.metadata().await.ok()?;
        let endpoint = metadata.additional_metadata().end_session_endpoint.clone()?;
        let mut request = LogoutRequest::from(endpoint).set_client_id(ClientId::new(self.config.client_id.clone()));
        if let Ok(url) = PostLogoutRedirectUrl::new(self.config.post_logout_redirect_uri.clone()) {
            request = request.set_post_logout_redirect_uri(url);
        }
        let mut url = request.http_get_url();
        if let Some(hint) = id_token {
            url.query_pairs_mut().append_pair("id_token_hint", hint);
        }
        Some(url.to_string())
    }

    /// The provider's origin, for the Content-Security-Policy `form-action` list.
    pub fn issuer_origin(&self) -> Option<String> {
        let url = url::Url::parse(&self.config.issuer).ok()?;
        Some(url.origin().ascii_serialization())
    }
}

/// The claims of a compact JWT whose signature has already been verified.
fn jwt_payload(jwt: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A sign-in that failed on our side (the database): the person may simply try again.
fn sign_in_failed(e: sqlx::Error) -> OidcError {
    OidcError::new("Sign-in failed; please try again.", e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_client_secret() {
        let config = OidcConfig {
            issuer: "https://idp.example".into(),
            client_id: "qm".into(),
            client_secret: Some("very-secret-value".into()),
            redirect_uri: String::new(),
            post_logout_redirect_uri: String::new(),
            scopes: vec![],
            claims: ClaimNames {
                email: "email".into(),
                name: "name".into(),
                groups: "groups".into(),
                department: "department".into(),
                job_title: "job_title".into(),
                manager: String::new(),
            },
            display_name: String::new(),
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("very-secret-value") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn return_to_stays_on_this_site() {
        let safe = |raw| crate::auth::same_origin_path(raw, None);
        assert_eq!(safe(Some("/approvals?x=1")), "/approvals?x=1");
        assert_eq!(safe(Some("//evil.example/")), "/");
        assert_eq!(safe(Some("https://evil.example/")), "/");
        assert_eq!(safe(Some("/\\evil")), "/");
        assert_eq!(safe(Some("/\t/evil.example")), "/");
        assert_eq!(safe(None), "/");
    }

    #[test]
    fn metadata_expires_and_key_refreshes_are_rate_limited() {
        let t0 = Instant::now();
        assert!(metadata_is_fresh(t0, t0 + Duration::from_secs(59 * 60)));
        assert!(!metadata_is_fresh(t0, t0 + METADATA_MAX_AGE));
        assert!(key_refresh_allowed(None, t0));
        assert!(!key_refresh_allowed(Some(t0), t0 + Duration::from_secs(59)));
        assert!(key_refresh_allowed(Some(t0), t0 + KEY_REFRESH_MIN_INTERVAL));
    }

    #[test]
    fn only_key_errors_make_us_fetch_keys_again() {
        use SignatureVerificationError as S;
        let sig = ClaimsVerificationError::SignatureVerification;
        assert!(may_be_fixed_by_new_keys(&sig(S::NoMatchingKey)));
        assert!(may_be_fixed_by_new_keys(&sig(S::CryptoError("bad".into()))));
        assert!(!may_be_fixed_by_new_keys(&sig(S::DisallowedAlg("HS256".into()))));
        assert!(!may_be_fixed_by_new_keys(&sig(S::NoSignature)));
        assert!(!may_be_fixed_by_new_keys(&ClaimsVerificationError::InvalidNonce("x".into())));
        assert!(!may_be_fixed_by_new_keys(&ClaimsVerificationError::Expired("x".into())));
    }

    #[test]
    fn only_asymmetric_id_token_algorithms() {
        use openidconnect::JwsSigningAlgorithm;
        assert!(ID_TOKEN_ALGS.iter().all(|a| !a.uses_shared_secret() && *a != CoreJwsSigningAlgorithm::None));
    }

    #[test]
    fn payload_of_a_compact_jwt() {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"groups":["a","b"]}"#);
        let map = jwt_payload(&format!("xx.{claims}.yy")).unwrap();
        assert_eq!(map["groups"], serde_json::json!(["a", "b"]));
        assert!(jwt_payload("garbage").is_none());
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"a", b"ab")
        );
    }
}
