//! `filegc sweep` of due deletions, with and without the trash, against
//! `find -delete` unlinking the same files.
//!
//! The files to delete fill a folder of their own, so that `find` deletes
//! exactly them and nothing else; the database is the one whose rows
//! reference the large volume, so the sweeper's final check probes indexes
//! of realistic size. Each deletion is scheduled as a trigger would, a
//! pending `unreferenced` tombstone, already due, for a file the inventory
//! lists.

use std::fs;
use std::ops::Range;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::Client;

use crate::data::{self, FileSpec, References};
use crate::measure::{self, each_run, median, seconds};
use crate::report::{ratio, thousands, Row, Verdict};
use crate::setup::{function_times, reset_function_times, Bench};

/// The target.
const MAX_RATIO_TO_FIND: f64 = 2.0;

/// The sweeper's protocol functions, whose time shows the database's share.
const PROTOCOL: [&str; 3] = ["claim", "check_before_delete", "complete"];

/// The two ways a sweep removes files.
struct Mode {
    label: &'static str,
    folder: &'static str,
    args: &'static [&'static str],
    outcome: &'static str,
}

const MODES: [Mode; 2] = [
    Mode {
        label: "`--no-trash`",
        folder: "no-trash",
        args: &["sweep", "--no-trash"],
        outcome: "deleted",
    },
    Mode {
        label: "into the trash (default)",
        folder: "trash",
        args: &["sweep"],
        outcome: "trashed",
    },
];

pub fn run(bench: &mut Bench) {
    let count = bench.options.sweep_files;
    let first = References::new(bench.options.files, bench.options.references).unused_from();
    let numbers = first..first + count;
    let url = bench.db().url();
    let mut client = bench.db().connect();
    let now = bench.now();
    // Every folder is made before anything is deleted: ext4 passes over
    // inodes freed in the last 30 seconds when it allocates new ones, and
    // making the files again right after a deletion is several times slower.
    let runs = bench.options.runs;
    let base = bench.path("sweep");
    let folder = |run: usize, kind: &str| base.with_file_name(format!("sweep-{run}-{kind}"));
    let folders: Vec<PathBuf> = (0..runs)
        .flat_map(|run| {
            MODES
                .iter()
                .map(|mode| mode.folder)
                .chain(["find"])
                .map(move |kind| (run, kind))
        })
        .map(|(run, kind)| folder(run, kind))
        .collect();
    let took = measure::time(|| {
        for dir in &folders {
            data::create_files(dir, numbers.clone(), now);
        }
    });
    bench.report.detail(format!(
        "generating {} folders of {} files for the sweeps: {}",
        folders.len(),
        thousands(count),
        seconds(took)
    ));

    let mut sweeps: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut protocol = [[Duration::ZERO; 3]; 2];
    let mut finds = Vec::new();
    for run in 0..runs {
        for (index, mode) in MODES.iter().enumerate() {
            let dir = folder(run, mode.folder);
            let after = schedule(&mut client, numbers.clone(), now);
            reset_function_times(&mut client);
            bench.quiet();
            let swept = measure::run(
                &mut bench.filegc_command(&dir, &url, mode.args),
                "filegc sweep",
            );
            sweeps[index].push(swept.wall);
            check_swept(&mut client, after, count, mode.outcome);
            for (total, (_, took)) in protocol[index]
                .iter_mut()
                .zip(function_times(&mut client, &PROTOCOL))
            {
                *total += took;
            }
        }
        let dir = folder(run, "find");
        let mut find = Command::new("find");
        find.arg(&dir).args(["-type", "f", "-delete"]);
        bench.quiet();
        finds.push(measure::run(&mut find, "find -delete").wall);
        assert_eq!(
            fs::read_dir(&dir).expect("the sweep folder").count(),
            0,
            "bench: find left files behind"
        );
    }
    for dir in &folders {
        fs::remove_dir_all(dir)
            .unwrap_or_else(|e| panic!("bench: cannot remove {}: {e}", dir.display()));
    }

    let find_time = median(&finds);
    for (index, mode) in MODES.iter().enumerate() {
        let took = median(&sweeps[index]);
        let sweep_ratio = took.as_secs_f64() / find_time.as_secs_f64();
        bench.report.row(Row {
            case: format!("sweep {} due deletions, {}", thousands(count), mode.label),
            filegc: seconds(took),
            baseline: format!("{} (`find -delete`)", seconds(find_time)),
            ratio: ratio(took.as_secs_f64(), find_time.as_secs_f64()),
            target: format!("at most {MAX_RATIO_TO_FIND}x"),
            verdict: Verdict::of(sweep_ratio <= MAX_RATIO_TO_FIND),
        });
        let runs = bench.options.runs as u32;
        let shares: Vec<String> = PROTOCOL
            .iter()
            .zip(protocol[index])
            .map(|(name, total)| format!("`filegc.{name}` {}", seconds(total / runs)))
            .collect();
        bench.report.detail(format!(
            "sweep {}, each run: {} s; in each, the database's protocol functions: {}",
            mode.label,
            each_run(&sweeps[index]),
            shares.join(", ")
        ));
    }
    bench.report.detail(format!(
        "`find -delete` of {} files, each run: {} s",
        thousands(count),
        each_run(&finds)
    ));
}

