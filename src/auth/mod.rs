//! Who is calling. The session holds the signed-in user's id; every request re-reads the
//! user, so a disabled user's session stops working at their next request. Sign-in is through
//! the company's OpenID Connect provider ([`oidc`]), or demo sign-in on a loopback address.

pub mod oidc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tower_sessions::Session;

use crate::domain::authz::Actor;
use crate::domain::ids::UserId;
use crate::domain::DomainError;
use crate::service::directory::AdminBootstrap;
use crate::service::Service;

/// The session key holding the signed-in person's id (the session store reads it too).
pub const USER_KEY: &str = "user_id";
const SIGNED_IN_AT_KEY: &str = "signed_in_at";
/// When the session last proved activity (written at most every tenth of the idle timeout).
const SEEN_AT_KEY: &str = "seen_at";
const ID_TOKEN_KEY: &str = "id_token";
/// The login-state cookie: `__Host-` over https (no Domain, Path=/, Secure: no sibling
/// subdomain can set or read it).
const LOGIN_COOKIE: &str = "qm_login";
const LOGIN_COOKIE_HTTPS: &str = "__Host-qm_login";

/// How long sessions live: `idle` without a request, `absolute` after sign-in however
/// active. Settings (`--session-idle-minutes`, `--session-max-hours`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionSettings {
    pub idle_ms: i64,
    pub absolute_ms: i64,
}

impl SessionSettings {
    pub fn from_limits(limits: &crate::config::LimitArgs) -> Self {
        Self {
            idle_ms: i64::from(limits.session_idle_minutes) * 60 * 1000,
            absolute_ms: i64::from(limits.session_max_hours) * 60 * 60 * 1000,
        }
    }

    /// Activity is written back (extending the idle expiry) at most this often, so an active
    /// session is not rewritten on every request.
    fn touch_every_ms(&self) -> i64 {
        self.idle_ms / 10
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self::from_limits(&crate::config::LimitArgs::default())
    }
}

/// What the sign-in handlers need. The server's state hands it out (`FromRef`), so this module
/// does not depend on the server.
#[derive(Clone, Debug)]
pub struct AuthState {
    pub service: Service,
    /// Demo sign-in is on (only ever on a loopback address).
    pub demo: bool,
    /// Sign-in through the company's identity provider, when configured.
    pub oidc: Option<std::sync::Arc<oidc::Oidc>>,
    /// Who becomes an administrator at sign-in.
    pub admins: AdminBootstrap,
    /// Served over https: secure cookies.
    pub https: bool,
    /// The public URL's origin (with the root path), when one is configured: redirect targets
    /// are parsed against it.
    pub public: Option<url::Url>,
    pub sessions: SessionSettings,
}

/// A redirect target taken from a request (`return_to`), as a path on this site: parsed with
/// `url::Url` against the public URL (or `http://localhost/` when none is configured), it must
/// stay on that origin. Control characters (browsers drop tabs and newlines, so `/\t/evil`
/// becomes `//evil`), backslashes (read as slashes), `//…` (another host) and absolute URLs
/// to another origin give `/`. The answer never starts with `//`, even after `.` and `..`
/// segments are resolved.
pub fn same_origin_path(raw: Option<&str>, public: Option<&url::Url>) -> String {
    const HOME: &str = "/";
    let Some(raw) = raw.filter(|r| !r.is_empty()) else { return HOME.to_owned() };
    if raw.chars().any(|c| c.is_control() || c == '\\') || !raw.starts_with('/') || raw.starts_with("//") {
        return HOME.to_owned();
    }
    let fallback;
    let base = match public {
        Some(url) => url,
        None => match url::Url::parse("http://localhost/") {
            Ok(url) => {
                fallback = url;
                &fallback
            }
            Err(_) => return HOME.to_owned(),
        },
    };
    let Ok(target) = base.join(raw) else { return HOME.to_owned() };
    if target.origin() != base.origin() || !target.username().is_empty() || target.password().is_some() {
        return HOME.to_owned();
    }
    let path = &target[url::Position::BeforePath..];
    if !path.starts_with('/') || path.starts_with("//") || path.contains('\\') {
        return HOME.to_owned();
    }
    path.to_owned()
}

