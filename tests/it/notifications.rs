//! Email notifications (issue 13), on SQLite and PostgreSQL, into a real SMTP sink (npm
//! maildev, started by the test command: `QM_TEST_SMTP_URL`, `QM_TEST_MAIL_API`). Each test
//! sends from its own address and reads back only what came from it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;
use chrono::Duration;
use common::World;
use quartermaster::domain::authz::Operator;
use quartermaster::domain::clock::Clock;
use quartermaster::domain::policy::Answer;
use quartermaster::domain::request::Decision;
use quartermaster::domain::DomainError;
use quartermaster::notify::Mailer;
use quartermaster::service::Service;
use quartermaster::store::Backend;
use serde_json::Value;

on_both_databases!(
    each_step_of_a_request_emails_the_right_people_once,
    an_unreachable_mail_server_loses_nothing,
    my_access_sets_the_optional_emails_and_the_workers_send,
    holders_are_warned_before_their_access_ends,
    approvers_are_reminded_then_the_alternates_asked,
    a_deputy_decides_while_the_approver_is_away,
    the_approvals_page_names_a_deputy_without_javascript,
    a_guest_whose_access_ended_is_blocked_then_removed,
    approvers_who_choose_it_get_a_daily_digest,
    a_service_account_has_no_mailbox,
);

/// The SMTP sink the test command started.
pub(crate) fn sink() -> (String, String) {
    let (Ok(smtp), Ok(api)) = (std::env::var("QM_TEST_SMTP_URL"), std::env::var("QM_TEST_MAIL_API")) else {
        panic!(
            "QM_TEST_SMTP_URL / QM_TEST_MAIL_API are not set: run the tests with scripts/test.sh, which starts \
             maildev, or `source scripts/mail-peer.sh start` first"
        );
    };
    (smtp, api)
}

/// A sender address of this test's own, so it reads only its own mail from the shared sink.
pub(crate) fn sender() -> String {
    format!("qm-{:016x}@quartermaster.test", rand::random::<u64>())
}

pub(crate) fn mailer(smtp: &str, from: &str) -> Mailer {
    Mailer::new(smtp, None, &format!("Quartermaster <{from}>"), "https://access.example").unwrap()
}

/// Everything the sink received from `from`, oldest first, once `count` have arrived (the
/// sink parses a message after accepting it, so the last may show a moment later).
pub(crate) async fn received(from: &str, count: usize) -> Vec<Value> {
    let (_, api) = sink();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mails: Vec<Value> =
            reqwest::get(format!("{api}/api/email?from.address={from}")).await.unwrap().json().await.unwrap();
        if mails.len() >= count || std::time::Instant::now() > deadline {
            return mails;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub(crate) fn to(mail: &Value) -> &str {
    mail["to"][0]["address"].as_str().unwrap()
}

pub(crate) fn subjects_to<'a>(mails: &'a [Value], whom: &str) -> Vec<&'a str> {
    mails.iter().filter(|m| to(m) == whom).map(|m| m["subject"].as_str().unwrap()).collect()
}

pub(crate) async fn send(service: &Service) -> usize {
    service.send_notifications(&Operator::Workers, 50).await.unwrap()
}

async fn production_request(w: &World, service: &Service) -> quartermaster::domain::ids::RequestId {
    let maya = w.actor(w.ids.maya).await;
    let mut ask = common::ask(w.ids.production_access, "On call next week <b>for payments</b>");
    ask.answers = vec![Answer { question_id: "service".into(), value: "Payments API".into() }];
    service.submit_request(&maya, ask).await.unwrap().request
}

