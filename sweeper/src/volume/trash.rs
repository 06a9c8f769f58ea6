//! The trash folder: moving files into it, bringing them back, purging them, and what it holds.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::iter;
use std::path::PathBuf;

use rustix::fs::{AtFlags, RenameFlags};
use rustix::io::Errno;
use walkdir::WalkDir;

use super::confined::{
    file_size, io_error, split_checked, FileError, RemoveOutcome, Volume, TRASH_DIR,
};
use super::walk::{slash_path, walk_error};

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

impl Volume {
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
}

fn trash_segments<'a>(dirs: &'a [&'a OsStr]) -> impl Iterator<Item = &'a OsStr> + 'a {
    iter::once(OsStr::new(TRASH_DIR)).chain(dirs.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::fixture::{assert_canary_intact, Fixture};
    use std::fs;
    use std::os::unix::fs::symlink;

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
}
