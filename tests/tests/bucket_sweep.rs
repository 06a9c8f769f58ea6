//! `filegc sweep` and `filegc restore` on an S3-compatible bucket (a real
//! `moto_server`): the same final check, trash and audit trail as on a volume.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use filegc_tests::eventually;
use filegc_tests::fixtures::PREFIX;
use filegc_tests::s3_server::{
    filegc_on_bucket, filegc_on_bucket_ok, object_key, trashed_key, Passage, Proxy, S3Server,
    BUCKET, STORAGE,
};
use filegc_tests::sweeper::{describe_output, stderr, succeeded, Running};
use filegc_tests::test_env::TestEnv;

const IMAGE: &str = "user_1_1700000000.jpg";

/// How long a running sweeper gets to do what a test waits for; only a failing test waits that long.
const DEADLINE: Duration = Duration::from_secs(20);

/// A bucket with `IMAGE` in it, referenced by a row; the database of `env`.
fn bucket_with_a_referenced_image() -> (S3Server, TestEnv) {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    server.put(BUCKET, &object_key(IMAGE), 1_234);
    let mut env = TestEnv::new();
    env.reference(IMAGE);
    (server, env)
}

fn run_ok(server: &S3Server, env: &TestEnv, args: &[&str]) -> String {
    filegc_on_bucket_ok(server, &env.db.url(), args)
}

#[test]
fn a_sweep_moves_an_unreferenced_object_into_the_trash_and_records_it() {
    let (server, mut env) = bucket_with_a_referenced_image();
    env.unreference(IMAGE);
    let stdout = run_ok(&server, &env, &["sweep"]);
    assert!(stdout.contains("1 removed"), "{stdout}");
    assert!(!server.exists(BUCKET, &object_key(IMAGE)));
    assert!(server.exists(BUCKET, &trashed_key(IMAGE)));
    assert_eq!(env.outcome(IMAGE).as_deref(), Some("trashed"));
    assert_eq!(
        env.query_i64(&format!(
            "SELECT size_bytes FROM filegc.deletions WHERE path = '{IMAGE}'"
        )),
        1_234
    );
    assert_eq!(
        env.query_i64(&format!(
            "SELECT count(*) FROM filegc.sweeps WHERE kind = 'sweep' AND volume_path = '{STORAGE}'"
        )),
        1
    );
}

#[test]
fn a_sweep_without_the_trash_deletes_the_object() {
    let (server, mut env) = bucket_with_a_referenced_image();
    env.unreference(IMAGE);
    run_ok(&server, &env, &["sweep", "--no-trash"]);
    assert!(!server.exists(BUCKET, &object_key(IMAGE)));
    assert!(!server.exists(BUCKET, &trashed_key(IMAGE)));
    assert_eq!(env.outcome(IMAGE).as_deref(), Some("deleted"));
}

#[test]
fn the_final_check_keeps_an_object_an_invalid_reference_may_name() {
    let (server, env) = bucket_with_a_referenced_image();
    // The row now holds a URL outside every prefix: the old path loses its
    // reference, but the value may still mean it.
    env.app()
        .execute(
            "UPDATE facial_evaluations SET image_path = $1",
            &[&format!("https://cdn.example.com/images/{IMAGE}?v=2")],
        )
        .unwrap();
    run_ok(&server, &env, &["sweep", "--no-trash"]);
    assert!(
        server.exists(BUCKET, &object_key(IMAGE)),
        "the object was deleted"
    );
    assert!(!server.exists(BUCKET, &trashed_key(IMAGE)));
}

#[test]
fn restore_brings_a_trashed_object_back() {
    let (server, mut env) = bucket_with_a_referenced_image();
    env.unreference(IMAGE);
    run_ok(&server, &env, &["sweep"]);
    let stdout = run_ok(&server, &env, &["restore", IMAGE]);
    assert!(stdout.contains(&format!("Restored {IMAGE}")), "{stdout}");
    assert!(server.exists(BUCKET, &object_key(IMAGE)));
    assert!(!server.exists(BUCKET, &trashed_key(IMAGE)));
}

