//! The trash's side in the database: the copies asked back, those due for purging, and the checked purge.

use super::connection::{Db, DbError};

/// What became of a copy asked back, for the database to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrashRecord {
    /// It is back at its path.
    Restored,
    /// The trash no longer holds it, nor does its path.
    Purged,
    /// It stays in the trash; the request stays for the next pass.
    Unchanged,
}

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

    /// Moves requested copies back out of the trash, each only under its
    /// path's locks: in one READ COMMITTED transaction,
    /// `filegc.check_before_restore` takes the locks and decides with a fresh
    /// snapshot, `restore` moves each copy it allows and says what became of
    /// it, and `filegc.trash_done` records that before the locks are let go.
    /// Returns the requests left for the next pass because a sweep or a
    /// writer holds their path.
    pub async fn restore_checked(
        &mut self,
        requests: &[TrashRequest],
        mut restore: impl FnMut(&TrashRequest) -> TrashRecord,
    ) -> Result<Vec<TrashRequest>, DbError> {
        let ids: Vec<i64> = requests.iter().map(|request| request.id).collect();
        let transaction = self.read_committed().await?;
        let verdicts = transaction
            .query(
                "SELECT id, path, verdict FROM filegc.check_before_restore($1)",
                &[&ids],
            )
            .await?;
        let (mut restored, mut purged, mut busy) = (Vec::new(), Vec::new(), Vec::new());
        for row in &verdicts {
            let request = TrashRequest {
                id: row.get(0),
                path: row.get(1),
            };
            match row.get::<_, &str>(2) {
                "restore" => match restore(&request) {
                    TrashRecord::Restored => restored.push(request.id),
                    TrashRecord::Purged => purged.push(request.id),
                    TrashRecord::Unchanged => {}
                },
                "busy" => busy.push(request),
                _ => {}
            }
        }
        transaction
            .execute("SELECT filegc.trash_done($1, $2)", &[&restored, &purged])
            .await?;
        transaction.commit().await?;
        Ok(busy)
    }

    /// Brings back trashed copies that no deletion recorded (those
    /// [`Db::request_restores`] named), each only under its path's locks and
    /// while a row still wants it (`filegc.check_before_bringing_back`): a
    /// copy a sweep has just put there for a deletion of its own is never
    /// taken for one. `bring_back` moves each allowed copy before the locks
    /// are let go.
    pub async fn bring_back_checked(
        &mut self,
        paths: &[String],
        mut bring_back: impl FnMut(&str),
    ) -> Result<(), DbError> {
        let transaction = self.read_committed().await?;
        let allowed = transaction
            .query(
                "SELECT path FROM filegc.check_before_bringing_back($1) WHERE verdict = 'bring_back'",
                &[&paths],
            )
            .await?;
        for row in &allowed {
            bring_back(row.get(0));
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Asks back every trashed copy that must be kept now (see
    /// `filegc.request_restores`); returns those of `trashed` that no
    /// deletion recorded, which the caller brings back itself through
    /// [`Db::bring_back_checked`].
    pub async fn request_restores(&self, trashed: &[String]) -> Result<Vec<String>, DbError> {
        let row = self
            .client
            .query_one("SELECT filegc.request_restores($1)", &[&trashed])
            .await?;
        Ok(row.get(0))
    }
}
