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

use crate::domain::eligibility::may_see_catalog;
use crate::domain::ids::{CatalogId, PackageId, PolicyId};
use crate::domain::model::{AccessPackage, Catalog, User};
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
    catalog_at: HashMap<CatalogId, usize>,
    packages: HashMap<PackageId, AccessPackage>,
    /// Packages in browsing order (name, then id), each with the lower-cased texts a search
    /// matches: its name, its description and the names of the resources it grants.
    by_name: Vec<(PackageId, Vec<String>)>,
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
        let mut by_name: Vec<(&AccessPackage, Vec<String>)> = contents
            .packages
            .iter()
            .map(|p| {
                let mut texts = vec![p.name.to_lowercase(), p.description.to_lowercase()];
                texts.extend(roles.get(&p.id).into_iter().flatten().map(|r| r.resource.to_lowercase()));
                (p, texts)
            })
            .collect();
        by_name.sort_by(|(a, _), (b, _)| (&a.name, a.id).cmp(&(&b.name, b.id)));
        let by_name = by_name.into_iter().map(|(p, texts)| (p.id, texts)).collect();
        Snapshot {
            generation: contents.generation,
            catalog_at: contents.catalogs.iter().enumerate().map(|(i, c)| (c.id, i)).collect(),
            catalogs: contents.catalogs,
            by_name,
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
        self.catalogs.get(*self.catalog_at.get(&id)?)
    }

    /// The packages a person may browse, in browsing order (name, then id), starting after
    /// `after` (a package's name and id): enabled and not hidden, in a catalog they may see
    /// ([`may_see_catalog`]), in `catalog` if given, and matching `search` if it is not blank
    /// (a case-insensitive part of the name, the description or a resource's name). Whether
    /// a policy lets them request it is the caller's question.
    pub fn browsable<'a>(
        &'a self,
        viewer: &'a User,
        search: &str,
        catalog: Option<CatalogId>,
        after: Option<(&str, i64)>,
    ) -> impl Iterator<Item = (&'a AccessPackage, &'a Catalog)> + 'a {
        let term = search.trim().to_lowercase();
        let start = after.map_or(0, |(name, id)| {
            self.by_name
                .partition_point(|(p, _)| self.packages.get(p).is_some_and(|p| (p.name.as_str(), p.id.0) <= (name, id)))
        });
        self.by_name[start..].iter().filter_map(move |(id, texts)| {
            let package = self.packages.get(id)?;
            let home = self.catalog(package.catalog_id)?;
            let shown = package.enabled
                && !package.hidden
                && catalog.is_none_or(|c| c == home.id)
                && may_see_catalog(viewer, home)
                && (term.is_empty() || texts.iter().any(|t| t.contains(&term)));
            shown.then_some((package, home))
        })
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

    /// Every policy that reviews its access (enabled or not: access given under a policy
    /// closed since is still reviewed), with its package.
    pub fn reviewed_policies(&self) -> impl Iterator<Item = (&AccessPackage, &Policy)> {
        self.policies.iter().filter_map(|(id, list)| self.packages.get(id).map(|p| (p, list))).flat_map(|(p, list)| {
            list.iter()
                .filter(|x| matches!(x.review, crate::domain::policy::ReviewSettings::Recurring { .. }))
                .map(move |x| (p, x))
        })
    }

    /// Every enabled policy that assigns by a rule (of a package still there).
    pub fn ruled_policies(&self) -> impl Iterator<Item = &Policy> {
        self.policies
            .iter()
            .filter(|(id, _)| self.packages.contains_key(id))
            .flat_map(|(_, list)| list.iter().filter(|p| p.enabled && p.auto_rule.is_some()))
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
