//! Rate limits at the edge: sign-in attempts per client address, and server-function calls
//! per session and per client address. Over a limit the answer is 429 with `Retry-After` and
//! a sentence saying so, before any handler runs (nothing is changed).
//!
//! Built on `governor` (the GCRA limiter `tower_governor` wraps) directly: the limits apply to
//! two classes of path with different keys, which one middleware choosing the limiter per
//! request says plainly, where a stack of `GovernorLayer`s would each need a path filter.
//! Pages and the client bundle are not limited.
//!
//! The client's address is the peer's, or — when the peer is a trusted reverse proxy
//! (`--trusted-proxies`) — the nearest address in `X-Forwarded-For` that is not one. IPv6
//! addresses count per /64 (one subscriber's block). The session key is the parsed session
//! id (16 bytes, the last cookie of that name, as the session layer reads it), so made-up
//! cookie values cost a few bytes each and the address limit still holds them.

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
    api_per_session: Option<DefaultKeyedRateLimiter<i128>>,
    api_per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    session_cookie: &'static str,
    trusted_proxies: Vec<Cidr>,
}

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let bad = || format!("{raw:?} is not an address or a CIDR block");
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (raw, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { network: masked(network, prefix), prefix })
    }
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.network.is_ipv4() && masked(ip, self.prefix) == self.network
    }
}

