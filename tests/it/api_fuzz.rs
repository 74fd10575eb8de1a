//! The REST API driven from its own OpenAPI document: random calls of every operation it
//! lists — ids that exist and ids that do not, query values and bodies made from the
//! operation's schemas, and those bodies broken — each answered with a status the document
//! declares for that operation, never a 5xx, with a body its schema accepts. The calls must
//! also get somewhere: every read answers 2xx at some point, and so do changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

use crate::common::{spawn_app_with, TestApp};
use quartermaster::domain::ids::UserId;
use quartermaster::domain::token::Scopes;
use quartermaster::service::tokens::TokenBy;
use quartermaster::store::Backend;

/// One operation of the document.
#[derive(Debug)]
struct Operation {
    method: reqwest::Method,
    path: String,
    /// The query parameters: name and schema.
    query: Vec<(String, Value)>,
    /// The query parameters it cannot do without, with a plain value of their type.
    required: Vec<(String, String)>,
    body: Option<Value>,
    /// By status: the media type and schema of the answer's body (none: no body).
    responses: BTreeMap<u16, Option<(String, Value)>>,
}

impl Operation {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// `value` with a `$ref` into the document's components followed (once, at its top).
fn resolved<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            doc.pointer(pointer).unwrap_or_else(|| panic!("{r} is not in the document"))
        }
        None => value,
    }
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<reqwest::Method>() else { continue };
            let query = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| resolved(doc, p))
                .filter(|p| p["in"] == "query")
                .map(|p| (p["name"].as_str().unwrap().to_owned(), p["schema"].clone()))
                .collect();
            let required = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| resolved(doc, p))
                .filter(|p| p["in"] == "query" && p["required"] == true)
                .map(|p| {
                    let plain = if p["schema"]["type"] == "integer" { "1" } else { "a" };
                    (p["name"].as_str().unwrap().to_owned(), plain.to_owned())
                })
                .collect();
            let body = op.pointer("/requestBody/content/application~1json/schema").cloned();
            let responses = op["responses"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(status, r)| {
                    let r = resolved(doc, r);
                    let content = r["content"].as_object().and_then(|c| c.iter().next());
                    (status.parse().unwrap(), content.map(|(media, c)| (media.clone(), c["schema"].clone())))
                })
                .collect();
            ops.push(Operation { method, path: path.clone(), query, required, body, responses });
        }
    }
    ops
}

/// Values a schema describes, mostly, and some it does not (empty, huge, odd strings; ids that
/// exist, zero, negative, the largest).
fn from_schema(doc: &Value, schema: &Value, depth: u32) -> BoxedStrategy<Value> {
    let schema = resolved(doc, schema);
    if depth > 6 {
        return Just(Value::Null).boxed();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            return Union::new(options.iter().map(|s| from_schema(doc, s, depth + 1))).boxed();
        }
    }
    if let Some(first) = schema["allOf"].as_array().and_then(|a| a.first()) {
        return from_schema(doc, first, depth + 1);
    }
    if let Some(values) = schema["enum"].as_array() {
        let values = values.clone();
        return prop_oneof![4 => prop::sample::select(values), 1 => Just(json!("none of those"))].boxed();
    }
    let types: Vec<String> = match &schema["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect(),
        _ => vec![],
    };
    if types.is_empty() {
        return Just(json!({})).boxed();
    }
    Union::new(types.iter().map(|t| of_type(doc, schema, t, depth))).boxed()
}

