//! The promise, scenario 10 (h): what the server's configuration and
//! environment enable must not turn filegc against the application: a
//! transaction it prepares (two-phase commit) still commits, and an error
//! from filegc's Rust code shows no Rust backtrace even when the server runs
//! with `RUST_BACKTRACE` set.

use filegc_tests::{Cluster, Engine};

#[test]
fn an_application_transaction_that_touches_paths_can_be_prepared() {
    let cluster = Cluster::start_private();
    cluster
        .create_plain_database()
        .connect()
        .batch_execute("ALTER SYSTEM SET max_prepared_transactions = 10")
        .unwrap();
    cluster.restart("fast");
    let db = cluster.create_database();
    let mut admin = db.tracked_app();
    admin
        .batch_execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'old.jpg');
             INSERT INTO filegc.tombstones (path, reason, due_at) VALUES ('new.jpg', 'manual', now() + interval '1 hour');",
        )
        .unwrap();
    // A NOTIFY would make PREPARE TRANSACTION fail; the sweeper finds the
    // notes at its next interval instead.
    let mut app = db.connect_as("app");
    app.batch_execute(
        "BEGIN;
         DELETE FROM facial_evaluations WHERE image_path = 'old.jpg';
         INSERT INTO facial_evaluations (user_id, image_path) VALUES (2, 'new.jpg');
         PREPARE TRANSACTION 'filegc_two_phase';",
    )
    .unwrap_or_else(|e| panic!("the application could not prepare its transaction: {e}"));
    admin
        .batch_execute("COMMIT PREPARED 'filegc_two_phase'")
        .unwrap();
    admin
        .batch_execute("SELECT filegc.process_notes()")
        .unwrap();
    let states: Vec<(String, String)> = admin
        .query(
            "SELECT path, state FROM filegc.tombstones ORDER BY path",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        states,
        vec![
            ("new.jpg".into(), "cancelled".into()),
            ("old.jpg".into(), "pending".into())
        ]
    );
}

#[test]
fn errors_from_filegc_show_no_rust_backtrace() {
    if Engine::from_env() == Engine::Portable {
        return; // no Rust runs in the server
    }
    // The servers this test starts inherit its environment.
    std::env::set_var("RUST_BACKTRACE", "1");
    let cluster = Cluster::start_private();
    let db = cluster.create_database();
    let mut admin = db.tracked_app();
    // A trigger made by hand with arguments filegc cannot read: the one
    // error its row trigger still raises.
    admin
        .batch_execute(
            "CREATE TABLE hand_made (image_path text);
             CREATE TRIGGER hand_made AFTER INSERT ON hand_made
                 FOR EACH ROW EXECUTE FUNCTION filegc.references_trigger('image_path');",
        )
        .unwrap();
    let error = admin
        .batch_execute("INSERT INTO hand_made VALUES ('a.jpg')")
        .expect_err("arguments filegc cannot read are an error");
    let db_error = error.as_db_error().expect("a database error");
    let detail = db_error.detail().unwrap_or_default();
    assert!(
        db_error.message().contains("hand_made"),
        "the error names the trigger: {}",
        db_error.message()
    );
    assert!(
        !detail.contains("rust_begin_unwind") && !detail.contains("panicking.rs"),
        "no Rust backtrace reaches the client: {detail}"
    );
}
