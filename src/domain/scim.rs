//! SCIM 2.0 resources as Quartermaster keeps them (RFC 7643): the schemas it serves, and the
//! rules over a resource's JSON document — reading what a provider sends into the schema's
//! attribute names, PATCH (RFC 7644 §3.5.2, with the quirks Entra and Okta send), filters
//! (§3.4.2.2) and the attributes a response returns. Plain Rust over `serde_json`; the
//! `scim_v2` crate parses filters and PATCH paths.

use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, Filter, PatchPath, ValFilter};
use scim_v2::models::others::{OperationTarget, PatchOperation};
use serde_json::{json, Map, Value};

/// An attribute's type (RFC 7643 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    String,
    Boolean,
    Complex,
    Reference,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
}

/// An attribute of a schema.
#[derive(Clone, Copy, Debug)]
pub struct Attr {
    pub name: &'static str,
    pub ty: Type,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub unique: bool,
    pub refs: &'static [&'static str],
    pub canonical: &'static [&'static str],
    pub description: &'static str,
    pub sub: &'static [Attr],
}

const fn text(name: &'static str, description: &'static str) -> Attr {
    Attr {
        name,
        ty: Type::String,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        unique: false,
        refs: &[],
        canonical: &[],
        description,
        sub: &[],
    }
}

const fn flag(name: &'static str, description: &'static str) -> Attr {
    Attr { ty: Type::Boolean, ..text(name, description) }
}

const fn reference(name: &'static str, refs: &'static [&'static str], description: &'static str) -> Attr {
    Attr { ty: Type::Reference, refs, case_exact: true, ..text(name, description) }
}

const fn complex(name: &'static str, sub: &'static [Attr], description: &'static str) -> Attr {
    Attr { ty: Type::Complex, sub, ..text(name, description) }
}

const fn many(a: Attr) -> Attr {
    Attr { multi: true, ..a }
}

const fn kind_of(name: &'static str, canonical: &'static [&'static str]) -> Attr {
    Attr { canonical, ..text(name, "A label indicating the value's function") }
}

const PRIMARY: Attr = flag("primary", "The preferred value of this attribute (at most one)");

/// A schema: its URN and attributes.
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attrs: &'static [Attr],
}

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

pub const USER: Schema = Schema {
    id: USER_URN,
    name: "User",
    description: "A person: whoever the identity provider provisions signs in to Quartermaster",
    attrs: &[
        Attr { required: true, unique: true, ..text("userName", "Unique identifier (usually the sign-in name)") },
        complex(
            "name",
            &[
                text("formatted", "The full name"),
                text("familyName", "The family name"),
                text("givenName", "The given name"),
                text("middleName", "The middle name(s)"),
                text("honorificPrefix", "Honorific prefix(es)"),
                text("honorificSuffix", "Honorific suffix(es)"),
            ],
            "The components of the person's name",
        ),
        text("displayName", "The name shown for the person (their name in Quartermaster)"),
        text("nickName", "The casual name"),
        reference("profileUrl", &["external"], "A URL of the person's online profile"),
        text("title", "The job title (shown in Quartermaster)"),
        text("userType", "The relationship to the organization"),
        text("preferredLanguage", "The preferred language"),
        text("locale", "The default location, for localizing"),
        text("timezone", "The time zone (tz database name)"),
        flag("active", "Whether the person may use Quartermaster: false takes their access back (the leaver path)"),
        many(complex(
            "emails",
            &[
                text("value", "An email address (the primary one, or the first, is how Quartermaster knows them)"),
                text("display", "A human-readable name"),
                kind_of("type", &["work", "home", "other"]),
                PRIMARY,
            ],
            "Email addresses",
        )),
        many(complex(
            "phoneNumbers",
            &[
                text("value", "A phone number"),
                text("display", "A human-readable name"),
                kind_of("type", &["work", "home", "mobile", "fax", "pager", "other"]),
                PRIMARY,
            ],
            "Phone numbers",
        )),
        many(complex(
            "addresses",
            &[
                text("formatted", "The full address"),
                text("streetAddress", "The street"),
                text("locality", "The city"),
                text("region", "The state or region"),
                text("postalCode", "The postal code"),
                text("country", "The country"),
                kind_of("type", &["work", "home", "other"]),
                PRIMARY,
            ],
            "Physical addresses",
        )),
    ],
};

pub const ENTERPRISE_USER: Schema = Schema {
    id: ENTERPRISE_URN,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attrs: &[
        text("employeeNumber", "The employee number"),
        text("costCenter", "The cost center"),
        text("organization", "The organization"),
        text("division", "The division"),
        text("department", "The department (shown in Quartermaster; policies may match on it)"),
        complex(
            "manager",
            &[
                Attr { case_exact: true, ..text("value", "The manager's id (a User provisioned here)") },
                reference("$ref", &["User"], "The manager's URI"),
            ],
            "The person's manager (who approves their requests when a policy asks the manager)",
        ),
    ],
};

pub const GROUP: Schema = Schema {
    id: GROUP_URN,
    name: "Group",
    description: "A group of people (policies may offer packages to a group's members)",
    attrs: &[
        Attr { required: true, unique: true, ..text("displayName", "The group's name (unique)") },
        many(complex(
            "members",
            &[
                Attr {
                    case_exact: true,
                    mutability: Mutability::Immutable,
                    ..text("value", "A member's id (a User provisioned here)")
                },
                Attr { mutability: Mutability::Immutable, ..reference("$ref", &["User"], "The member's URI") },
                Attr { mutability: Mutability::Immutable, ..kind_of("type", &["User"]) },
            ],
            "The group's members (people only)",
        )),
    ],
};

/// `externalId`: a common attribute of every resource (RFC 7643 §3.1), kept as sent.
const EXTERNAL_ID: Attr = Attr { case_exact: true, ..text("externalId", "The provider's own id") };

/// A kind of resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "/Users",
            Kind::Group => "/Groups",
        }
    }

    pub fn schema(self) -> &'static Schema {
        match self {
            Kind::User => &USER,
            Kind::Group => &GROUP,
        }
    }

    pub fn extensions(self) -> &'static [&'static Schema] {
        match self {
            Kind::User => &[&ENTERPRISE_USER],
            Kind::Group => &[],
        }
    }

    /// The attribute that names the resource (unique, required).
    pub fn name_attr(self) -> &'static str {
        match self {
            Kind::User => "userName",
            Kind::Group => "displayName",
        }
    }
}

