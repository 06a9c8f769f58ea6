//! The listing and delete commands of `filegc`, run as a user would.

use filegc_tests::sweeper::{json_document, listed_paths};
use filegc_tests::test_env::TestEnv;
use serde_json::Value;

/// Two orphans (one old), one referenced old image, one unmanaged file.
fn known_volume() -> TestEnv {
    let mut env = TestEnv::new();
    env.write_aged("user_1_1700000000.jpg", 1_000, 100);
    env.write_aged("user_2_1700000000.png", 2_000, 100);
    env.write_aged("user_3_1700000000.webp", 4_000, 1);
    env.write_aged("readme.txt", 10, 100);
    env.reference("user_1_1700000000.jpg");
    env
}

#[test]
fn orphans_are_listed_as_json_with_the_documented_fields() {
    let env = known_volume();
    let listing = json_document(&env.run_ok(&["orphans", "--json"]));
    assert_eq!(
        listed_paths(&listing),
        ["user_2_1700000000.png", "user_3_1700000000.webp"]
    );
    let first = &listing[0];
    assert!(first["size_bytes"].is_number());
    assert_eq!(first["referenced"], Value::Bool(false));
    let modified = first["modified_at"].as_str().unwrap();
    assert!(chrono_like_rfc3339(modified), "{modified}");
}

#[test]
fn orphans_look_at_the_volume_now_and_leave_the_inventory_to_scan() {
    let mut env = known_volume();
    env.run_ok(&["scan"]);
    env.write_aged("user_4_1700000000.jpg", 500, 100);
    std::fs::remove_file(env.path("user_3_1700000000.webp")).unwrap();
    let scans = "SELECT count(*) FROM filegc.sweeps WHERE kind = 'scan'";
    let scanned = env.query_i64(scans);

    let listing = json_document(&env.run_ok(&["orphans", "--json"]));
    assert_eq!(
        listed_paths(&listing),
        ["user_2_1700000000.png", "user_4_1700000000.jpg"]
    );
    assert_eq!(listing[1]["size_bytes"], 500);
    assert_eq!(env.query_i64(scans), scanned, "a listing is not a scan");
    let from_the_inventory = json_document(&env.run_ok(&["orphans", "--no-scan", "--json"]));
    assert_eq!(
        listed_paths(&from_the_inventory),
        ["user_2_1700000000.png", "user_3_1700000000.webp"],
        "the inventory still holds what the scan saw"
    );
}

/// Every kind of file the orphan rule tells apart, in a folder and out of one.
#[test]
fn a_fresh_orphan_listing_is_the_one_a_scan_gives() {
    let mut env = known_volume();
    env.write_aged("sub/user_5_1700000000.jpg", 50, 100);
    env.write_aged("sub/user_6_1700000000.jpg", 60, 100);
    env.reference("sub/user_6_1700000000.jpg");
    // Its name, read as a reference, is one a row holds.
    env.write_aged("user_7_1700000000.jpg?v=2", 70, 100);
    env.reference("user_7_1700000000.jpg?v=2");
    // An invalid reference (a prefix the operator forgot) may mean it.
    env.write_aged("user_8_1700000000.jpg", 80, 100);
    env.insert_row(8, "/srv/old_volume/user_8_1700000000.jpg");
    std::os::unix::fs::symlink(
        env.outside("elsewhere.jpg"),
        env.path("user_9_1700000000.jpg"),
    )
    .unwrap();
    env.write_aged("user_10_1700000000.JPG", 100, 1);
    // A time PostgreSQL stores rounded toward 2000-01-01.
    env.write_aged("user_11_946684799.jpg", 110, 1);
    let before_2000 = std::time::UNIX_EPOCH + std::time::Duration::new(946_684_799, 999_998_500);
    std::fs::File::options()
        .write(true)
        .open(env.path("user_11_946684799.jpg"))
        .unwrap()
        .set_modified(before_2000)
        .unwrap();

    let fresh = json_document(&env.run_ok(&["orphans", "--json"]));
    env.run_ok(&["scan"]);
    let scanned = json_document(&env.run_ok(&["orphans", "--no-scan", "--json"]));
    assert_eq!(fresh, scanned);
    assert_eq!(
        listed_paths(&fresh),
        [
            "sub/user_5_1700000000.jpg",
            "user_10_1700000000.JPG",
            "user_11_946684799.jpg",
            "user_2_1700000000.png",
            "user_3_1700000000.webp",
            "user_9_1700000000.jpg",
        ]
    );
}

fn chrono_like_rfc3339(text: &str) -> bool {
    text.len() >= 20 && text.as_bytes()[10] == b'T' && (text.ends_with('Z') || text.contains('+'))
}

#[test]
fn list_shows_every_file_and_filters_apply() {
    let env = known_volume();
    let all = json_document(&env.run_ok(&["list", "--json"]));
    assert_eq!(listed_paths(&all).len(), 4);
    let pngs = json_document(&env.run_ok(&["list", "--json", "--no-scan", "--ext", "png"]));
    assert_eq!(listed_paths(&pngs), ["user_2_1700000000.png"]);
    let table = env.run_ok(&["list", "--no-scan"]);
    assert!(table.contains("readme.txt"), "{table}");
    assert!(table.contains("4 files"), "{table}");
}

