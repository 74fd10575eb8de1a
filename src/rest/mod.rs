//! The REST API under `/api/v1`, for scripts and other systems: each handler is a thin
//! adapter over the service call the pages' server functions make, as the caller an API
//! token stands for (its owner, with only the token's scopes), with the same authorization.
//! The OpenAPI document (`/api/v1/openapi.json`) is generated from these handlers, and the
//! authorization sweep walks every operation it lists.
//!
//! Not to be confused with the server functions (`ui/api/`, under `/api/{name}`), which the
//! pages call with the session cookie: this API takes a bearer token and ignores cookies.

mod access;
mod admin;
mod connectors;
mod docs;
mod drafts;
mod governance;
mod problem;
mod settings;
mod tokens;
mod upkeep;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use docs::{docs_file, docs_index, openapi_json};
pub use problem::Problem;

use crate::domain::ids::{CatalogId, PackageId, PolicyId, RequestId, UserId};
use crate::domain::token::Scope;
use crate::server::AppState;
use crate::service::tokens::TokenCaller;
use crate::service::{NewRequest, RequestOutcome, Service};
use crate::ui::api::{MAX_JUSTIFICATION, MAX_NAME};
use crate::views::{ApprovalItem, AssignmentView, PackageCard, PackageDetail, Page, RequestView};

/// The API's routes, for the router (mounted once, beside the pages).
pub fn router() -> axum::Router<AppState> {
    operations().split_for_parts().0
}

/// The OpenAPI document of every operation [`router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = operations().into_openapi();
    // After the operations are in (the `#[openapi]` modifiers run before they are).
    utoipa::Modify::modify(&CommonAnswers, &mut doc);
    doc
}

