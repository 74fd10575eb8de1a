//! The access package builder: drafts an author fills in step by step, kept on the server at
//! every Back and Next (a reload, a second tab or a browser without JavaScript loses nothing),
//! then made into a package with its policy — or a new policy, or an edit of both — in one
//! transaction with its audit events.
//!
//! A draft is its author's alone: anyone else is told it does not exist, and the author must
//! still manage the catalog's packages at every step (a role taken away ends the work).
//! Drafts themselves are not audited (they change nothing anyone can request); what they make
//! is, exactly as the same change made any other way.

use std::collections::{BTreeMap, HashMap};

use super::admin::Incompatible;
use super::capability::{InCatalog, MayManagePackages, PackageManager};
use super::Service;
use crate::domain::authz::Actor;
use crate::domain::draft::{self, Fields, PackageDraft, People};
use crate::domain::ids::*;
use crate::domain::model::AccessPackage;
use crate::domain::policy::{ApproverSpec, Expiration, QuestionKind, RequestorRef, RequestorScope, ReviewSettings};
use crate::domain::{DomainError, DomainResult};
use crate::states::{DraftMode, WizardStep};
use crate::store::{catalog, directory, drafts, to_ms, Conn};
use crate::views::{Choice, DraftSummary, DraftView, WhatIf};

/// Drafts one person may keep at once (discarding or finishing one frees a place).
pub const MAX_DRAFTS: i64 = 50;

/// What a new draft starts from.
#[derive(Clone, Copy, Debug)]
pub enum DraftStart {
    /// An empty package.
    New,
    /// A package's copy: its settings, roles and first policy, under a new name.
    Copy(PackageId),
    /// Another policy for a package.
    AddPolicy(PackageId),
    /// A package and one of its policies, as they are now.
    Edit(PackageId, PolicyId),
}

/// Where Back and Next go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Go {
    Back,
    Next,
    /// Straight to a step (the steps' list), after saving this one.
    To(WizardStep),
}

fn body_of(row: &drafts::DraftRow) -> DomainResult<PackageDraft> {
    serde_json::from_str(&row.body).map_err(|e| DomainError::Internal(format!("draft {}: {e}", row.id)))
}

fn body_text(draft: &PackageDraft) -> DomainResult<String> {
    serde_json::to_string(draft).map_err(|e| DomainError::Internal(e.to_string()))
}

fn mode_of(row: &drafts::DraftRow) -> DraftMode {
    match (row.package, row.policy) {
        (None, _) => DraftMode::NewPackage,
        (Some(_), None) => DraftMode::NewPolicy,
        (Some(_), Some(_)) => DraftMode::Edit,
    }
}

/// The author's drafts in a catalog, for the catalog's page.
pub(super) async fn summaries(conn: &mut Conn, author: UserId, catalog: CatalogId) -> DomainResult<Vec<DraftSummary>> {
    drafts::drafts_in(conn, author, catalog, MAX_DRAFTS)
        .await?
        .iter()
        .map(|row| {
            // A draft this version cannot read is still listed, to be discarded.
            let name = match (body_of(row), mode_of(row)) {
                (Err(_), _) => "A draft that can no longer be read: discard it".to_owned(),
                (Ok(body), DraftMode::NewPolicy) => format!("{} · policy “{}”", body.name, body.policy.name),
                (Ok(body), _) if body.name.is_empty() => "Untitled package".to_owned(),
                (Ok(body), _) => body.name,
            };
            Ok(DraftSummary {
                id: row.id,
                name,
                mode: mode_of(row),
                step: WizardStep::parse(&row.step).unwrap_or(WizardStep::Basics),
                updated_at: row.updated_at,
            })
        })
        .collect()
}

