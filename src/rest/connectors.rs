//! Connected systems (scope `admin`, administrators): adding one and changing its settings
//! (its secret write-only: sent, never answered), reading its queue, testing it, retrying its
//! failed work, comparing it with what is granted and repairing the drift, importing its
//! groups into a catalog; and the groups Quartermaster holds itself — each through the
//! service call the connectors page makes.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::governance::Created;
use super::{at_most, body, path_id, Caller, Problem};
use crate::connectors::ldap::{LdapConfig, MemberAttribute};
use crate::domain::ids::{CatalogId, ResourceSystemId};
use crate::domain::model::ResourceSystemKind;
use crate::domain::token::Scope;
use crate::domain::DomainError;
use crate::service::Repaired;
use crate::views::{BuiltinGroupView, ConnectorView, GroupDrift, GroupImportView, QueuedWork};

#[utoipa::path(get, path = "/api/v1/connectors", tag = "connectors", security(("bearer" = ["admin"])),
    responses((status = 200, body = Vec<ConnectorView>, description = "Every connected system, with its queue, failures and last error")))]
pub(super) async fn connectors(caller: Caller) -> Result<Json<Vec<ConnectorView>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    Ok(Json(caller.service.administrator(actor)?.connectors().await?))
}

/// The kind of a connected system.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(super) enum Kind {
    Scim,
    Ldap,
    Webhook,
}

/// `member` (groupOfNames) or `uniqueMember` (groupOfUniqueNames).
#[derive(Deserialize, ToSchema, Clone, Copy, Default)]
pub(super) enum MemberWord {
    #[default]
    #[serde(rename = "member")]
    Member,
    #[serde(rename = "uniqueMember")]
    UniqueMember,
}

/// A connected system's settings, the fields of its kind. The secret is never answered.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Settings {
    /// SCIM: its base URL; LDAP: `ldap://` or `ldaps://`; webhook: where events are posted.
    url: String,
    /// SCIM: its bearer token; LDAP: the bind password; webhook: the signing secret. On a
    /// change, absent or empty keeps the one sealed (a new address needs a new secret).
    #[serde(default)]
    secret: Option<String>,
    /// SCIM: it creates the people it does not know.
    #[serde(default)]
    create_users: bool,
    /// Webhook: it hears requests' lifecycle events too.
    #[serde(default)]
    lifecycle_events: bool,
    /// LDAP: upgrade `ldap://` with StartTLS.
    #[serde(default)]
    starttls: bool,
    /// LDAP: who binds.
    #[serde(default)]
    bind_dn: String,
    /// LDAP: where people are found.
    #[serde(default)]
    people_base: String,
    /// LDAP: the groups' member attribute.
    #[serde(default)]
    member_attribute: MemberWord,
    /// How many calls at once (on a change; a new system starts at the default).
    max_in_flight: Option<u16>,
}

impl Settings {
    fn checked(&self) -> Result<Option<&str>, Problem> {
        at_most("url", &self.url, 2048)?;
        let secret = self.secret.as_deref().filter(|s| !s.trim().is_empty());
        if let Some(secret) = secret {
            at_most("secret", secret, 4096)?;
        }
        at_most("bind_dn", &self.bind_dn, 1024)?;
        at_most("people_base", &self.people_base, 1024)?;
        Ok(secret)
    }

    fn ldap(&self) -> LdapConfig {
        LdapConfig {
            url: self.url.clone(),
            starttls: self.starttls,
            bind_dn: self.bind_dn.clone(),
            people_base: self.people_base.clone(),
            member_attribute: match self.member_attribute {
                MemberWord::Member => MemberAttribute::Member,
                MemberWord::UniqueMember => MemberAttribute::UniqueMember,
            },
            placeholder: None,
            max_in_flight: self.max_in_flight,
            removal_threshold: None,
        }
    }
}

/// A system to connect.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewConnector {
    kind: Kind,
    name: String,
    /// The fields of its kind (`PUT /connectors/{id}/settings` takes the same).
    settings: Settings,
}

#[utoipa::path(post, path = "/api/v1/connectors", tag = "connectors", security(("bearer" = ["admin"])), request_body = NewConnector,
    responses((status = 201, body = Created, description = "Connected; test it, then bind or import its groups"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "A system of that name exists")))]
