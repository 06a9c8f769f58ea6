//! Support for the reliability suite (`tests/tests/reliability_*.rs`): a
//! volume enclosed in a folder of canary files, so a test can show that
//! nothing outside the volume root is ever touched.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, SystemTime};

use postgres::Client;
use tempfile::TempDir;

use crate::sweeper::filegc_bin;
use crate::{cluster, TestDb};

/// A database with the application's columns tracked, and a superuser connection to it.
pub fn tracked_database() -> (TestDb, Client) {
    let db = cluster().create_database();
    let admin = db.tracked_app();
    (db, admin)
}

/// How many deletions of `path` `filegc.pending` shows (those the triggers
/// noted moments ago included).
pub fn pending_deletions(client: &mut Client, path: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM filegc.pending WHERE path = $1",
            &[&path],
        )
        .expect("reading filegc.pending")
        .get(0)
}

/// The path rules the extension and the sweeper share, for checks at the Rust level.
pub use filegc_path_rules as path_rules;

/// Canary files, relative to the folder that holds the volume: what a
/// reference climbing out of the root would reach.
pub const CANARIES: [&str; 6] = [
    "passwd",
    "etc/passwd",
    "b",
    "sibling/x.jpg",
    "volume2/x.jpg",
    "secret.jpg",
];

/// A database with the application tracked, a volume at `<outer>/volume`,
/// and canary files around it in `<outer>`.
pub struct EnclosedVolume {
    /// The test's database.
    pub db: TestDb,
    /// A superuser connection to it.
    pub client: Client,
    /// The folder that holds the volume and the canaries.
    pub outer: TempDir,
    /// The volume's root, `<outer>/volume`.
    pub volume: PathBuf,
}

impl EnclosedVolume {
    /// A fresh database (deletions and orphans due at once) and an empty volume among canaries.
    pub fn new() -> EnclosedVolume {
        let db = cluster().create_database();
        let mut client = db.tracked_app();
        client
            .batch_execute(
                "UPDATE filegc.settings SET value = '0' WHERE name IN ('unreferenced_delay', 'orphan_min_age')",
            )
            .expect("settings");
        let outer = tempfile::Builder::new()
            .prefix("filegc-enclosure-")
            .tempdir_in("/var/tmp")
            .expect("a temporary folder");
        let volume = outer.path().join("volume");
        fs::create_dir(&volume).unwrap();
        let enclosed = EnclosedVolume {
            db,
            client,
            outer,
            volume,
        };
        for canary in CANARIES {
            enclosed.write_outside(canary, &canary_text(canary));
        }
        enclosed
    }