impl<S: MayManagePackages> InCatalog<'_, S> {
    /// Start a draft in this catalog; the package it copies or changes must be in it.
    #[tracing::instrument(name = "start_draft", skip_all, fields(actor = self.actor.id().0, catalog = self.catalog.0, ?from))]
    pub async fn start_draft(&self, from: DraftStart) -> DomainResult<i64> {
        let (service, actor) = (self.service, self.actor);
        let mut tx = service.db.begin().await?;
        // The catalog is live, and one start at a time counts the drafts in it.
        self.lock(&mut tx).await?;
        if drafts::count_drafts(&mut tx, actor.id(), self.catalog).await? >= MAX_DRAFTS {
            return Err(DomainError::Conflict(format!(
                "you have {MAX_DRAFTS} drafts in progress in this catalog: finish or discard some first"
            )));
        }
        let mut body = PackageDraft::new();
        let (package, policy) = match from {
            DraftStart::New => (None, None),
            DraftStart::Copy(p) | DraftStart::AddPolicy(p) | DraftStart::Edit(p, _) => {
                let pkg =
                    catalog::live_package(&mut tx, p).await?.ok_or_else(|| DomainError::not_found("access package"))?;
                self.owns(pkg.catalog_id, "access package")?;
                body.name = pkg.name.clone();
                body.description = pkg.description.clone();
                body.hidden = pkg.hidden;
                body.package_version = pkg.version;
                body.roles = catalog::package_roles(&mut tx, &[p]).await?.into_iter().map(|(_, r)| r.id).collect();
                let rules = catalog::sod_rules(&mut tx, p).await?;
                body.incompatible_packages = rules.incompatible_packages.iter().map(|(id, _)| *id).collect();
                body.incompatible_groups = rules.incompatible_groups.iter().map(|(id, _)| *id).collect();
                body.sod_base = (body.incompatible_packages.clone(), body.incompatible_groups.clone());
                let policies = catalog::policies_of(&mut tx, &[p]).await?;
                match from {
                    DraftStart::Copy(_) => {
                        body.name = format!("Copy of {}", pkg.name).chars().take(200).collect();
                        body.package_version = 0;
                        if let Some(first) = policies.into_iter().next() {
                            body.policy = first;
                        }
                        body.policy.id = PolicyId(0);
                        body.policy.package_id = PackageId(0);
                        body.policy.version = 1;
                        (None, None)
                    }
                    DraftStart::AddPolicy(_) => {
                        body.policy.name = String::new();
                        body.policy.package_id = p;
                        (Some(p), None)
                    }
                    DraftStart::Edit(_, pol) => {
                        body.policy = policies
                            .into_iter()
                            .find(|x| x.id == pol)
                            .ok_or_else(|| DomainError::not_found("policy"))?;
                        (Some(p), Some(pol))
                    }
                    DraftStart::New => (None, None),
                }
            }
        };
        body.used_keys = body.policy.questions.iter().map(|q| q.id.clone()).collect();
        let new = drafts::NewDraft {
            author: actor.id(),
            catalog: self.catalog,
            package,
            policy,
            step: WizardStep::Basics.as_str(),
            body: &body_text(&body)?,
        };
        let id = drafts::insert_draft(&mut tx, &new, to_ms(service.now())).await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// A draft, opened by its author, who still manages packages in its catalog, for one
/// operation (each consumes it: what it read when opened is not reused after a change).
pub struct Draft<'a> {
    pm: PackageManager<'a>,
    row: drafts::DraftRow,
}

impl Service {
    /// Throw a draft away: its author may, even without the role any more (nothing is made).
    #[tracing::instrument(name = "discard_draft", skip_all, fields(actor = actor.id().0, draft = id))]
    pub async fn discard_draft(&self, actor: &Actor, id: i64) -> DomainResult<CatalogId> {
        let mut tx = self.db.begin().await?;
        let row = drafts::draft(&mut tx, id, true)
            .await?
            .filter(|r| r.author == actor.id())
            .ok_or_else(|| DomainError::not_found("draft"))?;
        drafts::delete_draft(&mut tx, id, actor.id()).await?;
        tx.commit().await?;
        Ok(row.catalog)
    }

    /// Open a draft: its author's only.
    pub async fn draft<'a>(&'a self, actor: &'a Actor, id: i64) -> DomainResult<Draft<'a>> {
        let mut conn = self.db.pool().acquire().await?;
        let row = drafts::draft(&mut conn, id, false)
            .await?
            .filter(|r| r.author == actor.id())
            .ok_or_else(|| DomainError::not_found("draft"))?;
        let pm = self.package_manager(actor, row.catalog)?;
        Ok(Draft { pm, row })
    }
}

/// An edit made stale by a change since it began cannot be saved: say what to do.
fn stale_edit(e: DomainError) -> DomainError {
    match e {
        DomainError::Conflict(_) | DomainError::Stale(_) => DomainError::Conflict(
            "someone changed this package or policy after you began this edit: discard this draft and edit again from the package's page".into(),
        ),
        other => other,
    }
}

/// People named by email in a step's fields, looked up once.
async fn people_named(conn: &mut Conn, step: WizardStep, fields: &HashMap<String, String>) -> DomainResult<People> {
    let mut emails: Vec<String> = draft::people_fields(step)
        .iter()
        .flat_map(|k| draft::emails_in(fields.get(k).map_or("", |v| v.as_str())))
        .collect();
    emails.sort_unstable();
    emails.dedup();
    if emails.len() > 1000 {
        return Err(DomainError::invalid("people", "too many people named at once"));
    }
    Ok(directory::active_by_email(conn, &emails).await?.into_iter().collect())
}

