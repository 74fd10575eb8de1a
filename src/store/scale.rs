//! The SQL of `seed-scale` (the generator is `crate::scale`): the emptiness check, the
//! bulk-insert statement text, the load settings, the id sequences, and the counts and
//! look-ups of the summary.

use sqlx::any::AnyArguments;
use sqlx::{query_scalar_with, query_with, Executor};

use crate::store::{Backend, Conn, Db};

/// One multi-row `INSERT`: its text (shared by every full batch of a table, so the connection
/// prepares it once) and its values.
pub struct Batch {
    pub sql: std::sync::Arc<str>,
    pub args: AnyArguments<'static>,
    pub rows: usize,
}

/// The most bound parameters one statement may carry: SQLite's limit (`SQLITE_MAX_VARIABLE_NUMBER`,
/// 32766 since 3.32) and PostgreSQL's (65535, a 16-bit count in the protocol).
pub fn parameter_limit(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 32_766,
        Backend::Postgres => 65_535,
    }
}

/// `INSERT INTO table (columns) VALUES (…), (…)` for `rows` rows.
///
/// SQLite gets anonymous `?` placeholders: binding numbered ones (`$n`) costs a scan of every
/// parameter name per parameter in SQLite (`sqlite3_bind_parameter_name`), quadratic in a
/// statement of thousands of values. PostgreSQL needs `$n`.
///
/// On SQLite the statement is `INSERT OR ROLLBACK`: a violated constraint still fails the load
/// (and rolls its transaction back), but SQLite need not keep a statement journal to undo just
/// the one statement — a copy of every page each statement touches, the largest cost of a
/// multi-row insert (together with the foreign-key checks, see [`begin_load`]).
pub fn insert_sql(backend: Backend, table: &str, columns: &[&str], rows: usize) -> String {
    let n = columns.len();
    let verb = match backend {
        Backend::Sqlite => "INSERT OR ROLLBACK INTO",
        Backend::Postgres => "INSERT INTO",
    };
    let mut sql = format!("{verb} {table} ({}) VALUES ", columns.join(", "));
    sql.reserve(rows * n * 8);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..n {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(r * n + c + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// Run one batch.
pub async fn insert(conn: &mut Conn, batch: Batch) -> Result<u64, sqlx::Error> {
    Ok(query_with(&batch.sql, batch.args).execute(conn).await?.rows_affected())
}

/// The tables `seed-scale` fills, parents before children, and the ones holding an id column
/// (whose PostgreSQL identity sequence must move past the ids written explicitly).
pub const TABLES: &[(&str, bool)] = &[
    ("users", true),
    ("directory_groups", true),
    ("group_members", false),
    ("catalogs", true),
    ("role_assignments", true),
    ("resource_systems", true),
    ("resources", true),
    ("catalog_resources", false),
    ("resource_roles", true),
    ("access_packages", true),
    ("package_resource_roles", false),
    ("package_incompatible_packages", false),
    ("policies", true),
    ("policy_requestors", false),
    ("requests", true),
    ("request_approvers", false),
    ("decisions", true),
    ("assignments", true),
    ("grants", true),
    ("builtin_memberships", false),
    ("outbox", true),
    ("audit_events", true),
];

/// The first table (of those seed-scale fills, and the audit trail it starts from genesis)
/// that already holds rows, with its count; `None` for an empty database.
pub async fn first_non_empty(conn: &mut Conn) -> Result<Option<(&'static str, i64)>, sqlx::Error> {
    for table in ["users", "catalogs", "access_packages", "requests", "assignments", "audit_events"] {
        let n = count(conn, table).await?;
        if n > 0 {
            return Ok(Some((table, n)));
        }
    }
    Ok(None)
}

/// Rows in one table (a name from [`TABLES`], never user input).
pub async fn count(conn: &mut Conn, table: &str) -> Result<i64, sqlx::Error> {
    query_scalar_with(&format!("SELECT COUNT(*) FROM {table}"), AnyArguments::default()).fetch_one(conn).await
}

/// The load's own connection: the pool's settings, without statement logging (index builds
/// and large inserts would each be reported as slow statements, with their text), and closed
/// afterwards, so nothing of the load's settings or its prepared statements stays in the pool.
pub async fn load_connection(db: &Db) -> Result<Conn, sqlx::Error> {
    use sqlx::ConnectOptions;
    let options = (*db.pool().connect_options()).clone().disable_statement_logging();
    let mut conn = options.connect().await?;
    if db.backend() == Backend::Sqlite {
        conn.execute("PRAGMA busy_timeout = 15000").await?;
    }
    Ok(conn)
}

/// Settings for the load.
///
/// SQLite: no fsync until the end (`synchronous = OFF`: a crash of the machine mid-load can
/// lose or damage what was written so far — the database was empty and the load is simply run
/// again — while a crash of the process cannot), a page cache of up to 1 GiB so the tables and
/// indexes being filled stay in memory, and no foreign-key checks (each would also make every
/// statement keep a statement journal).
///
/// PostgreSQL: commits do not wait for the WAL flush (`synchronous_commit = off`: a crash loses
/// the last commits, never consistency), and where the role may (a superuser), no foreign-key
/// triggers (`session_replication_role = replica`, this session only); otherwise they run.
///
/// Unique, not-null and check constraints are enforced either way. The rows come from one plan
/// for both databases, and the tests check every reference of a seeded SQLite database with
/// `PRAGMA foreign_key_check`.
pub async fn begin_load(conn: &mut Conn, backend: Backend) -> Result<(), sqlx::Error> {
    match backend {
        Backend::Sqlite => {
            conn.execute(
                "PRAGMA foreign_keys = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -1048576; \
                 PRAGMA temp_store = MEMORY;",
            )
            .await?;
        }
        Backend::Postgres => {
            conn.execute("SET synchronous_commit = off").await?;
            // Refused to a role that is not a superuser: the checks then simply run.
            let _ = conn.execute("SET session_replication_role = replica").await;
        }
    }
    Ok(())
}

/// Everything on disk (SQLite), or (PostgreSQL) the identity sequences past the ids written
/// and fresh planner statistics.
///
/// SQLite is not `ANALYZE`d: the application never runs it, so the benchmark sees the plans
/// a real deployment gets. (PostgreSQL's autovacuum would analyze the new tables soon anyway;
/// doing it now makes the first benchmark run like the next.)
pub async fn finish_load(conn: &mut Conn, backend: Backend) -> Result<(), sqlx::Error> {
    // The catalog changed: a running instance's kept copy is out of date (on PostgreSQL the
    // load ran with triggers off, so they did not count it).
    conn.execute("UPDATE catalog_generation SET generation = generation + 1").await?;
    match backend {
        Backend::Sqlite => {
            // A checkpoint under `synchronous = NORMAL` syncs the database file.
            conn.execute("PRAGMA synchronous = NORMAL").await?;
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
        }
        Backend::Postgres => {
            for (table, has_id) in TABLES {
                if *has_id {
                    let sql = format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                         COALESCE((SELECT MAX(id) FROM {table}), 1), \
                         (SELECT MAX(id) FROM {table}) IS NOT NULL)"
                    );
                    conn.execute(sql.as_str()).await?;
                }
            }
            for (table, _) in TABLES {
                conn.execute(format!("ANALYZE {table}").as_str()).await?;
            }
        }
    }
    Ok(())
}

/// A secondary index as it was created: its name and its own `CREATE INDEX` statement.
#[derive(Clone, Debug)]
pub struct Index {
    pub table: String,
    pub name: String,
    pub sql: String,
}

/// The indexes of these tables made by `CREATE INDEX` (not those behind a primary key or a
/// `UNIQUE` constraint, which stay), with the statement that made each, read from the
/// database's own catalog — so re-creating them gives back exactly the migrated schema.
pub async fn secondary_indexes(conn: &mut Conn, backend: Backend, tables: &[&str]) -> Result<Vec<Index>, sqlx::Error> {
    use sqlx::{Arguments, Row};
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT tbl_name AS t, name AS n, sql AS s FROM sqlite_master \
             WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT i.tablename::text AS t, i.indexname::text AS n, i.indexdef AS s FROM pg_indexes i \
             WHERE i.schemaname = current_schema() AND i.tablename = $1 AND NOT EXISTS ( \
               SELECT 1 FROM pg_constraint c JOIN pg_class k ON k.oid = c.conindid \
               JOIN pg_namespace ns ON ns.oid = k.relnamespace \
               WHERE k.relname = i.indexname AND ns.nspname = i.schemaname) ORDER BY i.indexname"
        }
    };
    let mut out = Vec::new();
    for table in tables {
        let mut a = AnyArguments::default();
        let _ = a.add((*table).to_owned());
        for row in query_with(sql, a).fetch_all(&mut *conn).await? {
            out.push(Index { table: row.try_get("t")?, name: row.try_get("n")?, sql: row.try_get("s")? });
        }
    }
    Ok(out)
}

