//! Automatic assignment (issue 13), on SQLite and PostgreSQL: birthright packages follow a
//! person who moves department (their sign-in says so), and a rule's what-if in the builder
//! is exactly what saving it then does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};

use crate::common;
use common::World;
use quartermaster::domain::authz::Operator;
use quartermaster::domain::ids::*;
use quartermaster::domain::policy::{Policy, RequestorScope};
use quartermaster::domain::DomainError;
use quartermaster::service::directory::{AdminBootstrap, ProviderIdentity};
use quartermaster::service::drafts::{DraftStart, Go};
use quartermaster::states::WizardStep;
use quartermaster::store::Backend;

on_both_databases!(
    a_person_moving_department_gains_and_loses_the_right_packages,
    a_rule_s_what_if_is_exactly_what_saving_it_does,
    who_may_ask_is_shown_before_saving_and_saving_does_exactly_that,
);

fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A policy of `package` giving it to everyone `rule` matches, made by Grace.
async fn automatic(w: &World, package: PackageId, name: &str, rule: &str) -> PolicyId {
    let grace = w.actor(w.ids.grace).await;
    let mut policy = Policy::new(package, name, RequestorScope::Nobody, vec![]);
    policy.auto_rule = Some(rule.to_owned());
    w.service.package_manager_of(&grace, package).await.unwrap().create_policy(policy).await.unwrap()
}

/// Who holds `package` now, by name, and how each got it (`system_add`: the rule).
async fn holders(w: &World, package: PackageId) -> BTreeSet<(String, String)> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.display_name, COALESCE(r.kind, '') FROM assignments a JOIN users u ON u.id = a.user_id \
         LEFT JOIN requests r ON r.id = a.request_id WHERE a.package_id = $1 \
         AND a.state IN ('delivering', 'delivered', 'partially_delivered', 'delivery_failed')",
    )
    .bind(package.0)
    .fetch_all(w.db().pool())
    .await
    .unwrap();
    rows.into_iter().collect()
}

fn names(list: &[&str]) -> BTreeSet<(String, String)> {
    list.iter().map(|n| ((*n).to_owned(), "system_add".to_owned())).collect()
}

