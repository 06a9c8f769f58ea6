//! The SQL surface: views and functions for operators, and the sweeper's
//! queue protocol, against a reported inventory.

use filegc_tests::cluster;
use filegc_tests::fixtures::{report_capacity, report_scan, ScannedFile, PREFIX};
use postgres::Client;
use std::thread;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn i64_of(client: &mut Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {:?}", e.as_db_error()))
        .get(0)
}

fn first_column<T: postgres::types::FromSqlOwned>(client: &mut Client, sql: &str) -> Vec<T> {
    client
        .query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {:?}", e.as_db_error()))
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn error_of(client: &mut Client, sql: &str) -> String {
    let error = client.batch_execute(sql).expect_err(sql);
    let db = error.as_db_error().expect("a database error");
    format!("{} {}", db.message(), db.hint().unwrap_or_default())
}

fn reference(client: &mut Client, path: &str) {
    client
        .execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, $1)",
            &[&path],
        )
        .unwrap();
}

/// Two referenced images, two orphans (one too young), a file of another
/// kind, and a capacity report.
fn known_volume(client: &mut Client) {
    reference(client, &format!("{PREFIX}user_1_1700000000.jpg"));
    reference(client, "user_1_1700000000_2.png");
    reference(client, "user_3_1700000300.jpg"); // missing on disk
    report_scan(
        client,
        &[
            ScannedFile::aged("user_1_1700000000.jpg", 1_000, 10 * DAY),
            ScannedFile::aged("user_1_1700000000_2.png", 2_000, 5 * DAY),
            ScannedFile::aged("user_2_1700000100.webp", 4_000, 100 * DAY),
            ScannedFile::aged("user_2_1700000200.JPEG", 8_000, 60),
            ScannedFile::aged("notes.txt", 16_000, DAY),
        ],
    );
    assert_eq!(report_capacity(client, 100_000, 85_000), "warning");
}

#[test]
fn storage_stats_add_up_the_inventory() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    known_volume(&mut client);
    let row = client
        .query_one("SELECT * FROM filegc.storage_stats", &[])
        .unwrap();
    let n = |column: &str| -> i64 { row.get(column) };
    assert_eq!(n("total_files"), 4, "images only");
    assert_eq!(n("total_bytes"), 15_000);
    assert_eq!(n("referenced_files"), 2);
    assert_eq!(n("referenced_bytes"), 3_000);
    assert_eq!(n("orphaned_files"), 2);
    assert_eq!(n("orphaned_bytes"), 12_000);
    assert_eq!(
        n("eligible_orphan_files"),
        1,
        "the one seen a minute ago is too young"
    );
    assert_eq!(n("unmanaged_files"), 1);
    assert_eq!(n("unmanaged_bytes"), 16_000);
    assert_eq!(n("missing_refs"), 1);
    assert_eq!(n("capacity_bytes"), 100_000);
    assert_eq!(row.get::<_, String>("alert_level"), "warning");
    assert_eq!(row.get::<_, String>("volume_path"), "/volume");
    let (scanned, swept): (bool, bool) = {
        let r = client
            .query_one("SELECT last_scan_at IS NOT NULL, last_sweep_at IS NOT NULL FROM filegc.storage_stats", &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(scanned && !swept);
}

#[test]
fn files_parse_the_naming_convention() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    known_volume(&mut client);
    let row = client
        .query_one(
            "SELECT user_id, secondary, ext, managed, referenced, refcount FROM filegc.files WHERE path = 'user_1_1700000000_2.png'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<i64>>(0), Some(1));
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, String>(2), "png");
    assert!(row.get::<_, bool>(3));
    assert!(row.get::<_, bool>(4));
    assert_eq!(row.get::<_, i64>(5), 1);
    let other = client
        .query_one(
            "SELECT user_id, managed FROM filegc.files WHERE path = 'notes.txt'",
            &[],
        )
        .unwrap();
    assert_eq!(other.get::<_, Option<i64>>(0), None);
    assert!(!other.get::<_, bool>(1));
}

#[test]
fn orphans_become_eligible_at_the_minimum_age() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    let just_under = ScannedFile::aged("young.jpg", 1, HOUR - 60);
    let just_over = ScannedFile::aged("old.jpg", 1, HOUR + 60);
    let recently_modified = ScannedFile {
        path: "touched.jpg".into(),
        size_bytes: 1,
        modified_secs_ago: 60,
        first_seen_secs_ago: DAY,
    };
    let recently_seen = ScannedFile {
        path: "new_here.jpg".into(),
        size_bytes: 1,
        modified_secs_ago: DAY,
        first_seen_secs_ago: 60,
    };
    report_scan(
        &mut client,
        &[just_under, just_over, recently_modified, recently_seen],
    );
    let eligible: Vec<String> = first_column(
        &mut client,
        "SELECT path FROM filegc.orphans WHERE eligible ORDER BY path",
    );
    assert_eq!(eligible, vec!["old.jpg"]);
    assert_eq!(
        i64_of(&mut client, "SELECT count(*) FROM filegc.orphans"),
        4
    );
}

