//! The demo organisation: a dozen people in a few departments, three catalogs, and packages
//! with different policies, so the portal feels alive on first run.

use chrono::{DateTime, Utc};

use crate::domain::clock::{Clock, SystemClock};
use crate::domain::ids::*;
use crate::domain::model::{ResourceSystemKind, Role, UserKind};
use crate::domain::policy::*;
use crate::domain::DomainError;
use crate::service::{NewRequest, Service};
use crate::store::directory::NewUser;
use crate::store::{catalog, directory, seed, Db};

/// Seed the demo organisation when the database has no users yet. Returns whether it did.
pub async fn seed_if_empty(db: &Db) -> Result<bool, DomainError> {
    let empty = seed::no_users(&mut *db.pool().acquire().await?).await?;
    if !empty {
        return Ok(false);
    }
    let service = Service::new(db.clone());
    let ids = seed_directory_and_catalogs_at(db, service.clock().now()).await?;
    seed_activity(&service, &ids).await?;
    Ok(true)
}

/// The demo organisation's email domains. A demo person is someone with an address in one of
/// them and no identity at a provider (`users.issuer` unset): only they may be picked at demo
/// sign-in, and `serve --demo` refuses a database holding anyone else.
pub const DEMO_EMAIL_DOMAINS: [&str; 2] = ["quartermaster.example", "northwind.example"];

/// Refuse demo mode over a database that holds real people: demo sign-in lets anyone act as
/// anyone offered, so it is only for a database of the demo organisation.
pub async fn check_demo_database(db: &Db) -> Result<(), String> {
    let mut conn = db.pool().acquire().await.map_err(|e| format!("cannot read the directory: {e}"))?;
    let others = seed::count_non_demo_users(&mut conn, &DEMO_EMAIL_DOMAINS)
        .await
        .map_err(|e| format!("cannot read the directory: {e}"))?;
    if others > 0 {
        return Err(format!(
            "--demo is refused: the database holds {others} account(s) that are not demo people (signed in \
             through an identity provider, or outside the demo organisation's domains {}). Demo \
             sign-in would let anyone act as them. Run the demo over its own empty database.",
            DEMO_EMAIL_DOMAINS.join(", ")
        ));
    }
    Ok(())
}

/// Whether this person may be picked at demo sign-in.
pub async fn is_demo_person(db: &Db, user: UserId) -> Result<bool, DomainError> {
    let mut conn = db.pool().acquire().await?;
    Ok(seed::is_demo_user(&mut conn, user, &DEMO_EMAIL_DOMAINS).await?)
}

/// The people demo sign-in offers: active demo people only, never anyone else.
pub async fn sign_in_people(service: &Service) -> Result<Vec<crate::views::DemoPerson>, DomainError> {
    let mut people = service.demo_people().await?;
    let offered: Vec<UserId> = people.iter().map(|p| UserId(p.id)).collect();
    let demo: std::collections::HashSet<i64> = {
        let mut conn = service.db().pool().acquire().await?;
        seed::demo_user_ids_among(&mut conn, &offered, &DEMO_EMAIL_DOMAINS).await?.into_iter().map(|u| u.0).collect()
    };
    people.retain(|p| demo.contains(&p.id));
    Ok(people)
}

/// Ids of the demo objects that tests and the activity seed refer to.
#[derive(Clone, Debug)]
pub struct DemoIds {
    pub grace: UserId,
    pub linus: UserId,
    pub maya: UserId,
    pub omar: UserId,
    pub kai: UserId,
    pub sofia: UserId,
    pub jamal: UserId,
    pub priya: UserId,
    pub elena: UserId,
    pub tom: UserId,
    pub hana: UserId,
    pub lucas: UserId,
    pub noah: UserId,
    pub developer_tools: PackageId,
    pub production_access: PackageId,
    pub sales_crm: PackageId,
    pub sales_analytics: PackageId,
    pub payments_approver: PackageId,
    pub invoice_processing: PackageId,
    pub production_role: ResourceRoleId,
}

fn stage(primary: Vec<ApproverSpec>, fallback: Vec<ApproverSpec>, justification_required: bool) -> Stage {
    // A week to decide, with a reminder after three days.
    Stage { fallback, justification_required, remind_after_days: Some(3), ..Stage::new(primary) }
}

fn policy(package: PackageId, name: &str, scope: RequestorScope, stages: Vec<Stage>) -> Policy {
    Policy::new(package, name, scope, stages)
}

/// The directory and catalogs, created now (by the system clock).
pub async fn seed_directory_and_catalogs(db: &Db) -> Result<DemoIds, DomainError> {
    seed_directory_and_catalogs_at(db, SystemClock.now()).await
}

