//! The sweep: carry out the deletions the database scheduled, then the trash's restores and purges.

use crate::config::Removal;
use crate::db::{BatchResult, Db, DbError, Verdict};
use crate::volume::{RemoveOutcome, RestoreOutcome, Volume};

/// How many deletions one transaction claims and settles.
pub const DEFAULT_BATCH_SIZE: i32 = 500;

/// What a sweep needs besides the volume and the database.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The name the sweep claims deletions under.
    pub worker: String,
    /// Into the trash, or for good.
    pub removal: Removal,
    /// Deletions per batch.
    pub batch_size: i32,
}

/// What became of one scheduled deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Moved into the trash.
    Trashed {
        /// Its size.
        bytes: u64,
    },
    /// Deleted for good.
    Deleted {
        /// Its size.
        bytes: u64,
    },
    /// There was no file any more.
    AlreadyGone,
    /// A row references it again; it stays.
    Referenced,
    /// It could not be removed; the database retries it later.
    Failed(String),
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Deletions claimed.
    pub claimed: u64,
    /// Files moved into the trash or deleted.
    pub removed: u64,
    /// Files that were gone already.
    pub already_gone: u64,
    /// Deletions skipped because a row references the file again.
    pub referenced: u64,
    /// Files that could not be removed.
    pub failed: u64,
    /// Space freed (or moved into the trash).
    pub bytes_freed: u64,
    /// Files brought back from the trash.
    pub restored: u64,
    /// Trashed files deleted after the retention.
    pub purged: u64,
    /// Restores and purges that failed.
    pub trash_errors: u64,
}

/// Carries out every due deletion in batches, then restores and purges; calls `on_file` for each deletion.
pub async fn sweep(
    volume: &Volume,
    db: &mut Db,
    options: &SweepOptions,
    on_file: &mut (dyn FnMut(&str, &FileOutcome) + Send),
) -> Result<SweepReport, DbError> {
    let volume_path = volume.root().display().to_string();
    let run_id = db.start_run("sweep", &options.worker, &volume_path).await?;
    let mut report = SweepReport::default();
    loop {
        let claimed = db.claim(&options.worker, options.batch_size).await?;
        if claimed.is_empty() {
            break;
        }
        report.claimed += claimed.len() as u64;
        let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
        let batch = db.begin_batch(&options.worker).await?;
        let verdicts = batch.check(&ids).await?;
        let mut results = Vec::with_capacity(verdicts.len());
        let mut settled_any = false;
        for (item, verdict) in verdicts {
            let outcome = match verdict {
                Verdict::Busy | Verdict::Lost => {
                    tracing::debug!(path = %item.path, ?verdict, "left for later");
                    continue;
                }
                Verdict::Referenced => FileOutcome::Referenced,
                Verdict::Delete => remove(volume, options.removal, &item.path),
            };
            settled_any = true;
            let result = match &outcome {
                FileOutcome::Trashed { bytes } => done(item.id, "trashed", *bytes),
                FileOutcome::Deleted { bytes } => done(item.id, "deleted", *bytes),
                FileOutcome::AlreadyGone => done(item.id, "already_gone", 0),
                FileOutcome::Referenced => {
                    report.referenced += 1;
                    on_file(&item.path, &outcome);
                    continue;
                }
                FileOutcome::Failed(error) => BatchResult::Failed {
                    id: item.id,
                    error: error.clone(),
                },
            };
            match &outcome {
                FileOutcome::Trashed { bytes } | FileOutcome::Deleted { bytes } => {
                    report.removed += 1;
                    report.bytes_freed += bytes;
                }
                FileOutcome::AlreadyGone => report.already_gone += 1,
                FileOutcome::Failed(error) => {
                    report.failed += 1;
                    tracing::warn!(path = %item.path, error = %error, "cannot delete a file");
                }
                FileOutcome::Referenced => {}
            }
            on_file(&item.path, &outcome);
            results.push(result);
        }
        batch.settle(&results).await?;
        // Every deletion was busy or another sweeper's: claiming again would find them again.
        if !settled_any {
            break;
        }
    }
    restore_requested(volume, db, &mut report).await?;
    purge_due(volume, db, &mut report).await?;
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    db.finish_run(
        run_id,
        as_i64(report.claimed),
        as_i64(report.removed),
        as_i64(report.bytes_freed),
        as_i64(report.failed + report.trash_errors),
    )
    .await?;
    tracing::info!(
        claimed = report.claimed,
        removed = report.removed,
        already_gone = report.already_gone,
        referenced = report.referenced,
        failed = report.failed,
        bytes_freed = report.bytes_freed,
        restored = report.restored,
        purged = report.purged,
        "sweep finished"
    );
    Ok(report)
}

fn done(id: i64, outcome: &'static str, bytes: u64) -> BatchResult {
    BatchResult::Done {
        id,
        outcome,
        bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
    }
}

fn remove(volume: &Volume, removal: Removal, path: &str) -> FileOutcome {
    let result = match removal {
        Removal::Trash => volume.trash(path),
        Removal::Unlink => volume.unlink(path),
    };
    match (result, removal) {
        (Ok(RemoveOutcome::Removed { bytes }), Removal::Trash) => FileOutcome::Trashed { bytes },
        (Ok(RemoveOutcome::Removed { bytes }), Removal::Unlink) => FileOutcome::Deleted { bytes },
        (Ok(RemoveOutcome::AlreadyGone), _) => FileOutcome::AlreadyGone,
        (Err(error), _) => FileOutcome::Failed(error.to_string()),
    }
}

async fn restore_requested(
    volume: &Volume,
    db: &Db,
    report: &mut SweepReport,
) -> Result<(), DbError> {
    let requests = db.restore_requests().await?;
    if requests.is_empty() {
        return Ok(());
    }
    let (mut restored, mut purged) = (Vec::new(), Vec::new());
    for request in requests {
        match volume.restore(&request.path) {
            Ok(RestoreOutcome::Restored { bytes }) => {
                tracing::info!(path = %request.path, bytes, "restored from the trash");
                restored.push(request.id);
            }
            Ok(RestoreOutcome::NotInTrash) => {
                tracing::warn!(path = %request.path, "asked to restore, but the trash no longer holds it");
                purged.push(request.id);
            }
            Ok(RestoreOutcome::TargetExists) => {
                report.trash_errors += 1;
                tracing::warn!(path = %request.path, "cannot restore: a file already stands at the path; the trashed copy stays");
            }
            Err(error) => {
                report.trash_errors += 1;
                tracing::warn!(path = %request.path, error = %error, "cannot restore a file");
            }
        }
    }
    report.restored += restored.len() as u64;
    db.trash_done(&restored, &purged).await
}

async fn purge_due(volume: &Volume, db: &Db, report: &mut SweepReport) -> Result<(), DbError> {
    let due = db.purge_due().await?;
    if due.is_empty() {
        return Ok(());
    }
    let mut purged = Vec::new();
    for entry in due {
        match volume.purge_trashed(&entry.path) {
            Ok(outcome) => {
                if let RemoveOutcome::Removed { bytes } = outcome {
                    tracing::debug!(path = %entry.path, bytes, "purged from the trash");
                    report.purged += 1;
                }
                purged.push(entry.id);
            }
            Err(error) => {
                report.trash_errors += 1;
                tracing::warn!(path = %entry.path, error = %error, "cannot purge a trashed file");
            }
        }
    }
    db.trash_done(&[], &purged).await
}
