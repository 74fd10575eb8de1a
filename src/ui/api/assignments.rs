//! Server functions of a package's admin page: its assignments, direct assignment, removal.

#[cfg(not(feature = "ssr"))]
use leptos::server;

use crate::ui::error::AppError;
use crate::views::*;

#[cfg(feature = "ssr")]
use super::{at_most, ok, server, MAX_JUSTIFICATION};

#[cfg(feature = "ssr")]
fn package_id(id: i64) -> crate::domain::ids::PackageId {
    crate::domain::ids::PackageId(id)
}

/// A page of a package's assignments, narrowed by the filter form.
#[server(endpoint = "load_package_assignments")]
pub async fn load_package_assignments(
    package_id: i64,
    filter: AssignmentFilter,
    before: Option<String>,
) -> Result<PackageAssignments, AppError> {
    let (service, actor) = server::actor().await?;
    let package = self::package_id(package_id);
    let before = match before.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        Some(b) => Some(b.parse::<i64>().map_err(|_| AppError::Invalid {
            field: Some("before".into()),
            message: "not a page of this list".into(),
        })?),
        None => None,
    };
    let reader = service.package_reader(&actor, package).await?;
    Ok(reader.package_assignments(package, &filter, before).await?)
}

/// Assign a person (the picker's entry) to the package directly.
#[server(endpoint = "assign_package")]
pub async fn assign_package(
    package_id: i64,
    person: String,
    policy_id: i64,
    start: Option<String>,
    end: String,
    justification: String,
) -> Result<Notice, AppError> {
    let result = async {
        at_most("person", &person, 320)?;
        at_most("justification", &justification, MAX_JUSTIFICATION)?;
        let (service, actor) = server::actor().await?;
        let package = self::package_id(package_id);
        let manager = service.assignment_manager_of(&actor, package).await?;
        let policy = crate::domain::ids::PolicyId(policy_id);
        let start = start.unwrap_or_default();
        let outcome = manager.assign_person(package, &person, policy, (&start, &end), &justification).await?;
        Ok(ok(outcome.message))
    }
    .await;
    server::finish(result).await
}

/// Remove someone's assignment to the package.
#[server(endpoint = "remove_package_assignment")]
pub async fn remove_package_assignment(
    package_id: i64,
    assignment_id: i64,
    reason: String,
) -> Result<Notice, AppError> {
    let result = async {
        at_most("reason", &reason, MAX_JUSTIFICATION)?;
        let (service, actor) = server::actor().await?;
        let package = self::package_id(package_id);
        let manager = service.assignment_manager_of(&actor, package).await?;
        manager.remove_from_package(package, crate::domain::ids::AssignmentId(assignment_id), &reason).await?;
        Ok(ok("Assignment removed: the access is being taken back."))
    }
    .await;
    server::finish(result).await
}

/// A bulk assignment's progress and each row's outcome.
#[server(endpoint = "load_bulk_job")]
pub async fn load_bulk_job(job_id: i64) -> Result<BulkJobView, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.bulk_job(&actor, job_id).await?)
}
