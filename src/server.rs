//! The HTTP server: router, state, layers, and the background workers beside it.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{FromRef, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::auth::AuthState;
use crate::config::ServeArgs;
use crate::service::Service;
use crate::store::sessions::DbSessionStore;
use crate::store::Db;
use crate::ui::error::AppError;
use crate::ui::{shell, App};

/// Everything a handler or server function may need.
#[derive(Clone, Debug)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    /// The service, sign-in options and transport facts (https: secure cookies, HSTS).
    pub auth: AuthState,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl FromRef<AppState> for AuthState {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// The built application: a bound listener and its router, ready to run.
pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    addr: SocketAddr,
    service: Service,
}

impl Application {
    /// Bind (port 0 picks a free port: tests use that) and build the router.
    pub async fn build(db: Db, args: ServeArgs) -> std::io::Result<Self> {
        args.check().map_err(std::io::Error::other)?;
        let service = Service::new(db);
        Self::build_with(service, args).await
    }

    pub async fn build_with(service: Service, args: ServeArgs) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(args.addr).await?;
        let addr = listener.local_addr()?;
        let leptos_options = LeptosOptions::builder()
            .output_name("quartermaster")
            .site_root(args.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();
        let oidc = args
            .oidc_config()
            .map_err(std::io::Error::other)?
            .map(crate::auth::oidc::Oidc::new)
            .transpose()
            .map_err(std::io::Error::other)?
            .map(std::sync::Arc::new);
        let admins = crate::service::directory::AdminBootstrap {
            emails: args.oidc.admin_emails.iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect(),
            group: args.oidc.admin_group.clone(),
        };
        let state = AppState {
            leptos_options,
            auth: AuthState { service: service.clone(), demo: args.demo, oidc, admins, https: args.is_https() },
        };
        let router = router(state);
        Ok(Self { listener, router, addr, service })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Serve until `shutdown` resolves, with the background workers running beside the
    /// server; in-flight requests finish first.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let listener = self.listener.tap_io(|tcp| {
            // Headers and body go out in separate writes: without this, Nagle's algorithm
            // and delayed ACKs add ~40 ms to every asset on a kept-alive connection.
            let _ = tcp.set_nodelay(true);
        });
        let serve = axum::serve(listener, self.router.into_make_service()).with_graceful_shutdown(shutdown);
        tokio::select! {
            result = serve => result,
            () = crate::service::run_workers(self.service, WORKER_INTERVAL) => Ok(()),
        }
    }
}

fn router(state: AppState) -> Router {
    let https = state.auth.https;
    let routes = generate_route_list(App);
    let context = {
        let auth = state.auth.clone();
        move || {
            provide_context(auth.service.clone());
            provide_context(crate::ui::DemoMode(auth.demo));
            provide_context(crate::ui::NoticeCell::default());
            provide_context(crate::ui::SignInOptions {
                demo: auth.demo,
                provider: auth.oidc.as_ref().map(|o| o.display_name().to_owned()),
                provider_origin: auth.oidc.as_ref().and_then(|o| o.issuer_origin()),
            });
        }
    };
    let service = &state.auth.service;
    let sessions = SessionManagerLayer::new(DbSessionStore::with_clock(service.db().clone(), service.clock().clone()))
        .with_name(if https { "__Host-qm_session" } else { "qm_session" })
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_secure(https)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(8)));

    let mut router = Router::new();
    for (path, _, handler) in plain_routes() {
        router = router.route(path, handler);
    }
    router
        .leptos_routes_with_context(&state, routes, context.clone(), {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        // The client bundle: gzip-precompressed when the browser accepts it; names are not
        // hashed, so browsers revalidate (ETag/Last-Modified) instead of caching blindly.
        .nest_service(
            "/pkg",
            tower::ServiceBuilder::new()
                .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                ))
                .service(tower_http::services::ServeDir::new(site_pkg_dir(&state)).precompressed_gzip()),
        )
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(context, shell))
        .layer(middleware::from_fn(server_fn_error_status))
        .layer(sessions)
        .layer(middleware::from_fn(reject_cross_site))
        .layer(middleware::from_fn(move |req, next| security_headers(req, next, https)))
        .layer(
            TraceLayer::new_for_http()
                // One line per request at info, inside the span that carries its request id.
                .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO))
                .make_span_with(|req: &Request| {
                    let id = req
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The routes that are not Leptos pages or server functions, in one list that the router is
/// built from and the authorization sweep test enumerates.
pub fn plain_routes() -> Vec<(&'static str, Method, axum::routing::MethodRouter<AppState>)> {
    vec![
        ("/healthz", Method::GET, get(healthz)),
        ("/readyz", Method::GET, get(readyz)),
        ("/auth/demo", Method::POST, post(crate::auth::demo_sign_in)),
        ("/auth/login", Method::GET, get(crate::auth::oidc_login)),
        ("/auth/callback", Method::GET, get(crate::auth::oidc_callback)),
        ("/auth/signout", Method::POST, post(crate::auth::sign_out)),
    ]
}

fn site_pkg_dir(state: &AppState) -> std::path::PathBuf {
    let o = &state.leptos_options;
    std::path::Path::new(o.site_root.as_ref()).join(o.site_pkg_dir.as_ref())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.auth.service.db().readiness().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => {
            tracing::warn!(%why, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
        }
    }
}

/// The status of a server function's error answer, chosen here, once, from the error itself.
///
/// A server function that returns `Err` (or whose arguments do not even parse) answers 500
/// with the error as JSON and the `serverfnerror` header; the status the error calls for
/// ([`AppError::status`], the table pages use too) replaces that 500 here. Nothing upstream
/// sets a status from an error, so an `Ok` answer stays 200 whatever errors were handled on
/// the way, and a plain HTML form keeps the redirect back to its page.
async fn server_fn_error_status(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if res.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !res.headers().contains_key(leptos::server_fn::error::SERVER_FN_ERROR_HEADER)
    {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, 1 << 20).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "unreadable server function error");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if let Some(status) =
        serde_json::from_slice::<AppError>(&bytes).ok().and_then(|error| StatusCode::from_u16(error.status()).ok())
    {
        parts.status = status;
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Cross-site request forgery: a state-changing request that the browser says came from
/// another site (Sec-Fetch-Site) or another origin (Origin) is refused. Forms posted from our
/// own pages say `same-origin`; tools without a browser send neither header.
async fn reject_cross_site(req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && is_cross_site(&req) {
        tracing::warn!(method = %req.method(), path = %req.uri().path(), "cross-site request refused");
        return (StatusCode::FORBIDDEN, "Cross-site requests are not accepted.").into_response();
    }
    next.run(req).await
}

fn is_cross_site(req: &Request) -> bool {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (Some(origin), Some(host)) => {
            let origin = origin.to_str().unwrap_or("");
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            origin == "null" || Some(origin_host) != host.to_str().ok()
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

async fn security_headers(req: Request, next: Next, https: bool) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Pages set their own policy (with the response's script nonce); everything else gets a
    // strict default.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"),
        );
    }
    if https {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    res
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// How often the background workers look for work.
pub const WORKER_INTERVAL: Duration = Duration::from_secs(2);
