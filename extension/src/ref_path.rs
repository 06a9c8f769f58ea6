//! The SQL faces of the path rules.

use crate::path_rules::{normalize, Reference};
use pgrx::prelude::*;

fn prefixes_of(prefixes: Array<'_, &str>) -> Vec<String> {
    prefixes.iter().flatten().map(str::to_owned).collect()
}

/// The path a stored value references, relative to the volume root; NULL when
/// it references nothing or cannot be a reference.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn ref_path(value: &str, prefixes: Array<'_, &str>) -> Option<String> {
    match normalize(value, &prefixes_of(prefixes)) {
        Reference::Path(path) => Some(path),
        Reference::Absent | Reference::Invalid(_) => None,
    }
}

/// The paths an array of stored values references (NULLs and invalid values
/// left out, duplicates kept once).
#[pg_extern(immutable, strict, parallel_safe)]
pub fn ref_paths(stored_values: Array<'_, &str>, prefixes: Array<'_, &str>) -> Vec<String> {
    let prefixes = prefixes_of(prefixes);
    let mut paths: Vec<String> = stored_values
        .iter()
        .flatten()
        .filter_map(|value| match normalize(value, &prefixes) {
            Reference::Path(path) => Some(path),
            Reference::Absent | Reference::Invalid(_) => None,
        })
        .collect();
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// Why a stored value cannot be a reference; NULL when it is one or is empty.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn ref_path_problem(value: &str, prefixes: Array<'_, &str>) -> Option<&'static str> {
    match normalize(value, &prefixes_of(prefixes)) {
        Reference::Invalid(reason) => Some(reason.describe()),
        Reference::Path(_) | Reference::Absent => None,
    }
}
