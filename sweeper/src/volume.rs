//! All file-system access, confined to the volume root.
//!
//! The root is opened once as a directory handle. A path that names a file
//! (always checked with [`validate_relative`] first, since it may come from
//! the database) is resolved one segment at a time with
//! `openat(O_DIRECTORY | O_NOFOLLOW)` from that handle, and its last segment is
//! acted on with `statat(AT_SYMLINK_NOFOLLOW)`, `renameat` and `unlinkat`,
//! none of which follow a symbolic link there. So whatever a path contains, it
//! cannot reach outside the root, a symlinked directory is never entered, and a
//! symlink is handled as a file of its own: its target is never touched.
//!
//! The walk reads the tree through `walkdir` without following links or
//! crossing into other file systems. It is synchronous and streams its items,
//! so a caller runs it on a blocking thread and forwards the items over a
//! bounded channel.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::io;
use std::iter;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use filegc_path_rules::{validate_relative, InvalidReason, MAX_PATH_BYTES};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;
use thiserror::Error;
use walkdir::WalkDir;

/// The trash folder at the root of the volume; trashed files keep their relative path under it.
pub const TRASH_DIR: &str = ".filegc-trash";

/// The folder every ext4 file system has at its root; never part of the inventory.
const LOST_AND_FOUND: &str = "lost+found";

/// Folders the sweeper creates in the trash or when restoring: the usual mode, less the umask.
const NEW_DIR_MODE: u32 = 0o755;

/// The mounted volume, opened once; every file operation stays under its root.
#[derive(Debug)]
pub struct Volume {
    root: PathBuf,
    dir: OwnedFd,
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

/// One thing the walk found.
#[derive(Debug)]
pub enum WalkItem {
    /// A regular file or a symbolic link.
    Entry(Entry),
    /// Something that could not be read or is not inventoried, with its path.
    Problem(FileError),
}

/// A regular file or symbolic link on the volume, as the inventory records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path relative to the root, with `/` between segments.
    pub path: String,
    /// The file's size; for a link, the length of the link itself.
    pub size_bytes: u64,
    /// The last modification time, of the link itself for a link.
    pub modified: SystemTime,
    /// Whether this is a symbolic link (whose target is never looked at).
    pub is_symlink: bool,
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

/// What became of a file the sweeper was asked to bring back from the trash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// The file is back at its path.
    Restored {
        /// Its size.
        bytes: u64,
    },
    /// The trash holds no file at that path.
    NotInTrash,
    /// Something already exists at the path; the trashed copy stays in the trash.
    TargetExists,
}

/// One copy in the trash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashItem {
    /// Where it was before, relative to the volume root; `None` when its
    /// name is not UTF-8.
    pub path: Option<String>,
    /// Its size.
    pub bytes: u64,
}

/// What the trash holds now.
#[derive(Debug, Default)]
pub struct TrashUsage {
    /// Files and links in the trash.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Entries that could not be read, so are not counted.
    pub problems: Vec<FileError>,
}

impl TrashUsage {
    /// Counts one item of [`Volume::trash_items`].
    pub fn count(&mut self, item: Result<TrashItem, FileError>) {
        match item {
            Ok(copy) => {
                self.files += 1;
                self.bytes += copy.bytes;
            }
            Err(problem) => self.problems.push(problem),
        }
    }
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

    /// Streams every regular file and link under the root, skipping the trash and `lost+found`.
    pub fn walk(&self) -> Walk {
        let inner = WalkDir::new(&self.root)
            .follow_links(false)
            .same_file_system(true)
            .into_iter()
            .filter_entry(is_inventoried as fn(&walkdir::DirEntry) -> bool);
        Walk {
            root: self.root.clone(),
            root_dir: self.dir.try_clone().ok(),
            inner,
            folder: None,
        }
    }

