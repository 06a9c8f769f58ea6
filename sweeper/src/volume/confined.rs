//! The volume opened once, and every path resolved under its root without following a link.
//!
//! The root is opened once as a directory handle. A path that names a file
//! (always checked with [`validate_relative`] first, since it may come from
//! the database) is resolved one segment at a time with
//! `openat(O_DIRECTORY | O_NOFOLLOW)` from that handle, and its last segment is
//! acted on with `statat(AT_SYMLINK_NOFOLLOW)`, `renameat` and `unlinkat`,
//! none of which follow a symbolic link there. So whatever a path contains, it
//! cannot reach outside the root, a symlinked directory is never entered, and a
//! symlink is handled as a file of its own: its target is never touched.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use filegc_path_rules::{validate_relative, InvalidReason};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;
use thiserror::Error;

/// The trash folder at the root of the volume; trashed files keep their relative path under it.
pub const TRASH_DIR: &str = ".filegc-trash";

/// Folders the sweeper creates in the trash or when restoring: the usual mode, less the umask.
const NEW_DIR_MODE: u32 = 0o755;

/// The mounted volume, opened once; every file operation stays under its root.
#[derive(Debug)]
pub struct Volume {
    pub(super) root: PathBuf,
    pub(super) dir: OwnedFd,
}

/// Why the volume itself cannot be used.
#[derive(Debug, Error)]
pub enum VolumeError {
    /// The configured root does not exist.
    #[error("volume path {} does not exist (set FILEGC_VOLUME or --volume)", path.display())]
    NotFound {
        /// The configured root.
        path: PathBuf,
    },
    /// The configured root is a file, not a directory.
    #[error("volume path {} is not a directory (set FILEGC_VOLUME or --volume to the mount point)", path.display())]
    NotADirectory {
        /// The configured root.
        path: PathBuf,
    },
    /// The root exists but cannot be opened, or its file system cannot be queried.
    #[error("volume path {}: cannot {action}: {source} (check the sweeper's permissions on it)", path.display())]
    Io {
        /// The configured root.
        path: PathBuf,
        /// What the sweeper was doing.
        action: &'static str,
        /// The operating system's answer.
        source: io::Error,
    },
}

/// Why one file could not be listed, moved or removed; the run reports it and goes on.
#[derive(Debug, Error)]
pub enum FileError {
    /// The path could leave the root or is not a plain relative path.
    #[error("{path:?}: refused: {reason}")]
    Invalid {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: InvalidReason,
    },
    /// The path lies inside the trash folder, which only the trash operations touch.
    #[error("{path}: refused: it is inside the trash folder {TRASH_DIR}")]
    InTrash {
        /// The path as given.
        path: String,
    },
    /// A directory stands where a file was expected.
    #[error("{path}: is a directory, and the sweeper only moves or removes files")]
    IsADirectory {
        /// The path as given.
        path: String,
    },
    /// A folder on the way to the file is a symbolic link.
    #[error("{path}: refused: {link} is a symbolic link, and links are never followed")]
    ThroughSymlink {
        /// The path as given.
        path: String,
        /// The leading part of the path that is a link.
        link: String,
    },
    /// The walk found a name that is not UTF-8, which the inventory cannot hold.
    #[error("{path}: the name is not valid UTF-8; skipped")]
    NameNotUtf8 {
        /// The path with the invalid bytes replaced by U+FFFD.
        path: String,
    },
    /// The walk found a FIFO, socket or device, which is never inventoried.
    #[error("{path}: is a {kind}, not a regular file; skipped")]
    NotAFile {
        /// The path relative to the root.
        path: String,
        /// The kind of file it is.
        kind: &'static str,
    },
    /// The operating system refused or failed.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// The path relative to the root.
        path: String,
        /// What the sweeper was doing.
        action: &'static str,
        /// The operating system's answer.
        source: io::Error,
    },
}

impl FileError {
    /// The path the error is about, relative to the volume root.
    pub fn path(&self) -> &str {
        match self {
            FileError::Invalid { path, .. }
            | FileError::InTrash { path }
            | FileError::IsADirectory { path }
            | FileError::ThroughSymlink { path, .. }
            | FileError::NameNotUtf8 { path }
            | FileError::NotAFile { path, .. }
            | FileError::Io { path, .. } => path,
        }
    }

