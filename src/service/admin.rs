//! Managing catalogs, resources, packages, policies and who manages them. Each operation is a
//! method of the capability handle it needs ([`super::capability`]): the handle was authorized
//! for one catalog, and the operation checks that what it touches is in that catalog. Every
//! change writes its audit event in its transaction.

use serde_json::json;

use super::capability::{Administrator, CatalogCreator, CatalogOwner, InCatalog, MayManagePackages};
use crate::domain::audit::AuditEvent;
use crate::domain::ids::*;
use crate::domain::model::{AccessPackage, Catalog, Role};
use crate::domain::policy::Policy;
use crate::domain::{DomainError, DomainResult};
use crate::store::{catalog, directory, is_unique_violation, to_ms};

/// Something a package cannot be held together with.
#[derive(Clone, Copy, Debug)]
pub enum Incompatible {
    Package(PackageId),
    Group(GroupId),
}

impl Incompatible {
    /// As an audit event records it.
    fn as_json(self) -> serde_json::Value {
        match self {
            Incompatible::Package(p) => json!({"package": p}),
            Incompatible::Group(g) => json!({"group": g}),
        }
    }
}

fn clean_name(field: &str, name: &str) -> DomainResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::invalid(field, "a name is required"));
    }
    if name.chars().count() > 200 {
        return Err(DomainError::invalid(field, "at most 200 characters"));
    }
    Ok(name.to_owned())
}

/// Longest description of a catalog or package, in characters (as the builder takes them).
const MAX_DESCRIPTION: usize = 2000;

fn clean_description(description: &str) -> DomainResult<&str> {
    let description = description.trim();
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(DomainError::invalid("description", format!("at most {MAX_DESCRIPTION} characters")));
    }
    Ok(description)
}

/// A description as changed: checked when it differs from `before` (one kept from before the
/// limit stays as it is).
fn changed_description(before: &str, after: String) -> DomainResult<String> {
    if after == before {
        Ok(after)
    } else {
        Ok(clean_description(&after)?.to_owned())
    }
}

fn unique(err: sqlx::Error, what: &str) -> DomainError {
    if is_unique_violation(&err) {
        DomainError::Conflict(format!("{what} with that name already exists"))
    } else {
        err.into()
    }
}

impl CatalogCreator<'_> {
    /// Create a catalog; its creator becomes its owner.
    #[tracing::instrument(name = "create_catalog", skip_all, fields(actor = self.actor.id().0))]
    pub async fn create_catalog(
        &self,
        name: &str,
        description: &str,
        externally_visible: bool,
    ) -> DomainResult<CatalogId> {
        let mut tx = self.service.db.begin().await?;
        let (id, event) = self.insert_catalog_in(&mut tx, name, description, externally_visible).await?;
        self.service.commit(tx, vec![event]).await?;
        Ok(id)
    }

    /// [`Self::create_catalog`] inside the caller's transaction.
    pub(super) async fn insert_catalog_in(
        &self,
        tx: &mut crate::store::Tx,
        name: &str,
        description: &str,
        externally_visible: bool,
    ) -> DomainResult<(CatalogId, AuditEvent)> {
        let (service, actor) = (self.service, self.actor);
        let name = clean_name("name", name)?;
        let description = clean_description(description)?;
        let now = service.now();
        let id = catalog::insert_catalog(tx, &name, description, externally_visible, to_ms(now))
            .await
            .map_err(|e| unique(e, "a catalog"))?;
        directory::grant_role(tx, actor.id(), Role::CatalogOwner, Some(id), to_ms(now)).await?;
        let event = AuditEvent::new(Some(actor.id()), "catalog.created", "catalog", id.0)
            .after(json!({"name": name, "description": description, "externally_visible": externally_visible}));
        Ok((id, event))
    }
}

