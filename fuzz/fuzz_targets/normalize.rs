//! Fuzz target: the path rules (the crate `filegc-path-rules`) that map a
//! stored value to a file under the volume root.
//!
//! How to run it for a bounded time (cargo-fuzz needs a nightly compiler, or
//! stable with RUSTC_BOOTSTRAP=1 for its -Z flags):
//!
//!     cargo install cargo-fuzz
//!     cd fuzz
//!     cargo +nightly fuzz run normalize -- -max_total_time=60
//!     # or, with only a stable toolchain:
//!     RUSTC_BOOTSTRAP=1 cargo fuzz run normalize -- -max_total_time=60
//!
//! The input is UTF-8 text: its first line is the stored value, each further
//! line one of the column's prefixes. The rules must never panic, and a path
//! they return is never empty or absolute, has no `.`, `..` or empty segment,
//! no NUL and no backslash, and is its own reference when stored as it is.

#![no_main]

use filegc_path_rules::{normalize, normalize_borrowed, validate_relative, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let value = lines.next().unwrap_or_default();
    let prefixes: Vec<&str> = lines.collect();

    let reference = normalize(value, &prefixes);
    let borrowed = normalize_borrowed(value, &prefixes);
    match (&reference, &borrowed) {
        (Reference::Path(p), Ok(Some(b))) => assert_eq!(p.as_str(), b.as_ref()),
        (Reference::Absent, Ok(None)) => {}
        (Reference::Invalid(r), Err(b)) => assert_eq!(r, b),
        _ => panic!("normalize and normalize_borrowed disagree: {reference:?} / {borrowed:?}"),
    }

    if let Reference::Path(path) = &reference {
        assert!(!path.is_empty(), "empty path from {value:?}");
        assert!(!path.starts_with('/'), "absolute {path:?} from {value:?}");
        assert!(!path.contains('\0'), "NUL in {path:?} from {value:?}");
        assert!(!path.contains('\\'), "backslash in {path:?} from {value:?}");
        for segment in path.split('/') {
            assert!(
                !matches!(segment, "" | "." | ".."),
                "segment {segment:?} in {path:?} from {value:?}"
            );
        }
        assert_eq!(validate_relative(path), Ok(()), "{path:?} from {value:?}");
        assert_eq!(
            normalize(path, &[] as &[&str]).path(),
            Some(path.as_str()),
            "{path:?} from {value:?} is not its own reference"
        );
    }
});
