//! The sweep: carry out the deletions the database scheduled, then the trash's restores and purges.

use std::collections::HashMap;

use futures_util::{stream, StreamExt};
use tokio::sync::watch;

use crate::bucket::ObjectVersion;
use crate::config::Removal;
use crate::db::{
    Batch, BatchResult, Claimed, Db, DbError, SettleError, TrashRecord, TrashRequest, Verdict,
};
use crate::progress::Progress;
use crate::storage::Storage;
use crate::units::format_size;
use crate::volume::{RemoveOutcome, RestoreOutcome};

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
    /// Whether a progress bar is drawn.
    pub progress: Progress,
    /// When it turns true, the sweep stops after the batch in hand.
    pub stop: Option<watch::Receiver<bool>>,
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
    /// It must stay (a row references it again, an invalid reference may name it, or filegc no longer manages it).
    Kept,
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
    /// Deletions skipped because the file must stay (see [`FileOutcome::Kept`]).
    pub kept: u64,
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
pub async fn sweep<S: Storage>(
    volume: &S,
    db: &mut Db,
    options: &SweepOptions,
    on_file: &mut (dyn FnMut(&str, &FileOutcome) + Send),
) -> Result<SweepReport, DbError> {
    let run_id = db
        .start_run("sweep", &options.worker, &volume.location())
        .await?;
    let mut report = SweepReport::default();
    let bar = options.progress.counter("swept");
    loop {
        if options.stop.as_ref().is_some_and(|stop| *stop.borrow()) {
            tracing::info!("stopping after the batch in hand");
            break;
        }
        let claimed = db.claim(&options.worker, options.batch_size).await?;
        if claimed.is_empty() {
            break;
        }
        report.claimed += claimed.len() as u64;
        let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
        let batch = db.begin_batch(&options.worker).await?;
        let verdicts = batch.check(&ids).await?;
        let listed = listed_versions(volume, &batch, &verdicts).await?;
        let mut results = Vec::with_capacity(verdicts.len());
        let mut trashed = Vec::new();
        let mut settled_any = false;
        // Every file of the batch is worked on while its transaction holds
        // the path locks; a bucket's requests wait on the network, so several
        // files go at once, and their outcomes come back in the batch's order.
        let carried: Vec<(Claimed, Option<Carried>)> = stream::iter(verdicts)
            .map(|(item, verdict)| {
                let listed = listed.get(&item.path);
                async move {
                    let carried = carry_out(volume, options.removal, &item, verdict, listed).await;
                    (item, carried)
                }
            })
            .buffered(CONCURRENT_FILES)
            .collect()
            .await;
        for (item, carried) in carried {
            let Some(Carried {
                outcome,
                brought_back,
            }) = carried
            else {
                continue;
            };
            if brought_back {
                report.restored += 1;
            }
            settled_any = true;
            let result = match &outcome {
                FileOutcome::Trashed { bytes } => done(item.id, "trashed", *bytes),
                FileOutcome::Deleted { bytes } => done(item.id, "deleted", *bytes),
                FileOutcome::AlreadyGone => done(item.id, "already_gone", 0),
                FileOutcome::Kept => {
                    report.kept += 1;
                    on_file(&item.path, &outcome);
                    continue;
                }
                FileOutcome::Failed(error) => BatchResult::Failed {
                    id: item.id,
                    error: error.clone(),
                },
            };
            if let FileOutcome::Trashed { .. } = outcome {
                trashed.push(item.path.clone());
            }
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
                FileOutcome::Kept => {}
            }
            on_file(&item.path, &outcome);
            bar.inc(1);
            bar.set_message(format!("{} freed", format_size(report.bytes_freed)));
            results.push(result);
        }
        match batch.settle(&results).await {
            Ok(()) => {}
            Err(SettleError::RolledBack(error)) => {
                // The database forgot this batch (its transaction rolled back, and
                // the path locks with it): files it trashed must not stay there
                // unrecorded, or a row that references them again cannot get them back.
                undo_trashing(volume, &trashed).await;
                return Err(error);
            }
            Err(SettleError::Unknown(error)) => {
                // Moving the files back would undo deletions the database may
                // have recorded. Left in the trash, they are settled by the
                // next claim of their deletions if it was not recorded: the
                // trashed copy is recorded then, or brought back to a path
                // that a row references again.
                if !trashed.is_empty() {
                    tracing::warn!(
                        files = trashed.len(),
                        "the connection failed while the batch committed; its trashed files stay in the trash until the database says what became of them"
                    );
                }
                return Err(error);
            }
        }
        // Every deletion was busy or another sweeper's: claiming again would find them again.
        if !settled_any {
            break;
        }
    }
    bar.finish_and_clear();
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
    // `run` sweeps every minute: a sweep that found nothing is not news.
    macro_rules! finished {
        ($level:expr) => {
            tracing::event!(
                $level,
                claimed = report.claimed,
                removed = report.removed,
                already_gone = report.already_gone,
                kept = report.kept,
                failed = report.failed,
                bytes_freed = report.bytes_freed,
                restored = report.restored,
                purged = report.purged,
                "sweep finished"
            )
        };
    }
    if report.is_idle() {
        finished!(tracing::Level::DEBUG);
    } else {
        finished!(tracing::Level::INFO);
    }
    Ok(report)
}

