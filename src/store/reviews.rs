//! Access reviews: one per policy and period, an item per assignment with who may decide it,
//! the decisions, and the outcomes applied when it ends.

use chrono::{DateTime, Utc};

use super::{ids_param, pairs_json, pairs_param, to_ms, Conn, RowExt};
use crate::domain::ids::{AssignmentId, CatalogId, PackageId, PolicyId, UserId};
use crate::domain::review::{ReviewDecision, ReviewState};

/// A review, with what the pages show of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Review {
    pub id: i64,
    pub policy: PolicyId,
    pub policy_name: String,
    pub package: PackageId,
    pub package_name: String,
    pub catalog: CatalogId,
    pub period_start: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub state: ReviewState,
    pub default_decision: String,
    pub apply_automatically: bool,
    pub items: i64,
    pub decided: i64,
    /// Items whose outcome is removal, and of those, how many are applied.
    pub removing: i64,
    pub removed: i64,
}

const REVIEW_SELECT: &str = "SELECT r.id, r.policy_id, pol.name AS policy_name, r.package_id, p.name AS package_name, \
       p.catalog_id, r.period_start, r.ends_at, r.state, r.default_decision, r.apply_automatically, \
       (SELECT COUNT(*) FROM review_items i WHERE i.review_id = r.id) AS items, \
       (SELECT COUNT(*) FROM review_items i WHERE i.review_id = r.id AND i.decision IS NOT NULL) AS decided, \
       (SELECT COUNT(*) FROM review_items i WHERE i.review_id = r.id AND i.outcome = 'remove') AS removing, \
       (SELECT COUNT(*) FROM review_items i WHERE i.review_id = r.id AND i.outcome = 'remove' \
          AND i.applied_at IS NOT NULL) AS removed \
     FROM reviews r JOIN policies pol ON pol.id = r.policy_id JOIN access_packages p ON p.id = r.package_id";

fn review_from_row(row: &sqlx::any::AnyRow) -> Result<Review, sqlx::Error> {
    Ok(Review {
        id: row.int("id")?,
        policy: PolicyId(row.int("policy_id")?),
        policy_name: row.text("policy_name")?,
        package: PackageId(row.int("package_id")?),
        package_name: row.text("package_name")?,
        catalog: CatalogId(row.int("catalog_id")?),
        period_start: row.time("period_start")?,
        ends_at: row.time("ends_at")?,
        state: row.word("state", ReviewState::parse)?,
        default_decision: row.text("default_decision")?,
        apply_automatically: row.flag("apply_automatically")?,
        items: row.int("items")?,
        decided: row.int("decided")?,
        removing: row.int("removing")?,
        removed: row.int("removed")?,
    })
}

/// One review.
pub async fn review(conn: &mut Conn, id: i64) -> Result<Option<Review>, sqlx::Error> {
    let sql = format!("{REVIEW_SELECT} WHERE r.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(review_from_row).transpose()
}

/// The newest reviews first (of these catalogs; `None`: all), at most `limit`, before `before`.
pub async fn list(
    conn: &mut Conn,
    catalogs: Option<&[CatalogId]>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Review>, sqlx::Error> {
    let only = if catalogs.is_some() { format!("AND p.catalog_id IN {}", ids_param(conn, 3)) } else { String::new() };
    let sql = format!("{REVIEW_SELECT} WHERE r.id < $1 {only} ORDER BY r.id DESC LIMIT $2");
    let mut query = sqlx::query(&sql).bind(before.unwrap_or(i64::MAX)).bind(limit);
    if let Some(c) = catalogs {
        query = query.bind(super::ids_json(c.iter().map(|c| c.0)));
    }
    let rows = query.fetch_all(conn).await?;
    rows.iter().map(review_from_row).collect()
}

/// Start the review of `policy` for the period starting at `period_start`, once: `None` when
/// it exists already (another instance, or before a restart).
#[allow(clippy::too_many_arguments)]
pub async fn create(
    conn: &mut Conn,
    policy: PolicyId,
    package: PackageId,
    (period_start, ends_at, remind_at): (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>),
    default_decision: &str,
    apply_automatically: bool,
    now: DateTime<Utc>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO reviews (policy_id, package_id, period_start, ends_at, remind_at, default_decision, \
         apply_automatically, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (policy_id, period_start) DO NOTHING RETURNING id",
    )
    .bind(policy.0)
    .bind(package.0)
    .bind(to_ms(period_start))
    .bind(to_ms(ends_at))
    .bind(to_ms(remind_at))
    .bind(default_decision)
    .bind(i32::from(apply_automatically))
    .bind(to_ms(now))
    .fetch_optional(conn)
    .await
}

/// Whether the review of `policy` for this period exists.
pub async fn exists(conn: &mut Conn, policy: PolicyId, period_start: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reviews WHERE policy_id = $1 AND period_start = $2")
        .bind(policy.0)
        .bind(to_ms(period_start))
        .fetch_one(conn)
        .await?;
    Ok(n > 0)
}

/// An assignment a review covers, with what its recommendation and reviewers depend on.
#[derive(Clone, Debug)]
pub struct Covered {
    pub assignment: AssignmentId,
    pub user: UserId,
    pub given_at: DateTime<Utc>,
    pub last_sign_in: Option<DateTime<Utc>>,
    pub department_since: Option<DateTime<Utc>>,
    pub manager: Option<UserId>,
}

/// The live assignments made under `policy` (by id), with their holders' facts.
pub async fn covered(conn: &mut Conn, policy: PolicyId, package: PackageId) -> Result<Vec<Covered>, sqlx::Error> {
    let live = super::assignments::LIVE;
    let sql = format!(
        "SELECT a.id, a.user_id, a.created_at, u.last_sign_in_at, u.department_since, m.id AS manager_id \
         FROM assignments a JOIN users u ON u.id = a.user_id \
         LEFT JOIN users m ON m.id = u.manager_id AND m.state = 'active' \
         WHERE a.package_id = $1 AND a.policy_id = $2 AND a.state IN {live} ORDER BY a.id"
    );
    let rows = sqlx::query(&sql).bind(package.0).bind(policy.0).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok(Covered {
                assignment: AssignmentId(row.int("id")?),
                user: UserId(row.int("user_id")?),
                given_at: row.time("created_at")?,
                last_sign_in: row.opt_time("last_sign_in_at")?,
                department_since: row.opt_time("department_since")?,
                manager: row.opt_int("manager_id")?.map(UserId),
            })
        })
        .collect()
}

