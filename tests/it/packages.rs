//! Packages as code: export, plan and apply against real databases. A file exported from the
//! demo and applied to a database holding only the directory makes the same catalogs; a plan
//! names each change field by field with what it does to requests under way; apply does
//! exactly the plan, audited, and refuses when the database moved since.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::{ask, fresh_db, World};
use quartermaster::domain::authz::Operator;
use quartermaster::domain::model::Catalog;
use quartermaster::domain::package_file::{Change, FieldChange, Object, PackageFile, RoleRef};
use quartermaster::domain::policy::Answer;
use quartermaster::domain::DomainError;
use quartermaster::service::Service;
use quartermaster::store::Backend;

on_both_databases!(
    export_then_apply_on_a_database_without_catalogs_makes_the_same_catalogs,
    a_plan_names_each_change_and_apply_does_it_unless_the_database_moved,
);

async fn admin_of(service: &Service) -> quartermaster::domain::authz::Actor {
    let grace = service.person_id_by_email(&Operator::Workers, "grace@quartermaster.example").await.unwrap();
    service.actor(grace).await.unwrap().unwrap()
}

async fn export_then_apply_on_a_database_without_catalogs_makes_the_same_catalogs(backend: Backend) {
    let w = World::new(backend).await;
    let text = w.service.export_packages(&Operator::Workers).await.unwrap();
    // The demo's variety is in the file: people by email, groups and organizations by name,
    // a rule between two packages on both, hidden and disabled objects.
    assert!(text.contains("email = \"hana@quartermaster.example\"") || text.contains("kind = \"manager\""), "{text}");
    assert!(text.contains("name = \"Northwind Partners\""), "{text}");
    assert!(text.contains("incompatible_packages"), "{text}");
    let file = PackageFile::parse(&text).unwrap();
    assert_eq!(file.normalized().unwrap(), file, "an export is already as the engine keeps it");

    let empty = fresh_db(backend).await;
    quartermaster::demo::seed_directory(&empty.db).await.unwrap();
    let there = Service::new(empty.db.clone());
    assert_eq!(
        there.export_packages(&Operator::Workers).await.unwrap().lines().filter(|l| l.starts_with("[[")).count(),
        0
    );
    let plan = there.plan_packages(&Operator::Workers, &text).await.unwrap();
    let objects = |f: &PackageFile| {
        f.catalogs
            .iter()
            .map(|c| 1 + c.resources.len() + c.packages.iter().map(|p| 1 + p.policies.len()).sum::<usize>())
            .sum::<usize>()
    };
    assert_eq!(plan.changes.len(), objects(&file));
    assert!(plan.changes.iter().all(|(c, _)| matches!(c, Change::Added(_))), "{}", plan.render());
    let admin = admin_of(&there).await;
    let applied = there.apply_packages(&admin, &text, &plan.id).await.unwrap();
    assert_eq!(applied.changes, plan.changes.len());

    // The same catalogs: the export is the same text, and planning the file again changes nothing.
    assert_eq!(there.export_packages(&Operator::Workers).await.unwrap(), text);
    let again = there.plan_packages(&Operator::Workers, &text).await.unwrap();
    assert!(again.changes.is_empty(), "{}", again.render());
    assert_ne!(again.id, plan.id);
    // Applying the old plan a second time is refused: the database moved.
    let twice = there.apply_packages(&admin, &text, &plan.id).await.unwrap_err();
    assert!(matches!(twice, DomainError::Conflict(_)), "{twice}");

    // Every change is audited as the administrator, naming the plan.
    let mut conn = empty.db.pool().acquire().await.unwrap();
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE actor_id = $1 AND reason = $2")
        .bind(admin.id().0)
        .bind(format!("packages apply, plan {}", plan.id))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(count, i64::try_from(applied.events).unwrap());
    assert!(count >= i64::try_from(plan.changes.len()).unwrap());
}

