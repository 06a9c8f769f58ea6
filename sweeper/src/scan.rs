//! The scan: walk the volume, or list the bucket, and stream what is on it into the database's inventory.

use chrono::{DateTime, Utc};
use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;

use crate::bucket::{Bucket, BucketError};
use crate::db::{finish_inventory, write_inventory_row, Db, DbError, VolumeReport};
use crate::progress::Progress;
use crate::storage::{Storage, Store};
use crate::sweep::DEFAULT_BATCH_SIZE;
use crate::units::format_size;
use crate::volume::{RestoreOutcome, TrashItem, TrashUsage, Volume, WalkItem};

/// Walk items handed to the COPY at a time: handing them over one by one
/// would wake the receiving task, a system call, for every file.
const BATCH: usize = 256;

/// How many batches may wait for the COPY; bounds the scan's memory.
const CHANNEL_DEPTH: usize = 4;

/// What a scan needs besides the volume and the database.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// The name the scan records in the database.
    pub worker: String,
    /// Whether a progress bar is drawn.
    pub progress: Progress,
    /// What a bucket's scan does while another sweeper lists the bucket.
    pub another_lister: AnotherLister,
}

/// What a bucket's scan does while another sweeper lists the same bucket:
/// one listing at a time serves every sweeper sharing the database, and
/// spares the bucket's request quota. A volume's scan has one host and
/// ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnotherLister {
    /// Wait for it to finish, then list (a command that shows the result).
    Wait,
    /// Leave the listing to it (`filegc run`, which scans again on its interval).
    Skip,
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Files in the inventory after the scan.
    pub files: i64,
    /// Their total size.
    pub bytes: i64,
    /// Paths that could not be read, each logged.
    pub problems: u64,
    /// The volume's alert level after the capacity report.
    pub alert_level: String,
}

/// Walks the volume into the inventory, then reports its capacity and trash.
pub async fn scan(
    volume: &Volume,
    db: &mut Db,
    options: &ScanOptions,
) -> Result<ScanReport, DbError> {
    let volume_path = volume.root().display().to_string();
    let scan_id = db.start_run("scan", &options.worker, &volume_path).await?;
    let (sender, receiver) = mpsc::channel(CHANNEL_DEPTH);
    let walk = volume.walk();
    let walker = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(BATCH);
        for item in walk {
            batch.push(item);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                // The receiver is gone only when the COPY failed; stop walking then.
                if sender.blocking_send(full).is_err() {
                    return;
                }
            }
        }
        if !batch.is_empty() {
            let _ = sender.blocking_send(batch);
        }
    });
    // A walk's order is no key order a walk could resume from: its rows commit together.
    let (copy, problems) =
        copy_into_inventory(db, scan_id, receiver, Commit::AtTheEnd, options.progress).await?;
    // The walk has ended once its channel closed; a panic in it is a bug worth surfacing.
    if let Err(error) = walker.await {
        std::panic::resume_unwind(error.into_panic());
    }
    finish_inventory(copy).await?;
    let errors = i64::try_from(problems).unwrap_or(i64::MAX);
    let (files, bytes) = db.finish_scan(scan_id, errors).await?;
    let trash = bring_back_kept_copies(volume, db).await?;
    let alert_level = report_volume(volume, db, &options.worker, trash).await?;
    tracing::info!(files, bytes, problems, alert_level = %alert_level, "scan finished");
    Ok(ScanReport {
        files,
        bytes,
        problems,
        alert_level,
    })
}

/// When the rows a scan stages commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// With the last batch (a walk of the volume).
    AtTheEnd,
    /// With each batch, one page of a bucket's listing: a listing
    /// interrupted then resumes after the last key committed.
    EachBatch,
}

/// Copies the batches a walk or a listing sends into the scan's staging
/// rows, until the sender is done; returns the COPY, for the caller to
/// finish (or to abort, by dropping it), and how many problems it logged.
async fn copy_into_inventory(
    db: &Db,
    scan_id: i64,
    mut receiver: mpsc::Receiver<Vec<WalkItem>>,
    commit: Commit,
    progress: Progress,
) -> Result<(Pin<Box<BinaryCopyInWriter>>, u64), DbError> {
    let mut writer = db.inventory_writer().await?;
    let mut problems = 0u64;
    let mut walked_bytes = 0u64;
    let bar = progress.counter("scanned");
    while let Some(batch) = receiver.recv().await {
        let mut walked = 0;
        for item in batch {
            match item {
                WalkItem::Entry(entry) => {
                    walked += 1;
                    walked_bytes += entry.size_bytes;
                    let size = i64::try_from(entry.size_bytes).unwrap_or(i64::MAX);
                    let modified = DateTime::<Utc>::from(entry.modified);
                    let etag = entry.etag.as_deref();
                    write_inventory_row(&mut writer, scan_id, &entry.path, size, modified, etag)
                        .await?;
                }
                WalkItem::Problem(problem) => {
                    problems += 1;
                    tracing::warn!(path = %problem.path(), error = %problem, "cannot inventory a file");
                }
            }
        }
        if commit == Commit::EachBatch {
            // One COPY at a time on a connection: this one ends before the next begins.
            finish_inventory(writer).await?;
            writer = db.inventory_writer().await?;
        }
        bar.inc(walked);
        bar.set_message(format_size(walked_bytes));
    }
    bar.finish_and_clear();
    Ok((writer, problems))
}