/// The directory and catalogs, created at `now`.
pub async fn seed_directory_and_catalogs_at(db: &Db, now: DateTime<Utc>) -> Result<DemoIds, DomainError> {
    seed_at(db, now, true).await?.ok_or_else(|| DomainError::Internal("the demo catalogs were not made".into()))
}

/// The demo directory alone (people, groups, the partner organization and the built-in
/// resource system), without catalogs: where a catalogs file is applied from nothing.
pub async fn seed_directory(db: &Db) -> Result<(), DomainError> {
    seed_at(db, SystemClock.now(), false).await.map(|_| ())
}

async fn seed_at(db: &Db, now: DateTime<Utc>, catalogs: bool) -> Result<Option<DemoIds>, DomainError> {
    let now = now.timestamp_millis();
    let mut tx = db.begin().await?;
    let org = seed::insert_connected_org(&mut tx, "Northwind Partners", "northwind.example", now).await?;

    let mut person = async |email: &str, name: &str, dept: &str, title: &str, manager: Option<UserId>| {
        directory::insert_user(
            &mut tx,
            &NewUser {
                email,
                display_name: name,
                department: dept,
                job_title: title,
                manager_id: manager,
                kind: UserKind::Member,
                connected_org_id: None,
            },
            now,
        )
        .await
    };
    let grace =
        person("grace@quartermaster.example", "Grace Hopper", "Executive", "Chief Technology Officer", None).await?;
    let linus =
        person("linus@quartermaster.example", "Linus Park", "Engineering", "Engineering Manager", Some(grace)).await?;
    let maya =
        person("maya@quartermaster.example", "Maya Chen", "Engineering", "Software Engineer", Some(linus)).await?;
    let omar =
        person("omar@quartermaster.example", "Omar Haddad", "Engineering", "Site Reliability Engineer", Some(linus))
            .await?;
    let kai = person("kai@quartermaster.example", "Kai Müller", "Engineering", "Backend Engineer", Some(linus)).await?;
    let sofia = person("sofia@quartermaster.example", "Sofia Rossi", "Sales", "VP Sales", Some(grace)).await?;
    let jamal =
        person("jamal@quartermaster.example", "Jamal Carter", "Sales", "Account Executive", Some(sofia)).await?;
    let priya =
        person("priya@quartermaster.example", "Priya Nair", "Sales", "Sales Operations Analyst", Some(sofia)).await?;
    let elena =
        person("elena@quartermaster.example", "Elena Petrova", "Finance", "Finance Director", Some(grace)).await?;
    let tom = person("tom@quartermaster.example", "Tom Becker", "Finance", "Accountant", Some(elena)).await?;
    let hana = person("hana@quartermaster.example", "Hana Sato", "Security", "Security Officer", Some(grace)).await?;
    let lucas = person("lucas@quartermaster.example", "Lucas Martin", "IT", "Service Desk Lead", Some(grace)).await?;
    let noah = directory::insert_user(
        &mut tx,
        &NewUser {
            email: "noah@northwind.example",
            display_name: "Noah Williams",
            department: "Northwind Partners",
            job_title: "Sales Consultant (guest)",
            manager_id: None,
            kind: UserKind::Guest,
            connected_org_id: Some(org),
        },
        now,
    )
    .await?;
    seed::add_internal_sponsor(&mut tx, org, sofia).await?;

    let engineering = directory::insert_group(&mut tx, "Engineering", "Everyone in engineering", now).await?;
    let finance = directory::insert_group(&mut tx, "Finance", "Finance department", now).await?;
    let security = directory::insert_group(&mut tx, "Security Team", "Security officers", now).await?;
    for u in [linus, maya, omar, kai] {
        directory::add_group_member(&mut tx, engineering, u).await?;
    }
    for u in [elena, tom] {
        directory::add_group_member(&mut tx, finance, u).await?;
    }
    // The CTO backs up the security officer on production approvals.
    directory::add_group_member(&mut tx, security, hana).await?;
    directory::add_group_member(&mut tx, security, grace).await?;

    let builtin =
        catalog::insert_resource_system(&mut tx, "Quartermaster groups", ResourceSystemKind::Builtin, now).await?;
    if !catalogs {
        directory::grant_role(&mut tx, grace, Role::Administrator, None, now).await?;
        tx.commit().await?;
        return Ok(None);
    }
    let eng =
        catalog::insert_catalog(&mut tx, "Engineering", "Developer tooling and production access", false, now).await?;
    let sales =
        catalog::insert_catalog(&mut tx, "Sales & Marketing", "CRM and sales analytics, open to partners", true, now)
            .await?;
    let fin = catalog::insert_catalog(&mut tx, "Finance", "Payments and invoicing", false, now).await?;

    directory::grant_role(&mut tx, grace, Role::Administrator, None, now).await?;
    directory::grant_role(&mut tx, linus, Role::CatalogOwner, Some(eng), now).await?;
    directory::grant_role(&mut tx, sofia, Role::CatalogOwner, Some(sales), now).await?;
    directory::grant_role(&mut tx, elena, Role::CatalogOwner, Some(fin), now).await?;
    directory::grant_role(&mut tx, lucas, Role::AssignmentManager, Some(eng), now).await?;

    let github = catalog::insert_resource(
        &mut tx,
        builtin,
        eng,
        "GitHub Developers",
        "Source code and pull requests",
        &["Member", "Maintainer"],
        now,
    )
    .await?;
    let staging = catalog::insert_resource(
        &mut tx,
        builtin,
        eng,
        "Staging Environment",
        "Pre-production clusters",
        &["Member"],
        now,
    )
    .await?;
    let production = catalog::insert_resource(
        &mut tx,
        builtin,
        eng,
        "Production Servers",
        "Shell access to production hosts",
        &["Operator"],
        now,
    )
    .await?;
    let crm = catalog::insert_resource(
        &mut tx,
        builtin,
        sales,
        "Salesforce CRM",
        "Accounts, leads and opportunities",
        &["User", "Administrator"],
        now,
    )
    .await?;
    let dashboards = catalog::insert_resource(
        &mut tx,
        builtin,
        sales,
        "Sales Dashboards",
        "Pipeline and revenue dashboards",
        &["Viewer"],
        now,
    )
    .await?;
    let payments = catalog::insert_resource(
        &mut tx,
        builtin,
        fin,
        "ERP Payments",
        "Release outgoing payments",
        &["Approver"],
        now,
    )
    .await?;
    let invoices = catalog::insert_resource(
        &mut tx,
        builtin,
        fin,
        "Invoice Processing",
        "Enter and code supplier invoices",
        &["Clerk"],
        now,
    )
    .await?;

    let developer_tools = catalog::insert_package(
        &mut tx,
        eng,
        "Developer Tools",
        "GitHub and the staging environment for day-to-day development.",
        &[github[0], staging[0]],
        now,
    )
    .await?;
    let production_access = catalog::insert_package(&mut tx, eng, "Production Access", "Operator access to production servers, for on-call and incident work. Approved by your manager, then Security.", &[production[0]], now).await?;
    let sales_crm = catalog::insert_package(
        &mut tx,
        sales,
        "Sales CRM",
        "Salesforce user licence and the sales dashboards.",
        &[crm[0], dashboards[0]],
        now,
    )
    .await?;
    let sales_analytics = catalog::insert_package(
        &mut tx,
        sales,
        "Sales Analytics (30 days)",
        "Read-only pipeline dashboards for a month.",
        &[dashboards[0]],
        now,
    )
    .await?;
    let payments_approver = catalog::insert_package(
        &mut tx,
        fin,
        "Payments Approver",
        "Release outgoing payments in the ERP.",
        &[payments[0]],
        now,
    )
    .await?;
    let invoice_processing = catalog::insert_package(
        &mut tx,
        fin,
        "Invoice Processing",
        "Enter and code supplier invoices.",
        &[invoices[0]],
        now,
    )
    .await?;
    catalog::add_incompatible_package(&mut tx, payments_approver, invoice_processing).await?;

    let mut policies = Vec::new();
    policies.push(policy(developer_tools, "Employees (no approval)", RequestorScope::AllMembers, vec![]));
    let mut prod = policy(
        production_access,
        "Engineers: manager, then Security",
        RequestorScope::Specific,
        vec![
            stage(vec![ApproverSpec::Manager], vec![ApproverSpec::CatalogOwners], false),
            stage(vec![ApproverSpec::Group { id: security }], vec![], true),
        ],
    );
    prod.requestors = vec![RequestorRef::Group(engineering)];
    prod.justification_required = true;
    prod.expiration = Expiration::AfterDays { days: 30 };
    prod.extension_allowed = true;
    prod.questions = vec![Question {
        id: "service".into(),
        prompt: "Which service are you on call for?".into(),
        required: true,
        kind: QuestionKind::Choice {
            options: vec!["Payments API".into(), "Web storefront".into(), "Data platform".into()],
        },
    }];
    policies.push(prod);
    let mut crm_policy = policy(
        sales_crm,
        "Employees: manager approval",
        RequestorScope::AllMembers,
        vec![stage(vec![ApproverSpec::Manager], vec![ApproverSpec::CatalogOwners], false)],
    );
    crm_policy.questions = vec![Question {
        id: "region".into(),
        prompt: "Which sales region will you work in?".into(),
        required: false,
        kind: QuestionKind::Text { multiline: false },
    }];
    policies.push(crm_policy);
    let mut partners = policy(
        sales_crm,
        "Northwind partners: sponsor approval",
        RequestorScope::ConnectedOrgs,
        vec![stage(vec![ApproverSpec::Sponsors], vec![ApproverSpec::CatalogOwners], true)],
    );
    partners.requestors = vec![RequestorRef::Org(org)];
    partners.justification_required = true;
    partners.expiration = Expiration::AfterDays { days: 90 };
    policies.push(partners);
    let mut analytics = policy(sales_analytics, "Employees, 30 days", RequestorScope::AllMembers, vec![]);
    analytics.expiration = Expiration::AfterDays { days: 30 };
    analytics.schedule_allowed = true;
    policies.push(analytics);
    let mut pay = policy(
        payments_approver,
        "Finance: manager approval",
        RequestorScope::Specific,
        vec![stage(vec![ApproverSpec::Manager], vec![ApproverSpec::CatalogOwners], true)],
    );
    pay.requestors = vec![RequestorRef::Group(finance)];
    pay.justification_required = true;
    policies.push(pay);
    let mut inv = policy(invoice_processing, "Finance (no approval)", RequestorScope::Specific, vec![]);
    inv.requestors = vec![RequestorRef::Group(finance)];
    policies.push(inv);
    for p in &policies {
        p.validate()?;
        catalog::insert_policy(&mut tx, p, now).await?;
    }
    tx.commit().await?;
    Ok(Some(DemoIds {
        grace,
        linus,
        maya,
        omar,
        kai,
        sofia,
        jamal,
        priya,
        elena,
        tom,
        hana,
        lucas,
        noah,
        developer_tools,
        production_access,
        sales_crm,
        sales_analytics,
        payments_approver,
        invoice_processing,
        production_role: production[0],
    }))
}

