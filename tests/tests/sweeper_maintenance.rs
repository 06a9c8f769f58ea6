//! The maintenance policies of `filegc run`: scheduled orphan and retention
//! cleanups, the maintenance window, the alert webhook and the emergency
//! cleanup, against a real database and a real volume.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use filegc_tests::eventually;
use filegc_tests::sweeper::Running;
use filegc_tests::test_env::TestEnv;

/// How long anything the run does may take before a test gives up on it.
const DEADLINE: Duration = Duration::from_secs(20);

/// Timed sweeps (and so policy checks) this often, scans this often: quick enough to watch.
const QUICK: [&str; 5] = [
    "run",
    "--sweep-interval",
    "100ms",
    "--scan-interval",
    "200ms",
];

/// [`QUICK`] with debug logging, which says what each policy check decided.
const QUICK_VERBOSE: [&str; 6] = [
    "-v",
    "run",
    "--sweep-interval",
    "100ms",
    "--scan-interval",
    "200ms",
];

/// Scheduled cleanups of `kind` the database has recorded.
fn cleanups(env: &mut TestEnv, kind: &str) -> i64 {
    env.client
        .query_one(
            "SELECT count(*) FROM filegc.sweeps WHERE kind = $1 AND finished_at IS NOT NULL",
            &[&kind],
        )
        .unwrap()
        .get(0)
}

/// A maintenance window of two hours around the current UTC time, or one that starts an hour from now.
fn window(around_now: bool) -> String {
    let minute = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
        % 1440;
    let (start, end) = if around_now {
        (minute + 1440 - 60, minute + 60)
    } else {
        (minute + 60, minute + 120)
    };
    let clock = |m: u64| format!("{:02}:{:02}", m % 1440 / 60, m % 60);
    format!("{}-{}", clock(start), clock(end))
}

/// Writes `names` as referenced images modified a day ago.
fn referenced(env: &mut TestEnv, names: &[&str]) {
    for name in names {
        env.write_aged(name, 1000, 1);
        env.reference(name);
    }
}

#[test]
fn orphan_cleanup_runs_when_due_and_again_after_its_interval() {
    let mut env = TestEnv::new();
    let keep = [
        "user_1_1700000000.jpg",
        "user_2_1700000000.jpg",
        "user_3_1700000000.jpg",
    ];
    referenced(&mut env, &keep);
    env.write_aged("user_9_1700000000.jpg", 1000, 1);
    env.set("maintenance_window", &window(true));
    env.set("orphan_cleanup_interval", "1 second");
    // The sweeper's role is enough for the policies.
    env.client
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE maintenance_sweeper LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             GRANT filegc_sweeper TO maintenance_sweeper",
        )
        .unwrap();
    let url = env.db.url_as("maintenance_sweeper");
    let mut running = env.start_as(&url, "maintenance-1", &QUICK);

    let first = env.path(".filegc-trash/user_9_1700000000.jpg");
    assert!(
        eventually(DEADLINE, || first.is_file()),
        "the orphan was never cleaned up:\n{}",
        running.log()
    );
    assert!(cleanups(&mut env, "orphan_cleanup") >= 1);
    // The file reaches the trash just before its batch is recorded.
    assert!(eventually(DEADLINE, || env
        .outcome("user_9_1700000000.jpg")
        .is_some_and(|outcome| outcome == "trashed")));

    // A new orphan goes at a later cleanup, once a scan has seen it.
    env.write_aged("user_8_1700000000.jpg", 1000, 1);
    let second = env.path(".filegc-trash/user_8_1700000000.jpg");
    assert!(
        eventually(DEADLINE, || second.is_file()),
        "the second orphan was never cleaned up:\n{}",
        running.log()
    );
    assert!(cleanups(&mut env, "orphan_cleanup") >= 2);
    for name in keep {
        assert!(env.path(name).is_file(), "{name} must stay");
    }
    assert_eq!(running.stop().code(), Some(0), "{}", running.log());
}

#[test]
fn no_scheduled_cleanup_starts_outside_the_maintenance_window() {
    let mut env = TestEnv::new();
    referenced(
        &mut env,
        &[
            "user_1_1700000000.jpg",
            "user_2_1700000000.jpg",
            "user_3_1700000000.jpg",
        ],
    );
    env.write_aged("user_9_1700000000.jpg", 1000, 1);
    env.set("maintenance_window", &window(false));
    let mut running = env.start(&QUICK_VERBOSE);
    running.wait_for_log("outside the maintenance window");
    assert!(env.path("user_9_1700000000.jpg").is_file());
    assert_eq!(cleanups(&mut env, "orphan_cleanup"), 0);
    assert_eq!(env.query_i64("SELECT count(*) FROM filegc.tombstones"), 0);

    // The same run cleans up once the window holds the current time.
    env.set("maintenance_window", &window(true));
    let trashed = env.path(".filegc-trash/user_9_1700000000.jpg");
    assert!(
        eventually(DEADLINE, || trashed.is_file()),
        "no cleanup inside the window:\n{}",
        running.log()
    );
    assert_eq!(running.stop().code(), Some(0));
}