/// Add an item to a review, with the people who may decide it.
pub async fn add_item(
    conn: &mut Conn,
    review: i64,
    c: &Covered,
    (recommendation, reason): (ReviewDecision, &str),
    reviewers: &[UserId],
) -> Result<(), sqlx::Error> {
    let item: i64 = sqlx::query_scalar(
        "INSERT INTO review_items (review_id, assignment_id, user_id, recommendation, recommendation_reason) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(review)
    .bind(c.assignment.0)
    .bind(c.user.0)
    .bind(recommendation.as_str())
    .bind(reason)
    .fetch_one(&mut *conn)
    .await?;
    let sql = format!("INSERT INTO review_reviewers (item_id, user_id) SELECT * FROM {} AS p", pairs_param(conn, 1));
    sqlx::query(&sql).bind(pairs_json(reviewers.iter().map(|u| (item, u.0)))).execute(conn).await?;
    Ok(())
}

/// An item as its reviewers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub id: i64,
    pub review: i64,
    pub package_name: String,
    pub holder: UserId,
    pub holder_name: String,
    pub holder_email: String,
    pub holder_department: String,
    pub given_at: DateTime<Utc>,
    pub recommendation: ReviewDecision,
    pub recommendation_reason: String,
    pub decision: Option<ReviewDecision>,
    pub justification: String,
    pub decided_by: Option<String>,
    pub ends_at: DateTime<Utc>,
}

/// The items of running reviews `reviewer` may decide, undecided first, then by id, after
/// `after` (`(decided, id)` of the last one shown), at most `limit`.
pub async fn items_for(
    conn: &mut Conn,
    reviewer: UserId,
    after: Option<(bool, i64)>,
    limit: i64,
) -> Result<Vec<Item>, sqlx::Error> {
    let (after_decided, after_id) = after.map_or((-1, 0), |(d, id)| (i64::from(d), id));
    let sql = "SELECT i.id, i.review_id, p.name AS package_name, i.user_id, u.display_name, u.email, u.department, \
              a.created_at AS given_at, i.recommendation, i.recommendation_reason, i.decision, i.justification, \
              d.display_name AS decided_by, r.ends_at, \
              CASE WHEN i.decision IS NULL THEN 0 ELSE 1 END AS decided \
         FROM review_reviewers rr JOIN review_items i ON i.id = rr.item_id \
         JOIN reviews r ON r.id = i.review_id AND r.state = 'running' \
         JOIN access_packages p ON p.id = r.package_id JOIN users u ON u.id = i.user_id \
         JOIN assignments a ON a.id = i.assignment_id LEFT JOIN users d ON d.id = i.decided_by \
         WHERE rr.user_id = $1 \
           AND (CASE WHEN i.decision IS NULL THEN 0 ELSE 1 END > $2 \
                OR (CASE WHEN i.decision IS NULL THEN 0 ELSE 1 END = $2 AND i.id > $3)) \
         ORDER BY decided, i.id LIMIT $4";
    let rows = sqlx::query(sql).bind(reviewer.0).bind(after_decided).bind(after_id).bind(limit).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok(Item {
                id: row.int("id")?,
                review: row.int("review_id")?,
                package_name: row.text("package_name")?,
                holder: UserId(row.int("user_id")?),
                holder_name: row.text("display_name")?,
                holder_email: row.text("email")?,
                holder_department: row.text("department")?,
                given_at: row.time("given_at")?,
                recommendation: row.word("recommendation", ReviewDecision::parse)?,
                recommendation_reason: row.text("recommendation_reason")?,
                decision: row
                    .opt_text("decision")?
                    .map(|w| super::parse_word("decision", &w, ReviewDecision::parse))
                    .transpose()?,
                justification: row.text("justification")?,
                decided_by: row.opt_text("decided_by")?,
                ends_at: row.time("ends_at")?,
            })
        })
        .collect()
}

