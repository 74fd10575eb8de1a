//! The admin area's operations: catalogs, a package's settings (with `ETag`/`If-Match`), the
//! audit trail. Each needs the `admin` scope, and then only does what the owner's roles let
//! them do in the portal, through the same capability handles the pages use.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{body, path_id, query, Caller, Problem};
use crate::domain::ids::{CatalogId, PackageId, PolicyId, UserId};
use crate::domain::model::{AccessPackage, Role};
use crate::domain::policy::Policy;
use crate::domain::token::Scope;
use crate::states::CatalogRole;
use crate::views::{
    AssignmentFilter, AuditEventView, AuditFilter, BulkJobView, CatalogList, CatalogResource, CatalogSummary,
    GroupSummary, PackageAssignment, Page, PersonAccess, PersonOption, RoleHolder,
};

/// The `ETag` of an object at `version`.
pub(super) fn etag(version: i64) -> HeaderValue {
    // Digits and quotes only: always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The version a change may be made against: the current one, when `If-Match` names it (or is
/// `*`). Without `If-Match`, 428: a change made blind could undo one the caller never saw.
/// Tags compare strongly (RFC 9110 13.1.1): a weak tag `W/"…"` never matches.
pub(super) fn matching(headers: &HeaderMap, current: i64) -> Result<i64, Problem> {
    matching_tag(headers, &current.to_string()).map(|()| current)
}

/// [`matching`] for an object whose tag is not a version number (`current`, unquoted).
pub(super) fn matching_tag(headers: &HeaderMap, current: &str) -> Result<(), Problem> {
    let lines = headers.get_all(header::IF_MATCH);
    if lines.iter().next().is_none() {
        return Err(Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition-required",
            "If-Match required",
            "send the ETag you read as If-Match, so a change made meanwhile is not overwritten",
        ));
    }
    // Several lines are one list (RFC 9110 5.3).
    let mut tags = Vec::new();
    for line in lines {
        let line = line.to_str().map_err(|_| Problem::invalid(Some("If-Match"), "not a list of entity tags"))?;
        tags.extend(line.split(',').map(str::trim));
    }
    let wanted = format!("\"{current}\"");
    if tags.iter().any(|tag| *tag == "*" || *tag == wanted) {
        Ok(())
    } else {
        Err(Problem::from(crate::domain::DomainError::Stale(format!(
            "this changed since you read it (it is at {wanted} now): read it again"
        ))))
    }
}

#[utoipa::path(get, path = "/api/v1/catalogs", tag = "catalogs", security(("bearer" = ["admin"])),
    responses((status = 200, body = CatalogList, description = "The catalogs the caller manages (every one for administrators)")))]
pub(super) async fn catalogs(caller: Caller) -> Result<Json<CatalogList>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    Ok(Json(caller.service.admin_catalogs(actor).await?))
}

/// A new catalog; its maker becomes its owner.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewCatalog {
    name: String,
    #[serde(default)]
    description: String,
    /// Whether people of connected organizations may ask for its packages.
    #[serde(default)]
    externally_visible: bool,
}

#[utoipa::path(post, path = "/api/v1/catalogs", tag = "catalogs", security(("bearer" = ["admin"])), request_body = NewCatalog,
    responses((status = 201, body = CatalogSummary, description = "Made; `Location` is its address"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "A catalog has that name")))]
pub(super) async fn create_catalog(
    caller: Caller,
    b: Result<Json<NewCatalog>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let creator = caller.service.catalog_creator(actor)?;
    let b = body(b)?;
    let id = creator.create_catalog(&b.name, &b.description, b.externally_visible).await?;
    // As it was made (read again, a failure would hide that it was).
    let summary = CatalogSummary {
        id: id.0,
        name: b.name.trim().to_owned(),
        description: b.description.trim().to_owned(),
        enabled: true,
        externally_visible: b.externally_visible,
        packages: 0,
        resources: 0,
        version: 1,
    };
    created(Json(summary).into_response(), &format!("/api/v1/catalogs/{}", id.0))
}

#[utoipa::path(get, path = "/api/v1/catalogs/{id}", tag = "catalogs", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = CatalogSummary, headers(("ETag" = String, description = "Send it back as If-Match to change it"))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn catalog(caller: Caller, id: Result<Path<i64>, PathRejection>) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let reader = caller.service.catalog_reader(actor, CatalogId(path_id(id)?))?;
    Ok(catalog_with_etag(reader.summary().await?))
}

