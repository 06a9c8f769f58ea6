//! What tracking costs the application's writes: pgbench runs the same
//! transactions (tests/bench/trigger.pgbench) against the table untracked,
//! tracked by the extension, kept by a hand-written PL/pgSQL peer
//! (tests/bench/peer.sql), and tracked by the portable engine.
//!
//! The harness's cluster runs with fsync, full_page_writes and
//! synchronous_commit off, so that the triggers' CPU cost shows rather than
//! the disk's. Every run gets a fresh database whose table of deletions
//! already holds earlier ones, and the variants take turns within each run,
//! so that a slower moment of the machine hits them alike.

use std::path::Path;
use std::process::Command;

use filegc_tests::{cluster, TestDb};

use crate::measure::median;
use crate::report::{ratio, Row, Verdict};
use crate::setup::Bench;

/// How many transactions earlier the row each transaction deletes was inserted.
const LAG: u64 = 400;

/// Earlier deletions in the table that records them when a run starts.
pub const BACKLOG: i64 = 100_000;

/// The targets.
const MIN_RATIO_TO_UNTRACKED: f64 = 0.6;
const MIN_RATIO_TO_PEER: f64 = 1.5;
const MIN_RATIO_PORTABLE_TO_EXTENSION: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Untracked,
    Extension,
    Peer,
    Portable,
}

pub const VARIANTS: [Variant; 4] = [
    Variant::Untracked,
    Variant::Extension,
    Variant::Peer,
    Variant::Portable,
];

impl Variant {
    pub fn label(self) -> &'static str {
        match self {
            Variant::Untracked => "untracked",
            Variant::Extension => "tracked (extension)",
            Variant::Peer => "PL/pgSQL peer",
            Variant::Portable => "tracked (portable engine)",
        }
    }

    /// The table that records the deletions this variant schedules.
    fn tombstones(self) -> Option<&'static str> {
        match self {
            Variant::Untracked => None,
            Variant::Extension | Variant::Portable => Some("filegc.tombstones"),
            Variant::Peer => Some("peer_tombstones"),
        }
    }

    /// How many deletions this variant's table holds, once filegc's notes
    /// are turned into deletions; `None` untracked.
    pub fn scheduled_deletions(self, client: &mut postgres::Client) -> Option<i64> {
        let table = self.tombstones()?;
        if matches!(self, Variant::Extension | Variant::Portable) {
            // filegc's triggers write notes; the sweeper turns them into
            // tombstones, outside the application's transactions.
            client
                .batch_execute("SELECT filegc.process_notes()")
                .expect("processing the notes");
        }
        Some(
            client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .expect("count")
                .get(0),
        )
    }

    /// Fills the table of deletions with `BACKLOG` earlier ones, of other files.
    pub fn add_backlog(self, client: &mut postgres::Client) {
        let sql = match self {
            Variant::Untracked => return,
            Variant::Extension | Variant::Portable => {
                "INSERT INTO filegc.tombstones (path, reason, state, outcome, bytes_freed, due_at, finished_at)
                 SELECT format('user_%s_%s.jpg', n / 20 + 1, 1600000000 + n), 'unreferenced', 'done', 'deleted',
                        0, now() - interval '1 day', now() - interval '1 day'
                   FROM generate_series(1, $1::bigint) AS n"
            }
            Variant::Peer => {
                "INSERT INTO peer_tombstones (path, created_at, due_at)
                 SELECT format('user_%s_%s.jpg', n / 20 + 1, 1600000000 + n), now() - interval '1 day', now()
                   FROM generate_series(1, $1::bigint) AS n"
            }
        };
        client.execute(sql, &[&BACKLOG]).expect("the backlog");
    }

    /// A new database with the application's tables, set up for this variant.
    pub fn database(self) -> TestDb {
        let db = cluster().create_plain_database();
        let mut client = db.connect();
        match self {
            Variant::Untracked => db.create_app_schema(),
            Variant::Extension => {
                client
                    .batch_execute("CREATE EXTENSION filegc")
                    .expect("CREATE EXTENSION filegc (run make install first)");
                drop(db.tracked_app());
            }
            Variant::Peer => {
                db.create_app_schema();
                client
                    .batch_execute(include_str!("../../../bench/peer.sql"))
                    .expect("tests/bench/peer.sql");
            }
            Variant::Portable => {
                let mut transaction = client.transaction().expect("BEGIN");
                transaction
                    .batch_execute(&filegc_sweeper::portable::install_script())
                    .expect("the portable install");
                transaction.commit().expect("COMMIT");
                drop(db.tracked_app());
            }
        }
        db
    }
}

