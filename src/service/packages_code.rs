//! Packages as code: `packages export` writes the catalogs, their resources, packages and
//! policies as a file ([`crate::domain::package_file`]); `packages plan` shows what applying a
//! file would change, field by field, and what that does to requests under way; `packages
//! apply` does exactly that plan in one transaction, every change audited, and refuses when
//! the database (or the file) is no longer what the plan was made from.
//!
//! A plan is known by its id: a hash of the database's catalogs as a file and of the file.
//! Applying takes every catalog's lock, reads the database again, and goes on only if the id
//! is the same.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use super::Service;
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Actor, Operator, Permission};
use crate::domain::ids::*;
use crate::domain::model::{AccessPackage, Catalog};
use crate::domain::package_file::*;
use crate::domain::policy::Policy;
use crate::domain::{DomainError, DomainResult};
use crate::store::{catalog, directory, package_code, Conn};

use super::admin::Incompatible;

/// What the database holds, as a file, and the objects behind the file's names.
struct Current {
    file: PackageFile,
    catalogs: HashMap<String, Catalog>,
    packages: HashMap<(String, String), AccessPackage>,
    policies: HashMap<(String, String, String), Policy>,
    /// Package pairs that cannot be held together, and package–group rules, by id.
    package_rules: BTreeSet<(PackageId, PackageId)>,
    group_rules: BTreeSet<(PackageId, GroupId)>,
}

/// The people, groups, organizations and systems a file names, with their ids here.
#[derive(Default)]
struct Names {
    users: HashMap<String, UserId>,
    groups: HashMap<String, GroupId>,
    orgs: HashMap<String, OrgId>,
    systems: HashMap<String, ResourceSystemId>,
}

/// What applying a file changes, what each change does to work under way, and the plan's id.
#[derive(Debug)]
pub struct PackagePlan {
    pub id: String,
    /// Each change with what it does to requests and assignments under way.
    pub changes: Vec<(Change, Vec<String>)>,
    /// What the file leaves alone although it is not in it.
    pub notes: Vec<String>,
}

impl PackagePlan {
    /// The plan as `packages plan` prints it.
    pub fn render(&self) -> String {
        let count = |f: fn(&Change) -> bool| self.changes.iter().filter(|(c, _)| f(c)).count();
        let (added, changed, disabled) = (
            count(|c| matches!(c, Change::Added(_))),
            count(|c| matches!(c, Change::Changed(..))),
            count(|c| matches!(c, Change::Disabled(_))),
        );
        let mut out = if self.changes.is_empty() {
            format!("Plan {}: no changes (the database already holds what the file says).\n", self.id)
        } else {
            format!("Plan {}: {added} to add, {changed} to change, {disabled} to disable.\n", self.id)
        };
        for (change, effects) in &self.changes {
            out.push('\n');
            match change {
                Change::Added(o) => out.push_str(&format!("+ {o}\n")),
                Change::Changed(o, fields) => {
                    out.push_str(&format!("~ {o}\n"));
                    for f in fields {
                        out.push_str(&format!("    {}: {} -> {}\n", f.field, f.before, f.after));
                    }
                }
                Change::Disabled(o) => out.push_str(&format!("- {o} (not in the file: disabled)\n")),
            }
            for e in effects {
                out.push_str(&format!("    => {e}\n"));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("\nnote: {n}\n"));
        }
        out
    }
}

/// What `packages apply` did.
#[derive(Debug)]
pub struct Applied {
    pub plan: String,
    pub changes: usize,
    pub events: usize,
}

impl Service {
    /// The catalogs, their resources, packages and policies, as a file.
    #[tracing::instrument(name = "export_packages", skip_all)]
    pub async fn export_packages(&self, by: &Operator<'_>) -> DomainResult<String> {
        by.require(Permission::Administer)?;
        let mut conn = self.db.pool().acquire().await?;
        current(&mut conn).await?.file.to_text()
    }

