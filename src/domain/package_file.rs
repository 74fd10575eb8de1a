//! Packages as code: catalogs with their resources, access packages and policies as a file a
//! person reads and edits (TOML), and the plan between what the database holds and what a file
//! says. People are named by email and groups, organizations and systems by name, never by id,
//! so a file moves between installations.
//!
//! Nothing here touches the database: the service exports the database as a [`PackageFile`]
//! and diffs it against the file ([`diff`]); every object is compared field by field
//! ([`Change::Changed`]). Taking something out of the file disables it (a package, a policy,
//! a catalog); nothing is deleted, so history and pending work keep what they point at.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{DomainError, DomainResult};
use super::ids::PackageId;
use super::policy::{Policy, RequestorScope};

/// The whole file: every catalog, in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageFile {
    #[serde(default, rename = "catalog")]
    pub catalogs: Vec<CatalogSpec>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub externally_visible: bool,
    /// The resources the catalog's packages give roles of.
    #[serde(default, rename = "resource")]
    pub resources: Vec<ResourceSpec>,
    #[serde(default, rename = "package")]
    pub packages: Vec<PackageSpec>,
}

/// A resource, known by its system and its id there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// The resource system's name.
    pub system: String,
    pub external_id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub roles: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Roles of the catalog's resources (the resource by name).
    pub roles: Vec<RoleRef>,
    /// Packages it cannot be held together with (both directions are listed).
    #[serde(default)]
    pub incompatible_packages: Vec<PackageRef>,
    /// Groups whose members cannot hold it.
    #[serde(default)]
    pub incompatible_groups: Vec<String>,
    #[serde(default, rename = "policy")]
    pub policies: Vec<PolicySpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRef {
    pub resource: String,
    pub role: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageRef {
    pub catalog: String,
    pub package: String,
}

/// A policy: the engine's policy settings without its ids and version, people by `email`,
/// groups and organizations by `name` (`{ kind = "user", email = "…" }`). Its `name` is its key
/// within the package. Settings left out take the defaults of a new policy.
pub type PolicySpec = Map<String, Value>;

/// A table of a file (a policy, a reference in it).
pub type Table = Map<String, Value>;

/// The policy settings that are not written in a file (ids and version).
pub const POLICY_INTERNAL: [&str; 3] = ["id", "package_id", "version"];

impl PackageFile {
    /// Read a file, with a message naming the line when it is not well-formed.
    pub fn parse(text: &str) -> DomainResult<Self> {
        let file: PackageFile = toml::from_str(text).map_err(|e| DomainError::invalid("file", e.to_string()))?;
        file.check_names()?;
        Ok(file)
    }

    /// The file's text; what [`Self::parse`] reads back to the same file.
    pub fn to_text(&self) -> DomainResult<String> {
        let body = toml::to_string(self).map_err(|e| DomainError::Internal(format!("writing the file: {e}")))?;
        Ok(format!("{HEADER}{body}"))
    }

    /// Names are what objects are known by here: each must be there, and once in its place.
    fn check_names(&self) -> DomainResult<()> {
        let mut catalogs = BTreeSet::new();
        for c in &self.catalogs {
            named("catalog", &c.name)?;
            if !catalogs.insert(c.name.as_str()) {
                return Err(twice(format!("catalog \"{}\"", c.name)));
            }
            let mut resources = BTreeSet::new();
            for r in &c.resources {
                named("resource", &r.name)?;
                if !resources.insert((r.system.as_str(), r.external_id.as_str())) {
                    return Err(twice(format!("resource \"{}\" in \"{}\"", r.external_id, c.name)));
                }
            }
            let mut packages = BTreeSet::new();
            for p in &c.packages {
                named("package", &p.name)?;
                if !packages.insert(p.name.as_str()) {
                    return Err(twice(format!("package \"{}\" in \"{}\"", p.name, c.name)));
                }
                let mut policies = BTreeSet::new();
                for policy in &p.policies {
                    let name = policy_name(policy);
                    named("policy", name)?;
                    if !policies.insert(name) {
                        return Err(twice(format!("policy \"{name}\" of \"{} / {}\"", c.name, p.name)));
                    }
                }
            }
        }
        Ok(())
    }
}

const HEADER: &str = "# Quartermaster catalogs, access packages and policies.\n\
# `quartermaster packages plan FILE` shows what applying this file changes; \
`packages apply FILE --plan ID --as EMAIL` does it.\n\
# Leaving a catalog, package or policy out disables it (nothing is deleted).\n\n";

fn named(what: &str, name: &str) -> DomainResult<()> {
    if name.trim().is_empty() || name.trim() != name {
        return Err(DomainError::invalid("file", format!("a {what} needs a name without spaces around it")));
    }
    Ok(())
}

fn twice(what: String) -> DomainError {
    DomainError::invalid("file", format!("{what} is in the file twice"))
}

/// A policy's name (its key in its package).
pub fn policy_name(policy: &PolicySpec) -> &str {
    policy.get("name").and_then(Value::as_str).unwrap_or("")
}

/// An object of the file, as a plan names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Object {
    Catalog { catalog: String },
    Resource { catalog: String, system: String, external_id: String },
    Package { catalog: String, package: String },
    Policy { catalog: String, package: String, policy: String },
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Catalog { catalog } => write!(f, "catalog \"{catalog}\""),
            Object::Resource { catalog, system, external_id } => {
                write!(f, "resource \"{external_id}\" of \"{system}\" in \"{catalog}\"")
            }
            Object::Package { catalog, package } => write!(f, "package \"{catalog} / {package}\""),
            Object::Policy { catalog, package, policy } => {
                write!(f, "policy \"{policy}\" of \"{catalog} / {package}\"")
            }
        }
    }
}

