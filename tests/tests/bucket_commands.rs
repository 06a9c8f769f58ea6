//! The operator's commands and menu on an S3-compatible bucket (a real
//! `moto_server`): the same listings, statistics, cleanups and trash as on a
//! volume, with the same breaker and final check.

use filegc_tests::s3_server::{
    filegc_on_bucket, filegc_on_bucket_ok, object_key, trashed_key, S3Server, BUCKET, STORAGE,
};
use filegc_tests::sweeper::{describe_output, json_document, listed_paths, stderr};
use filegc_tests::test_env::{run_command_on_terminal, TestEnv};

const REFERENCED: &str = "user_1_1700000000.jpg";
const ORPHAN: &str = "user_2_1700000000.png";
const UNMANAGED: &str = "readme.txt";

/// One referenced image, one orphan and one unmanaged object under the
/// prefix, and an unreferenced image beside it; orphans are eligible at once
/// (the server dates every object now).
fn known_bucket() -> (S3Server, TestEnv) {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    server.put(BUCKET, &object_key(REFERENCED), 1_000);
    server.put(BUCKET, &object_key(ORPHAN), 2_000);
    server.put(BUCKET, &object_key(UNMANAGED), 10);
    server.put(BUCKET, "elsewhere/user_3_1700000000.jpg", 5);
    let mut env = TestEnv::new();
    env.reference(REFERENCED);
    env.set("orphan_min_age", "0 seconds");
    (server, env)
}

fn run_ok(server: &S3Server, env: &TestEnv, args: &[&str]) -> String {
    filegc_on_bucket_ok(server, &env.db.url(), args)
}

#[test]
fn listings_show_the_prefix_as_it_is_now() {
    let (server, env) = known_bucket();
    let all = json_document(&run_ok(&server, &env, &["list", "--json"]));
    assert_eq!(listed_paths(&all), [UNMANAGED, REFERENCED, ORPHAN]);
    let orphans = json_document(&run_ok(&server, &env, &["orphans", "--json"]));
    assert_eq!(listed_paths(&orphans), [ORPHAN]);
    assert_eq!(orphans[0]["size_bytes"], 2_000);
    // An upload after the last listing shows at the next one.
    server.put(BUCKET, &object_key("user_4_1700000000.webp"), 40);
    let orphans = json_document(&run_ok(&server, &env, &["orphans", "--json"]));
    assert_eq!(listed_paths(&orphans), [ORPHAN, "user_4_1700000000.webp"]);
    let old = json_document(&run_ok(&server, &env, &["old", "--days", "30", "--json"]));
    assert_eq!(
        listed_paths(&old),
        Vec::<String>::new(),
        "every object is new"
    );
}

#[test]
fn stats_report_the_bucket_without_a_capacity() {
    let (server, env) = known_bucket();
    let stats = json_document(&run_ok(&server, &env, &["stats", "--json"]));
    assert_eq!(stats["total_files"], 2);
    assert_eq!(stats["total_bytes"], 3_000);
    assert_eq!(stats["orphaned_files"], 1);
    assert_eq!(stats["unmanaged_files"], 1);
    let table = run_ok(&server, &env, &["stats", "--no-scan"]);
    assert!(table.contains(&format!("Bucket: {STORAGE}")), "{table}");
    assert!(
        table.contains("(rows point at files not in the bucket)"),
        "{table}"
    );
    assert!(
        table.contains("Capacity: none: a bucket has no fixed size"),
        "{table}"
    );
    run_ok(&server, &env, &["delete-orphans", "--yes", "--force"]);
    let stats = json_document(&run_ok(&server, &env, &["stats", "--json"]));
    assert_eq!(stats["trash_files"], 1);
    assert_eq!(stats["trash_bytes"], 2_000);
    assert_eq!(stats["orphaned_files"], 0);
    assert_eq!(stats["alert_level"], "unknown");
}

