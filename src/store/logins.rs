//! OpenID Connect sign-ins in flight.

use super::Conn;

/// One authorization request's secrets.
#[derive(Clone, Debug)]
pub struct LoginState {
    pub csrf_state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    pub created_at: i64,
}

pub async fn insert(conn: &mut Conn, id: &str, s: &LoginState) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO login_states (id, csrf_state, nonce, pkce_verifier, return_to, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&s.csrf_state)
    .bind(&s.nonce)
    .bind(&s.pkce_verifier)
    .bind(&s.return_to)
    .bind(s.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Take (read and delete) a login state: each can be used once.
pub async fn take(conn: &mut Conn, id: &str) -> Result<Option<LoginState>, sqlx::Error> {
    let row: Option<(String, String, String, String, i64)> = sqlx::query_as(
        "DELETE FROM login_states WHERE id = $1 RETURNING csrf_state, nonce, pkce_verifier, return_to, created_at",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(csrf_state, nonce, pkce_verifier, return_to, created_at)| LoginState {
        csrf_state,
        nonce,
        pkce_verifier,
        return_to,
        created_at,
    }))
}

/// Forget sign-ins abandoned before `before` (ms).
pub async fn purge(conn: &mut Conn, before: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM login_states WHERE created_at < $1").bind(before).execute(conn).await?.rows_affected())
}