impl Draft<'_> {
    pub fn id(&self) -> i64 {
        self.row.id
    }

    pub fn catalog(&self) -> CatalogId {
        self.row.catalog
    }

    pub fn mode(&self) -> DraftMode {
        mode_of(&self.row)
    }

    /// Save one step's fields (checked; a refusal names the field and saves nothing) and
    /// answer the step to show next.
    #[tracing::instrument(name = "save_draft_step", skip_all, fields(actor = self.pm.actor.id().0, draft = self.row.id, %step))]
    pub async fn save_step(
        self,
        step: WizardStep,
        go: Go,
        fields: &HashMap<String, String>,
    ) -> DomainResult<WizardStep> {
        let service = self.pm.service;
        let people = {
            let mut conn = service.db.pool().acquire().await?;
            people_named(&mut conn, step, fields).await?
        };
        let now = service.now();
        let mut tx = service.db.begin().await?;
        // Read again under the row's lock: another tab may have saved another step meanwhile,
        // and this step's fields go onto what it saved.
        let row = drafts::draft(&mut tx, self.row.id, true)
            .await?
            .filter(|r| r.author == self.row.author)
            .ok_or_else(|| DomainError::not_found("draft"))?;
        let mut body = body_of(&row)?;
        let rule_before = body.policy.auto_rule.clone();
        body.apply(mode_of(&row), step, &Fields(fields), &people, now)?;
        // Automatic assignment is for administrators (the Review step would list people).
        if body.policy.auto_rule != rule_before && service.administrator(self.pm.actor).is_err() {
            return Err(DomainError::invalid("auto_rule", "only administrators assign automatically"));
        }
        let to = match go {
            Go::Back => step.back(),
            Go::Next => step.next(),
            Go::To(s) => s,
        };
        drafts::update_draft(&mut tx, row.id, to.as_str(), &body_text(&body)?, to_ms(now)).await?;
        tx.commit().await?;
        Ok(to)
    }

    /// Make what the draft describes, in one transaction with its audit events, and delete
    /// the draft; a second "create" (another tab, a double click) finds it gone. Answers the
    /// package made or changed. A problem sends the author back to its step: the error names
    /// the field.
    /// `seen`: when the draft was last saved as the author reviewed it; a save since (another
    /// tab) is refused, so what is made is what was reviewed.
    #[tracing::instrument(name = "finish_draft", skip_all, fields(actor = self.pm.actor.id().0, draft = self.row.id))]
    pub async fn finish(self, seen: Option<i64>) -> DomainResult<PackageId> {
        self.finish_reviewed(seen, None).await
    }

    /// [`Self::finish`], refusing when who gains and loses by the policy's rule is no longer
    /// `what_if` (the fingerprint the Review step showed): saving does exactly what was shown.
    #[tracing::instrument(name = "finish_draft_reviewed", skip_all, fields(actor = self.pm.actor.id().0, draft = self.row.id))]
    pub async fn finish_reviewed(self, seen: Option<i64>, what_if: Option<&str>) -> DomainResult<PackageId> {
        let (pm, service) = (&self.pm, self.pm.service);
        let now = service.now();
        let mut tx = service.db.begin().await?;
        pm.lock(&mut tx).await?;
        let row = drafts::draft(&mut tx, self.row.id, true)
            .await?
            .filter(|r| r.author == self.row.author)
            .ok_or_else(|| DomainError::not_found("draft"))?;
        if seen.is_some_and(|s| s != row.updated_at) {
            return Err(DomainError::Conflict(
                "this draft was changed in another tab since you reviewed it: review it again".into(),
            ));
        }
        let body = body_of(&row)?;
        let mode = mode_of(&row);
        body.validate(mode, now)?;
        check_references(&mut tx, &body.policy, &body.incompatible_groups).await?;
        let mut events = Vec::new();
        let mut policy = body.policy.clone();
        let mut saved = row.policy;
        let package = match (row.package, row.policy) {
            (None, _) => {
                let (id, event) = pm.insert_package_in(&mut tx, &body.name, &body.description, &body.roles).await?;
                events.push(event);
                if body.hidden {
                    let made = AccessPackage {
                        id,
                        catalog_id: pm.catalog,
                        name: body.name.clone(),
                        description: body.description.trim().to_owned(),
                        hidden: true,
                        enabled: true,
                        version: 1,
                    };
                    events.push(pm.update_package_in(&mut tx, made).await?);
                }
                for p in &body.incompatible_packages {
                    events.push(pm.add_incompatibility_in(&mut tx, id, Incompatible::Package(*p)).await?);
                }
                for g in &body.incompatible_groups {
                    events.push(pm.add_incompatibility_in(&mut tx, id, Incompatible::Group(*g)).await?);
                }
                policy.id = PolicyId(0);
                policy.package_id = id;
                let (made, event) = pm.insert_policy_in(&mut tx, policy).await?;
                saved = Some(made);
                events.push(event);
                id
            }
            (Some(p), None) => {
                policy.package_id = p;
                let (made, event) = pm.insert_policy_in(&mut tx, policy).await?;
                saved = Some(made);
                events.push(event);
                p
            }
            (Some(p), Some(pol)) => {
                let current =
                    catalog::live_package(&mut tx, p).await?.ok_or_else(|| DomainError::not_found("access package"))?;
                let mut version = body.package_version;
                if (current.name.as_str(), current.description.as_str(), current.hidden)
                    != (body.name.as_str(), body.description.trim(), body.hidden)
                {
                    let changed = AccessPackage {
                        name: body.name.clone(),
                        description: body.description.trim().to_owned(),
                        hidden: body.hidden,
                        version,
                        ..current
                    };
                    events.push(pm.update_package_in(&mut tx, changed).await.map_err(stale_edit)?);
                    version += 1;
                }
                // The roles (its holders are brought in line after, batch by batch).
                events.extend(pm.change_roles_in(&mut tx, p, version, &body.roles).await.map_err(stale_edit)?);
                // Separation of duties: only what the author ticked or unticked since the edit
                // began, applied to the rules as they are now (a rule someone else changed
                // meanwhile stays as they left it).
                let rules = catalog::sod_rules(&mut tx, p).await?;
                let now_packages: Vec<PackageId> = rules.incompatible_packages.iter().map(|(id, _)| *id).collect();
                let now_groups: Vec<GroupId> = rules.incompatible_groups.iter().map(|(id, _)| *id).collect();
                let (base_packages, base_groups) = &body.sod_base;
                let ticked = |list: &[PackageId], q: &PackageId| list.contains(q);
                let cannot_take_back = |e: DomainError| match e {
                    DomainError::NotFound(_) => DomainError::invalid(
                        "roles",
                        "a rule with another catalog's package can be taken back only by someone who manages both",
                    ),
                    other => other,
                };
                for q in
                    body.incompatible_packages.iter().filter(|q| !ticked(base_packages, q) && !now_packages.contains(q))
                {
                    events.push(pm.add_incompatibility_in(&mut tx, p, Incompatible::Package(*q)).await?);
                }
                for q in
                    base_packages.iter().filter(|q| !ticked(&body.incompatible_packages, q) && now_packages.contains(q))
                {
                    events.push(
                        pm.remove_incompatibility_in(&mut tx, p, Incompatible::Package(*q))
                            .await
                            .map_err(cannot_take_back)?,
                    );
                }
                for g in body.incompatible_groups.iter().filter(|g| !base_groups.contains(g) && !now_groups.contains(g))
                {
                    events.push(pm.add_incompatibility_in(&mut tx, p, Incompatible::Group(*g)).await?);
                }
                for g in base_groups.iter().filter(|g| !body.incompatible_groups.contains(g) && now_groups.contains(g))
                {
                    events.push(pm.remove_incompatibility_in(&mut tx, p, Incompatible::Group(*g)).await?);
                }
                policy.id = pol;
                policy.package_id = p;
                // Nothing changed: no event, and no new version (other open edits stay valid).
                let current = catalog::policy(&mut tx, pol).await?.ok_or_else(|| DomainError::not_found("policy"))?;
                if draft::normalized(&current) != draft::normalized(&policy) {
                    events.push(pm.update_policy_in(&mut tx, policy).await.map_err(stale_edit)?);
                }
                p
            }
        };
        if !drafts::delete_draft(&mut tx, row.id, row.author).await? {
            return Err(DomainError::not_found("draft"));
        }
        // (A new package is held by nobody: what it gives is everyone the rule matches.)
        if let (Some(source), Some(shown), Some(_)) = (body.policy.auto_rule.as_deref(), what_if, row.package) {
            let rule = crate::domain::rule::Rule::parse(source)?;
            let people = crate::store::birthright::people(&mut tx, None).await?;
            let now = service.rule_diff(&mut tx, (package, saved), &rule, &people, None).await?;
            if now.fingerprint() != shown {
                return Err(DomainError::Conflict(
                    "who gains and loses this access has changed since you reviewed it: review it again".into(),
                ));
            }
        }
        service.commit(tx, events).await?;
        // A rule applies at once, as the Review step showed (each change its own transaction;
        // one that fails is taken up by the next pass).
        if let Some(id) = saved.filter(|_| body.policy.auto_rule.is_some()) {
            let mut conn = service.db.pool().acquire().await?;
            let made = catalog::policy(&mut conn, id).await?;
            let people = crate::store::birthright::people(&mut conn, None).await?;
            drop(conn);
            if let Some(made) = made {
                if let Err(e) = service.apply_rule(&made, &people, None).await {
                    tracing::error!(policy = id.0, error = ?e, "applying a new rule failed: the next pass applies it");
                }
            }
        }
        Ok(package)
    }

    /// The step to show, with everything it offers, and on Review what will be made.
    #[tracing::instrument(name = "view_draft", skip_all, fields(actor = self.pm.actor.id().0, draft = self.row.id))]
    pub async fn view(self, step: Option<WizardStep>) -> DomainResult<DraftView> {
        let service = self.pm.service;
        let mut conn = service.db.pool().acquire().await?;
        let row = &self.row;
        let body = body_of(row)?;
        let people = body.people();
        let named: HashMap<UserId, (String, String)> = directory::users(&mut conn, &people)
            .await?
            .into_iter()
            .map(|u| (u.id, (u.display_name, u.email)))
            .collect();
        let emails: HashMap<UserId, String> = named.iter().map(|(id, (_, e))| (*id, e.clone())).collect();
        let mut values: BTreeMap<String, String> = body.form_values(&emails).into_iter().collect();
        let home = catalog::catalog(&mut conn, row.catalog).await?.ok_or_else(|| DomainError::not_found("catalog"))?;
        let catalog_name = home.name.clone();
        let roles: Vec<Choice> = catalog::role_choices(&mut conn, row.catalog)
            .await?
            .into_iter()
            .map(|(id, resource, role, system)| Choice {
                id: id.0,
                name: format!("{role} of {resource}"),
                detail: system,
            })
            .collect();
        let mut packages: Vec<Choice> = catalog::packages_in(&mut conn, row.catalog)
            .await?
            .into_iter()
            .filter(|p| Some(p.id) != row.package)
            .map(|p| Choice { id: p.id.0, name: p.name, detail: String::new() })
            .collect();
        // A rule the package has with another catalog's package is offered too (unticking it
        // takes it back); no other package of another catalog is ever named here.
        if let Some(package) = row.package {
            for (id, name) in catalog::sod_rules(&mut conn, package).await?.incompatible_packages {
                if !packages.iter().any(|c| c.id == id.0) {
                    packages.push(Choice { id: id.0, name, detail: "another catalog".into() });
                }
            }
        }
        let mut groups: Vec<Choice> = directory::group_names(&mut conn)
            .await?
            .into_iter()
            .map(|(id, name)| Choice { id: id.0, name, detail: String::new() })
            .collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        let orgs: Vec<Choice> = directory::connected_orgs(&mut conn)
            .await?
            .into_iter()
            .map(|o| Choice { id: o.id.0, name: o.name, detail: o.domain })
            .collect();
        // What the form keeps but cannot show, in words beside its "keep" box.
        let kept: Vec<(String, String)> = values
            .iter()
            .filter_map(|(k, v)| k.strip_suffix("_kept").map(|prefix| (prefix.to_owned(), v.clone())))
            .collect();
        for (prefix, json) in kept {
            if let Ok(kept) = serde_json::from_str::<draft::Kept>(&json) {
                let first = if prefix == "review" { "reviewers" } else { "approved by" };
                let parts = [(first, &kept.primary), ("fallback", &kept.fallback), ("alternates", &kept.escalation)];
                let text: Vec<String> = parts
                    .iter()
                    .filter(|(_, specs)| !specs.is_empty())
                    .map(|(what, specs)| format!("{what}: {}", approvers(specs, &groups, &named)))
                    .collect();
                values.insert(format!("{prefix}_kept_text"), text.join("; "));
            }
        }
        let step = step.or_else(|| WizardStep::parse(&row.step)).unwrap_or(WizardStep::Basics);
        let (summary, impact, what_if, who_may_request) = if step == WizardStep::Review {
            let summary = summarize(&body, mode_of(row), &roles, &packages, &groups, &orgs, &named);
            let impact = match (row.package, row.policy) {
                (Some(pkg), Some(pol)) => impact_of(&mut conn, &body, pkg, pol, &roles).await?,
                _ => vec![],
            };
            // Who the rule would give the package to and take it from, computed as saving
            // will apply it (a package not made yet is held by nobody).
            // (Only for administrators, who alone set rules: a what-if lists people.)
            let what_if = match body.policy.auto_rule.as_deref() {
                Some(source) if service.administrator(self.pm.actor).is_ok() => {
                    let rule = crate::domain::rule::Rule::parse(source)?;
                    let package = row.package.unwrap_or(PackageId(0));
                    let people = crate::store::birthright::people(&mut conn, None).await?;
                    let diff = service.rule_diff(&mut conn, (package, row.policy), &rule, &people, None).await?;
                    Some(WhatIf {
                        fingerprint: diff.fingerprint(),
                        gains: diff.gains.into_iter().map(|(_, name)| name).collect(),
                        losses: diff.losses.into_iter().map(|(_, _, name)| name).collect(),
                        blocked: diff.blocked.into_iter().map(|(_, name, why)| format!("{name}: {why}")).collect(),
                    })
                }
                _ => None,
            };
            let who_may_request = requestors_what_if(&mut conn, row, &home, &body.policy).await?;
            (summary, impact, what_if, who_may_request)
        } else {
            (vec![], vec![], None, None)
        };
        Ok(DraftView {
            id: row.id,
            catalog_id: row.catalog.0,
            catalog: catalog_name,
            mode: mode_of(row),
            package_id: row.package.map(|p| p.0),
            step,
            updated_at: row.updated_at,
            values,
            roles,
            packages,
            groups,
            orgs,
            summary,
            impact,
            what_if,
            who_may_request,
        })
    }
}

