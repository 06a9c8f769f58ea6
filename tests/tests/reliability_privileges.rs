//! Issue 5, scenario 8: privileges. The application role reaches filegc's
//! tables only through its triggers; a login in `filegc_sweeper` cannot read
//! the application's tables; the sweeper pointed at a database without the
//! extension says so.

use filegc_tests::cluster;
use filegc_tests::fixtures::PREFIX;
use filegc_tests::sweeper::{describe_output, filegc_bin, filegc_command};
use filegc_tests::test_env::TestEnv;
use postgres::Client;

/// The SQLSTATE of a statement that must fail; panics if it succeeds.
fn refused(client: &mut Client, sql: &str) -> String {
    let error = client
        .batch_execute(sql)
        .expect_err(&format!("{sql} succeeded"));
    let db_error = error
        .as_db_error()
        .unwrap_or_else(|| panic!("{sql}: {error}"));
    db_error.code().code().to_owned()
}

/// SQLSTATE 42501, insufficient_privilege.
const PERMISSION_DENIED: &str = "42501";

#[test]
fn the_application_role_reaches_filegc_only_through_its_triggers() {
    let mut env = TestEnv::new();
    env.client
        .batch_execute("SELECT filegc.schedule_delete(ARRAY['x.jpg'], force => true)")
        .unwrap();
    let before: i64 = env
        .client
        .query_one("SELECT count(*) FROM filegc.tombstones", &[])
        .unwrap()
        .get(0);
    let mut app = env.db.connect_as("app");
    let statements = [
        "SELECT * FROM filegc.tombstones",
        "INSERT INTO filegc.tombstones (path, reason, due_at) VALUES ('y.jpg', 'manual', now())",
        "UPDATE filegc.tombstones SET due_at = now()",
        "DELETE FROM filegc.tombstones",
        "SELECT * FROM filegc.settings",
        "UPDATE filegc.settings SET value = '1' WHERE name = 'max_delete_fraction'",
        "INSERT INTO filegc.settings (name, value) VALUES ('unreferenced_delay', '0')",
        "DELETE FROM filegc.settings",
        "SELECT * FROM filegc.tracked",
        "INSERT INTO filegc.tracked SELECT * FROM filegc.tracked",
        "UPDATE filegc.tracked SET prefixes = '{}'",
        "DELETE FROM filegc.tracked",
        "SELECT * FROM filegc.invalid_refs",
        "SELECT * FROM filegc.inventory",
        "SELECT * FROM filegc.cleanup_orphans(dry_run => false, force => true)",
        "SELECT * FROM filegc.claim('app', 10)",
        "SELECT filegc.track('generations', 'input_image_path')",
        "SELECT filegc.untrack('facial_evaluations', 'image_path')",
        "SELECT filegc.schedule_delete(ARRAY['x.jpg'])",
        "SELECT filegc.cancel('x.jpg')",
    ];
    for sql in statements {
        assert_eq!(refused(&mut app, sql), PERMISSION_DENIED, "{sql}");
    }
    // What the triggers do for it still works.
    app.execute(
        "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, $1)",
        &[&format!("{PREFIX}x.jpg")],
    )
    .unwrap();
    app.execute("DELETE FROM facial_evaluations", &[]).unwrap();
    let noted: Vec<(String, String)> = env
        .client
        .query(
            "SELECT kind::text, path FROM filegc.notes ORDER BY kind",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        noted,
        vec![("e".into(), "x.jpg".into()), ("r".into(), "x.jpg".into())],
        "the triggers noted x.jpg entering (its deletion was open) and leaving"
    );
    env.client
        .batch_execute("SELECT filegc.process_notes()")
        .unwrap();
    let after: i64 = env
        .client
        .query_one("SELECT count(*) FROM filegc.tombstones", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        after, before,
        "x.jpg left its row again: its deletion stays open, and no second one is written"
    );
}

#[test]
fn a_sweeper_login_cannot_read_or_change_application_tables() {
    let mut env = TestEnv::new();
    env.client
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE reliability_sweeper LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             GRANT filegc_sweeper TO reliability_sweeper;
             INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'secret.jpg')",
        )
        .unwrap();
    let mut sweeper = env.db.connect_as("reliability_sweeper");
    for sql in [
        "SELECT * FROM facial_evaluations",
        "SELECT output_image_path FROM generations",
        "UPDATE facial_evaluations SET image_path = NULL",
        "DELETE FROM facial_evaluations",
        "TRUNCATE generations",
        "INSERT INTO generations (user_id) VALUES (1)",
        "SELECT filegc.track('generations', 'input_image_path')",
        "UPDATE filegc.settings SET value = '1' WHERE name = 'max_delete_fraction'",
    ] {
        assert_eq!(refused(&mut sweeper, sql), PERMISSION_DENIED, "{sql}");
    }
    // The binary runs its whole cycle as that role.
    env.write("secret.jpg", "referenced\n");
    let url = env.db.url_as("reliability_sweeper");
    for args in [&["scan"][..], &["sweep"][..]] {
        let output = env.command_on(&url, args).output().unwrap();
        assert!(output.status.success(), "{}", describe_output(&output));
    }
    assert!(env.path("secret.jpg").is_file());
}

#[test]
fn the_sweeper_names_a_database_without_the_extension() {
    let db = cluster().create_plain_database();
    let volume = tempfile::tempdir_in("/var/tmp").unwrap();
    let output = filegc_command(filegc_bin(), volume.path(), &db.url())
        .arg("sweep")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(
        output.status.code(),
        Some(0),
        "{}",
        describe_output(&output)
    );
    assert!(
        stderr.contains("no filegc extension") && stderr.contains("CREATE EXTENSION filegc"),
        "{}",
        describe_output(&output)
    );
}

#[test]
fn a_sweeper_role_without_its_grant_is_told_which_grant_is_missing() {
    let env = TestEnv::new();
    env.db
        .connect()
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE ungranted_sweeper LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;",
        )
        .unwrap();
    let output = env
        .command_on(&env.db.url_as("ungranted_sweeper"), &["sweep"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        describe_output(&output)
    );
    assert!(
        stderr.contains("GRANT filegc_sweeper TO ungranted_sweeper"),
        "the error names the missing grant: {stderr}"
    );
    assert!(
        !stderr.contains("CREATE EXTENSION"),
        "the extension is there: {stderr}"
    );
}

#[test]
fn a_statement_the_database_refuses_ends_the_run_with_status_3() {
    let env = TestEnv::new();
    // The final check refuses to go on while a tracked table's triggers are off.
    env.db
        .connect()
        .batch_execute("ALTER TABLE facial_evaluations DISABLE TRIGGER USER")
        .unwrap();
    let output = env.run(&["sweep"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(3),
        "a database error is not \"some files failed\": {}",
        describe_output(&output)
    );
    assert!(stderr.contains("facial_evaluations"), "{stderr}");
}