    /// What applying the file `text` would change, and its id for `apply_packages`.
    #[tracing::instrument(name = "plan_packages", skip_all)]
    pub async fn plan_packages(&self, by: &Operator<'_>, text: &str) -> DomainResult<PackagePlan> {
        by.require(Permission::Administer)?;
        let desired = PackageFile::parse(text)?.normalized()?;
        let mut conn = self.db.pool().acquire().await?;
        let current = current(&mut conn).await?;
        let (plan, _) = plan(&mut conn, &current, &desired).await?;
        Ok(plan)
    }

    /// Apply the file `text` as plan `plan_id` showed it, in one transaction, as `actor` (an
    /// administrator), every change audited with the plan's id as its reason. Refused when
    /// the plan would now be another.
    #[tracing::instrument(name = "apply_packages", skip_all, fields(actor = actor.id().0))]
    pub async fn apply_packages(&self, actor: &Actor, text: &str, plan_id: &str) -> DomainResult<Applied> {
        self.administrator(actor)?;
        let desired = PackageFile::parse(text)?.normalized()?;
        let mut tx = self.db.begin().await?;
        // Every catalog writer takes its catalog's lock first: with all of them held, nothing
        // the plan read changes until this commits.
        let mut live = catalog::catalogs(&mut tx).await?;
        live.sort_by_key(|c| c.id);
        for c in &live {
            catalog::lock_catalog(&mut tx, c.id).await?;
        }
        let mut current = current(&mut tx).await?;
        let (plan, names) = plan(&mut tx, &current, &desired).await?;
        if plan.id != plan_id.trim() {
            return Err(DomainError::Conflict(format!(
                "the database or the file changed since plan {}: nothing was applied; plan again (it is now {})",
                plan_id.trim(),
                plan.id
            )));
        }
        self.checkpoint("packages.read").await;
        let mut events = Vec::new();
        let mut run = Run { service: self, actor, desired: &desired, names: &names, current: &mut current };
        for (change, _) in &plan.changes {
            run.apply(&mut tx, change, &mut events).await?;
        }
        run.rules(&mut tx, &mut events).await?;
        let reason = format!("packages apply, plan {}", plan.id);
        let events: Vec<AuditEvent> = events.into_iter().map(|e| e.reason(reason.clone())).collect();
        let count = events.len();
        self.commit(tx, events).await?;
        Ok(Applied { plan: plan.id, changes: plan.changes.len(), events: count })
    }
}

