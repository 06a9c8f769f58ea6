//! `scripts/demo.sh`, which `make demo` runs, leaves no process behind:
//! neither when it succeeds nor when it is stopped half-way.
//!
//! The demo runs the harness's build of `filegc` (through `FILEGC`) rather
//! than the release build `make demo` makes, which takes minutes; the whole
//! demo then takes seconds.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use filegc_tests::eventually;
use filegc_tests::sweeper::filegc_bin;
use tempfile::TempDir;

/// How long the demo may take before the test gives up on it.
const DEADLINE: Duration = Duration::from_secs(120);

/// A folder for one run of the demo, where the server (as `postgres` when root) can work.
struct DemoDir {
    /// Removed on drop.
    parent: TempDir,
}

impl DemoDir {
    fn new() -> DemoDir {
        let parent = tempfile::Builder::new()
            .prefix("filegc-demo-test-")
            .tempdir_in("/var/tmp")
            .expect("a temporary folder");
        // The server, as `postgres` when the tests run as root, must reach DEMO_DIR.
        fs::set_permissions(parent.path(), fs::Permissions::from_mode(0o755))
            .expect("opening the temporary folder to the server");
        DemoDir { parent }
    }

    /// `DEMO_DIR`: the demo creates it, and empties it first.
    fn path(&self) -> PathBuf {
        self.parent.path().join("demo")
    }

    /// The demo's volume, which only the processes it started after creating it name in their environment.
    fn volume(&self) -> PathBuf {
        self.path().join("facial_evaluations")
    }

    /// Whether the demo's PostgreSQL still runs.
    fn cluster_running(&self) -> bool {
        self.path().join("pgdata/postmaster.pid").exists()
    }

    /// `scripts/demo.sh` with this folder and `filegc` as the sweeper.
    fn command(&self, filegc: &Path) -> Command {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/demo.sh");
        let mut command = Command::new(script);
        command
            .env("FILEGC", filegc)
            .env("DEMO_DIR", self.path())
            .env_remove("KEEP")
            .env_remove("DATABASE_URL")
            .env_remove("FILEGC_VOLUME")
            .env_remove("FILEGC_STORAGE")
            .env_remove("STORAGE")
            .stdin(Stdio::null());
        if let Some(pg_config) = std::env::var_os("FILEGC_PG_CONFIG") {
            command.env("PG_CONFIG", pg_config);
        }
        command
    }

    /// The `filegc run` processes that work on this demo's volume.
    fn sweepers(&self) -> Vec<u32> {
        let volume = format!("FILEGC_VOLUME={}", self.volume().display());
        processes_where(|environ, cmdline| {
            environ.split(|&b| b == 0).any(|v| v == volume.as_bytes())
                && cmdline.split(|&b| b == 0).any(|arg| arg == b"run")
        })
    }

    /// Every process the demo started (they inherit its `DEMO_DIR`): the
    /// server, the sweeper, the S3 server.
    fn processes(&self) -> Vec<u32> {
        let marker = format!("DEMO_DIR={}", self.path().display());
        processes_where(|environ, _| environ.split(|&b| b == 0).any(|v| v == marker.as_bytes()))
    }

    /// Fails the test if a sweeper of this demo still runs, after killing it so that it does not outlive the test.
    fn assert_no_sweeper_left(&self, what: &str) {
        let left = self.sweepers();
        for &pid in &left {
            // SAFETY: kill only sends a signal; these processes are this test's.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        assert!(
            left.is_empty(),
            "{what}: `filegc run` still running: {left:?}"
        );
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        if self.cluster_running() {
            // No panic here: the test may be unwinding already.
            let _ = self.command(filegc_bin()).arg("stop").output();
        }
    }
}

/// The processes whose environment and command line (NUL-separated, as
/// `/proc` gives them) `select` picks.
fn processes_where(select: impl Fn(&[u8], &[u8]) -> bool) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc") {
        let entry = entry.expect("an entry of /proc");
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        // A process that exited meanwhile, or a zombie, has neither.
        let (Ok(environ), Ok(cmdline)) = (
            fs::read(entry.path().join("environ")),
            fs::read(entry.path().join("cmdline")),
        ) else {
            continue;
        };
        if select(&environ, &cmdline) {
            found.push(pid);
        }
    }
    found
}

