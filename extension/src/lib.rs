//! filegc: PostgreSQL keeps track of which files the application's rows
//! reference, and schedules the deletion of files that lost their last one.
//!
//! The SQL in `../sql/` holds the tables, views, the lock protocol and the
//! sweeper's protocol (shared with the portable engine), one file per
//! concept. This crate provides what is faster or only possible in Rust: the
//! path rules as SQL functions and the row triggers.

use pgrx::prelude::*;

mod error;
mod generic_plan;
mod ref_path;
mod triggers;
mod writer_locks;

::pgrx::pg_module_magic!(name, version);

/// Runs once when a backend loads the library.
///
/// pgrx captures a Rust backtrace for every error that passes through Rust
/// code and puts it in the error's DETAIL when backtraces are enabled; a
/// server started with `RUST_BACKTRACE` set (for another reason) would show
/// the application pages of Rust frames. Only `RUST_LIB_BACKTRACE=1`, set
/// on purpose, brings them back.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

// The current definition of every SQL object, one file per concept, in the
// order a new install needs them (each file names what it is for). An
// upgrade from an earlier release runs `sql/filegc--A--B.sql` instead.
extension_sql_file!(
    "../sql/paths.sql",
    name = "paths",
    requires = [
        ref_path::ref_path,
        ref_path::ref_paths,
        ref_path::ref_path_problem
    ]
);
extension_sql_file!("../sql/schema.sql", name = "schema", requires = ["paths"]);
extension_sql_file!(
    "../sql/settings.sql",
    name = "settings",
    requires = ["schema"]
);
extension_sql_file!(
    "../sql/references.sql",
    name = "references",
    requires = ["settings"]
);
extension_sql_file!(
    "../sql/notes.sql",
    name = "notes",
    requires = ["references"]
);
extension_sql_file!(
    "../sql/extension/triggers.sql",
    name = "triggers",
    requires = [
        "notes",
        triggers::references_trigger,
        triggers::truncate_trigger
    ]
);
extension_sql_file!(
    "../sql/tracking.sql",
    name = "tracking",
    requires = ["triggers"]
);
extension_sql_file!("../sql/queue.sql", name = "queue", requires = ["tracking"]);
extension_sql_file!("../sql/trash.sql", name = "trash", requires = ["queue"]);
extension_sql_file!(
    "../sql/inventory.sql",
    name = "inventory",
    requires = ["trash"]
);
extension_sql_file!(
    "../sql/reports.sql",
    name = "reports",
    requires = ["inventory"]
);
extension_sql_file!(
    "../sql/cleanup.sql",
    name = "cleanup",
    requires = ["reports"]
);
extension_sql_file!(
    "../sql/install.sql",
    name = "install",
    requires = ["cleanup"]
);
extension_sql_file!("../sql/alerts.sql", name = "alerts", requires = ["install"]);
extension_sql_file!("../sql/grants.sql", name = "grants", requires = ["alerts"]);
extension_sql_file!(
    "../sql/event_triggers.sql",
    name = "event_triggers",
    requires = ["grants"]
);

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    /// One-off initialization before the test cluster starts.
    pub fn setup(_options: Vec<&str>) {}

    /// postgresql.conf settings the tests need.
    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