#[test]
fn a_name_an_invalid_reference_may_mean_is_never_an_orphan() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    // A prefix the operator forgot: the value cannot be normalized.
    reference(&mut client, "/srv/old_volume/user_9_1600000000.jpg");
    report_scan(
        &mut client,
        &[ScannedFile::aged("user_9_1600000000.jpg", 1, 30 * DAY)],
    );
    assert_eq!(
        i64_of(&mut client, "SELECT count(*) FROM filegc.orphans"),
        0
    );
    assert_eq!(
        i64_of(
            &mut client,
            "SELECT count(*) FROM filegc.cleanup_orphans(dry_run => false)"
        ),
        0
    );
    assert_eq!(
        i64_of(
            &mut client,
            "SELECT count(*) FROM filegc.cleanup_older_than(7, dry_run => false)"
        ),
        0
    );
    let row = client
        .query_one(
            "SELECT invalid_refs, protected_files FROM filegc.storage_stats",
            &[],
        )
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (1, 1),
        "storage_stats tells the operator why the file is kept"
    );
}

#[test]
fn cleanups_need_a_scan_first() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    let error = error_of(&mut client, "SELECT * FROM filegc.cleanup_orphans()");
    assert!(
        error.contains("no scan") && error.contains("filegc scan"),
        "{error}"
    );
}

#[test]
fn dry_runs_list_and_schedule_nothing() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    known_volume(&mut client);
    let listed: Vec<String> =
        first_column(&mut client, "SELECT path FROM filegc.cleanup_orphans()");
    assert_eq!(listed, vec!["user_2_1700000100.webp"]);
    assert_eq!(
        i64_of(
            &mut client,
            "SELECT count(*) FROM filegc.cleanup_older_than(30)"
        ),
        1
    );
    assert_eq!(
        i64_of(&mut client, "SELECT count(*) FROM filegc.tombstones"),
        0
    );
}

#[test]
fn cleanup_orphans_schedules_the_eligible_and_notifies() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    known_volume(&mut client);
    let mut listener = db.connect();
    listener.batch_execute("LISTEN filegc").unwrap();
    let scheduled = i64_of(
        &mut client,
        "SELECT count(*) FROM filegc.cleanup_orphans(dry_run => false)",
    );
    assert_eq!(scheduled, 1);
    let row = client
        .query_one(
            "SELECT path, reason, due_at <= now() FROM filegc.pending",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "user_2_1700000100.webp");
    assert_eq!(row.get::<_, String>(1), "orphan");
    assert!(row.get::<_, bool>(2), "due at once");
    use postgres::fallible_iterator::FallibleIterator;
    let notification = listener
        .notifications()
        .timeout_iter(std::time::Duration::from_secs(5))
        .next()
        .unwrap()
        .expect("cleanup_orphans sends NOTIFY filegc");
    assert_eq!(notification.channel(), "filegc");
}

/// The payloads of the notifications on `filegc` up to and including the
/// first `marker`, which the caller sent after everything it wants to see.
fn notifications_until_marker(listener: &mut Client) -> Vec<String> {
    use postgres::fallible_iterator::FallibleIterator;
    let mut payloads = Vec::new();
    let mut listened = listener.notifications();
    let mut notifications = listened.timeout_iter(std::time::Duration::from_secs(10));
    while let Some(notification) = notifications.next().unwrap() {
        if notification.payload() == "marker" {
            return payloads;
        }
        payloads.push(notification.payload().to_owned());
    }
    panic!("the marker never arrived; before it: {payloads:?}");
}

