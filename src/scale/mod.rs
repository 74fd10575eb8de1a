//! `quartermaster seed-scale`: an empty database filled with a large, realistic organisation
//! for benchmarks, in minutes, through bulk inserts.
//!
//! At the default size: 100,000 people in a management tree (about eight reports per manager)
//! across twelve departments, 500 groups, 50 catalogs with their owners and managers, 2,000
//! packages with policies of six shapes (no approval; the manager; the manager then the catalog
//! owners; an approver group, escalating to the owners; the manager then an approver group; a
//! named approver), 1,000,000 assignments with their grants and the requests they came from,
//! 20,000 pending requests (the twenty members of the four approver groups each with a thousand
//! or more waiting), requests denied, canceled and expired, and 10,000,000 audit events in one
//! hash chain. `--scale` multiplies every count (`--people` sets the people alone); `--seed`
//! picks the organisation.
//!
//! How: the whole organisation is planned in memory first (`plan`), deterministic for a seed
//! and a time; then each table is written in turn (`rows`, `audit`: the chain hashed with the
//! application's own `chain_hash`) as multi-row `INSERT`s with explicit ids, in transactions of
//! half a million rows, on one connection of its own (`store`). The generator runs on a
//! blocking thread and hands batches to the writer, so building rows (and hashing the chain)
//! overlaps with the database's work. The six big tables are written without their secondary
//! indexes, which are built afterwards from their own definitions; the unique ones then check
//! every row, as the inserts would have.

mod audit;
mod plan;
mod rows;
use crate::store::scale as store;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use plan::Plan;
pub use plan::Sizes;

use crate::store::{Backend, Conn, Db};