#[test]
fn a_restarted_sweeper_waits_for_the_interval_since_the_recorded_cleanup() {
    let mut env = TestEnv::new();
    referenced(
        &mut env,
        &[
            "user_1_1700000000.jpg",
            "user_2_1700000000.jpg",
            "user_3_1700000000.jpg",
        ],
    );
    env.write_aged("user_9_1700000000.jpg", 1000, 1);
    env.set("orphan_cleanup_interval", "1 hour");
    let mut first = env.start(&QUICK);
    let trashed = env.path(".filegc-trash/user_9_1700000000.jpg");
    assert!(
        eventually(DEADLINE, || trashed.is_file()),
        "{}",
        first.log()
    );
    assert_eq!(first.stop().code(), Some(0));
    assert_eq!(cleanups(&mut env, "orphan_cleanup"), 1);

    env.write_aged("user_8_1700000000.jpg", 1000, 1);
    let mut second = env.start(&QUICK_VERBOSE);
    second.wait_for_log("scheduled cleanup not due");
    // The restarted run has scanned the new orphan, and leaves it to the next cleanup.
    assert_eq!(
        env.query_i64(
            "SELECT count(*) FROM filegc.files WHERE path = 'user_8_1700000000.jpg' AND eligible"
        ),
        1
    );
    assert!(env.path("user_8_1700000000.jpg").is_file());
    assert_eq!(cleanups(&mut env, "orphan_cleanup"), 1);

    env.set("orphan_cleanup_interval", "1 second");
    let later = env.path(".filegc-trash/user_8_1700000000.jpg");
    assert!(eventually(DEADLINE, || later.is_file()), "{}", second.log());
    assert_eq!(second.stop().code(), Some(0));
}

#[test]
fn two_sweepers_run_one_scheduled_cleanup() {
    let mut env = TestEnv::new();
    referenced(
        &mut env,
        &[
            "user_1_1700000000.jpg",
            "user_2_1700000000.jpg",
            "user_3_1700000000.jpg",
        ],
    );
    env.write_aged("user_9_1700000000.jpg", 1000, 1);
    env.set("orphan_cleanup_interval", "1 hour");
    let url = env.db.url();
    let mut one = env.start_as(&url, "sweeper-one", &QUICK_VERBOSE);
    let mut two = env.start_as(&url, "sweeper-two", &QUICK_VERBOSE);
    let decided = |running: &mut Running| {
        let log = running.log();
        log.contains("scheduled cleanup: deletions scheduled")
            || log.contains("scheduled cleanup not due")
            || log.contains("another sweeper is running a scheduled cleanup")
    };
    assert!(
        eventually(DEADLINE, || decided(&mut one) && decided(&mut two)),
        "{}\n{}",
        one.log(),
        two.log()
    );
    // Both keep checking; give each a few more checks to repeat it.
    for running in [&mut one, &mut two] {
        let checks = running.log().matches("scheduled cleanup not due").count();
        assert!(eventually(DEADLINE, || running
            .log()
            .matches("scheduled cleanup not due")
            .count()
            >= checks + 3));
    }
    assert_eq!(cleanups(&mut env, "orphan_cleanup"), 1);
    assert_eq!(one.stop().code(), Some(0));
    assert_eq!(two.stop().code(), Some(0));
}

#[test]
fn the_circuit_breaker_still_refuses_a_scheduled_cleanup_that_is_too_large() {
    let mut env = TestEnv::new();
    referenced(&mut env, &["user_1_1700000000.jpg"]);
    env.write_aged("user_8_1700000000.jpg", 1000, 1);
    env.write_aged("user_9_1700000000.jpg", 1000, 1);
    let mut running = env.start(&QUICK);
    running.wait_for_log("circuit breaker");
    assert!(running.log().contains("scheduled cleanup refused"));
    assert_eq!(
        env.query_i64(
            "SELECT count(*) FROM filegc.sweeps WHERE kind = 'orphan_cleanup' AND errors = 1"
        ),
        1
    );
    assert_eq!(env.query_i64("SELECT count(*) FROM filegc.tombstones"), 0);
    for name in ["user_8_1700000000.jpg", "user_9_1700000000.jpg"] {
        assert!(env.path(name).is_file(), "{name} must stay");
    }
    assert_eq!(running.stop().code(), Some(0));
}

