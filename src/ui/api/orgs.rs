//! Server functions of the connected organizations page (administrators).

#[cfg(not(feature = "ssr"))]
use leptos::server;

use crate::ui::error::AppError;
use crate::views::*;

#[cfg(feature = "ssr")]
use super::{at_most, ok, server, ticked};

#[cfg(feature = "ssr")]
fn org_id(id: i64) -> crate::domain::ids::OrgId {
    crate::domain::ids::OrgId(id)
}

#[server(endpoint = "load_orgs")]
pub async fn load_orgs() -> Result<Vec<ConnectedOrg>, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.administrator(&actor)?.connected_orgs().await?)
}

#[server(endpoint = "create_org")]
pub async fn create_org(name: String, domain: String, configured: Option<String>) -> Result<Notice, AppError> {
    let result = async {
        at_most("domain", &domain, 253)?;
        let (service, actor) = server::actor().await?;
        service.administrator(&actor)?.create_org(&name, &domain, ticked(&configured)).await?;
        Ok(ok(format!("Connected organization “{}” added.", name.trim())))
    }
    .await;
    server::finish(result).await
}

#[server(endpoint = "update_org")]
pub async fn update_org(
    org_id: i64,
    name: String,
    domain: String,
    configured: Option<String>,
) -> Result<Notice, AppError> {
    let result = async {
        at_most("domain", &domain, 253)?;
        let (service, actor) = server::actor().await?;
        service
            .administrator(&actor)?
            .update_org(self::org_id(org_id), (&name, &domain, ticked(&configured)), None)
            .await?;
        Ok(ok("Connected organization saved."))
    }
    .await;
    server::finish(result).await
}

/// Days from a form field: empty for never.
#[cfg(feature = "ssr")]
fn days(field: &str, value: Option<String>) -> Result<Option<i64>, AppError> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| AppError::Invalid {
            field: Some(field.to_owned()),
            message: "a whole number of days, or empty for never".into(),
        }),
    }
}

/// What happens to the organization's guests once their access has ended.
#[server(endpoint = "set_guest_lifecycle")]
pub async fn set_guest_lifecycle(
    org_id: i64,
    block_after_days: Option<String>,
    remove_after_days: Option<String>,
) -> Result<Notice, AppError> {
    let result = async {
        let (block, remove) =
            (days("block_after_days", block_after_days)?, days("remove_after_days", remove_after_days)?);
        let (service, actor) = server::actor().await?;
        service.administrator(&actor)?.set_guest_lifecycle(self::org_id(org_id), (block, remove), None).await?;
        Ok(ok("Saved: what happens to guests whose access has ended."))
    }
    .await;
    server::finish(result).await
}

/// Add a sponsor: `person` is the picker's entry, `kind` `internal` or `external`.
#[server(endpoint = "add_sponsor")]
pub async fn add_sponsor(org_id: i64, person: String, kind: String) -> Result<Notice, AppError> {
    let result = async {
        at_most("person", &person, 320)?;
        let external = match kind.as_str() {
            "internal" => false,
            "external" => true,
            _ => return Err(AppError::Invalid { field: Some("kind".into()), message: "internal or external".into() }),
        };
        let (service, actor) = server::actor().await?;
        service.administrator(&actor)?.add_sponsor(self::org_id(org_id), &person, external).await?;
        Ok(ok("Sponsor added."))
    }
    .await;
    server::finish(result).await
}

#[server(endpoint = "remove_sponsor")]
pub async fn remove_sponsor(org_id: i64, user_id: i64) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        let user = crate::domain::ids::UserId(user_id);
        service.administrator(&actor)?.remove_sponsor(self::org_id(org_id), user).await?;
        Ok(ok("Sponsor removed."))
    }
    .await;
    server::finish(result).await
}
