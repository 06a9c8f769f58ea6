//! The trash's side in the database: the copies asked back, those due for purging, and the checked purge.

use super::connection::{Db, DbError};

/// A trashed file the database wants restored or purged.
#[derive(Debug, Clone)]
pub struct TrashRequest {
    /// The tombstone's id.
    pub id: i64,
    /// The path relative to the volume root.
    pub path: String,
}

impl Db {
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
}
