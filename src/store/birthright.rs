//! Automatic assignment: what rules read about people, and who holds a package and how.

use std::collections::HashMap;

use super::{Conn, RowExt};
use crate::domain::ids::{AssignmentId, GroupId, PolicyId, UserId};
use crate::domain::model::User;
use crate::domain::rule::PersonFacts;

/// Active people (or only `one`), by id, with their name and what rules read about them.
pub async fn people(conn: &mut Conn, one: Option<UserId>) -> Result<Vec<(UserId, String, PersonFacts)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT u.id, u.display_name, u.email, u.department, u.job_title, u.kind, COALESCE(o.name, '') AS org \
         FROM users u LEFT JOIN connected_orgs o ON o.id = u.connected_org_id \
         WHERE u.state = 'active' AND ($1 IS NULL OR u.id = $1) ORDER BY u.id",
    )
    .bind(one.map(|u| u.0))
    .fetch_all(&mut *conn)
    .await?;
    let groups: Vec<(i64, String)> = sqlx::query_as(
        "SELECT m.user_id, g.name FROM group_members m JOIN directory_groups g ON g.id = m.group_id \
         JOIN users u ON u.id = m.user_id WHERE u.state = 'active' AND ($1 IS NULL OR u.id = $1)",
    )
    .bind(one.map(|u| u.0))
    .fetch_all(conn)
    .await?;
    let mut by_person: HashMap<i64, Vec<String>> = HashMap::new();
    for (user, group) in groups {
        by_person.entry(user).or_default().push(group);
    }
    rows.iter()
        .map(|r| {
            let id = r.int("id")?;
            let mut groups = by_person.remove(&id).unwrap_or_default();
            groups.sort();
            Ok((
                UserId(id),
                r.text("display_name")?,
                PersonFacts {
                    email: r.text("email")?,
                    department: r.text("department")?,
                    job_title: r.text("job_title")?,
                    kind: r.text("kind")?,
                    org: r.text("org")?,
                    groups,
                },
            ))
        })
        .collect()
}

/// A live assignment of a package: whose, under which policy, and whether a rule made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub assignment: AssignmentId,
    pub user: UserId,
    pub policy: PolicyId,
    pub by_rule: bool,
}

/// The live assignments of `package` (of one person, or everyone's).
pub async fn held(
    conn: &mut Conn,
    package: crate::domain::ids::PackageId,
    one: Option<UserId>,
) -> Result<Vec<Held>, sqlx::Error> {
    let live = super::assignments::LIVE;
    let sql = format!(
        "SELECT a.id, a.user_id, a.policy_id, COALESCE(r.kind, '') AS kind FROM assignments a \
         LEFT JOIN requests r ON r.id = a.request_id \
         WHERE a.package_id = $1 AND a.state IN {live} AND ($2 IS NULL OR a.user_id = $2) ORDER BY a.id"
    );
    let rows = sqlx::query(&sql).bind(package.0).bind(one.map(|u| u.0)).fetch_all(conn).await?;
    rows.iter()
        .map(|r| {
            Ok(Held {
                assignment: AssignmentId(r.int("id")?),
                user: UserId(r.int("user_id")?),
                policy: PolicyId(r.int("policy_id")?),
                by_rule: r.text("kind")? == "system_add",
            })
        })
        .collect()
}

/// Every active person with the groups they are in and whether their connected organization
/// is configured: what deciding who may request reads.
pub async fn requestors(conn: &mut Conn) -> Result<Vec<(User, Vec<GroupId>, bool)>, sqlx::Error> {
    let users = super::directory::active_people(conn).await?;
    // Each membership of an active person, and (as group 0) each active person of a
    // configured organization: one statement.
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT m.user_id, m.group_id FROM group_members m JOIN users u ON u.id = m.user_id WHERE u.state = 'active' \
         UNION ALL SELECT u.id, 0 FROM users u JOIN connected_orgs o ON o.id = u.connected_org_id \
         WHERE u.state = 'active' AND o.state = 'configured'",
    )
    .fetch_all(conn)
    .await?;
    let mut groups: HashMap<i64, Vec<GroupId>> = HashMap::new();
    let mut configured = std::collections::HashSet::new();
    for (user, group) in rows {
        if group == 0 {
            configured.insert(user);
        } else {
            groups.entry(user).or_default().push(GroupId(group));
        }
    }
    Ok(users
        .into_iter()
        .map(|u| {
            let mine = groups.remove(&u.id.0).unwrap_or_default();
            let org = configured.contains(&u.id.0);
            (u, mine, org)
        })
        .collect())
}
