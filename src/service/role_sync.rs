//! A package's resource roles changed while people hold it: its holders are brought in line a
//! batch at a time, in assignment id order — each new role granted (queued for delivery), each
//! dropped role taken back unless another live assignment of the person holds it (the same
//! reference count as ending an assignment). A batch is one transaction under its people's
//! locks, kept only if the package's roles did not change again meanwhile; the statements are
//! idempotent, so a batch done twice (two instances) changes nothing the second time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Service;
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Operator, Permission};
use crate::domain::ids::*;
use crate::domain::request::GrantState;
use crate::domain::DomainResult;
use crate::store::role_sync::{self, Sync};
use crate::store::{assignments, Tx};

/// Assignments brought in line per transaction (as many as an expiry batch: a writer's turn
/// stays short).
pub const SYNC_BATCH: i64 = 25;
/// Batches one worker pass does at most (the worker loop calls again while a pass comes back
/// full).
pub const SYNC_PASS: usize = 40;

/// What one batch did to one assignment's grants, for its audit event.
#[derive(Default)]
struct Changed {
    adding: Vec<ResourceRoleId>,
    removing: Vec<ResourceRoleId>,
    still_held_elsewhere: Vec<ResourceRoleId>,
}

impl Service {
    /// The worker's turn: bring the holders of packages whose roles changed in line, a batch
    /// of each waiting package in turn (one large package does not hold the others back), up
    /// to `budget` batches. Returns the batches done.
    #[tracing::instrument(name = "sync_package_roles", skip_all, fields(operator = %by))]
    pub async fn sync_package_roles(&self, by: &Operator<'_>, budget: usize) -> DomainResult<usize> {
        by.require(Permission::Administer)?;
        let mut waiting = {
            let mut conn = self.db.pool().acquire().await?;
            role_sync::waiting(&mut conn, i64::try_from(budget).unwrap_or(i64::MAX)).await?
        };
        let mut done = 0;
        while done < budget && !waiting.is_empty() {
            let mut still = Vec::with_capacity(waiting.len());
            for sync in waiting {
                if done >= budget {
                    break;
                }
                match self.sync_step(&sync, SYNC_BATCH).await {
                    Ok(next) => {
                        done += 1;
                        still.extend(next);
                    }
                    // One package's failure never stops the others (it is logged; its next
                    // pass begins with the failing holder).
                    Err(e) => tracing::error!(package = sync.package.0, error = ?e, "role sync failed"),
                }
            }
            waiting = still;
        }
        Ok(done)
    }

    /// A batch in its own transaction; when it fails, the same holders one at a time. A holder
    /// whose own sync fails holds the cursor there: the failure is counted and shown on the
    /// package's page, and the next pass tries again (a fault that passes, such as a lost
    /// connection, loses nothing; one that stays is seen, not skipped).
    async fn sync_step(&self, sync: &Sync, limit: i64) -> DomainResult<Option<Sync>> {
        match self.sync_once(sync, limit).await {
            Ok(next) => Ok(next),
            Err(e) if limit == 1 => {
                tracing::error!(package = sync.package.0, after = sync.after.0, error = ?e, "role sync of one holder failed");
                let mut tx = self.db.begin().await?;
                role_sync::failed(&mut tx, sync, &format!("{e}")).await?;
                tx.commit().await?;
                Err(e)
            }
            Err(e) => {
                tracing::warn!(package = sync.package.0, error = ?e, "role sync batch failed; one at a time");
                let mut at = *sync;
                for _ in 0..limit {
                    match Box::pin(self.sync_step(&at, 1)).await? {
                        Some(next) => at = next,
                        None => return Ok(None),
                    }
                }
                Ok(Some(at))
            }
        }
    }

    async fn sync_once(&self, sync: &Sync, limit: i64) -> DomainResult<Option<Sync>> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let done = self.sync_batch(&mut tx, sync, limit, now).await;
        self.end_batch(tx, done, "role sync batch").await
    }

    /// One batch: the next holders after the sync's cursor, their people locked in id order in
    /// one statement (as an expiry batch does), then the set-based changes and the cursor
    /// moved on. Returns the sync to go on with (`None`: done, or the roles changed again and
    /// the next pass starts over).
    async fn sync_batch(
        &self,
        tx: &mut Tx,
        sync: &Sync,
        limit: i64,
        now: DateTime<Utc>,
    ) -> DomainResult<(Option<Sync>, Vec<AuditEvent>)> {
        let holders = role_sync::next_holders(tx, sync, limit).await?;
        let Some(last) = holders.last().map(|(a, _)| *a) else {
            let finished = role_sync::finish(tx, sync).await?;
            let events = finished
                .then(|| {
                    AuditEvent::new(None, "package.roles_synced", "package", sync.package.0)
                        .after(json!({"generation": sync.generation}))
                })
                .into_iter()
                .collect();
            return Ok((None, events));
        };
        let mut people: Vec<UserId> = holders.iter().map(|(_, u)| *u).collect();
        people.sort_unstable();
        people.dedup();
        self.db.lock_users(tx, &people).await?;
        self.checkpoint("role_sync.locked").await;
        let ids: Vec<AssignmentId> = holders.iter().map(|(a, _)| *a).collect();
        let mut changed: BTreeMap<AssignmentId, Changed> = BTreeMap::new();
        for (_, assignment, _, role) in role_sync::add_missing(tx, sync.package, &ids, now).await? {
            changed.entry(assignment).or_default().adding.push(role);
        }
        // Dropped grants are `removing` first, so the reference count sees only other holders.
        let dropped = role_sync::drop_extra(tx, sync.package, &ids, now).await?;
        let pairs: Vec<(UserId, ResourceRoleId)> = dropped.iter().map(|(_, _, u, r)| (*u, *r)).collect();
        let held_elsewhere = assignments::still_held(tx, &pairs).await?;
        let (mut kept, mut removing) = (Vec::new(), Vec::new());
        for (grant, assignment, user, role) in &dropped {
            let entry = changed.entry(*assignment).or_default();
            if held_elsewhere.contains(&(*user, *role)) {
                kept.push(*grant);
                entry.still_held_elsewhere.push(*role);
            } else {
                removing.push(*grant);
                entry.removing.push(*role);
            }
        }
        assignments::set_grants_state(tx, &kept, GrantState::Removed, "still held through another assignment", now)
            .await?;
        assignments::enqueue_removals(tx, &removing, now).await?;
        let mut events = Vec::with_capacity(changed.len() * 2);
        for (id, c) in &changed {
            events.push(AuditEvent::new(None, "grants.synced", "assignment", id.0).after(json!({
                "package": sync.package,
                "adding": c.adding,
                "removing": c.removing,
                "still_held_elsewhere": c.still_held_elsewhere,
            })));
            // The assignment's state from its grants now: a role being added is being delivered;
            // a failed role dropped no longer counts against it.
            if let Some(a) = assignments::assignment(tx, *id).await? {
                super::delivery::roll_up(tx, &a, "", now, &mut events).await?;
            }
        }
        // The roles changed again meanwhile (the sync starts over from the first holder), or
        // another instance did this batch: what was done here still holds (each statement
        // compared with the roles as they were then), and the next pass goes on from the
        // cursor as it is now.
        let next = role_sync::advance(tx, sync, last).await?.then_some(Sync { after: last, ..*sync });
        Ok((next, events))
    }
}
