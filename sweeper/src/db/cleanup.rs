//! Scheduling deletions: the orphan and age cleanups, by command or on their schedule, and exact paths.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::connection::{describe, Db, DbError};
use super::views::{file_row, FileRow};

/// The advisory-lock key, in the class `filegc.escalation_lock_class()`,
/// that one sweeper holds while it decides on and runs a scheduled cleanup
/// (keys 0 and 1 of that class belong to the sweep and the scan).
const MAINTENANCE_LOCK_KEY: i32 = 2;

/// What [`Db::scheduled_cleanup`] came to.
#[derive(Debug, Clone)]
pub enum ScheduledCleanup {
    /// Another sweeper is deciding on or running a scheduled cleanup right now.
    Busy,
    /// It is not due.
    NotDue {
        /// When the last one of its kind finished, if one did.
        last: Option<DateTime<Utc>>,
    },
    /// It ran and scheduled these files for deletion now.
    Scheduled(Vec<FileRow>),
    /// The cleanup refused (the circuit breaker, for one); the attempt is recorded all the same.
    Refused(String),
}

/// The cleanup a delete command schedules.
#[derive(Debug, Clone, Copy)]
pub enum Cleanup {
    /// Eligible orphans.
    Orphans,
    /// Managed files older than `days`, referenced ones only with `include_referenced`.
    OlderThan {
        /// The age limit.
        days: u32,
        /// Whether referenced files go too.
        include_referenced: bool,
    },
}

impl Cleanup {
    /// What the cleanup does, as the circuit breaker's messages name it
    /// (the words `filegc.cleanup_orphans` and `filegc.cleanup_older_than` use).
    pub fn description(&self) -> String {
        match self {
            Cleanup::Orphans => "cleaning up the orphans".into(),
            Cleanup::OlderThan { days, .. } => format!("removing images older than {days} days"),
        }
    }
}

impl Db {
    /// Why the circuit breaker would refuse to schedule `files` files of
    /// `bytes` bytes without force (`filegc.breaker_refusal`); `None` when it would let them through.
    pub async fn breaker_refusal(
        &self,
        files: usize,
        bytes: u64,
        what: &str,
    ) -> Result<Option<String>, DbError> {
        let files = i64::try_from(files).unwrap_or(i64::MAX);
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        Ok(self
            .client
            .query_one(
                "SELECT filegc.breaker_refusal($1, $2, $3)",
                &[&files, &bytes, &what],
            )
            .await?
            .get(0))
    }

    /// Lists (`dry_run`) or schedules for now the files of a cleanup; returns them.
    pub async fn cleanup(
        &self,
        cleanup: Cleanup,
        dry_run: bool,
        force: bool,
    ) -> Result<Vec<FileRow>, DbError> {
        Ok(run_cleanup(&self.client, cleanup, dry_run, force).await?)
    }

    /// Runs a scheduled cleanup when `due` says so, and records it as a run of `kind`.
    ///
    /// One transaction holds a transaction-scoped advisory lock while it reads
    /// when the last run of `kind` finished, asks `due(last, now)`, runs the
    /// cleanup (without force, so the circuit breaker applies) and records
    /// the run: two sweepers never both run it, and a sweeper that restarts
    /// finds the record of the last one. A refused cleanup is recorded too
    /// (with one error), so that it waits for the next interval.
    pub async fn scheduled_cleanup(
        &mut self,
        kind: &str,
        cleanup: Cleanup,
        worker: &str,
        volume: &str,
        due: impl FnOnce(Option<DateTime<Utc>>, DateTime<Utc>) -> bool,
    ) -> Result<ScheduledCleanup, DbError> {
        let mut transaction = self.client.transaction().await?;
        let locked: bool = transaction
            .query_one(
                "SELECT pg_try_advisory_xact_lock(filegc.escalation_lock_class(), $1)",
                &[&MAINTENANCE_LOCK_KEY],
            )
            .await?
            .get(0);
        if !locked {
            transaction.rollback().await?;
            return Ok(ScheduledCleanup::Busy);
        }
        let row = transaction
            .query_one(
                "SELECT (SELECT max(finished_at) FROM filegc.sweeps WHERE kind = $1), now()",
                &[&kind],
            )
            .await?;
        let (last, now): (Option<DateTime<Utc>>, DateTime<Utc>) = (row.get(0), row.get(1));
        if !due(last, now) {
            transaction.rollback().await?;
            return Ok(ScheduledCleanup::NotDue { last });
        }
        let run_id: i64 = transaction
            .query_one(
                "SELECT filegc.start_run($1, $2, $3)",
                &[&kind, &worker, &volume],
            )
            .await?
            .get(0);
        let savepoint = transaction.savepoint("cleanup").await?;
        let result = run_cleanup(&savepoint, cleanup, false, false).await;
        let outcome = match result {
            Ok(rows) => {
                savepoint.commit().await?;
                ScheduledCleanup::Scheduled(rows)
            }
            Err(error) if !error.is_closed() => {
                savepoint.rollback().await?;
                ScheduledCleanup::Refused(describe(&error))
            }
            Err(error) => return Err(error.into()),
        };
        let (files, errors) = match &outcome {
            ScheduledCleanup::Scheduled(rows) => {
                (i64::try_from(rows.len()).unwrap_or(i64::MAX), 0i64)
            }
            _ => (0, 1),
        };
        transaction
            .execute(
                "SELECT filegc.finish_run($1, $2, 0, 0, $3)",
                &[&run_id, &files, &errors],
            )
            .await?;
        transaction.commit().await?;
        Ok(outcome)
    }

    /// Schedules exactly these paths for deletion now, skipping those the
    /// final check would keep; the circuit breaker applies unless `force`.
    /// Returns how many it scheduled.
    pub async fn schedule_delete(
        &self,
        paths: &[String],
        reason: &str,
        force: bool,
    ) -> Result<i64, DbError> {
        let row = self
            .client
            .query_one(
                "SELECT filegc.schedule_delete($1, $2, $3)::bigint",
                &[&paths, &reason, &force],
            )
            .await?;
        Ok(row.get(0))
    }
}

/// Lists or schedules a cleanup's files, on a connection or inside a transaction.
async fn run_cleanup(
    client: &impl GenericClient,
    cleanup: Cleanup,
    dry_run: bool,
    force: bool,
) -> Result<Vec<FileRow>, tokio_postgres::Error> {
    let rows = match cleanup {
        Cleanup::Orphans => {
            client
                .query(
                    "SELECT path, size_bytes, modified_at, false, true \
                     FROM filegc.cleanup_orphans(dry_run => $1, force => $2)",
                    &[&dry_run, &force],
                )
                .await?
        }
        Cleanup::OlderThan {
            days,
            include_referenced,
        } => {
            let days = i32::try_from(days).unwrap_or(i32::MAX);
            client
                .query(
                    "SELECT c.path, c.size_bytes, c.modified_at, coalesce(f.referenced, false), true \
                     FROM filegc.cleanup_older_than($1, $2, dry_run => $3, force => $4) c \
                     LEFT JOIN filegc.files f ON f.path = c.path",
                    &[&days, &include_referenced, &dry_run, &force],
                )
                .await?
        }
    };
    Ok(rows.iter().map(file_row).collect())
}
