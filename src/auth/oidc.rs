//! The OpenID Connect relying party: discovery, authorization code flow with PKCE (S256),
//! `state` and `nonce` bound to a short-lived login cookie, ID token validation (issuer,
//! audience, signature, expiry, nonce), the RFC 9207 `iss` parameter, userinfo, and
//! RP-initiated logout.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use openidconnect::core::{CoreClient, CoreResponseType, CoreUserInfoClaims};
use openidconnect::{
    reqwest, AccessToken, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, Scope, TokenResponse,
};
use tokio::sync::RwLock;

use crate::service::directory::ProviderIdentity;
use crate::store::{logins, Db};

/// How long a sign-in may take between leaving for the provider and coming back.
pub const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;

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
    metadata: RwLock<Option<Arc<ProviderMetadataWithLogout>>>,
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
        Ok(Self { config, issuer, redirect, http, metadata: RwLock::new(None) })
    }

    pub fn display_name(&self) -> &str {
        &self.config.display_name
    }

    /// The provider's metadata, discovered once and kept; discovery is retried after a failure.
    async fn metadata(&self) -> Result<Arc<ProviderMetadataWithLogout>, OidcError> {
        if let Some(m) = self.metadata.read().await.as_ref() {
            return Ok(m.clone());
        }
        let discovered =
            ProviderMetadataWithLogout::discover_async(self.issuer.clone(), &self.http).await.map_err(|e| {
                OidcError::new(
                    "The identity provider cannot be reached right now. Please try again shortly.",
                    format!("discovery failed: {e}"),
                )
            })?;
        let discovered = Arc::new(discovered);
        *self.metadata.write().await = Some(discovered.clone());
        Ok(discovered)
    }

    /// Start a sign-in: store state, nonce and PKCE verifier under a fresh login id (the value
    /// of the login cookie) and return where to send the browser.
    pub async fn begin(&self, db: &Db, return_to: &str, now_ms: i64) -> Result<(String, String), OidcError> {
        let metadata = self.metadata().await?;
        let client = CoreClient::from_provider_metadata(
            (*metadata).clone(),
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect.clone());
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
        let mut conn = db
            .pool()
            .acquire()
            .await
            .map_err(|e| OidcError::new("Sign-in failed; please try again.", e.to_string()))?;
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
        .map_err(|e| OidcError::new("Sign-in failed; please try again.", e.to_string()))?;
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
        let mut conn = db
            .pool()
            .acquire()
            .await
            .map_err(|e| OidcError::new("Sign-in failed; please try again.", e.to_string()))?;
        let stored = logins::take(&mut conn, login_id)
            .await
            .map_err(|e| OidcError::new("Sign-in failed; please try again.", e.to_string()))?
            .ok_or_else(|| OidcError::new(RESTART, "unknown or already used login state"))?;
        drop(conn);
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
        let client = CoreClient::from_provider_metadata(
            (*metadata).clone(),
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect.clone());
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
        let verifier = client.id_token_verifier();
        let claims = id_token.claims(&verifier, &Nonce::new(stored.nonce)).map_err(|e| {
            OidcError::new(
                "Your sign-in could not be verified. Please sign in again.",
                format!("ID token rejected: {e}"),
            )
        })?;
        // The token is verified: read every claim it carries (groups, department, …).
        let raw = jwt_payload(&id_token.to_string()).unwrap_or_default();
        let userinfo = self.userinfo(&client, token.access_token(), claims.subject()).await;
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
            // Only a real `true` (or "true", as some providers send it) counts as verified.
            email_verified: claim("email_verified")
                .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true")),
            display_name: text(&names.name).unwrap_or_default(),
            department: text(&names.department),
            job_title: text(&names.job_title),
            manager_email: if names.manager.is_empty() { None } else { text(&names.manager) },
            groups: claim(&names.groups)
                .and_then(|v| v.as_array().map(|a| a.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect())),
        };
        Ok(SignedIn { identity, id_token: id_token.to_string(), return_to: stored.return_to })
    }

    /// Userinfo as a JSON object (missing endpoint or errors: none).
    async fn userinfo(
        &self,
        client: &CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        access_token: &AccessToken,
        subject: &openidconnect::SubjectIdentifier,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let request = client.user_info(access_token.clone(), Some(subject.clone())).ok()?;
        let claims: CoreUserInfoClaims = match request.request_async(&self.http).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %crate::auth::sanitize_for_log(&e.to_string()), "userinfo failed; using the ID token's claims");
                return None;
            }
        };
        // Standard claims come typed; custom ones (groups, department) need the raw document.
        let url = client.user_info_url()?.url().clone();
        let raw = self.http.get(url).bearer_auth(access_token.secret()).send().await.ok()?.bytes().await.ok()?;
        let mut map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&raw).unwrap_or_default();
        if let Some(email) = claims.email() {
            map.entry("email").or_insert_with(|| serde_json::Value::String(email.as_str().to_owned()));
        }
        Some(map)
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
