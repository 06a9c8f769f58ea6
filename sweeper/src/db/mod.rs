//! The database client: the extension's functions and views, as typed calls.
//!
//! Every call is one round trip for a whole batch of files; the inventory
//! goes in through a binary COPY.

mod alerts;
mod cleanup;
mod connection;
mod inventory;
mod metrics;
mod queue;
mod runs;
mod settings;
mod trash;
mod views;

pub use self::cleanup::{Cleanup, ScheduledCleanup};
pub use self::connection::{describe, Db, DbError, BREAKER_HINT, BREAKER_SQLSTATE};
pub use self::inventory::{finish_inventory, write_inventory_row, VolumeReport};
pub use self::queue::{Batch, BatchResult, Claimed, ListedVersion, SettleError, Verdict};
pub use self::runs::ResumedScan;
pub use self::settings::{SettingValue, SettingsSnapshot};
pub use self::trash::{BringBackCheck, PurgeCheck, RestoreCheck, TrashRecord, TrashRequest};
pub use self::views::{file_row_on_volume, FileRow, ListKind};
