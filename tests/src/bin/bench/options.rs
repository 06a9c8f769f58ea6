//! The benchmark's parameters, as `--name value` pairs on the command line.

use std::path::PathBuf;
use std::time::Duration;

/// What `bench --help` and a usage error print.
pub const USAGE: &str = "\
usage: bench [--files N] [--sweep-files N] [--references N] [--runs N]
             [--pgbench-seconds N] [--clients N] [--bulk-rows N]
             [--bucket-files N] [--bucket-listing-files N]
             [--cases scan,sweep,orphans,trigger,bulk,bucket]
             [--filegc PATH]

  --files N            files on the generated volume (default 1000000)
  --sweep-files N      due deletions one sweep carries out (default 200000)
  --references N       rows that reference a file (default 1000000)
  --runs N             timed runs of each case; the table shows medians (default 3)
  --pgbench-seconds N  length of one pgbench run (default 60)
  --clients N          pgbench clients (default 4)
  --bulk-rows N        rows one bulk INSERT and DELETE write and remove (default 100000)
  --bucket-files N     due deletions of the bucket case's sweeps, in moto's S3 server (default 5000)
  --bucket-listing-files N
                       objects of the bucket case's listing (default 100000)
  --cases LIST         which cases to run (default all: scan,sweep,orphans,trigger,bulk,bucket)
  --quiet-wait N       seconds each timed run waits for other processes to leave
                       the CPUs idle (default 10; 0 neither waits nor counts)
  --filegc PATH        the filegc binary to measure (default: a debug build made now)";

/// One group of measurements that can be run on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// `filegc scan` against `find`, and its peak memory at two volume sizes.
    Scan,
    /// `filegc sweep`, with and without the trash, against `find -delete`.
    Sweep,
    /// `storage_stats` and the dry-run orphan cleanup at volume scale.
    Orphans,
    /// pgbench: untracked, tracked (extension), a PL/pgSQL peer, the portable engine.
    Trigger,
    /// One bulk INSERT and one bulk DELETE: the same four variants as the trigger case.
    Bulk,
    /// A bucket in moto's S3 server: the sweep against a batched deletion, the scan against a bare listing.
    Bucket,
}

impl Case {
    const ALL: [Case; 6] = [
        Case::Scan,
        Case::Sweep,
        Case::Orphans,
        Case::Trigger,
        Case::Bulk,
        Case::Bucket,
    ];

    fn name(self) -> &'static str {
        match self {
            Case::Scan => "scan",
            Case::Sweep => "sweep",
            Case::Orphans => "orphans",
            Case::Trigger => "trigger",
            Case::Bulk => "bulk",
            Case::Bucket => "bucket",
        }
    }
}

/// The sizes and cases of one benchmark run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files on the generated volume.
    pub files: u64,
    /// Due deletions one sweep carries out.
    pub sweep_files: u64,
    /// Rows that reference a file.
    pub references: u64,
    /// Timed runs of each case.
    pub runs: usize,
    /// Length of one pgbench run.
    pub pgbench_seconds: u64,
    /// pgbench clients.
    pub clients: u64,
    /// Rows of the bulk statements.
    pub bulk_rows: u64,
    /// Objects of the bucket case's sweeps.
    pub bucket_files: u64,
    /// Objects of the bucket case's listing.
    pub bucket_listing_files: u64,
    /// The cases to run, in the order given.
    pub cases: Vec<Case>,
    /// The filegc binary; `None` builds one.
    pub filegc: Option<PathBuf>,
    /// How long each timed run waits for a quiet machine.
    pub quiet_wait: Duration,
}

impl Options {
    /// Reads the options; an error says which one is wrong and why.
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut options = Options {
            files: 1_000_000,
            sweep_files: 200_000,
            references: 1_000_000,
            runs: 3,
            pgbench_seconds: 60,
            clients: 4,
            bulk_rows: 100_000,
            bucket_files: 5_000,
            bucket_listing_files: 100_000,
            cases: Case::ALL.to_vec(),
            filegc: None,
            quiet_wait: Duration::from_secs(10),
        };
        while let Some(name) = args.next() {
            if name == "--help" || name == "-h" {
                return Err(String::new());
            }
            let value = args.next().ok_or_else(|| format!("{name} needs a value"))?;
            match name.as_str() {
                "--files" => options.files = count(&name, &value, 1)?,
                "--sweep-files" => options.sweep_files = count(&name, &value, 1)?,
                "--references" => options.references = count(&name, &value, 0)?,
                "--runs" => options.runs = count(&name, &value, 1)? as usize,
                "--pgbench-seconds" => options.pgbench_seconds = count(&name, &value, 1)?,
                "--clients" => options.clients = count(&name, &value, 1)?,
                "--bulk-rows" => options.bulk_rows = count(&name, &value, 1)?,
                "--bucket-files" => options.bucket_files = count(&name, &value, 1)?,
                "--bucket-listing-files" => options.bucket_listing_files = count(&name, &value, 1)?,
                "--cases" => options.cases = cases(&value)?,
                "--filegc" => options.filegc = Some(PathBuf::from(value)),
                "--quiet-wait" => {
                    options.quiet_wait = Duration::from_secs(count(&name, &value, 0)?)
                }
                _ => return Err(format!("unknown option {name}")),
            }
        }
        Ok(options)
    }
}

fn count(name: &str, value: &str, at_least: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if n >= at_least => Ok(n),
        _ => Err(format!(
            "{name} takes a whole number of at least {at_least}, not {value:?}"
        )),
    }
}

fn cases(list: &str) -> Result<Vec<Case>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            Case::ALL
                .into_iter()
                .find(|case| case.name() == name)
                .ok_or_else(|| {
                    format!(
                        "--cases: no case {name:?} (there are scan, sweep, orphans, trigger, bulk, bucket)"
                    )
                })
        })
        .collect()
}
