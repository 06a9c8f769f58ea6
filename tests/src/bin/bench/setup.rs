//! What the cases share: a working folder, the filegc binary, the generated
//! volume, and the database whose rows reference it. Each is made when a
//! case first needs it and reused by the cases and runs after it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use filegc_tests::fixtures::{APP_COLUMNS, PREFIX};
use filegc_tests::sweeper::filegc_command;
use filegc_tests::{cluster, TestDb};
use postgres::Client;

use crate::data::{self, References};
use crate::measure::{self, seconds};
use crate::options::Options;
use crate::report::{thousands, Report};

/// Outside any home directory, like the harness's clusters: the volume must
/// be where every user that runs the benchmark can write.
const WORK_PARENT: &str = "/var/tmp";

/// The shared state of one benchmark run; removes its folder when dropped.
pub struct Bench {
    /// The sizes and cases.
    pub options: Options,
    /// The filegc binary under measurement.
    pub filegc: PathBuf,
    /// What the benchmark found so far.
    pub report: Report,
    dir: PathBuf,
    now: SystemTime,
    volume: Option<PathBuf>,
    db: Option<TestDb>,
    scanned: bool,
    timed_runs: u32,
    busy_starts: u32,
}

impl Bench {
    /// A new run with an empty working folder.
    pub fn new(options: Options, filegc: PathBuf, report: Report) -> Bench {
        let dir = Path::new(WORK_PARENT).join(format!("filegc-bench-{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .unwrap_or_else(|e| panic!("bench: cannot clear {}: {e}", dir.display()));
        }
        fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("bench: cannot create {}: {e}", dir.display()));
        Bench {
            options,
            filegc,
            report,
            dir,
            now: SystemTime::now(),
            volume: None,
            db: None,
            scanned: false,
            timed_runs: 0,
            busy_starts: 0,
        }
    }

    /// A path in the working folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The time the generated files' ages count from.
    pub fn now(&self) -> SystemTime {
        self.now
    }

    /// Before a timed run: waits for the machine to be quiet, and counts the
    /// runs that had to start while it was not.
    pub fn quiet(&mut self) {
        if self.options.quiet_wait.is_zero() {
            return;
        }
        self.timed_runs += 1;
        if !measure::wait_for_quiet(self.options.quiet_wait) {
            self.busy_starts += 1;
        }
    }

    /// Adds how many timed runs started on a busy machine to the details.
    pub fn report_busy_starts(&mut self) {
        if self.timed_runs == 0 {
            return;
        }
        self.report.detail(format!(
            "{} of {} timed runs started while other processes kept the CPUs busy \
             (each waited up to {} s for a quiet second first)",
            self.busy_starts,
            self.timed_runs,
            self.options.quiet_wait.as_secs()
        ));
    }

    /// The volume of `--files` files, generated on first use.
    pub fn volume(&mut self) -> PathBuf {
        if let Some(volume) = &self.volume {
            return volume.clone();
        }
        let volume = self.path("volume");
        let files = self.options.files;
        let took = measure::time(|| data::create_files(&volume, 0..files, self.now));
        self.report.detail(format!(
            "generating the volume ({} sparse files): {}",
            thousands(files),
            seconds(took)
        ));
        self.volume = Some(volume.clone());
        volume
    }

    /// The database with the application's rows referencing the volume, made on first use.
    pub fn db(&mut self) -> &TestDb {
        if self.db.is_none() {
            let db = cluster().create_database();
            self.load_references(&db);
            self.db = Some(db);
        }
        self.db.as_ref().expect("made above")
    }

    /// A database of its own with the application's columns tracked and no
    /// rows: a bucket is another place than the volume, and a database
    /// serves one place.
    pub fn empty_tracked_db(&self) -> TestDb {
        let db = cluster().create_database();
        db.create_app_schema();
        let mut client = db.connect();
        for (table, column) in APP_COLUMNS {
            client
                .execute(
                    "SELECT filegc.track($1::text::regclass, $2::text::name, ARRAY[$3::text])",
                    &[&table, &column, &PREFIX],
                )
                .unwrap_or_else(|e| panic!("bench: tracking {table}.{column}: {e}"));
        }
        db
    }