/// Hold the rows of the running reviews of these items that `reviewer` may decide (until the
/// transaction ends), so an answer and the review's end take turns. On PostgreSQL the rows
/// are locked in id order (two answers spanning the same reviews cannot deadlock); SQLite's
/// one writer already serializes them. Returns how many are running.
pub async fn hold_running(conn: &mut Conn, items: &[i64], reviewer: UserId) -> Result<u64, sqlx::Error> {
    let lock = if conn.backend_name() == "PostgreSQL" { "FOR NO KEY UPDATE" } else { "" };
    let sql = format!(
        "SELECT id FROM reviews WHERE state = 'running' AND id IN \
           (SELECT i.review_id FROM review_items i JOIN review_reviewers rr ON rr.item_id = i.id \
            WHERE rr.user_id = $2 AND i.id IN {}) ORDER BY id {lock}",
        ids_param(conn, 1)
    );
    let held: Vec<i64> =
        sqlx::query_scalar(&sql).bind(super::ids_json(items.iter().copied())).bind(reviewer.0).fetch_all(conn).await?;
    Ok(held.len() as u64)
}

/// How many of these items `reviewer` may decide (in any review, running or not).
pub async fn reviewable_by(conn: &mut Conn, items: &[i64], reviewer: UserId) -> Result<usize, sqlx::Error> {
    let sql = format!("SELECT COUNT(*) FROM review_reviewers WHERE user_id = $2 AND item_id IN {}", ids_param(conn, 1));
    let n: i64 =
        sqlx::query_scalar(&sql).bind(super::ids_json(items.iter().copied())).bind(reviewer.0).fetch_one(conn).await?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// An item's answer before a reviewer's new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    pub item: i64,
    pub decision: Option<String>,
    pub by: Option<UserId>,
    pub by_name: Option<String>,
}