#[test]
fn a_row_referencing_a_trashed_object_again_gets_it_back_at_the_next_sweep() {
    let (server, mut env) = bucket_with_a_referenced_image();
    env.unreference(IMAGE);
    run_ok(&server, &env, &["sweep"]);
    env.reference(IMAGE);
    let stdout = run_ok(&server, &env, &["sweep"]);
    assert!(stdout.contains("1 restored"), "{stdout}");
    assert!(server.exists(BUCKET, &object_key(IMAGE)));
    assert!(!server.exists(BUCKET, &trashed_key(IMAGE)));
}

#[test]
fn the_trash_is_purged_after_its_retention() {
    let (server, mut env) = bucket_with_a_referenced_image();
    env.unreference(IMAGE);
    run_ok(&server, &env, &["sweep"]);
    env.set("trash_retention", "0");
    let stdout = run_ok(&server, &env, &["sweep"]);
    assert!(stdout.contains("1 purged"), "{stdout}");
    assert!(!server.exists(BUCKET, &trashed_key(IMAGE)));
}

#[test]
fn a_scan_brings_back_a_trashed_copy_no_deletion_recorded_when_a_row_wants_it() {
    // What a sweeper killed between its copy and its record leaves: the
    // object only in the trash, and a row that references it.
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    server.put(BUCKET, &trashed_key(IMAGE), 10);
    let env = TestEnv::new();
    env.insert_row(1, &format!("{PREFIX}{IMAGE}"));
    let output = filegc_on_bucket(&server, &env.db.url(), STORAGE, &["scan"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe_output(&output));
    assert!(
        server.exists(BUCKET, &object_key(IMAGE)),
        "{}",
        describe_output(&output)
    );
    assert!(!server.exists(BUCKET, &trashed_key(IMAGE)));
}

#[test]
fn run_on_a_bucket_scans_it_and_sweeps_a_deletion_when_notified() {
    let (server, mut env) = bucket_with_a_referenced_image();
    // With an hour between timed sweeps, only the notification can trigger it.
    let run = ["run", "--sweep-interval", "1h", "--scan-interval", "1h"];
    let mut running = Running::spawn(filegc_on_bucket(&server, &env.db.url(), STORAGE, &run));
    env.wait_until_listening(&mut running);
    assert_eq!(
        env.query_i64("SELECT count(*) FROM filegc.inventory"),
        1,
        "the first scan lists the bucket"
    );
    env.unreference(IMAGE);
    // The trash is a copy, then the deletion: both must have happened.
    assert!(
        eventually(DEADLINE, || {
            !server.exists(BUCKET, &object_key(IMAGE)) && server.exists(BUCKET, &trashed_key(IMAGE))
        }),
        "the object never moved into the trash:\n{}",
        running.log()
    );
    running.signal(libc::SIGTERM);
    assert_eq!(
        running.exit_status(DEADLINE).code(),
        Some(0),
        "{}",
        running.log()
    );
}

#[test]
fn run_with_a_byte_budget_cleans_up_when_the_bucket_reaches_the_emergency_level() {
    let (server, mut env) = bucket_with_a_referenced_image();
    let orphan = "user_9_1700000000.jpg";
    server.put(BUCKET, &object_key(orphan), 2_000);
    env.set("orphan_cleanup_interval", "0");
    env.set("orphan_min_age", "0 seconds");
    env.set("max_delete_fraction", "1");
    // 3,234 bytes of a 3,300-byte budget: 98 %, past the emergency level (95 %).
    let run = [
        "--storage-budget",
        "3300",
        "run",
        "--sweep-interval",
        "1h",
        "--scan-interval",
        "1h",
    ];
    let mut running = Running::spawn(filegc_on_bucket(&server, &env.db.url(), STORAGE, &run));
    running.wait_for_log("emergency cleanup: deleted the eligible orphans");
    assert!(!server.exists(BUCKET, &object_key(orphan)));
    assert!(
        !server.exists(BUCKET, &trashed_key(orphan)),
        "the orphan's bytes must be freed, not moved into the trash"
    );
    assert!(
        server.exists(BUCKET, &object_key(IMAGE)),
        "{IMAGE} is referenced"
    );
    assert_eq!(
        env.query_i64(&format!(
            "SELECT count(*) FROM filegc.volume_reports WHERE volume_path = '{STORAGE}' \
             AND total_bytes = 3300 AND used_bytes = 3234"
        )),
        1,
        "{}",
        running.log()
    );
    assert_eq!(running.stop().code(), Some(0));
}

#[test]
fn a_busy_service_is_asked_again_and_the_scan_and_the_sweep_finish() {
    let (server, mut env) = bucket_with_a_referenced_image();
    env.unreference(IMAGE);
    let (proxy, refused) = Proxy::busy(&server, 3);
    let through_the_proxy = |args: &[&str]| {
        let output = filegc_on_bucket(&server, &env.db.url(), STORAGE, args)
            .env("ENDPOINT", proxy.endpoint())
            .output()
            .unwrap();
        succeeded(args, &output)
    };
    through_the_proxy(&["scan"]);
    assert_eq!(
        refused.load(Ordering::SeqCst),
        3,
        "the listing met the busy answers"
    );
    assert_eq!(env.query_i64("SELECT count(*) FROM filegc.inventory"), 1);

    let (busy_again, refused) = Proxy::busy(&server, 3);
    let output = filegc_on_bucket(&server, &env.db.url(), STORAGE, &["sweep"])
        .env("ENDPOINT", busy_again.endpoint())
        .output()
        .unwrap();
    let stdout = succeeded(&["sweep"], &output);
    assert_eq!(
        refused.load(Ordering::SeqCst),
        3,
        "the sweep met the busy answers"
    );
    assert!(stdout.contains("1 removed"), "{stdout}");
    assert!(!server.exists(BUCKET, &object_key(IMAGE)));
    assert!(server.exists(BUCKET, &trashed_key(IMAGE)));
    assert_eq!(env.outcome(IMAGE).as_deref(), Some("trashed"));
}

#[test]
fn run_reports_a_bucket_at_its_scans_not_at_every_sweep() {
    let (server, mut env) = bucket_with_a_referenced_image();
    // A report lists the bucket's trash: at every sweep, a busy application
    // would have it listed many times a minute.
    let run = ["run", "--sweep-interval", "1h", "--scan-interval", "1h"];
    let mut running = Running::spawn(filegc_on_bucket(&server, &env.db.url(), STORAGE, &run));
    env.wait_until_listening(&mut running);
    let reports = "SELECT count(*) FROM filegc.volume_reports";
    // The scan reports once it has finished its run and looked at the trash.
    assert!(
        eventually(DEADLINE, || env.query_i64(reports) == 1),
        "{}",
        running.log()
    );
    let after_the_scan = env.query_i64(reports);
    env.unreference(IMAGE);
    assert!(
        eventually(DEADLINE, || server.exists(BUCKET, &trashed_key(IMAGE))),
        "the object never moved into the trash:\n{}",
        running.log()
    );
    assert!(
        eventually(DEADLINE, || env.outcome(IMAGE).as_deref()
            == Some("trashed")),
        "{}",
        running.log()
    );
    assert_eq!(env.query_i64(reports), after_the_scan, "{}", running.log());
    assert_eq!(running.stop().code(), Some(0));
}

#[test]
fn a_restore_never_replaces_an_upload_made_during_it() {
    let (server, mut env) = bucket_with_a_referenced_image();
    env.unreference(IMAGE);
    run_ok(&server, &env, &["sweep"]);
    assert!(server.exists(BUCKET, &trashed_key(IMAGE)));
    // The application uploads a new image at the path between the restore's
    // look at the path and its write there.
    let proxy = Proxy::racing_upload(&server, BUCKET, &object_key(IMAGE), 777);
    let output = filegc_on_bucket(&server, &env.db.url(), STORAGE, &["restore", IMAGE])
        .env("ENDPOINT", proxy.endpoint())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        describe_output(&output)
    );
    assert!(
        stderr(&output).contains("a file already stands there"),
        "{}",
        describe_output(&output)
    );
    assert_eq!(
        server.size(BUCKET, &object_key(IMAGE)),
        Some(777),
        "the upload was replaced by the trashed copy"
    );
    assert_eq!(
        server.size(BUCKET, &trashed_key(IMAGE)),
        Some(1_234),
        "the copy stays in the trash"
    );
}

