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
use crate::scim;
use crate::service::Service;
use crate::store::sessions::DbSessionStore;
use crate::store::Db;
use crate::ui::error::AppError;
use crate::ui::{shell, App};

mod rate_limit;

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
    rate_limits: std::sync::Arc<rate_limit::RateLimits>,
    workers: bool,
    /// `/metrics` without a token, on an address of its own (`--metrics-addr`).
    metrics: Option<(tokio::net::TcpListener, SocketAddr)>,
}

impl Application {
    /// Bind (port 0 picks a free port: tests use that) and build the router. The options are
    /// checked first ([`ServeArgs::check`]), and demo mode's database too.
    pub async fn build(db: Db, args: ServeArgs) -> std::io::Result<Self> {
        let key = crate::connectors::secret::SecretKey::from_env().map_err(std::io::Error::other)?;
        let service = Service::new(db).with_secret_key(key);
        Self::build_with(service, args).await
    }

    pub async fn build_with(service: Service, args: ServeArgs) -> std::io::Result<Self> {
        args.check().map_err(std::io::Error::other)?;
        if args.demo {
            crate::demo::check_demo_database(service.db()).await.map_err(std::io::Error::other)?;
        }
        let public = args.public_origin().map_err(std::io::Error::other)?;
        let listener = tokio::net::TcpListener::bind(args.addr).await?;
        let addr = listener.local_addr()?;
        let metrics = match args.metrics_addr {
            Some(at) => {
                let listener = tokio::net::TcpListener::bind(at).await?;
                let addr = listener.local_addr()?;
                Some((listener, addr))
            }
            None => None,
        };
        // Links in emails lead to the portal as people reach it.
        let base_url = args.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
        let service = match args.mail.mailer(&base_url).map_err(std::io::Error::other)? {
            Some(mailer) => service.with_mail(Some(mailer)).with_expiry_warnings(&args.mail.expiring_days),
            None => service,
        };
        let leptos_options = LeptosOptions::builder()
            .output_name("quartermaster")
            .site_root(args.site_root.to_string_lossy().into_owned())
            .site_pkg_dir(bundle_dir(&args.site_root))
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
            link_domains: domains(&args.oidc.link_domains),
            sign_in_domains: domains(&args.oidc.sign_in_domains),
            sign_in_group: args.oidc.sign_in_group.clone().filter(|g| !g.trim().is_empty()),
            trust_provider_emails: args.oidc.trust_email,
        };
        if oidc.is_some() && admins.sign_in_domains.is_empty() && admins.sign_in_group.is_none() {
            tracing::warn!(
                "no sign-in gate: anyone the identity provider signs in becomes a member here; set \
                 --sign-in-domains and/or --sign-in-group"
            );
        }
        let state = AppState {
            leptos_options,
            auth: AuthState {
                service: service.clone(),
                demo: args.demo,
                oidc,
                admins,
                https: args.is_https(),
                public,
                sessions: crate::auth::SessionSettings::from_limits(&args.limits),
            },
        };
        let rate_limits = std::sync::Arc::new(
            rate_limit::RateLimits::new(&args.limits, session_cookie(args.is_https()))
                .map_err(std::io::Error::other)?,
        );
        let body_limit = usize::try_from(args.limits.max_body_kib).unwrap_or(256).saturating_mul(1024);
        let router = router(state, rate_limits.clone(), body_limit);
        Ok(Self { listener, router, addr, service, rate_limits, workers: !args.no_workers, metrics })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Where `/metrics` is served without a token, when `--metrics-addr` asked for it.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, addr)| *addr)
    }

    /// Serve until `shutdown` resolves, with the background workers running beside the
    /// server; in-flight requests finish first.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let listener = self.listener.tap_io(|tcp| {
            // Headers and body go out in separate writes: without this, Nagle's algorithm
            // and delayed ACKs add ~40 ms to every asset on a kept-alive connection.
            let _ = tcp.set_nodelay(true);
        });
        // The peer address keys the per-address rate limits.
        let serve = axum::serve(listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown);
        let rate_limits = self.rate_limits;
        let scrapes = {
            let service = self.service.clone();
            async move {
                let Some((metrics_listener, _)) = self.metrics else { return std::future::pending().await };
                // Only the scrape: no pages, sessions or API here.
                let metrics_router =
                    Router::new().route("/metrics", get(crate::metrics::scrape_unguarded)).with_state(service);
                axum::serve(metrics_listener, metrics_router).await
            }
        };
        let forget = async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                rate_limits.forget_idle();
            }
        };
        let workers = async move {
            if self.workers {
                crate::service::run_workers(self.service, WORKER_INTERVAL).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = serve => result,
            result = scrapes => result,
            () = workers => Ok(()),
            () = forget => Ok(()),
        }
    }
}

