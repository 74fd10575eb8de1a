//! The pages. Rendered on the server with their data, hydrated in the browser; every form is
//! a real `<form>` that also works with JavaScript off.

pub mod api;
pub mod components;
pub mod error;
pub(crate) mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{hooks::use_location, path, Lazy, SsrMode};

use crate::views::{Notice, Viewer};
use api::get_viewer;
use components::initials;

/// Whether demo sign-in is on (server context).
#[derive(Clone, Copy, Debug)]
pub struct DemoMode(pub bool);

/// Where the outcome of a plain form post waits in the session for the next page.
pub const NOTICE_KEY: &str = "notice";

/// The notice taken from the session for this request (server context, one per request).
#[derive(Clone, Debug, Default)]
pub struct NoticeCell(pub std::sync::Arc<std::sync::OnceLock<Option<Notice>>>);

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
    if let (Some(res), Ok(value)) =
        (use_context::<leptos_axum::ResponseOptions>(), http::HeaderValue::from_str(policy.trim_end()))
    {
        res.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    set_content_security_policy();
    // The stylesheet named like the bundle (content-hashed when the build hashed it), in the
    // server-rendered head: the client never changes it.
    let css = format!("/{}/{}.css", options.site_pkg_dir, options.output_name);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <link rel="stylesheet" id="app-css" href=css />
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
    let tz = RwSignal::new(initial_tz());
    provide_context(TzOffset(tz));
    track_browser_tz(tz);
    // Only the browser runs effects: this marks the page as hydrated (tests wait for it).
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Title formatter=|t: String| if t.is_empty() { "Quartermaster".to_owned() } else { format!("{t} · Quartermaster") } />
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <Header />
            <main id="main" class="main">
                // Async rendering: the first paint carries the page's data, and redirects and
                // status codes (403/404) reach the response. The administrators' pages, the
                // reviews and the tokens are lazy: their code is a part of the client the
                // browser fetches when one is first shown (see `lazy`).
                <Routes fallback=pages::NotFound>
                    <Route path=path!("/") view=pages::MyAccess ssr=SsrMode::Async />
                    <Route path=path!("/packages/:id") view=pages::PackagePage ssr=SsrMode::Async />
                    <Route path=path!("/approvals") view=pages::Approvals ssr=SsrMode::Async />
                    <Route path=path!("/reviews") view={Lazy::<lazy::MyReviews>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/tokens") view={Lazy::<lazy::Tokens>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/settings") view=pages::Settings ssr=SsrMode::Async />
                    <Route path=path!("/admin/reviews") view={Lazy::<lazy::ReviewsAdmin>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin") view={Lazy::<lazy::Admin>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/audit") view={Lazy::<lazy::AuditLog>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/catalogs") view={Lazy::<lazy::Catalogs>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/catalogs/:catalog") view={Lazy::<lazy::CatalogPage>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/packages/:package") view={Lazy::<lazy::PackageAdmin>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/drafts/:draft/:step") view={Lazy::<lazy::Builder>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/bulk/:job") view={Lazy::<lazy::BulkJob>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/people") view={Lazy::<lazy::People>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/orgs") view={Lazy::<lazy::Orgs>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/connectors") view={Lazy::<lazy::Connectors>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/service-accounts") view={Lazy::<lazy::ServiceAccountsPage>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/connectors/:system") view={Lazy::<lazy::ConnectorPage>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/admin/people/:user") view={Lazy::<lazy::Person>::new()} ssr=SsrMode::Async />
                    <Route path=path!("/signin") view=pages::SignIn ssr=SsrMode::Async />
                </Routes>
            </main>
            <footer class="footer">"Quartermaster · access governance you can audit"</footer>
        </Router>
    }
}

/// The pages whose code the browser loads when it first shows one. The build splits the
/// client at each (`scripts/build.sh`: `wasm-split-cli` cuts a module per route out of the
/// wasm, and what only they use goes with them), so a person who never opens the admin area
/// never downloads it. On the server they are ordinary pages.
mod lazy {
    use leptos::prelude::*;
    use leptos_router::{lazy_route, LazyRoute};

    use super::pages;

    macro_rules! lazy_pages {
        ($($page:ident),* $(,)?) => {$(
            pub struct $page;

            #[lazy_route]
            impl LazyRoute for $page {
                fn data() -> Self {
                    $page
                }

                fn view(_this: Self) -> AnyView {
                    view! { <pages::$page /> }.into_any()
                }
            }
        )*};
    }

    lazy_pages!(
        MyReviews,
        Tokens,
        ReviewsAdmin,
        Admin,
        AuditLog,
        Catalogs,
        CatalogPage,
        PackageAdmin,
        Builder,
        BulkJob,
        People,
        Orgs,
        Connectors,
        ServiceAccountsPage,
        ConnectorPage,
        Person,
    );
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
    let reviews = viewer.pending_reviews;
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
            {(reviews > 0).then(|| view! {
                <A href="/reviews">
                    "Reviews"
                    <span class="badge" aria-label=format!("{reviews} to review")>{reviews}</span>
                </A>
            })}
            {viewer.admin_area.then(|| view! { <A href="/admin">"Admin"</A> })}
            <A href="/settings" attr:class="who" attr:title=format!("{}: your settings", viewer.email)>
                <span class="avatar" aria-hidden="true">{initials(&viewer.name)}</span>
                <span class="who-name">{viewer.name.clone()}</span>
            </A>
            <form method="post" action="/auth/signout" class="inline">
                <button type="submit" class="btn-link">"Sign out"</button>
            </form>
        </nav>
    }
}

/// Where the viewer is, for redirects back after sign-in.
pub fn current_path() -> String {
    use_location().pathname.get_untracked()
}

/// The viewer's offset from UTC in minutes (east positive). The browser reports it in a
/// cookie (`qm_tz`) that the server reads, so server-rendered and hydrated times agree.
#[derive(Clone, Copy, Debug)]
pub struct TzOffset(pub RwSignal<i32>);

const TZ_COOKIE: &str = "qm_tz";

fn tz_from_cookies(cookies: &str) -> Option<i32> {
    cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == TZ_COOKIE)
        .and_then(|(_, v)| v.parse::<i32>().ok())
        .filter(|m| m.abs() <= 14 * 60)
}

/// The offset the page is rendered with: the cookie's, on the server and while hydrating.
fn initial_tz() -> i32 {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>()
            .and_then(|p| p.headers.get(http::header::COOKIE).and_then(|v| v.to_str().ok().and_then(tz_from_cookies)))
            .unwrap_or(0)
    }
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        document()
            .dyn_into::<web_sys::HtmlDocument>()
            .ok()
            .and_then(|d| d.cookie().ok())
            .and_then(|c| tz_from_cookies(&c))
            .unwrap_or(0)
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        0
    }
}

/// In the browser: learn the real offset, remember it in the cookie for the next server
/// render, and re-render the times on this page.
fn track_browser_tz(tz: RwSignal<i32>) {
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        use wasm_bindgen::JsCast;
        let offset = -(js_sys::Date::new_0().get_timezone_offset() as i32);
        if let Ok(doc) = document().dyn_into::<web_sys::HtmlDocument>() {
            let _ = doc.set_cookie(&format!("{TZ_COOKIE}={offset}; Path=/; Max-Age=31536000; SameSite=Lax"));
        }
        if tz.get_untracked() != offset {
            tz.set(offset);
        }
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = tz;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_zone_cookie() {
        assert_eq!(tz_from_cookies("a=1; qm_tz=-300"), Some(-300));
        assert_eq!(tz_from_cookies("qm_tz=99999"), None);
    }
}
