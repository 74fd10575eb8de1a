//! Separation of duties: packages and groups that must not be held together.

use serde::{Deserialize, Serialize};

use super::ids::*;

/// Something the user holds (or has pending) that the package is incompatible with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Conflict {
    Package { id: PackageId, name: String },
    Group { id: GroupId, name: String },
}

impl Conflict {
    pub fn describe(&self) -> String {
        match self {
            Conflict::Package { name, .. } => format!("the access package “{name}”"),
            Conflict::Group { name, .. } => format!("membership of the group “{name}”"),
        }
    }
}

/// The rules of one package, both directions already merged by the store: packages this one
/// names as incompatible, and packages that name this one.
#[derive(Clone, Debug, Default)]
pub struct SodRules {
    pub incompatible_packages: Vec<(PackageId, String)>,
    pub incompatible_groups: Vec<(GroupId, String)>,
}

/// What the user has now: live (or pending) package assignments and group memberships.
#[derive(Clone, Debug, Default)]
pub struct Holdings {
    pub packages: Vec<PackageId>,
    pub groups: Vec<GroupId>,
}

pub fn conflicts(rules: &SodRules, holdings: &Holdings) -> Vec<Conflict> {
    let packages = rules
        .incompatible_packages
        .iter()
        .filter(|(id, _)| holdings.packages.contains(id))
        .map(|(id, name)| Conflict::Package { id: *id, name: name.clone() });
    let groups = rules
        .incompatible_groups
        .iter()
        .filter(|(id, _)| holdings.groups.contains(id))
        .map(|(id, name)| Conflict::Group { id: *id, name: name.clone() });
    packages.chain(groups).collect()
}

/// One sentence naming every conflict.
pub fn explain(conflicts: &[Conflict]) -> String {
    let names: Vec<String> = conflicts.iter().map(Conflict::describe).collect();
    format!("separation of duties: this access cannot be held together with {}", names.join(" or "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_conflict() {
        let rules = SodRules {
            incompatible_packages: vec![(PackageId(2), "Payments approver".into())],
            incompatible_groups: vec![(GroupId(4), "Auditors".into())],
        };
        assert!(conflicts(&rules, &Holdings::default()).is_empty());
        let found = conflicts(&rules, &Holdings { packages: vec![PackageId(2)], groups: vec![GroupId(4)] });
        assert_eq!(found.len(), 2);
        let text = explain(&found);
        assert!(text.contains("Payments approver") && text.contains("Auditors"), "{text}");
    }
}
