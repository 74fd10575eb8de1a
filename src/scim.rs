//! The SCIM 2.0 service provider at `/scim/v2` (RFC 7644), for the company's identity
//! provider to push people and groups in: thin adapters over the service's SCIM operations
//! (`service/scim.rs`), whose document rules are `domain/scim.rs`. Callers carry an API token
//! with the `scim` scope of an administrator (`Authorization: Bearer qm_…`); cookies are
//! ignored. Answers are `application/scim+json`; errors are SCIM error messages.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::scim::{self as doc, Kind, ScimError};
use crate::server::AppState;
use crate::service::scim::{ScimChange, ScimResource};
use crate::service::tokens::TokenCaller;
use crate::service::Service;

/// Where the service provider is mounted.
pub const BASE_PATH: &str = "/scim/v2";

const CONTENT_TYPE: &str = "application/scim+json";

/// A SCIM answer: JSON as `application/scim+json`.
fn scim_json(status: StatusCode, body: Value) -> Response {
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    res
}

/// A SCIM error as its message.
pub(crate) struct Failure(ScimError);

impl From<ScimError> for Failure {
    fn from(e: ScimError) -> Self {
        Failure(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = scim_json(status, self.0.body());
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"quartermaster\""));
        }
        res
    }
}

pub(crate) async fn method_not_allowed() -> Failure {
    Failure(ScimError::new(405, None, "this endpoint does not take that method"))
}

pub(crate) async fn not_found() -> Failure {
    Failure(ScimError::new(404, None, "no SCIM resource or endpoint here"))
}

/// The caller: the service, and an API token's owner with its scopes (the scope is checked
/// by each service operation).
pub(crate) struct Caller {
    service: Service,
    token: TokenCaller,
    /// `http(s)://host/scim/v2`, for locations.
    base: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let service = state.auth.service.clone();
        let secret = crate::rest::bearer_secret(&parts.headers);
        let unauthenticated = |why: &str| Failure(ScimError::new(401, None, why));
        let Some(secret) = secret else {
            return Err(unauthenticated("send an API token: Authorization: Bearer qm_…"));
        };
        let token = match service.token_caller(&secret).await {
            Ok(Some(token)) => token,
            Ok(None) => return Err(unauthenticated("this API token is unknown, expired or revoked")),
            Err(e) => return Err(Failure(e.into())),
        };
        let base = match &state.auth.public {
            Some(public) => format!("{}{}", public.as_str().trim_end_matches('/'), BASE_PATH),
            None => {
                let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
                let scheme = if state.auth.https { "https" } else { "http" };
                format!("{scheme}://{host}{BASE_PATH}")
            }
        };
        // Every change the provider makes names its token in the audit trail (the leaver path's
        // cancellations and removals too).
        Ok(Caller { service: service.through_token(token.token), token, base })
    }
}

impl Caller {
    /// Discovery is for the provider too (a token with `scim` of an administrator).
    fn check(&self) -> Result<(), Failure> {
        if !self.token.scopes.has(crate::domain::token::Scope::Scim) || !self.token.administrator {
            return Err(Failure(ScimError::new(
                403,
                None,
                "this needs an administrator's API token with the scim scope",
            )));
        }
        Ok(())
    }
}

fn list_response(total: usize, start: usize, resources: Vec<Value>) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

pub(crate) async fn service_provider_config(caller: Caller) -> Result<Response, Failure> {
    caller.check()?;
    Ok(scim_json(
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": MAX_COUNT},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "API token",
                "description": "An administrator's Quartermaster API token with the scim scope \
                                (quartermaster token create --scopes scim), as a bearer token",
                "primary": true,
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{}/ServiceProviderConfig", caller.base)},
        }),
    ))
}

const KINDS: [Kind; 2] = [Kind::User, Kind::Group];

pub(crate) async fn resource_types(caller: Caller) -> Result<Response, Failure> {
    caller.check()?;
    let all: Vec<Value> = KINDS.iter().map(|k| doc::resource_type(*k, &caller.base)).collect();
    Ok(scim_json(StatusCode::OK, list_response(all.len(), 1, all)))
}

pub(crate) async fn resource_type(caller: Caller, Path(id): Path<String>) -> Result<Response, Failure> {
    caller.check()?;
    let kind = KINDS
        .into_iter()
        .find(|k| k.as_str() == id)
        .ok_or_else(|| Failure(ScimError::new(404, None, "no such resource type")))?;
    Ok(scim_json(StatusCode::OK, doc::resource_type(kind, &caller.base)))
}

fn all_schemas() -> [&'static doc::Schema; 3] {
    [&doc::USER, &doc::GROUP, &doc::ENTERPRISE_USER]
}

