//! Access reviews (issue 13): a policy that reviews its access gets one review per period,
//! created once (a unique index) by whichever instance's pass comes first. Its reviewers —
//! the people themselves, their managers (or the fallback), or named people; never someone
//! about their own access unless it is a self-review — answer keep, remove or don't know for
//! each assignment, with a recommendation shown. Halfway through, those who have not answered
//! are reminded. When its time is up (or its owners end it early) the policy's default answers
//! for the silent, and the removals are applied — at once, or by the package's managers — a
//! batch at a time through the normal path: each assignment ended under its holder's lock,
//! audited, its grants' removals queued for the connectors in the same transaction.
//!
//! A decision and the end of the review take turns on the review's row: a decision made
//! before the end counts, one after it is refused ("this review has ended").

use serde_json::json;

use super::assignments::end_assignments;
use super::requests::specs_directory;
use super::Service;
use crate::domain::approvers::resolve_stage;
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Actor, Operator, Permission};
use crate::domain::ids::*;
use crate::domain::model::AccessPackage;
use crate::domain::policy::{ApproverSpec, Policy, ReviewSettings, Stage};
use crate::domain::request::AssignmentState;
use crate::domain::review::{self, Period, ReviewDecision, ReviewState};
use crate::domain::{DomainError, DomainResult};
use crate::store::reviews;
use crate::views::{Page, ReviewItemView, ReviewView};

/// Reviews one pass ends or reminds; removals applied per transaction.
const REVIEW_PASS: i64 = 20;
const APPLY_BATCH: i64 = 50;
/// Most items decided by one answer.
pub const MAX_DECIDED_AT_ONCE: usize = 500;
/// Items a reviewer's page shows at once.
const ITEMS_PAGE: i64 = 50;

impl Service {
    /// Start the reviews due now: for each policy that reviews its access, the review of the
    /// period under way, if it has not been started (here, by another instance, or before a
    /// restart) and the policy has access to review. Returns how many started.
    #[tracing::instrument(name = "start_reviews", skip_all, fields(operator = %by))]
    pub async fn start_reviews(&self, by: &Operator<'_>) -> DomainResult<usize> {
        by.require(Permission::Administer)?;
        let now = self.now();
        let due: Vec<(AccessPackage, Policy, Period)> = {
            let mut conn = self.db.pool().acquire().await?;
            let snapshot = self.catalog_snapshot(&mut conn).await?;
            let mut due = Vec::new();
            for (package, policy) in snapshot.reviewed_policies() {
                let Some(period) = review::period_at(&policy.review, now) else { continue };
                // One review of a policy at a time (a first day moved by an edit could make
                // another period due while one runs).
                if !reviews::exists(&mut conn, policy.id, period.start).await?
                    && !reviews::running_for(&mut conn, policy.id).await?
                {
                    due.push((package.clone(), policy.clone(), period));
                }
            }
            due
        };
        let mut started = 0;
        for (package, policy, period) in due {
            match self.start_review(&package, &policy, period).await {
                Ok(true) => started += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(policy = policy.id.0, error = ?e, "starting a review failed"),
            }
        }
        Ok(started)
    }

    /// Start one review, with an item per live assignment of the policy; false when it exists
    /// already or there is nothing to review.
    async fn start_review(&self, package: &AccessPackage, policy: &Policy, period: Period) -> DomainResult<bool> {
        let ReviewSettings::Recurring {
            frequency,
            reviewers,
            self_review,
            fallback,
            default_decision,
            apply_automatically,
            ..
        } = &policy.review
        else {
            return Ok(false);
        };
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let covered = reviews::covered(&mut tx, policy.id, package.id).await?;
        if covered.is_empty() || reviews::running_for(&mut tx, policy.id).await? {
            return Ok(false);
        }
        self.checkpoint("review.starting").await;
        let Some(id) = reviews::create(
            &mut tx,
            policy.id,
            package.id,
            (period.start, period.ends, period.remind_at),
            review::default_word(*default_decision),
            *apply_automatically,
            now,
        )
        .await?
        else {
            return Ok(false);
        };
        // Who reviews: the person themselves, or the policy's reviewers resolved for each
        // holder (never the holder), the fallback (or the catalog's owners) when those are
        // nobody.
        let stage = Stage {
            fallback: if fallback.is_empty() { vec![ApproverSpec::CatalogOwners] } else { fallback.clone() },
            ..Stage::new(reviewers.clone())
        };
        // Reviews have no sponsors: a guest's access is reviewed by the named reviewers.
        let specs: Vec<ApproverSpec> = stage.primary.iter().chain(&stage.fallback).copied().collect();
        let mut dir = specs_directory(&mut tx, &specs, package.catalog_id).await?;
        let mut unreviewed = 0;
        for c in &covered {
            let who: Vec<UserId> = if *self_review {
                vec![c.user]
            } else {
                dir.manager = c.manager;
                resolve_stage(&stage, &dir, c.user, c.user).into_iter().map(|(u, _)| u).collect()
            };
            if who.is_empty() {
                unreviewed += 1;
            }
            let (recommendation, why) = review::recommend(now, c.given_at, c.last_sign_in, c.department_since);
            reviews::add_item(&mut tx, id, c, (recommendation, &why), &who).await?;
        }
        let event = AuditEvent::new(None, "review.started", "review", id)
            .after(json!({
                "policy": policy.id, "package": package.id, "items": covered.len(),
                "without_reviewer": unreviewed, "ends": period.ends, "self_review": self_review,
            }))
            .reason(format!("the {} review of {}", frequency.word(), package.name));
        self.commit(tx, vec![event]).await?;
        Ok(true)
    }

