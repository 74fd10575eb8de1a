//! Users, groups, roles.

use sqlx::any::AnyRow;

use super::{id_list, ids_json, ids_param, Conn, RowExt};
use crate::domain::ids::*;
use crate::domain::model::{Role, RoleGrant, User, UserKind, UserState};

const USER_COLUMNS: &str = "id, email, display_name, department, job_title, manager_id, kind, \
                            connected_org_id, state, provider_time_zone";

fn user_from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: UserId(row.int("id")?),
        email: row.text("email")?,
        display_name: row.text("display_name")?,
        department: row.text("department")?,
        job_title: row.text("job_title")?,
        manager_id: row.opt_int("manager_id")?.map(UserId),
        kind: row.word("kind", UserKind::parse)?,
        connected_org_id: row.opt_int("connected_org_id")?.map(OrgId),
        state: row.word("state", UserState::parse)?,
        provider_time_zone: row.opt_text("provider_time_zone")?,
    })
}

pub async fn user(conn: &mut Conn, id: UserId) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let row = sqlx::query(&sql).bind(id.0).fetch_optional(conn).await?;
    row.as_ref().map(user_from_row).transpose()
}

pub async fn users(conn: &mut Conn, ids: &[UserId]) -> Result<Vec<User>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id IN {} ORDER BY display_name", ids_param(conn, 1));
    let rows = sqlx::query(&sql).bind(ids_json(ids.iter().map(|u| u.0))).fetch_all(conn).await?;
    rows.iter().map(user_from_row).collect()
}

/// Active users, by name: the demo sign-in list.
pub async fn active_users(conn: &mut Conn, limit: i64) -> Result<Vec<User>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE state = 'active' ORDER BY display_name, id LIMIT $1");
    let rows = sqlx::query(&sql).bind(limit).fetch_all(conn).await?;
    rows.iter().map(user_from_row).collect()
}

pub async fn roles(conn: &mut Conn, user: UserId) -> Result<Vec<RoleGrant>, sqlx::Error> {
    let rows = sqlx::query("SELECT role, catalog_id FROM role_assignments WHERE user_id = $1")
        .bind(user.0)
        .fetch_all(conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(RoleGrant {
            role: row.word("role", Role::parse)?,
            catalog: row.opt_int("catalog_id")?.map(CatalogId),
        });
    }
    Ok(out)
}

pub async fn groups_of(conn: &mut Conn, user: UserId) -> Result<Vec<GroupId>, sqlx::Error> {
    let ids: Vec<i64> = sqlx::query_scalar("SELECT group_id FROM group_members WHERE user_id = $1")
        .bind(user.0)
        .fetch_all(conn)
        .await?;
    Ok(ids.into_iter().map(GroupId).collect())
}

/// Every active person, by id.
pub async fn active_people(conn: &mut Conn) -> Result<Vec<User>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE state = 'active' ORDER BY id");
    let rows = sqlx::query(&sql).fetch_all(conn).await?;
    rows.iter().map(user_from_row).collect()
}

/// Active members of a group.
pub async fn group_members(conn: &mut Conn, group: GroupId) -> Result<Vec<UserId>, sqlx::Error> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT m.user_id FROM group_members m JOIN users u ON u.id = m.user_id \
         WHERE m.group_id = $1 AND u.state = 'active'",
    )
    .bind(group.0)
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(UserId).collect())
}

/// What the eligibility rules need beyond the person: their groups, and whether their
/// connected organisation is configured (false for a member).
pub async fn requestor_context(conn: &mut Conn, user: &User) -> Result<(Vec<GroupId>, bool), sqlx::Error> {
    let groups = groups_of(conn, user.id).await?;
    let org_configured = match user.connected_org_id {
        Some(org) => org_is_configured(conn, org).await?,
        None => false,
    };
    Ok((groups, org_configured))
}

pub async fn org_is_configured(conn: &mut Conn, org: OrgId) -> Result<bool, sqlx::Error> {
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM connected_orgs WHERE id = $1").bind(org.0).fetch_optional(conn).await?;
    Ok(state.as_deref() == Some("configured"))
}

