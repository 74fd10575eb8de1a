//! Test harness: each test gets the real application code over its own fresh database —
//! SQLite in a temporary folder, or a new database in the PostgreSQL cluster named by
//! `QM_TEST_POSTGRES_URL` (the test command starts a private one).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod peers;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use quartermaster::config::ServeArgs;
use quartermaster::demo::{seed_directory_and_catalogs, DemoIds};
use quartermaster::domain::authz::Actor;
use quartermaster::domain::clock::ManualClock;
use quartermaster::domain::ids::UserId;
use quartermaster::server::Application;
use quartermaster::service::Service;
use quartermaster::store::{Backend, Db};

pub struct TestDb {
    pub db: Db,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh, migrated database on the given backend.
pub async fn fresh_db(backend: Backend) -> TestDb {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/qm.db", dir.path().display());
            let db = Db::connect(&url, 8).await.unwrap();
            db.migrate().await.unwrap();
            TestDb { db, url, _dir: Some(dir) }
        }
        Backend::Postgres => {
            let Ok(admin_url) = std::env::var("QM_TEST_POSTGRES_URL") else {
                panic!(
                    "QM_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh, which starts a \
                     private PostgreSQL cluster, or point it at a server (postgres://user@host:port/postgres)"
                );
            };
            let name = format!("qm_test_{}", rand_suffix());
            let admin = Db::connect(&admin_url, 1).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(admin.pool()).await.unwrap();
            admin.pool().close().await;
            let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
            let url = format!("{base}/{name}");
            let db = Db::connect(&url, 8).await.unwrap();
            db.migrate().await.unwrap();
            TestDb { db, url, _dir: None }
        }
    }
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{:x}{:04x}", nanos, std::process::id() & 0xffff)
}

/// The demo organisation over a fresh database, with a clock the test controls.
pub struct World {
    pub test_db: TestDb,
    pub service: Service,
    pub clock: ManualClock,
    pub ids: DemoIds,
}

impl World {
    pub async fn new(backend: Backend) -> Self {
        let test_db = fresh_db(backend).await;
        let ids = seed_directory_and_catalogs(&test_db.db).await.unwrap();
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap());
        let service = Service::with_clock(test_db.db.clone(), Arc::new(clock.clone()));
        World { test_db, service, clock, ids }
    }

    pub async fn actor(&self, id: UserId) -> Actor {
        self.service.actor(id).await.unwrap().expect("active demo user")
    }

    pub fn db(&self) -> &Db {
        &self.test_db.db
    }

    /// Let holders of `package` extend it without approval (its first policy, edited by an
    /// administrator).
    pub async fn allow_extension_without_approval(&self, package: quartermaster::domain::ids::PackageId) {
        let mut policy = {
            let mut conn = self.db().pool().acquire().await.unwrap();
            quartermaster::store::catalog::policies_of(&mut conn, &[package]).await.unwrap().remove(0)
        };
        policy.extension_allowed = true;
        policy.extension_needs_approval = false;
        let admin = self.actor(self.ids.grace).await;
        self.service.package_manager_of(&admin, package).await.unwrap().update_policy(policy).await.unwrap();
    }
}

/// The real server on 127.0.0.1:0 over a fresh database with the demo organisation.
pub struct TestApp {
    pub base: String,
    pub service: Service,
    pub ids: DemoIds,
    _db: TestDb,
}

/// The HTTP helpers: requests to this server as the tests make them. Requests a test makes
/// unusual on purpose (another origin, no origin, another host) are built in the test itself,
/// with [`TestApp::url`].
impl TestApp {
    /// The address of `path` (which starts with `/`) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path` with `c`.
    pub async fn get(&self, c: &reqwest::Client, path: &str) -> reqwest::Response {
        c.get(self.url(path)).send().await.unwrap()
    }

    /// GET `path` with `c`, carrying the session `cookie` itself.
    pub async fn get_with_cookie(&self, c: &reqwest::Client, path: &str, cookie: &str) -> reqwest::Response {
        c.get(self.url(path)).header("cookie", cookie).send().await.unwrap()
    }

    /// The body of the page at `path`, whatever its status (the caller checks what it shows).
    pub async fn page(&self, c: &reqwest::Client, path: &str) -> String {
        self.get(c, path).await.text().await.unwrap()
    }

    /// A POST to `path` from this site (`Origin` the server's own), for the caller to add a
    /// form and headers to.
    pub fn post(&self, c: &reqwest::Client, path: &str) -> reqwest::RequestBuilder {
        c.post(self.url(path)).header("origin", &self.base)
    }

    /// `form` posted to `path` from this site.
    pub async fn post_form<F: serde::Serialize + ?Sized>(
        &self,
        c: &reqwest::Client,
        path: &str,
        form: &F,
    ) -> reqwest::Response {
        self.post(c, path).form(form).send().await.unwrap()
    }

