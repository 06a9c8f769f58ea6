//! `filegc run`, the long-running mode: notifications, the supervised
//! application's signals and exit status, and a database that restarts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use filegc_tests::eventually;
use filegc_tests::test_env::TestEnv;
use filegc_tests::Cluster;

/// How long anything the run does may take before a test gives up on it.
const DEADLINE: Duration = Duration::from_secs(10);

/// A file in a scratch directory that the supervised shell touches once its trap is set.
fn ready_marker() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ready");
    (dir, marker)
}

#[test]
fn run_sweeps_a_deletion_within_a_second_of_the_notification() {
    let mut env = TestEnv::new();
    env.write_aged("user_1_1700000000.jpg", 100, 1);
    env.reference("user_1_1700000000.jpg");
    // With an hour between timed sweeps, only the notification can trigger it.
    let mut running = env.start(&["run", "--sweep-interval", "1h", "--scan-interval", "1h"]);
    env.wait_until_listening(&mut running);
    let trashed = env.path(".filegc-trash/user_1_1700000000.jpg");
    assert!(env.path("user_1_1700000000.jpg").is_file());

    let deleted_at = Instant::now();
    env.unreference("user_1_1700000000.jpg");
    assert!(
        eventually(DEADLINE, || trashed.is_file()),
        "the file never reached the trash:\n{}",
        running.log()
    );
    let took = deleted_at.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(!env.path("user_1_1700000000.jpg").exists());

    running.signal(libc::SIGTERM);
    assert_eq!(running.exit_status(DEADLINE).code(), Some(0));
}

#[test]
fn run_sweeps_a_deletion_whose_writer_did_not_wake_it_again() {
    let mut env = TestEnv::new();
    for name in ["user_1_1700000000.jpg", "user_2_1700000000.jpg"] {
        env.write_aged(name, 100, 1);
        env.reference(name);
    }
    let mut running = env.start(&["run", "--sweep-interval", "1h", "--scan-interval", "1h"]);
    env.wait_until_listening(&mut running);
    // One session, two transactions: the first wakes the sweeper; the
    // second, once that sweep is done and within the pause of
    // filegc.release_wake_pause(), does not, and only the sweeper's second
    // look finds it. (On a machine so slow that the pause is over, the
    // second wakes it too.)
    for name in ["user_1_1700000000.jpg", "user_2_1700000000.jpg"] {
        env.unreference(name);
        let trashed = env.path(&format!(".filegc-trash/{name}"));
        assert!(
            eventually(DEADLINE, || trashed.is_file()),
            "{name} never reached the trash:\n{}",
            running.log()
        );
    }
    running.signal(libc::SIGTERM);
    assert_eq!(running.exit_status(DEADLINE).code(), Some(0));
}

#[test]
fn run_exits_with_the_application_exit_status() {
    let env = TestEnv::new();
    let mut running = env.start(&["run", "--", "sh", "-c", "exit 7"]);
    assert_eq!(
        running.exit_status(DEADLINE).code(),
        Some(7),
        "{}",
        running.log()
    );
}

#[test]
fn run_passes_sigterm_on_to_the_application() {
    let env = TestEnv::new();
    let (_dir, ready) = ready_marker();
    let script = format!(
        "trap 'exit 5' TERM; touch '{}'; sleep 30 & wait",
        ready.display()
    );
    let mut running = env.start(&["run", "--", "sh", "-c", &script]);
    assert!(
        eventually(DEADLINE, || ready.exists()),
        "the application never started:\n{}",
        running.log()
    );
    running.signal(libc::SIGTERM);
    assert_eq!(
        running.exit_status(DEADLINE).code(),
        Some(5),
        "{}",
        running.log()
    );
}

#[test]
fn run_without_an_application_stops_on_sigterm() {
    let env = TestEnv::new();
    let mut running = env.start(&["run"]);
    env.wait_until_listening(&mut running);
    running.signal(libc::SIGTERM);
    assert_eq!(running.exit_status(DEADLINE).code(), Some(0));
}

#[test]
fn run_carries_on_when_the_database_restarts() {
    let cluster = Cluster::start_private();
    let mut env = TestEnv::on(&cluster);
    let (_dir, ready) = ready_marker();
    let script = format!(
        "trap 'exit 0' TERM; touch '{}'; sleep 120 & wait",
        ready.display()
    );
    let mut running = env.start(&["run", "--sweep-interval", "1h", "--", "sh", "-c", &script]);
    env.wait_until_listening(&mut running);
    assert!(eventually(DEADLINE, || ready.exists()));

    cluster.stop("fast");
    let noticed = eventually(DEADLINE, || {
        running.log().contains("cannot reach the database")
    });
    assert!(noticed, "no retry logged:\n{}", running.log());
    assert!(running.is_running(), "{}", running.log());
    cluster.start();

    // The old connection died with the server.
    env.client = env.db.connect();
    env.write_aged("user_1_1700000000.jpg", 100, 1);
    env.reference("user_1_1700000000.jpg");
    env.unreference("user_1_1700000000.jpg");
    let trashed = env.path(".filegc-trash/user_1_1700000000.jpg");
    // The reconnection waits out the backoff, which the stop made grow.
    assert!(
        eventually(Duration::from_secs(45), || trashed.is_file()),
        "nothing swept after the restart:\n{}",
        running.log()
    );
    assert!(running.is_running(), "{}", running.log());

    running.signal(libc::SIGTERM);
    assert_eq!(
        running.exit_status(DEADLINE).code(),
        Some(0),
        "{}",
        running.log()
    );
}

