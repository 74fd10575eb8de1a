//! Operations: each one authorizes the actor, runs the domain's rules inside one database
//! transaction, and writes the change, its audit event and its outbox entries together.
//!
//! Server functions, REST handlers and background jobs all call these, so a rule lives in
//! one place.

mod admin;
mod assignments;
mod audit;
mod birthright;
pub mod bulk;
pub mod capability;
mod catalog;
mod catalog_admin;
mod connector_admin;
mod delivery;
mod deputies;
pub mod directory;
pub mod drafts;
mod events;
mod guests;
mod import;
mod imports;
mod leavers;
pub mod notifications;
mod operator;
mod orgs;
mod package_admin;
pub mod packages_code;
mod reconcile;
mod requests;
mod reviews;
pub mod role_sync;
pub mod scim;
mod snapshot;
pub mod tokens;
mod views;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::clock::{Clock, SystemClock};
use crate::store::Db;

pub use admin::Incompatible;
pub use audit::{AuditAnchor, AuditExport, ChainCheck};
pub use delivery::{DeliveryReport, FailedWork, DELIVERY_BATCH};
pub use import::{ImportLine, Imported};
pub use leavers::Offboarded;
pub use operator::AdminMade;
pub use package_admin::AssignmentExport;
pub use reconcile::{summary as drift_summary, Repaired};
pub use requests::{NewRequest, RequestOutcome};

/// The application's operations over one database and one clock.
#[derive(Clone, Debug)]
pub struct Service {
    db: Db,
    clock: Arc<dyn Clock>,
    /// This instance's name on the delivery leases it takes.
    worker: Arc<str>,
    checkpoints: Checkpoints,
    /// The catalog as the pages show it, kept between requests ([`snapshot`]).
    catalog: Arc<snapshot::SnapshotCache>,
    /// Held while this instance walks the audit chain (one walk at a time).
    chain_walk: Arc<tokio::sync::Mutex<()>>,
    /// Held while this instance runs a bulk assignment (one at a time: uploads queue, and the
    /// pool and SQLite's writer stay free for everyone else).
    bulk_turn: Arc<tokio::sync::Mutex<()>>,
    /// The operator's key for connector secrets (none: connectors with secrets cannot be added
    /// or used).
    secret_key: Option<Arc<crate::connectors::secret::SecretKey>>,
    /// Where email notifications go (none: no SMTP server is set, and none are queued).
    mail: Option<Arc<crate::notify::Mailer>>,
    /// Days before an assignment ends that its holder is warned (`--notify-expiring-days`).
    expiry_warnings: Arc<[u32]>,
    /// This instance's metrics (`/metrics`).
    metrics: Arc<crate::metrics::Metrics>,
    /// The API token the operations of this handle are called through (the REST API's): every
    /// audit event they write names it ([`Self::through_token`]).
    via_token: Option<i64>,
}

type CheckpointFn =
    dyn Fn(&'static str) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync;

/// Named points inside operations, each after the operation has read what its rule depends on
/// and before it writes (`assignment.ending`, `access.granting`, `assignment.expiring`,
/// `assignment.extending`, `delivery.claimed`, `decision.locked`, `catalog.role_revoking`,
/// `role.revoking`).
/// Tests park an operation there to force an interleaving with another one; in production none
/// is set and a checkpoint costs a branch.
#[derive(Clone, Default)]
struct Checkpoints(Option<Arc<CheckpointFn>>);

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Checkpoints(set)" } else { "Checkpoints(none)" })
    }
}

impl Service {
    pub fn new(db: Db) -> Self {
        Self::with_clock(db, Arc::new(SystemClock))
    }