#[test]
fn a_session_wakes_the_sweeper_for_released_paths_at_most_once_a_pause() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    let mut listener = db.connect();
    listener.batch_execute("LISTEN filegc").unwrap();
    let mut marker = db.connect();
    let pause = std::time::Duration::from_secs_f64(
        client
            .query_one(
                "SELECT extract(epoch FROM filegc.release_wake_pause())::float8",
                &[],
            )
            .unwrap()
            .get(0),
    );
    for n in 0..4 {
        reference(&mut client, &format!("user_{n}_1700000000.jpg"));
    }
    // Two transactions that release paths, both within one pause; a slow
    // machine that takes longer tries again (notifications reach the
    // listener in commit order, so the marker ends each try).
    let mut tries = 0;
    let payloads = loop {
        tries += 1;
        assert!(tries < 10, "two deletions never ran within {pause:?}");
        let started = std::time::Instant::now();
        for n in 0..2 {
            let path = format!("user_{}_1700000000.jpg", 2 * (tries % 2) + n);
            client
                .execute(
                    "DELETE FROM facial_evaluations WHERE image_path = $1",
                    &[&path],
                )
                .unwrap();
            reference(&mut client, &path);
        }
        let within_a_pause = started.elapsed() < pause;
        marker.batch_execute("NOTIFY filegc, 'marker'").unwrap();
        let payloads = notifications_until_marker(&mut listener);
        if within_a_pause {
            break payloads;
        }
    };
    assert!(
        payloads.len() <= 1,
        "the second deletion woke the sweeper again: {payloads:?}"
    );
}
#[test]
fn the_breaker_refuses_a_large_cleanup_unless_forced() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    let files: Vec<ScannedFile> = (0..10)
        .map(|n| ScannedFile::aged(&format!("user_{n}_1.jpg"), 1_000, 2 * DAY))
        .collect();
    report_scan(&mut client, &files);
    let error = error_of(
        &mut client,
        "SELECT * FROM filegc.cleanup_orphans(dry_run => false)",
    );
    assert!(
        error.contains("circuit breaker") && error.contains("10 of the 10 files"),
        "{error}"
    );
    assert!(
        error.contains("force => true"),
        "the error says how to proceed: {error}"
    );
    let refused = client
        .batch_execute("SELECT * FROM filegc.cleanup_orphans(dry_run => false)")
        .expect_err("the breaker refuses");
    let sqlstate = refused.as_db_error().unwrap().code().code().to_owned();
    assert_eq!(
        sqlstate,
        filegc_sweeper::db::BREAKER_SQLSTATE,
        "the sweeper knows a refusal by its SQLSTATE"
    );
    let declared: String = client
        .query_one("SELECT filegc.breaker_sqlstate()", &[])
        .unwrap()
        .get(0);
    assert_eq!(declared, sqlstate);
    // What a dry run can say before anyone is asked: why it would refuse.
    let refusal: Option<String> = client
        .query_one("SELECT filegc.breaker_refusal(10, 10000, 'a test')", &[])
        .unwrap()
        .get(0);
    assert!(
        refusal.is_some_and(|text| text.contains("a test would delete 10 of the 10 files")),
        "past the limit"
    );
    let allowed: Option<String> = client
        .query_one("SELECT filegc.breaker_refusal(2, 2000, 'a test')", &[])
        .unwrap()
        .get(0);
    assert_eq!(allowed, None, "within a quarter");
    assert_eq!(
        i64_of(&mut client, "SELECT count(*) FROM filegc.tombstones"),
        0
    );
    assert_eq!(
        i64_of(
            &mut client,
            "SELECT count(*) FROM filegc.cleanup_orphans(dry_run => false, force => true)"
        ),
        10
    );
}

#[test]
fn cleanup_older_than_keeps_referenced_files_unless_told() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    known_volume(&mut client);
    client
        .batch_execute("UPDATE filegc.settings SET value = '1' WHERE name = 'max_delete_fraction'")
        .unwrap();
    let without: Vec<String> = first_column(
        &mut client,
        "SELECT path FROM filegc.cleanup_older_than(3, dry_run => false) ORDER BY path",
    );
    assert_eq!(without, vec!["user_2_1700000100.webp"]);
    let with: Vec<String> = first_column(&mut client, "SELECT path FROM filegc.cleanup_older_than(3, include_referenced => true, dry_run => false) ORDER BY path");
    assert_eq!(
        with,
        vec!["user_1_1700000000.jpg", "user_1_1700000000_2.png"],
        "the orphan was scheduled already"
    );
    let flagged = i64_of(
        &mut client,
        "SELECT count(*) FROM filegc.pending WHERE reason = 'expired' AND include_referenced",
    );
    assert_eq!(flagged, 2);

    // The sweeper deletes them although rows still point at them...
    let claimed = client
        .query("SELECT id FROM filegc.claim('w', 10)", &[])
        .unwrap();
    let ids: Vec<i64> = claimed.iter().map(|r| r.get(0)).collect();
    let mut tx = client.transaction().unwrap();
    let verdicts = tx
        .query(
            "SELECT path, verdict FROM filegc.check_before_delete('w', $1)",
            &[&ids],
        )
        .unwrap();
    assert!(verdicts.iter().all(|r| r.get::<_, String>(1) == "delete"));
    tx.execute(
        "SELECT filegc.complete('w', $1::bigint[], array_fill('deleted'::text, ARRAY[cardinality($1::bigint[])]), array_fill(0::bigint, ARRAY[cardinality($1::bigint[])]))",
        &[&ids],
    )
    .unwrap();
    tx.commit().unwrap();
    // ...and once a scan no longer finds them, they show up as missing.
    report_scan(&mut client, &[ScannedFile::aged("notes.txt", 16_000, DAY)]);
    let missing: Vec<String> =
        first_column(&mut client, "SELECT path FROM filegc.missing ORDER BY path");
    assert_eq!(
        missing,
        vec![
            "user_1_1700000000.jpg",
            "user_1_1700000000_2.png",
            "user_3_1700000300.jpg"
        ]
    );
}

#[test]
fn old_files_lists_managed_files_past_the_age() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    known_volume(&mut client);
    let old: Vec<(String, bool)> = client
        .query("SELECT path, referenced FROM filegc.old_files(7)", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        old,
        vec![
            ("user_2_1700000100.webp".into(), false),
            ("user_1_1700000000.jpg".into(), true)
        ]
    );
    assert_eq!(
        i64_of(&mut client, "SELECT count(*) FROM filegc.old_files()"),
        1,
        "30 days by default"
    );
}

