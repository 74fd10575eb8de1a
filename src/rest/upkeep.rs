//! Keeping the system whole: provisioning work that failed after its last attempt (retried
//! by administrators and the owners of its catalog), and the audit chain's walks
//! (administrators).

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::{path_id, Caller, Problem};
use crate::domain::authz::Operator;
use crate::domain::token::Scope;
use crate::service::ChainCheck;
use crate::views::{ChainStatus, FailedWorkView};

#[utoipa::path(get, path = "/api/v1/failed-work", tag = "upkeep", security(("bearer" = ["admin"])),
    responses((status = 200, body = Vec<FailedWorkView>, description = "Provisioning work given up after its last attempt, in the catalogs the caller owns (all for administrators)")))]
pub(super) async fn failed_work(caller: Caller) -> Result<Json<Vec<FailedWorkView>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    Ok(Json(caller.service.failed_work(actor).await?))
}

#[utoipa::path(post, path = "/api/v1/failed-work/{id}/retry", tag = "upkeep", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 204, description = "Queued again: the workers try it once more shortly"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "It has not failed, or its access has ended")))]
pub(super) async fn retry(caller: Caller, id: Result<Path<i64>, PathRejection>) -> Result<StatusCode, Problem> {
    let actor = caller.with(Scope::Admin)?;
    caller.service.retry_delivery(actor, path_id(id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/audit-chain", tag = "audit", security(("bearer" = ["admin"])),
    responses((status = 200, body = Option<ChainStatus>, description = "The latest walk of the audit chain (null: never walked)")))]
pub(super) async fn chain_status(caller: Caller) -> Result<Json<Option<ChainStatus>>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    Ok(Json(caller.service.audit_chain_status(actor).await?))
}

/// What a walk of the audit chain found.
#[derive(Serialize, ToSchema)]
pub(super) struct Walk {
    intact: bool,
    /// Events walked (when intact), and the last one: its id and hash, to keep somewhere the
    /// database's writers cannot reach (a later walk given it finds a cut tail).
    events: Option<i64>,
    head_id: Option<i64>,
    head_hash: Option<String>,
    /// The first event that does not hash as it should (when broken), and why.
    broken_event_id: Option<i64>,
    why: String,
}

#[utoipa::path(post, path = "/api/v1/audit-chain/verify", tag = "audit", security(("bearer" = ["admin"])),
    responses((status = 200, body = Walk, description = "Walked now, and recorded: `intact`, or the first broken event"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "A walk is under way")))]
pub(super) async fn verify_chain(caller: Caller) -> Result<Json<Walk>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let walk = match caller.service.verify_and_record_audit_chain(&Operator::Person(actor)).await? {
        ChainCheck::Intact { events, head } => Walk {
            intact: true,
            events: Some(i64::try_from(events).unwrap_or(i64::MAX)),
            head_id: head.as_ref().map(|h| h.id),
            head_hash: head.map(|h| h.hash),
            broken_event_id: None,
            why: String::new(),
        },
        ChainCheck::Broken { event_id, why } => {
            Walk { intact: false, events: None, head_id: None, head_hash: None, broken_event_id: Some(event_id), why }
        }
    };
    Ok(Json(walk))
}