    /// `form` posted to `action` from the page at `page` on this site, the way a browser with
    /// JavaScript off posts a plain form (the answer sends it back to the page).
    pub async fn submit<F: serde::Serialize + ?Sized>(
        &self,
        c: &reqwest::Client,
        page: &str,
        action: &str,
        form: &F,
    ) -> reqwest::Response {
        self.post(c, action).header("referer", self.url(page)).form(form).send().await.unwrap()
    }

    /// Demo sign-in as `user` in the browser `c` (which keeps the session cookie).
    pub async fn sign_in(&self, c: &reqwest::Client, user: UserId) {
        let res = self.post_form(c, "/auth/demo", &[("user_id", user.0.to_string())]).await;
        assert_eq!(res.status(), 303, "demo sign-in redirects home");
    }

    /// Sign out the browser `c`.
    pub async fn sign_out(&self, c: &reqwest::Client) -> reqwest::Response {
        self.post(c, "/auth/signout").send().await.unwrap()
    }

    /// A call of the server function `name` by the browser `c`, the way the hydrated page makes
    /// it (asking for JSON: no redirect back to the page), for the caller to add a form to.
    pub fn server_fn(&self, c: &reqwest::Client, name: &str) -> reqwest::RequestBuilder {
        self.post(c, &format!("/api/{name}")).header("accept", "application/json")
    }

    /// The same call with `form` from a client of its own (no cookie store, following
    /// redirects), carrying the session `cookie` (none when empty).
    pub async fn call_server_fn(&self, cookie: &str, name: &str, form: &[(&str, String)]) -> reqwest::Response {
        let mut req = self.server_fn(&reqwest::Client::new(), name).form(form);
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        req.send().await.unwrap()
    }

    /// A session cookie for `user`, made the way sign-in makes one (for tests that need to act
    /// as someone without going through a sign-in flow).
    pub async fn session_cookie(&self, user: UserId) -> String {
        self.session_cookie_signed_in_at(user, chrono::Utc::now().timestamp_millis()).await
    }

    /// The same, for a sign-in at `signed_in_at` (milliseconds since the epoch).
    pub async fn session_cookie_signed_in_at(&self, user: UserId, signed_in_at: i64) -> String {
        use tower_sessions::session::{Id, Record};
        use tower_sessions::SessionStore;
        let store = quartermaster::store::sessions::DbSessionStore::new(self.service.db().clone());
        let mut data = std::collections::HashMap::new();
        data.insert("user_id".to_owned(), serde_json::json!(user.0));
        data.insert("signed_in_at".to_owned(), serde_json::json!(signed_in_at));
        let mut record =
            Record { id: Id::default(), data, expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1) };
        store.create(&mut record).await.unwrap();
        format!("qm_session={}", record.id)
    }
}

pub async fn spawn_app(backend: Backend, demo: bool) -> TestApp {
    spawn_app_with(backend, |args| args.demo = demo).await
}

/// A free loopback port (bound and released: good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The servers' logs, only when asked for: `QM_TEST_LOG=1` (the server's default filter) or a
/// filter of its own (`QM_TEST_LOG=debug,sqlx=info`). Silent otherwise.
pub fn init_logging() {
    if let Ok(filter) = std::env::var("QM_TEST_LOG") {
        let filter = Some(filter.as_str()).filter(|f| *f != "1");
        quartermaster::telemetry::init_filtered(quartermaster::config::LogFormat::Text, filter);
    }
}

/// The real server with its arguments adjusted by `configure` (port 0 unless it sets one).
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
    try_spawn_app_with(backend, configure).await.unwrap()
}

/// The same, answering the bind error (a port chosen by `free_port` may have been taken by
/// another test meanwhile; the caller can pick another and try again).
pub async fn try_spawn_app_with(backend: Backend, configure: impl FnOnce(&mut ServeArgs)) -> std::io::Result<TestApp> {
    init_logging();
    let test_db = fresh_db(backend).await;
    let ids = seed_directory_and_catalogs(&test_db.db).await.unwrap();
    let mut args = ServeArgs {
        addr: "127.0.0.1:0".parse().unwrap(),
        demo: false,
        site_root: site_root(),
        public_url: None,
        no_workers: false,
        metrics_addr: None,
        oidc: Default::default(),
        limits: Default::default(),
        mail: Default::default(),
    };
    configure(&mut args);
    // The operator's key for connector secrets, as QM_SECRET_KEY gives it in production.
    let key = quartermaster::connectors::secret::SecretKey::from_hex(&"7e".repeat(32)).unwrap();
    let service = Service::new(test_db.db.clone()).with_secret_key(Some(key));
    let app = Application::build_with(service, args).await?;
    let base = format!("http://{}", app.local_addr());
    let service = app.service().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Ok(TestApp { base, service, ids, _db: test_db })
}

