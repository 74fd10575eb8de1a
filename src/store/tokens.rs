//! API tokens: only the SHA-256 of each secret is kept, and a call finds its token by that
//! hash through a unique index.

use chrono::{DateTime, Utc};

use super::{to_ms, Conn, RowExt};
use crate::domain::ids::UserId;

/// A token as its owner and administrators see it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub id: i64,
    pub user: UserId,
    pub name: String,
    /// Space-separated scope words.
    pub scopes: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, user_id, name, scopes, created_at, expires_at, last_used_at, revoked_at";

fn token_from_row(r: &sqlx::any::AnyRow) -> Result<Token, sqlx::Error> {
    Ok(Token {
        id: r.int("id")?,
        user: UserId(r.int("user_id")?),
        name: r.text("name")?,
        scopes: r.text("scopes")?,
        created_at: r.time("created_at")?,
        expires_at: r.time("expires_at")?,
        last_used_at: r.opt_time("last_used_at")?,
        revoked_at: r.opt_time("revoked_at")?,
    })
}

/// What a new token is.
pub struct NewToken<'a> {
    pub user: UserId,
    pub name: &'a str,
    pub scopes: &'a str,
    pub secret_hash: &'a str,
    pub created_by: Option<UserId>,
    pub expires_at: DateTime<Utc>,
}

/// Add a token; its id.
pub async fn insert(conn: &mut Conn, t: &NewToken<'_>, now: DateTime<Utc>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO api_tokens (user_id, name, scopes, secret_hash, created_at, created_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(t.user.0)
    .bind(t.name)
    .bind(t.scopes)
    .bind(t.secret_hash)
    .bind(to_ms(now))
    .bind(t.created_by.map(|u| u.0))
    .bind(to_ms(t.expires_at))
    .fetch_one(conn)
    .await
}

/// The token whose secret hashes to `secret_hash`, whatever its state.
pub async fn by_secret_hash(conn: &mut Conn, secret_hash: &str) -> Result<Option<Token>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE secret_hash = $1");
    let row = sqlx::query(&sql).bind(secret_hash).fetch_optional(conn).await?;
    row.as_ref().map(token_from_row).transpose()
}

/// One token by id.
pub async fn by_id(conn: &mut Conn, id: i64) -> Result<Option<Token>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(token_from_row).transpose()
}

/// A person's tokens, newest first (at most `limit`).
pub async fn of_user(conn: &mut Conn, user: UserId, limit: i64) -> Result<Vec<Token>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY id DESC LIMIT $2");
    let rows = sqlx::query(&sql).bind(user.0).bind(limit).fetch_all(conn).await?;
    rows.iter().map(token_from_row).collect()
}

/// The tokens of several people, newest first for each (at most `each` of each one's).
pub async fn of_users(conn: &mut Conn, users: &[UserId], each: i64) -> Result<Vec<Token>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM (SELECT {COLUMNS}, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY id DESC) AS n \
         FROM api_tokens WHERE user_id IN {}) t WHERE n <= $2 ORDER BY user_id, id DESC",
        super::ids_param(conn, 1)
    );
    let ids = super::ids_json(users.iter().map(|u| u.0));
    let rows = sqlx::query(&sql).bind(ids).bind(each).fetch_all(conn).await?;
    rows.iter().map(token_from_row).collect()
}

/// How many of a person's tokens are live (neither revoked nor expired).
pub async fn live_count(conn: &mut Conn, user: UserId, now: DateTime<Utc>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2")
        .bind(user.0)
        .bind(to_ms(now))
        .fetch_one(conn)
        .await
}

/// Which tokens a revocation takes: one, or all of a person's.
enum Revoked {
    Token(i64),
    OfUser(UserId),
}

/// Revoke the tokens `which` names that are not revoked yet; how many.
async fn revoke_where(
    conn: &mut Conn,
    which: Revoked,
    by: Option<UserId>,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let (column, value) = match which {
        Revoked::Token(id) => ("id", id),
        Revoked::OfUser(user) => ("user_id", user.0),
    };
    let sql =
        format!("UPDATE api_tokens SET revoked_at = $1, revoked_by = $2 WHERE {column} = $3 AND revoked_at IS NULL");
    let done = sqlx::query(&sql).bind(to_ms(now)).bind(by.map(|u| u.0)).bind(value).execute(conn).await?;
    Ok(done.rows_affected())
}

/// Revoke a token that is not revoked yet; false when it already was (or is not there).
pub async fn revoke(conn: &mut Conn, id: i64, by: Option<UserId>, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    Ok(revoke_where(conn, Revoked::Token(id), by, now).await? == 1)
}

/// Revoke every token of a person not revoked yet (a leaver's); how many.
pub async fn revoke_all(
    conn: &mut Conn,
    user: UserId,
    by: Option<UserId>,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    revoke_where(conn, Revoked::OfUser(user), by, now).await
}

/// Record a use: only when the last one recorded is older than `since`.
pub async fn touch(conn: &mut Conn, id: i64, now: DateTime<Utc>, since: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
    )
    .bind(to_ms(now))
    .bind(id)
    .bind(to_ms(since))
    .execute(conn)
    .await?;
    Ok(())
}
