//! Reference tracking across committed transactions from several connections.
//!
//! What must hold whatever the interleaving: `filegc.is_referenced` under the
//! sweeper's exclusive lock tells the truth about committed rows, and at READ
//! COMMITTED no path that lost its last reference is left without a tombstone.

use filegc_tests::cluster;
use filegc_tests::fixtures::PREFIX;
use postgres::{Client, IsolationLevel};
use std::collections::BTreeSet;
use std::thread;

/// The open deletions of `path` once the sweeper has turned the triggers'
/// notes into deletions (as its every claim does first).
fn open_tombstones(client: &mut Client, path: &str) -> i64 {
    client
        .batch_execute("SELECT filegc.process_notes()")
        .unwrap();
    client
        .query_one(
            "SELECT count(*) FROM filegc.tombstones WHERE path = $1 AND state IN ('pending', 'claimed')",
            &[&path],
        )
        .unwrap()
        .get(0)
}

/// What the sweeper does before it deletes: try the exclusive lock, then ask
/// for the truth with a fresh snapshot. `None` when the lock is busy.
fn sweeper_check(client: &mut Client, path: &str) -> Option<bool> {
    let mut tx = client.transaction().unwrap();
    let locked: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(filegc.path_lock_class(), filegc.path_lock_key($1))",
            &[&path],
        )
        .unwrap()
        .get(0);
    let referenced = locked.then(|| {
        tx.query_one("SELECT filegc.is_referenced($1)", &[&path])
            .unwrap()
            .get(0)
    });
    tx.rollback().unwrap();
    referenced
}

fn begin(client: &mut Client, isolation: IsolationLevel) -> postgres::Transaction<'_> {
    let mut tx = client
        .build_transaction()
        .isolation_level(isolation)
        .start()
        .unwrap();
    // Takes the snapshot now, as an application would with an earlier read.
    tx.query("SELECT count(*) FROM facial_evaluations", &[])
        .unwrap();
    tx
}

fn sequential_delete_then_insert_leaves_no_open_tombstone(isolation: IsolationLevel) {
    let db = cluster().create_database();
    let mut admin = db.tracked_app();
    admin
        .execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'p.jpg')",
            &[],
        )
        .unwrap();
    let mut writer = db.connect_as("app");

    let mut tx = begin(&mut writer, isolation);
    tx.execute("DELETE FROM facial_evaluations", &[]).unwrap();
    tx.commit().unwrap();
    assert_eq!(open_tombstones(&mut admin, "p.jpg"), 1);

    let mut tx = begin(&mut writer, isolation);
    tx.execute(
        "INSERT INTO generations (user_id, input_image_path) VALUES (1, 'p.jpg')",
        &[],
    )
    .unwrap();
    tx.commit().unwrap();
    assert_eq!(open_tombstones(&mut admin, "p.jpg"), 0);
}

#[test]
fn sequential_delete_then_insert_leaves_no_open_tombstone_at_read_committed() {
    sequential_delete_then_insert_leaves_no_open_tombstone(IsolationLevel::ReadCommitted);
}

#[test]
fn sequential_delete_then_insert_leaves_no_open_tombstone_at_repeatable_read() {
    sequential_delete_then_insert_leaves_no_open_tombstone(IsolationLevel::RepeatableRead);
}

fn an_uncommitted_insert_holds_off_the_sweeper(isolation: IsolationLevel) {
    let db = cluster().create_database();
    let mut admin = db.tracked_app();
    admin
        .execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'p.jpg')",
            &[],
        )
        .unwrap();
    let mut deleter = db.connect_as("app");
    let mut inserter = db.connect_as("app");
    let mut sweeper = db.connect();

    let mut deleting = begin(&mut deleter, isolation);
    let mut inserting = begin(&mut inserter, isolation);
    inserting
        .execute(
            "INSERT INTO generations (user_id, output_image_path) VALUES (2, $1)",
            &[&format!("{PREFIX}p.jpg")],
        )
        .unwrap();
    deleting
        .execute("DELETE FROM facial_evaluations", &[])
        .unwrap();
    assert_eq!(
        sweeper_check(&mut sweeper, "p.jpg"),
        None,
        "the open insert holds the path"
    );
    deleting.commit().unwrap();
    assert_eq!(
        sweeper_check(&mut sweeper, "p.jpg"),
        None,
        "the open insert still holds the path"
    );
    inserting.commit().unwrap();

    assert_eq!(
        sweeper_check(&mut sweeper, "p.jpg"),
        Some(true),
        "under the lock, the sweeper sees the committed reference whatever the trigger scheduled"
    );
}

