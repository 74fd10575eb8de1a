//! The caller's own settings: which emails they get and in which time zone, and their
//! out-of-office (a deputy who decides for them while they are away). Read with `read`,
//! changed with `request` (the caller acting for themselves); an administrator sets another
//! person's deputy with `admin`.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::governance::Created;
use super::{at_most, body, path_id, Caller, Problem};
use crate::domain::ids::UserId;
use crate::domain::token::Scope;
use crate::views::{DeputyPanel, EmailChoices};

#[utoipa::path(get, path = "/api/v1/me/email-settings", tag = "me", security(("bearer" = ["read"])),
    responses((status = 200, body = EmailChoices)))]
pub(super) async fn email_settings(caller: Caller) -> Result<Json<EmailChoices>, Problem> {
    let actor = caller.with(Scope::Read)?;
    Ok(Json(caller.service.email_choices(actor).await?))
}

/// Which emails the caller gets, and the time zone of the times in them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EmailChange {
    /// Also the optional emails (a stage of their request approved, access ready); the
    /// emails that need them (decisions, failures, access ending) always come.
    optional: bool,
    /// A daily digest of the decisions waiting for them.
    digest: bool,
    /// An IANA time zone (`Europe/Berlin`); null: the one their sign-in provider gives, else
    /// UTC. Left out: as it is.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    time_zone: Option<Option<String>>,
}

/// A field that was sent: `Some(None)` for null (left out is `None`, by `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[utoipa::path(put, path = "/api/v1/me/email-settings", tag = "me", security(("bearer" = ["request"])), request_body = EmailChange,
    responses((status = 200, body = EmailChoices)))]
pub(super) async fn change_email_settings(
    caller: Caller,
    b: Result<Json<EmailChange>, JsonRejection>,
) -> Result<Json<EmailChoices>, Problem> {
    let actor = caller.with(Scope::Request)?;
    let b = body(b)?;
    if let Some(Some(zone)) = &b.time_zone {
        at_most("time_zone", zone, 64)?;
    }
    let zone = b.time_zone.as_ref().map(|z| z.as_deref().map(str::trim));
    caller.service.set_email_choices(actor, b.optional, b.digest, zone).await?;
    Ok(Json(caller.service.email_choices(actor).await?))
}

#[utoipa::path(get, path = "/api/v1/me/deputies", tag = "me", security(("bearer" = ["read"])),
    responses((status = 200, body = DeputyPanel, description = "The caller's own deputy period (now or to come), and those they stand in for")))]
pub(super) async fn deputies(caller: Caller) -> Result<Json<DeputyPanel>, Problem> {
    let actor = caller.with(Scope::Read)?;
    Ok(Json(caller.service.deputies_of(actor, actor.id()).await?))
}

/// Who decides for the caller while they are away, and when.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewDeputy {
    /// The deputy's email.
    deputy: String,
    /// From this day (`YYYY-MM-DD`, UTC); left out: now.
    from: Option<String>,
    /// Until the end of this day (`YYYY-MM-DD`, UTC).
    until: String,
}

/// `value` (`YYYY-MM-DD`) as the start of that day, or its last second, UTC.
fn day(field: &str, value: &str, end_of_day: bool) -> Result<DateTime<Utc>, Problem> {
    let date = NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .map_err(|_| Problem::invalid(Some(field), "use a date like 2026-12-31"))?;
    let time = if end_of_day { date.and_hms_opt(23, 59, 59) } else { date.and_hms_opt(0, 0, 0) };
    time.map(|t| t.and_utc()).ok_or_else(|| Problem::invalid(Some(field), "not a time"))
}

#[utoipa::path(post, path = "/api/v1/me/deputies", tag = "me", security(("bearer" = ["request"])), request_body = NewDeputy,
    responses((status = 201, body = Created, description = "Set: while it runs, the requests waiting for the caller go to the deputy too. It replaces a period still running or to come")))]
pub(super) async fn set_deputy(caller: Caller, b: Result<Json<NewDeputy>, JsonRejection>) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Request)?;
    deputy_for(&caller, actor, actor.id(), b).await
}

/// `user`'s deputy period as `actor` sets it (the service refuses anyone else's but an
/// administrator).
async fn deputy_for(
    caller: &Caller,
    actor: &crate::domain::authz::Actor,
    user: UserId,
    b: Result<Json<NewDeputy>, JsonRejection>,
) -> Result<Response, Problem> {
    let b = body(b)?;
    at_most("deputy", &b.deputy, 320)?;
    let starts = match b.from.as_deref() {
        Some(from) => day("from", from, false)?,
        None => caller.service.clock().now(),
    };
    let ends = day("until", &b.until, true)?;
    let id = caller.service.set_deputy(actor, user, &b.deputy, (starts, ends)).await?;
    Ok((StatusCode::CREATED, Json(Created::new(id))).into_response())
}

#[utoipa::path(get, path = "/api/v1/people/{id}/deputies", tag = "people", security(("bearer" = ["admin"])), params(("id" = i64, Path)),
    responses((status = 200, body = DeputyPanel, description = "The person's deputy period (now or to come), and those they stand in for")))]
pub(super) async fn deputies_of(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<DeputyPanel>, Problem> {
    let actor = caller.with(Scope::Admin)?;
    Ok(Json(caller.service.deputies_of(actor, UserId(path_id(id)?)).await?))
}

#[utoipa::path(post, path = "/api/v1/people/{id}/deputies", tag = "people", security(("bearer" = ["admin"])),
    params(("id" = i64, Path)), request_body = NewDeputy,
    responses((status = 201, body = Created, description = "Set for them (administrators): while it runs, the requests waiting for the person go to the deputy too"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn set_deputy_of(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NewDeputy>, JsonRejection>,
) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Admin)?;
    let user = UserId(path_id(id)?);
    deputy_for(&caller, actor, user, b).await
}

#[utoipa::path(delete, path = "/api/v1/me/deputies/{id}", tag = "me", security(("bearer" = ["request"])), params(("id" = i64, Path)),
    responses((status = 204, description = "Ended: the requests come to its person alone again (the caller's own period; an administrator ends anyone's)"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "It ended already")))]
pub(super) async fn end_deputy(caller: Caller, id: Result<Path<i64>, PathRejection>) -> Result<StatusCode, Problem> {
    let actor = caller.with(Scope::Request)?;
    caller.service.end_deputy(actor, path_id(id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
