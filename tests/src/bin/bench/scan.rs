//! `filegc scan` against `find` reading the same warm directory, and the
//! scan's peak memory at a tenth of the volume and at all of it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use filegc_tests::cluster;

use crate::data;
use crate::measure::{self, each_run, median, seconds, Measured};
use crate::report::{mib, ratio, thousands, Row, Verdict};
use crate::setup::{function_times, reset_function_times, Bench};

/// The targets.
const MAX_RATIO_TO_FIND: f64 = 1.5;
const MAX_RSS_KIB: u64 = 64 * 1024;

pub fn run(bench: &mut Bench) {
    let files = bench.options.files;
    let small_files = (files / 10).max(1);
    let volume = bench.volume();
    let small_volume = bench.path("volume-small");
    data::create_files(&small_volume, 0..small_files, bench.now());
    let small_db = cluster().create_database();
    drop(small_db.tracked_app());
    let url = bench.scanned_db().url();
    // The timed runs all read a warm cache: the first scan warmed the large
    // volume, and these warm the rest.
    find(&volume);
    find(&small_volume);
    measure::run(
        &mut bench.filegc_command(&small_volume, &small_db.url(), &["scan"]),
        "filegc scan",
    );
    reset_function_times(&mut bench.db().connect());

    let (mut scans, mut finds, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    let (mut small_scans, mut small_finds, mut small_rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..bench.options.runs {
        bench.quiet();
        finds.push(find(&volume).wall);
        bench.quiet();
        let large = scan(bench, &volume, &url);
        scans.push(large.wall);
        rss.push(large.max_rss_kib);
        bench.quiet();
        small_finds.push(find(&small_volume).wall);
        bench.quiet();
        let small = scan(bench, &small_volume, &small_db.url());
        small_scans.push(small.wall);
        small_rss.push(small.max_rss_kib);
    }

    let (scan_time, find_time) = (median(&scans), median(&finds));
    let scan_ratio = scan_time.as_secs_f64() / find_time.as_secs_f64();
    bench.report.row(Row {
        case: format!(
            "scan {} files into the inventory (a rescan)",
            thousands(files)
        ),
        filegc: seconds(scan_time),
        baseline: format!("{} (`find -printf`)", seconds(find_time)),
        ratio: ratio(scan_time.as_secs_f64(), find_time.as_secs_f64()),
        target: format!("at most {MAX_RATIO_TO_FIND}x"),
        verdict: Verdict::of(scan_ratio <= MAX_RATIO_TO_FIND),
    });
    let (peak, small_peak) = (
        *rss.iter().max().expect("runs"),
        *small_rss.iter().max().expect("runs"),
    );
    // "No growth": the tenfold volume may cost a tenth more, for allocator noise.
    let flat = peak <= small_peak + small_peak / 10;
    bench.report.row(Row {
        case: format!(
            "scan peak RSS at {} / {} files",
            thousands(small_files),
            thousands(files)
        ),
        filegc: format!("{} / {}", mib(small_peak), mib(peak)),
        baseline: String::new(),
        ratio: ratio(peak as f64, small_peak as f64),
        target: "under 64 MiB at both, no growth".into(),
        verdict: Verdict::of(peak < MAX_RSS_KIB && small_peak < MAX_RSS_KIB && flat),
    });

    bench.report.detail(format!(
        "scan of {} files, each run: {} s; `find`: {} s",
        thousands(files),
        each_run(&scans),
        each_run(&finds)
    ));
    bench.report.detail(format!(
        "scan of {} files: {} against `find` {} ({})",
        thousands(small_files),
        seconds(median(&small_scans)),
        seconds(median(&small_finds)),
        ratio(
            median(&small_scans).as_secs_f64(),
            median(&small_finds).as_secs_f64()
        )
    ));
    let per_scan = function_times(&mut bench.db().connect(), &["finish_scan", "report_volume"]);
    let runs = bench.options.runs as f64;
    let shown: Vec<String> = per_scan
        .iter()
        .map(|(name, total)| {
            format!(
                "`filegc.{name}` {}",
                seconds(Duration::from_secs_f64(total.as_secs_f64() / runs))
            )
        })
        .collect();
    bench.report.detail(format!(
        "in each scan of {} files, the database's share: {}",
        thousands(files),
        shown.join(", ")
    ));
}

fn scan(bench: &Bench, volume: &Path, url: &str) -> Measured {
    measure::run(
        &mut bench.filegc_command(volume, url, &["scan"]),
        "filegc scan",
    )
}

/// `find` listing what the inventory records: size, mtime and path of every file.
fn find(volume: &Path) -> Measured {
    let mut find = Command::new("find");
    find.arg(volume)
        .args(["-type", "f", "-printf", "%s %T@ %P\\n"]);
    measure::run(&mut find, "find")
}