    pub fn with_clock(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            worker: worker_name().into(),
            checkpoints: Checkpoints::default(),
            catalog: Arc::default(),
            chain_walk: Arc::default(),
            bulk_turn: Arc::default(),
            secret_key: None,
            mail: None,
            expiry_warnings: Arc::from(DEFAULT_EXPIRY_WARNINGS),
            metrics: Arc::default(),
            via_token: None,
        }
    }

    /// This service for the calls of one API token: the audit events its changes write say
    /// "API token N" in their reason, so the trail tells a script's change from a person's.
    pub fn through_token(&self, token: i64) -> Self {
        Self { via_token: Some(token), ..self.clone() }
    }

    /// This service with the operator's key for connector secrets.
    pub fn with_secret_key(mut self, key: Option<crate::connectors::secret::SecretKey>) -> Self {
        self.secret_key = key.map(Arc::new);
        self
    }

    /// This service sending email notifications through `mail` (none: no emails are queued).
    pub fn with_mail(mut self, mail: Option<crate::notify::Mailer>) -> Self {
        self.mail = mail.map(Arc::new);
        self
    }

    /// This service warning holders these many days before their access ends.
    pub fn with_expiry_warnings(mut self, days: &[u32]) -> Self {
        self.expiry_warnings = Arc::from(days);
        self
    }

    /// The same service with a hook called at every checkpoint (for tests that force
    /// interleavings; see [`Checkpoints`]).
    pub fn with_checkpoints(
        mut self,
        hook: impl Fn(&'static str) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.checkpoints = Checkpoints(Some(Arc::new(hook)));
        self
    }

    async fn checkpoint(&self, name: &'static str) {
        if let Some(hook) = &self.checkpoints.0 {
            hook(name).await;
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The clock every operation reads "now" from (sessions and sign-in use it too).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Forget OpenID Connect sign-ins that were started and never finished.
    #[tracing::instrument(name = "forget_abandoned_sign_ins", skip_all)]
    pub async fn forget_abandoned_sign_ins(&self) -> crate::domain::DomainResult<u64> {
        let _turn = self.db.write_turn().await?;
        let mut conn = self.db.pool().acquire().await?;
        let before = self.now().timestamp_millis() - crate::auth::oidc::LOGIN_TTL_MS;
        Ok(crate::store::logins::purge(&mut conn, before).await?)
    }
}

/// Days before an assignment ends that its holder is warned, unless set otherwise.
pub const DEFAULT_EXPIRY_WARNINGS: &[u32] = &[14, 3];

/// A name for this instance's worker, unique enough to tell two instances' leases apart.
fn worker_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    format!("{host}:{}:{:016x}", std::process::id(), rand::random::<u64>())
}

/// The background workers: delivery, notifications, stage time-outs, expiry, and (every few minutes)
/// forgetting expired sessions and abandoned sign-ins. Every instance may run them; each piece
/// of work is claimed by a guarded update, so two instances never do it twice.
///
/// Each pass drains on its own: it runs again at once while it comes back full, so a backlog
/// (a million expiries falling due together, the removals they queue) drains at the
/// database's pace, and the tick paces the rest. A sweep does not hold up deliveries; on
/// SQLite they take turns at the one writer. Delivery needs no order: it withdraws an
/// addition whose access has ended or is no longer allowed.
pub async fn run_workers(service: Service, interval: std::time::Duration) {
    let service = &service;
    tokio::join!(
        drain(service, interval, "expiry", move || async move {
            let n = service.expire_assignments(&crate::domain::authz::Operator::Workers).await?;
            Ok(n >= assignments::EXPIRY_PASS)
        }),
        drain(service, interval, "time-out", move || async move {
            let n = service.time_out_stages(&crate::domain::authz::Operator::Workers).await?;
            Ok(n >= requests::TIME_OUT_PASS)
        }),
        drain(service, interval, "delivery", move || async move {
            let report =
                service.deliver_pending(&crate::domain::authz::Operator::Workers, DELIVERY_PASS as i64).await?;
            Ok(report.claimed() >= DELIVERY_PASS)
        }),
        drain(service, interval, "lifecycle events", move || async move {
            let n =
                service.deliver_events(&crate::domain::authz::Operator::Workers, events::EVENTS_PASS as i64).await?;
            Ok(n >= events::EVENTS_PASS)
        }),
        drain(service, interval, "notifications", move || async move {
            let n = service
                .send_notifications(&crate::domain::authz::Operator::Workers, notifications::NOTIFY_PASS as i64)
                .await?;
            Ok(n >= notifications::NOTIFY_PASS)
        }),
        drain(service, interval, "reminders", move || async move {
            let n = service.send_reminders(&crate::domain::authz::Operator::Workers).await?;
            Ok(n >= requests::TIME_OUT_PASS)
        }),
        drain(service, interval, "reviews", move || async move {
            Ok(service.run_reviews(&crate::domain::authz::Operator::Workers).await? > 0)
        }),
        drain(service, interval, "expiry warnings", move || async move {
            Ok(service.warn_of_expiry(&crate::domain::authz::Operator::Workers).await? > 0)
        }),
        drain(service, interval, "role sync", move || async move {
            let batches =
                service.sync_package_roles(&crate::domain::authz::Operator::Workers, role_sync::SYNC_PASS).await?;
            Ok(batches >= role_sync::SYNC_PASS)
        }),
        drain(service, interval, "group import", move || async move {
            service.resume_group_imports().await?;
            Ok(false)
        }),
        drain(service, interval, "bulk assignment", move || async move {
            service.resume_bulk_jobs().await?;
            Ok(false)
        }),
        clean_up(service, interval * 150),
        drift_checks(service, DRIFT_LOOK_EVERY),
        guest_checks(service, GUEST_LOOK_EVERY),
    );
}

/// Outbox entries one delivery pass claims.
const DELIVERY_PASS: usize = 200;

/// Run a pass at every tick, and again at once while it says it came back full (more work is
/// likely waiting). A pass that finds less, or fails, waits for the next tick.
async fn drain<F, Fut>(service: &Service, interval: std::time::Duration, pass: &'static str, mut run: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::domain::DomainResult<bool>>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            let started = std::time::Instant::now();
            let ran = run().await;
            service.metrics.pass(pass, started.elapsed());
            match ran {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::error!(pass, error = ?e, "worker pass failed");
                    break;
                }
            }
        }
    }
}

