//! API tokens: a person makes them for themselves, with some of their rights; a call to the
//! REST API is made as the token's owner with only those.

use chrono::Duration;
use serde_json::json;

use super::Service;
use crate::domain::audit::AuditEvent;
use crate::domain::authz::{Actor, Operator, Permission};
use crate::domain::ids::UserId;
use crate::domain::token::{new_secret, secret_hash, Scope, Scopes};
use crate::domain::{DomainError, DomainResult};
use crate::store::directory;
use crate::store::tokens::{self as store, NewToken, Token};
use crate::views::{ServiceAccountView, TokenView};

/// The longest a token may last.
pub const MAX_TOKEN_DAYS: u32 = 366;

/// How many tokens a person may hold at once (revoked and expired ones not counted).
const MAX_LIVE_TOKENS: usize = 20;

/// A use is recorded at most this often (a call reads; it writes only now and then).
const TOUCH_EVERY: Duration = Duration::minutes(5);

/// Who makes or revokes a token.
#[derive(Clone, Copy, Debug)]
pub enum TokenBy<'a> {
    /// The signed-in person (or an administrator, to revoke someone's).
    Person(&'a Actor),
    /// An administrator, making a token for a service account (never for a person, themselves
    /// included).
    ForServiceAccount(&'a Actor),
    /// The operator at the command line (`quartermaster token …`).
    CommandLine,
}

impl TokenBy<'_> {
    /// The person acting, if it is one (audited as the event's actor).
    fn person(self) -> Option<UserId> {
        match self {
            TokenBy::Person(a) | TokenBy::ForServiceAccount(a) => Some(a.id()),
            TokenBy::CommandLine => None,
        }
    }
}

