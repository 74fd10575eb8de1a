//! Who may do what. The service layer asks an [`Actor`] for a permission before it touches an
//! object; handlers never check roles themselves.

use serde::{Deserialize, Serialize};

use super::error::{DomainError, DomainResult};
use super::ids::*;
use super::model::{Role, RoleGrant, User};

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Settings, connectors, connected organisations, role assignments, global reports.
    Administer,
    /// Read the audit trail.
    ReadAudit,
    CreateCatalog,
    /// Edit a catalog, its resources and who manages it.
    ManageCatalog(CatalogId),
    /// Create and edit packages and policies in a catalog.
    ManagePackages(CatalogId),
    /// Directly assign and remove people in a catalog's packages, see its assignments.
    AssignInCatalog(CatalogId),
    /// See a catalog's packages, policies and assignments.
    ReadCatalog(CatalogId),
}

impl Permission {
    fn describe(self) -> &'static str {
        match self {
            Permission::Administer => "only administrators can do this",
            Permission::ReadAudit => "only administrators can read the audit trail",
            Permission::CreateCatalog => "only catalog creators and administrators can create catalogs",
            Permission::ManageCatalog(_) => "only this catalog's owners can change it",
            Permission::ManagePackages(_) => {
                "only this catalog's owners and access package managers can change its packages"
            }
            Permission::AssignInCatalog(_) => {
                "only this catalog's owners, package managers and assignment managers can assign access"
            }
            Permission::ReadCatalog(_) => "you do not manage this catalog",
        }
    }

    /// The roles that grant this permission (in the permission's catalog, or globally).
    fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Permission::Administer | Permission::ReadAudit => &[],
            Permission::CreateCatalog => &[CatalogCreator],
            Permission::ManageCatalog(_) => &[CatalogOwner],
            Permission::ManagePackages(_) => &[CatalogOwner, AccessPackageManager],
            Permission::AssignInCatalog(_) => &[CatalogOwner, AccessPackageManager, AssignmentManager],
            Permission::ReadCatalog(_) => &[CatalogOwner, AccessPackageManager, AssignmentManager, CatalogReader],
        }
    }

    fn catalog(self) -> Option<CatalogId> {
        match self {
            Permission::ManageCatalog(c)
            | Permission::ManagePackages(c)
            | Permission::AssignInCatalog(c)
            | Permission::ReadCatalog(c) => Some(c),
            _ => None,
        }
    }
}

/// The signed-in person and the roles they hold.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Actor {
    pub user: User,
    pub roles: Vec<RoleGrant>,
}

impl Actor {
    pub fn id(&self) -> UserId {
        self.user.id
    }

    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|g| g.role == Role::Administrator && g.catalog.is_none())
    }

    /// Holds any role that opens the admin area.
    pub fn has_admin_area(&self) -> bool {
        !self.roles.is_empty()
    }

    pub fn can(&self, permission: Permission) -> bool {
        if !self.user.is_active() {
            return false;
        }
        if self.is_admin() {
            return true;
        }
        let wanted = permission.roles();
        self.roles.iter().any(|g| {
            wanted.contains(&g.role)
                && match (g.catalog, permission.catalog()) {
                    (None, _) => true,
                    (Some(held), Some(needed)) => held == needed,
                    (Some(_), None) => false,
                }
        })
    }

    pub fn require(&self, permission: Permission) -> DomainResult<()> {
        if self.can(permission) {
            Ok(())
        } else {
            Err(DomainError::forbidden(permission.describe()))
        }
    }
}

/// Who runs a system operation (stage time-outs, delivery, expiry, verifying the audit
/// chain): the background workers and the command line, or a person — who then needs the
/// permission (an administrator; an auditor for the audit chain). REST endpoints that expose
/// these operations pass the person; only the worker loop and the CLI say `Workers`.
#[derive(Clone, Copy, Debug)]
pub enum Operator<'a> {
    Workers,
    Person(&'a Actor),
}

/// For logs and spans: `workers`, or the person's id.
impl std::fmt::Display for Operator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operator::Workers => f.write_str("workers"),
            Operator::Person(actor) => write!(f, "user {}", actor.id().0),
        }
    }
}

impl Operator<'_> {
    /// The person running the operation, if it is a person.
    pub fn person(&self) -> Option<&Actor> {
        match self {
            Operator::Workers => None,
            Operator::Person(actor) => Some(actor),
        }
    }

    pub fn require(&self, permission: Permission) -> DomainResult<()> {
        match self {
            Operator::Workers => Ok(()),
            Operator::Person(actor) => actor.require(permission),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{UserKind, UserState};

    fn actor(roles: &[(Role, Option<i64>)]) -> Actor {
        Actor {
            user: User {
                id: UserId(1),
                email: "a@example.com".into(),
                display_name: "A".into(),
                department: String::new(),
                job_title: String::new(),
                manager_id: None,
                kind: UserKind::Member,
                connected_org_id: None,
                state: UserState::Active,
                provider_time_zone: None,
            },
            roles: roles.iter().map(|(role, c)| RoleGrant { role: *role, catalog: c.map(CatalogId) }).collect(),
        }
    }

    /// Every permission × every role, in a table that reads like the spec.
    #[test]
    fn permission_table() {
        let c1 = CatalogId(1);
        let c2 = CatalogId(2);
        let perms = [
            Permission::Administer,
            Permission::ReadAudit,
            Permission::CreateCatalog,
            Permission::ManageCatalog(c1),
            Permission::ManagePackages(c1),
            Permission::AssignInCatalog(c1),
            Permission::ReadCatalog(c1),
            Permission::ManageCatalog(c2),
        ];
        // (role held, expected for each permission above)
        type Row = (&'static str, Vec<(Role, Option<i64>)>, [bool; 8]);
        let table: &[Row] = &[
            ("member", vec![], [false, false, false, false, false, false, false, false]),
            ("administrator", vec![(Role::Administrator, None)], [true; 8]),
            (
                "catalog creator",
                vec![(Role::CatalogCreator, None)],
                [false, false, true, false, false, false, false, false],
            ),
            ("owner of c1", vec![(Role::CatalogOwner, Some(1))], [false, false, false, true, true, true, true, false]),
            (
                "package manager of c1",
                vec![(Role::AccessPackageManager, Some(1))],
                [false, false, false, false, true, true, true, false],
            ),
            (
                "assignment manager of c1",
                vec![(Role::AssignmentManager, Some(1))],
                [false, false, false, false, false, true, true, false],
            ),
            (
                "reader of c1",
                vec![(Role::CatalogReader, Some(1))],
                [false, false, false, false, false, false, true, false],
            ),
        ];
        for (name, roles, expected) in table {
            let a = actor(roles);
            for (p, want) in perms.iter().zip(expected) {
                assert_eq!(a.can(*p), *want, "{name} × {p:?}");
                assert_eq!(a.require(*p).is_ok(), *want);
            }
        }
    }

    #[test]
    fn disabled_admin_can_do_nothing() {
        let mut a = actor(&[(Role::Administrator, None)]);
        a.user.state = UserState::Disabled;
        assert!(!a.can(Permission::Administer));
    }
}
