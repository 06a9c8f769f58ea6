//! The record of alert deliveries, which `filegc.alert_deliveries` shows.

use super::connection::{Db, DbError};
use crate::webhook::Delivery;

impl Db {
    /// Records how the delivery of an alert ended.
    pub async fn record_alert_delivery(
        &self,
        worker: &str,
        delivery: &Delivery,
    ) -> Result<(), DbError> {
        let attempts = i32::try_from(delivery.attempts).unwrap_or(i32::MAX);
        self.client
            .execute(
                "SELECT filegc.record_alert_delivery($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &worker,
                    &delivery.finished_at,
                    &delivery.level,
                    &delivery.previous_level,
                    &delivery.webhook_host,
                    &attempts,
                    &delivery.error,
                ],
            )
            .await?;
        Ok(())
    }
}
