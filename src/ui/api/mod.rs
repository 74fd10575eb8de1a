//! Server functions: thin adapters. Each finds who is calling, makes one service call, and
//! maps the error. No SQL and no role checks here: the service and the domain decide.

use std::collections::HashMap;

use leptos::prelude::*;

use super::error::AppError;
use crate::views::*;

mod assignments;
mod catalogs;
mod connectors;
mod drafts;
mod orgs;
mod reviews;
mod tokens;
pub use assignments::*;
pub use catalogs::*;
pub use connectors::*;
pub use drafts::*;
pub use orgs::*;
pub use reviews::*;
pub use tokens::*;

#[cfg(feature = "ssr")]
mod server {
    use leptos::prelude::*;
    use tower_sessions::Session;

    use crate::domain::authz::Actor;
    use crate::service::Service;
    use crate::ui::error::AppError;
    use crate::views::Notice;

    use crate::ui::NOTICE_KEY;

    pub fn service() -> Result<Service, AppError> {
        use_context::<Service>().ok_or(AppError::Internal)
    }

    pub async fn session() -> Result<Session, AppError> {
        leptos_axum::extract::<Session>().await.map_err(|e| {
            tracing::error!(error = %e, "no session layer");
            AppError::Internal
        })
    }

    /// The signed-in actor, if any.
    pub async fn signed_in() -> Result<Option<(Service, Actor)>, AppError> {
        let service = service()?;
        let session = session().await?;
        let settings = use_context::<crate::auth::SessionSettings>().unwrap_or_default();
        let actor = match use_context::<crate::auth::ActorCell>() {
            Some(cell) => cell.get(&session, &service, &settings).await?,
            None => crate::auth::session_actor(&session, &service, &settings).await?,
        };
        Ok(actor.map(|actor| (service, actor)))
    }

    /// The signed-in actor, or `Unauthenticated` (401).
    pub async fn actor() -> Result<(Service, Actor), AppError> {
        signed_in().await?.ok_or(AppError::Unauthenticated)
    }

    /// Is this call a plain HTML form post (JavaScript off)? Then the answer is a redirect back
    /// to the page, and the outcome travels in the session to be shown there once.
    pub fn is_plain_form_post() -> bool {
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.headers.get(http::header::ACCEPT).cloned())
            .and_then(|v| v.to_str().ok().map(|s| s.contains("text/html")))
            .unwrap_or(false)
    }

    /// Hand the outcome of an action to the page: for plain form posts it is kept in the
    /// session and shown on the next render.
    pub async fn finish(result: Result<Notice, AppError>) -> Result<Notice, AppError> {
        if is_plain_form_post() {
            let notice = match &result {
                Ok(n) => n.clone(),
                Err(e) => Notice { ok: false, text: e.to_string(), field: e.field().map(str::to_owned) },
            };
            keep(notice).await;
        }
        result
    }

    /// Like [`finish`], but a success moves on to the page at `path` (a new object's page,
    /// the list after a deletion), with or without JavaScript; the outcome waits there in
    /// the session. A failure stays on the page the form is on.
    pub async fn finish_at(result: Result<Notice, AppError>, path: &str) -> Result<Notice, AppError> {
        match &result {
            Ok(notice) => {
                keep(notice.clone()).await;
                leptos_axum::redirect(path);
                result
            }
            Err(_) => finish(result).await,
        }
    }

    /// Go to the page at `path` with this outcome waiting there (a refusal that belongs to
    /// another page, such as a builder problem found at the end, shown at its step).
    pub async fn finish_to(notice: Notice, path: &str) {
        keep(notice).await;
        leptos_axum::redirect(path);
    }

    /// Keep the outcome in the session for the next page shown. Only into a signed-in
    /// session: an anonymous post must not create a stored session just to say "please sign
    /// in" (the sign-in page says that).
    async fn keep(notice: Notice) {
        if let Ok(session) = session().await {
            if session.get::<i64>(crate::auth::USER_KEY).await.ok().flatten().is_some() {
                let _ = session.insert(NOTICE_KEY, notice).await;
            }
        }
    }

    /// The notice carried over a redirect, taken from the session once per request (a page
    /// may be rendered more than once while its data loads; each rendering sees the same).
    pub async fn take_notice() -> Result<Option<Notice>, AppError> {
        let cell = use_context::<crate::ui::NoticeCell>();
        if let Some(taken) = cell.as_ref().and_then(|c| c.0.get()) {
            return Ok(taken.clone());
        }
        let session = session().await?;
        // Read first: removing marks the session modified, and a modified session is written
        // back — a database write on every page view when there is nothing to take.
        let notice = match session.get::<Notice>(NOTICE_KEY).await.map_err(|_| AppError::Internal)? {
            Some(_) => session.remove::<Notice>(NOTICE_KEY).await.map_err(|_| AppError::Internal)?,
            None => None,
        };
        if let Some(cell) = cell {
            let _ = cell.0.set(notice.clone());
        }
        Ok(notice)
    }
}