/// Who could ask for the package, by any of its policies, before and after the draft's policy
/// is saved (a new package: nobody before): those who newly could, and those who no longer
/// could. `None` when who can request under the policy does not change.
async fn requestors_what_if(
    conn: &mut Conn,
    row: &drafts::DraftRow,
    home: &crate::domain::model::Catalog,
    new: &crate::domain::policy::Policy,
) -> DomainResult<Option<WhatIf>> {
    use crate::domain::eligibility::{may_request, may_see_catalog, RequestorFacts};
    let current = match row.package {
        Some(p) => catalog::policies_of(conn, &[p]).await?,
        None => vec![],
    };
    let edited = row.policy.and_then(|id| current.iter().find(|p| p.id == id));
    let asks = |p: &crate::domain::policy::Policy| (p.scope, p.requestors.clone(), p.enabled);
    if edited.is_some_and(|old| asks(old) == asks(new)) || (edited.is_none() && new.scope == RequestorScope::Nobody) {
        return Ok(None);
    }
    let mut after: Vec<crate::domain::policy::Policy> =
        current.iter().filter(|p| Some(p.id) != row.policy).cloned().collect();
    after.push(new.clone());
    let (mut gains, mut losses) = (Vec::new(), Vec::new());
    for (user, groups, org_configured) in crate::store::birthright::requestors(conn).await? {
        let facts = RequestorFacts { user: &user, groups: &groups, org_configured };
        let sees = may_see_catalog(&user, home);
        let could = sees && current.iter().any(|p| may_request(&facts, p));
        let can = sees && after.iter().any(|p| may_request(&facts, p));
        let name = format!("{} ({})", user.display_name, user.email);
        match (could, can) {
            (false, true) => gains.push(name),
            (true, false) => losses.push(name),
            _ => {}
        }
    }
    Ok(Some(WhatIf { gains, losses, blocked: vec![], fingerprint: String::new() }))
}