/// The alert level of a store without a capacity, as `filegc.alert_level` names it.
pub const UNKNOWN_LEVEL: &str = "unknown";

/// Why a scan of a bucket stopped.
#[derive(Debug, thiserror::Error)]
pub enum BucketScanError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The bucket's listing failed; the inventory keeps the last complete scan's files.
    #[error(transparent)]
    Bucket(#[from] BucketError),
    /// Another sweeper is listing the bucket (only with [`AnotherLister::Skip`]).
    #[error("another sweeper is listing the bucket")]
    AnotherLister,
}

/// Walks the volume or lists the bucket into the inventory.
pub async fn scan_store(
    store: &Store,
    db: &mut Db,
    options: &ScanOptions,
) -> Result<ScanReport, BucketScanError> {
    match store {
        Store::Volume(volume) => Ok(scan(volume, db, options).await?),
        Store::Bucket(bucket) => scan_bucket(bucket, db, options).await,
    }
}

/// Lists the bucket into the inventory, then brings back the trashed copies
/// that must be kept and reports the bucket and its trash. A bucket has no
/// size: its level comes from its byte budget (`unknown` without one).
pub async fn scan_bucket(
    bucket: &Bucket,
    db: &mut Db,
    options: &ScanOptions,
) -> Result<ScanReport, BucketScanError> {
    if !db.try_lock_listing().await? {
        match options.another_lister {
            AnotherLister::Skip => return Err(BucketScanError::AnotherLister),
            AnotherLister::Wait => {
                tracing::info!(bucket = %bucket.location(), "another sweeper is listing the bucket; waiting for it to finish");
                db.lock_listing().await?;
            }
        }
    }
    let listed = list_bucket(bucket, db, options).await;
    // The lock is the session's: an error must not leave it held, or no
    // sweeper would list the bucket again until this one disconnects.
    let unlocked = db.unlock_listing().await;
    let report = listed?;
    unlocked?;
    Ok(report)
}

/// [`scan_bucket`]'s work, under the listing lock.
async fn list_bucket(
    bucket: &Bucket,
    db: &mut Db,
    options: &ScanOptions,
) -> Result<ScanReport, BucketScanError> {
    let location = bucket.location().to_string();
    let (scan_id, after) = match db.resume_scan(&location).await? {
        Some(resumed) => {
            tracing::info!(scan = resumed.scan_id, after = %resumed.last_path, bucket = %location,
                "resuming the listing an interrupted scan left, after the last path it committed");
            (resumed.scan_id, Some(resumed.last_path))
        }
        None => (
            db.start_run("scan", &options.worker, &location).await?,
            None,
        ),
    };
    let (sender, receiver) = mpsc::channel(CHANNEL_DEPTH);
    let lister = bucket.clone();
    let listing = tokio::spawn(async move { lister.list_into(after.as_deref(), sender).await });
    let copied =
        copy_into_inventory(db, scan_id, receiver, Commit::EachBatch, options.progress).await;
    // The listing has ended once its channel closed; a panic in it is a bug worth surfacing.
    let listed = match listing.await {
        Ok(listed) => listed,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    };
    let (copy, problems) = copied?;
    // A listing that failed part way leaves the scan unfinished, the pages
    // it committed staged for the next scan to resume after: finishing it
    // would take the keys not listed for deleted ones.
    listed?;
    finish_inventory(copy).await?;
    let errors = i64::try_from(problems).unwrap_or(i64::MAX);
    let (files, bytes) = db.finish_scan(scan_id, errors).await?;
    // As on a volume: every trashed copy that must be kept now is asked back
    // or, when no deletion recorded it, brought back here.
    let mut continuation: Option<String> = None;
    loop {
        let (trashed, next) = bucket.trash_page(continuation.as_deref()).await?;
        bring_back_unrecorded(bucket, db, &trashed).await?;
        match next {
            Some(next) => continuation = Some(next),
            None => break,
        }
    }
    let alert_level = report_bucket(bucket, db, &options.worker).await?;
    tracing::info!(files, bytes, problems, bucket = %location, "scan finished");
    Ok(ScanReport {
        files,
        bytes,
        problems,
        alert_level,
    })
}

/// How many trashed paths one `filegc.request_restores` call gets: a trash
/// of any size is walked with memory that does not grow with it.
const RESTORE_CHECK_BATCH: usize = 10_000;

