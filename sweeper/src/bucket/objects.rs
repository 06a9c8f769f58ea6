//! The bucket's objects and its trash: what the sweep does to one path, as
//! the volume does it with renames.
//!
//! A bucket has no rename: an object goes into the trash as a server-side
//! copy to `PREFIX/.filegc-trash/PATH`, then the deletion of the original,
//! and comes back the same way. An interruption between the two leaves the
//! object in both places; the next attempt does both steps again (the copy
//! replaces the trashed one with the same object), as the sweep retries a
//! failed deletion.

use std::io;
use std::time::Duration;

use filegc_path_rules::validate_relative;
use rusty_s3::actions::{DeleteObject, HeadObject, PutObject};
use rusty_s3::S3Action;

use super::client::{Bucket, BucketError};
use crate::volume::{FileError, RemoveOutcome, RestoreOutcome, TrashUsage, TRASH_DIR};

/// How long a signed request stays valid.
const SIGNATURE_LIFETIME: Duration = Duration::from_secs(300);

impl Bucket {
    /// The key of `path`, checked by the rules every path follows before a request names it.
    fn key_of(&self, path: &str) -> Result<String, FileError> {
        validate_relative(path).map_err(|reason| FileError::Invalid {
            path: path.to_owned(),
            reason,
        })?;
        if path
            .strip_prefix(TRASH_DIR)
            .is_some_and(|rest| rest.starts_with('/'))
        {
            return Err(FileError::InTrash {
                path: path.to_owned(),
            });
        }
        Ok(format!("{}{path}", self.location().prefix))
    }

    /// The key of the trashed copy of `path`.
    fn trash_key_of(&self, path: &str) -> Result<String, FileError> {
        self.key_of(path)?;
        Ok(format!("{}{TRASH_DIR}/{path}", self.location().prefix))
    }

    /// The size of the object at `key`; `None` when there is none.
    async fn size_of(&self, key: &str) -> Result<Option<u64>, BucketError> {
        let (target, credentials) = self.target();
        let answer = self
            .request("look at an object", reqwest::Method::HEAD, || {
                (
                    HeadObject::new(target, Some(credentials), key).sign(SIGNATURE_LIFETIME),
                    Vec::new(),
                )
            })
            .await?;
        if answer.not_found() {
            return Ok(None);
        }
        Ok(Some(answer.content_length.unwrap_or(0)))
    }

    /// Deletes the object at `key`; a key with no object is not an error (S3 answers 204 for both).
    async fn delete_key(&self, key: &str) -> Result<(), BucketError> {
        let (target, credentials) = self.target();
        self.request("delete an object", reqwest::Method::DELETE, || {
            (
                DeleteObject::new(target, Some(credentials), key).sign(SIGNATURE_LIFETIME),
                Vec::new(),
            )
        })
        .await?;
        Ok(())
    }

    /// Copies the object at `from` to `to` on the server, replacing what is
    /// at `to`; false when `from` has no object.
    async fn copy_key(&self, from: &str, to: &str) -> Result<bool, BucketError> {
        let (target, credentials) = self.target();
        let source = format!(
            "/{}/{}",
            self.location().bucket,
            percent_encoding::utf8_percent_encode(from, KEY_IN_COPY_SOURCE)
        );
        let answer = self
            .request("copy an object", reqwest::Method::PUT, || {
                let mut put = PutObject::new(target, Some(credentials), to);
                // AWS refuses an x-amz-* header that is not signed.
                put.headers_mut()
                    .insert("x-amz-copy-source", source.clone());
                (
                    put.sign(SIGNATURE_LIFETIME),
                    vec![("x-amz-copy-source", source.clone())],
                )
            })
            .await?;
        // A copy can fail after its 200 (S3 then sends an error document).
        if answer.body.contains("<Error>") {
            return Err(BucketError::BadAnswer {
                location: self.location().clone(),
                action: "copy an object",
                reason: answer.body.chars().take(500).collect(),
            });
        }
        Ok(!answer.not_found())
    }

    /// Moves `path` into the trash, replacing an older trashed copy of the same path.
    pub async fn trash(&self, path: &str) -> Result<RemoveOutcome, FileError> {
        let key = self.key_of(path)?;
        let trash_key = self.trash_key_of(path)?;
        let failed = failure(path, "move it into the trash");
        let Some(bytes) = self.size_of(&key).await.map_err(&failed)? else {
            return Ok(RemoveOutcome::AlreadyGone);
        };
        if !self.copy_key(&key, &trash_key).await.map_err(&failed)? {
            return Ok(RemoveOutcome::AlreadyGone);
        }
        self.delete_key(&key).await.map_err(&failed)?;
        Ok(RemoveOutcome::Removed { bytes })
    }