/// `body` as JSON, tagged with its `version`.
pub(super) fn tagged(version: i64, body: impl Serialize) -> Response {
    ([(header::ETAG, etag(version))], Json(body)).into_response()
}

fn catalog_with_etag(summary: CatalogSummary) -> Response {
    tagged(summary.version, summary)
}

/// The catalog settings to change; those left out stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CatalogChange {
    name: Option<String>,
    description: Option<String>,
    /// Nobody may ask for the packages of a disabled catalog; what was granted stays.
    enabled: Option<bool>,
    /// Whether people of connected organizations may ask for its packages.
    externally_visible: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/catalogs/{id}", tag = "catalogs", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    request_body = CatalogChange,
    responses((status = 200, body = CatalogSummary, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "Another catalog has that name"),
              (status = 412, body = Problem, content_type = "application/problem+json", description = "Changed since the ETag sent was read"),
              (status = 428, body = Problem, content_type = "application/problem+json", description = "No If-Match")))]
pub(super) async fn change_catalog(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    headers: HeaderMap,
    b: Result<Json<CatalogChange>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let id = CatalogId(path_id(id)?);
    let owner = caller.service.catalog_owner(actor, id)?;
    let b = body(b)?;
    if let Some(description) = &b.description {
        super::at_most("description", description, 2000)?;
    }
    let now = owner.settings().await?;
    // Made against the version the caller read; the update is guarded by it (412 when
    // another change came between this read and the write).
    let version = matching(&headers, now.version)?;
    let changed = crate::domain::model::Catalog {
        // Trimmed as the service stores it, so a name sent with spaces around is no change.
        name: b.name.map_or_else(|| now.name.clone(), |n| n.trim().to_owned()),
        description: b.description.map_or_else(|| now.description.clone(), |d| d.trim().to_owned()),
        enabled: b.enabled.unwrap_or(now.enabled),
        externally_visible: b.externally_visible.unwrap_or(now.externally_visible),
        version,
        ..now.clone()
    };
    if changed != now {
        owner.update_catalog(changed).await?;
    }
    Ok(catalog_with_etag(owner.summary().await?))
}

#[utoipa::path(delete, path = "/api/v1/catalogs/{id}", tag = "catalogs", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 204, description = "Deleted; its history stays in the audit trail"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "Its packages are in use")))]
pub(super) async fn delete_catalog(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let actor = caller.with(Scope::Admin)?;
    caller.service.catalog_owner(actor, CatalogId(path_id(id)?))?.delete_catalog().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A package's settings, as its managers change them.
#[derive(Serialize, ToSchema)]
pub(super) struct PackageSettings {
    id: i64,
    catalog_id: i64,
    name: String,
    description: String,
    /// Left out of the list of packages people browse (still requestable by link).
    hidden: bool,
    /// Nobody may ask for a disabled package; what was granted stays.
    enabled: bool,
    /// The version the `ETag` names.
    version: i64,
}

impl From<AccessPackage> for PackageSettings {
    fn from(p: AccessPackage) -> Self {
        PackageSettings {
            id: p.id.0,
            catalog_id: p.catalog_id.0,
            name: p.name,
            description: p.description,
            hidden: p.hidden,
            enabled: p.enabled,
            version: p.version,
        }
    }
}

fn with_etag(p: AccessPackage) -> Response {
    tagged(p.version, PackageSettings::from(p))
}

#[utoipa::path(get, path = "/api/v1/packages/{id}/settings", tag = "catalogs", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = PackageSettings, headers(("ETag" = String, description = "Send it back as If-Match to change them"))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn package_settings(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let id = PackageId(path_id(id)?);
    let reader = caller.service.package_reader(actor, id).await?;
    Ok(with_etag(reader.package_settings(id).await?))
}

/// The settings to change; those left out stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsChange {
    name: Option<String>,
    description: Option<String>,
    hidden: Option<bool>,
    enabled: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/packages/{id}/settings", tag = "catalogs", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    request_body = SettingsChange,
    responses((status = 200, body = PackageSettings, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "Another package of the catalog has that name"),
              (status = 412, body = Problem, content_type = "application/problem+json", description = "Changed since the ETag sent was read"),
              (status = 428, body = Problem, content_type = "application/problem+json", description = "No If-Match")))]
