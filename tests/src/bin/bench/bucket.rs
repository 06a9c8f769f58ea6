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

/// Bytes per object: deletions and listings do not read them.
const OBJECT_BYTES: usize = 100;

pub fn run(bench: &mut Bench) {
    let count = bench.options.bucket_files;
    let server = S3Server::start();
    server.create_bucket(BUCKET);
    let first = References::new(bench.options.files, bench.options.references).unused_from();
    let numbers = first..first + count;
    let now = bench.now();
    let names: Vec<String> = numbers.clone().map(|n| FileSpec::of(n, now).name).collect();
    let keys: Vec<String> = names.iter().map(|name| format!("{PREFIX}{name}")).collect();
    let db = bench.empty_tracked_db();
    let url = db.url();
    let mut client = db.connect();
    let storage = format!("s3://{BUCKET}/{PREFIX}");
    let filegc = |bench: &Bench, args: &[&str]| {
        let mut command = bucket_command(
            &bench.filegc,
            &server,
            &url,
            &storage,
            &["--worker", "bench", "--quiet"],
        );
        command.args(args);
        command
    };
    let fill = |bench: &mut Bench, what: &str| {
        let took = measure::time(|| server.put_many(BUCKET, &keys, OBJECT_BYTES));
        bench.report.detail(format!(
            "writing {} objects into the bucket ({what}): {}",
            thousands(count),
            seconds(took)
        ));
    };

    let (mut scans, mut listings) = (Vec::new(), Vec::new());
    let mut sweeps: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut deletes = Vec::new();
    for run in 0..bench.options.runs {
        fill(
            bench,
            &format!("run {}, listing and sweep without the trash", run + 1),
        );
        bench.quiet();
        scans.push(measure::run(&mut filegc(bench, &["scan"]), "filegc scan of a bucket").wall);
        bench.quiet();
        let (listed, took) = timed(|| server.count_listed(BUCKET, PREFIX));
        assert_eq!(listed, count, "bench: the bare listing missed keys");
        listings.push(took);

        for (index, (args, outcome)) in [
            (&["sweep", "--no-trash"][..], "deleted"),
            (&["sweep"][..], "trashed"),
        ]
        .into_iter()
        .enumerate()
        {
            if index == 1 {
                fill(bench, &format!("run {}, sweep into the trash", run + 1));
                // Listed, as the first sweep's objects were: each deletion takes the version the listing saw.
                measure::run(&mut filegc(bench, &["scan"]), "filegc scan of a bucket");
            }
            let after = schedule(&mut client, numbers.clone(), now);
            bench.quiet();
            sweeps[index]
                .push(measure::run(&mut filegc(bench, args), "filegc sweep of a bucket").wall);
            check_swept(&mut client, after, count, outcome);
        }
        // The trash's copies go first, so that the bucket holds the keys alone again.
        let trashed: Vec<String> = names
            .iter()
            .map(|name| format!("{PREFIX}.filegc-trash/{name}"))
            .collect();
        server.delete_batched(BUCKET, &trashed);
        fill(bench, &format!("run {}, bare batched deletion", run + 1));
        bench.quiet();
        let ((), took) = timed(|| server.delete_batched(BUCKET, &keys));
        assert_eq!(
            server.count_listed(BUCKET, PREFIX),
            0,
            "bench: the batched deletion left keys"
        );
        deletes.push(took);
    }

    let (scan, listing) = (median(&scans), median(&listings));
    bench.report.row(Row {
        case: format!("scan of a bucket of {} objects (moto)", thousands(count)),
        filegc: seconds(scan),
        baseline: format!("{} (bare paginated listing)", seconds(listing)),
        ratio: ratio(scan.as_secs_f64(), listing.as_secs_f64()),
        target: format!("at most {MAX_LISTING_RATIO}x"),
        verdict: Verdict::of(scan.as_secs_f64() / listing.as_secs_f64() <= MAX_LISTING_RATIO),
    });
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
        "bucket: scan each run {} s, bare listing {} s, batched deletion {} s",
        each_run(&scans),
        each_run(&listings),
        each_run(&deletes)
    ));
}

fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = work();
    (value, started.elapsed())
}