#[cfg(feature = "ssr")]
fn ok(text: impl Into<String>) -> Notice {
    Notice { ok: true, text: text.into(), field: None }
}

/// Longest justification (and free-text answer) accepted, in characters.
pub const MAX_JUSTIFICATION: usize = 2000;
/// Longest search text accepted, in characters.
pub const MAX_SEARCH: usize = 200;
/// Longest name accepted, in characters.
pub const MAX_NAME: usize = 200;
/// Most requests decided by one bulk decision.
pub const MAX_BULK_DECISIONS: usize = 100;

/// A free-text field longer than `max` characters is refused at the edge, naming the field.
#[cfg(feature = "ssr")]
fn at_most(field: &str, value: &str, max: usize) -> Result<(), AppError> {
    if value.chars().count() > max {
        return Err(AppError::Invalid {
            field: Some(field.to_owned()),
            message: format!("{field} is too long: at most {max} characters"),
        });
    }
    Ok(())
}

/// The signed-in person, or `None`.
#[server(endpoint = "get_viewer")]
pub async fn get_viewer() -> Result<Option<Viewer>, AppError> {
    match server::signed_in().await? {
        Some((service, actor)) => Ok(Some(service.viewer(&actor).await?)),
        None => Ok(None),
    }
}

/// The outcome of the last plain-form action, shown once.
#[server(endpoint = "take_notice")]
pub async fn take_notice() -> Result<Option<Notice>, AppError> {
    server::take_notice().await
}

/// How one can sign in: the identity provider (if configured) and, in demo mode, the people
/// to pick from.
#[server(endpoint = "sign_in_options")]
pub async fn sign_in_options() -> Result<SignInChoices, AppError> {
    let options = use_context::<super::SignInOptions>().unwrap_or_default();
    // Demo people are offered only to this computer (loopback host, no proxy), and only the
    // demo organisation's people, never anyone real.
    let from_here = use_context::<http::request::Parts>()
        .is_some_and(|parts| crate::auth::demo_request_refusal(&parts.headers, &parts.uri).is_none());
    let people =
        if options.demo && from_here { crate::demo::sign_in_people(&server::service()?).await? } else { vec![] };
    Ok(SignInChoices { provider: options.provider, people })
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Browse {
    pub page: Page<PackageCard>,
    pub catalogs: Vec<CatalogOption>,
}

/// Packages I may request.
#[server(endpoint = "browse_packages")]
pub async fn browse_packages(q: String, catalog: Option<i64>, cursor: Option<String>) -> Result<Browse, AppError> {
    at_most("q", &q, MAX_SEARCH)?;
    let (service, actor) = server::actor().await?;
    let filter = catalog.filter(|c| *c > 0).map(crate::domain::ids::CatalogId);
    let page = service.requestable_packages(&actor, &q, filter, cursor.as_deref()).await?;
    let catalogs = service.catalog_options(&actor).await?;
    Ok(Browse { page, catalogs })
}

#[server(endpoint = "load_package")]
pub async fn load_package(id: i64) -> Result<PackageDetail, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.package_detail(&actor, crate::domain::ids::PackageId(id)).await?)
}

