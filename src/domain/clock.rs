//! "Now", injected, so that expiry and time-outs are tested without sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|now| *now).unwrap_or_else(|poisoned| *poisoned.into_inner())
    }
}

/// A person's time zone, by its IANA name (`Europe/Paris`); `None` for a name the tz database
/// does not know (their times are then shown in UTC).
pub fn zone(name: &str) -> Option<chrono_tz::Tz> {
    name.trim().parse().ok()
}

/// `at` on the wall clock of the zone named `name` (UTC when unknown or not given).
pub fn local(at: DateTime<Utc>, name: Option<&str>) -> DateTime<chrono_tz::Tz> {
    at.with_timezone(&name.and_then(zone).unwrap_or(chrono_tz::UTC))
}