    /// Moves `rel` into the trash folder, replacing an older trashed copy of the same path.
    pub fn trash(&self, rel: &str) -> Result<RemoveOutcome, FileError> {
        let (dirs, name) = split_checked(rel)?;
        let Some(parent) = self.find_dirs(dirs.iter().copied(), rel)? else {
            return Ok(RemoveOutcome::AlreadyGone);
        };
        let Some(bytes) = file_size(&parent, name, rel)? else {
            return Ok(RemoveOutcome::AlreadyGone);
        };
        // A purge at the same time may remove an emptied trash folder between
        // its creation here and the rename, which then fails with NOENT although
        // the file is still in place: the folder is made again, once.
        for _ in 0..2 {
            let trash_parent = self.make_dirs(trash_segments(&dirs), rel)?;
            match rustix::fs::renameat(&parent, name, &trash_parent, name) {
                Ok(()) => return Ok(RemoveOutcome::Removed { bytes }),
                Err(Errno::NOENT) => {
                    if file_size(&parent, name, rel)?.is_none() {
                        return Ok(RemoveOutcome::AlreadyGone);
                    }
                }
                Err(errno) => return Err(io_error(rel, "move it into the trash", errno)),
            }
        }
        Err(io_error(rel, "move it into the trash", Errno::NOENT))
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

    /// Moves the trashed copy of `rel` back to `rel`, unless something is already there.
    pub fn restore(&self, rel: &str) -> Result<RestoreOutcome, FileError> {
        let (dirs, name) = split_checked(rel)?;
        let Some(trash_parent) = self.find_dirs(trash_segments(&dirs), rel)? else {
            return Ok(RestoreOutcome::NotInTrash);
        };
        let Some(bytes) = file_size(&trash_parent, name, rel)? else {
            return Ok(RestoreOutcome::NotInTrash);
        };
        let parent = self.make_dirs(dirs.iter().copied(), rel)?;
        let renamed =
            rustix::fs::renameat_with(&trash_parent, name, &parent, name, RenameFlags::NOREPLACE);
        let renamed = match renamed {
            // The file system cannot refuse to replace on its own: check, then rename.
            Err(Errno::INVAL) => match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
            {
                Ok(_) => Err(Errno::EXIST),
                Err(Errno::NOENT) => rustix::fs::renameat(&trash_parent, name, &parent, name),
                Err(errno) => Err(errno),
            },
            other => other,
        };
        match renamed {
            Ok(()) => Ok(RestoreOutcome::Restored { bytes }),
            Err(Errno::EXIST) => Ok(RestoreOutcome::TargetExists),
            Err(Errno::NOENT) => Ok(RestoreOutcome::NotInTrash),
            Err(errno) => Err(io_error(rel, "restore it from the trash", errno)),
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

    /// The size of the trashed copy of `rel`; `None` when the trash holds none.
    pub fn trashed_size(&self, rel: &str) -> Result<Option<u64>, FileError> {
        let (dirs, name) = split_checked(rel)?;
        match self.find_dirs(trash_segments(&dirs), rel)? {
            Some(trash_parent) => file_size(&trash_parent, name, rel),
            None => Ok(None),
        }
    }

    /// Deletes the trashed copy of `rel` for good; `AlreadyGone` when the
    /// trash holds none. Folders of the trash it leaves empty go too.
    ///
    /// This is the one way anything leaves the trash for good, and only the
    /// database decides which copies may (`filegc.check_before_purge`).
    pub fn purge_trashed(&self, rel: &str) -> Result<RemoveOutcome, FileError> {
        let Some(bytes) = self.trashed_size(rel)? else {
            return Ok(RemoveOutcome::AlreadyGone);
        };
        let (dirs, name) = split_checked(rel)?;
        let trash_dirs: Vec<&OsStr> = trash_segments(&dirs).collect();
        if !self.remove_trashed_file(&trash_dirs, name, rel)? {
            return Ok(RemoveOutcome::AlreadyGone);
        }
        for depth in (1..trash_dirs.len()).rev() {
            self.remove_empty_dir(&trash_dirs[..depth], trash_dirs[depth], rel)?;
        }
        Ok(RemoveOutcome::Removed { bytes })
    }

    /// Each copy the trash holds: its original path (relative to the volume
    /// root; `None` for a name that is not UTF-8, which no row can
    /// reference) and its size, or what could not be read.
    pub fn trash_items(&self) -> impl Iterator<Item = Result<TrashItem, FileError>> + '_ {
        self.trash_entries(false).filter_map(|item| match item {
            Ok((_, metadata)) if metadata.is_dir() => None,
            Ok((rel, metadata)) => Some(Ok(TrashItem {
                path: slash_path(rel.strip_prefix(TRASH_DIR).unwrap_or(&rel)),
                bytes: metadata.len(),
            })),
            Err(problem) => Some(Err(problem)),
        })
    }

    /// Counts the files in the trash and their size.
    pub fn trash_usage(&self) -> TrashUsage {
        let mut usage = TrashUsage::default();
        for item in self.trash_items() {
            usage.count(item);
        }
        usage
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

    /// Deletes one trashed file; `false` when it was already gone.
    fn remove_trashed_file(
        &self,
        dirs: &[&OsStr],
        name: &OsStr,
        shown: &str,
    ) -> Result<bool, FileError> {
        let Some(parent) = self.find_dirs(dirs.iter().copied(), shown)? else {
            return Ok(false);
        };
        match rustix::fs::unlinkat(&parent, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(errno) => Err(io_error(shown, "delete it from the trash", errno)),
        }
    }

    fn remove_empty_dir(
        &self,
        dirs: &[&OsStr],
        name: &OsStr,
        shown: &str,
    ) -> Result<(), FileError> {
        let Some(parent) = self.find_dirs(dirs.iter().copied(), shown)? else {
            return Ok(());
        };
        match rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR) {
            // A folder that still holds files not yet due stays, as it should.
            Ok(()) | Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST) => Ok(()),
            Err(errno) => Err(io_error(shown, "remove the emptied folder", errno)),
        }
    }

    /// Everything under the trash folder (not the folder itself), with paths relative to the root.
    fn trash_entries(
        &self,
        contents_first: bool,
    ) -> impl Iterator<Item = Result<(PathBuf, Metadata), FileError>> + '_ {
        // The trash folder is checked through the handle first: a trash
        // folder that is a symlink is reported, never walked.
        let (walk, setup_problem) = match self.find_dirs([OsStr::new(TRASH_DIR)], TRASH_DIR) {
            Ok(Some(_)) => {
                let walk = WalkDir::new(self.root.join(TRASH_DIR))
                    .follow_links(false)
                    .follow_root_links(false)
                    .same_file_system(true)
                    .contents_first(contents_first)
                    .min_depth(1);
                (Some(walk), None)
            }
            Ok(None) => (None, None),
            Err(problem) => (None, Some(Err(problem))),
        };
        setup_problem
            .into_iter()
            .chain(walk.into_iter().flatten().map(move |item| match item {
                Ok(entry) => {
                    let rel = entry
                        .path()
                        .strip_prefix(&self.root)
                        .unwrap_or(entry.path())
                        .to_owned();
                    entry
                        .metadata()
                        .map(|metadata| (rel.clone(), metadata))
                        .map_err(|error| walk_error(&self.root, error, &rel))
                }
                Err(error) => {
                    let path = error.path().unwrap_or(&self.root).to_owned();
                    Err(walk_error(&self.root, error, &path))
                }
            }))
    }

