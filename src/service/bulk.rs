//! Bulk assignment from an uploaded CSV. Starting a job reads the whole file first (a file that
//! cannot be read is refused whole, nothing done), stores its rows, and returns at once; the
//! rows are then assigned one by one, each as its own audited operation (the same
//! `assign_person` as assigning one person on the page), with the uploader's rights as they
//! are at that moment, and each row's outcome — assigned, or skipped and why — recorded as it
//! goes. A job is claimed by one worker at a time; if the process stops, a worker takes it up
//! again after the claim runs out and carries on from the first row without an outcome (a
//! row's "assigned" is written in its assignment's transaction, so none is done twice).

use super::capability::{InCatalog, MayAssign};
use super::Service;
use crate::domain::bulk::parse_rows;
use crate::domain::ids::*;
use crate::domain::{DomainError, DomainResult};
use crate::store::{bulk, catalog, to_ms};
use crate::views::{BulkJobView, BulkRowView};

/// Rows read at a time (the claim is renewed before each row).
const BATCH: i64 = 25;
/// How long a claim holds without renewal (a stopped worker's job is taken up after it).
const CLAIM_MS: i64 = 60_000;

impl<S: MayAssign> InCatalog<'_, S> {
    /// Start assigning the people a CSV names to a package under one of its policies; answers
    /// the job, whose rows are assigned in the background.
    #[tracing::instrument(name = "start_bulk_assignment", skip_all, fields(actor = self.actor.id().0, package = package.0))]
    pub async fn start_bulk(
        &self,
        package: PackageId,
        policy: PolicyId,
        csv: &str,
        justification: &str,
    ) -> DomainResult<i64> {
        let (service, actor) = (self.service, self.actor);
        let rows = parse_rows(csv)?;
        if justification.chars().count() > 2000 {
            return Err(DomainError::invalid("justification", "at most 2000 characters"));
        }
        let now = service.now();
        let mut tx = service.db.begin().await?;
        let pkg =
            catalog::live_package(&mut tx, package).await?.ok_or_else(|| DomainError::not_found("access package"))?;
        self.owns(pkg.catalog_id, "access package")?;
        if !pkg.enabled || !catalog::catalog_held(&mut tx, pkg.catalog_id).await?.is_some_and(|c| c.enabled) {
            return Err(DomainError::invalid("file", "this package is disabled: enable it (and its catalog) first"));
        }
        if catalog::policy(&mut tx, policy).await?.is_none_or(|p| p.package_id != package) {
            return Err(DomainError::invalid("policy_id", "choose one of this package's policies"));
        }
        let new =
            bulk::NewJob { author: actor.id(), package, policy, justification: justification.trim(), rows: &rows };
        let id = bulk::insert_job(&mut tx, &new, to_ms(now)).await?;
        let event = crate::domain::audit::AuditEvent::new(
            Some(actor.id()),
            "package.bulk_assignment_started",
            "package",
            package.0,
        )
        .after(serde_json::json!({"job": id, "policy": policy, "rows": rows.len()}));
        service.commit(tx, vec![event]).await?;
        Ok(id)
    }

    /// A job's progress and each row's outcome (a job of a package in this catalog).
    async fn bulk_job_view(&self, job: bulk::JobRow) -> DomainResult<BulkJobView> {
        let id = job.id;
        let mut conn = self.service.db.pool().acquire().await?;
        let pkg =
            catalog::package(&mut conn, job.package).await?.ok_or_else(|| DomainError::not_found("bulk assignment"))?;
        self.owns(pkg.catalog_id, "bulk assignment")?;
        let (assigned, skipped, failed) = bulk::outcome_counts(&mut conn, id).await?;
        let running = job.state == "running";
        // While it runs, the problems so far; once done, every row.
        let only = if running { Some("problems") } else { None };
        let rows: Vec<BulkRowView> = bulk::job_rows(&mut conn, id, only)
            .await?
            .into_iter()
            .map(|(line, person, outcome, why)| BulkRowView { line, person, outcome, why })
            .collect();
        Ok(BulkJobView {
            id,
            package_id: job.package.0,
            package: pkg.name,
            total: job.total,
            assigned,
            skipped,
            failed,
            running,
            created_at: job.created_at,
            finished_at: job.finished_at,
            rows,
        })
    }
}

impl Service {
    /// A bulk assignment's progress, for who may assign in its package's catalog (to anyone
    /// else, whatever the reason, it does not exist).
    #[tracing::instrument(name = "bulk_job", skip(self, actor), fields(actor = actor.id().0))]
    pub async fn bulk_job(&self, actor: &crate::domain::authz::Actor, id: i64) -> DomainResult<BulkJobView> {
        let gone = || DomainError::not_found("bulk assignment");
        let job = {
            let mut conn = self.db.pool().acquire().await?;
            bulk::job(&mut conn, id).await?.ok_or_else(gone)?
        };
        let manager = self.assignment_manager_of(actor, job.package).await.map_err(|e| match e {
            DomainError::NotFound(_) | DomainError::Forbidden(_) => gone(),
            other => other,
        })?;
        manager.bulk_job_view(job).await
    }