#[test]
fn schedule_delete_skips_referenced_and_malformed_paths() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    reference(&mut client, "kept.jpg");
    let scheduled = i64_of(
        &mut client,
        "SELECT filegc.schedule_delete(ARRAY['kept.jpg', 'gone.jpg', '../etc/passwd', '/etc/passwd', 'a/./b.jpg'], force => true)::bigint",
    );
    assert_eq!(scheduled, 1);
    let paths: Vec<String> = first_column(&mut client, "SELECT path FROM filegc.pending");
    assert_eq!(paths, vec!["gone.jpg"]);
}

#[test]
fn cancel_and_restore() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    client
        .batch_execute("SELECT filegc.schedule_delete(ARRAY['a.jpg', 'b.jpg'], force => true)")
        .unwrap();
    assert!(client
        .query_one("SELECT filegc.cancel('a.jpg')", &[])
        .unwrap()
        .get::<_, bool>(0));
    assert!(
        !client
            .query_one("SELECT filegc.cancel('a.jpg')", &[])
            .unwrap()
            .get::<_, bool>(0),
        "nothing pending any more"
    );
    assert!(
        !client
            .query_one("SELECT filegc.restore('b.jpg')", &[])
            .unwrap()
            .get::<_, bool>(0),
        "not trashed yet"
    );

    let id: i64 = client
        .query_one("SELECT id FROM filegc.claim('w', 10)", &[])
        .unwrap()
        .get(0);
    client
        .execute(
            "SELECT filegc.complete('w', ARRAY[$1::bigint], ARRAY['trashed'], ARRAY[10::bigint])",
            &[&id],
        )
        .unwrap();
    assert!(client
        .query_one("SELECT filegc.restore('b.jpg')", &[])
        .unwrap()
        .get::<_, bool>(0));
    let requests: Vec<String> =
        first_column(&mut client, "SELECT path FROM filegc.restore_requests()");
    assert_eq!(requests, vec!["b.jpg"]);
    client
        .execute("SELECT filegc.trash_done(ARRAY[$1::bigint], '{}')", &[&id])
        .unwrap();
    assert_eq!(
        i64_of(
            &mut client,
            "SELECT count(*) FROM filegc.restore_requests()"
        ),
        0
    );
    assert!(
        !client
            .query_one("SELECT filegc.restore('b.jpg')", &[])
            .unwrap()
            .get::<_, bool>(0),
        "restored already"
    );
}

#[test]
fn two_claimers_never_receive_the_same_tombstone() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    client
        .batch_execute("SELECT filegc.schedule_delete(ARRAY(SELECT 'f' || n || '.jpg' FROM generate_series(1, 200) n), force => true)")
        .unwrap();
    let claimers: Vec<_> = ["one", "two"]
        .into_iter()
        .map(|worker| {
            let url = db.url();
            thread::spawn(move || {
                let mut client = Client::connect(&url, postgres::NoTls).unwrap();
                let mut mine = Vec::new();
                loop {
                    let batch: Vec<i64> = client
                        .query("SELECT id FROM filegc.claim($1, 7)", &[&worker])
                        .unwrap()
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch);
                }
            })
        })
        .collect();
    let mut all: Vec<i64> = claimers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(all.len(), 200);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 200, "no tombstone went to both");
}

#[test]
fn an_expired_lease_is_claimed_again_and_attempts_run_out() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    client
        .batch_execute("UPDATE filegc.settings SET value = '2' WHERE name = 'max_attempts'")
        .unwrap();
    client
        .batch_execute("SELECT filegc.schedule_delete(ARRAY['a.jpg'], force => true)")
        .unwrap();
    assert_eq!(
        i64_of(
            &mut client,
            "SELECT count(*) FROM filegc.claim('crashed', 10)"
        ),
        1
    );
    assert_eq!(
        i64_of(
            &mut client,
            "SELECT count(*) FROM filegc.claim('other', 10)"
        ),
        0,
        "the lease holds"
    );
    client
        .batch_execute("UPDATE filegc.tombstones SET lease_until = now() - interval '1 second'")
        .unwrap();
    let row = client
        .query_one("SELECT id, attempts FROM filegc.claim('other', 10)", &[])
        .unwrap();
    assert_eq!(row.get::<_, i32>(1), 2);
    client
        .batch_execute("UPDATE filegc.tombstones SET lease_until = now() - interval '1 second'")
        .unwrap();
    assert_eq!(
        i64_of(
            &mut client,
            "SELECT count(*) FROM filegc.claim('third', 10)"
        ),
        0
    );
    let row = client
        .query_one("SELECT state, last_error FROM filegc.tombstones", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert!(row.get::<_, String>(1).contains("gave up after 2 attempts"));
}

