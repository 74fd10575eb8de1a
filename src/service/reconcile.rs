//! Reconciliation: what Quartermaster grants, compared with what each bound group of a SCIM
//! or LDAP system holds. Drift is reported (missing: holders the group lacks; unexpected:
//! members nobody granted) and repaired when asked, behind a safety threshold.
//!
//! - **Only delivered access counts.** A holder whose grant is still on its way, or anyone with
//!   work for the role still queued, is neither missing nor unexpected yet; ended access is
//!   never expected, so no sync re-adds it.
//! - **Members are people, found.** A nested group (SCIM `type: Group`, an LDAP DN outside
//!   the people base) is left alone. A member whose account was never kept here is asked
//!   about (SCIM `userName`, LDAP `mail`): a person here by that email is them (and the
//!   account is kept on repair), so a lost id never makes a holder look like a stranger.
//! - **Repair goes through the outbox.** A missing member's grant is queued again, an
//!   unexpected member Quartermaster knows is queued for removal; delivery checks each under
//!   the person's lock as always (an assignment ended meanwhile is not re-added; a role held
//!   again is not removed). A member nobody here is (no person by the target's email) is
//!   taken out directly, after checking once more that nobody was given that account
//!   meanwhile.
//! - **A mass removal needs a confirmation.** Removing more than the system's share of a
//!   group's members (10 % unless set) is refused without one.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use super::capability::Administrator;
use crate::connectors::{ldap, scim, CallError};
use crate::domain::audit::AuditEvent;
use crate::domain::ids::{GrantId, ResourceRoleId, ResourceSystemId, UserId};
use crate::domain::model::ResourceSystemKind;
use crate::domain::{DomainError, DomainResult};
use crate::store::{catalog, reconcile};
use crate::views::{DriftReport, GroupDrift};

/// The share of a group's members a repair removes without a confirmation, unless the
/// system's settings say otherwise.
pub const REMOVAL_THRESHOLD_PERCENT: u8 = 10;

/// A system's target, opened (its secret read).
enum Target {
    Scim(scim::ScimConfig, String),
    Ldap(ldap::LdapConfig, String),
}

impl Target {
    /// A member's id there, as compared (SCIM ids in any case, LDAP DNs however spelled).
    fn key(&self, id: &str) -> String {
        match self {
            Target::Scim(..) => id.to_lowercase(),
            Target::Ldap(..) => ldap::dn_key(id),
        }
    }
}

/// What a repair does.
enum Fix {
    /// The target's id for a person, found by asking the target who a member is: kept.
    Keep {
        user: UserId,
        id: String,
    },
    Add(GrantId),
    Remove(UserId, ResourceRoleId),
    /// An account Quartermaster does not know: taken out of `group` directly.
    Stranger {
        group: String,
        id: String,
    },
}

/// What a repair did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Repaired {
    pub additions_queued: usize,
    pub removals_queued: usize,
    pub strangers_removed: usize,
    /// Accounts unknown here that could not be taken out (audited with the target's answer).
    pub strangers_not_removed: usize,
}

impl Administrator<'_> {
    /// The system's drift, group by group (nothing changes).
    #[tracing::instrument(name = "drift", skip_all, fields(actor = self.actor.id().0, system = system.0))]
    pub async fn drift(&self, system: ResourceSystemId) -> DomainResult<DriftReport> {
        let (report, _, _) = self.service.drift_and_fixes(system).await?;
        self.service.keep_drift(system, &report).await?;
        Ok(report)
    }

    /// Repair the system's drift: queue the missing members' grants again, queue the removal
    /// of unexpected members, take out accounts nobody here knows. Refused, changing nothing,
    /// when it would remove more than the system's share of a group's members, unless
    /// `confirmed`. Audited.
    #[tracing::instrument(name = "repair_drift", skip_all, fields(actor = self.actor.id().0, system = system.0, confirmed))]
    pub async fn repair_drift(&self, system: ResourceSystemId, confirmed: bool) -> DomainResult<Repaired> {
        let (report, fixes, threshold) = self.service.drift_and_fixes(system).await?;
        if !confirmed {
            for g in &report.groups {
                let removing = g.unexpected.len() as u64;
                if removing > 0 && removing * 100 > u64::from(threshold) * g.members.max(1) as u64 {
                    return Err(DomainError::invalid(
                        "confirm",
                        format!(
                            "this would remove {removing} of the {} members of {} (more than {threshold} %): confirm to go ahead",
                            g.members, g.resource
                        ),
                    ));
                }
            }
        }
        let service = self.service;
        let now = service.now();
        let mut done = Repaired::default();
        let mut strangers = Vec::new();
        let mut tx = service.db.begin().await?;
        for fix in fixes {
            match fix {
                Fix::Add(grant) => {
                    reconcile::requeue_addition(&mut tx, grant, now).await?;
                    done.additions_queued += 1;
                }
                Fix::Remove(user, role) => {
                    reconcile::queue_removal(&mut tx, user, role, now).await?;
                    done.removals_queued += 1;
                }
                Fix::Stranger { group, id } => strangers.push((group, id)),
                Fix::Keep { user, id } => catalog::keep_connector_account(&mut tx, system, user, &id).await?,
            }
        }
        let event = AuditEvent::new(Some(self.actor.id()), "resource_system.repaired", "resource_system", system.0)
            .before(json!({"drift": report}))
            .after(json!({
                "additions_queued": done.additions_queued,
                "removals_queued": done.removals_queued,
                "strangers": strangers.iter().map(|(g, id)| json!({"group": g, "id": id})).collect::<Vec<_>>(),
                "confirmed": confirmed,
            }));
        service.commit(tx, vec![event]).await?;
        // Accounts nobody here knows: out directly, unless one was given to someone meanwhile.
        if !strangers.is_empty() {
            let target = service.open_target(system).await?;
            let key = |id: &str| target.key(id);
            let known: HashSet<String> = {
                let mut conn = service.db.pool().acquire().await?;
                reconcile::accounts(&mut conn, system).await?.into_iter().map(|(_, _, id)| key(&id)).collect()
            };
            let mut failed = Vec::new();
            for (group, id) in strangers.into_iter().filter(|(_, id)| !known.contains(&key(id))) {
                let removed = match &target {
                    Target::Scim(config, token) => {
                        let scim = scim::Scim { config, token, now };
                        scim.ensure_not_member(&group, Some(&id), "").await
                    }
                    Target::Ldap(config, password) => {
                        ldap::Directory { config, password }.ensure_not_member(&group, Some(&id), "").await
                    }
                };
                match removed {
                    Ok(()) => done.strangers_removed += 1,
                    Err(e) => failed.push(json!({"group": group, "id": id, "error": e.message()})),
                }
            }
            done.strangers_not_removed = failed.len();
            if !failed.is_empty() {
                let tx = service.db.begin().await?;
                let event = AuditEvent::new(
                    Some(self.actor.id()),
                    "resource_system.repair_failed",
                    "resource_system",
                    system.0,
                )
                .after(json!({"not_removed": failed}));
                service.commit(tx, vec![event]).await?;
            }
        }
        Ok(done)
    }
}

