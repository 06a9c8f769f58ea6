//! The benchmark's data: a flat volume of images named as the application
//! names them, as sparse files, and the rows that reference them.
//!
//! File number `n` always gets the same name, size and age, so the volume,
//! the references and the deletions can be made apart and still agree.

use std::fs::{self, File};
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::Path;
use std::thread;
use std::time::{Duration, SystemTime};

/// Two years, the span of the files' modification times.
const MTIME_SPAN_SECS: u64 = 730 * 86_400;

/// The smallest and largest image, in bytes.
const SIZES: Range<u64> = 200_000..4_000_001;

/// Images per user, so that users have several uploads.
const IMAGES_PER_USER: u64 = 20;

/// One file of the volume.
pub struct FileSpec {
    /// Its name, `user_{id}_{ts}[_2].{ext}`.
    pub name: String,
    /// Its size (a sparse file: no blocks are written).
    pub size: u64,
    /// Its modification time.
    pub modified: SystemTime,
}

/// SplitMix64: a cheap, well-mixed hash, so sizes and ages look random but repeat.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The name of file `n`: unique, since its timestamp is; one in five is a
/// secondary image (`_2`); mostly JPEG, as the application's uploads are.
pub fn name(n: u64) -> String {
    let ext = match mix(n) % 20 {
        0..=13 => "jpg",
        14..=16 => "png",
        17..=18 => "webp",
        _ => "jpeg",
    };
    let secondary = if n % 5 == 4 { "_2" } else { "" };
    format!("user_{}_{}{secondary}.{ext}", user_id(n), 1_600_000_000 + n)
}

/// The user who uploaded file `n`.
pub fn user_id(n: u64) -> u64 {
    n / IMAGES_PER_USER + 1
}

impl FileSpec {
    /// File `n`, aged relative to `now`.
    pub fn of(n: u64, now: SystemTime) -> FileSpec {
        let span = SIZES.end - SIZES.start;
        FileSpec {
            name: name(n),
            size: SIZES.start + mix(n ^ 0x5ca1ab1e) % span,
            modified: now - Duration::from_secs(mix(n ^ 0x0ddba11) % MTIME_SPAN_SECS),
        }
    }
}

/// Creates files `numbers` in `dir` (made if missing) as sparse files, on every core.
pub fn create_files(dir: &Path, numbers: Range<u64>, now: SystemTime) {
    fs::create_dir_all(dir)
        .unwrap_or_else(|e| panic!("bench: cannot create {}: {e}", dir.display()));
    let threads = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    thread::scope(|scope| {
        for first in 0..threads {
            let numbers = numbers.clone();
            scope.spawn(move || {
                for n in numbers.skip(first).step_by(threads) {
                    create_file(dir, &FileSpec::of(n, now));
                }
            });
        }
    });
}

fn create_file(dir: &Path, spec: &FileSpec) {
    let path = dir.join(&spec.name);
    File::create(&path)
        .and_then(|file| {
            file.set_len(spec.size)?;
            file.set_modified(spec.modified)
        })
        .unwrap_or_else(|e| panic!("bench: cannot create {}: {e}", path.display()));
}

/// Which files the rows reference, and which references name no file.
///
/// Nine files in ten are referenced (every tenth file is an orphan), as far
/// as there are references; references beyond those name files numbered past
/// the volume, which are missing. Most values carry the application's
/// absolute prefix; one in ten is a bare name, as older rows store them.
pub struct References {
    files: u64,
    references: u64,
}

impl References {
    /// The references of a volume of `files` files, `references` rows in all.
    pub fn new(files: u64, references: u64) -> References {
        References { files, references }
    }

    /// The file numbers the rows reference, in order.
    pub fn numbers(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.files)
            .filter(|n| !is_orphan(*n))
            .chain(self.files..)
            .take(self.references as usize)
    }

    /// How many files of the volume no row references.
    pub fn orphans(&self) -> u64 {
        let on_volume = self.numbers().take_while(|n| *n < self.files).count() as u64;
        self.files - on_volume
    }

    /// The first file number that no reference and no volume file uses.
    pub fn unused_from(&self) -> u64 {
        self.numbers()
            .last()
            .map_or(self.files, |n| n.max(self.files) + 1)
    }

    /// The value a row stores for file `n`.
    pub fn stored_value(n: u64) -> String {
        if n % 10 == 3 {
            name(n)
        } else {
            format!("{}{}", filegc_tests::fixtures::PREFIX, name(n))
        }
    }
}

fn is_orphan(n: u64) -> bool {
    n % 10 == 9
}
