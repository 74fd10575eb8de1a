//! Persistence: one set of queries for SQLite and PostgreSQL through `sqlx::Any`.
//!
//! The schema keeps both dialects close (Unix-millisecond `BIGINT` timestamps, 0/1 flags,
//! `$n` placeholders, `RETURNING`), so each query is written once. Where a dialect truly
//! differs (how a write transaction starts), [`Db`] hides it.

pub mod sessions;

pub use sqlx::AnyConnection as Conn;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database the pool talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self, sqlx::Error> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(sqlx::Error::Configuration("the database URL must start with sqlite:// or postgres://".into()))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

/// A write transaction. Dropping it without `commit` rolls it back.
/// A write transaction: sqlx's, plus (on SQLite) this process's turn at the one writer, held
/// until it commits, rolls back or is dropped. It derefs to the connection, like sqlx's.
pub struct Tx {
    inner: Transaction<'static, Any>,
    _turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

impl std::ops::Deref for Tx {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.inner
    }
}

/// A savepoint inside a transaction: a failed statement in it can be rolled back without
/// aborting the outer transaction (PostgreSQL aborts a whole transaction on any error).
pub type Savepoint<'a> = Transaction<'a, Any>;

pub async fn savepoint(tx: &mut Tx) -> Result<Savepoint<'_>, sqlx::Error> {
    use sqlx::Acquire;
    (&mut tx.inner).begin().await
}

/// [`Checkpoints::Background`]'s task, every [`CHECKPOINT_EVERY`] until the pool is closed:
/// first a `PASSIVE` checkpoint (it takes neither SQLite's write lock nor a turn at the
/// writer and waits for nobody: it copies what no reader still needs, while writers go on),
/// then, when [`should_restart`] says so, [`restart_log`] for what was appended meanwhile.
/// A failure is logged and tried again next round.
async fn checkpoint_in_background(db: Db) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The log's length when it was last restarted: until a writer starts it over, it stays
    // the same, and restarting it again would take turns for nothing.
    let mut restarted_at = None;
    // Rounds left before another forced restart, after one that a reader made wait in vain.
    let mut forced_pause = 0;
    while !db.pool().is_closed() {
        every.tick().await;
        let round = async {
            // (busy, pages in the log, pages copied); -1s when not in WAL mode.
            let (_, log, copied): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(db.pool()).await?;
            if !should_restart(log, copied, restarted_at) {
                return Ok(());
            }
            let forced = copied != log;
            if forced && forced_pause > 0 {
                forced_pause -= 1;
                return Ok(());
            }
            match restart_log(&db).await? {
                Restart::Done { log } => restarted_at = Some(log),
                Restart::Busy if forced => forced_pause = FORCED_RESTART_PAUSE_ROUNDS,
                Restart::Busy => tracing::debug!(log, "the SQLite log could not start over this round"),
            }
            Ok::<_, sqlx::Error>(())
        };
        match round.await {
            Ok(()) | Err(sqlx::Error::PoolClosed) => {}
            Err(e) => tracing::warn!(error = %e, "the background checkpoint of the SQLite log failed"),
        }
    }
}

/// Whether a round restarts the log, from its `PASSIVE` copy's figures (pages in the log,
/// pages copied) and the log's length at the last restart. Only a long log, and not one
/// already restarted that no writer has started over since. Otherwise only once the copy
/// reached the log's end: a copy that did not means a reader still reads an older snapshot,
/// and a restart would wait for it during the turn, so it is left to a later round. Unless
/// the log passed [`FORCE_RESTART_LOG_PAGES`] with a short tail left to copy (at most
/// [`FORCE_RESTART_TAIL_PAGES`]): short readers that keep overlapping would otherwise keep
/// every copy just short of the end and the log from ever starting over (SQLite's
/// "checkpoint starvation"), and the restart's brief wait for them is then the price. A long
/// tail is left to the copies outside the turn.
fn should_restart(log: i64, copied: i64, restarted_at: Option<i64>) -> bool {
    log > RESTART_LOG_PAGES
        && restarted_at != Some(log)
        && (copied == log || (log > FORCE_RESTART_LOG_PAGES && log - copied <= FORCE_RESTART_TAIL_PAGES))
}

/// What [`restart_log`] managed.
#[derive(Debug, PartialEq, Eq)]
enum Restart {
    /// The whole log is copied (`log` pages): the next writer starts it over.
    Done { log: i64 },
    /// A reader, a writer of another process, or no idle pooled connection: try later.
    Busy,
}

