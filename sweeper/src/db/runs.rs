//! The run records: each scan and sweep starts one and finishes it with its counts.

use super::connection::{Db, DbError};

impl Db {
    /// Starts a run record (`scan` or `sweep`); returns its id.
    pub async fn start_run(&self, kind: &str, worker: &str, volume: &str) -> Result<i64, DbError> {
        let row = self
            .client
            .query_one(
                "SELECT filegc.start_run($1, $2, $3)",
                &[&kind, &worker, &volume],
            )
            .await?;
        Ok(row.get(0))
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
}
