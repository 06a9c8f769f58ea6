//! Scenario 1 of the reliability suite: concurrent application load while
//! `filegc run` sweeps and orphan cleanups run from another connection.
//!
//! Writers, as the role `app`, create files and rows, delete rows, point
//! rows at other files, point new rows at files whose rows were deleted
//! moments ago, and roll back some of their transactions. At the end, after
//! a final scan, cleanup and sweep: every referenced file is on the volume,
//! every unreferenced one is gone, the audit trail accounts for each file
//! that left, and no tombstone is left claimed.
//!
//! Short form: 4 writers, 5 s or 400 transactions each. `FILEGC_SOAK=1`:
//! 8 writers, 10 minutes or 200,000 transactions each.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use filegc_tests::fixtures::PREFIX;
use filegc_tests::reliability::{files_in, soak, tombstones, Rng};
use filegc_tests::sweeper::{filegc_bin, filegc_command, succeeded};
use filegc_tests::test_env::TestEnv;
use postgres::Client;

/// The age below which an unreferenced file is not yet an orphan.
const ORPHAN_MIN_AGE_SECS: u64 = 3;

/// The tracked columns as (table, column).
const COLUMNS: [(&str, &str); 4] = [
    ("facial_evaluations", "image_path"),
    ("facial_evaluations", "secondary_image_path"),
    ("generations", "input_image_path"),
    ("generations", "output_image_path"),
];

/// How much load a run puts on the database.
struct Load {
    writers: usize,
    duration: Duration,
    transactions: usize,
}

/// A committed row a writer made: where it is and the file it references.
#[derive(Clone)]
struct Row {
    column: usize,
    id: i64,
    path: String,
}

/// One writer's view of what it committed.
struct Writer {
    number: usize,
    client: Client,
    rng: Rng,
    volume: std::path::PathBuf,
    rows: Vec<Row>,
    /// Files this writer created (whether or not their row committed).
    files: Vec<String>,
    /// Paths whose rows this writer deleted recently.
    released: VecDeque<String>,
    created: usize,
    committed: usize,
    rolled_back: usize,
}

/// A change to the writer's rows that takes effect when its transaction commits.
enum Change {
    Insert(Row),
    Delete(usize),
    Update(usize, String),
}

impl Writer {
    /// One transaction of 1 to 3 random operations, committed 9 times in 10.
    fn transaction(&mut self) {
        let mut changes = Vec::new();
        let mut transaction = self.client.transaction().expect("BEGIN");
        for _ in 0..1 + self.rng.below(3) {
            let roll = self.rng.below(100);
            let live: Vec<usize> = (0..self.rows.len())
                .filter(|i| {
                    !changes
                        .iter()
                        .any(|c| matches!(c, Change::Delete(j) | Change::Update(j, _) if j == i))
                })
                .collect();
            if roll < 35 || live.is_empty() {
                // A new file and a row that references it.
                let path = format!("w{}_{:06}.jpg", self.number, self.created);
                self.created += 1;
                std::fs::write(self.volume.join(&path), path.as_bytes()).unwrap();
                self.files.push(path.clone());
                let column = self.rng.below(COLUMNS.len());
                let id = insert(&mut transaction, column, &path);
                changes.push(Change::Insert(Row { column, id, path }));
            } else if roll < 60 {
                let index = live[self.rng.below(live.len())];
                let row = &self.rows[index];
                let (table, _) = COLUMNS[row.column];
                transaction
                    .execute(&format!("DELETE FROM {table} WHERE id = $1"), &[&row.id])
                    .expect("DELETE");
                changes.push(Change::Delete(index));
            } else if roll < 80 {
                // Point a row at another file this writer made: referenced,
                // unreferenced, perhaps already in the trash.
                let index = live[self.rng.below(live.len())];
                let recent = self.files.len().min(50);
                let path = self.files[self.files.len() - 1 - self.rng.below(recent)].clone();
                let row = &self.rows[index];
                let (table, column) = COLUMNS[row.column];
                transaction
                    .execute(
                        &format!("UPDATE {table} SET {column} = $2 WHERE id = $1"),
                        &[&row.id, &format!("{PREFIX}{path}")],
                    )
                    .expect("UPDATE");
                changes.push(Change::Update(index, path));
            } else if let Some(path) = self.released.pop_front() {
                // A file whose row went moments ago is wanted again.
                let column = self.rng.below(COLUMNS.len());
                let id = insert(&mut transaction, column, &path);
                changes.push(Change::Insert(Row { column, id, path }));
            }
        }
        if self.rng.chance(10) {
            transaction.rollback().expect("ROLLBACK");
            self.rolled_back += 1;
            return;
        }
        transaction.commit().expect("COMMIT");
        self.committed += 1;
        let mut deleted = Vec::new();
        for change in changes {
            match change {
                Change::Insert(row) => self.rows.push(row),
                Change::Update(index, path) => {
                    let old = std::mem::replace(&mut self.rows[index].path, path);
                    self.released.push_back(old);
                }
                Change::Delete(index) => deleted.push(index),
            }
        }
        deleted.sort_unstable();
        for index in deleted.into_iter().rev() {
            let row = self.rows.swap_remove(index);
            self.released.push_back(row.path);
        }
        while self.released.len() > 20 {
            self.released.pop_front();
        }
    }
}

