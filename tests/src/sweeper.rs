//! A test environment for the `filegc` binary: a database with the
//! application tracked, a temporary volume, and the real binary to run.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::{cluster, eventually, fixtures, Cluster, TestDb};
use postgres::Client;
use tempfile::TempDir;

/// The `filegc` binary, built once per test process.
pub fn filegc_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // A target folder of its own, so this build never waits on the lock
        // of the `cargo test` that runs it.
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/sweeper-bin");
        escargot::CargoBuild::new()
            .package("filegc-sweeper")
            .bin("filegc")
            .manifest_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("../sweeper/Cargo.toml"))
            .target_dir(target)
            .run()
            .expect("building the filegc binary")
            .path()
            .to_owned()
    })
}

/// A database with the application tracked, and an empty volume.
pub struct SweeperEnv {
    /// The test's database.
    pub db: TestDb,
    /// A superuser connection to it.
    pub client: Client,
    /// The volume's root.
    pub volume: TempDir,
}

impl Default for SweeperEnv {
    fn default() -> Self {
        SweeperEnv::new()
    }
}

impl SweeperEnv {
    /// A fresh database and volume; deletions and orphans are due at once.
    pub fn new() -> SweeperEnv {
        SweeperEnv::on(cluster())
    }

    /// Like [`SweeperEnv::new`], with the database on the given cluster.
    pub fn on(cluster: &Cluster) -> SweeperEnv {
        let db = cluster.create_database();
        let mut client = db.tracked_app();
        client
            .batch_execute(
                "UPDATE filegc.settings SET value = '0' WHERE name IN ('unreferenced_delay', 'orphan_min_age')",
            )
            .expect("settings");
        let volume = tempfile::Builder::new()
            .prefix("filegc-volume-")
            .tempdir_in("/var/tmp")
            .expect("a temporary volume");
        SweeperEnv { db, client, volume }
    }

    /// The absolute path of `rel` on the volume.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.volume.path().join(rel)
    }

    /// Writes a file of `size` bytes last modified `days_ago` days ago.
    pub fn write(&self, rel: &str, size: usize, days_ago: u64) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, vec![b'x'; size]).unwrap();
        let modified = SystemTime::now() - Duration::from_secs(days_ago * 86_400 + 60);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }

    /// Inserts a row that references `rel` (stored with the application's prefix).
    pub fn reference(&mut self, rel: &str) {
        self.client
            .execute(
                "INSERT INTO facial_evaluations (user_id, image_path) VALUES (1, $1)",
                &[&format!("{}{rel}", fixtures::PREFIX)],
            )
            .unwrap();
    }

    /// Deletes the rows that reference `rel`, which schedules its deletion.
    pub fn unreference(&mut self, rel: &str) {
        self.client
            .execute(
                "DELETE FROM facial_evaluations WHERE image_path = $1",
                &[&format!("{}{rel}", fixtures::PREFIX)],
            )
            .unwrap();
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

    /// The binary with this environment's volume, database and worker, no terminal.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_on(&self.db.url(), args)
    }

    /// Like [`SweeperEnv::command`], with another database URL (for one that cannot be reached).
    pub fn command_on(&self, database_url: &str, args: &[&str]) -> Command {
        let mut command = Command::new(filegc_bin());
        // The global options go first, so that `run -- CMD ARGS` can end the line.
        command
            .arg("--volume")
            .arg(self.volume.path())
            .arg("--database-url")
            .arg(database_url)
            .arg("--worker")
            .arg("test-sweeper")
            .env_remove("DATABASE_URL")
            .env_remove("FILEGC_VOLUME")
            .env_remove("RAILWAY_VOLUME_MOUNT_PATH")
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs the binary on a pseudo-terminal (util-linux `script`), typing `input`; stdout is the screen.
    pub fn run_on_terminal(&self, args: &[&str], input: &[u8]) -> Output {
        let quoted = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
        let volume = self.volume.path().display().to_string();
        let url = self.db.url();
        let line: Vec<String> = [filegc_bin().display().to_string().as_str()]
            .into_iter()
            .chain([
                "--volume",
                &volume,
                "--database-url",
                &url,
                "--worker",
                "test-sweeper",
            ])
            .chain(args.iter().copied())
            .map(quoted)
            .collect();
        let mut child = Command::new("script")
            .args(["-qec", &line.join(" "), "/dev/null"])
            .env_remove("DATABASE_URL")
            .env_remove("FILEGC_VOLUME")
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

    /// Runs the binary to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running filegc")
    }

    /// Runs the binary and insists on exit status 0; returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "filegc {args:?} failed with {}:\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

/// How long a running sweeper gets to show what a test waits for, or to exit;
/// only a failing test waits that long.
const RUN_DEADLINE: Duration = Duration::from_secs(20);

/// A `filegc` process in the background (`filegc run`, mostly), logging to a
/// temporary file; killed if a test ends without it having exited.
pub struct Running {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Running {
    /// Starts `filegc ARGS` on the environment, as its superuser.
    pub fn start(env: &SweeperEnv, args: &[&str]) -> Running {
        Running::spawn(env.command(args))
    }

    /// Starts `filegc ARGS` on the environment's volume with another database URL and worker name.
    pub fn start_as(env: &SweeperEnv, database_url: &str, worker: &str, args: &[&str]) -> Running {
        let mut command = Command::new(filegc_bin());
        command
            .arg("--volume")
            .arg(env.volume.path())
            .args(["--database-url", database_url, "--worker", worker])
            .env_remove("DATABASE_URL")
            .env_remove("FILEGC_VOLUME")
            .env_remove("RAILWAY_VOLUME_MOUNT_PATH")
            .args(args)
            .stdin(Stdio::null());
        Running::spawn(command)
    }

    fn spawn(mut command: Command) -> Running {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = command
            .stdout(Stdio::null())
            .stderr(fs::File::create(log.path()).unwrap())
            .spawn()
            .expect("starting filegc");
        Running { child, log }
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill only sends a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits for the exit, which must come within `within`.
    pub fn exit_status(&mut self, within: Duration) -> ExitStatus {
        let mut status = None;
        let exited = eventually(within, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        assert!(exited, "filegc did not exit:\n{}", self.log());
        status.unwrap()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.exit_status(RUN_DEADLINE)
    }

    /// Waits until the log holds `line`, failing the test if the process exits or the deadline passes.
    pub fn wait_for_log(&mut self, line: &str) {
        let seen = eventually(RUN_DEADLINE, || {
            assert!(self.is_running(), "filegc exited:\n{}", self.log());
            self.log().contains(line)
        });
        assert!(seen, "the log never said {line:?}:\n{}", self.log());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `filegc ARGS` against `db` (no volume), which must succeed; returns its standard output.
pub fn filegc_on(db: &TestDb, args: &[&str]) -> String {
    let output = Command::new(filegc_bin())
        .args(args)
        .args(["--database-url", &db.url()])
        .env_remove("DATABASE_URL")
        .output()
        .expect("running filegc");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "filegc {args:?}: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