/// One field that differs: its path (`approval.stages[0].timeout_days`), before and after as
/// the file writes them (`(none)` when absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldChange {
    pub field: String,
    pub before: String,
    pub after: String,
}

/// What applying a file does to one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Added(Object),
    Changed(Object, Vec<FieldChange>),
    /// In the database (enabled) and not in the file: it is disabled.
    Disabled(Object),
}

impl Change {
    pub fn object(&self) -> &Object {
        match self {
            Change::Added(o) | Change::Changed(o, _) | Change::Disabled(o) => o,
        }
    }
}

/// Every object of a file with its own fields (not its children's), flattened, parents first.
fn objects(file: &PackageFile) -> Vec<(Object, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    for c in &file.catalogs {
        let catalog = c.name.clone();
        let own = CatalogSpec { resources: vec![], packages: vec![], ..c.clone() };
        out.push((Object::Catalog { catalog: catalog.clone() }, flat_fields(&own, &["resource", "package"])));
        for r in &c.resources {
            let key = Object::Resource {
                catalog: catalog.clone(),
                system: r.system.clone(),
                external_id: r.external_id.clone(),
            };
            out.push((key, flat_fields(r, &[])));
        }
        for p in &c.packages {
            let package = p.name.clone();
            let mut own = PackageSpec { policies: vec![], ..p.clone() };
            // Listed in any order, compared as sets.
            own.roles.sort();
            own.incompatible_packages.sort();
            own.incompatible_groups.sort();
            out.push((
                Object::Package { catalog: catalog.clone(), package: package.clone() },
                flat_fields(&own, &["policy"]),
            ));
            for policy in &p.policies {
                let key = Object::Policy {
                    catalog: catalog.clone(),
                    package: package.clone(),
                    policy: policy_name(policy).to_owned(),
                };
                out.push((key, flatten_value(&Value::Object(policy.clone()))));
            }
        }
    }
    out
}

fn enabled(fields: &BTreeMap<String, String>) -> bool {
    fields.get("enabled").is_none_or(|v| v == "true")
}

