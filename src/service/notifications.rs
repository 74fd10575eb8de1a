//! Email notifications (issue 13): who is told what, decided from the audit events of a change
//! and queued in its transaction ([`Service::commit`]), so a crash loses none; sent later by
//! a worker under a lease, as the outbox is.
//!
//! | change | told | kind |
//! |---|---|---|
//! | a request waits for approval (new, next stage, approvers replaced) | its approvers now | `decision` |
//! | a stage's reminder is due (`remind_after_days`) | its approvers now | `reminder` |
//! | a stage timed out and went to the alternates | the alternates (not its first approvers) | `escalated` |
//! | a stage approved, another follows | who asked, who it is for | `stage_approved` (optional) |
//! | approved, denied, stopped, expired | who asked, who it is for | `approved`, `denied`, `rejected`, `request_expired` |
//! | the access is ready | its holder | `delivered` (optional) |
//! | the access could not be delivered | its holder, the catalog's owners | `delivery_failed` |
//! | the access ended (expired, removed, withdrawn) | its holder | `access_ended` |
//! | a review starts | its reviewers | `review_assigned` |
//! | a review is halfway through | its reviewers who have not answered | `review_reminder` |
//! | every morning (07:00 UTC), decisions wait | who chose the daily digest | `digest` (a worker pass) |
//! | the access ends in 14 or 3 days (`--notify-expiring-days`) | its holder | `access_expiring` (a worker pass, not a change) |
//!
//! Nobody is told about what they did themselves, except by the page they did it on: the
//! person who decides is not emailed their own decision, and a request stopped as it is made
//! is shown on the spot.

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::Service;
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Actor, Operator, Permission};
use crate::domain::ids::UserId;
use crate::domain::policy::checked_after;
use crate::domain::{DomainError, DomainResult};
use crate::notify::{kind, SendError};
use crate::store::lease::{self, Queue};
use crate::store::notifications::{self as store, Claimed, News, To};
use crate::store::Tx;
use crate::views::EmailChoices;

/// Notifications one pass claims.
pub const NOTIFY_PASS: usize = 100;

/// Emails sent at once by one pass.
const SENDING_AT_ONCE: usize = 4;

/// Attempts before a notification fails (it stays in the table, with its error).
const MAX_ATTEMPTS: i64 = super::delivery::MAX_ATTEMPTS;

/// How long the emails of a pass wait after the mail server was unavailable.
const OUTAGE_WAIT: chrono::Duration = chrono::Duration::seconds(30);

