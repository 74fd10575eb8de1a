//! Assignments, their grants, the provisioning outbox and the built-in resource system.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::{to_ms, Conn, RowExt};
use crate::domain::ids::*;
use crate::domain::model::ResourceSystemKind;
use crate::domain::request::{AssignmentState, Decision, GrantState};

/// A grant `g` of a live assignment `a` that holds its role for its person: waiting or
/// delivered, or failed while its package still grants the role (a failed removal of a role
/// taken out of the package holds nothing).
const HOLDING: &str = "(g.state IN ('pending', 'delivered') OR (g.state = 'failed' AND EXISTS \
    (SELECT 1 FROM package_resource_roles prr WHERE prr.package_id = a.package_id \
     AND prr.resource_role_id = g.resource_role_id)))";

/// The live states, written as every query and every partial index writes them: SQLite uses a
/// partial index only for a condition written exactly as the index's (migration 0009).
pub const LIVE: &str = "('delivering', 'delivered', 'partially_delivered', 'delivery_failed')";

#[derive(Clone, Debug)]
pub struct AssignmentRow {
    pub id: AssignmentId,
    pub user: UserId,
    pub package: PackageId,
    pub policy: PolicyId,
    pub request: Option<RequestId>,
    pub state: AssignmentState,
    pub start_at: DateTime<Utc>,
    pub end_at: Option<DateTime<Utc>>,
    pub version: i64,
    /// When some of its access first arrived.
    pub delivered_at: Option<DateTime<Utc>>,
}

const ASSIGNMENT_COLUMNS: &str =
    "id, user_id, package_id, policy_id, request_id, state, start_at, end_at, version, delivered_at";

fn assignment_from_row(row: &AnyRow) -> Result<AssignmentRow, sqlx::Error> {
    Ok(AssignmentRow {
        id: AssignmentId(row.int("id")?),
        user: UserId(row.int("user_id")?),
        package: PackageId(row.int("package_id")?),
        policy: PolicyId(row.int("policy_id")?),
        request: row.opt_int("request_id")?.map(RequestId),
        state: row.word("state", AssignmentState::parse)?,
        start_at: row.time("start_at")?,
        end_at: row.opt_time("end_at")?,
        version: row.int("version")?,
        delivered_at: row.opt_time("delivered_at")?,
    })
}

pub async fn assignment(conn: &mut Conn, id: AssignmentId) -> Result<Option<AssignmentRow>, sqlx::Error> {
    let sql = format!("SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE id = $1");
    let row = sqlx::query(&sql).bind(id.0).fetch_optional(conn).await?;
    row.as_ref().map(assignment_from_row).transpose()
}

pub async fn live_assignment(
    conn: &mut Conn,
    user: UserId,
    package: PackageId,
) -> Result<Option<AssignmentId>, sqlx::Error> {
    let sql = format!("SELECT id FROM assignments WHERE user_id = $1 AND package_id = $2 AND state IN {LIVE}");
    let id: Option<i64> = sqlx::query_scalar(&sql).bind(user.0).bind(package.0).fetch_optional(conn).await?;
    Ok(id.map(AssignmentId))
}

pub async fn live_packages(conn: &mut Conn, user: UserId) -> Result<Vec<PackageId>, sqlx::Error> {
    let sql = format!("SELECT package_id FROM assignments WHERE user_id = $1 AND state IN {LIVE}");
    let ids: Vec<i64> = sqlx::query_scalar(&sql).bind(user.0).fetch_all(conn).await?;
    Ok(ids.into_iter().map(PackageId).collect())
}

/// In one statement: the packages a person holds (live assignments), and those they wait
/// for (their own open requests).
pub async fn held_and_awaited_packages(
    conn: &mut Conn,
    user: UserId,
) -> Result<(Vec<PackageId>, Vec<PackageId>), sqlx::Error> {
    let sql = format!(
        "SELECT package_id, 1 AS held FROM assignments WHERE user_id = $1 AND state IN {LIVE}
         UNION ALL
         SELECT package_id, 0 AS held FROM requests
          WHERE target_user_id = $1 AND state IN ('submitted', 'pending_approval')"
    );
    let rows = sqlx::query(&sql).bind(user.0).fetch_all(conn).await?;
    let (mut held, mut awaited) = (Vec::new(), Vec::new());
    for row in &rows {
        let package = PackageId(row.int("package_id")?);
        if row.flag("held")? {
            held.push(package);
        } else {
            awaited.push(package);
        }
    }
    Ok((held, awaited))
}

/// Live packages of several users at once.
pub async fn live_packages_of(conn: &mut Conn, users: &[UserId]) -> Result<Vec<(UserId, PackageId)>, sqlx::Error> {
    let sql = format!(
        "SELECT user_id, package_id FROM assignments WHERE state IN {LIVE} AND user_id IN {}",
        super::ids_param(conn, 1)
    );
    let rows: Vec<(i64, i64)> =
        sqlx::query_as(&sql).bind(super::ids_json(users.iter().map(|u| u.0))).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(u, p)| (UserId(u), PackageId(p))).collect())
}

