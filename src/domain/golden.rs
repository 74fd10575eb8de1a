//! Golden JSON: the exact serde form of every type kept in a JSON column (policies, request
//! snapshots) or an audit payload (hash-chained, so its bytes matter). Renaming a field or a
//! variant, or changing a tag, breaks rows already stored: these tests say so first.
//!
//! Each case serializes a value and compares it with a literal, then reads the literal back
//! and compares it with the value.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Debug;

use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ids::*;
use super::policy::*;

#[track_caller]
fn golden<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T, json: &str) {
    let written = serde_json::to_string(value).expect("serializes");
    assert_eq!(written, json, "the stored JSON form of {value:?} changed");
    let read: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("cannot read back {json}: {e}"));
    assert_eq!(&read, value, "{json} reads back as something else");
}

/// Rows written before a field existed still read: the field takes its default.
#[track_caller]
fn reads<T: DeserializeOwned + PartialEq + Debug>(json: &str, value: &T) {
    let read: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("cannot read {json}: {e}"));
    assert_eq!(&read, value);
}

#[test]
fn approver_spec_each_variant() {
    golden(&ApproverSpec::User { id: UserId(7) }, r#"{"kind":"user","id":7}"#);
    golden(&ApproverSpec::Group { id: GroupId(3) }, r#"{"kind":"group","id":3}"#);
    golden(&ApproverSpec::Manager, r#"{"kind":"manager"}"#);
    golden(&ApproverSpec::CatalogOwners, r#"{"kind":"catalog_owners"}"#);
    golden(&ApproverSpec::Sponsors, r#"{"kind":"sponsors"}"#);
}

#[test]
fn on_timeout_each_variant() {
    golden(&OnTimeout::Expire, r#""expire""#);
    golden(&OnTimeout::Escalate, r#""escalate""#);
}

#[test]
fn stage_and_approval() {
    let stage = Stage {
        primary: vec![ApproverSpec::Manager],
        fallback: vec![ApproverSpec::CatalogOwners],
        escalation: vec![ApproverSpec::User { id: UserId(1) }],
        justification_required: true,
        timeout_days: 5,
        remind_after_days: None,
        on_timeout: OnTimeout::Escalate,
    };
    let stage_json = r#"{"primary":[{"kind":"manager"}],"fallback":[{"kind":"catalog_owners"}],"escalation":[{"kind":"user","id":1}],"justification_required":true,"timeout_days":5,"on_timeout":"escalate"}"#;
    golden(&stage, stage_json);
    reads(
        r#"{"primary":[{"kind":"group","id":2}],"timeout_days":7}"#,
        &Stage::new(vec![ApproverSpec::Group { id: GroupId(2) }]),
    );

    let approval = Approval { stages: vec![stage, Stage::new(vec![ApproverSpec::Sponsors])] };
    golden(
        &approval,
        &format!(
            r#"{{"stages":[{stage_json},{{"primary":[{{"kind":"sponsors"}}],"fallback":[],"escalation":[],"justification_required":false,"timeout_days":7,"on_timeout":"expire"}}]}}"#
        ),
    );
    golden(&Approval::default(), r#"{"stages":[]}"#);
}

#[test]
fn question_each_kind_and_answer() {
    golden(
        &Question {
            id: "region".into(),
            prompt: "Which region?".into(),
            required: false,
            kind: QuestionKind::Text { multiline: true },
        },
        r#"{"id":"region","prompt":"Which region?","required":false,"kind":"text","multiline":true}"#,
    );
    golden(
        &Question {
            id: "service".into(),
            prompt: "Which service?".into(),
            required: true,
            kind: QuestionKind::Choice { options: vec!["Payments API".into(), "Data platform".into()] },
        },
        r#"{"id":"service","prompt":"Which service?","required":true,"kind":"choice","options":["Payments API","Data platform"]}"#,
    );
    reads(
        r#"{"id":"note","prompt":"Anything else?","required":false,"kind":"text"}"#,
        &Question {
            id: "note".into(),
            prompt: "Anything else?".into(),
            required: false,
            kind: QuestionKind::Text { multiline: false },
        },
    );
    golden(&QuestionKind::Text { multiline: false }, r#"{"kind":"text","multiline":false}"#);
    golden(&QuestionKind::Choice { options: vec!["A".into()] }, r#"{"kind":"choice","options":["A"]}"#);
    golden(
        &Answer { question_id: "region".into(), value: "EMEA".into() },
        r#"{"question_id":"region","value":"EMEA"}"#,
    );
}

#[test]
fn expiration_each_variant() {
    golden(&Expiration::Never, r#"{"kind":"never"}"#);
    golden(
        &Expiration::OnDate { date: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap() },
        r#"{"kind":"on_date","date":"2026-12-31"}"#,
    );
    golden(&Expiration::AfterDays { days: 30 }, r#"{"kind":"after_days","days":30}"#);
    golden(&Expiration::AfterHours { hours: 8 }, r#"{"kind":"after_hours","hours":8}"#);
}

#[test]
fn review_settings_each_variant() {
    golden(&ReviewSettings::Off, r#"{"kind":"off"}"#);
    let recurring = |frequency, default_decision| ReviewSettings::Recurring {
        frequency,
        reviewers: vec![ApproverSpec::Manager, ApproverSpec::Group { id: GroupId(4) }],
        self_review: true,
        duration_days: 14,
        default_decision,
        apply_automatically: false,
        starts_on: None,
        fallback: vec![],
    };
    for (frequency, word) in [
        (ReviewFrequency::Weekly, "weekly"),
        (ReviewFrequency::Monthly, "monthly"),
        (ReviewFrequency::Quarterly, "quarterly"),
        (ReviewFrequency::Annually, "annually"),
    ] {
        for (default, dword) in [
            (ReviewDefault::Keep, "keep"),
            (ReviewDefault::Remove, "remove"),
            (ReviewDefault::Recommendation, "recommendation"),
        ] {
            golden(
                &recurring(frequency, default),
                &format!(
                    r#"{{"kind":"recurring","frequency":"{word}","reviewers":[{{"kind":"manager"}},{{"kind":"group","id":4}}],"self_review":true,"duration_days":14,"default_decision":"{dword}","apply_automatically":false}}"#
                ),
            );
        }
    }
    reads(
        r#"{"kind":"recurring","frequency":"monthly","reviewers":[],"duration_days":7,"default_decision":"keep","apply_automatically":true}"#,
        &ReviewSettings::Recurring {
            frequency: ReviewFrequency::Monthly,
            reviewers: vec![],
            self_review: false,
            duration_days: 7,
            default_decision: ReviewDefault::Keep,
            apply_automatically: true,
            starts_on: None,
            fallback: vec![],
        },
    );
}

#[test]
fn requestor_ref_each_variant() {
    golden(&RequestorRef::User(UserId(9)), r#"{"kind":"user","id":9}"#);
    golden(&RequestorRef::Group(GroupId(2)), r#"{"kind":"group","id":2}"#);
    golden(&RequestorRef::Org(OrgId(1)), r#"{"kind":"org","id":1}"#);
}

#[test]
fn requestor_scope_each_variant() {
    for (scope, word) in [
        (RequestorScope::Nobody, "nobody"),
        (RequestorScope::AllMembers, "all_members"),
        (RequestorScope::Specific, "specific"),
        (RequestorScope::ConnectedOrgs, "connected_orgs"),
        (RequestorScope::AllExternals, "all_externals"),
    ] {
        golden(&scope, &format!("\"{word}\""));
    }
}

/// A whole policy is an audit payload (`policy.created`, `policy.updated`).
#[test]
fn policy() {
    let mut p =
        Policy::new(PackageId(5), "Engineers", RequestorScope::Specific, vec![Stage::new(vec![ApproverSpec::Manager])]);
    p.id = PolicyId(11);
    p.requestors = vec![RequestorRef::Group(GroupId(2))];
    p.questions = vec![Question {
        id: "why".into(),
        prompt: "Why?".into(),
        required: true,
        kind: QuestionKind::Text { multiline: false },
    }];
    p.expiration = Expiration::AfterDays { days: 30 };
    p.auto_rule = Some("department == 'Sales'".into());
    golden(
        &p,
        concat!(
            r#"{"id":11,"package_id":5,"name":"Engineers","description":"","scope":"specific","#,
            r#""requestors":[{"kind":"group","id":2}],"justification_required":false,"schedule_allowed":false,"#,
            r#""on_behalf_allowed":true,"approval":{"stages":[{"primary":[{"kind":"manager"}],"fallback":[],"#,
            r#""escalation":[],"justification_required":false,"timeout_days":7,"on_timeout":"expire"}]},"#,
            r#""questions":[{"id":"why","prompt":"Why?","required":true,"kind":"text","multiline":false}],"#,
            r#""expiration":{"kind":"after_days","days":30},"extension_allowed":false,"extension_needs_approval":true,"#,
            r#""review":{"kind":"off"},"auto_rule":"department == 'Sales'","max_lead_days":90,"enabled":true,"version":1}"#
        ),
    );
}
