//! Requests, the approvers resolved for their stages, and decisions.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::{to_ms, Conn, RowExt};
use crate::domain::approvers::ApproverSource;
use crate::domain::ids::*;
use crate::domain::policy::{Answer, Stage};
use crate::domain::request::{Decision, RequestKind, RequestState};

/// A request as stored.
#[derive(Clone, Debug)]
pub struct RequestRow {
    pub id: RequestId,
    pub kind: RequestKind,
    pub state: RequestState,
    pub requestor: UserId,
    pub target: UserId,
    pub package: PackageId,
    pub policy: PolicyId,
    pub assignment: Option<AssignmentId>,
    /// The approval stages it was filed under (a snapshot of the policy then).
    pub stages: Vec<Stage>,
    /// 1-based; 0 before approval starts.
    pub current_stage: u32,
    pub stage_due_at: Option<DateTime<Utc>>,
    pub escalated: bool,
    pub justification: String,
    pub answers: Vec<Answer>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub outcome_reason: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

pub const REQUEST_COLUMNS: &str = "id, kind, state, requestor_id, target_user_id, package_id, policy_id, \
    assignment_id, stages, current_stage, stage_due_at, escalated, justification, answers, start_at, \
    end_at, outcome_reason, version, created_at";

pub fn request_from_row(row: &AnyRow) -> Result<RequestRow, sqlx::Error> {
    Ok(RequestRow {
        id: RequestId(row.int("id")?),
        kind: row.word("kind", RequestKind::parse)?,
        state: row.word("state", RequestState::parse)?,
        requestor: UserId(row.int("requestor_id")?),
        target: UserId(row.int("target_user_id")?),
        package: PackageId(row.int("package_id")?),
        policy: PolicyId(row.int("policy_id")?),
        assignment: row.opt_int("assignment_id")?.map(AssignmentId),
        stages: row.json("stages")?,
        current_stage: row.small("current_stage")?,
        stage_due_at: row.opt_time("stage_due_at")?,
        escalated: row.flag("escalated")?,
        justification: row.text("justification")?,
        answers: row.json("answers")?,
        start_at: row.opt_time("start_at")?,
        end_at: row.opt_time("end_at")?,
        outcome_reason: row.text("outcome_reason")?,
        version: row.int("version")?,
        created_at: row.time("created_at")?,
    })
}

pub async fn request(conn: &mut Conn, id: RequestId) -> Result<Option<RequestRow>, sqlx::Error> {
    let sql = format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = $1");
    let row = sqlx::query(&sql).bind(id.0).fetch_optional(conn).await?;
    row.as_ref().map(request_from_row).transpose()
}

/// A request about to be stored.
pub struct NewRequestRow<'a> {
    pub kind: RequestKind,
    pub state: RequestState,
    pub requestor: UserId,
    pub target: UserId,
    pub package: PackageId,
    pub policy: PolicyId,
    pub stages: &'a [Stage],
    pub current_stage: u32,
    pub stage_due_at: Option<DateTime<Utc>>,
    pub justification: &'a str,
    pub answers: &'a [Answer],
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub outcome_reason: &'a str,
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

pub async fn insert(conn: &mut Conn, r: &NewRequestRow<'_>, now: DateTime<Utc>) -> Result<RequestId, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO requests (kind, state, requestor_id, target_user_id, package_id, policy_id, stages,
            current_stage, stage_started_at, stage_due_at, justification, answers, start_at, end_at,
            outcome_reason, remind_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $9, $9) RETURNING id",
    )
    .bind(r.kind.as_str())
    .bind(r.state.as_str())
    .bind(r.requestor.0)
    .bind(r.target.0)
    .bind(r.package.0)
    .bind(r.policy.0)
    .bind(json(&r.stages)?)
    .bind(i64::from(r.current_stage))
    .bind(to_ms(now))
    .bind(r.stage_due_at.map(to_ms))
    .bind(r.justification)
    .bind(json(&r.answers)?)
    .bind(r.start_at.map(to_ms))
    .bind(r.end_at.map(to_ms))
    .bind(r.outcome_reason)
    .bind(
        r.stage_due_at
            .and_then(|_| r.stages.get((r.current_stage as usize).checked_sub(1)?))
            .and_then(|s| s.reminder(now))
            .map(to_ms),
    )
    .fetch_one(conn)
    .await?;
    Ok(RequestId(id))
}

