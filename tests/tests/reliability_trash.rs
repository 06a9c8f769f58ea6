//! The promise, scenario 10 (c): the trash keeps what an unfinished deletion
//! put there, and a row that references a trashed file gets it back whatever
//! route made the reference (a REPEATABLE READ writer, a row written with the
//! triggers disabled, a copy no deletion recorded). A copy moves back out
//! of the trash only under its path's locks, so a sweep that is putting a
//! newer copy there (or a writer changing the path's rows) never sees its
//! file moved behind its back.

use std::fs;

use filegc_tests::sweeper::describe_output;
use filegc_tests::test_env::TestEnv;
use postgres::IsolationLevel;

const IMAGE: &str = "user_7_1700000000.jpg";

/// Moves `rel` into the trash by hand, as a sweeper does before it records
/// the deletion.
fn trash_by_hand(env: &TestEnv, rel: &str) {
    let target = env.path(&format!(".filegc-trash/{rel}"));
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::rename(env.path(rel), target).unwrap();
}

/// The state a sweeper killed between the rename into the trash and its
/// batch's COMMIT leaves: the deletion claimed by a worker that holds the
/// lease for another hour, the file in the trash.
fn a_deletion_in_flight() -> TestEnv {
    let mut env = TestEnv::new();
    env.write(IMAGE, "image\n");
    env.insert_row(1, IMAGE);
    env.app()
        .batch_execute("DELETE FROM facial_evaluations")
        .unwrap();
    let claimed: i64 = env
        .client
        .query_one("SELECT count(*) FROM filegc.claim('killed', 10)", &[])
        .unwrap()
        .get(0);
    assert_eq!(claimed, 1);
    env.client
        .batch_execute("UPDATE filegc.tombstones SET lease_until = now() + interval '1 hour'")
        .unwrap();
    trash_by_hand(&env, IMAGE);
    env
}

#[test]
fn emptying_the_trash_keeps_the_copy_of_an_unfinished_deletion() {
    let mut env = a_deletion_in_flight();
    env.insert_row(2, IMAGE);
    let output = env.run(&["empty-trash", "--yes"]);
    assert!(output.status.success(), "{}", describe_output(&output));
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        env.in_trash(IMAGE),
        "the copy of a deletion in flight was unlinked: {said}"
    );
    assert!(
        said.contains("Kept 1 files in the trash"),
        "empty-trash says what it kept and why: {said}"
    );

    // The killed sweeper's lease runs out; the next sweep brings the file
    // back for the row that references it.
    env.client
        .batch_execute("UPDATE filegc.tombstones SET lease_until = now() - interval '1 second'")
        .unwrap();
    env.run_ok(&["sweep"]);
    assert!(
        env.on_volume(IMAGE),
        "the referenced file did not come back"
    );
    env.assert_canaries_intact();
}

#[test]
fn a_purge_during_a_sweep_keeps_the_copy_until_the_deletion_is_recorded() {
    let mut env = a_deletion_in_flight();
    let output = env.run(&["empty-trash", "--yes"]);
    assert!(output.status.success(), "{}", describe_output(&output));
    assert!(
        env.in_trash(IMAGE),
        "a copy its sweeper has not recorded yet was unlinked"
    );

    // Once recorded, the copy is the trash's to purge.
    let id: i64 = env
        .client
        .query_one("SELECT id FROM filegc.tombstones", &[])
        .unwrap()
        .get(0);
    env.client
        .execute(
            "SELECT filegc.complete('killed', ARRAY[$1::bigint], ARRAY['trashed'], ARRAY[6::bigint])",
            &[&id],
        )
        .unwrap();
    env.run_ok(&["empty-trash", "--yes"]);
    assert!(!env.in_trash(IMAGE));
}

/// A referenced image, its row deleted and the file swept into the trash.
fn trashed_by_a_sweep() -> TestEnv {
    let env = TestEnv::new();
    env.write(IMAGE, "image\n");
    env.insert_row(1, IMAGE);
    env.app()
        .batch_execute("DELETE FROM facial_evaluations")
        .unwrap();
    env.run_ok(&["sweep"]);
    assert!(env.in_trash(IMAGE));
    env
}

#[test]
fn a_row_committed_at_repeatable_read_after_the_deletion_gets_its_file_back() {
    let env = TestEnv::new();
    env.write(IMAGE, "image\n");
    env.insert_row(1, IMAGE);
    env.app()
        .batch_execute("DELETE FROM facial_evaluations")
        .unwrap();
    let mut writer = env.app();
    let mut transaction = writer
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .unwrap();
    transaction
        .query("SELECT count(*) FROM facial_evaluations", &[])
        .unwrap();
    env.run_ok(&["sweep"]);
    assert!(env.in_trash(IMAGE));
    transaction
        .execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (2, $1)",
            &[&IMAGE],
        )
        .unwrap();
    transaction.commit().unwrap();
    assert_the_scan_brings_it_back(&env);
}

