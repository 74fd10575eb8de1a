//! Importing a connected system's groups into a catalog as resources, each with one role (its
//! membership), for packages to grant. An administrator starts an import; a worker runs it a
//! page of the target's groups at a time (SCIM: `GET /Groups` by `startIndex`; LDAP: the
//! groups under a base, by DN), each page in one transaction with the job's progress, so the
//! page shows how far it got and a restart carries on from the next page. A group bound
//! already is counted, not bound twice.

use serde_json::json;

use super::capability::Administrator;
use super::Service;
use crate::connectors::{ldap, scim, CallError, Opened};
use crate::domain::audit::AuditEvent;
use crate::domain::ids::{CatalogId, ResourceSystemId};
use crate::domain::model::ResourceSystemKind;
use crate::domain::{DomainError, DomainResult};
use crate::store::{catalog, imports, to_ms};
use crate::views::GroupImportView;

/// Groups read and bound per transaction.
pub const IMPORT_PAGE: u64 = 100;
/// How long a claim holds without renewal (a stopped worker's job is taken up after it).
const CLAIM_MS: i64 = 60_000;
/// How long a job waits after its target could not be read.
const WAIT_MS: i64 = 30_000;
/// An import its target keeps refusing is failed after this long (its error shown).
const GIVE_UP_MS: i64 = 3_600_000;
/// The most groups an import reads from a target that gives no total.
const MOST_READ: i64 = 1_000_000;
/// The most groups an LDAP import reads under its base.
const LDAP_MOST: usize = 10_000;

impl Administrator<'_> {
    /// Start importing the system's groups (SCIM or LDAP; for LDAP those under `search_base`)
    /// into the catalog; answers the job, which a worker runs.
    #[tracing::instrument(name = "start_group_import", skip_all, fields(actor = self.actor.id().0, system = system.0))]
    pub async fn start_group_import(
        &self,
        system: ResourceSystemId,
        catalog_id: CatalogId,
        search_base: &str,
    ) -> DomainResult<i64> {
        let service = self.service;
        let search_base = search_base.trim();
        let mut tx = service.db.begin().await?;
        let (kind, _, _) =
            catalog::connector(&mut tx, system).await?.ok_or_else(|| DomainError::not_found("resource system"))?;
        match kind {
            ResourceSystemKind::Scim => {}
            ResourceSystemKind::Ldap if search_base.contains('=') && search_base.len() <= 1024 => {}
            ResourceSystemKind::Ldap => {
                return Err(DomainError::invalid(
                    "search_base",
                    "the DN the groups are under, like ou=groups,dc=example",
                ))
            }
            _ => return Err(DomainError::invalid("system", "only a SCIM or LDAP system's groups are imported")),
        }
        if !catalog::lock_catalog(&mut tx, catalog_id).await? {
            return Err(DomainError::invalid("catalog_id", "choose a catalog"));
        }
        if imports::of_system(&mut tx, system, 1).await?.first().is_some_and(|j| j.state == "running") {
            return Err(DomainError::invalid(
                "system_id",
                "an import of this system is running: start another when it is done",
            ));
        }
        let base = if kind == ResourceSystemKind::Ldap { search_base } else { "" };
        let now = to_ms(service.now());
        // One running import per system (the index says so, should two start at once).
        let id = imports::insert(&mut tx, (system, catalog_id, self.actor.id()), base, now).await.map_err(|e| {
            if crate::store::is_unique_violation(&e) {
                DomainError::invalid("system_id", "an import of this system is running: start another when it is done")
            } else {
                e.into()
            }
        })?;
        let event =
            AuditEvent::new(Some(self.actor.id()), "resource_system.import_started", "resource_system", system.0)
                .after(json!({"job": id, "catalog": catalog_id, "search_base": base}));
        service.commit(tx, vec![event]).await?;
        Ok(id)
    }

    /// The system's imports, newest first (the last ten).
    #[tracing::instrument(name = "group_imports", skip_all, fields(actor = self.actor.id().0, system = system.0))]
    pub async fn group_imports(&self, system: ResourceSystemId) -> DomainResult<Vec<GroupImportView>> {
        let mut conn = self.service.db.pool().acquire().await?;
        let jobs = imports::of_system(&mut conn, system, 10).await?;
        Ok(jobs.into_iter().map(view).collect())
    }
}