/// What to build.
#[derive(Clone, Debug)]
pub struct ScaleOptions {
    /// Every count times this (1.0: 100,000 people, 1,000,000 assignments, …).
    pub scale: f64,
    /// The number of people, whatever the scale.
    pub people: Option<u32>,
    /// The same seed (and time) gives the same organisation.
    pub seed: u64,
    /// A progress line per phase on stderr.
    pub progress: bool,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        Self { scale: 1.0, people: None, seed: 1, progress: true }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// The database already holds data: seed-scale only fills an empty one.
    #[error("{0}")]
    NotEmpty(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The writer stopped (its error is reported instead).
    #[error("the load stopped")]
    Aborted,
}

/// One phase: what it wrote and how fast.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    pub phase: &'static str,
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Person {
    pub id: i64,
    pub email: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PersonWithAccess {
    #[serde(flatten)]
    pub person: Person,
    pub assignments: i64,
    pub live_assignments: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Approver {
    #[serde(flatten)]
    pub person: Person,
    /// Requests waiting for their decision now (active inbox rows at the request's stage).
    pub pending: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PackageWithAccess {
    pub id: i64,
    pub name: String,
    pub catalog_id: i64,
    pub assignments: i64,
    pub live_assignments: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditObject {
    pub object_type: &'static str,
    pub object_id: i64,
    pub events: i64,
}

/// Ids a benchmark needs, each checked against the database after the load.
#[derive(Clone, Debug, Serialize)]
pub struct HandyIds {
    /// A global administrator.
    pub administrator: Person,
    /// A person with about fifty assignments (My Access).
    pub heavy_person: PersonWithAccess,
    /// A person with a typical number of assignments.
    pub typical_person: PersonWithAccess,
    /// The approver with the most pending decisions (Approvals).
    pub busiest_approver: Approver,
    /// Every approver-group member, busiest first.
    pub busy_approvers: Vec<Approver>,
    /// The package with the most assignments (its admin assignments list).
    pub big_package: PackageWithAccess,
    /// An owner of the big package's catalog (sees its assignments).
    pub big_package_catalog_owner: Person,
    /// An object with many audit events (the audit log filtered to one object).
    pub audit_object: AuditObject,
}

/// What was written, how long it took, and where to point a benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleSummary {
    pub backend: &'static str,
    pub seed: u64,
    pub scale: f64,
    /// "Now" of the organisation (Unix ms): end dates and due times are relative to it.
    pub now: i64,
    pub sizes: Sizes,
    /// Rows per table, counted after the load; also `requests.pending_approval`.
    pub counts: BTreeMap<String, i64>,
    pub phases: Vec<PhaseReport>,
    pub elapsed_seconds: f64,
    /// The audit chain's head (`ID:HASH`, as `quartermaster verify` prints it).
    pub audit_head: String,
    pub ids: HandyIds,
}

impl ScaleSummary {
    /// The summary as JSON, for scripts.
    pub fn to_json(&self) -> Result<String, ScaleError> {
        serde_json::to_string_pretty(self).map_err(|e| ScaleError::Invalid(e.to_string()))
    }
}

impl std::fmt::Display for ScaleSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed-scale on {} (scale {}, seed {}): {:.1} s",
            self.backend, self.scale, self.seed, self.elapsed_seconds
        )?;
        writeln!(f, "\nphase                      rows     seconds      rows/s")?;
        for p in &self.phases {
            writeln!(f, "{:<18} {:>12} {:>11.1} {:>11.0}", p.phase, p.rows, p.seconds, p.rows_per_second)?;
        }
        writeln!(f, "\ntable                               rows")?;
        for (table, n) in &self.counts {
            writeln!(f, "{table:<28} {n:>12}")?;
        }
        let ids = &self.ids;
        writeln!(f, "\nfor benchmarks")?;
        writeln!(f, "  administrator             {} ({})", ids.administrator.id, ids.administrator.email)?;
        writeln!(
            f,
            "  person with many          {} ({}): {} assignments, {} live",
            ids.heavy_person.person.id,
            ids.heavy_person.person.email,
            ids.heavy_person.assignments,
            ids.heavy_person.live_assignments
        )?;
        writeln!(
            f,
            "  typical person            {} ({}): {} assignments",
            ids.typical_person.person.id, ids.typical_person.person.email, ids.typical_person.assignments
        )?;
        writeln!(
            f,
            "  busiest approver          {} ({}): {} pending",
            ids.busiest_approver.person.id, ids.busiest_approver.person.email, ids.busiest_approver.pending
        )?;
        let least = ids.busy_approvers.iter().map(|a| a.pending).min().unwrap_or(0);
        writeln!(
            f,
            "  approver-group members    {} people, each with {least} or more pending",
            ids.busy_approvers.len()
        )?;
        writeln!(
            f,
            "  big package               {} ({}): {} assignments, {} live",
            ids.big_package.id, ids.big_package.name, ids.big_package.assignments, ids.big_package.live_assignments
        )?;
        writeln!(
            f,
            "  its catalog's owner       {} ({})",
            ids.big_package_catalog_owner.id, ids.big_package_catalog_owner.email
        )?;
        writeln!(
            f,
            "  audit object              {} {}: {} events",
            ids.audit_object.object_type, ids.audit_object.object_id, ids.audit_object.events
        )?;
        write!(f, "  audit head                {}", self.audit_head)
    }
}

/// A progress line for one phase on stderr: in place on a terminal, every few seconds
/// otherwise.
struct Progress {
    phase: &'static str,
    total: u64,
    started: Instant,
    last: Instant,
    show: bool,
    tty: bool,
}

impl Progress {
    fn new(phase: &'static str, total: u64, show: bool) -> Self {
        let now = Instant::now();
        let p = Self { phase, total, started: now, last: now, show, tty: std::io::stderr().is_terminal() };
        if p.tty {
            p.print(0, false);
        }
        p
    }

    fn print(&self, done: u64, last: bool) {
        if !self.show {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let pct = if self.total > 0 { 100.0 * done as f64 / self.total as f64 } else { 100.0 };
        let width = 24;
        let filled = ((pct / 100.0) * width as f64).round().clamp(0.0, width as f64) as usize;
        let bar = format!("{}{}", "#".repeat(filled), "-".repeat(width - filled));
        let line = format!(
            "{:<18} [{bar}] {:>11}/{:<11} {:>5.1}% {:>10.0} rows/s {:>7.1}s",
            self.phase, done, self.total, pct, rate, secs
        );
        if self.tty {
            eprint!("\r{line}{}", if last { "\n" } else { "" });
        } else {
            eprintln!("{line}");
        }
    }

    fn update(&mut self, done: u64) {
        let every = if self.tty { Duration::from_millis(200) } else { Duration::from_secs(5) };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.print(done, false);
        }
    }