/// A claim whose lease ran out after its last attempt is failed when the
/// claims reach it; a batch made only of such claims must not end the
/// sweep while other deletions are due after them.
#[test]
fn a_batch_of_spent_claims_does_not_hide_the_deletions_due_after_it() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    client
        .batch_execute("UPDATE filegc.settings SET value = '1' WHERE name = 'max_attempts'")
        .unwrap();
    client
        .batch_execute("SELECT filegc.schedule_delete(ARRAY['spent.jpg'], force => true)")
        .unwrap();
    assert_eq!(
        i64_of(
            &mut client,
            "SELECT count(*) FROM filegc.claim('crashed', 1)"
        ),
        1
    );
    client
        .batch_execute("SELECT filegc.schedule_delete(ARRAY['due.jpg'], force => true)")
        .unwrap();
    client
        .batch_execute(
            "UPDATE filegc.tombstones SET lease_until = now() - interval '1 second' WHERE path = 'spent.jpg'",
        )
        .unwrap();
    let claimed: Vec<String> = client
        .query("SELECT path FROM filegc.claim('other', 1)", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(claimed, ["due.jpg"]);
    let state: String = client
        .query_one(
            "SELECT state FROM filegc.tombstones WHERE path = 'spent.jpg'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(state, "failed");
}

#[test]
fn failures_are_retried_then_failed_with_the_last_error() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    client
        .batch_execute("UPDATE filegc.settings SET value = '2' WHERE name = 'max_attempts'")
        .unwrap();
    client
        .batch_execute("SELECT filegc.schedule_delete(ARRAY['a.jpg'], force => true)")
        .unwrap();
    let id: i64 = client
        .query_one("SELECT id FROM filegc.claim('w', 1)", &[])
        .unwrap()
        .get(0);
    client
        .execute(
            "SELECT filegc.fail('w', ARRAY[$1::bigint], ARRAY['permission denied'])",
            &[&id],
        )
        .unwrap();
    let row = client
        .query_one("SELECT state, due_at > now() FROM filegc.tombstones", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "pending");
    assert!(row.get::<_, bool>(1), "retried after a pause");
    client
        .batch_execute("UPDATE filegc.tombstones SET due_at = now()")
        .unwrap();
    client
        .query_one("SELECT id FROM filegc.claim('w', 1)", &[])
        .unwrap();
    client
        .execute(
            "SELECT filegc.fail('w', ARRAY[$1::bigint], ARRAY['read-only file system'])",
            &[&id],
        )
        .unwrap();
    let row = client
        .query_one("SELECT state, last_error FROM filegc.deletions", &[])
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, String>(1), "read-only file system");
}

#[test]
fn the_final_check_refuses_referenced_busy_and_lost_paths() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    client
        .batch_execute("SELECT filegc.schedule_delete(ARRAY['free.jpg', 'revived.jpg', 'held.jpg', 'stolen.jpg'], force => true)")
        .unwrap();
    let ids: Vec<i64> = first_column(&mut client, "SELECT id FROM filegc.claim('w', 10)");
    reference(&mut client, "revived.jpg");
    let mut writer = db.connect_as("app");
    let mut open_insert = writer.transaction().unwrap();
    open_insert
        .execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (2, 'held.jpg')",
            &[],
        )
        .unwrap();
    client
        .batch_execute(
            "UPDATE filegc.tombstones SET claimed_by = 'thief' WHERE path = 'stolen.jpg'",
        )
        .unwrap();

    let mut sweeper = db.connect();
    let mut tx = sweeper.transaction().unwrap();
    let verdicts: Vec<(String, String)> = tx
        .query(
            "SELECT path, verdict FROM filegc.check_before_delete('w', $1) ORDER BY path",
            &[&ids],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    tx.commit().unwrap();
    open_insert.rollback().unwrap();
    assert_eq!(
        verdicts,
        vec![
            ("free.jpg".into(), "delete".into()),
            ("held.jpg".into(), "busy".into()),
            ("revived.jpg".into(), "referenced".into()),
            ("stolen.jpg".into(), "lost".into()),
        ]
    );
    let states: Vec<(String, String, Option<String>)> = client
        .query(
            "SELECT path, state, outcome FROM filegc.tombstones ORDER BY path",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        states[1],
        ("held.jpg".into(), "pending".into(), None),
        "a busy path goes back to the queue"
    );
    assert_eq!(
        states[2],
        (
            "revived.jpg".into(),
            "done".into(),
            Some("skipped_referenced".into())
        )
    );
}

#[test]
fn a_scan_replaces_the_inventory_and_keeps_first_sightings() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    report_scan(
        &mut client,
        &[
            ScannedFile::aged("a.jpg", 1, DAY),
            ScannedFile::aged("b.jpg", 1, DAY),
        ],
    );
    let scan: i64 = client
        .query_one("SELECT filegc.start_run('scan', 'w', '/volume')", &[])
        .unwrap()
        .get(0);
    client
        .execute(
            "INSERT INTO filegc.inventory_staging VALUES ($1, 'b.jpg', 5, now()), ($1, 'c.jpg', 7, now())",
            &[&scan],
        )
        .unwrap();
    let row = client
        .query_one("SELECT files, bytes FROM filegc.finish_scan($1)", &[&scan])
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (2, 12));
    let rows: Vec<(String, i64, bool)> = client
        .query("SELECT path, size_bytes, first_seen_at < now() - interval '1 hour' FROM filegc.inventory ORDER BY path", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![("b.jpg".into(), 5, true), ("c.jpg".into(), 7, false)]
    );
    assert_eq!(
        i64_of(&mut client, "SELECT count(*) FROM filegc.inventory_staging"),
        0
    );
}