/// A user's assignments, live ones first, each part newest first; one page after `cursor`.
/// The cursor is [`live_first_key`] of the last row of the page before: positive while in the
/// live part (an id), negative in the ended part (minus an id); `i64::MAX` for the first page.
pub async fn of_user(
    conn: &mut Conn,
    user: UserId,
    cursor: i64,
    limit: i64,
) -> Result<Vec<AssignmentRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE user_id = $1 AND (
            (state IN {LIVE} AND $2 > 0 AND id < $2)
            OR (state NOT IN {LIVE} AND ($2 > 0 OR id < -$2)))
         ORDER BY CASE WHEN state IN {LIVE} THEN 1 ELSE 0 END DESC, id DESC LIMIT $3"
    );
    let rows = sqlx::query(&sql).bind(user.0).bind(cursor).bind(limit).fetch_all(conn).await?;
    rows.iter().map(assignment_from_row).collect()
}

/// The keyset position of a row in [`of_user`]'s order.
pub fn live_first_key(a: &AssignmentRow) -> i64 {
    if a.state.is_live() {
        a.id.0
    } else {
        -a.id.0
    }
}

/// An assignment about to be stored (it starts `delivering`).
#[derive(Clone, Copy, Debug)]
pub struct NewAssignment {
    pub user: UserId,
    pub package: PackageId,
    pub policy: PolicyId,
    pub request: Option<RequestId>,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

pub async fn insert(conn: &mut Conn, a: &NewAssignment, now: DateTime<Utc>) -> Result<AssignmentId, sqlx::Error> {
    let NewAssignment { user, package, policy, request, start, end } = *a;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO assignments (user_id, package_id, policy_id, request_id, state, start_at, end_at, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, 'delivering', $5, $6, $7, $7) RETURNING id",
    )
    .bind(user.0)
    .bind(package.0)
    .bind(policy.0)
    .bind(request.map(|r| r.0))
    .bind(to_ms(start))
    .bind(end.map(to_ms))
    .bind(to_ms(now))
    .fetch_one(conn)
    .await?;
    Ok(AssignmentId(id))
}

/// Set a new end on a live assignment.
pub async fn set_end(
    conn: &mut Conn,
    id: AssignmentId,
    end: Option<DateTime<Utc>>,
    version: i64,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "UPDATE assignments SET end_at = $1, updated_at = $2, version = version + 1 \
         WHERE id = $3 AND version = $4 AND state IN {LIVE}"
    );
    let done = sqlx::query(&sql).bind(end.map(to_ms)).bind(to_ms(now)).bind(id.0).bind(version).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

/// Delivery bookkeeping on a live assignment (delivering → delivered, …). It leaves the
/// version alone: the version guards what the holder asked for (an extension), and the
/// worker's progress must not make that fail with a false reason.
pub async fn set_state(
    conn: &mut Conn,
    id: AssignmentId,
    to: AssignmentState,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    // Delivered, wholly or in part: its access has arrived (the first time is kept).
    let sql = format!(
        "UPDATE assignments SET state = $1, updated_at = $2, \
         delivered_at = CASE WHEN $1 IN ('delivered', 'partially_delivered') THEN COALESCE(delivered_at, $2) \
         ELSE delivered_at END WHERE id = $3 AND state IN {LIVE}"
    );
    sqlx::query(&sql).bind(to.as_str()).bind(to_ms(now)).bind(id.0).execute(conn).await?;
    Ok(())
}

/// Live assignments whose end has passed.
pub async fn due_to_expire(conn: &mut Conn, now: DateTime<Utc>, limit: i64) -> Result<Vec<AssignmentId>, sqlx::Error> {
    let ids: Vec<i64> = sqlx::query_scalar(&due_to_expire_sql()).bind(to_ms(now)).bind(limit).fetch_all(conn).await?;
    Ok(ids.into_iter().map(AssignmentId).collect())
}

/// Served by `assignments_live_end` (migration 0007), whose predicate is spelled the same.
fn due_to_expire_sql() -> String {
    format!(
        "SELECT id FROM assignments WHERE state IN {LIVE} AND end_at IS NOT NULL AND end_at <= $1 ORDER BY end_at LIMIT $2"
    )
}

/// The people holding these assignments, each once, in id order.
pub async fn holders_of(conn: &mut Conn, ids: &[AssignmentId]) -> Result<Vec<UserId>, sqlx::Error> {
    let sql =
        format!("SELECT DISTINCT user_id FROM assignments WHERE id IN {} ORDER BY user_id", super::ids_param(conn, 1));
    let users: Vec<i64> =
        sqlx::query_scalar(&sql).bind(super::ids_json(ids.iter().map(|a| a.0))).fetch_all(conn).await?;
    Ok(users.into_iter().map(UserId).collect())
}

