//! Server functions of the connectors page (administrators): connected systems, adding one
//! (SCIM, LDAP, webhook; its secret write-only), testing it, and retrying its failed work.

#[cfg(not(feature = "ssr"))]
use leptos::server;

use crate::ui::error::AppError;
use crate::views::*;

#[cfg(feature = "ssr")]
use super::{at_most, ok, server, ticked};

#[server(endpoint = "load_connectors")]
pub async fn load_connectors() -> Result<Vec<ConnectorView>, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.administrator(&actor)?.connectors().await?)
}

/// The LDAP fields of the add form (`ldap[bind_dn]`, …).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LdapFields {
    #[serde(default)]
    pub starttls: Option<String>,
    #[serde(default)]
    pub bind_dn: String,
    #[serde(default)]
    pub people_base: String,
    #[serde(default)]
    pub member_attribute: Option<String>,
}

/// An LDAP directory's settings from the form's `url` and `ldap[…]` fields.
#[cfg(feature = "ssr")]
fn ldap_config(url: &str, fields: LdapFields) -> Result<crate::connectors::ldap::LdapConfig, AppError> {
    use crate::connectors::ldap::{LdapConfig, MemberAttribute};
    let member_attribute = match fields.member_attribute.as_deref() {
        None | Some("member") => MemberAttribute::Member,
        Some("uniqueMember") => MemberAttribute::UniqueMember,
        Some(_) => {
            return Err(AppError::Invalid {
                field: Some("ldap[member_attribute]".into()),
                message: "member or uniqueMember".into(),
            })
        }
    };
    Ok(LdapConfig {
        url: url.to_owned(),
        starttls: ticked(&fields.starttls),
        bind_dn: fields.bind_dn,
        people_base: fields.people_base,
        member_attribute,
        placeholder: None,
        max_in_flight: None,
        removal_threshold: None,
    })
}

/// Add a connected system. One form for the three kinds: `kind` says which fields count
/// (SCIM: `url`, `secret` as its bearer token, `create_users`; LDAP: `url`, `secret` as its
/// bind password, and `ldap[…]`; webhook: `url`, `secret` as its signing secret, and
/// `lifecycle_events`).
#[server(endpoint = "add_connector")]
pub async fn add_connector(
    kind: String,
    name: String,
    url: String,
    secret: String,
    create_users: Option<String>,
    lifecycle_events: Option<String>,
    ldap: Option<LdapFields>,
) -> Result<Notice, AppError> {
    let result = async {
        at_most("url", &url, 2048)?;
        at_most("secret", &secret, 4096)?;
        let (service, actor) = server::actor().await?;
        let admin = service.administrator(&actor)?;
        match kind.as_str() {
            "scim" => admin.add_scim_system(&name, &url, &secret, ticked(&create_users)).await?,
            "webhook" => admin.add_webhook_system(&name, &url, &secret, ticked(&lifecycle_events)).await?,
            "ldap" => admin.add_ldap_system(&name, ldap_config(&url, ldap.unwrap_or_default())?, &secret).await?,
            _ => return Err(AppError::Invalid { field: Some("kind".into()), message: "scim, ldap or webhook".into() }),
        };
        Ok(ok(format!("“{}” added. Test it, then bind its groups to a catalog.", name.trim())))
    }
    .await;
    server::finish(result).await
}

/// Change a connected system's settings (the fields of its kind):
/// its address, how many calls at once, and (when given) a new secret — needed with a new
/// address, since a secret is sealed for its address; SCIM: whether it creates people;
/// webhook: whether it hears request lifecycle events. Saving lifts a pause.
#[server(endpoint = "edit_connector")]
pub async fn edit_connector(
    system_id: i64,
    url: String,
    secret: String,
    create_users: Option<String>,
    lifecycle_events: Option<String>,
    max_in_flight: u16,
    ldap: Option<LdapFields>,
) -> Result<Notice, AppError> {
    let result = async {
        at_most("url", &url, 2048)?;
        at_most("secret", &secret, 4096)?;
        let (service, actor) = server::actor().await?;
        let admin = service.administrator(&actor)?;
        let system = crate::domain::ids::ResourceSystemId(system_id);
        let fresh = Some(secret.as_str()).filter(|s| !s.trim().is_empty());
        use crate::domain::model::ResourceSystemKind as Kind;
        let secret_name = match admin.system_kind(system).await? {
            Kind::Scim => {
                admin.edit_scim_system(system, &url, fresh, ticked(&create_users), max_in_flight, None).await?;
                "token"
            }
            Kind::Webhook => {
                admin.edit_webhook_system(system, &url, fresh, ticked(&lifecycle_events), max_in_flight, None).await?;
                "secret"
            }
            Kind::Ldap => {
                let mut settings = ldap_config(&url, ldap.unwrap_or_default())?;
                settings.max_in_flight = Some(max_in_flight);
                admin.edit_ldap_system(system, settings, fresh, None).await?;
                "password"
            }
            Kind::Builtin => {
                return Err(AppError::Invalid {
                    field: Some("system_id".into()),
                    message: "the built-in system has no settings".into(),
                })
            }
        };
        Ok(ok(if fresh.is_some() {
            format!("Saved, with the new {secret_name}.")
        } else {
            format!("Saved; the {secret_name} is kept.")
        }))
    }
    .await;
    server::finish(result).await
}

