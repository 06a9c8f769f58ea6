//! The promise, scenario 10 (g): no setting can break anything. Each setting
//! has a range that keeps every computation valid; a value outside it is
//! refused with the range, and one stored past the checks is read as the
//! default, with a warning, so that no application write, report or sweep
//! fails because of it.

use filegc_tests::reliability::error_of;
use filegc_tests::sweeper::describe_output;
use filegc_tests::test_env::TestEnv;

#[test]
fn settings_outside_their_range_are_refused_with_the_range() {
    let mut env = TestEnv::new();
    for (name, value) in [
        ("unreferenced_delay", "300000 years"),
        ("orphan_min_age", "300000 years"),
        ("trash_retention", "300000 years"),
        ("orphan_cleanup_interval", "300000 years"),
        ("lease", "0"),
        ("lease", "2 days"),
        ("max_attempts", "1000000000"),
        ("retention_days", "999999999"),
    ] {
        let message = error_of(
            &mut env.client,
            &format!("UPDATE filegc.settings SET value = '{value}' WHERE name = '{name}'"),
        );
        assert!(
            message.contains(name) && message.contains("from") && message.contains("to"),
            "{name} = {value}: the refusal gives the range: {message}"
        );
    }
    let direct = error_of(
        &mut env.client,
        "INSERT INTO filegc.setting_overrides (name, value) VALUES ('lease', '0')",
    );
    assert!(
        direct.contains("lease"),
        "writing the table directly is checked too: {direct}"
    );
}

#[test]
fn no_stored_setting_breaks_a_write_a_report_or_a_sweep() {
    let mut env = TestEnv::new();
    env.write("user_1_1700000000.jpg", "image\n");
    env.insert_row(1, "user_1_1700000000.jpg");
    env.run_ok(&["scan"]);
    // Values stored past every check: a superuser writing the table with
    // filegc's triggers disabled, or a dump of an older version.
    env.client
        .batch_execute(
            "ALTER TABLE filegc.setting_overrides DISABLE TRIGGER ALL;
             DELETE FROM filegc.setting_overrides;
             INSERT INTO filegc.setting_overrides (name, value) VALUES
                 ('unreferenced_delay', '300000 years'), ('orphan_min_age', '300000 years'),
                 ('trash_retention', 'soon'), ('lease', '0'), ('max_attempts', '99999999999'),
                 ('max_delete_fraction', '-1'), ('managed_patterns', ''), ('retention_days', 'x');
             ALTER TABLE filegc.setting_overrides ENABLE TRIGGER ALL;",
        )
        .unwrap();
    env.app()
        .batch_execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (2, 'user_2_1700000000.jpg');
             DELETE FROM facial_evaluations;",
        )
        .unwrap_or_else(|e| panic!("the application's write failed: {e}"));
    for report in [
        "SELECT * FROM filegc.storage_stats",
        "SELECT * FROM filegc.cleanup_orphans()",
        "SELECT * FROM filegc.files",
        "SELECT * FROM filegc.pending",
    ] {
        env.client
            .query(report, &[])
            .unwrap_or_else(|e| panic!("{report} failed: {e}"));
    }
    let sweep = env.run(&["sweep"]);
    assert!(sweep.status.success(), "{}", describe_output(&sweep));
    let stats = env.run(&["stats"]);
    assert!(stats.status.success(), "{}", describe_output(&stats));
}
