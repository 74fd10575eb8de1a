//! The access package builder's drafts (scope `admin`, package managers): started in a
//! catalog, read a step at a time, each step's fields saved, then made into what they describe
//! or thrown away — the same drafts, with the same checks, as the builder's pages. A draft is
//! its author's only.

use std::collections::HashMap;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::governance::Created;
use super::{body, path_id, query, Caller, Problem};
use crate::domain::ids::{CatalogId, PackageId, PolicyId};
use crate::domain::token::Scope;
use crate::service::drafts::{DraftStart, Go};
use crate::states::WizardStep;
use crate::views::DraftView;

/// What a draft starts from.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(super) enum From {
    /// An empty package.
    New,
    /// A copy of `package_id` (its settings, roles and first policy, under a new name).
    Copy,
    /// Another policy for `package_id`.
    Policy,
    /// `package_id` and its policy `policy_id`, as they are now.
    Edit,
}

/// A draft to start.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewDraft {
    from: From,
    package_id: Option<i64>,
    policy_id: Option<i64>,
}

#[utoipa::path(post, path = "/api/v1/catalogs/{id}/drafts", tag = "catalogs", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = NewDraft,
    responses((status = 201, body = Created, description = "Started at its first step, the caller's own"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn start_draft(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NewDraft>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let manager = caller.service.package_manager(actor, CatalogId(path_id(id)?))?;
    let b = body(b)?;
    let package = || b.package_id.map(PackageId).ok_or_else(|| Problem::invalid(Some("package_id"), "which package?"));
    let start = match b.from {
        From::New => DraftStart::New,
        From::Copy => DraftStart::Copy(package()?),
        From::Policy => DraftStart::AddPolicy(package()?),
        From::Edit => DraftStart::Edit(
            package()?,
            PolicyId(b.policy_id.ok_or_else(|| Problem::invalid(Some("policy_id"), "which policy?"))?),
        ),
    };
    let draft = manager.start_draft(start).await?;
    Ok((StatusCode::CREATED, Json(Created::new(draft))).into_response())
}

/// Which step to read.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StepQuery {
    /// Left out: the step it was left at.
    step: Option<WizardStep>,
}

#[utoipa::path(get, path = "/api/v1/drafts/{id}", tag = "catalogs", security(("bearer" = ["admin"])),
    params(("id" = i64, Path), StepQuery),
    responses((status = 200, body = DraftView, description = "The step's fields as saved, what can be picked, and on `review` what will be made and what it does to waiting requests"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "No such draft of the caller's")))]
pub(super) async fn draft(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    q: Result<Query<StepQuery>, QueryRejection>,
) -> Result<Json<DraftView>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let id = path_id(id)?;
    let step = query(q)?.step;
    Ok(Json(caller.service.draft(actor, id).await?.view(step).await?))
}

/// Where to go after saving a step.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(super) enum GoWord {
    Back,
    Next,
    /// To `to`.
    To,
}

/// A step's fields, saved.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StepBody {
    /// The step's fields by name, as `GET /drafts/{id}` gives them in `values`.
    #[serde(default)]
    fields: HashMap<String, String>,
    go: GoWord,
    /// With `go: to`.
    to: Option<WizardStep>,
}

/// Where the draft is now.
#[derive(Serialize, ToSchema)]
pub(super) struct AtStep {
    step: WizardStep,
}

#[utoipa::path(put, path = "/api/v1/drafts/{id}/steps/{step}", tag = "catalogs", security(("bearer" = ["admin"])),
    params(("id" = i64, Path), ("step" = WizardStep, Path)), request_body = StepBody,
    responses((status = 200, body = AtStep, description = "Saved; the step it went to"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "No such draft of the caller's")))]
pub(super) async fn save_step(
    caller: Caller,
    p: Result<Path<(i64, WizardStep)>, PathRejection>,
    b: Result<Json<StepBody>, JsonRejection>,
) -> Result<Json<AtStep>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let Path((id, step)) = p.map_err(|e| Problem::invalid(None, e.body_text()))?;
    let b = body(b)?;
    let go = match (b.go, b.to) {
        (GoWord::Back, _) => Go::Back,
        (GoWord::Next, _) => Go::Next,
        (GoWord::To, Some(to)) => Go::To(to),
        (GoWord::To, None) => return Err(Problem::invalid(Some("to"), "go to which step?")),
    };
    if b.fields.len() > 400 || b.fields.iter().any(|(k, v)| k.len() > 40 || v.chars().count() > 5000) {
        return Err(Problem::invalid(Some("fields"), "at most 400 fields, names of 40 and values of 5000 characters"));
    }
    let step = caller.service.draft(actor, id).await?.save_step(step, go, &b.fields).await?;
    Ok(Json(AtStep { step }))
}

/// What the author reviewed before making it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Finish {
    /// The draft's `updated_at` as read: a save since is refused (409).
    seen: Option<i64>,
    /// With a rule that assigns, the `what_if.fingerprint` the review step gave (who gains
    /// and loses changed since: refused).
    what_if: Option<String>,
}

/// The package made, given a policy or changed.
#[derive(Serialize, ToSchema)]
pub(super) struct Finished {
    package_id: i64,
}

#[utoipa::path(post, path = "/api/v1/drafts/{id}/finish", tag = "catalogs", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = Finish,
    responses((status = 200, body = Finished, description = "Made (a new package, a policy added, or the edit saved), audited; the draft is gone"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "No such draft of the caller's"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "Saved or changed since it was reviewed")))]
pub(super) async fn finish(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<Finish>, JsonRejection>,
) -> Result<Json<Finished>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let id = path_id(id)?;
    let b = body(b)?;
    let what_if = b.what_if.as_deref().filter(|w| !w.is_empty());
    let package = caller.service.draft(actor, id).await?.finish_reviewed(b.seen, what_if).await?;
    Ok(Json(Finished { package_id: package.0 }))
}

#[utoipa::path(delete, path = "/api/v1/drafts/{id}", tag = "catalogs", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 204, description = "Thrown away"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "No such draft of the caller's")))]
pub(super) async fn discard(caller: Caller, id: Result<Path<i64>, PathRejection>) -> Result<StatusCode, Problem> {
    let actor = caller.with(Scope::Admin)?;
    caller.service.discard_draft(actor, path_id(id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