    /// Opens the folders `segments` under the root without following links; `None` when one is missing.
    fn find_dirs<'a>(
        &self,
        segments: impl IntoIterator<Item = &'a OsStr>,
        shown: &str,
    ) -> Result<Option<DirFd<'_>>, FileError> {
        self.open_dirs(segments, shown, false)
    }

    /// Opens the folders `segments` under the root without following links, creating missing ones.
    fn make_dirs<'a>(
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
enum DirFd<'root> {
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
    fn into_owned(self) -> io::Result<OwnedFd> {
        match self {
            DirFd::Root(root) => root.try_clone_to_owned(),
            DirFd::Opened(dir) => Ok(dir),
        }
    }
}

/// Opens the folders `segments` under `root` without following links,
/// creating missing ones when `create`; `None` when one is missing.
fn open_dirs_under<'root, 'a>(
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

/// The walk's stream of entries and problems; see [`Volume::walk`].
pub struct Walk {
    root: PathBuf,
    /// The volume's root, from which the walk opens each folder it lists.
    root_dir: Option<OwnedFd>,
    inner: walkdir::FilterEntry<walkdir::IntoIter, fn(&walkdir::DirEntry) -> bool>,
    /// The folder of the latest entry.
    folder: Option<Folder>,
}

/// A folder the walk lists, open, so that each of its files is inspected by
/// name within it: inspecting it by its full path would look up every
/// folder on the way again, for every file, which costs more than the
/// inspection itself.
struct Folder {
    /// The folder's path as the walk names it.
    path: PathBuf,
    /// Its path relative to the root with `/` between segments; `None` when not UTF-8.
    rel: Option<String>,
    /// The open folder; `None` when it could not be opened, and its files
    /// are then inspected by their full paths.
    dir: Option<OwnedFd>,
}

impl Iterator for Walk {
    type Item = WalkItem;

    fn next(&mut self) -> Option<WalkItem> {
        loop {
            let item = match self.inner.next()? {
                Ok(entry) if entry.depth() > 0 && !entry.file_type().is_dir() => self.item(&entry),
                Ok(_) => continue,
                Err(error) => {
                    let path = error.path().unwrap_or(&self.root).to_owned();
                    WalkItem::Problem(walk_error(&self.root, error, &path))
                }
            };
            // A file deleted while the walk passes by (the sweeper at work) is
            // simply not on the volume any more: no problem to report.
            let vanished = matches!(&item, WalkItem::Problem(problem)
                if problem.io_error().is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound));
            if !vanished {
                return Some(item);
            }
        }
    }
}

