//! Resolving a stage's approvers to people.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::*;
use super::model::word_enum;
use super::policy::{ApproverSpec, Stage};

word_enum!(ApproverSource { Primary = "primary", Fallback = "fallback", Escalation = "escalation" });

/// What the store found out about the people an approver spec can name.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ApproverDirectory {
    /// The target user's manager (active).
    pub manager: Option<UserId>,
    /// Active members of every group named by the stages.
    pub group_members: BTreeMap<GroupId, Vec<UserId>>,
    /// Active owners of the package's catalog.
    pub catalog_owners: Vec<UserId>,
    /// Internal sponsors of the target user's connected organisation.
    pub sponsors: Vec<UserId>,
    /// Which named users are active (specific users who left are skipped).
    pub active_users: Vec<UserId>,
}

impl ApproverDirectory {
    fn expand(&self, spec: &ApproverSpec) -> Vec<UserId> {
        match *spec {
            ApproverSpec::User { id } => {
                if self.active_users.contains(&id) {
                    vec![id]
                } else {
                    vec![]
                }
            }
            ApproverSpec::Group { id } => self.group_members.get(&id).cloned().unwrap_or_default(),
            ApproverSpec::Manager => self.manager.into_iter().collect(),
            ApproverSpec::CatalogOwners => self.catalog_owners.clone(),
            ApproverSpec::Sponsors => self.sponsors.clone(),
        }
    }

    fn resolve(&self, specs: &[ApproverSpec], excluded: &[UserId]) -> Vec<UserId> {
        let mut out: Vec<UserId> =
            specs.iter().flat_map(|s| self.expand(s)).filter(|u| !excluded.contains(u)).collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The people who may decide one stage. The requestor and the target are never among them:
/// nobody approves their own request. When the primary approvers resolve to nobody, the
/// fallback approvers take their place. Escalation approvers are kept apart: they may act only
/// once the stage has escalated.
pub fn resolve_stage(
    stage: &Stage,
    directory: &ApproverDirectory,
    requestor: UserId,
    target: UserId,
) -> Vec<(UserId, ApproverSource)> {
    let excluded = [requestor, target];
    let primary = directory.resolve(&stage.primary, &excluded);
    let mut out: Vec<(UserId, ApproverSource)> = if primary.is_empty() {
        directory.resolve(&stage.fallback, &excluded).into_iter().map(|u| (u, ApproverSource::Fallback)).collect()
    } else {
        primary.into_iter().map(|u| (u, ApproverSource::Primary)).collect()
    };
    for u in directory.resolve(&stage.escalation, &excluded) {
        if !out.iter().any(|(id, _)| *id == u) {
            out.push((u, ApproverSource::Escalation));
        }
    }
    out
}

/// Whether a stage has anyone who can decide it before any escalation.
pub fn has_deciders(resolved: &[(UserId, ApproverSource)]) -> bool {
    resolved.iter().any(|(_, s)| *s != ApproverSource::Escalation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::tests::stage;

    fn dir() -> ApproverDirectory {
        ApproverDirectory {
            manager: Some(UserId(2)),
            group_members: [(GroupId(9), vec![UserId(1), UserId(3), UserId(4)])].into(),
            catalog_owners: vec![UserId(5)],
            sponsors: vec![],
            active_users: vec![UserId(1), UserId(2), UserId(3), UserId(4), UserId(5), UserId(6)],
        }
    }

    #[test]
    fn requestor_and_target_never_approve() {
        let s = stage(vec![ApproverSpec::Group { id: GroupId(9) }]);
        let got = resolve_stage(&s, &dir(), UserId(1), UserId(3));
        assert_eq!(got, vec![(UserId(4), ApproverSource::Primary)]);
    }

    #[test]
    fn fallback_when_primary_resolves_to_nobody() {
        let mut s = stage(vec![ApproverSpec::Sponsors]);
        s.fallback = vec![ApproverSpec::CatalogOwners];
        let got = resolve_stage(&s, &dir(), UserId(1), UserId(1));
        assert_eq!(got, vec![(UserId(5), ApproverSource::Fallback)]);

        // The manager approving their own request falls back too.
        let mut s = stage(vec![ApproverSpec::Manager]);
        s.fallback = vec![ApproverSpec::User { id: UserId(6) }];
        let got = resolve_stage(&s, &dir(), UserId(2), UserId(2));
        assert_eq!(got, vec![(UserId(6), ApproverSource::Fallback)]);
    }

    #[test]
    fn escalation_is_separate_and_inactive_users_are_skipped() {
        let mut s = stage(vec![ApproverSpec::Manager, ApproverSpec::User { id: UserId(42) }]);
        s.escalation = vec![ApproverSpec::CatalogOwners, ApproverSpec::Manager];
        let got = resolve_stage(&s, &dir(), UserId(1), UserId(1));
        assert_eq!(got, vec![(UserId(2), ApproverSource::Primary), (UserId(5), ApproverSource::Escalation)]);
        assert!(has_deciders(&got));
        assert!(!has_deciders(&[(UserId(5), ApproverSource::Escalation)]));
    }
}