/// The database's catalogs as a file, with the objects behind its names.
async fn current(conn: &mut Conn) -> DomainResult<Current> {
    let catalogs = catalog::catalogs(conn).await?;
    let mut out = Current {
        file: PackageFile::default(),
        catalogs: HashMap::new(),
        packages: HashMap::new(),
        policies: HashMap::new(),
        package_rules: BTreeSet::new(),
        group_rules: BTreeSet::new(),
    };
    let mut all = Vec::new();
    for c in &catalogs {
        let resources = package_code::resources_of(conn, c.id).await?;
        let packages = catalog::packages_in(conn, c.id).await?;
        out.file.catalogs.push(CatalogSpec {
            name: c.name.clone(),
            description: c.description.clone(),
            enabled: c.enabled,
            externally_visible: c.externally_visible,
            resources: resources
                .into_iter()
                .map(|r| ResourceSpec {
                    system: r.system,
                    external_id: r.external_id,
                    name: r.name,
                    description: r.description,
                    roles: r.roles.into_iter().map(|(_, n)| n).collect(),
                })
                .collect(),
            packages: vec![],
        });
        out.catalogs.insert(c.name.clone(), c.clone());
        all.extend(packages.into_iter().map(|p| (c.name.clone(), p)));
    }
    let ids: Vec<PackageId> = all.iter().map(|(_, p)| p.id).collect();
    let named: HashMap<PackageId, PackageRef> =
        all.iter().map(|(c, p)| (p.id, PackageRef { catalog: c.clone(), package: p.name.clone() })).collect();
    let roles = catalog::package_roles(conn, &ids).await?;
    let mut rules = catalog::sod_rules_of(conn, &ids).await?;
    let policies = catalog::policies_of(conn, &ids).await?;
    // The names behind the policies' references.
    let mut users = Vec::new();
    for p in &policies {
        let mut v = serde_json::to_value(p).map_err(|e| DomainError::Internal(e.to_string()))?;
        rewrite_references(&mut v, &mut |kind, table| {
            if let (true, Some(id)) = (kind == "user", table.get("id").and_then(Value::as_i64)) {
                users.push(UserId(id));
            }
            Ok(None)
        })?;
    }
    let emails: HashMap<i64, String> =
        directory::users(conn, &users).await?.into_iter().map(|u| (u.id.0, u.email)).collect();
    let groups: HashMap<i64, String> =
        directory::group_names(conn).await?.into_iter().map(|(id, name)| (id.0, name)).collect();
    let orgs: HashMap<i64, String> =
        directory::connected_orgs(conn).await?.into_iter().map(|o| (o.id.0, o.name)).collect();
    for (catalog_name, p) in all {
        let sod = rules.remove(&p.id).unwrap_or_default();
        for (other, _) in &sod.incompatible_packages {
            out.package_rules.insert((p.id.min(*other), p.id.max(*other)));
        }
        for (group, _) in &sod.incompatible_groups {
            out.group_rules.insert((p.id, *group));
        }
        let mut spec = PackageSpec {
            name: p.name.clone(),
            description: p.description.clone(),
            hidden: p.hidden,
            enabled: p.enabled,
            roles: roles
                .iter()
                .filter(|(id, _)| *id == p.id)
                .map(|(_, r)| RoleRef { resource: r.resource_name.clone(), role: r.role_name.clone() })
                .collect(),
            incompatible_packages: sod
                .incompatible_packages
                .iter()
                .filter_map(|(id, _)| named.get(id).cloned())
                .collect(),
            incompatible_groups: sod.incompatible_groups.into_iter().map(|(_, name)| name).collect(),
            policies: vec![],
        };
        for policy in policies.iter().filter(|q| q.package_id == p.id) {
            let mut v = Value::Object(policy_spec(policy)?);
            rewrite_references(&mut v, &mut |kind, table| {
                let id = table.get("id").and_then(Value::as_i64).unwrap_or_default();
                let (key, name) = match kind {
                    "user" => ("email", emails.get(&id)),
                    "group" => ("name", groups.get(&id)),
                    _ => ("name", orgs.get(&id)),
                };
                Ok(name.map(|n| Map::from_iter([(key.to_owned(), Value::from(n.clone()))])))
            })?;
            if let Value::Object(map) = v {
                spec.policies.push(map);
            }
            out.policies.insert((catalog_name.clone(), p.name.clone(), policy.name.clone()), policy.clone());
        }
        spec.roles.sort();
        spec.incompatible_packages.sort();
        spec.incompatible_groups.sort();
        if let Some(c) = out.file.catalogs.iter_mut().find(|c| c.name == catalog_name) {
            c.packages.push(spec);
        }
        out.packages.insert((catalog_name, p.name.clone()), p);
    }
    Ok(out)
}