pub(super) async fn change_package_settings(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    headers: HeaderMap,
    b: Result<Json<SettingsChange>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let id = PackageId(path_id(id)?);
    let manager = caller.service.package_manager_of(actor, id).await?;
    let b = body(b)?;
    let now = manager.package_settings(id).await?;
    // The change is made against the version the caller read: the update is guarded by it,
    // so one made between this read and the write is refused too (412), not overwritten.
    let version = matching(&headers, now.version)?;
    let changed = AccessPackage {
        // Trimmed as the service stores it, so a name sent with spaces around is no change.
        name: b.name.map_or_else(|| now.name.clone(), |n| n.trim().to_owned()),
        description: b.description.unwrap_or_else(|| now.description.clone()),
        hidden: b.hidden.unwrap_or(now.hidden),
        enabled: b.enabled.unwrap_or(now.enabled),
        version,
        ..now.clone()
    };
    if changed == now {
        // Nothing to change: no new version, no audit event.
        return Ok(with_etag(now));
    }
    manager.update_package(changed).await?;
    Ok(with_etag(manager.package_settings(id).await?))
}

/// What the audit trail is narrowed to; every field optional.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// A person's email, or their id: what they did.
    who: Option<String>,
    /// `request`, `assignment`, `package`, `catalog`, `user`, …
    object_type: Option<String>,
    object_id: Option<String>,
    /// `request.approved`, `assignment.created`, …
    action: Option<String>,
    /// From this day on (`YYYY-MM-DD`, UTC).
    from: Option<String>,
    /// Until this day, with it (`YYYY-MM-DD`, UTC).
    to: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit", security(("bearer" = ["admin"])), params(AuditQuery),
    responses((status = 200, body = Page<AuditEventView>, description = "Events newest first")))]
pub(super) async fn audit_events(
    caller: Caller,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Page<AuditEventView>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let q = query(q)?;
    let filter = AuditFilter {
        who: q.who.unwrap_or_default(),
        object_type: q.object_type.unwrap_or_default(),
        object_id: q.object_id.unwrap_or_default(),
        action: q.action.unwrap_or_default(),
        from: q.from.unwrap_or_default(),
        to: q.to.unwrap_or_default(),
    };
    Ok(Json(caller.service.audit_log(actor, &filter, cursor(q.cursor)?).await?))
}

/// A package's assignments: which, and from where.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AssignmentQuery {
    /// `live` (the default), `ended`, `all`, or one state's word.
    state: Option<String>,
    /// The start of a person's email or name.
    q: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/packages/{id}/assignments", tag = "catalogs", security(("bearer" = ["admin"])),
    params(("id" = i64, Path), AssignmentQuery),
    responses((status = 200, body = Page<PackageAssignment>, description = "Newest first"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn package_assignments(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    q: Result<Query<AssignmentQuery>, QueryRejection>,
) -> Result<Json<Page<PackageAssignment>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let id = PackageId(path_id(id)?);
    let q = query(q)?;
    let filter = AssignmentFilter { state: q.state.unwrap_or_default(), q: q.q.unwrap_or_default() };
    let before = cursor(q.cursor)?;
    let reader = caller.service.package_reader(actor, id).await?;
    Ok(Json(reader.package_assignments(id, &filter, before).await?.assignments))
}

/// A keyset cursor as a page's `next` gave it.
pub(super) fn cursor(c: Option<String>) -> Result<Option<i64>, Problem> {
    c.map(|c| c.parse().map_err(|_| Problem::invalid(Some("cursor"), "not a cursor"))).transpose()
}

/// Assigning someone directly (an `admin_add` request, approved by its maker).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewAssignment {
    /// The person: their email, or their id.
    person: String,
    /// Under which of the package's policies.
    policy_id: i64,
    /// From this day (`YYYY-MM-DD`, UTC); left out: now.
    start: Option<String>,
    /// Until this day (`YYYY-MM-DD`, UTC); left out: as long as the policy allows.
    end: Option<String>,
    #[serde(default)]
    justification: String,
}

#[utoipa::path(post, path = "/api/v1/packages/{id}/assignments", tag = "catalogs", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = NewAssignment,
    responses((status = 201, body = super::Outcome, description = "Assigned: the access is being delivered"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "Already assigned, or separation of duties")))]
