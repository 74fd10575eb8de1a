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
pub enum RequestorRef {
    User(UserId),
    Group(GroupId),
    Org(OrgId),
}

/// Who approves a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
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
pub enum OnTimeout {
    /// The request ends as `expired` (denied by time-out).
    #[default]
    Expire,
    /// The stage's escalation approvers are added, and get another timeout period.
    Escalate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Approval {
    pub stages: Vec<Stage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
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

impl Expiration {
    /// The latest end an assignment starting at `start` may have (`None`: open-ended).
    pub fn end_for(self, start: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Expiration::Never => None,
            Expiration::OnDate { date } => date.and_hms_opt(23, 59, 59).map(|d| d.and_utc()),
            Expiration::AfterDays { days } => Some(start + Duration::days(i64::from(days))),
            Expiration::AfterHours { hours } => Some(start + Duration::hours(i64::from(hours))),
        }
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
pub enum ReviewFrequency {
    Weekly,
    Monthly,
    Quarterly,
    Annually,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDefault {
    Keep,
    Remove,
    Recommendation,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
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
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    pub enabled: bool,
    pub version: i64,
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
            on_timeout: OnTimeout::Expire,
        }
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

    /// The schedule an assignment gets: the requested one where the policy allows it,
    /// clipped to the policy's expiration.
    pub fn schedule(
        &self,
        now: DateTime<Utc>,
        requested_start: Option<DateTime<Utc>>,
        requested_end: Option<DateTime<Utc>>,
    ) -> DomainResult<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        if !self.schedule_allowed && (requested_start.is_some() || requested_end.is_some()) {
            return Err(DomainError::invalid("start", "this policy does not let you pick dates"));
        }
        let start = requested_start.map_or(now, |s| s.max(now));
        let latest_end = self.expiration.end_for(start);
        let end = match (requested_end, latest_end) {
            (Some(end), _) if end <= start => {
                return Err(DomainError::invalid("end", "the end must come after the start"))
            }
            (Some(end), Some(latest)) if end > latest => {
                return Err(DomainError::invalid(
                    "end",
                    format!("this policy allows access until {} at most", latest.format("%Y-%m-%d")),
                ))
            }
            (Some(end), _) => Some(end),
            (None, latest) => latest,
        };
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

    #[test]
    fn schedule_is_clipped_to_expiration() {
        let now = Utc::now();
        let mut p = policy(vec![]);
        p.expiration = Expiration::AfterDays { days: 30 };
        let (start, end) = p.schedule(now, None, None).unwrap();
        assert_eq!(start, now);
        assert_eq!(end, Some(now + Duration::days(30)));
        assert!(p.schedule(now, None, Some(now + Duration::days(3))).is_err(), "dates not allowed");
        p.schedule_allowed = true;
        assert!(p.schedule(now, None, Some(now + Duration::days(31))).is_err());
        assert_eq!(p.schedule(now, None, Some(now + Duration::days(3))).unwrap().1, Some(now + Duration::days(3)));
    }
}
