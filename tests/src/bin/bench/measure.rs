//! Timing a program or a piece of work, and summing up repeated runs.

use std::fs;
use std::io::{Read, Seek};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The share of CPU time others may take while the machine counts as quiet.
const QUIET_BUSY: f64 = 0.25;

/// What one run of a program cost.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// From just before it started until it was reaped.
    pub wall: Duration,
    /// Its peak resident set size, in KiB.
    pub max_rss_kib: u64,
}

/// The first argument that makes the bench binary run the rest of its
/// arguments as a command and write the command's own peak memory to a file
/// (see [`run`] for why).
pub const PEAK_MEMORY_OF: &str = "--peak-memory-of";

/// Runs `command` to the end with stdout discarded; panics, with its stderr, when it fails.
///
/// Its peak memory is taken by a fresh, small copy of this binary that runs
/// it ([`peak_memory_of`]): a child of this process would report this
/// process's peak instead when that is higher, because Linux carries the
/// high-water mark of the memory an exec replaces into the new program's,
/// and a spawned child runs in this process's memory until its exec. By the
/// time this benchmark measures `filegc orphans` it has held tens of MB of
/// query results, which the figure then showed as the sweeper's.
pub fn run(command: &mut Command, what: &str) -> Measured {
    let peak_file = tempfile::NamedTempFile::new().expect("a temporary file for the peak memory");
    let mut wrapped = Command::new(std::env::current_exe().expect("the bench binary's path"));
    wrapped
        .arg(PEAK_MEMORY_OF)
        .arg(peak_file.path())
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let measured = run_and_reap(&mut wrapped, what);
    let peak = fs::read_to_string(peak_file.path()).unwrap_or_default();
    Measured {
        max_rss_kib: peak.trim().parse().unwrap_or(measured.max_rss_kib),
        ..measured
    }
}

/// `bench --peak-memory-of FILE PROGRAM [ARGS...]`: runs PROGRAM with this
/// process's standard streams, writes its peak resident set size in KiB to
/// FILE, and exits with its exit status.
pub fn peak_memory_of(args: &[std::ffi::OsString]) -> std::process::ExitCode {
    let [file, program, rest @ ..] = args else {
        eprintln!("bench: {PEAK_MEMORY_OF} FILE PROGRAM [ARGS...]");
        return std::process::ExitCode::from(2);
    };
    let (status, usage) = spawn_and_wait(Command::new(program).args(rest), "the command");
    fs::write(file, usage.ru_maxrss.to_string()).expect("writing the peak memory");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        1
    };
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Spawns `command` and reaps it with its resource usage.
fn spawn_and_wait(command: &mut Command, what: &str) -> (i32, libc::rusage) {
    #[allow(
        clippy::zombie_processes,
        reason = "wait4 below reaps it, which std's wait cannot do with the resource usage"
    )]
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("bench: cannot run {what} ({command:?}): {e}"));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain old data, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: status and usage are valid for writes, and pid is our unreaped child.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            panic!("bench: waiting for {what}: {error}");
        }
    }
    (status, usage)
}

/// Runs `command` to the end with stdout discarded and stderr kept; panics,
/// with its stderr, when it fails.
fn run_and_reap(command: &mut Command, what: &str) -> Measured {
    // A file rather than a pipe: nothing reads the child's stderr while it
    // runs, and a full pipe would stall it.
    let mut stderr = tempfile::tempfile().expect("a temporary file for stderr");
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(
        stderr
            .try_clone()
            .expect("a second handle on a temporary file"),
    );
    let start = Instant::now();
    let (status, usage) = spawn_and_wait(command, what);
    let wall = start.elapsed();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut text = String::new();
        let _ = stderr.rewind();
        let _ = stderr.read_to_string(&mut text);
        panic!("bench: {what} failed (wait status {status}): {command:?}\n{text}");
    }
    Measured {
        wall,
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    }
}

/// How long `work` took.
pub fn time(work: impl FnOnce()) -> Duration {
    let start = Instant::now();
    work();
    start.elapsed()
}

/// The middle value (the upper middle one of an even count).
pub fn median<T: Copy + PartialOrd>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("comparable values"));
    sorted[sorted.len() / 2]
}

/// Seconds as the tables show them.
pub fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// Each run's seconds, for the details.
pub fn each_run(durations: &[Duration]) -> String {
    durations
        .iter()
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits, at most `longest`, until the CPUs stay mostly idle for a second;
/// false when they never did. The benchmark shares its machine, and a build
/// running next to a timed run can halve what it measures.
pub fn wait_for_quiet(longest: Duration) -> bool {
    let deadline = Instant::now() + longest;
    loop {
        match busy_share(Duration::from_secs(1)) {
            None => return true,
            Some(share) if share < QUIET_BUSY => return true,
            Some(_) if Instant::now() >= deadline => return false,
            Some(_) => {}
        }
    }
}

/// The share of all CPUs' time spent busy over `window`; `None` without /proc/stat.
fn busy_share(window: Duration) -> Option<f64> {
    let (total_before, idle_before) = cpu_times()?;
    thread::sleep(window);
    let (total_after, idle_after) = cpu_times()?;
    let total = total_after.saturating_sub(total_before);
    let idle = idle_after.saturating_sub(idle_before);
    (total > 0).then(|| 1.0 - idle as f64 / total as f64)
}

/// All CPUs' time so far and the idle part of it, in clock ticks.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    // user nice system idle iowait irq softirq steal: guests are counted in user.
    let fields: Vec<u64> = line
        .split_whitespace()
        .take(8)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    let idle = fields.get(3)? + fields.get(4)?;
    Some((fields.iter().sum(), idle))
}