    /// The database, after one scan of the volume has filled its inventory.
    pub fn scanned_db(&mut self) -> &TestDb {
        if !self.scanned {
            let volume = self.volume();
            let url = self.db().url();
            let first = measure::run(
                &mut self.filegc_command(&volume, &url, &["scan"]),
                "filegc scan",
            );
            self.scanned = true;
            self.report.detail(format!(
                "first scan of the volume (empty inventory): {}",
                seconds(first.wall)
            ));
        }
        self.db.as_ref().expect("scanned above")
    }

    /// The filegc binary with a volume, a database and no terminal.
    pub fn filegc_command(&self, volume: &Path, url: &str, args: &[&str]) -> Command {
        let mut command = filegc_command(&self.filegc, volume, url);
        command.args(["--worker", "bench", "--quiet"]).args(args);
        command
    }

    /// Loads the references with the tracking off, then tracks the columns:
    /// building the indexes once is how a large table is tracked, and far
    /// quicker than a trigger per row.
    fn load_references(&mut self, db: &TestDb) {
        let references = References::new(self.options.files, self.options.references);
        let mut client = db.connect();
        db.create_app_schema();
        let loaded = measure::time(|| copy_references(&mut client, &references));
        // The sweep and the scans record their functions' times, to show where they spend theirs.
        client
            .batch_execute(&format!(
                "ALTER DATABASE {} SET track_functions = 'pl'",
                db.name()
            ))
            .expect("track_functions");
        let tracked = measure::time(|| {
            for (table, column) in APP_COLUMNS {
                client
                    .execute(
                        "SELECT filegc.track($1::text::regclass, $2::text::name, ARRAY[$3::text])",
                        &[&table, &column, &PREFIX],
                    )
                    .unwrap_or_else(|e| panic!("bench: tracking {table}.{column}: {e}"));
            }
            client.batch_execute("VACUUM ANALYZE").expect("VACUUM");
        });
        self.report.detail(format!(
            "loading {} references (COPY, untracked): {}; tracking the four columns (index builds) and VACUUM ANALYZE: {}",
            thousands(self.options.references),
            seconds(loaded),
            seconds(tracked)
        ));
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("bench: cannot remove {}: {e}", self.dir.display());
        }
    }
}

fn copy_references(client: &mut Client, references: &References) {
    let mut copy = client
        .copy_in("COPY facial_evaluations (user_id, image_path) FROM STDIN")
        .expect("COPY");
    let mut buffer = Vec::with_capacity(1 << 16);
    for n in references.numbers() {
        writeln!(
            buffer,
            "{}\t{}",
            data::user_id(n),
            References::stored_value(n)
        )
        .expect("writing to a Vec");
        if buffer.len() >= 1 << 16 {
            copy.write_all(&buffer).expect("COPY");
            buffer.clear();
        }
    }
    copy.write_all(&buffer).expect("COPY");
    copy.finish().expect("COPY");
}

/// Clears the database's statistics, so that [`function_times`] counts from here.
pub fn reset_function_times(client: &mut Client) {
    client
        .batch_execute("SELECT pg_stat_reset()")
        .expect("pg_stat_reset");
}

/// The total time spent in each of filegc's PL/pgSQL functions `names` since
/// the last reset, once every other session of the database has ended.
pub fn function_times(client: &mut Client, names: &[&str]) -> Vec<(String, Duration)> {
    // A backend reports its counts as it exits, before it leaves
    // pg_stat_activity: once the sweeper's or scanner's session is gone
    // from there, its counts are in.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let others: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()
                    AND backend_type = 'client backend'",
                &[],
            )
            .expect("pg_stat_activity")
            .get(0);
        if others == 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    client
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .expect("pg_stat_clear_snapshot");
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    client
        .query(
            "SELECT f.name,
                    coalesce((SELECT sum(s.total_time) FROM pg_stat_user_functions s
                               WHERE s.schemaname = 'filegc' AND s.funcname = f.name), 0)::float8
               FROM unnest($1::text[]) WITH ORDINALITY AS f(name, position)
              ORDER BY f.position",
            &[&names],
        )
        .expect("pg_stat_user_functions")
        .iter()
        .map(|row| {
            let milliseconds: f64 = row.get(1);
            (row.get(0), Duration::from_secs_f64(milliseconds / 1000.0))
        })
        .collect()
}