pub(crate) async fn schemas(caller: Caller) -> Result<Response, Failure> {
    caller.check()?;
    let all: Vec<Value> = all_schemas().iter().map(|s| doc::schema_resource(s, &caller.base)).collect();
    Ok(scim_json(StatusCode::OK, list_response(all.len(), 1, all)))
}

pub(crate) async fn schema(caller: Caller, Path(id): Path<String>) -> Result<Response, Failure> {
    caller.check()?;
    let schema = all_schemas()
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| Failure(ScimError::new(404, None, "no such schema")))?;
    Ok(scim_json(StatusCode::OK, doc::schema_resource(schema, &caller.base)))
}

/// The most resources a list gives at once.
const MAX_COUNT: usize = 1000;

/// A list's parameters, from the query or a `.search` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    #[serde(default, deserialize_with = "names")]
    attributes: Vec<String>,
    #[serde(default, deserialize_with = "names")]
    excluded_attributes: Vec<String>,
}

/// Attribute names as a comma-separated string (the query) or a list (a search body).
fn names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Names>::deserialize(d)? {
        None => Vec::new(),
        Some(Names::One(s)) => s.split(',').map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect(),
        Some(Names::Many(v)) => v,
    })
}

impl ListQuery {
    fn filter(&self) -> Result<Option<scim_v2::filter::Filter>, Failure> {
        match self.filter.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
            None => Ok(None),
            Some(f) => f.parse().map(Some).map_err(|e| {
                Failure(ScimError::new(400, Some("invalidFilter"), format!("the filter does not parse: {e}")))
            }),
        }
    }

    fn start(&self) -> usize {
        usize::try_from(self.start_index.unwrap_or(1).max(1)).unwrap_or(1)
    }

    fn count(&self) -> usize {
        usize::try_from(self.count.unwrap_or(100).clamp(0, MAX_COUNT as i64)).unwrap_or(100)
    }
}

fn query(q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>) -> Result<ListQuery, Failure> {
    q.map(|Query(q)| q).map_err(|e| Failure(ScimError::invalid_value(e.body_text())))
}

fn body(bytes: &Bytes) -> Result<Value, Failure> {
    serde_json::from_slice(bytes).map_err(|e| Failure(ScimError::invalid_syntax(format!("the body is not JSON: {e}"))))
}

fn id_of(id: &str, kind: Kind) -> Result<i64, Failure> {
    id.parse::<i64>().map_err(|_| {
        Failure(ScimError::new(
            404,
            None,
            format!("{} {} not found", kind.as_str(), id.chars().take(40).collect::<String>()),
        ))
    })
}

/// The version an `If-Match` names (`W/"3"`); `*` or none: any.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, Failure> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let value = value.to_str().unwrap_or_default().trim();
    if value == "*" {
        return Ok(None);
    }
    value
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| Failure(ScimError::new(412, None, "If-Match names no version of this resource")))
}

fn served(caller: &Caller, r: &ScimResource, q: &ListQuery) -> Value {
    let mut out = r.served(&caller.base);
    doc::project(r.kind, &mut out, &q.attributes, &q.excluded_attributes);
    Value::Object(out)
}

/// One resource's answer, with its ETag (and, when created, its Location).
fn resource_answer(caller: &Caller, status: StatusCode, r: &ScimResource, q: &ListQuery) -> Response {
    let mut res = scim_json(status, served(caller, r, q));
    if let Ok(etag) = HeaderValue::from_str(&r.etag()) {
        res.headers_mut().insert(header::ETAG, etag);
    }
    if status == StatusCode::CREATED {
        if let Ok(location) = HeaderValue::from_str(&format!("{}{}/{}", caller.base, r.kind.endpoint(), r.id)) {
            res.headers_mut().insert(header::LOCATION, location);
        }
    }
    res
}

async fn list(caller: Caller, kind: Kind, q: ListQuery) -> Result<Response, Failure> {
    let filter = q.filter()?;
    let (start, count) = (q.start(), q.count());
    let (total, page) = caller.service.scim_list(&caller.token, kind, filter.as_ref(), start, count).await?;
    let resources = page.iter().map(|r| served(&caller, r, &q)).collect();
    Ok(scim_json(StatusCode::OK, list_response(total, start, resources)))
}

async fn search(caller: Caller, kind: Kind, bytes: Bytes) -> Result<Response, Failure> {
    let q: ListQuery = serde_json::from_value(body(&bytes)?)
        .map_err(|e| Failure(ScimError::invalid_syntax(format!("not a search request: {e}"))))?;
    list(caller, kind, q).await
}