/// Copy the rest of the log and have the next writer start it over: a `RESTART` checkpoint
/// during a turn at the writer (so no writer of this process appends meanwhile; a writer of
/// another process makes it report busy), which waits until the readers of older snapshots
/// are done. Briefly, since every writer waits behind this turn: an idle pooled connection or
/// none (waiting for the pool while holding the turn would stop every writer, and holding a
/// connection while waiting for the turn could take the last one a writer ahead needs), and
/// the readers within 50 ms (SQLite's busy timeout, set for this statement and put back
/// after it).
async fn restart_log(db: &Db) -> Result<Restart, sqlx::Error> {
    let _turn = db.write_turn().await?;
    let Some(mut conn) = db.pool().try_acquire() else {
        return Ok(Restart::Busy);
    };
    conn.execute("PRAGMA busy_timeout = 50").await?;
    let done: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(RESTART)").fetch_one(&mut *conn).await;
    // The connection goes back to the pool with the usual timeout, or not at all.
    if conn.execute(format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}").as_str()).await.is_err() {
        conn.close().await?;
    }
    Ok(match done? {
        (0, log, _) => Restart::Done { log },
        _ => Restart::Busy,
    })
}

/// The database handle shared by the whole application.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer. A connection that finds it busy polls (the busy handler sleeps
    /// between tries, up to 100 ms), so under back-to-back writes — a sweep's batches, a
    /// burst of approvals — a waiting writer keeps missing the gaps. This process's writers
    /// take turns here instead, first come first served ([`Db::begin`], [`Db::write_turn`]).
    writer: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Who copies SQLite's write-ahead log back into the database file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Checkpoints {
    /// SQLite's default: the commit that takes the log past 1,000 pages checkpoints it there
    /// and then, inside its transaction (on this process, inside its turn at the writer).
    /// For short-lived commands, which run no background task.
    #[default]
    OnCommit,
    /// A background task checkpoints (`PASSIVE`) every [`CHECKPOINT_EVERY`] and commits never
    /// do: the page copying and the `fsync` leave the writer's critical path, so the next
    /// writer does not wait for them. For the server, which closes the pool when it stops
    /// (the last connection's close checkpoints what is left); the task ends then.
    Background,
}

/// How often the background checkpointer runs.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// A log longer than this (pages) after the round's `PASSIVE` copy is started over during a
/// turn at the writer ([`restart_log`]): with writers appending meanwhile, a copy outside the
/// turn never finds the whole log copied, and the log starts over only then.
const RESTART_LOG_PAGES: i64 = 2_000;

/// A log longer than this (pages; about 64 MiB of 4 KiB pages, the size the file is cut back
/// to) is restarted even when readers kept the round's copy from reaching its end, if the
/// tail left is short ([`should_restart`]).
const FORCE_RESTART_LOG_PAGES: i64 = 16_384;

/// The longest tail a forced restart copies during its turn (about 8 MiB).
const FORCE_RESTART_TAIL_PAGES: i64 = 2_000;

/// Rounds without a forced restart after one that a reader kept waiting in vain (a second).
const FORCED_RESTART_PAUSE_ROUNDS: u32 = 5;

/// SQLite's busy timeout on every connection ([`Db::connect`]).
const BUSY_TIMEOUT_MS: u32 = 15_000;

