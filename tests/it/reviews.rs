//! Access reviews (issue 13), on SQLite and PostgreSQL: a quarterly review created once
//! however many instances try (and across restarts), its reviewers emailed through the real
//! SMTP sink, decided, reminded halfway, ended on the injected clock with the policy's default
//! answering for the silent, and its removals provisioned to the real SCIM target; a decision
//! racing the end of its review; the reviewer's and the owners' pages without JavaScript.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use crate::notifications::{mailer, received, send, sender, sink, subjects_to};
use crate::race::{park_at, second_operation, Second};

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use common::World;
use quartermaster::connectors::secret::SecretKey;
use quartermaster::domain::authz::Operator;
use quartermaster::domain::clock::{Clock, ManualClock};
use quartermaster::domain::ids::{CatalogId, PackageId, PolicyId, UserId};
use quartermaster::domain::policy::{
    ApproverSpec, Policy, RequestorScope, ReviewDefault, ReviewFrequency, ReviewSettings,
};
use quartermaster::domain::review::ReviewDecision;
use quartermaster::domain::DomainError;
use quartermaster::service::Service;
use quartermaster::store::Backend;
use serde_json::{json, Value};

on_both_databases!(
    a_quarterly_review_runs_once_and_its_removals_are_provisioned,
    a_decision_racing_the_end_of_its_review_counts_or_is_refused,
    reviewers_and_owners_use_the_pages_without_javascript,
    two_reviewers_of_one_item_are_told_of_each_other_and_a_self_review_is_ones_own,
    the_owner_and_the_clock_end_a_review_once_and_two_instances_apply_it_once,
);

/// Quarterly from 1 November 2026, by the holder's manager (Hana for those without one),
/// two weeks each; nobody answering means the recommendation.
fn quarterly(apply_automatically: bool, fallback: Vec<ApproverSpec>) -> ReviewSettings {
    ReviewSettings::Recurring {
        frequency: ReviewFrequency::Quarterly,
        reviewers: vec![ApproverSpec::Manager],
        self_review: false,
        duration_days: 14,
        default_decision: ReviewDefault::Recommendation,
        apply_automatically,
        starts_on: NaiveDate::from_ymd_opt(2026, 11, 1),
        fallback,
    }
}

/// [`quarterly`], by these reviewers (or each holder, for a self-review), applied by hand.
fn reviewed_by(people: Vec<ApproverSpec>, self_review: bool) -> ReviewSettings {
    let mut settings = quarterly(false, vec![]);
    if let ReviewSettings::Recurring { reviewers, self_review: own, .. } = &mut settings {
        (*reviewers, *own) = (people, self_review);
    }
    settings
}

async fn engineering(service: &Service) -> CatalogId {
    CatalogId(
        sqlx::query_scalar("SELECT id FROM catalogs WHERE name = 'Engineering'")
            .fetch_one(service.db().pool())
            .await
            .unwrap(),
    )
}

