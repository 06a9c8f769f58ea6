//! The row and TRUNCATE triggers that `filegc.track()` installs.
//!
//! A row trigger works out, in Rust and without touching the database, which
//! paths left the row and which entered it, and which stored values are no
//! references. Only when something changed does it call the database, with
//! prepared statements, and all it writes there are notes (the writers' side,
//! `sql/notes.sql`): for paths entering, it takes their locks (point 1 of the
//! lock protocol in `sql/references.sql`, see [`writer_locks`]) and notes
//! those a deletion of which may be open; for paths leaving, it notes them,
//! and the sweeper decides which no row references any more. Invalid values
//! go to `filegc.note_entered`. An UPDATE that leaves the row alone does not
//! reach the trigger (its WHEN clause), and one that leaves the tracked
//! values alone costs a comparison of strings.
//!
//! A new library can meet the SQL of an older version: between installing
//! it and `ALTER EXTENSION filegc UPDATE`, new sessions load it while the
//! database still has the 0.1.0 functions. The application's writes go on
//! meanwhile: the trigger then runs the 0.1.0 protocol ([`Sql::Tombstones`]).

use crate::error::FilegcError;
use crate::generic_plan::GenericPlan;
use crate::writer_locks::{self, LockClasses};
use filegc_path_rules::{normalize, Reference};
use pgrx::datum::TryFromDatumError;
use pgrx::prelude::*;
use pgrx::IntoDatum;
use pgrx::{AllocatedByPostgres, PgTrigger};
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::Duration;

/// One tracked column, as `filegc.install_triggers` encodes it in the trigger's arguments.
struct TrackedColumn {
    name: String,
    is_array: bool,
    prefixes: Vec<String>,
}

/// A value that cannot be a reference, with its column and the reason.
struct InvalidValue {
    column: String,
    value: String,
    problem: &'static str,
}

type TriggerResult<'a> = Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, FilegcError>;

/// Decodes the arguments: per column its name, `array` or `scalar`, the number
/// of prefixes, then the prefixes.
fn tracked_columns(trigger: &PgTrigger<'_>) -> Result<Vec<TrackedColumn>, FilegcError> {
    let malformed = |detail: &str| FilegcError::TriggerArguments {
        trigger: trigger.name().unwrap_or("?").to_owned(),
        detail: detail.to_owned(),
    };
    let args = trigger.extra_args()?;
    let mut args = args.into_iter();
    let mut columns = Vec::new();
    while let Some(name) = args.next() {
        let is_array = match args.next().as_deref() {
            Some("array") => true,
            Some("scalar") => false,
            _ => return Err(malformed("expected 'array' or 'scalar'")),
        };
        let count: usize = args
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| malformed("expected the number of prefixes"))?;
        let prefixes: Vec<String> = args.by_ref().take(count).collect();
        if prefixes.len() != count {
            return Err(malformed("fewer prefixes than announced"));
        }
        columns.push(TrackedColumn {
            name,
            is_array,
            prefixes,
        });
    }
    Ok(columns)
}

/// The table's schema-qualified name, for messages only: looking it up costs
/// a catalog access the per-row path does not need.
fn qualified_name(trigger: &PgTrigger<'_>) -> String {
    format!(
        "{}.{}",
        trigger.table_schema().unwrap_or_default(),
        trigger.table_name().unwrap_or_default()
    )
}

/// The raw stored values of one column of a row.
fn stored_values(
    row: &PgHeapTuple<'_, AllocatedByPostgres>,
    column: &TrackedColumn,
    trigger: &PgTrigger<'_>,
) -> Result<Vec<String>, FilegcError> {
    let missing = |error| match error {
        TryFromDatumError::NoSuchAttributeName(_) => FilegcError::MissingColumn {
            table: qualified_name(trigger),
            column: column.name.clone(),
        },
        other => FilegcError::Datum(other),
    };
    if column.is_array {
        let values: Option<Array<'_, &str>> = row.get_by_name(&column.name).map_err(missing)?;
        Ok(values
            .map(|a| a.iter().flatten().map(str::to_owned).collect())
            .unwrap_or_default())
    } else {
        let value: Option<String> = row.get_by_name(&column.name).map_err(missing)?;
        Ok(value.into_iter().collect())
    }
}

