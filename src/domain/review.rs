//! Access reviews: when a policy's reviews run, what each assignment's review recommends, and
//! what happens to it when the review ends.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::model::word_enum;
use super::policy::{ReviewDefault, ReviewFrequency, ReviewSettings};

word_enum!(
    /// A reviewer's answer (and, for `Keep` and `Remove`, a recommendation and an outcome).
    ReviewDecision { Keep = "keep", Remove = "remove", DontKnow = "dont_know" }
);
word_enum!(ReviewState { Running = "running", Ended = "ended", Applied = "applied" });

/// No sign-in for this long: the review recommends removing the access.
pub const IDLE_DAYS: i64 = 30;

/// One review: its period starts (00:00 UTC of its first day), and its reviewers may decide
/// until it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub ends: DateTime<Utc>,
    /// When the reviewers who have not answered are reminded: halfway through the time the
    /// review is open.
    pub remind_at: DateTime<Utc>,
}

/// Where periods are counted from when the policy names no first day: a Monday, and the
/// first day of a year (so months, quarters and years follow the calendar).
fn calendar_anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default()
}

/// The first day of the `k`th period from `anchor`.
fn nth_start(anchor: NaiveDate, frequency: ReviewFrequency, k: u32) -> Option<NaiveDate> {
    match frequency {
        ReviewFrequency::Weekly => anchor.checked_add_signed(Duration::weeks(i64::from(k))),
        ReviewFrequency::Monthly => anchor.checked_add_months(Months::new(k)),
        ReviewFrequency::Quarterly => anchor.checked_add_months(Months::new(k.checked_mul(3)?)),
        ReviewFrequency::Annually => anchor.checked_add_months(Months::new(k.checked_mul(12)?)),
    }
}

/// The review to start at `now`, if the settings review and one is due: the latest period
/// that has started, while its `duration_days` last. A review started late in that window
/// (reviews just turned on, or every instance down for a while) still gets its whole
/// duration, up to the next period's first day; if that leaves less than half of it, the
/// period is skipped rather than rushed. `None` before the first day, between reviews, and
/// when reviews are off.
pub fn period_at(settings: &ReviewSettings, now: DateTime<Utc>) -> Option<Period> {
    let ReviewSettings::Recurring { frequency, duration_days, starts_on, .. } = settings else { return None };
    let anchor = starts_on.unwrap_or_else(calendar_anchor);
    let today = now.date_naive();
    if today < anchor {
        return None;
    }
    // A first guess from the elapsed time, then step back while it lies ahead (months are
    // uneven, and a start on the 31st is clamped to the month's last day).
    let guess = match frequency {
        ReviewFrequency::Weekly => (today - anchor).num_weeks(),
        ReviewFrequency::Monthly | ReviewFrequency::Quarterly | ReviewFrequency::Annually => {
            let months =
                i64::from(today.year() - anchor.year()) * 12 + i64::from(today.month()) - i64::from(anchor.month());
            months
                / match frequency {
                    ReviewFrequency::Quarterly => 3,
                    ReviewFrequency::Annually => 12,
                    _ => 1,
                }
        }
    };
    let mut k = u32::try_from(guess.max(0)).ok()?;
    let first = loop {
        let day = nth_start(anchor, *frequency, k)?;
        if day <= today || k == 0 {
            break day;
        }
        k -= 1;
    };
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    let start = midnight(first)?;
    let next = midnight(nth_start(anchor, *frequency, k.checked_add(1)?)?)?;
    let duration = Duration::days(i64::from((*duration_days).max(1)));
    if now < start || now >= start.checked_add_signed(duration)? {
        return None;
    }
    let ends = now.checked_add_signed(duration)?.min(next);
    if ends - now < duration / 2 {
        return None;
    }
    Some(Period { start, ends, remind_at: now + (ends - now) / 2 })
}