async fn a_plan_names_each_change_and_apply_does_it_unless_the_database_moved(backend: Backend) {
    let w = World::new(backend).await;
    let maya = w.actor(w.ids.maya).await;
    // Maya holds Developer Tools (no approval); Omar waits for Production Access.
    w.service.submit_request(&maya, ask(w.ids.developer_tools, "daily work")).await.unwrap();
    let omar = w.actor(w.ids.omar).await;
    let mut on_call = ask(w.ids.production_access, "on call");
    on_call.answers = vec![Answer { question_id: "service".into(), value: "Payments API".into() }];
    w.service.submit_request(&omar, on_call).await.unwrap();
    let text = w.service.export_packages(&Operator::Workers).await.unwrap();
    let mut file = PackageFile::parse(&text).unwrap();

    let eng = file.catalogs.iter_mut().find(|c| c.name == "Engineering").unwrap();
    eng.description = "Tools and production".into();
    let prod = eng.packages.iter_mut().find(|p| p.name == "Production Access").unwrap();
    let policy_name = prod.policies[0]["name"].as_str().unwrap().to_owned();
    let before_days = prod.policies[0]["approval"]["stages"][0]["timeout_days"].clone();
    prod.policies[0]["approval"]["stages"][0]["timeout_days"] = serde_json::Value::from(5);
    let tools = eng.packages.iter().position(|p| p.name == "Developer Tools").unwrap();
    let mut new = eng.packages.remove(tools);
    new.name = "Developer Tools (2027)".into();
    new.roles.truncate(1);
    let role: RoleRef = new.roles[0].clone();
    new.incompatible_packages.clear();
    eng.packages.push(new);
    let changed = file.to_text().unwrap();

    let plan = w.service.plan_packages(&Operator::Workers, &changed).await.unwrap();
    let eng_catalog = Object::Catalog { catalog: "Engineering".into() };
    let prod_policy = Object::Policy {
        catalog: "Engineering".into(),
        package: "Production Access".into(),
        policy: policy_name.clone(),
    };
    let new_package = Object::Package { catalog: "Engineering".into(), package: "Developer Tools (2027)".into() };
    let old_package = Object::Package { catalog: "Engineering".into(), package: "Developer Tools".into() };
    let changes: Vec<&Change> = plan.changes.iter().map(|(c, _)| c).collect();
    let new_policies: Vec<Change> = file
        .catalogs
        .iter()
        .flat_map(|c| c.packages.iter())
        .filter(|p| p.name == "Developer Tools (2027)")
        .flat_map(|p| p.policies.iter())
        .map(|q| {
            Change::Added(Object::Policy {
                catalog: "Engineering".into(),
                package: "Developer Tools (2027)".into(),
                policy: q["name"].as_str().unwrap().to_owned(),
            })
        })
        .collect();
    let mut expected = vec![
        Change::Changed(
            eng_catalog.clone(),
            vec![FieldChange {
                field: "description".into(),
                before: "\"Developer tooling and production access\"".into(),
                after: "\"Tools and production\"".into(),
            }],
        ),
        Change::Changed(
            prod_policy.clone(),
            vec![FieldChange {
                field: "approval.stages[0].timeout_days".into(),
                before: before_days.to_string(),
                after: "5".into(),
            }],
        ),
        Change::Added(new_package.clone()),
    ];
    expected.extend(new_policies);
    expected.push(Change::Disabled(old_package.clone()));
    assert_eq!(changes, expected.iter().collect::<Vec<_>>(), "{}", plan.render());
    // What the changes do to the work under way.
    let effects = |o: &Object| plan.changes.iter().find(|(c, _)| c.object() == o).unwrap().1.join(" | ");
    assert!(
        effects(&old_package).starts_with("0 open request(s) will not be granted")
            && effects(&old_package).ends_with("1 live assignment(s) stay until they end or are removed"),
        "{}",
        effects(&old_package)
    );
    assert!(
        effects(&prod_policy).starts_with("1 open request(s) under it keep the approval stages they were filed under"),
        "{}",
        effects(&prod_policy)
    );
    let printed = plan.render();
    assert!(printed.contains("~ catalog \"Engineering\"\n    description: \"Developer tooling and production access\" -> \"Tools and production\""), "{printed}");
    assert!(printed.contains("- package \"Engineering / Developer Tools\" (not in the file: disabled)"), "{printed}");

    // Not an administrator: refused.
    let linus = w.actor(w.ids.linus).await;
    assert!(matches!(w.service.apply_packages(&linus, &changed, &plan.id).await, Err(DomainError::Forbidden(_))));

    // Someone changes the catalog after the plan: the plan is refused and nothing is written.
    let owner = w.service.catalog_owner(&linus, eng_catalog_id(&w).await).unwrap();
    let mut c = catalog_named(&w, "Engineering").await;
    c.externally_visible = true;
    owner.update_catalog(c.clone()).await.unwrap();
    let admin = w.actor(w.ids.grace).await;
    let stale = w.service.apply_packages(&admin, &changed, &plan.id).await.unwrap_err();
    assert!(matches!(stale, DomainError::Conflict(ref m) if m.contains("plan again")), "{stale}");
    let now = w.service.export_packages(&Operator::Workers).await.unwrap();
    assert!(!now.contains("Developer Tools (2027)"), "nothing of a refused plan is written");

    // Planned again: the same changes and one more (the catalog's visibility goes back).
    let plan = w.service.plan_packages(&Operator::Workers, &changed).await.unwrap();
    let (first, _) = &plan.changes[0];
    assert!(matches!(first, Change::Changed(o, f) if *o == eng_catalog && f.len() == 2), "{}", plan.render());
    w.service.apply_packages(&admin, &changed, &plan.id).await.unwrap();
    let after = w.service.plan_packages(&Operator::Workers, &changed).await.unwrap();
    assert!(after.changes.is_empty(), "{}", after.render());
    let exported = PackageFile::parse(&w.service.export_packages(&Operator::Workers).await.unwrap()).unwrap();
    let eng = exported.catalogs.iter().find(|c| c.name == "Engineering").unwrap();
    let old = eng.packages.iter().find(|p| p.name == "Developer Tools").unwrap();
    assert!(!old.enabled, "left out of the file: disabled, not deleted");
    let made = eng.packages.iter().find(|p| p.name == "Developer Tools (2027)").unwrap();
    assert_eq!(made.roles, vec![role]);
    let prod = eng.packages.iter().find(|p| p.name == "Production Access").unwrap();
    assert_eq!(prod.policies[0]["approval"]["stages"][0]["timeout_days"], 5);

    // A file naming someone or something that is not here is refused, saying what.
    let bad = changed.replacen("Security Team", "Security Tean", 1);
    if bad != changed {
        let err = w.service.plan_packages(&Operator::Workers, &bad).await.unwrap_err().to_string();
        assert!(err.contains("Security Tean"), "{err}");
    }
    let err = w.service.plan_packages(&Operator::Workers, "[[catalog]]\nname = 1\n").await.unwrap_err().to_string();
    assert!(err.contains("line"), "{err}");
}