/// `/.search` over every kind: Users first, then Groups, one page across both.
pub(crate) async fn search_all(caller: Caller, bytes: Bytes) -> Result<Response, Failure> {
    let q: ListQuery = serde_json::from_value(body(&bytes)?)
        .map_err(|e| Failure(ScimError::invalid_syntax(format!("not a search request: {e}"))))?;
    let filter = q.filter()?;
    let (start, count) = (q.start(), q.count());
    let mut total = 0;
    let mut resources = Vec::new();
    for kind in KINDS {
        // Where this kind's part of the page starts, counted within the kind.
        let from = start.saturating_sub(total).max(1);
        let room = count - resources.len();
        let (n, page) = caller.service.scim_list(&caller.token, kind, filter.as_ref(), from, room).await?;
        total += n;
        resources.extend(page.iter().map(|r| served(&caller, r, &q)));
    }
    Ok(scim_json(StatusCode::OK, list_response(total, start, resources)))
}

async fn get_one(caller: Caller, kind: Kind, id: &str, q: ListQuery) -> Result<Response, Failure> {
    let r = caller.service.scim_get(&caller.token, kind, id_of(id, kind)?).await?;
    Ok(resource_answer(&caller, StatusCode::OK, &r, &q))
}

async fn create(caller: Caller, kind: Kind, bytes: Bytes) -> Result<Response, Failure> {
    let r = caller.service.scim_create(&caller.token, kind, &body(&bytes)?).await?;
    Ok(resource_answer(&caller, StatusCode::CREATED, &r, &ListQuery::default()))
}

async fn replace(caller: Caller, kind: Kind, id: &str, headers: &HeaderMap, bytes: Bytes) -> Result<Response, Failure> {
    let id = id_of(id, kind)?;
    let version = if_match(headers)?;
    let value = body(&bytes)?;
    let r = caller.service.scim_change(&caller.token, kind, id, ScimChange::Replace(&value), version).await?;
    Ok(resource_answer(&caller, StatusCode::OK, &r, &ListQuery::default()))
}

async fn patch(caller: Caller, kind: Kind, id: &str, headers: &HeaderMap, bytes: Bytes) -> Result<Response, Failure> {
    let id = id_of(id, kind)?;
    let version = if_match(headers)?;
    let op: scim_v2::models::others::PatchOp = serde_json::from_value(body(&bytes)?).map_err(|e| {
        let text = e.to_string();
        let kind = if text.contains("invalid SCIM path") { "invalidPath" } else { "invalidSyntax" };
        Failure(ScimError::new(400, Some(kind), format!("not a PATCH request: {text}")))
    })?;
    let r = caller.service.scim_change(&caller.token, kind, id, ScimChange::Patch(&op.operations), version).await?;
    Ok(resource_answer(&caller, StatusCode::OK, &r, &ListQuery::default()))
}

async fn delete(caller: Caller, kind: Kind, id: &str, headers: &HeaderMap) -> Result<Response, Failure> {
    let id = id_of(id, kind)?;
    let version = if_match(headers)?;
    caller.service.scim_delete(&caller.token, kind, id, version).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) type Q = Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>;

pub(crate) async fn list_users(caller: Caller, q: Q) -> Result<Response, Failure> {
    list(caller, Kind::User, query(q)?).await
}
pub(crate) async fn list_groups(caller: Caller, q: Q) -> Result<Response, Failure> {
    list(caller, Kind::Group, query(q)?).await
}
pub(crate) async fn search_users(caller: Caller, bytes: Bytes) -> Result<Response, Failure> {
    search(caller, Kind::User, bytes).await
}
pub(crate) async fn search_groups(caller: Caller, bytes: Bytes) -> Result<Response, Failure> {
    search(caller, Kind::Group, bytes).await
}
pub(crate) async fn create_user(caller: Caller, bytes: Bytes) -> Result<Response, Failure> {
    create(caller, Kind::User, bytes).await
}
pub(crate) async fn create_group(caller: Caller, bytes: Bytes) -> Result<Response, Failure> {
    create(caller, Kind::Group, bytes).await
}
pub(crate) async fn get_user(caller: Caller, Path(id): Path<String>, q: Q) -> Result<Response, Failure> {
    get_one(caller, Kind::User, &id, query(q)?).await
}
pub(crate) async fn get_group(caller: Caller, Path(id): Path<String>, q: Q) -> Result<Response, Failure> {
    get_one(caller, Kind::Group, &id, query(q)?).await
}
pub(crate) async fn replace_user(
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Failure> {
    replace(caller, Kind::User, &id, &headers, bytes).await
}
pub(crate) async fn replace_group(
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Failure> {
    replace(caller, Kind::Group, &id, &headers, bytes).await
}
pub(crate) async fn patch_user(
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Failure> {
    patch(caller, Kind::User, &id, &headers, bytes).await
}
pub(crate) async fn patch_group(
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Failure> {
    patch(caller, Kind::Group, &id, &headers, bytes).await
}
pub(crate) async fn delete_user(
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    delete(caller, Kind::User, &id, &headers).await
}
pub(crate) async fn delete_group(
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    delete(caller, Kind::Group, &id, &headers).await
}