/// The address of one `X-Forwarded-For` entry: `a.b.c.d`, `a.b.c.d:port`, `v6`, `[v6]` or
/// `[v6]:port`.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(socket) = hop.parse::<std::net::SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    hop.strip_prefix('[')?.strip_suffix(']')?.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The address with all but its first `prefix` bits cleared.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
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
    /// The limits as configured; a trusted-proxy entry that does not parse is an error.
    pub fn new(limits: &LimitArgs, session_cookie: &'static str) -> Result<Self, String> {
        let trusted_proxies = limits
            .trusted_proxies
            .iter()
            .filter(|p| !p.trim().is_empty())
            .map(|p| p.parse::<Cidr>().map_err(|e| format!("--trusted-proxies: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let minute = Duration::from_secs(60);
        let second = Duration::from_secs(1);
        Ok(Self {
            sign_in_per_address: keyed(limits.rate_sign_in_per_minute, minute, limits.rate_sign_in_per_minute),
            api_per_session: keyed(limits.rate_api_per_session, second, limits.rate_api_per_session.saturating_mul(10)),
            api_per_address: keyed(limits.rate_api_per_address, second, limits.rate_api_per_address.saturating_mul(10)),
            session_cookie,
            trusted_proxies,
        })
    }

    /// Whom a request counts against: the peer, or the client a trusted proxy forwarded for;
    /// IPv6 per /64.
    fn client(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`.
        let peer = peer.to_canonical();
        let trusted = |ip: IpAddr| self.trusted_proxies.iter().any(|c| c.contains(ip));
        let mut client = peer;
        if trusted(peer) {
            let hops: Vec<&str> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .collect();
            // From the nearest hop outwards; an entry that does not parse ends the walk (the
            // last trusted hop counts), so no client-written entry beyond it can be chosen.
            for hop in hops.into_iter().rev() {
                let Some(ip) = hop_address(hop) else { break };
                client = ip;
                if !trusted(ip) {
                    break;
                }
            }
        }
        match client {
            IpAddr::V6(_) => masked(client, 64),
            v4 => v4,
        }
    }

    /// How long this request must wait, if it is over a limit.
    fn wait(&self, path: &str, peer: Option<IpAddr>, headers: &axum::http::HeaderMap) -> Option<Duration> {
        let now = DefaultClock::default().now();
        let peer = peer.map(|p| self.client(p, headers));
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
        let session = session.parse::<tower_sessions::session::Id>().ok()?;
        over(self.api_per_session.as_ref()?.check_key(&session.0))
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
    if peer.is_none() {
        tracing::error!("no peer address: the per-address rate limits cannot apply (serve with connect info)");
    }
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
    let message = format!("Too many requests; nothing was changed. Please try again in {seconds} seconds.");
    let mut res = if req.uri().path().starts_with("/api/v1/") {
        // The REST API answers every error as problem details.
        crate::rest::Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests", message)
            .into_response()
    } else {
        (StatusCode::TOO_MANY_REQUESTS, message).into_response()
    };
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
                trusted_proxies: vec!["10.9.0.0/16".into(), "fd00::1".into()],
                ..LimitArgs::default()
            },
            "qm_session",
        )
        .unwrap()
    }

    /// A well-formed session id as the cookie carries it.
    fn sid(n: i128) -> String {
        tower_sessions::session::Id(n).to_string()
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
            assert!(l.wait("/api/decide", Some(a), &cookie(&sid(1))).is_none());
        }
        assert!(l.wait("/api/decide", Some(a), &cookie(&sid(1))).is_some());
        assert!(l.wait("/api/decide", Some(a), &cookie(&sid(2))).is_none());
        // A made-up cookie in front of the real one does not buy a fresh allowance: the last
        // cookie of the name counts, as for the session itself.
        let both = {
            let mut h = axum::http::HeaderMap::new();
            h.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("qm_session={}; qm_session={}", sid(99), sid(1))).unwrap(),
            );
            h
        };
        assert!(l.wait("/api/decide", Some(a), &both).is_some());
    }

    #[test]
    fn clients_behind_trusted_proxies_and_ipv6_blocks() {
        let l = limits(1, 1000, 1000);
        let none = axum::http::HeaderMap::new();
        let forwarded = |chain: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert("x-forwarded-for", HeaderValue::from_str(chain).unwrap());
            h
        };
        let proxy: IpAddr = [10, 9, 0, 5].into();
        // Two clients behind the proxy each have their own allowance.
        assert!(l.wait("/auth/login", Some(proxy), &forwarded("203.0.113.1")).is_none());
        assert!(l.wait("/auth/login", Some(proxy), &forwarded("203.0.113.2")).is_none());
        assert!(l.wait("/auth/login", Some(proxy), &forwarded("203.0.113.1")).is_some());
        // A client cannot pick its address by writing one in front: the nearest untrusted hop counts.
        assert!(l.wait("/auth/login", Some(proxy), &forwarded("198.51.100.9, 203.0.113.2")).is_some());
        // An untrusted peer's header is ignored.
        let stranger: IpAddr = [192, 0, 2, 1].into();
        assert!(l.wait("/auth/login", Some(stranger), &forwarded("203.0.113.3")).is_none());
        assert!(l.wait("/auth/login", Some(stranger), &forwarded("203.0.113.4")).is_some());
        // IPv6: one /64 is one client.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(l.wait("/auth/login", Some(a), &none).is_none());
        assert!(l.wait("/auth/login", Some(b), &none).is_some());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err() && "nonsense".parse::<Cidr>().is_err());
        // A dual-stack listener's view of the proxy is the proxy; entries with ports count.
        let mapped: IpAddr = "::ffff:10.9.0.5".parse().unwrap();
        assert!(l.wait("/auth/login", Some(mapped), &forwarded("203.0.113.5:4711")).is_none());
        assert!(l.wait("/auth/login", Some(mapped), &forwarded("203.0.113.5")).is_some(), "the same client");
        // A garbled nearest entry ends the walk at the proxy: the client cannot pick a key.
        assert!(l.wait("/auth/login", Some(proxy), &forwarded("198.51.100.77, garbage")).is_none());
        assert!(
            l.wait("/auth/login", Some(proxy), &forwarded("198.51.100.78, garbage")).is_some(),
            "the proxy's allowance"
        );
    }

    #[test]
    fn the_address_limit_holds_whatever_cookies_are_sent() {
        let l = limits(3, 1000, 1);
        let a: IpAddr = [10, 0, 0, 1].into();
        let limited = (0..20).filter(|i| l.wait("/api/decide", Some(a), &cookie(&sid(*i))).is_some()).count();
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
