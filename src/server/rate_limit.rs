//! Rate limits at the edge: sign-in attempts per client address, and server-function calls
//! per session and per client address. Over a limit the answer is 429 with `Retry-After` and
//! a sentence saying so, before any handler runs (nothing is changed).
//!
//! Built on `governor` (the GCRA limiter `tower_governor` wraps) directly: the limits apply to
//! two classes of path with different keys, which one middleware choosing the limiter per
//! request says plainly, where a stack of `GovernorLayer`s would each need a path filter.
//! Pages and the client bundle are not limited.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitArgs;

/// The limiters, shared by every request (and kept small by [`RateLimits::forget_idle`]).
#[derive(Debug)]
pub struct RateLimits {
    sign_in_per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    api_per_session: Option<DefaultKeyedRateLimiter<String>>,
    api_per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    session_cookie: &'static str,
}

/// A limiter allowing `per_period` requests per `period`, in bursts of `burst`.
fn keyed<K: std::hash::Hash + Eq + Clone>(
    per_period: u32,
    period: Duration,
    burst: u32,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let per_period = NonZeroU32::new(per_period)?;
    let burst = NonZeroU32::new(burst).unwrap_or(per_period);
    let quota = Quota::with_period(period / per_period.get())?.allow_burst(burst);
    Some(RateLimiter::keyed(quota))
}

impl RateLimits {
    pub fn new(limits: &LimitArgs, session_cookie: &'static str) -> Self {
        let minute = Duration::from_secs(60);
        let second = Duration::from_secs(1);
        Self {
            sign_in_per_address: keyed(limits.rate_sign_in_per_minute, minute, limits.rate_sign_in_per_minute),
            api_per_session: keyed(limits.rate_api_per_session, second, limits.rate_api_per_session.saturating_mul(10)),
            api_per_address: keyed(limits.rate_api_per_address, second, limits.rate_api_per_address.saturating_mul(10)),
            session_cookie,
        }
    }

    /// How long this request must wait, if it is over a limit.
    fn wait(&self, path: &str, peer: Option<IpAddr>, headers: &axum::http::HeaderMap) -> Option<Duration> {
        let now = DefaultClock::default().now();
        let over = |result: Result<(), governor::NotUntil<_>>| result.err().map(|n| n.wait_time_from(now));
        if path.starts_with("/auth/") {
            let (limiter, peer) = (self.sign_in_per_address.as_ref()?, peer?);
            return over(limiter.check_key(&peer));
        }
        if !path.starts_with("/api/") {
            return None;
        }
        // The address first: a flood of made-up session cookies from one place stops there
        // before it can fill the per-session table.
        if let (Some(limiter), Some(peer)) = (&self.api_per_address, peer) {
            if let Some(wait) = over(limiter.check_key(&peer)) {
                return Some(wait);
            }
        }
        let session = crate::auth::cookie_value(headers, self.session_cookie)?;
        over(self.api_per_session.as_ref()?.check_key(&session))
    }

    /// Drop the state of keys that are back at their full allowance (run now and then).
    pub fn forget_idle(&self) {
        for limiter in [&self.sign_in_per_address, &self.api_per_address].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.api_per_session {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The middleware: 429 with `Retry-After` over a limit, the request as it is otherwise.
pub async fn enforce(limits: Arc<RateLimits>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let Some(wait) = limits.wait(req.uri().path(), peer, req.headers()) else {
        return next.run(req).await;
    };
    let seconds = wait.as_secs().max(1);
    tracing::warn!(
        path = %req.uri().path(),
        peer = ?peer,
        retry_after = seconds,
        "rate limit reached"
    );
    let mut res = (
        StatusCode::TOO_MANY_REQUESTS,
        format!("Too many requests; nothing was changed. Please try again in {seconds} seconds."),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, value);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(sign_in: u32, session: u32, address: u32) -> RateLimits {
        RateLimits::new(
            &LimitArgs {
                rate_sign_in_per_minute: sign_in,
                rate_api_per_session: session,
                rate_api_per_address: address,
                ..LimitArgs::default()
            },
            "qm_session",
        )
    }

    fn cookie(value: &str) -> axum::http::HeaderMap {
        let mut headers = axum::http::HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("qm_session={value}")) {
            headers.insert(header::COOKIE, v);
        }
        headers
    }

    #[test]
    fn each_key_has_its_own_allowance() {
        let l = limits(3, 1, 1000);
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let none = axum::http::HeaderMap::new();
        for _ in 0..3 {
            assert!(l.wait("/auth/login", Some(a), &none).is_none());
        }
        let wait = l.wait("/auth/callback", Some(a), &none).expect("the fourth sign-in in a minute waits");
        assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(l.wait("/auth/login", Some(b), &none).is_none(), "another address is not held up");
        assert!(l.wait("/", Some(a), &none).is_none(), "pages are not limited");

        // A session may burst to ten times its rate, then waits; another session does not.
        for _ in 0..10 {
            assert!(l.wait("/api/decide", Some(a), &cookie("one")).is_none());
        }
        assert!(l.wait("/api/decide", Some(a), &cookie("one")).is_some());
        assert!(l.wait("/api/decide", Some(a), &cookie("two")).is_none());
    }

    #[test]
    fn the_address_limit_holds_whatever_cookies_are_sent() {
        let l = limits(3, 1000, 1);
        let a: IpAddr = [10, 0, 0, 1].into();
        let limited = (0..20).filter(|i| l.wait("/api/decide", Some(a), &cookie(&format!("c{i}"))).is_some()).count();
        assert_eq!(limited, 10, "ten calls in the burst, the rest refused");
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let l = limits(0, 0, 0);
        let a: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..1000 {
            assert!(l.wait("/auth/login", Some(a), &cookie("x")).is_none());
            assert!(l.wait("/api/decide", Some(a), &cookie("x")).is_none());
        }
        l.forget_idle();
    }
}