fn of_type(doc: &Value, schema: &Value, kind: &str, depth: u32) -> BoxedStrategy<Value> {
    match kind {
        "string" => prop_oneof![
            4 => "[a-z]{1,12}",
            1 => Just(String::new()),
            1 => ".{0,30}",
            1 => Just("x".repeat(3000)),
            1 => "2026-1[0-2]-[0-2][1-9]",
            1 => Just("   ".to_owned()),
            1 => Just("nul \u{0} and \u{7f}".to_owned()),
        ]
        .prop_map(Value::String)
        .boxed(),
        "integer" => prop_oneof![
            8 => 1..8i64,
            1 => Just(0i64),
            1 => Just(-3i64),
            1 => Just(i64::MAX),
            1 => any::<i64>(),
        ]
        .prop_map(Value::from)
        .boxed(),
        "number" => (-1e6..1e6f64).prop_map(Value::from).boxed(),
        "boolean" => any::<bool>().prop_map(Value::Bool).boxed(),
        "null" => Just(Value::Null).boxed(),
        "array" => {
            let items = schema.get("items").cloned().unwrap_or(json!({}));
            prop::collection::vec(from_schema(doc, &items, depth + 1), 0..4).prop_map(Value::Array).boxed()
        }
        "object" => {
            if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
                let values = from_schema(doc, values, depth + 1);
                return prop::collection::btree_map("[a-z0-9_]{1,10}", values, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect()))
                    .boxed();
            }
            let required: Vec<&str> =
                schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, s)| {
                    let (name, value) = (name.clone(), from_schema(doc, s, depth + 1));
                    if required.contains(&name.as_str()) {
                        value.prop_map(move |v| Some((name.clone(), v))).boxed()
                    } else {
                        prop::option::weighted(0.2, value).prop_map(move |v| v.map(|v| (name.clone(), v))).boxed()
                    }
                })
                .collect();
            fields.prop_map(|fields| Value::Object(fields.into_iter().flatten().collect::<Map<_, _>>())).boxed()
        }
        other => panic!("a schema of type {other}"),
    }
}

/// What one call sends.
#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    /// Not JSON at all, sent as JSON.
    Raw(String),
    /// JSON sent as plain text.
    Plain(String),
}

#[derive(Debug, Clone)]
struct Call {
    op: usize,
    id: String,
    query: Vec<(String, String)>,
    body: Body,
    if_match: Option<String>,
    token: usize,
    /// A query string that is not UTF-8 once decoded.
    odd_query: bool,
}

fn call_for(doc: &Value, ops: &[Operation], index: usize) -> BoxedStrategy<Call> {
    let op = &ops[index];
    let id = prop_oneof![
        // Mostly the ids the demo's objects have (most kinds have fewer than seven), so the
        // calls reach the handlers' work and not only their "not found".
        6 => (1..7i64).prop_map(|i| i.to_string()),
        4 => (1..15i64).prop_map(|i| i.to_string()),
        1 => Just("0".to_owned()),
        1 => Just("-5".to_owned()),
        1 => Just("99999999999999999999".to_owned()),
        1 => Just("abc".to_owned()),
    ];
    let query: Vec<BoxedStrategy<Option<(String, String)>>> = op
        .query
        .iter()
        .map(|(name, schema)| {
            let name = name.clone();
            prop::option::weighted(0.2, from_schema(doc, schema, 0))
                .prop_map(move |v| {
                    v.map(|v| (name.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
                })
                .boxed()
        })
        .collect();
    let body = match &op.body {
        None => Just(Body::None).boxed(),
        Some(schema) => prop_oneof![
            8 => from_schema(doc, schema, 0).prop_map(Body::Json),
            1 => from_schema(doc, schema, 0).prop_map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.insert("unheard_of".into(), json!(1));
                }
                Body::Json(v)
            }),
            1 => prop_oneof![Just(json!(null)), Just(json!([])), Just(json!("text")), Just(json!(7))].prop_map(Body::Json),
            1 => prop_oneof![Just("{".to_owned()), Just(String::new()), Just("\u{0}".to_owned())].prop_map(Body::Raw),
            1 => Just(Body::Plain("{}".to_owned())),
        ]
        .boxed(),
    };
    let if_match = prop::option::weighted(
        0.85,
        prop_oneof![
            6 => (1..3i64).prop_map(|v| format!("\"{v}\"")),
            1 => Just("*".to_owned()),
            1 => Just("W/\"1\"".to_owned()),
            1 => Just("garbage".to_owned()),
        ],
    );
    (Just(index), id, query, body, if_match, 0..3usize, prop::bool::weighted(0.05))
        .prop_map(|(op, id, query, body, if_match, token, odd_query)| Call {
            op,
            id,
            query: query.into_iter().flatten().collect(),
            body,
            if_match,
            token,
            odd_query,
        })
        .boxed()
}

/// The schema of an answer, as a validator: the schema with the document's components beside
/// it, so its `$ref`s resolve.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut schema = schema.clone();
    if let Some(o) = schema.as_object_mut() {
        o.insert("components".into(), doc["components"].clone());
    }
    jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(&schema).unwrap()
}

