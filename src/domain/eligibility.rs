//! Who may request what: the scope of a policy applied to a person.

use super::error::{DomainError, DomainResult};
use super::ids::*;
use super::model::{Catalog, User, UserKind};
use super::policy::{Policy, RequestorRef, RequestorScope};

/// What the rules need to know about a prospective requestor.
#[derive(Clone, Debug)]
pub struct RequestorFacts<'a> {
    pub user: &'a User,
    pub groups: &'a [GroupId],
    /// Whether the user's connected organisation is `configured` (not merely proposed).
    pub org_configured: bool,
}

/// May this person request under this policy (for themselves)?
pub fn may_request(facts: &RequestorFacts<'_>, policy: &Policy) -> bool {
    let user = facts.user;
    if !user.is_active() || !policy.enabled {
        return false;
    }
    match policy.scope {
        RequestorScope::Nobody => false,
        RequestorScope::AllMembers => user.kind == UserKind::Member,
        RequestorScope::Specific => policy.requestors.iter().any(|r| match *r {
            RequestorRef::User(id) => id == user.id,
            RequestorRef::Group(g) => facts.groups.contains(&g),
            RequestorRef::Org(_) => false,
        }),
        RequestorScope::ConnectedOrgs => {
            user.kind == UserKind::Guest
                && policy
                    .requestors
                    .iter()
                    .any(|r| matches!(*r, RequestorRef::Org(o) if Some(o) == user.connected_org_id))
        }
        RequestorScope::AllExternals => {
            user.kind == UserKind::Guest && user.connected_org_id.is_some() && facts.org_configured
        }
    }
}

/// May this person see (and so request from) this catalog? Guests see only catalogs marked
/// visible to external users, whatever a policy's scope says.
pub fn may_see_catalog(user: &User, catalog: &Catalog) -> bool {
    catalog.enabled && (user.kind == UserKind::Member || catalog.externally_visible)
}

/// Which policy a request is filed under: the one the requestor chose, or the only one that
/// applies to them. `on_behalf`: a manager asks for a direct report, which the policy must
/// allow. Refusals say why, in the requestor's terms.
pub fn choose_policy<'p>(
    policies: &'p [Policy],
    facts: &RequestorFacts<'_>,
    on_behalf: bool,
    chosen: Option<PolicyId>,
) -> DomainResult<&'p Policy> {
    let eligible: Vec<&Policy> =
        policies.iter().filter(|p| may_request(facts, p) && (!on_behalf || p.on_behalf_allowed)).collect();
    match (chosen, eligible.as_slice()) {
        (_, []) => Err(DomainError::forbidden(if on_behalf {
            "this access package cannot be requested for that person"
        } else {
            "you are not eligible to request this access package"
        })),
        (Some(id), list) => list
            .iter()
            .find(|p| p.id == id)
            .copied()
            .ok_or_else(|| DomainError::invalid("policy", "that policy does not apply to you")),
        (None, [only]) => Ok(only),
        (None, _) => Err(DomainError::invalid("policy", "choose which policy to request under")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::UserState;
    use crate::domain::policy::tests::policy;

    fn user(kind: UserKind, org: Option<i64>) -> User {
        User {
            id: UserId(7),
            email: "u@example.com".into(),
            display_name: "U".into(),
            department: "Sales".into(),
            job_title: String::new(),
            manager_id: None,
            kind,
            connected_org_id: org.map(OrgId),
            state: UserState::Active,
            provider_time_zone: None,
        }
    }

    fn check(u: &User, groups: &[GroupId], p: &Policy) -> bool {
        may_request(&RequestorFacts { user: u, groups, org_configured: true }, p)
    }

    #[test]
    fn scopes() {
        let member = user(UserKind::Member, None);
        let guest = user(UserKind::Guest, Some(3));
        let mut p = policy(vec![]);

        p.scope = RequestorScope::AllMembers;
        assert!(check(&member, &[], &p));
        assert!(!check(&guest, &[], &p));

        p.scope = RequestorScope::Nobody;
        assert!(!check(&member, &[], &p));

        p.scope = RequestorScope::Specific;
        p.requestors = vec![RequestorRef::Group(GroupId(5))];
        assert!(!check(&member, &[], &p));
        assert!(check(&member, &[GroupId(5)], &p));
        p.requestors = vec![RequestorRef::User(UserId(7))];
        assert!(check(&member, &[], &p));

        p.scope = RequestorScope::ConnectedOrgs;
        p.requestors = vec![RequestorRef::Org(OrgId(3))];
        assert!(check(&guest, &[], &p));
        assert!(!check(&member, &[], &p));

        p.scope = RequestorScope::AllExternals;
        assert!(check(&guest, &[], &p));
        assert!(!may_request(&RequestorFacts { user: &guest, groups: &[], org_configured: false }, &p));
    }

    #[test]
    fn disabled_users_and_policies_never_qualify() {
        let mut member = user(UserKind::Member, None);
        let mut p = policy(vec![]);
        p.enabled = false;
        assert!(!check(&member, &[], &p));
        p.enabled = true;
        member.state = UserState::Disabled;
        assert!(!check(&member, &[], &p));
    }

    #[test]
    fn the_policy_is_the_chosen_one_or_the_only_one() {
        let u = user(UserKind::Member, None);
        let facts = RequestorFacts { user: &u, groups: &[], org_configured: false };
        let mut a = policy(vec![]);
        a.id = PolicyId(1);
        let mut b = policy(vec![]);
        b.id = PolicyId(2);
        let mut nobody = policy(vec![]);
        nobody.id = PolicyId(3);
        nobody.scope = RequestorScope::Nobody;
        let both = [a.clone(), b.clone(), nobody.clone()];
        assert_eq!(choose_policy(&both, &facts, false, Some(PolicyId(2))).unwrap().id, PolicyId(2));
        assert!(matches!(
            choose_policy(&both, &facts, false, None),
            Err(DomainError::Invalid { field: Some(f), .. }) if f == "policy"
        ));
        assert!(matches!(
            choose_policy(&both, &facts, false, Some(PolicyId(3))),
            Err(DomainError::Invalid { field: Some(f), .. }) if f == "policy"
        ));
        assert_eq!(choose_policy(&[a.clone(), nobody.clone()], &facts, false, None).unwrap().id, PolicyId(1));
        assert!(matches!(choose_policy(&[nobody], &facts, false, None), Err(DomainError::Forbidden(_))));
        // On behalf only where the policy allows it (the test policy does not).
        assert!(matches!(choose_policy(&[a], &facts, true, None), Err(DomainError::Forbidden(_))));
    }
}