    /// The operating system's error, when there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            FileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What became of a file the sweeper was asked to trash or unlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// The file was moved into the trash or deleted.
    Removed {
        /// Its size just before.
        bytes: u64,
    },
    /// There was no file at that path: a normal outcome, not an error.
    AlreadyGone,
}

/// The size of the volume's file system, as `statvfs` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// The file system's size.
    pub total_bytes: u64,
    /// Space in use, including the trash.
    pub used_bytes: u64,
    /// Space the sweeper's user may still write; less than `total - used`
    /// when the file system reserves blocks for root.
    pub free_bytes: u64,
}

impl Volume {
    /// Opens the volume at `root`; a root that is a symbolic link is followed, once.
    pub fn open(root: &Path) -> Result<Volume, VolumeError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match rustix::fs::openat(CWD, root, flags, Mode::empty()) {
            Ok(dir) => Ok(Volume {
                root: root.to_owned(),
                dir,
            }),
            Err(Errno::NOENT) => Err(VolumeError::NotFound {
                path: root.to_owned(),
            }),
            Err(Errno::NOTDIR) => Err(VolumeError::NotADirectory {
                path: root.to_owned(),
            }),
            Err(errno) => Err(VolumeError::Io {
                path: root.to_owned(),
                action: "open it",
                source: errno.into(),
            }),
        }
    }

    /// The root as configured.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Deletes `rel` for good, without passing through the trash.
    pub fn unlink(&self, rel: &str) -> Result<RemoveOutcome, FileError> {
        let (dirs, name) = split_checked(rel)?;
        let Some(parent) = self.find_dirs(dirs.iter().copied(), rel)? else {
            return Ok(RemoveOutcome::AlreadyGone);
        };
        let Some(bytes) = file_size(&parent, name, rel)? else {
            return Ok(RemoveOutcome::AlreadyGone);
        };
        match rustix::fs::unlinkat(&parent, name, AtFlags::empty()) {
            Ok(()) => Ok(RemoveOutcome::Removed { bytes }),
            Err(Errno::NOENT) => Ok(RemoveOutcome::AlreadyGone),
            Err(Errno::ISDIR) => Err(FileError::IsADirectory { path: rel.into() }),
            Err(errno) => Err(io_error(rel, "delete it", errno)),
        }
    }

    /// Whether a regular file stands at `rel` (outside the trash), without following symlinks.
    pub fn holds(&self, rel: &str) -> Result<bool, FileError> {
        let (dirs, name) = split_checked(rel)?;
        match self.find_dirs(dirs.iter().copied(), rel)? {
            Some(parent) => Ok(file_size(&parent, name, rel)?.is_some()),
            None => Ok(false),
        }
    }

    /// The size and modification time of the file or link at `rel`, never
    /// following a link; `None` when no file stands there (any more).
    pub fn metadata(&self, rel: &str) -> Result<Option<(u64, SystemTime)>, FileError> {
        let (dirs, name) = split_checked(rel)?;
        let Some(parent) = self.find_dirs(dirs.iter().copied(), rel)? else {
            return Ok(None);
        };
        match file_facts(&parent, name, rel) {
            // A folder stands there now: no file to tell of.
            Err(FileError::IsADirectory { .. }) => Ok(None),
            facts => facts,
        }
    }

    /// A second handle on the same volume, for work on another thread.
    pub fn try_clone(&self) -> Result<Volume, VolumeError> {
        let dir = self.dir.try_clone().map_err(|source| VolumeError::Io {
            path: self.root.clone(),
            action: "open it again",
            source,
        })?;
        Ok(Volume {
            root: self.root.clone(),
            dir,
        })
    }

    /// The size, use and free space of the volume's file system.
    pub fn capacity(&self) -> Result<Capacity, VolumeError> {
        let stats = rustix::fs::fstatvfs(&self.dir).map_err(|errno| VolumeError::Io {
            path: self.root.clone(),
            action: "read the file system's capacity",
            source: errno.into(),
        })?;
        let block = stats.f_frsize;
        Ok(Capacity {
            total_bytes: stats.f_blocks.saturating_mul(block),
            used_bytes: stats
                .f_blocks
                .saturating_sub(stats.f_bfree)
                .saturating_mul(block),
            free_bytes: stats.f_bavail.saturating_mul(block),
        })
    }

    /// Opens the folders `segments` under the root without following links; `None` when one is missing.
    pub(super) fn find_dirs<'a>(
        &self,
        segments: impl IntoIterator<Item = &'a OsStr>,
        shown: &str,
    ) -> Result<Option<DirFd<'_>>, FileError> {
        self.open_dirs(segments, shown, false)
    }

    /// Opens the folders `segments` under the root without following links, creating missing ones.
    pub(super) fn make_dirs<'a>(
        &self,
        segments: impl IntoIterator<Item = &'a OsStr>,
        shown: &str,
    ) -> Result<DirFd<'_>, FileError> {
        self.open_dirs(segments, shown, true)?
            .ok_or_else(|| io_error(shown, "create its folder", Errno::NOENT))
    }

    fn open_dirs<'a>(
        &self,
        segments: impl IntoIterator<Item = &'a OsStr>,
        shown: &str,
        create: bool,
    ) -> Result<Option<DirFd<'_>>, FileError> {
        open_dirs_under(self.dir.as_fd(), segments, shown, create)
    }
}