async fn token(app: &TestApp, who: UserId, scopes: &str) -> String {
    let owner = app.service.actor(who).await.unwrap().unwrap();
    let scopes = Scopes::parse(scopes).unwrap();
    app.service.create_token(TokenBy::Person(&owner), &owner, "fuzz", &scopes, 30).await.unwrap().1
}

/// `path` with each of its `{…}` parameters as `id`.
fn every_id(path: &str, id: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        out.push_str(id);
        rest = rest[open..].split_once('}').map_or("", |(_, after)| after);
    }
    out + rest
}

/// Send `call`; what came back: status, content type, body.
async fn send(
    app: &TestApp,
    client: &reqwest::Client,
    op: &Operation,
    call: &Call,
    secret: &str,
) -> (u16, String, String) {
    let path = every_id(&op.path, &call.id);
    let url = if call.odd_query { app.url(&format!("{path}?cursor=%FF")) } else { app.url(&path) };
    let mut req = client.request(op.method.clone(), url).bearer_auth(secret).query(&call.query);
    if let Some(tag) = &call.if_match {
        req = req.header("if-match", tag);
    }
    req = match &call.body {
        Body::None => req,
        Body::Json(v) => req.json(v),
        Body::Raw(text) => req.header("content-type", "application/json").body(text.clone()),
        Body::Plain(text) => req.header("content-type", "text/plain").body(text.clone()),
    };
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let media = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, media, res.text().await.unwrap())
}

/// What the calls achieved, by operation: answers in 2xx, and all answers.
#[derive(Default, Debug)]
struct Progress(BTreeMap<String, (u32, u32)>);