/// What applying `desired` to a database holding `current` does, in the file's order, then
/// what it disables. Fields are compared as the file writes them.
pub fn diff(current: &PackageFile, desired: &PackageFile) -> Vec<Change> {
    let now: BTreeMap<Object, BTreeMap<String, String>> = objects(current).into_iter().collect();
    let wanted = objects(desired);
    let wanted_keys: BTreeSet<&Object> = wanted.iter().map(|(o, _)| o).collect();
    let mut changes = Vec::new();
    for (object, fields) in &wanted {
        match now.get(object) {
            None => changes.push(Change::Added(object.clone())),
            Some(before) => {
                let keys: BTreeSet<&String> = before.keys().chain(fields.keys()).collect();
                let differ: Vec<FieldChange> = keys
                    .into_iter()
                    .filter(|k| before.get(*k) != fields.get(*k))
                    .map(|k| FieldChange {
                        field: k.clone(),
                        before: before.get(k).cloned().unwrap_or_else(|| "(none)".into()),
                        after: fields.get(k).cloned().unwrap_or_else(|| "(none)".into()),
                    })
                    .collect();
                if !differ.is_empty() {
                    changes.push(Change::Changed(object.clone(), differ));
                }
            }
        }
    }
    for (object, fields) in objects(current) {
        // Resources are taken out of a catalog in the portal: a file leaving one out keeps it.
        if !wanted_keys.contains(&object) && enabled(&fields) && !matches!(object, Object::Resource { .. }) {
            // A disabled catalog's packages go with it: only the catalog is named.
            let parent_gone = match &object {
                Object::Package { catalog, .. } => !wanted_keys.contains(&Object::Catalog { catalog: catalog.clone() }),
                Object::Policy { catalog, package, .. } => {
                    !wanted_keys.contains(&Object::Package { catalog: catalog.clone(), package: package.clone() })
                }
                _ => false,
            };
            if !parent_gone {
                changes.push(Change::Disabled(object));
            }
        }
    }
    changes
}

fn flat_fields<T: Serialize>(value: &T, children: &[&str]) -> BTreeMap<String, String> {
    let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        for c in children {
            map.remove(*c);
        }
    }
    flatten_value(&v)
}

/// `{"a": {"b": [1, {"c": 2}]}}` as `a.b[0] = 1`, `a.b[1].c = 2`; an empty list or table is
/// a field of its own (`[]`, `{}`), so emptying one shows.
pub fn flatten_value(value: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    flatten_into(value, String::new(), &mut out);
    out
}

fn flatten_into(value: &Value, path: String, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                flatten_into(v, p, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten_into(v, format!("{path}[{i}]"), out);
            }
        }
        Value::Null => {}
        other => {
            out.insert(path, other.to_string());
        }
    }
}

/// Drop `null`s (a file has none: an absent setting is its default).
pub fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// A policy's settings as a file writes them, from the engine's (ids are the caller's to
/// turn into names, with [`rewrite_references`]).
pub fn policy_spec(policy: &Policy) -> DomainResult<PolicySpec> {
    let mut v = serde_json::to_value(policy).map_err(|e| DomainError::Internal(e.to_string()))?;
    strip_nulls(&mut v);
    let Value::Object(mut map) = v else { return Err(DomainError::Internal("a policy is a table".into())) };
    for k in POLICY_INTERNAL {
        map.remove(k);
    }
    Ok(map)
}

/// The engine's policy a file's settings describe, each left-out setting at a new policy's
/// default (nobody may request), checked as the builder checks it; references are resolved
/// by `resolve` (kind, the file's table) to an id. `what` names the policy in messages.
pub fn policy_from_spec(
    spec: &PolicySpec,
    what: &Object,
    resolve: &mut dyn FnMut(&str, &Table) -> DomainResult<i64>,
) -> DomainResult<Policy> {
    let bad = |m: String| DomainError::invalid("file", format!("{what}: {m}"));
    let Value::Object(mut merged) = serde_json::to_value(Policy::new(PackageId(0), "", RequestorScope::Nobody, vec![]))
        .map_err(|e| DomainError::Internal(e.to_string()))?
    else {
        return Err(DomainError::Internal("a policy is a table".into()));
    };
    for (k, v) in spec {
        if POLICY_INTERNAL.contains(&k.as_str()) {
            return Err(bad(format!("`{k}` is not written in a file (objects are known by name)")));
        }
        merged.insert(k.clone(), v.clone());
    }
    let mut merged = Value::Object(merged);
    rewrite_references(&mut merged, &mut |kind, table| {
        let id = resolve(kind, table).map_err(|e| bad(e.to_string()))?;
        Ok(Some(Map::from_iter([("id".to_owned(), Value::from(id))])))
    })?;
    let policy: Policy = serde_json::from_value(merged).map_err(|e| bad(e.to_string()))?;
    policy.validate().map_err(|e| bad(e.to_string()))?;
    Ok(policy)
}

