//! Everything that can go wrong inside the extension's Rust code.

use thiserror::Error;

/// An error raised by a filegc trigger or function.
#[derive(Debug, Error)]
pub enum FilegcError {
    /// The trigger's arguments do not describe tracked columns; `filegc.track()` writes them.
    #[error("filegc: trigger {trigger} has malformed arguments ({detail}); run filegc.track() again for this table")]
    TriggerArguments { trigger: String, detail: String },
    /// A tracked column is missing from the table (renamed or dropped without CASCADE).
    #[error("filegc: tracked column \"{column}\" is missing from table {table}; run filegc.track() with its new name, or filegc.untrack()")]
    MissingColumn { table: String, column: String },
    /// PostgreSQL refused to give the trigger what it needs.
    #[error("filegc: {0}")]
    Trigger(#[from] pgrx::PgTriggerError),
    /// A column value could not be read as text.
    #[error("filegc: {0}")]
    Datum(#[from] pgrx::datum::TryFromDatumError),
    /// A function the triggers read their constants from returned NULL.
    #[error("filegc: {function} returned NULL; reinstall filegc (DROP EXTENSION filegc CASCADE; CREATE EXTENSION filegc) or update it")]
    NullConstant { function: &'static str },
    /// A trigger's statement could not be prepared.
    #[error("filegc: could not prepare {sql:?} (SPI code {code}); run ALTER EXTENSION filegc UPDATE, or reinstall filegc")]
    Prepare { sql: String, code: i32 },
    /// A trigger's prepared statement failed without raising an error.
    #[error("filegc: a trigger's statement failed (SPI code {code})")]
    Execute { code: i32 },
    /// A query run through SPI failed.
    #[error("filegc: {0}")]
    Spi(#[from] pgrx::spi::Error),
}
