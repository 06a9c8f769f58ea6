//! The filegc sweeper as a library: the operations behind the `filegc` command.

#![warn(missing_docs)]

/// The rules that map stored values to volume paths, shared with the extension.
#[path = "../../extension/src/path_rules.rs"]
pub mod path_rules;

pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod exit_codes;
pub mod menu;
pub mod offline;
pub mod progress;
pub mod run;
pub mod scan;
pub mod sweep;
pub mod tls;
pub mod units;
pub mod volume;
