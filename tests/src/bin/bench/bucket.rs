//! A bucket (moto's S3 server): `filegc sweep` of due deletions, with and
//! without the trash, against the bare batched deletion of the same keys
//! (DeleteObjects, 1,000 keys a request), and `filegc scan` of the bucket
//! against a bare paginated listing of it.
//!
//! The database is one of its own, with no rows: a database serves one
//! place, and the volume cases' is the volume's. moto is a Python server on
//! the same two cores, so every request costs
//! what moto takes to answer it: the ratios say how many requests, and how
//! much work between them, filegc spends against the least a client could.

use std::time::{Duration, Instant};

use filegc_tests::s3_server::{bucket_command, S3Server};

use crate::data::{FileSpec, References};
use crate::measure::{self, each_run, median, seconds};
use crate::report::{ratio, thousands, Row, Verdict};
use crate::setup::Bench;
use crate::sweep::{check_swept, schedule};

/// The target for a sweep without the trash.
const MAX_SWEEP_RATIO: f64 = 2.0;

/// The target for the listing.
const MAX_LISTING_RATIO: f64 = 1.3;

const BUCKET: &str = "bench";
const PREFIX: &str = "facial_evaluations/";

/// Requests the sweep sends at once (its files worked on together).
const SWEEP_REQUESTS_AT_ONCE: usize = 16;

/// Bytes per object: deletions and listings do not read them.
const OBJECT_BYTES: usize = 100;

pub fn run(bench: &mut Bench) {
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let db = bench.empty_tracked_db();
    let mut client = db.connect();
    let bucket = Bucket {
        server: &server,
        url: db.url(),
        storage: format!("s3://{BUCKET}/{PREFIX}"),
        first: References::new(bench.options.files, bench.options.references).unused_from(),
        now: bench.now(),
    };
    listing(bench, &bucket);
    sweeps(bench, &bucket, &mut client);
}

/// The bucket both halves of the case share: one database serves one place,
/// so the listing and the sweeps use the same bucket and prefix in turn.
struct Bucket<'a> {
    server: &'a S3Server,
    url: String,
    storage: String,
    /// The first file number no reference uses.
    first: u64,
    now: std::time::SystemTime,
}

impl Bucket<'_> {
    fn filegc(&self, bench: &Bench, args: &[&str]) -> std::process::Command {
        let mut command = bucket_command(
            &bench.filegc,
            self.server,
            &self.url,
            &self.storage,
            &["--worker", "bench", "--quiet"],
        );
        command.args(args);
        command
    }

    /// The names of `count` unreferenced files, from the first unused number.
    fn names(&self, count: u64) -> Vec<String> {
        (self.first..self.first + count)
            .map(|n| FileSpec::of(n, self.now).name)
            .collect()
    }

    fn fill(&self, bench: &mut Bench, keys: &[String], what: &str) {
        let took = measure::time(|| self.server.put_many(BUCKET, keys, OBJECT_BYTES));
        bench.report.detail(format!(
            "writing {} objects into the bucket ({what}): {}",
            thousands(keys.len() as u64),
            seconds(took)
        ));
    }

    /// Empties the prefix with batched deletions and checks that it is empty.
    fn empty(&self, keys: &[String]) -> Duration {
        let ((), took) = timed(|| self.server.delete_batched(BUCKET, keys));
        assert_eq!(
            self.server.count_listed(BUCKET, PREFIX),
            0,
            "bench: the batched deletion left keys"
        );
        took
    }
}

fn keys_of(names: &[String], folder: &str) -> Vec<String> {
    names.iter().map(|name| format!("{folder}{name}")).collect()
}

/// `filegc scan` of the bucket against a bare paginated listing, each run,
/// on one filling of the bucket: neither changes it.
fn listing(bench: &mut Bench, bucket: &Bucket) {
    let count = bench.options.bucket_listing_files;
    let keys = keys_of(&bucket.names(count), PREFIX);
    bucket.fill(bench, &keys, "the listing's");
    let (mut scans, mut listings) = (Vec::new(), Vec::new());
    for _ in 0..bench.options.runs {
        bench.quiet();
        scans.push(
            measure::run(
                &mut bucket.filegc(bench, &["scan"]),
                "filegc scan of a bucket",
            )
            .wall,
        );
        bench.quiet();
        let (listed, took) = timed(|| bucket.server.count_listed(BUCKET, PREFIX));
        assert_eq!(listed, count, "bench: the bare listing missed keys");
        listings.push(took);
    }
    bucket.empty(&keys);

    let (scan, listing) = (median(&scans), median(&listings));
    bench.report.row(Row {
        case: format!("scan of a bucket of {} objects (moto)", thousands(count)),
        filegc: seconds(scan),
        baseline: format!("{} (bare paginated listing)", seconds(listing)),
        ratio: ratio(scan.as_secs_f64(), listing.as_secs_f64()),
        target: format!("at most {MAX_LISTING_RATIO}x"),
        verdict: Verdict::of(scan.as_secs_f64() / listing.as_secs_f64() <= MAX_LISTING_RATIO),
    });
    bench.report.detail(format!(
        "bucket: scan each run {} s, bare listing {} s",
        each_run(&scans),
        each_run(&listings)
    ));
}

