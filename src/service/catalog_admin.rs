//! The catalog admin pages: the catalogs someone manages, one catalog with who manages it, its
//! resources and packages; deleting a catalog, taking a role back; the person picker.

use serde_json::json;

use super::capability::{CatalogOwner, Scope};
use super::Service;
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Actor, Permission};
use crate::domain::ids::*;
use crate::domain::model::Role;
use crate::domain::{DomainError, DomainResult};
use crate::store::{catalog, directory, to_ms, Conn};
use crate::views::{
    AccessExplain, CatalogAdmin, CatalogList, CatalogPackage, CatalogResource, CatalogRole, CatalogSummary,
    DecisionStep, Directory, GroupSummary, Page, PersonAccess, PersonOption, PersonSummary, RoleHolder, SystemOption,
};

/// Administrators, and those who give people roles or access in a catalog (its owners,
/// package and assignment managers): who looks people up.
fn gives_roles_or_access(actor: &Actor) -> bool {
    actor.can(Permission::Administer)
        || (actor.user.is_active()
            && actor.roles.iter().any(|g| {
                g.catalog.is_some()
                    && matches!(g.role, Role::CatalogOwner | Role::AccessPackageManager | Role::AssignmentManager)
            }))
}

/// People per page of the directory.
const DIRECTORY_PAGE: i64 = 50;

/// At most this many people in a picker's answer.
pub const PICKER_LIMIT: i64 = 10;

fn summary(row: catalog::CatalogSummaryRow) -> CatalogSummary {
    CatalogSummary {
        version: row.catalog.version,
        id: row.catalog.id.0,
        name: row.catalog.name,
        description: row.catalog.description,
        enabled: row.catalog.enabled,
        externally_visible: row.catalog.externally_visible,
        packages: row.packages,
        resources: row.resources,
    }
}

impl Service {
    /// The catalogs this person manages in any role (every catalog for administrators), and
    /// whether they may create one. For anyone without a role in the admin area: forbidden.
    #[tracing::instrument(name = "admin_catalogs", skip_all, fields(actor = actor.id().0))]
    pub async fn admin_catalogs(&self, actor: &Actor) -> DomainResult<CatalogList> {
        let may_create = self.catalog_creator(actor).is_ok();
        if !actor.has_admin_area() || !actor.user.is_active() {
            return Err(DomainError::forbidden("only people who manage catalogs see this"));
        }
        let mut conn = self.db.pool().acquire().await?;
        let rows = if actor.can(Permission::Administer) {
            catalog::catalog_summaries(&mut conn, None).await?
        } else {
            let mine: Vec<CatalogId> = actor.roles.iter().filter_map(|g| g.catalog).collect();
            catalog::catalog_summaries(&mut conn, Some(&mine)).await?
        };
        Ok(CatalogList { items: rows.into_iter().map(summary).collect(), may_create })
    }

    /// People whose email or name starts with `query`, for the pickers of the admin area:
    /// for those who give people roles or access (administrators; catalog owners, package and
    /// assignment managers) — not readers, not catalog creators before they own a catalog.
    #[tracing::instrument(name = "find_people", skip_all, fields(actor = actor.id().0))]
    pub async fn find_people(&self, actor: &Actor, query: &str) -> DomainResult<Vec<PersonOption>> {
        if !gives_roles_or_access(actor) {
            return Err(DomainError::forbidden("only people who give others roles or access look people up"));
        }
        let query = query.trim().to_lowercase();
        if query.is_empty() {
            return Ok(Vec::new());
        }
        if query.chars().count() > 200 {
            return Err(DomainError::invalid("person", "at most 200 characters"));
        }
        let mut conn = self.db.pool().acquire().await?;
        let people = directory::people_starting_with(&mut conn, &query, PICKER_LIMIT).await?;
        Ok(people.into_iter().map(|u| PersonOption { id: u.id.0, name: u.display_name, email: u.email }).collect())
    }