/// finish_scan empties the staging table at once when it holds only its own
/// scan; another scan's rows, committed or still being copied, must stay.
#[test]
fn finishing_a_scan_leaves_the_files_another_scan_staged() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    let start = |client: &mut Client| -> i64 {
        client
            .query_one("SELECT filegc.start_run('scan', 'w', '/volume')", &[])
            .unwrap()
            .get(0)
    };
    let stage = "INSERT INTO filegc.inventory_staging VALUES ($1, $2, 1, now())";
    let (committed, copying, finishing) =
        (start(&mut client), start(&mut client), start(&mut client));
    client.execute(stage, &[&committed, &"a.jpg"]).unwrap();
    let mut other = db.connect();
    let mut in_copy = other.transaction().unwrap();
    in_copy.execute(stage, &[&copying, &"b.jpg"]).unwrap();
    client.execute(stage, &[&finishing, &"c.jpg"]).unwrap();

    client
        .execute("SELECT filegc.finish_scan($1)", &[&finishing])
        .unwrap();
    in_copy.commit().unwrap();
    let staged: Vec<String> = first_column(
        &mut client,
        "SELECT path FROM filegc.inventory_staging ORDER BY path",
    );
    assert_eq!(staged, vec!["a.jpg", "b.jpg"]);

    client
        .execute("SELECT filegc.finish_scan($1)", &[&committed])
        .unwrap();
    client
        .execute("SELECT filegc.finish_scan($1)", &[&copying])
        .unwrap();
    assert_eq!(
        first_column::<String>(&mut client, "SELECT path FROM filegc.inventory"),
        vec!["b.jpg"]
    );
    assert_eq!(
        i64_of(&mut client, "SELECT count(*) FROM filegc.inventory_staging"),
        0,
        "the last scan, alone in the staging table, empties it"
    );
}

#[test]
fn the_sweeper_role_runs_the_protocol_but_cannot_touch_application_tables() {
    let db = cluster().create_database();
    let mut admin = db.tracked_app();
    admin
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE sweeper_login LOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             GRANT filegc_sweeper TO sweeper_login",
        )
        .unwrap();
    admin
        .batch_execute("SELECT filegc.schedule_delete(ARRAY['a.jpg'], force => true)")
        .unwrap();
    let mut sweeper = db.connect_as("sweeper_login");
    for sql in [
        "SELECT * FROM facial_evaluations",
        "DELETE FROM generations",
        "INSERT INTO facial_evaluations (user_id) VALUES (1)",
        "SELECT * FROM filegc.tombstones",
    ] {
        let error = error_of(&mut sweeper, sql);
        assert!(error.contains("permission denied"), "{sql}: {error}");
    }
    let scan: i64 = sweeper
        .query_one("SELECT filegc.start_run('scan', 's', '/v')", &[])
        .unwrap()
        .get(0);
    let mut copy = sweeper
        .copy_in(
            "COPY filegc.inventory_staging (scan_id, path, size_bytes, modified_at) FROM STDIN",
        )
        .unwrap();
    use std::io::Write;
    copy.write_all(format!("{scan}\ta.jpg\t10\t2024-01-01 00:00:00+00\n").as_bytes())
        .unwrap();
    copy.finish().unwrap();
    sweeper
        .execute("SELECT filegc.finish_scan($1)", &[&scan])
        .unwrap();
    assert_eq!(
        i64_of(&mut sweeper, "SELECT total_files FROM filegc.storage_stats"),
        1
    );
    assert_eq!(
        i64_of(&mut sweeper, "SELECT count(*) FROM filegc.claim('s', 10)"),
        1
    );
    assert_eq!(
        i64_of(&mut sweeper, "SELECT count(*) FROM filegc.orphans"),
        1
    );
}

#[test]
fn managed_patterns_decide_which_files_cleanups_consider() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    let volume = [
        ScannedFile::aged("a.jpg", 1, DAY),
        ScannedFile::aged("b.gif", 1, DAY),
        ScannedFile::aged("c.PNG", 1, DAY),
    ];
    report_scan(&mut client, &volume);
    assert_eq!(
        i64_of(&mut client, "SELECT count(*) FROM filegc.orphans"),
        2
    );
    client
        .batch_execute(
            "UPDATE filegc.settings SET value = '*.gif, *.jp?g' WHERE name = 'managed_patterns'",
        )
        .unwrap();
    let managed_files = "SELECT path FROM filegc.files WHERE managed ORDER BY path";
    assert_eq!(
        first_column::<String>(&mut client, managed_files),
        vec!["b.gif"],
        "the flags the scan stored were for the old patterns"
    );
    report_scan(&mut client, &volume);
    assert_eq!(
        first_column::<String>(
            &mut client,
            "SELECT path FROM filegc.inventory WHERE managed ORDER BY path"
        ),
        vec!["b.gif"],
        "a scan stores the flags of the patterns in force"
    );
    // While the patterns stay, the reports read the stored flag instead
    // of matching every path again.
    client
        .batch_execute("UPDATE filegc.inventory SET managed = false WHERE path = 'b.gif'")
        .unwrap();
    assert!(first_column::<String>(&mut client, managed_files).is_empty());
    let error = error_of(
        &mut client,
        "UPDATE filegc.settings SET value = 'a/b, ,' WHERE name = 'managed_patterns'",
    );
    assert!(error.contains("managed_patterns"), "{error}");
}

