//! The promise, scenario 10 (e): schema changes and odd values never break
//! the application's writes, and never let filegc lose sight of rows that
//! reference files (renamed columns, partitions detached and attached,
//! concurrent `track` calls, values of any length).

use std::str::FromStr;
use std::thread;
use std::time::Duration;

use filegc_tests::fixtures::tracked_database;
use filegc_tests::reliability::{final_verdict, pending_deletions, Rng};
use filegc_tests::{cluster, eventually, TestDb};
use postgres::{Client, NoTls};

/// Whether an open insert of `path` into `table.column` by the application holds the path.
fn assert_open_insert_holds(
    db: &TestDb,
    admin: &mut Client,
    table: &str,
    columns: &str,
    values: &str,
) {
    let mut app = db.connect_as("app");
    let mut transaction = app.transaction().unwrap();
    transaction
        .batch_execute(&format!(
            "INSERT INTO {table} ({columns}) VALUES ({values})"
        ))
        .unwrap_or_else(|e| panic!("the application's INSERT into {table} failed: {e}"));
    assert_eq!(
        final_verdict(admin, "held.jpg").as_deref(),
        Ok("busy"),
        "an open insert into {table} holds the path"
    );
    transaction.rollback().unwrap();
}

fn tracked_columns(admin: &mut Client, table: &str) -> Vec<String> {
    admin
        .query(
            "SELECT column_name::text FROM filegc.tracked_columns WHERE table_name = $1::text::regclass ORDER BY 1",
            &[&table],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[test]
fn renaming_a_tracked_column_keeps_tracking_it() {
    let (db, mut admin) = tracked_database();
    admin
        .batch_execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'a.jpg');
             ALTER TABLE facial_evaluations RENAME COLUMN image_path TO img;",
        )
        .unwrap();
    let mut app = db.connect_as("app");
    app.batch_execute("INSERT INTO facial_evaluations (user_id, img) VALUES (2, 'b.jpg')")
        .unwrap_or_else(|e| panic!("an INSERT after the rename failed: {e}"));
    assert_eq!(
        tracked_columns(&mut admin, "facial_evaluations"),
        vec!["img", "secondary_image_path"]
    );
    app.batch_execute("DELETE FROM facial_evaluations WHERE user_id = 1")
        .unwrap();
    assert_eq!(
        pending_deletions(&mut admin, "a.jpg"),
        1,
        "the renamed column's paths are scheduled"
    );
    assert_eq!(
        final_verdict(&mut admin, "b.jpg").as_deref(),
        Ok("referenced")
    );
    assert_open_insert_holds(
        &db,
        &mut admin,
        "facial_evaluations",
        "user_id, img",
        "3, 'held.jpg'",
    );
}

/// A rename the event trigger never saw (event triggers, like the others,
/// do not fire under `session_replication_role = replica`): the row
/// triggers cannot read the tracked column, so the application's writes go
/// on without their notes, each transaction is warned once (not once per
/// row) that it holds off every deletion, and the final check refuses to
/// delete anything until the tracking follows the rename.
#[test]
fn a_rename_the_event_trigger_missed_stops_deletions_and_never_fails_a_write() {
    let (db, mut admin) = tracked_database();
    admin
        .batch_execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'a.jpg');
             SET session_replication_role = replica;
             ALTER TABLE facial_evaluations RENAME COLUMN image_path TO img;
             RESET session_replication_role;",
        )
        .unwrap();
    assert_eq!(
        tracked_columns(&mut admin, "facial_evaluations"),
        vec!["image_path", "secondary_image_path"],
        "the event trigger did not follow the rename"
    );

    let (sender, receiver) = std::sync::mpsc::channel();
    let mut app = postgres::Config::from_str(&db.url_as("app"))
        .unwrap()
        .notice_callback(move |notice| sender.send(notice.message().to_owned()).unwrap())
        .connect(NoTls)
        .unwrap();
    app.batch_execute(
        "BEGIN;
         INSERT INTO facial_evaluations (user_id, img)
         SELECT g, 'held_' || g || '.jpg' FROM generate_series(2, 101) AS g;
         DELETE FROM facial_evaluations WHERE user_id = 1;
         COMMIT;",
    )
    .unwrap_or_else(|e| panic!("the application's writes failed after the rename: {e}"));
    let warnings: Vec<String> = receiver.try_iter().collect();
    let held = warnings
        .iter()
        .filter(|w| {
            w.contains("has no column \"image_path\"") && w.contains("holds off every deletion")
        })
        .count();
    assert_eq!(
        held,
        1,
        "{} warnings, the first: {:?}",
        warnings.len(),
        warnings.first()
    );

    let refused = final_verdict(&mut admin, "held_2.jpg");
    assert!(
        matches!(&refused, Err(message) if message.contains("has no column")),
        "the final check refuses while a tracked column cannot be read: {refused:?}"
    );
    admin
        .batch_execute("SELECT filegc.sync_tracking()")
        .unwrap();
    assert_eq!(
        final_verdict(&mut admin, "held_2.jpg").as_deref(),
        Ok("referenced")
    );
    assert_eq!(
        pending_deletions(&mut admin, "a.jpg"),
        0,
        "a row the triggers could not read schedules nothing"
    );
}