pub async fn drop_index(conn: &mut Conn, index: &Index) -> Result<(), sqlx::Error> {
    conn.execute(format!("DROP INDEX {}", index.name).as_str()).await?;
    Ok(())
}

pub async fn create_index(conn: &mut Conn, index: &Index) -> Result<(), sqlx::Error> {
    conn.execute(index.sql.as_str()).await?;
    Ok(())
}

/// Sorting for index builds: on PostgreSQL more memory than the default 64 MB; on SQLite in
/// temporary files (the load keeps temporary structures in memory; a sort of ten million keys
/// would hold them all).
pub async fn begin_index_builds(conn: &mut Conn, backend: Backend) -> Result<(), sqlx::Error> {
    match backend {
        Backend::Sqlite => conn.execute("PRAGMA temp_store = FILE").await?,
        Backend::Postgres => conn.execute("SET maintenance_work_mem = '512MB'").await?,
    };
    Ok(())
}

fn args(values: &[i64]) -> AnyArguments<'static> {
    use sqlx::Arguments;
    let mut args = AnyArguments::default();
    for v in values {
        // Encoding an i64 cannot fail.
        let _ = args.add(*v);
    }
    args
}

/// A person's assignments: all of them, and the live ones.
pub async fn assignments_of_user(conn: &mut Conn, user: i64) -> Result<(i64, i64), sqlx::Error> {
    two_counts(
        conn,
        "SELECT COUNT(*) FROM assignments WHERE user_id = $1",
        "SELECT COUNT(*) FROM assignments WHERE user_id = $1 \
         AND state IN ('delivering', 'delivered', 'partially_delivered', 'delivery_failed')",
        user,
    )
    .await
}

