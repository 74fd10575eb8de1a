//! Email notifications: queued in the transaction of the change they tell about, one row per
//! recipient, claimed under a lease and sent by a worker (the outbox's pattern, for people
//! rather than systems).

use super::directory::SERVICE_ACCOUNT_ISSUER;
use chrono::{DateTime, Utc};

use super::{to_ms, Conn, RowExt};
use crate::domain::ids::UserId;

/// Who is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum To {
    /// The approvers who may decide the request now (its current stage, or its escalation),
    /// never the person it is for nor the one who asked.
    Deciders,
    /// Of those, the alternates a stage escalated to.
    Alternates,
    /// The person who asked and the person the access is for (once when they are the same).
    RequestPeople,
    /// The person who holds the assignment.
    Holder,
    /// The owners of the catalog the assignment's package is in.
    CatalogOwners,
    /// The reviewers of a review.
    Reviewers,
    /// Those of them with an answer still to give.
    ReviewersWaiting,
}

/// SQL true when the user `alias` has a mailbox: a service account has none (the issuer is a
/// constant of ours, never input).
fn has_mailbox(alias: &str) -> String {
    format!("({alias}.issuer IS NULL OR {alias}.issuer <> '{SERVICE_ACCOUNT_ISSUER}')")
}

/// One piece of news to queue.
pub struct News<'a> {
    pub kind: &'a str,
    /// Names what is told (with the recipient, unique): the same news is queued once per
    /// person. For `To::Deciders`, the request's stage and escalation are added to it.
    pub dedupe: String,
    pub request: Option<i64>,
    pub assignment: Option<i64>,
    pub review: Option<i64>,
    pub actor: Option<UserId>,
    pub reason: &'a str,
    /// The audited action that made it.
    pub cause: &'a str,
    /// The recipient may turn this kind off.
    pub optional: bool,
}