pub(super) async fn add_connector(
    caller: Caller,
    b: Result<Json<NewConnector>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    let b = body(b)?;
    at_most("name", &b.name, crate::ui::api::MAX_NAME)?;
    let s = &b.settings;
    let secret = s.checked()?.unwrap_or_default();
    let id = match b.kind {
        Kind::Scim => admin.add_scim_system(&b.name, &s.url, secret, s.create_users).await?,
        Kind::Webhook => admin.add_webhook_system(&b.name, &s.url, secret, s.lifecycle_events).await?,
        Kind::Ldap => admin.add_ldap_system(&b.name, s.ldap(), secret).await?,
    };
    Ok((StatusCode::CREATED, Json(Created::new(id.0))).into_response())
}

/// One connected system: its row, and its waiting and failed work (oldest first), and its
/// group imports.
#[derive(Serialize, ToSchema)]
pub(super) struct Connector {
    system: ConnectorView,
    queue: Vec<QueuedWork>,
    failures: Vec<QueuedWork>,
    imports: Vec<GroupImportView>,
}

/// A connected system's answer, with its settings' `ETag`.
fn tagged(status: StatusCode, tag: &str, body: Option<Connector>) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{tag}\"")).unwrap_or(HeaderValue::from_static("\"\""));
    match body {
        Some(body) => (status, [(header::ETAG, etag)], Json(body)).into_response(),
        None => (status, [(header::ETAG, etag)]).into_response(),
    }
}

#[utoipa::path(get, path = "/api/v1/connectors/{id}", tag = "connectors", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = Connector, headers(("ETag" = String, description = "Its settings as read: send it as If-Match to change them"))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn connector(caller: Caller, id: Result<Path<i64>, PathRejection>) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    let system = ResourceSystemId(path_id(id)?);
    // The tag first: settings changed between the two reads show the newer ones under the
    // older tag, which a change is then refused for (never the other way round).
    let tag = admin.settings_tag(system).await?;
    let d = admin.connector(system).await?;
    let body = Connector { system: d.system, queue: d.queue, failures: d.failures, imports: d.imports };
    Ok(tagged(StatusCode::OK, &tag, Some(body)))
}

#[utoipa::path(put, path = "/api/v1/connectors/{id}/settings", tag = "connectors", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = Settings,
    responses((status = 204, description = "Saved (a pause is lifted); the secret kept unless one was sent", headers(("ETag" = String, description = "The settings as saved"))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json", description = "Changed since the ETag sent was read"),
              (status = 428, body = Problem, content_type = "application/problem+json", description = "No If-Match")))]
pub(super) async fn change_connector(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    headers: HeaderMap,
    b: Result<Json<Settings>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    let system = ResourceSystemId(path_id(id)?);
    let s = body(b)?;
    let fresh = s.checked()?;
    let current = admin.settings_tag(system).await?;
    super::admin::matching_tag(&headers, &current)?;
    // Saved only over the settings just matched: a change landing meanwhile is refused (412).
    let expected = Some(current.as_str());
    let at_once = s.max_in_flight.unwrap_or(crate::connectors::DEFAULT_IN_FLIGHT);
    match admin.system_kind(system).await? {
        ResourceSystemKind::Scim => {
            admin.edit_scim_system(system, &s.url, fresh, s.create_users, at_once, expected).await?
        }
        ResourceSystemKind::Webhook => {
            admin.edit_webhook_system(system, &s.url, fresh, s.lifecycle_events, at_once, expected).await?
        }
        ResourceSystemKind::Ldap => {
            let mut settings = s.ldap();
            settings.max_in_flight = Some(at_once);
            admin.edit_ldap_system(system, settings, fresh, expected).await?
        }
        ResourceSystemKind::Builtin => {
            return Err(Problem::invalid(Some("id"), "the built-in system has no settings"));
        }
    }
    Ok(tagged(StatusCode::NO_CONTENT, &admin.settings_tag(system).await?, None))
}

/// What a connected system answered when called once.
#[derive(Serialize, ToSchema)]
pub(super) struct Tried {
    /// It answered as expected.
    reached: bool,
    /// What it said, or why it could not be reached.
    answer: String,
}

#[utoipa::path(post, path = "/api/v1/connectors/{id}/test", tag = "connectors", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = Tried, description = "Called once, changing nothing there"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn test_connector(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Tried>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    let (reached, answer) = admin.test_connector(ResourceSystemId(path_id(id)?)).await?;
    Ok(Json(Tried { reached, answer }))
}

/// What retrying a system's failed work did.
#[derive(Serialize, ToSchema)]
pub(super) struct Retried {
    /// Queued again.
    queued: usize,
    /// Left as they were: their access has ended.
    left: usize,
}