    /// What a person has, each line with its path (package, catalog, policy, request,
    /// decisions, dates): for who looks people up, showing what is in the catalogs they read
    /// (everything for administrators) and counting the rest.
    #[tracing::instrument(name = "person_access", skip_all, fields(actor = actor.id().0, user = user.0))]
    pub async fn person_access(&self, actor: &Actor, user: UserId) -> DomainResult<PersonAccess> {
        if !gives_roles_or_access(actor) {
            return Err(DomainError::forbidden("only people who give others roles or access see what people have"));
        }
        let mut conn = self.db.pool().acquire().await?;
        let person = directory::user(&mut conn, user).await?.ok_or_else(|| DomainError::not_found("person"))?;
        let rows = crate::store::assignments::explained_holdings(&mut conn, user).await?;
        let (shown, hidden): (Vec<_>, Vec<_>) =
            rows.into_iter().partition(|r| self.catalog_reader(actor, r.catalog).is_ok());
        let requests: Vec<RequestId> = shown.iter().filter_map(|r| r.request).collect();
        let decisions = crate::store::assignments::decisions_on(&mut conn, &requests).await?;
        let mut people: Vec<UserId> = shown.iter().filter_map(|r| r.requestor).collect();
        people.extend(decisions.iter().filter_map(|d| d.2));
        people.extend(person.manager_id);
        people.sort_by_key(|u| u.0);
        people.dedup();
        let names = directory::names(&mut conn, &people).await?;
        let name = |u: UserId| names.get(&u).cloned().unwrap_or_else(|| format!("person {}", u.0));
        let access = shown
            .into_iter()
            .map(|r| {
                let how = match (r.kind.as_deref(), r.requestor) {
                    (Some("admin_add"), Some(by)) => format!("Assigned directly by {}", name(by)),
                    (_, Some(by)) if by == user => "Requested by themselves".to_owned(),
                    (_, Some(by)) => format!("Requested for them by {}", name(by)),
                    _ => "Given without a request".to_owned(),
                };
                let steps = decisions
                    .iter()
                    .filter(|d| Some(d.0) == r.request)
                    .map(|(_, stage, approver, decision, justification, at)| DecisionStep {
                        stage: *stage,
                        approver: approver.map_or_else(|| "nobody (the stage timed out)".to_owned(), name),
                        decision: *decision,
                        at: to_ms(*at),
                        justification: justification.clone(),
                    })
                    .collect();
                AccessExplain {
                    assignment_id: r.id.0,
                    package_id: r.package.0,
                    package: r.package_name,
                    catalog: r.catalog_name,
                    policy: r.policy_name,
                    state: r.state,
                    start_at: to_ms(r.start_at),
                    end_at: r.end_at.map(to_ms),
                    request_id: r.request.map(|q| q.0),
                    how,
                    requested_at: r.requested_at.map(to_ms),
                    justification: r.justification,
                    decisions: steps,
                }
            })
            .collect();
        let grants = directory::roles(&mut conn, user).await?;
        let global = |role: Role| grants.iter().any(|g| g.role == role && g.catalog.is_none());
        let (administrator, catalog_creator) = (global(Role::Administrator), global(Role::CatalogCreator));
        // Their roles in the catalogs the viewer reads (and their global ones): who manages
        // another catalog is that catalog's business.
        let catalogs: std::collections::HashMap<CatalogId, String> =
            catalog::catalogs(&mut conn).await?.into_iter().map(|c| (c.id, c.name)).collect();
        let roles = grants
            .into_iter()
            .filter_map(|g| match (g.role.in_catalog(), g.catalog) {
                (Some(role), Some(c)) => self
                    .catalog_reader(actor, c)
                    .is_ok()
                    .then(|| format!("{} of {}", role.label(), catalogs.get(&c).cloned().unwrap_or_default())),
                _ => Some(g.role.as_str().replace('_', " ")),
            })
            .collect();
        let active = person.is_active();
        Ok(PersonAccess {
            person: PersonSummary {
                id: person.id.0,
                name: person.display_name,
                email: person.email,
                department: person.department,
                job_title: person.job_title,
                guest: person.kind == crate::domain::model::UserKind::Guest,
                active,
                manager: person.manager_id.map(name),
            },
            roles,
            access,
            hidden: hidden.len(),
            administrator,
            catalog_creator,
            may_change_global_roles: self.administrator(actor).is_ok(),
        })
    }