impl super::Service {
    /// The scheduled check: the drift of every SCIM and LDAP system not checked for
    /// `older_than`, kept on its row for the connectors page (nothing is repaired). Each system
    /// is claimed by a guarded update first, so of several instances one checks it. Returns
    /// how many systems were checked; one that cannot be read keeps the reason instead.
    #[tracing::instrument(name = "check_drift_everywhere", skip_all, fields(operator = %by))]
    pub async fn check_drift_everywhere(
        &self,
        by: &crate::domain::authz::Operator<'_>,
        older_than: chrono::Duration,
    ) -> DomainResult<usize> {
        by.require(crate::domain::authz::Permission::Administer)?;
        let systems = {
            let mut conn = self.db.pool().acquire().await?;
            catalog::connector_health(&mut conn, None).await?
        };
        let mut checked = 0;
        let now = self.now().timestamp_millis();
        for system in systems.iter().filter(|s| matches!(s.kind, ResourceSystemKind::Scim | ResourceSystemKind::Ldap)) {
            let claimed = {
                let mut tx = self.db.begin().await?;
                let claimed =
                    catalog::claim_drift_check(&mut tx, system.id, now, now - older_than.num_milliseconds()).await?;
                tx.commit().await?;
                claimed
            };
            if !claimed {
                continue;
            }
            let summary = match self.drift_and_fixes(system.id).await {
                Ok((report, _, _)) => summary(&report),
                Err(e) => {
                    tracing::warn!(system = system.id.0, error = ?e, "drift check failed");
                    format!("not checked: {e}")
                }
            };
            let mut tx = self.db.begin().await?;
            catalog::keep_drift(&mut tx, system.id, &summary, self.now().timestamp_millis()).await?;
            tx.commit().await?;
            checked += 1;
        }
        Ok(checked)
    }