/// Store a stage's resolved approvers, in one statement (a group can name hundreds).
pub async fn insert_approvers(
    conn: &mut Conn,
    request: RequestId,
    stage: u32,
    approvers: &[(UserId, ApproverSource)],
) -> Result<(), sqlx::Error> {
    // At most 4 parameters a row; stay well under both backends' parameter limits.
    for chunk in approvers.chunks(500) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${}, ${})", 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4))
            .collect();
        let sql =
            format!("INSERT INTO request_approvers (request_id, stage, user_id, source) VALUES {}", rows.join(", "));
        // A few shapes (one to eight approvers) recur and stay prepared; larger ones would
        // only push the fixed statements out of the connection's cache.
        let mut q = sqlx::query(&sql).persistent(chunk.len() <= 8);
        for (user, source) in chunk {
            q = q.bind(request.0).bind(i64::from(stage)).bind(user.0).bind(source.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    refresh_inbox(conn, request).await
}

/// Keep `request_approvers.active` in step with the request: exactly the approvers who may
/// decide it now are active. Called by everything that moves a request or its approvers.
pub async fn refresh_inbox(conn: &mut Conn, request: RequestId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE request_approvers SET active = CASE WHEN EXISTS (
            SELECT 1 FROM requests r WHERE r.id = request_approvers.request_id AND r.state = 'pending_approval'
              AND r.current_stage = request_approvers.stage
              AND (request_approvers.source <> 'escalation' OR r.escalated = 1)) THEN 1 ELSE 0 END
         WHERE request_id = $1",
    )
    .bind(request.0)
    .execute(conn)
    .await?;
    Ok(())
}

/// Is this user among the people who may decide this stage now?
pub async fn may_decide(
    conn: &mut Conn,
    request: RequestId,
    stage: u32,
    user: UserId,
    escalated: bool,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM request_approvers WHERE request_id = $1 AND stage = $2 AND user_id = $3 \
         AND (source <> 'escalation' OR $4 = 1)",
    )
    .bind(request.0)
    .bind(i64::from(stage))
    .bind(user.0)
    .bind(i64::from(escalated))
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// Is this user an approver of any stage of this request (now, earlier or later)?
pub async fn approves_any_stage(conn: &mut Conn, request: RequestId, user: UserId) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM request_approvers WHERE request_id = $1 AND user_id = $2")
        .bind(request.0)
        .bind(user.0)
        .fetch_one(conn)
        .await?;
    Ok(n > 0)
}

/// The transition a request makes, written only if nobody changed it since `version` was read.
pub struct Transition<'a> {
    pub state: RequestState,
    pub current_stage: u32,
    pub stage_due_at: Option<DateTime<Utc>>,
    /// When the stage that starts (if one does) reminds its approvers.
    pub remind_at: Option<DateTime<Utc>>,
    pub escalated: bool,
    pub outcome_reason: &'a str,
    pub assignment: Option<AssignmentId>,
}

/// Returns false when the request moved on meanwhile (the caller lost a race).
pub async fn transition(
    conn: &mut Conn,
    id: RequestId,
    expected_version: i64,
    t: &Transition<'_>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE requests SET state = $1, current_stage = $2, stage_due_at = $3, escalated = $4,
            outcome_reason = $5, assignment_id = $6, stage_started_at = $7, updated_at = $7,
            remind_at = $10, version = version + 1
         WHERE id = $8 AND version = $9",
    )
    .bind(t.state.as_str())
    .bind(i64::from(t.current_stage))
    .bind(t.stage_due_at.map(to_ms))
    .bind(i64::from(t.escalated))
    .bind(t.outcome_reason)
    .bind(t.assignment.map(|a| a.0))
    .bind(to_ms(now))
    .bind(id.0)
    .bind(expected_version)
    .bind(t.remind_at.map(to_ms))
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    refresh_inbox(conn, id).await?;
    Ok(true)
}

