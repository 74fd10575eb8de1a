//! Server functions of the API tokens page: the signed-in person's own tokens (made, listed
//! and revoked by themselves; an administrator revokes anyone's from the CLI or this same
//! call).

#[cfg(not(feature = "ssr"))]
use leptos::server;

use crate::ui::error::AppError;
use crate::views::*;

#[cfg(feature = "ssr")]
use super::{ok, server, ticked};

#[server(endpoint = "my_tokens")]
pub async fn my_tokens() -> Result<TokenList, AppError> {
    let (service, actor) = server::actor().await?;
    Ok(service.my_tokens(&actor).await?)
}

/// A token for the signed-in person: its name, a box per scope (`scopes[read]`, …: ticked,
/// given), how many days it lasts. The secret is in the answer, once.
#[server(endpoint = "create_my_token")]
pub async fn create_my_token(
    name: String,
    days: String,
    scopes: Option<std::collections::BTreeMap<String, String>>,
) -> Result<Notice, AppError> {
    let result = async {
        use crate::domain::token::Scopes;
        let (service, actor) = server::actor().await?;
        let days: u32 = days.trim().parse().map_err(|_| AppError::Invalid {
            field: Some("days".into()),
            message: "how many days the token lasts, as a number".into(),
        })?;
        // An unknown word is refused by name.
        let ticked_words: Vec<String> = scopes
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, on)| ticked(&Some(on.clone())))
            .map(|(word, _)| word)
            .collect();
        let scopes = Scopes::parse(&ticked_words.join(","))
            .map_err(|message| AppError::Invalid { field: Some("scopes".into()), message })?;
        let by = crate::service::tokens::TokenBy::Person(&actor);
        let (token, secret) = service.create_token(by, &actor, &name, &scopes, days).await?;
        Ok(ok(format!("Token “{}” made. Copy it now, it is not shown again: {secret}", token.name)))
    }
    .await;
    server::finish(result).await
}

#[server(endpoint = "revoke_my_token")]
pub async fn revoke_my_token(token_id: i64) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        service.revoke_token(crate::service::tokens::TokenBy::Person(&actor), token_id).await?;
        Ok(ok("Token revoked: it no longer works."))
    }
    .await;
    server::finish(result).await
}
