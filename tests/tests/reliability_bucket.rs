//! Scenario 2 of the reliability suite on a bucket (a real `moto_server`):
//! `kill -9` the sweeper at random points of a sweep, restart it each time,
//! and show that every scheduled object ends in the trash exactly once and
//! nothing referenced is touched.
//!
//! Short form: 300 objects, 4 kills. `FILEGC_SOAK=1`: 2,000 objects, 12 kills.

use std::collections::BTreeMap;

use filegc_tests::reliability::{
    canary_name, kill_sweeps, schedule_crash_queue, scheduled_name, soak, tombstones, AfterKill,
    Rng, Tombstone,
};
use filegc_tests::s3_server::{
    filegc_on_bucket, object_key, trashed_key, S3Server, BUCKET, STORAGE,
};
use filegc_tests::sweeper::{describe_output, Running};
use filegc_tests::test_env::TestEnv;

/// Referenced objects with a tombstone forced on them.
const CANARIES: usize = 10;

/// The longest a killed sweeper is left to work once a batch is claimed.
const MAX_KILL_DELAY_MS: usize = 300;

#[test]
fn kill_9_during_a_bucket_sweep_trashes_every_object_once_and_nothing_referenced() {
    let (objects, kills) = if soak() { (2_000, 12) } else { (300, 4) };
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let names: Vec<String> = (0..objects)
        .map(scheduled_name)
        .chain((0..CANARIES).map(canary_name))
        .collect();
    let keys: Vec<String> = names.iter().map(|name| object_key(name)).collect();
    server.put_many(BUCKET, &keys, 64);

    let mut env = TestEnv::new();
    let mut rng = Rng::seeded("reliability_bucket");
    schedule_crash_queue(&mut env.client, objects, CANARIES);

    let url = env.db.url();
    let mut watcher = env.db.connect();
    let killed_while_working = kill_sweeps(
        || Running::spawn(filegc_on_bucket(&server, &url, STORAGE, &["sweep"])),
        kills,
        &mut rng,
        MAX_KILL_DELAY_MS,
        AfterKill::WaitForItsLease,
        &mut watcher,
    );
    let output = filegc_on_bucket(&server, &url, STORAGE, &["sweep"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe_output(&output));

    let mut by_path: BTreeMap<String, Vec<Tombstone>> = BTreeMap::new();
    for tombstone in tombstones(&mut env.client) {
        by_path
            .entry(tombstone.path.clone())
            .or_default()
            .push(tombstone);
    }
    assert_eq!(by_path.len(), objects + CANARIES);
    let mut reclaimed = 0;
    for i in 0..objects {
        let name = scheduled_name(i);
        let [tombstone] = &by_path[&name][..] else {
            panic!("{name} has more than one tombstone: {:?}", by_path[&name]);
        };
        assert_eq!(tombstone.state, "done", "{tombstone:?}");
        assert_eq!(
            tombstone.outcome.as_deref(),
            Some("trashed"),
            "{tombstone:?}"
        );
        assert!(
            !server.exists(BUCKET, &object_key(&name)),
            "{name} is still there"
        );
        assert!(
            server.exists(BUCKET, &trashed_key(&name)),
            "{name} is not in the trash: lost"
        );
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
        assert!(
            server.exists(BUCKET, &object_key(&name)),
            "the referenced {name} was deleted"
        );
        assert!(
            !server.exists(BUCKET, &trashed_key(&name)),
            "the referenced {name} was trashed"
        );
    }
    assert!(
        killed_while_working > 0,
        "no kill landed while a sweeper was running"
    );
    eprintln!(
        "reliability_bucket: {objects} objects + {CANARIES} canaries, {kills} kills \
         ({killed_while_working} while the sweeper ran), {reclaimed} claimed more than once"
    );
}