    /// The directory a page at a time: active people by name after the cursor, and the
    /// groups. Administrators browse it; others who look people up are told to search.
    #[tracing::instrument(name = "directory", skip_all, fields(actor = actor.id().0))]
    pub async fn directory(&self, actor: &Actor, after: Option<&str>) -> DomainResult<Directory> {
        if !gives_roles_or_access(actor) {
            return Err(DomainError::forbidden("only people who give others roles or access look people up"));
        }
        let now = to_ms(self.now());
        if self.administrator(actor).is_err() {
            return Ok(Directory { may_browse: false, people: Page::empty(now), groups: Vec::new() });
        }
        let after = match after.filter(|a| !a.is_empty()) {
            Some(cursor) => Some(
                super::catalog::decode_cursor(cursor)
                    .ok_or_else(|| DomainError::invalid("after", "not a page of this list"))?,
            ),
            None => None,
        };
        let mut conn = self.db.pool().acquire().await?;
        let mut people = directory::active_people_after(
            &mut conn,
            after.as_ref().map(|(name, id)| (name.as_str(), *id)),
            DIRECTORY_PAGE + 1,
        )
        .await?;
        let more = people.len() as i64 > DIRECTORY_PAGE;
        people.truncate(DIRECTORY_PAGE as usize);
        let next =
            if more { people.last().map(|u| super::catalog::encode_cursor(&u.display_name, u.id.0)) } else { None };
        drop(conn);
        let groups = self.directory_groups(actor).await?;
        let items =
            people.into_iter().map(|u| PersonOption { id: u.id.0, name: u.display_name, email: u.email }).collect();
        Ok(Directory { may_browse: true, people: Page { items, next, as_of: now }, groups })
    }

    /// The directory's groups, by name (administrators: the directory is theirs to browse).
    #[tracing::instrument(name = "directory_groups", skip_all, fields(actor = actor.id().0))]
    pub async fn directory_groups(&self, actor: &Actor) -> DomainResult<Vec<GroupSummary>> {
        self.administrator(actor)?;
        let mut conn = self.db.pool().acquire().await?;
        Ok(directory::group_summaries(&mut conn, 500)
            .await?
            .into_iter()
            .map(|(id, name, source, members)| GroupSummary { id: id.0, name, source, members })
            .collect())
    }

    /// The one active person an entry of a picker names: an id the browser picked, or an
    /// email typed by hand (without JavaScript). Anything else asks for the email.
    pub(super) async fn resolve_person(&self, conn: &mut crate::store::Conn, entry: &str) -> DomainResult<UserId> {
        let entry = entry.trim();
        let not_found = || DomainError::invalid("person", "no active person with that email; type their full email");
        let user = match entry.parse::<i64>() {
            Ok(id) => directory::user(conn, UserId(id)).await?,
            Err(_) if entry.contains('@') => directory::user_by_email(conn, entry).await?.map(|(u, _)| u),
            Err(_) => return Err(not_found()),
        };
        user.filter(|u| u.is_active()).map(|u| u.id).ok_or_else(not_found)
    }
}

/// A catalog's row in the admin list (its settings, version and counts).
async fn summary_of(conn: &mut Conn, catalog: CatalogId) -> DomainResult<CatalogSummary> {
    let row = catalog::catalog_summaries(conn, Some(&[catalog])).await?.pop();
    Ok(summary(row.ok_or_else(|| DomainError::not_found("catalog"))?))
}

/// Who holds a role in a catalog, by role then name.
async fn holders_of(conn: &mut Conn, catalog: CatalogId) -> DomainResult<Vec<RoleHolder>> {
    Ok(catalog::role_holders(conn, catalog)
        .await?
        .into_iter()
        .filter_map(|(id, role, name, email)| {
            Some(RoleHolder { user_id: id.0, name, email, role: CatalogRole::parse(&role)? })
        })
        .collect())
}