/// A value from the provider or the query string, fit for a log line: control characters
/// (newlines that would forge a line, terminal escapes) are escaped, and it is cut at 500
/// characters.
pub fn sanitize_for_log(value: &str) -> String {
    const MAX: usize = 500;
    let mut out = String::with_capacity(value.len().min(MAX + 8));
    for (i, c) in value.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        // Line and paragraph separators and bidi controls are escaped too: some viewers break
        // lines on them or reorder the text around them.
        let bidi = matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The host a request names (the `Host` header, or the URI's authority for HTTP/2), with
/// its port.
pub fn request_host<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    match headers.get(header::HOST) {
        Some(host) => host.to_str().ok(),
        None => uri.authority().map(|a| a.as_str()),
    }
}

/// Is this `host[:port]` a loopback name: 127.0.0.0/8, `[::1]` or `localhost`?
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, port)) if port.is_empty() || port.starts_with(':') => inside,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            Some(_) => return false,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why this request may not use demo sign-in (nor see the people it offers), if it may not:
/// demo mode is for the computer it runs on, so the request must name a loopback host and
/// must not have come through a proxy (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`).
pub fn demo_request_refusal(headers: &HeaderMap, uri: &Uri) -> Option<&'static str> {
    let proxied = headers.keys().any(|name| {
        let name = name.as_str();
        name == "forwarded" || name == "via" || name == "x-real-ip" || name.starts_with("x-forwarded-")
    });
    if proxied {
        return Some("the request came through a proxy");
    }
    if !request_host(headers, uri).is_some_and(is_loopback_host) {
        return Some("the request does not name a loopback host");
    }
    // A page the browser shows from elsewhere (a proxy that rewrites Host to loopback and
    // adds nothing) still names its own origin.
    for name in [header::ORIGIN, header::REFERER] {
        if let Some(value) = headers.get(&name) {
            let host = value.to_str().ok().and_then(|v| url::Url::parse(v).ok()).and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_owned(),
                })
            });
            if !host.as_deref().is_some_and(is_loopback_host) {
                return Some("the page that sent the request is not on this computer");
            }
        }
    }
    None
}

fn now_ms(service: &Service) -> i64 {
    service.clock().now().timestamp_millis()
}

fn session_error(e: impl std::fmt::Display) -> DomainError {
    DomainError::Internal(format!("session: {e}"))
}

/// The signed-in person of this request, resolved once and shared by everything the request
/// runs: a page calls several server functions while it renders, and each would otherwise read
/// the session, the person and their roles again (server context, one per request).
#[derive(Clone, Debug, Default)]
pub struct ActorCell(std::sync::Arc<tokio::sync::OnceCell<Option<Actor>>>);

impl ActorCell {
    /// The actor, read from the session the first time it is asked for in this request.
    pub async fn get(
        &self,
        session: &Session,
        service: &Service,
        settings: &SessionSettings,
    ) -> Result<Option<Actor>, DomainError> {
        self.0.get_or_try_init(|| session_actor(session, service, settings)).await.cloned()
    }
}

/// The signed-in actor of this session, if any. A session past its absolute lifetime, idle
/// longer than the idle timeout, or of someone unknown or disabled now, ends here. Activity
/// is recorded (which extends the session's idle expiry in the store) at most every tenth of
/// the idle timeout.
pub async fn session_actor(
    session: &Session,
    service: &Service,
    settings: &SessionSettings,
) -> Result<Option<Actor>, DomainError> {
    let id: Option<i64> = session.get(USER_KEY).await.map_err(session_error)?;
    let Some(id) = id else { return Ok(None) };
    let now = now_ms(service);
    let signed_in_at: i64 = session.get(SIGNED_IN_AT_KEY).await.map_err(session_error)?.unwrap_or(0);
    let seen_at: i64 = session.get(SEEN_AT_KEY).await.map_err(session_error)?.unwrap_or(signed_in_at);
    if now - signed_in_at > settings.absolute_ms {
        tracing::info!(user = id, "session reached its absolute lifetime");
        let _ = session.flush().await;
        return Ok(None);
    }
    // The store drops a session once its idle expiry passes; this also holds when the
    // timeout was shortened since the session was last written.
    if now - seen_at > settings.idle_ms {
        tracing::info!(user = id, "session idle too long");
        let _ = session.flush().await;
        return Ok(None);
    }
    let actor = service.actor(UserId(id)).await?;
    match &actor {
        // Unknown or disabled now: end the session.
        None => {
            let _ = session.flush().await;
        }
        Some(_) if now - seen_at >= settings.touch_every_ms() => {
            session.insert(SEEN_AT_KEY, now).await.map_err(session_error)?;
        }
        Some(_) => {}
    }
    Ok(actor)
}

