//! The trash's side in the database: the copies asked back, those due for purging, and the checked purge.

use tokio_postgres::Transaction;

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

    /// Takes the path locks of trashed copies to unlink for good, in one
    /// READ COMMITTED transaction: `filegc.check_before_purge` decides with a
    /// fresh snapshot, and the copies it allows are deleted while the
    /// returned check holds the locks, then recorded by
    /// [`PurgeCheck::record`] before the locks are let go.
    pub async fn check_purges(
        &mut self,
        entries: &[TrashRequest],
    ) -> Result<PurgeCheck<'_>, DbError> {
        let ids: Vec<i64> = entries.iter().map(|entry| entry.id).collect();
        let transaction = self.read_committed().await?;
        let allowed = transaction
            .query(
                "SELECT id, path FROM filegc.check_before_purge($1) WHERE verdict = 'purge'",
                &[&ids],
            )
            .await?
            .iter()
            .map(|row| TrashRequest {
                id: row.get(0),
                path: row.get(1),
            })
            .collect();
        Ok(PurgeCheck {
            transaction,
            allowed,
        })
    }

    /// Takes the path locks of copies asked back, in one READ COMMITTED
    /// transaction: `filegc.check_before_restore` decides with a fresh
    /// snapshot, and the copies it allows are moved back while the returned
    /// check holds the locks, then recorded by [`RestoreCheck::record`]
    /// before the locks are let go.
    pub async fn check_restores(
        &mut self,
        requests: &[TrashRequest],
    ) -> Result<RestoreCheck<'_>, DbError> {
        let ids: Vec<i64> = requests.iter().map(|request| request.id).collect();
        let transaction = self.read_committed().await?;
        let verdicts = transaction
            .query(
                "SELECT id, path, verdict FROM filegc.check_before_restore($1)",
                &[&ids],
            )
            .await?;
        let (mut allowed, mut busy) = (Vec::new(), Vec::new());
        for row in &verdicts {
            let request = TrashRequest {
                id: row.get(0),
                path: row.get(1),
            };
            match row.get::<_, &str>(2) {
                "restore" => allowed.push(request),
                "busy" => busy.push(request),
                _ => {}
            }
        }
        Ok(RestoreCheck {
            transaction,
            allowed,
            busy,
        })
    }

    /// Takes the path locks of trashed copies that no deletion recorded
    /// (those [`Db::request_restores`] named), in one READ COMMITTED
    /// transaction, and keeps those a row still wants
    /// (`filegc.check_before_bringing_back`): a copy a sweep has just put
    /// there for a deletion of its own is never taken for one. The allowed
    /// copies are moved back while the returned check holds the locks.
    pub async fn check_bringing_back(
        &mut self,
        paths: &[String],
    ) -> Result<BringBackCheck<'_>, DbError> {
        let transaction = self.read_committed().await?;
        let allowed = transaction
            .query(
                "SELECT path FROM filegc.check_before_bringing_back($1) WHERE verdict = 'bring_back'",
                &[&paths],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        Ok(BringBackCheck {
            transaction,
            allowed,
        })
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

/// Trashed copies allowed to go for good, their path locks held until [`PurgeCheck::record`].
pub struct PurgeCheck<'a> {
    transaction: Transaction<'a>,
    /// The copies the database allows to delete.
    pub allowed: Vec<TrashRequest>,
}

impl PurgeCheck<'_> {
    /// Records the copies deleted (by id), and lets the locks go.
    pub async fn record(self, purged: &[i64]) -> Result<(), DbError> {
        self.transaction
            .execute("SELECT filegc.trash_done('{}', $1)", &[&purged])
            .await?;
        self.transaction.commit().await?;
        Ok(())
    }
}

/// Copies asked back, their path locks held until [`RestoreCheck::record`].
pub struct RestoreCheck<'a> {
    transaction: Transaction<'a>,
    /// The copies the database allows to move back.
    pub allowed: Vec<TrashRequest>,
    /// The copies whose path a sweep or a writer holds: left for the next pass.
    pub busy: Vec<TrashRequest>,
}

impl RestoreCheck<'_> {
    /// Records the copies back at their path and those the trash no longer
    /// holds (by id), and lets the locks go; the others stay asked back.
    pub async fn record(self, restored: &[i64], purged: &[i64]) -> Result<(), DbError> {
        self.transaction
            .execute("SELECT filegc.trash_done($1, $2)", &[&restored, &purged])
            .await?;
        self.transaction.commit().await?;
        Ok(())
    }
}

/// Unrecorded trashed copies a row wants back, their path locks held until [`BringBackCheck::finish`].
pub struct BringBackCheck<'a> {
    transaction: Transaction<'a>,
    /// The paths whose copy may come back.
    pub allowed: Vec<String>,
}

impl BringBackCheck<'_> {
    /// Lets the locks go.
    pub async fn finish(self) -> Result<(), DbError> {
        self.transaction.commit().await?;
        Ok(())
    }
}
