//! Request lifecycle events told to webhook systems, like Entra's custom extensions: a request
//! created, approved, its access delivered, its access removed. Each is derived from the
//! audit event of the change and written with it, in its transaction ([`Service::commit`]),
//! for every webhook system that asks for lifecycle events and has a role in the request's
//! package; a worker sends it later, signed as the system's grants and revokes are
//! (`docs/webhooks.md`), with its id as the idempotency key. At least once: a receiver that
//! answered 2xx is not called again for it, one that did not is called again.

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use serde_json::json;

use super::Service;
use crate::connectors::{webhook, CallError, Opened};
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Operator, Permission};
use crate::domain::ids::ResourceSystemId;
use crate::domain::policy::checked_after;
use crate::domain::DomainResult;
use crate::store::events::{self, ClaimedEvent, NewEvent};
use crate::store::lease::{self, Queue};
use crate::store::Tx;

/// The lifecycle event an audited change reports, if it reports one, and whether its object
/// is a request (else an assignment).
fn lifecycle(action: &str) -> Option<(&'static str, bool)> {
    Some(match action {
        "request.submitted" | "request.admin_assigned" => ("request.created", true),
        // An assignment is made when (and only when) its request is approved.
        "assignment.created" => ("request.approved", false),
        "assignment.delivered" => ("assignment.delivered", false),
        "assignment.removed" | "assignment.expired" | "assignment.given_up" | "assignment.withdrawn" => {
            ("assignment.removed", false)
        }
        _ => return None,
    })
}

/// Events a pass claims.
pub const EVENTS_PASS: usize = 100;

/// Attempts before an event fails (for an administrator to retry), as for the outbox.
const MAX_ATTEMPTS: i64 = super::delivery::MAX_ATTEMPTS;