/// Start a session for this user from an empty one (nothing a previous person left in it
/// survives, such as their ID token) under a fresh id (no fixation).
pub async fn sign_in(
    session: &Session,
    service: &Service,
    user: UserId,
    id_token: Option<String>,
) -> Result<(), DomainError> {
    session.clear().await;
    session.cycle_id().await.map_err(session_error)?;
    let now = now_ms(service);
    session.insert(USER_KEY, user.0).await.map_err(session_error)?;
    session.insert(SIGNED_IN_AT_KEY, now).await.map_err(session_error)?;
    session.insert(SEEN_AT_KEY, now).await.map_err(session_error)?;
    if let Some(token) = id_token {
        session.insert(ID_TOKEN_KEY, token).await.map_err(session_error)?;
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct DemoSignIn {
    user_id: i64,
    return_to: Option<String>,
}

/// Demo sign-in: pick a person. Only when the server runs with `--demo` (refused on anything
/// but a loopback address, beside a provider or a public URL, and over a database holding
/// real people), only from this computer, and only as one of the demo people.
pub async fn demo_sign_in(
    State(state): State<AuthState>,
    session: Session,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<DemoSignIn>,
) -> Response {
    if !state.demo {
        return (StatusCode::NOT_FOUND, "Demo sign-in is not enabled.").into_response();
    }
    if let Some(why) = demo_request_refusal(&headers, &uri) {
        return failure_page(
            StatusCode::FORBIDDEN,
            "Demo sign-in only works on the computer the demo runs on, opened as localhost or 127.0.0.1.",
            why,
        );
    }
    match crate::demo::is_demo_person(state.service.db(), UserId(form.user_id)).await {
        Ok(true) => {}
        Ok(false) => {
            return failure_page(
                StatusCode::FORBIDDEN,
                "Only the demo organisation's people can be picked at demo sign-in.",
                &format!("demo sign-in as user {} refused: not a demo person", form.user_id),
            )
        }
        Err(e) => {
            return failure_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in failed; please try again.",
                &format!("{e:?}"),
            )
        }
    }
    match state.service.guest_blocked(UserId(form.user_id)).await {
        Ok(false) => {}
        Ok(true) => {
            return failure_page(
                StatusCode::FORBIDDEN,
                "Your access here has ended, so you can no longer sign in; ask your sponsor to request access for you again.",
                &format!("demo sign-in as user {} refused: a guest blocked after their access ended", form.user_id),
            )
        }
        Err(e) => {
            return failure_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in failed; please try again.",
                &format!("{e:?}"),
            )
        }
    }
    match state.service.actor(UserId(form.user_id)).await {
        Ok(Some(actor)) => match sign_in(&session, &state.service, actor.id(), None).await {
            Ok(()) => {
                tracing::info!(user = actor.id().0, "demo sign-in");
                Redirect::to(&same_origin_path(form.return_to.as_deref(), state.public.as_ref())).into_response()
            }
            Err(e) => {
                failure_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed; please try again.", &format!("{e:?}"))
            }
        },
        Ok(None) => (StatusCode::BAD_REQUEST, "That person cannot sign in.").into_response(),
        Err(e) => {
            failure_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed; please try again.", &format!("{e:?}"))
        }
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
}

/// The login-state cookie's name: `__Host-` over https.
fn login_cookie_name(https: bool) -> &'static str {
    if https {
        LOGIN_COOKIE_HTTPS
    } else {
        LOGIN_COOKIE
    }
}

fn login_cookie(value: &str, max_age: i64, https: bool) -> HeaderValue {
    // SameSite=Lax: the cookie must come back on the provider's top-level redirect. Over
    // https it is a `__Host-` cookie, which requires Secure and Path=/ and forbids Domain.
    let cookie = if https {
        format!("{LOGIN_COOKIE_HTTPS}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}; Secure")
    } else {
        format!("{LOGIN_COOKIE}={value}; Path=/auth; HttpOnly; SameSite=Lax; Max-Age={max_age}")
    };
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("qm_login=; Path=/auth; Max-Age=0"))
}

