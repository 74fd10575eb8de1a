//! Connected organizations (administrators): their name, email domain and state, and their
//! internal and external sponsors. Every change is audited.

use serde_json::json;

use super::capability::Administrator;
use crate::domain::audit::AuditEvent;
use crate::domain::ids::{OrgId, UserId};
use crate::domain::{DomainError, DomainResult};
use crate::store::{directory, is_unique_violation, to_ms};
use crate::views::{ConnectedOrg, Sponsor};

/// A connected organization's fields, checked: a name, a domain (lowercase, with a dot, no
/// `@`), a state word.
fn clean(name: &str, domain: &str, configured: bool) -> DomainResult<(String, String, &'static str)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(DomainError::invalid("name", "a name of at most 200 characters"));
    }
    let domain = domain.trim().trim_start_matches('@').to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let valid = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        return Err(DomainError::invalid("domain", "an email domain like partner.example"));
    }
    Ok((name.to_owned(), domain, if configured { "configured" } else { "proposed" }))
}

/// A connected organization's domain is not one our own people's addresses are in (nor a
/// parent of one): its guests are made at sign-in by their address's domain, and new staff
/// would become its guests.
async fn not_our_own(conn: &mut crate::store::Conn, domain: &str) -> DomainResult<()> {
    let members = directory::members_in_domain(conn, domain).await?;
    if members > 0 {
        return Err(DomainError::invalid(
            "domain",
            format!("{members} of your own people have addresses in {domain}: a partner's domain is theirs alone"),
        ));
    }
    Ok(())
}

fn taken(e: sqlx::Error) -> DomainError {
    if is_unique_violation(&e) {
        DomainError::Conflict("a connected organization with that name or domain already exists".into())
    } else {
        e.into()
    }
}

/// A change made from a version of an organization another change replaced.
pub(super) fn stale_org() -> DomainError {
    DomainError::Stale("someone else changed this organization meanwhile; reload and try again".into())
}