/// The configured connected organisation whose email domain this is (lower case), if any.
pub async fn configured_org_by_domain(conn: &mut Conn, domain: &str) -> Result<Option<OrgId>, sqlx::Error> {
    let id: Option<i64> =
        sqlx::query_scalar("SELECT id FROM connected_orgs WHERE LOWER(domain) = $1 AND state = 'configured'")
            .bind(domain)
            .fetch_optional(conn)
            .await?;
    Ok(id.map(OrgId))
}

/// Active internal sponsors of an organisation.
pub async fn sponsors(conn: &mut Conn, org: OrgId) -> Result<Vec<UserId>, sqlx::Error> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT s.user_id FROM connected_org_sponsors s JOIN users u ON u.id = s.user_id \
         WHERE s.org_id = $1 AND s.kind = 'internal' AND u.state = 'active'",
    )
    .bind(org.0)
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(UserId).collect())
}

/// Active owners of a catalog.
pub async fn catalog_owners(conn: &mut Conn, catalog: CatalogId) -> Result<Vec<UserId>, sqlx::Error> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT r.user_id FROM role_assignments r JOIN users u ON u.id = r.user_id \
         WHERE r.catalog_id = $1 AND r.role = 'catalog_owner' AND u.state = 'active'",
    )
    .bind(catalog.0)
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(UserId).collect())
}

pub async fn active_among(conn: &mut Conn, ids: &[UserId]) -> Result<Vec<UserId>, sqlx::Error> {
    let sql = format!("SELECT id FROM users WHERE state = 'active' AND id IN {}", ids_param(conn, 1));
    let ids: Vec<i64> = sqlx::query_scalar(&sql).bind(ids_json(ids.iter().map(|u| u.0))).fetch_all(conn).await?;
    Ok(ids.into_iter().map(UserId).collect())
}

/// A new person in the directory.
#[derive(Clone, Debug)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub department: &'a str,
    pub job_title: &'a str,
    pub manager_id: Option<UserId>,
    pub kind: UserKind,
    pub connected_org_id: Option<OrgId>,
}

pub async fn insert_user(conn: &mut Conn, u: &NewUser<'_>, now: i64) -> Result<UserId, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, display_name, department, job_title, manager_id, kind, \
         connected_org_id, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $8) RETURNING id",
    )
    // Emails are kept in lower case (and unique whatever their case: `users_email_lower`).
    .bind(u.email.trim().to_lowercase())
    .bind(u.display_name)
    .bind(u.department)
    .bind(u.job_title)
    .bind(u.manager_id.map(|m| m.0))
    .bind(u.kind.as_str())
    .bind(u.connected_org_id.map(|o| o.0))
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(UserId(id))
}

pub async fn insert_group(conn: &mut Conn, name: &str, description: &str, now: i64) -> Result<GroupId, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO directory_groups (name, description, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(description)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(GroupId(id))
}

pub async fn add_group_member(conn: &mut Conn, group: GroupId, user: UserId) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(group.0)
        .bind(user.0)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn grant_role(
    conn: &mut Conn,
    user: UserId,
    role: Role,
    catalog: Option<CatalogId>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO role_assignments (user_id, role, catalog_id, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(user.0)
    .bind(role.as_str())
    .bind(catalog.map(|c| c.0))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // Granted by a person: no longer the bootstrap's to take back.
    sqlx::query(
        "UPDATE role_assignments SET source = 'manual' WHERE user_id = $1 AND role = $2 \
         AND (catalog_id = $3 OR (catalog_id IS NULL AND $3 IS NULL))",
    )
    .bind(user.0)
    .bind(role.as_str())
    .bind(catalog.map(|c| c.0))
    .execute(conn)
    .await?;
    Ok(())
}

/// Bootstrap an administrator at sign-in, recording how (`bootstrap_email` happens once per
/// person, ever; `bootstrap_group` is revoked when they leave the group).
pub async fn bootstrap_admin(conn: &mut Conn, user: UserId, source: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO role_assignments (user_id, role, catalog_id, created_at, source) \
         VALUES ($1, 'administrator', NULL, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(user.0)
    .bind(now)
    .bind(source)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE users SET admin_bootstrapped_at = COALESCE(admin_bootstrapped_at, $1) WHERE id = $2")
        .bind(now)
        .bind(user.0)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Was this person ever made an administrator by bootstrap?
pub async fn was_bootstrapped(conn: &mut Conn, user: UserId) -> Result<bool, sqlx::Error> {
    let at: Option<i64> = sqlx::query_scalar("SELECT admin_bootstrapped_at FROM users WHERE id = $1")
        .bind(user.0)
        .fetch_one(conn)
        .await?;
    Ok(at.is_some())
}

/// Take away an administrator role that came from the group bootstrap. True when one went.
pub async fn revoke_group_bootstrap(conn: &mut Conn, user: UserId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM role_assignments WHERE user_id = $1 AND role = 'administrator' AND catalog_id IS NULL \
         AND source = 'bootstrap_group'",
    )
    .bind(user.0)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Display names by id.
pub async fn names(conn: &mut Conn, ids: &[UserId]) -> Result<std::collections::HashMap<UserId, String>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let sql = format!("SELECT id, display_name FROM users WHERE id IN {}", ids_param(conn, 1));
    let rows: Vec<(i64, String)> = sqlx::query_as(&sql).bind(ids_json(ids.iter().map(|u| u.0))).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(id, name)| (UserId(id), name)).collect())
}

