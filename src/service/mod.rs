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
}

/// The background workers: delivery, stage time-outs, expiry. Every instance may run them;
/// each piece of work is claimed by a guarded update, so two instances never do it twice.
pub async fn run_workers(service: Service) {
    let mut tick = tokio::time::interval(crate::server::WORKER_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
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