/// Queue `news` for everyone `to` names who is active and has a mailbox (a service account
/// has none) — and, for optional news, has not turned it off —, except whoever made the
/// change (they know); due at once. Returns how many were queued.
pub async fn enqueue(conn: &mut Conn, to: To, news: &News<'_>, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    // Each source yields (recipient, dedupe); $1 is the dedupe prefix.
    let source = match to {
        To::Deciders | To::Alternates => {
            "SELECT ra.user_id AS recipient, ra.source, $1 || ':' || CAST(r.current_stage AS TEXT) || ':' || CAST(r.escalated AS TEXT) AS dedupe \
             FROM requests r JOIN request_approvers ra ON ra.request_id = r.id AND ra.active = 1 \
             WHERE r.id = $2 AND ra.user_id <> r.target_user_id AND ra.user_id <> r.requestor_id"
        }
        To::RequestPeople => {
            "SELECT r.requestor_id AS recipient, $1 AS dedupe FROM requests r WHERE r.id = $2 \
             UNION SELECT r.target_user_id, $1 FROM requests r WHERE r.id = $2"
        }
        To::Holder => "SELECT a.user_id AS recipient, $1 AS dedupe FROM assignments a WHERE a.id = $3",
        To::CatalogOwners => {
            "SELECT ro.user_id AS recipient, $1 AS dedupe FROM assignments a \
             JOIN access_packages p ON p.id = a.package_id \
             JOIN role_assignments ro ON ro.catalog_id = p.catalog_id AND ro.role = 'catalog_owner' \
             WHERE a.id = $3"
        }
        To::Reviewers => {
            "SELECT DISTINCT rr.user_id AS recipient, $1 AS dedupe FROM review_items i \
             JOIN review_reviewers rr ON rr.item_id = i.id WHERE i.review_id = $10"
        }
        To::ReviewersWaiting => {
            "SELECT DISTINCT rr.user_id AS recipient, $1 AS dedupe FROM review_items i \
             JOIN review_reviewers rr ON rr.item_id = i.id WHERE i.review_id = $10 AND i.decision IS NULL"
        }
    };
    let alternates = if to == To::Alternates { "AND s.source = 'escalation'" } else { "" };
    let optional = if news.optional { "AND u.email_optional = 1" } else { "" };
    let mailbox = has_mailbox("u");
    let sql = format!(
        "INSERT INTO notifications (recipient_id, kind, dedupe, request_id, assignment_id, review_id, actor_id, \
         reason, cause, occurred_at, next_attempt_at, updated_at) \
         SELECT DISTINCT s.recipient, $4, s.dedupe, $2, $3, $10, $5, $6, $8, $7, $7, $7 FROM ({source}) s \
         JOIN users u ON u.id = s.recipient WHERE u.state = 'active' AND s.recipient <> $9 \
         AND {mailbox} {alternates} {optional} \
         ON CONFLICT (recipient_id, dedupe) DO NOTHING"
    );
    let done = sqlx::query(&sql)
        .bind(&news.dedupe)
        .bind(news.request)
        .bind(news.assignment)
        .bind(news.kind)
        .bind(news.actor.map(|a| a.0))
        .bind(news.reason)
        .bind(to_ms(now))
        .bind(news.cause)
        .bind(news.actor.map_or(0, |a| a.0))
        .bind(news.review)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// A claimed notification with what its email says, read as things are now.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: i64,
    pub attempts: i64,
    pub kind: String,
    /// The audited action that made it (`assignment.expired`, …).
    pub cause: String,
    pub recipient_id: i64,
    /// The recipient is still active (a disabled person is not emailed) and has a mailbox (a
    /// service account has none).
    pub recipient_active: bool,
    pub to_email: String,
    pub to_name: String,
    /// The recipient's time zone (an IANA name), when known.
    pub to_time_zone: Option<String>,
    pub reason: String,
    pub actor_name: Option<String>,
    pub request_id: Option<i64>,
    pub package_id: i64,
    pub package_name: String,
    /// The person the access is for, and the one who asked.
    pub target_id: i64,
    pub target_name: String,
    pub requestor_id: i64,
    pub requestor_name: String,
    /// `user_add` (asking for access) or `user_extend` (asking to keep it longer).
    pub request_kind: String,
    pub justification: String,
    /// The request's stage now (1-based; 0 when it is no longer waiting) and how many it has.
    pub stage: i64,
    pub stages: i64,
    pub escalated: bool,
    pub stage_due_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// The recipient may decide the request now (what a `decision` email asks of them).
    pub may_decide: bool,
    /// The assignment (if any) is live: not ended.
    pub live: bool,
    /// The approver the recipient stands in for on this request, if they are a deputy.
    pub deputy_for: Option<String>,
    /// For a digest: the decisions waiting for the recipient (request, package, for whom,
    /// due), soonest first, and how many in all. Filled by the sender.
    pub waiting: Vec<(i64, String, String, Option<DateTime<Utc>>)>,
    pub waiting_total: i64,
    /// For a review's email: when it ends, and how many of its items wait for the recipient's
    /// answer (0 once it has ended).
    pub review_ends_at: Option<DateTime<Utc>>,
    pub review_waiting: i64,
}