#[test]
fn delete_orphans_trashes_them_keeps_the_rest_and_records_it() {
    let (server, mut env) = known_bucket();
    let summary = json_document(&run_ok(
        &server,
        &env,
        &["delete-orphans", "--yes", "--json", "--force"],
    ));
    assert_eq!(summary["scheduled"], 1);
    assert_eq!(summary["deleted"], 1);
    assert_eq!(summary["bytes_freed"], 2_000);
    assert!(!server.exists(BUCKET, &object_key(ORPHAN)));
    assert!(server.exists(BUCKET, &trashed_key(ORPHAN)));
    assert!(server.exists(BUCKET, &object_key(REFERENCED)));
    assert!(
        server.exists(BUCKET, &object_key(UNMANAGED)),
        "unmanaged objects stay"
    );
    assert!(server.exists(BUCKET, "elsewhere/user_3_1700000000.jpg"));
    assert_eq!(env.outcome(ORPHAN).as_deref(), Some("trashed"));

    let restored = run_ok(&server, &env, &["restore", ORPHAN]);
    assert!(
        restored.contains(&format!("Restored {ORPHAN}")),
        "{restored}"
    );
    assert!(server.exists(BUCKET, &object_key(ORPHAN)));
}

#[test]
fn a_deletion_past_the_breaker_is_refused_and_touches_nothing() {
    let (server, mut env) = known_bucket();
    env.set("max_delete_fraction", "0.1");
    let output = filegc_on_bucket(
        &server,
        &env.db.url(),
        STORAGE,
        &["delete-orphans", "--yes"],
    )
    .output()
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        describe_output(&output)
    );
    assert!(
        stderr(&output).contains("circuit breaker"),
        "{}",
        describe_output(&output)
    );
    assert!(server.exists(BUCKET, &object_key(ORPHAN)));
    assert_eq!(env.query_i64("SELECT count(*) FROM filegc.tombstones"), 0);
}

#[test]
fn a_dry_run_deletes_nothing() {
    let (server, mut env) = known_bucket();
    let out = run_ok(&server, &env, &["delete-orphans", "--dry-run"]);
    assert!(out.contains(ORPHAN), "{out}");
    assert!(out.contains("Dry run"), "{out}");
    assert!(server.exists(BUCKET, &object_key(ORPHAN)));
    assert_eq!(env.query_i64("SELECT count(*) FROM filegc.tombstones"), 0);
}

#[test]
fn empty_trash_deletes_the_trashed_objects_for_good() {
    let (server, env) = known_bucket();
    run_ok(&server, &env, &["delete-orphans", "--yes", "--force"]);
    assert!(server.exists(BUCKET, &trashed_key(ORPHAN)));
    let out = run_ok(&server, &env, &["empty-trash", "--yes"]);
    assert!(out.contains("deleted 1 files"), "{out}");
    assert!(!server.exists(BUCKET, &trashed_key(ORPHAN)));
    assert!(server.exists(BUCKET, &object_key(REFERENCED)));
    let again = run_ok(&server, &env, &["empty-trash", "--yes"]);
    assert!(again.contains("The trash is empty"), "{again}");
}

#[test]
fn the_menu_works_on_a_bucket() {
    let (server, mut env) = known_bucket();
    env.set("max_delete_fraction", "1");
    let command = filegc_on_bucket(&server, &env.db.url(), STORAGE, &[]);
    let output = run_command_on_terminal(&command, b"2\n4\nyes\n7\n");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}\n{}", stderr(&output));
    assert!(
        screen.contains(&format!("Bucket: {STORAGE}")),
        "the menu names the bucket: {screen}"
    );
    assert!(
        screen.contains(ORPHAN),
        "entry 2 lists the orphan: {screen}"
    );
    assert!(
        !server.exists(BUCKET, &object_key(ORPHAN)),
        "entry 4 deleted it"
    );
    assert!(server.exists(BUCKET, &trashed_key(ORPHAN)));
    assert!(server.exists(BUCKET, &object_key(REFERENCED)));
    assert_eq!(env.outcome(ORPHAN).as_deref(), Some("trashed"));
}

#[test]
fn a_byte_budget_gives_a_bucket_its_alert_levels() {
    let (server, env) = known_bucket();
    // 3,010 bytes under the prefix (the unmanaged object counts: it takes space).
    let stats = json_document(&run_ok(
        &server,
        &env,
        &["--storage-budget", "3100", "stats", "--json"],
    ));
    assert_eq!(stats["capacity_bytes"], 3_100);
    assert_eq!(stats["used_bytes"], 3_010);
    assert_eq!(stats["alert_level"], "emergency", "97.1 % is past 95 %");
    // The trash takes space too, until it is purged.
    run_ok(
        &server,
        &env,
        &[
            "--storage-budget",
            "1MB",
            "delete-orphans",
            "--yes",
            "--force",
        ],
    );
    let table = run_ok(&server, &env, &["--storage-budget", "1MB", "stats"]);
    assert!(
        table.contains("Capacity: 1.0 MB budget, 0.3% used, alert level ok"),
        "{table}"
    );
}
