//! The promise, scenario 10 (d): the writer's side of the lock protocol
//! cannot be skipped (session settings, BEFORE triggers, replica mode,
//! disabled triggers, inheritance children), and the application's writes
//! never fail or wait because of filegc, at any isolation level.

use filegc_tests::cluster;
use filegc_tests::fixtures::{tracked_database, APP_COLUMNS};
use filegc_tests::reliability::{final_verdict, pending_deletions};
use postgres::{Client, IsolationLevel, Transaction};

fn insert<'a>(transaction: &mut Transaction<'a>, table: &str, path: &str) {
    transaction
        .execute(
            &format!("INSERT INTO {table} (user_id, image_path) VALUES (1, $1)"),
            &[&path],
        )
        .unwrap_or_else(|e| panic!("the application's INSERT of {path} into {table} failed: {e}"));
}

/// Schedules the deletion of `path` for an hour from now, as another route would.
fn scheduled_later(admin: &mut Client, path: &str) {
    admin
        .execute(
            "INSERT INTO filegc.tombstones (path, reason, due_at) VALUES ($1, 'manual', now() + interval '1 hour')",
            &[&path],
        )
        .unwrap();
}

#[test]
fn a_session_setting_cannot_turn_the_path_locks_off() {
    let (db, mut admin) = tracked_database();
    for value in ["-1", "-5", "garbage", "1000000"] {
        let mut app = db.connect_as("app");
        let mut transaction = app.transaction().unwrap();
        transaction
            .batch_execute(&format!("SET LOCAL filegc.path_locks_taken = '{value}'"))
            .unwrap();
        insert(&mut transaction, "facial_evaluations", "held.jpg");
        assert_eq!(
            final_verdict(&mut admin, "held.jpg").as_deref(),
            Ok("busy"),
            "with filegc.path_locks_taken = '{value}', an open insert must hold the path"
        );
        transaction.rollback().unwrap();
    }
}

/// A transaction past `filegc.max_path_locks()` path locks takes the
/// escalation lock instead; a savepoint rolled back gives that lock back, so
/// the paths written after it must be locked again.
#[test]
fn a_savepoint_rolled_back_after_an_escalation_leaves_later_paths_locked() {
    let (db, mut admin) = tracked_database();
    let max_path_locks: i32 = admin
        .query_one("SELECT filegc.max_path_locks()", &[])
        .unwrap()
        .get(0);
    for release_first in [false, true] {
        let mut app = db.connect_as("app");
        let mut transaction = app.transaction().unwrap();
        transaction.batch_execute("SAVEPOINT many").unwrap();
        for n in 0..=max_path_locks {
            insert(
                &mut transaction,
                "facial_evaluations",
                &format!("many_{n}.jpg"),
            );
        }
        assert_eq!(
            final_verdict(&mut admin, "many_0.jpg").as_deref(),
            Ok("busy"),
            "past max_path_locks() the escalation lock holds every path"
        );
        if release_first {
            // A savepoint released hands its locks to the transaction; a
            // later one rolled back must not make the writer skip its locks.
            transaction
                .batch_execute("RELEASE SAVEPOINT many; SAVEPOINT later")
                .unwrap();
            insert(&mut transaction, "facial_evaluations", "later.jpg");
            transaction
                .batch_execute("ROLLBACK TO SAVEPOINT later")
                .unwrap();
        } else {
            transaction
                .batch_execute("ROLLBACK TO SAVEPOINT many")
                .unwrap();
        }
        insert(&mut transaction, "facial_evaluations", "held.jpg");
        assert_eq!(
            final_verdict(&mut admin, "held.jpg").as_deref(),
            Ok("busy"),
            "a path written after the rollback must be held (release_first: {release_first})"
        );
        transaction.rollback().unwrap();
    }
}

#[test]
fn a_before_trigger_that_changes_a_tracked_column_is_seen() {
    let (db, mut admin) = tracked_database();
    admin
        .batch_execute(
            "CREATE FUNCTION move_image() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.user_id <> OLD.user_id THEN
                     NEW.image_path := 'moved_' || NEW.user_id || '.jpg';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER move_image BEFORE UPDATE ON facial_evaluations
                 FOR EACH ROW EXECUTE FUNCTION move_image();
             INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'a.jpg');",
        )
        .unwrap();
    let mut app = db.connect_as("app");
    let mut transaction = app.transaction().unwrap();
    transaction
        .execute("UPDATE facial_evaluations SET user_id = 2", &[])
        .unwrap();
    assert_eq!(
        final_verdict(&mut admin, "moved_2.jpg").as_deref(),
        Ok("busy"),
        "the path the BEFORE trigger wrote is held"
    );
    transaction.commit().unwrap();
    assert_eq!(
        pending_deletions(&mut admin, "a.jpg"),
        1,
        "the path that left is scheduled"
    );
}