/// A cookie's value; when the name appears more than once, the last one, as the session
/// layer (tower-cookies) reads it.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .rfind(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Leave for the identity provider.
pub async fn oidc_login(State(state): State<AuthState>, Query(q): Query<LoginQuery>) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return failure_page(
            StatusCode::NOT_FOUND,
            "Sign-in with a company account is not configured on this server.",
            "no OIDC issuer configured",
        );
    };
    let return_to = same_origin_path(q.return_to.as_deref(), state.public.as_ref());
    match oidc.begin(state.service.db(), &return_to, now_ms(&state.service)).await {
        Ok((url, login_id)) => {
            let mut res = Redirect::to(&url).into_response();
            res.headers_mut()
                .append(header::SET_COOKIE, login_cookie(&login_id, oidc::LOGIN_TTL_MS / 1000, state.https));
            res
        }
        Err(e) => failure_page(StatusCode::BAD_GATEWAY, e.shown, &e.logged),
    }
}

/// Come back from the identity provider. Any failure ends on a clear page, logged, with no
/// session created.
pub async fn oidc_callback(
    State(state): State<AuthState>,
    session: Session,
    headers: HeaderMap,
    Query(params): Query<oidc::CallbackParams>,
) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return failure_page(
            StatusCode::NOT_FOUND,
            "Sign-in with a company account is not configured on this server.",
            "no OIDC issuer configured",
        );
    };
    let login_id = cookie_value(&headers, login_cookie_name(state.https));
    let now = now_ms(&state.service);
    let mut res = match oidc.complete(state.service.db(), login_id.as_deref(), &params, now).await {
        Err(e) => failure_page(StatusCode::BAD_REQUEST, e.shown, &e.logged),
        Ok(done) => match state.service.sign_in_from_provider(&done.identity, &state.admins).await {
            Ok(user) => match sign_in(&session, &state.service, user, Some(done.id_token)).await {
                Ok(()) => {
                    tracing::info!(user = user.0, issuer = %sanitize_for_log(&done.identity.issuer), "signed in");
                    Redirect::to(&same_origin_path(Some(&done.return_to), state.public.as_ref())).into_response()
                }
                Err(e) => failure_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sign-in failed; please try again.",
                    &format!("{e:?}"),
                ),
            },
            Err(DomainError::Forbidden(why)) => {
                failure_page(StatusCode::FORBIDDEN, "You cannot sign in to Quartermaster.", &why)
            }
            // An email already linked to another sign-in: a conflict the person can report.
            Err(DomainError::Conflict(why)) => {
                failure_page(StatusCode::CONFLICT, "You cannot sign in to Quartermaster.", &why)
            }
            Err(DomainError::Invalid { message, .. }) => failure_page(
                StatusCode::BAD_REQUEST,
                "Your account is missing information Quartermaster needs.",
                &message,
            ),
            Err(e) => {
                failure_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed; please try again.", &format!("{e:?}"))
            }
        },
    };
    // The login cookie has done its job either way.
    res.headers_mut().append(header::SET_COOKIE, login_cookie("", 0, state.https));
    res
}

/// Sign out: the server-side session is deleted (not just the cookie), and the provider's
/// session is ended too where it supports RP-initiated logout.
pub async fn sign_out(State(state): State<AuthState>, session: Session) -> Response {
    let id_token: Option<String> = session.get(ID_TOKEN_KEY).await.ok().flatten();
    if let Err(e) = session.flush().await {
        tracing::error!(error = %e, "sign-out failed");
    }
    if let (Some(oidc), Some(token)) = (state.oidc.as_ref(), id_token) {
        if let Some(url) = oidc.logout_url(Some(&token)).await {
            return Redirect::to(&url).into_response();
        }
    }
    Redirect::to("/signin").into_response()
}