fn insert(transaction: &mut postgres::Transaction<'_>, column: usize, path: &str) -> i64 {
    let (table, column) = COLUMNS[column];
    transaction
        .query_one(
            &format!("INSERT INTO {table} (user_id, {column}) VALUES (1, $1) RETURNING id"),
            &[&format!("{PREFIX}{path}")],
        )
        .expect("INSERT")
        .get(0)
}

/// Every path the committed rows reference, relative to the volume root.
fn referenced(client: &mut Client) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for (table, column) in COLUMNS {
        for row in client
            .query(
                &format!("SELECT {column}::text FROM {table} WHERE {column} IS NOT NULL"),
                &[],
            )
            .unwrap()
        {
            let value: String = row.get(0);
            let path = value.strip_prefix(PREFIX).expect("a value with the prefix");
            paths.insert(path.to_owned());
        }
    }
    paths
}

/// Runs `filegc ARGS` on this volume and database to the end, under the
/// binary's own worker name, and insists on success. The threads of the
/// test share no [`TestEnv`], so this takes the volume and the URL.
fn run_ok(volume: &Path, url: &str, args: &[&str]) {
    let output = filegc_command(filegc_bin(), volume, url)
        .args(args)
        .output()
        .expect("running filegc");
    succeeded(args, &output);
}

/// Runs `filegc scan` while the sweeper deletes. A file that vanishes
/// between the listing and its inventory is simply not there, so the scan
/// must succeed whatever the sweeper does meanwhile.
fn concurrent_scan(volume: &Path, url: &str) {
    run_ok(volume, url, &["scan"]);
}

