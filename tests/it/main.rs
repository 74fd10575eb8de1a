//! The integration tests, in one test binary: each module is what used to be its own binary,
//! and every one of them linked leptos, axum, sqlx and openidconnect again. Run one area with
//! a filter, e.g. `cargo nextest run -E 'test(/^http::/)'`. Run them with nextest (as
//! `scripts/test.sh` does): it runs each test in its own process, which the tests that install
//! a tracing subscriber or set a peer's environment rely on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod api;
mod api_fuzz;
mod birthright;
mod builder;
mod bulk;
mod cli;
mod connectors;
mod engine;
mod http;
mod instances;
mod lifecycle;
mod metrics;
mod notifications;
mod oidc;
mod oidc_tokens;
mod packages;
mod properties;
mod race;
mod reviews;
mod scale;
mod scim;
mod sweep;