/// Lower-case email domains from a setting (a leading `@` is allowed; blanks are dropped).
fn domains(raw: &[String]) -> Vec<String> {
    raw.iter().map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase()).filter(|d| !d.is_empty()).collect()
}

/// The session cookie's name: `__Host-` over https.
fn session_cookie(https: bool) -> &'static str {
    if https {
        "__Host-qm_session"
    } else {
        "qm_session"
    }
}

fn router(state: AppState, rate_limits: std::sync::Arc<rate_limit::RateLimits>, body_limit: usize) -> Router {
    let https = state.auth.https;
    let routes = generate_route_list(App);
    let context = {
        let auth = state.auth.clone();
        let fresh_secrets = crate::ui::api::FreshSecrets::default();
        move || {
            provide_context(fresh_secrets.clone());
            provide_context(auth.service.clone());
            provide_context(crate::ui::DemoMode(auth.demo));
            provide_context(auth.sessions);
            provide_context(crate::ui::NoticeCell::default());
            provide_context(crate::auth::ActorCell::default());
            provide_context(crate::ui::SignInOptions {
                demo: auth.demo,
                provider: auth.oidc.as_ref().map(|o| o.display_name().to_owned()),
                provider_origin: auth.oidc.as_ref().and_then(|o| o.issuer_origin()),
            });
        }
    };
    let service = &state.auth.service;
    let session_cookie = session_cookie(https);
    let idle = time::Duration::milliseconds(state.auth.sessions.idle_ms);
    let edge = std::sync::Arc::new(Edge { public: state.auth.public.clone(), session_cookie });
    let sessions = SessionManagerLayer::new(DbSessionStore::with_clock(service.db().clone(), service.clock().clone()))
        .with_name(session_cookie)
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_secure(https)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle));

    let mut router = Router::new();
    for (path, _, handler) in plain_routes() {
        router = router.route(path, handler);
    }
    // The SCIM service provider, for the identity provider (tests/it/scim.rs walks it).
    for (path, handler) in scim_routes() {
        router = router.route(path, handler);
    }
    router
        // The REST API: every operation is in its OpenAPI document, which the sweep walks.
        .merge(crate::rest::router())
        .leptos_routes_with_context(&state, routes, context.clone(), {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        // The client bundle, brotli- or gzip-precompressed as the browser accepts. The pages
        // name the content-hashed copies, cached for a year; anything else is revalidated.
        .nest_service(
            "/pkg",
            tower::ServiceBuilder::new().layer(middleware::from_fn(bundle_cache_headers)).service(
                tower_http::services::ServeDir::new(site_pkg_dir(&state)).precompressed_br().precompressed_gzip(),
            ),
        )
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(context, shell))
        .layer(middleware::from_fn(server_fn_error_status))
        .layer(middleware::from_fn({
            let edge = edge.clone();
            move |req, next| keep_redirects_here(edge.clone(), req, next)
        }))
        .layer(sessions)
        .layer(middleware::from_fn(move |req, next| limit_body(body_limit, req, next)))
        .layer(middleware::from_fn(move |req, next| rate_limit::enforce(rate_limits.clone(), req, next)))
        .layer(middleware::from_fn(move |req, next| guard_edge(edge.clone(), req, next)))
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
        // Every request counted and timed, through all of the above, by the route it matched
        // (a router's layers wrap each route, so the route is known here).
        .layer(middleware::from_fn_with_state(service.clone(), crate::metrics::record))
        .with_state(state)
}

