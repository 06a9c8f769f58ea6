//! Scenario 2 of the reliability suite on a bucket (a real `moto_server`):
//! `kill -9` the sweeper at random points of a sweep, restart it each time,
//! and show that every scheduled object ends in the trash exactly once and
//! nothing referenced is touched.
//!
//! Short form: 300 objects, 4 kills. `FILEGC_SOAK=1`: 2,000 objects, 12 kills.

use std::collections::BTreeMap;
use std::time::Duration;

use filegc_tests::eventually;
use filegc_tests::fixtures::PREFIX;
use filegc_tests::reliability::{soak, tombstones, Rng, Tombstone};
use filegc_tests::s3_server::{filegc_on_bucket, S3Server};
use filegc_tests::sweeper::{describe_output, Running};
use filegc_tests::test_env::TestEnv;

const BUCKET: &str = "app-uploads";
const STORAGE: &str = "s3://app-uploads/facial_evaluations/";

/// Referenced objects with a tombstone forced on them.
const CANARIES: usize = 10;

/// The longest a killed sweeper is left to work once a batch is claimed.
const MAX_KILL_DELAY_MS: usize = 300;

fn scheduled_name(i: usize) -> String {
    format!("c_{i:05}.jpg")
}

fn canary_name(i: usize) -> String {
    format!("canary_{i:02}.jpg")
}

fn key(path: &str) -> String {
    format!("facial_evaluations/{path}")
}

fn trash_key(path: &str) -> String {
    format!("facial_evaluations/.filegc-trash/{path}")
}

#[test]
fn kill_9_during_a_bucket_sweep_trashes_every_object_once_and_nothing_referenced() {
    let (objects, kills) = if soak() { (2_000, 12) } else { (300, 4) };
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let names: Vec<String> = (0..objects)
        .map(scheduled_name)
        .chain((0..CANARIES).map(canary_name))
        .collect();
    let keys: Vec<String> = names.iter().map(|name| key(name)).collect();
    server.put_many(BUCKET, &keys, 64);

    let mut env = TestEnv::new();
    let mut rng = Rng::seeded("reliability_bucket");
    env.client
        .execute(
            "INSERT INTO generations (user_id, output_image_path)
             SELECT 1, $1 || 'canary_' || lpad(i::text, 2, '0') || '.jpg' FROM generate_series(0, $2 - 1) AS i",
            &[&PREFIX, &(CANARIES as i32)],
        )
        .unwrap();
    env.client
        .execute(
            "INSERT INTO facial_evaluations (user_id, image_path)
             SELECT 1, $1 || 'c_' || lpad(i::text, 5, '0') || '.jpg' FROM generate_series(0, $2 - 1) AS i",
            &[&PREFIX, &(objects as i32)],
        )
        .unwrap();
    env.client
        .batch_execute("DELETE FROM facial_evaluations")
        .unwrap();
    // Past the triggers, as a superuser: tombstones for referenced objects.
    env.client
        .execute(
            "INSERT INTO filegc.tombstones (path, reason, due_at)
             SELECT 'canary_' || lpad(i::text, 2, '0') || '.jpg', 'manual', now() FROM generate_series(0, $1 - 1) AS i",
            &[&(CANARIES as i32)],
        )
        .unwrap();
    env.client
        .batch_execute("SELECT filegc.process_notes()")
        .unwrap();
    assert_eq!(
        env.query_i64("SELECT count(*) FROM filegc.tombstones WHERE state = 'pending'"),
        (objects + CANARIES) as i64
    );
    env.set("lease", "1 second");
    env.set("max_attempts", "1000");

    let url = env.db.url();
    let mut killed_while_working = 0;
    let mut watcher = env.db.connect();
    for _ in 0..kills {
        let mut sweep = Running::spawn(filegc_on_bucket(&server, &url, STORAGE, &["sweep"]));
        // A kill lands once the sweeper holds a batch, at a random point of its work.
        eventually(Duration::from_secs(10), || {
            !sweep.is_running()
                || watcher
                    .query_one(
                        "SELECT count(*) FROM filegc.tombstones WHERE state = 'claimed' AND lease_until > now()",
                        &[],
                    )
                    .unwrap()
                    .get::<_, i64>(0)
                    > 0
        });
        std::thread::sleep(Duration::from_millis(rng.below(MAX_KILL_DELAY_MS) as u64));
        if sweep.is_running() {
            sweep.signal(libc::SIGKILL);
            killed_while_working += 1;
        }
        let status = sweep.exit_status(Duration::from_secs(30));
        assert!(
            status.success() || status.code().is_none(),
            "a sweep failed on its own: {status}\n{}",
            sweep.log()
        );
        // The next sweeper finds the killed one's batch once its lease lapses.
        let lapsed = eventually(Duration::from_secs(10), || {
            watcher
                .query_one(
                    "SELECT count(*) FROM filegc.tombstones WHERE state = 'claimed' AND lease_until >= now()",
                    &[],
                )
                .unwrap()
                .get::<_, i64>(0)
                == 0
        });
        assert!(lapsed, "leases of a second are still running after 10 s");
    }
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
        assert!(!server.exists(BUCKET, &key(&name)), "{name} is still there");
        assert!(
            server.exists(BUCKET, &trash_key(&name)),
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
            server.exists(BUCKET, &key(&name)),
            "the referenced {name} was deleted"
        );
        assert!(
            !server.exists(BUCKET, &trash_key(&name)),
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