impl SweepReport {
    /// Whether the sweep had nothing to do: nothing claimed, restored or purged, and no trash errors.
    pub fn is_idle(&self) -> bool {
        self.claimed == 0 && self.restored == 0 && self.purged == 0 && self.trash_errors == 0
    }
}

/// Files a batch works on at once. A bucket's requests wait on the network,
/// so several go out together; a volume's operations finish as they start,
/// one after the other, as before.
const CONCURRENT_FILES: usize = 16;

/// What was done to one file of a batch.
struct Carried {
    outcome: FileOutcome,
    /// Whether an unrecorded trashed copy was brought back (see [`carry_out`]).
    brought_back: bool,
}

/// The versions the store's latest listing saw of the files a batch may
/// delete, for each deletion to take that version and no other: an object
/// written again at its key since (an upload whose row has not committed)
/// is not the one the deletion was scheduled for, and stays until a
/// listing sees it. It also spares a request per object. A volume lists none.
async fn listed_versions<S: Storage>(
    volume: &S,
    batch: &Batch<'_>,
    verdicts: &[(Claimed, Verdict)],
) -> Result<HashMap<String, ObjectVersion>, DbError> {
    if !volume.lists_versions() {
        return Ok(HashMap::new());
    }
    let paths: Vec<&str> = verdicts
        .iter()
        .filter(|(_, verdict)| matches!(verdict, Verdict::Delete { .. }))
        .map(|(item, _)| item.path.as_str())
        .collect();
    Ok(batch
        .listed_versions(&paths)
        .await?
        .into_iter()
        .map(|(path, listed)| {
            let version = ObjectVersion {
                size_bytes: listed.size_bytes,
                etag: Some(listed.etag),
            };
            (path, version)
        })
        .collect())
}

/// Does what the final check decided for one file, to the version `listed`
/// when the store's listing saw one; `None` when it is left for later.
async fn carry_out<S: Storage>(
    volume: &S,
    removal: Removal,
    item: &Claimed,
    verdict: Verdict,
    listed: Option<&ObjectVersion>,
) -> Option<Carried> {
    let (outcome, brought_back) = match verdict {
        Verdict::Busy | Verdict::Lost => {
            tracing::debug!(path = %item.path, ?verdict, "left for later");
            return None;
        }
        Verdict::Kept => {
            // A sweeper that died after moving the file into the trash
            // and before recording it left the tombstone claimed, and
            // nothing else knows the file is there: bring it back now.
            // (A recorded trashing is restored, and recorded, by the
            // restore requests below.)
            let died_before = item.attempts > 1;
            let brought_back = died_before
                && matches!(
                    volume.restore(&item.path).await,
                    Ok(RestoreOutcome::Restored { .. })
                );
            if brought_back {
                tracing::warn!(path = %item.path, "it must stay: brought back from the trash");
            }
            (FileOutcome::Kept, brought_back)
        }
        Verdict::Delete {
            trash_copy_recorded,
        } => {
            let outcome = match remove(volume, removal, &item.path, listed).await {
                FileOutcome::AlreadyGone if item.attempts > 1 && !trash_copy_recorded => {
                    finish_unrecorded_trashing(volume, removal, &item.path).await
                }
                outcome => outcome,
            };
            (outcome, false)
        }
    };
    Some(Carried {
        outcome,
        brought_back,
    })
}