/// Brings back every trashed copy that must be kept now, whatever route
/// made the reference that keeps it (a row written at REPEATABLE READ after
/// the deletion, or with the triggers disabled, or restored from a dump):
/// the database asks back the copies it recorded, for the next sweep's
/// restore pass, and names the ones no deletion recorded (a killed
/// sweeper's), which come back here. Returns what the trash holds, counted
/// on the same walk.
async fn bring_back_kept_copies(volume: &Volume, db: &mut Db) -> Result<TrashUsage, DbError> {
    let mut usage = TrashUsage::default();
    let mut batch = Vec::with_capacity(RESTORE_CHECK_BATCH);
    for item in volume.trash_items() {
        if let Ok(TrashItem {
            path: Some(path), ..
        }) = &item
        {
            batch.push(path.clone());
        }
        usage.count(item);
        if batch.len() == RESTORE_CHECK_BATCH {
            bring_back_unrecorded(volume, db, &std::mem::take(&mut batch)).await?;
        }
    }
    bring_back_unrecorded(volume, db, &batch).await?;
    Ok(usage)
}

async fn bring_back_unrecorded<S: Storage>(
    volume: &S,
    db: &mut Db,
    trashed: &[String],
) -> Result<(), DbError> {
    if trashed.is_empty() {
        return Ok(());
    }
    let unrecorded = db.request_restores(trashed).await?;
    // A batch's worth of path locks at a time, as a sweep takes them.
    let batch_size = usize::try_from(DEFAULT_BATCH_SIZE).unwrap_or(1);
    for batch in unrecorded.chunks(batch_size) {
        bring_back_batch(volume, db, batch).await?;
    }
    Ok(())
}

async fn bring_back_batch<S: Storage>(
    volume: &S,
    db: &mut Db,
    paths: &[String],
) -> Result<(), DbError> {
    let check = db.check_bringing_back(paths).await?;
    for path in &check.allowed {
        match volume.restore(path).await {
            Ok(RestoreOutcome::Restored { bytes }) => {
                tracing::warn!(path = %path, bytes, "a row references this trashed file, which no deletion recorded: brought back")
            }
            Ok(outcome) => {
                tracing::warn!(path = %path, ?outcome, "a row references this trashed file, which cannot go back")
            }
            Err(error) => {
                tracing::warn!(path = %path, error = %error, "a row references this trashed file, which cannot go back")
            }
        }
    }
    check.finish().await
}

/// Reports the store (a volume's capacity; a bucket has none) and its
/// trash to the database; returns the alert level.
pub async fn report_store(store: &Store, db: &Db, worker: &str) -> Result<String, DbError> {
    match store {
        Store::Volume(volume) => report_volume(volume, db, worker, volume.trash_usage()).await,
        Store::Bucket(bucket) => report_bucket(bucket, db, worker).await,
    }
}

/// Reports the bucket and its trash against its byte budget, which stands
/// for a volume's size; without one, with no capacity (zero, which the
/// reports read as none). Returns the alert level (`unknown` without a budget).
async fn report_bucket(bucket: &Bucket, db: &Db, worker: &str) -> Result<String, DbError> {
    let trash = bucket.trash_usage().await;
    for problem in &trash.problems {
        tracing::warn!(error = %problem, "cannot count the bucket's trash");
    }
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let (total, used) = match bucket.budget_bytes() {
        Some(budget) => {
            let files = db.inventory_bytes().await?;
            (as_i64(budget), files.saturating_add(as_i64(trash.bytes)))
        }
        None => (0, 0),
    };
    db.report_volume(&VolumeReport {
        worker,
        volume: &bucket.location().to_string(),
        total_bytes: total,
        used_bytes: used,
        free_bytes: total.saturating_sub(used).max(0),
        trash_files: as_i64(trash.files),
        trash_bytes: as_i64(trash.bytes),
    })
    .await
}

/// Reports the volume's capacity, and what the trash holds, to the database; returns the alert level.
async fn report_volume(
    volume: &Volume,
    db: &Db,
    worker: &str,
    trash: TrashUsage,
) -> Result<String, DbError> {
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let (total, used, free) = match volume.capacity() {
        Ok(capacity) => (
            capacity.total_bytes,
            capacity.used_bytes,
            capacity.free_bytes,
        ),
        Err(error) => {
            tracing::warn!(error = %error, "cannot read the volume's capacity");
            (0, 0, 0)
        }
    };
    for problem in &trash.problems {
        tracing::warn!(path = %problem.path(), error = %problem, "cannot read a trashed file");
    }
    let volume_path = volume.root().display().to_string();
    db.report_volume(&VolumeReport {
        worker,
        volume: &volume_path,
        total_bytes: as_i64(total),
        used_bytes: as_i64(used),
        free_bytes: as_i64(free),
        trash_files: as_i64(trash.files),
        trash_bytes: as_i64(trash.bytes),
    })
    .await
}
