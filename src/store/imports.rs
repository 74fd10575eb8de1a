//! Group imports: a connected system's groups brought into a catalog as resources, a page at
//! a time, by whichever worker holds the job's claim.

use super::{Conn, RowExt};
use crate::domain::ids::{CatalogId, ResourceSystemId, UserId};

/// A job as it stands.
pub struct ImportJob {
    pub id: i64,
    pub system: ResourceSystemId,
    pub catalog: CatalogId,
    pub author: UserId,
    pub search_base: String,
    pub state: String,
    pub next_start: i64,
    pub total: Option<i64>,
    pub imported: i64,
    pub already: i64,
    pub skipped: i64,
    pub error: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub catalog_name: String,
}

const COLUMNS: &str = "j.id, j.system_id, j.catalog_id, j.author_id, j.search_base, j.state, j.next_start, j.total, \
     j.imported, j.already, j.skipped, j.error, j.created_at, j.finished_at, c.name AS catalog_name";

fn job(row: &sqlx::any::AnyRow) -> Result<ImportJob, sqlx::Error> {
    Ok(ImportJob {
        id: row.int("id")?,
        system: ResourceSystemId(row.int("system_id")?),
        catalog: CatalogId(row.int("catalog_id")?),
        author: UserId(row.int("author_id")?),
        search_base: row.text("search_base")?,
        state: row.text("state")?,
        next_start: row.int("next_start")?,
        total: row.opt_int("total")?,
        imported: row.int("imported")?,
        already: row.int("already")?,
        skipped: row.int("skipped")?,
        error: row.text("error")?,
        created_at: row.int("created_at")?,
        finished_at: row.opt_int("finished_at")?,
        catalog_name: row.text("catalog_name")?,
    })
}

pub async fn insert(
    conn: &mut Conn,
    (system, catalog, author): (ResourceSystemId, CatalogId, UserId),
    search_base: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO group_imports (system_id, catalog_id, author_id, search_base, state, created_at) \
         VALUES ($1, $2, $3, $4, 'running', $5) RETURNING id",
    )
    .bind(system.0)
    .bind(catalog.0)
    .bind(author.0)
    .bind(search_base)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// The system's imports, newest first, at most `limit`.
pub async fn of_system(conn: &mut Conn, system: ResourceSystemId, limit: i64) -> Result<Vec<ImportJob>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM group_imports j JOIN catalogs c ON c.id = j.catalog_id \
         WHERE j.system_id = $1 ORDER BY j.id DESC LIMIT $2"
    );
    let rows = sqlx::query(&sql).bind(system.0).bind(limit).fetch_all(conn).await?;
    rows.iter().map(job).collect()
}

pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<ImportJob>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM group_imports j JOIN catalogs c ON c.id = j.catalog_id WHERE j.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(job).transpose()
}

/// Running jobs nobody holds (or whose holder stopped renewing), oldest first.
pub async fn unclaimed(conn: &mut Conn, now: i64, limit: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM group_imports WHERE state = 'running' AND (claimed_until IS NULL OR claimed_until <= $1) \
         ORDER BY id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Take (or renew) the job's claim for `worker` until `until`: false when another worker
/// holds it, or it is no longer running.
pub async fn claim(conn: &mut Conn, id: i64, worker: &str, now: i64, until: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE group_imports SET claimed_by = $1, claimed_until = $2 WHERE id = $3 AND state = 'running' \
         AND (claimed_by = $1 OR claimed_until IS NULL OR claimed_until <= $4)",
    )
    .bind(worker)
    .bind(until)
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What one page did: groups bound, found bound already, passed over (an id a resource
/// cannot keep); and the target's count of all its groups, if it gives one.
pub struct PageCounts {
    pub imported: i64,
    pub already: i64,
    pub skipped: i64,
    pub total: Option<i64>,
}

/// A page done: its counts added and the next page's start set, guarded by the claim and the
/// page's start (a page is recorded once). False when the claim was lost or the page was done.
pub async fn record_page(
    conn: &mut Conn,
    (id, worker): (i64, &str),
    start: i64,
    next_start: i64,
    counts: PageCounts,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE group_imports SET next_start = $1, imported = imported + $2, already = already + $3, \
         skipped = skipped + $8, total = COALESCE($4, total), error = '' \
         WHERE id = $5 AND state = 'running' AND claimed_by = $6 AND next_start = $7",
    )
    .bind(next_start)
    .bind(counts.imported)
    .bind(counts.already)
    .bind(counts.total)
    .bind(id)
    .bind(worker)
    .bind(start)
    .bind(counts.skipped)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The job ends (`done`, or `failed` with why), its claim released.
pub async fn finish(
    conn: &mut Conn,
    (id, worker): (i64, &str),
    state: &str,
    error: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE group_imports SET state = $1, error = $2, finished_at = $3, claimed_by = '', claimed_until = NULL \
         WHERE id = $4 AND state = 'running' AND claimed_by = $5",
    )
    .bind(state)
    .bind(error)
    .bind(now)
    .bind(id)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The job waits (the target could not be read now): why, kept on it, and its claim released
/// so the next pass tries again.
pub async fn wait(conn: &mut Conn, (id, worker): (i64, &str), error: &str, until: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE group_imports SET error = $1, claimed_by = '', claimed_until = $2 \
         WHERE id = $3 AND state = 'running' AND claimed_by = $4",
    )
    .bind(error)
    .bind(until)
    .bind(id)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(())
}

/// The ids there of the system's groups bound already (in any catalog).
pub async fn bound_ids(conn: &mut Conn, system: ResourceSystemId) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT external_id FROM resources WHERE system_id = $1").bind(system.0).fetch_all(conn).await
}
