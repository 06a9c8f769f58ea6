//! `filegc scan` of an S3-compatible bucket (a real `moto_server`) into the inventory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use filegc_tests::eventually;
use filegc_tests::s3_server::{filegc_on_bucket, Passage, Proxy, S3Server};
use filegc_tests::sweeper::{describe_output, stderr, succeeded, Running};
use filegc_tests::test_env::TestEnv;

const BUCKET: &str = "app-uploads";
const DEADLINE: Duration = Duration::from_secs(30);

fn inventory(env: &mut TestEnv) -> Vec<String> {
    env.client
        .query(
            "SELECT path FROM filegc.inventory ORDER BY path COLLATE \"C\"",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[test]
fn a_bucket_scan_inventories_the_prefix_and_nothing_beside_it() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    server.put(BUCKET, "facial_evaluations/user_1_1700000000.jpg", 1_000);
    server.put(BUCKET, "facial_evaluations/user_2_1700000100.png", 2_000);
    server.put(
        BUCKET,
        "facial_evaluations/sub/user_3_1700000200.webp",
        4_000,
    );
    server.put(BUCKET, "facial_evaluations/a space+plus%.jpg", 10);
    // Beside the prefix: a sibling that shares its letters, the bucket's
    // root, a folder marker and the trash.
    server.put(BUCKET, "facial_evaluations2/user_9_1700000000.jpg", 1);
    server.put(BUCKET, "user_8_1700000000.jpg", 1);
    server.put(BUCKET, "facial_evaluations/sub/", 0);
    server.put(
        BUCKET,
        "facial_evaluations/.filegc-trash/user_7_1700000000.jpg",
        1,
    );
    let mut env = TestEnv::new();
    env.reference("user_1_1700000000.jpg");
    // Without its trailing slash, as a tired operator types it.
    let storage = format!("s3://{BUCKET}/facial_evaluations");
    let output = filegc_on_bucket(&server, &env.db.url(), &storage, &["scan"])
        .output()
        .unwrap();
    let stdout = succeeded(&["scan"], &output);
    assert!(
        stdout.contains("Scanned 4 files (7010 bytes) in s3://app-uploads/facial_evaluations/"),
        "{stdout}"
    );
    assert_eq!(
        inventory(&mut env),
        [
            "a space+plus%.jpg",
            "sub/user_3_1700000200.webp",
            "user_1_1700000000.jpg",
            "user_2_1700000100.png"
        ]
    );
    let row = env
        .client
        .query_one("SELECT * FROM filegc.storage_stats", &[])
        .unwrap();
    let n = |column: &str| -> i64 { row.get(column) };
    assert_eq!(n("total_files"), 4);
    assert_eq!(n("total_bytes"), 7_010);
    assert_eq!(n("referenced_files"), 1);
    assert_eq!(
        env.query_i64(
            "SELECT count(*) FROM filegc.sweeps WHERE kind = 'scan' AND finished_at IS NOT NULL \
             AND volume_path = 's3://app-uploads/facial_evaluations/'"
        ),
        1
    );
}

#[test]
fn a_listing_over_several_pages_takes_every_key() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    // S3 gives at most 1,000 keys a page.
    for n in 0..1_001 {
        server.put(BUCKET, &format!("img/user_{n}_1700000000.jpg"), 1);
    }
    let mut env = TestEnv::new();
    let output = filegc_on_bucket(
        &server,
        &env.db.url(),
        &format!("s3://{BUCKET}/img/"),
        &["scan"],
    )
    .output()
    .unwrap();
    succeeded(&["scan"], &output);
    assert_eq!(
        env.query_i64("SELECT count(*) FROM filegc.inventory"),
        1_001
    );
}

#[test]
fn hostile_keys_are_reported_and_never_inventoried() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    server.put(BUCKET, "img/user_1_1700000000.jpg", 1);
    let long = format!("img/{}.jpg", "n".repeat(300));
    for key in [
        "img/../user_2_1700000000.jpg",
        "img/a//user_3_1700000000.jpg",
        "img/./user_4_1700000000.jpg",
        &long,
    ] {
        server.put(BUCKET, key, 1);
    }
    let mut env = TestEnv::new();
    let output = filegc_on_bucket(
        &server,
        &env.db.url(),
        &format!("s3://{BUCKET}/img/"),
        &["scan"],
    )
    .output()
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        describe_output(&output)
    );
    let errors = stderr(&output);
    for named in [
        "img/../user_2",
        "img/a//user_3",
        "img/./user_4",
        "nnnnnnnnnn.jpg",
    ] {
        assert!(errors.contains(named), "{named} not reported: {errors}");
    }
    assert_eq!(inventory(&mut env), ["user_1_1700000000.jpg"]);
}

