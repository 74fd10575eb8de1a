//! Assignment policies: who may request, what they must say, who approves, for how long.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::error::{DomainError, DomainResult};
use super::ids::*;
use super::model::word_enum;

word_enum!(
    /// Who may request under a policy.
    RequestorScope {
        Nobody = "none",
        AllMembers = "all_members",
        Specific = "specific",
        ConnectedOrgs = "connected_orgs",
        AllExternals = "all_externals",
    }
);

/// One entry of a `specific` or `connected_orgs` requestor list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum RequestorRef {
    User(UserId),
    Group(GroupId),
    Org(OrgId),
}

/// Who approves a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum ApproverSpec {
    User {
        id: UserId,
    },
    Group {
        id: GroupId,
    },
    /// The target user's manager.
    Manager,
    /// The owners of the package's catalog.
    CatalogOwners,
    /// The internal sponsors of the target user's connected organisation.
    Sponsors,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum OnTimeout {
    /// The request ends as `expired` (denied by time-out).
    #[default]
    Expire,
    /// The stage's escalation approvers are added, and get another timeout period.
    Escalate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Stage {
    pub primary: Vec<ApproverSpec>,
    #[serde(default)]
    pub fallback: Vec<ApproverSpec>,
    #[serde(default)]
    pub escalation: Vec<ApproverSpec>,
    #[serde(default)]
    pub justification_required: bool,
    /// Days an approver has to decide.
    pub timeout_days: u32,
    /// Days into the stage when its approvers who have not decided are reminded (fewer than
    /// `timeout_days`); none: no reminder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_after_days: Option<u32>,
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Approval {
    pub stages: Vec<Stage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum QuestionKind {
    Text {
        #[serde(default)]
        multiline: bool,
    },
    Choice {
        options: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Question {
    /// Stable key of the answer.
    pub id: String,
    pub prompt: String,
    pub required: bool,
    #[serde(flatten)]
    pub kind: QuestionKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub question_id: String,
    pub value: String,
}

/// When an assignment made under the policy ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Expiration {
    #[default]
    Never,
    OnDate {
        date: NaiveDate,
    },
    AfterDays {
        days: u32,
    },
    AfterHours {
        hours: u32,
    },
}

/// `at + by`, or a field error when the result is out of the calendar's range.
pub fn checked_after(at: DateTime<Utc>, by: Duration, field: &str) -> DomainResult<DateTime<Utc>> {
    at.checked_add_signed(by).ok_or_else(|| DomainError::invalid(field, "that date is out of range"))
}

impl Expiration {
    /// The latest end an assignment starting at `start` may have (`None`: open-ended).
    /// Out-of-range dates are an error, never a panic.
    pub fn end_for(self, start: DateTime<Utc>) -> DomainResult<Option<DateTime<Utc>>> {
        Ok(match self {
            Expiration::Never => None,
            Expiration::OnDate { date } => Some(
                date.and_hms_opt(23, 59, 59)
                    .map(|d| d.and_utc())
                    .ok_or_else(|| DomainError::invalid("expiration", "that date is out of range"))?,
            ),
            Expiration::AfterDays { days } => Some(checked_after(start, Duration::days(i64::from(days)), "end")?),
            Expiration::AfterHours { hours } => Some(checked_after(start, Duration::hours(i64::from(hours)), "end")?),
        })
    }

    /// A fixed end date (not a period counted from when access is granted).
    pub fn is_fixed_date(self) -> bool {
        matches!(self, Expiration::OnDate { .. })
    }

    pub fn describe(self) -> String {
        match self {
            Expiration::Never => "does not expire".into(),
            Expiration::OnDate { date } => format!("ends on {date}"),
            Expiration::AfterDays { days } => format!("ends after {days} days"),
            Expiration::AfterHours { hours } => format!("ends after {hours} hours"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum ReviewFrequency {
    Weekly,
    Monthly,
    Quarterly,
    Annually,
}

impl ReviewFrequency {
    /// The fewest days one period has (a review lasts at most that long).
    pub fn shortest_days(self) -> u32 {
        match self {
            ReviewFrequency::Weekly => 7,
            ReviewFrequency::Monthly => 28,
            ReviewFrequency::Quarterly => 89,
            ReviewFrequency::Annually => 365,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            ReviewFrequency::Weekly => "weekly",
            ReviewFrequency::Monthly => "monthly",
            ReviewFrequency::Quarterly => "quarterly",
            ReviewFrequency::Annually => "annual",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum ReviewDefault {
    Keep,
    Remove,
    Recommendation,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum ReviewSettings {
    #[default]
    Off,
    Recurring {
        frequency: ReviewFrequency,
        reviewers: Vec<ApproverSpec>,
        #[serde(default)]
        self_review: bool,
        duration_days: u32,
        default_decision: ReviewDefault,
        apply_automatically: bool,
        /// The first period's first day (reviews start at 00:00 UTC); none: periods follow
        /// the calendar (weeks from Monday, months, quarters and years from the 1st).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        starts_on: Option<NaiveDate>,
        /// Who reviews when the reviewers resolve to nobody (no manager); none: the owners
        /// of the package's catalog.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fallback: Vec<ApproverSpec>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Policy {
    pub id: PolicyId,
    pub package_id: PackageId,
    pub name: String,
    pub description: String,
    pub scope: RequestorScope,
    pub requestors: Vec<RequestorRef>,
    pub justification_required: bool,
    pub schedule_allowed: bool,
    pub on_behalf_allowed: bool,
    pub approval: Approval,
    pub questions: Vec<Question>,
    pub expiration: Expiration,
    pub extension_allowed: bool,
    pub extension_needs_approval: bool,
    pub review: ReviewSettings,
    pub auto_rule: Option<String>,
    /// How far ahead a requestor may ask access to start, in days.
    pub max_lead_days: u32,
    pub enabled: bool,
    pub version: i64,
}

/// The longest lead time a new policy allows for a requested start.
pub const DEFAULT_MAX_LEAD_DAYS: u32 = 90;
/// The longest lead time any policy may allow.
pub const MAX_LEAD_DAYS: u32 = 366;

/// What a requestor asked for, kept on the request until access is granted: a start (`None`:
/// as soon as approved) and an explicit end (`None`: the policy's period, counted from the
/// moment access is granted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RequestedSchedule {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl Stage {
    /// A stage decided by `primary` within a week, expiring the request if nobody decides.
    pub fn new(primary: Vec<ApproverSpec>) -> Self {
        Stage {
            primary,
            fallback: vec![],
            escalation: vec![],
            justification_required: false,
            timeout_days: 7,
            remind_after_days: None,
            on_timeout: OnTimeout::Expire,
        }
    }

    /// When this stage's approvers are reminded, if they are, for a stage starting at `start`.
    pub fn reminder(&self, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.remind_after_days
            .filter(|d| *d > 0 && *d < self.timeout_days.max(1))
            .and_then(|d| start.checked_add_signed(chrono::Duration::days(i64::from(d))))
    }
}

impl Policy {
    /// A policy with the plain defaults (no questions, no expiry, managers may request for
    /// their reports); callers adjust what they need before `validate`.
    pub fn new(package: PackageId, name: &str, scope: RequestorScope, stages: Vec<Stage>) -> Self {
        Policy {
            id: PolicyId(0),
            package_id: package,
            name: name.to_owned(),
            description: String::new(),
            scope,
            requestors: vec![],
            justification_required: false,
            schedule_allowed: false,
            on_behalf_allowed: true,
            approval: Approval { stages },
            questions: vec![],
            expiration: Expiration::Never,
            extension_allowed: false,
            extension_needs_approval: true,
            review: ReviewSettings::Off,
            auto_rule: None,
            max_lead_days: DEFAULT_MAX_LEAD_DAYS,
            enabled: true,
            version: 1,
        }
    }
}

pub const MAX_STAGES: usize = 3;
pub const MAX_TIMEOUT_DAYS: u32 = 14;

impl Policy {
    /// The settings checks an admin gets when saving a policy.
    pub fn validate(&self) -> DomainResult<()> {
        if self.name.trim().is_empty() {
            return Err(DomainError::invalid("name", "a policy needs a name"));
        }
        if self.approval.stages.len() > MAX_STAGES {
            return Err(DomainError::invalid("approval", "at most 3 approval stages"));
        }
        for (i, stage) in self.approval.stages.iter().enumerate() {
            let n = i + 1;
            if stage.primary.is_empty() {
                return Err(DomainError::invalid("approval", format!("stage {n} needs at least one approver")));
            }
            if !(1..=MAX_TIMEOUT_DAYS).contains(&stage.timeout_days) {
                return Err(DomainError::invalid(
                    "approval",
                    format!("stage {n}: the decision time-out must be 1 to {MAX_TIMEOUT_DAYS} days"),
                ));
            }
            if stage.on_timeout == OnTimeout::Escalate && stage.escalation.is_empty() {
                return Err(DomainError::invalid(
                    "approval",
                    format!("stage {n} escalates on time-out but names no escalation approvers"),
                ));
            }
        }
        if matches!(self.scope, RequestorScope::Specific | RequestorScope::ConnectedOrgs) && self.requestors.is_empty()
        {
            return Err(DomainError::invalid("requestors", "name who may request"));
        }
        let mut ids: Vec<&str> = self.questions.iter().map(|q| q.id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(DomainError::invalid("questions", "question ids must be unique"));
        }
        for q in &self.questions {
            if let QuestionKind::Choice { options } = &q.kind {
                if options.is_empty() {
                    return Err(DomainError::invalid("questions", format!("“{}” needs at least one option", q.prompt)));
                }
            }
        }
        if let Some(source) = self.auto_rule.as_deref() {
            super::rule::Rule::parse(source)?;
            // The rule gives the access back to whoever still matches: an end date or a review
            // taking it away would be undone at the next pass.
            if self.expiration != Expiration::Never || self.review != ReviewSettings::Off {
                return Err(DomainError::invalid(
                    "auto_rule",
                    "access a rule gives lasts while the person matches it: no end date and no reviews",
                ));
            }
            // Every assignment under it is the rule's to give and take back.
            if self.scope != RequestorScope::Nobody {
                return Err(DomainError::invalid(
                    "auto_rule",
                    "a policy that assigns automatically takes no requests: set “who can request” to nobody, \
                     and add another policy for requests",
                ));
            }
        }
        if let ReviewSettings::Recurring { frequency, duration_days, .. } = &self.review {
            // A review ends before the next one of the same access starts.
            let longest = frequency.shortest_days();
            if *duration_days == 0 || *duration_days > longest {
                return Err(DomainError::invalid(
                    "review_days",
                    format!("a {} review lasts from 1 to {longest} days", frequency.word()),
                ));
            }
        }
        if self.max_lead_days > MAX_LEAD_DAYS {
            return Err(DomainError::invalid(
                "max_lead_days",
                format!("a requested start can be at most {MAX_LEAD_DAYS} days ahead"),
            ));
        }
        match self.expiration {
            Expiration::AfterDays { days } if days == 0 || days > 3660 => {
                Err(DomainError::invalid("expiration", "between 1 and 3660 days"))
            }
            Expiration::AfterHours { hours } if hours == 0 || hours > 3660 * 24 => {
                Err(DomainError::invalid("expiration", "at least one hour"))
            }
            _ => Ok(()),
        }
    }

    /// Check what a requestor filled in against this policy; returns the clean answers.
    pub fn check_request_form(&self, justification: &str, answers: &[Answer]) -> DomainResult<Vec<Answer>> {
        if self.justification_required && justification.trim().is_empty() {
            return Err(DomainError::invalid("justification", "say why you need this access"));
        }
        let mut clean = Vec::new();
        for q in &self.questions {
            let value =
                answers.iter().find(|a| a.question_id == q.id).map(|a| a.value.trim().to_owned()).unwrap_or_default();
            if value.is_empty() {
                if q.required {
                    return Err(DomainError::invalid(
                        &format!("q_{}", q.id),
                        format!("“{}” needs an answer", q.prompt),
                    ));
                }
                continue;
            }
            if let QuestionKind::Choice { options } = &q.kind {
                if !options.contains(&value) {
                    return Err(DomainError::invalid(
                        &format!("q_{}", q.id),
                        format!("pick one of the options for “{}”", q.prompt),
                    ));
                }
            }
            if value.chars().count() > 2000 {
                return Err(DomainError::invalid(&format!("q_{}", q.id), "answer too long"));
            }
            clean.push(Answer { question_id: q.id.clone(), value });
        }
        Ok(clean)
    }

    /// Settings checks that depend on today: a fixed end date must still lie ahead.
    pub fn validate_at(&self, now: DateTime<Utc>) -> DomainResult<()> {
        self.validate()?;
        if let Some(end) = self.expiration.end_for(now)?.filter(|_| self.expiration.is_fixed_date()) {
            if end <= now {
                return Err(DomainError::invalid("expiration", "the end date has already passed"));
            }
        }
        Ok(())
    }

    /// Check the dates a requestor picked, at submission. A start in the past means "as soon
    /// as approved"; a start further ahead than the policy's lead time, an end before the start,
    /// an end past what the policy allows, or a fixed end date that has already passed are
    /// refused with a message for the field.
    pub fn check_schedule(
        &self,
        now: DateTime<Utc>,
        requested_start: Option<DateTime<Utc>>,
        requested_end: Option<DateTime<Utc>>,
    ) -> DomainResult<RequestedSchedule> {
        if !self.schedule_allowed && (requested_start.is_some() || requested_end.is_some()) {
            return Err(DomainError::invalid("start", "this policy does not let you pick dates"));
        }
        let start = requested_start.filter(|s| *s > now);
        if let Some(s) = start {
            let latest_start = checked_after(now, Duration::days(i64::from(self.max_lead_days)), "start")?;
            if s > latest_start {
                return Err(DomainError::invalid(
                    "start",
                    format!("access can start at most {} days from today", self.max_lead_days),
                ));
            }
        }
        let from = start.unwrap_or(now);
        let latest_end = self.expiration.end_for(from)?;
        if self.expiration.is_fixed_date() && latest_end.is_some_and(|l| l <= from) {
            return Err(DomainError::invalid(
                "end",
                "this access ended on a fixed date that has passed; it can no longer be requested",
            ));
        }
        match (requested_end, latest_end) {
            (Some(end), _) if end <= from => Err(DomainError::invalid("end", "the end must come after the start")),
            (Some(end), Some(latest)) if end > latest => Err(DomainError::invalid(
                "end",
                format!("this policy allows access until {} at most", latest.format("%Y-%m-%d")),
            )),
            _ => Ok(RequestedSchedule { start, end: requested_end }),
        }
    }

    /// The access period, decided when access is granted (`granted_at`): it starts at the
    /// requested start or now, whichever is later, and ends at the requestor's explicit end, or
    /// else the policy's period counted from that start — so time spent waiting for approval
    /// never comes out of the access period. Refused when the requested end (or the policy's
    /// fixed date) has passed by then.
    pub fn access_period(
        &self,
        granted_at: DateTime<Utc>,
        requested: RequestedSchedule,
    ) -> DomainResult<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        let start = requested.start.map_or(granted_at, |s| s.max(granted_at));
        // An explicit end stays as chosen, but never past what the policy allows now (it may
        // have been tightened while the request waited).
        let end = match (requested.end, self.expiration.end_for(start)?) {
            (Some(end), Some(latest)) => Some(end.min(latest)),
            (Some(end), None) => Some(end),
            (None, latest) => latest,
        };
        if end.is_some_and(|e| e <= start) {
            return Err(DomainError::Conflict(
                "the requested access period had already ended when it was approved".into(),
            ));
        }
        Ok((start, end))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn policy(stages: Vec<Stage>) -> Policy {
        let mut p = Policy::new(PackageId(1), "Default", RequestorScope::AllMembers, stages);
        p.id = PolicyId(1);
        p.on_behalf_allowed = false;
        p
    }

    pub fn stage(primary: Vec<ApproverSpec>) -> Stage {
        Stage::new(primary)
    }

    #[test]
    fn validation_names_the_problem() {
        let mut p = policy(vec![stage(vec![]); 1]);
        assert!(matches!(p.validate(), Err(DomainError::Invalid { .. })));
        p.approval.stages = vec![stage(vec![ApproverSpec::Manager]); 4];
        assert!(p.validate().unwrap_err().to_string().contains("at most 3"));
        p.approval.stages = vec![stage(vec![ApproverSpec::Manager]); 3];
        assert!(p.validate().is_ok());
        p.approval.stages[0].on_timeout = OnTimeout::Escalate;
        assert!(p.validate().unwrap_err().to_string().contains("escalat"));
    }

    #[test]
    fn request_form_enforces_required_answers_and_choices() {
        let mut p = policy(vec![]);
        p.justification_required = true;
        p.questions = vec![
            Question {
                id: "why".into(),
                prompt: "Project".into(),
                required: true,
                kind: QuestionKind::Text { multiline: false },
            },
            Question {
                id: "env".into(),
                prompt: "Environment".into(),
                required: false,
                kind: QuestionKind::Choice { options: vec!["prod".into(), "test".into()] },
            },
        ];
        let a = |q: &str, v: &str| Answer { question_id: q.into(), value: v.into() };
        assert!(matches!(
            p.check_request_form(" ", &[]),
            Err(DomainError::Invalid { field: Some(f), .. }) if f == "justification"
        ));
        assert!(matches!(
            p.check_request_form("x", &[]),
            Err(DomainError::Invalid { field: Some(f), .. }) if f == "q_why"
        ));
        assert!(p.check_request_form("x", &[a("why", "Apollo"), a("env", "dev")]).is_err());
        let ok = p.check_request_form("x", &[a("why", " Apollo "), a("env", "prod")]).unwrap();
        assert_eq!(ok, vec![a("why", "Apollo"), a("env", "prod")]);
    }

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(y, m, d, 9, 0, 0).unwrap()
    }

    fn field_of(r: DomainResult<RequestedSchedule>) -> String {
        match r {
            Err(DomainError::Invalid { field: Some(f), .. }) => f,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn schedule_is_clipped_to_expiration() {
        let now = at(2026, 11, 2);
        let mut p = policy(vec![]);
        p.expiration = Expiration::AfterDays { days: 30 };
        assert_eq!(p.check_schedule(now, None, None).unwrap(), RequestedSchedule::default());
        assert_eq!(field_of(p.check_schedule(now, None, Some(now + Duration::days(3)))), "start", "dates not allowed");
        p.schedule_allowed = true;
        assert_eq!(field_of(p.check_schedule(now, None, Some(now + Duration::days(31)))), "end");
        let asked = p.check_schedule(now, None, Some(now + Duration::days(3))).unwrap();
        assert_eq!(asked.end, Some(now + Duration::days(3)));
        // The window is counted from the requested start, not from today.
        let later = now + Duration::days(10);
        assert!(p.check_schedule(now, Some(later), Some(later + Duration::days(30))).is_ok());
        assert_eq!(field_of(p.check_schedule(now, Some(later), Some(later + Duration::days(31)))), "end");
    }

    #[test]
    fn ends_before_the_start_and_starts_beyond_the_lead_time_are_refused() {
        let now = at(2026, 11, 2);
        let mut p = policy(vec![]);
        p.schedule_allowed = true;
        let start = now + Duration::days(10);
        assert_eq!(field_of(p.check_schedule(now, Some(start), Some(start - Duration::days(1)))), "end");
        assert_eq!(field_of(p.check_schedule(now, Some(start), Some(start))), "end");
        assert_eq!(field_of(p.check_schedule(now, Some(now + Duration::days(91)), None)), "start");
        assert!(p.check_schedule(now, Some(now + Duration::days(90)), None).is_ok());
        p.max_lead_days = 7;
        assert_eq!(field_of(p.check_schedule(now, Some(now + Duration::days(8)), None)), "start");
        // A start in the past means "as soon as approved".
        assert_eq!(p.check_schedule(now, Some(now - Duration::days(1)), None).unwrap().start, None);
    }

    #[test]
    fn a_fixed_end_date_that_has_passed_is_refused() {
        let now = at(2026, 11, 2);
        let mut p = policy(vec![]);
        p.expiration = Expiration::OnDate { date: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap() };
        assert_eq!(field_of(p.check_schedule(now, None, None)), "end");
        assert!(matches!(p.validate_at(now), Err(DomainError::Invalid { field: Some(f), .. }) if f == "expiration"));
        p.expiration = Expiration::OnDate { date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap() };
        assert!(p.check_schedule(now, None, None).is_ok());
        assert!(p.validate_at(now).is_ok());
    }

    #[test]
    fn the_access_period_counts_from_when_access_is_granted() {
        let filed = at(2026, 11, 2);
        let approved = filed + Duration::days(5);
        let mut p = policy(vec![]);
        p.expiration = Expiration::AfterDays { days: 30 };
        let asked = p.check_schedule(filed, None, None).unwrap();
        assert_eq!(p.access_period(approved, asked).unwrap(), (approved, Some(approved + Duration::days(30))));
        // A requested start still ahead at approval is kept, and the period counts from it.
        p.schedule_allowed = true;
        let start = filed + Duration::days(20);
        let asked = p.check_schedule(filed, Some(start), None).unwrap();
        assert_eq!(p.access_period(approved, asked).unwrap(), (start, Some(start + Duration::days(30))));
        // An explicit end stays as chosen; one that passed while waiting is refused.
        let end = filed + Duration::days(7);
        let asked = p.check_schedule(filed, None, Some(end)).unwrap();
        assert_eq!(p.access_period(approved, asked).unwrap(), (approved, Some(end)));
        assert!(matches!(p.access_period(filed + Duration::days(8), asked), Err(DomainError::Conflict(_))));
        // A policy tightened while the request waited caps the chosen end.
        let asked = p.check_schedule(filed, None, Some(filed + Duration::days(25))).unwrap();
        p.expiration = Expiration::AfterDays { days: 10 };
        assert_eq!(p.access_period(approved, asked).unwrap().1, Some(approved + Duration::days(10)));
    }

    #[test]
    fn date_arithmetic_out_of_range_is_an_error_not_a_panic() {
        let p = policy(vec![]);
        let mut q = p.clone();
        q.expiration = Expiration::AfterDays { days: 3660 };
        assert!(q.expiration.end_for(DateTime::<Utc>::MAX_UTC).is_err());
        q.expiration = Expiration::AfterHours { hours: 1 };
        assert!(q.access_period(DateTime::<Utc>::MAX_UTC, RequestedSchedule::default()).is_err());
        let mut r = p;
        r.schedule_allowed = true;
        let max = DateTime::<Utc>::MAX_UTC;
        assert!(r.check_schedule(max - Duration::days(1), Some(max), None).is_err());
    }
}