async fn fuzz(backend: Backend, per_operation: u32) {
    // Without the per-address rate limit (what 429 says is tested on its own, in `api`): the
    // answers are the handlers'.
    let app = spawn_app_with(backend, |args| {
        args.no_workers = true;
        args.limits.rate_api_per_address = 0;
    })
    .await;
    let client = reqwest::Client::new();
    let doc: Value = client.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let ops = operations(&doc);
    assert!(ops.len() >= 14, "{} operations", ops.len());
    let ids = &app.ids;
    // Each demo catalog in use (a live assignment in each), so the calls' deletions land on
    // empty catalogs made beside them and the reads still find the packages (the ids the
    // calls pick run to 14).
    let grace = app.service.actor(ids.grace).await.unwrap().unwrap();
    // A builder draft of Grace's, for its read to find (a draft is its author's only).
    let engineering = quartermaster::domain::ids::CatalogId(1);
    let builder = app.service.package_manager(&grace, engineering).unwrap();
    builder.start_draft(quartermaster::service::drafts::DraftStart::New).await.unwrap();
    // A bulk assignment (naming nobody), for its read to find.
    let dev_policy: i64 = sqlx::query_scalar("SELECT id FROM policies WHERE package_id = $1 ORDER BY id LIMIT 1")
        .bind(ids.developer_tools.0)
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    let dev = app.service.assignment_manager_of(&grace, ids.developer_tools).await.unwrap();
    let dev_policy = quartermaster::domain::ids::PolicyId(dev_policy);
    dev.start_bulk(ids.developer_tools, dev_policy, "nobody@quartermaster.example\n", "fuzz").await.unwrap();
    for package in [ids.sales_crm, ids.payments_approver] {
        let policy: i64 = sqlx::query_scalar("SELECT id FROM policies WHERE package_id = $1 ORDER BY id LIMIT 1")
            .bind(package.0)
            .fetch_one(app.service.db().pool())
            .await
            .unwrap();
        let manager = app.service.assignment_manager_of(&grace, package).await.unwrap();
        let policy = quartermaster::domain::ids::PolicyId(policy);
        manager.assign_directly(ids.tom, package, policy, None, "in use").await.unwrap();
    }
    // A connected system beside the built-in one (which has no page of its own), for the
    // connector reads to find.
    let admin = app.service.administrator(&grace).unwrap();
    admin
        .add_webhook_system("Fuzz Hooks", "http://127.0.0.1:9/hooks", "a fuzz secret, long enough", false)
        .await
        .unwrap();
    for n in 0..8 {
        let creator = app.service.catalog_creator(&grace).unwrap();
        creator.create_catalog(&format!("Fuzz {n}"), "", false).await.unwrap();
    }
    // An administrator with every scope, a catalog owner, and an employee: the calls reach
    // every handler's work, and its refusals.
    let secrets = [
        token(&app, ids.grace, "read,request,decide,admin").await,
        token(&app, ids.linus, "read,request,decide,admin").await,
        token(&app, ids.omar, "read,request,decide").await,
    ];
    let mut validators: BTreeMap<(usize, u16), jsonschema::Validator> = BTreeMap::new();
    // The validators do refuse what their schema does not describe.
    let problem = validator(&doc, &json!({"$ref": "#/components/schemas/Problem"}));
    assert!(problem.is_valid(&json!({"type": "t", "title": "t", "status": 400, "detail": "d"})));
    assert!(!problem.is_valid(&json!({"type": 5, "title": "t", "status": 400, "detail": "d"})));
    assert!(!problem.is_valid(&json!({"title": "t", "status": 400, "detail": "d"})));
    let strategy = Union::new((0..ops.len()).map(|i| call_for(&doc, &ops, i)));
    // A fixed seed: the same calls each run, so a failure here is one to replay (the calls
    // share the database, so a failing case alone would not reproduce it).
    let rng = proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha);
    let cases = per_operation * u32::try_from(ops.len()).unwrap();
    let mut runner = TestRunner::new_with_rng(Config { cases, ..Config::default() }, rng);
    let mut progress = Progress::default();
    // First each read as the administrator, of the first objects (every kind has an object
    // with id 1 to 3 in the demo), before any change: what each answers for something that
    // exists is checked against its schema whatever the random calls after it do.
    // Each with its required query parameters, plainly.
    let first = ops.iter().enumerate().filter(|(_, op)| op.method == reqwest::Method::GET).flat_map(|(i, op)| {
        (1..=3).map(move |id| Call {
            op: i,
            id: id.to_string(),
            query: op.required.clone(),
            body: Body::None,
            if_match: None,
            token: 0,
            odd_query: false,
        })
    });
    let first: Vec<Call> = first.collect();
    let random = (0..cases).map(|_| strategy.new_tree(&mut runner).unwrap().current());
    for call in first.into_iter().chain(random) {
        let op = &ops[call.op];
        let (status, media, text) = send(&app, &client, op, &call, &secrets[call.token]).await;
        let what = format!("{} with {call:?} answered {status} {media}: {text}", op.name());
        assert!(status < 500, "{what}");
        let Some(declared) = op.responses.get(&status) else {
            panic!("{what}\n— a status the document does not declare for it ({:?})", op.responses.keys());
        };
        match declared {
            None => assert!(text.is_empty(), "{what}\n— the document declares no body"),
            Some((declared_media, schema)) => {
                assert!(media.starts_with(declared_media.as_str()), "{what}\n— declared as {declared_media}");
                let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}\n— not JSON: {e}"));
                let validator = validators.entry((call.op, status)).or_insert_with(|| validator(&doc, schema));
                let errors: Vec<String> =
                    validator.iter_errors(&body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
                assert!(errors.is_empty(), "{what}\n— not as its schema says: {errors:?}");
            }
        }
        let seen = progress.0.entry(op.name()).or_default();
        seen.1 += 1;
        if (200..300).contains(&status) {
            seen.0 += 1;
        }
    }
    println!("{} on {}: {progress:?}", ops.len(), backend.name());
    // Progress: every read answered, and changes of several kinds landed.
    for op in &ops {
        let (ok, all) = progress.0.get(&op.name()).copied().unwrap_or_default();
        assert!(all > 0, "{} was never called", op.name());
        if op.method == reqwest::Method::GET {
            assert!(ok > 0, "{} never answered 2xx in {all} calls", op.name());
        }
    }
    let changes_landed = ops
        .iter()
        .filter(|op| op.method != reqwest::Method::GET && progress.0.get(&op.name()).is_some_and(|p| p.0 > 0))
        .count();
    assert!(changes_landed >= 3, "only {changes_landed} kinds of change ever landed: {progress:?}");
    // The property's result is the answers, but make sure they left the trail whole.
    let check = app.service.verify_audit_chain(&quartermaster::domain::authz::Operator::Workers).await.unwrap();
    assert!(matches!(check, quartermaster::service::ChainCheck::Intact { .. }), "{check:?}");
}

on_both_databases!(random_calls_from_the_document_get_declared_answers);

async fn random_calls_from_the_document_get_declared_answers(backend: Backend) {
    // About sixty calls an operation: enough for each read to find something after the
    // changes before it, at a few seconds a database.
    fuzz(backend, 60).await;
}