/// A call's caller: the token's owner with only the token's rights.
#[derive(Clone, Debug)]
pub struct TokenCaller {
    /// The owner, without their administrative roles unless the token has `admin`.
    pub actor: Actor,
    pub token: i64,
    pub scopes: Scopes,
    /// When the token stops working (a token made through it lasts no longer).
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The owner is an administrator (whatever the token's scopes): what `metrics` needs.
    pub administrator: bool,
}

impl TokenCaller {
    /// Refused (403, naming the scope) when the token lacks `scope`.
    pub fn require(&self, scope: Scope) -> DomainResult<()> {
        if self.scopes.has(scope) {
            Ok(())
        } else {
            Err(DomainError::forbidden(format!("this token does not have the \"{}\" scope", scope.word())))
        }
    }
}

/// May `owner` have a token of `scope`? Never beyond their rights: `admin` only with a role in
/// the admin area, `metrics` and `scim` only for administrators.
fn may_give(owner: &Actor, scope: Scope) -> bool {
    match scope {
        Scope::Read | Scope::Request | Scope::Decide => true,
        Scope::Admin => owner.has_admin_area(),
        Scope::Metrics | Scope::Scim => owner.is_admin(),
    }
}

fn view(t: &Token, now: chrono::DateTime<chrono::Utc>) -> TokenView {
    TokenView {
        id: t.id,
        name: t.name.clone(),
        scopes: t.scopes.split(' ').filter(|w| !w.is_empty()).map(str::to_owned).collect(),
        created_at: t.created_at.timestamp_millis(),
        expires_at: t.expires_at.timestamp_millis(),
        last_used_at: t.last_used_at.map(|d| d.timestamp_millis()),
        revoked_at: t.revoked_at.map(|d| d.timestamp_millis()),
        active: t.revoked_at.is_none() && t.expires_at > now,
    }
}

impl Service {
    /// Make a token for `owner` named `name`, with `scopes` (none beyond the owner's rights:
    /// `admin` only for who holds an administrative role), lasting `days`. Audited; returns
    /// the token and its secret, which is not kept and cannot be shown again.
    #[tracing::instrument(name = "create_token", skip_all, fields(owner = owner.id().0, scopes = %scopes, days))]
    pub async fn create_token(
        &self,
        by: TokenBy<'_>,
        owner: &Actor,
        name: &str,
        scopes: &Scopes,
        days: u32,
    ) -> DomainResult<(TokenView, String)> {
        // A person's own; or an administrator's for a service account (checked under the
        // account's lock below).
        let for_service_account = match by {
            TokenBy::Person(actor) if actor.id() != owner.id() => {
                return Err(DomainError::forbidden(
                    "a person makes API tokens only for themselves (administrators: for service accounts)",
                ));
            }
            TokenBy::ForServiceAccount(actor) => {
                actor.require(Permission::Administer)?;
                true
            }
            TokenBy::Person(_) | TokenBy::CommandLine => false,
        };
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(DomainError::invalid("name", "give the token a name (at most 100 characters) to know it by"));
        }
        if !(1..=MAX_TOKEN_DAYS).contains(&days) {
            return Err(DomainError::invalid("days", format!("a token lasts 1 to {MAX_TOKEN_DAYS} days")));
        }
        if let Some(beyond) = Scope::ALL.into_iter().find(|s| scopes.has(*s) && !may_give(owner, *s)) {
            let why = match beyond {
                Scope::Admin => {
                    "the admin scope is only for people with an administrative role, which this person has not".into()
                }
                other => format!("the {} scope is only for administrators", other.word()),
            };
            return Err(DomainError::invalid("scopes", why));
        }
        let now = self.now();
        let expires_at = now + Duration::days(i64::from(days));
        let secret = new_secret();
        let hash = secret_hash(&secret).ok_or_else(|| DomainError::Internal("a new secret is malformed".into()))?;
        let mut tx = self.db.begin().await?;
        self.db.lock_user(&mut tx, owner.id()).await?;
        if for_service_account && !directory::is_service_account(&mut tx, owner.id()).await? {
            return Err(DomainError::forbidden(
                "an administrator makes API tokens for service accounts, not for people",
            ));
        }
        // Still active under the lock a disabling takes (its tokens are revoked as it is).
        if !directory::user(&mut tx, owner.id()).await?.is_some_and(|u| u.is_active()) {
            return Err(DomainError::not_found("person"));
        }
        if store::live_count(&mut tx, owner.id(), now).await? >= MAX_LIVE_TOKENS as i64 {
            return Err(DomainError::Conflict(format!(
                "at most {MAX_LIVE_TOKENS} tokens at once: revoke one you no longer use first"
            )));
        }
        let scope_words = scopes.to_string();
        let id = store::insert(
            &mut tx,
            &NewToken {
                user: owner.id(),
                name,
                scopes: &scope_words,
                secret_hash: &hash,
                created_by: by.person(),
                expires_at,
            },
            now,
        )
        .await?;
        let actor = by.person();
        let mut event = AuditEvent::new(actor, "api_token.created", "api_token", id).after(json!({
            "owner": owner.id().0, "name": name, "scopes": scope_words, "expires_at": expires_at.timestamp_millis(),
        }));
        if matches!(by, TokenBy::CommandLine) {
            event = event.reason("made at the command line");
        }
        self.commit(tx, vec![event]).await?;
        let token = Token {
            id,
            user: owner.id(),
            name: name.to_owned(),
            scopes: scope_words,
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        Ok((view(&token, now), secret))
    }

    /// A person's tokens, newest first: their own, or anyone's for an administrator (or the
    /// operator).
    #[tracing::instrument(name = "tokens", skip_all, fields(owner = owner.0))]
    pub async fn tokens(&self, by: TokenBy<'_>, owner: UserId) -> DomainResult<Vec<TokenView>> {
        if let TokenBy::Person(actor) | TokenBy::ForServiceAccount(actor) = by {
            if actor.id() != owner && !actor.can(Permission::Administer) {
                return Err(DomainError::forbidden("only administrators see other people's tokens"));
            }
        }
        let now = self.now();
        let mut conn = self.db.pool().acquire().await?;
        Ok(store::of_user(&mut conn, owner, 200).await?.iter().map(|t| view(t, now)).collect())
    }

