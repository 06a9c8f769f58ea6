//! The promise, scenario 10 (i): a database restored from `pg_dump` keeps
//! every protection it had. What the triggers noted and the sweeper has not
//! processed yet is the operator's data like the tombstones: an invalid
//! value noted moments before the dump still protects the file it names, a
//! path that left its last row is still scheduled, and the restored tables
//! carry one set of filegc's triggers, not the dump's and a new one. A
//! dump of an older release restores into the new one (`pg_dump` writes
//! `CREATE EXTENSION filegc` without a version) with the same protections.

use filegc_tests::fixtures::tracked_database;
use filegc_tests::reliability::{final_verdict, pending_deletions};
use filegc_tests::{cluster, Engine};
use postgres::Client;
use std::process::Command;

#[test]
fn a_restored_database_keeps_what_the_triggers_noted() {
    let (source, mut admin) = tracked_database();
    let mut app = source.connect_as("app");
    app.batch_execute(
        "INSERT INTO facial_evaluations (user_id, image_path) VALUES
             (1, '/app/facial_evaluations/kept.jpg'),
             (2, 'https://cdn.example.com/elsewhere/named.jpg'),
             (3, '/app/facial_evaluations/gone.jpg');
         DELETE FROM facial_evaluations WHERE user_id = 3;",
    )
    .unwrap();
    admin
        .batch_execute(
            "SELECT filegc.record_alert_delivery('w', now(), 'critical', 'ok', 'hooks.example', 3, 'HTTP 500')",
        )
        .unwrap();
    let unprocessed: i64 = admin
        .query_one("SELECT count(*) FROM filegc.notes", &[])
        .unwrap()
        .get(0);
    assert!(
        unprocessed >= 2,
        "the dump is taken before the sweeper processes the notes"
    );

    let restored = cluster().create_plain_database();
    dump_and_restore(source.name(), restored.name());
    let mut restored_admin = restored.connect();

    assert_eq!(
        final_verdict(&mut restored_admin, "named.jpg").as_deref(),
        Ok("protected"),
        "the invalid value noted before the dump still protects the file it names"
    );
    assert_eq!(
        final_verdict(&mut restored_admin, "kept.jpg").as_deref(),
        Ok("referenced")
    );
    assert_eq!(
        pending_deletions(&mut restored_admin, "gone.jpg"),
        1,
        "the path that left its last row before the dump is still scheduled"
    );
    assert_eq!(
        filegc_triggers(&mut restored_admin),
        filegc_triggers(&mut admin),
        "each restored table has one set of filegc's triggers"
    );
    let deliveries: i64 = restored_admin
        .query_one(
            "SELECT count(*) FROM filegc.alert_deliveries WHERE NOT delivered",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        deliveries, 1,
        "the record of alert deliveries is the operator's data"
    );
}

#[test]
fn a_dump_of_the_first_release_restores_into_this_one() {
    if Engine::from_env() == Engine::Portable {
        return; // a portable install's dump restores its own release; install-sql upgrades it
    }
    let source = cluster().create_plain_database();
    source.create_app_schema();
    let mut admin = source.connect();
    admin
        .batch_execute(
            "CREATE EXTENSION filegc VERSION '0.1.0';
             SELECT filegc.track('facial_evaluations', 'image_path', '{/app/facial_evaluations/}');
             INSERT INTO facial_evaluations (user_id, image_path) VALUES
                 (1, '/app/facial_evaluations/kept.jpg'),
                 (2, 'https://cdn.example.com/elsewhere/named.jpg'),
                 (3, '/app/facial_evaluations/gone.jpg');
             DELETE FROM facial_evaluations WHERE user_id = 3;",
        )
        .unwrap();

    let restored = cluster().create_plain_database();
    dump_and_restore(source.name(), restored.name());
    let mut restored_admin = restored.connect();

    // The dump brings the first release's triggers, which fire in origin
    // sessions only: nothing is deleted until they are put right.
    let refused = final_verdict(&mut restored_admin, "named.jpg").unwrap_err();
    assert!(
        refused.contains("filegc_references") && refused.contains("SELECT filegc.sync_tracking()"),
        "{refused}"
    );
    restored_admin
        .batch_execute("SELECT filegc.sync_tracking()")
        .unwrap();
    assert_eq!(
        final_verdict(&mut restored_admin, "named.jpg").as_deref(),
        Ok("protected"),
        "the invalid value the first release recorded still protects the file it names"
    );
    assert_eq!(
        final_verdict(&mut restored_admin, "kept.jpg").as_deref(),
        Ok("referenced")
    );
    assert_eq!(pending_deletions(&mut restored_admin, "gone.jpg"), 1);
    assert_eq!(
        filegc_triggers(&mut restored_admin),
        vec![("facial_evaluations".to_owned(), 3)],
        "the first release's triggers give way to this release's"
    );
}

/// `pg_dump -Fc` of one database and `pg_restore` into another, as an
/// operator restores a backup.
fn dump_and_restore(from: &str, into: &str) {
    let bin = cluster().bin_dir().to_path_buf();
    let port = cluster().port().to_string();
    let dump = std::env::temp_dir().join(format!("filegc-restore-{from}.dump"));
    let connection = ["-h", "127.0.0.1", "-p", &port, "-U", "postgres"];
    let dumped = Command::new(bin.join("pg_dump"))
        .args(connection)
        .args(["-Fc", "-f"])
        .arg(&dump)
        .arg(from)
        .output()
        .unwrap();
    assert!(dumped.status.success(), "pg_dump: {dumped:?}");
    let restored = Command::new(bin.join("pg_restore"))
        .args(connection)
        .args(["--exit-on-error", "-d", into])
        .arg(&dump)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dump);
    assert!(restored.status.success(), "pg_restore: {restored:?}");
}

/// Per table, how many triggers run filegc's trigger functions (clones on
/// partitions aside).
fn filegc_triggers(client: &mut Client) -> Vec<(String, i64)> {
    client
        .query(
            "SELECT tgrelid::regclass::text, count(*) FROM pg_trigger
              WHERE tgparentid = 0
                AND tgfoid IN ('filegc.references_trigger()'::regprocedure, 'filegc.truncate_trigger()'::regprocedure)
              GROUP BY 1 ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}
