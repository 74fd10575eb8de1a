//! Managing catalogs, resources, packages, policies and who manages them. Each operation checks
//! the actor's role for the catalog it touches and writes its audit event with the change.

use serde_json::json;

use super::Service;
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Actor, Permission};
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

fn unique(err: sqlx::Error, what: &str) -> DomainError {
    if is_unique_violation(&err) {
        DomainError::Conflict(format!("{what} with that name already exists"))
    } else {
        err.into()
    }
}

impl Service {
    /// Create a catalog; its creator becomes its owner.
    #[tracing::instrument(name = "create_catalog", skip_all, fields(actor = actor.id().0))]
    pub async fn create_catalog(
        &self,
        actor: &Actor,
        name: &str,
        description: &str,
        externally_visible: bool,
    ) -> DomainResult<CatalogId> {
        actor.require(Permission::CreateCatalog)?;
        let name = clean_name("name", name)?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let id = catalog::insert_catalog(&mut tx, &name, description.trim(), externally_visible, to_ms(now))
            .await
            .map_err(|e| unique(e, "a catalog"))?;
        directory::grant_role(&mut tx, actor.id(), Role::CatalogOwner, Some(id), to_ms(now)).await?;
        let event = AuditEvent::new(Some(actor.id()), "catalog.created", "catalog", id.0)
            .after(json!({"name": name, "description": description.trim(), "externally_visible": externally_visible}));
        self.commit(tx, vec![event]).await?;
        Ok(id)
    }

    #[tracing::instrument(name = "update_catalog", skip_all, fields(actor = actor.id().0, catalog = changed.id.0))]
    pub async fn update_catalog(&self, actor: &Actor, changed: Catalog) -> DomainResult<()> {
        actor.require(Permission::ManageCatalog(changed.id))?;
        let name = clean_name("name", &changed.name)?;
        let mut tx = self.db.begin().await?;
        let before = catalog::catalog(&mut tx, changed.id).await?.ok_or_else(|| DomainError::not_found("catalog"))?;
        let after = Catalog { name, ..changed };
        catalog::update_catalog(&mut tx, &after).await.map_err(|e| unique(e, "a catalog"))?;
        let event = AuditEvent::new(Some(actor.id()), "catalog.updated", "catalog", after.id.0)
            .before(json!(before))
            .after(json!(after));
        self.commit(tx, vec![event]).await
    }

