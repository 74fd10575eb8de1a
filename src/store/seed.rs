//! The few writes only the demo seed needs (connected organisations and their sponsors are
//! not yet managed anywhere else), the "is this database empty?" check before seeding, and
//! who counts as a demo person (demo sign-in offers only them).

use super::Conn;
use crate::domain::ids::{OrgId, UserId};

/// Whether the directory has no users yet.
pub async fn no_users(conn: &mut Conn) -> Result<bool, sqlx::Error> {
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(conn).await?;
    Ok(users == 0)
}

/// A configured connected (partner) organisation.
pub async fn insert_connected_org(conn: &mut Conn, name: &str, domain: &str, now: i64) -> Result<OrgId, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO connected_orgs (name, domain, state, created_at) VALUES ($1, $2, 'configured', $3) RETURNING id",
    )
    .bind(name)
    .bind(domain)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(OrgId(id))
}

/// An internal sponsor of a connected organisation (approves its guests' requests).
pub async fn add_internal_sponsor(conn: &mut Conn, org: OrgId, user: UserId) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO connected_org_sponsors (org_id, user_id, kind) VALUES ($1, $2, 'internal')")
        .bind(org.0)
        .bind(user.0)
        .execute(conn)
        .await?;
    Ok(())
}

/// "This user is a demo person": an address in one of the demo organisation's email domains
/// and no identity at a provider. `$1…$n` are the `%@domain` patterns.
fn demo_person_condition(domains: &[&str]) -> String {
    if domains.is_empty() {
        return "1 = 0".to_owned();
    }
    let likes: Vec<String> = (1..=domains.len()).map(|i| format!("LOWER(email) LIKE ${i}")).collect();
    format!("(issuer IS NULL AND subject IS NULL AND ({}))", likes.join(" OR "))
}

fn domain_patterns(domains: &[&str]) -> Vec<String> {
    domains.iter().map(|d| format!("%@{}", d.to_ascii_lowercase())).collect()
}

/// How many users are not demo people (see [`demo_person_condition`]).
pub async fn count_non_demo_users(conn: &mut Conn, domains: &[&str]) -> Result<i64, sqlx::Error> {
    // Service accounts sign in nowhere: demo sign-in never offers them.
    let sql = format!(
        "SELECT COUNT(*) FROM users WHERE NOT {} AND (issuer IS NULL OR issuer <> '{}')",
        demo_person_condition(domains),
        super::directory::SERVICE_ACCOUNT_ISSUER
    );
    let mut query = sqlx::query_scalar(&sql);
    for pattern in domain_patterns(domains) {
        query = query.bind(pattern);
    }
    query.fetch_one(conn).await
}

/// Which of `ids` are demo people (read by id: never a scan of the directory).
pub async fn demo_user_ids_among(
    conn: &mut Conn,
    ids: &[UserId],
    domains: &[&str],
) -> Result<Vec<UserId>, sqlx::Error> {
    let sql = format!(
        "SELECT id FROM users WHERE id IN {} AND {} ORDER BY id",
        super::ids_param(conn, domains.len() as u8 + 1),
        demo_person_condition(domains)
    );
    let mut query = sqlx::query_scalar(&sql);
    for pattern in domain_patterns(domains) {
        query = query.bind(pattern);
    }
    let found: Vec<i64> = query.bind(super::ids_json(ids.iter().map(|u| u.0))).fetch_all(conn).await?;
    Ok(found.into_iter().map(UserId).collect())
}

/// Whether this user is a demo person.
pub async fn is_demo_user(conn: &mut Conn, user: UserId, domains: &[&str]) -> Result<bool, sqlx::Error> {
    let sql =
        format!("SELECT COUNT(*) FROM users WHERE id = ${} AND {}", domains.len() + 1, demo_person_condition(domains));
    let mut query = sqlx::query_scalar(&sql);
    for pattern in domain_patterns(domains) {
        query = query.bind(pattern);
    }
    let found: i64 = query.bind(user.0).fetch_one(conn).await?;
    Ok(found > 0)
}