fn view(j: imports::ImportJob) -> GroupImportView {
    GroupImportView {
        id: j.id,
        catalog: j.catalog_name,
        search_base: j.search_base,
        running: j.state == "running",
        failed: j.state == "failed",
        done: j.next_start - 1,
        total: j.total,
        imported: j.imported,
        already: j.already,
        skipped: j.skipped,
        error: j.error,
        started: j.created_at,
        finished: j.finished_at,
    }
}

/// One page of the target's groups: those readable, how many entries the page held, and how
/// many the target has in all (when it says; else the import reads until an empty page).
struct Page {
    groups: Vec<crate::connectors::TargetGroup>,
    returned: i64,
    total: Option<i64>,
}

impl Service {
    /// Take up the running imports nobody holds (a worker pass); how many ran.
    #[tracing::instrument(name = "resume_group_imports", skip_all)]
    pub async fn resume_group_imports(&self) -> DomainResult<usize> {
        let ids = {
            let mut conn = self.db.pool().acquire().await?;
            imports::unclaimed(&mut conn, to_ms(self.now()), 5).await?
        };
        let mut ran = 0;
        for id in ids {
            match self.run_import(id).await {
                Ok(true) => ran += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(job = id, error = ?e, "group import stopped; taken up again later"),
            }
        }
        Ok(ran)
    }

    /// Run the job a page at a time while this worker holds it; false when another held it
    /// (or it had ended) from the start.
    async fn run_import(&self, id: i64) -> DomainResult<bool> {
        let worker = &*self.worker;
        let mut ran = false;
        loop {
            let now = to_ms(self.now());
            let mut tx = self.db.begin().await?;
            let held = imports::claim(&mut tx, id, worker, now, now + CLAIM_MS).await?;
            let job = imports::get(&mut tx, id).await?;
            tx.commit().await?;
            let Some(job) = job.filter(|_| held) else { return Ok(ran) };
            ran = true;
            let page = match self.import_page(&job).await {
                Ok(page) => page,
                Err(e @ CallError::Permanent(_)) => {
                    self.end_import(&job, "failed", e.message()).await?;
                    return Ok(true);
                }
                Err(e) if now - job.created_at > GIVE_UP_MS => {
                    self.end_import(&job, "failed", &format!("{} (tried for an hour)", e.message())).await?;
                    return Ok(true);
                }
                Err(e) => {
                    let mut tx = self.db.begin().await?;
                    imports::wait(&mut tx, (id, worker), e.message(), to_ms(self.now()) + WAIT_MS).await?;
                    tx.commit().await?;
                    return Ok(true);
                }
            };
            if page.returned == 0 {
                self.end_import(&job, "done", "").await?;
                return Ok(true);
            }
            self.checkpoint("import.page").await;
            match self.bind_page(&job, page).await {
                Ok(true) => {}
                Ok(false) => return Ok(true), // the claim was lost: its holder carries on
                Err(e) => {
                    // A page that cannot be bound fails the job, saying why (binding again
                    // would fail the same way); a new import starts over, skipping what is bound.
                    self.end_import(&job, "failed", &format!("the groups could not be bound: {e}")).await?;
                    return Ok(true);
                }
            }
        }
    }

    /// The job's next page from its target (outside any transaction).
    async fn import_page(&self, job: &imports::ImportJob) -> Result<Page, CallError> {
        let db = |e: sqlx::Error| CallError::Transient(format!("database: {e}"));
        let mut conn = self.db.pool().acquire().await.map_err(db)?;
        let (kind, config, sealed) = catalog::connector(&mut conn, job.system)
            .await
            .map_err(db)?
            .ok_or(CallError::Permanent("the system is gone".to_owned()))?;
        drop(conn);
        let start = u64::try_from(job.next_start.max(1)).unwrap_or(1);
        match Opened::open(kind, &config, &sealed, self.secret_key.as_deref()).map_err(CallError::Permanent)? {
            Opened::Scim(config, token) => {
                let page =
                    scim::Scim { config: &config, token: &token, now: self.now() }.groups(start, IMPORT_PAGE).await?;
                let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                Ok(Page { groups: page.groups, returned: count(page.returned), total: page.total.map(count) })
            }
            Opened::Ldap(config, password) => {
                let all = ldap::Directory { config: &config, password: &password }
                    .groups(&job.search_base, LDAP_MOST)
                    .await?;
                let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
                let from = usize::try_from(start - 1).unwrap_or(usize::MAX);
                let groups: Vec<_> = all.into_iter().skip(from).take(IMPORT_PAGE as usize).collect();
                let returned = i64::try_from(groups.len()).unwrap_or(i64::MAX);
                Ok(Page { groups, returned, total: Some(total) })
            }
            Opened::Webhook(..) => Err(CallError::Permanent("a webhook system has no groups to import".to_owned())),
        }
    }

