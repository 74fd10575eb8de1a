//! Appending audit events to the hash chain, inside the transaction of the change, and
//! proving the chain.

use std::collections::HashMap;

use super::Service;
use crate::domain::audit::{chain_hash, AuditEvent, GENESIS_HASH};
use crate::domain::authz::{Actor, Operator, Permission};
use crate::domain::ids::UserId;
use crate::domain::{DomainError, DomainResult};
use crate::store::audit::AuditSearch;
use crate::store::Tx;
use crate::views::{AuditEventView, AuditFilter, Page};

impl Service {
    /// Append the events and commit: the change, its audit trail, its outbox entries, the
    /// lifecycle events it reports to webhooks and the emails it sends land together or not at
    /// all.
    pub(super) async fn commit(&self, mut tx: Tx, mut events: Vec<AuditEvent>) -> DomainResult<()> {
        if let Some(token) = self.via_token {
            for event in &mut events {
                event.token = Some(token);
            }
        }
        crate::store::audit::append(&mut tx, self.db.backend(), self.now(), &events).await?;
        super::events::enqueue(&mut tx, &events, self.now()).await?;
        if self.mail.is_some() {
            super::notifications::enqueue(&mut tx, &events, self.now()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// End a batch's transaction (expiry, delivery): commit it with the batch's audit events,
    /// or, when the batch failed, roll it back at once, since the one-at-a-time retry that
    /// follows needs the locks it holds.
    pub(super) async fn end_batch<T>(
        &self,
        tx: Tx,
        done: DomainResult<(T, Vec<AuditEvent>)>,
        what: &str,
    ) -> DomainResult<T> {
        match done {
            Ok((out, events)) => {
                self.commit(tx, events).await?;
                Ok(out)
            }
            Err(e) => {
                if let Err(rollback) = tx.rollback().await {
                    tracing::warn!(error = %rollback, "rolling back the failed {what}");
                }
                Err(e)
            }
        }
    }
}

/// The result of walking the audit chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainCheck {
    /// Every event links to the one before and its hash matches its content. `head` is the
    /// last event's hash: keep it somewhere the database's writers cannot reach (print it, a
    /// ticket, a signed log) and pass it back as an [`AuditAnchor`] to detect a cut tail.
    Intact { events: u64, head: Option<AuditAnchor> },
    /// The first event whose link or hash does not hold.
    Broken { event_id: i64, why: String },
}

/// A point of the chain recorded outside the database: event `id` had hash `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditAnchor {
    pub id: i64,
    pub hash: String,
}

impl std::fmt::Display for AuditAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.id, self.hash)
    }
}

impl std::str::FromStr for AuditAnchor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, hash) = s.split_once(':').ok_or("an anchor is ID:HASH, as verify prints it")?;
        let id = id.trim().parse().map_err(|_| "the anchor's event id is not a number")?;
        let hash = hash.trim();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the anchor's hash is not 64 hex digits".into());
        }
        Ok(AuditAnchor { id, hash: hash.to_ascii_lowercase() })
    }
}

impl Service {
    /// Recompute the hash chain from the first event on; names the first broken link.
    #[tracing::instrument(name = "verify_audit_chain", skip_all, fields(operator = %by))]
    pub async fn verify_audit_chain(&self, by: &Operator<'_>) -> DomainResult<ChainCheck> {
        self.verify_audit_chain_against(by, None).await
    }

    /// The same, and the chain must still hold the anchored event with the anchored hash:
    /// deleting the newest events (which leaves a shorter chain that is intact by itself) is
    /// caught here.
    #[tracing::instrument(name = "verify_audit_chain_against", skip_all, fields(operator = %by))]
    pub async fn verify_audit_chain_against(
        &self,
        by: &Operator<'_>,
        anchor: Option<&AuditAnchor>,
    ) -> DomainResult<ChainCheck> {
        by.require(Permission::ReadAudit)?;
        let mut prev = GENESIS_HASH.to_owned();
        let mut after_id = 0;
        let mut count = 0;
        let mut head = None;
        loop {
            // A connection per page: a long chain's walk holds none between pages.
            let page = {
                let mut conn = self.db.pool().acquire().await?;
                crate::store::audit::page(&mut conn, after_id, 1000).await?
            };
            if page.is_empty() {
                break;
            }
            for row in page {
                if row.prev_hash != prev {
                    return Ok(ChainCheck::Broken {
                        event_id: row.id,
                        why: "links to a different predecessor (an event before it was removed, reordered or changed)"
                            .into(),
                    });
                }
                let event = AuditEvent {
                    actor: row.actor,
                    action: row.action,
                    object_type: row.object_type,
                    object_id: row.object_id,
                    before: serde_json::Value::Null,
                    after: serde_json::Value::Null,
                    reason: row.reason,
                    token: row.token,
                };
                let expected = chain_hash(&prev, row.at, &event, &row.before, &row.after);
                if expected != row.hash {
                    return Ok(ChainCheck::Broken {
                        event_id: row.id,
                        why: "its content does not match its hash (it was edited)".into(),
                    });
                }
                prev = row.hash;
                after_id = row.id;
                count += 1;
                head = Some(AuditAnchor { id: row.id, hash: prev.clone() });
            }
        }
        if let Some(anchor) = anchor {
            let mut conn = self.db.pool().acquire().await?;
            match crate::store::audit::hash_of(&mut conn, anchor.id).await? {
                Some(hash) if hash == anchor.hash => {}
                Some(_) => {
                    return Ok(ChainCheck::Broken {
                        event_id: anchor.id,
                        why: "its hash differs from the anchor recorded earlier (the chain was rewritten)".into(),
                    })
                }
                None => {
                    return Ok(ChainCheck::Broken {
                        event_id: anchor.id,
                        why: format!(
                            "the anchored event is missing: the chain ends at event {} (its tail was cut)",
                            head.as_ref().map_or(0, |h| h.id)
                        ),
                    })
                }
            }
        }
        Ok(ChainCheck::Intact { events: count, head })
    }
}