#[test]
fn a_restored_object_keeps_its_content_type_and_metadata() {
    let (server, mut env) = bucket_with_a_referenced_image();
    server.put_with(
        BUCKET,
        &object_key(IMAGE),
        1_234,
        &[
            ("Content-Type", "image/jpeg"),
            ("Cache-Control", "max-age=60"),
            ("x-amz-meta-uploaded-by", "user-1"),
        ],
    );
    env.unreference(IMAGE);
    run_ok(&server, &env, &["sweep"]);
    run_ok(&server, &env, &["restore", IMAGE]);
    let header = |name| server.header(BUCKET, &object_key(IMAGE), name);
    assert_eq!(header("content-type").as_deref(), Some("image/jpeg"));
    assert_eq!(header("cache-control").as_deref(), Some("max-age=60"));
    assert_eq!(header("x-amz-meta-uploaded-by").as_deref(), Some("user-1"));
    assert_eq!(server.size(BUCKET, &object_key(IMAGE)), Some(1_234));
}

/// Sweeps `IMAGE`, unreferenced, through a proxy that loses the answer to
/// the first request of `method` (the server did it; the sweeper never
/// heard); returns the sweep's stdout.
fn sweep_losing_an_answer(
    server: &S3Server,
    env: &mut TestEnv,
    method: &'static str,
    args: &[&str],
) -> String {
    env.unreference(IMAGE);
    let lost = AtomicBool::new(false);
    let proxy = Proxy::start(server, move |request_line| {
        if request_line.starts_with(method) && !lost.swap(true, Ordering::SeqCst) {
            Passage::LoseAnswer
        } else {
            Passage::Forward
        }
    });
    let output = filegc_on_bucket(server, &env.db.url(), STORAGE, args)
        .env("ENDPOINT", proxy.endpoint())
        .output()
        .unwrap();
    assert!(
        stderr(&output).contains("trying again"),
        "{}",
        describe_output(&output)
    );
    succeeded(args, &output)
}