/// `filegc sweep` of due deletions, with and without the trash, against the
/// bare batched deletion of the same keys.
fn sweeps(bench: &mut Bench, bucket: &Bucket, client: &mut postgres::Client) {
    let count = bench.options.bucket_files;
    let numbers = bucket.first..bucket.first + count;
    let names = bucket.names(count);
    let keys = keys_of(&names, PREFIX);
    let mut sweeps: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let (mut deletes, mut deletes_each) = (Vec::new(), Vec::new());
    for run in 0..bench.options.runs {
        for (index, (args, outcome, what)) in [
            (
                &["sweep", "--no-trash"][..],
                "deleted",
                "sweep without the trash",
            ),
            (&["sweep"][..], "trashed", "sweep into the trash"),
        ]
        .into_iter()
        .enumerate()
        {
            bucket.fill(bench, &keys, &format!("run {}, {what}", run + 1));
            // Listed first: each deletion takes the version the listing saw.
            measure::run(
                &mut bucket.filegc(bench, &["scan"]),
                "filegc scan of a bucket",
            );
            let after = schedule(client, numbers.clone(), bucket.now);
            bench.quiet();
            sweeps[index].push(
                measure::run(&mut bucket.filegc(bench, args), "filegc sweep of a bucket").wall,
            );
            check_swept(client, after, count, outcome);
        }
        // The trash's copies go first, so that the bucket holds the keys alone again.
        bucket.empty(&keys_of(&names, &format!("{PREFIX}.filegc-trash/")));
        bucket.fill(
            bench,
            &keys,
            &format!("run {}, bare batched deletion", run + 1),
        );
        bench.quiet();
        deletes.push(bucket.empty(&keys));
        bucket.fill(
            bench,
            &keys,
            &format!("run {}, bare deletion object by object", run + 1),
        );
        bench.quiet();
        let ((), took) = timed(|| {
            bucket
                .server
                .delete_each(BUCKET, &keys, SWEEP_REQUESTS_AT_ONCE)
        });
        assert_eq!(
            bucket.server.count_listed(BUCKET, PREFIX),
            0,
            "bench: the deletion object by object left keys"
        );
        deletes_each.push(took);
    }

    let delete = median(&deletes);
    for (index, label) in ["`--no-trash`", "into the trash (a copy, then a deletion)"]
        .into_iter()
        .enumerate()
    {
        let took = median(&sweeps[index]);
        let sweep_ratio = took.as_secs_f64() / delete.as_secs_f64();
        bench.report.row(Row {
            case: format!(
                "sweep of {} due deletions in a bucket (moto), {label}",
                thousands(count)
            ),
            filegc: seconds(took),
            baseline: format!("{} (DeleteObjects, 1,000 keys a request)", seconds(delete)),
            ratio: ratio(took.as_secs_f64(), delete.as_secs_f64()),
            target: if index == 0 {
                format!("at most {MAX_SWEEP_RATIO}x")
            } else {
                "reported".to_owned()
            },
            verdict: if index == 0 {
                Verdict::of(sweep_ratio <= MAX_SWEEP_RATIO)
            } else {
                Verdict::Reported
            },
        });
        bench.report.detail(format!(
            "bucket sweep {label}, each run: {} s",
            each_run(&sweeps[index])
        ));
    }
    bench.report.detail(format!(
        "bucket: batched deletion each run {} s",
        each_run(&deletes)
    ));
    let (sweep, each) = (median(&sweeps[0]), median(&deletes_each));
    bench.report.detail(format!(
        "bucket: a bare DELETE per object, {SWEEP_REQUESTS_AT_ONCE} at once as the sweep sends them, \
         each run {} s; the sweep `--no-trash` is {} of its median ({})",
        each_run(&deletes_each),
        ratio(sweep.as_secs_f64(), each.as_secs_f64()),
        seconds(each)
    ));
}

fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = work();
    (value, started.elapsed())
}