/// Queue the lifecycle events of a change's audit events, in its transaction.
pub(super) async fn enqueue(tx: &mut Tx, audit: &[AuditEvent], now: DateTime<Utc>) -> DomainResult<()> {
    let reported: Vec<(&AuditEvent, &'static str, bool)> = audit
        .iter()
        // Delivered again after a role was added to the package is not news.
        .filter(|e| !(e.action == "assignment.delivered" && e.after["first"] == false))
        .filter_map(|e| lifecycle(&e.action).map(|(name, of_request)| (e, name, of_request)))
        .collect();
    if reported.is_empty() {
        return Ok(());
    }
    let listening: Vec<ResourceSystemId> = events::webhooks(tx)
        .await?
        .into_iter()
        .filter(|(_, config)| serde_json::from_str::<webhook::WebhookConfig>(config).is_ok_and(|c| c.lifecycle_events))
        .map(|(id, _)| id)
        .collect();
    if listening.is_empty() {
        return Ok(());
    }
    // Who made the change: an assignment is made by the worker side of an approval, whose
    // decision (with its approver and words) is in the same change.
    let decision = audit.iter().find(|e| e.actor.is_some() && e.object_type == "request");
    for (event, name, of_request) in reported {
        let (actor, reason) = match (name, decision) {
            ("request.approved", Some(d)) if event.actor.is_none() => (d.actor, d.reason.as_str()),
            _ => (event.actor, event.reason.as_str()),
        };
        let new = NewEvent {
            event: name,
            request: of_request.then_some(event.object_id),
            assignment: (!of_request).then_some(event.object_id),
            actor,
            reason,
        };
        events::enqueue(tx, &listening, &new, now).await?;
    }
    Ok(())
}

/// Another claim holds the event now (this pass's lease ran out): nothing of this pass's
/// answer is recorded (the transaction is dropped, so rolled back).
fn lost(id: i64) -> crate::domain::DomainError {
    crate::domain::DomainError::Internal(format!("lost the lease on lifecycle event {id}"))
}

/// What became of one event's call.
enum Sent {
    Done,
    Retry,
    Failed,
    /// The receiver could not take it: the system waits until then, and its other events with it.
    Unavailable(DateTime<Utc>),
    /// Given back untried.
    Deferred,
}

impl Service {
    /// One pass over the due lifecycle events: each system's in queue order, one call at a time
    /// per system, systems side by side. Returns how many were claimed.
    #[tracing::instrument(name = "deliver_events", skip_all, fields(operator = %by))]
    pub async fn deliver_events(&self, by: &Operator<'_>, limit: i64) -> DomainResult<usize> {
        by.require(Permission::Administer)?;
        let now = self.now();
        let token = format!("{}#{:08x}", self.worker, rand::random::<u32>());
        let lease_until = checked_after(now, super::delivery::LEASE, "lease")?;
        let claimed = {
            let mut tx = self.db.begin().await?;
            // Nothing for a paused system.
            let unpaused =
                "NOT EXISTS (SELECT 1 FROM resource_systems s WHERE s.id = q.system_id AND s.paused_until > $3)";
            let claim = (token.as_str(), now, lease_until);
            let ids =
                lease::claim_due(&mut tx, self.db.backend(), Queue::WebhookEvents, claim, limit, unpaused).await?;
            tx.commit().await?;
            ids
        };
        if claimed.is_empty() {
            return Ok(0);
        }
        let read = self.read_claimed(&claimed, &token).await;
        let mut systems: std::collections::BTreeMap<ResourceSystemId, Vec<ClaimedEvent>> = Default::default();
        for event in read {
            systems.entry(event.system).or_default().push(event);
        }
        // Leases run from the claim: what is not started by half of one is given back, so no
        // event this pass holds lapses to another instance while a slow receiver answers.
        let started = std::time::Instant::now();
        let budget = (super::delivery::LEASE / 2).to_std().unwrap_or(std::time::Duration::from_secs(60));
        let (token, started) = (&token, &started);
        let runs = systems.into_iter().map(|(system, queue)| async move {
            let mut paused: Option<DateTime<Utc>> = None;
            for event in queue {
                let id = event.id;
                let now = self.now();
                let outcome = match paused {
                    Some(until) => self.give_back(id, token, until, now).await,
                    None if started.elapsed() > budget => self.give_back(id, token, now, now).await,
                    None => self.send_event(system, event, token, now).await,
                };
                match outcome {
                    Ok(Sent::Unavailable(until)) => paused = Some(until),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(event = id, error = ?e, "a lifecycle event could not be sent or recorded")
                    }
                }
            }
        });
        // Systems side by side, as many at once as a delivery pass calls.
        futures_util::stream::iter(runs).buffer_unordered(super::delivery::PASS_IN_FLIGHT).collect::<Vec<()>>().await;
        Ok(claimed.len())
    }

    /// The claimed events with what their calls say: read together, else one at a time. One
    /// that cannot be read (or whose request is gone) is failed, saying why, rather than
    /// claimed again forever.
    async fn read_claimed(&self, ids: &[i64], token: &str) -> Vec<ClaimedEvent> {
        let mut read = match self.claimed_events(ids).await {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(error = %e, "lifecycle events could not be read together; one at a time");
                let mut read = Vec::new();
                for id in ids {
                    match self.claimed_events(&[*id]).await {
                        Ok(one) => read.extend(one),
                        Err(e) => tracing::error!(event = id, error = %e, "this lifecycle event cannot be read"),
                    }
                }
                read
            }
        };
        read.sort_by_key(|e| e.id);
        for id in ids.iter().filter(|id| read.binary_search_by_key(*id, |e| e.id).is_err()) {
            if let Err(e) = self.fail_unreadable(*id, token).await {
                tracing::error!(event = id, error = ?e, "could not record an unreadable lifecycle event");
            }
        }
        read
    }

    async fn claimed_events(&self, ids: &[i64]) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        events::claimed(&mut conn, ids).await
    }

    async fn fail_unreadable(&self, id: i64, token: &str) -> DomainResult<()> {
        let mut tx = self.db.begin().await?;
        let why = "the event cannot be read (its request or assignment is gone, or its row is damaged)";
        if lease::finish(&mut tx, Queue::WebhookEvents, (id, token), "failed", why, self.now()).await? {
            let event = AuditEvent::new(None, "webhook.event_failed", "webhook_event", id).reason(why);
            self.commit(tx, vec![event]).await?;
        }
        Ok(())
    }

    /// Give a claimed event back untried, due at `until`; its attempt is not spent.
    async fn give_back(&self, id: i64, token: &str, until: DateTime<Utc>, now: DateTime<Utc>) -> DomainResult<Sent> {
        let mut tx = self.db.begin().await?;
        let why = "waiting: the receiver was unavailable, or the pass ran long";
        if !lease::retry_later(&mut tx, Queue::WebhookEvents, (id, token), (why, false), until, now).await? {
            return Err(lost(id));
        }
        tx.commit().await?;
        Ok(Sent::Deferred)
    }

    /// Sign and send one event, and record the answer as delivery records a target's: done;
    /// the receiver unavailable (the system paused, no attempt spent); refused (failed at
    /// once); else retried with backoff, failed after the last attempt.
    async fn send_event(
        &self,
        system: ResourceSystemId,
        event: ClaimedEvent,
        token: &str,
        now: DateTime<Utc>,
    ) -> DomainResult<Sent> {
        let result = self.call_receiver(system, &event).await;
        let mut tx = self.db.begin().await?;
        let error = result.as_ref().err().map_or("", CallError::message);
        crate::store::catalog::record_health(&mut tx, system, error, now.timestamp_millis()).await?;
        let mut audit = Vec::new();
        let sent = match result {
            Ok(()) => {
                if !lease::finish(&mut tx, Queue::WebhookEvents, (event.id, token), "done", "", now).await? {
                    return Err(lost(event.id));
                }
                Sent::Done
            }
            Err(CallError::Unavailable { message, after }) => {
                let wait = match after {
                    Some(after) => {
                        Duration::from_std(after).unwrap_or(super::delivery::LEASE).max(Duration::seconds(1))
                    }
                    None => super::delivery::backoff(event.attempts).min(super::delivery::SYSTEM_PAUSE),
                };
                let until = checked_after(now, wait, "retry")?;
                let spent = (message.as_str(), false);
                if !lease::retry_later(&mut tx, Queue::WebhookEvents, (event.id, token), spent, until, now).await? {
                    return Err(lost(event.id));
                }
                crate::store::assignments::pause_system(&mut tx, system, until).await?;
                Sent::Unavailable(until)
            }
            Err(e) if matches!(e, CallError::Permanent(_)) || event.attempts >= MAX_ATTEMPTS => {
                if !lease::finish(&mut tx, Queue::WebhookEvents, (event.id, token), "failed", e.message(), now).await? {
                    return Err(lost(event.id));
                }
                audit.push(
                    AuditEvent::new(None, "webhook.event_failed", "webhook_event", event.id)
                        .after(json!({"system": system, "type": event.body["type"], "attempts": event.attempts}))
                        .reason(e.message()),
                );
                Sent::Failed
            }
            Err(e) => {
                let at = checked_after(now, super::delivery::backoff(event.attempts), "retry")?;
                if !lease::retry_later(&mut tx, Queue::WebhookEvents, (event.id, token), (e.message(), true), at, now)
                    .await?
                {
                    return Err(lost(event.id));
                }
                Sent::Retry
            }
        };
        self.commit(tx, audit).await?;
        Ok(sent)
    }

    async fn call_receiver(&self, system: ResourceSystemId, event: &ClaimedEvent) -> Result<(), CallError> {
        let db = |e: sqlx::Error| CallError::Transient(format!("database: {e}"));
        let mut conn = self.db.pool().acquire().await.map_err(db)?;
        let (kind, config, sealed) = crate::store::catalog::connector(&mut conn, system)
            .await
            .map_err(db)?
            .ok_or(CallError::Permanent("the system is gone".to_owned()))?;
        drop(conn);
        match Opened::open(kind, &config, &sealed, self.secret_key.as_deref()).map_err(CallError::Transient)? {
            Opened::Webhook(config, secret) => {
                let id = format!("qm-event-{}", event.id);
                webhook::Webhook { config: &config, secret: &secret, now: self.now() }.send(&id, &event.body).await
            }
            _ => Err(CallError::Permanent("lifecycle events go to webhook systems only".to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lifecycle;

    #[test]
    fn each_lifecycle_step_is_reported_once() {
        assert_eq!(lifecycle("request.submitted"), Some(("request.created", true)));
        assert_eq!(lifecycle("assignment.created"), Some(("request.approved", false)));
        assert_eq!(lifecycle("assignment.delivered"), Some(("assignment.delivered", false)));
        assert_eq!(lifecycle("assignment.expired"), Some(("assignment.removed", false)));
        assert_eq!(lifecycle("assignment.delivery_state"), None);
        assert_eq!(lifecycle("grant.delivered"), None);
    }
}
