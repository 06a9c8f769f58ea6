//! One PostgreSQL server process and its directory, driven through `initdb` and `pg_ctl`.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::{unique_id, SUPERUSER};

const DEFAULT_PG_CONFIG: &str = "/usr/lib/postgresql/15/bin/pg_config";

/// Outside any home directory, because the `postgres` OS user cannot enter
/// `/root`, where checkouts may live.
const BASE_DIR: &str = "/var/tmp/filegc-tests";

/// The OS user that runs the server programs when the tests run as root.
const SERVER_OS_USER: &str = "postgres";

/// Seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_TIMEOUT: &str = "30";

/// Another process may take the port between our probe and the server's bind.
const START_ATTEMPTS: usize = 5;

/// Runs until the test process is gone, then stops the server and removes
/// its directory, so that a test binary that panics or is killed leaves no
/// server behind. It ends early when the directory disappears, as it does
/// when the harness tears the cluster down itself.
/// Arguments: test pid, cluster directory, data directory, pg_ctl command.
const WATCHDOG: &str = r#"
pid=$1 dir=$2 data=$3
shift 3
(
    while [ -d "/proc/$pid" ] && [ -d "$dir" ]; do sleep 1; done
    if [ -d "$dir" ]; then
        "$@" -D "$data" -m immediate -w stop
        rm -rf "$dir"
    fi
) </dev/null >/dev/null 2>&1 &
"#;

/// The PostgreSQL installation that `FILEGC_PG_CONFIG` names.
pub(crate) struct Install {
    pub(crate) bin_dir: PathBuf,
    pub(crate) major: u32,
    as_os_user: bool,
}

fn install() -> &'static Install {
    static INSTALL: OnceLock<Install> = OnceLock::new();
    INSTALL.get_or_init(|| {
        let pg_config = std::env::var_os("FILEGC_PG_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_CONFIG));
        let fix = "Set FILEGC_PG_CONFIG to the pg_config of an installed PostgreSQL \
                   (scripts/setup.sh 15 or 18 installs one).";
        let output = run(Command::new(&pg_config).args(["--bindir", "--version"]), fix);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut lines = stdout.lines();
        let (Some(bin_dir), Some(version)) = (lines.next(), lines.next()) else {
            panic!("filegc-tests: unexpected output of {pg_config:?} --bindir --version: {stdout:?}\n{fix}");
        };
        let major = parse_major(version).unwrap_or_else(|| {
            panic!("filegc-tests: cannot read a major version from {pg_config:?}: {version:?}\n{fix}")
        });
        Install {
            bin_dir: PathBuf::from(bin_dir),
            major,
            // SAFETY: geteuid has no preconditions and cannot fail.
            as_os_user: unsafe { libc::geteuid() } == 0,
        }
    })
}