impl Administrator<'_> {
    /// Add a SCIM 2.0 target as a resource system: its base URL, whether it may create people
    /// it does not know, and its bearer token, sealed with the operator's key (never stored,
    /// logged or audited in the clear).
    #[tracing::instrument(name = "add_scim_system", skip_all, fields(actor = self.actor.id().0))]
    pub async fn add_scim_system(
        &self,
        name: &str,
        base_url: &str,
        token: &str,
        create_users: bool,
    ) -> DomainResult<ResourceSystemId> {
        let config = crate::connectors::scim::ScimConfig::checked(base_url, create_users)
            .map_err(|m| DomainError::invalid("base_url", m))?;
        if token.trim().is_empty() || token.len() > 4096 {
            return Err(DomainError::invalid("token", "the bearer token the target gave (up to 4096 characters)"));
        }
        let sealed = self.seal(token.trim(), &config.seal_context(), "token")?;
        let config = serde_json::to_value(&config).map_err(|e| DomainError::Internal(e.to_string()))?;
        self.insert_connector(name, crate::domain::model::ResourceSystemKind::Scim, config, &sealed).await
    }

    /// Add a webhook receiver as a resource system: its URL and the shared secret its calls
    /// are signed with (at least 16 characters), sealed with the operator's key (never stored,
    /// logged or audited in the clear). Its resources are bound with `add_resource_as`.
    #[tracing::instrument(name = "add_webhook_system", skip_all, fields(actor = self.actor.id().0))]
    pub async fn add_webhook_system(
        &self,
        name: &str,
        url: &str,
        secret: &str,
        lifecycle_events: bool,
    ) -> DomainResult<ResourceSystemId> {
        let mut config =
            crate::connectors::webhook::WebhookConfig::checked(url).map_err(|m| DomainError::invalid("url", m))?;
        config.lifecycle_events = lifecycle_events;
        let secret = secret.trim();
        if secret.chars().count() < 16 || secret.len() > 4096 {
            return Err(DomainError::invalid("secret", SIGNING_SECRET));
        }
        let sealed = self.seal(secret, &config.seal_context(), "secret")?;
        let config = serde_json::to_value(&config).map_err(|e| DomainError::Internal(e.to_string()))?;
        self.insert_connector(name, crate::domain::model::ResourceSystemKind::Webhook, config, &sealed).await
    }

    /// Add an LDAP directory as a resource system: its URL (ldaps://, or ldap:// with
    /// StartTLS; plain only to this machine), the DN and password it binds with (sealed with
    /// the operator's key), where people are found by `mail`, and which attribute lists a
    /// group's members. Its groups are bound by DN with `add_resource_as`.
    #[tracing::instrument(name = "add_ldap_system", skip_all, fields(actor = self.actor.id().0))]
    pub async fn add_ldap_system(
        &self,
        name: &str,
        settings: crate::connectors::ldap::LdapConfig,
        password: &str,
    ) -> DomainResult<ResourceSystemId> {
        let config = ldap_settings(settings)?;
        if password.is_empty() || password.len() > 4096 {
            return Err(DomainError::invalid("password", "the bind password (up to 4096 characters)"));
        }
        let sealed = self.seal(password, &config.seal_context(), "password")?;
        let config = serde_json::to_value(&config).map_err(|e| DomainError::Internal(e.to_string()))?;
        self.insert_connector(name, crate::domain::model::ResourceSystemKind::Ldap, config, &sealed).await
    }

    /// A secret sealed with the operator's key for `context` (refused, naming `field`, when no
    /// key is set).
    fn seal(&self, secret: &str, context: &str, field: &'static str) -> DomainResult<String> {
        let key = self.service.secret_key.as_ref().ok_or_else(|| {
            DomainError::invalid(field, "set QM_SECRET_KEY (or QM_SECRET_KEY_FILE) so connector secrets can be stored")
        })?;
        key.seal(secret, context).map_err(DomainError::Internal)
    }

    /// The connected system stored and audited (its secret as "(sealed)").
    async fn insert_connector(
        &self,
        name: &str,
        kind: crate::domain::model::ResourceSystemKind,
        config: serde_json::Value,
        sealed: &str,
    ) -> DomainResult<ResourceSystemId> {
        let service = self.service;
        let name = clean_name("name", name)?;
        let now = service.now();
        let mut tx = service.db.begin().await?;
        let id = catalog::insert_connector(&mut tx, &name, kind, &config.to_string(), sealed, to_ms(now))
            .await
            .map_err(|e| unique(e, "a resource system"))?;
        let event = AuditEvent::new(Some(self.actor.id()), "resource_system.added", "resource_system", id.0)
            .after(json!({"name": name, "kind": kind.as_str(), "config": config, "secret": "(sealed)"}));
        service.commit(tx, vec![event]).await?;
        Ok(id)
    }

    /// Change a SCIM system's settings: its base URL, whether it creates people, how many
    /// calls this instance makes to it at once, and (optionally) a new token. A token is sealed
    /// for one address, so a new base URL needs the token again, and the target's ids kept for
    /// people are forgotten (a removal finds them by email there). Refused when another change
    /// is saved between this one's read and its write. Audited without the token.
    #[tracing::instrument(name = "edit_scim_system", skip_all, fields(actor = self.actor.id().0, system = system.0))]
    pub async fn edit_scim_system(
        &self,
        system: ResourceSystemId,
        base_url: &str,
        token: Option<&str>,
        create_users: bool,
        max_in_flight: u16,
        expected: Option<&str>,
    ) -> DomainResult<()> {
        use crate::connectors::scim::ScimConfig;
        let mut config =
            ScimConfig::checked(base_url, create_users).map_err(|m| DomainError::invalid("base_url", m))?;
        config.max_in_flight = Some(calls_at_once(max_in_flight)?);
        let fresh = fresh_secret(token, "token", "the bearer token the target gave (up to 4096 characters)")?;
        let sealed = fresh.map(|t| self.seal(t, &config.seal_context(), "token")).transpose()?;
        let changed = Changed {
            system,
            kind: crate::domain::model::ResourceSystemKind::Scim,
            secret_field: "token",
            address: "base URL",
        };
        let keep = |before: &ScimConfig, new| ScimConfig { removal_threshold: before.removal_threshold, ..new };
        let url = |c: &ScimConfig| c.base_url.clone();
        self.save_connector(changed, (config, keep), (url, url), sealed, expected).await
    }

    /// Change an LDAP directory's settings (as `add_ldap_system` takes them) and (optionally)
    /// its bind password, needed with a new URL or bind DN: the password is sealed for both.
    /// Guarded and audited as a SCIM system's change is.
    #[tracing::instrument(name = "edit_ldap_system", skip_all, fields(actor = self.actor.id().0, system = system.0))]
    pub async fn edit_ldap_system(
        &self,
        system: ResourceSystemId,
        settings: crate::connectors::ldap::LdapConfig,
        password: Option<&str>,
        expected: Option<&str>,
    ) -> DomainResult<()> {
        let mut config = ldap_settings(settings)?;
        config.max_in_flight =
            Some(calls_at_once(config.max_in_flight.unwrap_or(crate::connectors::DEFAULT_IN_FLIGHT))?);
        let fresh = fresh_secret(password, "password", "the bind password (up to 4096 characters)")?;
        let sealed = fresh.map(|p| self.seal(p, &config.seal_context(), "password")).transpose()?;
        let changed = Changed {
            system,
            kind: crate::domain::model::ResourceSystemKind::Ldap,
            secret_field: "password",
            address: "URL or bind DN",
        };
        use crate::connectors::ldap::LdapConfig;
        // The placeholder its groups hold stays the same one (it was derived from the people
        // base when not set), and the groups' member attribute is fixed when the directory is
        // added: with another, a removal would ask for a value that is not there, and find
        // nothing to take away.
        let keep = |before: &LdapConfig, new: LdapConfig| LdapConfig {
            placeholder: new.placeholder.or_else(|| Some(before.placeholder())),
            removal_threshold: new.removal_threshold.or(before.removal_threshold),
            member_attribute: before.member_attribute,
            ..new
        };
        let url = |c: &LdapConfig| c.url.clone();
        self.save_connector(changed, (config, keep), (LdapConfig::seal_context, url), sealed, expected).await
    }

    /// Change a webhook system's settings: its URL, whether it hears request lifecycle events,
    /// how many calls at once, and (optionally) a new signing secret, needed with a new URL.
    /// Guarded and audited as a SCIM system's change is.
    #[tracing::instrument(name = "edit_webhook_system", skip_all, fields(actor = self.actor.id().0, system = system.0))]
    pub async fn edit_webhook_system(
        &self,
        system: ResourceSystemId,
        url: &str,
        secret: Option<&str>,
        lifecycle_events: bool,
        max_in_flight: u16,
        expected: Option<&str>,
    ) -> DomainResult<()> {
        use crate::connectors::webhook::WebhookConfig;
        let mut config = WebhookConfig::checked(url).map_err(|m| DomainError::invalid("url", m))?;
        config.max_in_flight = Some(calls_at_once(max_in_flight)?);
        config.lifecycle_events = lifecycle_events;
        let fresh = fresh_secret(secret, "secret", SIGNING_SECRET)?;
        if fresh.is_some_and(|s| s.chars().count() < 16) {
            return Err(DomainError::invalid("secret", SIGNING_SECRET));
        }
        let sealed = fresh.map(|s| self.seal(s, &config.seal_context(), "secret")).transpose()?;
        let changed = Changed {
            system,
            kind: crate::domain::model::ResourceSystemKind::Webhook,
            secret_field: "secret",
            address: "URL",
        };
        let keep = |_: &WebhookConfig, new| new;
        let url = |c: &WebhookConfig| c.url.clone();
        self.save_connector(changed, (config, keep), (url, url), sealed, expected).await
    }

    /// Save a connected system's new settings in one transaction: the new secret (sealed by
    /// the caller), or the one stored when the address is unchanged (a secret is sealed for
    /// its address, so a new one needs it again). A new address forgets the target's ids kept
    /// for people. Refused when another change was saved since this one read the system.
    async fn save_connector<C>(
        &self,
        changed: Changed,
        (config, keep): (C, impl FnOnce(&C, C) -> C),
        (sealed_for, target): (impl Fn(&C) -> String, impl Fn(&C) -> String),
        sealed: Option<String>,
        expected: Option<&str>,
    ) -> DomainResult<()>
    where
        C: serde::Serialize + serde::de::DeserializeOwned,
    {
        let Changed { system, kind, secret_field, address: address_name } = changed;
        let service = self.service;
        let mut tx = service.db.begin().await?;
        let Some((stored_kind, before_text, before_secret)) = catalog::connector(&mut tx, system).await? else {
            return Err(DomainError::not_found("resource system"));
        };
        if stored_kind != kind {
            return Err(DomainError::invalid("system", format!("this is not a {} system", kind.as_str())));
        }
        // Made from the settings the caller read (the API's `If-Match`), or refused.
        if expected.is_some_and(|tag| tag != settings_tag(&before_text, &before_secret)) {
            return Err(DomainError::Stale(
                "this system's settings changed since you read them: read them again".into(),
            ));
        }
        let before: C = serde_json::from_str(&before_text)
            .map_err(|_| DomainError::Internal(format!("resource system {} has unreadable settings", system.0)))?;
        // Settings the form does not show stay as they were.
        let config = keep(&before, config);
        let moved = sealed_for(&before) != sealed_for(&config);
        let elsewhere = target(&before) != target(&config);
        let replaced = sealed.is_some();
        let secret = match sealed {
            Some(sealed) => sealed,
            None if !moved => before_secret.clone(),
            None => {
                return Err(DomainError::invalid(
                    secret_field,
                    format!(
                    "a new {address_name} needs the {secret_field} again: the one stored is sealed for the old address"
                ),
                ))
            }
        };
        let config_text = serde_json::to_string(&config).map_err(|e| DomainError::Internal(e.to_string()))?;
        // The target's ids for people belong to the target: another one does not know them.
        if elsewhere {
            catalog::forget_connector_accounts(&mut tx, system).await?;
        }
        if !catalog::update_connector(&mut tx, system, (&before_text, &before_secret), (&config_text, &secret)).await? {
            let meanwhile = "someone changed this system meanwhile; open it again to see their change";
            // Made from a tag the caller read (the API): the tag no longer matches.
            return Err(if expected.is_some() {
                DomainError::Stale(meanwhile.into())
            } else {
                DomainError::AlreadyDecided(meanwhile.into())
            });
        }
        let event = AuditEvent::new(Some(self.actor.id()), "resource_system.changed", "resource_system", system.0)
            .before(json!({"config": before}))
            .after(json!({
                "config": config,
                secret_field: if replaced { "(replaced, sealed)" } else { "(kept)" },
                "accounts_forgotten": elsewhere,
            }));
        service.commit(tx, vec![event]).await
    }

    /// Give someone a global role (administrator, catalog creator).
    #[tracing::instrument(name = "grant_global_role", skip_all, fields(actor = self.actor.id().0, user = user.0, ?role))]
    pub async fn grant_role(&self, user: UserId, role: Role) -> DomainResult<()> {
        if !matches!(role, Role::Administrator | Role::CatalogCreator) {
            return Err(DomainError::invalid("role", "this role is held for one catalog"));
        }
        let mut tx = self.service.db.begin().await?;
        // The person's lock, which SCIM holds while it checks they are no administrator
        // before changing them: a grant and such a change do not pass each other.
        self.service.db.lock_user(&mut tx, user).await?;
        grant(self.service, tx, self.actor, user, role, None).await
    }

    /// Take a global role back. There is always an active administrator left.
    #[tracing::instrument(name = "revoke_global_role", skip_all, fields(actor = self.actor.id().0, user = user.0, ?role))]
    pub async fn revoke_role(&self, user: UserId, role: Role) -> DomainResult<()> {
        if !matches!(role, Role::Administrator | Role::CatalogCreator) {
            return Err(DomainError::invalid("role", "this role is held for one catalog"));
        }
        let (service, actor) = (self.service, self.actor);
        let mut tx = service.db.begin().await?;
        if !directory::revoke_global_role(&mut tx, user, role).await? {
            return Err(DomainError::not_found("role"));
        }
        if role == Role::Administrator && directory::count_global_holders(&mut tx, role).await? == 0 {
            return Err(DomainError::Conflict(
                "someone must stay an administrator: make another person one first".into(),
            ));
        }
        service.checkpoint("role.revoking").await;
        let event = AuditEvent::new(Some(actor.id()), "role.revoked", "user", user.0)
            .before(json!({"role": role.as_str(), "catalog": null}));
        service.commit(tx, vec![event]).await
    }
}