#[test]
fn retention_deletes_old_unreferenced_images_and_referenced_ones_only_when_asked() {
    let mut env = TestEnv::new();
    // No orphan is old enough for the orphan cleanup: what goes, goes for its age.
    env.set("orphan_min_age", "1000 days");
    env.set("retention_days", "30");
    env.set("orphan_cleanup_interval", "1 second");
    env.write_aged("user_1_1600000000.jpg", 1000, 40);
    env.write_aged("user_2_1600000000.jpg", 1000, 40);
    env.reference("user_2_1600000000.jpg");
    env.write_aged("user_3_1700000000.jpg", 1000, 1);
    referenced(
        &mut env,
        &["user_4_1700000000.jpg", "user_5_1700000000.jpg"],
    );
    let mut running = env.start(&QUICK);

    let old_orphan = env.path(".filegc-trash/user_1_1600000000.jpg");
    assert!(
        eventually(DEADLINE, || old_orphan.is_file()),
        "{}",
        running.log()
    );
    // The file reaches the trash just before its batch is recorded.
    assert!(eventually(DEADLINE, || env
        .outcome("user_1_1600000000.jpg")
        .is_some_and(|outcome| outcome == "trashed")));
    // Later retention cleanups still keep the referenced old image.
    let runs = cleanups(&mut env, "retention_cleanup");
    assert!(eventually(DEADLINE, || cleanups(
        &mut env,
        "retention_cleanup"
    ) >= runs + 2));
    assert!(env.path("user_2_1600000000.jpg").is_file());
    assert_eq!(
        env.query_i64(
            "SELECT count(*) FROM filegc.tombstones WHERE path = 'user_2_1600000000.jpg'"
        ),
        0
    );

    env.set("retention_include_referenced", "on");
    let old_referenced = env.path(".filegc-trash/user_2_1600000000.jpg");
    assert!(
        eventually(DEADLINE, || old_referenced.is_file()),
        "{}",
        running.log()
    );
    for name in [
        "user_3_1700000000.jpg",
        "user_4_1700000000.jpg",
        "user_5_1700000000.jpg",
    ] {
        assert!(env.path(name).is_file(), "{name} is younger than 30 days");
    }
    assert_eq!(running.stop().code(), Some(0));
}

/// One HTTP request as the test's listener received it.
#[derive(Debug)]
struct Request {
    head: String,
    body: serde_json::Value,
}

/// An HTTP listener on a free local port that answers 200 and hands over each request.
fn webhook_receiver() -> (String, mpsc::Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hooks/filegc",
        listener.local_addr().unwrap().port()
    );
    let (sender, requests) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Some(request) = read_request(&stream) else {
                continue;
            };
            let _ = (&stream)
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if sender.send(request).is_err() {
                return;
            }
        }
    });
    (url, requests)
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        head,
        body: serde_json::from_slice(&body).ok()?,
    })
}

/// Makes the volume's alert level warning (anything in use is at least 0 %, nothing reaches 100 %).
fn level_warning(env: &mut TestEnv) {
    env.set("alert_emergency_pct", "100");
    env.set("alert_critical_pct", "100");
    env.set("alert_warning_pct", "0");
}

#[test]
fn the_webhook_hears_when_the_level_rises_and_when_it_falls() {
    let mut env = TestEnv::new();
    let (url, requests) = webhook_receiver();
    env.set("alert_webhook_url", &url);
    level_warning(&mut env);
    let mut running = env.start(&QUICK);

    let rose = requests
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("no alert for the rise:\n{}", running.log()));
    assert!(
        rose.head.starts_with("POST /hooks/filegc HTTP/1.1\r\n"),
        "{}",
        rose.head
    );
    assert!(
        rose.head
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{}",
        rose.head
    );
    assert_eq!(rose.body["level"], "warning", "{}", rose.body);
    assert_eq!(rose.body["previous_level"], "ok", "{}", rose.body);
    let used_pct = rose.body["used_pct"]
        .as_f64()
        .expect("used_pct is a number");
    assert!((0.0..100.0).contains(&used_pct), "{used_pct}");
    assert_eq!(
        rose.body["volume"],
        env.volume.display().to_string(),
        "{}",
        rose.body
    );
    assert!(
        rose.body["host"]
            .as_str()
            .is_some_and(|host| !host.is_empty()),
        "{}",
        rose.body
    );
    let fields: Vec<&String> = rose.body.as_object().unwrap().keys().collect();
    assert_eq!(fields.len(), 5, "{}", rose.body);

    env.set("alert_warning_pct", "100");
    let fell = requests
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("no alert for the fall:\n{}", running.log()));
    assert_eq!(fell.body["level"], "ok", "{}", fell.body);
    assert_eq!(fell.body["previous_level"], "warning", "{}", fell.body);
    assert!(running.is_running());
    assert_eq!(running.stop().code(), Some(0));
}

