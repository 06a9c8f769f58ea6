//! The row and TRUNCATE triggers that `filegc.track()` installs.
//!
//! A row trigger works out, in Rust and without touching the database, which
//! paths left the row and which entered it. Only when something changed does
//! it call the database, with prepared statements: paths entering go to
//! `filegc.apply_reference_changes`, paths leaving go through the steps of
//! `filegc.release_paths`, under the lock protocol described in
//! `sql/references.sql`. An UPDATE that leaves the tracked values alone costs a
//! comparison of strings.

use crate::error::FilegcError;
use crate::path_rules::{normalize, Reference};
use pgrx::datum::TryFromDatumError;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::{AllocatedByPostgres, PgTrigger};
use pgrx::{PgBuiltInOids, PgOid};
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::BTreeSet;
use std::ffi::CString;

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

/// Records invalid values and warns about them; the application's write goes on.
fn record_invalid(
    table_oid: pg_sys::Oid,
    table: &str,
    invalid: Vec<InvalidValue>,
) -> Result<(), FilegcError> {
    for value in &invalid {
        warning!(
            "filegc: {table}.{} holds {:?}, which is not a file reference ({}); it is recorded in filegc.invalid_refs and never counts as one. Check the prefixes given to filegc.track()",
            value.column,
            value.value,
            value.problem
        );
    }
    let (columns, values, problems): (Vec<String>, Vec<String>, Vec<&str>) = invalid
        .into_iter()
        .map(|v| (v.column, v.value, v.problem))
        .fold(
            (vec![], vec![], vec![]),
            |(mut c, mut v, mut p), (column, value, problem)| {
                c.push(column);
                v.push(value);
                p.push(problem);
                (c, v, p)
            },
        );
    Spi::run_with_args(
        "SELECT filegc.record_invalid_refs($1::regclass, $2::name[], $3, $4)",
        &[
            table_oid.into(),
            columns.into(),
            values.into(),
            problems.into(),
        ],
    )?;
    Ok(())
}

/// AFTER INSERT OR DELETE OR UPDATE OF the tracked columns, FOR EACH ROW.
#[pg_trigger]
fn references_trigger<'a>(trigger: &'a PgTrigger<'a>) -> TriggerResult<'a> {
    let columns = tracked_columns(trigger)?;
    let old = trigger.old();
    let new = trigger.new();
    let old_values = row_values(old.as_ref(), &columns, trigger)?;
    let new_values = row_values(new.as_ref(), &columns, trigger)?;
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
    if !invalid.is_empty() {
        record_invalid(trigger.relid()?, &qualified_name(trigger), invalid)?;
    }

    let removed: Vec<String> = old_paths.difference(&new_paths).cloned().collect();
    let added: Vec<String> = new_paths.difference(&old_paths).cloned().collect();
    if removed.is_empty() && added.is_empty() {
        return Ok(None);
    }
    if !added.is_empty() {
        apply_reference_changes(Vec::new(), added)?;
    }
    if !removed.is_empty() {
        release_paths(removed)?;
    }
    Ok(None)
}

thread_local! {
    /// The plan of the one statement a row trigger runs, prepared once per
    /// backend: parsing and planning it anew for every row would cost more
    /// than the work itself. PostgreSQL's plan cache replans it if the
    /// function behind it is replaced.
    static APPLY_REFERENCE_CHANGES: OnceCell<OwnedPreparedStatement> = const { OnceCell::new() };
}

fn apply_reference_changes(removed: Vec<String>, added: Vec<String>) -> Result<(), FilegcError> {
    APPLY_REFERENCE_CHANGES.with(|cell| {
        Spi::connect_mut(|client| {
            if cell.get().is_none() {
                let text_array = PgOid::BuiltIn(PgBuiltInOids::TEXTARRAYOID);
                let prepared = client
                    .prepare_mut(
                        "SELECT filegc.apply_reference_changes($1, $2)",
                        &[text_array, text_array],
                    )?
                    .keep();
                let _ = cell.set(prepared);
            }
            let statement = cell.get().expect("prepared above");
            client.update(statement, None, &[removed.into(), added.into()])?;
            Ok(())
        })
    })
}

/// The statements that release the paths leaving a row, prepared once per
/// backend.
struct ReleasePlans {
    /// The contested paths (point 4 of the lock protocol).
    contested: OwnedPreparedStatement,
    /// The text of the probe of every tracked column.
    probe_text: OwnedPreparedStatement,
    schedule: OwnedPreparedStatement,
    probe: Option<GenericProbe>,
}

/// The probe of the tracked columns, kept with a generic plan. Its one
/// parameter is an array of a path or two, and for such a parameter
/// PostgreSQL would plan the probe anew at every call, which cost more than
/// running it; pgrx's prepared statements cannot ask for a generic plan.
struct GenericProbe {
    /// The text the plan was made from.
    text: String,
    plan: pg_sys::SPIPlanPtr,
}

impl GenericProbe {
    /// Prepares `text`; must run inside an SPI connection.
    fn prepare(text: String) -> Result<GenericProbe, FilegcError> {
        let query =
            CString::new(text.as_str()).map_err(|_| FilegcError::Probe("NUL in its text"))?;
        let mut argument_types = [pg_sys::TEXTARRAYOID];
        // SAFETY: the caller holds an SPI connection; a malformed query raises
        // a PostgreSQL error, which pgrx turns into a Rust panic.
        let plan = unsafe {
            pg_sys::SPI_prepare_cursor(
                query.as_ptr(),
                1,
                argument_types.as_mut_ptr(),
                pg_sys::CURSOR_OPT_GENERIC_PLAN as i32,
            )
        };
        // SAFETY: a non-null plan from SPI_prepare_cursor; keeping it moves it
        // out of the SPI procedure's memory, so it outlives this connection.
        if plan.is_null() || unsafe { pg_sys::SPI_keepplan(plan) } != 0 {
            return Err(FilegcError::Probe("it could not be prepared"));
        }
        Ok(GenericProbe { text, plan })
    }

