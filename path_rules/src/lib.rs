//! How a value stored in an application column maps to a file on the volume.
//!
//! This crate is plain Rust with no PostgreSQL dependency so that the
//! extension, the sweeper, the integration tests and the fuzz target all use
//! the very same rules.
//!
//! The rules, in order:
//! 1. NULL and the empty string are not references.
//! 2. A query (`?...`) and a fragment (`#...`) are dropped, whether or not the
//!    value is a URL: `/app/images/a.jpg?v=2` names `a.jpg`, as a web server
//!    reads it. A URL (`scheme://host/...`) is also reduced to its path,
//!    which is percent-decoded.
//! 3. The longest matching entry of the column's prefixes is removed.
//! 4. Leading `./` segments are removed.
//! 5. What is left must be a relative path of plain segments: not empty, not
//!    absolute, no `.` or `..` or empty segment, no NUL and no backslash, no
//!    segment over [`MAX_NAME_BYTES`] and at most [`MAX_PATH_BYTES`] in all.
//!    Anything else is an invalid reference: never a reference, but recorded.

#![warn(missing_docs)]

use std::borrow::Cow;
use std::fmt;

/// The longest file name a file system of a volume holds (Linux's NAME_MAX).
pub const MAX_NAME_BYTES: usize = 255;

/// The longest relative path that is a reference. Every reference is an
/// entry of a btree or GIN index, which refuses entries over about 2,700
/// bytes when they do not compress; a longer value would fail the
/// application's write, so it is an invalid reference instead.
pub const MAX_PATH_BYTES: usize = 2048;

/// Why a stored value cannot name a file under the volume root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// Nothing is left once the URL parts and the prefix are removed.
    Empty,
    /// The path starts with `/`: no configured prefix matched it.
    Absolute,
    /// A `..` segment could climb out of the volume root.
    ParentSegment,
    /// A `.` or empty segment (`a/./b`, `a//b`, a trailing `/`) cannot name a file as the scan sees it.
    DotOrEmptySegment,
    /// A NUL byte cannot be part of a file name.
    Nul,
    /// A backslash is a Windows separator, never part of a volume path here.
    Backslash,
    /// The percent-encoding of a URL does not decode to UTF-8.
    BadPercentEncoding,
    /// A segment over [`MAX_NAME_BYTES`], or a path over [`MAX_PATH_BYTES`].
    TooLong,
}

impl InvalidReason {
    /// A short phrase for warnings and the `invalid_refs` table.
    pub fn describe(self) -> &'static str {
        match self {
            InvalidReason::Empty => "nothing is left after removing the URL parts and the prefix",
            InvalidReason::Absolute => "absolute path outside every configured prefix",
            InvalidReason::ParentSegment => "contains a '..' segment",
            InvalidReason::DotOrEmptySegment => "contains a '.' or empty segment",
            InvalidReason::Nul => "contains a NUL byte",
            InvalidReason::Backslash => "contains a backslash",
            InvalidReason::BadPercentEncoding => "percent-encoding does not decode to UTF-8",
            InvalidReason::TooLong => {
                "too long to be a file path (a name over 255 bytes, or over 2048 bytes in all)"
            }
        }
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// What one stored value means for the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// NULL or empty: the row points at no file.
    Absent,
    /// A path relative to the volume root.
    Path(String),
    /// The value is meant as a reference but cannot be one.
    Invalid(InvalidReason),
}

impl Reference {
    /// The relative path, when the value is a valid reference.
    pub fn path(&self) -> Option<&str> {
        match self {
            Reference::Path(p) => Some(p),
            _ => None,
        }
    }
}

/// Maps a stored value to the file it references, given the column's prefixes.
pub fn normalize<S: AsRef<str>>(value: &str, prefixes: &[S]) -> Reference {
    match normalize_borrowed(value, prefixes) {
        Ok(Some(path)) => Reference::Path(path.into_owned()),
        Ok(None) => Reference::Absent,
        Err(reason) => Reference::Invalid(reason),
    }
}

/// Like [`normalize`], but borrows from `value` unless percent-decoding
/// changed it: the SQL function runs once per row of every tracked column.
pub fn normalize_borrowed<'a, S: AsRef<str>>(
    value: &'a str,
    prefixes: &[S],
) -> Result<Option<Cow<'a, str>>, InvalidReason> {
    if value.is_empty() {
        return Ok(None);
    }
    let path: Cow<'a, str> = match url_path(value) {
        Some(encoded) => percent_decode(encoded).ok_or(InvalidReason::BadPercentEncoding)?,
        None => Cow::Borrowed(without_query_or_fragment(value)),
    };
    let path = match path {
        Cow::Borrowed(borrowed) => Cow::Borrowed(strip_leading_dot_slashes(strip_longest_prefix(
            borrowed, prefixes,
        ))),
        Cow::Owned(owned) => {
            Cow::Owned(strip_leading_dot_slashes(strip_longest_prefix(&owned, prefixes)).to_owned())
        }
    };
    validate_relative(&path)?;
    Ok(Some(path))
}