#[test]
fn a_listing_that_fails_keeps_the_last_inventory_and_names_the_cause() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    server.put(BUCKET, "img/user_1_1700000000.jpg", 1);
    let mut env = TestEnv::new();
    let storage = format!("s3://{BUCKET}/img/");
    let output = filegc_on_bucket(&server, &env.db.url(), &storage, &["scan"])
        .output()
        .unwrap();
    succeeded(&["scan"], &output);
    // The bucket goes away (deleted by hand, or the credentials point at
    // another environment's): the next listing fails on its first page.
    server.delete_batched(BUCKET, &["img/user_1_1700000000.jpg".to_owned()]);
    server.remove_bucket(BUCKET);
    let missing = filegc_on_bucket(&server, &env.db.url(), &storage, &["scan"])
        .output()
        .unwrap();
    assert_eq!(
        missing.status.code(),
        Some(1),
        "{}",
        describe_output(&missing)
    );
    assert!(
        stderr(&missing).contains("no such bucket at this endpoint"),
        "{}",
        describe_output(&missing)
    );
    assert_eq!(inventory(&mut env), ["user_1_1700000000.jpg"]);
    assert_eq!(
        env.query_i64(
            "SELECT count(*) FROM filegc.sweeps WHERE kind = 'scan' AND finished_at IS NULL"
        ),
        1,
        "the failed scan stays unfinished"
    );
}

#[test]
fn a_second_place_in_the_same_database_is_refused_while_the_first_is_in_use() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    server.put(BUCKET, "img/user_1_1700000000.jpg", 1);
    let mut env = TestEnv::new();
    let url = env.db.url();
    let scan = |storage: &str| {
        filegc_on_bucket(&server, &url, storage, &["scan"])
            .output()
            .unwrap()
    };
    succeeded(&["scan"], &scan("s3://app-uploads/img/"));
    // The whole bucket takes the prefix in; another prefix would share the
    // database's paths with it: both refused, whatever the order.
    for other in ["s3://app-uploads/", "s3://app-uploads/img2/"] {
        let refused = scan(other);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{}",
            describe_output(&refused)
        );
        let message = stderr(&refused);
        assert!(
            message.contains("s3://app-uploads/img/") && message.contains("FILEGC_STORAGE"),
            "{message}"
        );
    }
    // A volume's sweeper in the same database is refused too.
    let volume = env.run(&["scan"]);
    assert_eq!(
        volume.status.code(),
        Some(2),
        "{}",
        describe_output(&volume)
    );
    assert_eq!(inventory(&mut env), ["user_1_1700000000.jpg"]);
    // The same place again is the normal case (replicas, restarts).
    succeeded(&["scan"], &scan("s3://app-uploads/img/"));
}

/// The listing lock's key in the class `filegc.escalation_lock_class()`, as the sweeper takes it.
const LISTING_LOCK: &str = "filegc.escalation_lock_class(), 3";

#[test]
fn only_one_sweeper_lists_the_bucket_at_a_time() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    server.put(BUCKET, "img/user_1_1700000000.jpg", 1);
    let mut env = TestEnv::new();
    let url = env.db.url();
    // Another replica, in the middle of its listing.
    let mut lister = env.db.connect();
    lister
        .execute(&format!("SELECT pg_advisory_lock({LISTING_LOCK})"), &[])
        .unwrap();

    // A long-running sweeper leaves the listing to it.
    let run = ["run", "--sweep-interval", "1h", "--scan-interval", "1h"];
    let mut running = Running::spawn(filegc_on_bucket(
        &server,
        &url,
        "s3://app-uploads/img/",
        &run,
    ));
    running.wait_for_log("another sweeper is listing the bucket");
    assert_eq!(
        env.query_i64("SELECT count(*) FROM filegc.runs WHERE kind = 'scan'"),
        0,
        "{}",
        running.log()
    );
    running.stop();

    // A command waits for it, then lists.
    let mut scan = Running::spawn(filegc_on_bucket(
        &server,
        &url,
        "s3://app-uploads/img/",
        &["scan"],
    ));
    let mut watcher = env.db.connect();
    let waiting = eventually(Duration::from_secs(20), || {
        watcher
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 3 \
                 AND objsubid = 2 AND NOT granted",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            == 1
    });
    assert!(
        waiting,
        "the scan never waited for the lock:\n{}",
        scan.log()
    );
    assert_eq!(inventory(&mut env), Vec::<String>::new());
    lister
        .execute(&format!("SELECT pg_advisory_unlock({LISTING_LOCK})"), &[])
        .unwrap();
    assert_eq!(
        scan.exit_status(Duration::from_secs(20)).code(),
        Some(0),
        "{}",
        scan.log()
    );
    assert_eq!(inventory(&mut env), ["user_1_1700000000.jpg"]);
}

