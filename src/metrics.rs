//! Prometheus metrics, served at `/metrics`: each instance's own registry (not a global
//! recorder, so several instances can live in one process, as the tests start them).
//!
//! Counted as they happen: HTTP requests by route, method and status with their latency, the
//! deliveries by result, the workers' passes with their durations. Read from the database at
//! each scrape: requests under way by state, the outbox's depth and oldest entry by connected
//! system, and the email queue.
//!
//! Not public: `/metrics` on the portal's listener takes an API token with the `metrics`
//! scope whose owner is an administrator; `--metrics-addr` serves it without a token on a
//! listener of its own, for an address only the scraper reaches.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::domain::DomainResult;
use crate::service::{DeliveryReport, Service};
use crate::store::gauges::Waiting;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SystemLabel {
    system: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PassLabel {
    pass: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// One instance's metrics and the registry they are encoded from.
pub struct Metrics {
    registry: Registry,
    http: Histograms<HttpLabels>,
    passes: Histograms<PassLabel>,
    deliveries: Family<ResultLabel, Counter>,
    open_requests: Family<StateLabel, Gauge>,
    outbox_depth: Family<SystemLabel, Gauge>,
    outbox_age: Family<SystemLabel, Gauge<f64, AtomicU64>>,
    notifications: Gauge,
    notifications_age: Gauge<f64, AtomicU64>,
    /// One scrape at a time reads the database and sets the gauges.
    scrape: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn http_histogram() -> Histogram {
    // 1 ms to about 4 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 13))
}

fn pass_histogram() -> Histogram {
    // 1 ms to about 4 minutes.
    Histogram::new(exponential_buckets(0.001, 4.0, 10))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("quartermaster");
        let http: Histograms<HttpLabels> = Family::new_with_constructor(http_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP requests by route (the matched pattern), method and status, and how long each took",
            http.clone(),
        );
        let passes: Histograms<PassLabel> = Family::new_with_constructor(pass_histogram);
        registry.register(
            "worker_pass_duration_seconds",
            "Background worker passes and how long each took",
            passes.clone(),
        );
        let deliveries = Family::<ResultLabel, Counter>::default();
        registry.register(
            "deliveries",
            "Outbox entries handled by delivery passes, by result (delivered, retried, failed, withdrawn, \
             deferred, error)",
            deliveries.clone(),
        );
        let open_requests = Family::<StateLabel, Gauge>::default();
        registry.register("open_requests", "Requests under way, by state", open_requests.clone());
        let outbox_depth = Family::<SystemLabel, Gauge>::default();
        registry.register(
            "outbox_pending",
            "Outbox entries waiting for delivery, by connected system",
            outbox_depth.clone(),
        );
        let outbox_age = Family::<SystemLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest outbox entry waiting for delivery, by connected system (0 when none waits)",
            outbox_age.clone(),
        );
        let notifications = Gauge::default();
        registry.register("notifications_pending", "Emails waiting to be sent", notifications.clone());
        let notifications_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "notifications_oldest_age_seconds",
            "Age of the oldest email waiting to be sent (0 when none waits)",
            notifications_age.clone(),
        );
        Self {
            registry,
            http,
            passes,
            deliveries,
            open_requests,
            outbox_depth,
            outbox_age,
            notifications,
            notifications_age,
            scrape: tokio::sync::Mutex::new(()),
        }
    }
}

impl Metrics {
    /// A worker pass named `pass` took `took`.
    pub fn pass(&self, pass: &str, took: Duration) {
        self.passes.get_or_create(&PassLabel { pass: pass.to_owned() }).observe(took.as_secs_f64());
    }

    /// What a delivery pass did with the entries it claimed.
    pub fn delivered(&self, report: &DeliveryReport) {
        for (result, n) in [
            ("delivered", report.delivered),
            ("retried", report.retried),
            ("failed", report.failed),
            ("withdrawn", report.withdrawn),
            ("deferred", report.deferred),
            ("error", report.errors),
        ] {
            if n > 0 {
                self.deliveries.get_or_create(&ResultLabel { result: result.to_owned() }).inc_by(n as u64);
            }
        }
    }

    /// Every metric in Prometheus's text format, with the gauges set from what `read` finds
    /// waiting (and the time it read it at, Unix ms). One scrape at a time.
    pub async fn text(
        &self,
        read: impl std::future::Future<Output = DomainResult<(Waiting, i64)>>,
    ) -> DomainResult<String> {
        let _one = self.scrape.lock().await;
        let (waiting, now) = read.await?;
        let age = |oldest: Option<i64>| oldest.map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
        for (state, n) in waiting.requests {
            self.open_requests.get_or_create(&StateLabel { state: state.to_owned() }).set(n);
        }
        // A system deleted since the last scrape is no longer listed.
        self.outbox_depth.clear();
        self.outbox_age.clear();
        for (system, n, oldest) in waiting.outbox {
            let label = SystemLabel { system };
            self.outbox_depth.get_or_create(&label).set(n);
            self.outbox_age.get_or_create(&label).set(age(oldest));
        }
        self.notifications.set(waiting.notifications.0);
        self.notifications_age.set(age(waiting.notifications.1));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| crate::domain::DomainError::Internal(format!("the metrics could not be written: {e}")))?;
        Ok(text)
    }

    fn request(&self, labels: HttpLabels, took: Duration) {
        self.http.get_or_create(&labels).observe(took.as_secs_f64());
    }
}

/// Count and time every request by the route that matched it. Requests no route matched (the
/// pages' fallback: files, not found) count under `unmatched`, so a scanner's paths do not
/// each become a series.
pub async fn record(State(service): State<Service>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    // HTTP allows any token as a method: the standard ones count as themselves, others together.
    let method = match *req.method() {
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE | Method::HEAD | Method::OPTIONS => {
            req.method().as_str()
        }
        _ => "OTHER",
    }
    .to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let res = next.run(req).await;
    service.metrics().request(HttpLabels { method, route, status: res.status().as_u16() }, started.elapsed());
    res
}

/// The text format's content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `/metrics` on the portal's listener: for a token with the `metrics` scope whose owner is
/// an administrator.
pub async fn scrape(caller: crate::rest::Caller) -> Response {
    if let Err(problem) = caller.metrics_reader() {
        return problem.into_response();
    }
    answer(caller.service()).await
}

/// `/metrics` on the metrics listener (`--metrics-addr`), which only the scraper reaches.
pub async fn scrape_unguarded(State(service): State<Service>) -> Response {
    answer(&service).await
}

async fn answer(service: &Service) -> Response {
    match service.metrics_text().await {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = ?e, "metrics scrape failed");
            (StatusCode::SERVICE_UNAVAILABLE, "the metrics could not be read").into_response()
        }
    }
}