#[test]
fn a_row_written_with_the_triggers_disabled_gets_its_trashed_file_back() {
    let mut env = trashed_by_a_sweep();
    env.client
        .batch_execute(&format!(
            "ALTER TABLE facial_evaluations DISABLE TRIGGER USER;
             INSERT INTO facial_evaluations (user_id, image_path) VALUES (2, '{IMAGE}');
             ALTER TABLE facial_evaluations ENABLE TRIGGER USER;"
        ))
        .unwrap();
    assert_the_scan_brings_it_back(&env);
}

#[test]
fn a_copy_no_deletion_recorded_comes_back_for_a_row_that_references_it() {
    let env = TestEnv::new();
    env.write(IMAGE, "image\n");
    trash_by_hand(&env, IMAGE);
    env.insert_row(1, IMAGE);
    assert_the_scan_brings_it_back(&env);
}

/// A scan asks the copy back (or brings back one no deletion recorded), and
/// the sweep after it carries the request out.
fn assert_the_scan_brings_it_back(env: &TestEnv) {
    env.run_ok(&["scan"]);
    env.run_ok(&["sweep"]);
    assert!(
        env.on_volume(IMAGE),
        "a referenced file stayed in the trash"
    );
}

/// A sweep's batch between its final check and its COMMIT: it holds the
/// deletion locks of `rel` (and may just have moved a new copy into the
/// trash). Dropping the connection ends the batch.
fn a_batch_holding(env: &TestEnv, rel: &str) -> postgres::Client {
    let mut batch = env.db.connect();
    batch.batch_execute("BEGIN").unwrap();
    let locked: bool = batch
        .query_one("SELECT filegc.lock_for_deletion($1)", &[&rel])
        .unwrap()
        .get(0);
    assert!(locked);
    batch
}

#[test]
fn a_scan_leaves_an_unrecorded_copy_while_a_batch_holds_its_path() {
    let env = TestEnv::new();
    env.write(IMAGE, "image\n");
    trash_by_hand(&env, IMAGE);
    env.insert_row(1, IMAGE);
    let batch = a_batch_holding(&env, IMAGE);
    env.run_ok(&["scan"]);
    assert!(
        env.in_trash(IMAGE) && !env.on_volume(IMAGE),
        "the scan moved a copy out of the trash while a batch held its path"
    );
    drop(batch);
    assert_the_scan_brings_it_back(&env);
}

#[test]
fn a_sweep_restores_a_recorded_copy_only_once_no_batch_holds_its_path() {
    let mut env = trashed_by_a_sweep();
    env.insert_row(2, IMAGE);
    let batch = a_batch_holding(&env, IMAGE);
    env.run_ok(&["sweep"]);
    assert!(
        env.in_trash(IMAGE) && !env.on_volume(IMAGE),
        "the sweep restored a copy while a batch held its path"
    );
    assert_eq!(
        env.query_i64(
            "SELECT count(*) FROM filegc.tombstones WHERE restore_requested_at IS NOT NULL AND restored_at IS NULL"
        ),
        1,
        "the request waits for the next sweep"
    );
    drop(batch);
    env.run_ok(&["sweep"]);
    assert!(
        env.on_volume(IMAGE),
        "the referenced file did not come back"
    );
    assert_eq!(
        env.query_i64("SELECT count(*) FROM filegc.tombstones WHERE restored_at IS NOT NULL"),
        1
    );
}

#[test]
fn restore_waits_for_a_batch_that_holds_the_path_and_says_so() {
    let mut env = trashed_by_a_sweep();
    let batch = a_batch_holding(&env, IMAGE);
    let output = env.run(&["restore", IMAGE]);
    let said = describe_output(&output);
    assert!(
        env.in_trash(IMAGE) && !env.on_volume(IMAGE),
        "restore moved a copy out of the trash while a batch held its path: {said}"
    );
    assert!(
        said.contains("next sweep"),
        "restore says when the file comes back: {said}"
    );
    drop(batch);
    env.run_ok(&["sweep"]);
    assert!(env.on_volume(IMAGE), "the requested file did not come back");
    assert_eq!(
        env.query_i64("SELECT count(*) FROM filegc.tombstones WHERE restored_at IS NOT NULL"),
        1
    );
}