#[test]
fn replica_mode_writes_take_the_path_locks_and_schedule() {
    let (db, mut admin) = tracked_database();
    let mut replica = db.connect();
    replica
        .batch_execute("SET session_replication_role = replica")
        .unwrap();
    let mut transaction = replica.transaction().unwrap();
    insert(&mut transaction, "facial_evaluations", "held.jpg");
    assert_eq!(final_verdict(&mut admin, "held.jpg").as_deref(), Ok("busy"));
    transaction.commit().unwrap();
    replica
        .batch_execute("DELETE FROM facial_evaluations")
        .unwrap();
    assert_eq!(pending_deletions(&mut admin, "held.jpg"), 1);
}

#[test]
fn disabled_triggers_stop_the_sweeper_instead_of_fooling_it() {
    let (db, mut admin) = tracked_database();
    admin
        .batch_execute("ALTER TABLE facial_evaluations DISABLE TRIGGER USER")
        .unwrap();
    let mut app = db.connect_as("app");
    let mut transaction = app.transaction().unwrap();
    insert(&mut transaction, "facial_evaluations", "held.jpg");
    let verdict = final_verdict(&mut admin, "held.jpg");
    match &verdict {
        Err(message) => assert!(
            message.contains("facial_evaluations") && message.contains("ENABLE"),
            "the refusal names the table and the fix: {message}"
        ),
        Ok(verdict) => panic!("with the triggers disabled the check said {verdict}"),
    }
    let refusal = admin
        .query("SELECT filegc.orphans_among(ARRAY['held.jpg'])", &[])
        .expect_err("with the triggers disabled the fresh orphan listing refuses too");
    let message = refusal
        .as_db_error()
        .map_or_else(|| refusal.to_string(), |db| db.message().to_owned());
    assert!(
        message.contains("facial_evaluations"),
        "the refusal names the table: {message}"
    );
    transaction.rollback().unwrap();
    admin
        .batch_execute("ALTER TABLE facial_evaluations ENABLE TRIGGER USER")
        .unwrap();
    assert_eq!(
        final_verdict(&mut admin, "held.jpg").as_deref(),
        Ok("delete"),
        "enabled again (ENABLE TRIGGER, as pg_restore does), the sweeper goes on"
    );
}

#[test]
fn inheritance_children_present_and_future_take_the_path_locks() {
    let db = cluster().create_database();
    db.create_app_schema();
    let mut admin = db.connect();
    admin
        .batch_execute(
            "CREATE TABLE evaluations_archive () INHERITS (facial_evaluations);
             GRANT ALL ON evaluations_archive TO app;",
        )
        .unwrap();
    for (table, column) in APP_COLUMNS {
        admin
            .execute(
                "SELECT filegc.track($1::text::regclass, $2::text::name, '{}')",
                &[&table, &column],
            )
            .unwrap();
    }
    admin
        .batch_execute(
            "CREATE TABLE evaluations_2027 () INHERITS (facial_evaluations);
             GRANT ALL ON evaluations_2027 TO app;",
        )
        .unwrap();
    for child in ["evaluations_archive", "evaluations_2027"] {
        let mut app = db.connect_as("app");
        let mut transaction = app.transaction().unwrap();
        insert(&mut transaction, child, "held.jpg");
        assert_eq!(
            final_verdict(&mut admin, "held.jpg").as_deref(),
            Ok("busy"),
            "an open insert into {child} holds the path"
        );
        transaction.rollback().unwrap();
    }
    admin
        .batch_execute("INSERT INTO evaluations_2027 (user_id, image_path) VALUES (1, 'kept.jpg')")
        .unwrap();
    assert_eq!(
        final_verdict(&mut admin, "kept.jpg").as_deref(),
        Ok("referenced")
    );
}

fn begin(client: &mut Client, isolation: IsolationLevel) -> Transaction<'_> {
    let mut transaction = client
        .build_transaction()
        .isolation_level(isolation)
        .start()
        .unwrap();
    transaction.query("SELECT 1", &[]).unwrap();
    transaction
}

#[test]
fn writes_at_repeatable_read_never_fail_because_of_filegc() {
    let (db, mut admin) = tracked_database();
    let mut app = db.connect_as("app");

    // A deletion of the path the writer references is claimed after its snapshot.
    admin
        .execute(
            "INSERT INTO filegc.tombstones (path, reason, due_at) VALUES ('p.jpg', 'manual', now())",
            &[],
        )
        .unwrap();
    let mut transaction = begin(&mut app, IsolationLevel::RepeatableRead);
    admin
        .query("SELECT * FROM filegc.claim('w', 10)", &[])
        .unwrap();
    insert(&mut transaction, "facial_evaluations", "p.jpg");
    transaction.commit().unwrap();

    // The path the writer releases was scheduled after its snapshot.
    admin
        .batch_execute("INSERT INTO facial_evaluations (user_id, image_path) VALUES (2, 'q.jpg')")
        .unwrap();
    let mut transaction = begin(&mut app, IsolationLevel::RepeatableRead);
    scheduled_later(&mut admin, "q.jpg");
    transaction
        .execute("DELETE FROM facial_evaluations WHERE user_id = 2", &[])
        .unwrap_or_else(|e| panic!("the application's DELETE failed: {e}"));
    transaction.commit().unwrap();

    // An invalid value another writer recorded after the snapshot.
    let mut transaction = begin(&mut app, IsolationLevel::RepeatableRead);
    db.connect_as("app")
        .batch_execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (3, '/etc/passwd')",
        )
        .unwrap();
    insert(&mut transaction, "facial_evaluations", "/etc/passwd");
    transaction.commit().unwrap();
}