/// Move these assignments to `to` where they are still live (someone else may have ended one);
/// the ones moved.
pub async fn end_many(
    conn: &mut Conn,
    ids: &[AssignmentId],
    to: AssignmentState,
    now: DateTime<Utc>,
) -> Result<Vec<AssignmentId>, sqlx::Error> {
    let sql = format!(
        "UPDATE assignments SET state = $1, updated_at = $2, end_at = COALESCE(end_at, $2), version = version + 1 \
         WHERE id IN {} AND state IN {LIVE} RETURNING id",
        super::ids_param(conn, 3)
    );
    let ended: Vec<i64> = sqlx::query_scalar(&sql)
        .bind(to.as_str())
        .bind(to_ms(now))
        .bind(super::ids_json(ids.iter().map(|a| a.0)))
        .fetch_all(conn)
        .await?;
    Ok(ended.into_iter().map(AssignmentId).collect())
}

/// The grants of these assignments not yet given up (neither removed nor being removed), by
/// assignment, then id.
pub async fn grants_held_by(conn: &mut Conn, assignments: &[AssignmentId]) -> Result<Vec<GrantRow>, sqlx::Error> {
    let sql = format!(
        "SELECT id, assignment_id, resource_role_id, user_id, state, attempts, last_error FROM grants \
         WHERE assignment_id IN {} AND state NOT IN ('removed', 'removing') ORDER BY assignment_id, id",
        super::ids_param(conn, 1)
    );
    let rows = sqlx::query(&sql).bind(super::ids_json(assignments.iter().map(|a| a.0))).fetch_all(conn).await?;
    rows.iter().map(grant_from_row).collect()
}

/// Which of these (person, role) pairs a live assignment still holds (the reference count of
/// [`other_live_holders`], for many pairs at once).
pub async fn still_held(
    conn: &mut Conn,
    pairs: &[(UserId, ResourceRoleId)],
) -> Result<std::collections::HashSet<(UserId, ResourceRoleId)>, sqlx::Error> {
    if pairs.is_empty() {
        return Ok(Default::default());
    }
    // Exactly the pairs asked about, each a seek in `grants_holder` (two `IN` lists would seek
    // every person with every role).
    let sql = format!(
        "SELECT DISTINCT g.user_id, g.resource_role_id FROM grants g JOIN assignments a ON a.id = g.assignment_id \
         WHERE (g.user_id, g.resource_role_id) IN {} AND a.state IN {LIVE} AND {HOLDING}",
        super::pairs_param(conn, 1)
    );
    let mut unique: Vec<(i64, i64)> = pairs.iter().map(|(u, r)| (u.0, r.0)).collect();
    unique.sort_unstable();
    unique.dedup();
    let held: Vec<(i64, i64)> = sqlx::query_as(&sql).bind(super::pairs_json(unique)).fetch_all(conn).await?;
    Ok(held.into_iter().map(|(u, r)| (UserId(u), ResourceRoleId(r))).collect())
}

/// [`set_grant_state`] for many grants.
pub async fn set_grants_state(
    conn: &mut Conn,
    grants: &[GrantId],
    state: GrantState,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if grants.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE grants SET state = $1, last_error = $2, attempts = attempts + 1, updated_at = $3 WHERE id IN {}",
        super::ids_param(conn, 4)
    );
    sqlx::query(&sql)
        .bind(state.as_str())
        .bind(error)
        .bind(to_ms(now))
        .bind(super::ids_json(grants.iter().map(|g| g.0)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Queue the removal of each of these grants' memberships, due now ([`enqueue`] for many).
pub async fn enqueue_removals(conn: &mut Conn, grants: &[GrantId], now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    if grants.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO outbox (kind, resource_role_id, user_id, grant_id, next_attempt_at, created_at, updated_at) \
         SELECT 'remove_member', resource_role_id, user_id, id, $1, $1, $1 FROM grants WHERE id IN {} ORDER BY id",
        super::ids_param(conn, 2)
    );
    sqlx::query(&sql).bind(to_ms(now)).bind(super::ids_json(grants.iter().map(|g| g.0))).execute(conn).await?;
    Ok(())
}
/// Which of these assignments are live and past their end at `now`, in the order given.
pub async fn due_among(
    conn: &mut Conn,
    ids: &[AssignmentId],
    now: DateTime<Utc>,
) -> Result<Vec<AssignmentRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE id IN {} AND state IN {LIVE} \
         AND end_at IS NOT NULL AND end_at <= $2",
        super::ids_param(conn, 1)
    );
    let rows =
        sqlx::query(&sql).bind(super::ids_json(ids.iter().map(|a| a.0))).bind(to_ms(now)).fetch_all(conn).await?;
    let mut due = rows.iter().map(assignment_from_row).collect::<Result<Vec<_>, _>>()?;
    due.sort_by_key(|a| ids.iter().position(|id| *id == a.id));
    Ok(due)
}