/// A date from a form (`YYYY-MM-DD`): the start or the end of that day, UTC.
#[cfg(feature = "ssr")]
fn form_date(
    field: &str,
    value: Option<String>,
    end_of_day: bool,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, AppError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else { return Ok(None) };
    let date = chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").map_err(|_| AppError::Invalid {
        field: Some(field.to_owned()),
        message: "use a date like 2026-12-31".into(),
    })?;
    let time = if end_of_day { date.and_hms_opt(23, 59, 59) } else { date.and_hms_opt(0, 0, 0) };
    Ok(time.map(|t| t.and_utc()))
}

/// File a request. `answers` maps question ids to answers (`answers[region]=EMEA`);
/// `on_behalf_of` names a direct report; `start`/`end` are dates where the policy allows.
#[server(endpoint = "request_access")]
pub async fn request_access(
    package_id: i64,
    policy_id: Option<i64>,
    justification: String,
    answers: Option<HashMap<String, String>>,
    on_behalf_of: Option<String>,
    start: Option<String>,
    end: Option<String>,
) -> Result<Notice, AppError> {
    use crate::domain::ids::{PackageId, PolicyId, UserId};
    use crate::domain::policy::Answer;
    use crate::domain::request::RequestState;
    let result = async {
        at_most("justification", &justification, MAX_JUSTIFICATION)?;
        for (question, answer) in answers.iter().flatten() {
            at_most(&format!("answers[{question}]"), answer, MAX_JUSTIFICATION)?;
            at_most("answers", question, MAX_NAME)?;
        }
        let (service, actor) = server::actor().await?;
        let target = match on_behalf_of.filter(|v| !v.is_empty()) {
            Some(v) => Some(UserId(v.parse().map_err(|_| AppError::Invalid {
                field: Some("on_behalf_of".into()),
                message: "pick a person".into(),
            })?)),
            None => None,
        };
        let request = crate::service::NewRequest {
            package: PackageId(package_id),
            policy: policy_id.map(PolicyId),
            target,
            justification,
            answers: answers
                .unwrap_or_default()
                .into_iter()
                .map(|(question_id, value)| Answer { question_id, value })
                .collect(),
            start: form_date("start", start, false)?,
            end: form_date("end", end, true)?,
        };
        let outcome = service.submit_request(&actor, request).await?;
        Ok(Notice { ok: outcome.state != RequestState::Rejected, text: outcome.message, field: None })
    }
    .await;
    server::finish(result).await
}

/// Parse a list cursor (a row id); anything else means "from the start".
#[cfg(feature = "ssr")]
fn cursor(c: Option<String>) -> Option<i64> {
    c.and_then(|c| c.parse().ok())
}

#[server(endpoint = "my_requests")]
pub async fn my_requests(before: Option<String>) -> Result<Page<RequestView>, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.my_requests(&actor, cursor(before)).await?)
}

#[server(endpoint = "cancel_request")]
pub async fn cancel_request(request_id: i64) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        service.cancel_request(&actor, crate::domain::ids::RequestId(request_id)).await?;
        Ok(ok("Request canceled."))
    }
    .await;
    server::finish(result).await
}

#[server(endpoint = "my_access")]
pub async fn my_access(before: Option<String>) -> Result<Page<AssignmentView>, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.my_access(&actor, cursor(before)).await?)
}

#[server(endpoint = "extend_access")]
pub async fn extend_access(assignment_id: i64, justification: String) -> Result<Notice, AppError> {
    let result = async {
        at_most("justification", &justification, MAX_JUSTIFICATION)?;
        let (service, actor) = server::actor().await?;
        let outcome =
            service.extend_assignment(&actor, crate::domain::ids::AssignmentId(assignment_id), &justification).await?;
        Ok(ok(match outcome.state {
            crate::domain::request::RequestState::PendingApproval => "Extension requested: it is waiting for approval.",
            _ => "Extended.",
        }))
    }
    .await;
    server::finish(result).await
}

#[server(endpoint = "give_up_access")]
pub async fn give_up_access(assignment_id: i64) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        service
            .give_up_assignment(&actor, crate::domain::ids::AssignmentId(assignment_id), "given up by the holder")
            .await?;
        Ok(ok("Access given up. It is being removed."))
    }
    .await;
    server::finish(result).await
}