    /// Bind the page's groups not bound yet, in one transaction with the job's progress and
    /// one audit event; ends the job after its last page. False when the claim was lost.
    async fn bind_page(&self, job: &imports::ImportJob, page: Page) -> DomainResult<bool> {
        let worker = &*self.worker;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        if !catalog::lock_catalog(&mut tx, job.catalog).await? {
            drop(tx);
            self.end_import(job, "failed", "the catalog is gone").await?;
            return Ok(true);
        }
        // A group is known by its id there: for a directory, a DN in any spelling.
        let ldap = catalog::resource_system_kind(&mut tx, job.system).await? == Some(ResourceSystemKind::Ldap);
        let key = |id: &str| if ldap { ldap::dn_key(id) } else { id.to_owned() };
        let mut bound: std::collections::HashSet<String> =
            imports::bound_ids(&mut tx, job.system).await?.iter().map(|id| key(id)).collect();
        let mut added = Vec::new();
        let (mut already, mut skipped) = (0_i64, 0_i64);
        for group in &page.groups {
            if bound.contains(&key(&group.id)) {
                already += 1;
                continue;
            }
            if group.id.trim().is_empty() || group.id.chars().count() > 200 || group.id.contains('\0') {
                skipped += 1; // not an id a resource can keep
                continue;
            }
            let name: String = match group.name.trim() {
                "" => group.id.chars().take(200).collect(),
                name => name.chars().filter(|c| *c != '\0').take(200).collect(),
            };
            catalog::insert_resource_as(
                &mut tx,
                job.system,
                job.catalog,
                &group.id,
                &name,
                "",
                &["Member"],
                to_ms(now),
            )
            .await?;
            bound.insert(key(&group.id)); // a target that lists it twice on one page
            added.push(name);
        }
        // Entries of the page that could not be read as groups are passed over too.
        skipped += page.returned - i64::try_from(page.groups.len()).unwrap_or(i64::MAX);
        let next = job.next_start + page.returned;
        let imported = i64::try_from(added.len()).unwrap_or(i64::MAX);
        let counts = imports::PageCounts { imported, already, skipped, total: page.total };
        if !imports::record_page(&mut tx, (job.id, worker), job.next_start, next, counts).await? {
            return Ok(false);
        }
        let mut events = Vec::new();
        if !added.is_empty() {
            events.push(
                AuditEvent::new(Some(job.author), "resource.imported", "catalog", job.catalog.0)
                    .after(json!({"system": job.system, "job": job.id, "resources": added, "already_bound": already})),
            );
        }
        // The last page: past the total the target gave, or (without one) a short page, or
        // so many groups that the target must be ignoring where each page starts.
        let last = match page.total {
            Some(total) => next > total,
            None => page.returned < IMPORT_PAGE as i64 || next > MOST_READ,
        };
        if last {
            imports::finish(&mut tx, (job.id, worker), "done", "", to_ms(now)).await?;
            events.push(self.import_ended(job, "done", ""));
        }
        self.commit(tx, events).await?;
        Ok(true)
    }

    async fn end_import(&self, job: &imports::ImportJob, state: &str, error: &str) -> DomainResult<()> {
        let mut tx = self.db.begin().await?;
        if imports::finish(&mut tx, (job.id, &*self.worker), state, error, to_ms(self.now())).await? {
            self.commit(tx, vec![self.import_ended(job, state, error)]).await?;
        }
        Ok(())
    }

    fn import_ended(&self, job: &imports::ImportJob, state: &str, error: &str) -> AuditEvent {
        let action = if state == "done" { "resource_system.import_done" } else { "resource_system.import_failed" };
        AuditEvent::new(None, action, "resource_system", job.system.0)
            .after(json!({"job": job.id, "catalog": job.catalog}))
            .reason(error)
    }
}