/// The value up to its first `?` or `#`.
fn without_query_or_fragment(value: &str) -> &str {
    value.find(['?', '#']).map_or(value, |end| &value[..end])
}

fn strip_leading_dot_slashes(mut path: &str) -> &str {
    while let Some(rest) = path.strip_prefix("./") {
        path = rest;
    }
    path
}

/// Checks that `path` is a plain relative path that stays under its root.
///
/// The sweeper applies the same check to every path that comes from the
/// database before it touches the disk.
pub fn validate_relative(path: &str) -> Result<(), InvalidReason> {
    if path.is_empty() {
        return Err(InvalidReason::Empty);
    }
    if path.contains('\0') {
        return Err(InvalidReason::Nul);
    }
    if path.contains('\\') {
        return Err(InvalidReason::Backslash);
    }
    if path.starts_with('/') {
        return Err(InvalidReason::Absolute);
    }
    for segment in path.split('/') {
        match segment {
            ".." => return Err(InvalidReason::ParentSegment),
            "." | "" => return Err(InvalidReason::DotOrEmptySegment),
            _ => {}
        }
    }
    if path.len() > MAX_PATH_BYTES || path.split('/').any(|s| s.len() > MAX_NAME_BYTES) {
        return Err(InvalidReason::TooLong);
    }
    Ok(())
}

/// The last segment of a relative path: the file name the scan sees.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Returns the still-encoded path of a URL, or `None` when `value` is not a URL.
fn url_path(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once("://")?;
    let mut chars = scheme.chars();
    let first_is_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let scheme_is_valid =
        first_is_letter && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_is_valid {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let after_authority = &rest[authority_end..];
    let path_end = after_authority
        .find(['?', '#'])
        .unwrap_or(after_authority.len());
    Some(&after_authority[..path_end])
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it
/// is. Borrows when there is nothing to decode.
fn percent_decode(encoded: &str) -> Option<Cow<'_, str>> {
    if !encoded.contains('%') {
        return Some(Cow::Borrowed(encoded));
    }
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                decoded.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(decoded).ok().map(Cow::Owned)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Removes the longest prefix that matches on a segment boundary.
///
/// A prefix written without its trailing slash (`/app/images`) still matches
/// `/app/images/x.jpg` but not `/app/images2/x.jpg`.
fn strip_longest_prefix<'a, S: AsRef<str>>(path: &'a str, prefixes: &[S]) -> &'a str {
    prefixes
        .iter()
        .map(AsRef::as_ref)
        .filter(|prefix| !prefix.is_empty())
        .filter_map(|prefix| {
            let rest = path.strip_prefix(prefix)?;
            if prefix.ends_with('/') || rest.is_empty() {
                Some((prefix.len(), rest))
            } else {
                rest.strip_prefix('/').map(|r| (prefix.len(), r))
            }
        })
        .max_by_key(|(len, _)| *len)
        .map_or(path, |(_, rest)| rest)
}

/// Parsing of the shared test-vector file, for every test suite that checks an
/// implementation of these rules against it.
pub mod vectors {
    /// One line of `tests/data/ref_path_vectors.tsv`.
    #[derive(Debug, Clone)]
    pub struct Vector {
        /// The stored value, unescaped.
        pub value: String,
        /// The column's prefixes.
        pub prefixes: Vec<String>,
        /// The expected relative path; `None` when the value is absent or invalid.
        pub expected_path: Option<String>,
        /// The expected invalid-reason code, when the value is invalid.
        pub expected_invalid: Option<String>,
    }

    /// The vectors as text, compiled into this crate.
    pub const VECTORS_TSV: &str = include_str!("../../tests/data/ref_path_vectors.tsv");