/// The claimed notifications, read with what their emails say (one statement). One whose
/// recipient, request or package cannot be found is left out (the caller fails it).
pub async fn claimed(conn: &mut Conn, ids: &[i64]) -> Result<Vec<Claimed>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let live = super::assignments::LIVE;
    let mailbox = has_mailbox("rcpt");
    let sql = format!(
        "SELECT n.id, n.attempts, n.kind, n.cause, n.reason, n.recipient_id, rcpt.email AS to_email, \
                rcpt.display_name AS to_name, \
                COALESCE(rcpt.time_zone, rcpt.provider_time_zone) AS to_time_zone, \
                CASE WHEN rcpt.state = 'active' AND {mailbox} THEN 1 ELSE 0 END AS recipient_active, \
                b.display_name AS actor_name, q.id AS request_id, \
                (SELECT MIN(w.display_name) FROM request_approvers rd JOIN users w ON w.id = rd.deputy_for \
                 WHERE rd.request_id = q.id AND rd.user_id = n.recipient_id) AS deputy_for, p.id AS package_id, p.name AS package_name, \
                t.id AS target_id, t.display_name AS target_name, rq.id AS requestor_id, \
                rq.display_name AS requestor_name, COALESCE(q.kind, 'user_add') AS request_kind, \
                COALESCE(q.justification, '') AS justification, COALESCE(q.current_stage, 0) AS stage, \
                COALESCE(q.stages, '[]') AS stages, COALESCE(q.escalated, 0) AS escalated, q.stage_due_at, a.end_at, \
                CASE WHEN EXISTS (SELECT 1 FROM request_approvers ra WHERE ra.request_id = q.id \
                    AND ra.user_id = n.recipient_id AND ra.active = 1) THEN 1 ELSE 0 END AS may_decide, \
                CASE WHEN a.state IN {live} THEN 1 ELSE 0 END AS live, rv.ends_at AS review_ends_at, \
                (SELECT COUNT(*) FROM review_items ri JOIN review_reviewers rr ON rr.item_id = ri.id \
                 WHERE ri.review_id = rv.id AND rr.user_id = n.recipient_id AND ri.decision IS NULL \
                   AND rv.state = 'running') AS review_waiting \
         FROM notifications n \
         JOIN users rcpt ON rcpt.id = n.recipient_id \
         LEFT JOIN assignments a ON a.id = n.assignment_id \
         LEFT JOIN requests q ON q.id = COALESCE(n.request_id, a.request_id) \
         LEFT JOIN reviews rv ON rv.id = n.review_id \
         LEFT JOIN access_packages p ON p.id = COALESCE(a.package_id, q.package_id, rv.package_id) \
         LEFT JOIN users t ON t.id = COALESCE(a.user_id, q.target_user_id) \
         LEFT JOIN users rq ON rq.id = q.requestor_id \
         LEFT JOIN users b ON b.id = n.actor_id \
         WHERE n.id IN ({list}) ORDER BY n.id"
    );
    let rows = sqlx::query(&sql).fetch_all(conn).await?;
    rows.iter()
        // Every kind but the digest is about a request or an assignment: without its package
        // or person it cannot be told (the caller fails it).
        .filter(|row| {
            row.text("kind").is_ok_and(|k| k == crate::notify::kind::DIGEST)
                || (row.opt_int("package_id").ok().flatten().is_some()
                    && row.opt_time("review_ends_at").ok().flatten().is_some())
                || (row.opt_int("package_id").ok().flatten().is_some()
                    && row.opt_int("target_id").ok().flatten().is_some())
        })
        .map(|row| {
            let stages: Vec<serde_json::Value> =
                serde_json::from_str(&row.text("stages")?).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let target_name = row.opt_text("target_name")?.unwrap_or_default();
            let target_id = row.opt_int("target_id")?.unwrap_or_default();
            Ok(Claimed {
                id: row.int("id")?,
                attempts: row.int("attempts")?,
                kind: row.text("kind")?,
                cause: row.text("cause")?,
                recipient_id: row.int("recipient_id")?,
                recipient_active: row.int("recipient_active")? != 0,
                to_email: row.text("to_email")?,
                to_name: row.text("to_name")?,
                to_time_zone: row.opt_text("to_time_zone")?,
                reason: row.text("reason")?,
                actor_name: row.opt_text("actor_name")?,
                request_id: row.opt_int("request_id")?,
                package_id: row.opt_int("package_id")?.unwrap_or_default(),
                package_name: row.opt_text("package_name")?.unwrap_or_default(),
                requestor_name: row.opt_text("requestor_name")?.unwrap_or_else(|| target_name.clone()),
                requestor_id: row.opt_int("requestor_id")?.unwrap_or(target_id),
                request_kind: row.text("request_kind")?,
                target_id,
                target_name,
                justification: row.text("justification")?,
                stage: row.int("stage")?,
                stages: stages.len() as i64,
                escalated: row.int("escalated")? != 0,
                stage_due_at: row.opt_time("stage_due_at")?,
                ends_at: row.opt_time("end_at")?,
                may_decide: row.int("may_decide")? != 0,
                live: row.int("live")? != 0,
                deputy_for: row.opt_text("deputy_for")?,
                waiting: Vec::new(),
                waiting_total: 0,
                review_ends_at: row.opt_time("review_ends_at")?,
                review_waiting: row.int("review_waiting")?,
            })
        })
        .collect()
}