/// The major version in `pg_config --version` output such as
/// "PostgreSQL 15.20 (Debian 15.20-0+deb12u1)" or "PostgreSQL 19devel".
fn parse_major(version: &str) -> Option<u32> {
    let number = version.strip_prefix("PostgreSQL ")?;
    let digits: String = number.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// How much a server trades safety for speed.
#[derive(Clone, Copy)]
pub(crate) enum Durability {
    /// Commits may be lost when the server stops with mode "immediate".
    Fast,
    /// Acknowledged commits survive any stop; only the OS crashing could lose them.
    CommitsSurviveCrash,
}

/// A cluster directory with a server; stops the server and removes the directory on drop.
pub(crate) struct Server {
    install: &'static Install,
    dir: PathBuf,
    port: u16,
}

impl Server {
    /// Creates, configures and starts a new cluster on a free port.
    pub(crate) fn launch(durability: Durability) -> Server {
        let install = install();
        let mut server = Server {
            install,
            dir: create_cluster_dir(install),
            port: 0,
        };
        // From here on, a panic drops `server`, which cleans up; the
        // watchdog covers a process that dies without unwinding.
        server.spawn_watchdog();
        server.initdb(durability);
        server.port = server.start_on_free_port();
        server
    }

    pub(crate) fn install(&self) -> &'static Install {
        self.install
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn start(&self) {
        if let Err(failure) = self.try_start(self.port) {
            panic!("{}", failure.message);
        }
    }

    pub(crate) fn stop(&self, mode: &str) {
        let mut pg_ctl = self.server_command("pg_ctl");
        pg_ctl.arg("-D").arg(self.data_dir());
        pg_ctl.args(["-m", mode, "-w", "-t", PG_CTL_TIMEOUT, "stop"]);
        run(
            &mut pg_ctl,
            "Is the server running? pg_ctl modes are smart, fast and immediate.",
        );
    }

    /// Stops the server and removes the directory, ignoring every failure:
    /// it runs from an exit hook and from Drop, where panicking is not an option.
    pub(crate) fn teardown(&self) {
        let mut pg_ctl = self.server_command("pg_ctl");
        pg_ctl.arg("-D").arg(self.data_dir());
        pg_ctl.args(["-m", "immediate", "-w", "-t", PG_CTL_TIMEOUT, "stop"]);
        // A server that is already stopped makes pg_ctl fail, which is fine.
        let _ = pg_ctl
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.dir);
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The command line that runs a server program as the right OS user.
    fn server_argv(&self, program: &str) -> Vec<OsString> {
        let mut argv: Vec<OsString> = Vec::new();
        if self.install.as_os_user {
            argv.extend(["runuser", "-u", SERVER_OS_USER, "--"].map(OsString::from));
        }
        argv.push(self.install.bin_dir.join(program).into_os_string());
        argv
    }

    fn server_command(&self, program: &str) -> Command {
        let argv = self.server_argv(program);
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        // The server's OS user may not be allowed into the caller's working
        // directory, and initdb and postgres fail when they cannot stay there.
        command.current_dir("/");
        command
    }

    fn spawn_watchdog(&self) {
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(WATCHDOG).arg("filegc-tests-watchdog");
        sh.arg(std::process::id().to_string());
        sh.arg(&self.dir).arg(self.data_dir());
        sh.args(self.server_argv("pg_ctl"));
        // Its own process group keeps a Ctrl-C aimed at the tests from
        // killing the watchdog before it has cleaned up after them.
        sh.process_group(0).current_dir("/");
        run(
            &mut sh,
            "The watchdog needs sh, sleep and rm; the server's own tools need nothing else.",
        );
    }

    fn initdb(&self, durability: Durability) {
        let data_dir = self.data_dir();
        let mut initdb = self.server_command("initdb");
        initdb.arg("-D").arg(&data_dir);
        initdb.args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ]);
        initdb.args(["--no-sync", "--no-instructions"]);
        run(
            &mut initdb,
            &format!(
                "Check that the PostgreSQL in {} works and that the OS user running it can write {}.",
                self.install.bin_dir.display(),
                self.dir.display()
            ),
        );
        let synchronous_commit = match durability {
            Durability::Fast => "off",
            Durability::CommitsSurviveCrash => "on",
        };
        // In the configuration file rather than on pg_ctl's command line, so
        // that every later start gets the same settings. fsync and
        // full_page_writes only protect against the OS crashing, which takes
        // the test run down with it anyway.
        let settings = format!(
            "\n# filegc-tests\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             max_connections = 200\n\
             shared_preload_libraries = ''\n\
             fsync = off\n\
             full_page_writes = off\n\
             synchronous_commit = {synchronous_commit}\n",
            data_dir.display()
        );
        append(&data_dir.join("postgresql.conf"), &settings);
        let hba = data_dir.join("pg_hba.conf");
        fs::write(
            &hba,
            "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        )
        .unwrap_or_else(|e| panic!("filegc-tests: cannot write {}: {e}", hba.display()));
    }

    fn start_on_free_port(&self) -> u16 {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port();
            match self.try_start(port) {
                Ok(()) => return port,
                Err(failure) if failure.port_taken && attempts < START_ATTEMPTS => continue,
                Err(failure) => panic!("{}", failure.message),
            }
        }
    }

    /// Starts the server and waits until it accepts connections: `pg_ctl -w`
    /// polls the server's own readiness report, for at most PG_CTL_TIMEOUT.
    fn try_start(&self, port: u16) -> Result<(), StartFailure> {
        let log = self.log_file();
        let log_start = fs::metadata(&log).map_or(0, |m| m.len());
        let mut pg_ctl = self.server_command("pg_ctl");
        pg_ctl.arg("-D").arg(self.data_dir()).arg("-l").arg(&log);
        pg_ctl.args(["-o", &format!("-p {port}")]);
        pg_ctl.args(["-w", "-t", PG_CTL_TIMEOUT, "start"]);
        let output = pg_ctl
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("filegc-tests: could not run {pg_ctl:?}: {e}"));
        if output.status.success() {
            return Ok(());
        }
        let server_log = read_from(&log, log_start);
        Err(StartFailure {
            port_taken: server_log.contains("Address already in use"),
            message: format!(
                "filegc-tests: {pg_ctl:?} failed ({}):\n{}{}\nserver log {}:\n{server_log}\n\
                 Is another server using this data directory, or is port {port} taken?",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                log.display(),
            ),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.teardown();
    }
}