/// A folder under the volume's root, open; the root itself is borrowed, as
/// it holds most files of a flat volume and duplicating its handle for each
/// would cost more system calls than the work on the file.
pub(super) enum DirFd<'root> {
    Root(BorrowedFd<'root>),
    Opened(OwnedFd),
}

impl AsFd for DirFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DirFd::Root(root) => *root,
            DirFd::Opened(dir) => dir.as_fd(),
        }
    }
}

impl DirFd<'_> {
    /// A handle of its own, which outlives the root's borrow.
    pub(super) fn into_owned(self) -> io::Result<OwnedFd> {
        match self {
            DirFd::Root(root) => root.try_clone_to_owned(),
            DirFd::Opened(dir) => Ok(dir),
        }
    }
}

/// Opens the folders `segments` under `root` without following links,
/// creating missing ones when `create`; `None` when one is missing.
pub(super) fn open_dirs_under<'root, 'a>(
    root: BorrowedFd<'root>,
    segments: impl IntoIterator<Item = &'a OsStr>,
    shown: &str,
    create: bool,
) -> Result<Option<DirFd<'root>>, FileError> {
    let mut current = DirFd::Root(root);
    let mut walked = PathBuf::new();
    for segment in segments {
        walked.push(segment);
        let opened = match open_subdir(&current, segment) {
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&current, segment, Mode::from_raw_mode(NEW_DIR_MODE)) {
                    Ok(()) | Err(Errno::EXIST) => open_subdir(&current, segment),
                    Err(errno) => Err(errno),
                }
            }
            other => other,
        };
        current = match opened {
            Ok(next) => DirFd::Opened(next),
            Err(Errno::NOENT) => return Ok(None),
            Err(errno @ (Errno::LOOP | Errno::NOTDIR)) => {
                match rustix::fs::statat(&current, segment, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {
                        return Err(FileError::ThroughSymlink {
                            path: shown.into(),
                            link: walked.to_string_lossy().into_owned(),
                        });
                    }
                    // A file stands where a folder would be: nothing can be under it.
                    _ if !create => return Ok(None),
                    _ => return Err(io_error(shown, "create its folder", errno)),
                }
            }
            Err(errno) => return Err(io_error(shown, "open its folder", errno)),
        };
    }
    Ok(Some(current))
}

/// Checks a path from outside (the database's, a listing's) before anything
/// touches the file it names: a plain relative path, outside the trash. A
/// volume and a bucket apply the same check.
pub fn check_path(rel: &str) -> Result<(), FileError> {
    validate_relative(rel).map_err(|reason| FileError::Invalid {
        path: rel.into(),
        reason,
    })?;
    if in_trash(rel) {
        return Err(FileError::InTrash { path: rel.into() });
    }
    Ok(())
}

/// Whether a relative path lies inside the trash folder (or is the folder itself).
pub fn in_trash(rel: &str) -> bool {
    rel.split('/').next() == Some(TRASH_DIR)
}

