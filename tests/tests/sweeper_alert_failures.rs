//! Alert deliveries as `filegc.alert_deliveries` shows them: a webhook that
//! fails every attempt is recorded with its host (never its URL, whose path
//! holds the secret) and the error, and a later delivery that arrives shows
//! its time; one given up while the database was away is recorded once it
//! is back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use filegc_tests::eventually;
use filegc_tests::test_env::TestEnv;
use filegc_tests::Cluster;

/// How long the run may take to give up on an alert: five attempts and the
/// waits between them (1, 2, 4 and 8 seconds), with room to spare.
const GIVE_UP_DEADLINE: Duration = Duration::from_secs(60);

/// How long anything else the run does may take before the test gives up on it.
const DEADLINE: Duration = Duration::from_secs(20);

/// The secret part of the webhook's URL, as Slack's and Discord's URLs carry one.
const TOKEN: &str = "T0KEN-s3cret-4242";

/// A webhook receiver on a free local port that answers each request with
/// the status `status` holds at the time; returns its URL.
fn receiver(status: Arc<AtomicU16>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hooks/{TOKEN}",
        listener.local_addr().unwrap().port()
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if read_request(&stream).is_none() {
                continue;
            }
            let code = status.load(Ordering::SeqCst);
            let _ = write!(
                &stream,
                "HTTP/1.1 {code} Status {code}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    url
}

/// Reads one request, head and body; `None` when the connection ends first.
fn read_request(stream: &TcpStream) -> Option<()> {
    stream.set_read_timeout(Some(DEADLINE)).ok()?;
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()
}

/// One recorded delivery, as the view shows it.
#[derive(Debug)]
struct Delivery {
    /// When its last attempt ended, in seconds since the epoch.
    finished_at: f64,
    delivered: bool,
    level: String,
    previous_level: String,
    webhook_host: String,
    attempts: i32,
    error: Option<String>,
    /// The whole row as JSON, to look for the token anywhere in it.
    row: String,
}

fn deliveries(env: &mut TestEnv) -> Vec<Delivery> {
    env.client
        .query(
            "SELECT extract(epoch FROM finished_at)::float8, delivered, level, previous_level, webhook_host, attempts, error, to_jsonb(d)::text
               FROM filegc.alert_deliveries d",
            &[],
        )
        .unwrap_or_else(|e| panic!("reading filegc.alert_deliveries: {e:?}"))
        .iter()
        .map(|row| Delivery {
            finished_at: row.get(0),
            delivered: row.get(1),
            level: row.get(2),
            previous_level: row.get(3),
            webhook_host: row.get(4),
            attempts: row.get(5),
            error: row.get(6),
            row: row.get(7),
        })
        .collect()
}

#[test]
fn a_failed_delivery_is_recorded_without_the_token_and_a_later_one_shows_its_time() {
    let mut env = TestEnv::new();
    let status = Arc::new(AtomicU16::new(500));
    let url = receiver(Arc::clone(&status));
    env.set("alert_webhook_url", &url);
    level_warning(&mut env);
    // The sweeper's role is enough to record deliveries.
    env.client
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE alerting_sweeper LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             GRANT filegc_sweeper TO alerting_sweeper",
        )
        .unwrap();
    let login = env.db.url_as("alerting_sweeper");
    let mut running = env.start_as(
        &login,
        "alerting-1",
        &[
            "run",
            "--sweep-interval",
            "100ms",
            "--scan-interval",
            "200ms",
        ],
    );

    let mut recorded = Vec::new();
    let gave_up = eventually(GIVE_UP_DEADLINE, || {
        recorded = deliveries(&mut env);
        !recorded.is_empty()
    });
    assert!(
        gave_up,
        "no failed delivery was recorded:\n{}",
        running.log()
    );
    let failed = &recorded[0];
    assert!(!failed.delivered, "{failed:?}");
    assert_eq!(
        (failed.level.as_str(), failed.previous_level.as_str()),
        ("warning", "ok")
    );
    assert_eq!(failed.webhook_host, "127.0.0.1");
    assert_eq!(failed.attempts, 5, "{failed:?}");
    let error = failed.error.as_deref().unwrap_or_default();
    assert!(error.contains("500"), "{failed:?}");
    assert!(!failed.row.contains(TOKEN), "{}", failed.row);
    let failed_at = failed.finished_at;

    status.store(200, Ordering::SeqCst);
    env.set("alert_warning_pct", "100");
    let delivered = eventually(DEADLINE, || {
        recorded = deliveries(&mut env);
        recorded.iter().any(|delivery| delivery.delivered)
    });
    assert!(
        delivered,
        "the delivery that arrived was never recorded: {recorded:?}\n{}",
        running.log()
    );
    let latest = &recorded[0];
    assert!(latest.delivered, "the newest comes first: {recorded:?}");
    assert_eq!(
        (latest.level.as_str(), latest.previous_level.as_str()),
        ("ok", "warning")
    );
    assert_eq!(latest.error, None);
    assert_eq!(latest.attempts, 1);
    assert!(latest.finished_at >= failed_at, "{recorded:?}");
    assert_eq!(running.stop().code(), Some(0));
}

/// Makes the volume's alert level warning (anything in use is at least 0 %, nothing reaches 100 %).
fn level_warning(env: &mut TestEnv) {
    env.set("alert_emergency_pct", "100");
    env.set("alert_critical_pct", "100");
    env.set("alert_warning_pct", "0");
}

#[test]
fn a_delivery_given_up_while_the_database_is_away_is_recorded_once_it_is_back() {
    let cluster = Cluster::start_private();
    let mut env = TestEnv::on(&cluster);
    let url = receiver(Arc::new(AtomicU16::new(500)));
    env.set("alert_webhook_url", &url);
    level_warning(&mut env);
    let mut running = env.start(&[
        "run",
        "--sweep-interval",
        "100ms",
        "--scan-interval",
        "200ms",
    ]);
    running.wait_for_log("alert webhook failed");
    cluster.stop("fast");
    let gave_up = eventually(GIVE_UP_DEADLINE, || {
        running.log().contains("giving up on this alert")
    });
    assert!(gave_up, "the alert was never given up:\n{}", running.log());
    cluster.start();

    // The old connection died with the server.
    env.client = env.db.connect();
    let back_at: f64 = env
        .client
        .query_one("SELECT extract(epoch FROM now())::float8", &[])
        .unwrap()
        .get(0);
    let mut recorded = Vec::new();
    // The reconnection waits out the backoff, which the stop made grow.
    let seen = eventually(GIVE_UP_DEADLINE, || {
        recorded = deliveries(&mut env);
        !recorded.is_empty()
    });
    assert!(seen, "the failure was never recorded:\n{}", running.log());
    let failed = &recorded[0];
    assert!(!failed.delivered, "{failed:?}");
    assert_eq!(failed.level, "warning");
    assert!(
        failed.finished_at < back_at,
        "recorded with the time it happened, before the database was back: {failed:?}"
    );
    assert_eq!(running.stop().code(), Some(0));
}