/// A database with the application's schema and `photos`, partitioned by
/// user: one partition for users 0 to 99, tracked, then `then` (SQL), and
/// the application role granted everything on `photos` and its partitions.
fn partitioned_photos(then: &str) -> (TestDb, Client) {
    let db = cluster().create_database();
    db.create_app_schema();
    let mut admin = db.connect();
    admin
        .batch_execute(&format!(
            "CREATE TABLE photos (user_id bigint NOT NULL, img text) PARTITION BY RANGE (user_id);
             CREATE TABLE photos_1 PARTITION OF photos FOR VALUES FROM (0) TO (100);
             SELECT filegc.track('photos', 'img');
             {then}
             DO $$ DECLARE t regclass; BEGIN
                 FOR t IN SELECT oid::regclass FROM pg_class WHERE relname LIKE 'photos%' AND relkind IN ('r', 'p') LOOP
                     EXECUTE format('GRANT ALL ON %s TO app', t);
                 END LOOP;
             END $$;"
        ))
        .unwrap_or_else(|e| panic!("setting up the partitions: {e}"));
    (db, admin)
}

#[test]
fn a_detached_partition_stays_tracked() {
    let (db, mut admin) = partitioned_photos(
        "CREATE TABLE photos_2 PARTITION OF photos FOR VALUES FROM (100) TO (200);
         INSERT INTO photos VALUES (1, 'one.jpg'), (150, 'two.jpg');
         ALTER TABLE photos DETACH PARTITION photos_2;",
    );
    let referenced: bool = admin
        .query_one("SELECT filegc.is_referenced('two.jpg')", &[])
        .unwrap()
        .get(0);
    assert!(
        referenced,
        "the detached table's rows still reference their files"
    );
    assert_eq!(
        final_verdict(&mut admin, "two.jpg").as_deref(),
        Ok("referenced")
    );
    assert_eq!(tracked_columns(&mut admin, "photos_2"), vec!["img"]);
    assert_open_insert_holds(
        &db,
        &mut admin,
        "photos_2",
        "user_id, img",
        "150, 'held.jpg'",
    );
}

#[test]
fn a_tracked_table_attaches_as_a_partition_of_a_tracked_table() {
    let (db, mut admin) = partitioned_photos(
        "CREATE TABLE photos_new (user_id bigint NOT NULL, img text);
         SELECT filegc.track('photos_new', 'img');
         INSERT INTO photos_new VALUES (150, 'new.jpg');",
    );
    admin
        .batch_execute(
            "ALTER TABLE photos ATTACH PARTITION photos_new FOR VALUES FROM (100) TO (200)",
        )
        .unwrap_or_else(|e| panic!("attaching a tracked table failed: {e}"));
    assert_eq!(
        final_verdict(&mut admin, "new.jpg").as_deref(),
        Ok("referenced")
    );
    assert_open_insert_holds(&db, &mut admin, "photos", "user_id, img", "150, 'held.jpg'");
    let mut app = db.connect_as("app");
    app.batch_execute("DELETE FROM photos WHERE img = 'new.jpg'")
        .unwrap();
    assert_eq!(pending_deletions(&mut admin, "new.jpg"), 1);
}

#[test]
fn partitions_present_and_future_take_the_path_locks() {
    let (db, mut admin) = partitioned_photos(
        "CREATE TABLE photos_2 PARTITION OF photos FOR VALUES FROM (100) TO (200);",
    );
    assert_open_insert_holds(&db, &mut admin, "photos", "user_id, img", "1, 'held.jpg'");
    assert_open_insert_holds(
        &db,
        &mut admin,
        "photos_2",
        "user_id, img",
        "150, 'held.jpg'",
    );
}