/// A file's policy settings as the engine keeps them (defaults filled in, lists in the
/// engine's shape), references left as the file names them: what [`diff`] compares.
pub fn normalized_policy(spec: &PolicySpec, what: &Object) -> DomainResult<PolicySpec> {
    let mut named: Vec<Map<String, Value>> = Vec::new();
    let policy = policy_from_spec(spec, what, &mut |_, table| {
        named.push(table.clone());
        Ok(i64::try_from(named.len()).unwrap_or(i64::MAX))
    })?;
    let mut out = Value::Object(policy_spec(&policy)?);
    rewrite_references(&mut out, &mut |_, table| {
        let at = table.get("id").and_then(Value::as_i64).and_then(|i| usize::try_from(i - 1).ok());
        let mut back = at.and_then(|i| named.get(i)).cloned().unwrap_or_default();
        back.remove("kind");
        Ok(Some(back))
    })?;
    match out {
        Value::Object(map) => Ok(map),
        _ => Err(DomainError::Internal("a policy is a table".into())),
    }
}

impl PackageFile {
    /// The file as the engine would hold it: policies normalized, and each rule between two
    /// packages listed on both (the engine keeps one rule for the pair).
    pub fn normalized(&self) -> DomainResult<PackageFile> {
        let mut out = self.clone();
        let mut pairs = BTreeSet::new();
        for c in &mut out.catalogs {
            for p in &mut c.packages {
                let me = PackageRef { catalog: c.name.clone(), package: p.name.clone() };
                for other in &p.incompatible_packages {
                    pairs.insert((other.clone(), me.clone()));
                }
                for policy in &mut p.policies {
                    let what = Object::Policy {
                        catalog: c.name.clone(),
                        package: p.name.clone(),
                        policy: policy_name(policy).to_owned(),
                    };
                    *policy = normalized_policy(policy, &what)?;
                }
            }
        }
        for c in &mut out.catalogs {
            for p in &mut c.packages {
                let me = PackageRef { catalog: c.name.clone(), package: p.name.clone() };
                for (owner, other) in &pairs {
                    if *owner == me && !p.incompatible_packages.contains(other) {
                        p.incompatible_packages.push(other.clone());
                    }
                }
                p.incompatible_packages.sort();
                p.incompatible_packages.dedup();
                p.roles.sort();
                p.roles.dedup();
                p.incompatible_groups.sort();
                p.incompatible_groups.dedup();
            }
        }
        Ok(out)
    }
}