/// Record `reviewer`'s decision on those of these items they may decide, of reviews still
/// running. Returns each changed item with the answer it had before.
pub async fn decide(
    conn: &mut Conn,
    items: &[i64],
    reviewer: UserId,
    (decision, justification): (ReviewDecision, &str),
    now: DateTime<Utc>,
) -> Result<Vec<Answered>, sqlx::Error> {
    let eligible = format!(
        "SELECT i.id, i.decision, i.decided_by, d.display_name FROM review_items i \
         JOIN reviews r ON r.id = i.review_id AND r.state = 'running' LEFT JOIN users d ON d.id = i.decided_by \
         WHERE i.id IN {} AND EXISTS (SELECT 1 FROM review_reviewers rr WHERE rr.item_id = i.id AND rr.user_id = $2) \
         ORDER BY i.id",
        ids_param(conn, 1)
    );
    let rows = sqlx::query(&eligible)
        .bind(super::ids_json(items.iter().copied()))
        .bind(reviewer.0)
        .fetch_all(&mut *conn)
        .await?;
    let before: Vec<Answered> = rows
        .iter()
        .map(|r| {
            Ok(Answered {
                item: r.int("id")?,
                decision: r.opt_text("decision")?,
                by: r.opt_int("decided_by")?.map(UserId),
                by_name: r.opt_text("display_name")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    let sql = format!(
        "UPDATE review_items SET decision = $2, justification = $3, decided_by = $4, decided_at = $5 WHERE id IN {}",
        ids_param(conn, 1)
    );
    sqlx::query(&sql)
        .bind(super::ids_json(before.iter().map(|a| a.item)))
        .bind(decision.as_str())
        .bind(justification)
        .bind(reviewer.0)
        .bind(to_ms(now))
        .execute(conn)
        .await?;
    Ok(before)
}

/// Whether `user` holds access that this review covers.
pub async fn covers(conn: &mut Conn, review: i64, user: UserId) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM review_items WHERE review_id = $1 AND user_id = $2")
        .bind(review)
        .bind(user.0)
        .fetch_one(conn)
        .await?;
    Ok(n > 0)
}

/// Whether a review of `policy` is running (another is not started beside it).
pub async fn running_for(conn: &mut Conn, policy: PolicyId) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reviews WHERE policy_id = $1 AND state = 'running'")
        .bind(policy.0)
        .fetch_one(conn)
        .await?;
    Ok(n > 0)
}

/// Running reviews whose time is up (or all of one review's, when it ends early), oldest first.
pub async fn due_to_end(conn: &mut Conn, now: DateTime<Utc>, limit: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM reviews WHERE state = 'running' AND ends_at <= $1 ORDER BY ends_at, id LIMIT $2")
        .bind(to_ms(now))
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// Running reviews due their midpoint reminder.
pub async fn due_reminders(conn: &mut Conn, now: DateTime<Utc>, limit: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM reviews WHERE state = 'running' AND remind_at IS NOT NULL AND remind_at <= $1 \
         ORDER BY remind_at, id LIMIT $2",
    )
    .bind(to_ms(now))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Take the reminder of a running review (once: false when another pass took it).
pub async fn take_reminder(conn: &mut Conn, review: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE reviews SET remind_at = NULL WHERE id = $1 AND state = 'running' AND remind_at IS NOT NULL",
    )
    .bind(review)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// End a running review now (false when it is not running any more).
pub async fn end(conn: &mut Conn, review: i64, by: Option<UserId>, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE reviews SET state = 'ended', ended_at = $2, ended_by = $3, remind_at = NULL, \
         ends_at = CASE WHEN ends_at > $2 THEN $2 ELSE ends_at END WHERE id = $1 AND state = 'running'",
    )
    .bind(review)
    .bind(to_ms(now))
    .bind(by.map(|u| u.0))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The (decision, recommendation) pairs an ended review's items have, with how many of each.
pub async fn answer_kinds(conn: &mut Conn, review: i64) -> Result<Vec<(Option<String>, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT decision, recommendation, COUNT(*) FROM review_items WHERE review_id = $1 \
         GROUP BY decision, recommendation",
    )
    .bind(review)
    .fetch_all(conn)
    .await
}

/// Set the outcome of every item of `review` with this decision and recommendation.
pub async fn set_outcome(
    conn: &mut Conn,
    review: i64,
    (decision, recommendation): (Option<&str>, &str),
    (outcome, reason): (ReviewDecision, &str),
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE review_items SET outcome = $1, outcome_reason = $2 WHERE review_id = $3 \
         AND COALESCE(decision, '') = COALESCE($4, '') AND recommendation = $5",
    )
    .bind(outcome.as_str())
    .bind(reason)
    .bind(review)
    .bind(decision)
    .bind(recommendation)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removals of an ended review still to apply, after item `after`: (item, assignment,
/// holder, why), by id.
pub async fn to_apply(
    conn: &mut Conn,
    review: i64,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, AssignmentId, UserId, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, assignment_id, user_id, outcome_reason FROM review_items \
         WHERE review_id = $1 AND outcome = 'remove' AND applied_at IS NULL AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(review)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.int("id")?,
                AssignmentId(r.int("assignment_id")?),
                UserId(r.int("user_id")?),
                r.text("outcome_reason")?,
            ))
        })
        .collect()
}

/// Mark these removals applied (false when another pass did first).
pub async fn mark_applied(conn: &mut Conn, items: &[i64], now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let sql =
        format!("UPDATE review_items SET applied_at = $2 WHERE id IN {} AND applied_at IS NULL", ids_param(conn, 1));
    let done = sqlx::query(&sql).bind(super::ids_json(items.iter().copied())).bind(to_ms(now)).execute(conn).await?;
    Ok(done.rows_affected() == items.len() as u64)
}

/// An ended review, all of whose removals are applied, becomes applied (false otherwise).
pub async fn set_applied(
    conn: &mut Conn,
    review: i64,
    by: Option<UserId>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE reviews SET state = 'applied', applied_at = $2, applied_by = $3 WHERE id = $1 AND state = 'ended' \
         AND NOT EXISTS (SELECT 1 FROM review_items i WHERE i.review_id = $1 AND i.outcome = 'remove' \
                         AND i.applied_at IS NULL)",
    )
    .bind(review)
    .bind(to_ms(now))
    .bind(by.map(|u| u.0))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ended reviews whose results apply automatically and are not all applied yet.
pub async fn to_apply_automatically(conn: &mut Conn, limit: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM reviews WHERE state = 'ended' AND apply_automatically = 1 ORDER BY ended_at, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}