/// Everything a draft names still exists: people, groups, organizations (picked when the
/// step was saved, perhaps gone since).
/// Everyone and everything a policy names (and the groups a package is incompatible with)
/// still there: people active, groups and connected organizations existing. A field error
/// naming the first that is not, with the builder's field for it.
pub(super) async fn check_references(
    conn: &mut Conn,
    p: &crate::domain::policy::Policy,
    incompatible_groups: &[GroupId],
) -> DomainResult<()> {
    let reviewers: Vec<ApproverSpec> = match &p.review {
        ReviewSettings::Recurring { reviewers, fallback, .. } => reviewers.iter().chain(fallback).copied().collect(),
        ReviewSettings::Off => vec![],
    };
    let approvers = p.approval.stages.iter().flat_map(|s| s.primary.iter().chain(&s.fallback).chain(&s.escalation));
    // Each thing named, with the field (and so the step) that names it.
    let mut named: Vec<(&str, Option<UserId>, Option<GroupId>)> = p
        .requestors
        .iter()
        .filter_map(|r| match r {
            RequestorRef::User(u) => Some(("people", Some(*u), None)),
            RequestorRef::Group(g) => Some(("requestors", None, Some(*g))),
            RequestorRef::Org(_) => None,
        })
        .collect();
    for (field, specs) in [("approval", approvers.collect::<Vec<_>>()), ("review_people", reviewers.iter().collect())] {
        named.extend(specs.into_iter().filter_map(|s| match s {
            ApproverSpec::User { id } => Some((field, Some(*id), None)),
            ApproverSpec::Group { id } => Some((field, None, Some(*id))),
            _ => None,
        }));
    }
    named.extend(incompatible_groups.iter().map(|g| ("roles", None, Some(*g))));
    let people: Vec<UserId> = named.iter().filter_map(|(_, u, _)| *u).collect();
    let active = directory::active_among(conn, &people).await?;
    let groups = directory::group_names(conn).await?;
    for (field, user, group) in &named {
        if let Some(u) = user.filter(|u| !active.contains(u)) {
            return Err(DomainError::invalid(field, format!("person {u} is no longer active: name someone else")));
        }
        if let Some(g) = group.filter(|g| !groups.contains_key(g)) {
            return Err(DomainError::invalid(field, format!("group {g} no longer exists")));
        }
    }
    let orgs = directory::connected_orgs(conn).await?;
    for r in &p.requestors {
        if let RequestorRef::Org(o) = r {
            if !orgs.iter().any(|x| x.id == *o) {
                return Err(DomainError::invalid("orgs", format!("connected organization {o} no longer exists")));
            }
        }
    }
    Ok(())
}