/// Every directory group's name by id.
pub async fn group_names(conn: &mut Conn) -> Result<std::collections::HashMap<GroupId, String>, sqlx::Error> {
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM directory_groups").fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(id, name)| (GroupId(id), name)).collect())
}

/// Group memberships of several users at once.
pub async fn groups_of_users(conn: &mut Conn, users: &[UserId]) -> Result<Vec<(UserId, GroupId)>, sqlx::Error> {
    let sql = format!("SELECT user_id, group_id FROM group_members WHERE user_id IN {}", ids_param(conn, 1));
    let rows: Vec<(i64, i64)> = sqlx::query_as(&sql).bind(ids_json(users.iter().map(|u| u.0))).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(u, g)| (UserId(u), GroupId(g))).collect())
}

/// The user signed in through this provider identity.
pub async fn user_by_identity(conn: &mut Conn, issuer: &str, subject: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE issuer = $1 AND subject = $2");
    let row = sqlx::query(&sql).bind(issuer).bind(subject).fetch_optional(conn).await?;
    row.as_ref().map(user_from_row).transpose()
}

/// A user by email (case-insensitive).
pub async fn user_by_email(conn: &mut Conn, email: &str) -> Result<Option<(User, Option<String>)>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS}, issuer FROM users WHERE LOWER(email) = LOWER($1)");
    let row = sqlx::query(&sql).bind(email).fetch_optional(conn).await?;
    row.as_ref().map(|r| Ok((user_from_row(r)?, r.opt_text("issuer")?))).transpose()
}

/// What a sign-in says about a person; `None` fields leave the stored value alone.
pub struct ProfileUpdate<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub department: Option<&'a str>,
    pub job_title: Option<&'a str>,
    pub manager_id: Option<Option<UserId>>,
    /// The time zone the provider gives (`zoneinfo`, known to the tz database); `None`
    /// leaves the stored one.
    pub time_zone: Option<&'a str>,
}

pub async fn update_profile(
    conn: &mut Conn,
    user: UserId,
    issuer: &str,
    subject: &str,
    p: &ProfileUpdate<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET email = $1, display_name = $2, department = COALESCE($3, department),
            department_since = CASE WHEN $3 IS NOT NULL AND $3 <> department AND department <> '' THEN $9
                                    ELSE department_since END,
            job_title = COALESCE($4, job_title),
            manager_id = CASE WHEN $5 = 1 THEN $6 ELSE manager_id END,
            provider_time_zone = COALESCE(CAST($11 AS TEXT), provider_time_zone),
            issuer = $7, subject = $8, last_sign_in_at = $9, updated_at = $9
         WHERE id = $10",
    )
    .bind(p.email.trim().to_lowercase())
    .bind(p.display_name)
    .bind(p.department)
    .bind(p.job_title)
    .bind(i64::from(p.manager_id.is_some()))
    .bind(p.manager_id.flatten().map(|m| m.0))
    .bind(issuer)
    .bind(subject)
    .bind(now)
    .bind(user.0)
    .bind(p.time_zone)
    .execute(conn)
    .await?;
    Ok(())
}