/// Rewrite every reference in a policy's settings: `to` gets the kind and the reference
/// (an id, or the email/name table) and answers the fields to put instead of `id` (or of
/// `email`/`name`). The first error stops the walk.
pub fn rewrite_references(
    value: &mut Value,
    to: &mut dyn FnMut(&str, &Table) -> DomainResult<Option<Table>>,
) -> DomainResult<()> {
    match value {
        Value::Object(map) => {
            if let Some(kind) = map.get("kind").and_then(Value::as_str).map(str::to_owned) {
                if matches!(kind.as_str(), "user" | "group" | "org") {
                    if let Some(replacement) = to(&kind, map)? {
                        map.retain(|k, _| k == "kind");
                        map.extend(replacement);
                        return Ok(());
                    }
                }
            }
            for v in map.values_mut() {
                rewrite_references(v, to)?;
            }
        }
        Value::Array(items) => {
            for v in items {
                rewrite_references(v, to)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const FILE: &str = r#"
[[catalog]]
name = "Engineering"
description = "Tools"

[[catalog.resource]]
system = "Quartermaster groups"
external_id = "github"
name = "GitHub"
roles = ["Member", "Maintainer"]

[[catalog.package]]
name = "GitHub"
roles = [{ resource = "GitHub", role = "Member" }]

[[catalog.package.policy]]
name = "Members"
scope = "all_members"
approval = { stages = [{ primary = [{ kind = "manager" }], timeout_days = 7 }] }
"#;

    #[test]
    fn a_file_reads_back_as_it_was_written() {
        let file = PackageFile::parse(FILE).unwrap();
        assert_eq!(file.catalogs[0].packages[0].policies[0]["scope"], "all_members");
        let text = file.to_text().unwrap();
        assert_eq!(PackageFile::parse(&text).unwrap(), file);
        assert!(text.starts_with("# Quartermaster"));
    }

    #[test]
    fn a_bad_file_is_refused_naming_what_is_wrong() {
        let err = PackageFile::parse("[[catalog]]\nname = \"A\"\ncolour = 1\n").unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        let err = PackageFile::parse("[[catalog]]\nname = \"A\"\n[[catalog]]\nname = \"A\"\n").unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
        let err = PackageFile::parse("[[catalog]]\nname = \" \"\n").unwrap_err().to_string();
        assert!(err.contains("name"), "{err}");
    }

    #[test]
    fn the_diff_names_each_field_that_differs_and_disables_what_is_left_out() {
        let current = PackageFile::parse(FILE).unwrap();
        assert!(diff(&current, &current).is_empty(), "a file against itself changes nothing");
        let mut desired = current.clone();
        desired.catalogs[0].description = "Developer tools".into();
        let policy = &mut desired.catalogs[0].packages[0].policies[0];
        policy["approval"]["stages"][0]["timeout_days"] = Value::from(5);
        let mut extra = desired.catalogs[0].packages[0].clone();
        extra.name = "GitHub maintainers".into();
        extra.policies.clear();
        desired.catalogs[0].packages.push(extra);
        let changes = diff(&current, &desired);
        assert_eq!(
            changes,
            vec![
                Change::Changed(
                    Object::Catalog { catalog: "Engineering".into() },
                    vec![FieldChange {
                        field: "description".into(),
                        before: "\"Tools\"".into(),
                        after: "\"Developer tools\"".into()
                    }]
                ),
                Change::Changed(
                    Object::Policy {
                        catalog: "Engineering".into(),
                        package: "GitHub".into(),
                        policy: "Members".into()
                    },
                    vec![FieldChange {
                        field: "approval.stages[0].timeout_days".into(),
                        before: "7".into(),
                        after: "5".into()
                    }]
                ),
                Change::Added(Object::Package { catalog: "Engineering".into(), package: "GitHub maintainers".into() }),
            ]
        );
        // Back: the new package is disabled, the rest changed back.
        let back = diff(&desired, &current);
        assert_eq!(
            back.last(),
            Some(&Change::Disabled(Object::Package {
                catalog: "Engineering".into(),
                package: "GitHub maintainers".into()
            }))
        );
        // A whole catalog left out: only the catalog is named.
        let none = diff(&current, &PackageFile::default());
        assert_eq!(none, vec![Change::Disabled(Object::Catalog { catalog: "Engineering".into() })]);
        // Already disabled: nothing to do.
        let mut off = current.clone();
        off.catalogs[0].enabled = false;
        assert!(diff(&off, &PackageFile { catalogs: vec![] }).is_empty());
    }

    #[test]
    fn roles_and_rules_compare_as_sets() {
        let mut a = PackageFile::parse(FILE).unwrap();
        a.catalogs[0].packages[0].roles.push(RoleRef { resource: "GitHub".into(), role: "Maintainer".into() });
        let mut b = a.clone();
        b.catalogs[0].packages[0].roles.reverse();
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn references_are_rewritten_wherever_they_are() {
        let mut v: Value = serde_json::json!({"requestors": [{"kind": "user", "id": 3}], "approval": {"stages": [
            {"primary": [{"kind": "group", "id": 9}, {"kind": "manager"}]}]}, "kind": "text"});
        rewrite_references(&mut v, &mut |kind, m| {
            let id = m["id"].as_i64().unwrap();
            Ok(Some(Map::from_iter([(
                if kind == "user" { "email" } else { "name" }.to_owned(),
                Value::from(format!("{kind}{id}")),
            )])))
        })
        .unwrap();
        assert_eq!(v["requestors"][0], serde_json::json!({"kind": "user", "email": "user3"}));
        assert_eq!(v["approval"]["stages"][0]["primary"][0], serde_json::json!({"kind": "group", "name": "group9"}));
        assert_eq!(v["approval"]["stages"][0]["primary"][1], serde_json::json!({"kind": "manager"}));
    }
}