#[test]
fn serializable_writers_are_not_tied_together_by_filegc() {
    let (db, mut admin) = tracked_database();
    let ids: Vec<i64> = admin
        .query(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'shared.jpg'), (2, 'shared.jpg') RETURNING id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut first = db.connect_as("app");
    let mut second = db.connect_as("app");
    let mut one = begin(&mut first, IsolationLevel::Serializable);
    let mut two = begin(&mut second, IsolationLevel::Serializable);
    // Each deletes its own row by primary key: nothing the application
    // itself reads ties the two together.
    for transaction in [&mut one, &mut two] {
        transaction
            .batch_execute("SET LOCAL enable_seqscan = off")
            .unwrap();
    }
    // The first commits before the second deletes: each then still sees
    // the other's row in its snapshot.
    one.execute("DELETE FROM facial_evaluations WHERE id = $1", &[&ids[0]])
        .unwrap();
    one.commit()
        .unwrap_or_else(|e| panic!("the first COMMIT failed: {e}"));
    two.execute("DELETE FROM facial_evaluations WHERE id = $1", &[&ids[1]])
        .unwrap_or_else(|e| panic!("the second DELETE failed: {e}"));
    two.commit()
        .unwrap_or_else(|e| panic!("the second COMMIT failed: {e}"));
    assert_eq!(pending_deletions(&mut admin, "shared.jpg"), 1);
}

#[test]
fn two_writers_never_wait_for_each_other_because_of_filegc() {
    let (db, mut admin) = tracked_database();
    scheduled_later(&mut admin, "x.jpg");
    scheduled_later(&mut admin, "y.jpg");
    let mut first = db.connect_as("app");
    let mut second = db.connect_as("app");
    for client in [&mut first, &mut second] {
        // A wait would be filegc's doing: bound it instead of deadlocking.
        client.batch_execute("SET lock_timeout = '3s'").unwrap();
    }
    let mut one = first.transaction().unwrap();
    let mut two = second.transaction().unwrap();
    insert(&mut one, "facial_evaluations", "x.jpg");
    insert(&mut two, "facial_evaluations", "y.jpg");
    insert(&mut one, "facial_evaluations", "y.jpg");
    insert(&mut two, "facial_evaluations", "x.jpg");
    insert(&mut one, "facial_evaluations", "/etc/a");
    insert(&mut two, "facial_evaluations", "/etc/b");
    insert(&mut one, "facial_evaluations", "/etc/b");
    insert(&mut two, "facial_evaluations", "/etc/a");
    one.commit().unwrap();
    two.commit().unwrap();
}

/// The paths released notes hold, sorted.
fn released_notes(admin: &mut Client) -> Vec<String> {
    admin
        .query(
            "SELECT path FROM filegc.notes WHERE kind = 'r' ORDER BY path COLLATE \"C\"",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[test]
fn a_row_with_many_paths_releases_each_path_it_loses_once() {
    // A row's few paths and a large array's many take different ways
    // through the portable trigger (loops, or queries past 16 paths); both
    // must note each path that leaves the row once, and nothing that stays.
    let (_db, mut admin) = tracked_database();
    admin
        .batch_execute(
            "CREATE TABLE albums (id bigint PRIMARY KEY, images text[]);
             SELECT filegc.track('albums', 'images');",
        )
        .unwrap();
    for (id, count) in [(1i64, 3usize), (2, 40)] {
        let mut images: Vec<String> = (0..count)
            .map(|n| format!("album_{id}/user_{n}_1700000000.jpg"))
            .collect();
        images.push(images[0].clone());
        admin
            .execute(
                "INSERT INTO albums (id, images) VALUES ($1, $2)",
                &[&id, &images],
            )
            .unwrap();
        admin.batch_execute("DELETE FROM filegc.notes").unwrap();
        // Keep the first path (twice) and the last, drop the others.
        let kept = vec![
            images[0].clone(),
            images[0].clone(),
            images[count - 1].clone(),
        ];
        admin
            .execute("UPDATE albums SET images = $2 WHERE id = $1", &[&id, &kept])
            .unwrap();
        let mut dropped: Vec<String> = images[1..count - 1].to_vec();
        dropped.sort();
        assert_eq!(released_notes(&mut admin), dropped, "{count} paths");
        admin.batch_execute("DELETE FROM filegc.notes").unwrap();
        admin
            .execute("DELETE FROM albums WHERE id = $1", &[&id])
            .unwrap();
        let mut left = vec![images[0].clone(), images[count - 1].clone()];
        left.sort();
        assert_eq!(released_notes(&mut admin), left, "{count} paths");
    }
}
