//! The pages. Rendered on the server with their data, hydrated in the browser; every form is
//! a real `<form>` that also works with JavaScript off.

pub mod api;
pub mod error;
mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{hooks::use_location, path, SsrMode};

use crate::views::{Notice, Viewer};
use api::get_viewer;

/// Whether demo sign-in is on (server context).
#[derive(Clone, Copy, Debug)]
pub struct DemoMode(pub bool);

/// How people can sign in here (server context).
#[derive(Clone, Debug, Default)]
pub struct SignInOptions {
    pub demo: bool,
    /// The identity provider's display name, when OIDC sign-in is configured.
    pub provider: Option<String>,
    /// The identity provider's origin (sign-out forms end up there).
    pub provider_origin: Option<String>,
}

/// The Content-Security-Policy of a rendered page: scripts only with this response's nonce
/// (Leptos puts it on every script it emits) and what they load, wasm allowed, no framing.
#[cfg(feature = "ssr")]
fn set_content_security_policy() {
    let Some(nonce) = leptos::nonce::use_nonce() else { return };
    let provider = use_context::<SignInOptions>().and_then(|o| o.provider_origin).unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self' {provider}"
    );
    if let (Some(res), Ok(value)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        http::HeaderValue::from_str(policy.trim_end()),
    ) {
        res.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let viewer = Resource::new(|| (), |_| get_viewer());
    provide_context(viewer);
    // Only the browser runs effects: this marks the page as hydrated (tests wait for it).
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="app-css" href="/pkg/quartermaster.css" />
        <Title formatter=|t: String| if t.is_empty() { "Quartermaster".to_owned() } else { format!("{t} · Quartermaster") } />
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <Header />
            <main id="main" class="main">
                // Async rendering: the first paint carries the page's data, and redirects and
                // status codes (403/404) reach the response.
                <Routes fallback=pages::NotFound>
                    <Route path=path!("/") view=pages::MyAccess ssr=SsrMode::Async />
                    <Route path=path!("/packages/:id") view=pages::PackagePage ssr=SsrMode::Async />
                    <Route path=path!("/approvals") view=pages::Approvals ssr=SsrMode::Async />
                    <Route path=path!("/admin") view=pages::Admin ssr=SsrMode::Async />
                    <Route path=path!("/signin") view=pages::SignIn ssr=SsrMode::Async />
                </Routes>
            </main>
            <footer class="footer">"Quartermaster · access governance you can audit"</footer>
        </Router>
    }
}

/// The viewer resource the app provides.
pub fn use_viewer() -> Resource<Result<Option<Viewer>, error::AppError>> {
    expect_context()
}

#[component]
fn Header() -> impl IntoView {
    let viewer = use_viewer();
    let menu_open = RwSignal::new(false);
    view! {
        <header class="topbar">
            <a class="brand" href="/">
                <span class="brand-mark" aria-hidden="true">"Q"</span>
                "Quartermaster"
            </a>
            <button
                class="menu-toggle"
                aria-label="Menu"
                aria-expanded=move || menu_open.get().to_string()
                on:click=move |_| menu_open.update(|o| *o = !*o)
            >
                "☰"
            </button>
            <Suspense fallback=|| ()>
                {move || {
                    viewer
                        .get()
                        .map(|v| match v {
                            Ok(Some(v)) => view! { <Nav viewer=v open=menu_open /> }.into_any(),
                            _ => view! { <nav class="nav"><a href="/signin">"Sign in"</a></nav> }.into_any(),
                        })
                }}
            </Suspense>
        </header>
    }
}

#[component]
fn Nav(viewer: Viewer, open: RwSignal<bool>) -> impl IntoView {
    let pending = viewer.pending_approvals;
    view! {
        <nav class="nav" class:open=move || open.get() aria-label="Main">
            <A href="/" exact=true>"My Access"</A>
            {viewer.approver.then(|| view! {
                <A href="/approvals">
                    "Approvals"
                    {(pending > 0).then(|| view! {
                        <span class="badge" aria-label=format!("{pending} pending")>{pending}</span>
                    })}
                </A>
            })}
            {viewer.admin_area.then(|| view! { <A href="/admin">"Admin"</A> })}
            <span class="who" title=viewer.email.clone()>
                <span class="avatar" aria-hidden="true">{initials(&viewer.name)}</span>
                <span class="who-name">{viewer.name.clone()}</span>
            </span>
            <form method="post" action="/auth/signout" class="inline">
                <button type="submit" class="btn-link">"Sign out"</button>
            </form>
        </nav>
    }
}

pub fn initials(name: &str) -> String {
    name.split_whitespace().filter_map(|w| w.chars().next()).take(2).collect()
}

/// A one-line result of an action: green for done, red for refused.
#[component]
pub fn NoticeBanner(notice: Notice) -> impl IntoView {
    let class = if notice.ok { "notice ok" } else { "notice err" };
    view! { <p class=class role=if notice.ok { "status" } else { "alert" }>{notice.text}</p> }
}

/// Where the viewer is, for redirects back after sign-in.
pub fn current_path() -> String {
    use_location().pathname.get_untracked()
}

/// Format a Unix-millisecond time as a readable UTC date and time.
pub fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// "in 3 days", "2 hours ago", relative to `now`.
pub fn relative(ms: i64, now: i64) -> String {
    let diff = (ms - now) / 1000;
    let (n, unit) = match diff.abs() {
        s if s < 90 => return "just now".into(),
        s if s < 90 * 60 => (s / 60, "minute"),
        s if s < 36 * 3600 => (s / 3600, "hour"),
        s => (s / 86400, "day"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if diff > 0 {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = 1_000_000_000_000;
        assert_eq!(relative(now + 3 * 86_400_000, now), "in 3 days");
        assert_eq!(relative(now - 2 * 3_600_000, now), "2 hours ago");
        assert_eq!(relative(now + 10_000, now), "just now");
        assert_eq!(relative(now - 60_000 * 5, now), "5 minutes ago");
        assert_eq!(initials("Grace Brewster Hopper"), "GB");
    }
}
