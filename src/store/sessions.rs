//! tower-sessions store in the application's own database (SQLite or PostgreSQL), so sessions
//! survive restarts and are shared by every instance behind a load balancer.
//!
//! A session is stored under the SHA-256 of its id, never the id itself: whoever reads the
//! table (a backup, a replica, an SQL console) learns no cookie that signs anyone in. Each
//! row also names the signed-in person (`user_id`, read from the session's data), so
//! [`delete_for_user`] ends every session of someone who is disabled, in their transaction.

use std::sync::Arc;

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

use super::{is_unique_violation, Db};
use crate::domain::clock::{Clock, SystemClock};

/// Sessions in the database. Expiry follows the injected clock, so session lifetimes can be
/// tested without waiting: tower-sessions sets a record's expiry from the system time (now +
/// the idle timeout); the store keeps that time-to-live but counts it from the clock, and
/// judges expiry by the clock. On the system clock the two are the same.
#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl DbSessionStore {
    /// A store on the system clock.
    pub fn new(db: Db) -> Self {
        Self::with_clock(db, Arc::new(SystemClock))
    }

    pub fn with_clock(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// The record's data, and its expiry on the clock (Unix milliseconds).
    fn encode(&self, record: &Record) -> Result<(String, i64), session_store::Error> {
        let data = serde_json::to_string(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let ttl = (record.expiry_date - time::OffsetDateTime::now_utc()).whole_milliseconds();
        let ttl = i64::try_from(ttl).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        Ok((data, self.now_ms().saturating_add(ttl)))
    }

    /// A stored expiry (on the clock) as tower-sessions reckons it (system time).
    fn decode_expiry(&self, expiry_ms: i64) -> Result<time::OffsetDateTime, session_store::Error> {
        let left = time::Duration::milliseconds(expiry_ms.saturating_sub(self.now_ms()));
        time::OffsetDateTime::now_utc()
            .checked_add(left)
            .ok_or_else(|| session_store::Error::Decode(format!("session expiry out of range: {expiry_ms}")))
    }
}

/// The key a session is stored under: the hex SHA-256 of its id.
fn storage_key(id: &Id) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(id.to_string().as_bytes()))
}

/// The signed-in person a session's data names (see `auth::USER_KEY`), if any.
fn user_of(record: &Record) -> Option<i64> {
    record.data.get(crate::auth::USER_KEY).and_then(serde_json::Value::as_i64)
}