/// Moves back the files a failed batch put into the trash.
async fn undo_trashing<S: Storage>(volume: &S, paths: &[String]) {
    for path in paths {
        match volume.restore(path).await {
            Ok(RestoreOutcome::Restored { .. }) => {
                tracing::warn!(path = %path, "the batch was not recorded: moved back from the trash")
            }
            Ok(outcome) => {
                tracing::warn!(path = %path, ?outcome, "the batch was not recorded and the file cannot go back")
            }
            Err(error) => {
                tracing::warn!(path = %path, error = %error, "the batch was not recorded and the file cannot go back")
            }
        }
    }
}

fn done(id: i64, outcome: &'static str, bytes: u64) -> BatchResult {
    BatchResult::Done {
        id,
        outcome,
        bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
    }
}

async fn remove<S: Storage>(
    volume: &S,
    removal: Removal,
    path: &str,
    listed: Option<&ObjectVersion>,
) -> FileOutcome {
    let result = match removal {
        Removal::Trash => volume.trash(path, listed).await,
        Removal::Unlink => volume.unlink(path, listed).await,
    };
    match (result, removal) {
        (Ok(RemoveOutcome::Removed { bytes }), Removal::Trash) => FileOutcome::Trashed { bytes },
        (Ok(RemoveOutcome::Removed { bytes }), Removal::Unlink) => FileOutcome::Deleted { bytes },
        (Ok(RemoveOutcome::AlreadyGone), _) => FileOutcome::AlreadyGone,
        (Err(error), _) => FileOutcome::Failed(error.to_string()),
    }
}

/// An earlier attempt at this deletion may have moved the file into the
/// trash and lost its batch (a sweeper killed, or a connection failing
/// during COMMIT): the copy there is this deletion's, and is recorded so
/// that the trash's retention purges it and a restore finds it.
async fn finish_unrecorded_trashing<S: Storage>(
    volume: &S,
    removal: Removal,
    path: &str,
) -> FileOutcome {
    let found = match removal {
        Removal::Trash => volume
            .trashed_size(path)
            .await
            .map(|size| size.map(|bytes| FileOutcome::Trashed { bytes })),
        Removal::Unlink => volume.purge_trashed(path).await.map(|purged| match purged {
            RemoveOutcome::Removed { bytes } => Some(FileOutcome::Deleted { bytes }),
            RemoveOutcome::AlreadyGone => None,
        }),
    };
    match found {
        Ok(Some(outcome)) => {
            tracing::info!(path = %path, "an earlier attempt moved it into the trash without recording it: recorded now");
            outcome
        }
        Ok(None) => FileOutcome::AlreadyGone,
        Err(error) => FileOutcome::Failed(error.to_string()),
    }
}

/// Carries out the restore requests, in batches under the path locks
/// ([`Db::check_restores`]); a request whose path a sweep or a writer
/// holds waits for the next pass.
async fn restore_requested<S: Storage>(
    volume: &S,
    db: &mut Db,
    report: &mut SweepReport,
) -> Result<(), DbError> {
    let requests = db.restore_requests().await?;
    let batch_size = usize::try_from(DEFAULT_BATCH_SIZE).unwrap_or(1);
    for batch in requests.chunks(batch_size) {
        let check = db.check_restores(batch).await?;
        for request in &check.busy {
            tracing::debug!(path = %request.path, "a sweep or a writer holds the path: restored at the next pass");
        }
        let (mut restored, mut purged) = (Vec::new(), Vec::new());
        for request in &check.allowed {
            match restore_copy(volume, request).await {
                TrashRecord::Restored => {
                    report.restored += 1;
                    restored.push(request.id);
                }
                TrashRecord::Unchanged => report.trash_errors += 1,
                TrashRecord::Purged => purged.push(request.id),
            }
        }
        check.record(&restored, &purged).await?;
    }
    Ok(())
}