/// A little history through the real operations: delivered access, and requests waiting.
async fn seed_activity(service: &Service, ids: &DemoIds) -> Result<(), DomainError> {
    let request = |package: PackageId, justification: &str| NewRequest {
        package,
        policy: None,
        target: None,
        justification: justification.to_owned(),
        answers: vec![],
        start: None,
        end: None,
    };
    let actor = async |id: UserId| service.actor(id).await?.ok_or_else(|| DomainError::not_found("demo user"));
    for user in [ids.maya, ids.omar, ids.linus] {
        service.submit_request(&actor(user).await?, request(ids.developer_tools, "Daily development")).await?;
    }
    let mut prod = request(ids.production_access, "Joining the on-call rotation next week");
    prod.answers = vec![Answer { question_id: "service".into(), value: "Payments API".into() }];
    service.submit_request(&actor(ids.omar).await?, prod).await?;
    service.submit_request(&actor(ids.jamal).await?, request(ids.sales_crm, "New account executive for EMEA")).await?;
    service.submit_request(&actor(ids.tom).await?, request(ids.invoice_processing, "Month-end close")).await?;
    service.deliver_pending(&crate::domain::authz::Operator::Workers, 100).await?;
    // Developer Tools is reviewed quarterly by each holder's manager, the first review
    // running from today: Linus reviews Maya's and Omar's, Grace reviews Linus's.
    let grace = actor(ids.grace).await?;
    let mut conn = service.db().pool().acquire().await?;
    let mut dev = catalog::policies_of(&mut conn, &[ids.developer_tools])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| DomainError::not_found("Developer Tools' policy"))?;
    drop(conn);
    dev.review = ReviewSettings::Recurring {
        frequency: ReviewFrequency::Quarterly,
        reviewers: vec![ApproverSpec::Manager],
        self_review: false,
        duration_days: 14,
        default_decision: ReviewDefault::Recommendation,
        apply_automatically: true,
        starts_on: Some(service.clock().now().date_naive()),
        fallback: vec![],
    };
    service.package_manager_of(&grace, ids.developer_tools).await?.update_policy(dev).await?;
    service.start_reviews(&crate::domain::authz::Operator::Workers).await?;
    // Birthright access: everyone in Sales gets the sales dashboards, and loses them on
    // leaving the department.
    let mut sales = policy(ids.sales_analytics, "Sales department (automatic)", RequestorScope::Nobody, vec![]);
    sales.description = "Everyone in Sales, for as long as they are in it.".into();
    sales.auto_rule = Some(r#"department == "Sales" && kind == "member""#.into());
    service.package_manager_of(&grace, ids.sales_analytics).await?.create_policy(sales).await?;
    service.apply_rules(&crate::domain::authz::Operator::Workers).await?;
    service.deliver_pending(&crate::domain::authz::Operator::Workers, 100).await?;
    Ok(())
}