/// Set a request's state from `from` to `to` (delivery progress).
pub async fn set_state_if(
    conn: &mut Conn,
    id: RequestId,
    from: &[RequestState],
    to: RequestState,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let list: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let sql = format!(
        "UPDATE requests SET state = $1, updated_at = $2, version = version + 1 \
         WHERE id = $3 AND state IN ({})",
        list.join(",")
    );
    let done = sqlx::query(&sql).bind(to.as_str()).bind(to_ms(now)).bind(id.0).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

/// A request whose access could not be delivered after all: `delivering` → `delivery_failed`,
/// with the reason.
pub async fn fail_delivery(
    conn: &mut Conn,
    id: RequestId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    set_delivery_state(conn, id, RequestState::DeliveryFailed, reason, now, true).await
}

/// Where delivery stands, rolled up from the grants: a request past approval (delivering,
/// partly delivered, delivery failed) moves to `to`, with the reason.
pub async fn roll_up_delivery(
    conn: &mut Conn,
    id: RequestId,
    to: RequestState,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    set_delivery_state(conn, id, to, reason, now, false).await
}

/// Move a request past approval to the delivery state `to`, with the reason; `again`: also
/// when it is in `to` already (to record a newer reason).
async fn set_delivery_state(
    conn: &mut Conn,
    id: RequestId,
    to: RequestState,
    reason: &str,
    now: DateTime<Utc>,
    again: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE requests SET state = $1, outcome_reason = $2, updated_at = $3, version = version + 1 \
         WHERE id = $4 AND state IN ('delivering', 'partially_delivered', 'delivery_failed') AND ($5 = 1 OR state <> $1)",
    )
    .bind(to.as_str())
    .bind(reason)
    .bind(to_ms(now))
    .bind(id.0)
    .bind(i64::from(again))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Record a stage's decision. Returns false when the stage already has one.
pub async fn insert_decision(
    conn: &mut Conn,
    request: RequestId,
    stage: u32,
    approver: Option<UserId>,
    decision: Decision,
    justification: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO decisions (request_id, stage, approver_id, decision, justification, decided_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id, stage) DO NOTHING RETURNING id",
    )
    .bind(request.0)
    .bind(i64::from(stage))
    .bind(approver.map(|a| a.0))
    .bind(decision.as_str())
    .bind(justification)
    .bind(to_ms(now))
    .fetch_optional(conn)
    .await?;
    Ok(id.is_some())
}

/// The most recent decision on a request, with the decider's name.
pub async fn last_decision(
    conn: &mut Conn,
    request: RequestId,
) -> Result<Option<(u32, Decision, Option<String>)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT d.stage, d.decision, u.display_name FROM decisions d \
         LEFT JOIN users u ON u.id = d.approver_id WHERE d.request_id = $1 ORDER BY d.stage DESC LIMIT 1",
    )
    .bind(request.0)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let decision = row.word("decision", Decision::parse)?;
    Ok(Some((row.small("stage")?, decision, row.opt_text("display_name")?)))
}

/// Is there a request for this user and package still waiting for a decision?
pub async fn open_request_exists(conn: &mut Conn, target: UserId, package: PackageId) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM requests WHERE target_user_id = $1 AND package_id = $2 \
         AND state IN ('submitted', 'pending_approval')",
    )
    .bind(target.0)
    .bind(package.0)
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// Open work only: the inbox index (`request_approvers_inbox`, active rows) serves it.
const PENDING_FOR: &str = "FROM request_approvers a JOIN requests r ON r.id = a.request_id
     WHERE a.user_id = $1 AND a.active = 1";