async fn a_person_moving_department_gains_and_loses_the_right_packages(backend: Backend) {
    let w = World::new(backend).await;
    let ids = &w.ids;
    // Developer Tools for Engineering, Sales CRM for Sales: automatically.
    let dev = automatic(&w, ids.developer_tools, "Engineering (automatic)", r#"department == "Engineering""#).await;
    automatic(&w, ids.sales_crm, "Sales (automatic)", r#"department == "Sales" && kind == "member""#).await;
    // Grace gives Tom (Finance) Developer Tools herself, under the same policy: hers to take back.
    let grace = w.actor(ids.grace).await;
    let am = w.service.assignment_manager_of(&grace, ids.developer_tools).await.unwrap();
    am.assign_directly(ids.tom, ids.developer_tools, dev, None, "helping with the ledger tool").await.unwrap();
    // Omar asked for Developer Tools before: his own request's access is not the rule's.
    let omar = w.actor(ids.omar).await;
    w.service.submit_request(&omar, common::ask(ids.developer_tools, "daily work")).await.unwrap();
    assert_eq!(w.service.apply_rules(&Operator::Workers).await.unwrap(), (6, 0));
    assert_eq!(w.service.apply_rules(&Operator::Workers).await.unwrap(), (0, 0), "once");
    let mut engineering = names(&["Linus Park", "Maya Chen", "Kai Müller"]);
    engineering.insert(("Omar Haddad".into(), "user_add".into()));
    engineering.insert(("Tom Becker".into(), "admin_add".into()));
    assert_eq!(holders(&w, ids.developer_tools).await, engineering);
    assert_eq!(holders(&w, ids.sales_crm).await, names(&["Sofia Rossi", "Jamal Carter", "Priya Nair"]));
    w.service.deliver_pending(&Operator::Workers, 100).await.unwrap();
    let delivered: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM builtin_memberships WHERE user_id = $1")
        .bind(ids.maya.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(delivered, 2, "Maya is in GitHub and staging");

    // Maya moves to Sales: her next sign-in says so, and her access follows at once.
    let mut maya = ProviderIdentity {
        issuer: "https://idp.example".into(),
        subject: "maya-1".into(),
        email: "maya@quartermaster.example".into(),
        email_verified: true,
        display_name: "Maya Chen".into(),
        department: Some("Engineering".into()),
        ..Default::default()
    };
    let rules = AdminBootstrap { link_domains: vec!["quartermaster.example".into()], ..Default::default() };
    w.service.sign_in_from_provider(&maya, &rules).await.unwrap();
    assert!(holders(&w, ids.developer_tools).await.contains(&("Maya Chen".into(), "system_add".into())), "unchanged");
    maya.department = Some("Sales".into());
    w.service.sign_in_from_provider(&maya, &rules).await.unwrap();
    assert!(!holders(&w, ids.developer_tools).await.iter().any(|(n, _)| n == "Maya Chen"), "Engineering's is gone");
    assert!(holders(&w, ids.sales_crm).await.contains(&("Maya Chen".into(), "system_add".into())), "Sales' is hers");
    let why: String = sqlx::query_scalar(
        "SELECT e.reason FROM audit_events e JOIN assignments a ON a.id = e.object_id \
         WHERE e.action = 'assignment.removed' AND a.user_id = $1",
    )
    .bind(ids.maya.0)
    .fetch_one(w.db().pool())
    .await
    .unwrap();
    assert_eq!(why, "no longer matches the rule of “Engineering (automatic)”");
    // And the built-in groups the packages give follow: taken back, and delivered.
    w.service.deliver_pending(&Operator::Workers, 100).await.unwrap();
    let members_of = async |package: PackageId| -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM builtin_memberships m \
             JOIN package_resource_roles r ON r.resource_role_id = m.resource_role_id \
             WHERE m.user_id = $1 AND r.package_id = $2",
        )
        .bind(ids.maya.0)
        .bind(package.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap()
    };
    assert_eq!(members_of(ids.developer_tools).await, 0, "out of GitHub and staging");
    assert_eq!(members_of(ids.sales_crm).await, 2, "in the CRM and the dashboards");
    // Omar leaves Engineering too: the access he asked for stays his, as Tom's stays.
    sqlx::query("UPDATE users SET department = 'Finance' WHERE id = $1")
        .bind(ids.omar.0)
        .execute(w.db().pool())
        .await
        .unwrap();
    assert_eq!(w.service.apply_rules(&Operator::Workers).await.unwrap(), (0, 0));
    let now = holders(&w, ids.developer_tools).await;
    assert!(
        now.contains(&("Omar Haddad".into(), "user_add".into()))
            && now.contains(&("Tom Becker".into(), "admin_add".into()))
    );
}

async fn a_rule_s_what_if_is_exactly_what_saving_it_does(backend: Backend) {
    let w = World::new(backend).await;
    let ids = &w.ids;
    let policy = automatic(&w, ids.developer_tools, "Engineering (automatic)", r#"department == "Engineering""#).await;
    w.service.apply_rules(&Operator::Workers).await.unwrap();
    let grace = w.actor(ids.grace).await;
    let eng = w.service.package_manager_of(&grace, ids.developer_tools).await.unwrap();
    let id = eng.start_draft(DraftStart::Edit(ids.developer_tools, policy)).await.unwrap();
    let draft = async || w.service.draft(&grace, id).await.unwrap();

    // A rule that does not parse, or names what people do not have, stays on its step.
    for bad in [r#"department =="#, r#"team == "Security""#] {
        let refused = draft()
            .await
            .save_step(WizardStep::Requestors, Go::Next, &fields(&[("scope", "none"), ("auto_rule", bad)]))
            .await
            .unwrap_err();
        assert!(matches!(&refused, DomainError::Invalid { field: Some(f), .. } if f == "auto_rule"), "{refused:?}");
    }
    // Security's officers gain it; the engineering manager loses it.
    let rule = r#""Security Team" in groups || (department == "Engineering" && job_title != "Engineering Manager")"#;
    draft()
        .await
        .save_step(WizardStep::Requestors, Go::Next, &fields(&[("scope", "none"), ("auto_rule", rule)]))
        .await
        .unwrap();
    let before = holders(&w, ids.developer_tools).await;
    let review = draft().await.view(Some(WizardStep::Review)).await.unwrap();
    let what_if = review.what_if.clone().expect("the Review step says who gains and loses");
    let name = |n: &String| n.split(" (").next().unwrap_or_default().to_owned();
    let mut gains: Vec<String> = what_if.gains.iter().map(name).collect();
    let losses: Vec<String> = what_if.losses.iter().map(name).collect();
    gains.sort();
    assert_eq!(gains, ["Grace Hopper", "Hana Sato"]);
    assert_eq!(losses, ["Linus Park"]);
    assert!(what_if.gains.iter().any(|g| g == "Hana Sato (hana@quartermaster.example)"), "{:?}", what_if.gains);
    assert_eq!(holders(&w, ids.developer_tools).await, before, "computed without changing anything");

    // Linus owns Engineering but is no administrator: he cannot write a rule in the builder
    // (nor see whom it would reach), nor add a policy with one.
    let linus = w.actor(ids.linus).await;
    let his = w.service.package_manager_of(&linus, ids.developer_tools).await.unwrap();
    let his_draft = his.start_draft(DraftStart::Edit(ids.developer_tools, policy)).await.unwrap();
    let refused = w
        .service
        .draft(&linus, his_draft)
        .await
        .unwrap()
        .save_step(WizardStep::Requestors, Go::Next, &fields(&[("scope", "none"), ("auto_rule", "true")]))
        .await
        .unwrap_err();
    assert!(matches!(&refused, DomainError::Invalid { field: Some(f), .. } if f == "auto_rule"), "{refused:?}");
    let mut his_rule = Policy::new(ids.developer_tools, "Everyone", RequestorScope::Nobody, vec![]);
    his_rule.auto_rule = Some("true".into());
    assert!(matches!(his.create_policy(his_rule).await, Err(DomainError::Forbidden(_))));

    // Someone joins the Security Team after the review: saving refuses what was not shown.
    let security: i64 = sqlx::query_scalar("SELECT id FROM directory_groups WHERE name = 'Security Team'")
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)")
        .bind(security)
        .bind(ids.tom.0)
        .execute(w.db().pool())
        .await
        .unwrap();
    let stale = draft().await.finish_reviewed(Some(review.updated_at), Some(&what_if.fingerprint)).await.unwrap_err();
    assert!(matches!(stale, DomainError::Conflict(_)), "{stale:?}");
    assert_eq!(holders(&w, ids.developer_tools).await, before, "nothing saved");
    let review = draft().await.view(Some(WizardStep::Review)).await.unwrap();
    let what_if = review.what_if.clone().unwrap();
    let mut gains: Vec<String> = what_if.gains.iter().map(name).collect();
    gains.sort();
    assert_eq!(gains, ["Grace Hopper", "Hana Sato", "Tom Becker"]);

    // Saving does exactly what the what-if said.
    draft().await.finish_reviewed(Some(review.updated_at), Some(&what_if.fingerprint)).await.unwrap();
    let after = holders(&w, ids.developer_tools).await;
    let gained: Vec<String> = after.difference(&before).map(|(n, _)| n.clone()).collect();
    let lost: Vec<String> = before.difference(&after).map(|(n, _)| n.clone()).collect();
    assert_eq!(gained, gains);
    assert_eq!(lost, losses);
    assert_eq!(w.service.apply_rules(&Operator::Workers).await.unwrap(), (0, 0), "nothing left to do");
}

/// Production Access goes from Engineering to the Security Team: the Review step names who
/// could newly ask for it and who no longer could, and after saving exactly they can and
/// cannot.
async fn who_may_ask_is_shown_before_saving_and_saving_does_exactly_that(backend: Backend) {
    let w = World::new(backend).await;
    let ids = &w.ids;
    let grace = w.actor(ids.grace).await;
    let policy: i64 = sqlx::query_scalar("SELECT id FROM policies WHERE package_id = $1")
        .bind(ids.production_access.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    let security: i64 = sqlx::query_scalar("SELECT id FROM directory_groups WHERE name = 'Security Team'")
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    let pm = w.service.package_manager_of(&grace, ids.production_access).await.unwrap();
    let id = pm.start_draft(DraftStart::Edit(ids.production_access, PolicyId(policy))).await.unwrap();
    let draft = async || w.service.draft(&grace, id).await.unwrap();
    let group = format!("group_{security}");
    let step = fields(&[("scope", "specific"), (group.as_str(), "on"), ("justification_required", "on")]);
    draft().await.save_step(WizardStep::Requestors, Go::Next, &step).await.unwrap();
    let review = draft().await.view(Some(WizardStep::Review)).await.unwrap();
    let asking = review.who_may_request.clone().expect("the Review step says who can ask");
    let name = |n: &String| n.split(" (").next().unwrap_or_default().to_owned();
    let sorted = |list: &[String]| {
        let mut v: Vec<String> = list.iter().map(name).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&asking.gains), ["Grace Hopper", "Hana Sato"]);
    assert_eq!(sorted(&asking.losses), ["Kai Müller", "Linus Park", "Maya Chen", "Omar Haddad"]);
    let may_ask = async |who: UserId| -> bool {
        let actor = w.actor(who).await;
        let page = w.service.requestable_packages(&actor, "Production", None, None).await.unwrap();
        page.items.iter().any(|p| p.id == ids.production_access.0)
    };
    let everyone = [ids.grace, ids.hana, ids.kai, ids.linus, ids.maya, ids.omar, ids.sofia, ids.tom];
    let mut before = Vec::new();
    for who in everyone {
        before.push(may_ask(who).await);
    }
    draft().await.finish(Some(review.updated_at)).await.unwrap();
    // Exactly the people named changed, each the way it said.
    for (who, could) in everyone.iter().zip(before) {
        let name = w.actor(*who).await.user.display_name;
        let expected = if asking.gains.iter().any(|g| g.starts_with(&name)) {
            true
        } else if asking.losses.iter().any(|l| l.starts_with(&name)) {
            false
        } else {
            could
        };
        assert_eq!(may_ask(*who).await, expected, "{name}");
    }
}