impl Db {
    /// Connect a pool. SQLite files (and their folder) are created when missing, and every
    /// SQLite connection runs in WAL mode with a busy timeout and foreign keys on.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        Self::connect_with(url, max_connections, Checkpoints::OnCommit).await
    }

    /// [`Db::connect`], choosing who checkpoints SQLite's log (nothing changes on PostgreSQL).
    pub async fn connect_with(url: &str, max_connections: u32, checkpoints: Checkpoints) -> Result<Self, sqlx::Error> {
        let db = Self::open(url, max_connections, checkpoints).await?;
        if db.backend == Backend::Sqlite && checkpoints == Checkpoints::Background {
            tokio::spawn(checkpoint_in_background(db.clone()));
        }
        Ok(db)
    }

    /// The pool of [`Db::connect_with`], without the background checkpointer (tests drive
    /// its steps themselves).
    async fn open(url: &str, max_connections: u32, checkpoints: Checkpoints) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let mut url = url.to_owned();
        let mut options =
            AnyPoolOptions::new().max_connections(max_connections.max(1)).acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            prepare_sqlite_file(&url)?;
            if !url.contains("mode=") {
                url.push_str(if url.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
            }
            options = options.after_connect(move |conn, _meta| {
                Box::pin(async move {
                    let settings = format!(
                        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; \
                         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
                    );
                    conn.execute(settings.as_str()).await?;
                    if checkpoints == Checkpoints::Background {
                        // And a log that grew during a burst is cut back to 64 MiB when it
                        // starts over (SQLite keeps its largest size otherwise).
                        conn.execute("PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;").await?;
                    }
                    Ok(())
                })
            });
        }
        let pool = options.connect(&url).await?;
        Ok(Db { pool, backend, writer: std::sync::Arc::new(tokio::sync::Semaphore::new(1)) })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Start a write transaction. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so a read-then-write transaction waits for the lock instead of
    /// failing with SQLITE_BUSY when another writer got there first.
    ///
    /// On PostgreSQL the isolation level is set here, not left to the server's default:
    /// READ COMMITTED, with rules that span rows (reference counts, separation of duties,
    /// expiry against extension) serialized per person by [`Db::lock_user`].
    ///
    /// On SQLite it first waits for this process's turn at the writer ([`Db::write_turn`]):
    /// never call it while holding another transaction or a turn.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let turn = self.write_turn().await?;
        let inner = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?,
        };
        Ok(Tx { inner, _turn: turn })
    }

    /// This process's turn at SQLite's one writer, for a write outside [`Db::begin`] (a
    /// session saved): hold it across the statement. Nothing on PostgreSQL.
    pub async fn write_turn(&self) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, sqlx::Error> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        // As long as SQLite's own busy timeout: a writer never waits forever, even if a turn
        // were held by mistake across another write.
        match tokio::time::timeout(Duration::from_secs(15), self.writer.clone().acquire_owned()).await {
            Ok(Ok(turn)) => Ok(Some(turn)),
            Ok(Err(_)) => Err(sqlx::Error::PoolClosed),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    /// Hold one request row until the transaction ends, while it waits for approval
    /// (PostgreSQL; SQLite's writer lock already does): for changes to a pending request that
    /// are not version-guarded, such as replacing its approvers. Take it after the person's
    /// lock, as `decide` does, and read the request again after it. A request past approval
    /// is not locked: a delivery batch updates such requests of the people it holds, in its
    /// own order, and waiting for one of them while holding another could close a circle.
    pub async fn lock_pending_request(
        &self,
        tx: &mut Tx,
        request: crate::domain::ids::RequestId,
    ) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT id FROM requests WHERE id = $1 AND state = 'pending_approval' FOR UPDATE")
                .bind(request.0)
                .fetch_optional(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Serialize every change to one person's access: the lock is held until the transaction
    /// ends, so a rule that reads several rows (another assignment still holding the same
    /// resource role, an incompatible package granted at the same moment, an extension racing
    /// the expiry) sees the other transaction's committed result, or waits for it.
    ///
    /// PostgreSQL: `SELECT … FOR NO KEY UPDATE` on the person's row — it excludes every other
    /// `lock_user` of that person and every update of the row, but not the `FOR KEY SHARE` a
    /// foreign-key check takes when some other row names the person (a decision naming its
    /// approver, a request naming its requestor): with `FOR UPDATE`, two people approving each
    /// other's requests at once would deadlock. SQLite: the write transaction (`BEGIN
    /// IMMEDIATE`) already excludes every other writer, so nothing more is needed.
    /// Take it before reading what the decision depends on, and only for one person per
    /// transaction (the audit chain's lock is always taken after it, at commit); the
    /// exception, for the expiry and delivery batches, is [`Self::lock_users`].
    pub async fn lock_user(&self, tx: &mut Tx, user: crate::domain::ids::UserId) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE")
                .bind(user.0)
                .fetch_optional(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// [`Self::lock_user`] for several people in one statement, in id order (PostgreSQL locks
    /// the rows as the sorted result returns them), for the expiry and delivery batches, which
    /// take it before changing anything. While it waits for one person it holds others, but
    /// no wait can close a circle: every other transaction locks one person (then perhaps a
    /// pending request, [`Self::lock_pending_request`], then the audit lock at commit), and
    /// the rows a batch goes on to change — its people's assignments and grants, their
    /// requests past approval, new outbox entries, the outbox entries it has claimed — are
    /// changed by others only under that person's lock (or, for claimed entries, not while
    /// the claim holds). Batches lock in the same order.
    pub async fn lock_users(&self, tx: &mut Tx, users: &[crate::domain::ids::UserId]) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres && !users.is_empty() {
            let sql = format!("SELECT id FROM users WHERE id IN {} ORDER BY id FOR NO KEY UPDATE", ids_param(tx, 1));
            sqlx::query(&sql).bind(ids_json(users.iter().map(|u| u.0))).fetch_all(&mut **tx).await?;
        }
        Ok(())
    }

    /// Apply pending migrations for this backend.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        self.backend.migrator().run(&self.pool).await
    }

    /// Readiness: the database answers and every migration this binary knows is applied.
    pub async fn readiness(&self) -> Result<(), String> {
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| format!("database not reachable or not migrated: {e}"))?;
        let missing: Vec<i64> =
            self.backend.migrator().iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("migrations not applied: {missing:?}"))
        }
    }
}