/// For the page chrome, in one statement: how many decisions wait for this person, and
/// whether they approve at all (someone active reports to them, or they have been asked to
/// decide before). Active approver rows are exactly the open work (every change of a
/// request's stage or state sets them), so the count needs no join: the inbox index alone
/// answers it.
pub async fn approver_standing(conn: &mut Conn, user: UserId) -> Result<(i64, bool, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM request_approvers WHERE user_id = $1 AND active = 1) AS pending,
                (SELECT COUNT(*) FROM review_reviewers rr JOIN review_items i ON i.id = rr.item_id
                   JOIN reviews v ON v.id = i.review_id
                 WHERE rr.user_id = $1 AND i.decision IS NULL AND v.state = 'running') AS reviews,
                CASE WHEN EXISTS (SELECT 1 FROM users WHERE manager_id = $1 AND state = 'active')
                       OR EXISTS (SELECT 1 FROM request_approvers WHERE user_id = $1)
                     THEN 1 ELSE 0 END AS approver",
    )
    .bind(user.0)
    .fetch_one(conn)
    .await?;
    Ok((row.int("pending")?, row.flag("approver")?, row.int("reviews")?))
}

/// Requests waiting for this approver, oldest first, one page after `after`.
pub async fn pending_for(
    conn: &mut Conn,
    user: UserId,
    after: i64,
    limit: i64,
) -> Result<Vec<RequestRow>, sqlx::Error> {
    let cols: Vec<String> = REQUEST_COLUMNS.split(", ").map(|c| format!("r.{c}")).collect();
    let sql = format!("SELECT {} {PENDING_FOR} AND a.request_id > $2 ORDER BY a.request_id LIMIT $3", cols.join(", "));
    let rows = sqlx::query(&sql).bind(user.0).bind(after).bind(limit).fetch_all(conn).await?;
    rows.iter().map(request_from_row).collect()
}

/// Pending requests past their stage's due time, through the partial index of open requests
/// (`requests_open`): the statement repeats the index's condition, since SQLite uses a partial
/// index only for a query whose condition contains the index's word for word.
pub const OVERDUE_SQL: &str = "SELECT id FROM requests \
     WHERE state IN ('submitted', 'pending_approval', 'approved', 'delivering') \
     AND state = 'pending_approval' AND stage_due_at <= $1 ORDER BY stage_due_at LIMIT $2";

/// Pending requests whose current stage is past its due time.
pub async fn overdue(conn: &mut Conn, now: DateTime<Utc>, limit: i64) -> Result<Vec<RequestId>, sqlx::Error> {
    let ids: Vec<i64> = sqlx::query_scalar(OVERDUE_SQL).bind(to_ms(now)).bind(limit).fetch_all(conn).await?;
    Ok(ids.into_iter().map(RequestId).collect())
}

/// Requests filed by or for this user, newest first. Each side is its own limited walk down
/// its index (`requests_target`, `requests_requestor`), so a page reads at most twice its
/// length; `target OR requestor` read every request of the person to keep a page of them.
pub async fn of_user(conn: &mut Conn, user: UserId, before: i64, limit: i64) -> Result<Vec<RequestRow>, sqlx::Error> {
    let sql = of_user_sql();
    let rows = sqlx::query(&sql).bind(user.0).bind(before).bind(limit).fetch_all(conn).await?;
    rows.iter().map(request_from_row).collect()
}

/// The statement [`of_user`] runs: `$1` the person, `$2` the cursor, `$3` the page's length
/// (the query-plan test reads it too).
pub fn of_user_sql() -> String {
    format!(
        "SELECT {REQUEST_COLUMNS} FROM requests WHERE id IN ( \
           SELECT id FROM (SELECT id FROM requests WHERE target_user_id = $1 AND id < $2 \
                           ORDER BY id DESC LIMIT $3) AS mine \
           UNION \
           SELECT id FROM (SELECT id FROM requests WHERE requestor_id = $1 AND id < $2 \
                           ORDER BY id DESC LIMIT $3) AS filed) \
         ORDER BY id DESC LIMIT $3"
    )
}

/// A decision, as shown on timelines and in the approver's history.
#[derive(Clone, Debug)]
pub struct DecisionRow {
    pub request: RequestId,
    pub stage: u32,
    pub approver: Option<String>,
    pub decision: Decision,
    pub justification: String,
    pub decided_at: DateTime<Utc>,
}