#[server(endpoint = "email_settings")]
pub async fn email_settings() -> Result<EmailChoices, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.email_choices(&actor).await?)
}

/// The signed-in person's own email settings (nobody else's).
#[server(endpoint = "save_email_settings")]
pub async fn save_email_settings(
    optional: Option<String>,
    digest: Option<String>,
    time_zone: Option<String>,
) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        let on = ticked(&optional);
        // No field at all (an older form): the time zone is left as it is.
        let zone = match time_zone.as_deref().map(str::trim) {
            None => None,
            Some(AUTOMATIC_TIME_ZONE) => Some(None),
            Some(name) => Some(Some(name)),
        };
        let zone = service.set_email_choices(&actor, on, ticked(&digest), zone).await?;
        let what = if on {
            "Saved: you are also emailed when a stage of your request is approved and when your access is ready."
        } else {
            "Saved: you are emailed only what needs you (decisions, failures, access ending)."
        };
        Ok(ok(format!("{what} Times in your emails are in {}.", zone.as_deref().unwrap_or("UTC"))))
    }
    .await;
    server::finish(result).await
}

/// A person's out-of-office: their own (no `user_id`), or anyone's for an administrator.
#[server(endpoint = "load_deputies")]
pub async fn load_deputies(user_id: Option<i64>) -> Result<DeputyPanel, AppError> {
    let (service, actor) = server::actor().await?;
    let user = user_id.map_or(actor.id(), crate::domain::ids::UserId);
    Ok(service.deputies_of(&actor, user).await?)
}

/// Name a deputy (by email) from `from` (default: now) until the end of `until`: for oneself,
/// or for `user_id` as an administrator.
#[server(endpoint = "set_deputy")]
pub async fn set_deputy(
    user_id: Option<i64>,
    deputy: String,
    from: Option<String>,
    until: Option<String>,
) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        let user = user_id.map_or(actor.id(), crate::domain::ids::UserId);
        let starts = form_date("from", from, false)?.unwrap_or_else(|| service.clock().now());
        let ends = form_date("until", until, true)?
            .ok_or_else(|| AppError::Invalid { field: Some("until".into()), message: "say until when".into() })?;
        service.set_deputy(&actor, user, &deputy, (starts, ends)).await?;
        Ok(ok(format!("Saved: {} decides for you while you are away.", deputy.trim())))
    }
    .await;
    server::finish(result).await
}

#[server(endpoint = "end_deputy")]
pub async fn end_deputy(deputy_id: i64) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        service.end_deputy(&actor, deputy_id).await?;
        Ok(ok("Ended: your requests come to you alone again."))
    }
    .await;
    server::finish(result).await
}

#[server(endpoint = "pending_approvals")]
pub async fn pending_approvals(after: Option<String>) -> Result<Page<ApprovalItem>, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.pending_approvals(&actor, cursor(after)).await?)
}

#[server(endpoint = "decision_history")]
pub async fn decision_history(before: Option<String>) -> Result<Page<DecisionView>, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.decision_history(&actor, cursor(before)).await?)
}

/// A checkbox's value: sent ("on") when ticked, absent when not.
#[cfg(feature = "ssr")]
fn ticked(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty() && v != "false")
}

#[cfg(feature = "ssr")]
fn parse_decision(word: &str) -> Result<crate::domain::request::Decision, AppError> {
    use crate::domain::request::Decision;
    match word {
        "approve" => Ok(Decision::Approve),
        "deny" => Ok(Decision::Deny),
        _ => Err(AppError::Invalid { field: Some("decision".into()), message: "approve or deny".into() }),
    }
}

/// Approve or deny one request (`decision` is `approve` or `deny`).
#[server(endpoint = "decide")]
pub async fn decide(request_id: i64, decision: String, justification: String) -> Result<Notice, AppError> {
    let result = async {
        at_most("justification", &justification, MAX_JUSTIFICATION)?;
        let (service, actor) = server::actor().await?;
        let decision = parse_decision(&decision)?;
        let outcome =
            service.decide(&actor, crate::domain::ids::RequestId(request_id), decision, &justification).await?;
        Ok(ok(outcome.message))
    }
    .await;
    server::finish(result).await
}

