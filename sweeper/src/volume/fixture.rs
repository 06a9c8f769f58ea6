//! What the unit tests of the volume share: a volume in a temporary folder, and canaries outside it.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::confined::{FileError, Volume};
use super::walk::{Entry, WalkItem};

/// A volume in a temporary folder, and a folder outside it that nothing may touch.
pub(super) struct Fixture {
    pub(super) root: TempDir,
    pub(super) outside: TempDir,
    pub(super) volume: Volume,
}

impl Fixture {
    pub(super) fn new() -> Fixture {
        let root = TempDir::new().unwrap();
        let outside = TempDir::new().unwrap();
        let volume = Volume::open(root.path()).unwrap();
        Fixture {
            root,
            outside,
            volume,
        }
    }

    pub(super) fn write(&self, rel: &str, contents: &str) {
        let path = self.root.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    pub(super) fn read(&self, rel: &str) -> Option<String> {
        fs::read_to_string(self.root.path().join(rel)).ok()
    }

    pub(super) fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.root.path().join(rel)).is_ok()
    }

    pub(super) fn canary(&self, name: &str) -> PathBuf {
        let path = self.outside.path().join(name);
        fs::write(&path, "canary").unwrap();
        path
    }

    pub(super) fn walked(&self) -> (Vec<Entry>, Vec<FileError>) {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for item in self.volume.walk() {
            match item {
                WalkItem::Entry(entry) => entries.push(entry),
                WalkItem::Problem(problem) => problems.push(problem),
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        (entries, problems)
    }

    pub(super) fn walked_paths(&self) -> Vec<String> {
        self.walked()
            .0
            .into_iter()
            .map(|entry| entry.path)
            .collect()
    }
}

pub(super) fn assert_canary_intact(path: &Path) {
    assert_eq!(fs::read_to_string(path).unwrap(), "canary");
}

/// Runs `work` on a thread that has dropped root's power to ignore permission bits.
///
/// Capabilities are per thread on Linux, so the test runs as root or not
/// and the rest of the test process keeps its own.
#[cfg(target_os = "linux")]
pub(super) fn without_permission_override<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    use rustix::thread::{capabilities, set_capabilities, CapabilitySet};
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut sets = capabilities(None).unwrap();
                sets.effective -= CapabilitySet::DAC_OVERRIDE
                    | CapabilitySet::DAC_READ_SEARCH
                    | CapabilitySet::FOWNER;
                set_capabilities(None, sets).unwrap();
                work()
            })
            .join()
            .unwrap()
    })
}
