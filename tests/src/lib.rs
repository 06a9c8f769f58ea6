//! Test harness for filegc: a private PostgreSQL with the extension installed, and a database per test.
//!
//! The PostgreSQL is the one whose `pg_config` the environment variable
//! `FILEGC_PG_CONFIG` names (PostgreSQL 15 from Debian by default). The
//! extension must already be installed into it (`make install PG=NN`); the
//! harness only runs `CREATE EXTENSION filegc`.
//!
//! Every cluster lives in its own directory under `/var/tmp/filegc-tests`,
//! listens on 127.0.0.1 only and trusts every local connection. When the
//! tests run as root, the server programs run as the `postgres` OS user,
//! because `initdb` and `postgres` refuse to run as root.
//!
//! On top of the databases: [`fixtures`] puts the application and a scan's
//! inventory in one, [`test_env::TestEnv`] adds a volume among canary files
//! for the tests that run the sweeper, [`sweeper`] runs the real binary (to
//! its end or in the background), [`s3_server`] starts a real S3 server for
//! the tests of buckets, and [`reliability`] holds what the reliability
//! suite checks with.

pub mod fixtures;
pub mod reliability;
pub mod s3_server;
mod server;
pub mod sweeper;
pub mod test_env;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use postgres::{Client, NoTls};

use crate::server::Server;

/// The database superuser, created by `initdb`.
const SUPERUSER: &str = "postgres";

/// The database that exists in every cluster, for creating and dropping the others.
const MAINTENANCE_DB: &str = "postgres";

/// Which filegc the test databases get; the whole suite runs against each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `CREATE EXTENSION filegc` (the default).
    Extension,
    /// The portable install (`filegc install-sql`), with `FILEGC_ENGINE=portable`.
    Portable,
}

impl Engine {
    /// The engine the environment variable `FILEGC_ENGINE` names.
    pub fn from_env() -> Engine {
        match std::env::var("FILEGC_ENGINE").as_deref() {
            Err(_) | Ok("") | Ok("extension") => Engine::Extension,
            Ok("portable") => Engine::Portable,
            Ok(other) => panic!("filegc-tests: FILEGC_ENGINE={other}: use extension or portable"),
        }
    }
}

static SHARED: OnceLock<Cluster> = OnceLock::new();
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A name no other cluster or database of this machine uses: cluster
/// directories of every test process share one parent.
fn unique_id() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

/// The PostgreSQL shared by all tests of one test binary, started on first use.
pub fn cluster() -> &'static Cluster {
    SHARED.get_or_init(|| {
        let cluster = Cluster {
            server: Server::launch(server::Durability::Fast),
        };
        // Statics are never dropped, so only an exit hook stops the shared
        // server promptly; if registration fails, the watchdog still does.
        // SAFETY: the hook is an `extern "C" fn` that neither unwinds nor
        // relies on anything but the static it reads.
        unsafe { libc::atexit(stop_shared_cluster) };
        cluster
    })
}

extern "C" fn stop_shared_cluster() {
    if let Some(cluster) = SHARED.get() {
        cluster.server.teardown();
    }
}

/// A PostgreSQL server with its own data directory, port and socket directory.
pub struct Cluster {
    server: Server,
}

impl Cluster {
    /// Starts a cluster that belongs to the caller alone (for tests that stop and restart the server); stopped and removed on Drop.
    ///
    /// Unlike the shared cluster it keeps `synchronous_commit = on`, so that
    /// a commit acknowledged before `stop("immediate")` survives the restart.
    pub fn start_private() -> Cluster {
        Cluster {
            server: Server::launch(server::Durability::CommitsSurviveCrash),
        }
    }

    /// The TCP port the server listens on at 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The major version of the server, e.g. 15 or 18.
    pub fn major_version(&self) -> u32 {
        self.server.install().major
    }

    /// The directory of the server programs (`pg_config --bindir`).
    pub fn bin_dir(&self) -> &Path {
        &self.server.install().bin_dir
    }

    /// Stops the server with the given pg_ctl mode ("fast" or "immediate") and starts it again on the same port; returns once it accepts connections.
    pub fn restart(&self, mode: &str) {
        self.stop(mode);
        self.start();
    }

    /// Stops the server with the given pg_ctl mode ("smart", "fast" or "immediate"); returns once it has exited.
    pub fn stop(&self, mode: &str) {
        self.server.stop(mode);
    }

    /// Starts the stopped server on its port; returns once it accepts connections.
    pub fn start(&self) {
        self.server.start();
    }