    /// The signed-in person's own tokens, newest first, and the scopes they may give one.
    #[tracing::instrument(name = "my_tokens", skip_all, fields(actor = actor.id().0))]
    pub async fn my_tokens(&self, actor: &Actor) -> DomainResult<crate::views::TokenList> {
        let items = self.tokens(TokenBy::Person(actor), actor.id()).await?;
        let scopes = Scope::ALL.into_iter().filter(|s| may_give(actor, *s)).map(|s| s.word().to_owned()).collect();
        Ok(crate::views::TokenList { items, scopes, max_days: MAX_TOKEN_DAYS, fresh_secret: None })
    }

    /// Revoke a token: its owner, an administrator, or the operator. Audited; revoking one
    /// already revoked changes nothing and says so.
    #[tracing::instrument(name = "revoke_token", skip_all, fields(token = id))]
    pub async fn revoke_token(&self, by: TokenBy<'_>, id: i64) -> DomainResult<()> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let token = store::by_id(&mut tx, id).await?;
        let Some(token) = token.filter(|t| match by {
            TokenBy::Person(a) | TokenBy::ForServiceAccount(a) => a.id() == t.user || a.can(Permission::Administer),
            TokenBy::CommandLine => true,
        }) else {
            // Someone else's token is not theirs to know of.
            return Err(DomainError::not_found("token"));
        };
        let actor = by.person();
        if !store::revoke(&mut tx, id, actor, now).await? {
            return Err(DomainError::Conflict("this token was already revoked".into()));
        }
        let mut event = AuditEvent::new(actor, "api_token.revoked", "api_token", id)
            .before(json!({"owner": token.user.0, "name": token.name}));
        if matches!(by, TokenBy::CommandLine) {
            event = event.reason("revoked at the command line");
        }
        self.commit(tx, vec![event]).await?;
        Ok(())
    }

    /// The caller a secret stands for: `None` when it is no token's, or the token is revoked
    /// or expired, or its owner is disabled (all the same to the caller: not signed in).
    /// Records the use now and then.
    #[tracing::instrument(name = "token_caller", skip_all)]
    pub async fn token_caller(&self, secret: &str) -> DomainResult<Option<TokenCaller>> {
        let Some(hash) = secret_hash(secret) else { return Ok(None) };
        let now = self.now();
        let mut conn = self.db.pool().acquire().await?;
        let Some(token) = store::by_secret_hash(&mut conn, &hash).await? else { return Ok(None) };
        if token.revoked_at.is_some() || token.expires_at <= now {
            return Ok(None);
        }
        drop(conn);
        let Some(mut actor) = self.actor(token.user).await? else { return Ok(None) };
        let scopes = Scopes::parse(&token.scopes).map_err(DomainError::Internal)?;
        let administrator = actor.is_admin();
        if !scopes.has(Scope::Admin) {
            actor.roles.clear();
        }
        if token.last_used_at.is_none_or(|at| at < now - TOUCH_EVERY) {
            // Best effort, in the writers' turn: a busy database does not fail the call.
            if let Err(e) = self.touch_token(token.id, now).await {
                tracing::warn!(token = token.id, error = %e, "the token's last use was not recorded");
            }
        }
        Ok(Some(TokenCaller { actor, token: token.id, scopes, expires_at: token.expires_at, administrator }))
    }

    async fn touch_token(&self, id: i64, now: chrono::DateTime<chrono::Utc>) -> DomainResult<()> {
        let _turn = self.db.write_turn().await?;
        let mut conn = self.db.pool().acquire().await?;
        Ok(store::touch(&mut conn, id, now, now - TOUCH_EVERY).await?)
    }

    /// Make a service account (administrators): a member of the directory that signs in
    /// nowhere and acts through the API tokens administrators make for it, with the roles
    /// and access it is given like anyone. Audited; its id.
    #[tracing::instrument(name = "create_service_account", skip_all, fields(actor = actor.id().0))]
    pub async fn create_service_account(&self, actor: &Actor, name: &str, purpose: &str) -> DomainResult<UserId> {
        actor.require(Permission::Administer)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(DomainError::invalid("name", "give the account a name (at most 100 characters)"));
        }
        let purpose = purpose.trim();
        if purpose.chars().count() > 500 || purpose.chars().any(char::is_control) {
            return Err(DomainError::invalid("purpose", "at most 500 characters, on one line"));
        }
        let slug = service_account_slug(name)
            .ok_or_else(|| DomainError::invalid("name", "use letters or digits in the name"))?;
        let email = format!("{slug}@service-accounts.invalid");
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let id = directory::insert_service_account(&mut tx, &email, name, purpose, crate::store::to_ms(now))
            .await
            .map_err(|e| {
                if crate::store::is_unique_violation(&e) {
                    DomainError::Conflict(format!("a service account named like “{name}” exists ({email})"))
                } else {
                    e.into()
                }
            })?;
        let event = AuditEvent::new(Some(actor.id()), "user.service_account_created", "user", id.0)
            .after(json!({"name": name, "email": email, "purpose": purpose}));
        self.commit(tx, vec![event]).await?;
        Ok(id)
    }