impl Walk {
    fn item(&mut self, entry: &walkdir::DirEntry) -> WalkItem {
        let parent = entry.path().parent().unwrap_or(&self.root);
        if self
            .folder
            .as_ref()
            .is_none_or(|folder| folder.path.as_os_str() != parent.as_os_str())
        {
            self.folder = Some(self.open_folder(parent));
        }
        let folder = self.folder.as_ref().expect("opened above");
        let name = entry.file_name();
        let path = match (&folder.rel, name.to_str()) {
            (Some(rel), Some(name)) if rel.is_empty() => name.to_owned(),
            (Some(rel), Some(name)) => format!("{rel}/{name}"),
            _ => {
                let rel = entry
                    .path()
                    .strip_prefix(&self.root)
                    .unwrap_or(entry.path());
                return WalkItem::Problem(FileError::NameNotUtf8 {
                    path: rel.to_string_lossy().into_owned(),
                });
            }
        };
        // No row can reference a path this long (see path_rules), and the
        // inventory's index could not hold it: the file is never filegc's.
        if path.len() > MAX_PATH_BYTES {
            return WalkItem::Problem(FileError::Invalid {
                path,
                reason: InvalidReason::TooLong,
            });
        }
        let file_type = entry.file_type();
        let kind = if file_type.is_fifo() {
            Some("FIFO")
        } else if file_type.is_socket() {
            Some("socket")
        } else if file_type.is_block_device() || file_type.is_char_device() {
            Some("device")
        } else {
            None
        };
        if let Some(kind) = kind {
            return WalkItem::Problem(FileError::NotAFile { path, kind });
        }
        let (size_bytes, modified) = match &folder.dir {
            Some(dir) => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => (
                    u64::try_from(stat.st_size).unwrap_or_default(),
                    modification_time(&stat),
                ),
                Err(errno) => return WalkItem::Problem(io_error(&path, "read it", errno)),
            },
            None => match self.metadata_by_path(entry, &path) {
                Ok(found) => found,
                Err(problem) => return WalkItem::Problem(problem),
            },
        };
        WalkItem::Entry(Entry {
            path,
            size_bytes,
            modified,
            is_symlink: file_type.is_symlink(),
        })
    }

    /// Opens the folder `parent` through the root's handle, never through a link.
    fn open_folder(&self, parent: &Path) -> Folder {
        let rel = parent.strip_prefix(&self.root).unwrap_or(parent);
        let dir = self.root_dir.as_ref().and_then(|root| {
            open_dirs_under(
                root.as_fd(),
                normal_segments(rel),
                &rel.to_string_lossy(),
                false,
            )
            .ok()
            .flatten()
            .and_then(|dir| dir.into_owned().ok())
        });
        Folder {
            path: parent.to_owned(),
            rel: slash_path(rel),
            dir,
        }
    }

    /// The size and modification time of `entry`, looked up by its full path.
    fn metadata_by_path(
        &self,
        entry: &walkdir::DirEntry,
        path: &str,
    ) -> Result<(u64, SystemTime), FileError> {
        let metadata = entry.metadata().map_err(|error| {
            let rel = entry
                .path()
                .strip_prefix(&self.root)
                .unwrap_or(entry.path());
            walk_error(&self.root, error, rel)
        })?;
        let modified = metadata.modified().map_err(|source| FileError::Io {
            path: path.into(),
            action: "read its modification time",
            source,
        })?;
        Ok((metadata.len(), modified))
    }
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