/// A small page that says what went wrong and where to go; the detail goes to the log only.
fn failure_page(status: StatusCode, shown: &str, logged: &str) -> Response {
    tracing::warn!(status = status.as_u16(), detail = %sanitize_for_log(logged), "sign-in refused");
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign-in problem · Quartermaster</title><link rel=\"stylesheet\" href=\"/pkg/quartermaster.css\"></head>\
         <body><main class=\"main\"><section class=\"error-page\" role=\"alert\"><p class=\"error-code\">{}</p>\
         <h1>Sign-in did not work</h1><p>{}</p><p><a class=\"btn\" href=\"/signin\">Back to sign-in</a></p></section></main></body></html>",
        status.as_u16(),
        html_escape(shown)
    );
    (status, Html(body)).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets_are_paths_on_this_site() {
        let public = url::Url::parse("https://access.example.com/").unwrap();
        for base in [None, Some(&public)] {
            let path = |raw: &str| same_origin_path(Some(raw), base);
            assert_eq!(path("/approvals?x=1#top"), "/approvals?x=1#top");
            assert_eq!(path("/packages/3"), "/packages/3");
            assert_eq!(same_origin_path(None, base), "/");
            for evil in [
                "/\t/evil.example",
                "/\n/evil.example",
                "/\r\n/evil.example",
                "//evil.example/",
                "///evil.example",
                "/\\evil.example",
                "\\\\evil.example",
                "https://evil.example/",
                "http:evil.example",
                "javascript:alert(1)",
                "evil.example",
                "/./evil.example/..//evil.example",
                "/.//evil.example",
                "/..//evil.example",
                "/%2e%2e//evil.example",
                "",
            ] {
                assert_eq!(path(evil), "/", "{evil:?}");
            }
        }
        assert_eq!(same_origin_path(Some("https://access.example.com/admin"), Some(&public)), "/");
    }

    #[test]
    fn the_login_cookie_is_a_host_cookie_over_https() {
        let https = login_cookie("abc", 600, true);
        let https = https.to_str().unwrap();
        assert!(https.starts_with("__Host-qm_login=abc;"), "{https}");
        for attr in ["; Path=/;", "; Secure", "; HttpOnly", "; SameSite=Lax"] {
            assert!(https.contains(attr), "{attr} missing from {https}");
        }
        assert!(!https.to_ascii_lowercase().contains("domain="), "{https}");
        assert_eq!(login_cookie_name(true), "__Host-qm_login");
        let plain = login_cookie("abc", 600, false);
        assert!(plain.to_str().unwrap().starts_with("qm_login=abc; Path=/auth;"), "{plain:?}");
    }

    #[test]
    fn log_values_cannot_forge_lines() {
        assert_eq!(sanitize_for_log("access_denied"), "access_denied");
        let forged = sanitize_for_log("ok\n2026-01-01T00:00:00Z  INFO forged\r\u{1b}[31m");
        assert!(!forged.chars().any(char::is_control), "{forged}");
        assert!(forged.contains("\\n2026"), "{forged}");
        assert_eq!(sanitize_for_log(&"x".repeat(600)).chars().count(), 501);
        let bidi = sanitize_for_log("a\u{2028}b\u{202e}c\u{2066}d");
        assert!(!bidi.contains('\u{2028}') && !bidi.contains('\u{202e}') && !bidi.contains('\u{2066}'), "{bidi}");
    }

    #[test]
    fn demo_requests_come_from_this_computer() {
        let uri: Uri = "/auth/demo".parse().unwrap();
        let with = |pairs: &[(&'static str, &str)]| {
            let mut headers = HeaderMap::new();
            for (k, v) in pairs {
                headers.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            demo_request_refusal(&headers, &uri)
        };
        for host in ["127.0.0.1:3000", "127.1.2.3", "localhost:3000", "LOCALHOST", "[::1]:3000", "[::1]"] {
            assert_eq!(with(&[("host", host)]), None, "{host}");
        }
        for host in
            ["portal.example.com", "10.0.0.5:3000", "0.0.0.0:3000", "localhost.evil.example", "[::2]:1", "127.0.0.1:x"]
        {
            assert!(with(&[("host", host)]).is_some(), "{host}");
        }
        assert!(with(&[]).is_some(), "no host at all");
        assert!(with(&[("host", "127.0.0.1:3000"), ("origin", "https://portal.example.com")]).is_some());
        assert!(with(&[("host", "127.0.0.1:3000"), ("referer", "https://portal.example.com/signin")]).is_some());
        assert_eq!(with(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3000")]), None);
        for proxy in ["forwarded", "via", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip"] {
            assert!(with(&[("host", "127.0.0.1:3000"), (proxy, "for=203.0.113.7")]).is_some(), "{proxy}");
        }
    }
}
