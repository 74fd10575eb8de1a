//! Typed identifiers, so a user id cannot be passed where a package id is expected.

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
                 serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type!(
    /// A person in the directory.
    UserId,
    /// A directory group (used to scope requestors and approvers).
    GroupId,
    /// A connected (partner) organisation.
    OrgId,
    CatalogId,
    ResourceSystemId,
    ResourceId,
    ResourceRoleId,
    PackageId,
    PolicyId,
    RequestId,
    AssignmentId,
    GrantId,
);
