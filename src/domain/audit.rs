//! Audit events and the hash chain that makes the trail tamper-evident.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::UserId;

/// The hash the first event links to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A state change, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub actor: Option<UserId>,
    /// `request.approved`, `assignment.created`, …
    pub action: String,
    pub object_type: String,
    pub object_id: i64,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub reason: String,
    /// The API token the change came through (the REST API's, SCIM's), if it came through one.
    pub token: Option<i64>,
}

impl AuditEvent {
    pub fn new(actor: Option<UserId>, action: &str, object_type: &str, object_id: i64) -> Self {
        Self {
            actor,
            action: action.to_owned(),
            object_type: object_type.to_owned(),
            object_id,
            before: serde_json::Value::Null,
            after: serde_json::Value::Null,
            reason: String::new(),
            token: None,
        }
    }

    pub fn before(mut self, value: serde_json::Value) -> Self {
        self.before = value;
        self
    }

    pub fn after(mut self, value: serde_json::Value) -> Self {
        self.after = value;
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }
}

/// The hash of an event, linking it to the one before. Every stored field takes part, so
/// changing any of them (or removing an event) breaks the chain from there on.
///
/// Events are linked by `prev_hash` in the order they were appended (the store appends under a
/// lock), so removing or reordering events breaks the chain too.
pub fn chain_hash(prev_hash: &str, at: DateTime<Utc>, event: &AuditEvent, before: &str, after: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash,
        &at.timestamp_millis().to_string(),
        &event.actor.map(|a| a.0.to_string()).unwrap_or_default(),
        &event.action,
        &event.object_type,
        &event.object_id.to_string(),
        before,
        after,
        &event.reason,
    ] {
        // A fixed-width length prefix: the same hash on 32- and 64-bit platforms.
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    // Only events that came through a token have this part: the hashes of those before the
    // column existed stay as they were.
    if let Some(token) = event.token {
        let part = format!("token:{token}");
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_changes_the_hash() {
        let at = Utc::now();
        let e = AuditEvent::new(Some(UserId(1)), "request.approved", "request", 9);
        let a = chain_hash(GENESIS_HASH, at, &e, "null", "{}");
        assert_eq!(a, chain_hash(GENESIS_HASH, at, &e, "null", "{}"));
        assert_ne!(a, chain_hash(GENESIS_HASH, at, &e, "null", "{\"x\":1}"));
        assert_ne!(a, chain_hash(GENESIS_HASH, at, &e.clone().reason("x"), "null", "{}"));
        assert_ne!(a, chain_hash(&a, at, &e, "null", "{}"));
        let through = AuditEvent { token: Some(3), ..e.clone() };
        assert_ne!(a, chain_hash(GENESIS_HASH, at, &through, "null", "{}"));
        assert_ne!(
            chain_hash(GENESIS_HASH, at, &through, "null", "{}"),
            chain_hash(GENESIS_HASH, at, &AuditEvent { token: Some(4), ..e }, "null", "{}")
        );
    }

    #[test]
    fn the_hash_does_not_depend_on_the_word_size() {
        // Pinned: computed with 8-byte little-endian length prefixes. A platform whose usize
        // is 4 bytes must produce the same value.
        use chrono::TimeZone;
        let at = Utc.timestamp_millis_opt(1_790_000_000_000).unwrap();
        let e = AuditEvent::new(Some(UserId(7)), "request.approved", "request", 42).reason("ok");
        assert_eq!(chain_hash(GENESIS_HASH, at, &e, "null", "{}"), PINNED_HASH);
    }
    const PINNED_HASH: &str = "69e6ca46ec26e0626c383b51cacf6a1c526097e4668479055e1869715c5b59e9";
}