impl CatalogOwner<'_> {
    #[tracing::instrument(name = "update_catalog", skip_all, fields(actor = self.actor.id().0, catalog = self.catalog.0))]
    pub async fn update_catalog(&self, changed: Catalog) -> DomainResult<()> {
        let mut tx = self.service.db.begin().await?;
        self.lock(&mut tx).await?;
        let event = self.update_catalog_in(&mut tx, changed).await?;
        self.service.commit(tx, vec![event]).await
    }

    /// [`Self::update_catalog`] inside the caller's transaction, which holds the catalog's lock.
    pub(super) async fn update_catalog_in(
        &self,
        tx: &mut crate::store::Tx,
        changed: Catalog,
    ) -> DomainResult<AuditEvent> {
        self.owns(changed.id, "catalog")?;
        let name = clean_name("name", &changed.name)?;
        let before = catalog::catalog(tx, changed.id).await?.ok_or_else(|| DomainError::not_found("catalog"))?;
        let description = changed_description(&before.description, changed.description)?;
        let after = Catalog { name, description, ..changed };
        // Guarded by the version the change was made from: the lock held keeps the check and
        // the write together, and the update's own guard says the same in SQL.
        let stale = || DomainError::Stale("someone else changed this catalog meanwhile; reload and try again".into());
        if after.version != before.version {
            return Err(stale());
        }
        if !catalog::update_catalog(tx, &after).await.map_err(|e| unique(e, "a catalog"))? {
            return Err(stale());
        }
        let after = Catalog { version: after.version + 1, ..after };
        Ok(AuditEvent::new(Some(self.actor.id()), "catalog.updated", "catalog", after.id.0)
            .before(json!(before))
            .after(json!(after)))
    }

    /// Give someone a role in this catalog (owner, package manager, assignment manager, reader).
    #[tracing::instrument(name = "grant_catalog_role", skip_all, fields(actor = self.actor.id().0, user = user.0, ?role, catalog = self.catalog.0))]
    pub async fn grant_role(&self, user: UserId, role: Role) -> DomainResult<()> {
        if matches!(role, Role::Administrator | Role::CatalogCreator) {
            return Err(DomainError::invalid("role", "this role is global, not per catalog"));
        }
        let mut tx = self.service.db.begin().await?;
        self.lock(&mut tx).await?;
        grant(self.service, tx, self.actor, user, role, Some(self.catalog)).await
    }

    /// Add a resource (with its roles) from a resource system to this catalog.
    #[tracing::instrument(name = "add_resource", skip_all, fields(actor = self.actor.id().0, catalog = self.catalog.0, system = system.0))]
    pub async fn add_resource(
        &self,
        system: ResourceSystemId,
        name: &str,
        description: &str,
        roles: &[&str],
    ) -> DomainResult<Vec<ResourceRoleId>> {
        self.add_resource_in(system, None, name, description, roles).await
    }

    /// [`Self::add_resource`] naming the resource's id in its system. A group of a connected
    /// system (SCIM) is bound by an administrator only — anyone who may bind a target's group
    /// could give themselves that group — with exactly one role (one membership to give and
    /// take back) and the group's id as the target gave it.
    #[tracing::instrument(name = "add_resource", skip_all, fields(actor = self.actor.id().0, catalog = self.catalog.0, system = system.0))]
    pub async fn add_resource_as(
        &self,
        system: ResourceSystemId,
        external_id: &str,
        name: &str,
        description: &str,
        roles: &[&str],
    ) -> DomainResult<Vec<ResourceRoleId>> {
        self.add_resource_in(system, Some(external_id), name, description, roles).await
    }

    /// Both: `external_id` given, or (`None`) made from the name, which only the built-in
    /// system accepts (a connected system's group has the id its system gave it).
    async fn add_resource_in(
        &self,
        system: ResourceSystemId,
        external_id: Option<&str>,
        name: &str,
        description: &str,
        roles: &[&str],
    ) -> DomainResult<Vec<ResourceRoleId>> {
        let mut tx = self.service.db.begin().await?;
        self.lock(&mut tx).await?;
        let (ids, event) = self.insert_resource_in(&mut tx, system, external_id, name, description, roles).await?;
        self.service.commit(tx, vec![event]).await?;
        Ok(ids)
    }

    /// [`Self::add_resource_in`] inside the caller's transaction, which holds the catalog's lock.
    pub(super) async fn insert_resource_in(
        &self,
        tx: &mut crate::store::Tx,
        system: ResourceSystemId,
        external_id: Option<&str>,
        name: &str,
        description: &str,
        roles: &[&str],
    ) -> DomainResult<(Vec<ResourceRoleId>, AuditEvent)> {
        let (service, actor, catalog_id) = (self.service, self.actor, self.catalog);
        let name = clean_name("name", name)?;
        let derived = name.to_lowercase().replace(' ', "-");
        let external_id_was_derived = external_id.is_none();
        let external_id = external_id.map_or(derived.as_str(), str::trim);
        if external_id.is_empty() || external_id.chars().count() > 200 {
            return Err(DomainError::invalid("external_id", "the resource's id in its system (1 to 200 characters)"));
        }
        if roles.is_empty() || roles.iter().any(|r| r.trim().is_empty()) {
            return Err(DomainError::invalid("roles", "name at least one role (for example Member)"));
        }
        if matches!(external_id, "." | "..") {
            return Err(DomainError::invalid("external_id", "not a group's id"));
        }
        let now = service.now();
        let kind = catalog::resource_system_kind(tx, system)
            .await?
            .ok_or_else(|| DomainError::not_found("resource system"))?;
        if kind != crate::domain::model::ResourceSystemKind::Builtin {
            if external_id_was_derived {
                return Err(DomainError::invalid(
                    "system",
                    "a connected system's group is added by its id in that system",
                ));
            }
            if !actor.can(crate::domain::authz::Permission::Administer) {
                return Err(DomainError::forbidden("only administrators add the groups of a connected system"));
            }
            if roles.len() != 1 {
                return Err(DomainError::invalid("roles", "a connected system's group has one role (its membership)"));
            }
        }
        let ids = catalog::insert_resource_as(
            tx,
            system,
            catalog_id,
            external_id,
            &name,
            description.trim(),
            roles,
            to_ms(now),
        )
        .await
        .map_err(|e| unique(e, "a resource"))?;
        let event = AuditEvent::new(Some(actor.id()), "resource.added", "catalog", catalog_id.0)
            .after(json!({"resource": name, "system": system, "external_id": external_id, "roles": roles}));
        Ok((ids, event))
    }
}

