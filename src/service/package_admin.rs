//! A package's assignments for the admin area: the list (filtered by state, searched by
//! person, newest first, a page at a time), its CSV export, direct assignment by a person
//! picker's entry and removal.

use chrono::{DateTime, NaiveDate, Utc};

use super::capability::{InCatalog, MayAssign, Scope};
use super::{RequestOutcome, Service};
use crate::domain::ids::*;
use crate::domain::request::AssignmentState;
use crate::domain::{DomainError, DomainResult};
use crate::store::{assignments, catalog, to_ms, Conn};
use crate::views::{AssignmentFilter, PackageAssignment, PackageAssignments, Page, PolicyOption};

/// Assignments per page of the list.
pub const ASSIGNMENTS_PAGE: i64 = 50;
/// Assignments per page of the export.
const EXPORT_PAGE: i64 = 1000;

/// The states a filter's `state` word names.
fn states(word: &str) -> DomainResult<Vec<AssignmentState>> {
    use AssignmentState::*;
    Ok(match word.trim() {
        "" | "live" => vec![Delivering, Delivered, PartiallyDelivered, DeliveryFailed],
        "ended" => vec![Expired, Removed],
        "all" => AssignmentState::ALL.to_vec(),
        other => vec![AssignmentState::parse(other).ok_or_else(|| DomainError::invalid("state", "no such state"))?],
    })
}

/// The search text: trimmed, lowercase, at most 200 characters; `None` when empty.
fn person_prefix(q: &str) -> DomainResult<Option<String>> {
    let q = q.trim().to_lowercase();
    if q.chars().count() > 200 {
        return Err(DomainError::invalid("q", "at most 200 characters"));
    }
    Ok((!q.is_empty()).then_some(q))
}

fn view(r: assignments::PackageAssignmentRow) -> PackageAssignment {
    PackageAssignment {
        id: r.id.0,
        user_id: r.user.0,
        name: r.name,
        email: r.email,
        state: r.state,
        start_at: to_ms(r.start_at),
        end_at: r.end_at.map(to_ms),
        policy: r.policy,
        request_id: r.request.map(|r| r.0),
    }
}

impl<S: Scope> InCatalog<'_, S> {
    /// The package, if it is in this handle's catalog.
    async fn own_package(
        &self,
        conn: &mut Conn,
        package: PackageId,
    ) -> DomainResult<crate::domain::model::AccessPackage> {
        // A package of a deleted catalog is gone with it.
        let pkg =
            catalog::live_package(conn, package).await?.ok_or_else(|| DomainError::not_found("access package"))?;
        self.owns(pkg.catalog_id, "access package")?;
        Ok(pkg)
    }

    /// The package's settings as they are now, with the version a change must name.
    #[tracing::instrument(name = "package_settings", skip_all, fields(actor = self.actor.id().0, package = package.0))]
    pub async fn package_settings(&self, package: PackageId) -> DomainResult<crate::domain::model::AccessPackage> {
        let mut conn = self.service.db.pool().acquire().await?;
        self.own_package(&mut conn, package).await
    }

    /// The package's policies as the engine keeps them, each with the version a change names.
    #[tracing::instrument(name = "package_policies", skip_all, fields(actor = self.actor.id().0, package = package.0))]
    pub async fn package_policies(&self, package: PackageId) -> DomainResult<Vec<crate::domain::policy::Policy>> {
        let mut conn = self.service.db.pool().acquire().await?;
        self.own_package(&mut conn, package).await?;
        Ok(catalog::policies_of(&mut conn, &[package]).await?)
    }

    /// A page of the package's assignments, newest first, before the assignment `before`.
    #[tracing::instrument(name = "package_assignments", skip_all, fields(actor = self.actor.id().0, package = package.0))]
    pub async fn package_assignments(
        &self,
        package: PackageId,
        filter: &AssignmentFilter,
        before: Option<i64>,
    ) -> DomainResult<PackageAssignments> {
        let states = states(&filter.state)?;
        let prefix = person_prefix(&filter.q)?;
        let mut conn = self.service.db.pool().acquire().await?;
        let pkg = self.own_package(&mut conn, package).await?;
        let cat =
            catalog::catalog(&mut conn, pkg.catalog_id).await?.ok_or_else(|| DomainError::not_found("catalog"))?;
        let mut rows = assignments::package_assignments(
            &mut conn,
            package,
            &states,
            prefix.as_deref(),
            before.unwrap_or(i64::MAX),
            ASSIGNMENTS_PAGE + 1,
        )
        .await?;
        let more = rows.len() as i64 > ASSIGNMENTS_PAGE;
        rows.truncate(ASSIGNMENTS_PAGE as usize);
        let next = if more { rows.last().map(|r| r.id.0.to_string()) } else { None };
        let policies = catalog::policies_of(&mut conn, &[package])
            .await?
            .into_iter()
            .map(|p| PolicyOption { id: p.id.0, name: p.name })
            .collect();
        let roles_syncing = crate::store::role_sync::still_to_sync(&mut conn, package).await?;
        Ok(PackageAssignments {
            package_id: pkg.id.0,
            package: pkg.name,
            catalog_id: cat.id.0,
            catalog: cat.name,
            assignments: Page { items: rows.into_iter().map(view).collect(), next, as_of: to_ms(self.service.now()) },
            policies,
            may_assign: self.service.assignment_manager(self.actor, self.catalog).is_ok(),
            may_build: self.service.package_manager(self.actor, self.catalog).is_ok(),
            roles_syncing,
        })
    }

    /// Every assignment of the package the filter keeps, for a CSV download, read a page at a
    /// time (checked now: the package is in this catalog, the filter parses).
    #[tracing::instrument(name = "package_assignments_export", skip_all, fields(actor = self.actor.id().0, package = package.0))]
    pub async fn export_assignments(
        &self,
        package: PackageId,
        filter: &AssignmentFilter,
    ) -> DomainResult<AssignmentExport> {
        let states = states(&filter.state)?;
        let prefix = person_prefix(&filter.q)?;
        let mut conn = self.service.db.pool().acquire().await?;
        self.own_package(&mut conn, package).await?;
        Ok(AssignmentExport {
            service: self.service.clone(),
            actor: self.actor.id(),
            package,
            states,
            prefix,
            before: i64::MAX,
            done: false,
        })
    }
}