#[test]
fn track_calls_on_one_column_end_in_one_consistent_state() {
    let (db, mut admin) = tracked_database();
    let mut first = db.connect();
    let mut one = first.transaction().unwrap();
    one.batch_execute("SELECT filegc.track('facial_evaluations', 'image_path', '{/first/}')")
        .unwrap();
    let url = db.url();
    let second = thread::spawn(move || {
        Client::connect(&url, NoTls)
            .unwrap()
            .batch_execute("SELECT filegc.track('facial_evaluations', 'image_path', '{/second/}')")
    });
    let waiting = eventually(Duration::from_secs(20), || {
        admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%/second/%' AND datname = current_database()",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            == 1
    });
    assert!(waiting, "the second track() never waited for the first");
    one.commit().unwrap();
    second.join().unwrap().unwrap();

    let (prefixes, index): (Vec<String>, String) = {
        let row = admin
            .query_one(
                "SELECT prefixes, pg_get_indexdef(format('%I', index_name)::regclass) FROM filegc.tracked_columns
                  WHERE table_name = 'facial_evaluations'::regclass AND column_name = 'image_path'",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(prefixes, vec!["/second/"]);
    assert!(
        index.contains("/second/"),
        "the triggers and the index agree: {index}"
    );
    let reference_indexes = |admin: &mut Client| -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'facial_evaluations' AND indexdef LIKE '%ref_path(image_path%'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(reference_indexes(&mut admin), 1);
    admin
        .batch_execute("SELECT filegc.untrack('facial_evaluations', 'image_path')")
        .unwrap();
    assert_eq!(
        reference_indexes(&mut admin),
        0,
        "untrack leaves no index behind"
    );
}

/// `length` hexadecimal digits that no compression shrinks.
fn incompressible(rng: &mut Rng, length: usize) -> String {
    (0..length)
        .map(|_| char::from_digit(rng.below(16) as u32, 16).unwrap())
        .collect()
}

#[test]
fn values_of_any_length_never_fail_the_write() {
    let (db, mut admin) = tracked_database();
    let mut rng = Rng::new(20261201);
    let long_segments: Vec<String> = (0..12).map(|_| incompressible(&mut rng, 240)).collect();
    let values = [
        incompressible(&mut rng, 4096),
        incompressible(&mut rng, 100_000),
        long_segments.join("/"),
        format!("{}.jpg", incompressible(&mut rng, 300)),
        format!("/app/facial_evaluations/{}", incompressible(&mut rng, 4096)),
    ];
    let mut app = db.connect_as("app");
    for value in &values {
        app.execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, $1)",
            &[value],
        )
        .unwrap_or_else(|e| panic!("an INSERT of a {}-byte value failed: {e}", value.len()));
    }
    let too_long: i64 = admin
        .query_one(
            "SELECT count(*) FROM filegc.invalid_refs WHERE problem LIKE '%too long%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        too_long,
        values.len() as i64,
        "each long value is an invalid reference"
    );
    app.batch_execute("DELETE FROM facial_evaluations").unwrap();
}

#[test]
fn dropping_or_retyping_a_tracked_column_keeps_the_others_tracked() {
    let (db, mut admin) = tracked_database();
    admin
        .batch_execute(
            "ALTER TABLE facial_evaluations ALTER COLUMN secondary_image_path TYPE varchar(300)",
        )
        .unwrap();
    assert_open_insert_holds(
        &db,
        &mut admin,
        "facial_evaluations",
        "user_id, secondary_image_path",
        "1, 'held.jpg'",
    );
    admin
        .batch_execute("ALTER TABLE facial_evaluations DROP COLUMN image_path CASCADE")
        .unwrap();
    assert_eq!(
        tracked_columns(&mut admin, "facial_evaluations"),
        vec!["secondary_image_path"]
    );
    assert_open_insert_holds(
        &db,
        &mut admin,
        "facial_evaluations",
        "user_id, secondary_image_path",
        "1, 'held.jpg'",
    );
}

#[test]
fn a_database_that_is_not_utf8_is_refused_before_any_write_can_fail() {
    let db = cluster().create_database_encoded("SQL_ASCII");
    db.create_app_schema();
    let mut admin = db.connect();
    let refused = admin
        .batch_execute("SELECT filegc.track('facial_evaluations', 'image_path')")
        .expect_err("filegc needs a UTF-8 database");
    let message = refused.as_db_error().expect("a database error").message();
    assert!(
        message.contains("SQL_ASCII") && message.contains("UTF8"),
        "{message}"
    );
    // Nothing of filegc stands in the way of the application's bytes.
    admin
        .batch_execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, E'caf\\xe9.jpg')",
        )
        .unwrap_or_else(|e| panic!("the application's write failed: {e}"));
}