#[test]
fn a_trashing_whose_answers_are_lost_ends_in_the_trash_recorded_and_stays_there() {
    for method in ["COPY ", "DELETE "] {
        let (server, mut env) = bucket_with_a_referenced_image();
        let stdout = sweep_losing_an_answer(&server, &mut env, method, &["sweep"]);
        assert!(stdout.contains("1 removed"), "{method}: {stdout}");
        assert!(!server.exists(BUCKET, &object_key(IMAGE)), "{method}");
        assert!(server.exists(BUCKET, &trashed_key(IMAGE)), "{method}: lost");
        assert_eq!(env.outcome(IMAGE).as_deref(), Some("trashed"), "{method}");
        // Recorded, the trashed copy is the deletion's: a scan leaves it there.
        run_ok(&server, &env, &["scan"]);
        assert!(
            !server.exists(BUCKET, &object_key(IMAGE)),
            "{method}: brought back"
        );
        assert!(server.exists(BUCKET, &trashed_key(IMAGE)), "{method}");
    }
}

#[test]
fn a_deletion_whose_answer_is_lost_is_recorded_as_a_deletion() {
    let (server, mut env) = bucket_with_a_referenced_image();
    let stdout = sweep_losing_an_answer(&server, &mut env, "DELETE ", &["sweep", "--no-trash"]);
    assert!(stdout.contains("1 removed"), "{stdout}");
    assert!(!server.exists(BUCKET, &object_key(IMAGE)));
    assert_eq!(env.outcome(IMAGE).as_deref(), Some("deleted"));
}