async fn eng_catalog_id(w: &World) -> quartermaster::domain::ids::CatalogId {
    catalog_named(w, "Engineering").await.id
}

async fn catalog_named(w: &World, name: &str) -> quartermaster::domain::model::Catalog {
    let mut conn = w.db().pool().acquire().await.unwrap();
    quartermaster::store::catalog::catalogs(&mut conn).await.unwrap().into_iter().find(|c| c.name == name).unwrap()
}

/// Apply holds every catalog's lock from its read to its commit: a catalog owner's change
/// meanwhile waits for it (on PostgreSQL, where nothing else serializes them), so apply never
/// writes what it read before that change.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_holds_every_catalog_until_it_commits() {
    let w = World::new(Backend::Postgres).await;
    let text = w.service.export_packages(&Operator::Workers).await.unwrap();
    let mut file = PackageFile::parse(&text).unwrap();
    file.catalogs.iter_mut().find(|c| c.name == "Finance").unwrap().description = "Money".into();
    let changed = file.to_text().unwrap();
    let plan = w.service.plan_packages(&Operator::Workers, &changed).await.unwrap();

    let mut parked = crate::race::park_at(&w.service, "packages.read");
    let (admin, service, id) = (w.actor(w.ids.grace).await, parked.service.clone(), plan.id.clone());
    let applying = tokio::spawn(async move { service.apply_packages(&admin, &changed, &id).await });
    parked.arrived.recv().await.unwrap();
    // Elena, Finance's owner, opens it to partners while apply has read and not yet written.
    let (elena, service) = (w.actor(w.ids.elena).await, w.service.clone());
    let finance = catalog_named(&w, "Finance").await;
    let opened = Catalog { externally_visible: true, ..finance };
    let changing = tokio::spawn(async move { service.catalog_owner(&elena, opened.id)?.update_catalog(opened).await });
    assert_eq!(crate::race::second_operation(&w, None, &changing).await, crate::race::Second::Blocked);
    parked.release();
    applying.await.unwrap().unwrap();
    // Her change was made from the version apply replaced: refused, not written over it.
    let refused = changing.await.unwrap().unwrap_err();
    assert!(matches!(refused, DomainError::Stale(_)), "{refused}");
    assert_eq!(catalog_named(&w, "Finance").await.description, "Money");
}
