//! Structured logs through `tracing`: readable text by default, JSON on request, on standard
//! error (standard output is what a command prints: an export, a plan, a token's secret).

use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

use crate::config::LogFormat;

/// Install the global subscriber once. `RUST_LOG` overrides the default filter.
pub fn init(format: LogFormat) {
    init_filtered(format, None);
}

/// The same with a filter of the caller's (`RUST_LOG` syntax) instead of `RUST_LOG`'s.
pub fn init_filtered(format: LogFormat, filter: Option<&str>) {
    let filter = match filter {
        Some(f) => EnvFilter::new(f),
        None => {
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn"))
        }
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry.with(fmt::layer().with_writer(std::io::stderr).with_target(false)).try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true).with_current_span(true).with_writer(std::io::stderr))
            .try_init(),
    };
    // A second init (tests start many apps in one process) keeps the first subscriber.
    let _ = result;
}