/// A person's email choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choices {
    /// The optional emails (a stage approved, access ready).
    pub optional: bool,
    /// The daily digest of decisions waiting.
    pub digest: bool,
    /// The time zone they chose (an IANA name); `None`: automatic.
    pub time_zone: Option<String>,
    /// The one their sign-in provider last gave (automatic's, when there is one).
    pub provider_time_zone: Option<String>,
}

/// The person's email choices.
pub async fn choices(conn: &mut Conn, user: UserId) -> Result<Choices, sqlx::Error> {
    let row = sqlx::query(
        "SELECT CAST(email_optional AS BIGINT) AS optional, CAST(email_digest AS BIGINT) AS digest, time_zone, \
                provider_time_zone FROM users WHERE id = $1",
    )
    .bind(user.0)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some(r) => Choices {
            optional: r.int("optional")? != 0,
            digest: r.int("digest")? != 0,
            time_zone: r.opt_text("time_zone")?,
            provider_time_zone: r.opt_text("provider_time_zone")?,
        },
        None => Choices { optional: true, digest: false, time_zone: None, provider_time_zone: None },
    })
}

/// Set the person's email choices: the optional emails, the digest, and the time zone they
/// chose (`Some(None)`: automatic; `None`: left as it is). False when nothing changed.
pub async fn set_choices(
    conn: &mut Conn,
    user: UserId,
    optional: bool,
    digest: bool,
    time_zone: Option<Option<&str>>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE users SET email_optional = $1, email_digest = $2, \
                time_zone = CASE WHEN $3 = 1 THEN CAST($4 AS TEXT) ELSE time_zone END, updated_at = $5 \
         WHERE id = $6 AND (email_optional <> $1 OR email_digest <> $2 \
                            OR ($3 = 1 AND COALESCE(time_zone, '') <> COALESCE(CAST($4 AS TEXT), '')))",
    )
    .bind(i32::from(optional))
    .bind(i32::from(digest))
    .bind(i32::from(time_zone.is_some()))
    .bind(time_zone.flatten())
    .bind(to_ms(now))
    .bind(user.0)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Someone who chose the digest and has decisions waiting.
#[derive(Debug, Clone)]
pub struct DigestCandidate {
    pub user: UserId,
    /// Their time zone (chosen, else their provider's), when known.
    pub time_zone: Option<String>,
    /// When their last digest was queued.
    pub last: Option<DateTime<Utc>>,
}

/// Everyone active who chose the digest and has decisions waiting, with their time zone and
/// when their last digest was queued.
pub async fn digest_candidates(conn: &mut Conn) -> Result<Vec<DigestCandidate>, sqlx::Error> {
    let sql = format!(
        "SELECT u.id, COALESCE(u.time_zone, u.provider_time_zone) AS time_zone, \
                (SELECT MAX(x.occurred_at) FROM notifications x WHERE x.recipient_id = u.id \
                   AND x.kind = $1) AS last \
         FROM users u WHERE u.email_digest = 1 AND u.state = 'active' AND {} \
           AND EXISTS (SELECT 1 FROM request_approvers ra WHERE ra.user_id = u.id AND ra.active = 1) \
         ORDER BY u.id",
        has_mailbox("u")
    );
    let rows = sqlx::query(&sql).bind(crate::notify::kind::DIGEST).fetch_all(conn).await?;
    rows.iter()
        .map(|r| {
            Ok(DigestCandidate {
                user: UserId(r.int("id")?),
                time_zone: r.opt_text("time_zone")?,
                last: r.opt_time("last")?,
            })
        })
        .collect()
}

