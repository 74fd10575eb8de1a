//! Server functions of the API tokens page: the signed-in person's own tokens (made, listed
//! and revoked by themselves; an administrator revokes anyone's from the CLI or this same
//! call); and of the service accounts page (administrators): the accounts, and the tokens
//! made for them.

#[cfg(not(feature = "ssr"))]
use leptos::server;

use crate::ui::error::AppError;
use crate::views::*;

#[cfg(feature = "ssr")]
use super::{ok, server, ticked};

/// Secrets of tokens just made by a plain form post (JavaScript off), each waiting in this
/// process's memory for the one page view that shows it: never in the session store, which
/// is written to the database. A secret not shown within five minutes is dropped (the token
/// stays, to be revoked). With JavaScript the secret comes back in the call's answer and is
/// kept nowhere.
#[cfg(feature = "ssr")]
#[derive(Clone, Debug, Default)]
pub struct FreshSecrets(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<SessionUser, Waiting>>>);

/// A session's id and its signed-in person.
#[cfg(feature = "ssr")]
type SessionUser = (String, i64);
/// A secret, and when it began to wait.
#[cfg(feature = "ssr")]
type Waiting = (String, std::time::Instant);

#[cfg(feature = "ssr")]
impl FreshSecrets {
    const KEPT: std::time::Duration = std::time::Duration::from_secs(300);

    fn put(&self, session: String, user: i64, secret: String) {
        if let Ok(mut held) = self.0.lock() {
            held.retain(|_, (_, at)| at.elapsed() < Self::KEPT);
            held.insert((session, user), (secret, std::time::Instant::now()));
        }
    }

    fn take(&self, session: String, user: i64) -> Option<String> {
        let mut held = self.0.lock().ok()?;
        held.remove(&(session, user)).filter(|(_, at)| at.elapsed() < Self::KEPT).map(|(secret, _)| secret)
    }
}

/// The session's id, as the key of what waits for it.
#[cfg(feature = "ssr")]
async fn session_key() -> Option<String> {
    server::session().await.ok()?.id().map(|id| id.to_string())
}

#[server(endpoint = "my_tokens")]
pub async fn my_tokens() -> Result<TokenList, AppError> {
    let (service, actor) = server::actor().await?;
    let mut list = service.my_tokens(&actor).await?;
    if let (Some(fresh), Some(session)) = (leptos::prelude::use_context::<FreshSecrets>(), session_key().await) {
        list.fresh_secret = fresh.take(session, actor.id().0);
    }
    Ok(list)
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
        let (service, actor) = server::actor().await?;
        let (days, scopes) = (form_days(&days)?, form_scopes(scopes)?);
        let by = crate::service::tokens::TokenBy::Person(&actor);
        let (token, secret) = service.create_token(by, &actor, &name, &scopes, days).await?;
        shown_once(&token, secret, actor.id().0, "Your new token").await
    }
    .await;
    server::finish(result).await
}

/// The answer to a token just made: with JavaScript its secret is in the notice; without,
/// the outcome travels in the session but the secret does not — it waits in memory under
/// `owner`'s id for the one page view that shows it (under `heading`).
#[cfg(feature = "ssr")]
async fn shown_once(token: &TokenView, secret: String, owner: i64, heading: &str) -> Result<Notice, AppError> {
    if server::is_plain_form_post() {
        let fresh = leptos::prelude::use_context::<FreshSecrets>().ok_or(AppError::Internal)?;
        let session = session_key().await.ok_or(AppError::Internal)?;
        fresh.put(session, owner, secret);
        return Ok(ok(format!("Token “{}” made. Copy it now from “{heading}”: it is not shown again.", token.name)));
    }
    Ok(ok(format!("Token “{}” made. Copy it now, it is not shown again: {secret}", token.name)))
}

/// A token form's lifetime, in days.
#[cfg(feature = "ssr")]
fn form_days(days: &str) -> Result<u32, AppError> {
    days.trim().parse().map_err(|_| AppError::Invalid {
        field: Some("days".into()),
        message: "how many days the token lasts, as a number".into(),
    })
}

/// A token form's ticked scope boxes (`scopes[read]`, …); an unknown word is refused by name.
#[cfg(feature = "ssr")]
fn form_scopes(
    scopes: Option<std::collections::BTreeMap<String, String>>,
) -> Result<crate::domain::token::Scopes, AppError> {
    let ticked_words: Vec<String> = scopes
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, on)| ticked(&Some(on.clone())))
        .map(|(word, _)| word)
        .collect();
    crate::domain::token::Scopes::parse(&ticked_words.join(","))
        .map_err(|message| AppError::Invalid { field: Some("scopes".into()), message })
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

/// The service accounts with their tokens (administrators), and the secret of a token just
/// made for one by a plain form post, shown this once.
#[server(endpoint = "load_service_accounts")]
pub async fn load_service_accounts() -> Result<ServiceAccounts, AppError> {
    let (service, actor) = server::actor().await?;
    let items = service.service_accounts(&actor).await?;
    let mut fresh = None;
    if let (Some(held), Some(session)) = (leptos::prelude::use_context::<FreshSecrets>(), session_key().await) {
        // Kept under the account's id (never a signed-in person's: a service account signs
        // in nowhere).
        for a in &items {
            if let Some(secret) = held.take(session.clone(), a.id) {
                fresh = Some(FreshToken { account: a.name.clone(), secret });
            }
        }
    }
    let scopes = crate::domain::token::Scope::ALL.into_iter().map(|s| s.word().to_owned()).collect();
    Ok(ServiceAccounts { items, scopes, max_days: crate::service::tokens::MAX_TOKEN_DAYS, fresh })
}

/// A service account: its name (its address is made from it) and what it is for.
#[server(endpoint = "create_service_account")]
pub async fn create_service_account(name: String, purpose: String) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        service.create_service_account(&actor, &name, &purpose).await?;
        Ok(ok(format!("“{}” made: give it roles or access by its address, then a token.", name.trim())))
    }
    .await;
    server::finish(result).await
}

/// A token for a service account (administrators): as a person's own, with no scope beyond
/// the account's rights; the secret shown once.
#[server(endpoint = "create_service_token")]
pub async fn create_service_token(
    account_id: i64,
    name: String,
    days: String,
    scopes: Option<std::collections::BTreeMap<String, String>>,
) -> Result<Notice, AppError> {
    let result = async {
        let (service, actor) = server::actor().await?;
        service.administrator(&actor)?;
        let (days, scopes) = (form_days(&days)?, form_scopes(scopes)?);
        let account = crate::domain::ids::UserId(account_id);
        let (token, secret) = service.create_service_account_token(&actor, account, &name, &scopes, days).await?;
        shown_once(&token, secret, account_id, "The new token").await
    }
    .await;
    server::finish(result).await
}