/// The demo started with its output in a file, not a pipe: a process it
/// leaves behind would hold a pipe open, and reading to its end would hang.
struct Script {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Script {
    fn start(mut command: Command) -> Script {
        let log = tempfile::NamedTempFile::new().expect("a file for the output");
        let child = command
            .stdout(log.reopen().expect("opening the output file"))
            .stderr(log.reopen().expect("opening the output file"))
            .spawn()
            .expect("starting scripts/demo.sh");
        Script { child, log }
    }

    /// What the demo printed so far.
    fn output(&self) -> String {
        fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Whether the script has not exited yet.
    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("polling the demo").is_none()
    }

    /// Waits for the exit, killing the script if it does not come within [`DEADLINE`].
    fn exit_status(&mut self) -> Option<ExitStatus> {
        let mut status = None;
        eventually(DEADLINE, || {
            status = self.child.try_wait().expect("polling the demo");
            status.is_some()
        });
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        status
    }
}

#[test]
fn the_demo_succeeds_and_leaves_no_process_behind() {
    let demo = DemoDir::new();
    let mut script = Script::start(demo.command(filegc_bin()));
    let status = script.exit_status();
    demo.assert_no_sweeper_left("after the demo");
    let output = script.output();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{output}");
    assert!(output.contains("left the volume"), "{output}");
    assert!(!demo.cluster_running(), "the demo's PostgreSQL still runs");
}

#[test]
fn a_demo_stopped_while_its_sweeper_runs_leaves_no_process_behind() {
    let demo = DemoDir::new();
    // A sweeper on an empty volume never removes the demo's image, so the
    // demo waits for it, with the sweeper running, until it is stopped.
    let empty = tempfile::tempdir().expect("an empty folder");
    let wrapper_dir = tempfile::tempdir().expect("a folder for the wrapper");
    let wrapper = wrapper_dir.path().join("filegc");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = run ]; then exec '{}' --volume '{}' \"$@\"; fi\nexec '{}' \"$@\"\n",
            filegc_bin().display(),
            empty.path().display(),
            filegc_bin().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();

    let mut script = Script::start(demo.command(&wrapper));
    let started = eventually(DEADLINE, || {
        !demo.sweepers().is_empty() || !script.is_running()
    });
    assert!(
        started && script.is_running(),
        "the demo's sweeper never started:\n{}",
        script.output()
    );

    // What a CI job's timeout, or `kill`, does to the script.
    // SAFETY: kill only sends a signal to the script this test started.
    unsafe { libc::kill(script.child.id() as libc::pid_t, libc::SIGTERM) };
    let status = script.exit_status();
    demo.assert_no_sweeper_left("after SIGTERM");
    let output = script.output();
    assert!(
        status.is_some_and(|s| !s.success()),
        "a stopped demo exits, and does not report success: {status:?}\n{output}"
    );
    assert!(
        !demo.cluster_running(),
        "the demo's PostgreSQL still runs:\n{output}"
    );
}

#[test]
fn the_demo_on_a_bucket_succeeds_and_leaves_no_process_behind() {
    let demo = DemoDir::new();
    let mut command = demo.command(filegc_bin());
    command.env("STORAGE", "s3");
    let mut script = Script::start(command);
    let status = script.exit_status();
    let left = demo.processes();
    for &pid in &left {
        // SAFETY: kill only sends a signal; these processes are this test's.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    let output = script.output();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{output}");
    assert!(left.is_empty(), "still running after the demo: {left:?}");
    assert!(output.contains("left the bucket"), "{output}");
    assert!(
        output.contains("Capacity: 4.0 MB budget"),
        "the stats show the bucket's budget:\n{output}"
    );
    assert!(output.contains("Deleted 23 of 23 images"), "{output}");
    assert!(
        !output.contains("0 B in total"),
        "the objects have their sizes:\n{output}"
    );
    assert!(!demo.cluster_running(), "the demo's PostgreSQL still runs");
}