/// A package in Engineering whose one role is membership of a new group in the SCIM target
/// the test command started, with a policy reviewed quarterly; and the group's id there.
async fn reviewed_scim_package(w: &World, service: &Service, review: ReviewSettings) -> (PackageId, PolicyId, String) {
    let (Ok(url), Ok(token)) = (std::env::var("QM_TEST_SCIM_URL"), std::env::var("QM_TEST_SCIM_TOKEN")) else {
        panic!("QM_TEST_SCIM_URL / QM_TEST_SCIM_TOKEN are not set: run the tests with scripts/test.sh");
    };
    let name = format!("qm-review-{}", rand::random::<u32>());
    let group: Value = reqwest::Client::new()
        .post(format!("{url}/Groups"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let group = group["id"].as_str().unwrap().to_owned();
    let grace = w.actor(w.ids.grace).await;
    let linus = w.actor(w.ids.linus).await;
    let system = service.administrator(&grace).unwrap().add_scim_system(&name, &url, &token, true).await.unwrap();
    let eng = engineering(service).await;
    let roles =
        service.catalog_owner(&grace, eng).unwrap().add_resource_as(system, &group, &name, "", &["Member"]).await;
    let pm = service.package_manager(&linus, eng).unwrap();
    let package = pm.create_package(&format!("Reviewed {name}"), "", &roles.unwrap()).await.unwrap();
    let mut policy = Policy::new(package, "Reviewed quarterly", RequestorScope::Nobody, vec![]);
    policy.review = review;
    let policy = pm.create_policy(policy).await.unwrap();
    (package, policy, group)
}

/// The userNames in the target's group.
async fn scim_members(group: &str) -> Vec<String> {
    let url = std::env::var("QM_TEST_SCIM_URL").unwrap();
    let token = std::env::var("QM_TEST_SCIM_TOKEN").unwrap();
    let get = async |path: String| -> Value {
        reqwest::Client::new()
            .get(format!("{url}/{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let mut names = Vec::new();
    for m in get(format!("Groups/{group}")).await["members"].as_array().cloned().unwrap_or_default() {
        let user = get(format!("Users/{}", m["value"].as_str().unwrap())).await;
        names.push(user["userName"].as_str().unwrap().to_owned());
    }
    names.sort();
    names
}

/// Each person's review item, by holder.
async fn items(service: &Service) -> Vec<(i64, i64, String, Option<String>, Option<String>)> {
    sqlx::query_as("SELECT id, user_id, recommendation, decision, outcome FROM review_items ORDER BY user_id, id")
        .fetch_all(service.db().pool())
        .await
        .unwrap()
}

async fn item_of(service: &Service, user: UserId) -> i64 {
    items(service).await.into_iter().rev().find(|i| i.1 == user.0).unwrap().0
}

async fn count(service: &Service, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(service.db().pool()).await.unwrap()
}

async fn a_quarterly_review_runs_once_and_its_removals_are_provisioned(backend: Backend) {
    let w = World::new(backend).await;
    let (smtp, _) = sink();
    let from = sender();
    let key = SecretKey::from_hex(&"5a".repeat(32)).unwrap();
    let service = w.service.clone().with_secret_key(Some(key.clone())).with_mail(Some(mailer(&smtp, &from)));
    let ids = &w.ids;
    // Grace has no manager: Hana reviews her access.
    let (package, policy, group) =
        reviewed_scim_package(&w, &service, quarterly(true, vec![ApproverSpec::User { id: ids.hana }])).await;
    let linus = w.actor(ids.linus).await;
    let am = service.assignment_manager(&linus, engineering(&service).await).unwrap();
    for who in [ids.maya, ids.omar, ids.kai, ids.grace] {
        am.assign_directly(who, package, policy, None, "the platform team").await.unwrap();
    }
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(scim_members(&group).await.len(), 4);
    send(&service).await;
    // What the recommendations read: Omar has not signed in for 40 days, Kai moved to another
    // department after he was given the access, Maya signed in yesterday.
    let now = w.clock.now().timestamp_millis();
    let day = 86_400_000;
    for (who, sign_in, moved) in
        [(ids.omar, now - 40 * day, None), (ids.kai, now, Some(now + 1000)), (ids.maya, now - day, None)]
    {
        sqlx::query("UPDATE users SET last_sign_in_at = $1, department_since = $2 WHERE id = $3")
            .bind(sign_in)
            .bind(moved)
            .bind(who.0)
            .execute(w.db().pool())
            .await
            .unwrap();
    }
    w.clock.advance(Duration::seconds(2));

    // Two instances start the period's review at the same moment: the first is parked after
    // reading what it would review, the second runs meanwhile. One review, once.
    let other =
        Service::with_clock(w.db().clone(), std::sync::Arc::new(w.clock.clone())).with_mail(Some(mailer(&smtp, &from)));
    let mut parked = park_at(&service, "review.starting");
    let first = tokio::spawn({
        let s = parked.service.clone();
        async move { s.start_reviews(&Operator::Workers).await.unwrap() }
    });
    parked.arrived.recv().await.unwrap();
    let second = tokio::spawn(async move { other.start_reviews(&Operator::Workers).await.unwrap() });
    if backend == Backend::Postgres {
        assert_eq!(second_operation(&w, None, &second).await, Second::Finished, "nothing held it up");
    }
    parked.release();
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(first + second, 1, "one of them started it");
    assert_eq!(count(&service, "SELECT COUNT(*) FROM reviews").await, 1);
    // Again, and after a restart: nothing new.
    assert_eq!(service.start_reviews(&Operator::Workers).await.unwrap(), 0);
    let restarted = Service::with_clock(w.db().clone(), std::sync::Arc::new(w.clock.clone()));
    assert_eq!(restarted.start_reviews(&Operator::Workers).await.unwrap(), 0);

    // An item per holder, with its recommendation and its reviewers (never the holder).
    let recommended: Vec<(i64, String)> = items(&service).await.into_iter().map(|i| (i.1, i.2)).collect();
    let mut expected = vec![
        (ids.maya.0, "keep".to_owned()),
        (ids.omar.0, "remove".to_owned()),
        (ids.kai.0, "remove".to_owned()),
        (ids.grace.0, "keep".to_owned()),
    ];
    expected.sort();
    assert_eq!(recommended, expected);
    let reviewers: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT i.user_id, r.user_id FROM review_items i JOIN review_reviewers r ON r.item_id = i.id ORDER BY 1, 2",
    )
    .fetch_all(w.db().pool())
    .await
    .unwrap();
    let mut who_reviews =
        vec![(ids.maya.0, ids.linus.0), (ids.omar.0, ids.linus.0), (ids.kai.0, ids.linus.0), (ids.grace.0, ids.hana.0)];
    who_reviews.sort();
    assert_eq!(reviewers, who_reviews);

    // Linus and Hana are told, once each, with a link to their reviews.
    assert_eq!(send(&service).await, 2);
    let mails = received(&from, 2).await;
    let subject = format!("Access review: {}", group_name(&service, package).await);
    assert_eq!(subjects_to(&mails, "linus@quartermaster.example"), [subject.as_str()]);
    assert_eq!(subjects_to(&mails, "hana@quartermaster.example"), [subject.as_str()]);
    let text = mails.iter().find(|m| m["to"][0]["address"] == "linus@quartermaster.example").unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("3 people's access waits for your answer"), "{text}");
    assert!(text.contains("Review access: https://access.example/reviews"), "{text}");

    // Nobody answers for access they do not review, nor for their own.
    let hana = w.actor(ids.hana).await;
    let maya = w.actor(ids.maya).await;
    let maya_item = item_of(&service, ids.maya).await;
    for (who, item) in [(&hana, maya_item), (&maya, maya_item)] {
        let refused = service.decide_review(who, &[item], (ReviewDecision::Remove, ""), Some(None)).await.unwrap_err();
        assert!(matches!(refused, DomainError::NotFound(_)), "{refused:?}");
    }
    // All or nothing: one of Hana's and one of Linus's in one answer changes neither.
    let grace_item = item_of(&service, ids.grace).await;
    assert!(service.decide_review(&hana, &[grace_item, maya_item], (ReviewDecision::Keep, ""), None).await.is_err());
    assert_eq!(items(&service).await.iter().filter(|i| i.3.is_some()).count(), 0);

    // Linus keeps Maya, does not know about Omar, and leaves Kai; Hana keeps Grace.
    service
        .decide_review(&linus, &[maya_item], (ReviewDecision::Keep, "pairs with me daily"), Some(None))
        .await
        .unwrap();
    let omar_item = item_of(&service, ids.omar).await;
    service.decide_review(&linus, &[omar_item], (ReviewDecision::DontKnow, ""), Some(None)).await.unwrap();
    service.decide_review(&hana, &[grace_item], (ReviewDecision::Keep, ""), Some(None)).await.unwrap();
    let page = service.my_review_items(&linus, None).await.unwrap();
    let order: Vec<(i64, bool)> = page.items.iter().map(|i| (i.id, i.decision.is_some())).collect();
    assert_eq!(order.len(), 3);
    assert!(!order[0].1 && order[1].1 && order[2].1, "what waits comes first: {order:?}");

    // Halfway: a reminder, only to reviewers with answers still to give.
    w.clock.advance(Duration::days(7));
    assert_eq!(service.run_reviews(&Operator::Workers).await.unwrap(), 1);
    assert_eq!(service.run_reviews(&Operator::Workers).await.unwrap(), 0, "reminded once");
    assert_eq!(send(&service).await, 1);
    let mails = received(&from, 3).await;
    assert_eq!(subjects_to(&mails, "linus@quartermaster.example").len(), 2);
    assert_eq!(subjects_to(&mails, "hana@quartermaster.example").len(), 1, "Hana has answered");

    // The end: the recommendation answers for Kai (remove) and for Omar's "don't know"
    // (remove); Maya and Grace keep. The removals reach the SCIM target.
    w.clock.advance(Duration::days(7));
    assert!(service.run_reviews(&Operator::Workers).await.unwrap() >= 1);
    let outcomes: Vec<(i64, Option<String>)> = items(&service).await.into_iter().map(|i| (i.1, i.4)).collect();
    let mut expected = vec![
        (ids.maya.0, Some("keep".to_owned())),
        (ids.omar.0, Some("remove".to_owned())),
        (ids.kai.0, Some("remove".to_owned())),
        (ids.grace.0, Some("keep".to_owned())),
    ];
    expected.sort();
    assert_eq!(outcomes, expected);
    assert_eq!(count(&service, "SELECT COUNT(*) FROM reviews WHERE state = 'applied'").await, 1);
    let removed: Vec<(i64, String)> = sqlx::query_as(
        "SELECT a.user_id, e.reason FROM audit_events e JOIN assignments a ON a.id = e.object_id \
         WHERE e.action = 'assignment.removed' ORDER BY a.user_id",
    )
    .fetch_all(w.db().pool())
    .await
    .unwrap();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(removed.iter().all(|(_, why)| why.starts_with("access review: ")), "{removed:?}");
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(
        scim_members(&group).await,
        ["grace@quartermaster.example", "maya@quartermaster.example"],
        "Omar and Kai are out of the target's group"
    );
    // A late answer is refused; nothing more happens on the next passes.
    let late = service.decide_review(&linus, &[maya_item], (ReviewDecision::Remove, ""), Some(None)).await.unwrap_err();
    assert!(matches!(late, DomainError::AlreadyDecided(_)), "{late:?}");
    assert_eq!(service.run_reviews(&Operator::Workers).await.unwrap(), 0);
    assert_eq!(service.start_reviews(&Operator::Workers).await.unwrap(), 0, "between reviews");

    // The next quarter's review covers who still holds the access.
    w.clock.advance(Utc.with_ymd_and_hms(2027, 2, 1, 8, 0, 0).unwrap() - w.clock.now());
    assert_eq!(service.start_reviews(&Operator::Workers).await.unwrap(), 1);
    assert_eq!(count(&service, "SELECT COUNT(*) FROM review_items").await, 6);
}

async fn group_name(service: &Service, package: PackageId) -> String {
    sqlx::query_scalar("SELECT name FROM access_packages WHERE id = $1")
        .bind(package.0)
        .fetch_one(service.db().pool())
        .await
        .unwrap()
}

/// Linus answers while the review is ending: the end is parked after reading the answers.
/// His answer waits for it (PostgreSQL: it is seen waiting for the review's row) and is then
/// refused, and every item has its outcome.
async fn a_decision_racing_the_end_of_its_review_counts_or_is_refused(backend: Backend) {
    let w = World::new(backend).await;
    let key = SecretKey::from_hex(&"5a".repeat(32)).unwrap();
    let service = w.service.clone().with_secret_key(Some(key));
    let ids = &w.ids;
    let (package, policy, _) = reviewed_scim_package(&w, &service, quarterly(false, vec![])).await;
    let linus = w.actor(ids.linus).await;
    let am = service.assignment_manager(&linus, engineering(&service).await).unwrap();
    for who in [ids.maya, ids.omar] {
        am.assign_directly(who, package, policy, None, "the platform team").await.unwrap();
    }
    assert_eq!(service.start_reviews(&Operator::Workers).await.unwrap(), 1);
    let maya_item = item_of(&service, ids.maya).await;

    w.clock.advance(Duration::days(14));
    let mut parked = park_at(&service, "review.ending");
    let ending = tokio::spawn({
        let s = parked.service.clone();
        async move { s.run_reviews(&Operator::Workers).await.unwrap() }
    });
    parked.arrived.recv().await.unwrap();
    let answer = tokio::spawn({
        let (s, linus) = (service.clone(), linus.clone());
        async move { s.decide_review(&linus, &[maya_item], (ReviewDecision::Remove, "late"), Some(None)).await }
    });
    if backend == Backend::Postgres {
        assert_eq!(second_operation(&w, None, &answer).await, Second::Blocked, "the answer waits for the end");
    }
    parked.release();
    assert_eq!(ending.await.unwrap(), 2, "the midpoint's reminder, then the end");
    let refused = answer.await.unwrap().unwrap_err();
    assert!(matches!(refused, DomainError::AlreadyDecided(_)), "{refused:?}");
    let rows = items(&service).await;
    assert!(rows.iter().all(|i| i.3.is_none() && i.4.as_deref() == Some("keep")), "{rows:?}");
    // Not applied automatically: the owners apply it (nothing to remove here).
    assert_eq!(count(&service, "SELECT COUNT(*) FROM reviews WHERE state = 'ended'").await, 1);
    let review: i64 = sqlx::query_scalar("SELECT id FROM reviews").fetch_one(w.db().pool()).await.unwrap();
    assert_eq!(service.apply_review(&linus, review).await.unwrap(), 0);
    assert_eq!(count(&service, "SELECT COUNT(*) FROM reviews WHERE state = 'applied'").await, 1);
}

/// Without JavaScript: Linus sees "Reviews" in the navigation and on My Access, answers on
/// "My reviews" by plain form posts (one, then several at once), and Maya cannot answer for
/// her own access; on the reviews page, Sofia (another catalog's owner) does not see the
/// review and cannot end it, Lucas (Engineering's assignment manager) ends it early and
/// applies its results, and the removal is audited.
async fn reviewers_and_owners_use_the_pages_without_javascript(backend: Backend) {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap());
    let app = common::spawn_app_with_clock(backend, clock.clone()).await;
    let (s, pool) = (&app.service, app.service.db().pool());
    let ids = &app.ids;
    let grace = s.actor(ids.grace).await.unwrap().unwrap();
    // Developer Tools, reviewed quarterly by managers; its results applied by its owners.
    let mut dev = {
        let mut conn = pool.acquire().await.unwrap();
        quartermaster::store::catalog::policies_of(&mut conn, &[ids.developer_tools]).await.unwrap().remove(0)
    };
    dev.review = quarterly(false, vec![]);
    s.package_manager_of(&grace, ids.developer_tools).await.unwrap().update_policy(dev.clone()).await.unwrap();
    let am = s.assignment_manager_of(&grace, ids.developer_tools).await.unwrap();
    for who in [ids.maya, ids.omar, ids.kai] {
        am.assign_directly(who, ids.developer_tools, dev.id, None, "tooling").await.unwrap();
    }
    s.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(s.start_reviews(&Operator::Workers).await.unwrap(), 1);

    let linus = common::client();
    app.sign_in(&linus, ids.linus).await;
    let home = app.page(&linus, "/").await;
    assert!(
        home.contains("3 people&#x27;s access waits for your review")
            || home.contains("3 people's access waits for your review"),
        "My Access says so"
    );
    assert!(home.contains("href=\"/reviews\""), "and the navigation links it");
    let page = app.page(&linus, "/reviews").await;
    for name in ["Maya Chen", "Omar Haddad", "Kai Müller"] {
        assert!(page.contains(name), "{name} is on Linus's reviews");
    }
    assert!(page.contains("Recommended: keep"));

    // One answer by a plain form post: back to the page, the answer shown there.
    let maya_item = sqlx::query_scalar::<_, i64>("SELECT id FROM review_items WHERE user_id = $1")
        .bind(ids.maya.0)
        .fetch_one(pool)
        .await
        .unwrap();
    let res = app
        .submit(
            &linus,
            "/reviews",
            "/api/answer_review",
            &[
                ("item_ids[0]", maya_item.to_string()),
                ("decision", "remove".into()),
                ("justification", "left the team".into()),
            ],
        )
        .await;
    assert!(res.status().is_redirection(), "{}", res.status());
    let page = app.page(&linus, "/reviews").await;
    assert!(page.contains("Answered “remove”"), "the outcome is shown once");
    assert!(page.contains("answered by Linus Park"));
    // Several at once.
    let others: Vec<i64> = sqlx::query_scalar("SELECT id FROM review_items WHERE user_id <> $1 ORDER BY id")
        .bind(ids.maya.0)
        .fetch_all(pool)
        .await
        .unwrap();
    let res = app
        .submit(
            &linus,
            "/reviews",
            "/api/answer_review",
            &[
                ("item_ids[0]", others[0].to_string()),
                ("item_ids[3]", others[1].to_string()),
                ("decision", "keep".into()),
                ("justification", String::new()),
            ],
        )
        .await;
    assert!(res.status().is_redirection());
    let decided: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT user_id, decision FROM review_items ORDER BY user_id").fetch_all(pool).await.unwrap();
    assert!(
        decided.iter().all(|(u, d)| d.as_deref() == Some(if *u == ids.maya.0 { "remove" } else { "keep" })),
        "{decided:?}"
    );

    // Maya cannot answer for her own access: refused, nothing changes.
    let maya = common::client();
    app.sign_in(&maya, ids.maya).await;
    let res = app
        .submit(
            &maya,
            "/reviews",
            "/api/answer_review",
            &[("item_ids[0]", maya_item.to_string()), ("decision", "keep".into()), ("justification", String::new())],
        )
        .await;
    assert!(res.status().is_redirection());
    assert!(app.page(&maya, "/reviews").await.contains("Not found: review item."), "refused, said on the page");
    let mine: Option<String> = sqlx::query_scalar("SELECT decision FROM review_items WHERE id = $1")
        .bind(maya_item)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mine.as_deref(), Some("remove"));

    // The owners' page: Sofia sees no Engineering review and cannot end it.
    let review: i64 = sqlx::query_scalar("SELECT id FROM reviews").fetch_one(pool).await.unwrap();
    let sofia = common::client();
    app.sign_in(&sofia, ids.sofia).await;
    assert!(!app.page(&sofia, "/admin/reviews").await.contains("Developer Tools"));
    app.submit(&sofia, "/admin/reviews", "/api/end_review", &[("review_id", review.to_string())]).await;
    assert_eq!(count(s, "SELECT COUNT(*) FROM reviews WHERE state = 'running'").await, 1, "still running");
    // Lucas sees its progress, ends it early and applies its results.
    let lucas = common::client();
    app.sign_in(&lucas, ids.lucas).await;
    let list = app.page(&lucas, "/admin/reviews").await;
    assert!(list.contains("Developer Tools") && list.contains("3 of 3"), "progress shown");
    app.submit(&lucas, "/admin/reviews", "/api/end_review", &[("review_id", review.to_string())]).await;
    assert!(app.page(&lucas, "/admin/reviews").await.contains("Apply results"));
    app.submit(&lucas, "/admin/reviews", "/api/apply_review", &[("review_id", review.to_string())]).await;
    assert!(app.page(&lucas, "/admin/reviews").await.contains("Applied: 1 assignments removed"));
    let state: String =
        sqlx::query_scalar("SELECT state FROM assignments WHERE user_id = $1 AND package_id = $2 ORDER BY id DESC")
            .bind(ids.maya.0)
            .bind(ids.developer_tools.0)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(state, "removed");
    let by: Option<i64> =
        sqlx::query_scalar("SELECT actor_id FROM audit_events WHERE action = 'assignment.removed' ORDER BY id DESC")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(by, Some(ids.lucas.0), "applied by Lucas, audited as his");
    let _ = clock;
}

/// A policy of Developer Tools (built-in groups), edited by Grace to review as `review` says.
async fn review_developer_tools(w: &World, review: ReviewSettings) -> PolicyId {
    let grace = w.actor(w.ids.grace).await;
    let mut dev = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        quartermaster::store::catalog::policies_of(&mut conn, &[w.ids.developer_tools]).await.unwrap().remove(0)
    };
    dev.review = review;
    w.service
        .package_manager_of(&grace, w.ids.developer_tools)
        .await
        .unwrap()
        .update_policy(dev.clone())
        .await
        .unwrap();
    dev.id
}