#[test]
fn an_uncommitted_insert_holds_off_the_sweeper_at_read_committed() {
    an_uncommitted_insert_holds_off_the_sweeper(IsolationLevel::ReadCommitted);
}

#[test]
fn an_uncommitted_insert_holds_off_the_sweeper_at_repeatable_read() {
    an_uncommitted_insert_holds_off_the_sweeper(IsolationLevel::RepeatableRead);
}

fn two_overlapping_deletes_of_one_path_schedule_it(isolation: IsolationLevel) {
    let db = cluster().create_database();
    let mut admin = db.tracked_app();
    admin
        .execute("INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'p.jpg'), (2, 'p.jpg')", &[])
        .unwrap();
    let mut first = db.connect_as("app");
    let mut second = db.connect_as("app");

    let mut one = begin(&mut first, isolation);
    let mut two = begin(&mut second, isolation);
    one.execute("DELETE FROM facial_evaluations WHERE user_id = 1", &[])
        .unwrap();
    two.execute("DELETE FROM facial_evaluations WHERE user_id = 2", &[])
        .unwrap();
    one.commit().unwrap();
    two.commit().unwrap();

    assert_eq!(
        open_tombstones(&mut admin, "p.jpg"),
        1,
        "each snapshot still saw the other row; the notes are read after both committed"
    );
}

#[test]
fn two_overlapping_deletes_of_one_path_schedule_it_at_read_committed() {
    two_overlapping_deletes_of_one_path_schedule_it(IsolationLevel::ReadCommitted);
}

#[test]
fn two_overlapping_deletes_of_one_path_schedule_it_at_repeatable_read() {
    two_overlapping_deletes_of_one_path_schedule_it(IsolationLevel::RepeatableRead);
}

/// A small deterministic generator, so that a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

const PATHS: u64 = 8;
const WRITERS: u64 = 4;
const TRANSACTIONS_PER_WRITER: u64 = 150;

/// Row-lock deadlocks and serialization failures come from the workload itself
/// (transactions that lock the same rows in different orders); filegc adds no
/// wait of its own between writers, so no conflict may involve an advisory lock.
fn is_the_applications_own_conflict(error: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    let Some(db_error) = error.as_db_error() else {
        return false;
    };
    let conflict = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
    ]
    .contains(db_error.code());
    conflict && !db_error.detail().unwrap_or_default().contains("advisory")
}

/// One writer: small transactions that insert, delete and move references
/// among a few shared paths, some rolled back; a conflict rolls back, as an
/// application would.
fn write_randomly(db_url: String, seed: u64, isolation: IsolationLevel) {
    let mut client = Client::connect(&db_url, postgres::NoTls).unwrap();
    let mut random = Lcg(seed);
    for _ in 0..TRANSACTIONS_PER_WRITER {
        let path = |r: &mut Lcg| format!("user_{}_1.jpg", r.below(PATHS));
        let mut tx = client
            .build_transaction()
            .isolation_level(isolation)
            .start()
            .unwrap();
        let statements = 1 + random.below(3);
        let mut failed = false;
        for _ in 0..statements {
            let result = match random.below(4) {
                0 => tx.execute(
                    "INSERT INTO facial_evaluations (user_id, image_path, secondary_image_path) VALUES (0, $1, $2)",
                    &[&path(&mut random), &format!("{PREFIX}{}", path(&mut random))],
                ),
                1 => tx.execute(
                    "DELETE FROM facial_evaluations WHERE id IN (SELECT id FROM facial_evaluations ORDER BY random() LIMIT 1)",
                    &[],
                ),
                2 => tx.execute(
                    "UPDATE facial_evaluations SET image_path = $1 WHERE id IN (SELECT id FROM facial_evaluations ORDER BY random() LIMIT 1)",
                    &[&path(&mut random)],
                ),
                _ => tx.execute(
                    "INSERT INTO generations (user_id, output_image_path) VALUES (0, $1)",
                    &[&format!("https://cdn.example.com{PREFIX}{}", path(&mut random))],
                ),
            };
            if let Err(error) = result {
                assert!(
                    is_the_applications_own_conflict(&error),
                    "an application write failed: {:?}",
                    error.as_db_error()
                );
                failed = true;
                break;
            }
        }
        if failed || random.below(5) == 0 {
            tx.rollback().unwrap();
        } else {
            tx.commit().unwrap();
        }
    }
}

