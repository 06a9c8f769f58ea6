//! The run records: each scan and sweep starts one and finishes it with its counts.

use super::connection::{Db, DbError};
use crate::bucket::parse_location;

/// How recently a sweeper must have started a scan or sweep for its place to count as in use.
const IN_USE_WITHIN: &str = "10 minutes";

/// How old an interrupted listing may be and still be resumed: a day covers
/// a restart, a deploy and `filegc run`'s next scans; an older one would
/// mix a stale part into the inventory, so the listing starts over.
const RESUME_WITHIN: &str = "1 day";

/// A bucket's scan that an interrupted listing left, to be carried on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumedScan {
    /// Its run.
    pub scan_id: i64,
    /// The last path its listing committed: the listing goes on after it.
    pub last_path: String,
}

impl Db {
    /// Starts a run record (`scan` or `sweep`); returns its id.
    ///
    /// Refused when the place is a bucket and another sweeper worked on
    /// another place within the last ten minutes, or the place is a volume
    /// and another sweeper worked on a bucket: a database holds one
    /// inventory and one namespace of paths, so two places would each take
    /// the other's files for its own, and the same path in both for one file.
    pub async fn start_run(&self, kind: &str, worker: &str, volume: &str) -> Result<i64, DbError> {
        self.refuse_another_place(volume).await?;
        let row = self
            .client
            .query_one(
                "SELECT filegc.start_run($1, $2, $3)",
                &[&kind, &worker, &volume],
            )
            .await?;
        Ok(row.get(0))
    }

    /// The scan of `location` (a bucket) an interrupted listing left within
    /// the last day, to be resumed after the last path it committed; `None`
    /// when there is none. Refused as [`Db::start_run`] is. The caller holds
    /// the bucket's listing lock.
    pub async fn resume_scan(&self, location: &str) -> Result<Option<ResumedScan>, DbError> {
        self.refuse_another_place(location).await?;
        let row = self
            .client
            .query_opt(
                &format!("SELECT * FROM filegc.resume_scan($1, interval '{RESUME_WITHIN}')"),
                &[&location],
            )
            .await?;
        Ok(row.map(|row| ResumedScan {
            scan_id: row.get(0),
            last_path: row.get(1),
        }))
    }

    /// Finishes a sweep's run record.
    pub async fn finish_run(
        &self,
        run_id: i64,
        seen: i64,
        deleted: i64,
        bytes: i64,
        errors: i64,
    ) -> Result<(), DbError> {
        self.client
            .execute(
                "SELECT filegc.finish_run($1, $2, $3, $4, $5)",
                &[&run_id, &seen, &deleted, &bytes, &errors],
            )
            .await?;
        Ok(())
    }

    async fn refuse_another_place(&self, location: &str) -> Result<(), DbError> {
        let ours_is_bucket = parse_location(location).is_ok();
        let others = self
            .client
            .query(
                &format!(
                    "SELECT volume_path, worker, max(started_at)::text FROM filegc.sweeps \
                      WHERE kind IN ('scan', 'sweep') AND started_at > now() - interval '{IN_USE_WITHIN}' \
                        AND volume_path IS DISTINCT FROM $1 \
                      GROUP BY volume_path, worker ORDER BY 3 DESC"
                ),
                &[&location],
            )
            .await?;
        for row in &others {
            let Some(other): Option<String> = row.get(0) else {
                continue;
            };
            let other_is_bucket = parse_location(&other).is_ok();
            if !ours_is_bucket && !other_is_bucket {
                continue;
            }
            let worker: String = row.get(1);
            let at: String = row.get(2);
            return Err(DbError::Refused(format!(
                "{location}: sweeper {worker:?} worked on {other} in this database at {at}: one database \
                 holds one inventory and one set of paths, so two places (a bucket prefix and another, \
                 or a bucket and a volume) would each take the other's files for their own. Give every \
                 sweeper of this database the same place (FILEGC_STORAGE, FILEGC_VOLUME), or stop the \
                 other one and start this one {IN_USE_WITHIN} after its last run"
            )));
        }
        Ok(())
    }
}
