//! The database client: the extension's functions and views, as typed calls.
//!
//! Every call is one round trip for a whole batch of files; the inventory
//! goes in through a binary COPY.

use std::fmt::Write as _;
use std::future::{poll_fn, Future};
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde::Serialize;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::Severity;
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, Client, Connection, GenericClient, IsolationLevel, NoTls, Row};

use crate::tls::{self, Transport};

/// Why the database could not be used.
#[derive(Debug, Error)]
pub enum DbError {
    /// The connection could not be made; the run ends with exit status 3.
    #[error("cannot reach the database at {host}: {cause} (check DATABASE_URL or --database-url, and that the server is up)")]
    Unreachable {
        /// The host (and port) the connection string names.
        host: String,
        /// What went wrong, with the server's explanation if any.
        cause: String,
    },
    /// The database has no `filegc` extension.
    #[error("the database at {host} has no filegc extension and no portable install (run `CREATE EXTENSION filegc` in it first, or `filegc install-sql --apply` where extensions cannot be loaded)")]
    NoExtension {
        /// The host the connection string names.
        host: String,
    },
    /// A statement failed; the text carries PostgreSQL's message, detail and hint.
    #[error("{0}")]
    Query(String),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        if error.is_closed() {
            return DbError::Unreachable {
                host: "the server".into(),
                cause: describe(&error),
            };
        }
        DbError::Query(describe(&error))
    }
}

/// The error as a person needs it: PostgreSQL's message, then its detail and hint.
pub fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = db.message().to_owned();
        if let Some(detail) = db.detail() {
            let _ = write!(text, "\nDETAIL: {detail}");
        }
        if let Some(hint) = db.hint() {
            let _ = write!(text, "\nHINT: {hint}");
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// A connection to the application's database, which has the extension.
pub struct Db {
    client: Client,
}

/// A deletion the sweeper claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The tombstone's id.
    pub id: i64,
    /// The path relative to the volume root.
    pub path: String,
    /// How many times it has been claimed, this time included.
    pub attempts: i32,
}

/// The database's last word on one claimed deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing references the path: delete it.
    Delete {
        /// The trash holds a copy of the path that another deletion recorded:
        /// not this deletion's, even when its file is gone.
        trash_copy_recorded: bool,
    },
    /// It must stay: a row references it again, an invalid reference may
    /// name it, or filegc no longer manages it; the database recorded which
    /// (`skipped_referenced`, `skipped_protected`, `skipped_unmanaged`).
    Kept,
    /// A writer holds the path; the database put it back in the queue.
    Busy,
    /// Another sweeper holds the claim now.
    Lost,
}

/// A trashed file the database wants restored or purged.
#[derive(Debug, Clone)]
pub struct TrashRequest {
    /// The tombstone's id.
    pub id: i64,
    /// The path relative to the volume root.
    pub path: String,
}

/// One file as a listing shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FileRow {
    /// The path relative to the volume root.
    pub path: String,
    /// Its size.
    pub size_bytes: i64,
    /// Its last modification.
    pub modified_at: DateTime<Utc>,
    /// Whether a row references it; `None` (JSON `null`) when the database could not be asked.
    pub referenced: Option<bool>,
    /// Whether filegc manages it (an image name).
    pub managed: bool,
}

/// What one file of a batch came to, for [`Db::settle_batch`].
#[derive(Debug, Clone)]
pub enum BatchResult {
    /// Done: `trashed`, `deleted` or `already_gone`, with the bytes freed.
    Done {
        /// The tombstone's id.
        id: i64,
        /// The outcome's name as the database stores it.
        outcome: &'static str,
        /// The bytes freed.
        bytes: i64,
    },
    /// Failed, to be retried.
    Failed {
        /// The tombstone's id.
        id: i64,
        /// Why.
        error: String,
    },
}

/// An open transaction in which a batch is checked and carried out.
pub struct Batch<'a> {
    transaction: tokio_postgres::Transaction<'a>,
    worker: &'a str,
}

/// The volume's capacity and trash as [`Db::report_volume`] records them.
#[derive(Debug, Clone, Copy)]
pub struct VolumeReport<'a> {
    /// The reporting sweeper.
    pub worker: &'a str,
    /// The volume's mount point.
    pub volume: &'a str,
    /// The file system's size.
    pub total_bytes: i64,
    /// Space in use.
    pub used_bytes: i64,
    /// Space still free.
    pub free_bytes: i64,
    /// Files in the trash.
    pub trash_files: i64,
    /// Their total size.
    pub trash_bytes: i64,
}

