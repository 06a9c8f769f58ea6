//! The reports at volume scale: `filegc.storage_stats` and the dry-run orphan
//! cleanup, over the inventory a real scan of the volume made and the rows
//! that reference it.

use std::time::Duration;

use crate::data::References;
use crate::measure::{self, each_run, median, seconds};
use crate::report::{thousands, Row, Verdict};
use crate::setup::Bench;

/// The target for each report.
const MAX_SECONDS: f64 = 2.0;

pub fn run(bench: &mut Bench) {
    let (files, references) = (bench.options.files, bench.options.references);
    let orphans = References::new(files, references).orphans();
    let mut client = bench.scanned_db().connect();
    // The files were first seen moments ago; without this none is eligible.
    client
        .batch_execute("UPDATE filegc.settings SET value = '0' WHERE name = 'orphan_min_age'")
        .expect("settings");
    client.batch_execute("VACUUM ANALYZE").expect("VACUUM");

    let (mut stats, mut cleanups) = (Vec::new(), Vec::new());
    for _ in 0..bench.options.runs {
        bench.quiet();
        stats.push(measure::time(|| {
            client
                .query_one("SELECT * FROM filegc.storage_stats", &[])
                .expect("storage_stats");
        }));
        bench.quiet();
        cleanups.push(measure::time(|| {
            let listed = client
                .query("SELECT * FROM filegc.cleanup_orphans(dry_run => true)", &[])
                .expect("cleanup_orphans")
                .len() as u64;
            assert_eq!(listed, orphans, "bench: the orphans of the generated data");
        }));
    }
    let scale = format!(
        "{} files, {} references",
        thousands(files),
        thousands(references)
    );
    for (case, runs) in [
        (
            format!("`SELECT * FROM filegc.storage_stats`, {scale}"),
            &stats,
        ),
        (
            format!("`filegc.cleanup_orphans(dry_run => true)`, {scale}"),
            &cleanups,
        ),
    ] {
        let took: Duration = median(runs);
        bench.report.row(Row {
            case,
            filegc: seconds(took),
            baseline: String::new(),
            ratio: String::new(),
            target: format!("under {MAX_SECONDS} s"),
            verdict: Verdict::of(took.as_secs_f64() < MAX_SECONDS),
        });
    }
    bench.report.detail(format!(
        "`storage_stats`, each run: {} s; `cleanup_orphans(dry_run => true)` ({} orphans), each run: {} s",
        each_run(&stats),
        thousands(orphans),
        each_run(&cleanups)
    ));
}
