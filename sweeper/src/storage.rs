//! Where the files are, as the sweep sees it: a volume or a bucket, each
//! with a trash beside the files. The sweep, the trash's restores and purges
//! and the bringing back of kept copies are written once against this trait;
//! only the database decides what may go, and these operations do only what
//! they are told, for one path at a time.

use std::future::Future;

use crate::bucket::{Bucket, ObjectVersion};
use crate::volume::{Capacity, FileError, RemoveOutcome, RestoreOutcome, TrashUsage, Volume};

/// The operations a sweep needs on a file store. Every path is relative to
/// the store's root (a volume's mount point, a bucket's prefix) and is
/// checked by the path rules before anything is touched.
pub trait Storage {
    /// The store as runs record it: a volume's mount point, `s3://bucket/prefix/`.
    fn location(&self) -> String;

    /// Whether the inventory keeps the version of each file the store's
    /// listing saw, for the sweep to give [`Storage::trash`] and
    /// [`Storage::unlink`]: a bucket's objects have ETags, a volume's files none.
    fn lists_versions(&self) -> bool {
        false
    }

    /// Moves `path` into the trash, replacing an older trashed copy of the
    /// same path; only the version `listed` when one is given (an error,
    /// which the sweep retries, when the file is another version now).
    fn trash(
        &self,
        path: &str,
        listed: Option<&ObjectVersion>,
    ) -> impl Future<Output = Result<RemoveOutcome, FileError>> + Send;

    /// Deletes `path` for good, without passing through the trash; only the
    /// version `listed` when one is given, as [`Storage::trash`].
    fn unlink(
        &self,
        path: &str,
        listed: Option<&ObjectVersion>,
    ) -> impl Future<Output = Result<RemoveOutcome, FileError>> + Send;

    /// Moves the trashed copy of `path` back, unless something is already there.
    fn restore(&self, path: &str)
        -> impl Future<Output = Result<RestoreOutcome, FileError>> + Send;

    /// Whether a file stands at `path` (outside the trash).
    fn holds(&self, path: &str) -> impl Future<Output = Result<bool, FileError>> + Send;

    /// The size of the trashed copy of `path`; `None` when the trash holds none.
    fn trashed_size(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Option<u64>, FileError>> + Send;

    /// Deletes the trashed copy of `path` for good; `AlreadyGone` when the trash holds none.
    fn purge_trashed(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<RemoveOutcome, FileError>> + Send;

    /// What the trash holds now.
    fn trash_usage(&self) -> impl Future<Output = TrashUsage> + Send;
}

impl Storage for Volume {
    fn location(&self) -> String {
        self.root().display().to_string()
    }

    async fn trash(
        &self,
        path: &str,
        _: Option<&ObjectVersion>,
    ) -> Result<RemoveOutcome, FileError> {
        Volume::trash(self, path)
    }

    async fn unlink(
        &self,
        path: &str,
        _: Option<&ObjectVersion>,
    ) -> Result<RemoveOutcome, FileError> {
        Volume::unlink(self, path)
    }

    async fn restore(&self, path: &str) -> Result<RestoreOutcome, FileError> {
        Volume::restore(self, path)
    }

    async fn holds(&self, path: &str) -> Result<bool, FileError> {
        Volume::holds(self, path)
    }

    async fn trashed_size(&self, path: &str) -> Result<Option<u64>, FileError> {
        Volume::trashed_size(self, path)
    }

    async fn purge_trashed(&self, path: &str) -> Result<RemoveOutcome, FileError> {
        Volume::purge_trashed(self, path)
    }

    async fn trash_usage(&self) -> TrashUsage {
        Volume::trash_usage(self)
    }
}

impl Storage for Bucket {
    fn location(&self) -> String {
        Bucket::location(self).to_string()
    }

    fn lists_versions(&self) -> bool {
        true
    }

    async fn trash(
        &self,
        path: &str,
        listed: Option<&ObjectVersion>,
    ) -> Result<RemoveOutcome, FileError> {
        Bucket::trash(self, path, listed).await
    }

    async fn unlink(
        &self,
        path: &str,
        listed: Option<&ObjectVersion>,
    ) -> Result<RemoveOutcome, FileError> {
        Bucket::unlink(self, path, listed).await
    }

    async fn restore(&self, path: &str) -> Result<RestoreOutcome, FileError> {
        Bucket::restore(self, path).await
    }

    async fn holds(&self, path: &str) -> Result<bool, FileError> {
        Bucket::holds(self, path).await
    }

    async fn trashed_size(&self, path: &str) -> Result<Option<u64>, FileError> {
        Bucket::trashed_size(self, path).await
    }

    async fn purge_trashed(&self, path: &str) -> Result<RemoveOutcome, FileError> {
        Bucket::purge_trashed(self, path).await
    }

    async fn trash_usage(&self) -> TrashUsage {
        Bucket::trash_usage(self).await
    }
}

/// The store a long-running sweeper was given: a volume, which has a
/// capacity to report, or a bucket, which has none.
#[derive(Debug)]
pub enum Store {
    /// A volume, by its mount point.
    Volume(Volume),
    /// An S3-compatible bucket and prefix (boxed: its client is large beside a volume).
    Bucket(Box<Bucket>),
}

impl Storage for Store {
    fn location(&self) -> String {
        match self {
            Store::Volume(volume) => Storage::location(volume),
            Store::Bucket(bucket) => Storage::location(&**bucket),
        }
    }

    fn lists_versions(&self) -> bool {
        matches!(self, Store::Bucket(_))
    }

    async fn trash(
        &self,
        path: &str,
        listed: Option<&ObjectVersion>,
    ) -> Result<RemoveOutcome, FileError> {
        match self {
            Store::Volume(volume) => Volume::trash(volume, path),
            Store::Bucket(bucket) => bucket.trash(path, listed).await,
        }
    }

    async fn unlink(
        &self,
        path: &str,
        listed: Option<&ObjectVersion>,
    ) -> Result<RemoveOutcome, FileError> {
        match self {
            Store::Volume(volume) => Volume::unlink(volume, path),
            Store::Bucket(bucket) => bucket.unlink(path, listed).await,
        }
    }

    async fn restore(&self, path: &str) -> Result<RestoreOutcome, FileError> {
        match self {
            Store::Volume(volume) => Volume::restore(volume, path),
            Store::Bucket(bucket) => bucket.restore(path).await,
        }
    }

    async fn holds(&self, path: &str) -> Result<bool, FileError> {
        match self {
            Store::Volume(volume) => Volume::holds(volume, path),
            Store::Bucket(bucket) => bucket.holds(path).await,
        }
    }

    async fn trashed_size(&self, path: &str) -> Result<Option<u64>, FileError> {
        match self {
            Store::Volume(volume) => Volume::trashed_size(volume, path),
            Store::Bucket(bucket) => bucket.trashed_size(path).await,
        }
    }

    async fn purge_trashed(&self, path: &str) -> Result<RemoveOutcome, FileError> {
        match self {
            Store::Volume(volume) => Volume::purge_trashed(volume, path),
            Store::Bucket(bucket) => bucket.purge_trashed(path).await,
        }
    }

    async fn trash_usage(&self) -> TrashUsage {
        match self {
            Store::Volume(volume) => Volume::trash_usage(volume),
            Store::Bucket(bucket) => bucket.trash_usage().await,
        }
    }
}

impl Store {
    /// The file system's size and use; `None` for a bucket, or when it cannot be read.
    pub fn capacity(&self) -> Option<Capacity> {
        match self {
            Store::Volume(volume) => volume.capacity().ok(),
            Store::Bucket(_) => None,
        }
    }
}
