//! Server functions of the catalog admin pages: thin adapters like the rest (`super`); each
//! obtains the capability handle its operation needs, so the service decides who may.

// The `server` attribute: in the server build it comes with `super::server` (the name
// imports both the helper module and, through `super`'s prelude, the attribute).
#[cfg(not(feature = "ssr"))]
use leptos::server;

use crate::ui::error::AppError;
use crate::views::*;

#[cfg(feature = "ssr")]
use super::{at_most, ok, server, ticked};

#[cfg(feature = "ssr")]
fn catalog_id(id: i64) -> crate::domain::ids::CatalogId {
    crate::domain::ids::CatalogId(id)
}

/// The catalogs the viewer manages (all for administrators).
#[server(endpoint = "admin_catalogs")]
pub async fn admin_catalogs() -> Result<CatalogList, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.admin_catalogs(&actor).await?)
}

/// One catalog's admin page.
#[server(endpoint = "load_catalog")]
pub async fn load_catalog(catalog_id: i64) -> Result<CatalogAdmin, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.catalog_reader(&actor, self::catalog_id(catalog_id))?.admin_view().await?)
}

/// Create a catalog; its creator owns it, and lands on its page.
#[server(endpoint = "create_catalog")]
pub async fn create_catalog(
    name: String,
    description: String,
    externally_visible: Option<String>,
) -> Result<Notice, AppError> {
    let result = async {
        at_most("description", &description, 2000)?;
        let (service, actor) = server::actor().await?;
        let id =
            service.catalog_creator(&actor)?.create_catalog(&name, &description, ticked(&externally_visible)).await?;
        Ok((id, ok(format!("Catalog “{}” created. You own it: add resources, then packages.", name.trim()))))
    }
    .await;
    match result {
        Ok((id, notice)) => server::finish_at(Ok(notice), &format!("/admin/catalogs/{}", id.0)).await,
        Err(e) => server::finish(Err(e)).await,
    }
}

/// Change a catalog's name, description and switches. `version`: the one the form showed
/// (a change made since is not overwritten); left out, the change is made over whatever is
/// there now.
#[server(endpoint = "update_catalog")]
pub async fn update_catalog(
    catalog_id: i64,
    name: String,
    description: String,
    enabled: Option<String>,
    externally_visible: Option<String>,
    version: Option<i64>,
) -> Result<Notice, AppError> {
    let result = async {
        at_most("description", &description, 2000)?;
        let (service, actor) = server::actor().await?;
        let id = self::catalog_id(catalog_id);
        let owner = service.catalog_owner(&actor, id)?;
        let version = match version {
            Some(version) => version,
            None => owner.settings().await?.version,
        };
        let changed = crate::domain::model::Catalog {
            id,
            name,
            description: description.trim().to_owned(),
            enabled: ticked(&enabled),
            externally_visible: ticked(&externally_visible),
            version,
        };
        owner.update_catalog(changed).await?;
        Ok(ok("Catalog saved."))
    }
    .await;
    server::finish(result).await
}

/// Delete a catalog (refused while its packages are in use); back to the list.
#[server(endpoint = "delete_catalog")]
pub async fn delete_catalog(catalog_id: i64) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        service.catalog_owner(&actor, self::catalog_id(catalog_id))?.delete_catalog().await?;
        Ok(ok("Catalog deleted. Its history stays in the audit log."))
    }
    .await;
    server::finish_at(result, "/admin/catalogs").await
}

/// Give someone a role in a catalog: `person` is the id the picker chose, or a typed email.
#[server(endpoint = "grant_catalog_role")]
pub async fn grant_catalog_role(catalog_id: i64, person: String, role: CatalogRole) -> Result<Notice, AppError> {
    let result = async {
        at_most("person", &person, 320)?;
        let (service, actor) = server::actor().await?;
        service.catalog_owner(&actor, self::catalog_id(catalog_id))?.grant_role_to(&person, role).await?;
        Ok(ok(format!("{} added.", role.label())))
    }
    .await;
    server::finish(result).await
}