/// Sweeps `IMAGE` with `args` through a proxy that counts the HEAD requests
/// made of its key; returns the sweep's output and that count.
fn sweep_counting_looks(
    server: &S3Server,
    env: &TestEnv,
    args: &[&str],
) -> (std::process::Output, usize) {
    let looks = Arc::new(AtomicUsize::new(0));
    let counted = looks.clone();
    let head = format!("HEAD /{BUCKET}/{}", object_key(IMAGE));
    let proxy = Proxy::start(server, move |request_line| {
        let looks_at_the_image = request_line
            .strip_prefix(head.as_str())
            .is_some_and(|rest| rest.starts_with(['?', ' ']));
        if looks_at_the_image {
            counted.fetch_add(1, Ordering::SeqCst);
        }
        Passage::Forward
    });
    let output = filegc_on_bucket(server, &env.db.url(), STORAGE, args)
        .env("ENDPOINT", proxy.endpoint())
        .output()
        .unwrap();
    (output, looks.load(Ordering::SeqCst))
}

#[test]
fn a_sweep_deletes_the_version_the_listing_saw_without_looking_again() {
    for (args, outcome) in [
        (&["sweep"][..], "trashed"),
        (&["sweep", "--no-trash"], "deleted"),
    ] {
        let (server, mut env) = bucket_with_a_referenced_image();
        run_ok(&server, &env, &["scan"]);
        env.unreference(IMAGE);
        let (output, looks) = sweep_counting_looks(&server, &env, args);
        let stdout = succeeded(args, &output);
        assert!(stdout.contains("1 removed"), "{args:?}: {stdout}");
        assert_eq!(looks, 0, "{args:?}: the object was looked at again");
        assert!(!server.exists(BUCKET, &object_key(IMAGE)), "{args:?}");
        assert_eq!(env.outcome(IMAGE).as_deref(), Some(outcome), "{args:?}");
        assert_eq!(
            env.query_i64(&format!(
                "SELECT size_bytes FROM filegc.deletions WHERE path = '{IMAGE}'"
            )),
            1_234,
            "{args:?}: the size the listing gave"
        );
    }
}

