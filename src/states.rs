//! States that cross the wire: the same enums in the server, in the browser build and in the
//! JSON between them, each stored and shown as one fixed word. Pages match on these, never on
//! strings, so a state a page does not know is a compile error rather than a silent fallback.
//!
//! The request, assignment and decision states belong to the rules (`domain::request`
//! re-exports them); the others describe a read model only.

use serde::{Deserialize, Serialize};

/// An enum stored and shown as a fixed word (`"pending_approval"`), the same in code,
/// database and API.
macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $word:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),* }
            }

            pub fn parse(word: &str) -> Option<Self> {
                match word { $($word => Some($name::$variant),)* _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use word_enum;

word_enum!(
    /// Where a request is: `submitted → pending_approval → approved → delivering → delivered`,
    /// with `partially_delivered` and `delivery_failed`, and the ends `denied`, `canceled`,
    /// `expired`, `rejected`.
    RequestState {
        Submitted = "submitted",
        PendingApproval = "pending_approval",
        Approved = "approved",
        Delivering = "delivering",
        Delivered = "delivered",
        PartiallyDelivered = "partially_delivered",
        DeliveryFailed = "delivery_failed",
        Denied = "denied",
        Canceled = "canceled",
        Expired = "expired",
        Rejected = "rejected",
    }
);

impl RequestState {
    /// Still waiting for a decision.
    pub fn is_open(self) -> bool {
        matches!(self, RequestState::Submitted | RequestState::PendingApproval)
    }

    /// Ended without access.
    pub fn is_refused(self) -> bool {
        matches!(self, RequestState::Denied | RequestState::Canceled | RequestState::Expired | RequestState::Rejected)
    }

    pub fn label(self) -> &'static str {
        match self {
            RequestState::Submitted => "Submitted",
            RequestState::PendingApproval => "Pending approval",
            RequestState::Approved => "Approved",
            RequestState::Delivering => "Delivering",
            RequestState::Delivered => "Delivered",
            RequestState::PartiallyDelivered => "Partially delivered",
            RequestState::DeliveryFailed => "Delivery failed",
            RequestState::Denied => "Denied",
            RequestState::Canceled => "Canceled",
            RequestState::Expired => "Expired",
            RequestState::Rejected => "Rejected",
        }
    }
}

word_enum!(
    /// Where an assignment is: live while being delivered or held, then expired or removed.
    AssignmentState {
        Delivering = "delivering",
        Delivered = "delivered",
        PartiallyDelivered = "partially_delivered",
        DeliveryFailed = "delivery_failed",
        Expired = "expired",
        Removed = "removed",
    }
);

impl AssignmentState {
    pub fn is_live(self) -> bool {
        matches!(
            self,
            AssignmentState::Delivering
                | AssignmentState::Delivered
                | AssignmentState::PartiallyDelivered
                | AssignmentState::DeliveryFailed
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            AssignmentState::Delivering => "Being delivered",
            AssignmentState::Delivered | AssignmentState::PartiallyDelivered => "Active",
            AssignmentState::DeliveryFailed => "Delivery failed",
            AssignmentState::Expired => "Expired",
            AssignmentState::Removed => "Removed",
        }
    }
}

word_enum!(
    /// An approver's decision on one stage, or the stage's time-out.
    Decision { Approve = "approve", Deny = "deny", Timeout = "timeout" }
);

impl Decision {
    pub fn label(self) -> &'static str {
        match self {
            Decision::Approve => "Approved",
            Decision::Deny => "Denied",
            Decision::Timeout => "Timed out",
        }
    }
}

word_enum!(
    /// How an assignment reads to the person holding it.
    AccessBucket { Scheduled = "scheduled", Active = "active", Expiring = "expiring", Ended = "ended" }
);

word_enum!(
    /// One step of a request's timeline.
    StepStatus { Done = "done", Current = "current", Failed = "failed", Skipped = "skipped", Upcoming = "upcoming" }
);

word_enum!(
    /// A package as the browsing person stands to it.
    PackageStatus { Available = "available", Held = "held", Pending = "pending" }
);

word_enum!(
    /// A role held in one catalog (the words are the roles' own, as stored).
    CatalogRole {
        CatalogOwner = "catalog_owner",
        AccessPackageManager = "access_package_manager",
        AssignmentManager = "assignment_manager",
        CatalogReader = "catalog_reader",
    }
);

impl CatalogRole {
    pub fn label(self) -> &'static str {
        match self {
            CatalogRole::CatalogOwner => "Owner",
            CatalogRole::AccessPackageManager => "Access package manager",
            CatalogRole::AssignmentManager => "Assignment manager",
            CatalogRole::CatalogReader => "Reader",
        }
    }

    /// What the role lets its holder do, in a sentence.
    pub fn describe(self) -> &'static str {
        match self {
            CatalogRole::CatalogOwner => "Edits the catalog, its resources and who manages it; everything below.",
            CatalogRole::AccessPackageManager => {
                "Creates and edits the catalog's access packages and policies; assigns."
            }
            CatalogRole::AssignmentManager => "Assigns people to the catalog's packages directly and removes them.",
            CatalogRole::CatalogReader => "Sees the catalog's packages, policies and assignments.",
        }
    }
}

word_enum!(
    /// A step of the access package builder, in order.
    WizardStep {
        Basics = "basics",
        Roles = "roles",
        Requestors = "requestors",
        Approval = "approval",
        Lifecycle = "lifecycle",
        Questions = "questions",
        Review = "review",
    }
);

impl WizardStep {
    pub fn label(self) -> &'static str {
        match self {
            WizardStep::Basics => "Basics",
            WizardStep::Roles => "Resource roles",
            WizardStep::Requestors => "Who can request",
            WizardStep::Approval => "Approval",
            WizardStep::Lifecycle => "Lifecycle",
            WizardStep::Questions => "Questions",
            WizardStep::Review => "Review and create",
        }
    }

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    pub fn next(self) -> Self {
        Self::ALL.get(self.index() + 1).copied().unwrap_or(self)
    }

    pub fn back(self) -> Self {
        self.index().checked_sub(1).and_then(|i| Self::ALL.get(i).copied()).unwrap_or(self)
    }
}

word_enum!(
    /// What a builder draft makes when it is saved: a new package (also a copy of one), a new
    /// policy for a package, or changes to a package and one of its policies.
    DraftMode {
        NewPackage = "new_package",
        NewPolicy = "new_policy",
        Edit = "edit",
    }
);