pub(super) async fn assign(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NewAssignment>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let id = PackageId(path_id(id)?);
    let manager = caller.service.assignment_manager_of(actor, id).await?;
    let b = body(b)?;
    super::at_most("person", &b.person, 320)?;
    super::at_most("justification", &b.justification, crate::ui::api::MAX_JUSTIFICATION)?;
    let (start, end) = (b.start.unwrap_or_default(), b.end.unwrap_or_default());
    let policy = crate::domain::ids::PolicyId(b.policy_id);
    let outcome = manager.assign_person(id, &b.person, policy, (&start, &end), &b.justification).await?;
    Ok((StatusCode::CREATED, Json(super::Outcome::from(outcome))).into_response())
}

/// Why an assignment is taken back.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RemovalQuery {
    reason: Option<String>,
}

#[utoipa::path(delete, path = "/api/v1/packages/{id}/assignments/{assignment}", tag = "catalogs", security(("bearer" = ["admin"])),
    params(("id" = i64, Path), ("assignment" = i64, Path), RemovalQuery),
    responses((status = 204, description = "Removed: the access is being taken back"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "It ended already")))]
pub(super) async fn remove_assignment(
    caller: Caller,
    ids: Result<Path<(i64, i64)>, PathRejection>,
    q: Result<Query<RemovalQuery>, QueryRejection>,
) -> Result<StatusCode, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let (package, assignment) = super::path_ids(ids)?;
    let package = PackageId(package);
    let reason = query(q)?.reason.unwrap_or_default();
    super::at_most("reason", &reason, crate::ui::api::MAX_JUSTIFICATION)?;
    let manager = caller.service.assignment_manager_of(actor, package).await?;
    manager.remove_from_package(package, crate::domain::ids::AssignmentId(assignment), &reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// People to find.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PeopleQuery {
    /// The start of their email or name.
    q: String,
}

#[utoipa::path(get, path = "/api/v1/people", tag = "catalogs", security(("bearer" = ["admin"])), params(PeopleQuery),
    responses((status = 200, body = Vec<PersonOption>, description = "Active people whose email or name starts so, for those who give roles or access")))]
pub(super) async fn people(
    caller: Caller,
    q: Result<Query<PeopleQuery>, QueryRejection>,
) -> Result<Json<Vec<PersonOption>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let q = query(q)?;
    super::at_most("q", &q.q, crate::ui::api::MAX_SEARCH)?;
    Ok(Json(caller.service.find_people(actor, &q.q).await?))
}

#[utoipa::path(get, path = "/api/v1/directory", tag = "people", security(("bearer" = ["admin"])), params(super::PageQuery),
    responses((status = 200, body = Page<PersonOption>, description = "Active people by name, a page at a time (administrators)")))]
pub(super) async fn directory(
    caller: Caller,
    q: Result<Query<super::PageQuery>, QueryRejection>,
) -> Result<Json<Page<PersonOption>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    caller.service.administrator(actor)?;
    let q = query(q)?;
    Ok(Json(caller.service.directory(actor, q.cursor.as_deref()).await?.people))
}

/// A role held across every catalog.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(super) enum GlobalRole {
    Administrator,
    CatalogCreator,
}

/// The person and the global role a path names: 422 naming what cannot be read.
fn person_and_role(p: Result<Path<(i64, GlobalRole)>, PathRejection>) -> Result<(UserId, Role), Problem> {
    // Which part could not be read, the text says.
    let Path((person, role)) = p.map_err(|e| Problem::invalid(None, e.body_text()))?;
    let role = match role {
        GlobalRole::Administrator => Role::Administrator,
        GlobalRole::CatalogCreator => Role::CatalogCreator,
    };
    Ok((UserId(person), role))
}

