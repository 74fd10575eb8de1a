//! Bringing the holders of a package in line with its resource roles after they changed
//! (`package_role_syncs`): which packages wait, the next holders, and the set-based statements
//! that add the new roles' grants and take the dropped ones back, a batch at a time.

use chrono::{DateTime, Utc};

use super::assignments::LIVE;
use super::{to_ms, Conn};
use crate::domain::ids::*;

/// A package whose holders wait to be brought in line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sync {
    pub package: PackageId,
    pub generation: i64,
    pub after: AssignmentId,
}

/// Ask for the package's holders to be brought in line with its roles, from the first holder
/// (again, if a sync was under way: its generation moves on, so its next batch is not kept).
pub async fn request(conn: &mut Conn, package: PackageId, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO package_role_syncs (package_id, generation, after_id, requested_at) VALUES ($1, 1, 0, $2) \
         ON CONFLICT (package_id) DO UPDATE SET generation = package_role_syncs.generation + 1, after_id = 0, \
         requested_at = $2",
    )
    .bind(package.0)
    .bind(to_ms(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// The packages waiting, oldest request first.
pub async fn waiting(conn: &mut Conn, limit: i64) -> Result<Vec<Sync>, sqlx::Error> {
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT package_id, generation, after_id FROM package_role_syncs \
         ORDER BY failures, requested_at, package_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(p, generation, after)| Sync { package: PackageId(p), generation, after: AssignmentId(after) })
        .collect())
}

/// The next live assignments of the package after `after`, in id order, with their holders.
pub async fn next_holders(
    conn: &mut Conn,
    sync: &Sync,
    limit: i64,
) -> Result<Vec<(AssignmentId, UserId)>, sqlx::Error> {
    let sql = format!(
        "SELECT id, user_id FROM assignments WHERE package_id = $1 AND state IN {LIVE} AND id > $2 ORDER BY id LIMIT $3"
    );
    let rows: Vec<(i64, i64)> =
        sqlx::query_as(&sql).bind(sync.package.0).bind(sync.after.0).bind(limit).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(a, u)| (AssignmentId(a), UserId(u))).collect())
}

/// When the package's holders wait to be brought in line: how many are left, and why the sync
/// is stuck at one if it is (one statement, for the package's page).
pub async fn still_to_sync(conn: &mut Conn, package: PackageId) -> Result<Option<(i64, String)>, sqlx::Error> {
    let sql = format!(
        "SELECT COUNT(a.id), s.last_error FROM package_role_syncs s LEFT JOIN assignments a \
         ON a.package_id = s.package_id AND a.state IN {LIVE} AND a.id > s.after_id \
         WHERE s.package_id = $1 GROUP BY s.package_id, s.last_error"
    );
    sqlx::query_as(&sql).bind(package.0).fetch_optional(conn).await
}

/// How many people hold the package now (live assignments).
pub async fn holders(conn: &mut Conn, package: PackageId) -> Result<i64, sqlx::Error> {
    let sql = format!("SELECT COUNT(*) FROM assignments WHERE package_id = $1 AND state IN {LIVE}");
    sqlx::query_scalar(&sql).bind(package.0).fetch_one(conn).await
}

/// A grant touched by a sync: (grant, assignment, person, role).
pub type Touched = (GrantId, AssignmentId, UserId, ResourceRoleId);

fn touched(rows: Vec<(i64, i64, i64, i64)>) -> Vec<Touched> {
    rows.into_iter().map(|(g, a, u, r)| (GrantId(g), AssignmentId(a), UserId(u), ResourceRoleId(r))).collect()
}

