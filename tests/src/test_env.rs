//! The environment of every test that runs the sweeper: a database with the
//! application tracked, and a volume enclosed in a folder of canary files, so
//! that a test can show that nothing outside the volume root is ever touched.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use postgres::Client;
use tempfile::TempDir;

use crate::fixtures::PREFIX;
use crate::sweeper::{filegc_bin, filegc_command, succeeded, Running};
use crate::{cluster, eventually, Cluster, TestDb};

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

/// The name the binary gives itself in the run records, unless a test names another.
const WORKER: &str = "test-sweeper";

/// How long a `filegc run` gets to finish its first scan.
const LISTEN_DEADLINE: Duration = Duration::from_secs(10);

/// A database with the application tracked, a volume at `<enclosure>/volume`,
/// and canary files around it in `<enclosure>`.
pub struct TestEnv {
    /// The test's database.
    pub db: TestDb,
    /// A superuser connection to it.
    pub client: Client,
    /// The volume's root.
    pub volume: PathBuf,
    /// The folder that holds the volume and the canaries; removed on drop.
    enclosure: TempDir,
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

impl TestEnv {
    /// A fresh database (deletions and orphans due at once) and an empty volume among canaries.
    pub fn new() -> TestEnv {
        TestEnv::on(cluster())
    }

    /// Like [`TestEnv::new`], with the database on `cluster` (a private one, for tests that stop it).
    pub fn on(cluster: &Cluster) -> TestEnv {
        let db = cluster.create_database();
        let mut client = db.tracked_app();
        client
            .batch_execute(
                "UPDATE filegc.settings SET value = '0' WHERE name IN ('unreferenced_delay', 'orphan_min_age')",
            )
            .expect("settings");
        let enclosure = tempfile::Builder::new()
            .prefix("filegc-enclosure-")
            .tempdir_in("/var/tmp")
            .expect("a temporary folder");
        let volume = enclosure.path().join("volume");
        fs::create_dir(&volume).expect("creating the volume");
        let env = TestEnv {
            db,
            client,
            volume,
            enclosure,
        };
        for canary in CANARIES {
            env.write_outside(canary, &canary_text(canary));
        }
        env
    }

    /// The absolute path of `rel` under the volume root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.volume.join(rel)
    }

    /// The absolute path of `rel` under the folder that holds the volume.
    pub fn outside(&self, rel: &str) -> PathBuf {
        self.enclosure.path().join(rel)
    }

    /// Writes `contents` to `rel` under the volume root, creating its folders.
    pub fn write(&self, rel: &str, contents: &str) {
        write_file(&self.path(rel), contents.as_bytes());
    }

    /// Writes a file of `size` bytes under the volume root, last modified `days_ago` days ago.
    pub fn write_aged(&self, rel: &str, size: usize, days_ago: u64) {
        let path = self.path(rel);
        write_file(&path, &vec![b'x'; size]);
        let modified = SystemTime::now() - Duration::from_secs(days_ago * 86_400 + 60);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }

    /// Writes `contents` to `rel` under the folder that holds the volume.
    pub fn write_outside(&self, rel: &str, contents: &str) {
        write_file(&self.outside(rel), contents.as_bytes());
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

    /// Whether `rel` is a file in the volume root (not in the trash).
    pub fn on_volume(&self, rel: &str) -> bool {
        self.path(rel).is_file()
    }

    /// Whether the trash holds a copy of `rel`.
    pub fn in_trash(&self, rel: &str) -> bool {
        self.path(&format!(".filegc-trash/{rel}")).is_file()
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

    /// Inserts a row that references `rel` (stored with the application's prefix).
    pub fn reference(&mut self, rel: &str) {
        self.client
            .execute(
                "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, $1)",
                &[&format!("{PREFIX}{rel}")],
            )
            .unwrap();
    }

    /// Deletes the rows that reference `rel`, which schedules its deletion.
    pub fn unreference(&mut self, rel: &str) {
        self.client
            .execute(
                "DELETE FROM facial_evaluations WHERE image_path = $1",
                &[&format!("{PREFIX}{rel}")],
            )
            .unwrap();
    }

    /// Changes a setting.
    pub fn set(&mut self, name: &str, value: &str) {
        self.client
            .execute(
                "UPDATE filegc.settings SET value = $1 WHERE name = $2",
                &[&value, &name],
            )
            .unwrap_or_else(|e| panic!("setting {name} to {value}: {e:?}"));
    }

    /// One value from the database.
    pub fn query_i64(&mut self, sql: &str) -> i64 {
        self.client
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .get(0)
    }

    /// The outcome the audit trail records for `rel`'s latest deletion.
    pub fn outcome(&mut self, rel: &str) -> Option<String> {
        self.client
            .query_opt(
                "SELECT outcome FROM filegc.deletions WHERE path = $1 ORDER BY id DESC LIMIT 1",
                &[&rel],
            )
            .unwrap()
            .and_then(|row| row.get(0))
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

    /// The binary with this environment's volume, database and worker, no terminal.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_as(&self.db.url(), WORKER, args)
    }

    /// Like [`TestEnv::command`], with another database URL (another role's, or one that cannot be reached).
    pub fn command_on(&self, database_url: &str, args: &[&str]) -> Command {
        self.command_as(database_url, WORKER, args)
    }

    /// Like [`TestEnv::command_on`], with another worker name too.
    pub fn command_as(&self, database_url: &str, worker: &str, args: &[&str]) -> Command {
        let mut command = filegc_command(filegc_bin(), &self.volume, database_url);
        command.args(["--worker", worker]).args(args);
        command
    }

    /// Runs the binary to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running filegc")
    }

    /// Runs the binary and insists on exit status 0; returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        succeeded(args, &self.run(args))
    }

    /// Runs the binary on a pseudo-terminal (util-linux `script`), typing `input`; stdout is the screen.
    pub fn run_on_terminal(&self, args: &[&str], input: &[u8]) -> Output {
        run_command_on_terminal(&self.command(args), input)
    }

    /// Starts `filegc ARGS` in the background, as the superuser.
    pub fn start(&self, args: &[&str]) -> Running {
        Running::spawn(self.command(args))
    }

    /// Starts `filegc ARGS` in the background with another database URL and worker name.
    pub fn start_as(&self, database_url: &str, worker: &str, args: &[&str]) -> Running {
        Running::spawn(self.command_as(database_url, worker, args))
    }

    /// Waits until a `filegc run` has finished its first scan: it listens from then on.
    pub fn wait_until_listening(&self, running: &mut Running) {
        let mut client = self.db.connect();
        let scanned = eventually(LISTEN_DEADLINE, || {
            assert!(
                running.is_running(),
                "filegc run exited:\n{}",
                running.log()
            );
            client
                .query_one(
                    "SELECT count(*) FROM filegc.runs WHERE kind = 'scan' AND finished_at IS NOT NULL",
                    &[],
                )
                .map(|row| row.get::<_, i64>(0) > 0)
                .unwrap_or(false)
        });
        assert!(scanned, "no scan finished:\n{}", running.log());
    }
}

/// Runs `inner` on a pseudo-terminal (util-linux `script`), with its
/// environment, typing `input`; stdout is the screen, where stdout and
/// stderr both land.
pub fn run_command_on_terminal(inner: &Command, input: &[u8]) -> Output {
    let quoted =
        |word: &std::ffi::OsStr| format!("'{}'", word.to_string_lossy().replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(inner.get_program())
        .chain(inner.get_args())
        .map(quoted)
        .collect();
    let mut terminal = Command::new("script");
    terminal.args(["-qec", &line.join(" "), "/dev/null"]);
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => terminal.env(key, value),
            None => terminal.env_remove(key),
        };
    }
    let mut child = terminal
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input)
        .expect("typing into the terminal");
    child
        .wait_with_output()
        .expect("running filegc on a terminal")
}

fn canary_text(rel: &str) -> String {
    format!("canary {rel}\n")
}

fn write_file(path: &Path, contents: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}
