//! Capabilities: the admin operations hang off a handle that is obtained by authorizing once,
//! so no mutator can be called without the check (a forgotten check does not compile).
//!
//! - [`Service::catalog_owner`], [`Service::package_manager`], [`Service::assignment_manager`]
//!   and [`Service::catalog_reader`] check the actor's role for one catalog and return an
//!   [`InCatalog`] handle whose scope type says what it can do. A scope that can do more can
//!   do what the smaller ones can (an owner's handle manages packages and assigns), through
//!   the marker traits [`MayAssign`] and [`MayManagePackages`].
//! - [`Service::catalog_creator`] creates catalogs; [`Service::administrator`] the global ones.
//!
//! Every operation on a handle checks, inside its transaction, that the object it touches
//! belongs to the handle's catalog, and answers "not found" when it does not: a handle for
//! one catalog reaches nothing in another. Someone who may not even read a catalog is told
//! it does not exist, so a catalog owner learns nothing of other catalogs by link.
//!
//! The handles are built only here (their fields are private); `src/tidy.rs` checks that the
//! catalog permissions are named nowhere else in the service.

use std::marker::PhantomData;

use super::Service;
use crate::domain::authz::{Actor, Permission};
use crate::domain::ids::{CatalogId, PackageId, PolicyId};
use crate::domain::policy::Policy;
use crate::domain::{DomainError, DomainResult};
use crate::store::catalog;

/// What a handle for one catalog may do: the permission it was checked for.
pub trait Scope {
    fn permission(catalog: CatalogId) -> Permission;
}

/// See the catalog's packages, policies and assignments (and everything below needs this).
pub enum Read {}
/// Assign people directly and remove their assignments.
pub enum Assign {}
/// Create and edit packages and their policies.
pub enum Packages {}
/// Edit the catalog itself, its resources and who manages it.
pub enum Own {}

impl Scope for Read {
    fn permission(catalog: CatalogId) -> Permission {
        Permission::ReadCatalog(catalog)
    }
}
impl Scope for Assign {
    fn permission(catalog: CatalogId) -> Permission {
        Permission::AssignInCatalog(catalog)
    }
}
impl Scope for Packages {
    fn permission(catalog: CatalogId) -> Permission {
        Permission::ManagePackages(catalog)
    }
}
impl Scope for Own {
    fn permission(catalog: CatalogId) -> Permission {
        Permission::ManageCatalog(catalog)
    }
}

/// Scopes that assign and remove.
pub trait MayAssign: Scope {}
impl MayAssign for Assign {}
impl MayAssign for Packages {}
impl MayAssign for Own {}

/// Scopes that manage packages and policies.
pub trait MayManagePackages: MayAssign {}
impl MayManagePackages for Packages {}
impl MayManagePackages for Own {}

/// Authorized work in one catalog, for one actor. See the module documentation.
pub struct InCatalog<'a, S: Scope> {
    pub(super) service: &'a Service,
    pub(super) actor: &'a Actor,
    pub(super) catalog: CatalogId,
    scope: PhantomData<S>,
}

/// The owner's handle: the catalog, its resources and its roles.
pub type CatalogOwner<'a> = InCatalog<'a, Own>;
/// The package manager's handle.
pub type PackageManager<'a> = InCatalog<'a, Packages>;
/// The assignment manager's handle.
pub type AssignmentManager<'a> = InCatalog<'a, Assign>;
/// The reader's handle.
pub type CatalogReader<'a> = InCatalog<'a, Read>;

impl<S: Scope> InCatalog<'_, S> {
    pub fn catalog(&self) -> CatalogId {
        self.catalog
    }

    pub fn actor(&self) -> &Actor {
        self.actor
    }

    /// Before a change in this catalog: its locks, in the order every catalog writer takes
    /// them ([`catalog::lock_catalog`]); a deleted catalog is "not found".
    pub(super) async fn lock(&self, tx: &mut crate::store::Tx) -> DomainResult<()> {
        if catalog::lock_catalog(tx, self.catalog).await? {
            Ok(())
        } else {
            Err(DomainError::not_found("catalog"))
        }
    }

    /// The object's catalog must be this handle's: otherwise it is "not found" (`what`).
    pub(super) fn owns(&self, object_catalog: CatalogId, what: &str) -> DomainResult<()> {
        if object_catalog == self.catalog {
            Ok(())
        } else {
            Err(DomainError::not_found(what))
        }
    }
}

/// Creates catalogs (catalog creators and administrators); the creator owns what they create.
pub struct CatalogCreator<'a> {
    pub(super) service: &'a Service,
    pub(super) actor: &'a Actor,
}