/// Lists the files in the inventory and schedules their deletion, due now;
/// returns the id the new tombstones come after.
///
/// The earlier runs' finished deletions go first: the audit trail grows with
/// every sweep, and each run is to start from the same table.
pub fn schedule(client: &mut Client, numbers: Range<u64>, now: SystemTime) -> i64 {
    client
        .batch_execute("DELETE FROM filegc.tombstones WHERE state = 'done'")
        .expect("tombstones");
    client
        .batch_execute("VACUUM filegc.tombstones")
        .expect("VACUUM");
    let (mut paths, mut sizes, mut mtimes) = (Vec::new(), Vec::new(), Vec::new());
    for n in numbers {
        let spec = FileSpec::of(n, now);
        let mtime = spec
            .modified
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        paths.push(spec.name);
        sizes.push(spec.size as i64);
        mtimes.push(mtime);
    }
    let mut transaction = client.transaction().expect("BEGIN");
    let after: i64 = transaction
        .query_one("SELECT coalesce(max(id), 0) FROM filegc.tombstones", &[])
        .expect("tombstones")
        .get(0);
    transaction
        .execute(
            "INSERT INTO filegc.inventory (path, size_bytes, modified_at, first_seen_at, scan_id)
             SELECT f.path, f.size_bytes, to_timestamp(f.mtime), now(),
                    coalesce((SELECT max(id) FROM filegc.runs WHERE kind = 'scan'), 0)
               FROM unnest($1::text[], $2::int8[], $3::float8[]) AS f(path, size_bytes, mtime)
                 ON CONFLICT (path) DO NOTHING",
            &[&paths, &sizes, &mtimes],
        )
        .expect("inventory");
    transaction
        .execute(
            "INSERT INTO filegc.tombstones (path, reason, due_at)
             SELECT p, 'unreferenced', now() - interval '1 minute' FROM unnest($1::text[]) AS p",
            &[&paths],
        )
        .expect("tombstones");
    transaction.commit().expect("COMMIT");
    client
        .batch_execute("ANALYZE filegc.tombstones")
        .expect("ANALYZE");
    after
}

/// Insists that the sweep carried out every deletion it was given, as `outcome`.
pub fn check_swept(client: &mut Client, after: i64, count: u64, outcome: &str) {
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE state = 'done' AND outcome = $2)
               FROM filegc.tombstones WHERE id > $1",
            &[&after, &outcome],
        )
        .expect("tombstones");
    let (scheduled, done): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        (scheduled as u64, done as u64),
        (count, count),
        "bench: the sweep did not carry out every deletion as {outcome}"
    );
}
