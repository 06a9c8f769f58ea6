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
use std::cell::{OnceCell, RefCell};
use std::collections::BTreeSet;

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
    /// The contested paths (point 4 of the lock protocol) and the text of
    /// the probe of every tracked column, in one round trip.
    contested_and_probe: OwnedPreparedStatement,
    schedule: OwnedPreparedStatement,
    /// The probe, prepared, with the text it was prepared from.
    probe: Option<(String, OwnedPreparedStatement)>,
}

thread_local! {
    static RELEASE_PLANS: RefCell<Option<ReleasePlans>> = const { RefCell::new(None) };
}

/// What `filegc.release_paths(paths)` does, with every statement prepared:
/// the SQL function runs its probe with EXECUTE, which parses and plans it
/// for every row. The probe's text still comes from the database each time,
/// so a column tracked or untracked since is probed at once.
fn release_paths(paths: Vec<String>) -> Result<(), FilegcError> {
    let text_array = PgOid::BuiltIn(PgBuiltInOids::TEXTARRAYOID);
    RELEASE_PLANS.with(|cell| {
        let mut plans = cell.borrow_mut();
        Spi::connect_mut(|client| {
            if plans.is_none() {
                *plans = Some(ReleasePlans {
                    contested_and_probe: client
                        .prepare_mut(
                            "SELECT filegc.contested_leaving_paths($1), filegc.unreferenced_probe(NULL)",
                            &[text_array],
                        )?
                        .keep(),
                    schedule: client
                        .prepare_mut("SELECT filegc.schedule_unreferenced($1)", &[text_array])?
                        .keep(),
                    probe: None,
                });
            }
            let plans = plans.as_mut().expect("prepared above");
            let row = client
                .update(&plans.contested_and_probe, None, &[paths.clone().into()])?
                .first();
            let mut doomed: Vec<String> = row.get(1)?.unwrap_or_default();
            let probe_text: String = row.get(2)?.unwrap_or_default();
            let uncontested: Vec<String> = paths
                .into_iter()
                .filter(|path| !doomed.contains(path))
                .collect();
            if !uncontested.is_empty() {
                if plans.probe.as_ref().is_none_or(|(text, _)| *text != probe_text) {
                    let prepared = client.prepare_mut(&probe_text, &[text_array])?.keep();
                    plans.probe = Some((probe_text, prepared));
                }
                let (_, probe) = plans.probe.as_ref().expect("prepared above");
                let unreferenced: Vec<String> = client
                    .update(probe, None, &[uncontested.into()])?
                    .first()
                    .get(1)?
                    .unwrap_or_default();
                doomed.extend(unreferenced);
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