    /// Give someone a role: catalog roles by the catalog's owners, global roles by administrators.
    #[tracing::instrument(name = "grant_role", skip_all, fields(actor = actor.id().0, user = user.0, ?role, catalog = scope.map(|c| c.0)))]
    pub async fn grant_role(
        &self,
        actor: &Actor,
        user: UserId,
        role: Role,
        scope: Option<CatalogId>,
    ) -> DomainResult<()> {
        match (role, scope) {
            (Role::Administrator | Role::CatalogCreator, None) => actor.require(Permission::Administer)?,
            (Role::Administrator | Role::CatalogCreator, Some(_)) => {
                return Err(DomainError::invalid("role", "this role is global, not per catalog"))
            }
            (_, Some(c)) => actor.require(Permission::ManageCatalog(c))?,
            (_, None) => return Err(DomainError::invalid("catalog", "this role is held for one catalog")),
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        directory::user(&mut tx, user).await?.ok_or_else(|| DomainError::not_found("person"))?;
        directory::grant_role(&mut tx, user, role, scope, to_ms(now)).await?;
        let event = AuditEvent::new(Some(actor.id()), "role.granted", "user", user.0)
            .after(json!({"role": role.as_str(), "catalog": scope}));
        self.commit(tx, vec![event]).await
    }

    /// Add a resource (with its roles) from a resource system to a catalog.
    #[tracing::instrument(name = "add_resource", skip_all, fields(actor = actor.id().0, catalog = catalog_id.0, system = system.0))]
    pub async fn add_resource(
        &self,
        actor: &Actor,
        catalog_id: CatalogId,
        system: ResourceSystemId,
        name: &str,
        description: &str,
        roles: &[&str],
    ) -> DomainResult<Vec<ResourceRoleId>> {
        actor.require(Permission::ManageCatalog(catalog_id))?;
        let name = clean_name("name", name)?;
        if roles.is_empty() || roles.iter().any(|r| r.trim().is_empty()) {
            return Err(DomainError::invalid("roles", "name at least one role (for example Member)"));
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        catalog::catalog(&mut tx, catalog_id).await?.ok_or_else(|| DomainError::not_found("catalog"))?;
        if !catalog::resource_system_exists(&mut tx, system).await? {
            return Err(DomainError::not_found("resource system"));
        }
        let ids = catalog::insert_resource(&mut tx, system, catalog_id, &name, description.trim(), roles, to_ms(now))
            .await
            .map_err(|e| unique(e, "a resource"))?;
        let event = AuditEvent::new(Some(actor.id()), "resource.added", "catalog", catalog_id.0)
            .after(json!({"resource": name, "system": system, "roles": roles}));
        self.commit(tx, vec![event]).await?;
        Ok(ids)
    }

    /// Create an access package granting resource roles that belong to the same catalog.
    #[tracing::instrument(name = "create_package", skip_all, fields(actor = actor.id().0, catalog = catalog_id.0))]
    pub async fn create_package(
        &self,
        actor: &Actor,
        catalog_id: CatalogId,
        name: &str,
        description: &str,
        roles: &[ResourceRoleId],
    ) -> DomainResult<PackageId> {
        actor.require(Permission::ManagePackages(catalog_id))?;
        let name = clean_name("name", name)?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        catalog::catalog(&mut tx, catalog_id).await?.ok_or_else(|| DomainError::not_found("catalog"))?;
        let held = catalog::role_catalogs(&mut tx, roles).await?;
        if let Some(stray) = roles.iter().find(|r| !held.iter().any(|(id, c)| id == *r && *c == catalog_id)) {
            return Err(DomainError::invalid("roles", format!("resource role {stray} is not in this catalog")));
        }
        let id = catalog::insert_package(&mut tx, catalog_id, &name, description.trim(), roles, to_ms(now))
            .await
            .map_err(|e| unique(e, "a package in this catalog"))?;
        let event = AuditEvent::new(Some(actor.id()), "package.created", "package", id.0)
            .after(json!({"catalog": catalog_id, "name": name, "roles": roles}));
        self.commit(tx, vec![event]).await?;
        Ok(id)
    }

    /// Rename, hide, disable a package. `changed.version` must be the version read.
    #[tracing::instrument(name = "update_package", skip_all, fields(actor = actor.id().0, package = changed.id.0))]
    pub async fn update_package(&self, actor: &Actor, changed: AccessPackage) -> DomainResult<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let before =
            catalog::package(&mut tx, changed.id).await?.ok_or_else(|| DomainError::not_found("access package"))?;
        actor.require(Permission::ManagePackages(before.catalog_id))?;
        if changed.catalog_id != before.catalog_id {
            return Err(DomainError::invalid("catalog", "a package stays in its catalog"));
        }
        let after = AccessPackage { name: clean_name("name", &changed.name)?, ..changed };
        if !catalog::update_package(&mut tx, &after, to_ms(now))
            .await
            .map_err(|e| unique(e, "a package in this catalog"))?
        {
            return Err(DomainError::Conflict(
                "someone else changed this package meanwhile; reload and try again".into(),
            ));
        }
        let event = AuditEvent::new(Some(actor.id()), "package.updated", "package", after.id.0)
            .before(json!(before))
            .after(json!(after));
        self.commit(tx, vec![event]).await
    }

    /// Declare that a package cannot be held together with another package or a group.
    #[tracing::instrument(name = "add_incompatibility", skip_all, fields(actor = actor.id().0, package = package.0))]
    pub async fn add_incompatibility(
        &self,
        actor: &Actor,
        package: PackageId,
        other: Incompatible,
    ) -> DomainResult<()> {
        let mut tx = self.db.begin().await?;
        let pkg = catalog::package(&mut tx, package).await?.ok_or_else(|| DomainError::not_found("access package"))?;
        actor.require(Permission::ManagePackages(pkg.catalog_id))?;
        match other {
            Incompatible::Package(p) if p == package => {
                return Err(DomainError::invalid("incompatible", "a package cannot conflict with itself"))
            }
            Incompatible::Package(p) => {
                let other =
                    catalog::package(&mut tx, p).await?.ok_or_else(|| DomainError::not_found("access package"))?;
                // A rule binds both packages: whoever sets it must manage the other one too.
                if !actor.can(Permission::ManagePackages(other.catalog_id)) {
                    return Err(DomainError::forbidden(
                        "you can mark as incompatible only packages of catalogs whose packages you manage",
                    ));
                }
                catalog::add_incompatible_package(&mut tx, package, p).await.map_err(|e| unique(e, "this rule"))?;
            }
            Incompatible::Group(g) => catalog::add_incompatible_group(&mut tx, package, g).await?,
        }
        let event = AuditEvent::new(Some(actor.id()), "package.incompatibility_added", "package", package.0).after(
            json!(match other {
                Incompatible::Package(p) => json!({"package": p}),
                Incompatible::Group(g) => json!({"group": g}),
            }),
        );
        self.commit(tx, vec![event]).await
    }

    #[tracing::instrument(name = "create_policy", skip_all, fields(actor = actor.id().0, package = policy.package_id.0))]
    pub async fn create_policy(&self, actor: &Actor, policy: Policy) -> DomainResult<PolicyId> {
        policy.validate()?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let pkg = catalog::package(&mut tx, policy.package_id)
            .await?
            .ok_or_else(|| DomainError::not_found("access package"))?;
        actor.require(Permission::ManagePackages(pkg.catalog_id))?;
        let id = catalog::insert_policy(&mut tx, &policy, to_ms(now)).await?;
        let event =
            AuditEvent::new(Some(actor.id()), "policy.created", "policy", id.0).after(json!(Policy { id, ..policy }));
        self.commit(tx, vec![event]).await?;
        Ok(id)
    }

    /// Replace a policy's settings. Requests already approved are untouched; pending ones keep
    /// the stages they were filed under. `changed.version` must be the version read.
    #[tracing::instrument(name = "update_policy", skip_all, fields(actor = actor.id().0, policy = changed.id.0))]
    pub async fn update_policy(&self, actor: &Actor, changed: Policy) -> DomainResult<()> {
        changed.validate()?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let before = catalog::policy(&mut tx, changed.id).await?.ok_or_else(|| DomainError::not_found("policy"))?;
        let pkg = catalog::package(&mut tx, before.package_id)
            .await?
            .ok_or_else(|| DomainError::not_found("access package"))?;
        actor.require(Permission::ManagePackages(pkg.catalog_id))?;
        if changed.package_id != before.package_id {
            return Err(DomainError::invalid("package", "a policy stays with its package"));
        }
        if !catalog::update_policy(&mut tx, &changed, to_ms(now)).await? {
            return Err(DomainError::Conflict(
                "someone else changed this policy meanwhile; reload and try again".into(),
            ));
        }
        let event = AuditEvent::new(Some(actor.id()), "policy.updated", "policy", changed.id.0)
            .before(json!(before))
            .after(json!(changed));
        self.commit(tx, vec![event]).await
    }
}