/// A role granted, audited (the caller's handle decided who may grant which role where).
async fn grant(
    service: &super::Service,
    mut tx: crate::store::Tx,
    actor: &crate::domain::authz::Actor,
    user: UserId,
    role: Role,
    scope: Option<CatalogId>,
) -> DomainResult<()> {
    let now = service.now();
    directory::user(&mut tx, user).await?.ok_or_else(|| DomainError::not_found("person"))?;
    directory::grant_role(&mut tx, user, role, scope, to_ms(now)).await?;
    let event = AuditEvent::new(Some(actor.id()), "role.granted", "user", user.0)
        .after(json!({"role": role.as_str(), "catalog": scope}));
    service.commit(tx, vec![event]).await
}

impl<S: MayManagePackages> InCatalog<'_, S> {
    /// Create an access package in this catalog, granting resource roles of this catalog.
    #[tracing::instrument(name = "create_package", skip_all, fields(actor = self.actor.id().0, catalog = self.catalog.0))]
    pub async fn create_package(
        &self,
        name: &str,
        description: &str,
        roles: &[ResourceRoleId],
    ) -> DomainResult<PackageId> {
        let mut tx = self.service.db.begin().await?;
        self.lock(&mut tx).await?;
        let (id, event) = self.insert_package_in(&mut tx, name, description, roles).await?;
        self.service.commit(tx, vec![event]).await?;
        Ok(id)
    }

    /// [`Self::create_package`] inside the caller's transaction, which holds the catalog's lock.
    pub(super) async fn insert_package_in(
        &self,
        tx: &mut crate::store::Tx,
        name: &str,
        description: &str,
        roles: &[ResourceRoleId],
    ) -> DomainResult<(PackageId, AuditEvent)> {
        let (service, actor, catalog_id) = (self.service, self.actor, self.catalog);
        let name = clean_name("name", name)?;
        let now = service.now();
        if roles.is_empty() {
            return Err(DomainError::invalid("roles", "pick at least one resource role"));
        }
        // A role named twice is granted once.
        let mut roles = roles.to_vec();
        roles.sort_unstable();
        roles.dedup();
        let roles = roles.as_slice();
        let held = catalog::role_catalogs(tx, roles).await?;
        if let Some(stray) = roles.iter().find(|r| !held.iter().any(|(id, c)| id == *r && *c == catalog_id)) {
            return Err(DomainError::invalid("roles", format!("resource role {stray} is not in this catalog")));
        }
        let id = catalog::insert_package(tx, catalog_id, &name, clean_description(description)?, roles, to_ms(now))
            .await
            .map_err(|e| unique(e, "a package in this catalog"))?;
        let event = AuditEvent::new(Some(actor.id()), "package.created", "package", id.0)
            .after(json!({"catalog": catalog_id, "name": name, "roles": roles}));
        Ok((id, event))
    }

    /// Rename, hide, disable a package. `changed.version` must be the version read.
    #[tracing::instrument(name = "update_package", skip_all, fields(actor = self.actor.id().0, package = changed.id.0))]
    pub async fn update_package(&self, changed: AccessPackage) -> DomainResult<()> {
        let mut tx = self.service.db.begin().await?;
        self.lock(&mut tx).await?;
        let event = self.update_package_in(&mut tx, changed).await?;
        self.service.commit(tx, vec![event]).await
    }

    /// [`Self::update_package`] inside the caller's transaction, which holds the catalog's lock.
    pub(super) async fn update_package_in(
        &self,
        tx: &mut crate::store::Tx,
        changed: AccessPackage,
    ) -> DomainResult<AuditEvent> {
        let (service, actor) = (self.service, self.actor);
        let now = service.now();
        let before = catalog::package(tx, changed.id).await?.ok_or_else(|| DomainError::not_found("access package"))?;
        self.owns(before.catalog_id, "access package")?;
        if changed.catalog_id != before.catalog_id {
            return Err(DomainError::invalid("catalog", "a package stays in its catalog"));
        }
        let description = changed_description(&before.description, changed.description)?;
        let after = AccessPackage { name: clean_name("name", &changed.name)?, description, ..changed };
        if !catalog::update_package(tx, &after, to_ms(now)).await.map_err(|e| unique(e, "a package in this catalog"))? {
            return Err(DomainError::Stale("someone else changed this package meanwhile; reload and try again".into()));
        }
        Ok(AuditEvent::new(Some(actor.id()), "package.updated", "package", after.id.0)
            .before(json!(before))
            .after(json!(after)))
    }

    /// Change the resource roles a package grants, inside the caller's transaction (which holds
    /// the catalog's lock), if the package is still at `version` (it moves to the next). The
    /// people holding it are brought in line afterwards, a batch at a time
    /// ([`Service::sync_package_roles`]): the new roles added, the dropped ones taken back unless
    /// another of their assignments holds them. `None` when the roles are the same.
    pub(super) async fn change_roles_in(
        &self,
        tx: &mut crate::store::Tx,
        package: PackageId,
        version: i64,
        roles: &[ResourceRoleId],
    ) -> DomainResult<Option<AuditEvent>> {
        let (service, actor, catalog_id) = (self.service, self.actor, self.catalog);
        let now = service.now();
        let pkg = catalog::package(tx, package).await?.ok_or_else(|| DomainError::not_found("access package"))?;
        self.owns(pkg.catalog_id, "access package")?;
        if roles.is_empty() {
            return Err(DomainError::invalid("roles", "pick at least one resource role"));
        }
        let held = catalog::role_catalogs(tx, roles).await?;
        if let Some(stray) = roles.iter().find(|r| !held.iter().any(|(id, c)| id == *r && *c == catalog_id)) {
            return Err(DomainError::invalid("roles", format!("resource role {stray} is not in this catalog")));
        }
        let (added, removed) = catalog::set_package_roles(tx, package, roles).await?;
        if added.is_empty() && removed.is_empty() {
            return Ok(None);
        }
        if !catalog::bump_package_version(tx, package, version, to_ms(now)).await? {
            return Err(DomainError::Stale("someone else changed this package meanwhile; reload and try again".into()));
        }
        crate::store::role_sync::request(tx, package, now).await?;
        Ok(Some(
            AuditEvent::new(Some(actor.id()), "package.roles_changed", "package", package.0)
                .after(json!({"added": added, "removed": removed})),
        ))
    }

    /// Declare that a package cannot be held together with another package or a group.
    #[tracing::instrument(name = "add_incompatibility", skip_all, fields(actor = self.actor.id().0, package = package.0))]
    pub async fn add_incompatibility(&self, package: PackageId, other: Incompatible) -> DomainResult<()> {
        let mut tx = self.service.db.begin().await?;
        self.lock(&mut tx).await?;
        let event = self.add_incompatibility_in(&mut tx, package, other).await?;
        self.service.commit(tx, vec![event]).await
    }

    /// [`Self::add_incompatibility`] inside the caller's transaction, which holds the catalog's lock.
    pub(super) async fn add_incompatibility_in(
        &self,
        tx: &mut crate::store::Tx,
        package: PackageId,
        other: Incompatible,
    ) -> DomainResult<AuditEvent> {
        self.may_bind(tx, package, other).await?;
        match other {
            Incompatible::Package(p) if p == package => {
                return Err(DomainError::invalid("incompatible", "a package cannot conflict with itself"))
            }
            Incompatible::Package(p) => {
                catalog::add_incompatible_package(tx, package, p).await.map_err(|e| unique(e, "this rule"))?
            }
            Incompatible::Group(g) => catalog::add_incompatible_group(tx, package, g).await?,
        }
        Ok(AuditEvent::new(Some(self.actor.id()), "package.incompatibility_added", "package", package.0)
            .after(other.as_json()))
    }

    /// The package is in this catalog, and a rule's other package is one the actor manages too:
    /// a rule binds both packages (else the other is not there for them, like an unknown one).
    async fn may_bind(&self, tx: &mut crate::store::Tx, package: PackageId, other: Incompatible) -> DomainResult<()> {
        let pkg = catalog::package(tx, package).await?.ok_or_else(|| DomainError::not_found("access package"))?;
        self.owns(pkg.catalog_id, "access package")?;
        if let Incompatible::Package(p) = other {
            let other = catalog::package(tx, p).await?.ok_or_else(|| DomainError::not_found("access package"))?;
            if self.service.package_manager(self.actor, other.catalog_id).is_err() {
                return Err(DomainError::not_found("access package"));
            }
        }
        Ok(())
    }

    /// Take back a rule that a package cannot be held with another package or a group, inside
    /// the caller's transaction, which holds the catalog's lock. A rule binding another
    /// catalog's package needs its package manager too (as adding it did).
    pub(super) async fn remove_incompatibility_in(
        &self,
        tx: &mut crate::store::Tx,
        package: PackageId,
        other: Incompatible,
    ) -> DomainResult<AuditEvent> {
        self.may_bind(tx, package, other).await?;
        let removed = match other {
            Incompatible::Package(p) => catalog::remove_incompatible_package(tx, package, p).await?,
            Incompatible::Group(g) => catalog::remove_incompatible_group(tx, package, g).await?,
        };
        if !removed {
            return Err(DomainError::Conflict("that rule was already taken back".into()));
        }
        Ok(AuditEvent::new(Some(self.actor.id()), "package.incompatibility_removed", "package", package.0)
            .before(other.as_json()))
    }

    #[tracing::instrument(name = "create_policy", skip_all, fields(actor = self.actor.id().0, package = policy.package_id.0))]
    pub async fn create_policy(&self, policy: Policy) -> DomainResult<PolicyId> {
        policy.validate()?;
        let mut tx = self.service.db.begin().await?;
        self.lock(&mut tx).await?;
        super::drafts::check_references(&mut tx, &policy, &[]).await?;
        let (id, event) = self.insert_policy_in(&mut tx, policy).await?;
        self.service.commit(tx, vec![event]).await?;
        Ok(id)
    }

    /// [`Self::create_policy`] inside the caller's transaction, which holds the catalog's
    /// lock; the caller has validated the policy.
    pub(super) async fn insert_policy_in(
        &self,
        tx: &mut crate::store::Tx,
        policy: Policy,
    ) -> DomainResult<(PolicyId, AuditEvent)> {
        let (service, actor) = (self.service, self.actor);
        let now = service.now();
        let pkg =
            catalog::package(tx, policy.package_id).await?.ok_or_else(|| DomainError::not_found("access package"))?;
        self.owns(pkg.catalog_id, "access package")?;
        // Automatic assignment is for administrators to set.
        if policy.auto_rule.is_some() {
            service.administrator(actor)?;
        }
        let id = catalog::insert_policy(tx, &policy, to_ms(now)).await?;
        let event =
            AuditEvent::new(Some(actor.id()), "policy.created", "policy", id.0).after(json!(Policy { id, ..policy }));
        Ok((id, event))
    }

    /// Replace a policy's settings. Requests already approved are untouched; pending ones keep
    /// the stages they were filed under. `changed.version` must be the version read.
    #[tracing::instrument(name = "update_policy", skip_all, fields(actor = self.actor.id().0, policy = changed.id.0))]
    pub async fn update_policy(&self, changed: Policy) -> DomainResult<()> {
        changed.validate()?;
        let mut tx = self.service.db.begin().await?;
        self.lock(&mut tx).await?;
        super::drafts::check_references(&mut tx, &changed, &[]).await?;
        let event = self.update_policy_in(&mut tx, changed).await?;
        self.service.commit(tx, vec![event]).await
    }

    /// [`Self::update_policy`] inside the caller's transaction, which holds the catalog's
    /// lock; the caller has validated the policy.
    pub(super) async fn update_policy_in(
        &self,
        tx: &mut crate::store::Tx,
        changed: Policy,
    ) -> DomainResult<AuditEvent> {
        let (service, actor) = (self.service, self.actor);
        let now = service.now();
        let before = catalog::policy(tx, changed.id).await?.ok_or_else(|| DomainError::not_found("policy"))?;
        if before.auto_rule != changed.auto_rule {
            service.administrator(actor)?;
        }
        let pkg =
            catalog::package(tx, before.package_id).await?.ok_or_else(|| DomainError::not_found("access package"))?;
        self.owns(pkg.catalog_id, "policy")?;
        if changed.package_id != before.package_id {
            return Err(DomainError::invalid("package", "a policy stays with its package"));
        }
        if !catalog::update_policy(tx, &changed, to_ms(now)).await? {
            return Err(DomainError::Stale("someone else changed this policy meanwhile; reload and try again".into()));
        }
        Ok(AuditEvent::new(Some(actor.id()), "policy.updated", "policy", changed.id.0)
            .before(json!(before))
            .after(json!(changed)))
    }
}

