//! `make bench`: filegc against its baselines, on data it generates.
//!
//! - scan: `filegc scan` of a flat volume against `find -printf` reading the
//!   same warm directory, and the scan's peak memory at two volume sizes;
//! - sweep: `filegc sweep` of due deletions, with and without the trash,
//!   against `find -delete` unlinking the same files;
//! - orphans: `filegc.storage_stats` and the dry-run orphan cleanup at volume scale;
//! - trigger: pgbench throughput untracked, tracked, against a hand-written
//!   PL/pgSQL peer, and with the portable engine;
//! - bulk: one INSERT and one DELETE of many rows under the same four variants;
//! - bucket: `filegc sweep` and `filegc scan` of a bucket in moto's S3 server,
//!   against a batched deletion and a bare listing of the same keys.
//!
//! Not a test: it checks that every case did its work on the data, never how
//! long it took, and prints a Markdown table of medians and ratios against
//! the performance targets. Progress goes to stderr.

mod bucket;
mod bulk;
mod data;
mod measure;
mod options;
mod orphans;
mod report;
mod scan;
mod setup;
mod sweep;
mod trigger;

use std::process::ExitCode;
use std::time::Instant;

use filegc_tests::cluster;
use filegc_tests::sweeper::filegc_bin;

use crate::options::{Case, Options, USAGE};
use crate::report::Report;
use crate::setup::Bench;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args
        .first()
        .is_some_and(|first| first == measure::PEAK_MEMORY_OF)
    {
        return measure::peak_memory_of(&args[1..]);
    }
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(problem) if problem.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("bench: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let filegc = options
        .filegc
        .clone()
        .unwrap_or_else(|| filegc_bin().to_owned());
    let server_version: String = cluster()
        .create_plain_database()
        .connect()
        .query_one("SHOW server_version", &[])
        .expect("SHOW server_version")
        .get(0);
    let report = Report::new(&options, &server_version);
    let mut bench = Bench::new(options, filegc, report);
    for case in bench.options.cases.clone() {
        eprintln!("bench: case {case:?}");
        match case {
            Case::Scan => scan::run(&mut bench),
            Case::Sweep => sweep::run(&mut bench),
            Case::Orphans => orphans::run(&mut bench),
            Case::Trigger => trigger::run(&mut bench),
            Case::Bulk => bulk::run(&mut bench),
            Case::Bucket => bucket::run(&mut bench),
        }
    }
    bench.report_busy_starts();
    bench.report.print(started.elapsed());
    ExitCode::SUCCESS
}