fn prepare_sqlite_file(url: &str) -> Result<(), sqlx::Error> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let path = options.get_filename();
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| {
                sqlx::Error::Configuration(
                    format!("cannot create the database folder {}: {e}", parent.display()).into(),
                )
            })?;
        }
    }
    Ok(())
}

/// A timestamp as stored: Unix milliseconds.
pub fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// A stored timestamp back to a `DateTime`; `None` when it is out of range (never 1970).
pub fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

fn decode_error(column: &str, what: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode { index: column.to_owned(), source: what.into() }
}

/// A stored millisecond timestamp, or a decode error naming the column.
fn time_of(column: &str, ms: i64) -> Result<DateTime<Utc>, sqlx::Error> {
    from_ms(ms).ok_or_else(|| decode_error(column, format!("timestamp {ms} is out of range")))
}

/// A stored word (`pending`, `approve`, …) parsed into its enum, or a decode error naming the
/// column and the value: an unknown word is never read as some default.
pub fn parse_word<T>(column: &str, word: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, sqlx::Error> {
    parse(word).ok_or_else(|| decode_error(column, format!("unknown value {word:?}")))
}

/// Typed column access for rows read through `sqlx::Any`.
pub trait RowExt {
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// A 0/1 flag column.
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
    fn time(&self, column: &str) -> Result<DateTime<Utc>, sqlx::Error>;
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error>;
    /// A JSON document stored as text.
    fn json<T: serde::de::DeserializeOwned>(&self, column: &str) -> Result<T, sqlx::Error>;
    /// A small count or number (a stage, days) that must fit a `u32`.
    fn small(&self, column: &str) -> Result<u32, sqlx::Error>;
    /// A word column parsed into its enum; an unknown word is a decode error.
    fn word<T>(&self, column: &str, parse: fn(&str) -> Option<T>) -> Result<T, sqlx::Error>;
}

impl RowExt for AnyRow {
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column)
    }
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
        Ok(self.try_get::<i64, _>(column)? != 0)
    }
    fn time(&self, column: &str) -> Result<DateTime<Utc>, sqlx::Error> {
        time_of(column, self.try_get(column)?)
    }
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        self.try_get::<Option<i64>, _>(column)?.map(|ms| time_of(column, ms)).transpose()
    }
    fn json<T: serde::de::DeserializeOwned>(&self, column: &str) -> Result<T, sqlx::Error> {
        let text: String = self.try_get(column)?;
        serde_json::from_str(&text)
            .map_err(|e| sqlx::Error::ColumnDecode { index: column.to_owned(), source: Box::new(e) })
    }
    fn small(&self, column: &str) -> Result<u32, sqlx::Error> {
        let n: i64 = self.try_get(column)?;
        u32::try_from(n).map_err(|_| decode_error(column, format!("{n} is out of range")))
    }
    fn word<T>(&self, column: &str, parse: fn(&str) -> Option<T>) -> Result<T, sqlx::Error> {
        parse_word(column, &self.text(column)?, parse)
    }
}

/// True when the error is a unique-constraint violation (on either backend).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation() || db.code().is_some_and(|c| c == "2067" || c == "1555" || c == "23505")
        }
        _ => false,
    }
}

/// PostgreSQL refused a character of the text (`\0`, which its text cannot hold): the input's
/// fault, not ours. SQLite stores it.
fn is_unstorable_text(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "22021" || c == "22P05"))
}

impl From<sqlx::Error> for crate::domain::DomainError {
    fn from(err: sqlx::Error) -> Self {
        if is_unstorable_text(&err) {
            // The transaction it ran in is refused with it: nothing was written.
            return crate::domain::DomainError::Invalid {
                field: None,
                message: "text may not contain the NUL character (\\0)".into(),
            };
        }
        crate::domain::DomainError::Internal(format!("database: {err}"))
    }
}