/// Give each of these live assignments a waiting grant for every role its package now has and
/// it does not hold: a new grant, or one given up earlier (or failed: its addition, or the
/// removal of a role since put back) taken up again. Each is queued for delivery, due when
/// the access starts (now, for access already started).
pub async fn add_missing(
    conn: &mut Conn,
    package: PackageId,
    ids: &[AssignmentId],
    now: DateTime<Utc>,
) -> Result<Vec<Touched>, sqlx::Error> {
    let list = super::ids_json(ids.iter().map(|a| a.0));
    let sql = format!(
        "INSERT INTO grants (assignment_id, resource_role_id, user_id, state, updated_at) \
         SELECT a.id, prr.resource_role_id, a.user_id, 'pending', $1 \
         FROM assignments a JOIN package_resource_roles prr ON prr.package_id = a.package_id \
         WHERE a.id IN {} AND a.package_id = $3 AND a.state IN {LIVE} \
         AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.assignment_id = a.id \
                         AND g.resource_role_id = prr.resource_role_id) \
         ORDER BY a.id, prr.resource_role_id \
         RETURNING id, assignment_id, user_id, resource_role_id",
        super::ids_param(conn, 2)
    );
    let mut made: Vec<(i64, i64, i64, i64)> =
        sqlx::query_as(&sql).bind(to_ms(now)).bind(&list).bind(package.0).fetch_all(&mut *conn).await?;
    let sql = format!(
        "UPDATE grants SET state = 'pending', last_error = '', updated_at = $1 \
         WHERE assignment_id IN {} AND state IN ('removing', 'removed', 'failed') \
         AND resource_role_id IN (SELECT resource_role_id FROM package_resource_roles WHERE package_id = $3) \
         AND assignment_id IN (SELECT id FROM assignments WHERE package_id = $3 AND state IN {LIVE}) \
         RETURNING id, assignment_id, user_id, resource_role_id",
        super::ids_param(conn, 2)
    );
    let revived: Vec<(i64, i64, i64, i64)> =
        sqlx::query_as(&sql).bind(to_ms(now)).bind(&list).bind(package.0).fetch_all(&mut *conn).await?;
    supersede_failed(conn, &revived.iter().map(|(g, ..)| *g).collect::<Vec<_>>(), now).await?;
    made.extend(revived);
    made.sort_unstable();
    if !made.is_empty() {
        let sql = format!(
            "INSERT INTO outbox (kind, resource_role_id, user_id, grant_id, next_attempt_at, created_at, updated_at) \
             SELECT 'add_member', g.resource_role_id, g.user_id, g.id, \
                    CASE WHEN a.start_at > $1 THEN a.start_at ELSE $1 END, $1, $1 \
             FROM grants g JOIN assignments a ON a.id = g.assignment_id WHERE g.id IN {} ORDER BY g.id",
            super::ids_param(conn, 2)
        );
        sqlx::query(&sql)
            .bind(to_ms(now))
            .bind(super::ids_json(made.iter().map(|(g, ..)| *g)))
            .execute(&mut *conn)
            .await?;
    }
    Ok(touched(made))
}

/// Mark `removing` the grants these assignments hold for roles their package no longer has;
/// the ones marked. (The caller then keeps those still held elsewhere and queues the rest.)
pub async fn drop_extra(
    conn: &mut Conn,
    package: PackageId,
    ids: &[AssignmentId],
    now: DateTime<Utc>,
) -> Result<Vec<Touched>, sqlx::Error> {
    let sql = format!(
        "UPDATE grants SET state = 'removing', last_error = '', updated_at = $1 \
         WHERE assignment_id IN {} AND state NOT IN ('removing', 'removed') \
         AND resource_role_id NOT IN (SELECT resource_role_id FROM package_resource_roles WHERE package_id = $3) \
         AND assignment_id IN (SELECT id FROM assignments WHERE package_id = $3 AND state IN {LIVE}) \
         RETURNING id, assignment_id, user_id, resource_role_id",
        super::ids_param(conn, 2)
    );
    let mut dropped: Vec<(i64, i64, i64, i64)> = sqlx::query_as(&sql)
        .bind(to_ms(now))
        .bind(super::ids_json(ids.iter().map(|a| a.0)))
        .bind(package.0)
        .fetch_all(&mut *conn)
        .await?;
    dropped.sort_unstable();
    supersede_failed(conn, &dropped.iter().map(|(g, ..)| *g).collect::<Vec<_>>(), now).await?;
    Ok(touched(dropped))
}

/// Record that the holders up to `to` are done, if the sync is still the one read (no new
/// change of the package's roles meanwhile); false otherwise.
pub async fn advance(conn: &mut Conn, sync: &Sync, to: AssignmentId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE package_role_syncs SET after_id = $1, failures = 0, last_error = '' \
         WHERE package_id = $2 AND generation = $3 AND after_id = $4",
    )
    .bind(to.0)
    .bind(sync.package.0)
    .bind(sync.generation)
    .bind(sync.after.0)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The sync is done: forget it, if it is still the one read; false otherwise.
pub async fn finish(conn: &mut Conn, sync: &Sync) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM package_role_syncs WHERE package_id = $1 AND generation = $2 AND after_id = $3")
            .bind(sync.package.0)
            .bind(sync.generation)
            .bind(sync.after.0)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// The holder after the cursor could not be brought in line: count it and say why, if the sync
/// is still the one read.
pub async fn failed(conn: &mut Conn, sync: &Sync, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE package_role_syncs SET failures = failures + 1, last_error = $1 \
         WHERE package_id = $2 AND generation = $3 AND after_id = $4",
    )
    .bind(error)
    .bind(sync.package.0)
    .bind(sync.generation)
    .bind(sync.after.0)
    .execute(conn)
    .await?;
    Ok(())
}

/// Failed work of these grants, superseded by the work a sync queues now: settled, saying so
/// (it leaves the failed-work list; retrying it would queue the same work twice).
async fn supersede_failed(conn: &mut Conn, grants: &[i64], now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    if grants.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE outbox SET state = 'done', last_error = 'superseded: taken up again by a role sync', \
         updated_at = $1 WHERE state = 'failed' AND grant_id IN {}",
        super::ids_param(conn, 2)
    );
    sqlx::query(&sql).bind(to_ms(now)).bind(super::ids_json(grants.iter().copied())).execute(conn).await?;
    Ok(())
}