#[utoipa::path(post, path = "/api/v1/connectors/{id}/retry", tag = "connectors", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = Retried, description = "The system's failed work is back in its queue"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn retry_connector(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Retried>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    let (queued, left) = admin.retry_failed_of(ResourceSystemId(path_id(id)?)).await?;
    Ok(Json(Retried { queued, left }))
}

/// A comparison that could not run (the system cannot be read: unreachable, no key, a kind
/// that keeps no memberships) is an answer saying why, as on the page, not an error of the
/// call.
fn not_compared(e: DomainError) -> Result<String, Problem> {
    match e {
        DomainError::Invalid { field: Some(field), message } if field == "system" => Ok(message),
        e => Err(e.into()),
    }
}

/// What a connected system's bound groups hold beside what is granted here.
#[derive(Serialize, ToSchema)]
pub(super) struct Drift {
    /// The comparison ran; when not, `why_not` says why.
    compared: bool,
    why_not: String,
    /// Each bound group that differs.
    groups: Vec<GroupDrift>,
}

#[utoipa::path(post, path = "/api/v1/connectors/{id}/drift", tag = "connectors", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = Drift, description = "Compared now (and kept as the system's last check); nothing changed there"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn check_drift(caller: Caller, id: Result<Path<i64>, PathRejection>) -> Result<Json<Drift>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    Ok(Json(match admin.drift(ResourceSystemId(path_id(id)?)).await {
        Ok(report) => Drift { compared: true, why_not: String::new(), groups: report.groups },
        Err(e) => Drift { compared: false, why_not: not_compared(e)?, groups: vec![] },
    }))
}

/// Whether to repair a drift that takes out more than the system's share of a group.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RepairBody {
    #[serde(default)]
    confirm: bool,
}

/// What a repair queued.
#[derive(Serialize, ToSchema)]
pub(super) struct Repair {
    /// The repair ran; when not, `why_not` says why.
    repaired: bool,
    why_not: String,
    /// Missing members whose grants are queued again.
    additions_queued: usize,
    /// Members nobody granted, queued to be taken out.
    removals_queued: usize,
    /// Accounts unknown here taken out, and those that could not be (the audit trail has
    /// the target's answer).
    strangers_removed: usize,
    strangers_not_removed: usize,
}

#[utoipa::path(post, path = "/api/v1/connectors/{id}/drift/repair", tag = "connectors", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = RepairBody,
    responses((status = 200, body = Repair, description = "Queued, audited"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "It would take out more than the system's share of a group: send `confirm`")))]
pub(super) async fn repair_drift(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<RepairBody>, JsonRejection>,
) -> Result<Json<Repair>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    let system = ResourceSystemId(path_id(id)?);
    let confirm = body(b)?.confirm;
    Ok(Json(match admin.repair_drift(system, confirm).await {
        Ok(Repaired { additions_queued, removals_queued, strangers_removed, strangers_not_removed }) => Repair {
            repaired: true,
            why_not: String::new(),
            additions_queued,
            removals_queued,
            strangers_removed,
            strangers_not_removed,
        },
        Err(e) => Repair {
            repaired: false,
            why_not: not_compared(e)?,
            additions_queued: 0,
            removals_queued: 0,
            strangers_removed: 0,
            strangers_not_removed: 0,
        },
    }))
}

/// Where a system's groups are imported to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewImport {
    catalog_id: i64,
    /// LDAP: the DN the groups are under (SCIM: all its groups).
    #[serde(default)]
    search_base: String,
}

#[utoipa::path(post, path = "/api/v1/connectors/{id}/group-imports", tag = "connectors", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = NewImport,
    responses((status = 202, body = Created, description = "Started: it runs in the background, a page at a time; `GET /connectors/{id}` shows its progress"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "An import of this system is running")))]
pub(super) async fn import_groups(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NewImport>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    let system = ResourceSystemId(path_id(id)?);
    let b = body(b)?;
    at_most("search_base", &b.search_base, 1024)?;
    let import = admin.start_group_import(system, CatalogId(b.catalog_id), &b.search_base).await?;
    Ok((StatusCode::ACCEPTED, Json(Created::new(import))).into_response())
}

#[utoipa::path(get, path = "/api/v1/builtin-groups", tag = "connectors", security(("bearer" = ["admin"])),
    responses((status = 200, body = Vec<BuiltinGroupView>, description = "The groups Quartermaster holds itself, with who is in each")))]
pub(super) async fn builtin_groups(caller: Caller) -> Result<Json<Vec<BuiltinGroupView>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    Ok(Json(caller.service.builtin_groups(actor).await?))
}