/// What the review recommends for an assignment, and why: remove access whose holder has not
/// signed in for [`IDLE_DAYS`] (or never, once the access is that old), or who changed
/// department after it was given; keep it otherwise.
pub fn recommend(
    now: DateTime<Utc>,
    given_at: DateTime<Utc>,
    last_sign_in: Option<DateTime<Utc>>,
    department_since: Option<DateTime<Utc>>,
) -> (ReviewDecision, String) {
    let idle_from = now - Duration::days(IDLE_DAYS);
    if department_since.is_some_and(|d| d > given_at) {
        return (ReviewDecision::Remove, "changed department since this access was given".into());
    }
    match last_sign_in {
        Some(at) if at < idle_from => {
            (ReviewDecision::Remove, format!("no sign-in for {} days", (now - at).num_days()))
        }
        None if given_at < idle_from => {
            (ReviewDecision::Remove, format!("never signed in, and has held this for {IDLE_DAYS}+ days"))
        }
        _ => (ReviewDecision::Keep, "signed in recently, same department".into()),
    }
}

/// What happens to an assignment when its review ends: the reviewer's keep or remove, else
/// (nobody answered, or "don't know") the policy's default.
pub fn outcome(
    decision: Option<ReviewDecision>,
    default: ReviewDefault,
    recommendation: ReviewDecision,
) -> (ReviewDecision, &'static str) {
    match decision {
        Some(ReviewDecision::Keep) => (ReviewDecision::Keep, "kept by the reviewer"),
        Some(ReviewDecision::Remove) => (ReviewDecision::Remove, "removed by the reviewer"),
        Some(ReviewDecision::DontKnow) | None => match default {
            ReviewDefault::Keep => (ReviewDecision::Keep, "no answer: kept, as the policy says"),
            ReviewDefault::Remove => (ReviewDecision::Remove, "no answer: removed, as the policy says"),
            ReviewDefault::Recommendation if recommendation == ReviewDecision::Remove => {
                (ReviewDecision::Remove, "no answer: removed, as recommended")
            }
            ReviewDefault::Recommendation => (ReviewDecision::Keep, "no answer: kept, as recommended"),
        },
    }
}

/// The word stored for a policy's default.
pub fn default_word(default: ReviewDefault) -> &'static str {
    match default {
        ReviewDefault::Keep => "keep",
        ReviewDefault::Remove => "remove",
        ReviewDefault::Recommendation => "recommendation",
    }
}