    /// The report's summary kept on the system's row.
    async fn keep_drift(&self, system: ResourceSystemId, report: &DriftReport) -> DomainResult<()> {
        let mut tx = self.db.begin().await?;
        catalog::keep_drift(&mut tx, system, &summary(report), self.now().timestamp_millis()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The system's target, its secret opened.
    async fn open_target(&self, system: ResourceSystemId) -> DomainResult<Target> {
        let (kind, config, sealed) = {
            let mut conn = self.db.pool().acquire().await?;
            catalog::connector(&mut conn, system).await?.ok_or_else(|| DomainError::not_found("resource system"))?
        };
        let opened = crate::connectors::Opened::open(kind, &config, &sealed, self.secret_key.as_deref())
            .map_err(|e| DomainError::invalid("system", e))?;
        match opened {
            crate::connectors::Opened::Scim(config, token) => Ok(Target::Scim(config, token)),
            crate::connectors::Opened::Ldap(config, password) => Ok(Target::Ldap(config, password)),
            crate::connectors::Opened::Webhook(..) => Err(DomainError::invalid(
                "system",
                "only SCIM and LDAP systems hold memberships to compare (a webhook receiver keeps its own)",
            )),
        }
    }

    /// Each bound group compared: the report, what repairing it would do, and the system's
    /// removal threshold.
    async fn drift_and_fixes(&self, system: ResourceSystemId) -> DomainResult<(DriftReport, Vec<Fix>, u8)> {
        let target = self.open_target(system).await?;
        let threshold = match &target {
            Target::Scim(c, _) => c.removal_threshold,
            Target::Ldap(c, _) => c.removal_threshold,
        }
        .unwrap_or(REMOVAL_THRESHOLD_PERCENT);
        let mut conn = self.db.pool().acquire().await?;
        let groups = reconcile::bound_groups(&mut conn, system).await?;
        let accounts = reconcile::accounts(&mut conn, system).await?;
        drop(conn);
        let key = |id: &str| target.key(id);
        // The target's id → the person and their email.
        let mut by_id: HashMap<String, (UserId, String)> =
            accounts.into_iter().map(|(user, email, id)| (key(&id), (user, email))).collect();
        let now = self.now();
        let mut report = DriftReport { groups: Vec::new() };
        let mut fixes = Vec::new();
        for (role, group, name) in groups {
            let compare_error = |e: CallError| DomainError::invalid("system", format!("{name}: {}", e.message()));
            let present = match &target {
                Target::Scim(config, token) => scim::Scim { config, token, now }.group_members(&group).await,
                Target::Ldap(config, password) => ldap::Directory { config, password }.group_members(&group).await,
            }
            .map_err(compare_error)?;
            // A member whose account we never kept (added elsewhere, its id lost, a changed
            // address): the target says who it is, and a person here by that email is them.
            let unknown: Vec<&String> = present.iter().filter(|id| !by_id.contains_key(&key(id))).collect();
            for id in unknown {
                let email = match &target {
                    Target::Scim(config, token) => scim::Scim { config, token, now }.user_name(id).await,
                    Target::Ldap(config, password) => ldap::Directory { config, password }.entry_mail(id).await,
                }
                .map_err(compare_error)?;
                let Some(email) = email else { continue };
                let person = {
                    let mut conn = self.db.pool().acquire().await?;
                    crate::store::directory::user_by_email(&mut conn, &email).await?
                };
                if let Some((user, _)) = person {
                    by_id.insert(key(id), (user.id, user.email.clone()));
                    fixes.push(Fix::Keep { user: user.id, id: id.clone() });
                }
            }
            let holders = {
                let mut conn = self.db.pool().acquire().await?;
                reconcile::holders(&mut conn, role).await?
            };
            let emails: HashMap<UserId, String> = by_id.values().cloned().collect();
            let present_people: HashSet<UserId> =
                present.iter().filter_map(|id| by_id.get(&key(id)).map(|(u, _)| *u)).collect();
            let mut drift = GroupDrift {
                resource: name.clone(),
                external_id: group.clone(),
                members: present.len() as i64,
                missing: Vec::new(),
                unexpected: Vec::new(),
            };
            let expected: HashSet<UserId> = holders.delivered.iter().map(|(u, _)| *u).collect();
            for (user, grant) in &holders.delivered {
                if !present_people.contains(user) {
                    drift.missing.push(emails.get(user).cloned().unwrap_or_else(|| format!("person {}", user.0)));
                    fixes.push(Fix::Add(*grant));
                }
            }
            for id in &present {
                match by_id.get(&key(id)) {
                    Some((user, email)) => {
                        if !expected.contains(user) && !holders.changing.contains(user) {
                            drift.unexpected.push(email.clone());
                            fixes.push(Fix::Remove(*user, role));
                        }
                    }
                    None => {
                        drift.unexpected.push(format!("{id} (not known here)"));
                        fixes.push(Fix::Stranger { group: group.clone(), id: id.clone() });
                    }
                }
            }
            report.groups.push(drift);
        }
        Ok((report, fixes, threshold))
    }
}

/// A drift report in a sentence (the connectors page, the notice after a check).
pub fn summary(report: &DriftReport) -> String {
    let drifting: Vec<String> = report
        .groups
        .iter()
        .filter(|g| !g.missing.is_empty() || !g.unexpected.is_empty())
        .map(|g| {
            let list = |v: &[String]| {
                let shown: Vec<&str> = v.iter().take(5).map(String::as_str).collect();
                let more = v.len().saturating_sub(5);
                if more > 0 {
                    format!("{} and {more} more", shown.join(", "))
                } else {
                    shown.join(", ")
                }
            };
            let mut parts = Vec::new();
            if !g.missing.is_empty() {
                parts.push(format!("missing {}", list(&g.missing)));
            }
            if !g.unexpected.is_empty() {
                parts.push(format!("unexpected {}", list(&g.unexpected)));
            }
            format!("{}: {}", g.resource, parts.join("; "))
        })
        .collect();
    if report.groups.is_empty() {
        "No group of this system is bound to a catalog yet.".to_owned()
    } else if drifting.is_empty() {
        format!("No drift: {} group(s) hold exactly what is granted.", report.groups.len())
    } else {
        format!("Drift in {} of {} group(s). {}.", drifting.len(), report.groups.len(), drifting.join(". "))
    }
}