/// A SCIM error (RFC 7644 §3.12): status, `scimType`, detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self { status, scim_type, detail: detail.into() }
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidValue"), detail)
    }

    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidPath"), detail)
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidSyntax"), detail)
    }

    pub fn body(&self) -> Value {
        let mut body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        body
    }
}

type Result<T> = std::result::Result<T, ScimError>;

fn find<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// Where an attribute lives in a document: the core (the top level) or an extension (the
/// object under its URN).
#[derive(Clone, Copy, Debug)]
enum Home {
    Core,
    Extension(&'static Schema),
}

/// The attribute `path` names (with its home), or `Ok(None)` for the whole extension.
fn resolve(kind: Kind, path: &AttrPath) -> Result<(Home, Option<&'static Attr>)> {
    let unknown = || ScimError::invalid_path(format!("\"{path}\" is not an attribute of a {}", kind.as_str()));
    match &path.uri {
        None => {
            if path.name.eq_ignore_ascii_case("externalId") {
                return Ok((Home::Core, Some(&EXTERNAL_ID)));
            }
            find(kind.schema().attrs, &path.name).map(|a| (Home::Core, Some(a))).ok_or_else(unknown)
        }
        Some(uri) => {
            if uri.eq_ignore_ascii_case(kind.schema().id) {
                return find(kind.schema().attrs, &path.name).map(|a| (Home::Core, Some(a))).ok_or_else(unknown);
            }
            // The whole extension: `urn:…:enterprise:2.0:User` parses as uri `…:2.0`, name `User`.
            let whole = format!("{uri}:{}", path.name);
            if let Some(ext) = kind.extensions().iter().find(|e| e.id.eq_ignore_ascii_case(&whole)) {
                return Ok((Home::Extension(ext), None));
            }
            let ext = kind.extensions().iter().find(|e| e.id.eq_ignore_ascii_case(uri)).ok_or_else(unknown)?;
            find(ext.attrs, &path.name).map(|a| (Home::Extension(ext), Some(a))).ok_or_else(unknown)
        }
    }
}

/// The object an attribute of `home` lives in (created for an extension when `create`).
fn container(doc: &mut Map<String, Value>, home: Home, create: bool) -> Option<&mut Map<String, Value>> {
    match home {
        Home::Core => Some(doc),
        Home::Extension(ext) => {
            if create && !doc.contains_key(ext.id) {
                doc.insert(ext.id.to_owned(), Value::Object(Map::new()));
            }
            doc.get_mut(ext.id).and_then(Value::as_object_mut)
        }
    }
}

/// One value of `attr` as the schema wants it. Booleans also come as `"True"`/`"False"`
/// (Entra sends them so).
fn single(attr: &Attr, v: &Value) -> Result<Option<Value>> {
    let wrong = |what: &str| ScimError::invalid_value(format!("{}: {what}", attr.name));
    Ok(match (attr.ty, v) {
        (_, Value::Null) => None,
        (Type::Boolean, Value::Bool(b)) => Some(Value::Bool(*b)),
        (Type::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(Value::Bool(true)),
        (Type::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(Value::Bool(false)),
        (Type::Boolean, _) => return Err(wrong("true or false")),
        (Type::String | Type::Reference, Value::String(s)) => Some(Value::String(s.clone())),
        (Type::String | Type::Reference, _) => return Err(wrong("a string")),
        (Type::Complex, Value::Object(o)) => {
            let mut out = Map::new();
            for (k, v) in o {
                let Some(sub) = find(attr.sub, k) else { continue };
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                if let Some(v) = single(sub, v)? {
                    out.insert(sub.name.to_owned(), v);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (Type::Complex, _) => return Err(wrong("an object")),
    })
}

/// `attr`'s value as the schema wants it: a list for a multi-valued attribute (a single
/// value is taken as a list of one), `None` when it is empty.
fn value_of(attr: &Attr, v: &Value) -> Result<Option<Value>> {
    if !attr.multi {
        if v.is_array() {
            return Err(ScimError::invalid_value(format!("{}: one value, not a list", attr.name)));
        }
        return single(attr, v);
    }
    let items: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        if let Some(v) = single(attr, item)? {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// A resource's document from what a provider sent (POST or PUT): the schema's attribute
/// names, values of the schema's types; `id`, `meta`, `schemas`, read-only and unknown
/// attributes left out. The naming attribute is required.
pub fn normalize(kind: Kind, input: &Value) -> Result<Map<String, Value>> {
    let Value::Object(input) = input else { return Err(ScimError::invalid_syntax("the body is a JSON object")) };
    let mut doc = Map::new();
    for (k, v) in input {
        if ["schemas", "id", "meta"].iter().any(|s| k.eq_ignore_ascii_case(s)) {
            continue;
        }
        let path = match scim_v2::filter::AttrPath::try_from_str(k) {
            Some(p) => p,
            None => continue,
        };
        let Ok((home, attr)) = resolve(kind, &path) else { continue };
        if attr.is_some_and(|a| a.mutability == Mutability::ReadOnly) {
            continue;
        }
        set_path(&mut doc, home, attr, path.sub_attr.as_deref(), v, Op::Replace)?;
    }
    required(kind, &doc)?;
    Ok(doc)
}

fn required(kind: Kind, doc: &Map<String, Value>) -> Result<()> {
    let name = kind.name_attr();
    match doc.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(()),
        _ => Err(ScimError::invalid_value(format!("{name} is required"))),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
}

/// Set the attribute (or its sub-attribute) to `v`: `add` appends to a list and merges into
/// a complex value, `replace` sets a list whole and merges into a complex value (RFC 7644
/// §3.5.2.1 and §3.5.2.3).
fn set_path(
    doc: &mut Map<String, Value>,
    home: Home,
    attr: Option<&'static Attr>,
    sub: Option<&str>,
    v: &Value,
    op: Op,
) -> Result<()> {
    let Some(attr) = attr else {
        // The whole extension: each of its attributes.
        let Home::Extension(ext) = home else { return Err(ScimError::invalid_path("no such attribute")) };
        let Value::Object(o) = v else { return Err(ScimError::invalid_value(format!("{}: an object", ext.id))) };
        for (k, v) in o {
            if let Some(a) = find(ext.attrs, k) {
                set_path(doc, home, Some(a), None, v, op)?;
            }
        }
        return Ok(());
    };
    if attr.mutability == Mutability::ReadOnly {
        return Err(ScimError::new(400, Some("mutability"), format!("{} is read-only", attr.name)));
    }
    let Some(obj) = container(doc, home, true) else { return Ok(()) };
    if let Some(sub) = sub {
        let sub_attr = find(attr.sub, sub)
            .ok_or_else(|| ScimError::invalid_path(format!("{} has no sub-attribute {sub}", attr.name)))?;
        let value = single(sub_attr, v)?;
        if attr.multi {
            // Every value's sub-attribute.
            if let Some(Value::Array(items)) = obj.get_mut(attr.name) {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    put(item, sub_attr.name, value.clone());
                }
            }
        } else {
            let entry = obj.entry(attr.name.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = entry {
                put(inner, sub_attr.name, value);
            }
        }
        tidy(obj, attr.name);
        return Ok(());
    }
    let value = value_of(attr, v)?;
    match (value, attr.multi, attr.ty) {
        (None, _, _) if op == Op::Replace => {
            obj.remove(attr.name);
        }
        (None, _, _) => {}
        (Some(Value::Array(new)), true, _) => {
            let mut items = match (op, obj.remove(attr.name)) {
                (Op::Add, Some(Value::Array(old))) => old,
                _ => Vec::new(),
            };
            for v in new {
                if v.get("primary") == Some(&Value::Bool(true)) {
                    for old in items.iter_mut().filter_map(Value::as_object_mut) {
                        old.remove("primary");
                    }
                }
                if !items.contains(&v) {
                    items.push(v);
                }
            }
            obj.insert(attr.name.to_owned(), Value::Array(items));
        }
        (Some(Value::Object(new)), false, Type::Complex) => {
            let entry = obj.entry(attr.name.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = entry {
                inner.extend(new);
            }
        }
        (Some(v), _, _) => {
            obj.insert(attr.name.to_owned(), v);
        }
    }
    Ok(())
}

fn put(obj: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    match value {
        Some(v) => {
            obj.insert(name.to_owned(), v);
        }
        None => {
            obj.remove(name);
        }
    }
}

/// Drop an attribute left empty (an object without sub-attributes, an empty list).
fn tidy(obj: &mut Map<String, Value>, name: &str) {
    let empty = match obj.get(name) {
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Null) => true,
        _ => false,
    };
    if empty {
        obj.remove(name);
    }
}

/// Apply PATCH operations to a document, in order, all or nothing (the caller keeps the
/// original when this fails).
pub fn patch(kind: Kind, doc: &mut Map<String, Value>, operations: &[PatchOperation]) -> Result<()> {
    for operation in operations {
        match operation {
            PatchOperation::Add(target) => apply_target(kind, doc, target, Op::Add)?,
            PatchOperation::Replace(target) => apply_target(kind, doc, target, Op::Replace)?,
            PatchOperation::Remove { path, value } => remove(kind, doc, path, value.as_ref())?,
        }
    }
    for ext in kind.extensions() {
        tidy(doc, ext.id);
    }
    required(kind, doc)
}

fn apply_target(kind: Kind, doc: &mut Map<String, Value>, target: &OperationTarget, op: Op) -> Result<()> {
    match target {
        OperationTarget::WithPath { path, value } => {
            let value = value.as_ref().ok_or_else(|| ScimError::invalid_value("the operation has no value"))?;
            apply_path(kind, doc, path, value, op)
        }
        // No path: each member of the value is an attribute (or a path: Entra sends
        // `{"emails[type eq \"work\"].value": "…"}` and `{"name.givenName": "…"}`).
        OperationTarget::WithoutPath { value } => {
            for (k, v) in value {
                let path: PatchPath =
                    k.parse().map_err(|_| ScimError::invalid_path(format!("\"{k}\" is not an attribute path")))?;
                apply_path(kind, doc, &path, v, op)?;
            }
            Ok(())
        }
    }
}

fn apply_path(kind: Kind, doc: &mut Map<String, Value>, path: &PatchPath, value: &Value, op: Op) -> Result<()> {
    match path {
        PatchPath::Attr(p) => {
            let (home, attr) = resolve(kind, p)?;
            set_path(doc, home, attr, p.sub_attr.as_deref(), value, op)
        }
        PatchPath::Value(vp) => {
            let (home, attr) = resolve(kind, &vp.attr)?;
            let attr = attr
                .filter(|a| a.multi && a.ty == Type::Complex)
                .ok_or_else(|| ScimError::invalid_path(format!("\"{}\" is not a list of complex values", vp.attr)))?;
            if attr.mutability == Mutability::ReadOnly {
                return Err(ScimError::new(400, Some("mutability"), format!("{} is read-only", attr.name)));
            }
            let obj = container(doc, home, true).ok_or_else(|| ScimError::invalid_path("no such attribute"))?;
            let mut items = match obj.remove(attr.name) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            let mut matched = false;
            for item in items.iter_mut() {
                if !matches_value(attr, item, &vp.filter) {
                    continue;
                }
                matched = true;
                let Value::Object(o) = item else { continue };
                match &vp.sub_attr {
                    Some(sub) => {
                        let sub_attr = find(attr.sub, sub).ok_or_else(|| {
                            ScimError::invalid_path(format!("{} has no sub-attribute {sub}", attr.name))
                        })?;
                        put(o, sub_attr.name, single(sub_attr, value)?);
                    }
                    None => {
                        if let Some(Value::Object(new)) = single(attr, value)? {
                            o.extend(new);
                        }
                    }
                }
            }
            if !matched {
                // Nothing matches: a filter of equalities makes the value it describes
                // (`emails[type eq "work"].value` on someone without a work address).
                let mut new = equalities(&vp.filter).ok_or_else(|| {
                    ScimError::new(400, Some("noTarget"), format!("nothing in {} matches the filter", attr.name))
                })?;
                match &vp.sub_attr {
                    Some(sub) => {
                        let sub_attr = find(attr.sub, sub).ok_or_else(|| {
                            ScimError::invalid_path(format!("{} has no sub-attribute {sub}", attr.name))
                        })?;
                        put(&mut new, sub_attr.name, single(sub_attr, value)?);
                    }
                    None => {
                        if let Some(Value::Object(v)) = single(attr, value)? {
                            new.extend(v);
                        }
                    }
                }
                if let Some(v) = single(attr, &Value::Object(new))? {
                    items.push(v);
                }
            }
            obj.insert(attr.name.to_owned(), Value::Array(items));
            tidy(obj, attr.name);
            Ok(())
        }
    }
}

/// The sub-attribute values a filter of `eq`s joined by `and` pins down.
fn equalities(f: &ValFilter) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    let mut stack = vec![f];
    while let Some(f) = stack.pop() {
        match f {
            ValFilter::Attr(AttrExp::Comparison(p, CompareOp::Eq, v)) if p.uri.is_none() && p.sub_attr.is_none() => {
                out.insert(p.name.clone(), comp_value(v));
            }
            ValFilter::And(ops) => stack.extend(ops.as_slice()),
            _ => return None,
        }
    }
    Some(out)
}

fn comp_value(v: &CompValue) -> Value {
    match v {
        CompValue::False => Value::Bool(false),
        CompValue::True => Value::Bool(true),
        CompValue::Null => Value::Null,
        CompValue::Number(n) => Value::Number(n.clone()),
        CompValue::Str(s) => Value::String(s.clone()),
    }
}

fn remove(kind: Kind, doc: &mut Map<String, Value>, path: &PatchPath, value: Option<&Value>) -> Result<()> {
    match path {
        PatchPath::Attr(p) => {
            let (home, attr) = resolve(kind, p)?;
            let Some(attr) = attr else {
                if let Home::Extension(ext) = home {
                    doc.remove(ext.id);
                }
                return Ok(());
            };
            if attr.mutability == Mutability::ReadOnly || attr.required {
                return Err(ScimError::new(400, Some("mutability"), format!("{} cannot be removed", attr.name)));
            }
            let Some(obj) = container(doc, home, false) else { return Ok(()) };
            match (&p.sub_attr, value) {
                (Some(sub), _) => {
                    let sub = find(attr.sub, sub).map_or(sub.as_str(), |s| s.name);
                    match obj.get_mut(attr.name) {
                        Some(Value::Object(o)) => {
                            o.remove(sub);
                        }
                        Some(Value::Array(items)) => {
                            for o in items.iter_mut().filter_map(Value::as_object_mut) {
                                o.remove(sub);
                            }
                        }
                        _ => {}
                    }
                }
                // Entra removes members so: `{"op": "Remove", "path": "members", "value": [{"value": "id"}]}`.
                (None, Some(v)) if attr.multi => {
                    let gone = value_of(attr, v)?.unwrap_or(Value::Array(Vec::new()));
                    let gone: Vec<&Value> = gone.as_array().map(|a| a.iter().collect()).unwrap_or_default();
                    if let Some(Value::Array(items)) = obj.get_mut(attr.name) {
                        items.retain(|item| {
                            !gone.iter().any(|g| match (g.get("value"), item.get("value")) {
                                (Some(a), Some(b)) => a == b,
                                _ => *g == item,
                            })
                        });
                    }
                }
                (None, _) => {
                    obj.remove(attr.name);
                }
            }
            tidy(obj, attr.name);
            Ok(())
        }
        PatchPath::Value(vp) => {
            let (home, attr) = resolve(kind, &vp.attr)?;
            let attr = attr.filter(|a| a.multi).ok_or_else(|| ScimError::invalid_path("not a list"))?;
            let Some(obj) = container(doc, home, false) else { return Ok(()) };
            if let Some(Value::Array(items)) = obj.get_mut(attr.name) {
                match &vp.sub_attr {
                    None => items.retain(|item| !matches_value(attr, item, &vp.filter)),
                    Some(sub) => {
                        let sub = find(attr.sub, sub).map_or(sub.as_str(), |s| s.name);
                        for item in items.iter_mut() {
                            if matches_value(attr, item, &vp.filter) {
                                if let Value::Object(o) = item {
                                    o.remove(sub);
                                }
                            }
                        }
                    }
                }
            }
            tidy(obj, attr.name);
            Ok(())
        }
    }
}

/// Whether one value of the complex, multi-valued `attr` passes a bracketed filter.
fn matches_value(attr: &Attr, item: &Value, f: &ValFilter) -> bool {
    match f {
        ValFilter::Attr(exp) => {
            let (path, test) = match exp {
                AttrExp::Present(p) => (p, None),
                AttrExp::Comparison(p, op, v) => (p, Some((op, v))),
            };
            let sub = find(attr.sub, &path.name);
            let case_exact = sub.is_some_and(|s| s.case_exact);
            let values: Vec<&Value> = item.get(sub.map_or(path.name.as_str(), |s| s.name)).into_iter().collect();
            compare(&values, test, case_exact)
        }
        ValFilter::Not(inner) => !matches_value(attr, item, inner),
        ValFilter::And(ops) => ops.as_slice().iter().all(|f| matches_value(attr, item, f)),
        ValFilter::Or(ops) => ops.as_slice().iter().any(|f| matches_value(attr, item, f)),
    }
}

/// Whether some of `values` pass the test (`None`: present).
fn compare(values: &[&Value], test: Option<(&CompareOp, &CompValue)>, case_exact: bool) -> bool {
    let present: Vec<&Value> = values
        .iter()
        .copied()
        .filter(|v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        })
        .collect();
    let Some((op, wanted)) = test else { return !present.is_empty() };
    if let CompValue::Null = wanted {
        return match op {
            CompareOp::Eq => present.is_empty(),
            CompareOp::Ne => !present.is_empty(),
            _ => false,
        };
    }
    if *op == CompareOp::Ne {
        return !compare(values, Some((&CompareOp::Eq, wanted)), case_exact);
    }
    present.iter().any(|v| match (v, wanted) {
        (Value::String(have), CompValue::Str(want)) => {
            let fold = |s: &str| if case_exact { s.to_owned() } else { s.to_lowercase() };
            let (have, want) = (fold(have), fold(want));
            match op {
                CompareOp::Eq => have == want,
                CompareOp::Co => have.contains(&want),
                CompareOp::Sw => have.starts_with(&want),
                CompareOp::Ew => have.ends_with(&want),
                CompareOp::Gt => have > want,
                CompareOp::Ge => have >= want,
                CompareOp::Lt => have < want,
                CompareOp::Le => have <= want,
                CompareOp::Ne => have != want,
            }
        }
        (Value::Bool(b), CompValue::True) => *op == CompareOp::Eq && *b,
        (Value::Bool(b), CompValue::False) => *op == CompareOp::Eq && !*b,
        (Value::Number(have), CompValue::Number(want)) => {
            let (have, want) = (have.as_f64().unwrap_or(f64::NAN), want.as_f64().unwrap_or(f64::NAN));
            match op {
                CompareOp::Eq => have == want,
                CompareOp::Gt => have > want,
                CompareOp::Ge => have >= want,
                CompareOp::Lt => have < want,
                CompareOp::Le => have <= want,
                _ => false,
            }
        }
        _ => false,
    })
}

/// Whether a resource (as served: with `id`, `externalId` and `meta`) passes a filter.
pub fn matches(kind: Kind, resource: &Map<String, Value>, f: &Filter) -> bool {
    match f {
        Filter::Attr(exp) => {
            let (path, test) = match exp {
                AttrExp::Present(p) => (p, None),
                AttrExp::Comparison(p, op, v) => (p, Some((op, v))),
            };
            let (values, case_exact) = values_at(kind, resource, path);
            compare(&values.iter().collect::<Vec<_>>(), test, case_exact)
        }
        Filter::ValuePath(vp) => {
            let Ok((home, Some(attr))) = resolve(kind, &vp.attr) else { return false };
            let obj = match home {
                Home::Core => Some(resource),
                Home::Extension(ext) => resource.get(ext.id).and_then(Value::as_object),
            };
            obj.and_then(|o| o.get(attr.name))
                .and_then(Value::as_array)
                .is_some_and(|items| items.iter().any(|item| matches_value(attr, item, &vp.filter)))
        }
        Filter::Not(inner) => !matches(kind, resource, inner),
        Filter::And(ops) => ops.as_slice().iter().all(|f| matches(kind, resource, f)),
        Filter::Or(ops) => ops.as_slice().iter().any(|f| matches(kind, resource, f)),
    }
}

/// The values a filter's attribute path reaches in a resource, and whether they compare
/// case-exactly. `id` and `externalId` are exact; a list of complex values without a
/// sub-attribute compares their `value`s.
fn values_at(kind: Kind, resource: &Map<String, Value>, path: &AttrPath) -> (Vec<Value>, bool) {
    if path.uri.is_none() {
        if path.name.eq_ignore_ascii_case("id") {
            return (resource.get("id").cloned().into_iter().collect(), true);
        }
        if path.name.eq_ignore_ascii_case("meta") {
            let sub = path.sub_attr.as_deref().unwrap_or_default();
            let value = resource
                .get("meta")
                .and_then(|m| m.as_object())
                .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(sub)).map(|(_, v)| v.clone()));
            return (value.into_iter().collect(), true);
        }
    }
    let Ok((home, Some(attr))) = resolve(kind, path) else { return (Vec::new(), false) };
    let obj = match home {
        Home::Core => Some(resource),
        Home::Extension(ext) => resource.get(ext.id).and_then(Value::as_object),
    };
    let Some(value) = obj.and_then(|o| o.get(attr.name)) else { return (Vec::new(), attr.case_exact) };
    let pick = |v: &Value| -> Option<(Value, bool)> {
        match (&path.sub_attr, v) {
            (Some(sub), Value::Object(o)) => {
                let s = find(attr.sub, sub)?;
                o.get(s.name).map(|v| (v.clone(), s.case_exact))
            }
            (None, Value::Object(o)) => {
                let s = find(attr.sub, "value");
                o.get("value").map(|v| (v.clone(), s.is_some_and(|s| s.case_exact)))
            }
            (None, v) => Some((v.clone(), attr.case_exact)),
            _ => None,
        }
    };
    let picked: Vec<(Value, bool)> = match value {
        Value::Array(items) => items.iter().filter_map(pick).collect(),
        v => pick(v).into_iter().collect(),
    };
    let case_exact = picked.first().is_some_and(|(_, e)| *e);
    (picked.into_iter().map(|(v, _)| v).collect(), case_exact)
}

/// Keep what a response should return: with `attributes`, only those (and `id`,
/// `schemas`); without, all but `excluded`. Names are paths (`name.givenName`, an
/// extension's attribute by its URN, a whole extension).
pub fn project(kind: Kind, resource: &mut Map<String, Value>, attributes: &[String], excluded: &[String]) {
    let paths = |names: &[String]| -> Vec<(Home, Option<&'static str>, Option<String>)> {
        names
            .iter()
            .filter_map(|n| AttrPath::try_from_str(n))
            .filter_map(|p| {
                if p.uri.is_none() && ["meta", "id", "schemas"].iter().any(|m| p.name.eq_ignore_ascii_case(m)) {
                    let name = ["meta", "id", "schemas"].into_iter().find(|m| p.name.eq_ignore_ascii_case(m));
                    return Some((Home::Core, name, p.sub_attr.clone()));
                }
                resolve(kind, &p).ok().map(|(home, attr)| (home, attr.map(|a| a.name), p.sub_attr.clone()))
            })
            .collect()
    };
    if !attributes.is_empty() {
        let wanted = paths(attributes);
        let mut kept = Map::new();
        for always in ["id", "schemas"] {
            if let Some(v) = resource.get(always) {
                kept.insert(always.to_owned(), v.clone());
            }
        }
        for (home, name, sub) in wanted {
            let source = match home {
                Home::Core => Some(&*resource),
                Home::Extension(ext) => resource.get(ext.id).and_then(Value::as_object),
            };
            let Some(source) = source else { continue };
            let target = match home {
                Home::Core => &mut kept,
                Home::Extension(ext) => {
                    kept.entry(ext.id.to_owned()).or_insert_with(|| Value::Object(Map::new()));
                    match kept.get_mut(ext.id).and_then(Value::as_object_mut) {
                        Some(t) => t,
                        None => continue,
                    }
                }
            };
            match (name, sub) {
                (None, _) => {
                    for (k, v) in source {
                        target.insert(k.clone(), v.clone());
                    }
                }
                (Some(name), None) => {
                    if let Some(v) = source.get(name) {
                        target.insert(name.to_owned(), v.clone());
                    }
                }
                (Some(name), Some(sub)) => match source.get(name) {
                    Some(Value::Object(o)) => {
                        if let Some((k, v)) = o.iter().find(|(k, _)| k.eq_ignore_ascii_case(&sub)) {
                            let entry = target.entry(name.to_owned()).or_insert_with(|| Value::Object(Map::new()));
                            if let Value::Object(t) = entry {
                                t.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    Some(Value::Array(items)) => {
                        let picked: Vec<Value> = items
                            .iter()
                            .filter_map(|i| {
                                let (k, v) = i.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(&sub))?;
                                Some(json!({ k.clone(): v.clone() }))
                            })
                            .collect();
                        target.insert(name.to_owned(), Value::Array(picked));
                    }
                    _ => {}
                },
            }
        }
        for ext in kind.extensions() {
            tidy(&mut kept, ext.id);
        }
        *resource = kept;
        return;
    }
    for (home, name, sub) in paths(excluded) {
        if matches!(name, Some("id" | "schemas")) {
            continue;
        }
        let obj = match home {
            Home::Core => Some(&mut *resource),
            Home::Extension(ext) => resource.get_mut(ext.id).and_then(Value::as_object_mut),
        };
        let Some(obj) = obj else { continue };
        match (name, sub) {
            (None, _) => {
                if let Home::Extension(ext) = home {
                    resource.remove(ext.id);
                }
            }
            (Some(name), None) => {
                obj.remove(name);
            }
            (Some(name), Some(sub)) => {
                if let Some(Value::Object(o)) = obj.get_mut(name) {
                    o.retain(|k, _| !k.eq_ignore_ascii_case(&sub));
                }
            }
        }
    }
}

/// The `/Schemas` resource of a schema.
pub fn schema_resource(schema: &Schema, base: &str) -> Value {
    fn attr_json(a: &Attr) -> Value {
        let mut v = json!({
            "name": a.name,
            "type": match a.ty { Type::String => "string", Type::Boolean => "boolean", Type::Complex => "complex", Type::Reference => "reference" },
            "multiValued": a.multi,
            "description": a.description,
            "required": a.required,
            "caseExact": a.case_exact,
            "mutability": match a.mutability { Mutability::ReadOnly => "readOnly", Mutability::ReadWrite => "readWrite", Mutability::Immutable => "immutable" },
            "returned": "default",
            "uniqueness": if a.unique { "server" } else { "none" },
        });
        if !a.refs.is_empty() {
            v["referenceTypes"] = json!(a.refs);
        }
        if !a.canonical.is_empty() {
            v["canonicalValues"] = json!(a.canonical);
        }
        if !a.sub.is_empty() {
            v["subAttributes"] = Value::Array(a.sub.iter().map(attr_json).collect());
        }
        v
    }
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attrs.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{}", schema.id)},
    })
}

/// The `/ResourceTypes` resource of a kind.
pub fn resource_type(kind: Kind, base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": kind.as_str(),
        "name": kind.as_str(),
        "endpoint": kind.endpoint(),
        "description": kind.schema().description,
        "schema": kind.schema().id,
        "schemaExtensions": kind.extensions().iter().map(|e| json!({"schema": e.id, "required": false})).collect::<Vec<_>>(),
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", kind.as_str())},
    })
}

/// Parse an attribute path (`name`, `name.sub`, `urn:…:name`) as filters write them.
trait TryFromStr: Sized {
    fn try_from_str(s: &str) -> Option<Self>;
}

impl TryFromStr for AttrPath {
    fn try_from_str(s: &str) -> Option<Self> {
        match format!("{s} pr").parse::<Filter>().ok()? {
            Filter::Attr(AttrExp::Present(p)) => Some(p),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(json: Value) -> Vec<PatchOperation> {
        serde_json::from_value::<scim_v2::models::others::PatchOp>(json).unwrap().operations
    }

    fn user() -> Map<String, Value> {
        normalize(
            Kind::User,
            &json!({
                "schemas": [USER_URN], "id": "ignored", "UserName": "ada@example.com", "active": "True",
                "emails": {"value": "ada@example.com", "type": "work", "primary": true},
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"Department": "Engineering"},
                "unknown": 1,
            }),
        )
        .unwrap()
    }

    #[test]
    fn a_document_takes_the_schemas_names_and_types() {
        let doc = user();
        assert_eq!(doc["userName"], "ada@example.com");
        assert_eq!(doc["active"], true, "\"True\" is true");
        assert_eq!(doc["emails"][0]["value"], "ada@example.com", "one value taken as a list");
        assert_eq!(doc[ENTERPRISE_URN]["department"], "Engineering");
        assert!(!doc.contains_key("id") && !doc.contains_key("unknown"));
        let missing = normalize(Kind::User, &json!({"displayName": "x"})).unwrap_err();
        assert_eq!((missing.status, missing.scim_type), (400, Some("invalidValue")));
        assert!(normalize(Kind::User, &json!({"userName": "x", "active": "maybe"})).is_err());
    }

    #[test]
    fn patch_as_entra_and_okta_send_it() {
        let mut doc = user();
        let change = ops(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "ada@home.example"},
            {"op": "replace", "value": {"name.givenName": "Ada", "title": "Engineer"}},
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Research"},
            {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": {"value": "7"}},
        ]}));
        patch(Kind::User, &mut doc, &change).unwrap();
        assert_eq!(doc["active"], false);
        assert_eq!(doc["emails"].as_array().unwrap().len(), 2);
        assert_eq!(doc["emails"][1], json!({"type": "home", "value": "ada@home.example"}));
        assert_eq!(doc["name"]["givenName"], "Ada");
        assert_eq!(doc["title"], "Engineer");
        assert_eq!(doc[ENTERPRISE_URN]["department"], "Research");
        assert_eq!(doc[ENTERPRISE_URN]["manager"]["value"], "7");
        let remove = ops(json!({"schemas": [], "Operations": [
            {"op": "remove", "path": "emails[type eq \"work\"]"},
            {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"},
        ]}));
        patch(Kind::User, &mut doc, &remove).unwrap();
        assert_eq!(doc["emails"], json!([{"type": "home", "value": "ada@home.example"}]));
        assert!(doc[ENTERPRISE_URN].get("manager").is_none());
        let no_name = ops(json!({"schemas": [], "Operations": [{"op": "remove", "path": "userName"}]}));
        assert!(patch(Kind::User, &mut doc, &no_name).is_err());
        let unknown = ops(json!({"schemas": [], "Operations": [{"op": "add", "path": "shoeSize", "value": "9"}]}));
        assert_eq!(patch(Kind::User, &mut doc, &unknown).unwrap_err().scim_type, Some("invalidPath"));
    }

    #[test]
    fn members_come_and_go_as_entra_sends_them() {
        let mut group =
            normalize(Kind::Group, &json!({"displayName": "Ops", "members": [{"value": "1"}, {"value": "2"}]}))
                .unwrap();
        let change = ops(json!({"schemas": [], "Operations": [
            {"op": "Add", "path": "members", "value": [{"value": "3"}]},
            {"op": "Remove", "path": "members", "value": [{"value": "1"}]},
            {"op": "remove", "path": "members[value eq \"2\"]"},
        ]}));
        patch(Kind::Group, &mut group, &change).unwrap();
        assert_eq!(group["members"], json!([{"value": "3"}]));
    }

    #[test]
    fn filters_as_providers_write_them() {
        let mut resource = user();
        resource.insert("id".into(), json!("12"));
        let passes = |f: &str| matches(Kind::User, &resource, &f.parse().unwrap());
        assert!(passes("userName eq \"ADA@example.com\""), "userName is not case-exact");
        assert!(passes("id eq \"12\"") && !passes("id eq \"13\""));
        assert!(passes("emails[type eq \"work\" and value co \"@example\"]"));
        assert!(passes("emails.value sw \"ada\" and active eq true"));
        assert!(passes("title pr or userName ew \".com\""));
        assert!(!passes("title pr"));
        assert!(passes("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"engineering\""));
        assert!(passes("not (active eq false)"));
    }

    #[test]
    fn attributes_and_excluded_attributes_choose_what_is_returned() {
        let mut resource = user();
        resource.insert("id".into(), json!("12"));
        resource.insert("schemas".into(), json!([USER_URN]));
        let mut only = resource.clone();
        project(
            Kind::User,
            &mut only,
            &["emails.value".into(), "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department".into()],
            &[],
        );
        assert_eq!(
            Value::Object(only),
            json!({"id": "12", "schemas": [USER_URN], "emails": [{"value": "ada@example.com"}], ENTERPRISE_URN: {"department": "Engineering"}})
        );
        let mut without = resource.clone();
        project(Kind::User, &mut without, &[], &["emails".into(), "id".into()]);
        assert!(without.get("emails").is_none() && without.get("id").is_some());
    }
}