/// The plan from `current` to `desired` (normalized), after checking that everything the
/// file names is here; with the ids of those names.
async fn plan(conn: &mut Conn, current: &Current, desired: &PackageFile) -> DomainResult<(PackagePlan, Names)> {
    let names = names(conn, desired).await?;
    check(conn, current, desired, &names).await?;
    let changes = diff(&current.file, desired);
    // What the changes reach: requests open and assignments live in the packages they touch.
    let mut touched = Vec::new();
    for change in &changes {
        match change.object() {
            Object::Catalog { catalog } => {
                touched.extend(current.packages.iter().filter(|((c, _), _)| c == catalog).map(|(_, p)| p.id))
            }
            Object::Package { catalog, package } | Object::Policy { catalog, package, .. } => {
                touched.extend(current.packages.get(&(catalog.clone(), package.clone())).map(|p| p.id))
            }
            Object::Resource { .. } => {}
        }
    }
    touched.sort();
    touched.dedup();
    let open = package_code::open_requests_by_policy(conn, &touched).await?;
    let live = package_code::live_assignments_by_package(conn, &touched).await?;
    let open_in = |package: PackageId| open.iter().filter(|(p, _, _)| *p == package).map(|(_, _, n)| n).sum::<i64>();
    let live_in = |package: PackageId| live.iter().filter(|(p, _)| *p == package).map(|(_, n)| n).sum::<i64>();
    let turned_off = |fields: &[FieldChange]| fields.iter().any(|f| f.field == "enabled" && f.after == "false");
    let unavailable = |open: i64, live: i64| {
        format!(
            "{open} open request(s) will not be granted: the package is no longer available (each ends at its next \
             decision); {live} live assignment(s) stay until they end or are removed"
        )
    };
    let mut planned = Vec::new();
    for change in changes {
        let mut effects = Vec::new();
        match (&change, change.object()) {
            (Change::Disabled(_), Object::Catalog { catalog }) | (Change::Changed(..), Object::Catalog { catalog })
                if matches!(&change, Change::Disabled(_))
                    || matches!(&change, Change::Changed(_, f) if turned_off(f)) =>
            {
                let ids: Vec<PackageId> =
                    current.packages.iter().filter(|((c, _), _)| c == catalog).map(|(_, p)| p.id).collect();
                effects.push(unavailable(ids.iter().map(|p| open_in(*p)).sum(), ids.iter().map(|p| live_in(*p)).sum()));
            }
            (_, Object::Package { catalog, package }) => {
                if let Some(p) = current.packages.get(&(catalog.clone(), package.clone())) {
                    match &change {
                        Change::Disabled(_) => effects.push(unavailable(open_in(p.id), live_in(p.id))),
                        Change::Changed(_, fields) => {
                            if turned_off(fields) {
                                effects.push(unavailable(open_in(p.id), live_in(p.id)));
                            }
                            if fields.iter().any(|f| f.field.starts_with("roles")) {
                                effects.push(format!(
                                    "{} live assignment(s) are brought in line with the new roles (the new ones \
                                     given, the dropped ones taken back unless another assignment holds them)",
                                    live_in(p.id)
                                ));
                            }
                        }
                        Change::Added(_) => {}
                    }
                }
            }
            (_, Object::Policy { catalog, package, policy }) => {
                let key = (catalog.clone(), package.clone(), policy.clone());
                if let Some(q) = current.policies.get(&key) {
                    let open = open.iter().filter(|(_, id, _)| *id == q.id).map(|(_, _, n)| n).sum::<i64>();
                    match &change {
                        Change::Disabled(_) => effects.push(format!(
                            "{open} open request(s) under it go on as they were filed; it takes no new requests"
                        )),
                        Change::Changed(_, fields) if fields.iter().any(|f| !f.field.starts_with("name")) => effects
                            .push(format!(
                                "{open} open request(s) under it keep the approval stages they were filed under; \
                                 new requests get the new settings"
                            )),
                        _ => {}
                    }
                }
                let rule = desired_policy(desired, &key).and_then(|p| p.get("auto_rule")).is_some();
                if rule && !matches!(change, Change::Disabled(_)) {
                    effects.push("its automatic-assignment rule is applied at the rules' next pass".into());
                }
            }
            _ => {}
        }
        planned.push((change, effects));
    }
    let mut notes = Vec::new();
    for c in &current.file.catalogs {
        let Some(wanted) = desired.catalogs.iter().find(|d| d.name == c.name) else { continue };
        for r in c.resources.iter().filter(|r| !wanted.resources.iter().any(|w| same_resource(w, r))) {
            notes.push(format!(
                "resource \"{}\" of \"{}\" in \"{}\" is not in the file: it stays (resources are taken out of a \
                 catalog in the portal)",
                r.external_id, r.system, c.name
            ));
        }
    }
    let fingerprint =
        serde_json::to_string(&(&current.file, desired)).map_err(|e| DomainError::Internal(e.to_string()))?;
    let id = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fingerprint.as_bytes())).chars().take(16).collect();
    Ok((PackagePlan { id, changes: planned, notes }, names))
}

fn same_resource(a: &ResourceSpec, b: &ResourceSpec) -> bool {
    a.system == b.system && a.external_id == b.external_id
}

