//! Scenario 3 of the reliability suite: PostgreSQL stops and starts again
//! (fast and immediate shutdown) while `filegc run` supervises an
//! application and rows are deleted. The sweeper reconnects, the
//! application keeps running, and every scheduled deletion is carried out
//! once.
//!
//! Short form: 4 restarts, 200 deletions. `FILEGC_SOAK=1`: 12 restarts, 520 deletions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use filegc_tests::fixtures::PREFIX;
use filegc_tests::reliability::{files_in, pid_alive, soak, tombstones};
use filegc_tests::test_env::TestEnv;
use filegc_tests::{eventually, Cluster};

/// Files deleted between two restarts.
const PER_ROUND: usize = 40;

/// How long the reconnection may take: the backoff grows while the server is down.
const RECONNECT: Duration = Duration::from_secs(45);

fn name(i: usize) -> String {
    format!("r_{i:05}.jpg")
}

/// How many times the run's log says it connected.
fn connections(log: &str) -> usize {
    log.matches("connected; listening for deletions").count()
}

#[test]
fn run_survives_fast_and_immediate_restarts_without_losing_or_repeating_work() {
    let restarts = if soak() { 12 } else { 4 };
    let rounds = restarts + 1;
    let files = PER_ROUND * rounds;
    let kept = 20;
    let cluster = Cluster::start_private();
    let mut env = TestEnv::on(&cluster);
    // A batch that a restart strands is taken over after 2 s, not 5 minutes.
    env.set("lease", "2 seconds");
    for i in 0..files + kept {
        env.write_aged(&name(i), 64, 1);
    }
    env.client
        .execute(
            "INSERT INTO facial_evaluations (user_id, image_path)
             SELECT i, $1 || 'r_' || lpad(i::text, 5, '0') || '.jpg' FROM generate_series(0, $2 - 1) AS i",
            &[&PREFIX, &((files + kept) as i32)],
        )
        .unwrap();

    let scratch = tempfile::tempdir().unwrap();
    let pid_file = scratch.path().join("pid");
    let script = format!(
        "trap 'exit 0' TERM; echo $$ > '{}'; sleep 600 & wait",
        pid_file.display()
    );
    let mut run = env.start(&[
        "run",
        "--sweep-interval",
        "1s",
        "--scan-interval",
        "1h",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(
        eventually(RECONNECT, || connections(&run.log()) == 1),
        "filegc run never connected:\n{}",
        run.log()
    );
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(
            &pid_file
        )
        .is_ok_and(|text| text.ends_with('\n'))),
        "the application never started:\n{}",
        run.log()
    );
    let app: libc::pid_t = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let started = Instant::now();
    for round in 0..rounds {
        // One transaction per deletion, each acknowledged before the stop:
        // with synchronous_commit on, each one survives an immediate shutdown.
        for i in round * PER_ROUND..(round + 1) * PER_ROUND {
            env.client
                .execute(
                    "DELETE FROM facial_evaluations WHERE user_id = $1",
                    &[&(i as i64)],
                )
                .unwrap();
        }
        if round == restarts {
            break;
        }
        let mode = if round % 2 == 0 { "fast" } else { "immediate" };
        cluster.stop(mode);
        assert!(pid_alive(app), "the application died with the database");
        assert!(run.is_running(), "filegc run exited:\n{}", run.log());
        cluster.start();
        assert!(
            eventually(RECONNECT, || connections(&run.log()) == round + 2),
            "no reconnection after the {mode} restart {}:\n{}",
            round + 1,
            run.log()
        );
        assert!(pid_alive(app), "the application died");
        env.client = env.db.connect();
    }

    // Every deletion is carried out: nothing is left open, noted or scheduled.
    let mut client = env.db.connect();
    let settled = eventually(RECONNECT, || {
        client
            .query_one(
                "SELECT (SELECT count(*) FROM filegc.pending)
                      + (SELECT count(*) FROM filegc.tombstones WHERE state NOT IN ('done', 'cancelled'))",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0)
            == 0
    });
    assert!(
        settled,
        "deletions left open: {:?}\n{}",
        tombstones(&mut client),
        run.log()
    );
    let took = started.elapsed();
    assert!(pid_alive(app), "the application died");
    assert!(run.is_running(), "filegc run exited:\n{}", run.log());

    let mut by_path: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut reclaimed = 0;
    for tombstone in tombstones(&mut client) {
        assert_eq!(tombstone.state, "done", "{tombstone:?}");
        if tombstone.attempts > 1 {
            reclaimed += 1;
        }
        by_path
            .entry(tombstone.path)
            .or_default()
            .push(tombstone.outcome.unwrap());
    }
    let on_disk = files_in(&env.volume);
    let trashed = files_in(&env.path(".filegc-trash"));
    for i in 0..files {
        let path = name(i);
        let done = by_path.remove(&path).unwrap_or_default();
        assert!(
            done.len() == 1,
            "{path} was carried out {} times: {done:?}",
            done.len()
        );
        // Whatever a restart cut short, each file is recorded where it went.
        assert_eq!(done[0], "trashed", "{path}");
        assert!(!on_disk.contains(&path), "{path} is still on the volume");
        assert!(trashed.contains(&path), "{path} is not in the trash: lost");
    }
    assert!(by_path.is_empty(), "unexpected tombstones: {by_path:?}");
    for i in files..files + kept {
        assert!(
            on_disk.contains(&name(i)),
            "the referenced {} went",
            name(i)
        );
    }
    let log = run.log();
    assert!(
        log.contains("lost the database; reconnecting")
            || log.contains("cannot reach the database"),
        "{log}"
    );

    run.signal(libc::SIGTERM);
    assert_eq!(
        run.exit_status(Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        run.log()
    );
    eprintln!(
        "reliability_restart: {restarts} restarts (fast and immediate in turn), {files} deletions, \
         {kept} files kept, {reclaimed} deletions claimed more than once, {:.1} s; the application (pid {app}) ran throughout",
        took.as_secs_f64()
    );
}
