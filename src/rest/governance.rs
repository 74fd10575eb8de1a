//! Reviews and connected organizations: the reviewer's items (scopes `read` and `decide`),
//! and, for who runs them, the reviews, the organizations and their sponsors (scope `admin`)
//! — each through the service call its page makes.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{at_most, body, path_id, query, Caller, PageQuery, Problem};
use crate::domain::ids::{OrgId, UserId};
use crate::domain::review::ReviewDecision;
use crate::domain::token::Scope;
use crate::ui::api::MAX_JUSTIFICATION;
use crate::views::{ConnectedOrg, Page, ReviewItemView, ReviewView};

#[utoipa::path(get, path = "/api/v1/review-items", tag = "reviews", security(("bearer" = ["read"])), params(PageQuery),
    responses((status = 200, body = Page<ReviewItemView>, description = "Assignments the caller is asked to review, waiting ones first")))]
pub(super) async fn review_items(
    caller: Caller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<ReviewItemView>>, Problem> {
    let actor = caller.with(Scope::Read)?;
    let q = query(q)?;
    Ok(Json(caller.service.my_review_items(actor, q.cursor.as_deref()).await?))
}

/// A reviewer's answer: whether the person keeps the access.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReviewAnswer {
    decision: ReviewWord,
    /// Why (required where the review asks for it).
    #[serde(default)]
    justification: String,
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum ReviewWord {
    Keep,
    Remove,
    DontKnow,
}

#[utoipa::path(post, path = "/api/v1/review-items/{id}/answer", tag = "reviews", security(("bearer" = ["decide"])),
    params(("id" = i64, Path)), request_body = ReviewAnswer,
    responses((status = 204, description = "Answered; it can be changed until the review ends"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "The review ended, or another reviewer answered first")))]
pub(super) async fn answer_review(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<ReviewAnswer>, JsonRejection>,
) -> Result<StatusCode, Problem> {
    let actor = caller.with(Scope::Decide)?;
    let id = path_id(id)?;
    let b = body(b)?;
    at_most("justification", &b.justification, MAX_JUSTIFICATION)?;
    let decision = match b.decision {
        ReviewWord::Keep => ReviewDecision::Keep,
        ReviewWord::Remove => ReviewDecision::Remove,
        ReviewWord::DontKnow => ReviewDecision::DontKnow,
    };
    // The last answer counts, as on the page when no earlier answer is shown.
    caller.service.decide_review(actor, &[id], (decision, &b.justification), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/reviews", tag = "reviews", security(("bearer" = ["admin"])), params(PageQuery),
    responses((status = 200, body = Page<ReviewView>, description = "The reviews the caller runs (every one for administrators), newest first")))]
pub(super) async fn reviews(
    caller: Caller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<ReviewView>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let before = super::admin::cursor(query(q)?.cursor)?;
    Ok(Json(caller.service.reviews_list(actor, before).await?))
}

#[utoipa::path(post, path = "/api/v1/reviews/{id}/end", tag = "reviews", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 204, description = "Ended: its answers are final, and the policy's default answered for the rest"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "It ended already")))]
pub(super) async fn end_review(caller: Caller, id: Result<Path<i64>, PathRejection>) -> Result<StatusCode, Problem> {
    let actor = caller.with(Scope::Admin)?;
    caller.service.end_review_early(actor, path_id(id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What applying a review did.
#[derive(Serialize, ToSchema)]
pub(super) struct Applied {
    /// Assignments removed (their removal is being provisioned).
    removed: usize,
}

#[utoipa::path(post, path = "/api/v1/reviews/{id}/apply", tag = "reviews", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = Applied),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "It is running still, or was applied")))]
pub(super) async fn apply_review(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Applied>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let removed = caller.service.apply_review(actor, path_id(id)?).await?;
    Ok(Json(Applied { removed }))
}

#[utoipa::path(get, path = "/api/v1/organizations", tag = "organizations", security(("bearer" = ["admin"])),
    responses((status = 200, body = Vec<ConnectedOrg>, description = "Every connected organization, with its sponsors")))]
pub(super) async fn organizations(caller: Caller) -> Result<Json<Vec<ConnectedOrg>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    Ok(Json(caller.service.administrator(actor)?.connected_orgs().await?))
}

/// A new connected organization.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOrganization {
    name: String,
    /// Its email domain: its people sign in as guests.
    domain: String,
    /// Admits its people now; left out: `proposed`, known but admitting nobody.
    #[serde(default)]
    configured: bool,
}

/// The id of what was made.
#[derive(Serialize, ToSchema)]
pub(super) struct Created {
    id: i64,
}

impl Created {
    pub(super) fn new(id: i64) -> Self {
        Created { id }
    }
}

#[utoipa::path(post, path = "/api/v1/organizations", tag = "organizations", security(("bearer" = ["admin"])), request_body = NewOrganization,
    responses((status = 201, body = Created),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "One has that domain")))]
pub(super) async fn create_organization(
    caller: Caller,
    b: Result<Json<NewOrganization>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    let b = body(b)?;
    at_most("domain", &b.domain, 253)?;
    let id = admin.create_org(&b.name, &b.domain, b.configured).await?;
    Ok((StatusCode::CREATED, Json(Created { id: id.0 })).into_response())
}

/// The organization as it is now, or 404.
async fn organization_now(
    admin: &crate::service::capability::Administrator<'_>,
    id: OrgId,
) -> Result<ConnectedOrg, Problem> {
    let all = admin.connected_orgs().await?;
    all.into_iter()
        .find(|o| o.id == id.0)
        .ok_or_else(|| Problem::from(crate::domain::DomainError::not_found("connected organization")))
}

