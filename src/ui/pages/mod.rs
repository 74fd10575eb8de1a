//! The pages, one module per area. What several pages share is in `ui::components`.

mod admin;
mod approvals;
mod audit;
mod builder;
mod bulk;
mod catalogs;
mod connector;
mod connectors;
mod errors;
mod my_access;
mod orgs;
mod package;
mod package_admin;
mod people;
mod reviews;
mod settings;
mod sign_in;
mod tokens;

pub use admin::Admin;
pub use approvals::Approvals;
pub use audit::AuditLog;
pub use builder::Builder;
pub use bulk::BulkJob;
pub use catalogs::{CatalogPage, Catalogs};
pub use connector::ConnectorPage;
pub use connectors::Connectors;
pub use errors::NotFound;
pub use my_access::MyAccess;
pub use orgs::Orgs;
pub use package::PackagePage;
pub use package_admin::PackageAdmin;
pub use people::{People, Person};
pub use reviews::{MyReviews, ReviewsAdmin};
pub use settings::Settings;
pub use sign_in::SignIn;
pub use tokens::{ServiceAccountsPage, Tokens};
