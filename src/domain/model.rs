//! The directory and catalog objects, as the rules see them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::*;

pub(crate) use crate::states::word_enum;

word_enum!(UserKind { Member = "member", Guest = "guest" });
word_enum!(UserState { Active = "active", Disabled = "disabled" });
word_enum!(
    /// A role is data: held globally or for one catalog.
    Role {
        Administrator = "administrator",
        CatalogCreator = "catalog_creator",
        CatalogOwner = "catalog_owner",
        CatalogReader = "catalog_reader",
        AccessPackageManager = "access_package_manager",
        AssignmentManager = "assignment_manager",
    }
);
impl Role {
    /// The role as held in one catalog, or `None` for the global ones.
    pub fn in_catalog(self) -> Option<crate::states::CatalogRole> {
        crate::states::CatalogRole::parse(self.as_str())
    }
}

impl From<crate::states::CatalogRole> for Role {
    fn from(role: crate::states::CatalogRole) -> Self {
        match role {
            crate::states::CatalogRole::CatalogOwner => Role::CatalogOwner,
            crate::states::CatalogRole::AccessPackageManager => Role::AccessPackageManager,
            crate::states::CatalogRole::AssignmentManager => Role::AssignmentManager,
            crate::states::CatalogRole::CatalogReader => Role::CatalogReader,
        }
    }
}

word_enum!(ResourceSystemKind { Builtin = "builtin", Scim = "scim", Ldap = "ldap", Webhook = "webhook" });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub department: String,
    pub job_title: String,
    pub manager_id: Option<UserId>,
    pub kind: UserKind,
    pub connected_org_id: Option<OrgId>,
    pub state: UserState,
    /// The time zone their sign-in provider's `zoneinfo` claim last gave (an IANA name).
    pub provider_time_zone: Option<String>,
}

impl User {
    pub fn is_active(&self) -> bool {
        self.state == UserState::Active
    }
}

/// One role held by a user: globally (`catalog` is `None`) or for one catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrant {
    pub role: Role,
    pub catalog: Option<CatalogId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub id: CatalogId,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub externally_visible: bool,
    /// Bumped by each change; a change names the version it was made from.
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPackage {
    pub id: PackageId,
    pub catalog_id: CatalogId,
    pub name: String,
    pub description: String,
    pub hidden: bool,
    pub enabled: bool,
    pub version: i64,
}

/// A resource role as shown to people: "Member of Sales Team (built-in group)".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRoleInfo {
    pub id: ResourceRoleId,
    pub resource_id: ResourceId,
    pub resource_name: String,
    pub role_name: String,
    pub system_kind: ResourceSystemKind,
}

/// Half-open time window of an assignment or requested schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::states::CatalogRole;

    /// A catalog role on the wire is the stored role's own word, both ways.
    #[test]
    fn catalog_roles_are_the_stored_roles() {
        for role in CatalogRole::ALL {
            assert_eq!(Role::from(*role).as_str(), role.as_str());
            assert_eq!(Role::from(*role).in_catalog(), Some(*role));
        }
        assert_eq!(Role::Administrator.in_catalog(), None);
        assert_eq!(Role::CatalogCreator.in_catalog(), None);
    }
}