    /// The clock's turn: remind the reviewers of reviews halfway through, end the reviews
    /// whose time is up, and apply the results of those that apply automatically. Returns
    /// how many reviews it moved on.
    #[tracing::instrument(name = "run_reviews", skip_all, fields(operator = %by))]
    pub async fn run_reviews(&self, by: &Operator<'_>) -> DomainResult<usize> {
        by.require(Permission::Administer)?;
        let now = self.now();
        let (remind, end) = {
            let mut conn = self.db.pool().acquire().await?;
            (
                reviews::due_reminders(&mut conn, now, REVIEW_PASS).await?,
                reviews::due_to_end(&mut conn, now, REVIEW_PASS).await?,
            )
        };
        let mut moved = 0;
        for id in remind {
            match self.remind_reviewers(id).await {
                Ok(true) => moved += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(review = id, error = ?e, "a review's reminder failed"),
            }
        }
        for id in end {
            match self.end_review(id, None).await {
                Ok(true) => moved += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(review = id, error = ?e, "ending a review failed"),
            }
        }
        let automatic = {
            let mut conn = self.db.pool().acquire().await?;
            reviews::to_apply_automatically(&mut conn, REVIEW_PASS).await?
        };
        for id in automatic {
            match self.apply_all(id, None).await {
                Ok(_) => moved += 1,
                Err(e) => tracing::error!(review = id, error = ?e, "applying a review's results failed"),
            }
        }
        Ok(moved)
    }

    async fn remind_reviewers(&self, id: i64) -> DomainResult<bool> {
        let mut tx = self.db.begin().await?;
        if !reviews::take_reminder(&mut tx, id).await? {
            return Ok(false);
        }
        let event = AuditEvent::new(None, "review.reminded", "review", id).reason("halfway through the review");
        self.commit(tx, vec![event]).await?;
        Ok(true)
    }