/// Unreferences a referenced file and waits for the run to trash it.
fn sweeps_still(env: &mut TestEnv, running: &mut Running, name: &str) {
    env.unreference(name);
    let trashed = env.path(&format!(".filegc-trash/{name}"));
    assert!(
        eventually(DEADLINE, || trashed.is_file()),
        "{name} was not swept:\n{}",
        running.log()
    );
}

#[test]
fn a_webhook_that_refuses_connections_never_stops_sweeping() {
    let mut env = TestEnv::new();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/", closed.local_addr().unwrap().port());
    drop(closed);
    env.set("alert_webhook_url", &url);
    level_warning(&mut env);
    referenced(&mut env, &["user_1_1700000000.jpg"]);
    let mut running = env.start(&QUICK);
    running.wait_for_log("alert webhook failed");
    running.wait_for_log("attempt=2");
    sweeps_still(&mut env, &mut running, "user_1_1700000000.jpg");
    assert_eq!(running.stop().code(), Some(0));
}

#[test]
fn a_webhook_that_hangs_never_stops_sweeping() {
    let mut env = TestEnv::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    let (accepted, connections) = mpsc::channel();
    std::thread::spawn(move || {
        // Holds every connection open and never answers.
        for stream in listener.incoming().flatten() {
            if accepted.send(stream).is_err() {
                return;
            }
        }
    });
    env.set("alert_webhook_url", &url);
    level_warning(&mut env);
    referenced(
        &mut env,
        &["user_1_1700000000.jpg", "user_2_1700000000.jpg"],
    );
    let mut running = env.start(&QUICK);
    let _held = connections
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("the webhook was never called:\n{}", running.log()));
    sweeps_still(&mut env, &mut running, "user_1_1700000000.jpg");
    // Another change queues behind the hanging one; the sweeper goes on all the same.
    env.set("alert_warning_pct", "100");
    running.wait_for_log("the volume's alert level fell");
    sweeps_still(&mut env, &mut running, "user_2_1700000000.jpg");
    assert_eq!(running.stop().code(), Some(0));
}

/// A volume with three referenced images, one trashed image and one orphan,
/// at the emergency level, with no scheduled cleanups.
fn emergency_env() -> TestEnv {
    let mut env = TestEnv::new();
    env.set("orphan_cleanup_interval", "0");
    referenced(
        &mut env,
        &[
            "user_1_1700000000.jpg",
            "user_2_1700000000.jpg",
            "user_3_1700000000.jpg",
            "user_7_1700000000.jpg",
        ],
    );
    env.unreference("user_7_1700000000.jpg");
    env.run_ok(&["sweep"]);
    assert!(env.path(".filegc-trash/user_7_1700000000.jpg").is_file());
    env.write_aged("user_9_1700000000.jpg", 1000, 1);
    env.set("alert_warning_pct", "0");
    env.set("alert_critical_pct", "0");
    env.set("alert_emergency_pct", "0");
    env
}

#[test]
fn the_emergency_cleanup_empties_the_trash_then_deletes_the_orphans() {
    let mut env = emergency_env();
    let mut running = env.start(&QUICK);
    running.wait_for_log("emergency cleanup: deleted the eligible orphans");
    let log = running.log();
    let line = |message: &str| {
        let at = log
            .find(message)
            .unwrap_or_else(|| panic!("no {message:?} in the log:\n{log}"));
        (at, log[at..].lines().next().unwrap())
    };
    // Each step frees one file of 1000 bytes: first the trashed one, then the orphan.
    let (emptied_at, emptied) = line("emergency cleanup: emptied the trash");
    let (orphans_at, orphans) = line("emergency cleanup: deleted the eligible orphans");
    assert!(emptied_at < orphans_at, "{log}");
    assert!(
        emptied.contains("files=1") && emptied.contains("bytes_freed=1000"),
        "{emptied}"
    );
    assert!(
        orphans.contains("files=1") && orphans.contains("bytes_freed=1000"),
        "{orphans}"
    );
    assert!(!env.path(".filegc-trash/user_7_1700000000.jpg").exists());
    assert!(!env.path("user_9_1700000000.jpg").exists());
    assert!(
        !env.path(".filegc-trash/user_9_1700000000.jpg").exists(),
        "the orphan's bytes must be freed, not moved into the trash"
    );
    assert_eq!(
        env.query_i64(
            "SELECT count(*) FROM filegc.deletions \
             WHERE path IN ('user_7_1700000000.jpg', 'user_9_1700000000.jpg') AND purged_at IS NOT NULL"
        ),
        2
    );
    for name in [
        "user_1_1700000000.jpg",
        "user_2_1700000000.jpg",
        "user_3_1700000000.jpg",
    ] {
        assert!(env.path(name).is_file(), "{name} is referenced");
    }
    assert_eq!(running.stop().code(), Some(0));
}

