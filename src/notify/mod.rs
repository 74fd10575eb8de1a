//! Email notifications: what each one says (a [`Letter`], rendered to HTML and plain text by
//! askama templates checked at compile time) and how it leaves (SMTP through lettre).
//!
//! Which changes notify whom is decided in `service::notifications`, in the transaction of
//! the change; this module only words and sends them.

use std::time::Duration;

use askama::Template;
use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::store::notifications::Claimed;

/// The kinds of notification, as stored.
pub mod kind {
    /// A request waits for the recipient's decision (a new request, or its next stage).
    pub const DECISION: &str = "decision";
    /// As [`DECISION`], after the stage's approvers did not decide in time.
    pub const ESCALATED: &str = "escalated";
    /// As [`DECISION`], again, part way through the stage's time.
    pub const REMINDER: &str = "reminder";
    /// A stage of the recipient's request was approved; another follows (optional).
    pub const STAGE_APPROVED: &str = "stage_approved";
    pub const APPROVED: &str = "approved";
    pub const DENIED: &str = "denied";
    /// The request could not go ahead (separation of duties, no approver, no longer allowed).
    pub const REJECTED: &str = "rejected";
    /// Nobody decided in time.
    pub const REQUEST_EXPIRED: &str = "request_expired";
    /// The access is ready (optional).
    pub const DELIVERED: &str = "delivered";
    /// Some or all of the access could not be delivered (to the holder and the catalog owners).
    pub const DELIVERY_FAILED: &str = "delivery_failed";
    /// The access ended: expired, removed, or withdrawn.
    pub const ACCESS_ENDED: &str = "access_ended";
    /// The access ends in a few days (as `--notify-expiring-days` says).
    pub const ACCESS_EXPIRING: &str = "access_expiring";
    /// Every morning, the decisions waiting (for who chose it).
    pub const DIGEST: &str = "digest";
    /// An access review started, and the recipient reviews some of its access.
    pub const REVIEW_ASSIGNED: &str = "review_assigned";
    /// Halfway through a review, to reviewers with answers still to give.
    pub const REVIEW_REMINDER: &str = "review_reminder";
}

/// How notifications leave: an SMTP server, the sender, and the portal's address for links.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The portal as people reach it (`https://access.example.com`), without a trailing slash.
    base_url: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from.to_string()).field("base_url", &self.base_url).finish()
    }
}

/// Every SMTP exchange gives up after this long.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

impl Mailer {
    /// A mailer for `smtp_url` (`smtp://host:port`, plain or with `?tls=required` for
    /// STARTTLS; `smtps://host:port` for TLS from the start), signing in as `credentials`
    /// when given. The URL must not carry a password (it would be seen wherever settings are).
    pub fn new(
        smtp_url: &str,
        credentials: Option<(String, String)>,
        from: &str,
        base_url: &str,
    ) -> Result<Self, String> {
        let parsed = url::Url::parse(smtp_url).map_err(|e| format!("the SMTP URL {smtp_url:?} is not a URL: {e}"))?;
        if parsed.password().is_some() {
            return Err("the SMTP URL carries a password: give it in QM_SMTP_PASSWORD or in the file named by \
                        QM_SMTP_PASSWORD_FILE instead"
                .to_owned());
        }
        if !matches!(parsed.scheme(), "smtp" | "smtps") {
            return Err(format!("the SMTP URL must start with smtp:// or smtps://, not {}://", parsed.scheme()));
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| format!("the SMTP URL {smtp_url:?} cannot be used: {e}"))?
            .timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        let from: Mailbox =
            from.parse().map_err(|e| format!("the sender {from:?} is not an email address (Name <a@b>): {e}"))?;
        let base_url = base_url.trim_end_matches('/').to_owned();
        url::Url::parse(&base_url).map_err(|e| format!("the portal's URL {base_url:?} is not a URL: {e}"))?;
        Ok(Self { transport: builder.build(), from, base_url })
    }

