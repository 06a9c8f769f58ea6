//! The filegc sweeper as a library: the operations behind the `filegc` command.
//!
//! A nightly job that scans the volume, schedules the eligible orphans and
//! sweeps them into the trash, without the menu:
//!
//! ```no_run
//! use filegc_sweeper::config::Removal;
//! use filegc_sweeper::db::{Cleanup, Db};
//! use filegc_sweeper::progress::Progress;
//! use filegc_sweeper::scan::{scan, AnotherLister, ScanOptions};
//! use filegc_sweeper::sweep::{sweep, SweepOptions, DEFAULT_BATCH_SIZE};
//! use filegc_sweeper::volume::Volume;
//!
//! async fn clean_up(database_url: &str) -> anyhow::Result<()> {
//!     let volume = Volume::open("/app/facial_evaluations".as_ref())?;
//!     let mut db = Db::connect(database_url).await?;
//!     let worker = "nightly-job".to_owned();
//!     let scanning = ScanOptions {
//!         worker: worker.clone(),
//!         progress: Progress::Hidden,
//!         another_lister: AnotherLister::Wait,
//!     };
//!     scan(&volume, &mut db, &scanning).await?;
//!     db.cleanup(Cleanup::Orphans, false, false).await?; // schedules them; the breaker applies
//!     let options = SweepOptions {
//!         worker,
//!         removal: Removal::Trash,
//!         batch_size: DEFAULT_BATCH_SIZE,
//!         progress: Progress::Hidden,
//!         stop: None,
//!     };
//!     let report = sweep(&volume, &mut db, &options, &mut |path, outcome| println!("{path}: {outcome:?}")).await?;
//!     println!("{} removed, {} bytes freed", report.removed, report.bytes_freed);
//!     Ok(())
//! }
//! ```

#![warn(missing_docs)]

pub mod bucket;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod exit_codes;
pub mod filter;
pub mod fresh_orphans;
pub mod logging;
pub mod maintenance;
pub mod menu;
pub mod metrics;
pub mod offline;
pub mod output;
pub mod portable;
pub mod progress;
pub mod run;
pub mod scan;
pub mod storage;
pub mod sweep;
pub mod tls;
pub mod units;
pub mod volume;
pub mod webhook;