impl Administrator<'_> {
    /// Every connected organization, by name, with its sponsors and guests' count.
    #[tracing::instrument(name = "connected_orgs", skip_all, fields(actor = self.actor.id().0))]
    pub async fn connected_orgs(&self) -> DomainResult<Vec<ConnectedOrg>> {
        let mut conn = self.service.db.pool().acquire().await?;
        Ok(directory::connected_orgs(&mut conn)
            .await?
            .into_iter()
            .map(|o| ConnectedOrg {
                id: o.id.0,
                name: o.name,
                domain: o.domain,
                configured: o.state == "configured",
                sponsors: o
                    .sponsors
                    .into_iter()
                    .map(|(user, name, email, kind)| Sponsor {
                        user_id: user.0,
                        name,
                        email,
                        external: kind == "external",
                    })
                    .collect(),
                guests: o.guests,
                block_after_days: o.block_after_days,
                remove_after_days: o.remove_after_days,
                version: o.version,
            })
            .collect())
    }

    #[tracing::instrument(name = "create_org", skip_all, fields(actor = self.actor.id().0))]
    pub async fn create_org(&self, name: &str, domain: &str, configured: bool) -> DomainResult<OrgId> {
        let (name, domain, state) = clean(name, domain, configured)?;
        let now = self.service.now();
        let mut tx = self.service.db.begin().await?;
        not_our_own(&mut tx, &domain).await?;
        let id = directory::insert_org(&mut tx, &name, &domain, state, to_ms(now)).await.map_err(taken)?;
        let event = AuditEvent::new(Some(self.actor.id()), "org.created", "connected_org", id.0)
            .after(json!({"name": name, "domain": domain, "state": state}));
        self.service.commit(tx, vec![event]).await?;
        Ok(id)
    }

    /// Rename it, change its domain, or its state (a `proposed` organization admits nobody).
    /// `from`: the version the change was made from (refused when it is not the current
    /// one); `None`, over whatever is there.
    #[tracing::instrument(name = "update_org", skip_all, fields(actor = self.actor.id().0, org = id.0))]
    pub async fn update_org(
        &self,
        id: OrgId,
        (name, domain, configured): (&str, &str, bool),
        from: Option<i64>,
    ) -> DomainResult<()> {
        let (name, domain, state) = clean(name, domain, configured)?;
        let mut tx = self.service.db.begin().await?;
        let before = directory::org_locked(&mut tx, id)
            .await?
            .ok_or_else(|| DomainError::not_found("connected organization"))?;
        if from.is_some_and(|v| v != before.3) {
            return Err(stale_org());
        }
        if (name.as_str(), domain.as_str(), state) == (before.0.as_str(), before.1.as_str(), before.2.as_str()) {
            // As it is (once cleaned): no new version, no audit event.
            return Ok(());
        }
        if before.1 != domain {
            not_our_own(&mut tx, &domain).await?;
            // Its guests signed in with addresses in the old domain: they would be refused.
            let guests = directory::guests_of(&mut tx, id).await?;
            if guests > 0 {
                return Err(DomainError::Conflict(format!(
                    "{guests} guest(s) of this organization sign in with addresses in {}: keep its domain, or add \
                     another organization for the new one",
                    before.1
                )));
            }
        }
        // The row is held (PostgreSQL) or the writer is (SQLite): the version read is the
        // one written over, and the update names it too.
        if !directory::update_org(&mut tx, id, &name, &domain, state, before.3).await.map_err(taken)? {
            return Err(stale_org());
        }
        let event = AuditEvent::new(Some(self.actor.id()), "org.updated", "connected_org", id.0)
            .before(json!({"name": before.0, "domain": before.1, "state": before.2}))
            .after(json!({"name": name, "domain": domain, "state": state}));
        self.service.commit(tx, vec![event]).await
    }

    /// Make the person a picker names a sponsor: internal (a member, who approves its guests'
    /// requests) or external (one of its own guests).
    #[tracing::instrument(name = "add_sponsor", skip_all, fields(actor = self.actor.id().0, org = org.0))]
    pub async fn add_sponsor(&self, org: OrgId, person: &str, external: bool) -> DomainResult<UserId> {
        let mut tx = self.service.db.begin().await?;
        directory::org(&mut tx, org).await?.ok_or_else(|| DomainError::not_found("connected organization"))?;
        let user = self.service.resolve_person(&mut tx, person).await?;
        // Serialized with the person being disabled (a leaver), then read again.
        self.service.db.lock_user(&mut tx, user).await?;
        let who = directory::user(&mut tx, user)
            .await?
            .filter(crate::domain::model::User::is_active)
            .ok_or_else(|| DomainError::invalid("person", "no active person with that email; type their full email"))?;
        match (external, who.connected_org_id) {
            (true, Some(theirs)) if theirs == org => {}
            (true, _) => {
                return Err(DomainError::invalid("person", "an external sponsor is one of this organization's guests"))
            }
            (false, None) => {}
            (false, Some(_)) => {
                return Err(DomainError::invalid("person", "an internal sponsor is one of your members"))
            }
        }
        let kind = if external { "external" } else { "internal" };
        if !directory::add_sponsor(&mut tx, org, user, kind).await? {
            return Err(DomainError::Conflict(format!("{} is a sponsor already", who.display_name)));
        }
        let event = AuditEvent::new(Some(self.actor.id()), "org.sponsor_added", "connected_org", org.0)
            .after(json!({"user": user, "kind": kind}));
        self.service.commit(tx, vec![event]).await?;
        Ok(user)
    }

    #[tracing::instrument(name = "remove_sponsor", skip_all, fields(actor = self.actor.id().0, org = org.0, user = user.0))]
    pub async fn remove_sponsor(&self, org: OrgId, user: UserId) -> DomainResult<()> {
        let mut tx = self.service.db.begin().await?;
        if !directory::remove_sponsor(&mut tx, org, user).await? {
            return Err(DomainError::not_found("sponsor"));
        }
        let event = AuditEvent::new(Some(self.actor.id()), "org.sponsor_removed", "connected_org", org.0)
            .before(json!({"user": user}));
        self.service.commit(tx, vec![event]).await
    }
}