    /// The absolute path of `rel` under the volume root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.volume.join(rel)
    }

    /// The absolute path of `rel` under the folder that holds the volume.
    pub fn outside(&self, rel: &str) -> PathBuf {
        self.outer.path().join(rel)
    }

    /// Writes `contents` to `rel` under the volume root, creating its folders.
    pub fn write(&self, rel: &str, contents: &str) {
        write_file(&self.path(rel), contents);
    }

    /// Writes `contents` to `rel` under the folder that holds the volume.
    pub fn write_outside(&self, rel: &str, contents: &str) {
        write_file(&self.outside(rel), contents);
    }

    /// Panics unless every canary still holds its original text.
    pub fn assert_canaries_intact(&self) {
        for canary in CANARIES {
            let path = self.outside(canary);
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("canary {} is gone: {e}", path.display()));
            assert_eq!(
                text,
                canary_text(canary),
                "canary {} changed",
                path.display()
            );
        }
    }

    /// The binary with this volume and database, no terminal.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(filegc_bin());
        command
            .arg("--volume")
            .arg(&self.volume)
            .arg("--database-url")
            .arg(self.db.url())
            .arg("--worker")
            .arg("reliability")
            .env_remove("DATABASE_URL")
            .env_remove("FILEGC_VOLUME")
            .env_remove("RAILWAY_VOLUME_MOUNT_PATH")
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs the binary to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running filegc")
    }

    /// A connection as the application's role `app`.
    pub fn app(&self) -> Client {
        self.db.connect_as("app")
    }

    /// Inserts a row of `facial_evaluations` whose `image_path` holds `value`, as the application.
    pub fn insert_row(&self, user_id: i64, value: &str) {
        self.app()
            .execute(
                "INSERT INTO facial_evaluations (user_id, image_path) VALUES ($1, $2)",
                &[&user_id, &value],
            )
            .unwrap_or_else(|e| panic!("inserting a row holding {value:?}: {e}"));
    }

    /// Whether `rel` is a file in the volume root (not in the trash).
    pub fn on_volume(&self, rel: &str) -> bool {
        self.path(rel).is_file()
    }

    /// Whether the trash holds a copy of `rel`.
    pub fn in_trash(&self, rel: &str) -> bool {
        self.path(&format!(".filegc-trash/{rel}")).is_file()
    }

    /// Runs the binary and insists on exit status 0; returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "filegc {args:?}: {}",
            describe_output(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The values of `filegc.invalid_refs`.
    pub fn invalid_values(&mut self) -> BTreeSet<String> {
        self.client
            .query("SELECT value FROM filegc.invalid_refs", &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    }
}

impl Default for EnclosedVolume {
    fn default() -> Self {
        EnclosedVolume::new()
    }
}

/// The exit code, stdout and stderr of a run, for assertion messages.
pub fn describe_output(output: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn canary_text(rel: &str) -> String {
    format!("canary {rel}\n")
}

fn write_file(path: &Path, contents: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// Whether the long forms of the reliability scenarios run: `FILEGC_SOAK=1`, as `make soak` sets it.
pub fn soak() -> bool {
    std::env::var("FILEGC_SOAK").is_ok_and(|value| value == "1")
}

pub use crate::eventually;

/// A small pseudo-random generator (xorshift64*): random enough for
/// choosing operations and kill points, and replayable from its seed.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `FILEGC_SEED`, or else from the clock; prints
    /// the seed so that a failing run can be replayed.
    pub fn seeded(label: &str) -> Rng {
        let seed = std::env::var("FILEGC_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{label}: FILEGC_SEED={seed}");
        Rng::new(seed)
    }

    /// A generator with this seed.
    pub fn new(seed: u64) -> Rng {
        // xorshift never leaves 0: any other starting state will do.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`; `n` must not be 0.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// A `filegc` process in the background, its stderr in a temporary file;
/// killed if a test ends without it having exited.
pub struct Background {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Background {
    /// Starts `command` with stdout discarded and stderr going to the log.
    pub fn spawn(mut command: Command) -> Background {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let child = command
            .stdout(Stdio::null())
            .stderr(fs::File::create(log.path()).expect("opening the log"))
            .spawn()
            .expect("starting filegc");
        Background { child, log }
    }

    /// What the process wrote to stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("polling filegc").is_none()
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill only sends a signal to our own child process.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }

    /// Waits for the exit, which must come within `within`.
    pub fn exit_status(&mut self, within: Duration) -> ExitStatus {
        let mut status = None;
        let exited = eventually(within, || {
            status = self.child.try_wait().expect("polling filegc");
            status.is_some()
        });
        assert!(exited, "filegc did not exit:\n{}", self.log());
        status.unwrap()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether a process with this id exists.
pub fn pid_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Every tombstone of the database as (path, state, outcome, restored), in id order.
pub fn tombstones(client: &mut Client) -> Vec<Tombstone> {
    client
        .query(
            "SELECT path, state, outcome, restored_at IS NOT NULL, attempts FROM filegc.tombstones ORDER BY id",
            &[],
        )
        .expect("reading filegc.tombstones")
        .iter()
        .map(|row| Tombstone {
            path: row.get(0),
            state: row.get(1),
            outcome: row.get(2),
            restored: row.get(3),
            attempts: row.get(4),
        })
        .collect()
}

/// One row of `filegc.tombstones`, as the reliability checks read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The path relative to the volume root.
    pub path: String,
    /// pending, claimed, done, cancelled or failed.
    pub state: String,
    /// The outcome of a done tombstone.
    pub outcome: Option<String>,
    /// Whether the trashed file was brought back.
    pub restored: bool,
    /// How many times a sweeper claimed it.
    pub attempts: i32,
}

impl Tombstone {
    /// Whether this tombstone took the file off the disk and it stayed off:
    /// outcome `trashed` or `deleted`, not restored since.
    pub fn removed_file(&self) -> bool {
        matches!(self.outcome.as_deref(), Some("trashed" | "deleted")) && !self.restored
    }
}

/// The regular files directly under `dir`, by name (the trash folder is not one).
pub fn files_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .expect("listing a folder")
        .map(|entry| entry.expect("a folder entry"))
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .map(|entry| entry.file_name().into_string().expect("a UTF-8 name"))
        .collect()
}

/// What the sweeper's final check says of `path` at this moment: a deletion
/// of it, claimed by the worker `final-check`, is checked by
/// `filegc.check_before_delete` in a transaction that is then rolled back,
/// and cancelled afterwards (an open deletion of the path is cancelled
/// first). `Err` carries the message of a check that refused to run.
pub fn final_verdict(client: &mut Client, path: &str) -> Result<String, String> {
    client
        .execute(
            "UPDATE filegc.tombstones SET state = 'cancelled', finished_at = now() \
              WHERE path = $1 AND state IN ('pending', 'claimed')",
            &[&path],
        )
        .expect("cancelling open deletions");
    let id: i64 = client
        .query_one(
            "INSERT INTO filegc.tombstones (path, reason, due_at, state, claimed_by, lease_until, attempts) \
             VALUES ($1, 'manual', now(), 'claimed', 'final-check', now() + interval '1 hour', 1) RETURNING id",
            &[&path],
        )
        .expect("a claimed deletion")
        .get(0);
    let mut transaction = client.transaction().expect("a transaction");
    let verdict = transaction
        .query_one(
            "SELECT verdict FROM filegc.check_before_delete('final-check', ARRAY[$1::bigint])",
            &[&id],
        )
        .map(|row| row.get::<_, String>(0))
        .map_err(|error| said(&error));
    transaction.rollback().expect("rolling back the check");
    client
        .execute(
            "UPDATE filegc.tombstones SET state = 'cancelled', finished_at = now() WHERE id = $1",
            &[&id],
        )
        .expect("cancelling the checked deletion");
    verdict
}

/// The message (and hint) of a statement that must fail.
pub fn error_of(client: &mut Client, sql: &str) -> String {
    let error = client
        .batch_execute(sql)
        .expect_err(&format!("{sql} must fail"));
    said(&error)
}

/// What a failed statement told its client: message, detail and hint.
fn said(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "{} {} {}",
            db.message(),
            db.detail().unwrap_or_default(),
            db.hint().unwrap_or_default()
        ),
        None => error.to_string(),
    }
}
