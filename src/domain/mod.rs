//! The rules of access governance, in plain Rust.
//!
//! This module imports no web framework, no UI framework and no database library: it decides,
//! the store remembers, and the service layer ([`crate::service`]) runs each operation in one
//! transaction around these rules.

pub mod approvers;
pub mod audit;
pub mod authz;
pub mod bulk;
pub mod clock;
pub mod draft;
pub mod eligibility;
pub mod error;
#[cfg(test)]
mod golden;
pub mod ids;
pub mod model;
pub mod package_file;
pub mod policy;
pub mod request;
pub mod review;
pub mod rule;
pub mod scim;
pub mod sod;
pub mod token;

pub use error::{DomainError, DomainResult};