/// The assignment a grant belongs to.
pub async fn assignment_of_grant(conn: &mut Conn, grant: GrantId) -> Result<Option<AssignmentRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM assignments a JOIN grants g ON g.assignment_id = a.id WHERE g.id = $1",
        ASSIGNMENT_COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
    );
    let row = sqlx::query(&sql).bind(grant.0).fetch_optional(conn).await?;
    row.as_ref().map(assignment_from_row).transpose()
}

// ---- grants ----

#[derive(Clone, Debug)]
pub struct GrantRow {
    pub id: GrantId,
    pub assignment: AssignmentId,
    pub role: ResourceRoleId,
    pub user: UserId,
    pub state: GrantState,
    pub attempts: i64,
    pub last_error: String,
}

fn grant_from_row(row: &AnyRow) -> Result<GrantRow, sqlx::Error> {
    Ok(GrantRow {
        id: GrantId(row.int("id")?),
        assignment: AssignmentId(row.int("assignment_id")?),
        role: ResourceRoleId(row.int("resource_role_id")?),
        user: UserId(row.int("user_id")?),
        state: row.word("state", GrantState::parse)?,
        attempts: row.int("attempts")?,
        last_error: row.text("last_error")?,
    })
}

/// A new assignment's grants, one per resource role of its package (in the order the package
/// lists them: resource, then role name), each with its `add_member` entry in the outbox, due
/// at `due` (access that starts later is provisioned when it starts): two statements whatever
/// the number of roles. Returns how many grants were made.
pub async fn grant_package_roles(
    conn: &mut Conn,
    assignment: AssignmentId,
    user: UserId,
    package: PackageId,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let made = sqlx::query(
        "INSERT INTO grants (assignment_id, resource_role_id, user_id, state, updated_at)
         SELECT $1, prr.resource_role_id, $2, 'pending', $3
         FROM package_resource_roles prr
         JOIN resource_roles rr ON rr.id = prr.resource_role_id
         JOIN resources r ON r.id = rr.resource_id
         WHERE prr.package_id = $4
         ORDER BY r.name, rr.name",
    )
    .bind(assignment.0)
    .bind(user.0)
    .bind(to_ms(now))
    .bind(package.0)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query(
        "INSERT INTO outbox (kind, resource_role_id, user_id, grant_id, next_attempt_at, created_at, updated_at)
         SELECT 'add_member', g.resource_role_id, g.user_id, g.id, $2, $3, $3
         FROM grants g WHERE g.assignment_id = $1 ORDER BY g.id",
    )
    .bind(assignment.0)
    .bind(to_ms(due))
    .bind(to_ms(now))
    .execute(conn)
    .await?;
    Ok(made)
}

/// Each role the assignment's package grants now, with the state of the assignment's grant
/// for it (`None`: no grant yet, the role was added and the sync has not reached it).
pub async fn role_states(conn: &mut Conn, assignment: AssignmentId) -> Result<Vec<Option<GrantState>>, sqlx::Error> {
    let states: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT g.state FROM assignments a \
         JOIN package_resource_roles prr ON prr.package_id = a.package_id \
         LEFT JOIN grants g ON g.assignment_id = a.id AND g.resource_role_id = prr.resource_role_id \
         WHERE a.id = $1 ORDER BY prr.resource_role_id",
    )
    .bind(assignment.0)
    .fetch_all(conn)
    .await?;
    states.into_iter().map(|s| s.map(|s| super::parse_word("state", &s, GrantState::parse)).transpose()).collect()
}

