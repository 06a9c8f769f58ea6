//! `filegc orphans` with a fresh look at the volume, which leaves the
//! inventory as the latest scan made it.
//!
//! The paths on the volume, walked without a `stat`, meet the paths the rows
//! reference as the database streams them (the walk runs meanwhile on another
//! thread). A file no row names exactly is a candidate, and the database
//! decides which candidates are orphans by the final check's own rule
//! (`filegc.orphans_among`: a name read as a reference, an invalid reference
//! that may mean it, the managed patterns). Only the candidates are
//! inspected, while the database decides.
//!
//! A path's 128-bit hash stands for it in the first comparison, so the
//! sweeper holds 16 bytes per reference. Two paths sharing one (a chance in
//! about 10^26 at a million files) would leave an orphan out of the listing;
//! a referenced file is never listed, as the database checks each candidate.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::pin;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::TryStreamExt;
use xxhash_rust::xxh3::xxh3_128;

use crate::db::{file_row_on_volume, Db, FileRow};
use crate::exit_codes::ExitCode;
use crate::volume::{FileError, Volume};

/// What a fresh listing found.
#[derive(Debug)]
pub struct FreshOrphans {
    /// The orphans, in the listings' order.
    pub rows: Vec<FileRow>,
    /// Paths that could not be read, each logged.
    pub problems: u64,
}

impl FreshOrphans {
    /// The exit status: files that could not be read make the listing incomplete.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from_failures(self.problems)
    }
}

/// The orphans on the volume now; see the module's documentation.
pub async fn fresh_orphans(volume: &Volume, db: &Db) -> anyhow::Result<FreshOrphans> {
    let paths = volume.paths();
    let walker = tokio::task::spawn_blocking(move || {
        let mut names = Names::default();
        let mut problems = 0u64;
        for item in paths {
            match item {
                Ok(found) => names.push(&found.path),
                Err(problem) => {
                    problems += 1;
                    log_problem(&problem);
                }
            }
        }
        (names, problems)
    });

    // Collected first, then hashed into a set of the right size: growing the
    // set as the rows arrive rehashed it again and again.
    let mut hashes = Vec::new();
    let mut rows = pin!(db.referenced_paths().await?);
    while let Some(path) = rows.try_next().await? {
        hashes.push(xxh3_128(path.as_bytes()));
    }
    let mut referenced = PathHashes::with_capacity_and_hasher(hashes.len(), Default::default());
    referenced.extend(hashes);
    let (names, mut problems) = match walker.await {
        Ok(walked) => walked,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    };
    let candidates: Arc<[String]> = names
        .iter()
        .filter(|path| !referenced.contains(&xxh3_128(path.as_bytes())))
        .map(str::to_owned)
        .collect();
    drop((names, referenced));

    let inspected = {
        let volume = volume.try_clone()?;
        let candidates = Arc::clone(&candidates);
        tokio::task::spawn_blocking(move || {
            candidates
                .iter()
                .map(|path| volume.metadata(path))
                .collect::<Vec<_>>()
        })
    };
    let orphans = db.orphans_among(&candidates).await?;
    let inspected = match inspected.await {
        Ok(inspected) => inspected,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    };
    let mut facts: HashMap<&str, (u64, SystemTime)> = HashMap::with_capacity(candidates.len());
    for (path, metadata) in candidates.iter().zip(inspected) {
        match metadata {
            Ok(Some(found)) => {
                facts.insert(path, found);
            }
            // Deleted since the walk passed by: no longer on the volume.
            Ok(None) => {}
            Err(problem) => {
                problems += 1;
                log_problem(&problem);
            }
        }
    }
    let rows: Vec<FileRow> = orphans
        .into_iter()
        .filter_map(|path| {
            let (size_bytes, modified) = *facts.get(path.as_str())?;
            Some(file_row_on_volume(path, size_bytes, modified))
        })
        .collect();
    tracing::info!(
        candidates = candidates.len(),
        orphans = rows.len(),
        problems,
        "orphans listed from the volume"
    );
    Ok(FreshOrphans { rows, problems })
}

fn log_problem(problem: &FileError) {
    tracing::warn!(path = %problem.path(), error = %problem, "cannot list a file");
}

/// A set of path hashes. They are hashes already: a hasher of its own would
/// only hash them again.
type PathHashes = HashSet<u128, BuildHasherDefault<LowBits>>;

/// Takes a path hash's low 64 bits as its hash in a [`PathHashes`].
#[derive(Debug, Default)]
struct LowBits(u64);

impl Hasher for LowBits {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed here; fold anything else in, all the same.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u128(&mut self, hash: u128) {
        self.0 = hash as u64;
    }
}

/// Paths in one buffer: a `String` each would take twice the memory.
#[derive(Debug, Default)]
struct Names {
    text: String,
    ends: Vec<usize>,
}

impl Names {
    fn push(&mut self, path: &str) {
        self.text.push_str(path);
        self.ends.push(self.text.len());
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let path = &self.text[start..end];
            start = end;
            path
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_back_each_path_as_pushed() {
        let mut names = Names::default();
        for path in ["user_1_1.jpg", "", "sub/é.png", "user_1_1.jpg"] {
            names.push(path);
        }
        let back: Vec<&str> = names.iter().collect();
        assert_eq!(back, ["user_1_1.jpg", "", "sub/é.png", "user_1_1.jpg"]);
    }
}