/// Every operation, registered with its documentation: one list for the router and the
/// document alike.
fn operations() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(me))
        .routes(routes!(packages))
        .routes(routes!(package))
        .routes(routes!(my_requests, submit_request))
        .routes(routes!(cancel_request))
        .routes(routes!(decide))
        .routes(routes!(approvals))
        .routes(routes!(my_access))
        .routes(routes!(admin::catalogs, admin::create_catalog))
        .routes(routes!(admin::catalog, admin::change_catalog, admin::delete_catalog))
        .routes(routes!(admin::package_settings, admin::change_package_settings))
        .routes(routes!(admin::audit_events))
        .routes(routes!(admin::package_assignments, admin::assign))
        .routes(routes!(admin::remove_assignment))
        .routes(routes!(admin::people))
        .routes(routes!(admin::person_access))
        .routes(routes!(admin::groups))
        .routes(routes!(admin::directory))
        .routes(routes!(admin::bulk_assign))
        .routes(routes!(admin::bulk_job))
        .routes(routes!(drafts::start_draft))
        .routes(routes!(drafts::draft, drafts::discard))
        .routes(routes!(drafts::save_step))
        .routes(routes!(drafts::finish))
        .routes(routes!(admin::grant_global_role, admin::revoke_global_role))
        .routes(routes!(admin::package_policies, admin::add_policy))
        .routes(routes!(admin::create_package))
        .routes(routes!(admin::policy, admin::replace_policy))
        .routes(routes!(admin::catalog_resources, admin::add_resource))
        .routes(routes!(governance::review_items))
        .routes(routes!(governance::answer_review))
        .routes(routes!(governance::reviews))
        .routes(routes!(governance::end_review))
        .routes(routes!(governance::apply_review))
        .routes(routes!(governance::organizations, governance::create_organization))
        .routes(routes!(governance::organization, governance::change_organization))
        .routes(routes!(governance::set_guest_lifecycle))
        .routes(routes!(governance::add_sponsor))
        .routes(routes!(governance::remove_sponsor))
        .routes(routes!(connectors::connectors, connectors::add_connector))
        .routes(routes!(connectors::connector))
        .routes(routes!(connectors::change_connector))
        .routes(routes!(connectors::test_connector))
        .routes(routes!(connectors::retry_connector))
        .routes(routes!(connectors::check_drift))
        .routes(routes!(connectors::repair_drift))
        .routes(routes!(connectors::import_groups))
        .routes(routes!(connectors::builtin_groups))
        .routes(routes!(access::extend))
        .routes(routes!(access::give_up))
        .routes(routes!(access::decisions, access::decide_many))
        .routes(routes!(admin::catalog_roles, admin::grant_catalog_role))
        .routes(routes!(admin::revoke_catalog_role))
        .routes(routes!(upkeep::failed_work))
        .routes(routes!(upkeep::retry))
        .routes(routes!(upkeep::chain_status))
        .routes(routes!(upkeep::verify_chain))
        .routes(routes!(settings::email_settings, settings::change_email_settings))
        .routes(routes!(settings::deputies, settings::set_deputy))
        .routes(routes!(settings::end_deputy))
        .routes(routes!(settings::deputies_of, settings::set_deputy_of))
        .routes(routes!(tokens::my_tokens, tokens::create_my_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(tokens::service_accounts, tokens::create_service_account))
        .routes(routes!(tokens::create_service_token))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Quartermaster",
        description = "Access packages, requests, approvals and assignments, as the portal has them. \
                       Every call carries an API token (`Authorization: Bearer qm_…`) and acts as its owner \
                       with only its scopes: `read` for every GET, `request` to ask for and cancel access, \
                       `decide` to approve or deny, `admin` to use the owner's administrative roles \
                       (catalogs, packages, the audit trail, as those roles allow). \
                       Each operation names the scope it needs under `security`. Errors are RFC 9457 \
                       problem details. An object that can be changed comes with an `ETag`: send it back \
                       as `If-Match` to change it (412 when someone changed it since; 428 without it). Lists come a page at a time: pass `next` back \
                       as `cursor`."
    ),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    tags(
        (name = "me", description = "The token and its owner, their tokens, email settings and out-of-office"),
        (name = "packages", description = "Access packages the caller may request"),
        (name = "requests", description = "The caller's requests, and deciding others'"),
        (name = "assignments", description = "The caller's access"),
        (name = "catalogs", description = "Catalogs and their packages, for those who manage them"),
        (name = "audit", description = "The audit trail, for those who may read it"),
        (name = "people", description = "People, what they have and why, their global roles and deputies, service accounts, and the directory's groups"),
        (name = "reviews", description = "Access reviews: answering them, and running them"),
        (name = "organizations", description = "Connected organizations and their sponsors (administrators)"),
        (name = "connectors", description = "Connected systems access is provisioned into, and the groups Quartermaster holds itself (administrators)"),
        (name = "upkeep", description = "Provisioning work that failed, to retry"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Answers any operation may give, declared on each: 401 and 403 (every operation takes a
/// token, and checks its scope before anything else), 422 (a path id that is not a number, a
/// query string that cannot be read), 429 (the rate limit at the edge, before any handler),
/// and 415 wherever a JSON body is taken (one sent as something else). Each is one response
/// in the components, named by the operations.
struct CommonAnswers;

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let problem = |description: &str| {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
            RefOr::T(
                ResponseBuilder::new().description(description).content("application/problem+json", content).build(),
            )
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.responses.insert(
            "TooManyRequests".into(),
            problem("Too many calls from this address: wait `Retry-After` seconds. Nothing was changed."),
        );
        components.responses.insert(
            "Unreadable".into(),
            problem("An id in the path is not a number, or the query string or body cannot be read"),
        );
        components.responses.insert("NotJson".into(), problem("The body is not sent as JSON"));
        components
            .responses
            .insert("Unauthenticated".into(), problem("No API token, or one unknown, expired or revoked"));
        components
            .responses
            .insert("Forbidden".into(), problem("The token lacks the operation's scope, or its owner may not do this"));
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                responses.insert("429".into(), RefOr::Ref(Ref::from_response_name("TooManyRequests")));
                for (status, name) in [("401", "Unauthenticated"), ("403", "Forbidden")] {
                    responses.entry(status.into()).or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
                responses.entry("422".into()).or_insert_with(|| RefOr::Ref(Ref::from_response_name("Unreadable")));
                if operation.request_body.is_some() {
                    responses.entry("415".into()).or_insert_with(|| RefOr::Ref(Ref::from_response_name("NotJson")));
                }
            }
        }
    }
}

/// The caller of an API operation: the service, and the token's owner with its scopes.
/// Also the caller of `/metrics` on the portal's listener.
pub struct Caller {
    service: Service,
    token: TokenCaller,
}

impl Caller {
    /// The owner (as the token lets them act), once the token is seen to have `scope`.
    fn with(&self, scope: Scope) -> Result<&crate::domain::authz::Actor, Problem> {
        self.token.require(scope)?;
        tracing::info!(token = self.token.token, user = self.token.actor.id().0, scope = scope.word(), "api call");
        Ok(&self.token.actor)
    }

    /// Refused unless the token has `metrics` and its owner is an administrator now.
    pub fn metrics_reader(&self) -> Result<(), Problem> {
        self.token.require(Scope::Metrics)?;
        if !self.token.administrator {
            return Err(Problem::from(crate::domain::DomainError::forbidden(
                "only an administrator's token reads the metrics",
            )));
        }
        Ok(())
    }

    pub fn service(&self) -> &Service {
        &self.service
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let service = state.auth.service.clone();
        let Some(secret) = bearer_secret(&parts.headers) else {
            return Err(Problem::unauthenticated("send an API token: Authorization: Bearer qm_…"));
        };
        match service.token_caller(&secret).await? {
            // Every change made through the token names it in the audit trail.
            Some(caller) => Ok(Caller { service: service.through_token(caller.token), token: caller }),
            None => Err(Problem::unauthenticated("this API token is unknown, expired or revoked")),
        }
    }
}

/// The secret of an `Authorization: Bearer …` header (the REST API's and SCIM's).
pub(crate) fn bearer_secret(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, secret)| secret.trim().to_owned())
}

