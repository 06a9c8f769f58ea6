//! The walk: every regular file and link under the root, as the scan inventories them.
//!
//! The walk reads the tree through `walkdir` without following links or
//! crossing into other file systems. It is synchronous and streams its items,
//! so a caller runs it on a blocking thread and forwards the items over a
//! bounded channel. [`Volume::paths`] is the same walk without a `stat` per
//! file, for a caller that needs only the names.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use filegc_path_rules::validate_relative;
use rustix::fs::AtFlags;
use walkdir::WalkDir;

use super::confined::{io_error, open_dirs_under, size_and_time, FileError, Volume, TRASH_DIR};

/// The folder every ext4 file system has at its root; never part of the inventory.
const LOST_AND_FOUND: &str = "lost+found";

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
    /// A bucket's object's ETag, as the listing gave it; `None` on a volume.
    pub etag: Option<String>,
}

impl Volume {
    /// Streams every regular file and link under the root, skipping the trash and `lost+found`.
    pub fn walk(&self) -> Walk {
        Walk {
            paths: self.paths(),
        }
    }

    /// The walk's paths, in the same order and with the same problems, without inspecting the files.
    pub fn paths(&self) -> Paths {
        let inner = WalkDir::new(&self.root)
            .follow_links(false)
            .same_file_system(true)
            .into_iter()
            .filter_entry(is_inventoried as fn(&walkdir::DirEntry) -> bool);
        Paths {
            root: self.root.clone(),
            root_dir: self.dir.try_clone().ok(),
            inner,
            folder: None,
        }
    }
}

/// The walk's stream of entries and problems; see [`Volume::walk`].
pub struct Walk {
    paths: Paths,
}

/// The walk's stream of paths and problems; see [`Volume::paths`].
pub struct Paths {
    root: PathBuf,
    /// The volume's root, from which the walk opens each folder it lists.
    root_dir: Option<OwnedFd>,
    inner: walkdir::FilterEntry<walkdir::IntoIter, fn(&walkdir::DirEntry) -> bool>,
    /// The folder of the latest path.
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

/// A regular file or a symbolic link the walk passed by, not yet inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The path relative to the root, with `/` between segments.
    pub path: String,
    /// Whether this is a symbolic link.
    pub is_symlink: bool,
}

/// A file deleted while the walk passes by (the sweeper at work) is simply
/// not on the volume any more: no problem to report.
fn vanished(problem: &FileError) -> bool {
    problem
        .io_error()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

impl Iterator for Paths {
    type Item = Result<Found, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let item = match self.inner.next()? {
                Ok(entry) if entry.depth() > 0 && !entry.file_type().is_dir() => self.found(&entry),
                Ok(_) => continue,
                Err(error) => {
                    let path = error.path().unwrap_or(&self.root).to_owned();
                    Err(walk_error(&self.root, error, &path))
                }
            };
            if !matches!(&item, Err(problem) if vanished(problem)) {
                return Some(item);
            }
        }
    }
}

impl Iterator for Walk {
    type Item = WalkItem;

    fn next(&mut self) -> Option<WalkItem> {
        loop {
            let item = match self.paths.next()? {
                Ok(found) => match self.paths.metadata(&found) {
                    Ok((size_bytes, modified)) => WalkItem::Entry(Entry {
                        path: found.path,
                        size_bytes,
                        modified,
                        is_symlink: found.is_symlink,
                        etag: None,
                    }),
                    Err(problem) if vanished(&problem) => continue,
                    Err(problem) => WalkItem::Problem(problem),
                },
                Err(problem) => WalkItem::Problem(problem),
            };
            return Some(item);
        }
    }
}

impl Paths {
    fn found(&mut self, entry: &walkdir::DirEntry) -> Result<Found, FileError> {
        let parent = entry.path().parent().unwrap_or(&self.root);
        if self
            .folder
            .as_ref()
            .is_none_or(|folder| folder.path.as_os_str() != parent.as_os_str())
        {
            self.folder = Some(self.open_folder(parent));
        }
        let folder = self.folder.as_ref().expect("opened above");
        let path = match (&folder.rel, entry.file_name().to_str()) {
            (Some(rel), Some(name)) if rel.is_empty() => name.to_owned(),
            (Some(rel), Some(name)) => format!("{rel}/{name}"),
            _ => {
                let rel = entry
                    .path()
                    .strip_prefix(&self.root)
                    .unwrap_or(entry.path());
                return Err(FileError::NameNotUtf8 {
                    path: rel.to_string_lossy().into_owned(),
                });
            }
        };
        // No row can reference a path the path rules refuse (one too long
        // for the inventory's index, a name with a backslash), and no route
        // can delete it: the file is never filegc's, and is reported as
        // the routes that refuse it report it.
        if let Err(reason) = validate_relative(&path) {
            return Err(FileError::Invalid { path, reason });
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
            return Err(FileError::NotAFile { path, kind });
        }
        Ok(Found {
            path,
            is_symlink: file_type.is_symlink(),
        })
    }

    /// The size and modification time of `found`, the latest path, never following a link.
    fn metadata(&self, found: &Found) -> Result<(u64, SystemTime), FileError> {
        let dir = self.folder.as_ref().and_then(|folder| folder.dir.as_ref());
        let name = found.path.rsplit('/').next().unwrap_or(&found.path);
        match dir {
            Some(dir) => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => Ok(size_and_time(&stat)),
                Err(errno) => Err(io_error(&found.path, "read it", errno)),
            },
            None => self.metadata_by_path(&found.path),
        }
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

    /// The size and modification time of the file at `path`, looked up by its full path.
    fn metadata_by_path(&self, path: &str) -> Result<(u64, SystemTime), FileError> {
        let full = self.root.join(path);
        let metadata = std::fs::symlink_metadata(&full).map_err(|source| FileError::Io {
            path: path.into(),
            action: "read it",
            source,
        })?;
        let modified = metadata.modified().map_err(|source| FileError::Io {
            path: path.into(),
            action: "read its modification time",
            source,
        })?;
        Ok((metadata.len(), modified))
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

fn normal_segments(path: &Path) -> impl Iterator<Item = &OsStr> {
    path.components().filter_map(|component| match component {
        Component::Normal(segment) => Some(segment),
        _ => None,
    })
}

/// A relative path with `/` between its segments, when every segment is UTF-8.
pub(super) fn slash_path(rel: &Path) -> Option<String> {
    let segments: Option<Vec<&str>> = normal_segments(rel).map(OsStr::to_str).collect();
    segments.map(|segments| segments.join("/"))
}

pub(super) fn walk_error(root: &Path, error: walkdir::Error, path: &Path) -> FileError {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::fixture::{without_permission_override, Fixture};
    use rustix::fs::{FileType, Mode, CWD};
    use std::fs;
    use std::io;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::time::{Duration, UNIX_EPOCH};

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
                etag: None,
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
}
