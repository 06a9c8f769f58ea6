//! The figures of the metrics endpoint that only the database knows. Each
//! is read once after a scan or a sweep, never for a scrape.

use super::connection::{Db, DbError};

impl Db {
    /// The orphans of the latest scan and their bytes: a pass over every
    /// path, as long as `filegc.storage_stats` takes, so once per scan.
    pub async fn orphan_totals(&self) -> Result<(i64, i64), DbError> {
        let row = self
            .client
            .query_one(
                "SELECT orphaned_files, orphaned_bytes FROM filegc.file_totals()",
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// The deletions scheduled and not finished yet.
    pub async fn pending_deletions(&self) -> Result<i64, DbError> {
        let row = self
            .client
            .query_one("SELECT count(*) FROM filegc.pending", &[])
            .await?;
        Ok(row.get(0))
    }
}
