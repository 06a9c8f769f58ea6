//! `filegc scan` and `filegc sweep` against a real database and volume.

use filegc_tests::test_env::TestEnv;

#[test]
fn scan_fills_the_inventory_that_storage_stats_adds_up() {
    let mut env = TestEnv::new();
    env.write_aged("user_1_1700000000.jpg", 1_000, 10);
    env.write_aged("user_2_1700000100.png", 2_000, 1);
    env.write_aged("sub/user_3_1700000200.webp", 4_000, 1);
    env.write_aged("notes.txt", 500, 1);
    env.reference("user_1_1700000000.jpg");
    env.run_ok(&["scan"]);
    let row = env
        .client
        .query_one("SELECT * FROM filegc.storage_stats", &[])
        .unwrap();
    let n = |column: &str| -> i64 { row.get(column) };
    assert_eq!(n("total_files"), 3);
    assert_eq!(n("total_bytes"), 7_000);
    assert_eq!(n("referenced_files"), 1);
    assert_eq!(n("orphaned_files"), 2);
    assert_eq!(n("unmanaged_files"), 1);
    assert_eq!(n("unmanaged_bytes"), 500);
    assert!(n("capacity_bytes") > 0, "the scan reports the capacity");
    let volume: String = row.get("volume_path");
    assert_eq!(volume, env.volume.display().to_string());
}

#[test]
fn sweep_moves_an_unreferenced_file_into_the_trash() {
    let mut env = TestEnv::new();
    env.write_aged("user_1_1700000000.jpg", 1_234, 1);
    env.reference("user_1_1700000000.jpg");
    env.unreference("user_1_1700000000.jpg");
    env.run_ok(&["sweep"]);
    assert!(!env.path("user_1_1700000000.jpg").exists());
    assert!(env.path(".filegc-trash/user_1_1700000000.jpg").is_file());
    assert_eq!(
        env.outcome("user_1_1700000000.jpg").as_deref(),
        Some("trashed")
    );
    assert_eq!(
        env.query_i64(
            "SELECT size_bytes FROM filegc.deletions WHERE path = 'user_1_1700000000.jpg'"
        ),
        1_234
    );
    assert_eq!(
        env.query_i64("SELECT count(*) FROM filegc.sweeps WHERE kind = 'sweep' AND finished_at IS NOT NULL AND files_deleted = 1"),
        1
    );
}

#[test]
fn sweep_with_no_trash_unlinks() {
    let mut env = TestEnv::new();
    env.write_aged("user_1_1700000000.jpg", 10, 1);
    env.reference("user_1_1700000000.jpg");
    env.unreference("user_1_1700000000.jpg");
    env.run_ok(&["sweep", "--no-trash"]);
    assert!(!env.path("user_1_1700000000.jpg").exists());
    assert!(!env.path(".filegc-trash/user_1_1700000000.jpg").exists());
    assert_eq!(
        env.outcome("user_1_1700000000.jpg").as_deref(),
        Some("deleted")
    );
}

#[test]
fn a_file_gone_already_is_recorded_as_already_gone() {
    let mut env = TestEnv::new();
    env.reference("user_1_1700000000.jpg");
    env.unreference("user_1_1700000000.jpg");
    env.run_ok(&["sweep"]);
    assert_eq!(
        env.outcome("user_1_1700000000.jpg").as_deref(),
        Some("already_gone")
    );
}

#[test]
fn a_referenced_file_is_never_deleted() {
    let mut env = TestEnv::new();
    env.write_aged("user_1_1700000000.jpg", 10, 1);
    env.reference("user_1_1700000000.jpg");
    env.client
        .execute(
            "SELECT filegc.schedule_delete(ARRAY['user_1_1700000000.jpg'], force => true)",
            &[],
        )
        .unwrap();
    // Scheduled by hand while a row still points at it: the final check must refuse.
    env.client
        .batch_execute(
            "INSERT INTO filegc.tombstones (path, reason, due_at) VALUES ('user_1_1700000000.jpg', 'manual', now())
             ON CONFLICT DO NOTHING",
        )
        .unwrap();
    env.run_ok(&["sweep"]);
    assert!(env.path("user_1_1700000000.jpg").is_file());
    assert!(!env.path(".filegc-trash/user_1_1700000000.jpg").exists());
    assert_ne!(
        env.outcome("user_1_1700000000.jpg").as_deref(),
        Some("trashed")
    );
}

#[test]
fn restore_brings_a_trashed_file_back_and_purge_removes_it_after_retention() {
    let mut env = TestEnv::new();
    for name in ["user_1_1700000000.jpg", "user_2_1700000000.jpg"] {
        env.write_aged(name, 10, 1);
        env.reference(name);
        env.unreference(name);
    }
    env.run_ok(&["sweep"]);
    assert!(env.path(".filegc-trash/user_1_1700000000.jpg").is_file());

    let asked: bool = env
        .client
        .query_one("SELECT filegc.restore('user_1_1700000000.jpg')", &[])
        .unwrap()
        .get(0);
    assert!(asked);
    env.run_ok(&["sweep"]);
    assert!(env.path("user_1_1700000000.jpg").is_file(), "restored");
    assert!(!env.path(".filegc-trash/user_1_1700000000.jpg").exists());
    assert_eq!(
        env.query_i64("SELECT count(*) FROM filegc.deletions WHERE path = 'user_1_1700000000.jpg' AND restored_at IS NOT NULL"),
        1
    );

    env.set("trash_retention", "0");
    env.run_ok(&["sweep"]);
    assert!(
        !env.path(".filegc-trash/user_2_1700000000.jpg").exists(),
        "purged"
    );
    assert!(
        env.path("user_1_1700000000.jpg").is_file(),
        "the restored file stays"
    );
    assert_eq!(
        env.query_i64("SELECT count(*) FROM filegc.deletions WHERE path = 'user_2_1700000000.jpg' AND purged_at IS NOT NULL"),
        1
    );
}

#[test]
fn an_unreachable_database_exits_3_naming_the_host() {
    let env = TestEnv::new();
    let output = env
        .command_on("postgres://nobody@127.0.0.1:1/none", &["scan"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
}

#[test]
fn a_database_without_the_extension_says_to_create_it() {
    let env = TestEnv::new();
    let plain = filegc_tests::cluster().create_plain_database();
    let output = env.command_on(&plain.url(), &["scan"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CREATE EXTENSION filegc"), "{stderr}");
}