struct StartFailure {
    port_taken: bool,
    message: String,
}

/// A new directory that no other cluster uses, owned by the server's OS user.
fn create_cluster_dir(install: &Install) -> PathBuf {
    let base = Path::new(BASE_DIR);
    fs::create_dir_all(base)
        .unwrap_or_else(|e| panic!("filegc-tests: cannot create {BASE_DIR}: {e}"));
    // Shared by every user that runs tests, like /tmp. This fails when
    // another user made it, who has then already set these permissions.
    let _ = fs::set_permissions(base, fs::Permissions::from_mode(0o1777));
    loop {
        let dir = base.join(unique_id());
        match fs::create_dir(&dir) {
            Ok(()) => {
                if install.as_os_user {
                    let mut chown = Command::new("chown");
                    chown.arg(format!("{SERVER_OS_USER}:")).arg(&dir);
                    run(
                        &mut chown,
                        &format!("The tests run as root and need the OS user {SERVER_OS_USER:?} (apt-get install postgresql-15 creates it)."),
                    );
                }
                return dir;
            }
            // Left behind by an earlier process with the same pid.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!(
                "filegc-tests: cannot create {}: {e}\nCheck the permissions of {BASE_DIR}.",
                dir.display()
            ),
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|e| panic!("filegc-tests: cannot bind a port on 127.0.0.1: {e}"))
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("filegc-tests: cannot append to {}: {e}", path.display()));
}

/// What the server logged since `offset`, for error messages: a missing or
/// unreadable log must not hide the failure being reported.
fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    let read = fs::File::open(path).and_then(|mut file| {
        file.seek(SeekFrom::Start(offset))?;
        file.read_to_string(&mut text)
    });
    match read {
        Ok(_) => text,
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Runs a command to completion and panics, naming it, its output and `fix`, when it fails.
fn run(command: &mut Command, fix: &str) -> Output {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("filegc-tests: could not run {command:?}: {e}\n{fix}"));
    if !output.status.success() {
        panic!(
            "filegc-tests: {command:?} failed ({}):\n{}{}\n{fix}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
    output
}

#[cfg(test)]
mod tests {
    use super::parse_major;

    #[test]
    fn reads_the_major_version_of_release_and_development_builds() {
        assert_eq!(
            parse_major("PostgreSQL 15.20 (Debian 15.20-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major("PostgreSQL 18.6"), Some(18));
        assert_eq!(parse_major("PostgreSQL 19devel"), Some(19));
        assert_eq!(parse_major("postgres (PostgreSQL) 15.20"), None);
    }
}