/// `(…)` for `IN`: the ids bound as parameter `$n`, a JSON array from [`ids_json`]. The
/// statement's text is the same whatever the ids, so each connection prepares it once.
pub fn ids_param(conn: &Conn, n: u8) -> String {
    if conn.backend_name() == "PostgreSQL" {
        format!("(SELECT value::bigint FROM json_array_elements_text(${n}::json))")
    } else {
        format!("(SELECT value FROM json_each(${n}))")
    }
}

/// A subquery of the integer pairs bound as parameter `$n` (a JSON array of two-element
/// arrays, [`pairs_json`]), for `(a, b) IN …`: one statement text, whatever the count.
pub fn pairs_param(conn: &Conn, n: u8) -> String {
    if conn.backend_name() == "PostgreSQL" {
        format!("(SELECT (value->>0)::bigint, (value->>1)::bigint FROM json_array_elements(${n}::json))")
    } else {
        format!("(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(${n}))")
    }
}

/// The pairs as the JSON [`pairs_param`] reads.
pub fn pairs_json(pairs: impl IntoIterator<Item = (i64, i64)>) -> String {
    let items: Vec<String> = pairs.into_iter().map(|(a, b)| format!("[{a},{b}]")).collect();
    format!("[{}]", items.join(","))
}

/// The ids as the JSON array [`ids_param`] reads, each once.
pub fn ids_json(ids: impl IntoIterator<Item = i64>) -> String {
    format!("[{}]", id_list_text(ids))
}

/// A comma-separated list of ids for an `IN (…)` clause, each id once, in order. Ids are
/// integers we format ourselves, so this cannot inject anything; an empty list matches
/// nothing. A statement built with it is new text each time: run it with
/// `.persistent(false)`, so it does not push the fixed statements out of each connection's
/// prepared-statement cache.
pub fn id_list(ids: impl IntoIterator<Item = i64>) -> String {
    let list = id_list_text(ids);
    if list.is_empty() {
        "NULL".to_owned()
    } else {
        list
    }
}

fn id_list_text(ids: impl IntoIterator<Item = i64>) -> String {
    let ids: std::collections::BTreeSet<i64> = ids.into_iter().collect();
    let mut list = String::with_capacity(ids.len() * 8);
    for id in ids {
        if !list.is_empty() {
            list.push(',');
        }
        list.push_str(&id.to_string());
    }
    list
}

/// Copy a SQLite database, as one consistent snapshot, into the new file `path`
/// (`VACUUM INTO`; readers and writers go on meanwhile).
pub async fn backup_sqlite(pool: &AnyPool, path: &str) -> Result<(), sqlx::Error> {
    sqlx::query("VACUUM INTO $1").bind(path).execute(pool).await?;
    Ok(())
}