/// Hana and Elena both review Maya's Developer Tools: an answer given meanwhile by the other is
/// never overwritten unseen (the second is told who answered), but may be changed from a form
/// that showed it. On a self-review, the holder answers for their own access and nobody else.
async fn two_reviewers_of_one_item_are_told_of_each_other_and_a_self_review_is_ones_own(backend: Backend) {
    let w = World::new(backend).await;
    let s = &w.service;
    let ids = &w.ids;
    let people = vec![ApproverSpec::User { id: ids.hana }, ApproverSpec::User { id: ids.elena }];
    let policy = review_developer_tools(&w, reviewed_by(people, false)).await;
    let grace = w.actor(ids.grace).await;
    let am = s.assignment_manager_of(&grace, ids.developer_tools).await.unwrap();
    for who in [ids.maya, ids.linus] {
        am.assign_directly(who, ids.developer_tools, policy, None, "tooling").await.unwrap();
    }
    assert_eq!(s.start_reviews(&Operator::Workers).await.unwrap(), 1);
    let item = item_of(s, ids.maya).await;
    let (hana, elena) = (w.actor(ids.hana).await, w.actor(ids.elena).await);

    // Both pages showed no answer; Hana answers first.
    s.decide_review(&hana, &[item], (ReviewDecision::Keep, "still on the team"), Some(None)).await.unwrap();
    let stale = s.decide_review(&elena, &[item], (ReviewDecision::Remove, ""), Some(None)).await.unwrap_err();
    match stale {
        DomainError::AlreadyDecided(why) => assert!(why.contains("Hana Sato answered “keep”"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Nor by ticking it among several.
    assert!(matches!(
        s.decide_review(&elena, &[item], (ReviewDecision::Remove, ""), None).await,
        Err(DomainError::AlreadyDecided(_))
    ));
    // Having seen Hana's answer, Elena may change it; Hana may change her own at any time.
    s.decide_review(&elena, &[item], (ReviewDecision::DontKnow, ""), Some(Some(ReviewDecision::Keep))).await.unwrap();
    let now: (Option<String>, Option<i64>) =
        sqlx::query_as("SELECT decision, decided_by FROM review_items WHERE id = $1")
            .bind(item)
            .fetch_one(w.db().pool())
            .await
            .unwrap();
    assert_eq!(now, (Some("dont_know".to_owned()), Some(ids.elena.0)));
    let undo = s.decide_review(&hana, &[item], (ReviewDecision::Keep, ""), Some(Some(ReviewDecision::Keep))).await;
    assert!(matches!(undo, Err(DomainError::AlreadyDecided(_))), "Hana's page is out of date too: {undo:?}");

    // A self-review: Jamal answers for his own Sales Analytics, nobody else for it.
    let mut analytics = {
        let mut conn = w.db().pool().acquire().await.unwrap();
        quartermaster::store::catalog::policies_of(&mut conn, &[ids.sales_analytics]).await.unwrap().remove(0)
    };
    analytics.review = reviewed_by(vec![], true);
    s.package_manager_of(&grace, ids.sales_analytics).await.unwrap().update_policy(analytics.clone()).await.unwrap();
    let sofia = w.actor(ids.sofia).await;
    s.assignment_manager_of(&sofia, ids.sales_analytics)
        .await
        .unwrap()
        .assign_directly(ids.jamal, ids.sales_analytics, analytics.id, None, "a month of dashboards")
        .await
        .unwrap();
    assert_eq!(s.start_reviews(&Operator::Workers).await.unwrap(), 1);
    let own = item_of(s, ids.jamal).await;
    let jamal = w.actor(ids.jamal).await;
    let page = s.my_review_items(&jamal, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.items[0].own, "shown as his own");
    assert!(matches!(
        s.decide_review(&sofia, &[own], (ReviewDecision::Remove, ""), Some(None)).await,
        Err(DomainError::NotFound(_))
    ));
    s.decide_review(&jamal, &[own], (ReviewDecision::Remove, "done with it"), Some(None)).await.unwrap();
    // Sofia owns Sales and holds no access this review covers: she may end it.
    let review: i64 = sqlx::query_scalar("SELECT review_id FROM review_items WHERE id = $1")
        .bind(own)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    s.end_review_early(&sofia, review).await.unwrap();
    // Linus owns Engineering, and this review covers his own Developer Tools: not his to
    // end. Grace, who holds none, ends it.
    let dev_review: i64 = sqlx::query_scalar("SELECT review_id FROM review_items WHERE id = $1")
        .bind(item)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    let linus = w.actor(ids.linus).await;
    let refused = s.end_review_early(&linus, dev_review).await.unwrap_err();
    assert!(matches!(refused, DomainError::Forbidden(_)), "{refused:?}");
    s.end_review_early(&grace, dev_review).await.unwrap();
}

/// The clock and an owner end the same review at once: one ends it, the other is told it has
/// ended. Then two instances apply its removals at once: each removal is applied once.
async fn the_owner_and_the_clock_end_a_review_once_and_two_instances_apply_it_once(backend: Backend) {
    let w = World::new(backend).await;
    let s = &w.service;
    let ids = &w.ids;
    let mut review = quarterly(false, vec![]);
    if let ReviewSettings::Recurring { default_decision, .. } = &mut review {
        *default_decision = ReviewDefault::Remove;
    }
    let policy = review_developer_tools(&w, review).await;
    let grace = w.actor(ids.grace).await;
    let am = s.assignment_manager_of(&grace, ids.developer_tools).await.unwrap();
    for who in [ids.maya, ids.omar, ids.kai] {
        am.assign_directly(who, ids.developer_tools, policy, None, "tooling").await.unwrap();
    }
    s.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(s.start_reviews(&Operator::Workers).await.unwrap(), 1);
    let id: i64 = sqlx::query_scalar("SELECT id FROM reviews").fetch_one(w.db().pool()).await.unwrap();

    w.clock.advance(Duration::days(15));
    let mut parked = park_at(s, "review.ending");
    let clock_end = tokio::spawn({
        let s = parked.service.clone();
        async move { s.run_reviews(&Operator::Workers).await.unwrap() }
    });
    parked.arrived.recv().await.unwrap();
    let owner_end = tokio::spawn({
        let (s, lucas) = (s.clone(), w.actor(ids.lucas).await);
        async move { s.end_review_early(&lucas, id).await }
    });
    if backend == Backend::Postgres {
        assert_eq!(second_operation(&w, None, &owner_end).await, Second::Blocked, "the owner waits for the clock");
    }
    parked.release();
    clock_end.await.unwrap();
    let late = owner_end.await.unwrap().unwrap_err();
    assert!(matches!(late, DomainError::AlreadyDecided(_)), "{late:?}");
    assert_eq!(count(s, "SELECT COUNT(*) FROM audit_events WHERE action = 'review.ended'").await, 1);

    // Two instances apply it at once: the first is parked holding the holders' locks.
    let other = Service::with_clock(w.db().clone(), std::sync::Arc::new(w.clock.clone()));
    let mut parked = park_at(s, "review.applying");
    let first = tokio::spawn({
        let (s, lucas) = (parked.service.clone(), w.actor(ids.lucas).await);
        async move { s.apply_review(&lucas, id).await }
    });
    parked.arrived.recv().await.unwrap();
    let second = tokio::spawn({
        let linus = w.actor(ids.linus).await;
        async move { other.apply_review(&linus, id).await }
    });
    if backend == Backend::Postgres {
        assert_eq!(second_operation(&w, None, &second).await, Second::Blocked, "the second waits for the holders");
    }
    parked.release();
    let (first, second) = (first.await.unwrap().unwrap(), second.await.unwrap());
    assert_eq!(first, 3, "the first removed all three");
    assert!(matches!(second, Ok(0) | Err(DomainError::AlreadyDecided(_))), "{second:?}");
    assert_eq!(count(s, "SELECT COUNT(*) FROM audit_events WHERE action = 'assignment.removed'").await, 3);
    assert_eq!(count(s, "SELECT COUNT(*) FROM audit_events WHERE action = 'review.applied'").await, 1);
    assert_eq!(count(s, "SELECT COUNT(*) FROM outbox WHERE kind = 'remove_member'").await, 6, "two roles each, once");
    assert_eq!(count(s, "SELECT COUNT(*) FROM reviews WHERE state = 'applied'").await, 1);
}