/// The id of the group with this name fed by `source`, created when missing; `None` when a
/// group of that name exists but is kept here or fed by another source (it is not joined).
pub async fn ensure_group(conn: &mut Conn, name: &str, source: &str, now: i64) -> Result<Option<GroupId>, sqlx::Error> {
    sqlx::query(
        "INSERT INTO directory_groups (name, source, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(source)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let id: Option<i64> = sqlx::query_scalar("SELECT id FROM directory_groups WHERE name = $1 AND source = $2")
        .bind(name)
        .bind(source)
        .fetch_optional(conn)
        .await?;
    Ok(id.map(GroupId))
}

/// Make the user's memberships of groups fed by `source` exactly `groups`. Returns
/// (added, removed) counts.
pub async fn set_sourced_memberships(
    conn: &mut Conn,
    user: UserId,
    source: &str,
    groups: &[GroupId],
) -> Result<(u64, u64), sqlx::Error> {
    // `NOT IN (NULL)` is never true: with no groups left, every sourced membership goes.
    let keep = if groups.is_empty() {
        String::new()
    } else {
        format!("AND group_id NOT IN ({})", id_list(groups.iter().map(|g| g.0)))
    };
    let removed = sqlx::query(&format!(
        "DELETE FROM group_members WHERE user_id = $1 AND group_id IN \
         (SELECT id FROM directory_groups WHERE source = $2) {keep}"
    ))
    .persistent(false)
    .bind(user.0)
    .bind(source)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let mut added = 0;
    for g in groups {
        added += sqlx::query("INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(g.0)
            .bind(user.0)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok((added, removed))
}

pub async fn has_global_role(conn: &mut Conn, user: UserId, role: Role) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM role_assignments WHERE user_id = $1 AND role = $2 AND catalog_id IS NULL",
    )
    .bind(user.0)
    .bind(role.as_str())
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// Set a user's state (active/disabled).
pub async fn set_state(conn: &mut Conn, user: UserId, state: UserState, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET state = $1, updated_at = $2 WHERE id = $3")
        .bind(state.as_str())
        .bind(now)
        .bind(user.0)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Active direct reports of a manager, by name.
pub async fn direct_reports(conn: &mut Conn, manager: UserId) -> Result<Vec<(UserId, String)>, sqlx::Error> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, display_name FROM users WHERE manager_id = $1 AND state = 'active' ORDER BY display_name",
    )
    .bind(manager.0)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id, n)| (UserId(id), n)).collect())
}

/// The roles of several users at once.
pub async fn roles_of_users(conn: &mut Conn, users: &[UserId]) -> Result<Vec<(UserId, Role)>, sqlx::Error> {
    let sql = format!("SELECT user_id, role FROM role_assignments WHERE user_id IN {}", ids_param(conn, 1));
    let rows: Vec<(i64, String)> =
        sqlx::query_as(&sql).bind(ids_json(users.iter().map(|u| u.0))).fetch_all(conn).await?;
    rows.into_iter().map(|(u, r)| Ok((UserId(u), super::parse_word("role", &r, Role::parse)?))).collect()
}

/// Take a role from someone in a catalog. False when they did not hold it.
pub async fn revoke_catalog_role(
    conn: &mut Conn,
    user: UserId,
    role: Role,
    catalog: CatalogId,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM role_assignments WHERE user_id = $1 AND role = $2 AND catalog_id = $3")
        .bind(user.0)
        .bind(role.as_str())
        .bind(catalog.0)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// How many active people hold `role` in the catalog.
pub async fn count_holders(conn: &mut Conn, role: Role, catalog: CatalogId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM role_assignments ra JOIN users u ON u.id = ra.user_id \
         WHERE ra.role = $1 AND ra.catalog_id = $2 AND u.state = 'active'",
    )
    .bind(role.as_str())
    .bind(catalog.0)
    .fetch_one(conn)
    .await
}

