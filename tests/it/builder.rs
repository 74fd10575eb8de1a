//! The access package builder (issue 11 point 2) through the service, on SQLite and
//! PostgreSQL: a package built step by step is requested, approved through both stages and
//! delivered; drafts are their authors' alone and keep every saved step; a refused step saves
//! nothing; two "create" clicks make one package; an edit shows what it does to waiting
//! requests, leaves them their stages, and refuses to overwrite a change made meanwhile; an
//! edit of a package's resource roles reaches everyone holding it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use crate::common;
use common::{ask, World};
use quartermaster::domain::ids::*;
use quartermaster::domain::model::Role;
use quartermaster::domain::policy::Answer;
use quartermaster::domain::request::{Decision, RequestState};
use quartermaster::domain::DomainError;
use quartermaster::service::drafts::{DraftStart, Go};
use quartermaster::states::{DraftMode, WizardStep};
use quartermaster::store::Backend;

on_both_databases!(
    an_edit_changes_the_roles_of_everyone_holding_the_package,
    a_role_sync_started_over_by_another_edit_reaches_everyone_of_a_disabled_package,
    an_edit_changes_separation_of_duties_rules_audited,
    an_edit_that_changes_nothing_keeps_everything_the_form_cannot_show,
    a_built_package_is_requested_approved_in_two_stages_and_delivered,
    drafts_are_their_authors_alone_and_keep_every_saved_step,
    an_edit_shows_its_impact_and_waiting_requests_keep_their_stages,
);

fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

async fn engineering(w: &World) -> CatalogId {
    CatalogId(
        sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Engineering'")
            .fetch_one(w.db().pool())
            .await
            .unwrap(),
    )
}

async fn count(w: &World, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(w.db().pool()).await.unwrap()
}