#[test]
fn completed_deletions_leave_the_inventory_at_once() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    report_scan(
        &mut client,
        &[
            ScannedFile::aged("a.jpg", 10, DAY),
            ScannedFile::aged("b.jpg", 10, DAY),
        ],
    );
    client
        .batch_execute("SELECT filegc.schedule_delete(ARRAY['a.jpg'], force => true)")
        .unwrap();
    let id: i64 = client
        .query_one("SELECT id FROM filegc.claim('w', 10)", &[])
        .unwrap()
        .get(0);
    client
        .execute(
            "SELECT filegc.complete('w', ARRAY[$1::bigint], ARRAY['trashed'], ARRAY[10::bigint])",
            &[&id],
        )
        .unwrap();
    let orphans: Vec<String> = first_column(&mut client, "SELECT path FROM filegc.orphans");
    assert_eq!(
        orphans,
        vec!["b.jpg"],
        "the trashed file is no orphan on the volume any more"
    );
}

/// A trashed copy of `path`, as a sweep leaves it; returns its tombstone's id.
fn trashed(client: &mut Client, path: &str) -> i64 {
    client
        .execute(
            "SELECT filegc.schedule_delete(ARRAY[$1], force => true)",
            &[&path],
        )
        .unwrap();
    let id: i64 = client
        .query_one("SELECT id FROM filegc.claim('w', 10)", &[])
        .unwrap()
        .get(0);
    client
        .execute(
            "SELECT filegc.complete('w', ARRAY[$1::bigint], ARRAY['trashed'], ARRAY[10::bigint])",
            &[&id],
        )
        .unwrap();
    id
}

/// What filegc.check_before_purge says of one trashed copy; its transaction
/// is rolled back unless `keep`, so that what it asks back is recorded.
fn purge_verdict_kept(client: &mut Client, id: i64, keep: bool) -> String {
    let mut transaction = client.transaction().unwrap();
    let verdict = transaction
        .query_one(
            "SELECT verdict FROM filegc.check_before_purge(ARRAY[$1::bigint])",
            &[&id],
        )
        .unwrap()
        .get(0);
    if keep {
        transaction.commit().unwrap();
    } else {
        transaction.rollback().unwrap();
    }
    verdict
}

fn purge_verdict(client: &mut Client, id: i64) -> String {
    purge_verdict_kept(client, id, false)
}

#[test]
fn a_trashed_copy_is_purged_only_while_nothing_wants_it() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    let id = trashed(&mut client, "a.jpg");
    assert_eq!(purge_verdict(&mut client, id), "purge");

    // A writer that references the path again and has not committed holds
    // the path: the purge must not go ahead under it, nor wait for it.
    let mut writer = db.connect();
    let mut open = writer.transaction().unwrap();
    open.execute(
        "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, 'a.jpg')",
        &[],
    )
    .unwrap();
    assert_eq!(purge_verdict(&mut client, id), "busy");
    open.rollback().unwrap();
    drop(writer);
    assert_eq!(purge_verdict(&mut client, id), "purge");

    // A row that references the path without its trigger having asked the
    // copy back (restored from a dump, say) keeps the copy, and asks it back.
    client
        .batch_execute(
            "SET session_replication_role = replica;
             INSERT INTO facial_evaluations (user_id, image_path) VALUES (2, 'a.jpg');
             RESET session_replication_role;",
        )
        .unwrap();
    let verdict = purge_verdict_kept(&mut client, id, true);
    assert_eq!(verdict, "referenced");
    let requests: Vec<String> =
        first_column(&mut client, "SELECT path FROM filegc.restore_requests()");
    assert_eq!(requests, vec!["a.jpg"], "the referenced copy is asked back");
    assert_ne!(purge_verdict(&mut client, id), "purge");
}