fn referenced_by_rows(client: &mut Client) -> BTreeSet<String> {
    client
        .query(
            "SELECT filegc.ref_path(v, ARRAY[$1]) FROM (
                 SELECT image_path FROM facial_evaluations UNION ALL
                 SELECT secondary_image_path FROM facial_evaluations UNION ALL
                 SELECT input_image_path FROM generations UNION ALL
                 SELECT output_image_path FROM generations) AS s(v)
             WHERE v IS NOT NULL",
            &[&PREFIX],
        )
        .unwrap()
        .into_iter()
        .map(|row| row.get(0))
        .collect()
}

fn concurrent_writers_never_fool_the_sweeper(isolation: IsolationLevel, seed: u64) {
    let db = cluster().create_database();
    let mut admin = db.tracked_app();
    // Every path starts referenced, so every path that ends unreferenced lost
    // its references along the way.
    admin
        .execute(
            "INSERT INTO generations (user_id, input_image_path) SELECT n, 'user_' || n || '_1.jpg' FROM generate_series(0, $1 - 1) n",
            &[&(PATHS as i32)],
        )
        .unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            let url = db.url_as("app");
            thread::spawn(move || write_randomly(url, seed + n, isolation))
        })
        .collect();
    for writer in writers {
        writer.join().expect("a writer failed");
    }

    let referenced = referenced_by_rows(&mut admin);
    for n in 0..PATHS {
        let path = format!("user_{n}_1.jpg");
        let truth = referenced.contains(&path);
        assert_eq!(
            sweeper_check(&mut admin, &path),
            Some(truth),
            "{path}: the sweeper's check against the rows"
        );
        if !truth && matches!(isolation, IsolationLevel::ReadCommitted) {
            assert_eq!(
                open_tombstones(&mut admin, &path),
                1,
                "{path} lost its references without a tombstone"
            );
        }
    }
}

#[test]
fn concurrent_writers_never_fool_the_sweeper_at_read_committed() {
    concurrent_writers_never_fool_the_sweeper(IsolationLevel::ReadCommitted, 17);
}

#[test]
fn concurrent_writers_never_fool_the_sweeper_at_repeatable_read() {
    concurrent_writers_never_fool_the_sweeper(IsolationLevel::RepeatableRead, 41);
}

#[test]
fn a_column_tracked_by_another_connection_counts_at_once() {
    let db = cluster().create_database();
    let mut app = db.tracked_app();
    app.batch_execute("UPDATE filegc.settings SET value = '0' WHERE name = 'unreferenced_delay'")
        .unwrap();
    app.batch_execute(
        "CREATE TABLE avatars (id int, picture text);
         INSERT INTO avatars VALUES (1, 'user_9_1700000000.jpg');",
    )
    .unwrap();
    // This connection releases a path first, so it holds whatever it keeps
    // between rows for releasing paths.
    app.batch_execute(&format!(
        "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, '{PREFIX}user_1_1700000000.jpg');
         DELETE FROM facial_evaluations;"
    ))
    .unwrap();
    assert_eq!(open_tombstones(&mut app, "user_1_1700000000.jpg"), 1);

    // Another connection tracks a column that references a path already.
    db.connect()
        .batch_execute("SELECT filegc.track('avatars', 'picture')")
        .unwrap();

    // The first connection must now see that reference when the path leaves one of its rows.
    app.batch_execute(
        "INSERT INTO facial_evaluations (user_id, image_path) VALUES (9, 'user_9_1700000000.jpg');
         DELETE FROM facial_evaluations;",
    )
    .unwrap();
    assert_eq!(
        open_tombstones(&mut app, "user_9_1700000000.jpg"),
        0,
        "avatars.picture references it"
    );
}
