//! Support for the reliability suite (`tests/tests/reliability_*.rs`): a
//! volume enclosed in a folder of canary files, so a test can show that
//! nothing outside the volume root is ever touched.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use postgres::Client;
use tempfile::TempDir;

use crate::sweeper::filegc_bin;
use crate::{cluster, TestDb};

/// The path rules the extension and the sweeper share, for checks at the Rust level.
#[path = "../../extension/src/path_rules.rs"]
pub mod path_rules;

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
