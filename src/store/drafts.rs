//! The access package builder's drafts (`package_drafts`): an author's work in progress,
//! kept as the draft's JSON body and the step it is at.

use super::{Conn, RowExt};
use crate::domain::ids::*;

/// A stored draft, body not yet read.
#[derive(Clone, Debug)]
pub struct DraftRow {
    pub id: i64,
    pub author: UserId,
    pub catalog: CatalogId,
    pub package: Option<PackageId>,
    pub policy: Option<PolicyId>,
    pub step: String,
    pub body: String,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, author_id, catalog_id, package_id, policy_id, step, body, updated_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<DraftRow, sqlx::Error> {
    Ok(DraftRow {
        id: row.int("id")?,
        author: UserId(row.int("author_id")?),
        catalog: CatalogId(row.int("catalog_id")?),
        package: row.opt_int("package_id")?.map(PackageId),
        policy: row.opt_int("policy_id")?.map(PolicyId),
        step: row.text("step")?,
        body: row.text("body")?,
        updated_at: row.int("updated_at")?,
    })
}

pub struct NewDraft<'a> {
    pub author: UserId,
    pub catalog: CatalogId,
    pub package: Option<PackageId>,
    pub policy: Option<PolicyId>,
    pub step: &'a str,
    pub body: &'a str,
}

pub async fn insert_draft(conn: &mut Conn, d: &NewDraft<'_>, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO package_drafts (author_id, catalog_id, package_id, policy_id, step, body, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
    )
    .bind(d.author.0)
    .bind(d.catalog.0)
    .bind(d.package.map(|p| p.0))
    .bind(d.policy.map(|p| p.0))
    .bind(d.step)
    .bind(d.body)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// A draft; `locked`: held until the transaction ends (PostgreSQL; SQLite's writer lock
/// already does), so two tabs saving steps of one draft apply one after the other.
pub async fn draft(conn: &mut Conn, id: i64, locked: bool) -> Result<Option<DraftRow>, sqlx::Error> {
    let lock = if locked && conn.backend_name() == "PostgreSQL" { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM package_drafts WHERE id = $1{lock}");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn update_draft(conn: &mut Conn, id: i64, step: &str, body: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE package_drafts SET step = $1, body = $2, updated_at = $3 WHERE id = $4")
        .bind(step)
        .bind(body)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Delete an author's draft; false when it was already gone (created or discarded elsewhere).
pub async fn delete_draft(conn: &mut Conn, id: i64, author: UserId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM package_drafts WHERE id = $1 AND author_id = $2")
        .bind(id)
        .bind(author.0)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// An author's drafts in a catalog, most recently touched first.
pub async fn drafts_in(
    conn: &mut Conn,
    author: UserId,
    catalog: CatalogId,
    limit: i64,
) -> Result<Vec<DraftRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM package_drafts WHERE author_id = $1 AND catalog_id = $2 ORDER BY updated_at DESC, id DESC LIMIT $3"
    );
    let rows = sqlx::query(&sql).bind(author.0).bind(catalog.0).bind(limit).fetch_all(conn).await?;
    rows.iter().map(from_row).collect()
}

pub async fn count_drafts(conn: &mut Conn, author: UserId, catalog: CatalogId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM package_drafts WHERE author_id = $1 AND catalog_id = $2")
        .bind(author.0)
        .bind(catalog.0)
        .fetch_one(conn)
        .await
}

/// A deleted catalog's drafts.
pub async fn delete_drafts_in(conn: &mut Conn, catalog: CatalogId) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM package_drafts WHERE catalog_id = $1")
        .bind(catalog.0)
        .execute(conn)
        .await?
        .rows_affected())
}