    /// Deletes `path` for good, without passing through the trash.
    pub async fn unlink(&self, path: &str) -> Result<RemoveOutcome, FileError> {
        let key = self.key_of(path)?;
        let failed = failure(path, "delete it");
        let Some(bytes) = self.size_of(&key).await.map_err(&failed)? else {
            return Ok(RemoveOutcome::AlreadyGone);
        };
        self.delete_key(&key).await.map_err(&failed)?;
        Ok(RemoveOutcome::Removed { bytes })
    }

    /// Moves the trashed copy of `path` back, unless an object is already there.
    pub async fn restore(&self, path: &str) -> Result<RestoreOutcome, FileError> {
        let key = self.key_of(path)?;
        let trash_key = self.trash_key_of(path)?;
        let failed = failure(path, "restore it from the trash");
        let Some(bytes) = self.size_of(&trash_key).await.map_err(&failed)? else {
            return Ok(RestoreOutcome::NotInTrash);
        };
        if self.size_of(&key).await.map_err(&failed)?.is_some() {
            return Ok(RestoreOutcome::TargetExists);
        }
        if !self.copy_key(&trash_key, &key).await.map_err(&failed)? {
            return Ok(RestoreOutcome::NotInTrash);
        }
        self.delete_key(&trash_key).await.map_err(&failed)?;
        Ok(RestoreOutcome::Restored { bytes })
    }

    /// Whether an object stands at `path` (outside the trash).
    pub async fn holds(&self, path: &str) -> Result<bool, FileError> {
        let key = self.key_of(path)?;
        let size = self.size_of(&key).await;
        Ok(size.map_err(failure(path, "look at it"))?.is_some())
    }

    /// The size of the trashed copy of `path`; `None` when the trash holds none.
    pub async fn trashed_size(&self, path: &str) -> Result<Option<u64>, FileError> {
        let trash_key = self.trash_key_of(path)?;
        let size = self.size_of(&trash_key).await;
        size.map_err(failure(path, "look at its trashed copy"))
    }

    /// Deletes the trashed copy of `path` for good; `AlreadyGone` when the trash holds none.
    pub async fn purge_trashed(&self, path: &str) -> Result<RemoveOutcome, FileError> {
        let trash_key = self.trash_key_of(path)?;
        let failed = failure(path, "delete its trashed copy");
        let Some(bytes) = self.size_of(&trash_key).await.map_err(&failed)? else {
            return Ok(RemoveOutcome::AlreadyGone);
        };
        self.delete_key(&trash_key).await.map_err(&failed)?;
        Ok(RemoveOutcome::Removed { bytes })
    }

    /// One page of the trash's copies, by the paths they were deleted from,
    /// from the start (`None`) or from a page's `next` token.
    pub async fn trash_page(
        &self,
        continuation: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), BucketError> {
        let trash_prefix = format!("{}{TRASH_DIR}/", self.location().prefix);
        let page = self
            .with_prefix(&trash_prefix)
            .list_page(continuation)
            .await?;
        let paths = page
            .objects
            .into_iter()
            .filter_map(|object| {
                let path = object.key.strip_prefix(&trash_prefix)?;
                // Only a path the rules allow can have been trashed by a sweep.
                validate_relative(path).ok()?;
                Some(path.to_owned())
            })
            .collect();
        Ok((paths, page.next))
    }

    /// What the trash holds now, counted over a listing of the trash folder.
    pub async fn trash_usage(&self) -> TrashUsage {
        let mut usage = TrashUsage::default();
        let trash = self.with_prefix(&format!("{}{TRASH_DIR}/", self.location().prefix));
        let mut continuation: Option<String> = None;
        loop {
            match trash.list_page(continuation.as_deref()).await {
                Ok(page) => {
                    for object in page.objects {
                        usage.files += 1;
                        usage.bytes += object.size_bytes.unwrap_or(0);
                    }
                    match page.next {
                        Some(next) => continuation = Some(next),
                        None => return usage,
                    }
                }
                Err(error) => {
                    usage
                        .problems
                        .push(failure(TRASH_DIR, "list the trash")(error));
                    return usage;
                }
            }
        }
    }
}

/// Every byte of a key but the unreserved ones and `/`, percent-encoded, as
/// `x-amz-copy-source` wants it.
const KEY_IN_COPY_SOURCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Turns a failed request into the error the sweep records for `path`.
fn failure<'a>(path: &'a str, action: &'static str) -> impl Fn(BucketError) -> FileError + 'a {
    move |error| FileError::Io {
        path: path.to_owned(),
        action,
        source: io::Error::other(error.to_string()),
    }
}
