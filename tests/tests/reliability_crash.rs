//! Scenario 2 of the reliability suite: `kill -9` the sweeper at random
//! points of a large sweep, restart it each time, and show that every
//! scheduled file is deleted exactly once and nothing referenced is touched.
//!
//! Short form: 2,000 tombstones, 5 kills. `FILEGC_SOAK=1`: 10,000 tombstones, 20 kills.

use std::collections::BTreeMap;
use std::time::Instant;

use filegc_tests::reliability::{
    canary_name, files_in, kill_sweeps, leases_lapse, schedule_crash_queue, scheduled_name, soak,
    tombstones, AfterKill, Rng, Tombstone,
};
use filegc_tests::sweeper::describe_output;
use filegc_tests::test_env::TestEnv;

/// Referenced files with a tombstone forced on them.
const CANARIES: usize = 20;

/// The longest a killed sweeper is left to work once a batch is claimed.
const MAX_KILL_DELAY_MS: usize = 100;

#[test]
fn kill_9_during_a_sweep_deletes_every_file_once_and_nothing_referenced() {
    let (files, kills) = if soak() { (10_000, 20) } else { (2_000, 5) };
    let mut env = TestEnv::new();
    let mut rng = Rng::seeded("reliability_crash");

    for i in 0..files {
        env.write_aged(&scheduled_name(i), 64, 1);
    }
    for i in 0..CANARIES {
        env.write_aged(&canary_name(i), 64, 1);
    }
    // A killed sweeper's batch comes back after a second; a tombstone may be
    // claimed as often as the kills make it necessary.
    schedule_crash_queue(&mut env.client, files, CANARIES);

    let started = Instant::now();
    let mut watcher = env.db.connect();
    let killed_while_working = kill_sweeps(
        || env.start(&["sweep"]),
        kills,
        &mut rng,
        MAX_KILL_DELAY_MS,
        AfterKill::StartAtOnce,
        &mut watcher,
    );
    let done_before_final =
        env.query_i64("SELECT count(*) FROM filegc.tombstones WHERE state = 'done'");

    // The final sweep may take over whatever the killed sweepers held once
    // their one-second leases lapse (a lease of 0, which this waited for
    // before, is no lease filegc accepts).
    let mut client = env.db.connect();
    assert!(
        leases_lapse(&mut client),
        "leases of a second are still running after 10 s"
    );
    let output = env.run(&["sweep"]);
    assert!(output.status.success(), "{}", describe_output(&output));
    let took = started.elapsed();

    let all = tombstones(&mut env.client);
    let mut by_path: BTreeMap<String, Vec<Tombstone>> = BTreeMap::new();
    for tombstone in all {
        by_path
            .entry(tombstone.path.clone())
            .or_default()
            .push(tombstone);
    }
    assert_eq!(
        by_path.len(),
        files + CANARIES,
        "unexpected tombstone paths"
    );

    let on_disk = files_in(&env.volume);
    let trashed = files_in(&env.path(".filegc-trash"));
    let mut reclaimed = 0;
    for i in 0..files {
        let name = scheduled_name(i);
        let [tombstone] = &by_path[&name][..] else {
            panic!("{name} has more than one tombstone: {:?}", by_path[&name]);
        };
        assert_eq!(tombstone.state, "done", "{tombstone:?}");
        // A kill between trashing and recording leaves the copy in the trash;
        // the deletion's next attempt records it there.
        assert_eq!(
            tombstone.outcome.as_deref(),
            Some("trashed"),
            "{tombstone:?}"
        );
        assert!(!on_disk.contains(&name), "{name} is still on the volume");
        assert!(trashed.contains(&name), "{name} is not in the trash: lost");
        if tombstone.attempts > 1 {
            reclaimed += 1;
        }
    }
    for i in 0..CANARIES {
        let name = canary_name(i);
        let [tombstone] = &by_path[&name][..] else {
            panic!("{name}: {:?}", by_path[&name]);
        };
        assert_eq!(
            tombstone.outcome.as_deref(),
            Some("skipped_referenced"),
            "{tombstone:?}"
        );
        assert!(on_disk.contains(&name), "the referenced {name} was deleted");
        assert!(
            !trashed.contains(&name),
            "the referenced {name} was trashed"
        );
    }
    assert!(
        killed_while_working > 0,
        "no kill landed while a sweeper was running"
    );
    eprintln!(
        "reliability_crash: {files} tombstones + {CANARIES} canaries, {kills} kills \
         ({killed_while_working} while the sweeper ran), {done_before_final} done before the final sweep, \
         {reclaimed} claimed more than once, {:.1} s",
        took.as_secs_f64()
    );
}
