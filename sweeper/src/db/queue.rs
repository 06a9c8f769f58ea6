//! The deletion queue: claiming due deletions, the final check under the path locks, and settling a batch.

use std::collections::HashMap;
use std::time::Duration;

use thiserror::Error;
use tokio_postgres::error::Severity;

use super::connection::{Db, DbError};

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

/// The version of a bucket's object the latest listing saw, as the inventory keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVersion {
    /// Its size.
    pub size_bytes: u64,
    /// Its ETag.
    pub etag: String,
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

/// What one file of a batch came to, for [`Batch::settle`].
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

impl Db {
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

    /// How long a writer that woke the sweeper for released paths lets
    /// later releases wait instead of waking it again
    /// (`filegc.release_wake_pause()`).
    pub async fn release_wake_pause(&self) -> Result<Duration, DbError> {
        let seconds: f64 = self
            .client
            .query_one(
                "SELECT extract(epoch FROM filegc.release_wake_pause())::float8",
                &[],
            )
            .await?
            .get(0);
        Ok(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::ZERO))
    }
}

impl Batch<'_> {
    /// The versions of `paths` the latest listing of a bucket saw, by path;
    /// a path it did not see, or a volume's, has none.
    pub async fn listed_versions(
        &self,
        paths: &[&str],
    ) -> Result<HashMap<String, ListedVersion>, DbError> {
        let rows = self
            .transaction
            .query(
                "SELECT path, size_bytes, etag FROM filegc.listed_versions($1)",
                &[&paths],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let size: i64 = row.get(1);
                let version = ListedVersion {
                    size_bytes: u64::try_from(size).unwrap_or(0),
                    etag: row.get(2),
                };
                (row.get(0), version)
            })
            .collect())
    }

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