#[utoipa::path(put, path = "/api/v1/people/{id}/roles/{role}", tag = "people", security(("bearer" = ["admin"])),
    params(("id" = i64, Path), ("role" = GlobalRole, Path)),
    responses((status = 204, description = "Given (administrators), audited; holding it already changes nothing"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn grant_global_role(
    caller: Caller,
    p: Result<Path<(i64, GlobalRole)>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    let (user, role) = person_and_role(p)?;
    admin.grant_role(user, role).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/people/{id}/roles/{role}", tag = "people", security(("bearer" = ["admin"])),
    params(("id" = i64, Path), ("role" = GlobalRole, Path)),
    responses((status = 204, description = "Taken back (administrators), audited"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "They do not hold it"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "The last administrator")))]
pub(super) async fn revoke_global_role(
    caller: Caller,
    p: Result<Path<(i64, GlobalRole)>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    let (user, role) = person_and_role(p)?;
    admin.revoke_role(user, role).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/catalogs/{id}/resources", tag = "catalogs", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = Vec<CatalogResource>, description = "The catalog's resources, with their roles"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn catalog_resources(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Vec<CatalogResource>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let reader = caller.service.catalog_reader(actor, CatalogId(path_id(id)?))?;
    Ok(Json(reader.resources().await?))
}

/// A resource to add to a catalog, from a resource system, with its roles.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewResource {
    /// The system it is in (the built-in one takes any name).
    system_id: i64,
    name: String,
    #[serde(default)]
    description: String,
    /// Its roles' names: what packages can grant.
    roles: Vec<String>,
    /// Its id in a connected system (a SCIM group's id, an LDAP group's DN): binding that
    /// group, which only administrators do, with exactly one role. Left out for the built-in
    /// system, which makes one from the name.
    external_id: Option<String>,
}

/// The roles a new resource has, by id.
#[derive(Serialize, ToSchema)]
pub(super) struct NewRoles {
    role_ids: Vec<i64>,
}

#[utoipa::path(post, path = "/api/v1/catalogs/{id}/resources", tag = "catalogs", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = NewResource,
    responses((status = 201, body = NewRoles, description = "Added: packages of the catalog can grant its roles"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "The catalog has a resource of that name")))]
pub(super) async fn add_resource(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NewResource>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let owner = caller.service.catalog_owner(actor, CatalogId(path_id(id)?))?;
    let b = body(b)?;
    super::at_most("description", &b.description, 2000)?;
    if b.roles.len() > 100 {
        return Err(Problem::invalid(Some("roles"), "at most 100 roles"));
    }
    let roles: Vec<&str> = b.roles.iter().map(|r| r.trim()).filter(|r| !r.is_empty()).collect();
    for role in &roles {
        super::at_most("roles", role, crate::ui::api::MAX_NAME)?;
    }
    let system = crate::domain::ids::ResourceSystemId(b.system_id);
    let ids = match b.external_id.as_deref() {
        Some(external_id) => {
            super::at_most("external_id", external_id, 200)?;
            owner.add_resource_as(system, external_id, &b.name, &b.description, &roles).await?
        }
        None => owner.add_resource(system, &b.name, &b.description, &roles).await?,
    };
    Ok((StatusCode::CREATED, Json(NewRoles { role_ids: ids.into_iter().map(|r| r.0).collect() })).into_response())
}

#[utoipa::path(get, path = "/api/v1/people/{id}/access", tag = "people", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = PersonAccess, description = "What they have in the catalogs the caller reads, each line with how they got it"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn person_access(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<PersonAccess>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    Ok(Json(caller.service.person_access(actor, crate::domain::ids::UserId(path_id(id)?)).await?))
}

#[utoipa::path(get, path = "/api/v1/groups", tag = "people", security(("bearer" = ["admin"])),
    responses((status = 200, body = Vec<GroupSummary>, description = "The directory's groups, by name, with where each comes from (administrators)")))]
pub(super) async fn groups(caller: Caller) -> Result<Json<Vec<GroupSummary>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    Ok(Json(caller.service.directory_groups(actor).await?))
}

#[utoipa::path(get, path = "/api/v1/packages/{id}/policies", tag = "catalogs", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = Vec<Policy>, description = "The package's policies as the engine keeps them"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn package_policies(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Vec<Policy>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let id = PackageId(path_id(id)?);
    let reader = caller.service.package_reader(actor, id).await?;
    Ok(Json(reader.package_policies(id).await?))
}

fn policy_with_etag(policy: Policy) -> Response {
    tagged(policy.version, policy)
}

#[utoipa::path(get, path = "/api/v1/policies/{id}", tag = "catalogs", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = Policy, headers(("ETag" = String, description = "Send it back as If-Match to change it"))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn policy(caller: Caller, id: Result<Path<i64>, PathRejection>) -> Result<Response, Problem> {
    use crate::service::capability::Read;
    let actor = caller.with(Scope::Admin)?;
    let (_, policy) = caller.service.in_catalog_of_policy::<Read>(actor, PolicyId(path_id(id)?)).await?;
    Ok(policy_with_etag(policy))
}