pub mod assignments;
pub mod audit;
pub mod birthright;
pub mod bulk;
pub mod catalog;
pub mod deputies;
pub mod directory;
pub mod drafts;
pub mod events;
pub mod gauges;
pub mod guests;
pub mod imports;
pub mod lease;
pub mod logins;
pub mod notifications;
pub mod package_code;
pub mod reconcile;
pub mod requests;
pub mod reviews;
pub mod role_sync;
pub mod scale;
pub mod scim;
pub mod seed;
pub mod tokens;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// Every pooled connection of the server's pool leaves checkpoints to the background task,
    /// and that task does copy the log into the database file: written pages reach the file
    /// without any commit having checkpointed them, and without the pool being closed.
    #[tokio::test]
    async fn background_checkpoints_leave_commits_alone_and_still_copy_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.db");
        let url = format!("sqlite://{}", file.display());
        let autocheckpoint = async |db: &Db| -> Vec<i64> {
            // Two connections at once: both pooled connections, not the same one twice.
            let (mut a, mut b) = (db.pool().acquire().await.unwrap(), db.pool().acquire().await.unwrap());
            let mut seen = Vec::new();
            for conn in [&mut a, &mut b] {
                seen.push(sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(&mut **conn).await.unwrap());
            }
            seen
        };
        let by_commits = Db::connect_with(&url, 2, Checkpoints::OnCommit).await.unwrap();
        assert_eq!(autocheckpoint(&by_commits).await, vec![1000, 1000], "SQLite's default for the commands");
        by_commits.pool().close().await;

        let db = Db::connect_with(&url, 2, Checkpoints::Background).await.unwrap();
        assert_eq!(autocheckpoint(&db).await, vec![0, 0], "no commit checkpoints in the server");
        sqlx::query("CREATE TABLE t (x BLOB NOT NULL)").execute(db.pool()).await.unwrap();
        let before = std::fs::metadata(&file).unwrap().len();
        // About 2,000 pages of 4 KiB in 20 commits: past SQLite's 1,000-page threshold.
        for _ in 0..20 {
            let mut tx = db.begin().await.unwrap();
            let hundred = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) \
                           INSERT INTO t (x) SELECT randomblob(4000) FROM n";
            sqlx::query(hundred).execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
        // The database file holds the rows once a checkpoint copied them there: the task's,
        // within a few of its rounds.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let len = std::fs::metadata(&file).unwrap().len();
            if len >= before + 2000 * 4000 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the log was not checkpointed: the file has {len} bytes");
            tokio::time::sleep(CHECKPOINT_EVERY / 5).await;
        }
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(db.pool()).await.unwrap();
        assert_eq!(rows, 2000);
    }

    /// When a round restarts the log: a long one, copied to its end, not restarted already;
    /// and past the forced length even when readers kept the copy just short of the end.
    #[test]
    fn the_log_is_restarted_when_long_and_copied_or_when_readers_starve_the_copies() {
        let long = RESTART_LOG_PAGES + 1;
        assert!(should_restart(long, long, None), "long and copied to its end");
        assert!(!should_restart(RESTART_LOG_PAGES, RESTART_LOG_PAGES, None), "short");
        assert!(!should_restart(long, long - 1, None), "a reader still reads an older snapshot");
        assert!(!should_restart(long, long, Some(long)), "restarted already, no writer since");
        assert!(should_restart(long, long, Some(long - 5)), "written since the last restart");
        let huge = FORCE_RESTART_LOG_PAGES + 1;
        let short_tail = huge - FORCE_RESTART_TAIL_PAGES;
        assert!(should_restart(huge, short_tail, None), "readers keep every copy just short of the end");
        assert!(!should_restart(huge, short_tail, Some(huge)), "restarted already, no writer since");
        assert!(!should_restart(huge, short_tail - 1, None), "too long a tail to copy during the turn");
        assert!(!should_restart(FORCE_RESTART_LOG_PAGES, FORCE_RESTART_LOG_PAGES - 10, None), "not yet past the force");
    }

    /// The restart during a turn gives up within its budget while a reader holds an older
    /// snapshot, puts the pooled connection's busy timeout back, and once the reader is done
    /// has the next writer start the log over.
    #[tokio::test]
    async fn restarting_the_log_waits_briefly_for_readers_and_then_starts_it_over() {
        let dir = tempfile::tempdir().unwrap();
        // The server's settings without its task, whose copies would start the log over
        // between this test's steps.
        let db =
            Db::open(&format!("sqlite://{}/r.db", dir.path().display()), 3, Checkpoints::Background).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER NOT NULL)").execute(db.pool()).await.unwrap();
        let write = async || {
            let mut tx = db.begin().await.unwrap();
            sqlx::query("INSERT INTO t (x) VALUES (1)").execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        };
        let log = async || -> i64 {
            let (_, log, _): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(db.pool()).await.unwrap();
            log
        };
        for _ in 0..20 {
            write().await;
        }
        // A reader's snapshot, then a write it does not see.
        let mut reader = db.pool().acquire().await.unwrap();
        reader.execute("BEGIN").await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&mut *reader).await.unwrap();
        write().await;
        let started = std::time::Instant::now();
        assert_eq!(restart_log(&db).await.unwrap(), Restart::Busy);
        assert!(started.elapsed() < Duration::from_secs(1), "it gave up within its budget");
        let mut others = (db.pool().acquire().await.unwrap(), db.pool().acquire().await.unwrap());
        for conn in [&mut others.0, &mut others.1] {
            let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut **conn).await.unwrap();
            assert_eq!(timeout, i64::from(BUSY_TIMEOUT_MS), "the pooled connection's busy timeout is back");
        }
        drop(others);
        reader.execute("COMMIT").await.unwrap();
        drop(reader);
        let before = log().await;
        assert!(before > 20, "the writes are in the log: {before}");
        assert_eq!(restart_log(&db).await.unwrap(), Restart::Done { log: before });
        write().await;
        let after = log().await;
        assert!(after < 10, "the next writer started the log over: {before} pages, then {after}");
    }
}