#[test]
fn with_emergency_cleanup_off_the_emergency_deletes_nothing() {
    let mut env = emergency_env();
    env.set("emergency_cleanup", "off");
    let mut running = env.start(&QUICK);
    running.wait_for_log("emergency_cleanup is off");
    assert!(env.path(".filegc-trash/user_7_1700000000.jpg").is_file());
    assert!(env.path("user_9_1700000000.jpg").is_file());
    assert!(!running.log().contains("emergency cleanup:"));
    assert_eq!(running.stop().code(), Some(0));
}

/// Whether the sweeper can use `value` for `name`, as it reads the policies.
fn sweeper_accepts(name: &str, value: &str) -> bool {
    use filegc_sweeper::maintenance::{parse_bool, parse_days_or_off, parse_webhook_url, Window};
    match name {
        "retention_days" => parse_days_or_off(value).is_some(),
        "retention_include_referenced" | "emergency_cleanup" => parse_bool(value).is_some(),
        "maintenance_window" => Window::parse(value).is_ok(),
        "alert_webhook_url" => parse_webhook_url(value).is_ok(),
        "alert_webhook_format" => filegc_sweeper::webhook::PayloadShape::parse(
            value,
            &"https://hooks.example.com/".parse().unwrap(),
        )
        .is_ok(),
        other => panic!("no sweeper rule for {other}"),
    }
}

#[test]
fn the_policy_settings_take_what_the_sweeper_can_use_and_explain_the_rest() {
    let mut env = TestEnv::new();
    let refused = [
        ("orphan_cleanup_interval", "soon"),
        ("orphan_cleanup_interval", "-1 day"),
        ("retention_days", "0"),
        ("retention_days", "ninety"),
        ("retention_days", "1.5"),
        ("retention_days", "+5"),
        ("retention_days", "9999999999"),
        ("retention_include_referenced", "maybe"),
        ("emergency_cleanup", "yes"),
        ("maintenance_window", "2:00-5:00"),
        ("maintenance_window", "03:00-03:00"),
        ("maintenance_window", "24:00-01:00"),
        ("maintenance_window", "night"),
        ("alert_webhook_url", "ftp://hooks.example.com/"),
        ("alert_webhook_url", "hooks.example.com/filegc"),
        ("alert_webhook_url", "https://"),
        ("alert_webhook_format", "xml"),
        ("alert_webhook_format", ""),
    ];
    for (name, value) in refused {
        let error = env
            .client
            .execute(
                "UPDATE filegc.settings SET value = $1 WHERE name = $2",
                &[&value, &name],
            )
            .expect_err(&format!("{name} = {value:?} must be refused"));
        let error = error.as_db_error().expect("a database error");
        assert!(
            error.message().contains(name),
            "{name} = {value:?}: {}",
            error.message()
        );
        if name != "orphan_cleanup_interval" {
            assert!(error.hint().is_some(), "{name} = {value:?} has no hint");
            assert!(!sweeper_accepts(name, value), "{name} = {value:?}");
        }
    }
    let accepted = [
        ("retention_days", "90"),
        ("retention_days", "OFF"),
        ("retention_include_referenced", "on"),
        ("retention_include_referenced", "False"),
        ("emergency_cleanup", "off"),
        ("maintenance_window", "22:00-04:00"),
        ("maintenance_window", "02:00 - 05:30"),
        ("maintenance_window", "Any"),
        (
            "alert_webhook_url",
            "https://hooks.example.com/services/T0/B0/x?y=1",
        ),
        ("alert_webhook_url", "http://127.0.0.1:9000/"),
        ("alert_webhook_url", "off"),
        ("alert_webhook_format", "Slack"),
        ("alert_webhook_format", "discord"),
        ("alert_webhook_format", "json"),
        ("alert_webhook_format", "auto"),
    ];
    for (name, value) in accepted {
        env.set(name, value);
        assert!(sweeper_accepts(name, value), "{name} = {value:?}");
    }
}