/// Active people whose email or name starts with `prefix` (`prefix` lowercase; names match
/// with their first letter as typed or capitalized), at most `limit`, by name. Each part reads
/// an index, never the whole table: on SQLite a range over `users_email_lower` and
/// `users_active_by_name` (bytes order, so the range is exact); on PostgreSQL a `LIKE 'x%'`
/// over their `text_pattern_ops` twins (migration 0013), whatever the collation.
pub async fn people_starting_with(conn: &mut Conn, prefix: &str, limit: i64) -> Result<Vec<User>, sqlx::Error> {
    let postgres = conn.backend_name() == "PostgreSQL";
    let (by_email, by_name) = if postgres {
        (
            format!(
                "SELECT {USER_COLUMNS} FROM users WHERE LOWER(email) LIKE $1 ESCAPE '!' AND state = 'active' \
                 ORDER BY LOWER(email) LIMIT $2"
            ),
            format!(
                "SELECT {USER_COLUMNS} FROM users WHERE state = 'active' AND display_name LIKE $1 ESCAPE '!' \
                 ORDER BY display_name, id LIMIT $2"
            ),
        )
    } else {
        (
            format!(
                "SELECT {USER_COLUMNS} FROM users WHERE LOWER(email) >= $1 AND LOWER(email) < $3 AND state = 'active' \
                 ORDER BY LOWER(email) LIMIT $2"
            ),
            format!(
                "SELECT {USER_COLUMNS} FROM users WHERE state = 'active' AND display_name >= $1 AND display_name < $3 \
                 ORDER BY display_name, id LIMIT $2"
            ),
        )
    };
    let mut capitalized = prefix.chars();
    let forms: Vec<String> = match capitalized.next() {
        Some(first) => {
            let upper_first: String = first.to_uppercase().chain(capitalized).collect();
            if upper_first == prefix {
                vec![upper_first]
            } else {
                vec![prefix.to_owned(), upper_first]
            }
        }
        None => return Ok(Vec::new()),
    };
    let mut found: Vec<User> = Vec::new();
    let searches = std::iter::once((by_email.as_str(), prefix.to_owned()))
        .chain(forms.into_iter().map(|form| (by_name.as_str(), form)));
    for (sql, start) in searches {
        let query = if postgres {
            let escaped = start.replace('!', "!!").replace('%', "!%").replace('_', "!_");
            sqlx::query(sql).bind(format!("{escaped}%")).bind(limit)
        } else {
            let Some(end) = prefix_end(&start) else { continue };
            sqlx::query(sql).bind(start).bind(limit).bind(end)
        };
        for row in &query.fetch_all(&mut *conn).await? {
            found.push(user_from_row(row)?);
        }
    }
    found.retain(|u| u.email.to_lowercase().starts_with(prefix) || u.display_name.to_lowercase().starts_with(prefix));
    found.sort_by(|a, b| (&a.display_name, a.id.0).cmp(&(&b.display_name, b.id.0)));
    found.dedup_by_key(|u| u.id);
    found.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(found)
}

/// The first text after every text starting with `prefix` (its last character moved one on).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    let last = chars.pop()?;
    let next = char::from_u32(u32::from(last) + 1)?;
    chars.push(next);
    Some(chars.into_iter().collect())
}

/// Take a global role from someone, first locking every holder's grant of it (PostgreSQL), so
/// two people taking the role from each other at once take turns and the count after sees
/// the other's removal. False when they did not hold it.
pub async fn revoke_global_role(conn: &mut Conn, user: UserId, role: Role) -> Result<bool, sqlx::Error> {
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT id FROM role_assignments WHERE role = $1 AND catalog_id IS NULL FOR UPDATE")
            .bind(role.as_str())
            .execute(&mut *conn)
            .await?;
    }
    let done = sqlx::query("DELETE FROM role_assignments WHERE user_id = $1 AND role = $2 AND catalog_id IS NULL")
        .bind(user.0)
        .bind(role.as_str())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// How many active people hold a global role (service accounts, which sign in nowhere, not
/// counted).
pub async fn count_global_holders(conn: &mut Conn, role: Role) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM role_assignments ra JOIN users u ON u.id = ra.user_id \
         WHERE ra.role = $1 AND ra.catalog_id IS NULL AND u.state = 'active' \
         AND (u.issuer IS NULL OR u.issuer <> $2)",
    )
    .bind(role.as_str())
    .bind(SERVICE_ACCOUNT_ISSUER)
    .fetch_one(conn)
    .await
}