/// A query the API could not read: 422, saying why.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(q)| q).map_err(|e| Problem::unreadable(e.status(), e.body_text()))
}

/// Two ids in the path: 422 when one is not a number (the text names which).
fn path_ids(p: Result<Path<(i64, i64)>, PathRejection>) -> Result<(i64, i64), Problem> {
    p.map(|Path(ids)| ids).map_err(|e| Problem::invalid(None, e.body_text()))
}

/// An id in the path the API could not read: 422.
fn path_id(p: Result<Path<i64>, PathRejection>) -> Result<i64, Problem> {
    p.map(|Path(id)| id).map_err(|e| Problem::invalid(Some("id"), e.body_text()))
}

/// A JSON body the API could not read: 415 when it is not JSON, 422 otherwise.
fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    b.map(|Json(b)| b).map_err(|e| Problem::unreadable(e.status(), e.body_text()))
}

fn at_most(field: &str, value: &str, max: usize) -> Result<(), Problem> {
    if value.chars().count() > max {
        return Err(Problem::invalid(Some(field), format!("at most {max} characters")));
    }
    Ok(())
}

/// The token and the person it acts as.
#[derive(Serialize, ToSchema)]
struct Me {
    id: i64,
    email: String,
    name: String,
    department: String,
    job_title: String,
    /// The token's id and scopes.
    token: i64,
    scopes: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "me", security(("bearer" = ["read"])),
    responses((status = 200, body = Me)))]
async fn me(caller: Caller) -> Result<Json<Me>, Problem> {
    let actor = caller.with(Scope::Read)?;
    Ok(Json(Me {
        id: actor.id().0,
        email: actor.user.email.clone(),
        name: actor.user.display_name.clone(),
        department: actor.user.department.clone(),
        job_title: actor.user.job_title.clone(),
        token: caller.token.token,
        scopes: caller.token.scopes.iter().map(|s| s.word().to_owned()).collect(),
    }))
}

/// A page of a list: `cursor` is the `next` of the page before.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    cursor: Option<String>,
}

/// Packages the caller may request, a page at a time.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PackageQuery {
    /// Words in the name, the description or a resource's name.
    q: Option<String>,
    /// Only this catalog's.
    catalog: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/packages", tag = "packages", security(("bearer" = ["read"])), params(PackageQuery),
    responses((status = 200, body = Page<PackageCard>)))]
async fn packages(
    caller: Caller,
    q: Result<Query<PackageQuery>, QueryRejection>,
) -> Result<Json<Page<PackageCard>>, Problem> {
    let actor = caller.with(Scope::Read)?;
    let q = query(q)?;
    let search = q.q.unwrap_or_default();
    at_most("q", &search, MAX_NAME)?;
    let page =
        caller.service.requestable_packages(actor, &search, q.catalog.map(CatalogId), q.cursor.as_deref()).await?;
    Ok(Json(page))
}

#[utoipa::path(get, path = "/api/v1/packages/{id}", tag = "packages", security(("bearer" = ["read"])), params(("id" = i64, Path)),
    responses((status = 200, body = PackageDetail), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn package(caller: Caller, id: Result<Path<i64>, PathRejection>) -> Result<Json<PackageDetail>, Problem> {
    let actor = caller.with(Scope::Read)?;
    Ok(Json(caller.service.package_detail(actor, PackageId(path_id(id)?)).await?))
}

/// The row-id cursor of a list (anything else: from the start, as on the pages).
fn row_cursor(q: PageQuery) -> Option<i64> {
    q.cursor.and_then(|c| c.parse().ok())
}

#[utoipa::path(get, path = "/api/v1/requests", tag = "requests", security(("bearer" = ["read"])), params(PageQuery),
    responses((status = 200, body = Page<RequestView>, description = "The caller's requests, newest first")))]
async fn my_requests(
    caller: Caller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<RequestView>>, Problem> {
    let actor = caller.with(Scope::Read)?;
    Ok(Json(caller.service.my_requests(actor, row_cursor(query(q)?)).await?))
}

/// Asking for a package (for oneself, or for a direct report where the policy allows).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewRequestBody {
    package_id: i64,
    /// Which policy, when more than one applies to the caller.
    policy_id: Option<i64>,
    /// A direct report's id, to ask on their behalf.
    on_behalf_of: Option<i64>,
    #[serde(default)]
    justification: String,
    /// The policy's questions answered, by question id.
    #[serde(default)]
    answers: std::collections::BTreeMap<String, String>,
    /// When the access should start and end (Unix milliseconds), where the policy allows.
    start_at: Option<i64>,
    end_at: Option<i64>,
}