/// The routes that are not Leptos pages or server functions, in one list that the router is
/// built from and the authorization sweep test enumerates.
pub fn plain_routes() -> Vec<(&'static str, Method, axum::routing::MethodRouter<AppState>)> {
    vec![
        ("/healthz", Method::GET, get(healthz)),
        ("/metrics", Method::GET, get(crate::metrics::scrape)),
        ("/readyz", Method::GET, get(readyz)),
        ("/auth/demo", Method::POST, post(crate::auth::demo_sign_in)),
        ("/auth/login", Method::GET, get(crate::auth::oidc_login)),
        ("/auth/callback", Method::GET, get(crate::auth::oidc_callback)),
        ("/auth/signout", Method::POST, post(crate::auth::sign_out)),
        ("/admin/audit.csv", Method::GET, get(audit_csv)),
        ("/admin/packages/{package}/assignments.csv", Method::GET, get(package_assignments_csv)),
        ("/admin/packages/{package}/bulk", Method::POST, post(bulk_assign)),
        ("/api/v1/openapi.json", Method::GET, get(crate::rest::openapi_json)),
        ("/api/v1/docs", Method::GET, get(crate::rest::docs_index)),
        ("/api/v1/docs/", Method::GET, get(crate::rest::docs_file)),
        ("/api/v1/docs/{*file}", Method::GET, get(crate::rest::docs_file)),
    ]
}

/// The SCIM service provider's routes (`crate::scim`); methods a route does not take answer
/// 405 with a SCIM error, and paths it does not have 404.
fn scim_routes() -> Vec<(&'static str, axum::routing::MethodRouter<AppState>)> {
    let only = |r: axum::routing::MethodRouter<AppState>| r.fallback(scim::method_not_allowed);
    vec![
        ("/scim/v2/ServiceProviderConfig", only(get(scim::service_provider_config))),
        ("/scim/v2/ResourceTypes", only(get(scim::resource_types))),
        ("/scim/v2/ResourceTypes/{id}", only(get(scim::resource_type))),
        ("/scim/v2/Schemas", only(get(scim::schemas))),
        ("/scim/v2/Schemas/{id}", only(get(scim::schema))),
        ("/scim/v2/Users", only(get(scim::list_users).post(scim::create_user))),
        ("/scim/v2/Users/.search", only(post(scim::search_users))),
        (
            "/scim/v2/Users/{id}",
            only(get(scim::get_user).put(scim::replace_user).patch(scim::patch_user).delete(scim::delete_user)),
        ),
        ("/scim/v2/Groups", only(get(scim::list_groups).post(scim::create_group))),
        ("/scim/v2/Groups/.search", only(post(scim::search_groups))),
        (
            "/scim/v2/Groups/{id}",
            only(get(scim::get_group).put(scim::replace_group).patch(scim::patch_group).delete(scim::delete_group)),
        ),
        ("/scim/v2/.search", only(post(scim::search_all))),
        ("/scim/v2", axum::routing::any(scim::not_found)),
        ("/scim/v2/{*rest}", axum::routing::any(scim::not_found)),
    ]
}

/// Where the client bundle is, under the site root: `pkg/<hash>` when `scripts/build.sh` wrote
/// it (the folder named by a hash of its contents, that hash in `pkg/hash.txt`), so the pages
/// name `/pkg/<hash>/quartermaster.js`, `…_bg.wasm` and `….css`, and the script fetches the
/// lazy pages' modules beside it; plain `pkg` for a site built without one.
pub fn bundle_dir(site_root: &std::path::Path) -> String {
    let file = site_root.join("pkg").join("hash.txt");
    let hash = std::fs::read_to_string(&file).unwrap_or_default();
    let hash = hash.trim();
    if is_bundle_hash(hash) {
        format!("pkg/{hash}")
    } else {
        // Pages will name a client that is not there: they work, but without JavaScript.
        tracing::warn!(file = %file.display(), "no client bundle named: build it with scripts/build.sh");
        "pkg".to_owned()
    }
}

