//! What the scan reports: its files through a binary COPY, and the volume's capacity and trash.

use std::pin::Pin;

use chrono::{DateTime, Utc};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::connection::{Db, DbError};

/// The advisory-lock key, in the class `filegc.escalation_lock_class()`,
/// that a sweeper holds while it lists a bucket (keys 0 to 2 belong to the
/// sweep, the scan's finish and the scheduled cleanups).
const LISTING_LOCK_KEY: i32 = 3;

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

impl Db {
    /// Takes the bucket's listing lock if no other sweeper holds it; it is
    /// the session's until [`Db::unlock_listing`] or the connection's end.
    pub async fn try_lock_listing(&self) -> Result<bool, DbError> {
        let row = self
            .client
            .query_one(
                "SELECT pg_try_advisory_lock(filegc.escalation_lock_class(), $1)",
                &[&LISTING_LOCK_KEY],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Waits for the bucket's listing lock and takes it.
    pub async fn lock_listing(&self) -> Result<(), DbError> {
        self.client
            .execute(
                "SELECT pg_advisory_lock(filegc.escalation_lock_class(), $1)",
                &[&LISTING_LOCK_KEY],
            )
            .await?;
        Ok(())
    }

    /// The total size of the inventory's files, as the latest scan saw them
    /// less what sweeps deleted since.
    pub async fn inventory_bytes(&self) -> Result<i64, DbError> {
        let row = self
            .client
            .query_one(
                "SELECT coalesce(sum(size_bytes), 0)::bigint FROM filegc.inventory",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Releases the bucket's listing lock.
    pub async fn unlock_listing(&self) -> Result<(), DbError> {
        self.client
            .execute(
                "SELECT pg_advisory_unlock(filegc.escalation_lock_class(), $1)",
                &[&LISTING_LOCK_KEY],
            )
            .await?;
        Ok(())
    }

    /// Opens the COPY into the scan's staging rows.
    pub async fn inventory_writer(&self) -> Result<Pin<Box<BinaryCopyInWriter>>, DbError> {
        let sink = self
            .client
            .copy_in(
                "COPY filegc.inventory_staging (scan_id, path, size_bytes, modified_at, etag) \
                 FROM STDIN (FORMAT binary)",
            )
            .await?;
        Ok(Box::pin(BinaryCopyInWriter::new(
            sink,
            &[
                Type::INT8,
                Type::TEXT,
                Type::INT8,
                Type::TIMESTAMPTZ,
                Type::TEXT,
            ],
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
}

/// Sends one inventory row through the COPY.
pub async fn write_inventory_row(
    writer: &mut Pin<Box<BinaryCopyInWriter>>,
    scan_id: i64,
    path: &str,
    size_bytes: i64,
    modified_at: DateTime<Utc>,
    etag: Option<&str>,
) -> Result<(), DbError> {
    writer
        .as_mut()
        .write(&[&scan_id, &path, &size_bytes, &modified_at, &etag])
        .await?;
    Ok(())
}

/// Ends the COPY; returns the rows written.
pub async fn finish_inventory(mut writer: Pin<Box<BinaryCopyInWriter>>) -> Result<u64, DbError> {
    Ok(writer.as_mut().finish().await?)
}
