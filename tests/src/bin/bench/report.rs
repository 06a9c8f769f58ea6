//! The Markdown the benchmark prints: where and when it ran, one row per
//! target, and the details behind the rows.

use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::options::Options;

/// One compared measurement and its target.
pub struct Row {
    /// What was measured.
    pub case: String,
    /// filegc's median.
    pub filegc: String,
    /// The baseline's median, with its name; empty when there is none.
    pub baseline: String,
    /// filegc against the baseline; empty when there is none.
    pub ratio: String,
    /// The target as the performance issue states it.
    pub target: String,
    /// `met`, `missed` or `reported`.
    pub verdict: Verdict,
}

/// Whether a row meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The target holds.
    Met,
    /// The target does not hold.
    Missed,
    /// There is no target, only a figure to report.
    Reported,
}

impl Verdict {
    /// `Met` when `holds`, else `Missed`.
    pub fn of(holds: bool) -> Verdict {
        if holds {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }

    fn word(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::Reported => "reported",
        }
    }
}

/// What the benchmark found, printed at the end.
pub struct Report {
    heading: Vec<String>,
    rows: Vec<Row>,
    details: Vec<String>,
}

impl Report {
    /// A report headed by the date, the machine, the server and the sizes.
    pub fn new(options: &Options, server_version: &str) -> Report {
        let cases: Vec<String> = options
            .cases
            .iter()
            .map(|case| format!("{case:?}").to_lowercase())
            .collect();
        Report {
            heading: vec![
                format!("## filegc benchmark, {}", today()),
                String::new(),
                format!(
                    "{}; PostgreSQL {server_version}; release build; the median of {} run{}.",
                    machine(),
                    options.runs,
                    if options.runs == 1 { "" } else { "s" }
                ),
                format!(
                    "FILES={} SWEEP_FILES={} REFERENCES={} RUNS={} PGBENCH_SECONDS={} CLIENTS={} BULK_ROWS={} BUCKET_FILES={} BUCKET_LISTING_FILES={} CASES={}",
                    options.files,
                    options.sweep_files,
                    options.references,
                    options.runs,
                    options.pgbench_seconds,
                    options.clients,
                    options.bulk_rows,
                    options.bucket_files,
                    options.bucket_listing_files,
                    cases.join(",")
                ),
            ],
            rows: Vec::new(),
            details: Vec::new(),
        }
    }

    /// Adds a row to the main table.
    pub fn row(&mut self, row: Row) {
        eprintln!(
            "bench: {}: {} {} {} ({})",
            row.case,
            row.filegc,
            row.baseline,
            row.ratio,
            row.verdict.word()
        );
        self.rows.push(row);
    }

    /// Adds a line under the table: a per-run figure or a breakdown.
    pub fn detail(&mut self, line: String) {
        eprintln!("bench: {line}");
        self.details.push(line);
    }

    /// Prints the report as Markdown on stdout.
    pub fn print(&self, total: Duration) {
        for line in &self.heading {
            println!("{line}");
        }
        println!();
        println!("| case | filegc | baseline | ratio | target | |");
        println!("|---|---|---|---|---|---|");
        for row in &self.rows {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                row.case,
                row.filegc,
                row.baseline,
                row.ratio,
                row.target,
                row.verdict.word()
            );
        }
        println!();
        for line in &self.details {
            println!("- {line}");
        }
        let secs = total.as_secs();
        println!();
        println!(
            "The whole benchmark took {} min {} s.",
            secs / 60,
            secs % 60
        );
    }
}

/// `a / b` as a ratio the tables show.
pub fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}

/// A count with thousands separators: 1,000,000.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// KiB as MiB, as the tables show them.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / 86_400) as i64;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year}-{month:02}-{day:02}")
}

/// Cores, processor, memory and kernel, from /proc.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown processor", |(_, model)| model.trim())
        .to_owned();
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({model}), {:.1} GiB memory, Linux {}",
        memory_kib as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(300), "300");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