    /// A token for a service account, made by an administrator ([`Self::create_token`] with
    /// [`TokenBy::ForServiceAccount`]); a disabled or unknown account is not found.
    #[tracing::instrument(name = "create_service_account_token", skip_all, fields(actor = admin.id().0, account = account.0))]
    pub async fn create_service_account_token(
        &self,
        admin: &Actor,
        account: UserId,
        name: &str,
        scopes: &Scopes,
        days: u32,
    ) -> DomainResult<(TokenView, String)> {
        admin.require(Permission::Administer)?;
        let owner = self.actor(account).await?.ok_or_else(|| DomainError::not_found("service account"))?;
        self.create_token(TokenBy::ForServiceAccount(admin), &owner, name, scopes, days).await
    }

    /// The service accounts, by name, each with its tokens (administrators).
    #[tracing::instrument(name = "service_accounts", skip_all, fields(actor = actor.id().0))]
    pub async fn service_accounts(&self, actor: &Actor) -> DomainResult<Vec<ServiceAccountView>> {
        actor.require(Permission::Administer)?;
        let now = self.now();
        let mut conn = self.db.pool().acquire().await?;
        let accounts = directory::service_accounts(&mut conn, 200).await?;
        let ids: Vec<UserId> = accounts.iter().map(|a| a.id).collect();
        let tokens = store::of_users(&mut conn, &ids, 50).await?;
        Ok(accounts
            .into_iter()
            .map(|a| ServiceAccountView {
                id: a.id.0,
                active: a.is_active(),
                tokens: tokens.iter().filter(|t| t.user == a.id).map(|t| view(t, now)).collect(),
                name: a.display_name,
                email: a.email,
                purpose: a.job_title,
            })
            .collect())
    }

    /// The operator's view of an active person by email (for `quartermaster token create`).
    #[tracing::instrument(name = "person_by_email", skip_all)]
    pub async fn person_by_email(&self, by: &Operator<'_>, email: &str) -> DomainResult<Actor> {
        let user = self.person_id_by_email(by, email).await?;
        self.actor(user).await?.ok_or_else(|| DomainError::Conflict(format!("{email} is disabled")))
    }

    /// Who has this email, active or not (for `quartermaster token list`: a leaver's tokens
    /// too).
    #[tracing::instrument(name = "person_id_by_email", skip_all)]
    pub async fn person_id_by_email(&self, by: &Operator<'_>, email: &str) -> DomainResult<UserId> {
        by.require(Permission::Administer)?;
        let mut conn = self.db.pool().acquire().await?;
        let found = crate::store::directory::user_by_email(&mut conn, email.trim()).await?;
        found.map(|(user, _)| user.id).ok_or_else(|| DomainError::not_found(format!("person {email:?}")))
    }
}

/// The local part of a service account's address: the name's letters and digits, lower case,
/// other runs as one `-` (`None`: nothing left).
fn service_account_slug(name: &str) -> Option<String> {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    (!slug.is_empty()).then(|| slug.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_service_accounts_address_comes_from_its_name() {
        assert_eq!(super::service_account_slug("  Nightly HR Sync! ").as_deref(), Some("nightly-hr-sync"));
        assert_eq!(super::service_account_slug("CI/CD -- deploys").as_deref(), Some("ci-cd-deploys"));
        assert_eq!(super::service_account_slug("Ünïcode bot").as_deref(), Some("n-code-bot"));
        assert_eq!(super::service_account_slug("***"), None);
    }
}
