//! The `filegc` binary as the tests run it: built once, run to its end, or kept running in the background.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::{eventually, TestDb};

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

/// `program` (a build of `filegc`) with `volume` and the database at
/// `database_url`, none of the environment variables that would point it
/// elsewhere or change its logs, and no terminal; the caller adds the rest
/// of the line.
pub fn filegc_command(program: &Path, volume: &Path, database_url: &str) -> Command {
    let mut command = Command::new(program);
    // The global options go first, so that `run -- CMD ARGS` can end the line.
    command
        .arg("--volume")
        .arg(volume)
        .arg("--database-url")
        .arg(database_url)
        .env_remove("DATABASE_URL")
        .env_remove("FILEGC_VOLUME")
        .env_remove("RAILWAY_VOLUME_MOUNT_PATH")
        .env_remove("RAILWAY_ENVIRONMENT")
        .env_remove("FILEGC_LOG_FORMAT")
        .env_remove("FILEGC_LOG")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    command
}

/// Runs `filegc ARGS` against `db` (no volume), which must succeed; returns its standard output.
pub fn filegc_on(db: &TestDb, args: &[&str]) -> String {
    filegc_at(&db.url(), args)
}

/// Like [`filegc_on`], with the database at `database_url` (as another role, say).
pub fn filegc_at(database_url: &str, args: &[&str]) -> String {
    let output = Command::new(filegc_bin())
        .args(args)
        .args(["--database-url", database_url])
        .env_remove("DATABASE_URL")
        .output()
        .expect("running filegc");
    succeeded(args, &output)
}

/// Insists that the run of `filegc ARGS` exited with status 0; returns its standard output.
pub fn succeeded(args: &[&str], output: &Output) -> String {
    assert!(
        output.status.success(),
        "filegc {args:?}: {}",
        describe_output(output)
    );
    String::from_utf8(output.stdout.clone()).unwrap_or_else(|_| {
        panic!(
            "filegc {args:?} wrote standard output that is not UTF-8: {}",
            describe_output(output)
        )
    })
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

/// What a run wrote to stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// How long a running sweeper gets to show what a test waits for, or to exit;
/// only a failing test waits that long.
const RUN_DEADLINE: Duration = Duration::from_secs(20);

/// A `filegc` process in the background (`filegc run`, mostly), its stdout
/// and stderr each in a temporary file; killed if a test ends without it
/// having exited.
pub struct Running {
    child: Child,
    stdout: tempfile::NamedTempFile,
    stderr: tempfile::NamedTempFile,
}

impl Running {
    /// Starts `command` with stdout and stderr each going to a file of their own.
    pub fn spawn(mut command: Command) -> Running {
        let stdout = tempfile::NamedTempFile::new().expect("a file for stdout");
        let stderr = tempfile::NamedTempFile::new().expect("a file for stderr");
        let child = command
            .stdout(stdout.reopen().expect("opening the stdout file"))
            .stderr(stderr.reopen().expect("opening the stderr file"))
            .spawn()
            .expect("starting filegc");
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// What the process wrote so far, stdout (where `filegc run` logs) then stderr.
    pub fn log(&self) -> String {
        self.stdout() + &self.stderr()
    }

    /// What the process wrote to stdout so far.
    pub fn stdout(&self) -> String {
        fs::read_to_string(self.stdout.path()).unwrap_or_default()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// The process's ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
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
        // No panic here: the test may be unwinding already.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The one JSON document a command printed (`--json`).
pub fn json_document(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{stdout}"))
}

/// The paths of a JSON listing, sorted.
pub fn listed_paths(listing: &serde_json::Value) -> Vec<String> {
    let mut paths: Vec<String> = listing
        .as_array()
        .expect("an array")
        .iter()
        .map(|file| file["path"].as_str().expect("a path").to_owned())
        .collect();
    paths.sort();
    paths
}