fn organization_with_etag(org: ConnectedOrg) -> Response {
    super::admin::tagged(org.version, org)
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}", tag = "organizations", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = ConnectedOrg, headers(("ETag" = String, description = "Send it back as If-Match to change it"))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn organization(caller: Caller, id: Result<Path<i64>, PathRejection>) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    Ok(organization_with_etag(organization_now(&admin, OrgId(path_id(id)?)).await?))
}

/// What a change of an organization starts from: an administrator, the organization as it
/// is now, the change asked, and the version `If-Match` names (the one it is made from).
struct Changing<'a, B> {
    admin: crate::service::capability::Administrator<'a>,
    id: OrgId,
    b: B,
    now: ConnectedOrg,
    version: i64,
}

async fn changing<'a, B>(
    caller: &'a Caller,
    id: Result<Path<i64>, PathRejection>,
    headers: &HeaderMap,
    b: Result<Json<B>, JsonRejection>,
) -> Result<Changing<'a, B>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    let id = OrgId(path_id(id)?);
    let b = body(b)?;
    let now = organization_now(&admin, id).await?;
    let version = super::admin::matching(headers, now.version)?;
    Ok(Changing { admin, id, b, now, version })
}

/// The organization's settings to change; those left out stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OrganizationChange {
    name: Option<String>,
    /// Refused while it has guests (they sign in with addresses in the old one).
    domain: Option<String>,
    /// Admits its people (`true`), or is only known (`false`, `proposed`).
    configured: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/organizations/{id}", tag = "organizations", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    request_body = OrganizationChange,
    responses((status = 200, body = ConnectedOrg, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "Another organization has that domain, or its guests hold the old one"),
              (status = 412, body = Problem, content_type = "application/problem+json", description = "Changed since the ETag sent was read"),
              (status = 428, body = Problem, content_type = "application/problem+json", description = "No If-Match")))]
pub(super) async fn change_organization(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    headers: HeaderMap,
    b: Result<Json<OrganizationChange>, JsonRejection>,
) -> Result<Response, Problem> {
    let Changing { admin, id, b, now, version } = changing(&caller, id, &headers, b).await?;
    let name = b.name.map_or_else(|| now.name.clone(), |n| n.trim().to_owned());
    let domain = b.domain.map_or_else(|| now.domain.clone(), |d| d.trim().to_owned());
    at_most("domain", &domain, 253)?;
    let configured = b.configured.unwrap_or(now.configured);
    if (name.as_str(), domain.as_str(), configured) == (now.name.as_str(), now.domain.as_str(), now.configured) {
        // Nothing to change: no new version, no audit event.
        return Ok(organization_with_etag(now));
    }
    admin.update_org(id, (&name, &domain, configured), Some(version)).await?;
    Ok(organization_with_etag(organization_now(&admin, id).await?))
}

/// What happens to the organization's guests once their access has ended.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GuestLifecycle {
    /// Blocked from signing in this many days after their last access ended; null: never.
    block_after_days: Option<i64>,
    /// Removed this many days after being blocked; null: never.
    remove_after_days: Option<i64>,
}

#[utoipa::path(put, path = "/api/v1/organizations/{id}/guest-lifecycle", tag = "organizations", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = GuestLifecycle,
    responses((status = 200, body = ConnectedOrg, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json", description = "Changed since the ETag sent was read"),
              (status = 428, body = Problem, content_type = "application/problem+json", description = "No If-Match")))]
pub(super) async fn set_guest_lifecycle(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    headers: HeaderMap,
    b: Result<Json<GuestLifecycle>, JsonRejection>,
) -> Result<Response, Problem> {
    let Changing { admin, id, b, now, version } = changing(&caller, id, &headers, b).await?;
    if (b.block_after_days, b.remove_after_days) == (now.block_after_days, now.remove_after_days) {
        return Ok(organization_with_etag(now));
    }
    admin.set_guest_lifecycle(id, (b.block_after_days, b.remove_after_days), Some(version)).await?;
    Ok(organization_with_etag(organization_now(&admin, id).await?))
}

/// A sponsor to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSponsor {
    /// The person: their email, or their id.
    person: String,
    /// One of theirs (a guest of the organization) rather than one of ours.
    #[serde(default)]
    external: bool,
}

#[utoipa::path(post, path = "/api/v1/organizations/{id}/sponsors", tag = "organizations", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = NewSponsor,
    responses((status = 201, body = Created, description = "Added; `id` is the sponsor's person id"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "A sponsor already")))]
pub(super) async fn add_sponsor(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NewSponsor>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    let org = OrgId(path_id(id)?);
    let b = body(b)?;
    at_most("person", &b.person, 320)?;
    let user = admin.add_sponsor(org, &b.person, b.external).await?;
    Ok((StatusCode::CREATED, Json(Created { id: user.0 })).into_response())
}

#[utoipa::path(delete, path = "/api/v1/organizations/{id}/sponsors/{person}", tag = "organizations", security(("bearer" = ["admin"])),
    params(("id" = i64, Path), ("person" = i64, Path, description = "The sponsor's person id")),
    responses((status = 204, description = "No longer a sponsor"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn remove_sponsor(
    caller: Caller,
    ids: Result<Path<(i64, i64)>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let admin = caller.service.administrator(actor)?;
    let (org, person) = super::path_ids(ids)?;
    admin.remove_sponsor(OrgId(org), UserId(person)).await?;
    Ok(StatusCode::NO_CONTENT)
}