    /// The portal's address that links in emails start with.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Send one notification as an email with both an HTML and a plain-text body. Its
    /// Message-ID is the notification's, the same on every attempt, so a mail client shows a
    /// copy sent again after a crash (between the server's acceptance and our record of it)
    /// as the same message.
    pub async fn send(&self, n: &Claimed) -> Result<(), SendError> {
        let letter = Letter::for_notification(n, &self.base_url);
        let (html, text) = letter.render().map_err(|e| SendError::Permanent(format!("rendering: {e}")))?;
        let to: Mailbox =
            format!("{} <{}>", quote_name(&n.to_name), n.to_email).parse().or_else(|_| n.to_email.parse()).map_err(
                |e| SendError::Permanent(format!("the recipient {:?} is not an email address: {e}", n.to_email)),
            )?;
        let domain = self.from.email.domain().to_owned();
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(letter.subject.as_str())
            .message_id(Some(format!("<qm-notification-{}@{domain}>", n.id)))
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| SendError::Permanent(format!("building the email: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(e.status().map(u16::from), e.is_client(), e.to_string())),
        }
    }
}

/// What an SMTP failure means for the email: its reply code (none: no reply, such as a
/// connection, TLS or time-out failure), or a message lettre could not build.
fn classify(code: Option<u16>, client: bool, message: String) -> SendError {
    match code {
        // This message or recipient refused for good (no such mailbox, too big, policy).
        Some(550..=555) => SendError::Permanent(message),
        // The server refuses the portal itself: its sign-in (530, 534, 535, 538), a command,
        // closing down (421). Not this email's fault: wait for it to be fixed.
        Some(421) | Some(500..=549) | Some(556..=599) => SendError::Unavailable(message),
        // Try later (mailbox busy, out of space).
        Some(_) => SendError::Transient(message),
        None if client => SendError::Permanent(message),
        None => SendError::Unavailable(message),
    }
}

/// A display name as an address header may carry it (quoted when it has to be).
fn quote_name(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control() && *c != '"' && *c != '\\').collect();
    format!("\"{clean}\"")
}

/// Why an email did not leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The server refused this email for good (550–555), or it could not be made: not
    /// tried again.
    Permanent(String),
    /// The server said to try this email later (a 4xx).
    Transient(String),
    /// The server could not be reached, or refused the portal itself (its sign-in, its TLS):
    /// every email waits, none spends an attempt.
    Unavailable(String),
    /// Not tried: the pass ran long and gives it back.
    Deferred,
}

impl SendError {
    pub fn message(&self) -> &str {
        match self {
            SendError::Permanent(m) | SendError::Transient(m) | SendError::Unavailable(m) => m,
            SendError::Deferred => "not tried: the pass ran long",
        }
    }
}

/// What one email says, before it is rendered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Letter {
    pub subject: String,
    pub greeting: String,
    pub paragraphs: Vec<String>,
    /// Someone's words, shown as a quote (a justification, a reason); empty for none.
    pub quote: String,
    pub action_label: String,
    /// Where the button goes; empty for no button.
    pub action_url: String,
    /// Why the recipient gets it.
    pub why: String,
    /// Where optional emails are turned off; empty for the ones that cannot be.
    pub settings_url: String,
}

#[derive(Template)]
#[template(path = "notification.html")]
struct HtmlBody<'a> {
    l: &'a Letter,
}

#[derive(Template)]
#[template(path = "notification.txt")]
struct TextBody<'a> {
    l: &'a Letter,
}

/// A time as emails show it: on the recipient's clock (`zone`, an IANA name) when known, else
/// in UTC, and said which: `Thursday 1 January 2026, 01:00 CET (UTC+01:00)` (abbreviations
/// alone are ambiguous: IST is India's, Ireland's and Israel's), `…, 04:00 UTC+04:00` for a
/// zone without a lettered one, `…, 00:00 UTC`.
fn when(at: DateTime<Utc>, zone: Option<&str>) -> String {
    let local = crate::domain::clock::local(at, zone);
    let day_and_time = local.format("%A %-d %B %Y, %H:%M");
    let abbreviation = local.format("%Z").to_string();
    let offset = local.format("UTC%:z");
    if abbreviation == "UTC" {
        format!("{day_and_time} UTC")
    } else if abbreviation.chars().all(|c| c.is_ascii_alphabetic()) {
        format!("{day_and_time} {abbreviation} ({offset})")
    } else {
        format!("{day_and_time} {offset}")
    }
}