#[test]
fn concurrent_writers_sweeper_and_orphan_cleanup_lose_nothing() {
    let load = if soak() {
        Load {
            writers: 8,
            duration: Duration::from_secs(600),
            transactions: 200_000,
        }
    } else {
        Load {
            writers: 4,
            duration: Duration::from_secs(5),
            transactions: 400,
        }
    };
    let mut env = TestEnv::new();
    env.set("orphan_min_age", &format!("{ORPHAN_MIN_AGE_SECS} seconds"));
    let mut run = env.start(&["run", "--sweep-interval", "1s", "--scan-interval", "1h"]);
    env.wait_until_listening(&mut run);
    let mut client = env.db.connect();

    let mut seeds = Rng::seeded("reliability_soak");
    let stop = AtomicBool::new(false);
    let cleanups = Mutex::new((0usize, 0i64));
    let started = Instant::now();
    let volume = env.volume.clone();
    let url = env.db.url();
    let app_url = env.db.url_as("app");
    let writers: Vec<Writer> = std::thread::scope(|scope| {
        let cleaner = scope.spawn(|| {
            let mut client = Client::connect(&url, postgres::NoTls).unwrap();
            while !stop.load(Ordering::Relaxed) {
                concurrent_scan(&volume, &url);
                let scheduled: i64 = client
                    .query_one(
                        "SELECT count(*) FROM filegc.cleanup_orphans(dry_run => false, force => true)",
                        &[],
                    )
                    .expect("cleanup_orphans")
                    .get(0);
                let mut totals = cleanups.lock().unwrap();
                totals.0 += 1;
                totals.1 += scheduled;
            }
        });
        let handles: Vec<_> = (0..load.writers)
            .map(|number| {
                let mut writer = Writer {
                    number,
                    client: Client::connect(&app_url, postgres::NoTls).unwrap(),
                    rng: Rng::new(seeds.next_u64()),
                    volume: volume.clone(),
                    rows: Vec::new(),
                    files: Vec::new(),
                    released: VecDeque::new(),
                    created: 0,
                    committed: 0,
                    rolled_back: 0,
                };
                let load = &load;
                scope.spawn(move || {
                    for _ in 0..load.transactions {
                        if started.elapsed() >= load.duration {
                            break;
                        }
                        writer.transaction();
                    }
                    writer
                })
            })
            .collect();
        let writers = handles.into_iter().map(|h| h.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        cleaner.join().unwrap();
        writers
    });
    let load_took = started.elapsed();
    assert!(run.is_running(), "filegc run exited:\n{}", run.log());
    run.signal(libc::SIGTERM);
    assert_eq!(
        run.exit_status(Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        run.log()
    );

    // The final pass: settle what is due (and restore what came back), then
    // let every remaining file age past orphan_min_age and clean it up.
    run_ok(&volume, &url, &["sweep"]);
    run_ok(&volume, &url, &["scan"]);
    std::thread::sleep(Duration::from_secs(ORPHAN_MIN_AGE_SECS + 1));
    run_ok(&volume, &url, &["scan"]);
    client
        .execute(
            "SELECT count(*) FROM filegc.cleanup_orphans(dry_run => false, force => true)",
            &[],
        )
        .unwrap();
    run_ok(&volume, &url, &["sweep"]);

    let referenced = referenced(&mut client);
    let on_disk = files_in(&env.volume);
    let created: BTreeSet<String> = writers
        .iter()
        .flat_map(|w| w.files.iter().cloned())
        .collect();
    let mut expected_rows: HashMap<String, usize> = HashMap::new();
    for row in writers.iter().flat_map(|w| &w.rows) {
        *expected_rows.entry(row.path.clone()).or_default() += 1;
    }
    assert_eq!(
        referenced,
        expected_rows.keys().cloned().collect::<BTreeSet<_>>(),
        "the rows differ from what the writers committed"
    );
    let all = tombstones(&mut client);
    for path in &referenced {
        assert!(
            on_disk.contains(path),
            "referenced {path} is not on the volume (in the trash: {}); its tombstones: {:?}\n--- filegc run\n{}",
            env.path(".filegc-trash").join(path).exists(),
            all.iter().filter(|t| &t.path == path).collect::<Vec<_>>(),
            run.log()
        );
    }
    for path in &on_disk {
        assert!(
            referenced.contains(path),
            "unreferenced {path} is still on the volume after the final cleanup"
        );
    }

    let unprocessed: i64 = client
        .query_one("SELECT count(*) FROM filegc.notes", &[])
        .unwrap()
        .get(0);
    assert_eq!(unprocessed, 0, "the final sweep processed every note");
    let stuck: Vec<_> = all
        .iter()
        .filter(|t| !matches!(t.state.as_str(), "done" | "cancelled"))
        .collect();
    assert!(
        stuck.is_empty(),
        "tombstones left open: {stuck:?}\n{:?}\n--- filegc run\n{}",
        client
            .query(
                "SELECT path, claimed_by, lease_until::text, now()::text, last_error FROM filegc.tombstones
                  WHERE state NOT IN ('done', 'cancelled')",
                &[]
            )
            .unwrap()
            .iter()
            .map(|r| format!("{:?}", (r.get::<_, String>(0), r.get::<_, Option<String>>(1), r.get::<_, Option<String>>(2), r.get::<_, String>(3), r.get::<_, Option<String>>(4))))
            .collect::<Vec<_>>(),
        run.log()
    );
    let mut removals: BTreeMap<&str, usize> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for tombstone in &all {
        if tombstone.removed_file() {
            *removals.entry(&tombstone.path).or_default() += 1;
        }
        let key = tombstone
            .outcome
            .clone()
            .unwrap_or_else(|| tombstone.state.clone());
        *outcomes.entry(key).or_default() += 1;
    }
    let restored = all.iter().filter(|t| t.restored).count();
    // One for one: a file left the volume exactly when one tombstone says it
    // went (and was not brought back since).
    for path in &created {
        let expected = usize::from(!on_disk.contains(path));
        let recorded = removals.get(path.as_str()).copied().unwrap_or(0);
        assert_eq!(
            recorded,
            expected,
            "{path}: {recorded} removals recorded, on the volume: {}; tombstones {:?}",
            on_disk.contains(path),
            all.iter().filter(|t| &t.path == path).collect::<Vec<_>>()
        );
    }
    assert!(
        removals.keys().all(|path| created.contains(*path)),
        "a removal of a file no writer made"
    );

    let (cleanup_calls, orphans_scheduled) = *cleanups.lock().unwrap();
    let committed: usize = writers.iter().map(|w| w.committed).sum();
    let rolled_back: usize = writers.iter().map(|w| w.rolled_back).sum();
    assert!(cleanup_calls > 0 && committed > 0 && rolled_back > 0);
    eprintln!(
        "reliability_soak: {} writers for {:.1} s: {committed} transactions committed, {rolled_back} rolled back, \
         {} files created, {} referenced at the end, {} removed; {cleanup_calls} scan + cleanup_orphans calls \
         scheduling {orphans_scheduled} orphans; {} tombstones, outcomes {outcomes:?}, {restored} restored",
        load.writers,
        load_took.as_secs_f64(),
        created.len(),
        referenced.len(),
        removals.len(),
        all.len(),
    );
}