#[utoipa::path(put, path = "/api/v1/policies/{id}", tag = "catalogs", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    request_body(content = Policy, description = "The policy as read, changed. `id` and `package_id` stay as they are; the version that counts is `If-Match`'s. \
        Requests already approved are untouched; pending ones keep the stages they were filed under."),
    responses((status = 200, body = Policy, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json", description = "Changed since the ETag sent was read"),
              (status = 428, body = Problem, content_type = "application/problem+json", description = "No If-Match")))]
pub(super) async fn replace_policy(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    headers: HeaderMap,
    b: Result<Json<Policy>, JsonRejection>,
) -> Result<Response, Problem> {
    use crate::service::capability::Packages;
    let actor = caller.with(Scope::Admin)?;
    let id = PolicyId(path_id(id)?);
    let (manager, now) = caller.service.in_catalog_of_policy::<Packages>(actor, id).await?;
    let b = body(b)?;
    if b.id != id {
        return Err(Problem::invalid(Some("id"), "the policy's id is the one in the path"));
    }
    let version = matching(&headers, now.version)?;
    let changed = Policy { version, ..b };
    if changed == now {
        // Nothing to change: no new version, no audit event.
        return Ok(policy_with_etag(now));
    }
    manager.update_policy(changed).await?;
    let (_, after) = caller.service.in_catalog_of_policy::<Packages>(actor, id).await?;
    Ok(policy_with_etag(after))
}

#[utoipa::path(get, path = "/api/v1/catalogs/{id}/roles", tag = "catalogs", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = Vec<RoleHolder>, description = "Who holds a role in the catalog, by role then name"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn catalog_roles(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Vec<RoleHolder>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let reader = caller.service.catalog_reader(actor, CatalogId(path_id(id)?))?;
    Ok(Json(reader.holders().await?))
}

/// A role to give in a catalog.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewRole {
    /// The person: their email, or their id.
    person: String,
    role: CatalogRole,
}

#[utoipa::path(post, path = "/api/v1/catalogs/{id}/roles", tag = "catalogs", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = NewRole,
    responses((status = 201, body = super::governance::Created, description = "Given; `id` is the person's id"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "They hold it already")))]
pub(super) async fn grant_catalog_role(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NewRole>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let owner = caller.service.catalog_owner(actor, CatalogId(path_id(id)?))?;
    let b = body(b)?;
    super::at_most("person", &b.person, 320)?;
    let user = owner.grant_role_to(&b.person, b.role).await?;
    Ok((StatusCode::CREATED, Json(super::governance::Created::new(user.0))).into_response())
}

/// Which of the person's roles in the catalog to take back.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RoleQuery {
    role: CatalogRole,
}

#[utoipa::path(delete, path = "/api/v1/catalogs/{id}/roles/{person}", tag = "catalogs", security(("bearer" = ["admin"])),
    params(("id" = i64, Path), ("person" = i64, Path, description = "The holder's person id"), RoleQuery),
    responses((status = 204, description = "Taken back"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "The catalog's last owner")))]
pub(super) async fn revoke_catalog_role(
    caller: Caller,
    ids: Result<Path<(i64, i64)>, PathRejection>,
    q: Result<Query<RoleQuery>, QueryRejection>,
) -> Result<StatusCode, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let (catalog, person) = super::path_ids(ids)?;
    let role = query(q)?.role;
    let owner = caller.service.catalog_owner(actor, CatalogId(catalog))?;
    owner.revoke_role(crate::domain::ids::UserId(person), role).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `answer` as a 201 naming where what was made is.
fn created(mut answer: Response, location: &str) -> Result<Response, Problem> {
    let location = HeaderValue::from_str(location).map_err(|e| crate::domain::DomainError::Internal(e.to_string()))?;
    *answer.status_mut() = StatusCode::CREATED;
    answer.headers_mut().insert(header::LOCATION, location);
    Ok(answer)
}

/// A new access package: what it grants (resource roles of its catalog). Nobody can ask for
/// it until it has a policy (`POST /api/v1/packages/{id}/policies`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewPackage {
    name: String,
    #[serde(default)]
    description: String,
    /// Resource roles of the catalog, by id (`GET /api/v1/catalogs/{id}/resources` lists them).
    role_ids: Vec<i64>,
}