    /// A new database with filegc (the engine `FILEGC_ENGINE` names), dropped (WITH (FORCE)) when the TestDb is dropped.
    pub fn create_database(&self) -> TestDb {
        let db = self.create_plain_database();
        self.create_extension(&db);
        db
    }

    /// A new database in another server encoding (`SQL_ASCII`, `LATIN1`),
    /// with filegc (the engine `FILEGC_ENGINE` names).
    pub fn create_database_encoded(&self, encoding: &str) -> TestDb {
        let db = self.create_plain_database_with(&format!(
            "ENCODING '{encoding}' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
        ));
        self.create_extension(&db);
        db
    }

    /// A new empty database without the extension.
    pub fn create_plain_database(&self) -> TestDb {
        self.create_plain_database_with("")
    }

    fn create_plain_database_with(&self, options: &str) -> TestDb {
        let name = format!("t_{}", unique_id());
        let sql = format!("CREATE DATABASE {name} {options}");
        connect(&url(self.port(), SUPERUSER, MAINTENANCE_DB))
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("filegc-tests: `{sql}` failed: {}", describe(&e)));
        TestDb {
            port: self.port(),
            name,
        }
    }

    fn create_extension(&self, db: &TestDb) {
        // The extension's script creates a cluster-wide role when it does not
        // exist yet; two databases doing that at once make one of them fail
        // on the role's unique index. Each cluster belongs to one process, so
        // a process-wide lock serialises the installations.
        static INSTALLING: Mutex<()> = Mutex::new(());
        let mut client = db.connect();
        let result = {
            let _installing = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
            match Engine::from_env() {
                Engine::Extension => client.batch_execute("CREATE EXTENSION filegc"),
                Engine::Portable => client.transaction().and_then(|mut transaction| {
                    transaction.batch_execute(&filegc_sweeper::portable::install_script())?;
                    transaction.commit()
                }),
            }
        };
        let Err(error) = result else { return };
        let available = client
            .query_opt(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'filegc'",
                &[],
            )
            .is_ok_and(|row| row.is_some());
        let major = self.major_version();
        if available {
            panic!(
                "filegc-tests: CREATE EXTENSION filegc failed in database {}: {}\n\
                 The extension's own SQL failed; fix the extension, or use create_plain_database.",
                db.name(),
                describe(&error)
            );
        }
        panic!(
            "filegc-tests: the filegc extension is not installed in PostgreSQL {major} ({}): \
             run `make install PG={major}` first",
            self.bin_dir().display()
        );
    }
}

/// A database of a cluster that belongs to one test; dropped from the server when this value is dropped.
pub struct TestDb {
    port: u16,
    name: String,
}

impl TestDb {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `postgres://` URL of this database for the superuser `postgres`.
    pub fn url(&self) -> String {
        self.url_as(SUPERUSER)
    }

    /// A `postgres://` URL of this database for another role (trust authentication, no password).
    pub fn url_as(&self, role: &str) -> String {
        url(self.port, role, &self.name)
    }

    /// A connection to this database as the superuser.
    pub fn connect(&self) -> Client {
        connect(&self.url())
    }

    /// A connection to this database as another role.
    pub fn connect_as(&self, role: &str) -> Client {
        connect(&self.url_as(role))
    }

    /// Runs the application fixture: the tables of the application filegc serves, and the role `app` that uses them.
    pub fn create_app_schema(&self) {
        self.connect()
            .batch_execute(include_str!("../fixtures/app_schema.sql"))
            .unwrap_or_else(|e| {
                panic!(
                    "filegc-tests: tests/fixtures/app_schema.sql failed in database {}: {}",
                    self.name,
                    describe(&e)
                )
            });
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = Client::connect(&url(self.port, SUPERUSER, MAINTENANCE_DB), NoTls)
            .and_then(|mut client| client.batch_execute(&sql));
        // Panicking here could abort a test that is already unwinding; a
        // database left behind only costs disk space until the cluster goes.
        if let Err(e) = dropped {
            eprintln!("filegc-tests: `{sql}` failed: {}", describe(&e));
        }
    }
}

fn url(port: u16, role: &str, database: &str) -> String {
    format!("postgres://{role}@127.0.0.1:{port}/{database}")
}

fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|e| {
        panic!(
            "filegc-tests: could not connect to {url}: {}\n\
             Was the cluster stopped, or does the role not exist?",
            describe(&e)
        )
    })
}

/// The error with its causes: `postgres::Error` alone says only "db error"
/// and keeps the server's message, detail and hint in its source.
fn describe(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Polls `condition` every 20 ms until it holds; `false` when `within` passed first.
pub fn eventually(within: std::time::Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if condition() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    condition()
}