/// Keeps the walk out of the trash and out of the root's `lost+found`.
fn is_inventoried(entry: &walkdir::DirEntry) -> bool {
    if entry.depth() != 1 {
        return true;
    }
    let name = entry.file_name();
    !(name == TRASH_DIR || (name == LOST_AND_FOUND && entry.file_type().is_dir()))
}

/// Checks a path from outside and splits it into its folders and its file name.
fn split_checked(rel: &str) -> Result<(Vec<&OsStr>, &OsStr), FileError> {
    validate_relative(rel).map_err(|reason| FileError::Invalid {
        path: rel.into(),
        reason,
    })?;
    let mut segments: Vec<&OsStr> = rel.split('/').map(OsStr::new).collect();
    if segments[0] == TRASH_DIR {
        return Err(FileError::InTrash { path: rel.into() });
    }
    let name = segments.pop().unwrap_or_default();
    Ok((segments, name))
}

fn trash_segments<'a>(dirs: &'a [&'a OsStr]) -> impl Iterator<Item = &'a OsStr> + 'a {
    iter::once(OsStr::new(TRASH_DIR)).chain(dirs.iter().copied())
}

fn open_subdir(parent: &impl AsFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent.as_fd(), name, flags, Mode::empty())
}

/// The size of the file or link `name` in `parent`; `None` when there is none.
fn file_size(parent: &impl AsFd, name: &OsStr, shown: &str) -> Result<Option<u64>, FileError> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Directory => {
            Err(FileError::IsADirectory { path: shown.into() })
        }
        Ok(stat) => Ok(Some(u64::try_from(stat.st_size).unwrap_or_default())),
        Err(Errno::NOENT) => Ok(None),
        Err(errno) => Err(io_error(shown, "inspect it", errno)),
    }
}

fn normal_segments(path: &Path) -> impl Iterator<Item = &OsStr> {
    path.components().filter_map(|component| match component {
        Component::Normal(segment) => Some(segment),
        _ => None,
    })
}

/// A relative path with `/` between its segments, when every segment is UTF-8.
fn slash_path(rel: &Path) -> Option<String> {
    let segments: Option<Vec<&str>> = normal_segments(rel).map(OsStr::to_str).collect();
    segments.map(|segments| segments.join("/"))
}

fn walk_error(root: &Path, error: walkdir::Error, path: &Path) -> FileError {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let shown = if rel.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        rel.to_string_lossy().into_owned()
    };
    FileError::Io {
        path: shown,
        action: "read it",
        source: error.into(),
    }
}

