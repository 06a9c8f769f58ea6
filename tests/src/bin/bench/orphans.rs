//! The reports at volume scale: `filegc.storage_stats` and the dry-run orphan
//! cleanup, over the inventory a real scan of the volume made and the rows
//! that reference it; and `filegc orphans` with its fresh look at the volume
//! against the old tool's way of finding the orphans
//! (tests/bench/old_tool_orphans.py).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use filegc_tests::cluster;

use crate::data::References;
use crate::measure::{self, each_run, median, seconds};
use crate::report::{mib, ratio, thousands, Row, Verdict};
use crate::setup::Bench;

/// The targets: each report, and `filegc orphans` against the old tool's method.
const MAX_SECONDS: f64 = 1.0;
const MAX_RATIO_TO_OLD_TOOL: f64 = 1.0;
const MAX_MEMORY_SHARE_OF_OLD_TOOL: f64 = 0.25;

/// The old tool's method, as a script.
const OLD_TOOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/old_tool_orphans.py");

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
    against_the_old_tool(bench, orphans);
}

/// `filegc orphans --json` (its fresh look at the volume) against the old tool's
/// method on the same volume and database: wall time and peak memory.
fn against_the_old_tool(bench: &mut Bench, orphans: u64) {
    let volume = bench.volume();
    let url = bench.scanned_db().url();
    let psql = cluster().bin_dir().join("psql");
    let found = old_tool_count(&volume, &psql, &url);
    assert_eq!(
        found, orphans,
        "bench: the old tool's method finds the generated orphans"
    );

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..bench.options.runs {
        bench.quiet();
        ours.push(measure::run(
            &mut bench.filegc_command(&volume, &url, &["orphans", "--json"]),
            "filegc orphans",
        ));
        bench.quiet();
        theirs.push(measure::run(
            &mut old_tool(&volume, &psql, &url),
            "the old tool's method",
        ));
    }
    let walls = |runs: &[measure::Measured]| runs.iter().map(|m| m.wall).collect::<Vec<_>>();
    let peak = |runs: &[measure::Measured]| runs.iter().map(|m| m.max_rss_kib).max().unwrap_or(0);
    let (our_walls, their_walls) = (walls(&ours), walls(&theirs));
    let (our_time, their_time) = (median(&our_walls), median(&their_walls));
    let (our_peak, their_peak) = (peak(&ours), peak(&theirs));
    bench.report.row(Row {
        case: format!(
            "`filegc orphans --json` with its fresh look at the volume, {} files",
            thousands(bench.options.files)
        ),
        filegc: seconds(our_time),
        baseline: format!("{} (the old tool's method)", seconds(their_time)),
        ratio: ratio(our_time.as_secs_f64(), their_time.as_secs_f64()),
        target: format!("at most {MAX_RATIO_TO_OLD_TOOL}x"),
        verdict: Verdict::of(
            our_time.as_secs_f64() <= MAX_RATIO_TO_OLD_TOOL * their_time.as_secs_f64(),
        ),
    });
    bench.report.row(Row {
        case: "`filegc orphans --json` peak RSS".into(),
        filegc: mib(our_peak),
        baseline: format!("{} (the old tool's method)", mib(their_peak)),
        ratio: ratio(our_peak as f64, their_peak as f64),
        target: format!(
            "at most {:.0} % of it",
            MAX_MEMORY_SHARE_OF_OLD_TOOL * 100.0
        ),
        verdict: Verdict::of(our_peak as f64 <= MAX_MEMORY_SHARE_OF_OLD_TOOL * their_peak as f64),
    });
    bench.report.detail(format!(
        "`filegc orphans --json`, each run: {} s; the old tool's method: {} s",
        each_run(&our_walls),
        each_run(&their_walls)
    ));
}

fn old_tool(volume: &Path, psql: &Path, url: &str) -> Command {
    let mut command = Command::new("python3");
    command.arg(OLD_TOOL).arg(volume).arg(psql).arg(url);
    command
}

/// The orphans the old tool's method finds, counted from its output.
fn old_tool_count(volume: &Path, psql: &Path, url: &str) -> u64 {
    let output = old_tool(volume, psql, url)
        .output()
        .expect("running the old tool's method");
    assert!(
        output.status.success(),
        "bench: the old tool's method failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .and_then(|count| count.parse().ok())
        .expect("the old tool's method prints the count of orphans")
}
