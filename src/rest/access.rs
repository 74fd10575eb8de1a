//! The caller's own access and decisions beyond the basics in `mod.rs`: extending an
//! assignment, giving it up, and the decisions the caller made.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{at_most, body, path_id, query, row_cursor, Caller, Outcome, PageQuery, Problem};
use crate::domain::ids::AssignmentId;
use crate::domain::token::Scope;
use crate::ui::api::MAX_JUSTIFICATION;
use crate::views::{DecisionView, Page};

/// Why the access is needed longer.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Extension {
    #[serde(default)]
    justification: String,
}

#[utoipa::path(post, path = "/api/v1/assignments/{id}/extend", tag = "assignments", security(("bearer" = ["request"])),
    params(("id" = i64, Path)), request_body = Extension,
    responses((status = 200, body = Outcome, description = "Extended, or (`pending_approval`) the extension waits for approval as the policy says"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "The policy allows no extension, or one is asked already")))]
pub(super) async fn extend(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<Extension>, JsonRejection>,
) -> Result<Json<Outcome>, Problem> {
    let actor = caller.with(Scope::Request)?;
    let id = AssignmentId(path_id(id)?);
    let b = body(b)?;
    at_most("justification", &b.justification, MAX_JUSTIFICATION)?;
    Ok(Json(caller.service.extend_assignment(actor, id, &b.justification).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/assignments/{id}", tag = "assignments", security(("bearer" = ["request"])), params(("id" = i64, Path)),
    responses((status = 204, description = "Given up: the access is being taken back"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "It ended already")))]
pub(super) async fn give_up(caller: Caller, id: Result<Path<i64>, PathRejection>) -> Result<StatusCode, Problem> {
    let actor = caller.with(Scope::Request)?;
    let id = AssignmentId(path_id(id)?);
    caller.service.give_up_assignment(actor, id, "given up by the holder").await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/decisions", tag = "requests", security(("bearer" = ["read"])), params(PageQuery),
    responses((status = 200, body = Page<DecisionView>, description = "The decisions the caller made, newest first")))]
pub(super) async fn decisions(
    caller: Caller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<DecisionView>>, Problem> {
    let actor = caller.with(Scope::Read)?;
    Ok(Json(caller.service.decision_history(actor, row_cursor(query(q)?)).await?))
}
