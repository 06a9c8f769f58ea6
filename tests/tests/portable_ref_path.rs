//! The portable engine's path rules (PL/pgSQL, `sql/portable/ref_path.sql`)
//! agree exactly with the Rust rules: on the shared vectors and on generated
//! input.

use filegc_path_rules::{normalize, vectors, Reference};
use filegc_tests::{cluster, TestDb};
use postgres::Client;
use proptest::prelude::*;
use std::sync::OnceLock;

fn database() -> &'static TestDb {
    static DATABASE: OnceLock<TestDb> = OnceLock::new();
    DATABASE.get_or_init(|| {
        let db = cluster().create_plain_database();
        let mut client = db.connect();
        client.batch_execute("CREATE SCHEMA filegc").unwrap();
        // The current definition of the portable rules.
        client
            .batch_execute(include_str!("../../sql/portable/ref_path.sql"))
            .unwrap_or_else(|e| panic!("sql/portable/ref_path.sql: {:?}", e.as_db_error()));
        db
    })
}

/// The portable engine's verdict, in the Rust rules' terms.
fn portable(client: &mut Client, value: &str, prefixes: &[String]) -> Reference {
    let row = client
        .query_one(
            "SELECT path, problem FROM filegc.normalize_ref($1, $2)",
            &[&value, &prefixes],
        )
        .unwrap();
    match (
        row.get::<_, Option<String>>(0),
        row.get::<_, Option<String>>(1),
    ) {
        (Some(path), None) => Reference::Path(path),
        (None, None) => Reference::Absent,
        (None, Some(problem)) => {
            let reason = match normalize(value, prefixes) {
                Reference::Invalid(reason) if reason.describe() == problem => reason,
                other => panic!("{value:?}: the portable engine says {problem:?}, Rust {other:?}"),
            };
            Reference::Invalid(reason)
        }
        (Some(path), Some(problem)) => {
            panic!("{value:?}: both a path {path:?} and a problem {problem:?}")
        }
    }
}

#[test]
fn the_portable_rules_agree_with_the_shared_vectors() {
    let mut client = database().connect();
    let vectors = vectors::parse(vectors::VECTORS_TSV);
    let checked = vectors.iter().filter(|v| !v.value.contains('\0')).count();
    assert!(checked > 30);
    for v in vectors.into_iter().filter(|v| !v.value.contains('\0')) {
        let expected = match (&v.expected_path, &v.expected_invalid) {
            (Some(path), _) => format!("path {path}"),
            (None, Some(code)) => format!("invalid {code}"),
            (None, None) => "absent".to_owned(),
        };
        let actual = match portable(&mut client, &v.value, &v.prefixes) {
            Reference::Path(path) => format!("path {path}"),
            Reference::Invalid(reason) => format!("invalid {}", vectors::code(reason)),
            Reference::Absent => "absent".to_owned(),
        };
        assert_eq!(
            actual, expected,
            "{:?} with prefixes {:?}",
            v.value, v.prefixes
        );
    }
}

#[test]
fn ref_paths_keeps_each_valid_path_once() {
    let mut client = database().connect();
    let paths: Vec<String> = client
        .query_one(
            "SELECT filegc.ref_paths(ARRAY['/app/x/b.jpg', NULL, 'a.jpg', '../bad', 'a.jpg'], '{/app/x/}')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(paths, vec!["a.jpg", "b.jpg"]);
}

fn stored_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_./%?#:@\\\\ -]{0,30}",
        "(https?|s3)://[a-z.:@]{0,12}(/|%2[eEfF]|%[0-9a-fA-F]{2}|\\.|\\\\|[a-z_]|\\?|#|%){0,16}",
        "(\\./|/app/facial_evaluations/?|/app/)?(\\.\\.|\\.|[a-z_]{1,6})(/(\\.\\.|\\.|[a-z_]{0,6})){0,3}",
        any::<String>().prop_map(|s| s.replace('\0', "")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_portable_rules_agree_with_rust_on_generated_values(
        value in stored_value(),
        prefixes in prop::collection::vec(prop_oneof![
            Just("/app/facial_evaluations/".to_owned()),
            Just("/app/facial_evaluations".to_owned()),
            Just("/app/".to_owned()),
            Just("/".to_owned()),
            Just(String::new()),
        ], 0..3),
    ) {
        let mut client = database().connect();
        prop_assert_eq!(portable(&mut client, &value, &prefixes), normalize(&value, &prefixes));
    }
}
