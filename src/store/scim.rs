//! SCIM resources pushed by the identity provider: a document per person or group, beside
//! the directory row it describes (`scim_resources`).

use sqlx::Row;

use super::Conn;

/// One stored resource.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredResource {
    /// The person's or group's id: the SCIM id.
    pub object_id: i64,
    pub document: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

fn row(r: sqlx::any::AnyRow) -> Result<StoredResource, sqlx::Error> {
    Ok(StoredResource {
        object_id: r.try_get("object_id")?,
        document: r.try_get("document")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const COLUMNS: &str = "object_id, document, version, created_at, updated_at";

pub async fn get(conn: &mut Conn, kind: &str, object_id: i64) -> Result<Option<StoredResource>, sqlx::Error> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM scim_resources WHERE kind = $1 AND object_id = $2"))
        .bind(kind)
        .bind(object_id)
        .fetch_optional(conn)
        .await?
        .map(row)
        .transpose()
}

/// The object whose name (userName, a group's displayName) is `name_key` (lower case).
pub async fn by_name(conn: &mut Conn, kind: &str, name_key: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT object_id FROM scim_resources WHERE kind = $1 AND name_key = $2")
        .bind(kind)
        .bind(name_key)
        .fetch_optional(conn)
        .await
}

/// Resources of `kind` after `after` (by id), at most `limit`; with `name_key` or
/// `external_id`, only the one matching (each through its index).
pub async fn page(
    conn: &mut Conn,
    kind: &str,
    narrow: Narrow<'_>,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredResource>, sqlx::Error> {
    let (clause, value) = narrow.clause();
    let sql = format!(
        "SELECT {COLUMNS} FROM scim_resources WHERE kind = $1 AND object_id > $2 {clause} ORDER BY object_id LIMIT $3"
    );
    let mut q = sqlx::query(&sql).bind(kind).bind(after).bind(limit);
    if let Some(value) = value {
        q = q.bind(value);
    }
    q.fetch_all(conn).await?.into_iter().map(row).collect()
}

/// What a list is narrowed to in SQL before any filter is evaluated.
#[derive(Clone, Copy, Debug)]
pub enum Narrow<'a> {
    All,
    /// The lower-cased userName (displayName).
    Name(&'a str),
    ExternalId(&'a str),
}

impl Narrow<'_> {
    fn clause(&self) -> (&'static str, Option<&str>) {
        match self {
            Narrow::All => ("", None),
            Narrow::Name(n) => ("AND name_key = $4", Some(n)),
            Narrow::ExternalId(e) => ("AND external_id = $4", Some(e)),
        }
    }
}

pub async fn insert(
    conn: &mut Conn,
    kind: &str,
    object_id: i64,
    (name_key, external_id): (&str, Option<&str>),
    document: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO scim_resources (kind, object_id, name_key, external_id, document, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
    )
    .bind(kind)
    .bind(object_id)
    .bind(name_key)
    .bind(external_id)
    .bind(document)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Write a new document over version `version`; false when it is no longer that version.
pub async fn update(
    conn: &mut Conn,
    kind: &str,
    object_id: i64,
    version: i64,
    (name_key, external_id): (&str, Option<&str>),
    document: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE scim_resources SET name_key = $1, external_id = $2, document = $3, version = version + 1, \
         updated_at = $4 WHERE kind = $5 AND object_id = $6 AND version = $7",
    )
    .bind(name_key)
    .bind(external_id)
    .bind(document)
    .bind(now)
    .bind(kind)
    .bind(object_id)
    .bind(version)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Forget the resource at `version`; false when it is gone or changed meanwhile.
pub async fn delete(conn: &mut Conn, kind: &str, object_id: i64, version: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM scim_resources WHERE kind = $1 AND object_id = $2 AND version = $3")
        .bind(kind)
        .bind(object_id)
        .bind(version)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a person (or group) is described by a SCIM resource already.
pub async fn linked(conn: &mut Conn, kind: &str, object_id: i64) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scim_resources WHERE kind = $1 AND object_id = $2")
        .bind(kind)
        .bind(object_id)
        .fetch_one(conn)
        .await?;
    Ok(n > 0)
}

/// A person's directory fields as the provider gives them. `department_since` moves when
/// the department changes from one that was set.
pub async fn update_person(conn: &mut Conn, user: i64, p: &PersonFields<'_>, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET email = $1, display_name = $2,
            department_since = CASE WHEN $3 <> department AND department <> '' THEN $6 ELSE department_since END,
            department = $3, job_title = $4, manager_id = $5, updated_at = $6
         WHERE id = $7",
    )
    .bind(p.email.trim().to_lowercase())
    .bind(p.display_name)
    .bind(p.department)
    .bind(p.job_title)
    .bind(p.manager)
    .bind(now)
    .bind(user)
    .execute(conn)
    .await?;
    Ok(())
}

/// What a person's SCIM document says of their directory row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PersonFields<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub department: &'a str,
    pub job_title: &'a str,
    pub manager: Option<i64>,
}

/// A group's members made exactly `members`: (added, removed).
pub async fn set_members(conn: &mut Conn, group: i64, members: &[i64]) -> Result<(Vec<i64>, Vec<i64>), sqlx::Error> {
    let now: Vec<i64> = sqlx::query_scalar("SELECT user_id FROM group_members WHERE group_id = $1")
        .bind(group)
        .fetch_all(&mut *conn)
        .await?;
    let removed: Vec<i64> = now.iter().copied().filter(|u| !members.contains(u)).collect();
    let added: Vec<i64> = members.iter().copied().filter(|u| !now.contains(u)).collect();
    for user in &removed {
        sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group)
            .bind(user)
            .execute(&mut *conn)
            .await?;
    }
    for user in &added {
        sqlx::query("INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(group)
            .bind(user)
            .execute(&mut *conn)
            .await?;
    }
    Ok((added, removed))
}

/// The people among `ids` that exist.
pub async fn existing_people(conn: &mut Conn, ids: &[i64]) -> Result<Vec<i64>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT id FROM users WHERE id IN {}", super::ids_param(conn, 1));
    sqlx::query_scalar(&sql).bind(super::ids_json(ids.iter().copied())).fetch_all(conn).await
}

/// A group by name: its id and source.
pub async fn group_by_name(conn: &mut Conn, name: &str) -> Result<Option<(i64, String)>, sqlx::Error> {
    let row =
        sqlx::query("SELECT id, source FROM directory_groups WHERE name = $1").bind(name).fetch_optional(conn).await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("source")?))).transpose()
}

pub async fn insert_group(conn: &mut Conn, name: &str, now: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO directory_groups (name, source, created_at) VALUES ($1, 'scim', $2) RETURNING id")
        .bind(name)
        .bind(now)
        .fetch_one(conn)
        .await
}

pub async fn rename_group(conn: &mut Conn, group: i64, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE directory_groups SET name = $1 WHERE id = $2").bind(name).bind(group).execute(conn).await?;
    Ok(())
}

/// Hold a SCIM group's resource row until the transaction ends (PostgreSQL; SQLite's one
/// writer already takes turns).
pub async fn lock_group(conn: &mut Conn, group: i64) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT id FROM scim_resources WHERE kind = 'Group' AND object_id = $1 FOR UPDATE")
        .bind(group)
        .fetch_optional(conn)
        .await?;
    Ok(())
}