/// A package's assignments: all of them, and the live ones.
pub async fn assignments_of_package(conn: &mut Conn, package: i64) -> Result<(i64, i64), sqlx::Error> {
    two_counts(
        conn,
        "SELECT COUNT(*) FROM assignments WHERE package_id = $1",
        "SELECT COUNT(*) FROM assignments WHERE package_id = $1 \
         AND state IN ('delivering', 'delivered', 'partially_delivered', 'delivery_failed')",
        package,
    )
    .await
}

async fn two_counts(conn: &mut Conn, all: &str, live: &str, id: i64) -> Result<(i64, i64), sqlx::Error> {
    let a: i64 = query_scalar_with(all, args(&[id])).fetch_one(&mut *conn).await?;
    let b: i64 = query_scalar_with(live, args(&[id])).fetch_one(conn).await?;
    Ok((a, b))
}

/// Requests waiting for this approver now: active inbox rows of pending requests at the
/// row's stage (the inbox's own definition, checked against the request itself).
pub async fn pending_approvals_of(conn: &mut Conn, user: i64) -> Result<i64, sqlx::Error> {
    query_scalar_with(
        "SELECT COUNT(*) FROM request_approvers a JOIN requests r ON r.id = a.request_id \
         WHERE a.user_id = $1 AND a.active = 1 AND r.state = 'pending_approval' AND r.current_stage = a.stage",
        args(&[user]),
    )
    .fetch_one(conn)
    .await
}

/// Audit events about one object.
pub async fn audit_events_of(conn: &mut Conn, object_type: &str, object_id: i64) -> Result<i64, sqlx::Error> {
    use sqlx::Arguments;
    let mut a = AnyArguments::default();
    let _ = a.add(object_type.to_owned());
    let _ = a.add(object_id);
    query_scalar_with("SELECT COUNT(*) FROM audit_events WHERE object_type = $1 AND object_id = $2", a)
        .fetch_one(conn)
        .await
}

/// Requests in a state.
pub async fn requests_in_state(conn: &mut Conn, state: &str) -> Result<i64, sqlx::Error> {
    use sqlx::Arguments;
    let mut a = AnyArguments::default();
    let _ = a.add(state.to_owned());
    query_scalar_with("SELECT COUNT(*) FROM requests WHERE state = $1", a).fetch_one(conn).await
}