/// Call the system once, changing nothing there; the notice says what it answered.
#[server(endpoint = "test_connector")]
pub async fn test_connector(system_id: i64) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        let system = crate::domain::ids::ResourceSystemId(system_id);
        let (reached, said) = service.administrator(&actor)?.test_connector(system).await?;
        Ok(Notice { ok: reached, text: if reached { format!("It works: {said}.") } else { said }, field: None })
    }
    .await;
    server::finish(result).await
}

/// Compare what Quartermaster grants with what the system's bound groups hold (nothing
/// changes); the notice says what differs.
#[server(endpoint = "check_drift")]
pub async fn check_drift(system_id: i64) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        let system = crate::domain::ids::ResourceSystemId(system_id);
        match service.administrator(&actor)?.drift(system).await {
            Ok(report) => Ok(ok(crate::service::drift_summary(&report))),
            Err(e) => could_not_compare(e),
        }
    }
    .await;
    server::finish(result).await
}

/// Repair the drift: missing members added back, members nobody granted taken out. More than
/// the system's share of a group needs `confirm`.
#[server(endpoint = "repair_drift")]
pub async fn repair_drift(system_id: i64, confirm: Option<String>) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        let system = crate::domain::ids::ResourceSystemId(system_id);
        let done = match service.administrator(&actor)?.repair_drift(system, ticked(&confirm)).await {
            Ok(done) => done,
            Err(e) => return could_not_compare(e),
        };
        let text = format!(
            "Repair under way: {} member(s) to add back and {} to take out are queued; {} account(s) unknown here taken out.",
            done.additions_queued, done.removals_queued, done.strangers_removed
        );
        Ok(match done.strangers_not_removed {
            0 => ok(text),
            n => Notice {
                ok: false,
                text: format!("{text} {n} could not be taken out: the audit log has the target's answer."),
                field: None,
            },
        })
    }
    .await;
    server::finish(result).await
}

/// A comparison that could not run (the system cannot be read: unreachable, no key, a kind
/// that keeps no memberships) is an answer saying why, not an error of the request.
#[cfg(feature = "ssr")]
fn could_not_compare(e: crate::domain::DomainError) -> Result<Notice, AppError> {
    match e {
        crate::domain::DomainError::Invalid { field: Some(field), message } if field == "system" => {
            Ok(Notice { ok: false, text: format!("Not compared: {message}"), field: None })
        }
        e => Err(e.into()),
    }
}

/// Put the system's failed work back in the queue.
#[server(endpoint = "retry_connector")]
pub async fn retry_connector(system_id: i64) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        let system = crate::domain::ids::ResourceSystemId(system_id);
        let (back, left) = service.administrator(&actor)?.retry_failed_of(system).await?;
        Ok(ok(match (back, left) {
            (0, 0) => "Nothing had failed.".to_owned(),
            (back, 0) => format!("{back} queued again."),
            (back, left) => format!("{back} queued again; {left} left as they were (their access has ended)."),
        }))
    }
    .await;
    server::finish(result).await
}

/// One connected system's page: its row, its queue and failures, its imports, the catalogs.
#[server(endpoint = "load_connector")]
pub async fn load_connector(system_id: i64) -> Result<crate::views::ConnectorDetail, AppError> {
    let (service, actor) = server::actor().await?;
    let system = crate::domain::ids::ResourceSystemId(system_id);
    Ok(service.administrator(&actor)?.connector(system).await?)
}

/// Import the system's groups into a catalog as resources (SCIM: all of them; LDAP: those
/// under `search_base`), a page at a time in the background; its progress shows on the
/// system's page.
#[server(endpoint = "import_groups")]
pub async fn import_groups(system_id: i64, catalog_id: i64, search_base: Option<String>) -> Result<Notice, AppError> {
    let result = async {
        let base = search_base.unwrap_or_default();
        at_most("search_base", &base, 1024)?;
        let (service, actor) = server::actor().await?;
        let system = crate::domain::ids::ResourceSystemId(system_id);
        let catalog = crate::domain::ids::CatalogId(catalog_id);
        service.administrator(&actor)?.start_group_import(system, catalog, &base).await?;
        Ok(ok("Import started: its progress is below."))
    }
    .await;
    server::finish(result).await
}