/// A policy default from its stored word.
pub fn default_of(word: &str) -> Option<ReviewDefault> {
    match word {
        "keep" => Some(ReviewDefault::Keep),
        "remove" => Some(ReviewDefault::Remove),
        "recommendation" => Some(ReviewDefault::Recommendation),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quarterly(starts_on: Option<NaiveDate>, days: u32) -> ReviewSettings {
        ReviewSettings::Recurring {
            frequency: ReviewFrequency::Quarterly,
            reviewers: vec![],
            self_review: true,
            duration_days: days,
            default_decision: ReviewDefault::Keep,
            apply_automatically: true,
            starts_on,
            fallback: vec![],
        }
    }

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(y, m, d).and_then(|d| d.and_hms_opt(h, 0, 0)).map(|d| d.and_utc()).unwrap_or_default()
    }

    #[test]
    fn quarters_follow_the_calendar_or_the_first_day() {
        let p = period_at(&quarterly(None, 14), at(2026, 10, 1, 0)).expect("the October review runs");
        assert_eq!(p.start, at(2026, 10, 1, 0));
        assert_eq!(p.ends, at(2026, 10, 15, 0));
        assert_eq!(p.remind_at, at(2026, 10, 8, 0));
        // Started four days late, it still gets its fourteen days.
        let late = period_at(&quarterly(None, 14), at(2026, 10, 5, 12)).expect("the October review runs");
        assert_eq!((late.start, late.ends), (at(2026, 10, 1, 0), at(2026, 10, 19, 12)));
        assert_eq!(late.remind_at, at(2026, 10, 12, 12));
        assert_eq!(period_at(&quarterly(None, 14), at(2026, 10, 15, 0)), None, "over once its days pass");
        assert_eq!(period_at(&quarterly(None, 14), at(2026, 10, 1, 0)).map(|p| p.start), Some(at(2026, 10, 1, 0)));
        assert_eq!(period_at(&quarterly(None, 14), at(2026, 9, 30, 23)), None);
        let from = NaiveDate::from_ymd_opt(2026, 1, 31);
        assert_eq!(period_at(&quarterly(from, 10), at(2026, 1, 30, 0)), None, "not before the first day");
        assert_eq!(period_at(&quarterly(from, 10), at(2026, 2, 5, 0)).map(|p| p.start), Some(at(2026, 1, 31, 0)));
        // 31 January + 3 months is 30 April (clamped), and that period has started on 1 May.
        assert_eq!(period_at(&quarterly(from, 10), at(2026, 5, 1, 0)).map(|p| p.start), Some(at(2026, 4, 30, 0)));
        assert_eq!(period_at(&ReviewSettings::Off, at(2026, 10, 2, 0)), None);
    }

    #[test]
    fn weeks_start_on_mondays() {
        let weekly = ReviewSettings::Recurring {
            frequency: ReviewFrequency::Weekly,
            reviewers: vec![],
            self_review: true,
            duration_days: 3,
            default_decision: ReviewDefault::Keep,
            apply_automatically: true,
            starts_on: None,
            fallback: vec![],
        };
        // 2026-11-30 is a Monday: that week's three-day review is still open on Wednesday
        // morning (started then, it runs to the next Monday), and over on Thursday.
        let wednesday = period_at(&weekly, at(2026, 12, 2, 9)).expect("still open");
        assert_eq!((wednesday.start, wednesday.ends), (at(2026, 11, 30, 0), at(2026, 12, 5, 9)));
        assert_eq!(period_at(&weekly, at(2026, 12, 3, 9)), None);
        // A week-long weekly review started on Sunday would get one day: skipped.
        let long = ReviewSettings::Recurring {
            frequency: ReviewFrequency::Weekly,
            reviewers: vec![],
            self_review: true,
            duration_days: 7,
            default_decision: ReviewDefault::Keep,
            apply_automatically: true,
            starts_on: None,
            fallback: vec![],
        };
        assert_eq!(period_at(&long, at(2026, 12, 6, 0)), None, "rushed: skipped");
        assert_eq!(period_at(&long, at(2026, 12, 2, 0)).map(|p| p.ends), Some(at(2026, 12, 7, 0)), "until Monday");
    }

    #[test]
    fn recommendations_and_outcomes() {
        let now = at(2026, 10, 1, 0);
        let given = at(2026, 1, 1, 0);
        assert_eq!(recommend(now, given, Some(at(2026, 9, 20, 0)), None).0, ReviewDecision::Keep);
        assert_eq!(recommend(now, given, Some(at(2026, 8, 1, 0)), None).0, ReviewDecision::Remove);
        assert_eq!(recommend(now, given, None, None).0, ReviewDecision::Remove);
        assert_eq!(recommend(now, at(2026, 9, 25, 0), None, None).0, ReviewDecision::Keep, "new access");
        let moved = recommend(now, given, Some(at(2026, 9, 30, 0)), Some(at(2026, 6, 1, 0)));
        assert_eq!(moved.0, ReviewDecision::Remove);
        assert!(moved.1.contains("department"));
        assert_eq!(recommend(now, given, Some(at(2026, 9, 30, 0)), Some(at(2025, 6, 1, 0))).0, ReviewDecision::Keep);

        use ReviewDecision::*;
        assert_eq!(outcome(Some(Keep), ReviewDefault::Remove, Remove).0, Keep);
        assert_eq!(outcome(Some(Remove), ReviewDefault::Keep, Keep).0, Remove);
        assert_eq!(outcome(None, ReviewDefault::Keep, Remove).0, Keep);
        assert_eq!(outcome(Some(DontKnow), ReviewDefault::Remove, Keep).0, Remove);
        assert_eq!(outcome(None, ReviewDefault::Recommendation, Remove).0, Remove);
        assert_eq!(outcome(None, ReviewDefault::Recommendation, Keep).0, Keep);
    }
}