pub fn run(bench: &mut Bench) {
    let clients = bench.options.clients;
    // A multiple of the clients, so that each client deletes its own rows.
    let lag = LAG.div_ceil(clients) * clients;
    let mut tps: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    for _ in 0..bench.options.runs {
        for (index, variant) in VARIANTS.into_iter().enumerate() {
            let db = variant.database();
            let mut client = db.connect();
            // The rows trigger.pgbench would have inserted before the run.
            client
                .execute(
                    "INSERT INTO facial_evaluations (id, user_id, image_path, secondary_image_path)
                     SELECT id, id / 20 + 1,
                            format('/app/facial_evaluations/user_%s_%s.jpg', id / 20 + 1, 1700000000 + id),
                            format('/app/facial_evaluations/user_%s_%s_2.jpg', id / 20 + 1, 1700000000 + id)
                       FROM generate_series(0, $1::bigint - 1) AS id",
                    &[&(lag as i64)],
                )
                .expect("the first rows");
            // A database in use, not a new one: with an empty table of
            // deletions the planner picks sequential scans for the
            // triggers' statements and keeps them until autovacuum analyzes
            // the table, at a moment that differs from run to run.
            variant.add_backlog(&mut client);
            client.batch_execute("VACUUM ANALYZE").expect("VACUUM");
            client.batch_execute("CHECKPOINT").expect("CHECKPOINT");
            bench.quiet();
            let result = pgbench(&db, bench.options.pgbench_seconds, clients, lag);
            eprintln!(
                "bench: pgbench, {}: {:.0} tps ({} transactions)",
                variant.label(),
                result.tps,
                result.transactions
            );
            check(&mut client, variant, clients, lag, result.transactions);
            tps[index].push(result.tps);
        }
    }

    let [untracked, extension, peer, portable] = [0, 1, 2, 3].map(|index| median(&tps[index]));
    let load = format!(
        "pgbench, {clients} clients, {} s",
        bench.options.pgbench_seconds
    );
    let rows = [
        (
            format!("trigger overhead: tracked vs untracked ({load})"),
            extension,
            format!("{untracked:.0} tps (untracked)"),
            untracked,
            format!("at least {MIN_RATIO_TO_UNTRACKED}x"),
            Verdict::of(extension / untracked >= MIN_RATIO_TO_UNTRACKED),
        ),
        (
            format!("trigger vs a hand-written PL/pgSQL peer ({load})"),
            extension,
            format!("{peer:.0} tps (peer)"),
            peer,
            format!("at least {MIN_RATIO_TO_PEER}x"),
            Verdict::of(extension / peer >= MIN_RATIO_TO_PEER),
        ),
        (
            format!("portable engine vs the extension ({load})"),
            portable,
            format!("{extension:.0} tps (extension)"),
            extension,
            format!("at least {MIN_RATIO_PORTABLE_TO_EXTENSION}x"),
            Verdict::of(portable / extension >= MIN_RATIO_PORTABLE_TO_EXTENSION),
        ),
    ];
    for (case, filegc, baseline, base, target, verdict) in rows {
        bench.report.row(Row {
            case,
            filegc: format!("{filegc:.0} tps"),
            baseline,
            ratio: ratio(filegc, base),
            target,
            verdict,
        });
    }
    for (variant, runs) in VARIANTS.iter().zip(&tps) {
        let shown: Vec<String> = runs.iter().map(|tps| format!("{tps:.0}")).collect();
        bench.report.detail(format!(
            "pgbench, {}, each run: {} tps",
            variant.label(),
            shown.join(", ")
        ));
    }
    bench.report.detail(format!(
        "portable engine against untracked: {}, against the peer: {}",
        ratio(portable, untracked),
        ratio(portable, peer)
    ));
}

/// What one pgbench run reported.
struct PgbenchResult {
    tps: f64,
    transactions: u64,
}

fn pgbench(db: &TestDb, seconds: u64, clients: u64, lag: u64) -> PgbenchResult {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/trigger.pgbench");
    let mut pgbench = Command::new(cluster().bin_dir().join("pgbench"));
    pgbench
        .args(["--no-vacuum", "--protocol=prepared", "--host=127.0.0.1"])
        .arg(format!("--port={}", cluster().port()))
        .arg("--username=postgres")
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={}", clients.min(cores)))
        .arg(format!("--time={seconds}"))
        .arg(format!("--define=clients={clients}"))
        .arg(format!("--define=lag={lag}"))
        .arg(format!("--define=k={}", lag / clients))
        .arg("--file")
        .arg(&script)
        .arg(db.name());
    let output = pgbench
        .output()
        .unwrap_or_else(|e| panic!("bench: cannot run {pgbench:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        panic!(
            "bench: pgbench failed ({}): {pgbench:?}\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let field = |prefix: &str| -> &str {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("bench: no {prefix:?} in pgbench's output:\n{stdout}"))
    };
    let failed: u64 = field("number of failed transactions: ")
        .parse()
        .expect("a count");
    assert_eq!(failed, 0, "bench: pgbench transactions failed:\n{stdout}");
    PgbenchResult {
        tps: field("tps = ").parse().expect("a rate"),
        transactions: field("number of transactions actually processed: ")
            .parse()
            .expect("a count"),
    }
}

/// Insists that every committed transaction deleted the row it was to delete
/// and, where deletions are scheduled, scheduled its two images.
fn check(client: &mut postgres::Client, variant: Variant, clients: u64, lag: u64, reported: u64) {
    let (clients, lag) = (clients as i64, lag as i64);
    // Client c's rows are c, c + clients, ...; the newest lag / clients of
    // each client's rows remain, so the newest tells how many it committed.
    let committed: i64 = client
        .query_one(
            "SELECT coalesce(sum((newest - c) / $1 + 1 - $2 / $1), 0)::bigint
               FROM (SELECT id % $1 AS c, max(id) AS newest
                       FROM facial_evaluations GROUP BY 1) AS per_client",
            &[&clients, &lag],
        )
        .expect("rows per client")
        .get(0);
    let rows: i64 = client
        .query_one("SELECT count(*) FROM facial_evaluations", &[])
        .expect("count")
        .get(0);
    assert_eq!(
        rows,
        lag,
        "bench: {}: a transaction missed the row it was to delete",
        variant.label()
    );
    if committed as u64 != reported {
        eprintln!(
            "bench: {}: pgbench reported {reported} transactions, the table shows {committed} committed",
            variant.label()
        );
    }
    if let Some(scheduled) = variant.scheduled_deletions(client) {
        assert_eq!(
            scheduled - BACKLOG,
            2 * committed,
            "bench: {}: not every deleted image was scheduled",
            variant.label()
        );
    }
}