/// The global operations: roles held globally, people's state.
pub struct Administrator<'a> {
    pub(super) service: &'a Service,
    pub(super) actor: &'a Actor,
}

impl Service {
    /// Authorize `actor` for `S` in `catalog`. Someone who may not read the catalog is told it
    /// does not exist; a reader who lacks `S` is told what it takes.
    pub fn in_catalog<'a, S: Scope>(&'a self, actor: &'a Actor, catalog: CatalogId) -> DomainResult<InCatalog<'a, S>> {
        if !actor.can(Permission::ReadCatalog(catalog)) {
            return Err(DomainError::not_found("catalog"));
        }
        actor.require(S::permission(catalog))?;
        Ok(InCatalog { service: self, actor, catalog, scope: PhantomData })
    }

    pub fn catalog_owner<'a>(&'a self, actor: &'a Actor, catalog: CatalogId) -> DomainResult<CatalogOwner<'a>> {
        self.in_catalog(actor, catalog)
    }

    pub fn package_manager<'a>(&'a self, actor: &'a Actor, catalog: CatalogId) -> DomainResult<PackageManager<'a>> {
        self.in_catalog(actor, catalog)
    }

    pub fn assignment_manager<'a>(
        &'a self,
        actor: &'a Actor,
        catalog: CatalogId,
    ) -> DomainResult<AssignmentManager<'a>> {
        self.in_catalog(actor, catalog)
    }

    pub fn catalog_reader<'a>(&'a self, actor: &'a Actor, catalog: CatalogId) -> DomainResult<CatalogReader<'a>> {
        self.in_catalog(actor, catalog)
    }

    /// Authorize `actor` for `S` in the catalog a package belongs to (a package never moves
    /// between catalogs, so the handle stays right for it).
    pub async fn in_catalog_of<'a, S: Scope>(
        &'a self,
        actor: &'a Actor,
        package: PackageId,
    ) -> DomainResult<InCatalog<'a, S>> {
        let mut conn = self.db.pool().acquire().await?;
        // A package of a deleted catalog is gone with it.
        let found = catalog::live_package(&mut conn, package).await?;
        drop(conn);
        // Not knowing the package and not being allowed to know it answer alike.
        let pkg = found.ok_or_else(|| DomainError::not_found("access package"))?;
        self.in_catalog(actor, pkg.catalog_id).map_err(|e| match e {
            DomainError::NotFound(_) => DomainError::not_found("access package"),
            other => other,
        })
    }

    /// Authorize `actor` for `S` in the catalog of a policy's package; the handle and the
    /// policy as it is now. Unknown and unreadable answer alike.
    pub async fn in_catalog_of_policy<'a, S: Scope>(
        &'a self,
        actor: &'a Actor,
        policy: PolicyId,
    ) -> DomainResult<(InCatalog<'a, S>, Policy)> {
        let mut conn = self.db.pool().acquire().await?;
        let found = catalog::policy(&mut conn, policy).await?;
        drop(conn);
        let policy = found.ok_or_else(|| DomainError::not_found("policy"))?;
        let handle = self.in_catalog_of(actor, policy.package_id).await.map_err(|e| match e {
            DomainError::NotFound(_) => DomainError::not_found("policy"),
            other => other,
        })?;
        Ok((handle, policy))
    }

    /// The package manager's handle for the catalog `package` is in.
    pub async fn package_manager_of<'a>(
        &'a self,
        actor: &'a Actor,
        package: PackageId,
    ) -> DomainResult<PackageManager<'a>> {
        self.in_catalog_of(actor, package).await
    }

    /// The assignment manager's handle for the catalog `package` is in.
    pub async fn assignment_manager_of<'a>(
        &'a self,
        actor: &'a Actor,
        package: PackageId,
    ) -> DomainResult<AssignmentManager<'a>> {
        self.in_catalog_of(actor, package).await
    }

    /// The reader's handle for the catalog `package` is in.
    pub async fn package_reader<'a>(&'a self, actor: &'a Actor, package: PackageId) -> DomainResult<CatalogReader<'a>> {
        self.in_catalog_of(actor, package).await
    }

    pub fn catalog_creator<'a>(&'a self, actor: &'a Actor) -> DomainResult<CatalogCreator<'a>> {
        actor.require(Permission::CreateCatalog)?;
        Ok(CatalogCreator { service: self, actor })
    }

    pub fn administrator<'a>(&'a self, actor: &'a Actor) -> DomainResult<Administrator<'a>> {
        actor.require(Permission::Administer)?;
        Ok(Administrator { service: self, actor })
    }
}