impl Letter {
    /// The HTML and plain-text bodies.
    pub fn render(&self) -> Result<(String, String), askama::Error> {
        Ok((HtmlBody { l: self }.render()?, TextBody { l: self }.render()?))
    }

    /// What the notification says to its recipient; links start at `base` (the portal).
    pub fn for_notification(n: &Claimed, base: &str) -> Letter {
        let package = &n.package_name;
        let by = n.actor_name.clone().unwrap_or_else(|| "Quartermaster".to_owned());
        let mine = n.target_id == n.recipient_id;
        let extension = n.request_kind == "user_extend";
        let whose = if mine { "your".to_owned() } else { format!("{}'s", n.target_name) };
        let my_access = format!("{base}/");
        let zone = n.to_time_zone.as_deref();
        let when = |at: DateTime<Utc>| when(at, zone);
        let mut l = Letter {
            greeting: format!("Hello {},", n.to_name),
            why: "You get this email because you use Quartermaster.".to_owned(),
            ..Letter::default()
        };
        match n.kind.as_str() {
            kind::DECISION | kind::ESCALATED | kind::REMINDER => {
                let request = n.request_id.unwrap_or_default();
                l.subject = if extension {
                    format!("Approval needed: extend {package} for {}", n.target_name)
                } else {
                    format!("Approval needed: {package} for {}", n.target_name)
                };
                if n.kind == kind::REMINDER {
                    l.subject = format!("Reminder: {}", l.subject);
                }
                let asked = match (extension, n.requestor_id == n.target_id) {
                    (true, _) => format!("{} asks to keep {package} longer.", n.requestor_name),
                    (false, true) => format!("{} asks for {package}.", n.requestor_name),
                    (false, false) => format!("{} asks for {package} for {}.", n.requestor_name, n.target_name),
                };
                l.paragraphs.push(asked);
                if let Some(away) = &n.deputy_for {
                    l.paragraphs.push(format!("You are asked as {away}'s deputy while they are away."));
                }
                if n.kind == kind::REMINDER {
                    l.paragraphs.push("It is still waiting for a decision.".to_owned());
                }
                if n.kind == kind::ESCALATED {
                    l.paragraphs.push(
                        "It comes to you because its approvers did not decide in time: you are its alternate \
                         approver."
                            .to_owned(),
                    );
                }
                if n.stage == 0 {
                    l.paragraphs.push("It has been decided since; there is nothing left for you to do.".to_owned());
                } else {
                    let stage =
                        if n.stages > 1 { format!("Stage {} of {}. ", n.stage, n.stages) } else { String::new() };
                    let due = n.stage_due_at.map(|d| format!("Please decide by {}.", when(d))).unwrap_or_default();
                    l.paragraphs.push(format!("{stage}{due}").trim().to_owned());
                }
                l.paragraphs.retain(|p| !p.is_empty());
                l.quote = n.justification.clone();
                l.action_label = "Approve or deny".to_owned();
                l.action_url = format!("{base}/approvals#approval-{request}");
                l.why = "You get this email because you approve this request.".to_owned();
            }
            kind::STAGE_APPROVED => {
                l.subject = format!("Stage approved: {package}");
                l.paragraphs.push(format!(
                    "{by} approved a stage of the request for {package}{}. It now waits for the next approver.",
                    for_whom(n, mine)
                ));
                l.quote = n.reason.clone();
                l.action_label = "See your requests".to_owned();
                l.action_url = my_access.clone();
                l.why = "You get this email because you asked for this access.".to_owned();
                l.settings_url = my_access.clone();
            }
            kind::APPROVED if extension => {
                l.subject = format!("Extended: {package}");
                let until = n.ends_at.map(|e| format!(" It now lasts until {}.", when(e))).unwrap_or_default();
                l.paragraphs.push(format!("{by} approved keeping {package}{} longer.{until}", for_whom(n, mine)));
                l.quote = n.reason.clone();
                l.action_label = "See your access".to_owned();
                l.action_url = my_access.clone();
                l.why = "You get this email because you asked for this.".to_owned();
            }
            kind::APPROVED => {
                l.subject = format!("Approved: {package}");
                l.paragraphs.push(format!(
                    "{by} approved the request for {package}{}. The access is being delivered; \
                     another email says when it is ready.",
                    for_whom(n, mine)
                ));
                l.quote = n.reason.clone();
                l.action_label = "See your access".to_owned();
                l.action_url = my_access.clone();
                l.why = "You get this email because you asked for this access.".to_owned();
            }
            kind::DENIED => {
                l.subject = format!("Denied: {package}");
                l.paragraphs.push(format!("{by} denied the request for {package}{}.", for_whom(n, mine)));
                l.quote = n.reason.clone();
                l.action_label = "See your requests".to_owned();
                l.action_url = my_access.clone();
                l.why = "You get this email because you asked for this access.".to_owned();
            }
            kind::REJECTED => {
                l.subject = format!("Request stopped: {package}");
                l.paragraphs.push(format!("The request for {package}{} cannot go ahead.", for_whom(n, mine)));
                l.quote = n.reason.clone();
                l.action_label = "See your requests".to_owned();
                l.action_url = my_access.clone();
                l.why = "You get this email because you asked for this access.".to_owned();
            }
            kind::REQUEST_EXPIRED => {
                l.subject = format!("Request expired: {package}");
                l.paragraphs.push(format!(
                    "Nobody decided the request for {package}{} in time, so it has expired. You can ask again.",
                    for_whom(n, mine)
                ));
                l.action_label = "Ask again".to_owned();
                l.action_url = format!("{base}/packages/{}", n.package_id);
                l.why = "You get this email because you asked for this access.".to_owned();
            }
            kind::DELIVERED => {
                l.subject = format!("Ready: {package}");
                l.paragraphs.push(format!("{} access to {package} is ready.", capitalize(&whose)));
                if let Some(end) = n.ends_at {
                    l.paragraphs.push(format!("It lasts until {}.", when(end)));
                }
                l.action_label = "See your access".to_owned();
                l.action_url = my_access.clone();
                l.why = "You get this email because this access is yours.".to_owned();
                l.settings_url = my_access.clone();
            }
            kind::DELIVERY_FAILED => {
                l.subject = format!("Not delivered: {package} for {}", n.target_name);
                l.paragraphs.push(format!(
                    "{} access to {package} could not be delivered (all or part of it). An administrator can \
                     see why and retry it.",
                    capitalize(&whose)
                ));
                l.quote = n.reason.clone();
                l.action_label = if mine { "See your access" } else { "Open the package" }.to_owned();
                l.action_url = if mine { my_access.clone() } else { format!("{base}/admin/packages/{}", n.package_id) };
                l.why = if mine {
                    "You get this email because this access is yours.".to_owned()
                } else {
                    "You get this email because you own the catalog this package is in.".to_owned()
                };
            }
            kind::DIGEST => {
                let n_waiting = n.waiting_total;
                l.subject = if n_waiting == 1 {
                    "1 request waits for your decision".to_owned()
                } else {
                    format!("{n_waiting} requests wait for your decision")
                };
                for (_, package, whom, due) in &n.waiting {
                    let by = due.map(|d| format!(": decide by {}", when(d))).unwrap_or_default();
                    l.paragraphs.push(format!("{package} for {whom}{by}"));
                }
                if n_waiting > n.waiting.len() as i64 {
                    l.paragraphs.push(format!("… and {} more.", n_waiting - n.waiting.len() as i64));
                }
                l.action_label = "Open Approvals".to_owned();
                l.action_url = format!("{base}/approvals");
                l.why = "You get this email because you chose a daily digest of your decisions.".to_owned();
                l.settings_url = my_access.clone();
            }
            kind::REVIEW_ASSIGNED | kind::REVIEW_REMINDER => {
                let waiting = n.review_waiting;
                let people =
                    if waiting == 1 { "1 person's access".to_owned() } else { format!("{waiting} people's access") };
                l.subject = if n.kind == kind::REVIEW_REMINDER {
                    format!("Reminder: access review of {package}")
                } else {
                    format!("Access review: {package}")
                };
                l.paragraphs.push(format!(
                    "Please review who keeps {package}: {people} waits for your answer (keep, remove, or don't know). \
                     Each shows a recommendation."
                ));
                if let Some(end) = n.review_ends_at {
                    l.paragraphs.push(format!(
                        "Please answer by {}. Access nobody answers for is decided as the policy says.",
                        when(end)
                    ));
                }
                l.action_label = "Review access".to_owned();
                l.action_url = format!("{base}/reviews");
                l.why = "You get this email because you review this access.".to_owned();
            }
            kind::ACCESS_EXPIRING => {
                l.subject = format!("Ending soon: {package}");
                let end = n.ends_at.map(when).unwrap_or_else(|| "soon".to_owned());
                l.paragraphs.push(format!("{} access to {package} ends on {end}.", capitalize(&whose)));
                l.paragraphs.push(
                    "If you still need it, ask to extend it on My Access before then (where its policy allows); otherwise there is nothing to do."
                        .to_owned(),
                );
                l.action_label = "See your access".to_owned();
                l.action_url = my_access.clone();
                l.why = "You get this email because this access is yours.".to_owned();
            }
            kind::ACCESS_ENDED => {
                l.subject = format!("Access ended: {package}");
                let how = match (n.cause.as_str(), &n.actor_name, n.ends_at) {
                    ("assignment.expired", _, Some(end)) => format!("It expired on {}.", when(end)),
                    ("assignment.expired", _, None) => "It expired.".to_owned(),
                    ("assignment.withdrawn", _, _) => {
                        "It was taken back before it was fully delivered: it is no longer allowed.".to_owned()
                    }
                    (_, Some(by), _) => format!("{by} removed it."),
                    (_, None, _) => "It was removed.".to_owned(),
                };
                l.paragraphs.push(format!("{} access to {package} has ended. {how}", capitalize(&whose)));
                l.quote = n.reason.clone();
                l.action_label = "Ask for it again".to_owned();
                l.action_url = format!("{base}/packages/{}", n.package_id);
                l.why = "You get this email because this access was yours.".to_owned();
            }
            other => {
                l.subject = format!("{package}: {other}");
                l.paragraphs.push(format!("Something happened to {package}: {other}."));
                l.action_label = "Open Quartermaster".to_owned();
                l.action_url = my_access;
            }
        }
        l
    }
}