fn names_of(ids: impl Iterator<Item = i64>, choices: &[Choice]) -> String {
    let names: Vec<String> = ids
        .map(|id| choices.iter().find(|c| c.id == id).map_or_else(|| format!("#{id}"), |c| c.name.clone()))
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn approvers(specs: &[ApproverSpec], groups: &[Choice], people: &HashMap<UserId, (String, String)>) -> String {
    let words: Vec<String> = specs
        .iter()
        .map(|s| match s {
            ApproverSpec::User { id } => people.get(id).map_or_else(|| format!("person {id}"), |(n, _)| n.clone()),
            ApproverSpec::Group { id } => format!("members of {}", names_of(std::iter::once(id.0), groups)),
            ApproverSpec::Manager => "the requester's manager".into(),
            ApproverSpec::CatalogOwners => "the catalog's owners".into(),
            ApproverSpec::Sponsors => "the requester's sponsors".into(),
        })
        .collect();
    words.join(", ")
}

/// What the Review step lists, in the steps' order.
fn summarize(
    body: &PackageDraft,
    mode: DraftMode,
    roles: &[Choice],
    packages: &[Choice],
    groups: &[Choice],
    orgs: &[Choice],
    people: &HashMap<UserId, (String, String)>,
) -> Vec<(String, String)> {
    let p = &body.policy;
    let mut out = vec![(
        "Package".to_owned(),
        format!("{}{}", body.name, if body.hidden { " (hidden: found by link only)" } else { "" }),
    )];
    if !body.description.is_empty() {
        out.push(("Description".into(), body.description.clone()));
    }
    out.push(("Resource roles".into(), names_of(body.roles.iter().map(|r| r.0), roles)));
    if mode != DraftMode::NewPolicy {
        out.push((
            "Incompatible with".into(),
            format!(
                "packages: {}; groups: {}",
                names_of(body.incompatible_packages.iter().map(|p| p.0), packages),
                names_of(body.incompatible_groups.iter().map(|g| g.0), groups)
            ),
        ));
    }
    out.push(("Policy".into(), p.name.clone()));
    let who = match p.scope {
        RequestorScope::Nobody => "nobody (direct assignment only)".to_owned(),
        RequestorScope::AllMembers => "all members".to_owned(),
        RequestorScope::AllExternals => "all external users of configured organizations".to_owned(),
        RequestorScope::Specific | RequestorScope::ConnectedOrgs => p
            .requestors
            .iter()
            .map(|r| match r {
                RequestorRef::User(u) => people.get(u).map_or_else(|| format!("person {u}"), |(n, _)| n.clone()),
                RequestorRef::Group(g) => format!("members of {}", names_of(std::iter::once(g.0), groups)),
                RequestorRef::Org(o) => format!("guests of {}", names_of(std::iter::once(o.0), orgs)),
            })
            .collect::<Vec<_>>()
            .join(", "),
    };
    let extras = [
        (p.justification_required, "a justification is required"),
        (p.on_behalf_allowed, "managers may ask for their reports"),
    ];
    let extras: Vec<&str> = extras.iter().filter(|(on, _)| *on).map(|(_, s)| *s).collect();
    out.push(("Who can request".into(), if extras.is_empty() { who } else { format!("{who}; {}", extras.join("; ")) }));
    if p.approval.stages.is_empty() {
        out.push(("Approval".into(), "none: access is granted on request".into()));
    }
    for (i, s) in p.approval.stages.iter().enumerate() {
        let mut text = format!("{}; {} days to decide", approvers(&s.primary, groups, people), s.timeout_days);
        if let Some(days) = s.remind_after_days {
            text.push_str(&format!(", reminded after {days}"));
        }
        if !s.fallback.is_empty() {
            text.push_str(&format!("; fallback: {}", approvers(&s.fallback, groups, people)));
        }
        text.push_str(&match s.on_timeout {
            crate::domain::policy::OnTimeout::Expire => "; then the request expires".to_owned(),
            crate::domain::policy::OnTimeout::Escalate => {
                format!("; then it goes to {}", approvers(&s.escalation, groups, people))
            }
        });
        if s.justification_required {
            text.push_str("; approvers give a reason");
        }
        out.push((format!("Approval stage {}", i + 1), text));
    }
    let mut life = p.expiration.describe();
    if p.schedule_allowed {
        life.push_str(&format!("; requesters pick dates, starting at most {} days ahead", p.max_lead_days));
    }
    if p.extension_allowed {
        life.push_str(if p.extension_needs_approval {
            "; extensions allowed, with approval"
        } else {
            "; extensions allowed without approval"
        });
    }
    if p.expiration == Expiration::Never && !p.extension_allowed {
        life.push_str("; no extensions needed");
    }
    out.push(("Lifecycle".into(), life));
    out.push((
        "Access reviews".into(),
        match &p.review {
            ReviewSettings::Off => "off".into(),
            ReviewSettings::Recurring {
                frequency, reviewers, self_review, duration_days, starts_on, fallback, ..
            } => {
                let mut said = format!(
                    "{frequency:?}, by {}, {duration_days} days each",
                    if *self_review {
                        "the people themselves".to_owned()
                    } else {
                        approvers(reviewers, groups, people)
                    }
                )
                .to_lowercase();
                if !fallback.is_empty() {
                    said.push_str(&format!(" (without a manager: {})", approvers(fallback, groups, people)));
                }
                if let Some(day) = starts_on {
                    said.push_str(&format!(", from {day}"));
                }
                said
            }
        },
    ));
    let questions: Vec<String> = p
        .questions
        .iter()
        .map(|q| {
            let kind = match &q.kind {
                QuestionKind::Text { .. } => "text".to_owned(),
                QuestionKind::Choice { options } => format!("one of: {}", options.join(" / ")),
            };
            format!("{} ({}{})", q.prompt, kind, if q.required { ", required" } else { "" })
        })
        .collect();
    out.push(("Questions".into(), if questions.is_empty() { "none".into() } else { questions.join("; ") }));
    out
}

/// What saving an edit does: which parts change, and the requests waiting under the policy
/// (they keep the stages they were filed under).
async fn impact_of(
    conn: &mut Conn,
    body: &PackageDraft,
    package: PackageId,
    policy: PolicyId,
    role_names: &[Choice],
) -> DomainResult<Vec<String>> {
    let Some(current) = catalog::policy(conn, policy).await? else {
        return Err(DomainError::not_found("policy"));
    };
    let now_roles: Vec<i64> =
        catalog::package_roles(conn, &[package]).await?.into_iter().map(|(_, r)| r.id.0).collect();
    let added: Vec<i64> = body.roles.iter().map(|r| r.0).filter(|r| !now_roles.contains(r)).collect();
    let removed: Vec<i64> = now_roles.iter().copied().filter(|r| !body.roles.iter().any(|x| x.0 == *r)).collect();
    let rules = catalog::sod_rules(conn, package).await?;
    let mut now_rules: (Vec<PackageId>, Vec<GroupId>) = (
        rules.incompatible_packages.iter().map(|(id, _)| *id).collect(),
        rules.incompatible_groups.iter().map(|(id, _)| *id).collect(),
    );
    now_rules.0.sort_unstable();
    now_rules.1.sort_unstable();
    let mut new_rules = (body.incompatible_packages.clone(), body.incompatible_groups.clone());
    new_rules.0.sort_unstable();
    new_rules.1.sort_unstable();
    let new = &body.policy;
    let parts = [
        (current.name != new.name || current.description != new.description, "the policy's name"),
        (
            (current.scope, &current.requestors, current.justification_required, current.on_behalf_allowed)
                != (new.scope, &new.requestors, new.justification_required, new.on_behalf_allowed),
            "who can request",
        ),
        (draft::normalized(&current).approval != draft::normalized(new).approval, "approval"),
        (
            (current.expiration, current.schedule_allowed, current.max_lead_days, current.extension_allowed)
                != (new.expiration, new.schedule_allowed, new.max_lead_days, new.extension_allowed)
                || current.extension_needs_approval != new.extension_needs_approval
                || draft::normalized(&current).review != draft::normalized(new).review,
            "lifecycle",
        ),
        (current.questions != new.questions, "questions"),
        (
            now_rules != new_rules,
            "separation of duties (people already holding both keep them; new requests are checked)",
        ),
    ];
    let changed: Vec<&str> = parts.iter().filter(|(c, _)| *c).map(|(_, w)| *w).collect();
    let mut out = vec![if changed.is_empty() {
        "The policy's settings stay as they are.".to_owned()
    } else {
        format!("Changes: {}.", changed.join(", "))
    }];
    if !added.is_empty() || !removed.is_empty() {
        let mut what = Vec::new();
        if !added.is_empty() {
            what.push(format!("adds {}", names_of(added.iter().copied(), role_names)));
        }
        if !removed.is_empty() {
            what.push(format!("takes out {}", names_of(removed.iter().copied(), role_names)));
        }
        let holders = crate::store::role_sync::holders(conn, package).await?;
        out.push(format!(
            "Resource roles: {}. {}",
            what.join("; "),
            match holders {
                0 => "Nobody holds this package yet.".to_owned(),
                n => format!(
                    "The {n} {} holding this package {} brought in line in the background (the package's page shows progress): a role taken out stays with anyone another assignment gives it to.",
                    if n == 1 { "person" } else { "people" },
                    if n == 1 { "is" } else { "are" },
                ),
            }
        ));
    }
    if current.version != new.version {
        out.push("Someone changed this policy after you began; saving will ask you to start again from it.".into());
    }
    let waiting = crate::store::requests::pending_under_policy(conn, package, policy).await?;
    out.push(match waiting {
        0 => "No request is waiting under this policy.".to_owned(),
        n => format!(
            "{n} request{} waiting for approval under this policy keep{} the stages {} filed under; new requests follow the new settings.",
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" },
            if n == 1 { "it was" } else { "they were" },
        ),
    });
    out.push("Access already granted keeps its end date; the new lifecycle applies to new and extended access.".into());
    Ok(out)
}
