//! The reports: the files, orphans and old files of the latest scan, and the storage statistics.

use std::time::SystemTime;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{Stream, TryStreamExt};
use serde::Serialize;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::connection::{Db, DbError};

/// Which files a listing shows.
#[derive(Debug, Clone, Copy)]
pub enum ListKind {
    /// Every file, with a managed column.
    All,
    /// Orphaned images.
    Orphans,
    /// Images older than so many days.
    Old(u32),
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

impl FileRow {
    /// Its size as a count of bytes, for totals and filters.
    pub fn size(&self) -> u64 {
        u64::try_from(self.size_bytes).unwrap_or_default()
    }
}

/// An orphan as a listing from the inventory would show it: the time is the
/// one PostgreSQL stores for a file's modification time (whole microseconds
/// since 2000-01-01, rounded toward that date, as the client library sends
/// it), so that both listings of one file agree to the digit.
pub fn file_row_on_volume(path: String, size_bytes: u64, modified: SystemTime) -> FileRow {
    let modified = DateTime::<Utc>::from(modified);
    let postgres_epoch = DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default();
    let modified_at = (modified - postgres_epoch)
        .num_microseconds()
        .map_or(modified, |micros| {
            postgres_epoch + TimeDelta::microseconds(micros)
        });
    FileRow {
        path,
        size_bytes: i64::try_from(size_bytes).unwrap_or(i64::MAX),
        modified_at,
        referenced: Some(false),
        managed: true,
    }
}

impl Db {
    /// The files a listing shows, in its order (every file and the orphans
    /// by path, old files oldest first), row by row as the database sends
    /// them: a listing of millions of files is never held in memory at once.
    pub async fn listed_files(
        &self,
        kind: ListKind,
    ) -> Result<impl Stream<Item = Result<FileRow, DbError>>, DbError> {
        let days = match kind {
            ListKind::Old(days) => i32::try_from(days).unwrap_or(i32::MAX),
            ListKind::All | ListKind::Orphans => 0,
        };
        let (sql, params): (&str, &[&(dyn ToSql + Sync)]) = match kind {
            ListKind::All => (
                "SELECT path, size_bytes, modified_at, referenced, managed FROM filegc.files ORDER BY path",
                &[],
            ),
            ListKind::Orphans => (
                "SELECT path, size_bytes, modified_at, false, true FROM filegc.orphans ORDER BY path",
                &[],
            ),
            ListKind::Old(_) => (
                "SELECT path, size_bytes, modified_at, referenced, true FROM filegc.old_files($1)",
                &[&days],
            ),
        };
        let rows = self.client.query_raw(sql, params.iter().copied()).await?;
        Ok(rows.map_ok(|row| file_row(&row)).map_err(DbError::from))
    }

    /// Every path a tracked column references, once per value, as the
    /// database normalizes them, as it sends them.
    pub async fn referenced_paths(
        &self,
    ) -> Result<impl Stream<Item = Result<String, DbError>>, DbError> {
        let no_params: [&(dyn ToSql + Sync); 0] = [];
        let rows = self
            .client
            .query_raw("SELECT path FROM filegc.reference_rows()", no_params)
            .await?;
        Ok(rows
            .map_ok(|row| row.get::<_, String>(0))
            .map_err(DbError::from))
    }

    /// Which of `paths`, files on the volume now, are orphans by the final
    /// check's rule (`filegc.orphans_among`), in the listings' order.
    pub async fn orphans_among(&self, paths: &[String]) -> Result<Vec<String>, DbError> {
        let rows = self
            .client
            .query("SELECT filegc.orphans_among($1)", &[&paths])
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
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
}

pub(super) fn file_row(row: &Row) -> FileRow {
    FileRow {
        path: row.get(0),
        size_bytes: row.get(1),
        modified_at: row.get(2),
        referenced: row.get(3),
        managed: row.get(4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn stored(modified: SystemTime) -> DateTime<Utc> {
        file_row_on_volume("a.jpg".into(), 1, modified).modified_at
    }

    #[test]
    fn a_files_time_keeps_the_whole_microseconds_postgres_stores() {
        let second = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            stored(second + Duration::from_nanos(1_999)),
            DateTime::<Utc>::from(second + Duration::from_micros(1))
        );
    }

    #[test]
    fn a_time_before_2000_is_rounded_toward_2000_as_postgres_receives_it() {
        let year_2000 = UNIX_EPOCH + Duration::from_secs(946_684_800);
        assert_eq!(
            stored(year_2000 - Duration::from_nanos(500)),
            DateTime::<Utc>::from(year_2000)
        );
        assert_eq!(
            stored(year_2000 - Duration::from_nanos(1_500)),
            DateTime::<Utc>::from(year_2000 - Duration::from_micros(1))
        );
    }
}