#[test]
fn a_request_rate_is_taken_and_a_wrong_one_is_refused() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    server.put(BUCKET, "img/user_1_1700000000.jpg", 1);
    let mut env = TestEnv::new();
    let scan = |rate: &str| {
        filegc_on_bucket(&server, &env.db.url(), "s3://app-uploads/img/", &["scan"])
            .env("FILEGC_S3_REQUESTS_PER_SECOND", rate)
            .output()
            .unwrap()
    };
    let refused = scan("0");
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        describe_output(&refused)
    );
    assert!(
        stderr(&refused).contains("FILEGC_S3_REQUESTS_PER_SECOND=\"0\""),
        "{}",
        describe_output(&refused)
    );
    succeeded(&["scan"], &scan("100"));
    assert_eq!(inventory(&mut env), ["user_1_1700000000.jpg"]);
}

#[test]
fn a_listing_killed_part_way_resumes_after_the_last_key_it_committed() {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    // Three pages; sorted as S3 lists them, the third holds the last 500.
    let keys: Vec<String> = (0..2_500)
        .map(|n| format!("img/user_{n:05}_1700000000.jpg"))
        .collect();
    server.put_many(BUCKET, &keys, 1);
    let mut env = TestEnv::new();
    let storage = format!("s3://{BUCKET}/img/");

    // The proxy holds the first listing's third page until the sweeper is
    // killed, then records every listing request after it.
    let listings = Arc::new(Mutex::new(Vec::<String>::new()));
    let third_page_asked = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let proxy = Proxy::start(&server, {
        let (listings, third_page_asked, killed) =
            (listings.clone(), third_page_asked.clone(), killed.clone());
        move |request_line| {
            if !request_line.contains("list-type=2") {
                return Passage::Forward;
            }
            let asked = {
                let mut listings = listings.lock().unwrap();
                listings.push(request_line.to_owned());
                listings.len()
            };
            if asked == 3 && !killed.load(Ordering::SeqCst) {
                third_page_asked.store(true, Ordering::SeqCst);
                assert!(eventually(DEADLINE, || killed.load(Ordering::SeqCst)));
                return Passage::SlowDown;
            }
            Passage::Forward
        }
    });
    let database_url = env.db.url();
    let on_the_proxy = |args: &[&str]| {
        let mut command = filegc_on_bucket(&server, &database_url, &storage, args);
        command.env("ENDPOINT", proxy.endpoint());
        command
    };
    let mut first = Running::spawn(on_the_proxy(&["scan"]));
    assert!(
        eventually(DEADLINE, || third_page_asked.load(Ordering::SeqCst)),
        "the listing reached its third page: {}",
        first.log()
    );
    let staged = "SELECT count(*) FROM filegc.inventory_staging";
    let committed_before_the_kill = eventually(DEADLINE, || env.query_i64(staged) == 2_000);
    first.signal(libc::SIGKILL);
    assert!(eventually(DEADLINE, || !first.is_running()));
    killed.store(true, Ordering::SeqCst);
    assert!(
        committed_before_the_kill,
        "the two pages listed were committed as they came, not at the listing's end ({} staged)",
        env.query_i64(staged)
    );

    listings.lock().unwrap().clear();
    let output = on_the_proxy(&["scan"]).output().unwrap();
    succeeded(&["scan"], &output);
    let resumed = listings.lock().unwrap().clone();
    let last_committed = "user_01999_1700000000.jpg";
    assert!(
        resumed[0].contains(&format!("start-after=img%2F{last_committed}")),
        "the listing starts after {last_committed}, the last key committed: {resumed:?}"
    );
    assert_eq!(
        resumed
            .iter()
            .filter(|line| !line.contains("filegc-trash"))
            .count(),
        1,
        "only the third page is listed again: {resumed:?}"
    );
    assert_eq!(
        inventory(&mut env),
        keys.iter()
            .map(|key| key.trim_start_matches("img/"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        env.query_i64(
            "SELECT count(*) FROM filegc.sweeps WHERE kind = 'scan' AND finished_at IS NOT NULL \
              AND files_seen = 2500"
        ),
        1,
        "the killed scan's run is the one finished"
    );
    assert_eq!(
        env.query_i64("SELECT count(*) FROM filegc.sweeps WHERE kind = 'scan'"),
        1
    );
}