    /// Parses the vector file; panics with the line number on a malformed line.
    pub fn parse(text: &str) -> Vec<Vector> {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.starts_with('#') && !line.is_empty())
            .map(|(index, line)| {
                let fields: Vec<&str> = line.split('\t').collect();
                assert_eq!(
                    fields.len(),
                    3,
                    "line {}: expected 3 tab-separated fields",
                    index + 1
                );
                let prefixes = fields[1]
                    .split('|')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                let (expected_path, expected_invalid) = match fields[2] {
                    "-" => (None, None),
                    code if code.starts_with('!') => (None, Some(code[1..].to_owned())),
                    path => (Some(path.to_owned()), None),
                };
                Vector {
                    value: fields[0].replace("\\0", "\0").replace("\\\\", "\\"),
                    prefixes,
                    expected_path,
                    expected_invalid,
                }
            })
            .collect()
    }

    /// The code the vector file uses for each reason.
    pub fn code(reason: super::InvalidReason) -> &'static str {
        use super::InvalidReason::*;
        match reason {
            Empty => "empty",
            Absolute => "absolute",
            ParentSegment => "parent",
            DotOrEmptySegment => "dot",
            Nul => "nul",
            Backslash => "backslash",
            BadPercentEncoding => "encoding",
            TooLong => "long",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_shared_vector_normalizes_as_expected() {
        let vectors = vectors::parse(vectors::VECTORS_TSV);
        assert!(vectors.len() > 30, "the vector file lost its lines");
        for v in vectors {
            let got = normalize(&v.value, &v.prefixes);
            let expected = match (&v.expected_path, &v.expected_invalid) {
                (Some(p), _) => format!("path {p}"),
                (None, Some(code)) => format!("invalid {code}"),
                (None, None) => "absent".to_owned(),
            };
            let actual = match &got {
                Reference::Path(p) => format!("path {p}"),
                Reference::Invalid(r) => format!("invalid {}", vectors::code(*r)),
                Reference::Absent => "absent".to_owned(),
            };
            assert_eq!(
                actual, expected,
                "value {:?} with prefixes {:?}",
                v.value, v.prefixes
            );
        }
    }

    #[test]
    fn file_name_is_the_last_segment() {
        assert_eq!(file_name("a/b/user_1_2.jpg"), "user_1_2.jpg");
        assert_eq!(file_name("user_1_2.jpg"), "user_1_2.jpg");
    }

    fn segment() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_ .-]{1,12}".prop_filter("plain segment", |s| s != "." && s != "..")
    }

    fn relative_path() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..4).prop_map(|segments| segments.join("/"))
    }

    proptest! {
        #[test]
        fn a_reference_never_escapes_the_root(value in any::<String>(), prefix in any::<String>()) {
            if let Reference::Path(path) = normalize(&value, &[prefix]) {
                prop_assert!(validate_relative(&path).is_ok());
                prop_assert!(!path.starts_with('/'));
                prop_assert!(!path.split('/').any(|s| s == ".." || s == "."));
            }
        }

        #[test]
        fn url_shaped_noise_never_escapes_the_root(
            value in "(https?://[a-z.@:]*)?(/|%2[eEfF]|\\.|\\\\|[a-z]|%00|\\?|#){0,24}",
        ) {
            if let Reference::Path(path) = normalize(&value, &["/"]) {
                prop_assert!(validate_relative(&path).is_ok());
            }
        }

        #[test]
        fn a_plain_relative_path_is_its_own_reference(path in relative_path()) {
            prop_assert_eq!(normalize(&path, &[] as &[&str]), Reference::Path(path.clone()));
        }

        #[test]
        fn the_three_stored_forms_agree(path in relative_path()) {
            let prefixes = ["/app/facial_evaluations/"];
            let bare = normalize(&path, &prefixes);
            let absolute = normalize(&format!("/app/facial_evaluations/{path}"), &prefixes);
            let url = normalize(&format!("https://cdn.example.com/app/facial_evaluations/{path}?v=1"), &prefixes);
            prop_assert_eq!(&bare, &Reference::Path(path.clone()));
            prop_assert_eq!(&absolute, &bare);
            prop_assert_eq!(&url, &bare);
        }

        /// A reference is its own reference, unless it holds a `?` or `#`,
        /// which only a URL's percent-encoding puts there (and which, in a
        /// plain path, starts a query or a fragment).
        #[test]
        fn normalizing_is_idempotent(value in any::<String>()) {
            if let Reference::Path(path) = normalize(&value, &["/app/"]) {
                if !path.contains(['?', '#']) {
                    prop_assert_eq!(normalize(&path, &[] as &[&str]), Reference::Path(path.clone()));
                }
            }
        }

        #[test]
        fn a_query_or_fragment_names_nothing(path in relative_path(), tail in "[?#][a-z=&/.#?]{0,12}") {
            prop_assert_eq!(normalize(&format!("{path}{tail}"), &[] as &[&str]), Reference::Path(path.clone()));
        }

        #[test]
        fn a_path_too_long_to_index_is_invalid(name in "[a-z]{256,300}", depth in 0usize..3) {
            let path = format!("{}{name}", "d/".repeat(depth));
            prop_assert_eq!(normalize(&path, &[] as &[&str]), Reference::Invalid(InvalidReason::TooLong));
        }
    }
}