/// Checks a path from outside and splits it into its folders and its file name.
pub(super) fn split_checked(rel: &str) -> Result<(Vec<&OsStr>, &OsStr), FileError> {
    check_path(rel)?;
    let mut segments: Vec<&OsStr> = rel.split('/').map(OsStr::new).collect();
    let name = segments.pop().unwrap_or_default();
    Ok((segments, name))
}

fn open_subdir(parent: &impl AsFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent.as_fd(), name, flags, Mode::empty())
}

/// The size and modification time of the file or link `name` in `parent`,
/// never following a link; `None` when there is none.
fn file_facts(
    parent: &impl AsFd,
    name: &OsStr,
    shown: &str,
) -> Result<Option<(u64, SystemTime)>, FileError> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Directory => {
            Err(FileError::IsADirectory { path: shown.into() })
        }
        Ok(stat) => Ok(Some(size_and_time(&stat))),
        Err(Errno::NOENT) => Ok(None),
        Err(errno) => Err(io_error(shown, "inspect it", errno)),
    }
}

/// The size of the file or link `name` in `parent`; `None` when there is none.
pub(super) fn file_size(
    parent: &impl AsFd,
    name: &OsStr,
    shown: &str,
) -> Result<Option<u64>, FileError> {
    Ok(file_facts(parent, name, shown)?.map(|(bytes, _)| bytes))
}

/// The size (of a link itself, for a link) and the modification time a `stat` reports.
pub(super) fn size_and_time(stat: &rustix::fs::Stat) -> (u64, SystemTime) {
    (
        u64::try_from(stat.st_size).unwrap_or_default(),
        modification_time(stat),
    )
}

/// When a file was last modified, from its `stat`.
#[allow(
    clippy::useless_conversion,
    reason = "the widths of the stat fields differ between platforms"
)]
fn modification_time(stat: &rustix::fs::Stat) -> SystemTime {
    let nanos = Duration::from_nanos(u64::try_from(stat.st_mtime_nsec).unwrap_or_default());
    let seconds = i64::from(stat.st_mtime);
    match u64::try_from(seconds) {
        Ok(after) => UNIX_EPOCH + Duration::from_secs(after) + nanos,
        Err(_) => UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()) + nanos,
    }
}

