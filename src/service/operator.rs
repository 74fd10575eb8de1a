//! What the operator does at the command line besides tokens: make an administrator (the
//! first one, or another), take a leaver out (the same path as an administrator disabling
//! them), and copy the database while it serves.

use serde_json::json;

use super::{Offboarded, Service};
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Operator, Permission};
use crate::domain::ids::UserId;
use crate::domain::model::{Role, UserKind};
use crate::domain::{DomainError, DomainResult};
use crate::store::{directory, Backend};

/// What `create-admin` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminMade {
    /// A new person, made an administrator.
    NewPerson(UserId),
    /// Someone already here, now an administrator.
    Granted(UserId),
    /// Someone who already was one: nothing changed.
    AlreadyAdmin(UserId),
}

impl Service {
    /// Make the person with `email` an administrator, adding them (named `name`) when they
    /// are not here yet; audited as done at the command line. A disabled person is refused
    /// (enable them first, as an administrator).
    #[tracing::instrument(name = "create_admin", skip_all)]
    pub async fn create_admin(&self, by: &Operator<'_>, email: &str, name: &str) -> DomainResult<AdminMade> {
        by.require(Permission::Administer)?;
        let email = email.trim().to_lowercase();
        let well_formed = email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
        if !well_formed {
            return Err(DomainError::invalid("email", format!("{email:?} is not an email address")));
        }
        let name = name.trim();
        if name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(DomainError::invalid("name", "a name of at most 200 characters"));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let mut events = Vec::new();
        let (user, new) = match directory::user_by_email(&mut tx, &email).await? {
            Some((user, _)) if !user.is_active() => {
                return Err(DomainError::Conflict(format!("{email} is disabled: enable them first")));
            }
            Some((user, _)) => (user.id, false),
            None => {
                let display = if name.is_empty() { email.as_str() } else { name };
                let new = directory::NewUser {
                    email: &email,
                    display_name: display,
                    department: "",
                    job_title: "",
                    manager_id: None,
                    kind: UserKind::Member,
                    connected_org_id: None,
                };
                let id = directory::insert_user(&mut tx, &new, crate::store::to_ms(now)).await?;
                events.push(
                    AuditEvent::new(None, "user.created", "user", id.0)
                        .after(json!({"email": email, "name": display, "source": "cli", "kind": "member"}))
                        .reason("added at the command line"),
                );
                (id, true)
            }
        };
        self.db.lock_user(&mut tx, user).await?;
        let held = directory::roles(&mut tx, user).await?;
        if held.iter().any(|g| g.role == Role::Administrator && g.catalog.is_none()) {
            return Ok(AdminMade::AlreadyAdmin(user));
        }
        directory::grant_role(&mut tx, user, Role::Administrator, None, crate::store::to_ms(now)).await?;
        events.push(
            AuditEvent::new(None, "role.granted", "user", user.0)
                .after(json!({"role": Role::Administrator.as_str(), "catalog": null}))
                .reason("granted at the command line"),
        );
        self.commit(tx, events).await?;
        Ok(if new { AdminMade::NewPerson(user) } else { AdminMade::Granted(user) })
    }

    /// Disable the person with `email` (the leaver path: their requests canceled, their
    /// access taken back and their sessions ended, each audited). `None` when they already
    /// were disabled.
    #[tracing::instrument(name = "disable_person", skip_all)]
    pub async fn disable_person(&self, by: &Operator<'_>, email: &str) -> DomainResult<Option<Offboarded>> {
        by.require(Permission::Administer)?;
        let mut conn = self.db.pool().acquire().await?;
        let found = directory::user_by_email(&mut conn, email.trim()).await?;
        drop(conn);
        let Some((user, _)) = found else { return Err(DomainError::not_found(format!("person {email:?}"))) };
        self.set_active(None, user.id, false).await
    }

    /// Copy the whole database into the new file `path` while it serves (SQLite's
    /// `VACUUM INTO`: one consistent snapshot). On PostgreSQL, says what to run instead.
    #[tracing::instrument(name = "backup", skip_all)]
    pub async fn backup(&self, by: &Operator<'_>, path: &std::path::Path) -> DomainResult<()> {
        by.require(Permission::Administer)?;
        if self.db.backend() != Backend::Sqlite {
            return Err(DomainError::invalid(
                "backup",
                "on PostgreSQL, back up with its own tools: pg_dump --format=custom --file=FILE \"$QM_DATABASE_URL\" \
                 (or a base backup and WAL archiving for point-in-time recovery)",
            ));
        }
        if path.exists() {
            return Err(DomainError::Conflict(format!("{} exists already: name a new file", path.display())));
        }
        let target = path.to_str().ok_or_else(|| DomainError::invalid("file", "a file name in UTF-8"))?;
        crate::store::backup_sqlite(self.db.pool(), target).await?;
        Ok(())
    }

    /// Every metric in Prometheus's text format, the queues and open requests read now (for
    /// `/metrics`; whoever reaches it was let through by its listener or token).
    #[tracing::instrument(name = "metrics", skip_all)]
    pub async fn metrics_text(&self) -> DomainResult<String> {
        self.metrics
            .text(async {
                let mut conn = self.db.pool().acquire().await?;
                Ok((crate::store::gauges::waiting(&mut conn).await?, self.now().timestamp_millis()))
            })
            .await
    }

    /// This instance's metrics, for its workers and its HTTP layer to record into.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }
}
