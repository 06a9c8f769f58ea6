//! filegc: PostgreSQL keeps track of which files the application's rows
//! reference, and schedules the deletion of files that lost their last one.
//!
//! The SQL in `../sql/` holds the tables, views, the lock protocol and the
//! scheduling logic (shared with the portable engine). This crate provides
//! what is faster or only possible in Rust: the path rules as SQL functions
//! and the row triggers.

use pgrx::prelude::*;

mod error;
mod ref_path;
mod triggers;

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

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!(
    "../sql/references.sql",
    name = "references",
    requires = [
        "schema",
        ref_path::ref_path,
        ref_path::ref_paths,
        ref_path::ref_path_problem,
        triggers::references_trigger,
        triggers::truncate_trigger
    ]
);
extension_sql_file!(
    "../sql/extension_trigger_privileges.sql",
    name = "trigger_privileges",
    requires = [
        "references",
        triggers::references_trigger,
        triggers::truncate_trigger
    ]
);
extension_sql_file!(
    "../sql/event_triggers.sql",
    name = "event_triggers",
    requires = ["references"]
);
extension_sql_file!(
    "../sql/extension_config_dump.sql",
    name = "config_dump",
    requires = ["schema", "references"]
);
// Each later version's changes, in order; see the head of each script.
extension_sql_file!(
    "../sql/filegc--0.1.0--0.2.0.sql",
    name = "v0_2_0",
    requires = ["config_dump", "trigger_privileges", "event_triggers"]
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