async fn each_step_of_a_request_emails_the_right_people_once(backend: Backend) {
    let w = World::new(backend).await;
    let (smtp, _) = sink();
    let from = sender();
    let service = w.service.clone().with_mail(Some(mailer(&smtp, &from)));
    let (maya, linus, hana) =
        ("maya@quartermaster.example", "linus@quartermaster.example", "hana@quartermaster.example");

    // A new request: its first approver (Maya's manager) is asked, with a link straight to
    // the decision; Maya, who asked, is not emailed.
    let request = production_request(&w, &service).await;
    assert_eq!(send(&service).await, 1);
    let mails = received(&from, 1).await;
    assert_eq!(mails.len(), 1);
    let ask = &mails[0];
    assert_eq!(to(ask), linus);
    assert_eq!(ask["subject"], "Approval needed: Production Access for Maya Chen");
    let link = format!("https://access.example/approvals#approval-{}", request.0);
    let text = ask["text"].as_str().unwrap();
    let html = ask["html"].as_str().unwrap();
    assert!(text.contains(&format!("Approve or deny: {link}")), "{text}");
    assert!(text.contains("Maya Chen asks for Production Access.") && text.contains("Stage 1 of 2."), "{text}");
    assert!(text.contains("On call next week <b>for payments</b>"), "the text is not escaped: {text}");
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
    assert!(html.contains("On call next week &#60;b&#62;for payments&#60;/b&#62;"), "the HTML is escaped: {html}");
    assert_eq!(send(&service).await, 0, "each is sent once");

    // Stage 1 approved: the Security group is asked (Hana and Grace), and Maya hears of it.
    let linus_actor = w.actor(w.ids.linus).await;
    service.decide(&linus_actor, request, Decision::Approve, "").await.unwrap();
    assert_eq!(send(&service).await, 3);
    let mails = received(&from, 4).await;
    assert_eq!(subjects_to(&mails, hana), ["Approval needed: Production Access for Maya Chen"]);
    assert_eq!(subjects_to(&mails, "grace@quartermaster.example").len(), 1);
    assert_eq!(subjects_to(&mails, maya), ["Stage approved: Production Access"]);
    let stage = mails.iter().find(|m| to(m) == maya).unwrap()["text"].as_str().unwrap().to_owned();
    assert!(stage.contains("Linus Park approved a stage") && stage.contains("Turn these emails off"), "{stage}");

    // Maya turns the optional emails off: she still hears the decision, not that the access
    // is ready.
    let maya_actor = w.actor(w.ids.maya).await;
    service.set_email_choices(&maya_actor, false, false, None).await.unwrap();
    let choices = service.email_choices(&maya_actor).await.unwrap();
    assert_eq!((choices.optional, choices.digest), (false, false));
    let hana_actor = w.actor(w.ids.hana).await;
    service.decide(&hana_actor, request, Decision::Approve, "on call rota checked").await.unwrap();
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(send(&service).await, 1);
    let mails = received(&from, 5).await;
    assert_eq!(subjects_to(&mails, maya), ["Stage approved: Production Access", "Approved: Production Access"]);
    let approved = mails.iter().rfind(|m| to(m) == maya).unwrap()["text"].as_str().unwrap().to_owned();
    assert!(approved.contains("Hana Sato approved the request") && approved.contains("on call rota checked"));
    assert!(!approved.contains("Turn these emails off"), "a decision cannot be turned off: {approved}");
    let delivered: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM assignments WHERE user_id = $1 AND state = 'delivered'")
            .bind(w.ids.maya.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap();
    assert_eq!(delivered, 1, "delivered, and not emailed");

    // The access expires after its 30 days: Maya is told.
    w.clock.advance(Duration::days(31));
    service.expire_assignments(&Operator::Workers).await.unwrap();
    assert_eq!(send(&service).await, 1);
    let mails = received(&from, 6).await;
    let ended = mails.last().unwrap();
    assert_eq!((to(ended), ended["subject"].as_str()), (maya, Some("Access ended: Production Access")));
    assert!(ended["text"].as_str().unwrap().contains("It expired on"), "{ended}");

    // Denied, with the approver's words; the approver is not emailed their own decision.
    let jamal = w.actor(w.ids.jamal).await;
    let crm = service.submit_request(&jamal, common::ask(w.ids.sales_crm, "pipeline review")).await.unwrap().request;
    assert_eq!(send(&service).await, 1);
    let sofia = w.actor(w.ids.sofia).await;
    service.decide(&sofia, crm, Decision::Deny, "use the shared dashboard").await.unwrap();
    assert_eq!(send(&service).await, 1);
    let mails = received(&from, 8).await;
    assert_eq!(subjects_to(&mails, "sofia@quartermaster.example"), ["Approval needed: Sales CRM for Jamal Carter"]);
    assert_eq!(subjects_to(&mails, "jamal@quartermaster.example"), ["Denied: Sales CRM"]);
    let denied = mails.last().unwrap()["text"].as_str().unwrap();
    assert!(denied.contains("Sofia Rossi denied") && denied.contains("use the shared dashboard"), "{denied}");

    // Decided before its email went out: the approver is not asked after the fact.
    let priya = w.actor(w.ids.priya).await;
    let late = service.submit_request(&priya, common::ask(w.ids.sales_crm, "forecasts")).await.unwrap().request;
    service.decide(&sofia, late, Decision::Approve, "").await.unwrap();
    assert_eq!(send(&service).await, 2);
    let mails = received(&from, 9).await;
    assert_eq!(subjects_to(&mails, "priya@quartermaster.example"), ["Approved: Sales CRM"]);
    assert_eq!(subjects_to(&mails, "sofia@quartermaster.example").len(), 1, "not asked about Priya's");
    let skipped: String =
        sqlx::query_scalar("SELECT state FROM notifications WHERE request_id = $1 AND kind = 'decision'")
            .bind(late.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap();
    assert_eq!(skipped, "skipped");
    assert_eq!(mails.len(), 9, "nothing else, nothing twice");
    let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE state = 'sent'")
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(sent, 9, "as many sent as arrived");
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE state NOT IN ('sent', 'skipped')")
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// The mail server is down: the notification waits (its error kept, no attempt spent however
/// long the outage) and goes out once the server is back, once.
async fn an_unreachable_mail_server_loses_nothing(backend: Backend) {
    let w = World::new(backend).await;
    let (smtp, _) = sink();
    let from = sender();
    // A port nobody listens on: taken, then let go.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = w.service.clone().with_mail(Some(mailer(&format!("smtp://127.0.0.1:{closed}"), &from)));
    let request = production_request(&w, &down).await;
    let state = async || -> (String, i64, String) {
        sqlx::query_as("SELECT state, attempts, last_error FROM notifications WHERE request_id = $1")
            .bind(request.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap()
    };
    // An hour of outage, tried every half minute: it waits, and no attempt is spent.
    for _ in 0..120 {
        assert_eq!(send(&down).await, 1);
        assert_eq!(send(&down).await, 0, "not before half a minute");
        w.clock.advance(Duration::seconds(30));
    }
    let (state_now, attempts, error) = state().await;
    assert_eq!((state_now.as_str(), attempts), ("pending", 0), "an outage fails nothing");
    assert!(!error.is_empty(), "the error is kept");

    let up = w.service.clone().with_mail(Some(mailer(&smtp, &from)));
    assert_eq!(send(&up).await, 1);
    let mails = received(&from, 1).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(to(&mails[0]), "linus@quartermaster.example");
    assert_eq!(state().await.0, "sent");
    w.clock.advance(Duration::hours(1));
    assert_eq!(send(&up).await, 0, "sent once");
}

/// The portal configured with a mail server (as `--smtp-url` and `--mail-from` set it): a
/// person turns the optional emails off on My Access with a plain form (no JavaScript), and
/// the running workers email an approver with a link back to this portal.
async fn my_access_sets_the_optional_emails_and_the_workers_send(backend: Backend) {
    let (smtp, _) = sink();
    let from = sender();
    let app = common::spawn_app_with(backend, |args| {
        args.demo = true;
        args.mail.smtp_url = Some(smtp.clone());
        args.mail.from = format!("Quartermaster <{from}>");
    })
    .await;
    let c = common::client();
    app.sign_in(&c, app.ids.maya).await;
    let page = app.page(&c, "/settings").await;
    assert!(page.contains("id=\"email-settings\""), "the settings are on their page");
    assert!(!page.contains("sends no email yet"), "a mail server is set");
    assert!(page.contains("name=\"optional\" value=\"on\" checked"), "optional emails start on");

    // Unticked, the box sends nothing: saved as off.
    let res = app.submit(&c, "/settings", "/api/save_email_settings", &Vec::<(String, String)>::new()).await;
    assert_eq!(res.status(), 302, "back to the page");
    let page = app.page(&c, "/settings").await;
    assert!(page.contains("Saved: you are emailed only what needs you"), "the outcome is shown");
    assert!(!page.contains("name=\"optional\" value=\"on\" checked"), "shown as off");
    let on: i64 = sqlx::query_scalar("SELECT CAST(email_optional AS BIGINT) FROM users WHERE id = $1")
        .bind(app.ids.maya.0)
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    assert_eq!(on, 0);
    let audited: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = 'user.email_preferences'")
        .fetch_one(app.service.db().pool())
        .await
        .unwrap();
    assert_eq!(audited, 1);

    // A request: the workers of the running portal email Linus, linking back to it.
    let maya = app.service.actor(app.ids.maya).await.unwrap().unwrap();
    let mut ask = common::ask(app.ids.production_access, "on call");
    ask.answers = vec![Answer { question_id: "service".into(), value: "Payments API".into() }];
    let request = app.service.submit_request(&maya, ask).await.unwrap().request;
    let mails = received(&from, 1).await;
    assert_eq!(mails.len(), 1, "sent by the workers");
    assert_eq!(to(&mails[0]), "linus@quartermaster.example");
    let link = format!("{}/approvals#approval-{}", app.base, request.0);
    assert!(mails[0]["text"].as_str().unwrap().contains(&link), "{}", mails[0]["text"]);

    // Without a mail server, the page says so.
    let quiet = common::spawn_app(backend, true).await;
    let c = common::client();
    quiet.sign_in(&c, quiet.ids.maya).await;
    assert!(quiet.page(&c, "/settings").await.contains("sends no email yet"));
}

/// Every warning pass until none is behind (the first looks an hour of end times ahead at a
/// time, per warning).
async fn warn_all(service: &Service) {
    for _ in 0..1_000 {
        if service.warn_of_expiry(&Operator::Workers).await.unwrap() == 0 {
            return;
        }
    }
    panic!("the expiry warnings never caught up");
}

/// Holders hear 14 and 3 days before their access ends, once each; a warning whose access
/// ended before it went out is not sent.
async fn holders_are_warned_before_their_access_ends(backend: Backend) {
    let w = World::new(backend).await;
    let (smtp, _) = sink();
    let from = sender();
    let service = w.service.clone().with_mail(Some(mailer(&smtp, &from)));
    // Thirty days of Sales Analytics, without approval, for Maya and Priya.
    let (maya, priya) = (w.actor(w.ids.maya).await, w.actor(w.ids.priya).await);
    service.submit_request(&maya, common::ask(w.ids.sales_analytics, "reports")).await.unwrap();
    let priya_asked = service.submit_request(&priya, common::ask(w.ids.sales_analytics, "reports")).await.unwrap();
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(send(&service).await, 2, "ready, each");
    warn_all(&service).await;
    assert_eq!(send(&service).await, 0, "thirty days away: nothing yet");
    let ending = |mails: &[Value], whom: &str| -> usize {
        subjects_to(mails, whom).iter().filter(|s| s.starts_with("Ending soon: Sales Analytics (30 days)")).count()
    };

    // Thirteen days left: the fourteen-day warning, once.
    w.clock.advance(Duration::days(17));
    warn_all(&service).await;
    warn_all(&service).await;
    assert_eq!(send(&service).await, 2);
    let mails = received(&from, 4).await;
    assert_eq!((ending(&mails, "maya@quartermaster.example"), ending(&mails, "priya@quartermaster.example")), (1, 1));
    let text = mails[3]["text"].as_str().unwrap();
    assert!(
        text.contains("access to Sales Analytics (30 days) ends on Wednesday 2 December 2026, 09:00 UTC."),
        "{text}"
    );

    // Three days left: the three-day warning; Priya gives hers up before it goes out.
    w.clock.advance(Duration::days(10));
    warn_all(&service).await;
    let assignment: i64 = sqlx::query_scalar("SELECT assignment_id FROM requests WHERE id = $1")
        .bind(priya_asked.request.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    service.give_up_assignment(&priya, quartermaster::domain::ids::AssignmentId(assignment), "done").await.unwrap();
    assert_eq!(send(&service).await, 2, "Maya's, and Priya's (skipped)");
    let mails = received(&from, 5).await;
    assert_eq!(mails.len(), 5);
    assert_eq!(ending(&mails, "maya@quartermaster.example"), 2);
    assert_eq!(ending(&mails, "priya@quartermaster.example"), 1, "not warned of what she gave up");
    warn_all(&service).await;
    assert_eq!(send(&service).await, 0, "each warning once");
}

/// A stage with a reminder and alternates, on the injected clock: the approver is reminded
/// part way (once), the alternates are asked when the time runs out (the first approver is
/// not asked again), both are reminded in the new period, and the requester hears when it
/// expires. Every step is audited.
async fn approvers_are_reminded_then_the_alternates_asked(backend: Backend) {
    use quartermaster::domain::ids::CatalogId;
    use quartermaster::domain::policy::{ApproverSpec, OnTimeout, Policy, RequestorScope, Stage};
    let w = World::new(backend).await;
    let (smtp, _) = sink();
    let from = sender();
    let service = w.service.clone().with_mail(Some(mailer(&smtp, &from)));
    let eng: i64 = sqlx::query_scalar("SELECT catalog_id FROM access_packages WHERE id = $1")
        .bind(w.ids.developer_tools.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    let linus = w.actor(w.ids.linus).await;
    let mut asking = Policy::new(w.ids.developer_tools, "Ask Sofia", RequestorScope::AllMembers, vec![]);
    asking.approval.stages.push(Stage {
        timeout_days: 5,
        remind_after_days: Some(3),
        on_timeout: OnTimeout::Escalate,
        escalation: vec![ApproverSpec::User { id: w.ids.hana }],
        ..Stage::new(vec![ApproverSpec::User { id: w.ids.sofia }])
    });
    let policy = service.package_manager(&linus, CatalogId(eng)).unwrap().create_policy(asking).await.unwrap();
    let jamal = w.actor(w.ids.jamal).await;
    let mut ask = common::ask(w.ids.developer_tools, "builds");
    ask.policy = Some(policy);
    let request = service.submit_request(&jamal, ask).await.unwrap().request;
    let (sofia, hana) = ("sofia@quartermaster.example", "hana@quartermaster.example");
    assert_eq!(send(&service).await, 1);
    assert_eq!(service.send_reminders(&Operator::Workers).await.unwrap(), 0, "not yet");

    // Three days in: Sofia is reminded, once.
    w.clock.advance(Duration::days(3));
    assert_eq!(service.send_reminders(&Operator::Workers).await.unwrap(), 1);
    assert_eq!(service.send_reminders(&Operator::Workers).await.unwrap(), 0, "once");
    assert_eq!(send(&service).await, 1);
    let mails = received(&from, 2).await;
    let subject = "Approval needed: Developer Tools for Jamal Carter";
    assert_eq!(subjects_to(&mails, sofia), [subject.to_owned(), format!("Reminder: {subject}")]);
    assert!(mails[1]["text"].as_str().unwrap().contains("It is still waiting for a decision."));

    // Five days in: the stage times out and goes to Hana, the alternate; Sofia is not asked
    // again.
    w.clock.advance(Duration::days(2));
    assert_eq!(service.time_out_stages(&Operator::Workers).await.unwrap(), 1);
    assert_eq!(send(&service).await, 1);
    let mails = received(&from, 3).await;
    assert_eq!(subjects_to(&mails, hana), [subject]);
    assert!(mails[2]["text"].as_str().unwrap().contains("you are its alternate approver"), "{}", mails[2]["text"]);
    assert_eq!(subjects_to(&mails, sofia).len(), 2);

    // Three days into the alternates' period: both are reminded; then it expires, and Jamal
    // hears.
    w.clock.advance(Duration::days(3));
    assert_eq!(service.send_reminders(&Operator::Workers).await.unwrap(), 1);
    assert_eq!(send(&service).await, 2);
    w.clock.advance(Duration::days(2));
    assert_eq!(service.time_out_stages(&Operator::Workers).await.unwrap(), 1);
    assert_eq!(service.send_reminders(&Operator::Workers).await.unwrap(), 0, "no reminder after it ends");
    assert_eq!(send(&service).await, 1);
    let mails = received(&from, 6).await;
    assert_eq!(mails.len(), 6);
    assert_eq!(subjects_to(&mails, hana), [subject.to_owned(), format!("Reminder: {subject}")]);
    assert_eq!(subjects_to(&mails, sofia).len(), 3);
    assert_eq!(subjects_to(&mails, "jamal@quartermaster.example"), ["Request expired: Developer Tools"]);
    let steps: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE object_type = 'request' AND object_id = $1 ORDER BY id",
    )
    .bind(request.0)
    .fetch_all(w.db().pool())
    .await
    .unwrap();
    assert_eq!(
        steps,
        ["request.submitted", "request.reminded", "request.escalated", "request.reminded", "request.expired"]
    );

    // A request canceled (or decided) keeps no reminder.
    let priya = w.actor(w.ids.priya).await;
    let mut ask = common::ask(w.ids.developer_tools, "builds");
    ask.policy = Some(policy);
    let canceled = service.submit_request(&priya, ask).await.unwrap().request;
    let remind_at = async || -> Option<i64> {
        sqlx::query_scalar("SELECT remind_at FROM requests WHERE id = $1")
            .bind(canceled.0)
            .fetch_one(w.db().pool())
            .await
            .unwrap()
    };
    assert!(remind_at().await.is_some());
    service.cancel_request(&priya, canceled).await.unwrap();
    assert_eq!(remind_at().await, None);
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM requests WHERE remind_at IS NOT NULL")
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(kept, 0, "nothing ended keeps a reminder");
}

/// Out of office: while Sofia is away, a stage that comes to her goes to Hana, her deputy, as
/// well (emailed, and able to decide); never to the person who asked; stages already running
/// are left alone; set and ended by her or an administrator, audited.
async fn a_deputy_decides_while_the_approver_is_away(backend: Backend) {
    let w = World::new(backend).await;
    let (smtp, _) = sink();
    let from = sender();
    let service = w.service.clone().with_mail(Some(mailer(&smtp, &from)));
    let (sofia, jamal, priya, grace) = (
        w.actor(w.ids.sofia).await,
        w.actor(w.ids.jamal).await,
        w.actor(w.ids.priya).await,
        w.actor(w.ids.grace).await,
    );
    let now = w.clock.now();
    let week = (now, now + Duration::days(7));
    assert!(service.set_deputy(&jamal, w.ids.sofia, "hana@quartermaster.example", week).await.is_err(), "not his");
    assert!(service.set_deputy(&sofia, w.ids.sofia, "sofia@quartermaster.example", week).await.is_err());
    assert!(service.set_deputy(&sofia, w.ids.sofia, "noah@northwind.example", week).await.is_err(), "a guest");
    service.set_deputy(&sofia, w.ids.sofia, "hana@quartermaster.example", week).await.unwrap();

    // Jamal asks for Sales CRM (his manager approves): Sofia and Hana are both asked.
    let asked = service.submit_request(&jamal, common::ask(w.ids.sales_crm, "pipeline")).await.unwrap().request;
    assert_eq!(send(&service).await, 2);
    let mails = received(&from, 2).await;
    let subject = "Approval needed: Sales CRM for Jamal Carter";
    assert_eq!(subjects_to(&mails, "sofia@quartermaster.example"), [subject]);
    assert_eq!(subjects_to(&mails, "hana@quartermaster.example"), [subject]);
    let to_hana = mails.iter().find(|m| to(m) == "hana@quartermaster.example").unwrap()["text"].as_str().unwrap();
    assert!(to_hana.contains("You are asked as Sofia Rossi's deputy while they are away."), "{to_hana}");
    let to_sofia = mails.iter().find(|m| to(m) == "sofia@quartermaster.example").unwrap()["text"].as_str().unwrap();
    assert!(!to_sofia.contains("deputy"), "{to_sofia}");
    let hana = w.actor(w.ids.hana).await;
    service.decide(&hana, asked, Decision::Approve, "for Sofia").await.unwrap();
    let by: i64 = sqlx::query_scalar("SELECT approver_id FROM decisions WHERE request_id = $1")
        .bind(asked.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    assert_eq!(by, w.ids.hana.0, "the deputy decided, on the record");

    // An administrator names Priya instead: her own request does not go to her.
    service.set_deputy(&grace, w.ids.sofia, "priya@quartermaster.example", week).await.unwrap();
    let own = service.submit_request(&priya, common::ask(w.ids.sales_crm, "forecasts")).await.unwrap().request;
    let approvers = async |id: quartermaster::domain::ids::RequestId| -> Vec<i64> {
        sqlx::query_scalar("SELECT user_id FROM request_approvers WHERE request_id = $1 ORDER BY user_id")
            .bind(id.0)
            .fetch_all(w.db().pool())
            .await
            .unwrap()
    };
    assert_eq!(approvers(own).await, [w.ids.sofia.0], "never the person who asked");

    // Hana again: Priya's request, already waiting, is left as it was. Then Sofia ends it.
    service.set_deputy(&sofia, w.ids.sofia, "hana@quartermaster.example", week).await.unwrap();
    assert_eq!(approvers(own).await, [w.ids.sofia.0], "a stage already running is left alone");
    let panel = service.deputies_of(&sofia, w.ids.sofia).await.unwrap();
    let period = panel.own.expect("Hana stands in");
    assert_eq!(period.deputy, "Hana Sato");
    assert_eq!(service.deputies_of(&hana, w.ids.hana).await.unwrap().standing_in.len(), 1);
    assert!(service.deputies_of(&jamal, w.ids.sofia).await.is_err(), "not his to read");
    assert!(service.end_deputy(&jamal, period.id).await.is_err(), "not his to end");
    service.end_deputy(&sofia, period.id).await.unwrap();
    assert!(service.end_deputy(&sofia, period.id).await.is_err(), "ended once");
    assert!(service.deputies_of(&sofia, w.ids.sofia).await.unwrap().own.is_none());

    // After it ends (or once its days are over), stages come to Sofia alone.
    service
        .set_deputy(&sofia, w.ids.sofia, "hana@quartermaster.example", (now, now + Duration::days(1)))
        .await
        .unwrap();
    w.clock.advance(Duration::days(2));
    let am = service.assignment_manager_of(&grace, w.ids.sales_crm).await.unwrap();
    let held: i64 = sqlx::query_scalar("SELECT id FROM assignments WHERE user_id = $1 AND package_id = $2")
        .bind(w.ids.jamal.0)
        .bind(w.ids.sales_crm.0)
        .fetch_one(w.db().pool())
        .await
        .unwrap();
    am.remove_from_package(w.ids.sales_crm, quartermaster::domain::ids::AssignmentId(held), "moved").await.unwrap();
    service.deliver_pending(&Operator::Workers, 50).await.unwrap();
    let again = service.submit_request(&jamal, common::ask(w.ids.sales_crm, "back")).await.unwrap().request;
    assert_eq!(approvers(again).await, [w.ids.sofia.0], "the period is over");
    let steps: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE action LIKE 'user.deputy%' AND object_id = $1 ORDER BY id",
    )
    .bind(w.ids.sofia.0)
    .fetch_all(w.db().pool())
    .await
    .unwrap();
    assert_eq!(
        steps,
        ["user.deputy_set", "user.deputy_set", "user.deputy_set", "user.deputy_ended", "user.deputy_set"]
    );

    // A later stage starting gets the deputy of an approver away now, not of one away later:
    // Hana names Omar from today, Grace names Kai from next week; Maya's Production Access
    // reaches Security (Hana, Grace) when Linus approves its first stage.
    let now = w.clock.now();
    service.set_deputy(&hana, w.ids.hana, "omar@quartermaster.example", (now, now + Duration::days(5))).await.unwrap();
    let later = (now + Duration::days(7), now + Duration::days(9));
    service.set_deputy(&grace, w.ids.grace, "kai@quartermaster.example", later).await.unwrap();
    let prod = production_request(&w, &service).await;
    let stage_two = async || -> Vec<(i64, Option<i64>)> {
        sqlx::query_as(
            "SELECT user_id, deputy_for FROM request_approvers WHERE request_id = $1 AND stage = 2 ORDER BY user_id",
        )
        .bind(prod.0)
        .fetch_all(w.db().pool())
        .await
        .unwrap()
    };
    assert!(!stage_two().await.iter().any(|(u, _)| *u == w.ids.omar.0), "not before stage 2 starts");
    service.decide(&w.actor(w.ids.linus).await, prod, Decision::Approve, "").await.unwrap();
    let mut expected = vec![(w.ids.grace.0, None), (w.ids.hana.0, None), (w.ids.omar.0, Some(w.ids.hana.0))];
    expected.sort();
    assert_eq!(stage_two().await, expected, "Omar for Hana; not Kai, whose period has not begun");
}

/// The Approvals page, without JavaScript: Sofia names a deputy with a plain form and sees it;
/// her deputy's page says whom she decides for.
async fn the_approvals_page_names_a_deputy_without_javascript(backend: Backend) {
    let app = common::spawn_app(backend, true).await;
    let c = common::client();
    app.sign_in(&c, app.ids.sofia).await;
    assert!(app.page(&c, "/approvals").await.contains("No deputy: requests come to you alone."));
    let until = (chrono::Utc::now() + Duration::days(5)).format("%Y-%m-%d").to_string();
    let form = [("deputy", "hana@quartermaster.example".to_owned()), ("from", String::new()), ("until", until)];
    let res = app.submit(&c, "/approvals", "/api/set_deputy", &form).await;
    assert_eq!(res.status(), 302);
    let page = app.page(&c, "/approvals").await;
    assert!(page.contains("Saved: hana@quartermaster.example decides for you"), "the outcome is shown");
    assert!(page.contains("id=\"deputy-now\"") && page.contains("Hana Sato"), "and the period");
    let bad = [("deputy", "nobody@quartermaster.example".to_owned()), ("until", "2020-01-01".to_owned())];
    app.submit(&c, "/approvals", "/api/set_deputy", &bad).await;
    assert!(app.page(&c, "/approvals").await.contains("the period must end after it starts"), "refused, saying why");
    let h = common::client();
    app.sign_in(&h, app.ids.hana).await;
    let page = app.page(&h, "/approvals").await;
    assert!(
        page.contains("id=\"standing-in\"") && page.contains("Sofia Rossi"),
        "the deputy sees whom she stands in for"
    );
}

/// A guest whose access ended: Northwind blocks its guests seven days after their last
/// access ends and removes them thirty days after that. Noah is blocked once (his session
/// ended, demo sign-in refused), let in again when given access, and removed after the
/// second block's thirty days; each step audited.
async fn a_guest_whose_access_ended_is_blocked_then_removed(backend: Backend) {
    use chrono::TimeZone;
    use quartermaster::domain::ids::{AssignmentId, CatalogId, OrgId, PolicyId};
    let clock =
        quartermaster::domain::clock::ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap());
    let app = common::spawn_app_with_clock(backend, clock.clone()).await;
    let (s, pool) = (&app.service, app.service.db().pool());
    let grace = s.actor(app.ids.grace).await.unwrap().unwrap();
    let noah = app.ids.noah;
    let org: i64 = sqlx::query_scalar("SELECT id FROM connected_orgs WHERE domain = 'northwind.example'")
        .fetch_one(pool)
        .await
        .unwrap();
    let admin = s.administrator(&grace).unwrap();
    assert!(admin.set_guest_lifecycle(OrgId(org), (Some(0), None), None).await.is_err(), "at least a day");
    admin.set_guest_lifecycle(OrgId(org), (Some(7), Some(30)), None).await.unwrap();
    let (catalog, policy): (i64, i64) = sqlx::query_as(
        "SELECT p.catalog_id, y.id FROM access_packages p JOIN policies y ON y.package_id = p.id \
         WHERE p.id = $1 AND y.name LIKE 'Northwind%'",
    )
    .bind(app.ids.sales_crm.0)
    .fetch_one(pool)
    .await
    .unwrap();
    let give = async |end: Option<chrono::DateTime<chrono::Utc>>| {
        let am = s.assignment_manager(&grace, CatalogId(catalog)).unwrap();
        am.assign_directly(noah, app.ids.sales_crm, PolicyId(policy), end, "the joint project").await.unwrap();
        s.deliver_pending(&Operator::Workers, 50).await.unwrap();
    };
    let steps = async || -> (usize, usize) { s.guest_lifecycle(&Operator::Workers).await.unwrap() };
    let sign_in = async || -> u16 {
        let res = app.post_form(&common::client(), "/auth/demo", &[("user_id", noah.0.to_string())]).await;
        res.status().as_u16()
    };

    // Five days of Sales CRM: signed in meanwhile; then it expires.
    give(Some(clock.now() + Duration::days(5))).await;
    let c = common::client();
    app.sign_in(&c, noah).await;
    clock.advance(Duration::days(6));
    s.expire_assignments(&Operator::Workers).await.unwrap();
    assert_eq!(steps().await, (0, 0), "a day after it ended: nothing yet");

    // Seven days after: blocked, once; his session ends and sign-in is refused.
    clock.advance(Duration::days(6));
    assert_eq!(steps().await, (1, 0));
    assert_eq!(steps().await, (0, 0), "once");
    let sessions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE user_id = $1")
        .bind(noah.0)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0, "signed out everywhere");
    let ended: String =
        sqlx::query_scalar("SELECT after FROM audit_events WHERE action = 'user.sign_in_blocked' AND object_id = $1")
            .bind(noah.0)
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(ended.contains("\"sessions_ended\":1"), "his one session: {ended}");
    assert_eq!(sign_in().await, 403);

    // Given access again: he may sign in; taken away, the days count anew.
    give(None).await;
    assert_eq!(sign_in().await, 303, "access given again lets him in");
    let held: i64 = sqlx::query_scalar("SELECT id FROM assignments WHERE user_id = $1 AND state = 'delivered'")
        .bind(noah.0)
        .fetch_one(pool)
        .await
        .unwrap();
    let am = s.assignment_manager(&grace, CatalogId(catalog)).unwrap();
    am.remove_from_package(app.ids.sales_crm, AssignmentId(held), "project over").await.unwrap();
    s.deliver_pending(&Operator::Workers, 50).await.unwrap();
    assert_eq!(sign_in().await, 303, "the days count anew: not blocked at once");
    clock.advance(Duration::days(8));
    assert_eq!(steps().await, (1, 0), "blocked again");
    clock.advance(Duration::days(29));
    assert_eq!(steps().await, (0, 0), "not yet thirty days after the block");
    clock.advance(Duration::days(2));
    assert_eq!(steps().await, (0, 1), "removed");
    let state: String =
        sqlx::query_scalar("SELECT state FROM users WHERE id = $1").bind(noah.0).fetch_one(pool).await.unwrap();
    assert_eq!(state, "disabled");
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE object_type = 'user' AND object_id = $1 \
         AND action IN ('user.sign_in_blocked', 'user.removed') ORDER BY id",
    )
    .bind(noah.0)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(audited, ["user.sign_in_blocked", "user.sign_in_blocked", "user.removed"]);

    // Let back in by an administrator: not blocked, and not removed again at once.
    s.administrator(&grace).unwrap().set_user_active(noah, true).await.unwrap();
    assert_eq!(sign_in().await, 303, "let back in");
    clock.advance(Duration::days(3));
    assert_eq!(steps().await, (0, 0), "the days count from being let back in");
}

/// The daily digest: Sofia chooses it; each morning (from 07:00 on her clock: UTC, then New
/// York's once she says she is there) she gets one email listing the decisions waiting for
/// her, once a day of hers (a move to Tokyo the same day brings no second), its times on her
/// clock; none once she turns it off.
async fn approvers_who_choose_it_get_a_daily_digest(backend: Backend) {
    let w = World::new(backend).await;
    let (smtp, _) = sink();
    let from = sender();
    let service = w.service.clone().with_mail(Some(mailer(&smtp, &from)));
    let (sofia, jamal, priya) = (w.actor(w.ids.sofia).await, w.actor(w.ids.jamal).await, w.actor(w.ids.priya).await);
    service.set_email_choices(&sofia, true, true, None).await.unwrap();
    let choices = service.email_choices(&sofia).await.unwrap();
    assert_eq!((choices.optional, choices.digest, choices.time_zone), (true, true, None));
    service.submit_request(&jamal, common::ask(w.ids.sales_crm, "pipeline")).await.unwrap();
    let late = service.submit_request(&priya, common::ask(w.ids.sales_crm, "forecasts")).await.unwrap().request;
    assert_eq!(send(&service).await, 2, "the two requests' own emails");

    // 09:00 on the World's first day: one digest, once.
    assert_eq!(service.queue_digests(&Operator::Workers).await.unwrap(), 1);
    assert_eq!(service.queue_digests(&Operator::Workers).await.unwrap(), 0, "once a day");
    assert_eq!(send(&service).await, 1);
    let mails = received(&from, 3).await;
    let digest = mails.last().unwrap();
    assert_eq!(
        (to(digest), digest["subject"].as_str()),
        ("sofia@quartermaster.example", Some("2 requests wait for your decision"))
    );
    let text = digest["text"].as_str().unwrap();
    assert!(
        text.contains("Sales CRM for Jamal Carter: decide by") && text.contains("Sales CRM for Priya Nair"),
        "{text}"
    );
    assert!(text.contains("Open Approvals: https://access.example/approvals"), "{text}");

    // She works from New York now. The next day at 07:00 UTC it is 02:00 there: nothing yet;
    // at 07:00 in New York, one (one request left), its times in New York's.
    service.decide(&sofia, late, Decision::Approve, "").await.unwrap();
    let refused = service.set_email_choices(&sofia, true, true, Some(Some("Mars/Olympus_Mons"))).await;
    assert!(matches!(refused, Err(DomainError::Invalid { .. })), "{refused:?}");
    let zone = service.set_email_choices(&sofia, true, true, Some(Some("America/New_York"))).await.unwrap();
    assert_eq!(zone.as_deref(), Some("America/New_York"));
    assert_eq!(service.email_choices(&sofia).await.unwrap().time_zone.as_deref(), Some("America/New_York"));
    w.clock.advance(Duration::hours(22));
    assert_eq!(service.queue_digests(&Operator::Workers).await.unwrap(), 0, "02:00 in New York: not yet");
    w.clock.advance(Duration::hours(5));
    assert_eq!(service.queue_digests(&Operator::Workers).await.unwrap(), 1, "07:00 in New York");
    assert_eq!(service.queue_digests(&Operator::Workers).await.unwrap(), 0, "once a day");
    assert_eq!(send(&service).await, 2, "the digest, and Priya's approval");
    let mails = received(&from, 5).await;
    assert_eq!(
        subjects_to(&mails, "sofia@quartermaster.example").last().copied(),
        Some("1 request waits for your decision")
    );
    let digest = mails.iter().rev().find(|m| to(m) == "sofia@quartermaster.example").unwrap();
    let text = digest["text"].as_str().unwrap();
    assert!(text.contains("Sales CRM for Jamal Carter: decide by") && text.contains(" EST"), "{text}");
    assert!(!text.contains(" UTC"), "{text}");

    // Flown to Tokyo, where it is 21:00 the same day: that day had its digest. At 07:00 the
    // next morning there, the next, on Tokyo's clock (her choice, before the London her
    // sign-in provider gives).
    sqlx::query("UPDATE users SET provider_time_zone = 'Europe/London' WHERE id = $1")
        .bind(w.ids.sofia.0)
        .execute(w.db().pool())
        .await
        .unwrap();
    service.set_email_choices(&sofia, true, true, Some(Some("Asia/Tokyo"))).await.unwrap();
    assert_eq!(service.queue_digests(&Operator::Workers).await.unwrap(), 0, "one a day on her clock");
    w.clock.advance(Duration::hours(10));
    assert_eq!(service.queue_digests(&Operator::Workers).await.unwrap(), 1, "07:00 in Tokyo");
    assert_eq!(send(&service).await, 1);
    let mails = received(&from, 6).await;
    let text = mails.last().unwrap()["text"].as_str().unwrap();
    assert!(text.contains("Sales CRM for Jamal Carter: decide by") && text.contains(" JST (UTC+09:00)"), "{text}");

    // Turned off: no digest the day after.
    service.set_email_choices(&sofia, true, false, None).await.unwrap();
    w.clock.advance(Duration::days(1));
    assert_eq!(service.queue_digests(&Operator::Workers).await.unwrap(), 0);
}

/// A service account holds access like anyone but has no mailbox: given and then taken the
/// same access as a person, it is queued no email, where the person is.
async fn a_service_account_has_no_mailbox(backend: Backend) {
    let (smtp, _) = sink();
    let from = sender();
    let app = common::spawn_app_with(backend, |args| {
        args.no_workers = true;
        args.mail.smtp_url = Some(smtp.clone());
        args.mail.from = format!("Quartermaster <{from}>");
    })
    .await;
    let (s, ids, pool) = (&app.service, &app.ids, app.service.db().pool());
    let grace = s.actor(ids.grace).await.unwrap().unwrap();
    let robot = s.create_service_account(&grace, "Nightly Sync", "").await.unwrap();
    let policy: i64 = sqlx::query_scalar("SELECT id FROM policies WHERE package_id = $1 ORDER BY id LIMIT 1")
        .bind(ids.developer_tools.0)
        .fetch_one(pool)
        .await
        .unwrap();
    let manager = s.assignment_manager_of(&grace, ids.developer_tools).await.unwrap();
    for holder in [robot, ids.kai] {
        let policy = quartermaster::domain::ids::PolicyId(policy);
        manager.assign_directly(holder, ids.developer_tools, policy, None, "test").await.unwrap();
        let assignment: i64 = sqlx::query_scalar("SELECT id FROM assignments WHERE user_id = $1 AND package_id = $2")
            .bind(holder.0)
            .bind(ids.developer_tools.0)
            .fetch_one(pool)
            .await
            .unwrap();
        manager.remove_assignment(quartermaster::domain::ids::AssignmentId(assignment), "test").await.unwrap();
    }
    let mail = |user: i64| async move {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM notifications WHERE recipient_id = $1")
            .bind(user)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    assert_eq!(mail(robot.0).await, 0, "nothing for the service account");
    assert!(mail(ids.kai.0).await > 0, "the person is told");
}