/// The references of a row, plus the values that cannot be references.
fn references(
    values: &[(usize, Vec<String>)],
    columns: &[TrackedColumn],
) -> (BTreeSet<String>, Vec<InvalidValue>) {
    let mut paths = BTreeSet::new();
    let mut invalid = Vec::new();
    for (index, column_values) in values {
        let column = &columns[*index];
        for value in column_values {
            match normalize(value, &column.prefixes) {
                Reference::Path(path) => {
                    paths.insert(path);
                }
                Reference::Invalid(reason) => invalid.push(InvalidValue {
                    column: column.name.clone(),
                    value: value.clone(),
                    problem: reason.describe(),
                }),
                Reference::Absent => {}
            }
        }
    }
    (paths, invalid)
}

fn row_values(
    row: Option<&PgHeapTuple<'_, AllocatedByPostgres>>,
    columns: &[TrackedColumn],
    trigger: &PgTrigger<'_>,
) -> Result<Vec<(usize, Vec<String>)>, FilegcError> {
    match row {
        None => Ok(Vec::new()),
        Some(row) => columns
            .iter()
            .enumerate()
            .map(|(index, column)| Ok((index, stored_values(row, column, trigger)?)))
            .collect(),
    }
}

/// How a warning shows a stored value: a value can be megabytes long.
fn shown(value: &str) -> String {
    const SHOWN_CHARACTERS: usize = 200;
    let characters = value.chars().count();
    if characters <= SHOWN_CHARACTERS {
        format!("{value:?}")
    } else {
        let start: String = value.chars().take(SHOWN_CHARACTERS).collect();
        format!("{start:?}... ({characters} characters)")
    }
}

/// How many invalid values a transaction is warned about one by one. A
/// forgotten prefix makes every value of a bulk write invalid: a warning
/// each would flood the application's log and the server's.
const INVALID_VALUES_WARNED_ONE_BY_ONE: u32 = 10;

/// A transaction of this backend: its start time and top transaction id
/// (the id alone is none for a write that assigns none).
type Transaction = (pg_sys::TimestampTz, pg_sys::TransactionId);

const NO_TRANSACTION: Transaction = (0, pg_sys::TransactionId::INVALID);

fn current_transaction() -> Transaction {
    // SAFETY: plain reads of the current transaction's state, in a trigger.
    unsafe {
        (
            pg_sys::GetCurrentTransactionStartTimestamp(),
            pg_sys::GetTopTransactionIdIfAny(),
        )
    }
}

thread_local! {
    /// The transaction and the invalid values it was warned about so far.
    static INVALID_VALUES_WARNED: Cell<(Transaction, u32)> = const { Cell::new((NO_TRANSACTION, 0)) };
    /// The last transaction warned that it holds off every deletion.
    static WARNED_HOLDING_EVERY_PATH: Cell<Transaction> = const { Cell::new(NO_TRANSACTION) };
}

/// Warns about values that are no references, the first ones of a
/// transaction one by one and then once for the rest; the application's
/// write goes on.
fn warn_invalid(table: &str, invalid: &[InvalidValue]) {
    if invalid.is_empty() {
        return;
    }
    let transaction = current_transaction();
    let (seen_in, earlier) = INVALID_VALUES_WARNED.get();
    let mut warned = if seen_in == transaction { earlier } else { 0 };
    for value in invalid {
        warned = warned.saturating_add(1);
        if warned <= INVALID_VALUES_WARNED_ONE_BY_ONE {
            warning!(
                "filegc: {table}.{} holds {}, which is not a file reference ({}); it is recorded in filegc.invalid_refs and never counts as one. Check the prefixes given to filegc.track()",
                value.column,
                shown(&value.value),
                value.problem
            );
        } else if warned == INVALID_VALUES_WARNED_ONE_BY_ONE + 1 {
            warning!(
                "filegc: more stored values in this transaction are not file references; they are recorded in filegc.invalid_refs without a warning each. Check the prefixes given to filegc.track()"
            );
        }
    }
    INVALID_VALUES_WARNED.set((transaction, warned));
}