/// Move a grant from `from` to `to`, with the error (empty: none); false when it was not in
/// `from`.
pub async fn set_grant_state_if(
    conn: &mut Conn,
    grant: GrantId,
    (from, to): (GrantState, GrantState),
    error: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE grants SET state = $1, last_error = $2, updated_at = $3 WHERE id = $4 AND state = $5")
            .bind(to.as_str())
            .bind(error)
            .bind(to_ms(now))
            .bind(grant.0)
            .bind(from.as_str())
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// A grant's state, if it exists.
pub async fn grant_state(conn: &mut Conn, grant: GrantId) -> Result<Option<GrantState>, sqlx::Error> {
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM grants WHERE id = $1").bind(grant.0).fetch_optional(conn).await?;
    state.map(|s| super::parse_word("state", &s, GrantState::parse)).transpose()
}

/// How many grants of live assignments other than `except` hold this role for this user:
/// the reference count that decides whether a removal really takes the membership away.
pub async fn other_live_holders(
    conn: &mut Conn,
    user: UserId,
    role: ResourceRoleId,
    except: Option<AssignmentId>,
) -> Result<i64, sqlx::Error> {
    let sql = format!(
        "SELECT COUNT(*) FROM grants g JOIN assignments a ON a.id = g.assignment_id \
         WHERE g.user_id = $1 AND g.resource_role_id = $2 AND a.id <> $3 AND a.state IN {LIVE} AND {HOLDING}"
    );
    sqlx::query_scalar(&sql).bind(user.0).bind(role.0).bind(except.map_or(0, |a| a.0)).fetch_one(conn).await
}

// ---- outbox ----

/// What the delivery worker is asked to do.
#[derive(Clone, Debug)]
pub struct OutboxItem {
    pub id: i64,
    pub kind: String,
    pub role: ResourceRoleId,
    pub user: UserId,
    pub grant: Option<GrantId>,
    /// Attempts so far, this one included once claimed.
    pub attempts: i64,
    pub last_error: String,
    pub system_kind: ResourceSystemKind,
    pub system: ResourceSystemId,
}

const OUTBOX_ITEM_COLUMNS: &str = "o.id, o.kind, o.resource_role_id, o.user_id, o.grant_id, o.attempts, \
    o.last_error, s.kind AS system_kind, s.id AS system_id";

const OUTBOX_ITEM_FROM: &str = "FROM outbox o
    JOIN resource_roles rr ON rr.id = o.resource_role_id
    JOIN resources r ON r.id = rr.resource_id
    JOIN resource_systems s ON s.id = r.system_id";

fn outbox_item_from_row(row: &AnyRow) -> Result<OutboxItem, sqlx::Error> {
    Ok(OutboxItem {
        id: row.int("id")?,
        kind: row.text("kind")?,
        role: ResourceRoleId(row.int("resource_role_id")?),
        user: UserId(row.int("user_id")?),
        grant: row.opt_int("grant_id")?.map(GrantId),
        attempts: row.int("attempts")?,
        last_error: row.text("last_error")?,
        system_kind: row.word("system_kind", ResourceSystemKind::parse)?,
        system: ResourceSystemId(row.int("system_id")?),
    })
}

/// Claim up to `limit` due entries for the claim `token` until `lease_until`, counting the
/// attempt; returns their ids. An entry is due when it is pending, its time has come, and
/// nobody holds an unexpired lease on it. The caller commits this before talking to any
/// target, so a slow target holds no lock; two workers never hold the same entry (PostgreSQL:
/// `FOR UPDATE SKIP LOCKED`; SQLite: the single writer). Each entry is read on its own
/// afterwards, so one that cannot be decoded does not hold up the others.
pub async fn claim_due(
    conn: &mut Conn,
    backend: super::Backend,
    token: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    // One claim per (person, role) at a time: an entry waits while another of the same pair
    // is held under a live lease (being delivered by this instance or another), so a target
    // never sees an addition and a removal of one membership at once. Entries of one pair
    // claimed together are delivered in turn, in queue order. Nothing is claimed for a system
    // paused (it asked us to wait, or could not be reached).
    let also = "q.kind <> 'email' \
         AND NOT EXISTS (SELECT 1 FROM outbox e \
             WHERE e.state = 'pending' AND e.user_id = q.user_id \
               AND e.resource_role_id = q.resource_role_id AND e.id <> q.id AND e.claimed_until > $3) \
         AND NOT EXISTS (SELECT 1 FROM resource_roles rr \
             JOIN resources r ON r.id = rr.resource_id JOIN resource_systems s ON s.id = r.system_id \
             WHERE rr.id = q.resource_role_id AND s.paused_until > $3)";
    super::lease::claim_due(conn, backend, super::lease::Queue::Outbox, (token, now, lease_until), limit, also).await
}

/// Is this entry still pending and held by the claim `token`? (A lease that ran out may have
/// been taken over; the worker that lost it records nothing.)
pub async fn still_claimed(conn: &mut Conn, id: i64, token: &str) -> Result<bool, sqlx::Error> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE id = $1 AND state = 'pending' AND claimed_by = $2")
            .bind(id)
            .bind(token)
            .fetch_one(conn)
            .await?;
    Ok(n > 0)
}

