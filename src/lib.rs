//! Quartermaster: a self-hosted access-governance portal.
//!
//! The crate is one Leptos application rendered on the server (`ssr`) and hydrated in the
//! browser (`hydrate`). See ARCHITECTURE.md for the map.

#![cfg_attr(feature = "hydrate", allow(unused_imports))]

// The server and the wasm client must both be built with Leptos's erased components, or the
// client does not hydrate the server's pages (.cargo/config.toml sets it for every build).
#[cfg(not(any(erase_components, doc)))]
compile_error!(
    "build with `--cfg erase_components` (.cargo/config.toml sets it; a RUSTFLAGS in the environment \
     replaces that, so add it there): the server and the wasm client must agree"
);

pub mod states;
pub mod ui;
pub mod views;

#[cfg(feature = "ssr")]
pub mod auth;
#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod connectors;
#[cfg(feature = "ssr")]
pub mod demo;
#[cfg(feature = "ssr")]
pub mod domain;
#[cfg(feature = "ssr")]
pub mod metrics;
#[cfg(feature = "ssr")]
pub mod notify;
#[cfg(feature = "ssr")]
pub mod rest;
#[cfg(feature = "ssr")]
pub mod scale;
#[cfg(feature = "ssr")]
pub mod scim;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod store;
#[cfg(feature = "ssr")]
pub mod telemetry;
#[cfg(all(test, feature = "ssr"))]
mod tidy;

/// The browser entry point: hydrate the server-rendered page (once the code of a lazy page,
/// if this is one, has been fetched: `ui::lazy`).
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_lazy(ui::App);
}