    fn finish(mut self, done: u64) -> PhaseReport {
        self.total = self.total.max(done);
        self.print(done, true);
        let seconds = self.started.elapsed().as_secs_f64();
        PhaseReport {
            phase: self.phase,
            rows: done,
            seconds,
            rows_per_second: if seconds > 0.0 { done as f64 / seconds } else { 0.0 },
        }
    }
}

/// Rows per transaction: large enough to amortize the commit, small enough to keep SQLite's
/// write-ahead log (and PostgreSQL's transaction) at a few hundred megabytes.
const COMMIT_EVERY: u64 = 500_000;

/// Run one phase: the generator on a blocking thread, its batches written here.
async fn phase<T, F>(
    conn: &mut Conn,
    backend: Backend,
    plan: &Arc<Plan>,
    name: &'static str,
    total: u64,
    show: bool,
    generate: F,
) -> Result<(PhaseReport, T), ScaleError>
where
    T: Send + 'static,
    F: FnOnce(&Plan, &rows::Sink) -> Result<T, ScaleError> + Send + 'static,
{
    use sqlx::Connection;
    let (tx, mut rx) = mpsc::channel::<store::Batch>(4);
    let sink = rows::Sink::new(tx, backend);
    let shared = Arc::clone(plan);
    let producer = tokio::task::spawn_blocking(move || generate(&shared, &sink));
    let mut progress = Progress::new(name, total, show);
    let mut written = 0u64;
    let mut uncommitted = 0u64;
    let mut transaction = conn.begin().await?;
    while let Some(batch) = rx.recv().await {
        let rows = batch.rows as u64;
        store::insert(&mut transaction, batch).await?;
        written += rows;
        uncommitted += rows;
        progress.update(written);
        if uncommitted >= COMMIT_EVERY {
            transaction.commit().await?;
            transaction = conn.begin().await?;
            uncommitted = 0;
        }
    }
    transaction.commit().await?;
    let out = producer.await.map_err(|e| ScaleError::Invalid(format!("the generator stopped: {e}")))??;
    Ok((progress.finish(written), out))
}

/// Fill an empty database. Refused (nothing written) when it holds people or any of the data
/// seed-scale writes.
pub async fn seed_scale(db: &Db, options: &ScaleOptions, now: DateTime<Utc>) -> Result<ScaleSummary, ScaleError> {
    let mut conn = store::load_connection(db).await?;
    let summary = seed_on(&mut conn, db.backend(), options, now).await;
    if let Err(e) = sqlx::Connection::close(conn).await {
        tracing::warn!(error = %e, "closing the load's connection failed");
    }
    summary
}

async fn seed_on(
    conn: &mut Conn,
    backend: Backend,
    options: &ScaleOptions,
    now: DateTime<Utc>,
) -> Result<ScaleSummary, ScaleError> {
    let started = Instant::now();
    if let Some((table, n)) = store::first_non_empty(conn).await? {
        let what = if table == "users" { format!("{n} people") } else { format!("{n} rows in {table}") };
        return Err(ScaleError::NotEmpty(format!(
            "the database already holds {what}: seed-scale fills an empty database only (a new SQLite \
             file, or an empty PostgreSQL database), and nothing was written"
        )));
    }
    let sizes = Sizes::new(options.scale, options.people)?;
    let seed = options.seed;
    let show = options.progress;

    // Planning counts requests (its rows are the items it decided).
    let planning = Progress::new("plan", 0, show);
    let plan = tokio::task::spawn_blocking(move || Plan::new(sizes, seed, now))
        .await
        .map_err(|e| ScaleError::Invalid(format!("planning stopped: {e}")))??;
    let mut phases = vec![planning.finish(plan.items.len() as u64)];
    let plan = Arc::new(plan);

    store::begin_load(conn, backend).await?;
    // The big tables are filled without their secondary indexes, which are then built once
    // from sorted keys: far cheaper than millions of inserts into random places of them. The
    // unique ones check every row as they are built, as the inserts would have.
    let indexes = store::secondary_indexes(conn, backend, REINDEXED).await?;
    let mut dropped = Vec::new();
    let mut loaded = Ok((0, String::new()));
    for index in &indexes {
        if let Err(e) = store::drop_index(conn, index).await {
            loaded = Err(e.into());
            break;
        }
        dropped.push(index.clone());
    }
    if loaded.is_ok() {
        loaded = load(conn, backend, &plan, show, &mut phases).await;
    }
    // Put the indexes back whatever happened, so the schema is whole again.
    let rebuilt = build_indexes(conn, backend, &plan, &dropped, show).await;
    let (audit_id, audit_hash) = loaded?;
    phases.push(rebuilt?);
    store::finish_load(conn, backend).await?;

    let counts = count_tables(conn).await?;
    let ids = handy_ids(conn, &plan).await?;
    Ok(ScaleSummary {
        backend: backend.name(),
        seed,
        scale: options.scale,
        now: plan.now,
        sizes: plan.sizes.clone(),
        counts,
        phases,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        audit_head: format!("{audit_id}:{audit_hash}"),
        ids,
    })
}

async fn load(
    conn: &mut Conn,
    backend: Backend,
    plan: &Arc<Plan>,
    show: bool,
    phases: &mut Vec<PhaseReport>,
) -> Result<(i64, String), ScaleError> {
    let c = plan.counts.clone();
    let catalog_rows = (plan.catalogs.len()
        + plan.roles.len()
        + 1
        + 2 * plan.resources.len()
        + plan.resource_roles.len()
        + plan.packages.len() * 2
        + plan.packages.iter().map(|p| p.roles.len() + p.policy.requestors.len()).sum::<usize>()
        + plan.incompatible.len()) as u64;
    let people = plan.people.len() as u64;
    let groups = plan.groups.len() as u64 + c.group_members;
    let memberships = plan.memberships.len() as u64 + c.outbox;
    let (r, ()) = phase(conn, backend, plan, "people", people, show, rows::people).await?;
    phases.push(r);
    let (r, ()) = phase(conn, backend, plan, "groups", groups, show, rows::groups).await?;
    phases.push(r);
    let (r, ()) = phase(conn, backend, plan, "catalogs", catalog_rows, show, rows::catalogs).await?;
    phases.push(r);
    let (r, ()) = phase(conn, backend, plan, "requests", c.requests, show, rows::requests).await?;
    phases.push(r);
    let (r, ()) =
        phase(conn, backend, plan, "request approvers", c.request_approvers, show, rows::request_approvers).await?;
    phases.push(r);
    let (r, ()) = phase(conn, backend, plan, "decisions", c.decisions, show, rows::decisions).await?;
    phases.push(r);
    let (r, ()) = phase(conn, backend, plan, "assignments", c.assignments, show, rows::assignments).await?;
    phases.push(r);
    let (r, ()) = phase(conn, backend, plan, "grants", c.grants, show, rows::grants).await?;
    phases.push(r);
    let (r, ()) = phase(conn, backend, plan, "memberships", memberships, show, rows::memberships_and_outbox).await?;
    phases.push(r);
    let (r, head) = phase(conn, backend, plan, "audit events", c.audit_events, show, audit::audit_events).await?;
    phases.push(r);
    Ok(head)
}

/// The tables loaded without their secondary indexes.
const REINDEXED: &[&str] = &["requests", "request_approvers", "decisions", "assignments", "grants", "audit_events"];

/// Build the dropped indexes again (their own statements); rows are index entries.
async fn build_indexes(
    conn: &mut Conn,
    backend: Backend,
    plan: &Plan,
    indexes: &[store::Index],
    show: bool,
) -> Result<PhaseReport, ScaleError> {
    let c = &plan.counts;
    let rows_of = |table: &str| match table {
        "requests" => c.requests,
        "request_approvers" => c.request_approvers,
        "decisions" => c.decisions,
        "assignments" => c.assignments,
        "grants" => c.grants,
        "audit_events" => c.audit_events,
        _ => 0,
    };
    let total = indexes.iter().map(|i| rows_of(&i.table)).sum();
    let progress = Progress::new("indexes", total, show);
    store::begin_index_builds(conn, backend).await?;
    let mut done = 0;
    let mut first_error = None;
    for index in indexes {
        // Every index is attempted, so one failure leaves as few missing as possible.
        match store::create_index(conn, index).await {
            Ok(()) => done += rows_of(&index.table),
            Err(e) => {
                first_error.get_or_insert(ScaleError::Invalid(format!("cannot build index {}: {e}", index.name)));
            }
        }
        progress.print(done, false);
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(progress.finish(done)),
    }
}

async fn count_tables(conn: &mut Conn) -> Result<BTreeMap<String, i64>, ScaleError> {
    let mut counts = BTreeMap::new();
    for (table, _) in store::TABLES {
        counts.insert((*table).to_owned(), store::count(conn, table).await?);
    }
    counts.insert("requests.pending_approval".to_owned(), store::requests_in_state(conn, "pending_approval").await?);
    Ok(counts)
}

fn person(plan: &Plan, index: u32) -> Person {
    let p = &plan.people[index as usize];
    Person { id: Plan::person_id(index), email: p.email(index), name: p.display_name() }
}

async fn with_access(conn: &mut Conn, plan: &Plan, index: u32) -> Result<PersonWithAccess, ScaleError> {
    let person = person(plan, index);
    let (assignments, live_assignments) = store::assignments_of_user(conn, person.id).await?;
    Ok(PersonWithAccess { person, assignments, live_assignments })
}

/// The ids a benchmark needs, each with what the database says it has.
async fn handy_ids(conn: &mut Conn, plan: &Plan) -> Result<HandyIds, ScaleError> {
    let mut busy = Vec::new();
    for u in &plan.busy_approvers {
        let person = person(plan, *u);
        let pending = store::pending_approvals_of(conn, person.id).await?;
        busy.push(Approver { person, pending });
    }
    busy.sort_by_key(|a| (std::cmp::Reverse(a.pending), a.person.id));
    let busiest = busy.first().cloned().ok_or_else(|| ScaleError::Invalid("no approver groups".into()))?;
    let big = &plan.packages[plan.big_package as usize];
    let big_id = i64::from(plan.big_package) + 1;
    let (assignments, live_assignments) = store::assignments_of_package(conn, big_id).await?;
    let owner = plan.catalogs[big.catalog as usize].owners.first().copied().unwrap_or(plan.administrator);
    // A typical person: the first one holding the mean number of assignments, give or take.
    let mean = (plan.sizes.assignments / u64::from(plan.sizes.people).max(1)) as usize;
    let mut held = vec![0usize; plan.people.len()];
    for item in plan.items.iter().filter(|i| i.has_assignment()) {
        held[item.user as usize] += 1;
    }
    let typical = (0..plan.people.len() as u32)
        .find(|u| *u != plan.heavy_person && held[*u as usize] == mean.max(1))
        .unwrap_or(1);
    Ok(HandyIds {
        administrator: person(plan, plan.administrator),
        heavy_person: with_access(conn, plan, plan.heavy_person).await?,
        typical_person: with_access(conn, plan, typical).await?,
        busiest_approver: busiest,
        busy_approvers: busy,
        big_package: PackageWithAccess {
            id: big_id,
            name: big.name.clone(),
            catalog_id: i64::from(big.catalog) + 1,
            assignments,
            live_assignments,
        },
        big_package_catalog_owner: person(plan, owner),
        audit_object: AuditObject {
            object_type: "package",
            object_id: big_id,
            events: store::audit_events_of(conn, "package", big_id).await?,
        },
    })
}