fn is_bundle_hash(hash: &str) -> bool {
    hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A file in a bundle's folder (`/<hash>/<file>` under `/pkg`) never changes: cache it for a
/// year without asking again. Every other file is revalidated each time.
fn is_hashed_bundle_file(path: &str) -> bool {
    let mut parts = path.trim_start_matches('/').split('/');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(hash), Some(file), None) if is_bundle_hash(hash) && !file.is_empty() && !file.starts_with('.')
    )
}

/// Caches must also keep the brotli, gzip and plain copies apart (`Vary`), and a revalidation
/// (304) of a hashed file keeps it immutable.
async fn bundle_cache_headers(req: Request, next: Next) -> Response {
    let immutable = is_hashed_bundle_file(req.uri().path());
    let mut res = next.run(req).await;
    let kept = res.status().is_success() || res.status() == StatusCode::NOT_MODIFIED;
    let value = if immutable && kept { "public, max-age=31536000, immutable" } else { "no-cache" };
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    res.headers_mut().append(header::VARY, HeaderValue::from_static("accept-encoding"));
    res
}

/// The folder served at `/pkg`: every bundle built, and `hash.txt`.
fn site_pkg_dir(state: &AppState) -> std::path::PathBuf {
    std::path::Path::new(state.leptos_options.site_root.as_ref()).join("pkg")
}

async fn healthz() -> &'static str {
    "ok"
}

/// A CSV download: a header line, then rows a page at a time until none is left.
pub trait CsvExport: Send + 'static {
    const HEADER: &'static str;
    /// The next page's rows, each a row's fields; `None` once everything was given.
    fn next_rows(
        &mut self,
    ) -> impl std::future::Future<Output = crate::domain::DomainResult<Option<Vec<Vec<String>>>>> + Send;
}

impl CsvExport for crate::service::AuditExport {
    const HEADER: &'static str = "id,at,actor_id,actor,action,object_type,object_id,reason,before,after,token_id\r\n";
    async fn next_rows(&mut self) -> crate::domain::DomainResult<Option<Vec<Vec<String>>>> {
        Ok(self.next_page().await?.map(|events| {
            events
                .into_iter()
                .map(|e| {
                    vec![
                        e.id.to_string(),
                        rfc3339(e.at),
                        e.actor_id.map(|id| id.to_string()).unwrap_or_default(),
                        e.actor,
                        e.action,
                        e.object_type,
                        e.object_id.to_string(),
                        e.reason,
                        e.before,
                        e.after,
                        e.token.map(|t| t.to_string()).unwrap_or_default(),
                    ]
                })
                .collect()
        }))
    }
}