/// Who an audited change tells, and what.
fn told(event: &AuditEvent, change: &[AuditEvent]) -> Vec<(To, &'static str, String, bool)> {
    let id = event.object_id;
    let made_now = change.iter().any(|e| e.action == "request.submitted");
    // An approval whose request was then stopped (no longer allowed, a conflict found at the
    // last check) is told as the stop, not as an approval.
    let stopped = change.iter().any(|e| e.action == "request.rejected" && e.object_id == id);
    match event.action.as_str() {
        "request.submitted" if event.after["state"] == "pending_approval" || event.after["kind"] == "user_extend" => {
            vec![(To::Deciders, kind::DECISION, format!("decision:{id}"), false)]
        }
        "request.stage_approved" | "request.approved" if stopped => Vec::new(),
        "request.stage_approved" => vec![
            (To::Deciders, kind::DECISION, format!("decision:{id}"), false),
            (To::RequestPeople, kind::STAGE_APPROVED, format!("stage:{id}:{}", event.before["stage"]), true),
        ],
        "request.approvers_replaced" => vec![(To::Deciders, kind::DECISION, format!("decision:{id}"), false)],
        "request.reminded" => vec![(To::Deciders, kind::REMINDER, format!("reminder:{id}"), false)],
        "request.escalated" => vec![(To::Alternates, kind::ESCALATED, format!("decision:{id}"), false)],
        "request.approved" => vec![(To::RequestPeople, kind::APPROVED, format!("decided:{id}"), false)],
        "request.denied" => vec![(To::RequestPeople, kind::DENIED, format!("decided:{id}"), false)],
        // Stopped as it was made: the page said so.
        "request.rejected" if !made_now => vec![(To::RequestPeople, kind::REJECTED, format!("decided:{id}"), false)],
        "request.expired" => vec![(To::RequestPeople, kind::REQUEST_EXPIRED, format!("decided:{id}"), false)],
        // Delivered again after a role was added to the package is not news.
        "assignment.delivered" if event.after["first"] != false => {
            vec![(To::Holder, kind::DELIVERED, format!("delivered:{id}:{}", event.after["grants"]), true)]
        }
        "assignment.delivery_state"
            if matches!(event.after["state"].as_str(), Some("delivery_failed" | "partially_delivered")) =>
        {
            let key = format!("failed:{id}:{}", event.after["delivered"]);
            vec![
                (To::Holder, kind::DELIVERY_FAILED, key.clone(), false),
                (To::CatalogOwners, kind::DELIVERY_FAILED, key, false),
            ]
        }
        "review.started" => vec![(To::Reviewers, kind::REVIEW_ASSIGNED, format!("review:{id}"), false)],
        "review.reminded" => {
            vec![(To::ReviewersWaiting, kind::REVIEW_REMINDER, format!("review_reminder:{id}"), false)]
        }
        "assignment.expired" | "assignment.removed" | "assignment.withdrawn" => {
            vec![(To::Holder, kind::ACCESS_ENDED, format!("ended:{id}"), false)]
        }
        _ => Vec::new(),
    }
}

/// Queue the notifications of a change's audit events, in its transaction.
pub(super) async fn enqueue(tx: &mut Tx, audit: &[AuditEvent], now: DateTime<Utc>) -> DomainResult<()> {
    for event in audit {
        for (to, kind, dedupe, optional) in told(event, audit) {
            let on = |what: &str| (event.object_type == what).then_some(event.object_id);
            // A decision's email goes to others: the approver who made it knows.
            let actor = event.actor.or_else(|| decider(audit));
            let news = News {
                kind,
                dedupe,
                request: on("request"),
                assignment: on("assignment"),
                review: on("review"),
                actor,
                reason: &event.reason,
                cause: &event.action,
                optional,
            };
            store::enqueue(tx, to, &news, now).await?;
        }
    }
    Ok(())
}

/// The person whose decision made this change, if one did.
fn decider(audit: &[AuditEvent]) -> Option<crate::domain::ids::UserId> {
    audit.iter().find(|e| e.object_type == "request" && e.actor.is_some()).and_then(|e| e.actor)
}

impl Service {
    /// Whether notifications are sent (an SMTP server is set).
    pub fn sends_email(&self) -> bool {
        self.mail.is_some()
    }