/// The advisory-lock key, in the class `filegc.escalation_lock_class()`,
/// that one sweeper holds while it decides on and runs a scheduled cleanup
/// (keys 0 and 1 of that class belong to the sweep and the scan).
const MAINTENANCE_LOCK_KEY: i32 = 2;

/// One setting's value, and for an interval its length in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingValue {
    /// The setting's name.
    pub name: String,
    /// Its value as text.
    pub value: String,
    /// For an interval setting, its length in seconds, as PostgreSQL reads it.
    pub seconds: Option<f64>,
}

/// Settings as the database had them at one instant.
#[derive(Debug, Clone)]
pub struct SettingsSnapshot {
    /// The database's clock when they were read.
    pub now: DateTime<Utc>,
    /// The values asked for that exist.
    pub values: Vec<SettingValue>,
}

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

impl Db {
    /// Connects (with TLS as the URL's `sslmode` says) and checks that the extension is there.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        let client = open(url, None).await?;
        Db::checked(client, url).await
    }

    /// Connects, checks the extension and listens on the `filegc` channel; each notification arrives as one message on the receiver, which closes when the connection ends.
    pub async fn connect_listening(
        url: &str,
    ) -> Result<(Db, mpsc::UnboundedReceiver<String>), DbError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let client = open(url, Some(sender)).await?;
        let db = Db::checked(client, url).await?;
        db.client.batch_execute("LISTEN filegc").await?;
        Ok((db, receiver))
    }

    /// Connects without checking for filegc: for installing it.
    pub async fn connect_unchecked(url: &str) -> Result<Client, DbError> {
        open(url, None).await
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    async fn checked(client: Client, url: &str) -> Result<Db, DbError> {
        // The extension and the portable install both answer filegc.version().
        let engine = client
            .query_one("SELECT engine, version FROM filegc.version()", &[])
            .await;
        match engine {
            Ok(row) => {
                tracing::info!(
                    engine = row.get::<_, &str>(0),
                    version = row.get::<_, &str>(1),
                    "filegc is installed"
                );
                Ok(Db { client })
            }
            Err(_) => Err(DbError::NoExtension { host: host_of(url) }),
        }
    }

    /// Starts a run record (`scan` or `sweep`); returns its id.
    pub async fn start_run(&self, kind: &str, worker: &str, volume: &str) -> Result<i64, DbError> {
        let row = self
            .client
            .query_one(
                "SELECT filegc.start_run($1, $2, $3)",
                &[&kind, &worker, &volume],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Finishes a sweep's run record.
    pub async fn finish_run(
        &self,
        run_id: i64,
        seen: i64,
        deleted: i64,
        bytes: i64,
        errors: i64,
    ) -> Result<(), DbError> {
        self.client
            .execute(
                "SELECT filegc.finish_run($1, $2, $3, $4, $5)",
                &[&run_id, &seen, &deleted, &bytes, &errors],
            )
            .await?;
        Ok(())
    }

    /// Opens the COPY into the scan's staging rows.
    pub async fn inventory_writer(&self) -> Result<Pin<Box<BinaryCopyInWriter>>, DbError> {
        let sink = self
            .client
            .copy_in(
                "COPY filegc.inventory_staging (scan_id, path, size_bytes, modified_at) \
                 FROM STDIN (FORMAT binary)",
            )
            .await?;
        Ok(Box::pin(BinaryCopyInWriter::new(
            sink,
            &[Type::INT8, Type::TEXT, Type::INT8, Type::TIMESTAMPTZ],
        )))
    }

    /// Merges the staged files into the inventory; returns its files and bytes.
    pub async fn finish_scan(&self, scan_id: i64, errors: i64) -> Result<(i64, i64), DbError> {
        let row = self
            .client
            .query_one(
                "SELECT * FROM filegc.finish_scan($1, $2)",
                &[&scan_id, &errors],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// Reports the volume's capacity and trash; returns the alert level.
    pub async fn report_volume(&self, report: &VolumeReport<'_>) -> Result<String, DbError> {
        let row = self
            .client
            .query_one(
                "SELECT filegc.report_volume($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &report.worker,
                    &report.volume,
                    &report.total_bytes,
                    &report.used_bytes,
                    &report.free_bytes,
                    &report.trash_files,
                    &report.trash_bytes,
                ],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Claims up to `batch_size` due deletions.
    pub async fn claim(&self, worker: &str, batch_size: i32) -> Result<Vec<Claimed>, DbError> {
        let rows = self
            .client
            .query(
                "SELECT id, path, attempts FROM filegc.claim($1, $2)",
                &[&worker, &batch_size],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Claimed {
                id: row.get(0),
                path: row.get(1),
                attempts: row.get(2),
            })
            .collect())
    }

    /// Begins a READ COMMITTED transaction: the sweeper's final checks must
    /// see rows committed after it began.
    async fn read_committed(&mut self) -> Result<tokio_postgres::Transaction<'_>, DbError> {
        Ok(self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await?)
    }

    /// Begins the READ COMMITTED transaction that checks and settles one batch.
    pub async fn begin_batch<'a>(&'a mut self, worker: &'a str) -> Result<Batch<'a>, DbError> {
        let transaction = self.read_committed().await?;
        Ok(Batch {
            transaction,
            worker,
        })
    }

    /// Turns the triggers' notes into deletions, cancellations and restore
    /// requests (`filegc.claim` does it first too).
    pub async fn process_notes(&self) -> Result<(), DbError> {
        self.client
            .execute("SELECT filegc.process_notes()", &[])
            .await?;
        Ok(())
    }

    /// Trashed files someone asked back.
    pub async fn restore_requests(&self) -> Result<Vec<TrashRequest>, DbError> {
        self.trash_requests("SELECT id, path FROM filegc.restore_requests()")
            .await
    }

    /// Trashed files past the retention.
    pub async fn purge_due(&self) -> Result<Vec<TrashRequest>, DbError> {
        self.trash_requests("SELECT id, path FROM filegc.purge_due()")
            .await
    }

    /// Every trashed file not yet purged, restored or asked back, whatever its age.
    pub async fn trashed(&self) -> Result<Vec<TrashRequest>, DbError> {
        self.trash_requests("SELECT id, path FROM filegc.purge_due('0')")
            .await
    }

    /// Asks for the trashed copy of `path` back (`filegc.restore`); false when there is none.
    pub async fn request_restore(&self, path: &str) -> Result<bool, DbError> {
        let row = self
            .client
            .query_one("SELECT filegc.restore($1)", &[&path])
            .await?;
        Ok(row.get(0))
    }

    async fn trash_requests(&self, sql: &str) -> Result<Vec<TrashRequest>, DbError> {
        let rows = self.client.query(sql, &[]).await?;
        Ok(rows
            .iter()
            .map(|row| TrashRequest {
                id: row.get(0),
                path: row.get(1),
            })
            .collect())
    }

    /// Unlinks trashed copies for good, each only while nothing asks for it:
    /// in one READ COMMITTED transaction, `filegc.check_before_purge` takes
    /// the path locks and decides with a fresh snapshot, `unlink` removes
    /// each copy it allows (true when the copy is gone), and
    /// `filegc.trash_done` records them before the locks are let go. Returns
    /// the ids recorded purged.
    pub async fn purge_checked(
        &mut self,
        entries: &[TrashRequest],
        mut unlink: impl FnMut(&TrashRequest) -> bool,
    ) -> Result<Vec<i64>, DbError> {
        let ids: Vec<i64> = entries.iter().map(|entry| entry.id).collect();
        let transaction = self.read_committed().await?;
        let allowed = transaction
            .query(
                "SELECT id, path FROM filegc.check_before_purge($1) WHERE verdict = 'purge'",
                &[&ids],
            )
            .await?;
        let purged: Vec<i64> = allowed
            .iter()
            .map(|row| TrashRequest {
                id: row.get(0),
                path: row.get(1),
            })
            .filter(|request| unlink(request))
            .map(|request| request.id)
            .collect();
        transaction
            .execute("SELECT filegc.trash_done('{}', $1)", &[&purged])
            .await?;
        transaction.commit().await?;
        Ok(purged)
    }

    /// Records restored and purged trash entries.
    pub async fn trash_done(&self, restored: &[i64], purged: &[i64]) -> Result<(), DbError> {
        self.client
            .execute("SELECT filegc.trash_done($1, $2)", &[&restored, &purged])
            .await?;
        Ok(())
    }

    /// Every file of the latest scan, by path.
    pub async fn files(&self) -> Result<Vec<FileRow>, DbError> {
        self.file_rows(
            "SELECT path, size_bytes, modified_at, referenced, managed FROM filegc.files ORDER BY path",
            &[],
        )
        .await
    }

    /// The orphans of the latest scan, by path.
    pub async fn orphans(&self) -> Result<Vec<FileRow>, DbError> {
        self.file_rows(
            "SELECT path, size_bytes, modified_at, false, true FROM filegc.orphans ORDER BY path",
            &[],
        )
        .await
    }

    /// Managed files last modified more than `days` days ago, oldest first.
    pub async fn old_files(&self, days: u32) -> Result<Vec<FileRow>, DbError> {
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        self.file_rows(
            "SELECT path, size_bytes, modified_at, referenced, true FROM filegc.old_files($1)",
            &[&days],
        )
        .await
    }

    /// The one row of `filegc.storage_stats`, as a JSON object keyed by column.
    pub async fn storage_stats(
        &self,
    ) -> Result<serde_json::Map<String, serde_json::Value>, DbError> {
        let row = self
            .client
            .query_one("SELECT to_jsonb(s)::text FROM filegc.storage_stats s", &[])
            .await?;
        let text: String = row.get(0);
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|error| DbError::Query(error.to_string()))?;
        match value {
            serde_json::Value::Object(map) => Ok(map),
            other => Err(DbError::Query(format!(
                "filegc.storage_stats gave {other} instead of a row"
            ))),
        }
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

    /// The values of `names` now, with the database's clock.
    pub async fn settings(&self, names: &[&str]) -> Result<SettingsSnapshot, DbError> {
        let now: DateTime<Utc> = self.client.query_one("SELECT now()", &[]).await?.get(0);
        let rows = self
            .client
            .query(
                "SELECT name, value, \
                        CASE WHEN kind = 'interval' THEN extract(epoch FROM value::interval)::float8 END \
                   FROM filegc.settings WHERE name = ANY ($1)",
                &[&names],
            )
            .await?;
        let values = rows
            .iter()
            .map(|row| SettingValue {
                name: row.get(0),
                value: row.get(1),
                seconds: row.get(2),
            })
            .collect();
        Ok(SettingsSnapshot { now, values })
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

    /// Asks back every trashed copy that must be kept now (see
    /// `filegc.request_restores`); returns those of `trashed` that no
    /// deletion recorded, which the caller brings back itself.
    pub async fn request_restores(&self, trashed: &[String]) -> Result<Vec<String>, DbError> {
        let row = self
            .client
            .query_one("SELECT filegc.request_restores($1)", &[&trashed])
            .await?;
        Ok(row.get(0))
    }

    async fn file_rows(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<FileRow>, DbError> {
        let rows = self.client.query(sql, params).await?;
        Ok(rows.iter().map(file_row).collect())
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

fn file_row(row: &Row) -> FileRow {
    FileRow {
        path: row.get(0),
        size_bytes: row.get(1),
        modified_at: row.get(2),
        referenced: row.get(3),
        managed: row.get(4),
    }
}

impl Batch<'_> {
    /// The final check under the path locks: which claimed ids may be deleted.
    pub async fn check(&self, ids: &[i64]) -> Result<Vec<(Claimed, Verdict)>, DbError> {
        let rows = self
            .transaction
            .query(
                "SELECT id, path, verdict, attempts, trash_copy_recorded FROM filegc.check_before_delete($1, $2)",
                &[&self.worker, &ids],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let verdict: String = row.get(2);
                let verdict = match verdict.as_str() {
                    "delete" => Verdict::Delete {
                        trash_copy_recorded: row.get(4),
                    },
                    "referenced" | "protected" | "unmanaged" => Verdict::Kept,
                    "busy" => Verdict::Busy,
                    "lost" => Verdict::Lost,
                    other => {
                        return Err(DbError::Query(format!(
                            "filegc.check_before_delete gave an unknown verdict {other:?}"
                        )))
                    }
                };
                Ok((
                    Claimed {
                        id: row.get(0),
                        path: row.get(1),
                        attempts: row.get(3),
                    },
                    verdict,
                ))
            })
            .collect()
    }

    /// Records the batch's outcomes and failures and commits, releasing the locks.
    pub async fn settle(self, results: &[BatchResult]) -> Result<(), SettleError> {
        let (mut ids, mut outcomes, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
        let (mut failed_ids, mut errors) = (Vec::new(), Vec::new());
        for result in results {
            match result {
                BatchResult::Done {
                    id,
                    outcome,
                    bytes: freed,
                } => {
                    ids.push(*id);
                    outcomes.push(*outcome);
                    bytes.push(*freed);
                }
                BatchResult::Failed { id, error } => {
                    failed_ids.push(*id);
                    errors.push(error.as_str());
                }
            }
        }
        if !ids.is_empty() {
            self.transaction
                .execute(
                    "SELECT filegc.complete($1, $2, $3, $4)",
                    &[&self.worker, &ids, &outcomes, &bytes],
                )
                .await
                .map_err(SettleError::rolled_back)?;
        }
        if !failed_ids.is_empty() {
            self.transaction
                .execute(
                    "SELECT filegc.fail($1, $2, $3)",
                    &[&self.worker, &failed_ids, &errors],
                )
                .await
                .map_err(SettleError::rolled_back)?;
        }
        self.transaction.commit().await.map_err(|error| {
            // An ERROR answers the COMMIT with a rollback. Anything else (the
            // connection closing, a FATAL from a server shutting down) may
            // come after the commit record is already durable.
            let refused = error
                .as_db_error()
                .is_some_and(|db| db.parsed_severity() == Some(Severity::Error));
            if refused {
                SettleError::rolled_back(error)
            } else {
                SettleError::Unknown(error.into())
            }
        })
    }
}

/// Why a batch was not settled, and whether the database kept any of it.
#[derive(Debug, Error)]
pub enum SettleError {
    /// The transaction rolled back: the database recorded nothing of the batch.
    #[error("{0}")]
    RolledBack(DbError),
    /// The connection failed during COMMIT: the batch may or may not be recorded.
    #[error("{0}")]
    Unknown(DbError),
}

impl SettleError {
    fn rolled_back(error: tokio_postgres::Error) -> SettleError {
        SettleError::RolledBack(error.into())
    }
}

/// Sends one inventory row through the COPY.
pub async fn write_inventory_row(
    writer: &mut Pin<Box<BinaryCopyInWriter>>,
    scan_id: i64,
    path: &str,
    size_bytes: i64,
    modified_at: DateTime<Utc>,
) -> Result<(), DbError> {
    writer
        .as_mut()
        .write(&[&scan_id, &path, &size_bytes, &modified_at])
        .await?;
    Ok(())
}

/// Ends the COPY; returns the rows written.
pub async fn finish_inventory(mut writer: Pin<Box<BinaryCopyInWriter>>) -> Result<u64, DbError> {
    Ok(writer.as_mut().finish().await?)
}

/// Opens the connection in plain text or TLS, and drives it in a task that
/// hands its notifications to `notifications` when given.
async fn open(
    url: &str,
    notifications: Option<mpsc::UnboundedSender<String>>,
) -> Result<Client, DbError> {
    let host = host_of(url);
    let unreachable = |cause: String| DbError::Unreachable {
        host: host.clone(),
        cause,
    };
    let plan = tls::plan(url).map_err(unreachable)?;
    tracing::debug!(host = %host, transport = ?plan.transport, "connecting to the database");
    let opened = match plan.transport {
        Transport::Plain => tokio_postgres::connect(&plan.url, NoTls)
            .await
            .map(|(client, connection)| (client, drive(connection, notifications, host.clone()))),
        Transport::Tls { verified } => tokio_postgres::connect(&plan.url, tls::connector(verified))
            .await
            .map(|(client, connection)| (client, drive(connection, notifications, host.clone()))),
    };
    let (client, driver) = opened.map_err(|error| unreachable(describe(&error)))?;
    tokio::spawn(driver);
    Ok(client)
}

/// The task that drives a connection: `poll_message` both moves it along and
/// hands out its notifications.
fn drive<S, T>(
    mut connection: Connection<S, T>,
    notifications: Option<mpsc::UnboundedSender<String>>,
    host: String,
) -> Pin<Box<dyn Future<Output = ()> + Send>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    let Some(sender) = &notifications else {
                        continue;
                    };
                    if sender.send(notification.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(host = %host, error = %describe(&error), "database connection lost");
                    break;
                }
            }
        }
    })
}

/// The host and port a connection string names, for messages; never the password.
fn host_of(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return "the configured address".into();
    };
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    match config.get_ports().first() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_named_without_the_password() {
        assert_eq!(
            host_of("postgres://app:secret@db.internal:5433/app"),
            "db.internal:5433"
        );
        assert_eq!(
            host_of("host=/run/postgresql dbname=app"),
            "/run/postgresql"
        );
    }
}