fn desired_policy<'a>(desired: &'a PackageFile, key: &(String, String, String)) -> Option<&'a PolicySpec> {
    desired
        .catalogs
        .iter()
        .find(|c| c.name == key.0)?
        .packages
        .iter()
        .find(|p| p.name == key.1)?
        .policies
        .iter()
        .find(|q| policy_name(q) == key.2)
}

/// The ids of the people (by email), groups, organizations and systems (by name) the file
/// names; a name that is not here is left out (and refused by [`check`]).
async fn names(conn: &mut Conn, desired: &PackageFile) -> DomainResult<Names> {
    let mut out = Names::default();
    let mut emails = BTreeSet::new();
    for c in &desired.catalogs {
        for p in &c.packages {
            for policy in &p.policies {
                let mut v = Value::Object(policy.clone());
                rewrite_references(&mut v, &mut |kind, table| {
                    if let (true, Some(email)) = (kind == "user", table.get("email").and_then(Value::as_str)) {
                        emails.insert(email.trim().to_lowercase());
                    }
                    Ok(None)
                })?;
            }
        }
    }
    for email in emails {
        if let Some((user, _)) = directory::user_by_email(conn, &email).await? {
            out.users.insert(email, user.id);
        }
    }
    out.groups = directory::group_names(conn).await?.into_iter().map(|(id, name)| (name, id)).collect();
    out.orgs = directory::connected_orgs(conn).await?.into_iter().map(|o| (o.name, o.id)).collect();
    out.systems = catalog::resource_systems(conn).await?.into_iter().map(|(id, name, _)| (name, id)).collect();
    Ok(out)
}

/// The engine's policy for a file's policy, its references resolved through `names`.
fn resolved_policy(spec: &PolicySpec, what: &Object, names: &Names) -> DomainResult<Policy> {
    policy_from_spec(spec, what, &mut |kind, table| {
        let text = |key: &str| table.get(key).and_then(Value::as_str).unwrap_or("").trim().to_owned();
        let found = match kind {
            "user" => names.users.get(&text("email").to_lowercase()).map(|u| u.0),
            "group" => names.groups.get(&text("name")).map(|g| g.0),
            _ => names.orgs.get(&text("name")).map(|o| o.0),
        };
        found.ok_or_else(|| {
            let named =
                if kind == "user" { format!("the email {:?}", text("email")) } else { format!("{:?}", text("name")) };
            let what = match kind {
                "user" => "nobody here has",
                "group" => "there is no group",
                _ => "there is no connected organization",
            };
            DomainError::invalid("file", format!("{what} {named}"))
        })
    })
}