/// AFTER INSERT OR DELETE, and AFTER UPDATE of the row; FOR EACH ROW.
#[pg_trigger]
fn references_trigger<'a>(trigger: &'a PgTrigger<'a>) -> TriggerResult<'a> {
    watch_relations();
    let columns = tracked_columns(trigger)?;
    let old = trigger.old();
    let new = trigger.new();
    let values = row_values(old.as_ref(), &columns, trigger)
        .and_then(|old_values| Ok((old_values, row_values(new.as_ref(), &columns, trigger)?)));
    let (old_values, new_values) = match values {
        Ok(values) => values,
        // A column renamed without the event trigger that follows renames:
        // the row's paths cannot be read, so every path is held instead.
        Err(FilegcError::MissingColumn { table, column }) => {
            hold_every_path(&table, &column)?;
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    if old.is_some() && new.is_some() && old_values == new_values {
        return Ok(None);
    }

    let (old_paths, _) = references(&old_values, &columns);
    let (new_paths, invalid) = references(&new_values, &columns);
    // An UPDATE reports only values that are new to the row.
    let already_seen: BTreeSet<&String> = old_values.iter().flat_map(|(_, v)| v).collect();
    let invalid: Vec<InvalidValue> = invalid
        .into_iter()
        .filter(|v| !already_seen.contains(&v.value))
        .collect();
    warn_invalid(&qualified_name(trigger), &invalid);

    let removed: Vec<String> = old_paths.difference(&new_paths).cloned().collect();
    let added: Vec<String> = new_paths.difference(&old_paths).cloned().collect();
    if added.is_empty() && removed.is_empty() && invalid.is_empty() {
        return Ok(None);
    }
    let table_oid = trigger.relid()?;
    PLANS.with(|cell| {
        let mut plans = cell.borrow_mut();
        Spi::connect_mut(|client| {
            let plans = Plans::current(&mut plans, client)?;
            if !added.is_empty() || !invalid.is_empty() {
                plans.enter(client, table_oid, added, invalid)?;
            }
            if !removed.is_empty() {
                plans.release(client, removed)?;
            }
            Ok::<(), FilegcError>(())
        })
    })?;
    Ok(None)
}

/// Holds off every deletion until the transaction ends (the SHARED
/// escalation lock, point 6 of the lock protocol), and warns, once per
/// transaction: every row of a bulk write would repeat it.
fn hold_every_path(table: &str, column: &str) -> Result<(), FilegcError> {
    Spi::run("SELECT pg_advisory_xact_lock_shared(filegc.escalation_lock_class(), 0)")?;
    let transaction = current_transaction();
    if WARNED_HOLDING_EVERY_PATH.replace(transaction) != transaction {
        warning!(
            "filegc: {table} has no column \"{column}\" any more, which filegc tracks; this transaction holds off every deletion until it ends"
        );
    }
    Ok(())
}

/// The SQL a trigger talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sql {
    /// Since 0.2.0: the triggers write notes.
    Notes,
    /// 0.1.0, until `ALTER EXTENSION filegc UPDATE`: the triggers write
    /// tombstones and cancel them.
    Tombstones,
}

impl Sql {
    /// The version the database has installed.
    fn installed(client: &mut pgrx::spi::SpiClient<'_>) -> Result<Sql, FilegcError> {
        let version: Option<String> = client
            .select(
                "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'filegc'",
                None,
                &[],
            )?
            .first()
            .get(1)?;
        Ok(match version.as_deref() {
            Some("0.1.0") => Sql::Tombstones,
            _ => Sql::Notes,
        })
    }

    /// The statement that takes in the paths entering a row (after their
    /// locks, for the notes), and its argument types.
    fn enter_statement(self) -> (&'static str, Vec<pg_sys::Oid>) {
        let text_array = pg_sys::TEXTARRAYOID;
        match self {
            Sql::Notes => (
                "INSERT INTO filegc.notes (kind, path)
                 SELECT 'e', p FROM filegc.entering_paths_to_note($1, $2) AS p",
                vec![text_array, pg_sys::BOOLOID],
            ),
            Sql::Tombstones => (
                "SELECT filegc.apply_reference_changes('{}'::text[], $1)",
                vec![text_array],
            ),
        }
    }

    /// The statement that takes in the invalid values entering a row.
    fn invalid_statement(self) -> &'static str {
        match self {
            Sql::Notes => "SELECT filegc.note_entered($1::regclass, '{}', $2, $3, $4)",
            Sql::Tombstones => {
                "SELECT filegc.record_invalid_refs($1::regclass, $2::name[], $3, $4)"
            }
        }
    }

    /// The statement that takes in the paths leaving a row: a note, or in
    /// 0.1.0 the function that probes the tracked columns and schedules.
    fn release_statement(self) -> &'static str {
        match self {
            // As filegc.note_released does; the paths come distinct and not null.
            Sql::Notes => {
                "INSERT INTO filegc.notes (kind, path)
                 SELECT 'r', p FROM pg_catalog.unnest($1::pg_catalog.text[]) AS p"
            }
            Sql::Tombstones => "SELECT filegc.release_paths($1)",
        }
    }
}