/// Where the built client lives (scripts/build.sh puts it there).
pub fn site_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/site")
}

/// A browser-like HTTP client (asks for HTML, keeps cookies) that does not follow redirects.
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::ACCEPT, reqwest::header::HeaderValue::from_static("text/html"));
    reqwest::Client::builder()
        .default_headers(headers)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A client that keeps no cookies (each request says whose session it carries) and does not
/// follow redirects.
pub fn bare_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The `qm_session` cookie a response sets, as a `Cookie` header value.
pub fn session_cookie_of(res: &reqwest::Response) -> String {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("qm_session="))
        .and_then(|v| v.split(';').next())
        .expect("sign-in sets the session cookie")
        .to_owned()
}

/// Generate one `#[tokio::test]` per backend for each listed async fn taking a `Backend`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(quartermaster::store::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(quartermaster::store::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A request for a package with a justification and nothing else.
pub fn ask(package: quartermaster::domain::ids::PackageId, justification: &str) -> quartermaster::service::NewRequest {
    quartermaster::service::NewRequest {
        package,
        policy: None,
        target: None,
        justification: justification.into(),
        answers: vec![],
        start: None,
        end: None,
    }
}

/// The real server (demo sign-in on) whose service, sessions and sign-in read `clock`.
pub async fn spawn_app_with_clock(backend: Backend, clock: ManualClock) -> TestApp {
    init_logging();
    let test_db = fresh_db(backend).await;
    let ids = seed_directory_and_catalogs(&test_db.db).await.unwrap();
    let args = ServeArgs {
        addr: "127.0.0.1:0".parse().unwrap(),
        demo: true,
        site_root: site_root(),
        public_url: None,
        no_workers: false,
        metrics_addr: None,
        oidc: Default::default(),
        limits: Default::default(),
        mail: Default::default(),
    };
    let service = Service::with_clock(test_db.db.clone(), Arc::new(clock));
    let app = Application::build_with(service, args).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let service = app.service().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp { base, service, ids, _db: test_db }
}

/// A package in the Sales catalog granting a built-in role and a role in an external (SCIM)
/// system that has no connector yet: the external grant keeps failing.
pub async fn package_with_an_unreachable_target(
    db: &Db,
    now: chrono::DateTime<chrono::Utc>,
) -> quartermaster::domain::ids::PackageId {
    use quartermaster::domain::ids::{CatalogId, ResourceRoleId};
    use quartermaster::domain::policy::{Policy, RequestorScope};
    use quartermaster::store::catalog;
    let now = now.timestamp_millis();
    let mut tx = db.begin().await.unwrap();
    let cat: i64 = sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Sales & Marketing'")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let scim = catalog::insert_resource_system(
        &mut tx,
        "Corporate SCIM",
        quartermaster::domain::model::ResourceSystemKind::Scim,
        now,
    )
    .await
    .unwrap();
    let remote =
        catalog::insert_resource(&mut tx, scim, CatalogId(cat), "Remote App", "", &["User"], now).await.unwrap();
    let builtin_role: i64 = sqlx::query_scalar(
        "SELECT rr.id FROM resource_roles rr JOIN resources r ON r.id = rr.resource_id WHERE r.name = 'Sales Dashboards'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let pkg = catalog::insert_package(
        &mut tx,
        CatalogId(cat),
        "Remote App",
        "",
        &[remote[0], ResourceRoleId(builtin_role)],
        now,
    )
    .await
    .unwrap();
    let policy = Policy::new(pkg, "Employees", RequestorScope::AllMembers, vec![]);
    catalog::insert_policy(&mut tx, &policy, now).await.unwrap();
    tx.commit().await.unwrap();
    pkg
}

/// `n` new people (demo addresses) with `manager`, created at `now_ms`.
pub async fn hire(
    db: &Db,
    prefix: &str,
    n: usize,
    manager: quartermaster::domain::ids::UserId,
    now_ms: i64,
) -> Vec<quartermaster::domain::ids::UserId> {
    let mut conn = db.pool().acquire().await.unwrap();
    let mut people = Vec::new();
    for i in 0..n {
        let email = format!("{prefix}{i}@quartermaster.example");
        let user = quartermaster::store::directory::NewUser {
            email: &email,
            display_name: &format!("{prefix} {i}"),
            department: "Engineering",
            job_title: "Engineer",
            manager_id: Some(manager),
            kind: quartermaster::domain::model::UserKind::Member,
            connected_org_id: None,
        };
        people.push(quartermaster::store::directory::insert_user(&mut conn, &user, now_ms).await.unwrap());
    }
    people
}
