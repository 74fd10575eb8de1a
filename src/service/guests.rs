//! Guests whose access has ended (issue 13, like Entra's connected-organization lifecycle):
//! a connected organization may block its guests from signing in some days after their last
//! access ended, and remove them (the leaver path) some days after that. Both audited; a
//! blocked guest's sessions end at once, and access given to them again lets them back in.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::Service;
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Operator, Permission};
use crate::domain::ids::{OrgId, UserId};
use crate::domain::model::UserState;
use crate::domain::{DomainError, DomainResult};
use crate::store::guests::{self, IdleGuest};

/// The most days either setting takes.
const MOST_DAYS: i64 = 3650;

/// What is due for an idle guest at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Due {
    Nothing,
    Block,
    Remove,
}

fn due(g: &IdleGuest, now: DateTime<Utc>) -> Due {
    let days = |d: i64| Duration::days(d.clamp(0, MOST_DAYS));
    let block_at = g.block_after_days.map(|d| g.idle_since + days(d));
    // Removal counts from the block when the organization blocks (one that happened since
    // their access last ended: never without it), else from the end of their access.
    let remove_from = match block_at {
        Some(_) => g.blocked_at.filter(|b| *b > g.idle_since),
        None => Some(g.idle_since),
    };
    let remove_at = g.remove_after_days.and_then(|d| Some(remove_from? + days(d)));
    if remove_at.is_some_and(|at| at <= now) {
        Due::Remove
    } else if block_at.is_some_and(|at| at <= now) && g.blocked_at.is_none_or(|b| b <= g.idle_since) {
        Due::Block
    } else {
        Due::Nothing
    }
}

impl Service {
    /// One pass over idle guests: each due is blocked or removed, in its own transaction under
    /// their lock, after checking again that they still hold nothing. Returns (blocked,
    /// removed).
    #[tracing::instrument(name = "guest_lifecycle", skip_all, fields(operator = %by))]
    pub async fn guest_lifecycle(&self, by: &Operator<'_>) -> DomainResult<(usize, usize)> {
        by.require(Permission::Administer)?;
        let now = self.now();
        let idle = {
            let mut conn = self.db.pool().acquire().await?;
            guests::idle(&mut conn, None).await?
        };
        let (mut blocked, mut removed) = (0, 0);
        for g in idle.into_iter().filter(|g| due(g, now) != Due::Nothing) {
            match self.guest_step(g.user, now).await {
                Ok(Due::Block) => blocked += 1,
                Ok(Due::Remove) => removed += 1,
                Ok(Due::Nothing) => {}
                Err(e) => tracing::error!(user = g.user.0, error = ?e, "a guest's lifecycle step failed"),
            }
        }
        Ok((blocked, removed))
    }

    async fn guest_step(&self, user: UserId, now: DateTime<Utc>) -> DomainResult<Due> {
        let mut tx = self.db.begin().await?;
        self.db.lock_user(&mut tx, user).await?;
        // Read again under the lock: access given meanwhile, or another instance's step.
        let Some(g) = guests::idle(&mut tx, Some(user)).await?.pop() else { return Ok(Due::Nothing) };
        let step = due(&g, now);
        let since = g.idle_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut events = Vec::new();
        match step {
            Due::Nothing => return Ok(Due::Nothing),
            Due::Block => {
                if !guests::block(&mut tx, user, now).await? {
                    return Ok(Due::Nothing);
                }
                let sessions = crate::store::sessions::delete_for_user(&mut tx, user).await?;
                events.push(
                    AuditEvent::new(None, "user.sign_in_blocked", "user", user.0)
                        .after(json!({"idle_since": since, "sessions_ended": sessions}))
                        .reason(format!("a guest of {} whose access ended, as its settings say", g.org)),
                );
            }
            Due::Remove => {
                if !crate::store::directory::set_state(&mut tx, user, UserState::Disabled, now.timestamp_millis())
                    .await?
                {
                    return Ok(Due::Nothing);
                }
                events.push(
                    AuditEvent::new(None, "user.removed", "user", user.0)
                        .before(json!({"state": "active"}))
                        .after(json!({"state": "disabled", "idle_since": since}))
                        .reason(format!("a guest of {} whose access ended, as its settings say", g.org)),
                );
                self.offboard(&mut tx, user, None, now, &mut events).await?;
            }
        }
        self.commit(tx, events).await?;
        Ok(step)
    }

