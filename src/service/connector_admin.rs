//! Connected systems for administrators: the list with each one's queue, failures and
//! health, a test of the connection showing the target's answer, and retrying a system's
//! failed work. (Adding and changing them: `admin.rs`.)

use super::capability::Administrator;
use crate::connectors::{ldap, scim, webhook, CallError, Opened};
use crate::domain::audit::AuditEvent;
use crate::domain::ids::ResourceSystemId;
use crate::domain::model::ResourceSystemKind;
use crate::domain::{DomainError, DomainResult};
use crate::store::catalog;
use crate::views::{ConnectorView, EditableSettings};

impl Administrator<'_> {
    /// One connected system's page: its row, the first of its queue and of its failures,
    /// its imports, and the catalogs its groups can go to.
    #[tracing::instrument(name = "connector", skip_all, fields(actor = self.actor.id().0, system = system.0))]
    pub async fn connector(&self, system: ResourceSystemId) -> DomainResult<crate::views::ConnectorDetail> {
        let mut conn = self.service.db.pool().acquire().await?;
        let row = catalog::connector_health(&mut conn, Some(system))
            .await?
            .into_iter()
            .next()
            .map(view)
            .ok_or_else(|| DomainError::not_found("resource system"))?;
        let queue = catalog::work_of_system(&mut conn, system, "pending", WORK_SHOWN).await?;
        let failures = catalog::work_of_system(&mut conn, system, "failed", WORK_SHOWN).await?;
        let catalogs = catalog::catalogs(&mut conn).await?.into_iter().map(|c| (c.id.0, c.name)).collect();
        drop(conn);
        let imports = self.group_imports(system).await?;
        Ok(crate::views::ConnectorDetail { system: row, queue, failures, imports, catalogs })
    }

    /// What kind of system this is (its settings form follows it).
    #[tracing::instrument(name = "system_kind", skip_all, fields(actor = self.actor.id().0, system = system.0))]
    pub async fn system_kind(&self, system: ResourceSystemId) -> DomainResult<ResourceSystemKind> {
        let mut conn = self.service.db.pool().acquire().await?;
        catalog::resource_system_kind(&mut conn, system).await?.ok_or_else(|| DomainError::not_found("resource system"))
    }

    /// The tag of a connected system's settings as stored now (the API's `ETag`).
    #[tracing::instrument(name = "connector_settings_tag", skip_all, fields(actor = self.actor.id().0, system = system.0))]
    pub async fn settings_tag(&self, system: ResourceSystemId) -> DomainResult<String> {
        let mut conn = self.service.db.pool().acquire().await?;
        let (_, config, secret) =
            catalog::connector(&mut conn, system).await?.ok_or_else(|| DomainError::not_found("resource system"))?;
        Ok(super::admin::settings_tag(&config, &secret))
    }

    /// Every connected system, by name, with its queue, failures and health.
    #[tracing::instrument(name = "connectors", skip_all, fields(actor = self.actor.id().0))]
    pub async fn connectors(&self) -> DomainResult<Vec<ConnectorView>> {
        let mut conn = self.service.db.pool().acquire().await?;
        Ok(catalog::connector_health(&mut conn, None).await?.into_iter().map(view).collect())
    }

    /// Call the system once, changing nothing there, and say what it answered: SCIM, its
    /// `ServiceProviderConfig`; LDAP, a bind and a read of the people base; a webhook, a
    /// signed `ping` event. Ok(false, …) when the target could not be reached or refused.
    #[tracing::instrument(name = "test_connector", skip_all, fields(actor = self.actor.id().0, system = system.0))]
    pub async fn test_connector(&self, system: ResourceSystemId) -> DomainResult<(bool, String)> {
        let service = self.service;
        let (kind, config, sealed) = {
            let mut conn = service.db.pool().acquire().await?;
            catalog::connector(&mut conn, system).await?.ok_or_else(|| DomainError::not_found("resource system"))?
        };
        if kind == ResourceSystemKind::Builtin {
            return Err(DomainError::invalid("system", "the built-in system needs no test"));
        }
        // A test that cannot run says why, as a failed test (the page shows it).
        let opened = match Opened::open(kind, &config, &sealed, service.secret_key.as_deref()) {
            Ok(opened) => opened,
            Err(why) => return Ok((false, why)),
        };
        let now = service.now();
        let answer = match opened {
            Opened::Scim(config, token) => scim::Scim { config: &config, token: &token, now }.probe().await,
            Opened::Ldap(config, password) => ldap::Directory { config: &config, password: &password }.probe().await,
            Opened::Webhook(config, secret) => {
                let id = format!("qm-ping-{:016x}", rand::random::<u64>());
                let event = serde_json::json!({"type": "ping", "id": id});
                let hook = webhook::Webhook { config: &config, secret: &secret, now };
                hook.send(&id, &event).await.map(|()| "the receiver answered 2xx to a signed ping".to_owned())
            }
        };
        Ok(match answer {
            Ok(said) => (true, said),
            Err(e @ (CallError::Unavailable { .. } | CallError::Transient(_) | CallError::Permanent(_))) => {
                (false, e.message().to_owned())
            }
        })
    }

    /// Put every failed piece of the system's work back in the queue (each as `retry_delivery`
    /// does it: audited, and an addition whose access has ended is not retried). Returns how
    /// many went back, and how many were left as they were.
    #[tracing::instrument(name = "retry_connector", skip_all, fields(actor = self.actor.id().0, system = system.0))]
    pub async fn retry_failed_of(&self, system: ResourceSystemId) -> DomainResult<(usize, usize)> {
        let failed = {
            let mut conn = self.service.db.pool().acquire().await?;
            catalog::connector(&mut conn, system).await?.ok_or_else(|| DomainError::not_found("resource system"))?;
            crate::store::assignments::failed_of_system(&mut conn, system, RETRY_AT_ONCE).await?
        };
        let (mut back, mut left) = (0, 0);
        for id in failed {
            match self.service.retry_delivery(self.actor, id).await {
                Ok(()) => back += 1,
                Err(DomainError::AlreadyDecided(_)) => left += 1,
                Err(e) => return Err(e),
            }
        }
        // Its failed lifecycle events (a webhook's) go back too, in one audited change.
        let service = self.service;
        let mut tx = service.db.begin().await?;
        let events = crate::store::events::retry_failed(&mut tx, system, service.now()).await?;
        if events > 0 {
            let event = AuditEvent::new(Some(self.actor.id()), "webhook.events_retried", "resource_system", system.0)
                .after(serde_json::json!({"events": events}));
            service.commit(tx, vec![event]).await?;
            back += usize::try_from(events).unwrap_or(usize::MAX);
        }
        Ok((back, left))
    }
}

