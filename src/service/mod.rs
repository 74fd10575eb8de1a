//! Operations: each one authorizes the actor, runs the domain's rules inside one database
//! transaction, and writes the change, its audit event and its outbox entries together.
//!
//! Server functions, REST handlers and background jobs all call these, so a rule lives in
//! one place.

mod admin;
mod audit;
mod catalog;
mod delivery;
pub mod directory;
mod requests;
mod views;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::clock::{Clock, SystemClock};
use crate::store::Db;

pub use admin::Incompatible;
pub use audit::ChainCheck;
pub use delivery::DeliveryReport;
pub use requests::{NewRequest, RequestOutcome};

/// The application's operations over one database and one clock.
#[derive(Clone, Debug)]
pub struct Service {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl Service {
    pub fn new(db: Db) -> Self {
        Self { db, clock: Arc::new(SystemClock) }
    }

    pub fn with_clock(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Forget OpenID Connect sign-ins that were started and never finished.
    pub async fn forget_abandoned_sign_ins(&self) -> crate::domain::DomainResult<u64> {
        let mut conn = self.db.pool().acquire().await?;
        let before = self.now().timestamp_millis() - crate::auth::oidc::LOGIN_TTL_MS;
        Ok(crate::store::logins::purge(&mut conn, before).await?)
    }
}

/// The background workers: delivery, stage time-outs, expiry, and (every few minutes)
/// forgetting expired sessions and abandoned sign-ins. Every instance may run them; each piece
/// of work is claimed by a guarded update, so two instances never do it twice.
pub async fn run_workers(service: Service) {
    use tower_sessions::session_store::ExpiredDeletion;
    let mut tick = tokio::time::interval(crate::server::WORKER_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sessions = crate::store::sessions::DbSessionStore::new(service.db.clone());
    let mut rounds: u64 = 0;
    loop {
        tick.tick().await;
        rounds += 1;
        if rounds % 150 == 1 {
            if let Err(e) = sessions.delete_expired().await {
                tracing::error!(error = %e, "session clean-up failed");
            }
            if let Err(e) = service.forget_abandoned_sign_ins().await {
                tracing::error!(error = ?e, "sign-in clean-up failed");
            }
        }
        if let Err(e) = service.deliver_pending(200).await {
            tracing::error!(error = ?e, "delivery pass failed");
        }
        if let Err(e) = service.time_out_stages().await {
            tracing::error!(error = ?e, "time-out pass failed");
        }
        if let Err(e) = service.expire_assignments().await {
            tracing::error!(error = ?e, "expiry pass failed");
        }
    }
}