impl CsvExport for crate::service::AssignmentExport {
    const HEADER: &'static str = "assignment_id,user_id,name,email,state,start_at,end_at,policy,request_id\r\n";
    async fn next_rows(&mut self) -> crate::domain::DomainResult<Option<Vec<Vec<String>>>> {
        Ok(self.next_page().await?.map(|rows| {
            rows.into_iter()
                .map(|a| {
                    vec![
                        a.id.to_string(),
                        a.user_id.to_string(),
                        a.name,
                        a.email,
                        a.state.as_str().to_owned(),
                        rfc3339(a.start_at),
                        a.end_at.map(rfc3339).unwrap_or_default(),
                        a.policy,
                        a.request_id.map(|id| id.to_string()).unwrap_or_default(),
                    ]
                })
                .collect()
        }))
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// Refuse a download a browser was sent to by another site (a GET, so the edge's origin check
/// does not apply, and the session cookie is `SameSite=Lax`): a value that is not text counts
/// as foreign, as the edge reads it.
fn from_elsewhere(headers: &http::HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("invalid"))
        .is_some_and(|site| !matches!(site, "same-origin" | "none"))
}

/// The signed-in person of a download, or the answer to give instead (sign in first, coming
/// back to `page`).
async fn download_actor(
    state: &AppState,
    session: &tower_sessions::Session,
    page: &str,
) -> Result<crate::domain::authz::Actor, Response> {
    match crate::auth::session_actor(session, &state.auth.service, &state.auth.sessions).await {
        Ok(Some(actor)) => Ok(actor),
        Ok(None) => {
            let back = url::form_urlencoded::byte_serialize(page.as_bytes()).collect::<String>();
            Err(axum::response::Redirect::to(&format!("/signin?return_to={back}")).into_response())
        }
        Err(e) => Err(error_response(e)),
    }
}

/// Stream `export` as a CSV file named `filename`, never stored by a browser or proxy: the
/// header, then a chunk per page; a failure part way ends the body with an error, so the
/// download is cut short visibly rather than looking complete.
fn csv_download<E: CsvExport>(export: E, filename: &str) -> Response {
    let chunks = futures_util::stream::unfold((true, Some(export)), |(first, export)| async move {
        if first {
            return Some((Ok(E::HEADER.to_owned()), (false, export)));
        }
        let mut export = export?;
        match export.next_rows().await {
            Ok(Some(rows)) => Some((Ok(csv_lines(rows)), (false, Some(export)))),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "an export failed part way");
                Some((Err(std::io::Error::other("the export failed part way")), (false, None)))
            }
        }
    });
    let disposition = format!("attachment; filename=\"{filename}\"");
    let mut res = axum::body::Body::from_stream(chunks).into_response();
    let headers = res.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(http::header::CONTENT_DISPOSITION, value);
    }
    res
}

/// The audit log narrowed by the page's filter, every matching event, as CSV (administrators),
/// streamed a thousand events at a time. Signed-out visitors are sent to sign in; a filter
/// that does not parse answers 422 naming the field; a browser sent here by another site is
/// refused.
async fn audit_csv(
    State(state): State<AppState>,
    session: tower_sessions::Session,
    headers: http::HeaderMap,
    axum::extract::Query(filter): axum::extract::Query<crate::views::AuditFilter>,
) -> Response {
    if from_elsewhere(&headers) {
        return (StatusCode::FORBIDDEN, "the audit export starts from this site's own pages").into_response();
    }
    let actor = match download_actor(&state, &session, "/admin/audit").await {
        Ok(actor) => actor,
        Err(answer) => return answer,
    };
    match state.auth.service.audit_export(&crate::domain::authz::Operator::Person(&actor), &filter).await {
        Ok(export) => csv_download(export, "audit-log.csv"),
        Err(e) => error_response(e),
    }
}

/// A package's assignments narrowed by its page's filter, as CSV (who may read its catalog),
/// streamed a thousand at a time; refused and redirected like the audit export.
async fn package_assignments_csv(
    State(state): State<AppState>,
    session: tower_sessions::Session,
    headers: http::HeaderMap,
    axum::extract::Path(package): axum::extract::Path<i64>,
    axum::extract::Query(filter): axum::extract::Query<crate::views::AssignmentFilter>,
) -> Response {
    if from_elsewhere(&headers) {
        return (StatusCode::FORBIDDEN, "the export starts from this site's own pages").into_response();
    }
    let actor = match download_actor(&state, &session, &format!("/admin/packages/{package}")).await {
        Ok(actor) => actor,
        Err(answer) => return answer,
    };
    let service = &state.auth.service;
    let package = crate::domain::ids::PackageId(package);
    let export = async {
        let reader = service.package_reader(&actor, package).await?;
        reader.export_assignments(package, &filter).await
    };
    match export.await {
        Ok(export) => csv_download(export, "assignments.csv"),
        Err(e) => error_response(e),
    }
}

/// What a bulk assignment form sends: the rows as a file or pasted, the policy, why.
#[derive(Debug, Default, serde::Deserialize)]
struct BulkForm {
    #[serde(default)]
    csv: String,
    policy_id: i64,
    #[serde(default)]
    justification: String,
}

