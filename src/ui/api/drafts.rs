//! Server functions of the access package builder: start a draft, show a step, save a step
//! and move (Back, Next, or straight to a step), discard, create. Each opens the draft as its
//! author ([`crate::service::Service::draft`]); the service decides the rest.

#[cfg(not(feature = "ssr"))]
use leptos::server;

use std::collections::HashMap;

use crate::states::WizardStep;
use crate::ui::error::AppError;
use crate::views::*;

#[cfg(feature = "ssr")]
use super::{ok, server};

/// A step's address.
pub fn draft_path(draft: i64, step: WizardStep) -> String {
    format!("/admin/drafts/{draft}/{step}")
}

/// Start a draft in a catalog: `from` is `new`, `copy` (of `package_id`), `policy` (another
/// policy for `package_id`) or `edit` (`package_id` and its `policy_id`).
#[server(endpoint = "start_package_draft")]
pub async fn start_package_draft(
    catalog_id: i64,
    from: String,
    package_id: Option<i64>,
    policy_id: Option<i64>,
) -> Result<Notice, AppError> {
    use crate::domain::ids::{CatalogId, PackageId, PolicyId};
    use crate::service::drafts::DraftStart;
    let result = async {
        let (service, actor) = server::actor().await?;
        let package = || {
            package_id
                .map(PackageId)
                .ok_or(AppError::Invalid { field: Some("package_id".into()), message: "which package?".into() })
        };
        let start =
            match from.as_str() {
                "new" => DraftStart::New,
                "copy" => DraftStart::Copy(package()?),
                "policy" => DraftStart::AddPolicy(package()?),
                "edit" => DraftStart::Edit(
                    package()?,
                    PolicyId(policy_id.ok_or(AppError::Invalid {
                        field: Some("policy_id".into()),
                        message: "which policy?".into(),
                    })?),
                ),
                _ => {
                    return Err(AppError::Invalid { field: Some("from".into()), message: "start from what?".into() });
                }
            };
        let id = service.package_manager(&actor, CatalogId(catalog_id))?.start_draft(start).await?;
        Ok((id, ok("Draft started: it is saved at every step, so you can leave and come back.")))
    }
    .await;
    match result {
        Ok((id, notice)) => server::finish_at(Ok(notice), &draft_path(id, WizardStep::Basics)).await,
        Err(e) => server::finish(Err(e)).await,
    }
}

/// A step of a draft, as saved.
#[server(endpoint = "load_package_draft")]
pub async fn load_package_draft(draft_id: i64, step: Option<WizardStep>) -> Result<DraftView, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.draft(&actor, draft_id).await?.view(step).await?)
}

/// Save a step's fields (`f[…]`) and go `back`, `next`, or `to:<step>`.
#[server(endpoint = "save_draft_step")]
pub async fn save_draft_step(
    draft_id: i64,
    step: WizardStep,
    go: String,
    f: HashMap<String, String>,
) -> Result<Notice, AppError> {
    use crate::service::drafts::Go;
    let result = async {
        let go = match go.as_str() {
            "back" => Go::Back,
            "next" => Go::Next,
            other => Go::To(
                other
                    .strip_prefix("to:")
                    .and_then(WizardStep::parse)
                    .ok_or(AppError::Invalid { field: Some("go".into()), message: "go where?".into() })?,
            ),
        };
        if f.len() > 400 || f.iter().any(|(k, v)| k.len() > 40 || v.chars().count() > 5000) {
            return Err(AppError::Invalid { field: Some("f".into()), message: "that form is too large".into() });
        }
        let (service, actor) = server::actor().await?;
        Ok(service.draft(&actor, draft_id).await?.save_step(step, go, &f).await?)
    }
    .await;
    match result {
        // Saved: the next step is the answer; nothing is kept in the session to show there.
        Ok(to) => {
            leptos_axum::redirect(&draft_path(draft_id, to));
            Ok(ok(format!("Saved. Step {} of {}: {}.", to.index() + 1, WizardStep::ALL.len(), to.label())))
        }
        Err(e) => server::finish(Err(e)).await,
    }
}

/// Throw a draft away, back to its catalog.
#[server(endpoint = "discard_package_draft")]
pub async fn discard_package_draft(draft_id: i64) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        let catalog = service.discard_draft(&actor, draft_id).await?;
        Ok((catalog, ok("Draft discarded.")))
    }
    .await;
    match result {
        Ok((catalog, notice)) => server::finish_at(Ok(notice), &format!("/admin/catalogs/{}", catalog.0)).await,
        Err(e) => server::finish(Err(e)).await,
    }
}

/// Create (or save) what the draft describes, then show the package. A problem found now
/// sends the author to the step where it is, with the message next to the field. `seen`: the
/// draft's last save as the Review step showed it (a save since, in another tab, is refused);
/// `what_if`: who gains and loses by its rule as the Review step showed it (changed since:
/// refused, to be reviewed again).
#[server(endpoint = "finish_package_draft")]
pub async fn finish_package_draft(
    draft_id: i64,
    seen: Option<i64>,
    what_if: Option<String>,
) -> Result<Notice, AppError> {
    use crate::domain::draft::PackageDraft;
    use crate::states::DraftMode;
    let (service, actor) = match server::actor().await {
        Ok(found) => found,
        Err(e) => return server::finish(Err(e)).await,
    };
    let result = async {
        let draft = service.draft(&actor, draft_id).await?;
        let mode = draft.mode();
        let what_if = what_if.filter(|w| !w.is_empty());
        let package = draft.finish_reviewed(seen, what_if.as_deref()).await?;
        let text = match mode {
            DraftMode::NewPackage => "Access package created: people in scope can request it now.",
            DraftMode::NewPolicy => "Policy added.",
            DraftMode::Edit => "Changes saved.",
        };
        Ok::<_, AppError>((package, ok(text)))
    }
    .await;
    match result {
        Ok((package, notice)) => server::finish_at(Ok(notice), &format!("/admin/packages/{}", package.0)).await,
        Err(AppError::Invalid { field: Some(field), message }) => {
            let step = PackageDraft::step_of_field(&field);
            let notice = Notice { ok: false, text: message.clone(), field: Some(field.clone()) };
            server::finish_to(notice, &draft_path(draft_id, step)).await;
            Err(AppError::Invalid { field: Some(field), message })
        }
        Err(e) => server::finish(Err(e)).await,
    }
}