#[test]
fn idle_timed_sweeps_stay_out_of_the_info_log() {
    let mut env = TestEnv::new();
    env.write_aged("user_1_1700000000.jpg", 100, 1);
    env.reference("user_1_1700000000.jpg");
    let mut running = env.start(&["run", "--sweep-interval", "50ms", "--scan-interval", "1h"]);
    env.wait_until_listening(&mut running);
    let mut client = env.db.connect();
    let swept = eventually(DEADLINE, || {
        client
            .query_one(
                "SELECT count(*) FROM filegc.runs WHERE kind = 'sweep' AND finished_at IS NOT NULL",
                &[],
            )
            .map(|row| row.get::<_, i64>(0) >= 5)
            .unwrap_or(false)
    });
    assert!(swept, "no timed sweeps:\n{}", running.log());
    assert!(
        !running.log().contains("sweep finished"),
        "{}",
        running.log()
    );

    env.unreference("user_1_1700000000.jpg");
    let trashed = env.path(".filegc-trash/user_1_1700000000.jpg");
    assert!(
        eventually(DEADLINE, || trashed.is_file()
            && running.log().contains("sweep finished")),
        "a sweep that did something is logged:\n{}",
        running.log()
    );
    assert!(running.log().contains("claimed=1"), "{}", running.log());
    running.signal(libc::SIGTERM);
    assert_eq!(running.exit_status(DEADLINE).code(), Some(0));
}

#[test]
fn run_passes_every_stop_and_control_signal_on_to_the_application() {
    let env = TestEnv::new();
    let signals = [
        ("HUP", libc::SIGHUP, 11),
        ("QUIT", libc::SIGQUIT, 12),
        ("USR1", libc::SIGUSR1, 13),
        ("USR2", libc::SIGUSR2, 14),
        ("INT", libc::SIGINT, 15),
        ("TERM", libc::SIGTERM, 16),
    ];
    for (name, signal, code) in signals {
        let (_dir, ready) = ready_marker();
        // The trap stops the shell's sleep too, so that nothing outlives the test.
        let script = format!(
            "trap 'kill $!; exit {code}' {name}; sleep 30 & touch '{}'; wait",
            ready.display()
        );
        let mut running = env.start(&["run", "--", "sh", "-c", &script]);
        assert!(
            eventually(DEADLINE, || ready.exists()),
            "the application never started:\n{}",
            running.log()
        );
        running.signal(signal);
        assert_eq!(
            running.exit_status(DEADLINE).code(),
            Some(code),
            "SIG{name} did not reach the application:\n{}",
            running.log()
        );
    }
}

/// The parent and the state (`Z` for a zombie) of process `pid`, while it exists.
fn parent_and_state(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: the fields start after the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((parent, state))
}

/// The zombies whose parent is `pid`.
fn zombie_children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&child| parent_and_state(child) == Some((pid, 'Z')))
        .collect()
}

/// Creates its file when dropped: whatever the test's outcome, the grandchild waiting for it ends.
struct Go(PathBuf);

impl Drop for Go {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

#[test]
fn run_reaps_a_grandchild_the_application_orphaned() {
    let env = TestEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let (orphan_pid, go, ready) = (
        dir.path().join("orphan"),
        dir.path().join("go"),
        dir.path().join("ready"),
    );
    // The subshell exits at once, orphaning the grandchild, which writes its
    // PID and waits for `go` before it exits in turn.
    let script = format!(
        "trap 'kill $!; exit 0' TERM; \
         (sh -c 'echo $$ > {orphan}.tmp; mv {orphan}.tmp {orphan}; \
                 while [ ! -e {go} ]; do sleep 0.02; done' &); \
         sleep 30 & touch {ready}; wait",
        orphan = orphan_pid.display(),
        go = go.display(),
        ready = ready.display(),
    );
    // Dropped before `dir`, which must still hold the file then.
    let go = Go(go);
    let mut running = env.start(&["run", "--", "sh", "-c", &script]);
    let filegc = running.pid();
    assert!(
        eventually(DEADLINE, || ready.exists() && orphan_pid.exists()),
        "the application never started:\n{}",
        running.log()
    );
    let orphan: u32 = std::fs::read_to_string(&orphan_pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        eventually(DEADLINE, || parent_and_state(orphan)
            .is_some_and(|(parent, _)| parent == filegc)),
        "the orphan went to {:?}, not to filegc ({filegc})",
        parent_and_state(orphan)
    );

    drop(go);
    assert!(
        eventually(DEADLINE, || parent_and_state(orphan).is_none()),
        "the orphan was not reaped: {:?}",
        parent_and_state(orphan)
    );
    assert_eq!(zombie_children(filegc), Vec::<u32>::new());
    assert!(running.is_running(), "{}", running.log());

    running.signal(libc::SIGTERM);
    assert_eq!(
        running.exit_status(DEADLINE).code(),
        Some(0),
        "{}",
        running.log()
    );
}