    /// Whether the person is a guest blocked from signing in (their access ended, and their
    /// organization blocks such guests): sign-in is refused until they are given access again.
    #[tracing::instrument(name = "guest_blocked", skip_all, fields(user = user.0))]
    pub async fn guest_blocked(&self, user: UserId) -> DomainResult<bool> {
        let mut conn = self.db.pool().acquire().await?;
        Ok(guests::blocked(&mut conn, user).await?)
    }
}

impl super::capability::Administrator<'_> {
    /// A connected organization's settings for guests whose access ended: block them from
    /// signing in after `block_after_days`, remove them `remove_after_days` after that (or
    /// after their access ended, without a block). `None`: never. Audited.
    #[tracing::instrument(name = "set_guest_lifecycle", skip_all, fields(actor = self.actor.id().0, org = org.0))]
    pub async fn set_guest_lifecycle(
        &self,
        org: OrgId,
        (block_after_days, remove_after_days): (Option<i64>, Option<i64>),
        from: Option<i64>,
    ) -> DomainResult<()> {
        for (field, days) in [("block_after_days", block_after_days), ("remove_after_days", remove_after_days)] {
            if days.is_some_and(|d| !(1..=MOST_DAYS).contains(&d)) {
                return Err(DomainError::invalid(field, format!("from 1 to {MOST_DAYS} days, or empty for never")));
            }
        }
        let mut tx = self.service.db.begin().await?;
        let before = guests::lifecycle_of(&mut tx, org)
            .await?
            .ok_or_else(|| DomainError::not_found("connected organization"))?;
        // Guarded by the version read (and `from`, when the caller names the one it changed).
        if from.is_some_and(|v| v != before.2)
            || !guests::set_lifecycle(&mut tx, org, block_after_days, remove_after_days, before.2).await?
        {
            return Err(super::orgs::stale_org());
        }
        let event = AuditEvent::new(Some(self.actor.id()), "org.guest_lifecycle", "connected_org", org.0)
            .before(json!({"block_after_days": before.0, "remove_after_days": before.1}))
            .after(json!({"block_after_days": block_after_days, "remove_after_days": remove_after_days}));
        self.service.commit(tx, vec![event]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(block: Option<i64>, remove: Option<i64>, blocked_at: Option<i64>) -> IdleGuest {
        let t = |d: i64| DateTime::<Utc>::UNIX_EPOCH + Duration::days(d);
        IdleGuest {
            user: UserId(1),
            org: "Northwind".into(),
            block_after_days: block,
            remove_after_days: remove,
            blocked_at: blocked_at.map(t),
            idle_since: t(100),
        }
    }

    #[test]
    fn a_guest_is_blocked_then_removed_each_once() {
        let day = |d: i64| DateTime::<Utc>::UNIX_EPOCH + Duration::days(d);
        assert_eq!(due(&guest(Some(7), Some(30), None), day(106)), Due::Nothing);
        assert_eq!(due(&guest(Some(7), Some(30), None), day(107)), Due::Block);
        assert_eq!(due(&guest(Some(7), Some(30), Some(107)), day(120)), Due::Nothing, "blocked once");
        assert_eq!(
            due(&guest(Some(7), Some(30), Some(50)), day(120)),
            Due::Block,
            "blocked before, given access since"
        );
        assert_eq!(due(&guest(Some(7), Some(30), Some(107)), day(137)), Due::Remove);
        assert_eq!(due(&guest(Some(7), Some(30), None), day(200)), Due::Block, "never removed without its block");
        assert_eq!(
            due(&guest(None, Some(30), None), day(130)),
            Due::Remove,
            "removal without a block counts from the end"
        );
        assert_eq!(due(&guest(None, None, None), day(10_000)), Due::Nothing);
    }
}
