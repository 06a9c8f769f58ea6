//! `filegc empty-trash` and `filegc restore` against a real database and volume.

use filegc_tests::sweeper::stderr;
use filegc_tests::test_env::TestEnv;

/// An environment where the sweep has moved `names` into the trash.
fn trashed(names: &[&str]) -> TestEnv {
    let mut env = TestEnv::new();
    for name in names {
        env.write_aged(name, 100, 1);
        env.reference(name);
        env.unreference(name);
    }
    env.run_ok(&["sweep"]);
    for name in names {
        assert!(env.path(&format!(".filegc-trash/{name}")).is_file());
    }
    env
}

#[test]
fn empty_trash_refuses_without_a_terminal_and_without_yes() {
    let env = trashed(&["user_1_1700000000.jpg"]);
    let output = env.run(&["empty-trash"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--yes"), "{}", stderr(&output));
    assert!(env.path(".filegc-trash/user_1_1700000000.jpg").is_file());
}

#[test]
fn empty_trash_with_yes_deletes_every_recorded_copy_and_records_the_purge() {
    let mut env = trashed(&["user_1_1700000000.jpg", "sub/user_2_1700000000.png"]);
    // A file no finished deletion recorded (a sweep at work put it there, or
    // a killed sweeper left it) stays: the next sweep records it, or brings
    // it back for a row that references its path.
    env.write_aged(".filegc-trash/stray.jpg", 50, 1);
    let stdout = env.run_ok(&["empty-trash", "--yes"]);
    assert!(stdout.contains("deleted 2 files"), "{stdout}");
    assert!(stdout.contains("Kept 1 files in the trash"), "{stdout}");
    assert!(!env.path(".filegc-trash/user_1_1700000000.jpg").exists());
    assert!(!env.path(".filegc-trash/sub/user_2_1700000000.png").exists());
    assert!(env.path(".filegc-trash/stray.jpg").exists());
    assert_eq!(
        env.query_i64(
            "SELECT count(*) FROM filegc.deletions WHERE outcome = 'trashed' AND purged_at IS NOT NULL"
        ),
        2
    );
    std::fs::remove_file(env.path(".filegc-trash/stray.jpg")).unwrap();
    assert_eq!(env.run_ok(&["empty-trash"]).trim(), "The trash is empty.");
}

#[test]
fn empty_trash_keeps_the_copies_rows_want_back() {
    let mut env = trashed(&[
        "user_1_1700000000.jpg",
        "user_2_1700000000.jpg",
        "user_3_1700000000.jpg",
    ]);
    // A row references user_1 again: its copy goes back to its path.
    env.reference("user_1_1700000000.jpg");
    // user_2 is asked back, but another file stands at its path: the copy waits.
    env.write_aged("user_2_1700000000.jpg", 7, 0);
    assert_eq!(
        env.query_i64("SELECT filegc.restore('user_2_1700000000.jpg')::int::bigint"),
        1
    );
    let stdout = env.run_ok(&["empty-trash", "--yes"]);
    assert!(stdout.contains("deleted 1 files"), "{stdout}");
    assert!(env.path("user_1_1700000000.jpg").is_file());
    assert!(env.path(".filegc-trash/user_2_1700000000.jpg").is_file());
    assert!(!env.path(".filegc-trash/user_3_1700000000.jpg").exists());
}

#[test]
fn empty_trash_asks_on_a_terminal_with_the_count_and_size() {
    let env = trashed(&["user_1_1700000000.jpg"]);
    let output = env.run_on_terminal(&["empty-trash"], b"yes\n");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}\n{}", stderr(&output));
    assert!(
        screen.contains("Empty the trash: 1 files, 100 B? (yes/no)"),
        "{screen}"
    );
    assert!(!env.path(".filegc-trash/user_1_1700000000.jpg").exists());
}

#[test]
fn restore_brings_the_file_back_at_once() {
    let mut env = trashed(&["sub/user_1_1700000000.jpg"]);
    let stdout = env.run_ok(&["restore", "sub/user_1_1700000000.jpg"]);
    assert!(
        stdout.contains("Restored sub/user_1_1700000000.jpg"),
        "{stdout}"
    );
    assert!(env.path("sub/user_1_1700000000.jpg").is_file());
    assert!(!env.path(".filegc-trash/sub/user_1_1700000000.jpg").exists());
    assert_eq!(
        env.query_i64(
            "SELECT count(*) FROM filegc.deletions WHERE path = 'sub/user_1_1700000000.jpg' AND restored_at IS NOT NULL"
        ),
        1
    );
}

/// The sweep's restore pass and `filegc restore` settle a copy that is no
/// longer in the trash but stands at its path the same way: it is back.
#[test]
fn restore_of_a_copy_already_back_at_its_path_records_it_restored() {
    let mut env = trashed(&["user_1_1700000000.jpg"]);
    // Moved back without the database knowing, as by hand.
    std::fs::rename(
        env.path(".filegc-trash/user_1_1700000000.jpg"),
        env.path("user_1_1700000000.jpg"),
    )
    .unwrap();
    let stdout = env.run_ok(&["restore", "user_1_1700000000.jpg"]);
    assert!(
        stdout.contains("user_1_1700000000.jpg is already back at its path"),
        "{stdout}"
    );
    assert!(env.path("user_1_1700000000.jpg").is_file());
    assert_eq!(
        env.query_i64(
            "SELECT count(*) FROM filegc.deletions WHERE path = 'user_1_1700000000.jpg' \
             AND restored_at IS NOT NULL AND purged_at IS NULL"
        ),
        1
    );
}

#[test]
fn restore_of_a_file_not_in_the_trash_says_so() {
    let env = TestEnv::new();
    env.write_aged("user_1_1700000000.jpg", 10, 1);
    let output = env.run(&["restore", "user_1_1700000000.jpg"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("user_1_1700000000.jpg: it is not in the trash"),
        "{}",
        stderr(&output)
    );
    assert!(env.path("user_1_1700000000.jpg").is_file());
}

#[test]
fn restore_never_replaces_a_file_that_stands_at_the_path() {
    let env = trashed(&["user_1_1700000000.jpg"]);
    env.write_aged("user_1_1700000000.jpg", 7, 0);
    let output = env.run(&["restore", "user_1_1700000000.jpg"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("a file already stands there"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::metadata(env.path("user_1_1700000000.jpg"))
            .unwrap()
            .len(),
        7
    );
    assert!(env.path(".filegc-trash/user_1_1700000000.jpg").is_file());
}

#[test]
fn a_trashed_file_referenced_again_comes_back_at_the_next_sweep() {
    let name = "sub/user_1_1700000000.jpg";
    let mut env = trashed(&[name]);
    assert!(!env.path(name).exists());
    env.reference(name);
    env.client
        .batch_execute("SELECT filegc.process_notes()")
        .unwrap();
    assert_eq!(
        env.query_i64(&format!(
            "SELECT count(*) FROM filegc.deletions WHERE path = '{name}' \
             AND restore_requested_at IS NOT NULL AND restored_at IS NULL"
        )),
        1,
        "the trigger asks for the file back"
    );
    let stdout = env.run_ok(&["sweep"]);
    assert!(stdout.contains("1 restored"), "{stdout}");
    assert_eq!(std::fs::metadata(env.path(name)).unwrap().len(), 100);
    assert!(!env.path(&format!(".filegc-trash/{name}")).exists());
    assert_eq!(
        env.query_i64(&format!(
            "SELECT count(*) FROM filegc.deletions WHERE path = '{name}' AND restored_at IS NOT NULL"
        )),
        1
    );
}
