//! The caller's own access and decisions beyond the basics in `mod.rs`: extending an
//! assignment, giving it up, deciding many requests at once, and the decisions the caller
//! made.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{at_most, body, path_id, query, row_cursor, Caller, Outcome, PageQuery, Problem};
use crate::domain::ids::{AssignmentId, RequestId};
use crate::domain::token::Scope;
use crate::ui::api::{MAX_BULK_DECISIONS, MAX_JUSTIFICATION};
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

/// One decision for several requests waiting for the caller.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Decisions {
    /// At most 100.
    request_ids: Vec<i64>,
    decision: super::DecisionWord,
    /// Why (required where a policy asks for it).
    #[serde(default)]
    justification: String,
}

/// A request the decision was not made on, and why.
#[derive(Serialize, ToSchema)]
pub(super) struct Refusal {
    request_id: i64,
    problem: Problem,
}

/// What deciding several requests did: each was decided on its own.
#[derive(Serialize, ToSchema)]
pub(super) struct Decided {
    decided: Vec<Outcome>,
    /// Those someone else decided first, that ended, that are not the caller's to decide….
    refused: Vec<Refusal>,
}

#[utoipa::path(post, path = "/api/v1/decisions", tag = "requests", security(("bearer" = ["decide"])), request_body = Decisions,
    responses((status = 200, body = Decided, description = "Each request decided on its own, as one decision each would be: those that could not be are listed with why"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "None was decided: the first one's answer"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "None was decided: the first one's answer")))]
pub(super) async fn decide_many(
    caller: Caller,
    b: Result<Json<Decisions>, JsonRejection>,
) -> Result<Json<Decided>, Problem> {
    let actor = caller.with(Scope::Decide)?;
    let b = body(b)?;
    at_most("justification", &b.justification, MAX_JUSTIFICATION)?;
    if b.request_ids.is_empty() || b.request_ids.len() > MAX_BULK_DECISIONS {
        return Err(Problem::invalid(
            Some("request_ids"),
            format!("1 to {MAX_BULK_DECISIONS} requests at once (nothing was decided)"),
        ));
    }
    let mut ids = b.request_ids;
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    let decision = b.decision.into();
    let (mut decided, mut refused) = (Vec::new(), Vec::new());
    for id in ids {
        match caller.service.decide(actor, RequestId(id), decision, &b.justification).await {
            Ok(outcome) => decided.push(outcome.into()),
            Err(e) => refused.push(Refusal { request_id: id, problem: e.into() }),
        }
    }
    // None decided: the call failed as one decision would have (the first refusal's answer).
    if decided.is_empty() && !refused.is_empty() {
        return Err(refused.swap_remove(0).problem);
    }
    Ok(Json(Decided { decided, refused }))
}