/// How often every connected system's drift is checked (and kept for the connectors page),
/// and how often an instance looks for systems due a check.
const DRIFT_CHECK_EVERY: chrono::Duration = chrono::Duration::hours(6);
const DRIFT_LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Every ten minutes (the first a minute after start), check the systems not checked for six
/// hours; each is claimed first, so one instance checks it.
async fn drift_checks(service: &Service, every: std::time::Duration) {
    let first = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut tick = tokio::time::interval_at(first, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let by = crate::domain::authz::Operator::Workers;
        timed(service, "drift check", service.check_drift_everywhere(&by, DRIFT_CHECK_EVERY)).await;
    }
}

/// How often guests whose access ended are looked at (blocked or removed as their
/// organization says: days, not seconds, so every ten minutes is on time).
const GUEST_LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Every ten minutes (the first a minute after start), block or remove the guests due, queue
/// the day's digests once it is time, start the access reviews of the period under way, and
/// bring automatic assignment in line with the directory.
async fn guest_checks(service: &Service, every: std::time::Duration) {
    let first = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut tick = tokio::time::interval_at(first, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        timed(service, "guest lifecycle", service.guest_lifecycle(&crate::domain::authz::Operator::Workers)).await;
        timed(service, "digests", service.queue_digests(&crate::domain::authz::Operator::Workers)).await;
        timed(service, "reviews", service.start_reviews(&crate::domain::authz::Operator::Workers)).await;
        timed(service, "automatic assignment", service.apply_rules(&crate::domain::authz::Operator::Workers)).await;
    }
}

/// Run a periodic pass named `pass`, timed into the metrics; a failure is logged.
async fn timed<T>(
    service: &Service,
    pass: &'static str,
    run: impl std::future::Future<Output = crate::domain::DomainResult<T>>,
) {
    let started = std::time::Instant::now();
    let ran = run.await;
    service.metrics.pass(pass, started.elapsed());
    if let Err(e) = ran {
        tracing::error!(pass, error = ?e, "worker pass failed");
    }
}

/// Forget expired sessions and abandoned sign-ins, at start and then every `every`.
async fn clean_up(service: &Service, every: std::time::Duration) {
    use tower_sessions::session_store::ExpiredDeletion;
    let sessions = crate::store::sessions::DbSessionStore::with_clock(service.db.clone(), service.clock.clone());
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sessions.delete_expired().await {
            tracing::error!(error = %e, "session clean-up failed");
        }
        if let Err(e) = service.forget_abandoned_sign_ins().await {
            tracing::error!(error = ?e, "sign-in clean-up failed");
        }
    }
}