fn decision_from_row(row: &AnyRow) -> Result<DecisionRow, sqlx::Error> {
    Ok(DecisionRow {
        request: RequestId(row.int("request_id")?),
        stage: row.small("stage")?,
        approver: row.opt_text("display_name")?,
        decision: row.word("decision", Decision::parse)?,
        justification: row.text("justification")?,
        decided_at: row.time("decided_at")?,
    })
}

pub async fn decisions_of(conn: &mut Conn, requests: &[RequestId]) -> Result<Vec<DecisionRow>, sqlx::Error> {
    let sql = format!(
        "SELECT d.request_id, d.stage, u.display_name, d.decision, d.justification, d.decided_at
         FROM decisions d LEFT JOIN users u ON u.id = d.approver_id
         WHERE d.request_id IN {} ORDER BY d.request_id, d.stage",
        super::ids_param(conn, 1)
    );
    let rows = sqlx::query(&sql).bind(super::ids_json(requests.iter().map(|r| r.0))).fetch_all(conn).await?;
    rows.iter().map(decision_from_row).collect()
}

/// A decision in the approver's history, with what it was about.
#[derive(Clone, Debug)]
pub struct HistoryRow {
    pub id: i64,
    pub request: RequestId,
    pub stage: u32,
    pub decision: Decision,
    pub justification: String,
    pub decided_at: DateTime<Utc>,
    pub package: String,
    pub target: String,
}

/// Decisions made by this approver, newest first, one page before decision id `before`.
pub async fn decisions_by(
    conn: &mut Conn,
    approver: UserId,
    before: i64,
    limit: i64,
) -> Result<Vec<HistoryRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.id, d.request_id, d.stage, d.decision, d.justification, d.decided_at,
                p.name AS package_name, u.display_name AS target_name
         FROM decisions d
         JOIN requests r ON r.id = d.request_id
         JOIN access_packages p ON p.id = r.package_id
         JOIN users u ON u.id = r.target_user_id
         WHERE d.approver_id = $1 AND d.id < $2 ORDER BY d.id DESC LIMIT $3",
    )
    .bind(approver.0)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(HistoryRow {
                id: row.int("id")?,
                request: RequestId(row.int("request_id")?),
                stage: row.small("stage")?,
                decision: row.word("decision", Decision::parse)?,
                justification: row.text("justification")?,
                decided_at: row.time("decided_at")?,
                package: row.text("package_name")?,
                target: row.text("target_name")?,
            })
        })
        .collect()
}

/// The approvers' names per request and stage (escalation approvers only once escalated).
pub async fn approver_names(
    conn: &mut Conn,
    requests: &[RequestId],
) -> Result<Vec<(RequestId, u32, String, ApproverSource)>, sqlx::Error> {
    let sql = format!(
        "SELECT a.request_id, a.stage, u.display_name, a.source FROM request_approvers a
         JOIN users u ON u.id = a.user_id WHERE a.request_id IN {} ORDER BY a.request_id, a.stage, u.display_name",
        super::ids_param(conn, 1)
    );
    let rows = sqlx::query(&sql).bind(super::ids_json(requests.iter().map(|r| r.0))).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok((
                RequestId(row.int("request_id")?),
                row.small("stage")?,
                row.text("display_name")?,
                row.word("source", ApproverSource::parse)?,
            ))
        })
        .collect()
}

/// End a request still waiting for a decision as `canceled`, whatever its version (guarded by
/// its state: a request that was decided meanwhile is left alone). False when it had ended.
pub async fn cancel_open(
    conn: &mut Conn,
    id: RequestId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE requests SET state = 'canceled', stage_due_at = NULL, remind_at = NULL, outcome_reason = $1, \
         updated_at = $2, version = version + 1 WHERE id = $3 AND state IN ('submitted', 'pending_approval')",
    )
    .bind(reason)
    .bind(to_ms(now))
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    refresh_inbox(conn, id).await?;
    Ok(true)
}