/// The audit log, newest first, narrowed by the filter form's fields (administrators).
#[server(endpoint = "audit_log")]
pub async fn audit_log(filter: AuditFilter, before: Option<String>) -> Result<Page<AuditEventView>, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.audit_log(&actor, &filter, cursor(before)).await?)
}

/// The latest walk of the audit chain (administrators).
#[server(endpoint = "audit_chain_status")]
pub async fn audit_chain_status() -> Result<Option<ChainStatus>, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.audit_chain_status(&actor).await?)
}

/// Walk the audit chain now and record what it found (administrators).
#[server(endpoint = "verify_audit_chain")]
pub async fn verify_audit_chain() -> Result<Notice, AppError> {
    use crate::service::ChainCheck;
    let result = async {
        let (service, actor) = server::actor().await?;
        let by = crate::domain::authz::Operator::Person(&actor);
        Ok(match service.verify_and_record_audit_chain(&by).await? {
            ChainCheck::Intact { events, head } => ok(match head {
                Some(head) => format!("The audit chain is intact: {events} events, through event {}.", head.id),
                None => "The audit chain is intact: no events yet.".to_owned(),
            }),
            ChainCheck::Broken { event_id, why } => Notice {
                ok: false,
                text: format!("The audit chain is broken at event {event_id}: {why}."),
                field: None,
            },
        })
    }
    .await;
    server::finish(result).await
}

#[server(endpoint = "builtin_groups")]
pub async fn builtin_groups() -> Result<Vec<BuiltinGroupView>, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.builtin_groups(&actor).await?)
}

/// Failed provisioning work this person may retry (administrators, catalog owners).
#[server(endpoint = "failed_work")]
pub async fn failed_work() -> Result<Vec<FailedWorkView>, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.failed_work(&actor).await?)
}

/// Put one failed entry of provisioning work back in the queue.
#[server(endpoint = "retry_delivery")]
pub async fn retry_delivery(outbox_id: i64) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        service.retry_delivery(&actor, outbox_id).await?;
        Ok(ok("Queued again: the worker will try this work once more shortly."))
    }
    .await;
    server::finish(result).await
}

/// Approve or deny several requests at once (`request_ids[0]=…&request_ids[3]=…`). Each is
/// decided on its own; the answer says how many went through and why others did not.
#[server(endpoint = "decide_many")]
pub async fn decide_many(
    request_ids: Option<Vec<i64>>,
    decision: String,
    justification: String,
) -> Result<Notice, AppError> {
    use crate::domain::request::Decision;
    let result = async {
        at_most("justification", &justification, MAX_JUSTIFICATION)?;
        let ids = request_ids.unwrap_or_default();
        if ids.len() > MAX_BULK_DECISIONS {
            return Err(AppError::Invalid {
                field: Some("request_ids".into()),
                message: format!(
                    "{} requests selected: decide at most {MAX_BULK_DECISIONS} at once (nothing was decided)",
                    ids.len()
                ),
            });
        }
        let (service, actor) = server::actor().await?;
        let decision = parse_decision(&decision)?;
        if ids.is_empty() {
            return Err(AppError::Invalid {
                field: Some("request_ids".into()),
                message: "select at least one request".into(),
            });
        }
        let mut done = 0;
        let mut problems = Vec::new();
        let mut first_error = None;
        for id in &ids {
            match service.decide(&actor, crate::domain::ids::RequestId(*id), decision, &justification).await {
                Ok(_) => done += 1,
                Err(e) => {
                    let e = AppError::from(e);
                    problems.push(format!("request {id}: {e}"));
                    first_error.get_or_insert(e);
                }
            }
        }
        if done == 0 {
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        let verb = if decision == Decision::Approve { "Approved" } else { "Denied" };
        let mut text = format!("{verb} {done} of {} selected requests.", ids.len());
        if !problems.is_empty() {
            text.push_str(&format!(" Not decided — {}", problems.join("; ")));
        }
        Ok(Notice { ok: problems.is_empty(), text, field: None })
    }
    .await;
    server::finish(result).await
}