/// What the notes protocol reads once per backend: the lock classes,
/// whether NOTIFY must be left out, and how long released paths let a
/// sweeper woken sleep (all fixed while the server runs, or until the
/// extension is updated, which prepares the plans again).
#[derive(Debug, Clone, Copy)]
struct NotesConstants {
    locks: LockClasses,
    prepared_transactions_enabled: bool,
    release_wake_pause: Duration,
}

impl NotesConstants {
    fn read(client: &mut pgrx::spi::SpiClient<'_>) -> Result<NotesConstants, FilegcError> {
        let row = client
            .select(
                "SELECT filegc.path_lock_class(), filegc.escalation_lock_class(), filegc.max_path_locks(),
                        pg_catalog.current_setting('max_prepared_transactions') <> '0',
                        pg_catalog.date_part('epoch', filegc.release_wake_pause())",
                None,
                &[],
            )?
            .first();
        let missing = |function| move || FilegcError::NullConstant { function };
        Ok(NotesConstants {
            locks: LockClasses {
                path: row
                    .get(1)?
                    .ok_or_else(missing("filegc.path_lock_class()"))?,
                escalation: row
                    .get(2)?
                    .ok_or_else(missing("filegc.escalation_lock_class()"))?,
                max_path_locks: row.get(3)?.ok_or_else(missing("filegc.max_path_locks()"))?,
            },
            prepared_transactions_enabled: row
                .get(4)?
                .ok_or_else(missing("current_setting('max_prepared_transactions')"))?,
            release_wake_pause: Duration::try_from_secs_f64(
                row.get(5)?
                    .ok_or_else(missing("filegc.release_wake_pause()"))?,
            )
            .unwrap_or(Duration::ZERO),
        })
    }
}

/// The statements a row trigger runs, prepared once per backend: parsing
/// and planning them anew for every row would cost more than the work
/// itself. PostgreSQL's plan cache replans them if the functions behind
/// them are replaced.
struct Plans {
    /// The SQL they were prepared for.
    sql: Sql,
    /// Takes in the paths entering a row.
    enter: GenericPlan,
    /// Takes in the invalid values entering a row.
    invalid: GenericPlan,
    /// Takes in the paths leaving a row.
    release: GenericPlan,
    /// For the notes: the lock classes and whether to NOTIFY.
    constants: Option<NotesConstants>,
}

