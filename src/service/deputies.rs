//! Out of office (issue 13): an approver names a deputy for a period; while it runs, every
//! stage that starts with the approver among its approvers gets the deputy as well (never the
//! person the request is for, nor the one who asked: `store::deputies::add_to_stage`). Set and
//! ended by the approver or an administrator, audited.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::Service;
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Actor, Permission};
use crate::domain::ids::UserId;
use crate::domain::model::UserKind;
use crate::domain::{DomainError, DomainResult};
use crate::store::deputies;
use crate::views::{DeputyPanel, DeputyView};

/// The longest period a deputy can be named for.
const LONGEST: Duration = Duration::days(366);

fn view(d: deputies::Deputy) -> DeputyView {
    DeputyView {
        id: d.id,
        person: d.user_name,
        deputy: d.deputy_name,
        deputy_email: d.deputy_email,
        starts_at: d.starts_at.timestamp_millis(),
        ends_at: d.ends_at.timestamp_millis(),
    }
}

impl Service {
    /// The person's own deputy period (now or to come), and the people they stand in for.
    #[tracing::instrument(name = "deputies_of", skip_all, fields(actor = actor.id().0, user = user.0))]
    pub async fn deputies_of(&self, actor: &Actor, user: UserId) -> DomainResult<DeputyPanel> {
        if user != actor.id() {
            actor.require(Permission::Administer)?;
        }
        let now = self.now();
        let mut conn = self.db.pool().acquire().await?;
        let (own, standing_in) = deputies::around(&mut conn, user, now).await?;
        Ok(DeputyPanel {
            own: own.map(view),
            standing_in: standing_in.into_iter().map(view).collect(),
            now: now.timestamp_millis(),
        })
    }

    /// Name the person with `deputy_email` to decide for `user` (the actor themselves, or
    /// anyone when the actor is an administrator) from `starts_at` until `ends_at`. Any
    /// period of `user` not ended yet is ended by it. Stages that start while it runs get the
    /// deputy too; stages already running are left as they are.
    #[tracing::instrument(name = "set_deputy", skip_all, fields(actor = actor.id().0, user = user.0))]
    pub async fn set_deputy(
        &self,
        actor: &Actor,
        user: UserId,
        deputy_email: &str,
        (starts_at, ends_at): (DateTime<Utc>, DateTime<Utc>),
    ) -> DomainResult<i64> {
        if user != actor.id() {
            actor.require(Permission::Administer)?;
        } else if actor.user.kind != UserKind::Member {
            return Err(DomainError::forbidden("only members of the organisation name deputies"));
        }
        let now = self.now();
        if ends_at <= starts_at.max(now) {
            return Err(DomainError::invalid("until", "the period must end after it starts, and after now"));
        }
        if ends_at - starts_at.max(now) > LONGEST {
            return Err(DomainError::invalid("until", "a deputy is named for a year at most"));
        }
        let mut tx = self.db.begin().await?;
        // Two namings at once for one person: one waits for the other, so one period runs.
        self.db.lock_user(&mut tx, user).await?;
        let away = crate::store::directory::user(&mut tx, user)
            .await?
            .filter(|u| u.is_active())
            .ok_or_else(|| DomainError::not_found("person"))?;
        let deputy = crate::store::directory::user_by_email(&mut tx, deputy_email.trim())
            .await?
            .map(|(u, _)| u)
            .filter(|u| u.is_active() && u.kind == UserKind::Member)
            .ok_or_else(|| DomainError::invalid("deputy", "no active member of the organisation has this email"))?;
        if deputy.id == away.id {
            return Err(DomainError::invalid("deputy", "name someone else: a deputy decides while you are away"));
        }
        let ended = deputies::end_all(&mut tx, user, now).await?;
        let id = deputies::insert(&mut tx, (user, deputy.id, actor.id()), (starts_at, ends_at), now).await?;
        let event = AuditEvent::new(Some(actor.id()), "user.deputy_set", "user", user.0).after(json!({
            "deputy": deputy.id, "deputy_email": deputy.email, "starts_at": starts_at, "ends_at": ends_at,
            "period": id, "replaced": ended,
        }));
        self.commit(tx, vec![event]).await?;
        Ok(id)
    }

    /// End a deputy period now (the approver's own, or anyone's for an administrator).
    #[tracing::instrument(name = "end_deputy", skip_all, fields(actor = actor.id().0, period = id))]
    pub async fn end_deputy(&self, actor: &Actor, id: i64) -> DomainResult<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let (period, ended) = deputies::get(&mut tx, id).await?.ok_or_else(|| DomainError::not_found("deputy"))?;
        if period.user != actor.id() && !actor.can(Permission::Administer) {
            // Someone else's period is not theirs to see.
            return Err(DomainError::not_found("deputy"));
        }
        if ended || period.ends_at <= now || !deputies::end(&mut tx, id, now).await? {
            return Err(DomainError::Conflict("this deputy period has already ended".into()));
        }
        let event = AuditEvent::new(Some(actor.id()), "user.deputy_ended", "user", period.user.0)
            .after(json!({"deputy": period.deputy, "period": id}));
        self.commit(tx, vec![event]).await?;
        Ok(())
    }
}