/// Requests for this person still waiting for a decision.
pub async fn open_for_target(conn: &mut Conn, target: UserId) -> Result<Vec<RequestRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {REQUEST_COLUMNS} FROM requests WHERE target_user_id = $1 \
         AND state IN ('submitted', 'pending_approval') ORDER BY id"
    );
    let rows = sqlx::query(&sql).bind(target.0).fetch_all(conn).await?;
    rows.iter().map(request_from_row).collect()
}

/// Requests waiting for a decision on which this person is a resolved approver of the
/// current or a later stage.
pub async fn open_with_approver(conn: &mut Conn, user: UserId) -> Result<Vec<RequestRow>, sqlx::Error> {
    let columns: Vec<String> = REQUEST_COLUMNS.split(", ").map(|c| format!("r.{}", c.trim())).collect();
    let sql = format!(
        "SELECT {} FROM requests r WHERE r.state = 'pending_approval' \
         AND r.id IN (SELECT request_id FROM request_approvers WHERE user_id = $1) AND EXISTS \
         (SELECT 1 FROM request_approvers ra WHERE ra.request_id = r.id AND ra.user_id = $1 \
          AND ra.stage >= r.current_stage) ORDER BY r.id",
        columns.join(", ")
    );
    let rows = sqlx::query(&sql).bind(user.0).fetch_all(conn).await?;
    rows.iter().map(request_from_row).collect()
}

/// Take a person off a request's approvers for the stages from `from_stage` on (the ones
/// already decided keep their history).
pub async fn remove_approver(
    conn: &mut Conn,
    request: RequestId,
    user: UserId,
    from_stage: u32,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM request_approvers WHERE request_id = $1 AND user_id = $2 AND stage >= $3")
        .bind(request.0)
        .bind(user.0)
        .bind(i64::from(from_stage))
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// The approvers resolved for one stage of a request.
pub async fn stage_approvers(
    conn: &mut Conn,
    request: RequestId,
    stage: u32,
) -> Result<Vec<(UserId, ApproverSource)>, sqlx::Error> {
    let rows = sqlx::query("SELECT user_id, source FROM request_approvers WHERE request_id = $1 AND stage = $2")
        .bind(request.0)
        .bind(i64::from(stage))
        .fetch_all(conn)
        .await?;
    rows.iter().map(|row| Ok((UserId(row.int("user_id")?), row.word("source", ApproverSource::parse)?))).collect()
}

pub const PENDING_UNDER_POLICY_SQL: &str = "SELECT COUNT(*) FROM requests WHERE package_id = $1 AND policy_id = $2 \
     AND state IN ('submitted', 'pending_approval')";

/// Requests filed under a package's policy still waiting for a decision (through
/// `requests_undecided_by_package`, which holds exactly those).
pub async fn pending_under_policy(conn: &mut Conn, package: PackageId, policy: PolicyId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(PENDING_UNDER_POLICY_SQL).bind(package.0).bind(policy.0).fetch_one(conn).await
}

/// Requests whose stage's reminder is due, with when it was due (at most `limit`, oldest
/// first, through `requests_remind`).
pub async fn reminders_due(
    conn: &mut Conn,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(RequestId, DateTime<Utc>)>, sqlx::Error> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, remind_at FROM requests WHERE remind_at IS NOT NULL AND remind_at <= $1 \
         AND state = 'pending_approval' ORDER BY remind_at LIMIT $2",
    )
    .bind(to_ms(now))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().filter_map(|(id, at)| Some((RequestId(id), DateTime::from_timestamp_millis(at)?))).collect())
}

/// The reminder due at `at` is taken (cleared), if the request still waits on it and its
/// stage has not run out of time (a stage overdue is timed out, not reminded); false when it
/// moved on meanwhile (decided, or another instance took it).
pub async fn take_reminder(
    conn: &mut Conn,
    id: RequestId,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE requests SET remind_at = NULL WHERE id = $1 AND remind_at = $2 AND state = 'pending_approval' \
         AND (stage_due_at IS NULL OR stage_due_at > $3)",
    )
    .bind(id.0)
    .bind(to_ms(at))
    .bind(to_ms(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