async fn a_built_package_is_requested_approved_in_two_stages_and_delivered(backend: Backend) {
    let w = World::new(backend).await;
    let eng = engineering(&w).await;
    let linus = w.actor(w.ids.linus).await;
    let id = w.service.package_manager(&linus, eng).unwrap().start_draft(DraftStart::New).await.unwrap();
    // Each operation opens the draft anew, as each request does.
    let draft = async || w.service.draft(&linus, id).await.unwrap();

    // The roles step offers the catalog's resource roles; pick two.
    let view = draft().await.view(Some(WizardStep::Roles)).await.unwrap();
    assert!(view.roles.len() >= 2, "Engineering offers resource roles: {:?}", view.roles);
    let (r1, r2) = (format!("role_{}", view.roles[0].id), format!("role_{}", view.roles[1].id));
    let steps = [
        (
            WizardStep::Basics,
            fields(&[("name", "Data Science Lab"), ("description", "GPUs"), ("policy_name", "Engineers")]),
        ),
        (WizardStep::Roles, fields(&[(&r1, "on"), (&r2, "on")])),
        (WizardStep::Requestors, fields(&[("scope", "all_members"), ("justification_required", "on")])),
        (
            WizardStep::Approval,
            fields(&[
                ("stages", "2"),
                ("s1_approver", "people"),
                ("s1_people", "hana@quartermaster.example"),
                ("s1_timeout", "7"),
                ("s2_approver", "people"),
                ("s2_people", "KAI@quartermaster.example"),
                ("s2_timeout", "3"),
            ]),
        ),
        (WizardStep::Lifecycle, fields(&[("expires", "after_days"), ("exp_days", "30"), ("review", "off")])),
        (WizardStep::Questions, fields(&[("q1_prompt", "Which project?"), ("q1_required", "on")])),
    ];
    for (step, f) in &steps {
        let to = draft().await.save_step(*step, Go::Next, f).await.unwrap();
        assert_eq!(to, step.next());
        // A reload shows the step as saved: the draft remembers where the author is.
        let again = w.service.draft(&linus, id).await.unwrap().view(None).await.unwrap();
        assert_eq!(again.step, step.next());
    }
    let review = draft().await.view(Some(WizardStep::Review)).await.unwrap();
    let said = |what: &str| review.summary.iter().find(|(w, _)| w == what).map(|(_, h)| h.clone()).unwrap_or_default();
    assert_eq!(said("Package"), "Data Science Lab");
    assert!(said("Approval stage 1").contains("Hana"), "{:?}", review.summary);
    assert!(said("Approval stage 2").contains("Kai"), "{:?}", review.summary);
    assert!(said("Lifecycle").contains("30 days"));
    assert!(said("Questions").contains("Which project? (text, required)"));

    // Create, as the Review step shows it (a save since would be refused).
    let package = draft().await.finish(Some(review.updated_at)).await.unwrap();
    assert_eq!(count(&w, "SELECT COUNT(*) FROM package_drafts").await, 0, "the draft is gone once used");
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE action IN ('package.created', 'policy.created')")
            .fetch_all(w.db().pool())
            .await
            .unwrap();
    assert_eq!(actions, ["package.created", "policy.created"], "made in one audited transaction");

    // Maya requests it, answering the required question; Hana, then Kai, approve.
    let maya = w.actor(w.ids.maya).await;
    let unanswered = w.service.submit_request(&maya, ask(package, "model training")).await.unwrap_err();
    assert!(matches!(unanswered, DomainError::Invalid { .. }), "the required question is asked: {unanswered:?}");
    let mut new = ask(package, "model training");
    let q = review.values.get("q1_id").cloned().unwrap_or_else(|| "q1".into());
    new.answers = vec![Answer { question_id: q, value: "Forecasting".into() }];
    let out = w.service.submit_request(&maya, new).await.unwrap();
    assert_eq!(out.state, RequestState::PendingApproval);
    let kai = w.actor(w.ids.kai).await;
    assert!(w.service.decide(&kai, out.request, Decision::Approve, "").await.is_err(), "stage 2 waits for stage 1");
    let hana = w.actor(w.ids.hana).await;
    w.service.decide(&hana, out.request, Decision::Approve, "").await.unwrap();
    w.service.decide(&kai, out.request, Decision::Approve, "").await.unwrap();
    for _ in 0..10 {
        w.service.deliver_pending(&quartermaster::domain::authz::Operator::Workers, 50).await.unwrap();
    }
    let (state, start, end): (String, i64, Option<i64>) =
        sqlx::query_as("SELECT state, start_at, end_at FROM assignments WHERE user_id = $1 AND package_id = $2")
            .bind(w.ids.maya.0)
            .bind(package.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap();
    assert_eq!(state, "delivered");
    assert_eq!(end.map(|e| e - start), Some(30 * 86_400_000), "ends 30 days after it was granted");
    let grants = count(
        &w,
        &format!(
            "SELECT COUNT(*) FROM grants g JOIN assignments a ON a.id = g.assignment_id WHERE a.package_id = {}",
            package.0
        ),
    )
    .await;
    assert_eq!(grants, 2, "both resource roles granted");
}

async fn drafts_are_their_authors_alone_and_keep_every_saved_step(backend: Backend) {
    let w = World::new(backend).await;
    let eng = engineering(&w).await;
    let linus = w.actor(w.ids.linus).await;
    let grace = w.actor(w.ids.grace).await;
    w.service.catalog_owner(&grace, eng).unwrap().grant_role(w.ids.jamal, Role::AccessPackageManager).await.unwrap();
    let jamal = w.actor(w.ids.jamal).await;
    let id = w.service.package_manager(&linus, eng).unwrap().start_draft(DraftStart::New).await.unwrap();

    // Nobody else opens it: not a package manager of the catalog, not an administrator, not
    // someone with no role (each is told it does not exist).
    for other in [&jamal, &grace, &w.actor(w.ids.maya).await] {
        assert!(matches!(w.service.draft(other, id).await, Err(DomainError::NotFound(_))));
    }
    // Someone without the role cannot start one.
    let maya = w.actor(w.ids.maya).await;
    assert!(w.service.package_manager(&maya, eng).is_err());

    let draft = async || w.service.draft(&linus, id).await.unwrap();
    let body = || async {
        sqlx::query_scalar::<_, String>("SELECT body FROM package_drafts WHERE id = $1")
            .bind(id)
            .fetch_one(w.db().pool())
            .await
            .unwrap()
    };
    // A refused step names its field and saves nothing.
    let before = body().await;
    let refused = draft()
        .await
        .save_step(
            WizardStep::Approval,
            Go::Next,
            &fields(&[
                ("stages", "1"),
                ("s1_approver", "people"),
                ("s1_people", "nobody@nowhere.example"),
                ("s1_timeout", "3"),
            ]),
        )
        .await
        .unwrap_err();
    assert!(matches!(&refused, DomainError::Invalid { field: Some(f), .. } if f == "s1_people"), "{refused:?}");
    assert_eq!(body().await, before);

    // Two tabs: each saves its own step onto what the other saved.
    let (basics, lifecycle) = (
        fields(&[("name", "Two Tabs"), ("policy_name", "Everyone")]),
        fields(&[("expires", "after_hours"), ("exp_hours", "8")]),
    );
    let (a, b) = tokio::join!(async { draft().await.save_step(WizardStep::Basics, Go::Next, &basics).await }, async {
        draft().await.save_step(WizardStep::Lifecycle, Go::Next, &lifecycle).await
    },);
    a.unwrap();
    b.unwrap();
    let view = draft().await.view(Some(WizardStep::Review)).await.unwrap();
    assert_eq!(view.values.get("name").map(String::as_str), Some("Two Tabs"));
    assert_eq!(view.values.get("exp_hours").map(String::as_str), Some("8"));

    // Create refuses a draft missing its roles, naming the step's field.
    let missing = draft().await.finish(None).await.unwrap_err();
    assert!(matches!(&missing, DomainError::Invalid { field: Some(f), .. } if f == "roles"), "{missing:?}");
    let roles = draft().await.view(Some(WizardStep::Roles)).await.unwrap().roles;
    draft()
        .await
        .save_step(WizardStep::Roles, Go::Next, &fields(&[(&format!("role_{}", roles[0].id), "on")]))
        .await
        .unwrap();

    // Reviewed, then changed in another tab: Create is refused until it is reviewed again.
    let reviewed = draft().await.view(Some(WizardStep::Review)).await.unwrap().updated_at;
    w.clock.advance(chrono::Duration::seconds(5));
    draft().await.save_step(WizardStep::Basics, Go::Next, &basics).await.unwrap();
    let stale = draft().await.finish(Some(reviewed)).await.unwrap_err();
    assert!(matches!(stale, DomainError::Conflict(_)), "{stale:?}");

    // Two "create" clicks at once (two tabs): one package, the other told the draft is gone.
    let packages_before = count(&w, "SELECT COUNT(*) FROM access_packages").await;
    let (tab1, tab2) = (draft().await, draft().await);
    let (a, b) = tokio::join!(tab1.finish(None), tab2.finish(None));
    let made = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(made, 1, "exactly one create wins: {a:?} {b:?}");
    assert!([a, b].into_iter().any(|r| matches!(r, Err(DomainError::NotFound(_)))));
    assert_eq!(count(&w, "SELECT COUNT(*) FROM access_packages").await, packages_before + 1);

    // A role taken away ends the work: the draft no longer opens.
    let id = w.service.package_manager(&jamal, eng).unwrap().start_draft(DraftStart::New).await.unwrap();
    w.service
        .catalog_owner(&grace, eng)
        .unwrap()
        .revoke_role(w.ids.jamal, quartermaster::views::CatalogRole::AccessPackageManager)
        .await
        .unwrap();
    let jamal = w.actor(w.ids.jamal).await;
    assert!(w.service.draft(&jamal, id).await.is_err());
    // ... though its author may still throw it away (nobody else may).
    assert!(matches!(w.service.discard_draft(&linus, id).await, Err(DomainError::NotFound(_))));
    assert_eq!(w.service.discard_draft(&jamal, id).await.unwrap(), eng);
    assert_eq!(count(&w, &format!("SELECT COUNT(*) FROM package_drafts WHERE id = {id}")).await, 0);
}

async fn an_edit_shows_its_impact_and_waiting_requests_keep_their_stages(backend: Backend) {
    let w = World::new(backend).await;
    let linus = w.actor(w.ids.linus).await;
    let omar = w.actor(w.ids.omar).await;
    // Omar's request for Production Access waits at its first stage.
    let mut prod = ask(w.ids.production_access, "on call");
    prod.answers = vec![Answer { question_id: "service".into(), value: "Payments API".into() }];
    let waiting = w.service.submit_request(&omar, prod).await.unwrap().request;
    let stages_before: String = sqlx::query_scalar("SELECT stages FROM requests WHERE id = $1")
        .bind(waiting.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    let policy = first_policy(&w, w.ids.production_access).await;
    let original = quartermaster::store::catalog::policy(&mut w.db().pool().acquire().await.unwrap(), policy)
        .await
        .unwrap()
        .unwrap();
    let pm = w.service.package_manager_of(&linus, w.ids.production_access).await.unwrap();
    let id = pm.start_draft(DraftStart::Edit(w.ids.production_access, policy)).await.unwrap();
    let stale = pm.start_draft(DraftStart::Edit(w.ids.production_access, policy)).await.unwrap();
    let draft = async || w.service.draft(&linus, id).await.unwrap();
    assert_eq!(draft().await.mode(), DraftMode::Edit);
    // The edit starts from the policy as it is: its steps show its settings.
    let basics = draft().await.view(Some(WizardStep::Approval)).await.unwrap();
    let stages = basics.values.get("stages").cloned().unwrap();
    assert_ne!(stages, "0");
    draft()
        .await
        .save_step(
            WizardStep::Approval,
            Go::Next,
            &fields(&[("stages", "1"), ("s1_approver", "catalog_owners"), ("s1_timeout", "5")]),
        )
        .await
        .unwrap();
    let review = draft().await.view(Some(WizardStep::Review)).await.unwrap();
    let impact = review.impact.join(" ");
    assert!(impact.contains("Changes: approval."), "{impact}");
    assert!(
        impact.contains("1 request waiting for approval under this policy keeps the stages it was filed under"),
        "{impact}"
    );
    draft().await.finish(None).await.unwrap();
    let after = quartermaster::store::catalog::policy(&mut w.db().pool().acquire().await.unwrap(), policy)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.approval.stages.len(), 1);
    assert_eq!((&after.expiration, &after.questions), (&original.expiration, &original.questions), "the rest is kept");
    let stages_now: String = sqlx::query_scalar("SELECT stages FROM requests WHERE id = $1")
        .bind(waiting.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(stages_now, stages_before, "the waiting request keeps its stages");
    // The other draft began before this change: saving it would overwrite it, so it is refused.
    let other = async || w.service.draft(&linus, stale).await.unwrap();
    let conflict = other().await.finish(None).await.unwrap_err();
    assert!(matches!(conflict, DomainError::Conflict(_)), "{conflict:?}");
    assert!(
        other()
            .await
            .view(Some(WizardStep::Review))
            .await
            .unwrap()
            .impact
            .iter()
            .any(|l| l.contains("changed this policy after you began")),
        "the review says so before saving"
    );
}

/// Production Access's policy has what the builder's form cannot show (the catalog's owners as
/// stage 1's fallback, a group approving stage 2): stepping through an edit with Next, changing
/// nothing, keeps all of it — no change, no audit event, no new version.
async fn an_edit_that_changes_nothing_keeps_everything_the_form_cannot_show(backend: Backend) {
    let w = World::new(backend).await;
    let linus = w.actor(w.ids.linus).await;
    let policy = first_policy(&w, w.ids.production_access).await;
    let read = || async {
        quartermaster::store::catalog::policy(&mut w.db().pool().acquire().await.unwrap(), policy)
            .await
            .unwrap()
            .unwrap()
    };
    let before = read().await;
    assert!(!before.approval.stages[0].fallback.is_empty(), "the demo policy has a fallback");
    let pm = w.service.package_manager_of(&linus, w.ids.production_access).await.unwrap();
    let id = pm.start_draft(DraftStart::Edit(w.ids.production_access, policy)).await.unwrap();
    let draft = async || w.service.draft(&linus, id).await.unwrap();
    for step in WizardStep::ALL {
        // What the page shows is what it posts back (the form's own fields, unchanged).
        let shown: HashMap<String, String> = draft()
            .await
            .view(Some(*step))
            .await
            .unwrap()
            .values
            .into_iter()
            .filter(|(k, _)| !k.ends_with("_text"))
            .collect();
        draft().await.save_step(*step, Go::Next, &shown).await.unwrap();
    }
    let events = count(&w, "SELECT COUNT(*) FROM audit_events").await;
    draft().await.finish(None).await.unwrap();
    let after = read().await;
    assert_eq!(after, before, "nothing changed, not even the version");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM audit_events").await, events, "and nothing is recorded");
}

/// Payments Approver cannot be held with Invoice Processing. Finance's owner edits it: unticks
/// that rule and ticks a group instead; saving takes one back and adds the other, each
/// audited, and the Review step said so first.
async fn an_edit_changes_separation_of_duties_rules_audited(backend: Backend) {
    let w = World::new(backend).await;
    let elena = w.actor(w.ids.elena).await; // owner of Finance
    let pkg = w.ids.payments_approver;
    let policy = first_policy(&w, pkg).await;
    let pm = w.service.package_manager_of(&elena, pkg).await.unwrap();
    let id = pm.start_draft(DraftStart::Edit(pkg, policy)).await.unwrap();
    let draft = async || w.service.draft(&elena, id).await.unwrap();
    let roles = draft().await.view(Some(WizardStep::Roles)).await.unwrap();
    let invoices = format!("sod_package_{}", w.ids.invoice_processing.0);
    assert_eq!(roles.values.get(&invoices).map(String::as_str), Some("on"), "the rule is shown ticked");
    let group = roles.groups.first().unwrap().id;
    // Meanwhile someone else adds a rule: the edit, which began before it, leaves it alone.
    let other_group = roles.groups.last().unwrap().id;
    assert_ne!(group, other_group);
    pm.add_incompatibility(pkg, quartermaster::service::Incompatible::Group(GroupId(other_group))).await.unwrap();
    let ticked = fields(&[(&format!("sod_group_{group}"), "on"), ("sod_shown", "on")]);
    draft().await.save_step(WizardStep::Roles, Go::Next, &ticked).await.unwrap();
    let review = draft().await.view(Some(WizardStep::Review)).await.unwrap();
    assert!(review.impact.join(" ").contains("separation of duties"), "{:?}", review.impact);
    draft().await.finish(Some(review.updated_at)).await.unwrap();
    let rules =
        quartermaster::store::catalog::sod_rules(&mut w.db().pool().acquire().await.unwrap(), pkg).await.unwrap();
    assert!(rules.incompatible_packages.is_empty(), "{rules:?}");
    let mut groups: Vec<i64> = rules.incompatible_groups.iter().map(|(g, _)| g.0).collect();
    groups.sort_unstable();
    let mut expected = vec![group, other_group];
    expected.sort_unstable();
    assert_eq!(groups, expected, "the edit's group added, the other's kept");
    for (action, n) in [("package.incompatibility_removed", 1), ("package.incompatibility_added", 2)] {
        let got = count(
            &w,
            &format!("SELECT COUNT(*) FROM audit_events WHERE action = '{action}' AND object_id = {}", pkg.0),
        )
        .await;
        assert_eq!(got, n, "{action}");
    }
}

/// A package's first policy.
async fn first_policy(w: &World, package: PackageId) -> PolicyId {
    PolicyId(
        sqlx::query_scalar("SELECT id FROM policies WHERE package_id = $1 ORDER BY id LIMIT 1")
            .bind(package.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap(),
    )
}

/// A resource role by its resource's and its own name.
async fn role(w: &World, resource: &str, name: &str) -> ResourceRoleId {
    ResourceRoleId(
        sqlx::query_scalar(
            "SELECT rr.id FROM resource_roles rr JOIN resources r ON r.id = rr.resource_id \
             WHERE r.name = $1 AND rr.name = $2",
        )
        .bind(resource)
        .bind(name)
        .fetch_one(w.db().pool())
        .await
        .unwrap(),
    )
}

/// Who is a member of a built-in role, by id.
async fn members(w: &World, role: ResourceRoleId) -> Vec<UserId> {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT user_id FROM builtin_memberships WHERE resource_role_id = $1 ORDER BY user_id")
            .bind(role.0)
            .fetch_all(w.db().pool())
            .await
            .unwrap();
    ids.into_iter().map(UserId).collect()
}

/// The workers' turns until nothing is left: the role syncs, then delivery.
async fn settle(w: &World) {
    use quartermaster::domain::authz::Operator;
    for _ in 0..10 {
        w.service.sync_package_roles(&Operator::Workers, 1000).await.unwrap();
        w.service.deliver_pending(&Operator::Workers, 200).await.unwrap();
    }
}

/// Maya, Omar and Hana hold Developer Tools (GitHub Member, Staging Member); Maya also holds
/// Production Access (Production Operator). Linus, Engineering's owner, edits Developer Tools: GitHub Maintainer and
/// Production Operator in, Staging Member out. Everyone holding it gets the new roles and
/// loses Staging. A second edit takes Production Operator out and puts Staging back: Omar and
/// Hana lose Operator, Maya keeps it through Production Access, and Staging comes back. An
/// edit begun before the first cannot put the old roles back.
async fn an_edit_changes_the_roles_of_everyone_holding_the_package(backend: Backend) {
    let w = World::new(backend).await;
    let eng = engineering(&w).await;
    let linus = w.actor(w.ids.linus).await;
    let (dev, prod) = (w.ids.developer_tools, w.ids.production_access);
    let am = w.service.assignment_manager(&linus, eng).unwrap();
    let dev_policy = first_policy(&w, dev).await;
    for person in [w.ids.maya, w.ids.omar, w.ids.hana] {
        am.assign_directly(person, dev, dev_policy, None, "team").await.unwrap();
    }
    am.assign_directly(w.ids.maya, prod, first_policy(&w, prod).await, None, "on call").await.unwrap();
    settle(&w).await;
    let member = role(&w, "GitHub Developers", "Member").await;
    let maintainer = role(&w, "GitHub Developers", "Maintainer").await;
    let staging = role(&w, "Staging Environment", "Member").await;
    let operator = role(&w, "Production Servers", "Operator").await;
    let holders = {
        let mut h = vec![w.ids.maya, w.ids.omar, w.ids.hana];
        h.sort();
        h
    };
    assert_eq!(members(&w, staging).await, holders, "Developer Tools delivered");
    assert_eq!(members(&w, operator).await, vec![w.ids.maya]);

    let pm = w.service.package_manager(&linus, eng).unwrap();
    let policy = first_policy(&w, dev).await;
    let stale = pm.start_draft(DraftStart::Edit(dev, policy)).await.unwrap();
    let edit = async |roles: &[ResourceRoleId]| {
        let id = pm.start_draft(DraftStart::Edit(dev, policy)).await.unwrap();
        let mut f: Vec<(String, String)> = roles.iter().map(|r| (format!("role_{r}"), "on".to_owned())).collect();
        f.push(("roles_shown".into(), "on".into()));
        let f: HashMap<String, String> = f.into_iter().collect();
        w.service.draft(&linus, id).await.unwrap().save_step(WizardStep::Roles, Go::Next, &f).await.unwrap();
        let review = w.service.draft(&linus, id).await.unwrap().view(Some(WizardStep::Review)).await.unwrap();
        w.service.draft(&linus, id).await.unwrap().finish(Some(review.updated_at)).await.unwrap();
        review.impact.join(" ")
    };
    let impact = edit(&[member, maintainer, operator]).await;
    assert!(impact.contains("Resource roles: adds Maintainer of GitHub Developers, Operator of Production Servers; takes out Member of Staging Environment."), "{impact}");
    assert!(impact.contains("The 3 people holding this package are brought in line"), "{impact}");
    let roles_now = async |w: &World| {
        let mut r: Vec<i64> =
            sqlx::query_scalar("SELECT resource_role_id FROM package_resource_roles WHERE package_id = $1")
                .bind(dev.0)
                .fetch_all(w.db().pool())
                .await
                .unwrap();
        r.sort_unstable();
        r
    };
    let mut expected = vec![member.0, maintainer.0, operator.0];
    expected.sort_unstable();
    assert_eq!(roles_now(&w).await, expected);
    assert_eq!(
        count(
            &w,
            &format!(
                "SELECT COUNT(*) FROM audit_events WHERE action = 'package.roles_changed' AND object_id = {}",
                dev.0
            )
        )
        .await,
        1
    );
    // Nothing reaches the holders until the sync runs: the edit itself stays one small
    // transaction, and the package's page says how many wait.
    assert_eq!(members(&w, maintainer).await, vec![]);
    let page = async || {
        am.package_assignments(dev, &quartermaster::views::AssignmentFilter::default(), None)
            .await
            .unwrap()
            .roles_syncing
    };
    assert_eq!(page().await, Some((3, String::new())));
    settle(&w).await;
    assert_eq!(page().await, None, "done");
    assert_eq!(members(&w, maintainer).await, holders, "everyone holding it got the new role");
    assert_eq!(members(&w, operator).await, holders);
    assert_eq!(members(&w, staging).await, vec![], "and lost the one taken out");
    let states: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT state FROM assignments WHERE package_id = $1 AND state IN ('delivering', 'delivered')",
    )
    .bind(dev.0)
    .fetch_all(w.db().pool())
    .await
    .unwrap();
    assert_eq!(states, ["delivered"], "each holder's access is delivered again");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'grants.synced'").await, 3);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM audit_events WHERE action = 'package.roles_synced'").await, 1);
    assert_eq!(count(&w, "SELECT COUNT(*) FROM package_role_syncs").await, 0, "the sync is done");

    // The edit begun before would put the old roles back: refused, with what to do.
    let conflict = w.service.draft(&linus, stale).await.unwrap().finish(None).await.unwrap_err();
    assert!(matches!(conflict, DomainError::Conflict(_)), "{conflict:?}");
    assert_eq!(roles_now(&w).await, expected);

    edit(&[member, maintainer, staging]).await;
    settle(&w).await;
    assert_eq!(members(&w, operator).await, vec![w.ids.maya], "kept where Production Access grants it");
    assert_eq!(members(&w, staging).await, holders, "a role put back is granted again");
    let kept: String = sqlx::query_scalar(
        "SELECT g.last_error FROM grants g JOIN assignments a ON a.id = g.assignment_id \
         WHERE a.package_id = $1 AND a.user_id = $2 AND g.resource_role_id = $3",
    )
    .bind(dev.0)
    .bind(w.ids.maya.0)
    .bind(operator.0)
    .fetch_one(w.db().pool())
    .await
    .unwrap();
    assert_eq!(kept, "still held through another assignment");
    // A role taken out before its addition was delivered is never added: the three new grants
    // wait, the role goes, and the waiting additions are withdrawn.
    edit(&[member, maintainer, staging, operator]).await;
    w.service.sync_package_roles(&quartermaster::domain::authz::Operator::Workers, 100).await.unwrap();
    edit(&[member, maintainer, staging]).await;
    settle(&w).await;
    assert_eq!(members(&w, operator).await, vec![w.ids.maya], "the role is not given");
    let withdrawn = count(
        &w,
        &format!(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'add_member' AND resource_role_id = {} \
             AND state = 'done' AND last_error = 'the role was taken out of the package'",
            operator.0
        ),
    )
    .await;
    assert_eq!(withdrawn, 3, "the three waiting additions were withdrawn, not delivered");
    // And the other way round: Staging taken out, its removals queued, then put back before
    // they ran. The memberships stay, and the grants are delivered again, not left removed.
    edit(&[member, maintainer]).await;
    w.service.sync_package_roles(&quartermaster::domain::authz::Operator::Workers, 100).await.unwrap();
    edit(&[member, maintainer, staging]).await;
    settle(&w).await;
    assert_eq!(members(&w, staging).await, holders);
    let grants: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT g.state FROM grants g JOIN assignments a ON a.id = g.assignment_id \
         WHERE a.package_id = $1 AND g.resource_role_id = $2",
    )
    .bind(dev.0)
    .bind(staging.0)
    .fetch_all(w.db().pool())
    .await
    .unwrap();
    assert_eq!(grants, ["delivered"], "each holder's Staging grant is delivered");
}