/// What `filegc restore` came to for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreResult {
    /// The file is back at its path.
    Restored {
        /// Its size.
        bytes: u64,
    },
    /// The trash no longer holds the copy, but a file stands at its path:
    /// it was brought back already (by a sweep that found the path
    /// referenced again, or by hand).
    AlreadyBack,
    /// The database knows of no trashed copy of the path that is still there.
    NotInTrash,
    /// Something already stands at the path; the trashed copy stays.
    TargetExists,
    /// The file system refused; the request stays for the next sweep.
    Failed(String),
    /// A sweep or a writer holds the path; the request stays for the next sweep.
    Busy,
}

/// Asks the database to restore `path` and carries the restore out on disk
/// at once, under the path's locks ([`Db::check_restores`]).
pub async fn restore_now<S: Storage>(
    volume: &S,
    db: &mut Db,
    path: &str,
) -> Result<RestoreResult, DbError> {
    if !db.request_restore(path).await? {
        return Ok(RestoreResult::NotInTrash);
    }
    let requests: Vec<TrashRequest> = db
        .restore_requests()
        .await?
        .into_iter()
        .filter(|request| request.path == path)
        .collect();
    let mut result = RestoreResult::NotInTrash;
    let check = db.check_restores(&requests).await?;
    let busy = !check.busy.is_empty();
    let (mut restored, mut purged) = (Vec::new(), Vec::new());
    for request in &check.allowed {
        let record;
        (result, record) = restore_one(volume, &request.path).await;
        match record {
            TrashRecord::Restored => restored.push(request.id),
            TrashRecord::Purged => purged.push(request.id),
            TrashRecord::Unchanged => {}
        }
    }
    check.record(&restored, &purged).await?;
    if busy {
        return Ok(RestoreResult::Busy);
    }
    Ok(result)
}

/// What purging trashed copies for good came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Files deleted for good.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Files that could not be deleted, each logged.
    pub problems: u64,
}

/// Unlinks trashed copies for good, in batches under the path locks
/// ([`Db::check_purges`]): the copy of a path that a row references again
/// is asked back instead, and one a writer holds waits for the next pass.
/// Returns what it freed and the ids it recorded purged.
pub async fn purge_trashed<S: Storage>(
    volume: &S,
    db: &mut Db,
    entries: &[TrashRequest],
) -> Result<(PurgeReport, Vec<i64>), DbError> {
    let mut report = PurgeReport::default();
    let mut purged = Vec::new();
    let batch_size = usize::try_from(DEFAULT_BATCH_SIZE).unwrap_or(1);
    for batch in entries.chunks(batch_size) {
        let check = db.check_purges(batch).await?;
        let mut ids = Vec::with_capacity(check.allowed.len());
        for entry in &check.allowed {
            match volume.purge_trashed(&entry.path).await {
                Ok(RemoveOutcome::Removed { bytes }) => {
                    tracing::debug!(path = %entry.path, bytes, "purged from the trash");
                    report.files += 1;
                    report.bytes += bytes;
                    ids.push(entry.id);
                }
                Ok(RemoveOutcome::AlreadyGone) => ids.push(entry.id),
                Err(error) => {
                    report.problems += 1;
                    tracing::warn!(path = %entry.path, error = %error, "cannot delete a trashed file");
                }
            }
        }
        check.record(&ids).await?;
        purged.extend(ids);
    }
    Ok((report, purged))
}

/// What emptying the trash did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmptiedTrash {
    /// The copies deleted for good.
    pub purged: PurgeReport,
    /// The copies left in the trash on purpose.
    pub kept: u64,
}