/// Active people by name, after the person `after` (name, id), at most `limit` (the
/// `users_active_by_name` index, in its order).
pub async fn active_people_after(
    conn: &mut Conn,
    after: Option<(&str, i64)>,
    limit: i64,
) -> Result<Vec<User>, sqlx::Error> {
    let (name, id) = after.unwrap_or(("", 0));
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE state = 'active' \
         AND display_name >= $1 AND (display_name > $1 OR id > $2) ORDER BY display_name, id LIMIT $3"
    );
    let rows = sqlx::query(&sql).bind(name).bind(id).bind(limit).fetch_all(conn).await?;
    rows.iter().map(user_from_row).collect()
}

/// Directory groups by name with how many members each has, at most `limit`.
pub async fn group_summaries(conn: &mut Conn, limit: i64) -> Result<Vec<(GroupId, String, String, i64)>, sqlx::Error> {
    let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
        "SELECT g.id, g.name, g.source, (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) AS members \
         FROM directory_groups g ORDER BY g.name, g.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id, name, source, members)| (GroupId(id), name, source, members)).collect())
}

/// A connected organization with its sponsors (user, name, email, kind) and its guests' count.
pub struct OrgRow {
    pub id: OrgId,
    pub name: String,
    pub domain: String,
    pub state: String,
    pub sponsors: Vec<(UserId, String, String, String)>,
    pub guests: i64,
    /// Guests whose access ended are blocked from signing in after these days, removed these
    /// days after that (`None`: never).
    pub block_after_days: Option<i64>,
    pub remove_after_days: Option<i64>,
    /// Bumped by each change of its settings or its guests' lifecycle.
    pub version: i64,
}

/// Every connected organization by name, with its sponsors and how many guests it has.
pub async fn connected_orgs(conn: &mut Conn) -> Result<Vec<OrgRow>, sqlx::Error> {
    #[allow(clippy::type_complexity)]
    let orgs: Vec<(i64, String, String, String, i64, Option<i64>, Option<i64>, i64)> = sqlx::query_as(
        "SELECT o.id, o.name, o.domain, o.state, (SELECT COUNT(*) FROM users u WHERE u.connected_org_id = o.id), \
         o.block_after_days, o.remove_after_days, o.version FROM connected_orgs o ORDER BY o.name, o.id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let sponsors: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
        "SELECT s.org_id, u.id, u.display_name, u.email, s.kind FROM connected_org_sponsors s \
         JOIN users u ON u.id = s.user_id ORDER BY s.kind, u.display_name, u.id",
    )
    .fetch_all(conn)
    .await?;
    Ok(orgs
        .into_iter()
        .map(|(id, name, domain, state, guests, block_after_days, remove_after_days, version)| OrgRow {
            id: OrgId(id),
            name,
            domain,
            state,
            sponsors: sponsors
                .iter()
                .filter(|s| s.0 == id)
                .map(|(_, user, name, email, kind)| (UserId(*user), name.clone(), email.clone(), kind.clone()))
                .collect(),
            guests,
            block_after_days,
            remove_after_days,
            version,
        })
        .collect())
}

pub async fn insert_org(
    conn: &mut Conn,
    name: &str,
    domain: &str,
    state: &str,
    now: i64,
) -> Result<OrgId, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO connected_orgs (name, domain, state, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(name)
    .bind(domain)
    .bind(state)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(OrgId(id))
}

/// An organization as it is: (name, domain, state).
pub async fn org(conn: &mut Conn, id: OrgId) -> Result<Option<(String, String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT name, domain, state FROM connected_orgs WHERE id = $1").bind(id.0).fetch_optional(conn).await
}