impl Service {
    /// Walk the chain as `by`, checking that it still holds the head the last intact walk
    /// recorded, and record what the walk found (the audit log shows the latest).
    #[tracing::instrument(name = "verify_and_record_audit_chain", skip_all, fields(operator = %by))]
    pub async fn verify_and_record_audit_chain(&self, by: &Operator<'_>) -> DomainResult<ChainCheck> {
        by.require(Permission::ReadAudit)?;
        // One walk at a time on this instance: a walk reads the whole chain.
        let Ok(_walk) = self.chain_walk.try_lock() else {
            return Err(DomainError::Conflict("a walk of the audit chain is under way; try again when it ends".into()));
        };
        let anchor = {
            let mut conn = self.db.pool().acquire().await?;
            crate::store::audit::latest_verifications(&mut conn).await?.1
        };
        let anchor = anchor.map(|(id, hash)| AuditAnchor { id, hash });
        let check = self.verify_audit_chain_against(by, anchor.as_ref()).await?;
        let (intact, events, head, broken_event, why) = match &check {
            ChainCheck::Intact { events, head } => (
                true,
                i64::try_from(*events).unwrap_or(i64::MAX),
                head.as_ref().map(|h| (h.id, h.hash.clone())),
                None,
                String::new(),
            ),
            ChainCheck::Broken { event_id, why } => (false, 0, None, Some(*event_id), why.clone()),
        };
        let by_user = by.person().map(Actor::id);
        let row = crate::store::audit::VerificationRow {
            at: self.now(),
            by: by_user,
            intact,
            events,
            head,
            broken_event,
            why,
        };
        let mut tx = self.db.begin().await?;
        crate::store::audit::record_verification(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(check)
    }

    /// The latest walk of the chain, for those who read the audit trail.
    #[tracing::instrument(name = "audit_chain_status", skip_all, fields(actor = actor.id().0))]
    pub async fn audit_chain_status(&self, actor: &Actor) -> DomainResult<Option<crate::views::ChainStatus>> {
        actor.require(Permission::ReadAudit)?;
        let mut conn = self.db.pool().acquire().await?;
        let Some(latest) = crate::store::audit::latest_verifications(&mut conn).await?.0 else { return Ok(None) };
        let by = match latest.by {
            Some(user) => crate::store::directory::names(&mut conn, &[user])
                .await?
                .remove(&user)
                .unwrap_or_else(|| format!("person {}", user.0)),
            None => "the command line".to_owned(),
        };
        Ok(Some(crate::views::ChainStatus {
            at: crate::store::to_ms(latest.at),
            by,
            intact: latest.intact,
            events: latest.events,
            head_id: latest.head.map(|(id, _)| id),
            broken_event_id: latest.broken_event,
            why: latest.why,
        }))
    }
}

/// How many events the audit log shows at a time.
pub const AUDIT_PAGE: i64 = 50;

/// Longest value of a filter field, in characters.
const MAX_FILTER: usize = 200;

impl Service {
    /// The audit log, newest first, narrowed by `filter`; one page of events older than event
    /// `before`. For those who may read the audit trail (administrators). A filter that does
    /// not parse is refused with the field it is about, before anything is read.
    #[tracing::instrument(name = "audit_log", skip_all, fields(actor = actor.id().0, before = before))]
    pub async fn audit_log(
        &self,
        actor: &Actor,
        filter: &AuditFilter,
        before: Option<i64>,
    ) -> DomainResult<Page<AuditEventView>> {
        actor.require(Permission::ReadAudit)?;
        let mut conn = self.db.pool().acquire().await?;
        let search = audit_search(&mut conn, filter).await?;
        let mut rows =
            crate::store::audit::search(&mut conn, &search, before.unwrap_or(i64::MAX), AUDIT_PAGE + 1).await?;
        let next = super::views::page_cursor(&mut rows, AUDIT_PAGE, |r| r.id);
        let items = event_views(&mut conn, rows).await?;
        Ok(Page { items, next, as_of: crate::store::to_ms(self.now()) })
    }