/// Deletes for good the trashed copies that finished deletions recorded and
/// that nothing wants. Copies asked back go back first, and each recorded
/// copy goes only under the path locks ([`purge_trashed`]). A copy that must
/// stay (asked back, its path held by a writer, referenced, or named by an
/// invalid reference) stays, and so does every copy no finished deletion
/// recorded: one a sweep moved there and has not recorded yet, or one a
/// killed sweeper left, which the next sweep records, or brings back when a
/// row references its path.
pub async fn empty_trash<S: Storage>(volume: &S, db: &mut Db) -> Result<EmptiedTrash, DbError> {
    db.process_notes().await?;
    restore_requested(volume, db, &mut SweepReport::default()).await?;
    let known = db.trashed().await?;
    let (purged, _) = purge_trashed(volume, db, &known).await?;
    let left = volume.trash_usage().await;
    for problem in &left.problems {
        tracing::warn!(path = %problem.path(), error = %problem, "cannot read a trashed file");
    }
    tracing::info!(
        files = purged.files,
        bytes = purged.bytes,
        problems = purged.problems,
        kept = left.files,
        "trash emptied"
    );
    Ok(EmptiedTrash {
        purged,
        kept: left.files,
    })
}

/// Moves one requested copy back to its path: what came of it, and what
/// the database records. The sweep's restore pass and `filegc restore`
/// both go through here, so that they record the same outcome the same way.
async fn restore_one<S: Storage>(volume: &S, path: &str) -> (RestoreResult, TrashRecord) {
    match volume.restore(path).await {
        Ok(RestoreOutcome::Restored { bytes }) => {
            (RestoreResult::Restored { bytes }, TrashRecord::Restored)
        }
        Ok(RestoreOutcome::NotInTrash) if volume.holds(path).await.unwrap_or(false) => {
            (RestoreResult::AlreadyBack, TrashRecord::Restored)
        }
        Ok(RestoreOutcome::NotInTrash) => (RestoreResult::NotInTrash, TrashRecord::Purged),
        Ok(RestoreOutcome::TargetExists) => (RestoreResult::TargetExists, TrashRecord::Unchanged),
        Err(error) => (
            RestoreResult::Failed(error.to_string()),
            TrashRecord::Unchanged,
        ),
    }
}

/// Restores one requested copy for the sweep's restore pass, logging the
/// outcome; a copy left unchanged stays requested for the next pass.
async fn restore_copy<S: Storage>(volume: &S, request: &TrashRequest) -> TrashRecord {
    let path = &request.path;
    let (result, record) = restore_one(volume, path).await;
    match result {
        RestoreResult::Restored { bytes } => {
            tracing::info!(path = %path, bytes, "restored from the trash");
        }
        RestoreResult::AlreadyBack => {
            tracing::info!(path = %path, "restored: the copy was back at its path already");
        }
        RestoreResult::NotInTrash => {
            tracing::warn!(path = %path, "asked to restore, but the trash no longer holds it");
        }
        RestoreResult::TargetExists => {
            tracing::warn!(path = %path, "cannot restore: a file already stands at the path; the trashed copy stays");
        }
        RestoreResult::Failed(error) => {
            tracing::warn!(path = %path, error = %error, "cannot restore a file");
        }
        RestoreResult::Busy => {}
    }
    record
}

async fn purge_due<S: Storage>(
    volume: &S,
    db: &mut Db,
    report: &mut SweepReport,
) -> Result<(), DbError> {
    let due = db.purge_due().await?;
    let (purged, _) = purge_trashed(volume, db, &due).await?;
    report.purged += purged.files;
    report.trash_errors += purged.problems;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_is_idle_only_when_it_touched_nothing() {
        assert!(SweepReport::default().is_idle());
        let busy = [
            SweepReport {
                claimed: 1,
                ..SweepReport::default()
            },
            SweepReport {
                restored: 1,
                ..SweepReport::default()
            },
            SweepReport {
                purged: 1,
                ..SweepReport::default()
            },
            SweepReport {
                trash_errors: 1,
                ..SweepReport::default()
            },
        ];
        for report in busy {
            assert!(!report.is_idle(), "{report:?}");
        }
    }
}
