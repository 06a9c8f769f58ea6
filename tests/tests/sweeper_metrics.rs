//! The metrics endpoint of `filegc run` (`FILEGC_METRICS_ADDR`): what a
//! Prometheus scrape reads once the run has scanned and swept, and the
//! addresses it refuses at startup.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use filegc_tests::eventually;
use filegc_tests::sweeper::Running;
use filegc_tests::test_env::TestEnv;

/// How long anything the run does may take before a test gives up on it.
const DEADLINE: Duration = Duration::from_secs(20);

/// A login that holds only the sweeper's role, so that the endpoint's figures need no more.
fn sweeper_login(env: &mut TestEnv) -> String {
    env.client
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE metrics_sweeper LOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             GRANT filegc_sweeper TO metrics_sweeper",
        )
        .unwrap();
    env.db.url_as("metrics_sweeper")
}

/// `filegc run` with the metrics on a port the system picks, sweeping and scanning quickly.
fn start_with_metrics(env: &mut TestEnv) -> Running {
    let url = sweeper_login(env);
    let mut command = env.command_on(
        &url,
        &[
            "run",
            "--sweep-interval",
            "100ms",
            "--scan-interval",
            "200ms",
        ],
    );
    command.env("FILEGC_METRICS_ADDR", "127.0.0.1:0");
    Running::spawn(command)
}

/// The address the endpoint listens on, as its log line names it.
fn metrics_address(running: &mut Running) -> String {
    running.wait_for_log("serving metrics");
    running
        .log()
        .lines()
        .filter(|line| line.contains("serving metrics"))
        .flat_map(str::split_whitespace)
        .find_map(|field| field.strip_prefix("address="))
        .unwrap_or_else(|| panic!("no address in the log:\n{}", running.log()))
        .to_owned()
}

/// One GET on a connection of its own: the status code, the head and the body.
fn get(address: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_owned(), body.to_owned())
}

/// Every sample of a scrape, `name{labels}` to its value; insists that each
/// sample's metric is filegc's and has its HELP and TYPE lines.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(name.starts_with("filegc_"), "{line}");
        for header in ["# HELP", "# TYPE"] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{header} {name} "))),
                "no {header} line for {name}:\n{text}"
            );
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line:?}"));
        samples.insert(series.to_owned(), value);
    }
    samples
}

/// The value of one series, which must be there.
fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

#[test]
fn a_scrape_shows_the_inventory_the_queue_and_the_sweeps_of_the_run() {
    let mut env = TestEnv::new();
    let started = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    env.write_aged("user_1_1700000000.jpg", 100, 1);
    env.write_aged("user_2_1700000000.jpg", 200, 1);
    env.write_aged("user_3_1700000000.jpg", 300, 1);
    env.reference("user_1_1700000000.jpg");
    env.reference("user_2_1700000000.jpg");
    // user_3 stays an orphan: no scheduled cleanup takes it.
    env.set("orphan_cleanup_interval", "0");
    env.set("alert_emergency_pct", "100");
    env.set("alert_critical_pct", "100");
    env.set("alert_warning_pct", "0");
    let mut running = start_with_metrics(&mut env);
    let address = metrics_address(&mut running);
    env.wait_until_listening(&mut running);

    env.unreference("user_2_1700000000.jpg");
    assert!(
        eventually(DEADLINE, || env.in_trash("user_2_1700000000.jpg")),
        "user_2 was never swept:\n{}",
        running.log()
    );
    // A deletion that waits an hour stays pending.
    env.set("unreferenced_delay", "1 hour");
    env.unreference("user_1_1700000000.jpg");

    let mut scraped = BTreeMap::new();
    let settled = eventually(DEADLINE, || {
        let (status, head, body) = get(&address, "/metrics");
        assert_eq!(status, 200, "{head}\n{body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        scraped = samples(&body);
        // The orphans are counted after each scan, the pending deletions
        // after each sweep: a scrape between them can hold values of two
        // moments (two orphans of 500 bytes, user_2 not yet swept), so the
        // test waits for the whole picture, sizes included.
        scraped.get("filegc_pending_deletions") == Some(&1.0)
            && scraped.get("filegc_orphaned_files") == Some(&2.0)
            && scraped.get("filegc_orphaned_bytes") == Some(&400.0)
            && scraped.get("filegc_inventory_files") == Some(&2.0)
            && scraped.get("filegc_inventory_bytes") == Some(&400.0)
    });
    assert!(
        settled,
        "the metrics never showed the pending deletion and the orphans: {scraped:#?}\n{}",
        running.log()
    );
    assert_eq!(value(&scraped, "filegc_inventory_bytes"), 400.0);
    assert_eq!(value(&scraped, "filegc_orphaned_bytes"), 400.0);
    assert!(value(&scraped, r#"filegc_deletions_total{outcome="removed"}"#) >= 1.0);
    assert_eq!(
        value(&scraped, r#"filegc_deletions_total{outcome="failed"}"#),
        0.0
    );
    assert!(value(&scraped, "filegc_freed_bytes_total") >= 200.0);
    assert_eq!(
        value(&scraped, r#"filegc_alert_level{level="warning"}"#),
        1.0
    );
    for other in ["ok", "critical", "emergency", "unknown"] {
        assert_eq!(
            value(
                &scraped,
                &format!(r#"filegc_alert_level{{level="{other}"}}"#)
            ),
            0.0,
            "{other}"
        );
    }
    assert_eq!(value(&scraped, "filegc_database_up"), 1.0);
    for timestamp in [
        "filegc_last_scan_timestamp_seconds",
        "filegc_last_sweep_timestamp_seconds",
    ] {
        assert!(
            value(&scraped, timestamp) >= started.as_secs_f64().floor(),
            "{timestamp}: {scraped:#?}"
        );
    }
    let total = value(&scraped, "filegc_volume_total_bytes");
    let used = value(&scraped, "filegc_volume_used_bytes");
    assert!(0.0 < used && used <= total, "{used} of {total}");

    let (status, _, _) = get(&address, "/other");
    assert_eq!(status, 404);
    assert_eq!(running.stop().code(), Some(0), "{}", running.log());
}

/// `filegc run` with `FILEGC_METRICS_ADDR=address`, which must exit: its status and stderr.
fn refused_run(address: &str) -> (Option<i32>, String) {
    let env = TestEnv::new();
    let mut command = env.command(&["run"]);
    command.env("FILEGC_METRICS_ADDR", address);
    let mut running = Running::spawn(command);
    let status = running.exit_status(DEADLINE);
    (status.code(), running.stderr())
}

#[test]
fn an_address_that_is_not_one_stops_run_naming_the_variable_and_an_example() {
    let (code, stderr) = refused_run("localhost:metrics");
    assert_eq!(code, Some(2), "{stderr}");
    for part in ["FILEGC_METRICS_ADDR", "localhost:metrics", "0.0.0.0:9464"] {
        assert!(stderr.contains(part), "{part} missing from {stderr}");
    }
}

#[test]
fn a_port_in_use_stops_run_naming_the_address_and_the_variable() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (code, stderr) = refused_run(&address);
    assert_eq!(code, Some(2), "{stderr}");
    for part in ["FILEGC_METRICS_ADDR", address.as_str()] {
        assert!(stderr.contains(part), "{part} missing from {stderr}");
    }
}