    /// One pass over the due notifications: claimed under a lease, sent a few at a time,
    /// each recorded as sent, retried with backoff, or failed. A mail server that cannot be
    /// reached or refuses the portal itself (its sign-in, its TLS) is an outage, not the
    /// email's fault: what is left of the pass is given back untried, no attempt spent, to
    /// try again in half a minute. What the pass has not started by half its lease is given
    /// back too, so no email it holds lapses to another instance while a slow server answers.
    /// Returns how many were claimed (none when no SMTP server is set).
    #[tracing::instrument(name = "send_notifications", skip_all, fields(operator = %by))]
    pub async fn send_notifications(&self, by: &Operator<'_>, limit: i64) -> DomainResult<usize> {
        by.require(Permission::Administer)?;
        let Some(mail) = self.mail.clone() else { return Ok(0) };
        let now = self.now();
        let token = format!("{}#{:08x}", self.worker, rand::random::<u32>());
        let lease_until = checked_after(now, super::delivery::LEASE, "lease")?;
        let claimed = {
            let mut tx = self.db.begin().await?;
            let claim = (token.as_str(), now, lease_until);
            let ids = lease::claim_due(&mut tx, self.db.backend(), Queue::Notifications, claim, limit, "1 = 1").await?;
            tx.commit().await?;
            ids
        };
        if claimed.is_empty() {
            return Ok(0);
        }
        let read = self.read_claimed_notifications(&claimed, &token).await;
        // A digest lists what waits for its recipient now.
        let mut read = read;
        for n in read.iter_mut().filter(|n| n.kind == kind::DIGEST) {
            let mut conn = self.db.pool().acquire().await?;
            (n.waiting, n.waiting_total) =
                store::waiting_for(&mut conn, crate::domain::ids::UserId(n.recipient_id), DIGEST_LISTS).await?;
        }
        // Not worth an email any more: a decision asked of someone who can no longer make it
        // (decided meanwhile, or escalated past them), a warning about access that has ended,
        // anything to someone disabled since.
        let (read, stale): (Vec<Claimed>, Vec<Claimed>) = read.into_iter().partition(|n| {
            n.recipient_active
                && match n.kind.as_str() {
                    kind::DECISION | kind::ESCALATED | kind::REMINDER => n.may_decide,
                    kind::ACCESS_EXPIRING => n.live,
                    kind::DIGEST => n.waiting_total > 0,
                    // A review's emails while it runs and something waits for the recipient.
                    kind::REVIEW_ASSIGNED | kind::REVIEW_REMINDER => n.review_waiting > 0,
                    _ => true,
                }
        });
        for n in stale {
            let why = "not sent: the request no longer waits for this person, the access has ended, or the \
                       person is disabled or a service account (no mailbox)";
            if let Err(e) = self.finish_notification(n.id, &token, "skipped", why).await {
                tracing::error!(notification = n.id, error = ?e, "a skipped notification could not be recorded");
            }
        }
        let started = std::time::Instant::now();
        let budget = (super::delivery::LEASE / 2).to_std().unwrap_or(std::time::Duration::from_secs(60));
        let down = std::sync::atomic::AtomicBool::new(false);
        let (token, mail, down) = (&token, &mail, &down);
        futures_util::stream::iter(read)
            .map(|n: Claimed| async move {
                let outcome = if down.load(std::sync::atomic::Ordering::Relaxed) {
                    Err(SendError::Unavailable("waiting: the mail server was unavailable".to_owned()))
                } else if started.elapsed() > budget {
                    Err(SendError::Deferred)
                } else {
                    let sent = mail.send(&n).await;
                    if let Err(e) = &sent {
                        tracing::warn!(notification = n.id, kind = %n.kind, error = e.message(), "an email was not sent");
                        if matches!(e, SendError::Unavailable(_)) {
                            down.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    sent
                };
                if let Err(e) = self.settle(n.id, token, outcome, n.attempts).await {
                    tracing::error!(notification = n.id, error = ?e, "an email's outcome could not be recorded");
                }
            })
            .buffer_unordered(SENDING_AT_ONCE)
            .collect::<Vec<()>>()
            .await;
        Ok(claimed.len())
    }

    /// The claimed notifications with what their emails say: read together, else one at a
    /// time. One that cannot be read (or whose person, request or package is gone) is failed,
    /// saying why, rather than claimed again forever.
    async fn read_claimed_notifications(&self, ids: &[i64], token: &str) -> Vec<Claimed> {
        let read_some = async |ids: &[i64]| -> Result<Vec<Claimed>, sqlx::Error> {
            let mut conn = self.db.pool().acquire().await?;
            store::claimed(&mut conn, ids).await
        };
        let mut read = match read_some(ids).await {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(error = %e, "notifications could not be read together; one at a time");
                let mut read = Vec::new();
                for id in ids {
                    match read_some(&[*id]).await {
                        Ok(one) => read.extend(one),
                        Err(e) => tracing::error!(notification = id, error = %e, "this notification cannot be read"),
                    }
                }
                read
            }
        };
        read.sort_by_key(|n| n.id);
        for id in ids.iter().filter(|id| read.binary_search_by_key(*id, |n| n.id).is_err()) {
            let why = "the notification cannot be read (its person, request or package is gone, or its row is damaged)";
            if let Err(e) = self.finish_notification(*id, token, "failed", why).await {
                tracing::error!(notification = id, error = ?e, "could not record an unreadable notification");
            }
        }
        read
    }

    /// Settle a claimed notification as `state` (`sent`, `skipped`, `failed`) with `why`.
    async fn finish_notification(&self, id: i64, token: &str, state: &str, why: &str) -> DomainResult<()> {
        let mut tx = self.db.begin().await?;
        if lease::finish(&mut tx, Queue::Notifications, (id, token), state, why, self.now()).await? {
            tx.commit().await?;
            Ok(())
        } else {
            tx.rollback().await?;
            Err(DomainError::Internal(format!("lost the lease on notification {id}")))
        }
    }

    /// Record what became of one email, under the claim that sent it: sent; given back
    /// untried (no attempt spent); retried with backoff; failed for good after a refusal or
    /// the last attempt.
    async fn settle(&self, id: i64, token: &str, sent: Result<(), SendError>, attempts: i64) -> DomainResult<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let queue = Queue::Notifications;
        let held = match sent {
            Ok(()) => lease::finish(&mut tx, queue, (id, token), "sent", "", now).await?,
            Err(SendError::Deferred) => {
                let why = "waiting: the pass ran long";
                lease::retry_later(&mut tx, queue, (id, token), (why, false), now, now).await?
            }
            Err(SendError::Unavailable(e)) => {
                let at = checked_after(now, OUTAGE_WAIT, "retry")?;
                lease::retry_later(&mut tx, queue, (id, token), (&e, false), at, now).await?
            }
            Err(SendError::Transient(e)) if attempts < MAX_ATTEMPTS => {
                let at = checked_after(now, super::delivery::backoff(attempts), "retry")?;
                lease::retry_later(&mut tx, queue, (id, token), (&e, true), at, now).await?
            }
            Err(e) => lease::finish(&mut tx, queue, (id, token), "failed", e.message(), now).await?,
        };
        if !held {
            tx.rollback().await?;
            return Err(DomainError::Internal(format!("lost the lease on notification {id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Queue "your access ends in N days" for each warning (`Service::with_expiry_warnings`),
    /// an hour of end times at a time per warning: each warning has a mark of how far ahead
    /// ends have been looked at, moved in the same transaction as the warnings it queued (a
    /// second instance's move fails and rolls back), so an assignment is looked at once per
    /// warning. An assignment made to end sooner than a warning (or extended past the
    /// window) gets only the warnings it crosses later. Returns how many hours were looked
    /// at: the caller runs it again at once while it is behind.
    #[tracing::instrument(name = "warn_of_expiry", skip_all, fields(operator = %by))]
    pub async fn warn_of_expiry(&self, by: &Operator<'_>) -> DomainResult<usize> {
        by.require(Permission::Administer)?;
        if self.mail.is_none() {
            return Ok(0);
        }
        let now = self.now();
        let mut warnings: Vec<u32> = self.expiry_warnings.iter().copied().filter(|d| *d > 0).collect();
        warnings.sort_unstable();
        warnings.dedup();
        let mut looked = 0;
        for (i, days) in warnings.iter().enumerate() {
            // This warning's window: ends after the next shorter warning's, up to `days` ahead.
            let nearer = i.checked_sub(1).map_or(0, |j| warnings[j]);
            let window_start = checked_after(now, chrono::Duration::days(i64::from(nearer)), "warning")?;
            let window_end = checked_after(now, chrono::Duration::days(i64::from(*days)), "warning")?;
            let mark = {
                let mut conn = self.db.pool().acquire().await?;
                store::warned_through(&mut conn, *days).await?
            };
            let from = mark.map_or(window_start, |m| m.max(window_start));
            if from >= window_end {
                continue;
            }
            let to = (from + chrono::Duration::hours(1)).min(window_end);
            let mut tx = self.db.begin().await?;
            let queued = store::warn_expiring(&mut tx, *days, (from, to), now).await?;
            if !store::move_warned_through(&mut tx, *days, mark, to).await? {
                // Another instance moved it first: what it queued stands, this is dropped.
                continue;
            }
            tx.commit().await?;
            tracing::debug!(days, queued, "expiry warnings queued");
            looked += 1;
        }
        Ok(looked)
    }

    /// The person's email choices: the optional emails (a stage approved, access ready), the
    /// daily digest of decisions waiting for them, and their time zone.
    #[tracing::instrument(name = "email_choices", skip_all, fields(actor = actor.id().0))]
    pub async fn email_choices(&self, actor: &Actor) -> DomainResult<EmailChoices> {
        let mut conn = self.db.pool().acquire().await?;
        let c = store::choices(&mut conn, actor.id()).await?;
        Ok(EmailChoices {
            sends: self.sends_email(),
            optional: c.optional,
            digest: c.digest,
            time_zone: c.time_zone,
            provider_time_zone: c.provider_time_zone,
        })
    }

    /// The person sets their own email choices: the optional emails, the daily digest, and
    /// their time zone by its IANA name (`Some(None)` or an empty name: automatic, their
    /// sign-in provider's; `None`: left as it is), audited. Returns the time zone their
    /// emails now use (`None`: UTC).
    #[tracing::instrument(name = "set_email_choices", skip_all, fields(actor = actor.id().0, optional, digest))]
    pub async fn set_email_choices(
        &self,
        actor: &Actor,
        optional: bool,
        digest: bool,
        time_zone: Option<Option<&str>>,
    ) -> DomainResult<Option<String>> {
        let time_zone = match time_zone.map(|z| z.map(str::trim).filter(|z| !z.is_empty())) {
            Some(Some(name)) => Some(Some(checked_zone(name)?)),
            other => other.map(|_| None),
        };
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let was = store::choices(&mut tx, actor.id()).await?;
        let chosen = time_zone.map_or(was.time_zone.as_deref(), |z| z);
        let in_use = chosen.or(was.provider_time_zone.as_deref()).map(str::to_owned);
        if store::set_choices(&mut tx, actor.id(), optional, digest, time_zone, now).await? {
            let event = AuditEvent::new(Some(actor.id()), "user.email_preferences", "user", actor.id().0)
                .before(serde_json::json!({
                    "optional_emails": was.optional, "daily_digest": was.digest, "time_zone": was.time_zone,
                }))
                .after(serde_json::json!({
                    "optional_emails": optional, "daily_digest": digest, "time_zone": chosen, "time_zone_in_use": in_use,
                }));
            self.commit(tx, vec![event]).await?;
        }
        Ok(in_use)
    }

    /// Queue today's digest for everyone who chose it and has decisions waiting: once a day,
    /// from 07:00 on their own clock (UTC for who has no time zone), and not again on a day
    /// of theirs that already had one (on the clock they have now). Returns how many were
    /// queued.
    #[tracing::instrument(name = "queue_digests", skip_all, fields(operator = %by))]
    pub async fn queue_digests(&self, by: &Operator<'_>) -> DomainResult<u64> {
        by.require(Permission::Administer)?;
        let now = self.now();
        if self.mail.is_none() {
            return Ok(0);
        }
        let mut conn = self.db.pool().acquire().await?;
        let candidates = store::digest_candidates(&mut conn).await?;
        drop(conn);
        // Who is past 07:00 on their clock and had none yet that day, by their day and zone
        // (people in a few zones: a few keys).
        let mut due: std::collections::BTreeMap<String, Vec<UserId>> = Default::default();
        for c in candidates {
            let zone = c.time_zone.as_deref();
            let local = crate::domain::clock::local(now, zone);
            let today = local.date_naive();
            let had_one = c.last.is_some_and(|last| crate::domain::clock::local(last, zone).date_naive() >= today);
            if local.time() >= DIGEST_FROM && !had_one {
                due.entry(format!("{today} {}", local.timezone().name())).or_default().push(c.user);
            }
        }
        let mut queued = 0;
        for (key, people) in &due {
            for chunk in people.chunks(500) {
                let mut tx = self.db.begin().await?;
                queued += store::queue_digests(&mut tx, chunk, key, now).await?;
                tx.commit().await?;
            }
        }
        Ok(queued)
    }
}

/// The time zone named `name`, as the tz database spells it; refused (a clear message, the
/// name cut short) when it knows no such zone.
fn checked_zone(name: &str) -> DomainResult<&'static str> {
    let known = if name.len() <= 64 { crate::domain::clock::zone(name) } else { None };
    known.map(|z| z.name()).ok_or_else(|| {
        let shown: String = name.chars().take(40).collect();
        let more = if shown.len() < name.len() { "…" } else { "" };
        DomainError::invalid(
            "time_zone",
            format!(
                "\"{shown}{more}\" is not a time zone: choose one from the list (Europe/Paris, America/New_York, …)"
            ),
        )
    })
}

/// When, on the recipient's clock, the day's digest is queued.
const DIGEST_FROM: chrono::NaiveTime = match chrono::NaiveTime::from_hms_opt(7, 0, 0) {
    Some(t) => t,
    None => chrono::NaiveTime::MIN,
};

/// The most waiting decisions a digest lists (it says how many there are in all).
const DIGEST_LISTS: i64 = 20;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_change_tells_the_right_people() {
        let submitted =
            AuditEvent::new(None, "request.submitted", "request", 4).after(json!({"state": "pending_approval"}));
        assert_eq!(told(&submitted, &[]).len(), 1);
        let granted = AuditEvent::new(None, "request.submitted", "request", 4).after(json!({"state": "approved"}));
        assert!(told(&granted, &[]).is_empty(), "granted at once: nobody to ask");
        let rejected = AuditEvent::new(None, "request.rejected", "request", 4);
        assert!(told(&rejected, std::slice::from_ref(&submitted)).is_empty(), "shown on the spot");
        assert_eq!(told(&rejected, &[]).len(), 1, "stopped later (no longer allowed)");
        let again = AuditEvent::new(None, "assignment.delivered", "assignment", 9).after(json!({"first": false}));
        assert!(told(&again, &[]).is_empty(), "a role added later is not news");
        let failed =
            AuditEvent::new(None, "assignment.delivery_state", "assignment", 9).after(json!({"state": "delivering"}));
        assert!(told(&failed, &[]).is_empty());
        let failed = AuditEvent::new(None, "assignment.delivery_state", "assignment", 9)
            .after(json!({"state": "delivery_failed", "delivered": 0}));
        let to: Vec<To> = told(&failed, &[]).into_iter().map(|t| t.0).collect();
        assert_eq!(to, [To::Holder, To::CatalogOwners]);
        assert!(told(&AuditEvent::new(None, "assignment.given_up", "assignment", 9), &[]).is_empty(), "they did it");
        let extend = AuditEvent::new(None, "request.submitted", "request", 5).after(json!({"kind": "user_extend"}));
        assert_eq!(told(&extend, &[]).len(), 1, "an extension asks its approvers too");
        let approved = AuditEvent::new(None, "request.approved", "request", 4);
        let stopped = AuditEvent::new(None, "request.rejected", "request", 4);
        let change = [approved.clone(), stopped.clone()];
        assert!(told(&approved, &change).is_empty(), "approved, then stopped: told as stopped");
        assert_eq!(told(&stopped, &change).len(), 1);
        let other = AuditEvent::new(None, "request.rejected", "request", 8);
        assert_eq!(told(&approved, &[approved.clone(), other]).len(), 1, "another request's stop");
    }
}