/// Which system a settings change is for, its kind, and what its secret is called.
struct Changed {
    system: ResourceSystemId,
    kind: crate::domain::model::ResourceSystemKind,
    secret_field: &'static str,
    /// What its address is called ("base URL").
    address: &'static str,
}

const SIGNING_SECRET: &str = "a shared secret of 16 to 4096 characters, to sign the calls";

/// Calls at once an administrator may set for a system.
fn calls_at_once(n: u16) -> DomainResult<u16> {
    use crate::connectors::MAX_IN_FLIGHT;
    if !(1..=MAX_IN_FLIGHT).contains(&n) {
        return Err(DomainError::invalid("max_in_flight", format!("between 1 and {MAX_IN_FLIGHT} calls at once")));
    }
    Ok(n)
}

/// A new secret when one was typed (blank: keep the stored one), at most 4096 characters.
fn fresh_secret<'a>(given: Option<&'a str>, field: &'static str, what: &str) -> DomainResult<Option<&'a str>> {
    let given = given.map(str::trim).filter(|t| !t.is_empty());
    if given.is_some_and(|t| t.len() > 4096) {
        return Err(DomainError::invalid(field, what));
    }
    Ok(given)
}

/// An LDAP directory's settings as an administrator gave them, checked: its URL and TLS, the
/// DNs, the placeholder (a DN, if given), calls at once and the removal threshold as given.
fn ldap_settings(settings: crate::connectors::ldap::LdapConfig) -> DomainResult<crate::connectors::ldap::LdapConfig> {
    use crate::connectors::ldap::LdapConfig;
    let config = LdapConfig::checked(
        &settings.url,
        settings.starttls,
        &settings.bind_dn,
        &settings.people_base,
        settings.member_attribute,
    )
    .map_err(|m| DomainError::invalid("url", m))?;
    let placeholder = settings.placeholder.map(|p| p.trim().to_owned()).filter(|p| !p.is_empty());
    if placeholder.as_ref().is_some_and(|p| !p.contains('=') || p.len() > 1024) {
        return Err(DomainError::invalid("placeholder", "a DN used for nothing else, like cn=placeholder,dc=example"));
    }
    Ok(LdapConfig {
        placeholder,
        max_in_flight: settings.max_in_flight.map(calls_at_once).transpose()?,
        removal_threshold: settings.removal_threshold.map(|p| p.clamp(1, 100)),
        ..config
    })
}

/// The tag of a connected system's stored settings (its config and sealed secret): what the
/// API's `ETag` names, changing with every change of either.
pub(crate) fn settings_tag(config: &str, secret: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::new().chain_update(config).chain_update([0u8]).chain_update(secret).finalize();
    hex::encode(&digest[..12])
}