/// A catalog's resources by name, each with its roles.
async fn resources_of(conn: &mut Conn, catalog: CatalogId) -> DomainResult<Vec<CatalogResource>> {
    Ok(catalog::catalog_resources(conn, catalog)
        .await?
        .into_iter()
        .map(|r| CatalogResource {
            id: r.id.0,
            name: r.name,
            description: r.description,
            system: r.system,
            roles: r.roles,
            role_ids: r.role_ids.into_iter().map(|id| id.0).collect(),
        })
        .collect())
}

impl<S: Scope> super::capability::InCatalog<'_, S> {
    /// The catalog's row of the admin list: its settings, version and counts.
    #[tracing::instrument(name = "catalog_summary", skip_all, fields(actor = self.actor.id().0, catalog = self.catalog.0))]
    pub async fn summary(&self) -> DomainResult<CatalogSummary> {
        let mut conn = self.service.db.pool().acquire().await?;
        summary_of(&mut conn, self.catalog).await
    }

    /// Who holds a role in the catalog.
    #[tracing::instrument(name = "catalog_holders", skip_all, fields(actor = self.actor.id().0, catalog = self.catalog.0))]
    pub async fn holders(&self) -> DomainResult<Vec<RoleHolder>> {
        let mut conn = self.service.db.pool().acquire().await?;
        holders_of(&mut conn, self.catalog).await
    }

    /// The catalog's resources, with their roles and the roles' ids.
    #[tracing::instrument(name = "catalog_resources", skip_all, fields(actor = self.actor.id().0, catalog = self.catalog.0))]
    pub async fn resources(&self) -> DomainResult<Vec<CatalogResource>> {
        let mut conn = self.service.db.pool().acquire().await?;
        resources_of(&mut conn, self.catalog).await
    }

    /// The catalog's settings, with the version a change names.
    #[tracing::instrument(name = "catalog_settings", skip_all, fields(actor = self.actor.id().0, catalog = self.catalog.0))]
    pub async fn settings(&self) -> DomainResult<crate::domain::model::Catalog> {
        let mut conn = self.service.db.pool().acquire().await?;
        catalog::catalog(&mut conn, self.catalog).await?.ok_or_else(|| DomainError::not_found("catalog"))
    }

    /// The catalog's admin page.
    #[tracing::instrument(name = "catalog_admin", skip_all, fields(actor = self.actor.id().0, catalog = self.catalog.0))]
    pub async fn admin_view(&self) -> DomainResult<CatalogAdmin> {
        let mut conn = self.service.db.pool().acquire().await?;
        let summary = summary_of(&mut conn, self.catalog).await?;
        let holders = holders_of(&mut conn, self.catalog).await?;
        let resources = resources_of(&mut conn, self.catalog).await?;
        let packages = catalog::packages_in(&mut conn, self.catalog)
            .await?
            .into_iter()
            .map(|p| CatalogPackage { id: p.id.0, name: p.name, enabled: p.enabled, hidden: p.hidden })
            .collect();
        // Resources are added by name to the built-in system; a connected system's groups are
        // bound by their id there, by administrators.
        let administers = self.actor.can(crate::domain::authz::Permission::Administer);
        let (systems, connected): (Vec<_>, Vec<_>) = catalog::resource_systems(&mut conn)
            .await?
            .into_iter()
            .map(|(id, name, kind)| SystemOption { id: id.0, name, kind })
            .partition(|s| s.kind == "builtin");
        let connected = if administers { connected } else { Vec::new() };
        let may_own = self.service.catalog_owner(self.actor, self.catalog).is_ok();
        let may_build = self.service.package_manager(self.actor, self.catalog).is_ok();
        let drafts =
            if may_build { super::drafts::summaries(&mut conn, self.actor.id(), self.catalog).await? } else { vec![] };
        Ok(CatalogAdmin { summary, holders, resources, packages, systems, connected, may_own, may_build, drafts })
    }
}

