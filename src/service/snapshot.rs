//! The catalog in memory. Every page shows packages, their policies, resource roles and
//! separation-of-duties rules; they change seldom (an administrator's edit), so each instance
//! keeps one copy and reads it anew only when the database's catalog generation has moved
//! (one single-row read per use instead of half a dozen statements and hundreds of rows per
//! page). Triggers move the generation in the transaction of every catalog change (migration
//! 0010), so a change committed on any instance is seen by the next page here.
//!
//! Only reads for display use it. Operations that decide something (filing a request,
//! approving, assigning) read the catalog inside their own transaction, as before.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::ids::{CatalogId, PackageId, PolicyId};
use crate::domain::model::{AccessPackage, Catalog};
use crate::domain::policy::Policy;
use crate::domain::sod::SodRules;
use crate::domain::{DomainError, DomainResult};
use crate::store::{catalog, Conn};
use crate::views::ResourceRoleView;

/// The catalog as of one generation.
#[derive(Debug, Default)]
pub struct Snapshot {
    generation: i64,
    catalogs: Vec<Catalog>,
    packages: HashMap<PackageId, AccessPackage>,
    policies: HashMap<PackageId, Vec<Policy>>,
    policy_at: HashMap<PolicyId, (PackageId, usize)>,
    roles: HashMap<PackageId, Vec<ResourceRoleView>>,
    sod: HashMap<PackageId, SodRules>,
}

impl Snapshot {
    fn new(contents: catalog::CatalogContents) -> Self {
        let mut policies: HashMap<PackageId, Vec<Policy>> = HashMap::new();
        for p in contents.policies {
            policies.entry(p.package_id).or_default().push(p);
        }
        let policy_at = policies
            .iter()
            .flat_map(|(package, list)| list.iter().enumerate().map(move |(i, p)| (p.id, (*package, i))))
            .collect();
        let mut roles: HashMap<PackageId, Vec<ResourceRoleView>> = HashMap::new();
        for (package, role) in contents.roles {
            roles.entry(package).or_default().push(ResourceRoleView {
                id: role.id.0,
                resource: role.resource_name,
                role: role.role_name,
                system: role.system_kind.as_str().to_owned(),
            });
        }
        Snapshot {
            generation: contents.generation,
            catalogs: contents.catalogs,
            packages: contents.packages.into_iter().map(|p| (p.id, p)).collect(),
            policies,
            policy_at,
            roles,
            sod: contents.sod,
        }
    }

    /// All catalogs, by name.
    pub fn catalogs(&self) -> &[Catalog] {
        &self.catalogs
    }

    pub fn catalog(&self, id: CatalogId) -> Option<&Catalog> {
        self.catalogs.iter().find(|c| c.id == id)
    }

    pub fn package(&self, id: PackageId) -> Option<&AccessPackage> {
        self.packages.get(&id)
    }

    /// A package's name, empty for one that no longer exists.
    pub fn package_name(&self, id: PackageId) -> String {
        self.packages.get(&id).map(|p| p.name.clone()).unwrap_or_default()
    }

    /// A package's policies (enabled or not) with their requestor lists, by id.
    pub fn policies_of(&self, package: PackageId) -> &[Policy] {
        self.policies.get(&package).map_or(&[], Vec::as_slice)
    }

    pub fn policy(&self, id: PolicyId) -> Option<&Policy> {
        let (package, i) = self.policy_at.get(&id)?;
        self.policies.get(package)?.get(*i)
    }

    /// The resource roles a package grants, by resource and role name.
    pub fn roles_of(&self, package: PackageId) -> Vec<ResourceRoleView> {
        self.roles.get(&package).cloned().unwrap_or_default()
    }

    /// A package's separation-of-duties rules, both directions.
    pub fn sod_rules(&self, package: PackageId) -> SodRules {
        self.sod.get(&package).cloned().unwrap_or_default()
    }
}

/// One instance's copy, shared by its requests.
#[derive(Default)]
pub(super) struct SnapshotCache {
    current: RwLock<Arc<Snapshot>>,
    /// Held while reading the catalog anew, so requests that find it out of date at the same
    /// time read it once. It also keeps the last reading that failed: at which generation,
    /// when, and why.
    loading: tokio::sync::Mutex<Option<(i64, std::time::Instant, String)>>,
}

/// After a reading of the catalog failed (a row that cannot be decoded), pages that find the
/// same generation get the same error for this long instead of each reading it again.
const FAILED_READ_HOLDS: std::time::Duration = std::time::Duration::from_secs(2);

impl std::fmt::Debug for SnapshotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCache").field("generation", &self.kept().generation).finish()
    }
}

impl SnapshotCache {
    fn kept(&self) -> Arc<Snapshot> {
        // A poisoned lock still holds a whole snapshot (it is only ever replaced whole).
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The kept snapshot if it is as of `generation`. Any other number means a change: a
    /// higher one a commit since, a lower one a database restored from a backup.
    fn as_of(&self, generation: i64) -> Option<Arc<Snapshot>> {
        let kept = self.kept();
        (kept.generation == generation).then_some(kept)
    }

    fn keep(&self, snapshot: Arc<Snapshot>) {
        // Readings take turns (`loading`), so the last one read is the newest.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    /// The catalog as of now: the kept copy while the database's generation matches, else
    /// read anew on this connection (never a second one: a request waiting here already
    /// holds its own, and the pool could run out).
    pub(super) async fn get(&self, conn: &mut Conn) -> DomainResult<Arc<Snapshot>> {
        let generation = catalog::generation(conn).await?;
        if let Some(kept) = self.as_of(generation) {
            return Ok(kept);
        }
        let mut failed = self.loading.lock().await;
        if let Some(kept) = self.as_of(generation) {
            return Ok(kept);
        }
        if let Some((at, when, why)) = failed.as_ref() {
            if *at == generation && when.elapsed() < FAILED_READ_HOLDS {
                return Err(DomainError::Internal(why.clone()));
            }
        }
        match catalog::contents(conn).await {
            Ok(contents) => {
                *failed = None;
                let snapshot = Arc::new(Snapshot::new(contents));
                self.keep(snapshot.clone());
                Ok(snapshot)
            }
            Err(e) => {
                let why = format!("reading the catalog at generation {generation}: {e}");
                tracing::error!(generation, error = %e, "could not read the catalog");
                *failed = Some((generation, std::time::Instant::now(), why.clone()));
                Err(DomainError::Internal(why))
            }
        }
    }
}

impl super::Service {
    /// The catalog as of now, for a page ([`SnapshotCache::get`]).
    pub(super) async fn catalog_snapshot(&self, conn: &mut Conn) -> DomainResult<Arc<Snapshot>> {
        self.catalog.get(conn).await
    }
}