/// Largest file a bulk assignment reads.
pub(crate) const MAX_BULK_FILE: usize = 1 << 20;

/// The form, as a file upload (`multipart/form-data`: a `file`, or `csv` pasted) or as a plain
/// form with the rows pasted; `Err` says why it cannot be read.
async fn read_bulk_form(request: axum::extract::Request) -> Result<BulkForm, String> {
    use axum::extract::FromRequest;
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        let axum::Form(form) = axum::Form::<BulkForm>::from_request(request, &())
            .await
            .map_err(|_| "choose a policy and a file".to_owned())?;
        return Ok(form);
    }
    let mut parts = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|_| "that upload could not be read".to_owned())?;
    let (mut form, mut file, mut policy) = (BulkForm::default(), String::new(), None);
    while let Some(field) = parts.next_field().await.map_err(|_| "that upload could not be read".to_owned())? {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(|_| "that upload could not be read".to_owned())?;
        if bytes.len() > MAX_BULK_FILE {
            return Err(format!("the file is too large: at most {} KiB", MAX_BULK_FILE / 1024));
        }
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| "the file must be text (CSV, UTF-8)".to_owned())?;
        match name.as_str() {
            "file" => file = text,
            "csv" => form.csv = text,
            "policy_id" => policy = text.trim().parse().ok(),
            "justification" => form.justification = text,
            _ => {}
        }
    }
    form.policy_id = policy.ok_or("choose a policy")?;
    if !file.trim().is_empty() {
        form.csv = file;
    }
    Ok(form)
}

/// Bulk assignment from a CSV: the job starts, and the browser goes to its progress page; a
/// form or file that cannot be read goes back to the package's page with the reason, and
/// nothing is started.
async fn bulk_assign(
    State(state): State<AppState>,
    session: tower_sessions::Session,
    axum::extract::Path(package): axum::extract::Path<i64>,
    request: axum::extract::Request,
) -> Response {
    let back = format!("/admin/packages/{package}");
    // A post is not a page: who is not signed in is told so (401), not sent elsewhere.
    let actor = match crate::auth::session_actor(&session, &state.auth.service, &state.auth.sessions).await {
        Ok(Some(actor)) => actor,
        Ok(None) => return error_response(crate::domain::DomainError::Unauthenticated),
        Err(e) => return error_response(e),
    };
    let service = &state.auth.service;
    let package = crate::domain::ids::PackageId(package);
    let started = async {
        let manager = service.assignment_manager_of(&actor, package).await?;
        let form = read_bulk_form(request).await.map_err(|why| crate::domain::DomainError::invalid("file", why))?;
        manager.start_bulk(package, crate::domain::ids::PolicyId(form.policy_id), &form.csv, &form.justification).await
    };
    match started.await {
        Ok(job) => {
            service.run_bulk_job_now(job);
            axum::response::Redirect::to(&format!("/admin/bulk/{job}")).into_response()
        }
        Err(crate::domain::DomainError::Invalid { field, message }) => {
            let notice = crate::views::Notice { ok: false, text: message, field };
            let _ = session.insert(crate::ui::NOTICE_KEY, notice).await;
            axum::response::Redirect::to(&back).into_response()
        }
        Err(e) => error_response(e),
    }
}

/// Write `export` to `out` as the download would give it (the command line's exports).
pub async fn write_csv<E: CsvExport>(mut export: E, out: &mut impl std::io::Write) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("cannot write: {e}");
    out.write_all(E::HEADER.as_bytes()).map_err(failed)?;
    while let Some(rows) = export.next_rows().await.map_err(|e| e.to_string())? {
        out.write_all(csv_lines(rows).as_bytes()).map_err(failed)?;
    }
    out.flush().map_err(failed)
}