/// A connected system's row as the connectors page shows it.
fn view(r: catalog::ConnectorHealth) -> ConnectorView {
    let (address, settings, editable) = describe(r.kind, &r.config);
    ConnectorView {
        id: r.id.0,
        name: r.name,
        kind: r.kind.as_str().to_owned(),
        address,
        settings,
        editable,
        resources: r.resources,
        queued: r.queued,
        failed: r.failed,
        last_success: r.last_success_at,
        last_error: r.last_error,
        last_error_at: r.last_error_at,
        paused_until: r.paused_until,
        drift: r.drift,
        drift_checked_at: r.drift_checked_at,
    }
}

/// The most waiting (and failed) pieces of work a system's page lists of each queue; the row's
/// counts say how many there are in all.
const WORK_SHOWN: i64 = 50;

/// The most failed entries one "retry failed" puts back (the rest: press it again).
const RETRY_AT_ONCE: i64 = 1000;

/// A system's address, its other settings in a line, and the settings its edit form shows,
/// from its config (never a secret).
fn describe(kind: ResourceSystemKind, config: &str) -> (String, String, EditableSettings) {
    let calls = |n: Option<u16>| n.unwrap_or(crate::connectors::DEFAULT_IN_FLIGHT);
    let at_once = |n: Option<u16>| format!("{} calls at once", calls(n));
    let unreadable = || {
        let edit =
            EditableSettings { max_in_flight: crate::connectors::DEFAULT_IN_FLIGHT, ..EditableSettings::default() };
        (String::new(), "unreadable settings".to_owned(), edit)
    };
    match kind {
        ResourceSystemKind::Scim => match serde_json::from_str::<scim::ScimConfig>(config) {
            Ok(c) => {
                let line = format!(
                    "{} · {}",
                    if c.create_users { "creates people" } else { "finds people" },
                    at_once(c.max_in_flight)
                );
                let edit = EditableSettings {
                    create_users: c.create_users,
                    max_in_flight: calls(c.max_in_flight),
                    ..EditableSettings::default()
                };
                (c.base_url, line, edit)
            }
            Err(_) => unreadable(),
        },
        ResourceSystemKind::Ldap => match serde_json::from_str::<ldap::LdapConfig>(config) {
            Ok(c) => {
                let attribute = match c.member_attribute {
                    ldap::MemberAttribute::Member => "member",
                    ldap::MemberAttribute::UniqueMember => "uniqueMember",
                };
                let line = format!(
                    "{}binds as {} · people under {} · {attribute} · {}",
                    if c.starttls { "StartTLS · " } else { "" },
                    c.bind_dn,
                    c.people_base,
                    at_once(c.max_in_flight)
                );
                let edit = EditableSettings {
                    starttls: c.starttls,
                    bind_dn: c.bind_dn,
                    people_base: c.people_base,
                    member_attribute: attribute.to_owned(),
                    max_in_flight: calls(c.max_in_flight),
                    ..EditableSettings::default()
                };
                (c.url, line, edit)
            }
            Err(_) => unreadable(),
        },
        ResourceSystemKind::Webhook => match serde_json::from_str::<webhook::WebhookConfig>(config) {
            Ok(c) => {
                let line = format!(
                    "signed JSON POST{} · {}",
                    if c.lifecycle_events { " · lifecycle events" } else { "" },
                    at_once(c.max_in_flight)
                );
                let edit = EditableSettings {
                    lifecycle_events: c.lifecycle_events,
                    max_in_flight: calls(c.max_in_flight),
                    ..EditableSettings::default()
                };
                (c.url, line, edit)
            }
            Err(_) => unreadable(),
        },
        ResourceSystemKind::Builtin => (String::new(), String::new(), EditableSettings::default()),
    }
}
