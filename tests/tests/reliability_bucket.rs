//! Scenario 2 of the reliability suite on a bucket (a real `moto_server`):
//! `kill -9` the sweeper at random points of a sweep, restart it each time,
//! and show that every scheduled object ends in the trash exactly once and
//! nothing referenced is touched.
//!
//! Short form: 300 objects, 4 kills. `FILEGC_SOAK=1`: 2,000 objects, 12 kills.
//!
//! And the S3 server restarted in the middle of a sweep: the sweeper meets
//! it down, waits, and carries on where it was.

use std::collections::BTreeMap;
use std::time::Duration;

use filegc_tests::eventually;
use filegc_tests::reliability::{
    canary_name, kill_sweeps, schedule_crash_queue, scheduled_name, soak, tombstones, AfterKill,
    Rng, Tombstone,
};
use filegc_tests::s3_server::{
    filegc_on_bucket, object_key, trashed_key, Passage, Proxy, S3Server, BUCKET, STORAGE,
};
use filegc_tests::sweeper::{describe_output, Running};
use filegc_tests::test_env::TestEnv;

/// Referenced objects with a tombstone forced on them.
const CANARIES: usize = 10;

/// The longest a killed sweeper is left to work once a batch is claimed.
const MAX_KILL_DELAY_MS: usize = 300;

/// How long the restart scenario waits for each step.
const DEADLINE: Duration = Duration::from_secs(30);

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

    let reclaimed = assert_every_object_trashed_once(&server, &mut env, objects);
    assert!(
        killed_while_working > 0,
        "no kill landed while a sweeper was running"
    );
    eprintln!(
        "reliability_bucket: {objects} objects + {CANARIES} canaries, {kills} kills \
         ({killed_while_working} while the sweeper ran), {reclaimed} claimed more than once"
    );
}

#[test]
fn a_restart_of_the_s3_server_mid_sweep_loses_nothing_and_the_sweep_carries_on() {
    let objects = 300;
    let mut server = S3Server::start();
    server.create_bucket(BUCKET);
    let keys: Vec<String> = (0..objects)
        .map(scheduled_name)
        .chain((0..CANARIES).map(canary_name))
        .map(|name| object_key(&name))
        .collect();
    server.put_many(BUCKET, &keys, 64);
    let mut env = TestEnv::new();
    schedule_crash_queue(&mut env.client, objects, CANARIES);

    let proxy = Proxy::start(&server, |_| Passage::Forward);
    let mut command = filegc_on_bucket(&server, &env.db.url(), STORAGE, &["sweep"]);
    command.env("ENDPOINT", proxy.endpoint());
    let mut sweep = Running::spawn(command);
    // The sweep records a batch's outcomes at its end: the trash shows its progress.
    let in_the_trash = |server: &S3Server| server.count_listed(BUCKET, &trashed_key(""));
    assert!(
        eventually(DEADLINE, || in_the_trash(&server) >= 20),
        "the sweep got going: {}",
        sweep.log()
    );
    // The server goes down between two requests (moto keeps no objects
    // across a restart: the test keeps them for it, as a real service does).
    proxy.pause();
    let trashed_before_the_restart = in_the_trash(&server);
    let kept = server.stop_keeping(BUCKET);
    proxy.resume();
    assert!(
        eventually(DEADLINE, || proxy.unreachable() >= 3),
        "the sweeper's requests met the server down: {}",
        sweep.log()
    );
    proxy.pause();
    server.start_again(BUCKET, &kept);
    proxy.resume();

    let status = sweep.exit_status(Duration::from_secs(120));
    assert!(status.success(), "{status}: {}", sweep.log());
    assert!(
        trashed_before_the_restart < objects as u64,
        "the restart came before the sweep's end"
    );
    assert!(
        sweep.log().contains("trying again"),
        "the sweeper retried the failed requests: {}",
        sweep.log()
    );
    assert_every_object_trashed_once(&server, &mut env, objects);
}

/// Every one of the `objects` scheduled objects is in the trash, once, and
/// recorded so; every canary is where it was. Returns how many objects were
/// claimed more than once.
fn assert_every_object_trashed_once(server: &S3Server, env: &mut TestEnv, objects: usize) -> usize {
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
    reclaimed
}