    /// Run a job just started in the background, now (the workers take it up again if this
    /// stops).
    pub fn run_bulk_job_now(&self, job: i64) {
        let worker = self.clone();
        tokio::spawn(async move {
            if let Err(e) = worker.run_bulk_job(job).await {
                tracing::error!(job, error = ?e, "bulk assignment stopped; a worker takes it up again");
            }
        });
    }

    /// Assign a job's remaining rows, if no other worker holds it; answers whether it ran.
    /// One job at a time per instance.
    #[tracing::instrument(name = "run_bulk_job", skip(self))]
    pub async fn run_bulk_job(&self, id: i64) -> DomainResult<bool> {
        let _turn = self.bulk_turn.lock().await;
        if !self.claim(id).await? {
            return Ok(false);
        }
        let job = {
            let mut conn = self.db.pool().acquire().await?;
            bulk::job(&mut conn, id).await?.ok_or_else(|| DomainError::not_found("bulk assignment"))?
        };
        loop {
            let rows = {
                let mut conn = self.db.pool().acquire().await?;
                bulk::pending_rows(&mut conn, id, BATCH).await?
            };
            if rows.is_empty() {
                break;
            }
            // The uploader's rights as they are now: without them (or without the package),
            // no row can be assigned, and the rest are skipped for that one reason.
            let actor = self.actor(job.author).await?;
            let manager = match &actor {
                Some(actor) => self.assignment_manager_of(actor, job.package).await,
                None => Err(DomainError::forbidden("the person who uploaded the file can no longer assign")),
            };
            let manager = match manager {
                Ok(manager) => manager,
                // Anything else (the database) leaves the job to be taken up again.
                Err(e @ (DomainError::Forbidden(_) | DomainError::NotFound(_))) => {
                    let mut tx = self.db.begin().await?;
                    bulk::skip_remaining(&mut tx, id, &format!("not assigned: {e}")).await?;
                    bulk::finish_job(&mut tx, id, to_ms(self.now())).await?;
                    tx.commit().await?;
                    return Ok(true);
                }
                Err(e) => return Err(e),
            };
            for row in rows {
                // Still this worker's (a claim that ran out may have been taken over).
                if !self.claim_again(id).await? {
                    return Ok(true);
                }
                let outcome = if !row.person.contains('@') || row.person.chars().count() > 320 {
                    Err(DomainError::invalid("person", "not an email address"))
                } else {
                    let mark = Some((id, row.line));
                    manager
                        .assign_person_marked(
                            job.package,
                            &row.person,
                            job.policy,
                            ("", &row.end),
                            &job.justification,
                            mark,
                        )
                        .await
                };
                // Assigned rows were recorded with their assignment; the others now.
                let (word, why) = match outcome {
                    Ok(_) => continue,
                    Err(DomainError::Internal(e)) => {
                        tracing::error!(job = id, line = row.line, error = %e, "bulk row failed");
                        ("failed", "could not be assigned (an error on our side): try this person again".to_owned())
                    }
                    Err(e) => ("skipped", e.to_string()),
                };
                let mut tx = self.db.begin().await?;
                bulk::record_row(&mut tx, id, row.line, word, &why).await?;
                tx.commit().await?;
            }
        }
        let mut tx = self.db.begin().await?;
        bulk::finish_job(&mut tx, id, to_ms(self.now())).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Take up the jobs nobody is working on (new ones whose starter stopped, or a stopped
    /// worker's); answers how many ran. One failing job does not hold up the others.
    #[tracing::instrument(name = "resume_bulk_jobs", skip(self))]
    pub async fn resume_bulk_jobs(&self) -> DomainResult<usize> {
        let ids = {
            let mut conn = self.db.pool().acquire().await?;
            bulk::unclaimed_jobs(&mut conn, to_ms(self.now()), 10).await?
        };
        let mut ran = 0;
        for id in ids {
            match self.run_bulk_job(id).await {
                Ok(true) => ran += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(job = id, error = ?e, "bulk assignment stopped; taken up again later"),
            }
        }
        Ok(ran)
    }

    async fn claim(&self, id: i64) -> DomainResult<bool> {
        let now = to_ms(self.now());
        let mut tx = self.db.begin().await?;
        let claimed = bulk::claim_job(&mut tx, id, &self.worker, now, now + CLAIM_MS).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Renew this worker's claim; false when it no longer holds the job.
    async fn claim_again(&self, id: i64) -> DomainResult<bool> {
        let now = to_ms(self.now());
        let mut tx = self.db.begin().await?;
        let held = bulk::renew_claim(&mut tx, id, &self.worker, now + CLAIM_MS).await?;
        tx.commit().await?;
        Ok(held)
    }
}