/// Thirty people hold Developer Tools, which is then disabled (nobody new may request it; who
/// holds it keeps it). An edit adds GitHub Maintainer; one batch of the sync reaches the first
/// holders only, then a second edit replaces every role with Production Operator. The sync
/// starts over from the first holder: in the end all thirty have Operator and nothing else of
/// the package (a disabled package's holders keep it and get what is added to it), nobody has
/// Maintainer, and the sync is gone.
async fn a_role_sync_started_over_by_another_edit_reaches_everyone_of_a_disabled_package(backend: Backend) {
    use quartermaster::domain::authz::Operator;
    use quartermaster::service::role_sync::SYNC_BATCH;
    use quartermaster::store::directory::{self, NewUser};
    let w = World::new(backend).await;
    let eng = engineering(&w).await;
    let linus = w.actor(w.ids.linus).await;
    let dev = w.ids.developer_tools;
    let dev_policy = first_policy(&w, dev).await;
    let am = w.service.assignment_manager(&linus, eng).unwrap();
    let mut people = Vec::new();
    for i in 0..30 {
        let email = format!("dev{i}@quartermaster.example");
        let id = directory::insert_user(
            &mut w.db().pool().acquire().await.unwrap(),
            &NewUser {
                email: &email,
                display_name: &format!("Developer {i}"),
                department: "Engineering",
                job_title: "Engineer",
                manager_id: Some(w.ids.linus),
                kind: quartermaster::domain::model::UserKind::Member,
                connected_org_id: None,
            },
            quartermaster::domain::clock::Clock::now(&w.clock).timestamp_millis(),
        )
        .await
        .unwrap();
        am.assign_directly(id, dev, dev_policy, None, "team").await.unwrap();
        people.push(id);
    }
    settle(&w).await;
    let pm = w.service.package_manager(&linus, eng).unwrap();
    let pkg = quartermaster::store::catalog::package(&mut w.db().pool().acquire().await.unwrap(), dev)
        .await
        .unwrap()
        .unwrap();
    pm.update_package(quartermaster::domain::model::AccessPackage { enabled: false, ..pkg }).await.unwrap();

    let member = role(&w, "GitHub Developers", "Member").await;
    let maintainer = role(&w, "GitHub Developers", "Maintainer").await;
    let staging = role(&w, "Staging Environment", "Member").await;
    let operator = role(&w, "Production Servers", "Operator").await;
    let edit = async |roles: &[ResourceRoleId]| {
        let id = pm.start_draft(DraftStart::Edit(dev, dev_policy)).await.unwrap();
        let mut f: HashMap<String, String> = roles.iter().map(|r| (format!("role_{r}"), "on".to_owned())).collect();
        f.insert("roles_shown".into(), "on".into());
        w.service.draft(&linus, id).await.unwrap().save_step(WizardStep::Roles, Go::Next, &f).await.unwrap();
        w.service.draft(&linus, id).await.unwrap().finish(None).await.unwrap();
    };
    edit(&[member, staging, maintainer]).await;
    assert_eq!(w.service.sync_package_roles(&Operator::Workers, 1).await.unwrap(), 1);
    let waiting =
        format!("SELECT COUNT(*) FROM grants WHERE resource_role_id = {} AND state = 'pending'", maintainer.0);
    assert_eq!(count(&w, &waiting).await, SYNC_BATCH, "one batch reached the first holders");
    // The second edit replaces every role: nothing of what the holders had stays granted.
    edit(&[operator]).await;
    settle(&w).await;

    let mut holders = people.clone();
    holders.sort();
    assert_eq!(members(&w, operator).await, holders, "every holder, the first ones again");
    assert_eq!(members(&w, maintainer).await, vec![], "the role taken out reached nobody");
    for (gone, what) in [(member, "GitHub Member"), (staging, "Staging")] {
        let left: Vec<UserId> = members(&w, gone).await.into_iter().filter(|u| people.contains(u)).collect();
        assert_eq!(left, vec![], "{what} was taken back from every holder");
    }
    let live =
        count(&w, &format!("SELECT COUNT(*) FROM assignments WHERE package_id = {} AND state = 'delivered'", dev.0))
            .await;
    assert_eq!(live, 30, "a disabled package's holders keep it, and what is added to it");
    assert_eq!(count(&w, "SELECT COUNT(*) FROM package_role_syncs").await, 0);
    assert_eq!(
        count(
            &w,
            &format!("SELECT COUNT(*) FROM grants WHERE resource_role_id = {} AND state <> 'removed'", maintainer.0)
        )
        .await,
        0,
        "the first holders' Maintainer grants were taken back"
    );
}