    /// An export of every event matching `filter`, newest first, read a page at a time as the
    /// caller asks ([`AuditExport::next_page`]): the permission and the filter are checked
    /// here, once, so the export can only be had by someone allowed to read it.
    #[tracing::instrument(name = "audit_export", skip_all, fields(by = %by))]
    pub async fn audit_export(&self, by: &Operator<'_>, filter: &AuditFilter) -> DomainResult<AuditExport> {
        by.require(Permission::ReadAudit)?;
        let mut conn = self.db.pool().acquire().await?;
        let search = audit_search(&mut conn, filter).await?;
        let by = by.to_string();
        Ok(AuditExport { service: self.clone(), by, search, before: i64::MAX, done: false })
    }
}

/// Events read for an export per page (and per database connection taken).
const EXPORT_PAGE: i64 = 1000;

/// An audit export under way, from [`Service::audit_export`]. Each page takes a connection
/// from the pool for its own read only, so a slow reader of a large export holds none.
#[derive(Debug)]
pub struct AuditExport {
    service: Service,
    /// Who asked, for the log.
    by: String,
    search: AuditSearch,
    before: i64,
    done: bool,
}

impl AuditExport {
    /// The next events, newest first; `None` once every matching event was given.
    #[tracing::instrument(name = "audit_export_page", skip_all, fields(by = %self.by, before = self.before))]
    pub async fn next_page(&mut self) -> DomainResult<Option<Vec<AuditEventView>>> {
        if self.done {
            return Ok(None);
        }
        let mut conn = self.service.db.pool().acquire().await?;
        let rows = crate::store::audit::search(&mut conn, &self.search, self.before, EXPORT_PAGE).await?;
        self.done = (rows.len() as i64) < EXPORT_PAGE;
        let Some(last) = rows.last() else { return Ok(None) };
        self.before = last.id;
        Ok(Some(event_views(&mut conn, rows).await?))
    }
}

/// Events as the audit log shows them, with the names of the people who acted (one read).
async fn event_views(
    conn: &mut crate::store::Conn,
    rows: Vec<crate::store::audit::AuditRow>,
) -> DomainResult<Vec<AuditEventView>> {
    let people: Vec<UserId> = rows.iter().filter_map(|r| r.actor).collect();
    let names = crate::store::directory::names(conn, &people).await?;
    Ok(rows.into_iter().map(|r| event_view(r, &names)).collect())
}

fn event_view(r: crate::store::audit::AuditRow, names: &HashMap<UserId, String>) -> AuditEventView {
    AuditEventView {
        id: r.id,
        at: crate::store::to_ms(r.at),
        actor: match r.actor {
            Some(id) => names.get(&id).cloned().unwrap_or_else(|| format!("person {}", id.0)),
            None => "Quartermaster".to_owned(),
        },
        actor_id: r.actor.map(|u| u.0),
        action: r.action,
        object_type: r.object_type,
        object_id: r.object_id,
        before: r.before,
        after: r.after,
        reason: r.reason,
        token: r.token,
    }
}

/// The filter form's fields as a search: a person by email or id, whole UTC days.
async fn audit_search(conn: &mut crate::store::Conn, f: &AuditFilter) -> DomainResult<AuditSearch> {
    for (field, value) in f.fields() {
        if value.chars().count() > MAX_FILTER {
            return Err(DomainError::invalid(field, format!("{field} is too long: at most {MAX_FILTER} characters")));
        }
    }
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let day = |field: &str, value: &str| -> DomainResult<Option<chrono::DateTime<chrono::Utc>>> {
        let Some(value) = text(value) else { return Ok(None) };
        let date = chrono::NaiveDate::parse_from_str(&value, "%Y-%m-%d")
            .map_err(|_| DomainError::invalid(field, "use a date like 2026-12-31"))?;
        Ok(date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
    };
    let actor = match text(&f.who) {
        None => None,
        Some(who) => match who.parse::<i64>() {
            Ok(id) => Some(UserId(id)),
            Err(_) => match crate::store::directory::user_by_email(conn, &who).await? {
                Some((user, _)) => Some(user.id),
                None => return Err(DomainError::invalid("who", "nobody has that email address")),
            },
        },
    };
    let object_id = match text(&f.object_id) {
        None => None,
        Some(id) => Some(id.parse::<i64>().map_err(|_| DomainError::invalid("object_id", "an object id is a number"))?),
    };
    let from = day("from", &f.from)?;
    // "To" a day includes that day.
    let until = match day("to", &f.to)? {
        None => None,
        Some(t) => Some(
            t.checked_add_signed(chrono::Duration::days(1))
                .ok_or_else(|| DomainError::invalid("to", "use a date like 2026-12-31"))?,
        ),
    };
    if let (Some(from), Some(until)) = (from, until) {
        if until <= from {
            return Err(DomainError::invalid("to", "the end comes before the start"));
        }
    }
    Ok(AuditSearch { actor, object_type: text(&f.object_type), object_id, action: text(&f.action), from, until })
}