/// Where a request stands after an operation.
#[derive(Serialize, ToSchema)]
struct Outcome {
    request_id: i64,
    state: crate::states::RequestState,
    message: String,
}

impl From<RequestOutcome> for Outcome {
    fn from(o: RequestOutcome) -> Self {
        Outcome { request_id: o.request.0, state: o.state, message: o.message }
    }
}

fn millis(field: &str, at: Option<i64>) -> Result<Option<chrono::DateTime<chrono::Utc>>, Problem> {
    at.map(|ms| chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| Problem::invalid(Some(field), "not a time")))
        .transpose()
}

#[utoipa::path(post, path = "/api/v1/requests", tag = "requests", security(("bearer" = ["request"])), request_body = NewRequestBody,
    responses((status = 201, body = Outcome, description = "Filed; `state` says whether it waits for approval, was granted, or was stopped (`rejected`, with the reason)"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
async fn submit_request(caller: Caller, b: Result<Json<NewRequestBody>, JsonRejection>) -> Result<Response, Problem> {
    let actor = caller.with(Scope::Request)?;
    let b = body(b)?;
    at_most("justification", &b.justification, MAX_JUSTIFICATION)?;
    for (question, answer) in &b.answers {
        at_most("answers", question, MAX_NAME)?;
        at_most(&format!("answers[{question}]"), answer, MAX_JUSTIFICATION)?;
    }
    let new = NewRequest {
        package: PackageId(b.package_id),
        policy: b.policy_id.map(PolicyId),
        target: b.on_behalf_of.map(UserId),
        justification: b.justification,
        answers: b
            .answers
            .into_iter()
            .map(|(question_id, value)| crate::domain::policy::Answer { question_id, value })
            .collect(),
        start: millis("start_at", b.start_at)?,
        end: millis("end_at", b.end_at)?,
    };
    let outcome = Outcome::from(caller.service.submit_request(actor, new).await?);
    Ok((StatusCode::CREATED, Json(outcome)).into_response())
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/cancel", tag = "requests", security(("bearer" = ["request"])), params(("id" = i64, Path)),
    responses((status = 200, body = Outcome), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
async fn cancel_request(caller: Caller, id: Result<Path<i64>, PathRejection>) -> Result<Json<Outcome>, Problem> {
    let actor = caller.with(Scope::Request)?;
    Ok(Json(caller.service.cancel_request(actor, RequestId(path_id(id)?)).await?.into()))
}

/// A decision on the stage of a request waiting for the caller.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    /// `approve` or `deny`.
    decision: DecisionWord,
    /// Why (required where the policy asks for it).
    #[serde(default)]
    justification: String,
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum DecisionWord {
    Approve,
    Deny,
}

impl From<DecisionWord> for crate::domain::request::Decision {
    fn from(w: DecisionWord) -> Self {
        match w {
            DecisionWord::Approve => Self::Approve,
            DecisionWord::Deny => Self::Deny,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/decision", tag = "requests", security(("bearer" = ["decide"])), params(("id" = i64, Path)),
    request_body = DecisionBody,
    responses((status = 200, body = Outcome), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "Someone decided first, or the request ended")))]
async fn decide(
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Json<Outcome>, Problem> {
    let actor = caller.with(Scope::Decide)?;
    let id = path_id(id)?;
    let b = body(b)?;
    at_most("justification", &b.justification, MAX_JUSTIFICATION)?;
    Ok(Json(caller.service.decide(actor, RequestId(id), b.decision.into(), &b.justification).await?.into()))
}

#[utoipa::path(get, path = "/api/v1/approvals", tag = "requests", security(("bearer" = ["read"])), params(PageQuery),
    responses((status = 200, body = Page<ApprovalItem>, description = "Requests waiting for the caller's decision, oldest first")))]
async fn approvals(
    caller: Caller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<ApprovalItem>>, Problem> {
    let actor = caller.with(Scope::Read)?;
    Ok(Json(caller.service.pending_approvals(actor, row_cursor(query(q)?)).await?))
}

#[utoipa::path(get, path = "/api/v1/assignments", tag = "assignments", security(("bearer" = ["read"])), params(PageQuery),
    responses((status = 200, body = Page<AssignmentView>, description = "The caller's access, live first")))]
async fn my_access(
    caller: Caller,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Page<AssignmentView>>, Problem> {
    let actor = caller.with(Scope::Read)?;
    Ok(Json(caller.service.my_access(actor, row_cursor(query(q)?)).await?))
}