/// Everything the file names is here (or in the file), and nothing it asks for is what a
/// file cannot do.
async fn check(conn: &mut Conn, current: &Current, desired: &PackageFile, names: &Names) -> DomainResult<()> {
    let bad = |m: String| Err(DomainError::invalid("file", m));
    for c in &desired.catalogs {
        let here = current.file.catalogs.iter().find(|h| h.name == c.name);
        for r in &c.resources {
            let what = Object::Resource {
                catalog: c.name.clone(),
                system: r.system.clone(),
                external_id: r.external_id.clone(),
            };
            let Some(system) = names.systems.get(&r.system) else {
                return bad(format!("{what}: there is no resource system \"{}\"", r.system));
            };
            match here.and_then(|h| h.resources.iter().find(|h| same_resource(h, r))) {
                Some(had) if had != r => {
                    return bad(format!(
                        "{what} differs from the catalog's (name, description or roles): resources are changed in \
                         the portal; write it as it is"
                    ))
                }
                Some(_) => {}
                None => {
                    if package_code::resource_by_external_id(conn, *system, &r.external_id).await?.is_some() {
                        return bad(format!("{what} is already in another catalog: add it to this one in the portal"));
                    }
                    if r.roles.is_empty() {
                        return bad(format!("{what} needs at least one role"));
                    }
                }
            }
        }
        for p in &c.packages {
            let what = Object::Package { catalog: c.name.clone(), package: p.name.clone() };
            if p.roles.is_empty() {
                return bad(format!("{what} needs at least one role"));
            }
            for role in &p.roles {
                let matching: Vec<&ResourceSpec> = c.resources.iter().filter(|r| r.name == role.resource).collect();
                match matching.as_slice() {
                    [r] if r.roles.contains(&role.role) => {}
                    [_] => return bad(format!("{what}: resource \"{}\" has no role \"{}\"", role.resource, role.role)),
                    [] => {
                        return bad(format!(
                            "{what}: no resource \"{}\" in the catalog's resources in the file",
                            role.resource
                        ))
                    }
                    _ => return bad(format!("{what}: several resources are named \"{}\"", role.resource)),
                }
            }
            for other in &p.incompatible_packages {
                let found = desired
                    .catalogs
                    .iter()
                    .any(|d| d.name == other.catalog && d.packages.iter().any(|q| q.name == other.package));
                if !found {
                    return bad(format!(
                        "{what}: the incompatible package \"{} / {}\" is not in the file",
                        other.catalog, other.package
                    ));
                }
                if *other == (PackageRef { catalog: c.name.clone(), package: p.name.clone() }) {
                    return bad(format!("{what} cannot be incompatible with itself"));
                }
            }
            for g in &p.incompatible_groups {
                if !names.groups.contains_key(g) {
                    return bad(format!("{what}: there is no group \"{g}\""));
                }
            }
            for policy in &p.policies {
                let what = Object::Policy {
                    catalog: c.name.clone(),
                    package: p.name.clone(),
                    policy: policy_name(policy).to_owned(),
                };
                resolved_policy(policy, &what, names)?;
            }
        }
    }
    // Two policies of one package with one name cannot be told apart by a file.
    let mut seen = BTreeSet::new();
    for c in &current.file.catalogs {
        for p in &c.packages {
            for q in &p.policies {
                if !seen.insert((c.name.as_str(), p.name.as_str(), policy_name(q))) {
                    return bad(format!(
                        "package \"{} / {}\" has two policies named \"{}\": rename one in the portal first",
                        c.name,
                        p.name,
                        policy_name(q)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// One apply's work, change by change, inside its transaction.
struct Run<'a> {
    service: &'a Service,
    actor: &'a Actor,
    desired: &'a PackageFile,
    names: &'a Names,
    current: &'a mut Current,
}

impl Run<'_> {
    fn catalog_spec(&self, name: &str) -> DomainResult<&CatalogSpec> {
        self.desired.catalogs.iter().find(|c| c.name == name).ok_or_else(|| DomainError::not_found("catalog"))
    }

    fn package_spec(&self, catalog: &str, name: &str) -> DomainResult<&PackageSpec> {
        self.catalog_spec(catalog)?
            .packages
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| DomainError::not_found("access package"))
    }

    fn catalog_id(&self, name: &str) -> DomainResult<CatalogId> {
        self.current.catalogs.get(name).map(|c| c.id).ok_or_else(|| DomainError::not_found("catalog"))
    }

    fn package(&self, catalog: &str, name: &str) -> DomainResult<AccessPackage> {
        self.current
            .packages
            .get(&(catalog.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| DomainError::not_found("access package"))
    }

    /// The ids of a package's roles, from the catalog's resources as they are now.
    async fn role_ids(&self, tx: &mut Conn, catalog: &str, spec: &PackageSpec) -> DomainResult<Vec<ResourceRoleId>> {
        let resources = package_code::resources_of(tx, self.catalog_id(catalog)?).await?;
        let mut ids = Vec::new();
        for role in &spec.roles {
            let id = resources
                .iter()
                .filter(|r| r.name == role.resource)
                .flat_map(|r| r.roles.iter())
                .find(|(_, name)| *name == role.role)
                .map(|(id, _)| *id)
                .ok_or_else(|| {
                    DomainError::invalid("file", format!("no role \"{}\" of \"{}\"", role.role, role.resource))
                })?;
            ids.push(id);
        }
        ids.sort();
        Ok(ids)
    }

    async fn apply(
        &mut self,
        tx: &mut crate::store::Tx,
        change: &Change,
        events: &mut Vec<AuditEvent>,
    ) -> DomainResult<()> {
        let (service, actor) = (self.service, self.actor);
        match (change, change.object()) {
            (Change::Added(_), Object::Catalog { catalog }) => {
                let spec = self.catalog_spec(catalog)?;
                let creator = service.catalog_creator(actor)?;
                let (id, event) =
                    creator.insert_catalog_in(tx, &spec.name, &spec.description, spec.externally_visible).await?;
                events.push(event);
                let mut made = Catalog {
                    id,
                    name: spec.name.clone(),
                    description: spec.description.trim().to_owned(),
                    enabled: spec.enabled,
                    externally_visible: spec.externally_visible,
                    version: 1,
                };
                if !spec.enabled {
                    events.push(service.catalog_owner(actor, id)?.update_catalog_in(tx, made.clone()).await?);
                    made.version += 1;
                }
                self.current.catalogs.insert(made.name.clone(), made);
            }
            (Change::Changed(..), Object::Catalog { catalog }) | (Change::Disabled(_), Object::Catalog { catalog }) => {
                let had =
                    self.current.catalogs.get(catalog).cloned().ok_or_else(|| DomainError::not_found("catalog"))?;
                let after = match change {
                    Change::Disabled(_) => Catalog { enabled: false, ..had.clone() },
                    _ => {
                        let spec = self.catalog_spec(catalog)?;
                        Catalog {
                            description: spec.description.clone(),
                            enabled: spec.enabled,
                            externally_visible: spec.externally_visible,
                            ..had.clone()
                        }
                    }
                };
                events.push(service.catalog_owner(actor, had.id)?.update_catalog_in(tx, after.clone()).await?);
                self.current.catalogs.insert(catalog.clone(), Catalog { version: after.version + 1, ..after });
            }
            (Change::Added(_), Object::Resource { catalog, system, external_id }) => {
                let spec = self
                    .catalog_spec(catalog)?
                    .resources
                    .iter()
                    .find(|r| r.system == *system && r.external_id == *external_id)
                    .ok_or_else(|| DomainError::not_found("resource"))?;
                let system =
                    *self.names.systems.get(system).ok_or_else(|| DomainError::not_found("resource system"))?;
                let roles: Vec<&str> = spec.roles.iter().map(String::as_str).collect();
                let owner = service.catalog_owner(actor, self.catalog_id(catalog)?)?;
                let (_, event) = owner
                    .insert_resource_in(tx, system, Some(external_id), &spec.name, &spec.description, &roles)
                    .await?;
                events.push(event);
            }
            (Change::Added(_), Object::Package { catalog, package }) => {
                let spec = self.package_spec(catalog, package)?.clone();
                let catalog_id = self.catalog_id(catalog)?;
                let roles = self.role_ids(tx, catalog, &spec).await?;
                let manager = service.package_manager(actor, catalog_id)?;
                let (id, event) = manager.insert_package_in(tx, &spec.name, &spec.description, &roles).await?;
                events.push(event);
                let mut made = AccessPackage {
                    id,
                    catalog_id,
                    name: spec.name.clone(),
                    description: spec.description.trim().to_owned(),
                    hidden: spec.hidden,
                    enabled: spec.enabled,
                    version: 1,
                };
                if spec.hidden || !spec.enabled {
                    events.push(manager.update_package_in(tx, made.clone()).await?);
                    made.version += 1;
                }
                self.current.packages.insert((catalog.clone(), package.clone()), made);
            }
            (Change::Changed(_, fields), Object::Package { catalog, package }) => {
                let spec = self.package_spec(catalog, package)?.clone();
                let mut had = self.package(catalog, package)?;
                let manager = service.package_manager(actor, had.catalog_id)?;
                if fields.iter().any(|f| matches!(f.field.as_str(), "description" | "hidden" | "enabled")) {
                    let after = AccessPackage {
                        description: spec.description.clone(),
                        hidden: spec.hidden,
                        enabled: spec.enabled,
                        ..had.clone()
                    };
                    events.push(manager.update_package_in(tx, after.clone()).await?);
                    had = AccessPackage { version: had.version + 1, ..after };
                }
                if fields.iter().any(|f| f.field.starts_with("roles")) {
                    let roles = self.role_ids(tx, catalog, &spec).await?;
                    if let Some(event) = manager.change_roles_in(tx, had.id, had.version, &roles).await? {
                        events.push(event);
                        had.version += 1;
                    }
                }
                self.current.packages.insert((catalog.clone(), package.clone()), had);
            }
            (Change::Disabled(_), Object::Package { catalog, package }) => {
                let had = self.package(catalog, package)?;
                let manager = service.package_manager(actor, had.catalog_id)?;
                events.push(manager.update_package_in(tx, AccessPackage { enabled: false, ..had.clone() }).await?);
            }
            (_, Object::Policy { catalog, package, policy }) => {
                let key = (catalog.clone(), package.clone(), policy.clone());
                let pkg = self.package(catalog, package)?;
                let manager = service.package_manager(actor, pkg.catalog_id)?;
                match change {
                    Change::Disabled(_) => {
                        let had =
                            self.current.policies.get(&key).cloned().ok_or_else(|| DomainError::not_found("policy"))?;
                        events.push(manager.update_policy_in(tx, Policy { enabled: false, ..had }).await?);
                    }
                    _ => {
                        let spec =
                            desired_policy(self.desired, &key).ok_or_else(|| DomainError::not_found("policy"))?;
                        let mut made = resolved_policy(spec, change.object(), self.names)?;
                        made.package_id = pkg.id;
                        match self.current.policies.get(&key) {
                            None => {
                                made.id = PolicyId(0);
                                events.push(manager.insert_policy_in(tx, made).await?.1);
                            }
                            Some(had) => {
                                made.id = had.id;
                                made.version = had.version;
                                events.push(manager.update_policy_in(tx, made).await?);
                            }
                        }
                    }
                }
            }
            (Change::Changed(..), Object::Resource { .. }) | (Change::Disabled(_), Object::Resource { .. }) => {
                return Err(DomainError::invalid("file", "resources are changed in the portal"));
            }
        }
        Ok(())
    }

    /// Separation of duties as the file says, for the packages in it: package pairs added and
    /// taken back (one rule per pair), group rules likewise.
    async fn rules(&mut self, tx: &mut crate::store::Tx, events: &mut Vec<AuditEvent>) -> DomainResult<()> {
        let mut in_file = BTreeSet::new();
        let mut pairs = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for c in &self.desired.catalogs {
            for p in &c.packages {
                let me = self.package(&c.name, &p.name)?.id;
                in_file.insert(me);
                for other in &p.incompatible_packages {
                    let other = self.package(&other.catalog, &other.package)?.id;
                    pairs.insert((me.min(other), me.max(other)));
                }
                for g in &p.incompatible_groups {
                    groups.insert((me, *self.names.groups.get(g).ok_or_else(|| DomainError::not_found("group"))?));
                }
            }
        }
        let catalog_of = |id: PackageId| {
            self.current
                .packages
                .values()
                .find(|p| p.id == id)
                .map(|p| p.catalog_id)
                .ok_or_else(|| DomainError::not_found("access package"))
        };
        let (service, actor) = (self.service, self.actor);
        for (a, b) in pairs.difference(&self.current.package_rules) {
            let manager = service.package_manager(actor, catalog_of(*a)?)?;
            events.push(manager.add_incompatibility_in(tx, *a, Incompatible::Package(*b)).await?);
        }
        for (a, b) in self.current.package_rules.difference(&pairs) {
            if in_file.contains(a) && in_file.contains(b) {
                let manager = service.package_manager(actor, catalog_of(*a)?)?;
                events.push(manager.remove_incompatibility_in(tx, *a, Incompatible::Package(*b)).await?);
            }
        }
        for (p, g) in groups.difference(&self.current.group_rules) {
            let manager = service.package_manager(actor, catalog_of(*p)?)?;
            events.push(manager.add_incompatibility_in(tx, *p, Incompatible::Group(*g)).await?);
        }
        for (p, g) in self.current.group_rules.difference(&groups) {
            if in_file.contains(p) {
                let manager = service.package_manager(actor, catalog_of(*p)?)?;
                events.push(manager.remove_incompatibility_in(tx, *p, Incompatible::Group(*g)).await?);
            }
        }
        Ok(())
    }
}
