//! A tombstone's path must be one the sweeper accepts: the table refuses
//! any other, even from a superuser's INSERT, with exactly the Rust rules
//! (path_rules::validate_relative).

use filegc_path_rules::validate_relative;
use filegc_tests::{cluster, TestDb};
use proptest::prelude::*;
use std::sync::OnceLock;

fn database() -> &'static TestDb {
    static DATABASE: OnceLock<TestDb> = OnceLock::new();
    DATABASE.get_or_init(|| cluster().create_database())
}

/// Whether the table takes a tombstone for `path` (the insert is rolled back).
fn accepted(path: &str) -> bool {
    let mut client = database().connect();
    let mut transaction = client.transaction().unwrap();
    let result = transaction.execute(
        "INSERT INTO filegc.tombstones (path, reason, due_at) VALUES ($1, 'manual', now())",
        &[&path],
    );
    match result {
        Ok(_) => true,
        Err(error) => {
            let constraint = error.as_db_error().and_then(|db| db.constraint());
            assert_eq!(
                constraint,
                Some("tombstones_path_is_relative"),
                "{path:?}: {error}"
            );
            false
        }
    }
}

#[test]
fn the_paths_the_sweeper_refuses_cannot_be_scheduled() {
    for path in [
        "",
        "../x.jpg",
        "a/../x.jpg",
        "..",
        "/etc/passwd",
        "a//b.jpg",
        "./a.jpg",
        "a/.",
        "a\\b.jpg",
        "a/",
    ] {
        assert!(!accepted(path), "{path:?} must be refused");
    }
    let long_name = format!("{}.jpg", "a".repeat(252));
    let long_path = vec!["a".repeat(200); 11].join("/");
    for path in [&long_name, &long_path] {
        assert!(validate_relative(path).is_err());
        assert!(
            !accepted(path),
            "a {}-byte path must be refused",
            path.len()
        );
    }
    assert!(
        accepted(&format!("{}.jpg", "a".repeat(251))),
        "a 255-byte name is a name"
    );
    for path in [
        "user_1_1700000000.jpg",
        "dir/user_1_1700000000_2.png",
        "...jpg",
        "a..b.jpg",
        "..a",
        ".hidden.jpg",
        "a/.../b",
    ] {
        assert!(accepted(path), "{path:?} must be accepted");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_table_agrees_with_the_rust_rules(path in "[a./\\\\_]{0,8}|(\\.{0,3}/){0,3}[a.]{0,3}") {
        prop_assert_eq!(accepted(&path), validate_relative(&path).is_ok(), "{:?}", path);
    }
}