/// Queue a digest for these people, once per `key` (their day and zone: `2026-12-01 UTC`), so
/// two instances queuing at once queue one. Returns how many were queued.
pub async fn queue_digests(
    conn: &mut Conn,
    people: &[UserId],
    key: &str,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    if people.is_empty() {
        return Ok(0);
    }
    let list = people.iter().map(|u| u.0.to_string()).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "INSERT INTO notifications (recipient_id, kind, dedupe, occurred_at, next_attempt_at, updated_at) \
         SELECT u.id, $1, $2, $3, $3, $3 FROM users u WHERE u.id IN ({list}) ORDER BY u.id \
         ON CONFLICT (recipient_id, dedupe) DO NOTHING"
    );
    let done = sqlx::query(&sql)
        .bind(crate::notify::kind::DIGEST)
        .bind(format!("digest:{key}"))
        .bind(to_ms(now))
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// The decisions waiting for a person, soonest due first: (request, package, for whom, due),
/// at most `limit`, and how many in all.
pub async fn waiting_for(
    conn: &mut Conn,
    user: UserId,
    limit: i64,
) -> Result<(Vec<(i64, String, String, Option<DateTime<Utc>>)>, i64), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT q.id, p.name, t.display_name, q.stage_due_at FROM request_approvers ra \
         JOIN requests q ON q.id = ra.request_id JOIN access_packages p ON p.id = q.package_id \
         JOIN users t ON t.id = q.target_user_id \
         WHERE ra.user_id = $1 AND ra.active = 1 ORDER BY q.stage_due_at, q.id LIMIT $2",
    )
    .bind(user.0)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM request_approvers WHERE user_id = $1 AND active = 1")
        .bind(user.0)
        .fetch_one(conn)
        .await?;
    let items = rows
        .iter()
        .map(|r| Ok((r.int("id")?, r.text("name")?, r.text("display_name")?, r.opt_time("stage_due_at")?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok((items, total))
}

/// How far ahead assignments ending have been looked at for the warning `days` before the end.
pub async fn warned_through(conn: &mut Conn, days: u32) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let through: Option<i64> = sqlx::query_scalar("SELECT through FROM expiry_warning_marks WHERE days = $1")
        .bind(i64::from(days))
        .fetch_optional(conn)
        .await?;
    Ok(through.and_then(DateTime::from_timestamp_millis))
}

/// Move the mark of the warning `days` from `from` (none: never set) to `to`; false when
/// another instance moved it first (the caller rolls back).
pub async fn move_warned_through(
    conn: &mut Conn,
    days: u32,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = match from {
        Some(from) => {
            sqlx::query("UPDATE expiry_warning_marks SET through = $1 WHERE days = $2 AND through = $3")
                .bind(to_ms(to))
                .bind(i64::from(days))
                .bind(to_ms(from))
                .execute(conn)
                .await?
        }
        None => {
            sqlx::query(
                "INSERT INTO expiry_warning_marks (days, through) VALUES ($1, $2) ON CONFLICT (days) DO NOTHING",
            )
            .bind(i64::from(days))
            .bind(to_ms(to))
            .execute(conn)
            .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

/// Queue "ends in `days` days" for every live assignment ending after `after` and by `until`
/// (through the live-assignment end index), to its holder if active; once per assignment,
/// warning and end time. Returns how many were queued.
pub async fn warn_expiring(
    conn: &mut Conn,
    days: u32,
    (after, until): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let live = super::assignments::LIVE;
    let mailbox = has_mailbox("u");
    let sql = format!(
        "INSERT INTO notifications (recipient_id, kind, dedupe, assignment_id, occurred_at, next_attempt_at, updated_at) \
         SELECT a.user_id, $1, 'expiring:' || CAST(a.id AS TEXT) || ':' || $2 || ':' || CAST(a.end_at AS TEXT), \
                a.id, $3, $3, $3 \
         FROM assignments a JOIN users u ON u.id = a.user_id \
         WHERE a.state IN {live} AND a.end_at IS NOT NULL AND a.end_at > $4 AND a.end_at <= $5 AND u.state = 'active' \
           AND {mailbox} \
         ON CONFLICT (recipient_id, dedupe) DO NOTHING"
    );
    let done = sqlx::query(&sql)
        .bind(crate::notify::kind::ACCESS_EXPIRING)
        .bind(days.to_string())
        .bind(to_ms(now))
        .bind(to_ms(after))
        .bind(to_ms(until))
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