fn io_error(path: &str, action: &'static str, errno: Errno) -> FileError {
    FileError::Io {
        path: path.into(),
        action,
        source: errno.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use tempfile::TempDir;

    /// A volume in a temporary folder, and a folder outside it that nothing may touch.
    struct Fixture {
        root: TempDir,
        outside: TempDir,
        volume: Volume,
    }

    impl Fixture {
        fn new() -> Fixture {
            let root = TempDir::new().unwrap();
            let outside = TempDir::new().unwrap();
            let volume = Volume::open(root.path()).unwrap();
            Fixture {
                root,
                outside,
                volume,
            }
        }

        fn write(&self, rel: &str, contents: &str) {
            let path = self.root.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, contents).unwrap();
        }

        fn read(&self, rel: &str) -> Option<String> {
            fs::read_to_string(self.root.path().join(rel)).ok()
        }

        fn exists(&self, rel: &str) -> bool {
            fs::symlink_metadata(self.root.path().join(rel)).is_ok()
        }

        fn canary(&self, name: &str) -> PathBuf {
            let path = self.outside.path().join(name);
            fs::write(&path, "canary").unwrap();
            path
        }

        fn walked(&self) -> (Vec<Entry>, Vec<FileError>) {
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

        fn walked_paths(&self) -> Vec<String> {
            self.walked()
                .0
                .into_iter()
                .map(|entry| entry.path)
                .collect()
        }
    }

    fn assert_canary_intact(path: &Path) {
        assert_eq!(fs::read_to_string(path).unwrap(), "canary");
    }

    /// Runs `work` on a thread that has dropped root's power to ignore permission bits.
    ///
    /// Capabilities are per thread on Linux, so the test runs as root or not
    /// and the rest of the test process keeps its own.
    #[cfg(target_os = "linux")]
    fn without_permission_override<T: Send>(work: impl FnOnce() -> T + Send) -> T {
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
    fn walk_reports_files_with_size_and_modification_time() {
        let fixture = Fixture::new();
        fixture.write("user_1_1700000000.jpg", "12345");
        fixture.write("sub/user_2_1700000001_2.png", "ab");
        let modified = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        fs::File::options()
            .write(true)
            .open(fixture.root.path().join("user_1_1700000000.jpg"))
            .unwrap()
            .set_modified(modified)
            .unwrap();
        let (entries, problems) = fixture.walked();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].path, "sub/user_2_1700000001_2.png");
        assert_eq!(entries[0].size_bytes, 2);
        assert_eq!(
            entries[1],
            Entry {
                path: "user_1_1700000000.jpg".into(),
                size_bytes: 5,
                modified,
                is_symlink: false,
            }
        );
    }

    #[test]
    fn walk_skips_the_trash_and_the_roots_lost_and_found() {
        let fixture = Fixture::new();
        fixture.write("user_1_1.jpg", "x");
        fixture.write(".filegc-trash/user_9_9.jpg", "x");
        fixture.write("lost+found/#12345", "x");
        fixture.write("sub/lost+found/user_3_3.jpg", "x");
        fixture.write("sub/.filegc-trash", "x");
        assert_eq!(
            fixture.walked_paths(),
            [
                "sub/.filegc-trash",
                "sub/lost+found/user_3_3.jpg",
                "user_1_1.jpg"
            ]
        );
    }

    #[test]
    fn walk_lists_a_symlinked_directory_as_a_link_and_never_enters_it() {
        let fixture = Fixture::new();
        fixture.canary("x.jpg");
        symlink(fixture.outside.path(), fixture.root.path().join("link")).unwrap();
        let (entries, problems) = fixture.walked();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].path, "link");
        assert!(entries[0].is_symlink);
    }

    #[test]
    fn walk_reports_special_files_and_undecodable_names_and_goes_on() {
        let fixture = Fixture::new();
        fixture.write("user_1_1.jpg", "x");
        let fifo = fixture.root.path().join("pipe");
        rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
        let bad_name = OsStr::from_bytes(b"user_\xff.jpg");
        fs::write(fixture.root.path().join(bad_name), "x").unwrap();
        let (entries, problems) = fixture.walked();
        assert_eq!(entries.len(), 1);
        let mut shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        shown.sort();
        assert_eq!(
            shown,
            [
                "pipe: is a FIFO, not a regular file; skipped",
                "user_\u{fffd}.jpg: the name is not valid UTF-8; skipped",
            ]
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn walk_reports_an_unreadable_folder_with_its_path() {
        let fixture = Fixture::new();
        fixture.write("locked/user_1_1.jpg", "x");
        fixture.write("user_2_2.jpg", "x");
        let locked = fixture.root.path().join("locked");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        let (entries, problems) = without_permission_override(|| fixture.walked());
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
        let paths: Vec<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
        assert_eq!(paths, ["user_2_2.jpg"]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path(), "locked");
        let kind = problems[0].io_error().map(io::Error::kind);
        assert_eq!(kind, Some(io::ErrorKind::PermissionDenied));
    }

    #[test]
    fn trash_moves_the_file_under_the_trash_folder_with_its_path() {
        let fixture = Fixture::new();
        fixture.write("sub/deep/user_1_1.jpg", "12345");
        let outcome = fixture.volume.trash("sub/deep/user_1_1.jpg").unwrap();
        assert_eq!(outcome, RemoveOutcome::Removed { bytes: 5 });
        assert!(!fixture.exists("sub/deep/user_1_1.jpg"));
        assert_eq!(
            fixture
                .read(".filegc-trash/sub/deep/user_1_1.jpg")
                .as_deref(),
            Some("12345")
        );
    }

    #[test]
    fn trash_replaces_an_older_trashed_copy() {
        let fixture = Fixture::new();
        fixture.write("user_1_1.jpg", "old");
        fixture.volume.trash("user_1_1.jpg").unwrap();
        fixture.write("user_1_1.jpg", "newer");
        let outcome = fixture.volume.trash("user_1_1.jpg").unwrap();
        assert_eq!(outcome, RemoveOutcome::Removed { bytes: 5 });
        assert_eq!(
            fixture.read(".filegc-trash/user_1_1.jpg").as_deref(),
            Some("newer")
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
    fn a_symlink_to_outside_is_trashed_as_a_link_and_its_target_survives() {
        let fixture = Fixture::new();
        let canary = fixture.canary("canary.jpg");
        symlink(&canary, fixture.root.path().join("user_1_1.jpg")).unwrap();
        let outcome = fixture.volume.trash("user_1_1.jpg").unwrap();
        assert!(matches!(outcome, RemoveOutcome::Removed { .. }));
        let trashed = fixture.root.path().join(".filegc-trash/user_1_1.jpg");
        assert!(fs::symlink_metadata(&trashed)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_canary_intact(&canary);
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
    fn restore_never_writes_through_a_symlinked_directory() {
        let fixture = Fixture::new();
        fixture.write(".filegc-trash/link/x.jpg", "trashed");
        symlink(fixture.outside.path(), fixture.root.path().join("link")).unwrap();
        let error = fixture.volume.restore("link/x.jpg").unwrap_err();
        assert!(matches!(error, FileError::ThroughSymlink { .. }), "{error}");
        assert!(!fixture.outside.path().join("x.jpg").exists());
        assert_eq!(
            fixture.read(".filegc-trash/link/x.jpg").as_deref(),
            Some("trashed")
        );
    }

    #[test]
    fn restore_never_reads_through_a_symlinked_directory_in_the_trash() {
        let fixture = Fixture::new();
        let canary = fixture.canary("y.jpg");
        fs::create_dir(fixture.root.path().join(TRASH_DIR)).unwrap();
        symlink(
            fixture.outside.path(),
            fixture.root.path().join(".filegc-trash/sub"),
        )
        .unwrap();
        let error = fixture.volume.restore("sub/y.jpg").unwrap_err();
        assert!(matches!(error, FileError::ThroughSymlink { .. }), "{error}");
        assert_canary_intact(&canary);
        assert!(!fixture.exists("sub/y.jpg"));
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
    fn restore_brings_a_file_back_and_recreates_its_folder() {
        let fixture = Fixture::new();
        fixture.write("sub/user_1_1.jpg", "12345");
        fixture.volume.trash("sub/user_1_1.jpg").unwrap();
        fs::remove_dir(fixture.root.path().join("sub")).unwrap();
        let outcome = fixture.volume.restore("sub/user_1_1.jpg").unwrap();
        assert_eq!(outcome, RestoreOutcome::Restored { bytes: 5 });
        assert_eq!(fixture.read("sub/user_1_1.jpg").as_deref(), Some("12345"));
        assert!(!fixture.exists(".filegc-trash/sub/user_1_1.jpg"));
    }

    #[test]
    fn restore_never_replaces_a_file_that_came_back() {
        let fixture = Fixture::new();
        fixture.write("user_1_1.jpg", "trashed");
        fixture.volume.trash("user_1_1.jpg").unwrap();
        fixture.write("user_1_1.jpg", "new upload");
        let outcome = fixture.volume.restore("user_1_1.jpg").unwrap();
        assert_eq!(outcome, RestoreOutcome::TargetExists);
        assert_eq!(fixture.read("user_1_1.jpg").as_deref(), Some("new upload"));
        assert_eq!(
            fixture.read(".filegc-trash/user_1_1.jpg").as_deref(),
            Some("trashed")
        );
    }

    #[test]
    fn restore_of_something_never_trashed_says_so() {
        let fixture = Fixture::new();
        assert_eq!(
            fixture.volume.restore("user_1_1.jpg").unwrap(),
            RestoreOutcome::NotInTrash
        );
        assert_eq!(
            fixture.volume.restore("sub/user_1_1.jpg").unwrap(),
            RestoreOutcome::NotInTrash
        );
    }

    #[test]
    fn purging_a_trashed_copy_removes_the_trash_folders_it_empties() {
        let fixture = Fixture::new();
        fixture.write("a/b/user_1_1.jpg", "12345");
        fixture.write("a/user_2_2.jpg", "123");
        fixture.volume.trash("a/b/user_1_1.jpg").unwrap();
        fixture.volume.trash("a/user_2_2.jpg").unwrap();
        assert_eq!(
            fixture.volume.purge_trashed("a/b/user_1_1.jpg").unwrap(),
            RemoveOutcome::Removed { bytes: 5 }
        );
        assert!(!fixture.exists(".filegc-trash/a/b"));
        assert!(
            fixture.exists(".filegc-trash/a/user_2_2.jpg"),
            "a folder that still holds a copy stays"
        );
        assert!(fixture.exists("a/b"), "folders outside the trash stay");
        assert_eq!(
            fixture.volume.purge_trashed("a/b/user_1_1.jpg").unwrap(),
            RemoveOutcome::AlreadyGone
        );
    }

    #[test]
    fn purge_removes_a_trashed_link_and_never_its_target() {
        let fixture = Fixture::new();
        let canary = fixture.canary("canary.jpg");
        symlink(&canary, fixture.root.path().join("user_1_1.jpg")).unwrap();
        fixture.volume.trash("user_1_1.jpg").unwrap();
        assert!(matches!(
            fixture.volume.purge_trashed("user_1_1.jpg").unwrap(),
            RemoveOutcome::Removed { .. }
        ));
        assert!(!fixture.exists(".filegc-trash/user_1_1.jpg"));
        assert_canary_intact(&canary);
    }

    #[test]
    fn the_trash_listing_never_enters_a_trash_folder_that_is_a_symlink() {
        let fixture = Fixture::new();
        let canary = fixture.canary("user_1_1.jpg");
        symlink(fixture.outside.path(), fixture.root.path().join(TRASH_DIR)).unwrap();
        let items: Vec<_> = fixture.volume.trash_items().collect();
        assert_eq!(items.len(), 1, "{items:?}");
        assert!(matches!(items[0], Err(FileError::ThroughSymlink { .. })));
        assert_canary_intact(&canary);
    }

    #[test]
    fn the_trash_listing_gives_each_copy_its_original_path() {
        let fixture = Fixture::new();
        fixture.write("a/b/user_1_1.jpg", "x");
        fixture.write("user_2_2.jpg", "x");
        fixture.volume.trash("a/b/user_1_1.jpg").unwrap();
        fixture.volume.trash("user_2_2.jpg").unwrap();
        let mut paths: Vec<String> = fixture
            .volume
            .trash_items()
            .map(|item| item.unwrap().path.unwrap())
            .collect();
        paths.sort();
        assert_eq!(paths, vec!["a/b/user_1_1.jpg", "user_2_2.jpg"]);
    }

    #[test]
    fn trash_usage_counts_trashed_files() {
        let fixture = Fixture::new();
        let usage = fixture.volume.trash_usage();
        assert_eq!((usage.files, usage.bytes), (0, 0));
        fixture.write("sub/user_1_1.jpg", "12345");
        fixture.write("user_2_2.jpg", "12");
        fixture.volume.trash("sub/user_1_1.jpg").unwrap();
        fixture.volume.trash("user_2_2.jpg").unwrap();
        let usage = fixture.volume.trash_usage();
        assert_eq!((usage.files, usage.bytes), (2, 7));
        assert!(usage.problems.is_empty());
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