pub(super) fn io_error(path: &str, action: &'static str, errno: Errno) -> FileError {
    FileError::Io {
        path: path.into(),
        action,
        source: errno.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::fixture::{assert_canary_intact, without_permission_override, Fixture};
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn opening_a_missing_root_names_the_path_and_the_fix() {
        let error = Volume::open(Path::new("/nonexistent/filegc-volume")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "volume path /nonexistent/filegc-volume does not exist (set FILEGC_VOLUME or --volume)"
        );
    }

    #[test]
    fn opening_a_file_as_root_is_refused() {
        let fixture = Fixture::new();
        fixture.write("file", "x");
        let error = Volume::open(&fixture.root.path().join("file")).unwrap_err();
        assert!(
            matches!(error, VolumeError::NotADirectory { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_is_already_gone_not_an_error() {
        let fixture = Fixture::new();
        fixture.write("file", "x");
        for rel in ["user_1_1.jpg", "missing/user_1_1.jpg", "file/user_1_1.jpg"] {
            assert_eq!(
                fixture.volume.trash(rel).unwrap(),
                RemoveOutcome::AlreadyGone,
                "{rel}"
            );
            assert_eq!(
                fixture.volume.unlink(rel).unwrap(),
                RemoveOutcome::AlreadyGone,
                "{rel}"
            );
        }
    }

    #[test]
    fn a_file_replaced_by_a_directory_is_refused_and_kept() {
        let fixture = Fixture::new();
        fixture.write("user_1_1.jpg/inside.jpg", "x");
        for result in [
            fixture.volume.trash("user_1_1.jpg"),
            fixture.volume.unlink("user_1_1.jpg"),
        ] {
            let error = result.unwrap_err();
            assert!(matches!(error, FileError::IsADirectory { .. }), "{error}");
            assert_eq!(error.path(), "user_1_1.jpg");
        }
        assert_eq!(
            fixture.read("user_1_1.jpg/inside.jpg").as_deref(),
            Some("x")
        );
    }

    #[test]
    fn a_symlink_to_outside_is_unlinked_as_a_link_and_its_target_survives() {
        let fixture = Fixture::new();
        let canary = fixture.canary("canary.jpg");
        symlink(&canary, fixture.root.path().join("user_1_1.jpg")).unwrap();
        let outcome = fixture.volume.unlink("user_1_1.jpg").unwrap();
        assert!(matches!(outcome, RemoveOutcome::Removed { .. }));
        assert!(!fixture.exists("user_1_1.jpg"));
        assert_canary_intact(&canary);
    }

    #[test]
    fn a_symlinked_directory_is_never_entered_by_trash_or_unlink() {
        let fixture = Fixture::new();
        let canary = fixture.canary("x.jpg");
        symlink(fixture.outside.path(), fixture.root.path().join("link")).unwrap();
        for result in [
            fixture.volume.trash("link/x.jpg"),
            fixture.volume.unlink("link/x.jpg"),
        ] {
            match result.unwrap_err() {
                FileError::ThroughSymlink { path, link } => {
                    assert_eq!((path.as_str(), link.as_str()), ("link/x.jpg", "link"));
                }
                other => panic!("expected a refusal, got {other}"),
            }
        }
        assert_canary_intact(&canary);
    }

    #[test]
    fn paths_that_climb_out_or_are_absolute_are_refused_before_any_access() {
        let fixture = Fixture::new();
        let canary = fixture.canary("x.jpg");
        let outside_name = fixture
            .outside
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let climbing = format!("../{outside_name}/x.jpg");
        let absolute = canary.to_str().unwrap().to_owned();
        for rel in [
            climbing.as_str(),
            "a/../../x.jpg",
            absolute.as_str(),
            "",
            "a//b",
            "./x",
        ] {
            for result in [fixture.volume.trash(rel), fixture.volume.unlink(rel)] {
                let error = result.unwrap_err();
                assert!(matches!(error, FileError::Invalid { .. }), "{rel}: {error}");
            }
            let error = fixture.volume.restore(rel).unwrap_err();
            assert!(matches!(error, FileError::Invalid { .. }), "{rel}: {error}");
        }
        assert_canary_intact(&canary);
    }

    #[test]
    fn paths_inside_the_trash_are_refused() {
        let fixture = Fixture::new();
        fixture.write(".filegc-trash/user_1_1.jpg", "x");
        let error = fixture
            .volume
            .trash(".filegc-trash/user_1_1.jpg")
            .unwrap_err();
        assert!(matches!(error, FileError::InTrash { .. }), "{error}");
        let error = fixture
            .volume
            .unlink(".filegc-trash/user_1_1.jpg")
            .unwrap_err();
        assert!(matches!(error, FileError::InTrash { .. }), "{error}");
        assert!(fixture.exists(".filegc-trash/user_1_1.jpg"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_permission_problem_is_reported_with_the_path() {
        let fixture = Fixture::new();
        fixture.write("readonly/user_1_1.jpg", "x");
        let folder = fixture.root.path().join("readonly");
        fs::set_permissions(&folder, fs::Permissions::from_mode(0o555)).unwrap();
        let result = without_permission_override(|| fixture.volume.trash("readonly/user_1_1.jpg"));
        fs::set_permissions(&folder, fs::Permissions::from_mode(0o755)).unwrap();
        let error = result.unwrap_err();
        assert_eq!(error.path(), "readonly/user_1_1.jpg");
        assert_eq!(
            error.io_error().map(io::Error::kind),
            Some(io::ErrorKind::PermissionDenied),
            "{error}"
        );
        assert!(fixture.exists("readonly/user_1_1.jpg"));
    }

    #[test]
    fn capacity_is_consistent() {
        let fixture = Fixture::new();
        let capacity = fixture.volume.capacity().unwrap();
        assert!(capacity.total_bytes > 0);
        assert!(capacity.used_bytes <= capacity.total_bytes);
        assert!(capacity.free_bytes <= capacity.total_bytes - capacity.used_bytes);
    }
}