impl CatalogOwner<'_> {
    /// Give the role in this catalog to the person a picker names (an id, or an email).
    #[tracing::instrument(name = "grant_catalog_role_to", skip_all, fields(actor = self.actor.id().0, catalog = self.catalog.0, role = role.as_str()))]
    pub async fn grant_role_to(&self, person: &str, role: CatalogRole) -> DomainResult<UserId> {
        let user = {
            let mut conn = self.service.db.pool().acquire().await?;
            self.service.resolve_person(&mut conn, person).await?
        };
        self.grant_role(user, Role::from(role)).await?;
        Ok(user)
    }

    /// Take a role in this catalog back. The catalog keeps at least one owner.
    #[tracing::instrument(name = "revoke_catalog_role", skip_all, fields(actor = self.actor.id().0, catalog = self.catalog.0, user = user.0, role = role.as_str()))]
    pub async fn revoke_role(&self, user: UserId, role: CatalogRole) -> DomainResult<()> {
        let (service, actor) = (self.service, self.actor);
        let mut tx = service.db.begin().await?;
        // Changes to who owns a catalog take turns (the catalog's row lock on PostgreSQL; the
        // one writer on SQLite): two owners taking each other's role at once cannot both
        // succeed, since the second counts after the first has committed.
        self.lock(&mut tx).await?;
        if !directory::revoke_catalog_role(&mut tx, user, Role::from(role), self.catalog).await? {
            return Err(DomainError::not_found("role"));
        }
        if role == CatalogRole::CatalogOwner
            && directory::count_holders(&mut tx, Role::CatalogOwner, self.catalog).await? == 0
        {
            return Err(DomainError::Conflict("a catalog keeps at least one owner: add another owner first".into()));
        }
        service.checkpoint("catalog.role_revoking").await;
        let event = AuditEvent::new(Some(actor.id()), "role.revoked", "user", user.0)
            .before(json!({"role": role.as_str(), "catalog": self.catalog}));
        service.commit(tx, vec![event]).await
    }

    /// Delete the catalog: refused, with the reason, while any of its packages has live
    /// assignments or open requests. The row stays (history names it), marked deleted.
    #[tracing::instrument(name = "delete_catalog", skip_all, fields(actor = self.actor.id().0, catalog = self.catalog.0))]
    pub async fn delete_catalog(&self) -> DomainResult<()> {
        let (service, actor) = (self.service, self.actor);
        let now = service.now();
        let mut tx = service.db.begin().await?;
        self.lock(&mut tx).await?;
        let before = catalog::catalog(&mut tx, self.catalog).await?.ok_or_else(|| DomainError::not_found("catalog"))?;
        let blockers = catalog::deletion_blockers(&mut tx, self.catalog).await?;
        if !blockers.is_empty() {
            let reasons: Vec<String> = blockers
                .iter()
                .map(|(name, live, open)| match (live, open) {
                    (0, open) => format!("{name}: {open} open request(s)"),
                    (live, 0) => format!("{name}: {live} live assignment(s)"),
                    (live, open) => format!("{name}: {live} live assignment(s), {open} open request(s)"),
                })
                .collect();
            return Err(DomainError::Conflict(format!(
                "this catalog's packages are still in use — remove their assignments and settle their requests first ({})",
                reasons.join("; ")
            )));
        }
        let marked = catalog::mark_deleted(&mut tx, self.catalog, to_ms(now)).await.map_err(|e| {
            if crate::store::is_unique_violation(&e) {
                DomainError::Conflict(
                    "another catalog holds this catalog's name as deleted; rename this one first".into(),
                )
            } else {
                e.into()
            }
        })?;
        if !marked {
            return Err(DomainError::not_found("catalog"));
        }
        // Builder drafts in it can never be finished: they go with it.
        crate::store::drafts::delete_drafts_in(&mut tx, self.catalog).await?;
        let event =
            AuditEvent::new(Some(actor.id()), "catalog.deleted", "catalog", self.catalog.0).before(json!(before));
        service.commit(tx, vec![event]).await
    }
}
