//! The settings, as the maintenance policies read them.

use chrono::{DateTime, Utc};

use super::connection::{Db, DbError};

/// One setting's value, and for an interval its length in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingValue {
    /// The setting's name.
    pub name: String,
    /// Its value as text.
    pub value: String,
    /// For an interval setting, its length in seconds, as PostgreSQL reads it.
    pub seconds: Option<f64>,
}

/// Settings as the database had them at one instant.
#[derive(Debug, Clone)]
pub struct SettingsSnapshot {
    /// The database's clock when they were read.
    pub now: DateTime<Utc>,
    /// The values asked for that exist.
    pub values: Vec<SettingValue>,
}

impl Db {
    /// The values of `names` now, with the database's clock.
    pub async fn settings(&self, names: &[&str]) -> Result<SettingsSnapshot, DbError> {
        let now: DateTime<Utc> = self.client.query_one("SELECT now()", &[]).await?.get(0);
        let rows = self
            .client
            .query(
                "SELECT name, value, \
                        CASE WHEN kind = 'interval' THEN extract(epoch FROM value::interval)::float8 END \
                   FROM filegc.settings WHERE name = ANY ($1)",
                &[&names],
            )
            .await?;
        let values = rows
            .iter()
            .map(|row| SettingValue {
                name: row.get(0),
                value: row.get(1),
                seconds: row.get(2),
            })
            .collect();
        Ok(SettingsSnapshot { now, values })
    }
}