/// Take a role in a catalog back.
#[server(endpoint = "revoke_catalog_role")]
pub async fn revoke_catalog_role(catalog_id: i64, user_id: i64, role: CatalogRole) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        let owner = service.catalog_owner(&actor, self::catalog_id(catalog_id))?;
        owner.revoke_role(crate::domain::ids::UserId(user_id), role).await?;
        Ok(ok(format!("{} removed.", role.label())))
    }
    .await;
    server::finish(result).await
}

/// Add a resource from a resource system, with its roles (comma-separated names).
#[server(endpoint = "add_resource")]
pub async fn add_resource(
    catalog_id: i64,
    system_id: i64,
    name: String,
    description: String,
    roles: String,
) -> Result<Notice, AppError> {
    let result = async {
        at_most("description", &description, 2000)?;
        at_most("roles", &roles, 2000)?;
        let (service, actor) = server::actor().await?;
        let owner = service.catalog_owner(&actor, self::catalog_id(catalog_id))?;
        let names: Vec<&str> = roles.split(',').map(str::trim).filter(|r| !r.is_empty()).collect();
        let system = crate::domain::ids::ResourceSystemId(system_id);
        owner.add_resource(system, &name, &description, &names).await?;
        Ok(ok(format!("Resource “{}” added with {} role(s).", name.trim(), names.len())))
    }
    .await;
    server::finish(result).await
}

/// Bind a group of a connected system to the catalog as a resource with one role, its
/// membership (administrators): `external_id` is its id there (a SCIM group's id, an LDAP
/// group's DN, the name a webhook receiver knows it by).
#[server(endpoint = "bind_group")]
pub async fn bind_group(
    catalog_id: i64,
    system_id: i64,
    external_id: String,
    name: String,
    description: String,
) -> Result<Notice, AppError> {
    let result = async {
        at_most("external_id", &external_id, 200)?;
        at_most("description", &description, 2000)?;
        let (service, actor) = server::actor().await?;
        service.administrator(&actor)?;
        let owner = service.catalog_owner(&actor, self::catalog_id(catalog_id))?;
        let system = crate::domain::ids::ResourceSystemId(system_id);
        owner.add_resource_as(system, external_id.trim(), &name, &description, &["Member"]).await?;
        Ok(ok(format!("“{}” bound: packages can grant its membership now.", name.trim())))
    }
    .await;
    server::finish(result).await
}

/// People whose email or name starts with `query`, for the person pickers.
#[server(endpoint = "find_people")]
pub async fn find_people(query: String) -> Result<Vec<PersonOption>, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.find_people(&actor, &query).await?)
}

/// A global role (`administrator`, `catalog_creator`) given (`grant` = "true") or taken back.
#[server(endpoint = "set_global_role")]
pub async fn set_global_role(user_id: i64, role: String, grant: String) -> Result<Notice, AppError> {
    use crate::domain::model::Role;
    let result = async {
        let (service, actor) = server::actor().await?;
        let role = match role.as_str() {
            "administrator" => Role::Administrator,
            "catalog_creator" => Role::CatalogCreator,
            _ => {
                return Err(AppError::Invalid {
                    field: Some("role".into()),
                    message: "administrator or catalog_creator".into(),
                })
            }
        };
        let admin = service.administrator(&actor)?;
        let user = crate::domain::ids::UserId(user_id);
        let label = role.as_str().replace('_', " ");
        if grant == "true" {
            admin.grant_role(user, role).await?;
            Ok(ok(format!("Now {label}.")))
        } else {
            admin.revoke_role(user, role).await?;
            Ok(ok(format!("No longer {label}.")))
        }
    }
    .await;
    server::finish(result).await
}

/// The directory a page at a time (administrators browse; others search).
#[server(endpoint = "load_directory")]
pub async fn load_directory(after: Option<String>) -> Result<Directory, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.directory(&actor, after.as_deref()).await?)
}

/// What a person has, each line with its path (the access explain).
#[server(endpoint = "load_person_access")]
pub async fn load_person_access(user_id: i64) -> Result<PersonAccess, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.person_access(&actor, crate::domain::ids::UserId(user_id)).await?)
}