#[test]
fn old_lists_managed_images_past_the_age() {
    let env = known_volume();
    let old = json_document(&env.run_ok(&["old", "--days", "30", "--json"]));
    assert_eq!(
        listed_paths(&old),
        ["user_1_1700000000.jpg", "user_2_1700000000.png"]
    );
}

#[test]
fn stats_is_an_object_keyed_by_the_view_columns() {
    let env = known_volume();
    let stats = json_document(&env.run_ok(&["stats", "--json"]));
    assert_eq!(stats["total_files"], 3);
    assert_eq!(stats["orphaned_files"], 2);
    assert_eq!(stats["unmanaged_files"], 1);
    assert!(stats.get("alert_level").is_some());
}

#[test]
fn delete_orphans_with_yes_trashes_them_and_keeps_referenced_ones() {
    let mut env = known_volume();
    let summary = json_document(&env.run_ok(&["delete-orphans", "--yes", "--json", "--force"]));
    assert_eq!(summary["scheduled"], 2);
    assert_eq!(summary["deleted"], 2);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["bytes_freed"], 6_000);
    assert!(env.path("user_1_1700000000.jpg").is_file());
    assert!(env.path("readme.txt").is_file(), "unmanaged files stay");
    assert!(env.path(".filegc-trash/user_2_1700000000.png").is_file());
    assert_eq!(
        env.outcome("user_3_1700000000.webp").as_deref(),
        Some("trashed")
    );
}

#[test]
fn delete_orphans_prints_the_summary() {
    let env = known_volume();
    let out = env.run_ok(&["delete-orphans", "--yes", "--force", "--ext", "png"]);
    assert!(out.contains("Deleted 1 of 1 images"), "{out}");
    assert!(env.path("user_3_1700000000.webp").is_file(), "filtered out");
}

#[test]
fn delete_old_spares_referenced_images_unless_asked() {
    let env = known_volume();
    let summary =
        json_document(&env.run_ok(&["delete-old", "--days", "30", "--yes", "--json", "--force"]));
    assert_eq!(summary["deleted"], 1);
    assert!(env.path("user_1_1700000000.jpg").is_file());
    assert!(!env.path("user_2_1700000000.png").exists());

    let summary = json_document(&env.run_ok(&[
        "delete-old",
        "--days",
        "30",
        "--include-referenced",
        "--yes",
        "--json",
        "--force",
    ]));
    assert_eq!(summary["deleted"], 1);
    assert!(!env.path("user_1_1700000000.jpg").exists());
    assert!(
        env.path("user_3_1700000000.webp").is_file(),
        "young images stay"
    );
}

#[test]
fn a_dry_run_deletes_nothing_and_needs_no_terminal() {
    let mut env = known_volume();
    let out = env.run_ok(&["delete-orphans", "--dry-run"]);
    assert!(out.contains("user_2_1700000000.png"), "{out}");
    assert!(out.contains("Dry run"), "{out}");
    assert!(env.path("user_2_1700000000.png").is_file());
    assert_eq!(env.query_i64("SELECT count(*) FROM filegc.tombstones"), 0);
}

#[test]
fn without_a_terminal_and_without_yes_a_deletion_is_refused() {
    let mut env = known_volume();
    let output = env.run(&["delete-orphans", "--force"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(env.path("user_2_1700000000.png").is_file());
    assert_eq!(env.query_i64("SELECT count(*) FROM filegc.tombstones"), 0);
}

#[test]
fn the_breaker_refuses_with_its_hint_and_exit_2() {
    let mut env = known_volume();
    let output = env.run(&["delete-orphans", "--yes"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "2 of 3 images is past the default limit"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("circuit breaker"), "{stderr}");
    assert!(stderr.contains("HINT"), "{stderr}");
    assert_eq!(env.query_i64("SELECT count(*) FROM filegc.tombstones"), 0);
}

#[test]
fn stats_reads_like_the_old_tools_statistics() {
    let env = known_volume();
    let stdout = env.run_ok(&["stats"]);
    let labels: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_once(": ").map(|(label, _)| label))
        .collect();
    assert_eq!(
        labels,
        [
            "Volume path",
            "Total images",
            "Total size",
            "Oldest image",
            "Newest image",
            "Referenced images",
            "Orphaned images",
            "Missing images",
            "Invalid references",
            "Pending deletions",
            "Trash",
            "Unmanaged files",
            "Capacity",
            "Last scan",
            "Last sweep",
        ],
        "{stdout}"
    );
    assert!(stdout.contains("Total images: 3\n"), "{stdout}");
    assert!(stdout.contains("Total size: 7.0 KB\n"), "{stdout}");
    assert!(stdout.contains("Orphaned images: 2 (6.0 KB)"), "{stdout}");
    assert!(stdout.contains("% used, alert level "), "{stdout}");
    assert!(stdout.contains("Last sweep: never\n"), "{stdout}");
    assert!(stdout.contains("Invalid references: 0\n"), "{stdout}");
}