#[utoipa::path(post, path = "/api/v1/catalogs/{id}/packages", tag = "catalogs", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = NewPackage,
    responses((status = 201, body = PackageSettings, headers(("ETag" = String), ("Location" = String, description = "Its settings' address")),
                description = "Made, with no policy yet"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "The catalog has a package of that name")))]
pub(super) async fn create_package(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NewPackage>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let catalog = CatalogId(path_id(id)?);
    let manager = caller.service.package_manager(actor, catalog)?;
    let b = body(b)?;
    super::at_most("description", &b.description, 2000)?;
    if b.role_ids.len() > 100 {
        return Err(Problem::invalid(Some("role_ids"), "at most 100 roles"));
    }
    let roles: Vec<_> = b.role_ids.iter().copied().map(crate::domain::ids::ResourceRoleId).collect();
    let id = manager.create_package(&b.name, &b.description, &roles).await?;
    created(with_etag(manager.package_settings(id).await?), &format!("/api/v1/packages/{}/settings", id.0))
}

#[utoipa::path(post, path = "/api/v1/packages/{id}/policies", tag = "catalogs", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    request_body(content = Policy, description = "A policy as `GET /api/v1/policies/{id}` gives one: `package_id` is the path's; `id` and `version` are given by the server."),
    responses((status = 201, body = Policy, headers(("ETag" = String), ("Location" = String, description = "Its address")),
                description = "Added: people it admits can ask for the package under it"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn add_policy(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<Policy>, JsonRejection>,
) -> Result<Response, Problem> {
    use crate::service::capability::Packages;
    let actor = caller.with(Scope::Admin)?;
    let package = PackageId(path_id(id)?);
    let manager = caller.service.package_manager_of(actor, package).await?;
    let b = body(b)?;
    if b.package_id != package {
        return Err(Problem::invalid(Some("package_id"), "a policy is added to the package in the path"));
    }
    // What the server gives (the audit trail records the policy as made, not as sent).
    let id = manager.create_policy(Policy { id: PolicyId(0), version: 1, ..b }).await?;
    let (_, made) = caller.service.in_catalog_of_policy::<Packages>(actor, id).await?;
    created(policy_with_etag(made), &format!("/api/v1/policies/{}", id.0))
}

/// People to give a package to, a row each.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewBulk {
    /// The policy they are assigned under.
    policy_id: i64,
    /// CSV of `email[,end]` (an end as `YYYY-MM-DD`), a row per person, with or without a
    /// header line naming the columns. The whole body is under the server's limit
    /// (`--max-body-kib`, 256 KiB by default: 413 beyond it).
    rows: String,
    #[serde(default)]
    justification: String,
}

#[utoipa::path(post, path = "/api/v1/packages/{id}/bulk-assignments", tag = "catalogs", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = NewBulk,
    responses((status = 202, body = super::governance::Created, description = "Started: the rows are assigned in the background, each on its own; `GET /bulk-assignments/{id}` shows each row's outcome"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn bulk_assign(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NewBulk>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let package = PackageId(path_id(id)?);
    let manager = caller.service.assignment_manager_of(actor, package).await?;
    let b = body(b)?;
    if b.rows.len() > crate::server::MAX_BULK_FILE {
        return Err(Problem::invalid(Some("rows"), format!("at most {} KiB", crate::server::MAX_BULK_FILE / 1024)));
    }
    // The rows are the upload's file on the page: here they are `rows`.
    let job =
        manager.start_bulk(package, PolicyId(b.policy_id), &b.rows, &b.justification).await.map_err(|e| match e {
            crate::domain::DomainError::Invalid { field: Some(f), message } if f == "file" => {
                Problem::invalid(Some("rows"), message)
            }
            e => e.into(),
        })?;
    caller.service.run_bulk_job_now(job);
    Ok((StatusCode::ACCEPTED, Json(super::governance::Created::new(job))).into_response())
}

#[utoipa::path(get, path = "/api/v1/bulk-assignments/{id}", tag = "catalogs", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = BulkJobView, description = "Its progress; once done, every row's outcome"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn bulk_job(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<BulkJobView>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    Ok(Json(caller.service.bulk_job(actor, path_id(id)?).await?))
}