impl Plans {
    /// The plans for the SQL installed now, prepared when there are none or
    /// the SQL may have changed (see `SQL_MAY_HAVE_CHANGED`).
    fn current<'p>(
        cell: &'p mut Option<Plans>,
        client: &mut pgrx::spi::SpiClient<'_>,
    ) -> Result<&'p mut Plans, FilegcError> {
        let recheck = SQL_MAY_HAVE_CHANGED.with(|changed| changed.replace(false));
        if cell.is_none() || recheck {
            let sql = Sql::installed(client)?;
            if cell.as_ref().is_none_or(|plans| plans.sql != sql) {
                let (enter, enter_types) = sql.enter_statement();
                let text_array = pg_sys::TEXTARRAYOID;
                *cell = Some(Plans {
                    sql,
                    enter: GenericPlan::prepare(client, enter, &enter_types)?,
                    invalid: GenericPlan::prepare(
                        client,
                        sql.invalid_statement(),
                        &[pg_sys::OIDOID, text_array, text_array, text_array],
                    )?,
                    release: GenericPlan::prepare(client, sql.release_statement(), &[text_array])?,
                    constants: match sql {
                        Sql::Notes => Some(NotesConstants::read(client)?),
                        Sql::Tombstones => None,
                    },
                });
            }
        }
        Ok(cell.as_mut().expect("prepared above"))
    }

    /// Takes the paths and invalid values that entered a row in.
    fn enter(
        &self,
        client: &mut pgrx::spi::SpiClient<'_>,
        table_oid: pg_sys::Oid,
        paths: Vec<String>,
        invalid: Vec<InvalidValue>,
    ) -> Result<(), FilegcError> {
        if !paths.is_empty() {
            match self.constants {
                Some(constants) => {
                    writer_locks::hold_paths(&paths, constants.locks);
                    // At READ COMMITTED the writer sees the deletions
                    // committed before its statement; at the higher levels
                    // it does not, so it notes every path.
                    // SAFETY: a plain read of a backend-local setting.
                    let note_every =
                        unsafe { pg_sys::XactIsoLevel } as u32 != pg_sys::XACT_READ_COMMITTED;
                    let noted = self
                        .enter
                        .execute(client, &[datum(paths), datum(note_every)])?;
                    if noted > 0 {
                        writer_locks::wake_sweeper(constants.prepared_transactions_enabled, None);
                    }
                }
                None => {
                    self.enter.execute(client, &[datum(paths)])?;
                }
            }
        }
        if !invalid.is_empty() {
            let mut columns = Vec::with_capacity(invalid.len());
            let mut values = Vec::with_capacity(invalid.len());
            let mut problems = Vec::with_capacity(invalid.len());
            for value in invalid {
                columns.push(value.column);
                values.push(value.value);
                problems.push(value.problem);
            }
            self.invalid.execute(
                client,
                &[
                    datum(table_oid),
                    datum(columns),
                    datum(values),
                    datum(problems),
                ],
            )?;
        }
        Ok(())
    }

    /// Takes the paths that left a row in.
    fn release(
        &self,
        client: &mut pgrx::spi::SpiClient<'_>,
        paths: Vec<String>,
    ) -> Result<(), FilegcError> {
        self.release.execute(client, &[datum(paths)])?;
        if let Some(constants) = self.constants {
            writer_locks::wake_sweeper(
                constants.prepared_transactions_enabled,
                Some(constants.release_wake_pause),
            );
        }
        Ok(())
    }
}

/// An argument of a prepared statement: never NULL here.
fn datum(value: impl IntoDatum) -> pg_sys::Datum {
    value
        .into_datum()
        .expect("the triggers pass no NULL arguments")
}

thread_local! {
    static PLANS: RefCell<Option<Plans>> = const { RefCell::new(None) };
    /// Whether `ALTER EXTENSION filegc UPDATE` may have run: the update
    /// re-creates the triggers of every tracked table, which invalidates
    /// their relation cache entries, which sets this flag.
    static SQL_MAY_HAVE_CHANGED: Cell<bool> = const { Cell::new(true) };
    /// Whether this backend registered `sql_may_have_changed`: PostgreSQL
    /// offers few callback slots, and they cannot be given back.
    static WATCHING_RELATIONS: Cell<bool> = const { Cell::new(false) };
}

/// A relation cache callback: any invalidation may be the update of filegc's SQL.
unsafe extern "C-unwind" fn sql_may_have_changed(_argument: pg_sys::Datum, _relation: pg_sys::Oid) {
    SQL_MAY_HAVE_CHANGED.with(|changed| changed.set(true));
}

/// Registers `sql_may_have_changed`, once per backend.
fn watch_relations() {
    if !WATCHING_RELATIONS.with(|watching| watching.replace(true)) {
        // SAFETY: registers, once per backend, a callback that only sets a flag.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(
                Some(sql_may_have_changed),
                pg_sys::Datum::from(0),
            );
        }
    }
}

/// BEFORE TRUNCATE, FOR EACH STATEMENT: schedules the paths only this table referenced.
#[pg_trigger]
fn truncate_trigger<'a>(trigger: &'a PgTrigger<'a>) -> TriggerResult<'a> {
    Spi::run_with_args(
        "SELECT filegc.release_table($1::regclass)",
        &[trigger.relid()?.into()],
    )?;
    Ok(None)
}