    /// The paths among `paths` that no tracked column references; must run
    /// inside an SPI connection.
    fn unreferenced(&self, paths: Vec<String>) -> Result<Vec<String>, FilegcError> {
        let mut values = [paths
            .into_datum()
            .ok_or(FilegcError::Probe("its argument was NULL"))?];
        let nulls = [b' ' as std::ffi::c_char];
        // SAFETY: a kept plan with one text[] parameter, given one non-null
        // text[] datum; the caller holds an SPI connection.
        let status = unsafe {
            pg_sys::SPI_execute_plan(self.plan, values.as_mut_ptr(), nulls.as_ptr(), false, 1)
        };
        // SAFETY: after a successful SELECT, SPI_tuptable holds its rows;
        // the probe returns exactly one row of one text[] column.
        unsafe {
            if status != pg_sys::SPI_OK_SELECT as i32
                || pg_sys::SPI_processed != 1
                || pg_sys::SPI_tuptable.is_null()
            {
                return Err(FilegcError::Probe("it did not return one row"));
            }
            let table = &*pg_sys::SPI_tuptable;
            let mut is_null = false;
            let datum = pg_sys::SPI_getbinval(*table.vals, table.tupdesc, 1, &mut is_null);
            Ok(Vec::<String>::from_datum(datum, is_null).unwrap_or_default())
        }
    }
}

impl Drop for GenericProbe {
    fn drop(&mut self) {
        // SAFETY: the plan was kept by `prepare` and is freed once, here.
        unsafe {
            pg_sys::SPI_freeplan(self.plan);
        }
    }
}

thread_local! {
    static RELEASE_PLANS: RefCell<Option<ReleasePlans>> = const { RefCell::new(None) };
    /// Whether the probe must be built again. Building it reads
    /// filegc.tracked and formats each column's expression, which cost as
    /// much as the rest of a row's release; it changes only when
    /// filegc.track() or untrack() creates or drops a tracked table's index
    /// and trigger, and that invalidates the table's relation cache entry in
    /// every backend, which sets this flag.
    static PROBE_MAY_BE_STALE: Cell<bool> = const { Cell::new(true) };
    /// Whether this backend registered `probe_may_be_stale`: PostgreSQL
    /// offers few callback slots, and they cannot be given back.
    static WATCHING_RELATIONS: Cell<bool> = const { Cell::new(false) };
}

/// A relation cache callback: any invalidation may be a change of the tracked columns.
unsafe extern "C-unwind" fn probe_may_be_stale(_argument: pg_sys::Datum, _relation: pg_sys::Oid) {
    PROBE_MAY_BE_STALE.with(|stale| stale.set(true));
}

/// What `filegc.release_paths(paths)` does, with every statement prepared:
/// the SQL function runs its probe with EXECUTE, which parses and plans it
/// for every row. The probe is built again whenever a tracked column may
/// have changed (see `PROBE_MAY_BE_STALE`); the sweeper's final check
/// builds its own, so a late change can cost a needless tombstone, never a
/// file.
fn release_paths(paths: Vec<String>) -> Result<(), FilegcError> {
    let text_array = PgOid::BuiltIn(PgBuiltInOids::TEXTARRAYOID);
    RELEASE_PLANS.with(|cell| {
        let mut plans = cell.borrow_mut();
        Spi::connect_mut(|client| {
            if !WATCHING_RELATIONS.with(|watching| watching.replace(true)) {
                // SAFETY: registers, once per backend, a callback that only sets a flag.
                unsafe {
                    pg_sys::CacheRegisterRelcacheCallback(
                        Some(probe_may_be_stale),
                        pg_sys::Datum::from(0),
                    );
                }
            }
            if plans.is_none() {
                *plans = Some(ReleasePlans {
                    contested: client
                        .prepare_mut("SELECT filegc.contested_leaving_paths($1)", &[text_array])?
                        .keep(),
                    probe_text: client
                        .prepare_mut("SELECT filegc.unreferenced_probe(NULL)", &[])?
                        .keep(),
                    schedule: client
                        .prepare_mut("SELECT filegc.schedule_unreferenced($1)", &[text_array])?
                        .keep(),
                    probe: None,
                });
            }
            let plans = plans.as_mut().expect("prepared above");
            let mut doomed: Vec<String> = client
                .update(&plans.contested, None, &[paths.clone().into()])?
                .first()
                .get(1)?
                .unwrap_or_default();
            let uncontested: Vec<String> = paths
                .into_iter()
                .filter(|path| !doomed.contains(path))
                .collect();
            if !uncontested.is_empty() {
                let stale = PROBE_MAY_BE_STALE.with(|stale| stale.replace(false));
                if stale || plans.probe.is_none() {
                    let text: String = client
                        .update(&plans.probe_text, None, &[])?
                        .first()
                        .get(1)?
                        .unwrap_or_default();
                    if plans.probe.as_ref().is_none_or(|probe| probe.text != text) {
                        plans.probe = Some(GenericProbe::prepare(text)?);
                    }
                }
                let probe = plans.probe.as_ref().expect("prepared above");
                doomed.extend(probe.unreferenced(uncontested)?);
            }
            if !doomed.is_empty() {
                client.update(&plans.schedule, None, &[doomed.into()])?;
            }
            Ok(())
        })
    })
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