/// The row trigger keeps a generic plan of the probe, which guesses ten
/// candidate paths. Written as NOT EXISTS, the planner turned that into a
/// hash anti join against a sequential scan of a small table, computing
/// the reference of every row for every deleted row.
#[test]
fn the_generic_plan_of_the_probe_looks_each_candidate_up_in_the_index() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    client
        .execute(
            "INSERT INTO facial_evaluations (user_id, image_path, secondary_image_path)
             SELECT n, format('%suser_%s_1.jpg', $1::text, n), format('%suser_%s_1_2.jpg', $1::text, n)
               FROM generate_series(1, 400) AS n",
            &[&PREFIX],
        )
        .unwrap();
    client
        .batch_execute("VACUUM ANALYZE facial_evaluations")
        .unwrap();
    let probe: String = client
        .query_one("SELECT filegc.unreferenced_probe(NULL)", &[])
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!(
            "SET plan_cache_mode = force_generic_plan; PREPARE probe(text[]) AS {probe}"
        ))
        .unwrap();
    let plan = first_column::<String>(
        &mut client,
        "EXPLAIN EXECUTE probe('{user_1_1.jpg,user_2_1_2.jpg}')",
    )
    .join("\n");
    assert!(
        !plan.contains("Seq Scan on facial_evaluations"),
        "the probe scans the whole table:\n{plan}"
    );
    assert_eq!(
        first_column::<Vec<String>>(
            &mut client,
            "EXECUTE probe('{user_1_1.jpg,user_2_1_2.jpg,user_9_9.jpg}')"
        ),
        vec![vec!["user_9_9.jpg".to_string()]]
    );
}

/// How much work memory the tests at scale give PostgreSQL: small enough
/// that a hash of their paths cannot fit, so a plan that needs one to stay
/// linear shows it at a size a test can afford.
const SMALL_WORK_MEM: &str = "SET work_mem = '64kB'";

/// The final check decides for any number of paths in one call (a filtered
/// `delete-orphans` through `filegc.schedule_delete`, the fresh orphan
/// listing): its membership tests were hashed only while the paths fit in
/// the work memory, and past that compared every path with every other
/// one. The timeout only ends a run that would otherwise take hours; the
/// check takes seconds.
#[test]
fn the_final_check_answers_for_hundreds_of_thousands_of_paths() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    reference(&mut client, "user_1_1.jpg");
    client
        .batch_execute(&format!("{SMALL_WORK_MEM}; SET statement_timeout = '120s'"))
        .unwrap();
    let paths = "ARRAY(SELECT 'user_' || g || '_1.jpg' FROM generate_series(1, 100000) AS g)";
    assert_eq!(
        first_column::<String>(
            &mut client,
            &format!("SELECT path || ' ' || reason FROM filegc.kept_among({paths})")
        ),
        ["user_1_1.jpg referenced"]
    );
    assert_eq!(
        i64_of(
            &mut client,
            &format!("SELECT count(*) FROM filegc.orphans_among({paths})")
        ),
        99_999
    );
}

/// Rows restored while their files' deletions are pending, then deleted
/// again before the sweeper came by: the notes of every path entering and
/// leaving are processed at once, and the paths referenced again are told
/// apart from the others with a join rather than a test per path against
/// all of them (minutes at 100,000 paths, hours at a million).
#[test]
fn notes_of_a_hundred_thousand_paths_entering_and_leaving_are_processed() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    let rows = "INSERT INTO facial_evaluations (user_id, image_path)
                SELECT g, 'user_' || g || '_1.jpg' FROM generate_series(1, 100000) AS g";
    client
        .batch_execute(&format!(
            "{rows}; DELETE FROM facial_evaluations; SELECT filegc.process_notes();
             {rows}; DELETE FROM facial_evaluations;"
        ))
        .unwrap();
    client
        .batch_execute(&format!("{SMALL_WORK_MEM}; SET statement_timeout = '120s'"))
        .unwrap();
    client
        .batch_execute("SELECT filegc.process_notes()")
        .unwrap_or_else(|e| panic!("{:?}", e.as_db_error()));
    assert_eq!(
        i64_of(
            &mut client,
            "SELECT count(*) FROM filegc.tombstones WHERE state = 'pending'"
        ),
        100_000
    );
    assert_eq!(i64_of(&mut client, "SELECT count(*) FROM filegc.notes"), 0);
}

/// A prefix the operator forgot makes every stored value an invalid
/// reference, and each protects the file its name may mean: the reports
/// find a file's name among those names with a hash or an index, never by
/// reading all of them again for every file (minutes at 100,000 files).
#[test]
fn reports_answer_when_every_stored_value_is_an_invalid_reference() {
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    client
        .batch_execute(
            "INSERT INTO facial_evaluations (user_id, image_path)
             SELECT g, '/srv/old_volume/user_' || g || '_1.jpg' FROM generate_series(1, 100000) AS g;
             SELECT filegc.process_notes();
             SELECT filegc.start_run('scan', 'test', '/volume');
             INSERT INTO filegc.inventory_staging (scan_id, path, size_bytes, modified_at)
             SELECT (SELECT max(id) FROM filegc.runs), 'user_' || g || '_1.jpg', 1, now()
               FROM generate_series(1, 100000) AS g;
             SELECT filegc.finish_scan((SELECT max(id) FROM filegc.runs));",
        )
        .unwrap();
    client
        .batch_execute(&format!("{SMALL_WORK_MEM}; SET statement_timeout = '120s'"))
        .unwrap();
    assert_eq!(
        i64_of(&mut client, "SELECT count(*) FROM filegc.orphans"),
        0,
        "each file is protected by the invalid reference that may mean it"
    );
}
