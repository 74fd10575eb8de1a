//! Bulk assignment jobs (`bulk_jobs`, `bulk_job_rows`): the rows of an uploaded file and each
//! row's outcome as it is assigned.

use super::{Conn, RowExt};
use crate::domain::bulk::BulkRow;
use crate::domain::ids::*;

#[derive(Clone, Debug)]
pub struct JobRow {
    pub id: i64,
    pub author: UserId,
    pub package: PackageId,
    pub policy: PolicyId,
    pub justification: String,
    pub total: i64,
    pub state: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

pub struct NewJob<'a> {
    pub author: UserId,
    pub package: PackageId,
    pub policy: PolicyId,
    pub justification: &'a str,
    pub rows: &'a [BulkRow],
}

/// The job and its rows (a hundred to a statement).
pub async fn insert_job(conn: &mut Conn, job: &NewJob<'_>, now: i64) -> Result<i64, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO bulk_jobs (author_id, package_id, policy_id, justification, total, state, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'running', $6) RETURNING id",
    )
    .bind(job.author.0)
    .bind(job.package.0)
    .bind(job.policy.0)
    .bind(job.justification)
    .bind(i64::try_from(job.rows.len()).unwrap_or(i64::MAX))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    for chunk in job.rows.chunks(100) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${}, ${})", 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4))
            .collect();
        let sql = format!("INSERT INTO bulk_job_rows (job_id, line, person, end_day) VALUES {}", values.join(", "));
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = query.bind(id).bind(row.line).bind(&row.person).bind(&row.end);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(id)
}

const JOB_COLUMNS: &str = "id, author_id, package_id, policy_id, justification, total, state, created_at, finished_at";

fn job_from_row(row: &sqlx::any::AnyRow) -> Result<JobRow, sqlx::Error> {
    Ok(JobRow {
        id: row.int("id")?,
        author: UserId(row.int("author_id")?),
        package: PackageId(row.int("package_id")?),
        policy: PolicyId(row.int("policy_id")?),
        justification: row.text("justification")?,
        total: row.int("total")?,
        state: row.text("state")?,
        created_at: row.int("created_at")?,
        finished_at: row.opt_int("finished_at")?,
    })
}

pub async fn job(conn: &mut Conn, id: i64) -> Result<Option<JobRow>, sqlx::Error> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM bulk_jobs WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(job_from_row).transpose()
}

/// Claim a running job for worker `by` until `until`, unless another worker holds it.
pub async fn claim_job(conn: &mut Conn, id: i64, by: &str, now: i64, until: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE bulk_jobs SET claimed_by = $1, claimed_until = $2 WHERE id = $3 AND state = 'running' \
         AND (claimed_until IS NULL OR claimed_until < $4)",
    )
    .bind(by)
    .bind(until)
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Running jobs nobody holds: never claimed, or their claim ran out (a worker stopped).
pub async fn unclaimed_jobs(conn: &mut Conn, now: i64, limit: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM bulk_jobs WHERE state = 'running' AND (claimed_until IS NULL OR claimed_until < $1) \
         ORDER BY id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The next rows without an outcome, in file order.
pub async fn pending_rows(conn: &mut Conn, job: i64, limit: i64) -> Result<Vec<BulkRow>, sqlx::Error> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT line, person, end_day FROM bulk_job_rows WHERE job_id = $1 AND outcome IS NULL ORDER BY line LIMIT $2",
    )
    .bind(job)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(line, person, end)| BulkRow { line, person, end }).collect())
}

/// Record a row's outcome, if it has none yet; false when it had one (another worker).
pub async fn record_row(conn: &mut Conn, job: i64, line: i64, outcome: &str, why: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE bulk_job_rows SET outcome = $1, why = $2 WHERE job_id = $3 AND line = $4 AND outcome IS NULL",
    )
    .bind(outcome)
    .bind(why)
    .bind(job)
    .bind(line)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Every row still to do, skipped for one reason (the job cannot go on).
pub async fn skip_remaining(conn: &mut Conn, job: i64, why: &str) -> Result<u64, sqlx::Error> {
    let done =
        sqlx::query("UPDATE bulk_job_rows SET outcome = 'skipped', why = $1 WHERE job_id = $2 AND outcome IS NULL")
            .bind(why)
            .bind(job)
            .execute(conn)
            .await?;
    Ok(done.rows_affected())
}

/// A job's rows counted by outcome: (assigned, skipped, failed).
pub async fn outcome_counts(conn: &mut Conn, job: i64) -> Result<(i64, i64, i64), sqlx::Error> {
    let rows: Vec<(Option<String>, i64)> =
        sqlx::query_as("SELECT outcome, COUNT(*) FROM bulk_job_rows WHERE job_id = $1 GROUP BY outcome")
            .bind(job)
            .fetch_all(conn)
            .await?;
    let n = |w: &str| rows.iter().find(|(o, _)| o.as_deref() == Some(w)).map_or(0, |(_, c)| *c);
    Ok((n("assigned"), n("skipped"), n("failed")))
}

pub async fn finish_job(conn: &mut Conn, job: i64, now: i64) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE bulk_jobs SET state = 'finished', finished_at = $1 WHERE id = $2 AND state = 'running'")
            .bind(now)
            .bind(job)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// A job's rows with their outcome (none yet: still to do), in file order; `only`: those with
/// this outcome (`problems`: skipped or failed).
pub async fn job_rows(
    conn: &mut Conn,
    job: i64,
    only: Option<&str>,
) -> Result<Vec<(i64, String, Option<String>, String)>, sqlx::Error> {
    match only {
        Some(outcome) => {
            sqlx::query_as(
                "SELECT line, person, outcome, why FROM bulk_job_rows WHERE job_id = $1 \
                 AND (outcome = $2 OR ($2 = 'problems' AND outcome IN ('skipped', 'failed'))) ORDER BY line",
            )
            .bind(job)
            .bind(outcome)
            .fetch_all(conn)
            .await
        }
        None => {
            sqlx::query_as("SELECT line, person, outcome, why FROM bulk_job_rows WHERE job_id = $1 ORDER BY line")
                .bind(job)
                .fetch_all(conn)
                .await
        }
    }
}

/// Extend worker `by`'s claim on a running job; false when it no longer holds it (its claim
/// ran out and another worker took the job).
pub async fn renew_claim(conn: &mut Conn, id: i64, by: &str, until: i64) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE bulk_jobs SET claimed_until = $1 WHERE id = $2 AND state = 'running' AND claimed_by = $3")
            .bind(until)
            .bind(id)
            .bind(by)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}