#[test]
fn an_object_uploaded_again_after_the_listing_stays_until_a_listing_sees_it() {
    for args in [&["sweep"][..], &["sweep", "--no-trash"]] {
        let (server, mut env) = bucket_with_a_referenced_image();
        run_ok(&server, &env, &["scan"]);
        env.unreference(IMAGE);
        // Uploaded again at the same key (its row not committed yet): not
        // the version the listing saw and the deletion was scheduled for.
        server.put(BUCKET, &object_key(IMAGE), 99);
        let (output, _) = sweep_counting_looks(&server, &env, args);
        // A deletion that could not be done: retried later, and said so.
        assert_eq!(
            output.status.code(),
            Some(1),
            "{}",
            describe_output(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("0 removed"),
            "{args:?}: {}",
            describe_output(&output)
        );
        assert!(
            stderr(&output).contains("written again at this path since the listing"),
            "{args:?}: {}",
            describe_output(&output)
        );
        assert_eq!(
            server.size(BUCKET, &object_key(IMAGE)),
            Some(99),
            "{args:?}"
        );
        assert!(!server.exists(BUCKET, &trashed_key(IMAGE)), "{args:?}");
        assert_eq!(env.outcome(IMAGE), None, "{args:?}: recorded as done");
    }
}

#[test]
fn without_conditional_deletes_an_object_uploaded_again_after_the_listing_stays() {
    an_object_uploaded_again_after_the_listing_stays_behind(
        Proxy::without_conditional_deletes,
        "does not implement conditional deletes",
    );
}

#[test]
fn where_conditional_deletes_are_ignored_an_object_uploaded_again_after_the_listing_stays() {
    an_object_uploaded_again_after_the_listing_stays_behind(
        Proxy::ignoring_conditional_deletes,
        "ignores the condition of a conditional delete",
    );
}

/// An object uploaded again at the same key after the scan (its row not
/// committed yet) stays, on the service `behind` a proxy that cannot make a
/// deletion conditional on the version; the sweeper says why it looks first.
fn an_object_uploaded_again_after_the_listing_stays_behind(
    behind: fn(&S3Server) -> Proxy,
    warning: &str,
) {
    for args in [&["sweep"][..], &["sweep", "--no-trash"]] {
        let (server, mut env) = bucket_with_a_referenced_image();
        run_ok(&server, &env, &["scan"]);
        env.unreference(IMAGE);
        server.put(BUCKET, &object_key(IMAGE), 99);
        let proxy = behind(&server);
        let output = filegc_on_bucket(&server, &env.db.url(), STORAGE, args)
            .env("ENDPOINT", proxy.endpoint())
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            describe_output(&output)
        );
        for said in ["written again at this path since the listing", warning] {
            assert!(
                stderr(&output).contains(said),
                "{args:?}: {said}: {}",
                describe_output(&output)
            );
        }
        assert_eq!(
            server.size(BUCKET, &object_key(IMAGE)),
            Some(99),
            "{args:?}: {}",
            describe_output(&output)
        );
        assert!(!server.exists(BUCKET, &trashed_key(IMAGE)), "{args:?}");
        assert_eq!(env.outcome(IMAGE), None, "{args:?}: recorded as done");
        // The probe of the conditions leaves nothing behind.
        assert_eq!(
            server.count_listed(BUCKET, ""),
            1,
            "{args:?}: only the image is in the bucket"
        );
    }
}

#[test]
fn without_conditional_deletes_the_listed_version_is_still_deleted() {
    for (args, outcome) in [
        (&["sweep"][..], "trashed"),
        (&["sweep", "--no-trash"], "deleted"),
    ] {
        let (server, mut env) = bucket_with_a_referenced_image();
        run_ok(&server, &env, &["scan"]);
        env.unreference(IMAGE);
        let proxy = Proxy::without_conditional_deletes(&server);
        let output = filegc_on_bucket(&server, &env.db.url(), STORAGE, args)
            .env("ENDPOINT", proxy.endpoint())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            describe_output(&output)
        );
        assert!(
            stderr(&output).contains("does not implement conditional deletes"),
            "{args:?}: {}",
            describe_output(&output)
        );
        assert!(!server.exists(BUCKET, &object_key(IMAGE)), "{args:?}");
        assert_eq!(env.outcome(IMAGE).as_deref(), Some(outcome), "{args:?}");
    }
}

#[test]
fn an_object_gone_since_the_listing_is_recorded_already_gone_where_the_sweep_looks_first() {
    let (server, mut env) = bucket_with_a_referenced_image();
    run_ok(&server, &env, &["scan"]);
    env.unreference(IMAGE);
    server.delete_batched(BUCKET, &[object_key(IMAGE)]);
    let proxy = Proxy::without_conditional_deletes(&server);
    let output = filegc_on_bucket(&server, &env.db.url(), STORAGE, &["sweep", "--no-trash"])
        .env("ENDPOINT", proxy.endpoint())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe_output(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 already gone"),
        "{}",
        describe_output(&output)
    );
    assert_eq!(env.outcome(IMAGE).as_deref(), Some("already_gone"));
}