/// The organization as it is, its row locked for this transaction on PostgreSQL.
pub async fn org_locked(conn: &mut Conn, id: OrgId) -> Result<Option<(String, String, String, i64)>, sqlx::Error> {
    let lock = if conn.backend_name() == "PostgreSQL" { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT name, domain, state, version FROM connected_orgs WHERE id = $1{lock}");
    sqlx::query_as(&sql).bind(id.0).fetch_optional(conn).await
}

/// How many people are guests of the organization.
pub async fn guests_of(conn: &mut Conn, org: OrgId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE connected_org_id = $1").bind(org.0).fetch_one(conn).await
}

/// How many members (not guests) have an address in `domain` or one of its subdomains (a
/// scan of the people: an administrator's rare change).
pub async fn members_in_domain(conn: &mut Conn, domain: &str) -> Result<i64, sqlx::Error> {
    let escaped = domain.replace('!', "!!").replace('%', "!%").replace('_', "!_");
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM users WHERE kind = 'member' \
         AND (LOWER(email) LIKE $1 ESCAPE '!' OR LOWER(email) LIKE $2 ESCAPE '!')",
    )
    .bind(format!("%@{escaped}"))
    .bind(format!("%.{escaped}"))
    .fetch_one(conn)
    .await
}

pub async fn update_org(
    conn: &mut Conn,
    id: OrgId,
    name: &str,
    domain: &str,
    state: &str,
    version: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE connected_orgs SET name = $1, domain = $2, state = $3, version = version + 1 \
         WHERE id = $4 AND version = $5",
    )
    .bind(name)
    .bind(domain)
    .bind(state)
    .bind(id.0)
    .bind(version)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Make someone a sponsor (`internal` or `external`). False when they already were one.
pub async fn add_sponsor(conn: &mut Conn, org: OrgId, user: UserId, kind: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO connected_org_sponsors (org_id, user_id, kind) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(org.0)
    .bind(user.0)
    .bind(kind)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn remove_sponsor(conn: &mut Conn, org: OrgId, user: UserId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM connected_org_sponsors WHERE org_id = $1 AND user_id = $2")
        .bind(org.0)
        .bind(user.0)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Active people by email (compared in lower case): (lower-case email, id).
pub async fn active_by_email(conn: &mut Conn, emails: &[String]) -> Result<Vec<(String, UserId)>, sqlx::Error> {
    if emails.is_empty() {
        return Ok(vec![]);
    }
    let list = if conn.backend_name() == "PostgreSQL" {
        "(SELECT value FROM json_array_elements_text($1::json))"
    } else {
        "(SELECT value FROM json_each($1))"
    };
    let sql = format!("SELECT LOWER(email), id FROM users WHERE state = 'active' AND LOWER(email) IN {list}");
    let json = serde_json::to_string(emails).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let rows: Vec<(String, i64)> = sqlx::query_as(&sql).bind(json).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(e, id)| (e, UserId(id))).collect())
}

/// The sign-in identity a service account holds instead of a provider's: no provider signs
/// anyone in as it (the pair is unique), and an account with an identity is never linked by
/// email.
pub const SERVICE_ACCOUNT_ISSUER: &str = "urn:quartermaster:service-account";

/// A service account: an active member of the directory that signs in nowhere and acts only
/// through the API tokens an administrator makes for it. `purpose` is kept as its job title.
pub async fn insert_service_account(
    conn: &mut Conn,
    email: &str,
    name: &str,
    purpose: &str,
    now: i64,
) -> Result<UserId, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, display_name, department, job_title, kind, state, issuer, subject, \
         created_at, updated_at) VALUES ($1, $2, 'Service account', $3, 'member', 'active', $4, $1, $5, $5) \
         RETURNING id",
    )
    .bind(email)
    .bind(name)
    .bind(purpose)
    .bind(SERVICE_ACCOUNT_ISSUER)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(UserId(id))
}

/// Whether `user` is a service account.
pub async fn is_service_account(conn: &mut Conn, user: UserId) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1 AND issuer = $2")
        .bind(user.0)
        .bind(SERVICE_ACCOUNT_ISSUER)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

/// The service accounts, active or not, by name (through `users_oidc_identity`).
pub async fn service_accounts(conn: &mut Conn, limit: i64) -> Result<Vec<User>, sqlx::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE issuer = $1 ORDER BY display_name, id LIMIT $2");
    let rows = sqlx::query(&sql).bind(SERVICE_ACCOUNT_ISSUER).bind(limit).fetch_all(conn).await?;
    rows.iter().map(user_from_row).collect()
}