/// Rows as CSV lines.
fn csv_lines(rows: Vec<Vec<String>>) -> String {
    let mut csv = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        csv.push_str(&line.join(","));
        csv.push_str("\r\n");
    }
    csv
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break, and when
/// it starts with a character a spreadsheet would read as a formula.
fn csv_field(value: &str) -> String {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula || value.contains([',', '"', '\n', '\r']) {
        let guard = if formula { "'" } else { "" };
        format!("\"{guard}{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// A domain error as a plain answer: its status and message.
fn error_response(e: crate::domain::DomainError) -> Response {
    let e = crate::ui::error::AppError::from(e);
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, e.to_string()).into_response()
}

/// Ready or not, in a fixed word: the reason (a database error can name hosts and users) goes
/// to the log only.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.auth.service.db().readiness().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => {
            tracing::warn!(%why, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
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

/// What the edge checks every request against.
struct Edge {
    /// The public URL's origin, when configured: the only `Host` served (DNS rebinding) and the
    /// only `Origin` unsafe requests may come from.
    public: Option<url::Url>,
    /// The session cookie's name: an unsafe request carrying it must say where it came from.
    session_cookie: &'static str,
}

impl Edge {
    /// Why this request is refused before routing, if it is.
    fn refusal(&self, req: &Request) -> Option<&'static str> {
        let headers = req.headers();
        let host = crate::auth::request_host(headers, req.uri());
        // Health probes name the pod or the address they dial: they may use any host.
        let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
        match &self.public {
            Some(public) if !probe && !host.is_some_and(|h| names_host_of(h, public)) => {
                return Some("the request names a host that is not the public URL's");
            }
            // Without a public URL the server listens on loopback only (`ServeArgs::check`),
            // and answers only loopback names: a page elsewhere whose name resolves here
            // (DNS rebinding) is refused.
            None if !probe && !host.is_some_and(crate::auth::is_loopback_host) => {
                return Some("the request names a host that is not this computer");
            }
            _ => {}
        }
        if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            return None;
        }
        let site = headers.get("sec-fetch-site").map(|v| v.to_str().unwrap_or("invalid"));
        if site.is_some_and(|site| !matches!(site, "same-origin" | "none")) {
            return Some("Sec-Fetch-Site says the request came from another site");
        }
        match headers.get(header::ORIGIN) {
            Some(origin) => {
                let origin = url::Url::parse(origin.to_str().unwrap_or("null")).ok();
                let same = match (&origin, &self.public, host) {
                    (Some(origin), Some(public), _) => origin.origin() == public.origin(),
                    (Some(origin), None, Some(host)) => host_origin(origin.scheme(), host) == Some(origin.origin()),
                    _ => false,
                };
                if !same {
                    return Some("Origin is not this site");
                }
            }
            None if site.is_none() && crate::auth::cookie_value(headers, self.session_cookie).is_some() => {
                return Some("a signed-in request without Origin or Sec-Fetch-Site");
            }
            None => {}
        }
        None
    }
}

/// The origin a `Host` header names under this scheme (nothing for anything but `host[:port]`).
fn host_origin(scheme: &str, host: &str) -> Option<url::Origin> {
    let url = url::Url::parse(&format!("{scheme}://{host}/")).ok()?;
    let plain = url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    plain.then(|| url.origin())
}

/// Does `host[:port]` (a `Host` header) name the public URL's host and port?
fn names_host_of(host: &str, public: &url::Url) -> bool {
    host_origin(public.scheme(), host) == Some(public.origin())
}

/// Refuse, before routing: an unsafe request from another site (`Sec-Fetch-Site`, or an
/// `Origin` that is not the public URL's — or, with none configured, not the `Host`), a
/// signed-in unsafe request that says neither where it came from, and — with a public URL —
/// any request naming another host (DNS rebinding).
async fn guard_edge(edge: std::sync::Arc<Edge>, req: Request, next: Next) -> Response {
    if let Some(why) = edge.refusal(&req) {
        tracing::warn!(method = %req.method(), path = %req.uri().path(), why, "request refused at the edge");
        return (StatusCode::FORBIDDEN, "Cross-site or misdirected requests are not accepted.").into_response();
    }
    next.run(req).await
}

/// A server function called by a plain form is redirected back to its `Referer`: only ever
/// to this site (the Referer as it is when it is this site's, `/` otherwise).
async fn keep_redirects_here(edge: std::sync::Arc<Edge>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let host = crate::auth::request_host(req.headers(), req.uri()).map(str::to_owned);
    let mut res = next.run(req).await;
    let Some(location) = res.headers().get(header::LOCATION).map(|l| l.to_str().unwrap_or("").to_owned()) else {
        return res;
    };
    let here = match url::Url::parse(&location) {
        Ok(url) => {
            let same = match (&edge.public, host.as_deref()) {
                (Some(public), _) => url.origin() == public.origin(),
                (None, Some(host)) => host_origin(url.scheme(), host) == Some(url.origin()),
                (None, None) => false,
            };
            same && is_a_path_here(&url[url::Position::BeforePath..], edge.public.as_ref())
        }
        Err(_) => is_a_path_here(&location, edge.public.as_ref()),
    };
    if !here {
        tracing::warn!(location = %crate::auth::sanitize_for_log(&location), "redirect off this site replaced");
        res.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/"));
    }
    res
}

/// Does this path pass [`crate::auth::same_origin_path`] (which gives `/` for anything else)?
fn is_a_path_here(path: &str, public: Option<&url::Url>) -> bool {
    path == "/" || crate::auth::same_origin_path(Some(path), public) != "/"
}

/// Read the body up to `limit` bytes (`--max-body-kib`; a form post is a few KiB); anything
/// larger answers 413 before a handler runs.
async fn limit_body(limit: usize, req: Request, next: Next) -> Response {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request is too large (at most {} KiB); nothing was changed.", limit / 1024),
        )
            .into_response()
    };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Err(e) => {
            tracing::warn!(error = %e, "request body refused");
            too_large()
        }
    }
}

