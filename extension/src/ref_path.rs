//! The SQL faces of the path rules.

use filegc_path_rules::{normalize, normalize_borrowed, Reference};
use pgrx::prelude::*;

/// The path a stored value references, relative to the volume root; NULL when
/// it references nothing or cannot be a reference.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn ref_path(value: &str, prefixes: Array<'_, &str>) -> Option<String> {
    let prefixes: Vec<&str> = prefixes.iter().flatten().collect();
    normalize_borrowed(value, &prefixes)
        .ok()
        .flatten()
        .map(|path| path.into_owned())
}

/// The paths an array of stored values references (NULLs and invalid values
/// left out, duplicates kept once).
#[pg_extern(immutable, strict, parallel_safe)]
pub fn ref_paths(stored_values: Array<'_, &str>, prefixes: Array<'_, &str>) -> Vec<String> {
    let prefixes: Vec<&str> = prefixes.iter().flatten().collect();
    let mut paths: Vec<String> = stored_values
        .iter()
        .flatten()
        .filter_map(|value| normalize_borrowed(value, &prefixes).ok().flatten())
        .map(|path| path.into_owned())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// Why a stored value cannot be a reference; NULL when it is one or is empty.
#[pg_extern(immutable, strict, parallel_safe)]
pub fn ref_path_problem(value: &str, prefixes: Array<'_, &str>) -> Option<&'static str> {
    let prefixes: Vec<&str> = prefixes.iter().flatten().collect();
    match normalize(value, &prefixes) {
        Reference::Invalid(reason) => Some(reason.describe()),
        Reference::Path(_) | Reference::Absent => None,
    }
}