/// " for Jamal Reyes" when the access is someone else's.
fn for_whom(n: &Claimed, mine: bool) -> String {
    if mine {
        String::new()
    } else {
        format!(" for {}", n.target_name)
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(kind: &str) -> Claimed {
        Claimed {
            id: 7,
            attempts: 1,
            kind: kind.to_owned(),
            cause: String::new(),
            recipient_id: 2,
            recipient_active: true,
            target_id: 5,
            requestor_id: 5,
            request_kind: "user_add".to_owned(),
            to_email: "sofia@example.com".to_owned(),
            to_name: "Sofia <Admin>".to_owned(),
            to_time_zone: None,
            reason: String::new(),
            actor_name: None,
            request_id: Some(42),
            package_id: 3,
            package_name: "CRM & Billing".to_owned(),
            target_name: "Jamal".to_owned(),
            requestor_name: "Jamal".to_owned(),
            justification: "<script>customer calls</script>".to_owned(),
            stage: 1,
            stages: 2,
            escalated: false,
            stage_due_at: Some(DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()),
            ends_at: None,
            may_decide: true,
            live: true,
            deputy_for: None,
            waiting: Vec::new(),
            waiting_total: 0,
            review_ends_at: None,
            review_waiting: 0,
        }
    }

    #[test]
    fn a_decision_email_links_to_the_decision_and_escapes_html_only_in_html() {
        let letter = Letter::for_notification(&claimed(kind::DECISION), "https://qm.example");
        assert_eq!(letter.subject, "Approval needed: CRM & Billing for Jamal");
        assert_eq!(letter.action_url, "https://qm.example/approvals#approval-42");
        let (html, text) = letter.render().unwrap();
        assert!(html.contains("&#60;script&#62;customer calls&#60;/script&#62;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("CRM &#38; Billing") && html.contains("Sofia &#60;Admin&#62;"), "{html}");
        assert!(text.contains("<script>customer calls</script>") && text.contains("CRM & Billing"), "{text}");
        assert!(text.contains("Approve or deny: https://qm.example/approvals#approval-42"), "{text}");
        assert!(text.contains("Stage 1 of 2. Please decide by Thursday 1 January 2026, 00:00 UTC."), "{text}");
    }

    #[test]
    fn times_are_on_the_recipients_clock_when_their_zone_is_known() {
        let due = |zone: Option<&str>| {
            let mut n = claimed(kind::DECISION);
            n.to_time_zone = zone.map(str::to_owned);
            let (_, text) = Letter::for_notification(&n, "https://qm.example").render().unwrap();
            text.lines().find(|l| l.contains("Please decide by")).unwrap_or_default().to_owned()
        };
        // 2026-01-01 00:00 UTC.
        assert_eq!(due(None), "Stage 1 of 2. Please decide by Thursday 1 January 2026, 00:00 UTC.");
        assert_eq!(
            due(Some("Europe/Paris")),
            "Stage 1 of 2. Please decide by Thursday 1 January 2026, 01:00 CET (UTC+01:00)."
        );
        assert_eq!(
            due(Some("America/New_York")),
            "Stage 1 of 2. Please decide by Wednesday 31 December 2025, 19:00 EST (UTC-05:00)."
        );
        assert_eq!(
            due(Some("Asia/Kolkata")),
            "Stage 1 of 2. Please decide by Thursday 1 January 2026, 05:30 IST (UTC+05:30)."
        );
        assert_eq!(
            due(Some("Asia/Dubai")),
            "Stage 1 of 2. Please decide by Thursday 1 January 2026, 04:00 UTC+04:00.",
            "a zone without a lettered abbreviation shows its offset"
        );
        assert_eq!(due(Some("Not/AZone")), due(None), "an unknown name: UTC, said so");
        assert_eq!(due(Some("UTC")), due(None));
    }

    #[test]
    fn every_time_zone_offered_is_one_the_tz_database_knows() {
        let zones: Vec<&str> = crate::views::time_zones().collect();
        assert!(zones.len() > 400, "{}", zones.len());
        assert_eq!(zones.first(), Some(&"UTC"));
        assert_eq!(crate::views::listed_time_zone("Asia/Calcutta"), Some("Asia/Kolkata"), "a browser's old name");
        assert_eq!(crate::views::listed_time_zone("Europe/Paris"), Some("Europe/Paris"));
        assert_eq!(crate::views::listed_time_zone("Mars/Olympus_Mons"), None);
        for name in &zones {
            assert!(crate::domain::clock::zone(name).is_some(), "{name}");
        }
        for common in ["Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "Africa/Lagos"] {
            assert!(zones.contains(&common), "{common}");
        }
    }

    #[test]
    fn optional_emails_say_how_to_turn_them_off_and_the_others_do_not() {
        let delivered = Letter::for_notification(&claimed(kind::DELIVERED), "https://qm.example");
        assert_eq!(delivered.settings_url, "https://qm.example/");
        let denied = Letter::for_notification(&claimed(kind::DENIED), "https://qm.example");
        assert!(denied.settings_url.is_empty());
        let (_, text) = denied.render().unwrap();
        assert!(!text.contains("Turn these emails off"), "{text}");
    }

    #[test]
    fn an_outage_or_a_refused_sign_in_is_waited_out_and_only_a_refused_message_fails() {
        let m = || "x".to_owned();
        assert_eq!(classify(Some(550), false, m()), SendError::Permanent(m()), "no such mailbox");
        assert_eq!(classify(Some(535), false, m()), SendError::Unavailable(m()), "bad credentials");
        assert_eq!(classify(Some(530), false, m()), SendError::Unavailable(m()), "STARTTLS required");
        assert_eq!(classify(Some(421), false, m()), SendError::Unavailable(m()), "closing down");
        assert_eq!(classify(Some(451), false, m()), SendError::Transient(m()), "try later");
        assert_eq!(classify(None, false, m()), SendError::Unavailable(m()), "no answer at all");
        assert_eq!(classify(None, true, m()), SendError::Permanent(m()), "a message that cannot be made");
    }

    #[test]
    fn a_url_with_a_password_is_refused() {
        let err = Mailer::new("smtp://me:secret@127.0.0.1:25", None, "QM <qm@example.com>", "http://127.0.0.1")
            .err()
            .unwrap_or_default();
        assert!(err.contains("QM_SMTP_PASSWORD"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        assert!(Mailer::new("http://127.0.0.1:25", None, "QM <qm@example.com>", "http://x").is_err());
        assert!(Mailer::new("smtp://127.0.0.1:25", None, "not an address", "http://x").is_err());
    }
}