/// End every session of this person (they were disabled), inside the caller's transaction.
pub async fn delete_for_user(conn: &mut super::Conn, user: crate::domain::ids::UserId) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user.0).execute(&mut *conn).await?.rows_affected())
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for DbSessionStore {
    /// A new session. One naming a person is stored only while that person is active, read
    /// under a share lock on PostgreSQL: a disabling that is under way (it holds the person's
    /// row) finishes first and is then seen, so a sign-in racing it leaves no session behind
    /// (SQLite runs one writer at a time). Not stored, the cookie names nothing and the next
    /// request is anonymous.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let (data, expiry) = self.encode(record)?;
        let user = user_of(record);
        let sql = match (user, self.db.backend()) {
            (None, _) => "INSERT INTO sessions (id, data, expiry_date, user_id) VALUES ($1, $2, $3, $4)",
            // Nor for a guest blocked after their access ended (a block racing this sign-in
            // holds the row too).
            (Some(_), backend) => &format!(
                "INSERT INTO sessions (id, data, expiry_date, user_id) SELECT $1, $2, $3, $4 \
                 WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = $4 AND u.state = 'active' AND NOT {} {})",
                super::guests::blocked_sql(),
                if backend == super::Backend::Postgres { "FOR SHARE OF u" } else { "" }
            ),
        };
        let _turn = self.db.write_turn().await.map_err(backend)?;
        loop {
            let inserted = sqlx::query(sql)
                .bind(storage_key(&record.id))
                .bind(&data)
                .bind(expiry)
                .bind(user)
                .execute(self.db.pool())
                .await;
            match inserted {
                Ok(done) => {
                    if done.rows_affected() == 0 {
                        tracing::warn!(user = ?user, "no session stored: the person is not active");
                    }
                    return Ok(());
                }
                Err(e) if is_unique_violation(&e) => record.id = Id::default(),
                Err(e) => return Err(backend(e)),
            }
        }
    }

    /// An update of a session that exists: never an insert, so a request that loaded the
    /// session before it was deleted (sign-out, disabling, a new sign-in, expiry) cannot bring
    /// it back by writing to it afterwards.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let (data, expiry) = self.encode(record)?;
        let _turn = self.db.write_turn().await.map_err(backend)?;
        sqlx::query("UPDATE sessions SET data = $1, expiry_date = $2, user_id = $3 WHERE id = $4")
            .bind(data)
            .bind(expiry)
            .bind(user_of(record))
            .bind(storage_key(&record.id))
            .execute(self.db.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT data, expiry_date FROM sessions WHERE id = $1 AND expiry_date > $2")
                .bind(storage_key(id))
                .bind(self.now_ms())
                .fetch_optional(self.db.pool())
                .await
                .map_err(backend)?;
        let Some((data, expiry)) = row else {
            return Ok(None);
        };
        let data = serde_json::from_str(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let expiry_date = self.decode_expiry(expiry)?;
        Ok(Some(Record { id: *id, data, expiry_date }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let _turn = self.db.write_turn().await.map_err(backend)?;
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(storage_key(id))
            .execute(self.db.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        let _turn = self.db.write_turn().await.map_err(backend)?;
        sqlx::query("DELETE FROM sessions WHERE expiry_date <= $1")
            .bind(self.now_ms())
            .execute(self.db.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::domain::clock::ManualClock;

    #[tokio::test]
    async fn a_deleted_session_never_comes_back_and_leavers_get_none() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/s.db", dir.path().display()), 2).await.unwrap();
        db.migrate().await.unwrap();
        let store = DbSessionStore::new(db.clone());
        let count =
            async || -> i64 { sqlx::query_scalar("SELECT COUNT(*) FROM sessions").fetch_one(db.pool()).await.unwrap() };
        let expiry = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let mut record = Record { id: Id::default(), data: Default::default(), expiry_date: expiry };
        store.create(&mut record).await.unwrap();
        // A request loaded it; meanwhile it is deleted (sign-out); the request then writes.
        let stale = store.load(&record.id).await.unwrap().unwrap();
        store.delete(&record.id).await.unwrap();
        store.save(&stale).await.unwrap();
        assert_eq!(count().await, 0, "the write of a stale request does not bring the session back");
        assert!(store.load(&record.id).await.unwrap().is_none());

        // A session for someone who is not active (disabled meanwhile) is not stored.
        sqlx::query(
            "INSERT INTO users (id, email, display_name, state, created_at, updated_at) \
             VALUES (7, 'x@example.test', 'X', 'disabled', 0, 0)",
        )
        .execute(db.pool())
        .await
        .unwrap();
        let mut data = std::collections::HashMap::new();
        data.insert(crate::auth::USER_KEY.to_owned(), serde_json::json!(7));
        let mut record = Record { id: Id::default(), data, expiry_date: expiry };
        store.create(&mut record).await.unwrap();
        assert_eq!(count().await, 0, "no session for a disabled person");
        sqlx::query("UPDATE users SET state = 'active' WHERE id = 7").execute(db.pool()).await.unwrap();
        store.create(&mut record).await.unwrap();
        assert_eq!(count().await, 1, "an active person's session is stored");
    }

    #[tokio::test]
    async fn expiry_follows_the_injected_clock() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/s.db", dir.path().display()), 2).await.unwrap();
        db.migrate().await.unwrap();
        let clock = ManualClock::new(chrono::Utc::now());
        let store = DbSessionStore::with_clock(db.clone(), Arc::new(clock.clone()));
        let in_8_hours = time::OffsetDateTime::now_utc() + time::Duration::hours(8);
        let mut record = Record { id: Id::default(), data: Default::default(), expiry_date: in_8_hours };
        store.create(&mut record).await.unwrap();

        clock.advance(chrono::Duration::hours(7));
        let loaded = store.load(&record.id).await.unwrap().expect("alive after 7 hours");
        let left = loaded.expiry_date - time::OffsetDateTime::now_utc();
        assert!((left - time::Duration::hours(1)).abs() < time::Duration::seconds(10), "about an hour left: {left}");
        store.delete_expired().await.unwrap();
        assert!(store.load(&record.id).await.unwrap().is_some(), "not expired yet");

        clock.advance(chrono::Duration::hours(1) + chrono::Duration::seconds(1));
        assert!(store.load(&record.id).await.unwrap().is_none(), "expired by the clock");
        store.delete_expired().await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions").fetch_one(db.pool()).await.unwrap();
        assert_eq!(left, 0, "expired sessions are forgotten");
    }
}
