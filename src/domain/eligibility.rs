//! Who may request what: the scope of a policy applied to a person.

use super::ids::*;
use super::model::{User, UserKind};
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
}