    /// End a running review (`by`: its owner ending it early; `None`: its time is up): the
    /// decisions become final and each item's outcome is set, the policy's default answering
    /// for those nobody decided. False when it was not running.
    async fn end_review(&self, id: i64, by: Option<&Actor>) -> DomainResult<bool> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let Some(r) = reviews::review(&mut tx, id).await? else { return Ok(false) };
        if !reviews::end(&mut tx, id, by.map(Actor::id), now).await? {
            return Ok(false);
        }
        let default = review::default_of(&r.default_decision).ok_or_else(|| {
            DomainError::Internal(format!("review {id} has an unknown default {:?}", r.default_decision))
        })?;
        let (mut kept, mut removing) = (0, 0);
        let kinds = reviews::answer_kinds(&mut tx, id).await?;
        self.checkpoint("review.ending").await;
        for (decision, recommendation, n) in kinds {
            let unknown =
                |what: &str, word: &str| DomainError::Internal(format!("review {id}: unknown {what} {word:?}"));
            let answer = match decision.as_deref() {
                Some(word) => Some(ReviewDecision::parse(word).ok_or_else(|| unknown("answer", word))?),
                None => None,
            };
            let recommended =
                ReviewDecision::parse(&recommendation).ok_or_else(|| unknown("recommendation", &recommendation))?;
            let (outcome, why) = review::outcome(answer, default, recommended);
            reviews::set_outcome(&mut tx, id, (decision.as_deref(), &recommendation), (outcome, why)).await?;
            if outcome == ReviewDecision::Remove {
                removing += n;
            } else {
                kept += n;
            }
        }
        let event = AuditEvent::new(by.map(Actor::id), "review.ended", "review", id)
            .before(json!({"state": "running"}))
            .after(json!({"state": "ended", "keeping": kept, "removing": removing}))
            .reason(if by.is_some() { "ended early by its owner" } else { "its time is up" });
        self.commit(tx, vec![event]).await?;
        Ok(true)
    }

    /// Apply an ended review's removals, a batch per transaction, and mark it applied. A
    /// batch that fails is tried again one removal at a time; one that still fails is logged
    /// and left for the next pass (the review stays ended until every removal is applied).
    /// Returns how many assignments it ended.
    async fn apply_all(&self, id: i64, by: Option<&Actor>) -> DomainResult<usize> {
        let (mut ended, mut after, mut failed) = (0, 0, false);
        loop {
            match self.apply_batch(id, by, after, APPLY_BATCH).await {
                Ok(Applied::Batch(n, last)) => (ended, after) = (ended + n, last),
                Ok(Applied::Done) => break,
                Ok(Applied::Raced) => return Ok(ended),
                Err(e) => {
                    tracing::warn!(review = id, error = ?e, "a batch of review removals failed: one at a time");
                    let mut last = after;
                    for _ in 0..APPLY_BATCH {
                        match self.apply_batch(id, by, last, 1).await {
                            Ok(Applied::Batch(n, at)) => (ended, last) = (ended + n, at),
                            Ok(Applied::Done | Applied::Raced) => break,
                            Err(e) => {
                                failed = true;
                                tracing::error!(review = id, after = last, error = ?e, "a review removal failed");
                                // Skip it this pass: the next item is the one after it.
                                last = self.next_to_apply(id, last).await?.unwrap_or(i64::MAX);
                            }
                        }
                    }
                    after = last;
                }
            }
        }
        if !failed {
            self.finish_applying(id, by).await?;
        }
        Ok(ended)
    }

    async fn next_to_apply(&self, id: i64, after: i64) -> DomainResult<Option<i64>> {
        let mut conn = self.db.pool().acquire().await?;
        Ok(reviews::to_apply(&mut conn, id, after, 1).await?.first().map(|(item, ..)| *item))
    }

    /// Mark the review applied once no removal is left (once: a second caller finds it so).
    async fn finish_applying(&self, id: i64, by: Option<&Actor>) -> DomainResult<()> {
        let mut tx = self.db.begin().await?;
        if !reviews::set_applied(&mut tx, id, by.map(Actor::id), self.now()).await? {
            return Ok(());
        }
        let event = AuditEvent::new(by.map(Actor::id), "review.applied", "review", id)
            .before(json!({"state": "ended"}))
            .after(json!({"state": "applied"}));
        self.commit(tx, vec![event]).await
    }

    /// Apply up to `limit` removals after item `after`, in one transaction.
    async fn apply_batch(&self, id: i64, by: Option<&Actor>, after: i64, limit: i64) -> DomainResult<Applied> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let batch = reviews::to_apply(&mut tx, id, after, limit).await?;
        let Some(last) = batch.last().map(|(item, ..)| *item) else { return Ok(Applied::Done) };
        let mut people: Vec<UserId> = batch.iter().map(|(_, _, u, _)| *u).collect();
        people.sort_unstable();
        people.dedup();
        self.db.lock_users(&mut tx, &people).await?;
        self.checkpoint("review.applying").await;
        let ids: Vec<AssignmentId> = batch.iter().map(|(_, a, _, _)| *a).collect();
        let mut events = Vec::new();
        let done = end_assignments(self, &mut tx, &ids, AssignmentState::Removed, now).await?;
        for (assignment, grants) in &done {
            let why = batch.iter().find(|(_, a, _, _)| a == assignment).map(|(_, _, _, w)| w.as_str()).unwrap_or("");
            events.push(
                AuditEvent::new(by.map(Actor::id), "assignment.removed", "assignment", assignment.0)
                    .after(json!({"state": "removed", "review": id}))
                    .reason(format!("access review: {why}")),
            );
            events.extend(grants.clone());
        }
        let items: Vec<i64> = batch.iter().map(|(item, ..)| *item).collect();
        // Another instance applying the same review got here first: it did all of this.
        if !reviews::mark_applied(&mut tx, &items, now).await? {
            return Ok(Applied::Raced);
        }
        self.commit(tx, events).await?;
        Ok(Applied::Batch(done.len(), last))
    }

    /// The assignments the reviewer is asked about in running reviews: those waiting for an
    /// answer first, then those answered (an answer may change until the review ends).
    #[tracing::instrument(name = "my_review_items", skip_all, fields(actor = actor.id().0))]
    pub async fn my_review_items(&self, actor: &Actor, after: Option<&str>) -> DomainResult<Page<ReviewItemView>> {
        let now = self.now();
        let after = after.and_then(|a| {
            let (decided, id) = a.split_once('-')?;
            Some((decided == "1", id.parse().ok()?))
        });
        let mut conn = self.db.pool().acquire().await?;
        let rows = reviews::items_for(&mut conn, actor.id(), after, ITEMS_PAGE + 1).await?;
        let more = rows.len() as i64 > ITEMS_PAGE;
        let items: Vec<ReviewItemView> = rows
            .into_iter()
            .take(ITEMS_PAGE as usize)
            .map(|i| ReviewItemView {
                id: i.id,
                package: i.package_name,
                own: i.holder == actor.id(),
                person: i.holder_name,
                email: i.holder_email,
                department: i.holder_department,
                given_at: i.given_at.timestamp_millis(),
                recommendation: i.recommendation.as_str().to_owned(),
                recommendation_reason: i.recommendation_reason,
                decision: i.decision.map(|d| d.as_str().to_owned()),
                justification: i.justification,
                decided_by: i.decided_by,
                ends_at: i.ends_at.timestamp_millis(),
            })
            .collect();
        let next = more.then(|| items.last().map(|l| format!("{}-{}", u8::from(l.decision.is_some()), l.id))).flatten();
        Ok(Page { items, next, as_of: now.timestamp_millis() })
    }

    /// A reviewer answers for these items (one, or several at once): keep, remove or don't
    /// know, with a justification. All or nothing: every item must be one they may decide,
    /// in a review still running. Another reviewer's answer is changed only from a form that
    /// showed it (`seen`: the answer one item's form showed; `None` for several at once):
    /// else the second reviewer is told who answered. Audited per item. Returns how many
    /// were answered.
    #[tracing::instrument(name = "decide_review", skip_all, fields(actor = actor.id().0, items = items.len()))]
    pub async fn decide_review(
        &self,
        actor: &Actor,
        items: &[i64],
        (decision, justification): (ReviewDecision, &str),
        seen: Option<Option<ReviewDecision>>,
    ) -> DomainResult<usize> {
        let mut items = items.to_vec();
        items.sort_unstable();
        items.dedup();
        if items.is_empty() {
            return Err(DomainError::invalid("item_ids", "choose at least one person to review"));
        }
        if items.len() > MAX_DECIDED_AT_ONCE {
            return Err(DomainError::invalid("item_ids", format!("at most {MAX_DECIDED_AT_ONCE} at once")));
        }
        let now = self.now();
        let justification = justification.trim();
        let mut tx = self.db.begin().await?;
        // Take the reviews' rows first: an end racing this waits, or has ended them already.
        let running = reviews::hold_running(&mut tx, &items, actor.id()).await?;
        let changed = reviews::decide(&mut tx, &items, actor.id(), (decision, justification), now).await?;
        if changed.len() != items.len() {
            let mine = reviews::reviewable_by(&mut tx, &items, actor.id()).await?;
            return Err(if mine < items.len() {
                DomainError::not_found("review item")
            } else if running == 0 || changed.is_empty() {
                DomainError::AlreadyDecided("this review has ended: answers can no longer change".into())
            } else {
                DomainError::AlreadyDecided("some of these reviews have ended: nothing was answered".into())
            });
        }
        let shown = seen.map(|s| s.map(|d| d.as_str().to_owned()));
        if let Some(other) =
            changed.iter().find(|a| a.by.is_some_and(|b| b != actor.id()) && shown != Some(a.decision.clone()))
        {
            let name = other.by_name.as_deref().unwrap_or("another reviewer");
            let answer = other.decision.as_deref().unwrap_or("");
            return Err(DomainError::AlreadyDecided(format!(
                "{name} answered “{}” meanwhile: look again before changing it",
                answer.replace('_', " ")
            )));
        }
        let events = changed
            .iter()
            .map(|a| {
                AuditEvent::new(Some(actor.id()), "review.decided", "review_item", a.item)
                    .before(json!({"decision": a.decision, "by": a.by}))
                    .after(json!({"decision": decision.as_str()}))
                    .reason(justification)
            })
            .collect();
        self.commit(tx, events).await?;
        Ok(changed.len())
    }

    /// Reviews the person may see: of every catalog for administrators, else of the catalogs
    /// they can read; newest first.
    #[tracing::instrument(name = "reviews_list", skip_all, fields(actor = actor.id().0))]
    pub async fn reviews_list(&self, actor: &Actor, before: Option<i64>) -> DomainResult<Page<ReviewView>> {
        const PAGE: i64 = 50;
        let now = self.now();
        let catalogs: Option<Vec<CatalogId>> = if actor.is_admin() {
            None
        } else {
            let mut held: Vec<CatalogId> = actor.roles.iter().filter_map(|g| g.catalog).collect();
            held.sort_unstable_by_key(|c| c.0);
            held.dedup();
            if held.is_empty() {
                return Err(DomainError::forbidden("only administrators and catalog managers see access reviews"));
            }
            Some(held)
        };
        let mut conn = self.db.pool().acquire().await?;
        let rows = reviews::list(&mut conn, catalogs.as_deref(), before, PAGE + 1).await?;
        let next = (rows.len() as i64 > PAGE).then(|| rows[PAGE as usize - 1].id.to_string());
        let items = rows
            .into_iter()
            .take(PAGE as usize)
            .filter(|r| self.catalog_reader(actor, r.catalog).is_ok())
            .map(|r| ReviewView {
                may_act: self.assignment_manager(actor, r.catalog).is_ok(),
                id: r.id,
                package_id: r.package.0,
                package: r.package_name,
                policy: r.policy_name,
                starts_at: r.period_start.timestamp_millis(),
                ends_at: r.ends_at.timestamp_millis(),
                state: r.state.as_str().to_owned(),
                default_decision: r.default_decision,
                apply_automatically: r.apply_automatically,
                items: r.items,
                decided: r.decided,
                removing: r.removing,
                removed: r.removed,
            })
            .collect();
        Ok(Page { items, next, as_of: now.timestamp_millis() })
    }

    /// The review's owners (who may assign in its package's catalog) end it now: the
    /// decisions become final and the default answers for the rest. Its results then apply
    /// as the policy says (automatically, or by [`Self::apply_review`]).
    #[tracing::instrument(name = "end_review_early", skip_all, fields(actor = actor.id().0, review = id))]
    pub async fn end_review_early(&self, actor: &Actor, id: i64) -> DomainResult<()> {
        let r = self.review_for_owner(actor, id).await?;
        {
            let mut conn = self.db.pool().acquire().await?;
            if reviews::covers(&mut conn, id, actor.id()).await? {
                return Err(DomainError::forbidden(
                    "this review covers your own access: another of its owners ends it",
                ));
            }
        }
        if r.state != ReviewState::Running || !self.end_review(id, Some(actor)).await? {
            return Err(DomainError::AlreadyDecided("this review has already ended".into()));
        }
        if r.apply_automatically {
            self.apply_all(id, Some(actor)).await?;
        }
        Ok(())
    }

    /// The review's owners apply its results: every removal it decided ends that access
    /// (through the connectors). Returns how many assignments ended.
    #[tracing::instrument(name = "apply_review", skip_all, fields(actor = actor.id().0, review = id))]
    pub async fn apply_review(&self, actor: &Actor, id: i64) -> DomainResult<usize> {
        let r = self.review_for_owner(actor, id).await?;
        match r.state {
            ReviewState::Running => Err(DomainError::Conflict("end the review before applying its results".into())),
            ReviewState::Applied => Err(DomainError::AlreadyDecided("its results are already applied".into())),
            ReviewState::Ended => self.apply_all(id, Some(actor)).await,
        }
    }

    /// The review, if the person owns it (may assign in its package's catalog): else "not
    /// found" for those who cannot see it, "forbidden" for those who can only read it.
    async fn review_for_owner(&self, actor: &Actor, id: i64) -> DomainResult<reviews::Review> {
        let mut conn = self.db.pool().acquire().await?;
        let r = reviews::review(&mut conn, id)
            .await?
            .filter(|r| self.catalog_reader(actor, r.catalog).is_ok())
            .ok_or_else(|| DomainError::not_found("access review"))?;
        self.assignment_manager(actor, r.catalog)?;
        Ok(r)
    }
}

/// How far an apply pass got.
enum Applied {
    /// Assignments ended, and the last item taken.
    Batch(usize, i64),
    /// Nothing left after the cursor.
    Done,
    /// Another instance applied this batch first.
    Raced,
}