/// Is other work for the same person and role being delivered under another claim? (Two
/// instances can claim two entries of one pair in the same instant; each checks this under
/// the person's lock before calling the target, and the later one steps back.)
pub async fn pair_in_flight(
    conn: &mut Conn,
    item: &OutboxItem,
    token: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND user_id = $1 AND resource_role_id = $2 \
         AND id <> $3 AND claimed_by <> $4 AND claimed_until > $5",
    )
    .bind(item.user.0)
    .bind(item.role.0)
    .bind(item.id)
    .bind(token)
    .bind(to_ms(now))
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// Give a claimed entry back untried, due at `at`: the attempt the claim counted is taken
/// back (its target was unavailable, or other work for the pair came first). False when the
/// claim was lost.
pub async fn release(
    conn: &mut Conn,
    id: i64,
    token: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE outbox SET attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, next_attempt_at = $1, claimed_until = NULL, \
         claimed_by = '', updated_at = $4 WHERE id = $2 AND state = 'pending' AND claimed_by = $3",
    )
    .bind(to_ms(at))
    .bind(id)
    .bind(token)
    .bind(to_ms(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// No instance claims the system's work before `until` (a later pause already set stands).
pub async fn pause_system(conn: &mut Conn, system: ResourceSystemId, until: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE resource_systems SET paused_until = $1 WHERE id = $2 AND (paused_until IS NULL OR paused_until < $1)",
    )
    .bind(to_ms(until))
    .bind(system.0)
    .execute(conn)
    .await?;
    Ok(())
}

/// Hold the claim longer (before a call to a target). False when it was lost.
pub async fn renew_lease(conn: &mut Conn, id: i64, token: &str, until: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE outbox SET claimed_until = $1 WHERE id = $2 AND state = 'pending' AND claimed_by = $3")
            .bind(to_ms(until))
            .bind(id)
            .bind(token)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// The claimed entry is settled: `done` or `failed`, with the reason; the lease is released.
/// False (nothing written) when the claim `token` no longer holds it.
pub async fn finish(
    conn: &mut Conn,
    id: i64,
    token: &str,
    state: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    super::lease::finish(conn, super::lease::Queue::Outbox, (id, token), state, error, now).await
}

/// The attempt failed and another follows at `retry_at` (`failed` instead once `give_up`);
/// the lease is released. `spent`: the attempt counts (else it is given back: the target as a
/// whole was unavailable, not this work). False (nothing written) when the claim `token` no
/// longer holds it.
pub async fn retry_later(
    conn: &mut Conn,
    id: i64,
    token: &str,
    error: (&str, bool),
    retry_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    super::lease::retry_later(conn, super::lease::Queue::Outbox, (id, token), error, retry_at, now).await
}

/// The failed entries of a system's work, oldest first, at most `limit`.
pub async fn failed_of_system(conn: &mut Conn, system: ResourceSystemId, limit: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT o.id FROM outbox o JOIN resource_roles rr ON rr.id = o.resource_role_id \
         JOIN resources r ON r.id = rr.resource_id WHERE o.state = 'failed' AND r.system_id = $1 ORDER BY o.id LIMIT $2",
    )
    .bind(system.0)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The attempt count of an entry (for a fault recorded without the entry itself).
pub async fn attempts_of(conn: &mut Conn, id: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT attempts FROM outbox WHERE id = $1").bind(id).fetch_optional(conn).await
}

/// The catalog whose package made this work (through its grant), if any.
pub async fn catalog_of_outbox(conn: &mut Conn, id: i64) -> Result<Option<CatalogId>, sqlx::Error> {
    let c: Option<i64> = sqlx::query_scalar(
        "SELECT p.catalog_id FROM outbox o JOIN grants g ON g.id = o.grant_id \
         JOIN assignments a ON a.id = g.assignment_id JOIN access_packages p ON p.id = a.package_id WHERE o.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(c.map(CatalogId))
}

/// Failed work, newest first: everything (`catalogs: None`, administrators), or the work made
/// by packages of these catalogs (their owners). Filtered in SQL, then limited.
pub async fn failed_outbox(
    conn: &mut Conn,
    catalogs: Option<&[CatalogId]>,
    limit: i64,
) -> Result<Vec<OutboxItem>, sqlx::Error> {
    let scope = match catalogs {
        None => String::new(),
        Some(list) => format!(
            "AND o.grant_id IN (SELECT g.id FROM grants g JOIN assignments a ON a.id = g.assignment_id \
             JOIN access_packages p ON p.id = a.package_id WHERE p.catalog_id IN ({}))",
            super::id_list(list.iter().map(|c| c.0))
        ),
    };
    let sql = format!(
        "SELECT {OUTBOX_ITEM_COLUMNS} {OUTBOX_ITEM_FROM} WHERE o.state = 'failed' {scope} ORDER BY o.id DESC LIMIT $1"
    );
    let rows = sqlx::query(&sql).persistent(false).bind(limit).fetch_all(conn).await?;
    rows.iter().map(outbox_item_from_row).collect()
}

pub async fn outbox_item(conn: &mut Conn, id: i64) -> Result<Option<OutboxItem>, sqlx::Error> {
    let sql = format!("SELECT {OUTBOX_ITEM_COLUMNS} {OUTBOX_ITEM_FROM} WHERE o.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(outbox_item_from_row).transpose()
}

/// Several entries by id, in id order: those that exist and can be read. An entry left out is
/// for the caller to read on its own ([`outbox_item`]), which reports why, so one bad row
/// never stops the others.
pub async fn outbox_items(conn: &mut Conn, ids: &[i64]) -> Result<Vec<OutboxItem>, sqlx::Error> {
    let sql = format!(
        "SELECT {OUTBOX_ITEM_COLUMNS} {OUTBOX_ITEM_FROM} WHERE o.id IN {} ORDER BY o.id",
        super::ids_param(conn, 1)
    );
    let rows = sqlx::query(&sql).bind(super::ids_json(ids.iter().copied())).fetch_all(conn).await?;
    Ok(rows.iter().filter_map(|row| outbox_item_from_row(row).ok()).collect())
}

/// Put failed work back in the queue, due now, with a fresh count of attempts. False when it
/// was not failed (someone else retried it first).
pub async fn requeue_failed(conn: &mut Conn, id: i64, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1, updated_at = $1, \
         claimed_until = NULL, claimed_by = '' WHERE id = $2 AND state = 'failed'",
    )
    .bind(to_ms(now))
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

// ---- the built-in resource system ----

pub async fn builtin_add(
    conn: &mut Conn,
    role: ResourceRoleId,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO builtin_memberships (resource_role_id, user_id, added_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(role.0)
    .bind(user.0)
    .bind(to_ms(now))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn builtin_remove(conn: &mut Conn, role: ResourceRoleId, user: UserId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM builtin_memberships WHERE resource_role_id = $1 AND user_id = $2")
        .bind(role.0)
        .bind(user.0)
        .execute(conn)
        .await?;
    Ok(())
}

/// Members of a built-in resource role.
pub async fn builtin_members(conn: &mut Conn, role: ResourceRoleId) -> Result<Vec<UserId>, sqlx::Error> {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT user_id FROM builtin_memberships WHERE resource_role_id = $1 ORDER BY user_id")
            .bind(role.0)
            .fetch_all(conn)
            .await?;
    Ok(ids.into_iter().map(UserId).collect())
}

/// Every built-in resource role with its members' names (empty roles included).
pub async fn builtin_roster(
    conn: &mut Conn,
) -> Result<Vec<(ResourceRoleId, String, String, Option<String>)>, sqlx::Error> {
    let rows: Vec<(i64, String, String, Option<String>)> = sqlx::query_as(
        "SELECT rr.id, r.name, rr.name, u.display_name
         FROM resource_roles rr
         JOIN resources r ON r.id = rr.resource_id
         JOIN resource_systems s ON s.id = r.system_id AND s.kind = 'builtin'
         LEFT JOIN builtin_memberships m ON m.resource_role_id = rr.id
         LEFT JOIN users u ON u.id = m.user_id
         ORDER BY r.name, rr.name, u.display_name",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id, r, role, u)| (ResourceRoleId(id), r, role, u)).collect())
}

/// The grants of these assignments with what they grant, for timelines.
pub async fn grants_described(
    conn: &mut Conn,
    assignments: &[AssignmentId],
) -> Result<Vec<(AssignmentId, String, GrantState)>, sqlx::Error> {
    if assignments.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT g.assignment_id, r.name AS resource, rr.name AS role, g.state FROM grants g
         JOIN resource_roles rr ON rr.id = g.resource_role_id JOIN resources r ON r.id = rr.resource_id
         WHERE g.assignment_id IN {} ORDER BY g.assignment_id, r.name, rr.name",
        super::ids_param(conn, 1)
    );
    let rows = sqlx::query(&sql).bind(super::ids_json(assignments.iter().map(|a| a.0))).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok((
                AssignmentId(row.int("assignment_id")?),
                format!("{} · {}", row.text("resource")?, row.text("role")?),
                row.word("state", GrantState::parse)?,
            ))
        })
        .collect()
}

/// A person's live assignments.
pub async fn live_of_user(conn: &mut Conn, user: UserId) -> Result<Vec<AssignmentRow>, sqlx::Error> {
    let sql =
        format!("SELECT {ASSIGNMENT_COLUMNS} FROM assignments WHERE user_id = $1 AND state IN {LIVE} ORDER BY id");
    let rows = sqlx::query(&sql).bind(user.0).fetch_all(conn).await?;
    rows.iter().map(assignment_from_row).collect()
}

/// One assignment of a package as its admin list shows it.
pub struct PackageAssignmentRow {
    pub id: AssignmentId,
    pub user: UserId,
    pub name: String,
    pub email: String,
    pub state: AssignmentState,
    pub start_at: DateTime<Utc>,
    pub end_at: Option<DateTime<Utc>>,
    pub policy: String,
    pub request: Option<RequestId>,
}

/// A package's assignments in `states`, newest first, before the assignment `before`; with
/// `prefix` (lowercase), only people whose email or name starts with it. At most `limit`.
/// The states are the enum's own words, written into the statement (a handful of lists).
pub async fn package_assignments(
    conn: &mut Conn,
    package: PackageId,
    states: &[AssignmentState],
    prefix: Option<&str>,
    before: i64,
    limit: i64,
) -> Result<Vec<PackageAssignmentRow>, sqlx::Error> {
    let words: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let person = if prefix.is_some() {
        "AND (LOWER(u.email) LIKE $4 ESCAPE '!' OR LOWER(u.display_name) LIKE $4 ESCAPE '!')"
    } else {
        ""
    };
    let sql = format!(
        "SELECT a.id, a.user_id, u.display_name, u.email, a.state, a.start_at, a.end_at, p.name AS policy, \
         a.request_id FROM assignments a JOIN users u ON u.id = a.user_id JOIN policies p ON p.id = a.policy_id \
         WHERE a.package_id = $1 AND a.id < $2 AND a.state IN ({}) {person} ORDER BY a.id DESC LIMIT $3",
        words.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(package.0).bind(before).bind(limit);
    if let Some(prefix) = prefix {
        let escaped = prefix.replace('!', "!!").replace('%', "!%").replace('_', "!_");
        query = query.bind(format!("{escaped}%"));
    }
    let rows = query.fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok(PackageAssignmentRow {
                id: AssignmentId(row.int("id")?),
                user: UserId(row.int("user_id")?),
                name: row.text("display_name")?,
                email: row.text("email")?,
                state: row.word("state", AssignmentState::parse)?,
                start_at: row.time("start_at")?,
                end_at: row.opt_time("end_at")?,
                policy: row.text("policy")?,
                request: row.opt_int("request_id")?.map(RequestId),
            })
        })
        .collect()
}

/// One live assignment of a person with the path that gave it: package, catalog, policy, and
/// the request it came from.
pub struct ExplainedRow {
    pub id: AssignmentId,
    pub state: AssignmentState,
    pub start_at: DateTime<Utc>,
    pub end_at: Option<DateTime<Utc>>,
    pub package: PackageId,
    pub package_name: String,
    pub catalog: CatalogId,
    pub catalog_name: String,
    pub policy_name: String,
    pub request: Option<RequestId>,
    pub kind: Option<String>,
    pub requestor: Option<UserId>,
    pub requested_at: Option<DateTime<Utc>>,
    pub justification: String,
}

/// A person's live assignments, by package name, each with its path.
pub async fn explained_holdings(conn: &mut Conn, user: UserId) -> Result<Vec<ExplainedRow>, sqlx::Error> {
    let sql = format!(
        "SELECT a.id, a.state, a.start_at, a.end_at, p.id AS package_id, p.name AS package_name, \
         c.id AS catalog_id, c.name AS catalog_name, pol.name AS policy_name, a.request_id, r.kind, \
         r.requestor_id, r.created_at AS requested_at, COALESCE(r.justification, '') AS justification \
         FROM assignments a JOIN access_packages p ON p.id = a.package_id JOIN catalogs c ON c.id = p.catalog_id \
         JOIN policies pol ON pol.id = a.policy_id LEFT JOIN requests r ON r.id = a.request_id \
         WHERE a.user_id = $1 AND a.state IN {LIVE} ORDER BY p.name, a.id"
    );
    let rows = sqlx::query(&sql).bind(user.0).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok(ExplainedRow {
                id: AssignmentId(row.int("id")?),
                state: row.word("state", AssignmentState::parse)?,
                start_at: row.time("start_at")?,
                end_at: row.opt_time("end_at")?,
                package: PackageId(row.int("package_id")?),
                package_name: row.text("package_name")?,
                catalog: CatalogId(row.int("catalog_id")?),
                catalog_name: row.text("catalog_name")?,
                policy_name: row.text("policy_name")?,
                request: row.opt_int("request_id")?.map(RequestId),
                kind: row.opt_text("kind")?,
                requestor: row.opt_int("requestor_id")?.map(UserId),
                requested_at: row.opt_time("requested_at")?,
                justification: row.text("justification")?,
            })
        })
        .collect()
}

/// The decisions on these requests: (request, stage, approver, decision, justification, when),
/// by request and stage.
pub async fn decisions_on(
    conn: &mut Conn,
    requests: &[RequestId],
) -> Result<Vec<(RequestId, i64, Option<UserId>, Decision, String, DateTime<Utc>)>, sqlx::Error> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT request_id, stage, approver_id, decision, justification, decided_at FROM decisions \
         WHERE request_id IN {} ORDER BY request_id, stage",
        super::ids_param(conn, 1)
    );
    let rows = sqlx::query(&sql).bind(super::ids_json(requests.iter().map(|r| r.0))).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok((
                RequestId(row.int("request_id")?),
                row.int("stage")?,
                row.opt_int("approver_id")?.map(UserId),
                row.word("decision", Decision::parse)?,
                row.text("justification")?,
                row.time("decided_at")?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::store::Db;

    /// The expiry sweep reads its index, in order, with no sort (SQLite's plan).
    #[tokio::test]
    async fn the_expiry_sweep_reads_its_index_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/p.db", dir.path().display()), 1).await.unwrap();
        db.migrate().await.unwrap();
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!(
            "EXPLAIN QUERY PLAN {}",
            due_to_expire_sql().replace("$1", "0").replace("$2", "500")
        ))
        .fetch_all(db.pool())
        .await
        .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|r| r.3).collect();
        assert!(plan.iter().any(|d| d.contains("assignments_live_end")), "{plan:?}");
        assert!(!plan.iter().any(|d| d.contains("TEMP B-TREE")), "no sort: {plan:?}");
    }
}
