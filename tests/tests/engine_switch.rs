//! Moving between the extension and the portable install, both ways, keeps
//! the tombstones, settings, history, alert deliveries and tracked columns,
//! and the triggers go on working.

use filegc_tests::cluster;
use filegc_tests::fixtures::{APP_COLUMNS, PREFIX};
use filegc_tests::sweeper::filegc_on;
use postgres::Client;

/// What must survive a change of engine.
#[derive(Debug, PartialEq)]
struct Kept {
    engine: String,
    tombstones: Vec<(i64, String, String)>,
    delay: String,
    runs: i64,
    alert_deliveries: Vec<(String, bool)>,
    tracked: Vec<(String, String)>,
}

fn kept(client: &mut Client) -> Kept {
    let engine = client
        .query_one("SELECT engine FROM filegc.version()", &[])
        .unwrap()
        .get(0);
    let tombstones = client
        .query(
            "SELECT id, path, state FROM filegc.tombstones ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let delay = client
        .query_one("SELECT filegc.setting('unreferenced_delay')", &[])
        .unwrap()
        .get(0);
    let runs = client
        .query_one("SELECT count(*) FROM filegc.sweeps", &[])
        .unwrap()
        .get(0);
    let alert_deliveries = client
        .query(
            "SELECT webhook_host, delivered FROM filegc.alert_deliveries ORDER BY finished_at",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let tracked = client
        .query(
            "SELECT table_name::text, column_name::text FROM filegc.tracked_columns ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Kept {
        engine,
        tombstones,
        delay,
        runs,
        alert_deliveries,
        tracked,
    }
}

#[test]
fn moving_between_the_engines_keeps_the_data_both_ways() {
    let db = cluster().create_plain_database();
    assert!(filegc_on(&db, &["install-sql", "--apply"]).contains("installed filegc"));
    db.create_app_schema();
    let mut client = db.connect();
    for (table, column) in APP_COLUMNS {
        client
            .execute(
                "SELECT filegc.track($1::text::regclass, $2::text::name, ARRAY[$3::text])",
                &[&table, &column, &PREFIX],
            )
            .unwrap();
    }
    client
        .batch_execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'a.jpg'), (2, 'b.jpg'), (3, 'c.jpg');
             DELETE FROM facial_evaluations WHERE user_id = 1;
             SELECT filegc.process_notes();
             UPDATE filegc.settings SET value = '2 minutes' WHERE name = 'unreferenced_delay';
             SELECT filegc.finish_run(filegc.start_run('sweep', 'w', '/v'), 1, 1, 10, 0);
             SELECT filegc.record_alert_delivery('w', now(), 'warning', 'ok', 'hooks.example', 3, 'HTTP 500');",
        )
        .unwrap();
    let before = kept(&mut client);
    assert_eq!(before.engine, "portable");
    assert_eq!(before.tombstones.len(), 1);
    assert_eq!(before.alert_deliveries.len(), 1);

    filegc_on(&db, &["switch-engine", "--to", "extension", "--apply"]);
    let mut client = db.connect();
    let on_extension = kept(&mut client);
    assert_eq!(
        on_extension,
        Kept {
            engine: "extension".into(),
            ..before
        }
    );
    client
        .batch_execute(
            "DELETE FROM facial_evaluations WHERE user_id = 2;
             SELECT filegc.process_notes();",
        )
        .unwrap();
    let newest: (i64, String) = {
        let row = client
            .query_one(
                "SELECT id, path FROM filegc.tombstones ORDER BY id DESC LIMIT 1",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(newest.1, "b.jpg", "the extension's triggers took over");
    assert!(
        newest.0 > on_extension.tombstones[0].0,
        "ids go on from where they were"
    );

    let on_extension = kept(&mut client);
    filegc_on(&db, &["switch-engine", "--to", "portable", "--apply"]);
    let mut client = db.connect();
    assert_eq!(
        kept(&mut client),
        Kept {
            engine: "portable".into(),
            ..on_extension
        }
    );
    client
        .batch_execute("DELETE FROM facial_evaluations WHERE user_id = 3")
        .unwrap();
    let paths: Vec<String> = client
        .query("SELECT path FROM filegc.pending ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        paths,
        vec!["a.jpg", "b.jpg", "c.jpg"],
        "the portable triggers took over again"
    );
}

#[test]
fn a_switch_keeps_the_notes_the_sweeper_has_not_processed_yet() {
    let db = cluster().create_plain_database();
    filegc_on(&db, &["install-sql", "--apply"]);
    db.create_app_schema();
    let mut client = db.connect();
    client
        .batch_execute(
            "SELECT filegc.track('facial_evaluations', 'image_path');
             INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'a.jpg'), (2, '/etc/passwd');
             DELETE FROM facial_evaluations WHERE user_id = 1;",
        )
        .unwrap();
    let notes = |client: &mut Client| -> Vec<(String, Option<String>)> {
        client
            .query(
                "SELECT kind::text, path FROM filegc.notes ORDER BY 1, 2",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let before = notes(&mut client);
    assert_eq!(before.len(), 2, "{before:?}");
    filegc_on(&db, &["switch-engine", "--to", "extension", "--apply"]);
    let mut client = db.connect();
    assert_eq!(notes(&mut client), before);
    client
        .batch_execute("SELECT filegc.process_notes()")
        .unwrap();
    let pending: i64 = client
        .query_one(
            "SELECT count(*) FROM filegc.tombstones WHERE path = 'a.jpg' AND state = 'pending'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(pending, 1);
}