async fn security_headers(req: Request, next: Next, https: bool) -> Response {
    // Pages (they show a signed-in person's data), server-function answers, sign-in and the
    // admin area's exports are never stored by a browser or a proxy; the client bundle sets
    // its own policy.
    let dynamic = {
        let path = req.uri().path();
        path.starts_with("/api/") || path.starts_with("/auth/") || path.starts_with("/admin/")
    };
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let html = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/html"));
    if (dynamic || html) && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("request.approved"), "request.approved");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field(r#"{"state":"x"}"#), r#""{""state"":""x""}""#);
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(csv_field(""), "");
    }

    #[test]
    fn only_content_hashed_bundle_files_are_cached_for_good() {
        for hashed in [
            "/0123456789abcdef/quartermaster.js",
            "/0123456789abcdef/quartermaster_bg.wasm",
            "/0123456789abcdef/quartermaster.css",
            "0123456789abcdef/split_lazy_admin.wasm",
        ] {
            assert!(is_hashed_bundle_file(hashed), "{hashed}");
        }
        for plain in [
            "/quartermaster.js",
            "/quartermaster_bg.wasm",
            "/0123456789abcdef",
            "/0123456789abcdef/",
            "/0123456789abcdef/.partial",
            "/0123456789abcdef/a/b.js",
            "/0123456789ABCDEF/quartermaster.js",
            "/0123456789abcde/quartermaster.js",
            "/hash.txt",
            "/éééééééééééééééé/quartermaster.js",
        ] {
            assert!(!is_hashed_bundle_file(plain), "{plain}");
        }
    }

    #[test]
    fn the_bundle_folder_comes_from_the_hash_the_build_wrote() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bundle_dir(dir.path()), "pkg", "no hash file: the plain folder");
        std::fs::create_dir_all(dir.path().join("pkg")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("pkg/hash.txt"), "not a hash\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bundle_dir(dir.path()), "pkg", "a damaged file is not trusted");
        std::fs::write(dir.path().join("pkg/hash.txt"), "../../../etc\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bundle_dir(dir.path()), "pkg", "nor a path");
        std::fs::write(dir.path().join("pkg/hash.txt"), "0123456789abcdef\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bundle_dir(dir.path()), "pkg/0123456789abcdef");
    }
}