impl<S: MayAssign> InCatalog<'_, S> {
    /// Assign the person a picker names (an id or an email) to a package of this catalog,
    /// under one of its policies, from `start` until `end` (`YYYY-MM-DD` days, UTC; an empty
    /// start: now; an empty end: as long as the policy allows).
    #[tracing::instrument(name = "assign_person", skip_all, fields(actor = self.actor.id().0, package = package.0))]
    pub async fn assign_person(
        &self,
        package: PackageId,
        person: &str,
        policy: PolicyId,
        (start, end): (&str, &str),
        justification: &str,
    ) -> DomainResult<RequestOutcome> {
        self.assign_person_marked(package, person, policy, (start, end), justification, None).await
    }

    /// [`Self::assign_person`] for a bulk job's row (`mark`: job and line), recorded with it.
    pub(super) async fn assign_person_marked(
        &self,
        package: PackageId,
        person: &str,
        policy: PolicyId,
        (start, end): (&str, &str),
        justification: &str,
        mark: Option<(i64, i64)>,
    ) -> DomainResult<RequestOutcome> {
        // A start is the beginning of its day, an end the end of its day (UTC).
        let day = |field: &str, text: &str, at: (u32, u32, u32)| -> DomainResult<Option<DateTime<Utc>>> {
            match text.trim() {
                "" => Ok(None),
                day => {
                    let bad = || DomainError::invalid(field, "a date like 2027-03-31");
                    let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| bad())?;
                    let t = day.and_hms_opt(at.0, at.1, at.2).ok_or_else(bad)?;
                    Ok(Some(DateTime::<Utc>::from_naive_utc_and_offset(t, Utc)))
                }
            }
        };
        let (start, end) = (day("start", start, (0, 0, 0))?, day("end", end, (23, 59, 59))?);
        let user = {
            let mut conn = self.service.db.pool().acquire().await?;
            self.service.resolve_person(&mut conn, person).await?
        };
        self.assign_directly_marked(user, package, policy, (start, end), justification, mark).await
    }
}

/// A package's assignments being exported, from [`InCatalog::export_assignments`]. Each page
/// takes a connection from the pool for its own read only.
#[derive(Debug)]
pub struct AssignmentExport {
    service: Service,
    actor: UserId,
    package: PackageId,
    states: Vec<AssignmentState>,
    prefix: Option<String>,
    before: i64,
    done: bool,
}

impl AssignmentExport {
    /// The next assignments, newest first; `None` once every one was given.
    #[tracing::instrument(name = "package_assignments_export_page", skip_all, fields(actor = self.actor.0, package = self.package.0))]
    pub async fn next_page(&mut self) -> DomainResult<Option<Vec<PackageAssignment>>> {
        if self.done {
            return Ok(None);
        }
        let mut conn = self.service.db.pool().acquire().await?;
        let rows = assignments::package_assignments(
            &mut conn,
            self.package,
            &self.states,
            self.prefix.as_deref(),
            self.before,
            EXPORT_PAGE,
        )
        .await?;
        self.done = (rows.len() as i64) < EXPORT_PAGE;
        let Some(last) = rows.last() else { return Ok(None) };
        self.before = last.id.0;
        Ok(Some(rows.into_iter().map(view).collect()))
    }
}
