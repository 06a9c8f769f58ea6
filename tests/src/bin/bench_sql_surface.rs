//! Benchmark of the SQL surface at volume scale: loads an inventory and the
//! application's references, then times `storage_stats` and a dry-run orphan
//! cleanup. Not a test: it asserts nothing and prints a Markdown table.
//!
//! Usage: bench_sql_surface [FILES] [REFERENCES] [RUNS]   (defaults 1000000 1000000 3)
//! Nine in ten files are referenced; the other references point at files that
//! are not on the volume, and the rest of the files are orphans.

use filegc_tests::cluster;
use postgres::Client;
use std::io::Write;
use std::time::{Duration, Instant};

fn arg(index: usize, default: u64) -> u64 {
    std::env::args()
        .nth(index)
        .map_or(default, |a| a.parse().expect("a whole number"))
}

fn timed(label: &str, work: impl FnOnce()) -> Duration {
    let start = Instant::now();
    work();
    let took = start.elapsed();
    eprintln!("{label}: {:.2} s", took.as_secs_f64());
    took
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn load_inventory(client: &mut Client, files: u64) {
    let scan: i64 = client
        .query_one("SELECT filegc.start_run('scan', 'bench', '/volume')", &[])
        .unwrap()
        .get(0);
    let mut copy = client
        .copy_in(
            "COPY filegc.inventory_staging (scan_id, path, size_bytes, modified_at) FROM STDIN",
        )
        .unwrap();
    // Sizes from 200 kB to 4 MB, mtimes spread over two years.
    for n in 0..files {
        let line = format!(
            "{scan}\tuser_{n}_{}.jpg\t{}\t{}\n",
            1_600_000_000 + n,
            200_000 + n % 3_800_000,
            date_after_2024_01_01(n % 730)
        );
        copy.write_all(line.as_bytes()).unwrap();
    }
    copy.finish().unwrap();
    client
        .execute("SELECT filegc.finish_scan($1)", &[&scan])
        .unwrap();
}

/// `2024-01-01 + day` as a timestamp literal.
fn date_after_2024_01_01(day: u64) -> String {
    let month_lengths = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let (mut year, mut remaining) = (2024, day);
    loop {
        let year_length = if year % 4 == 0 { 366 } else { 365 };
        if remaining < year_length {
            break;
        }
        remaining -= year_length;
        year += 1;
    }
    let mut month = 0;
    loop {
        let length = if month == 1 && year % 4 != 0 {
            28
        } else {
            month_lengths[month]
        };
        if remaining < length {
            break;
        }
        remaining -= length;
        month += 1;
    }
    format!("{year}-{:02}-{:02} 00:00:00+00", month + 1, remaining + 1)
}

fn main() {
    let files = arg(1, 1_000_000);
    let references = arg(2, 1_000_000);
    let runs = arg(3, 3) as usize;
    let db = cluster().create_database();
    let mut client = db.tracked_app();
    let referenced = files * 9 / 10;

    let insert_refs = timed("insert references (tracked, triggers on)", || {
        client
            .execute(
                "INSERT INTO facial_evaluations (user_id, image_path)
                 SELECT n, '/app/facial_evaluations/user_' || n || '_' || (1600000000 + n) || '.jpg'
                   FROM generate_series(0, $1::bigint - 1) n
                 UNION ALL
                 SELECT n, 'user_' || n || '_' || (1600000000 + n) || '.jpg'
                   FROM generate_series($2::bigint, $2::bigint + $3::bigint - $1::bigint - 1) n",
                &[
                    &(referenced as i64),
                    &(files as i64 + 1),
                    &(references as i64),
                ],
            )
            .unwrap();
    });
    let load = timed("load inventory (COPY + finish_scan)", || {
        load_inventory(&mut client, files)
    });
    client.batch_execute("VACUUM ANALYZE").unwrap();
    client
        .batch_execute("UPDATE filegc.settings SET value = '0' WHERE name = 'orphan_min_age'")
        .unwrap();

    let stats: Vec<Duration> = (0..runs)
        .map(|_| {
            timed("storage_stats", || {
                drop(
                    client
                        .query_one("SELECT * FROM filegc.storage_stats", &[])
                        .unwrap(),
                )
            })
        })
        .collect();
    let orphans: Vec<Duration> = (0..runs)
        .map(|_| {
            timed("cleanup_orphans(dry_run)", || {
                let n = client
                    .query("SELECT * FROM filegc.cleanup_orphans(dry_run => true)", &[])
                    .unwrap()
                    .len();
                assert_eq!(n as u64, files - referenced, "the benchmark's own data");
            })
        })
        .collect();

    println!("| case ({files} files, {references} references) | time |");
    println!("|---|---|");
    println!(
        "| insert the references, triggers on | {:.2} s |",
        insert_refs.as_secs_f64()
    );
    println!(
        "| load the inventory (COPY + finish_scan) | {:.2} s |",
        load.as_secs_f64()
    );
    println!(
        "| `SELECT * FROM filegc.storage_stats` (median of {runs}) | {:.2} s |",
        median(stats).as_secs_f64()
    );
    println!(
        "| `filegc.cleanup_orphans(dry_run => true)` (median of {runs}) | {:.2} s |",
        median(orphans).as_secs_f64()
    );
}
