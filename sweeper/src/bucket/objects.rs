//! The bucket's objects and its trash: what the sweep does to one path, as
//! the volume does it with renames.
//!
//! A bucket has no rename: an object goes into the trash as a server-side
//! copy to `PREFIX/.filegc-trash/PATH`, then the deletion of the original,
//! and comes back as a write that refuses to replace an object at the path
//! (see [`Bucket::copy_back`]), then the deletion of the trashed copy. An
//! interruption between the two leaves the
//! object in both places; the next attempt does both steps again (the copy
//! replaces the trashed one with the same object), as the sweep retries a
//! failed deletion.
//!
//! Each deletion is of the version the listing saw (or a look saw, for a
//! path no listing recorded): the copy and the deletion carry its ETag
//! (`x-amz-copy-source-if-match`, `If-Match`), so an object uploaded again
//! at the path in the meantime is not deleted unseen; the deletion fails
//! and the sweep tries it again later, as it does any failed deletion. A
//! service that does not implement the deletion's condition gets a look
//! just before each deletion instead (see `delete_key`).

use std::io;

use filegc_path_rules::validate_relative;
use rusty_s3::actions::{DeleteObject, GetObject, HeadObject, PutObject};
use rusty_s3::S3Action;

use super::client::{Bucket, BucketError, ListFrom, SIGNATURE_LIFETIME};
use crate::volume::{check_path, FileError, RemoveOutcome, RestoreOutcome, TrashUsage, TRASH_DIR};

/// Trashed copies up to this size come back through the sweeper (read, then
/// written where nothing stands, a condition the service checks); larger ones
/// by a copy on the server, which cannot refuse to replace an upload made at
/// the path in between, rather than held in the memory of the application's
/// container.
const RESTORE_THROUGH_MEMORY_MAX: u64 = 64 * 1024 * 1024;

/// How writing a trashed copy back to its path ended.
enum CopyBack {
    /// The copy stands at the path.
    Written,
    /// An object stood at the path: nothing was written.
    TargetExists,
    /// The trashed copy is gone, or is another version now.
    SourceGone,
}

/// One version of an object, as a HEAD saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// Its size.
    pub size_bytes: u64,
    /// Its ETag; `None` when the service sent none (deletions are then unconditional).
    pub etag: Option<String>,
}

/// The folder of the trash where the probes of conditional deletes are
/// written and deleted (see `Bucket::probe_conditional_deletes`); one a
/// sweeper killed between the two left there stays, an empty object the
/// trash's reports count among the files kept.
const PROBE_DIR: &str = ".filegc-probe";

/// An ETag no object has (an ETag is quoted hex): what a probe is deleted with.
const NO_SUCH_ETAG: &str = "\"filegc-probe\"";

/// What the service made of one DELETE.
#[derive(Debug, PartialEq, Eq)]
enum Deletion {
    /// The object is gone; also what S3 answers (204) where none was there.
    Done,
    /// No object was there: the service said so (404), or a look found none.
    Gone,
    /// Refused: the object is not the version the condition named.
    Refused,
    /// The service does not implement the condition.
    Unsupported,
}

impl Bucket {
    /// The key of `path`, checked by the rules every path follows before a request names it.
    fn key_of(&self, path: &str) -> Result<String, FileError> {
        check_path(path)?;
        Ok(format!("{}{path}", self.location().prefix))
    }

    /// The key of the trashed copy of `path`.
    fn trash_key_of(&self, path: &str) -> Result<String, FileError> {
        self.key_of(path)?;
        Ok(format!("{}{TRASH_DIR}/{path}", self.location().prefix))
    }

    /// The object at `key`; `None` when there is none.
    async fn look_key(&self, key: &str) -> Result<Option<ObjectVersion>, BucketError> {
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
        if !answer.status.is_success() {
            return Err(answer.into_error(self, "look at an object"));
        }
        Ok(Some(ObjectVersion {
            size_bytes: answer.content_length.unwrap_or(0),
            etag: answer.etag,
        }))
    }

    /// The size of the object at `key`; `None` when there is none.
    async fn size_of(&self, key: &str) -> Result<Option<u64>, BucketError> {
        Ok(self.look_key(key).await?.map(|version| version.size_bytes))
    }

    /// Deletes the object at `key`, only while it is still `version` when
    /// one is given: `Refused` when it is not. On a service that does not
    /// implement the condition, or ignores it (see
    /// `probe_conditional_deletes`), the object is looked at first and
    /// deleted only when the look finds that version: an upload can then slip
    /// in only between the two requests, not since the listing. Never
    /// `Unsupported`.
    async fn delete_key(
        &self,
        key: &str,
        version: Option<&ObjectVersion>,
    ) -> Result<Deletion, BucketError> {
        let Some(etag) = version.and_then(|version| version.etag.as_deref()) else {
            return self.send_delete(key, None).await;
        };
        self.probe_conditional_deletes().await;
        if !self.deletes_unconditionally() {
            match self.send_delete(key, Some(etag)).await? {
                Deletion::Unsupported => self.note_unconditional_deletes(),
                answered => return Ok(answered),
            }
        }
        match self.look_key(key).await? {
            None => Ok(Deletion::Gone),
            Some(now) if now.etag.as_deref() != Some(etag) => Ok(Deletion::Refused),
            Some(_) => self.send_delete(key, None).await,
        }
    }

    /// Finds out, once per bucket, whether the service checks a deletion's
    /// `If-Match` at all: a service that ignores it without a word (moto
    /// ignores other conditions so) would delete an object written since the
    /// listing. A probe object in the trash folder is deleted with an ETag no
    /// object has; unless the service refuses that, or when the probe cannot
    /// be made (a role without the right to write, say), the deletions look
    /// at each object first, as where the condition is not implemented.
    async fn probe_conditional_deletes(&self) {
        self.once_deletes_probed(|| async {
            match self.deletes_check_if_match().await {
                Ok(Deletion::Refused) => {}
                Ok(Deletion::Unsupported) => self.note_unconditional_deletes(),
                Ok(Deletion::Done) => {
                    tracing::warn!(
                        bucket = %self.location(),
                        "the service ignores the condition of a conditional delete (If-Match): a probe object went with an ETag it did not have"
                    );
                    self.note_unconditional_deletes();
                }
                Ok(Deletion::Gone) => {
                    tracing::warn!(
                        bucket = %self.location(),
                        "cannot find out whether the service checks the condition of a conditional delete (If-Match): a probe object just written was not found"
                    );
                    self.note_unconditional_deletes();
                }
                Err(error) => {
                    tracing::warn!(
                        bucket = %self.location(),
                        error = %error,
                        "cannot find out whether the service checks the condition of a conditional delete (If-Match)"
                    );
                    self.note_unconditional_deletes();
                }
            }
        })
        .await;
    }

    /// What the service makes of a DELETE of a probe object with an
    /// `If-Match` no object matches; the probe is gone afterwards either way.
    async fn deletes_check_if_match(&self) -> Result<Deletion, BucketError> {
        const WRITE: &str = "write a probe object";
        let key = format!(
            "{}{TRASH_DIR}/{PROBE_DIR}/{}-{}",
            self.location().prefix,
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let (target, credentials) = self.target();
        let written = self
            .request_with_body(
                WRITE,
                reqwest::Method::PUT,
                || {
                    (
                        PutObject::new(target, Some(credentials), &key).sign(SIGNATURE_LIFETIME),
                        Vec::new(),
                    )
                },
                Some(bytes::Bytes::new()),
            )
            .await?;
        if !written.status.is_success() {
            return Err(written.into_error(self, WRITE));
        }
        let answer = self.send_delete(&key, Some(NO_SUCH_ETAG)).await?;
        self.send_delete(&key, None).await?;
        Ok(answer)
    }

    /// One DELETE of `key`, with `If-Match: etag` when one is given.
    async fn send_delete(&self, key: &str, etag: Option<&str>) -> Result<Deletion, BucketError> {
        const ACTION: &str = "delete an object";
        let (target, credentials) = self.target();
        let answer = self
            .request(ACTION, reqwest::Method::DELETE, || {
                let headers = etag
                    .iter()
                    .map(|etag| ("if-match".to_owned(), (*etag).to_owned()))
                    .collect();
                (
                    DeleteObject::new(target, Some(credentials), key).sign(SIGNATURE_LIFETIME),
                    headers,
                )
            })
            .await?;
        if etag.is_some() && answer.unsupported() {
            return Ok(Deletion::Unsupported);
        }
        if answer.changed() {
            return Ok(Deletion::Refused);
        }
        if answer.not_found() {
            return Ok(Deletion::Gone);
        }
        if !answer.status.is_success() {
            return Err(answer.into_error(self, ACTION));
        }
        Ok(Deletion::Done)
    }

    /// Copies the object at `from` to `to` on the server, replacing what is
    /// at `to`, only while `from` is still `version` when it has an ETag;
    /// returns the copy's ETag (`None` when the answer gave none), or
    /// `None` when `from` has no object or is another version now.
    async fn copy_key(
        &self,
        from: &str,
        to: &str,
        version: &ObjectVersion,
    ) -> Result<Option<Option<String>>, BucketError> {
        let (target, credentials) = self.target();
        let source = format!(
            "/{}/{}",
            self.location().bucket,
            percent_encoding::utf8_percent_encode(from, KEY_IN_COPY_SOURCE)
        );
        let answer = self
            .request("copy an object", reqwest::Method::PUT, || {
                let mut headers = vec![("x-amz-copy-source".to_owned(), source.clone())];
                if let Some(etag) = &version.etag {
                    headers.push(("x-amz-copy-source-if-match".to_owned(), etag.clone()));
                }
                let mut put = PutObject::new(target, Some(credentials), to);
                // AWS refuses an x-amz-* header that is not signed.
                for (name, value) in &headers {
                    put.headers_mut().insert(name.clone(), value.clone());
                }
                (put.sign(SIGNATURE_LIFETIME), headers)
            })
            .await?;
        if answer.changed() || answer.not_found() {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(answer.into_error(self, "copy an object"));
        }
        // A copy can fail after its 200 (S3 then sends an error document).
        let text = answer.text();
        if text.contains("<Error>") {
            return Err(BucketError::BadAnswer {
                location: self.location().clone(),
                action: "copy an object",
                reason: text.chars().take(500).collect(),
            });
        }
        let etag = text
            .split_once("<ETag>")
            .and_then(|(_, rest)| rest.split_once("</ETag>"))
            .map(|(etag, _)| etag.replace("&quot;", "\""));
        Ok(Some(etag))
    }

    /// Writes the trashed copy `version` at `from` to `to`, only where no
    /// object stands (`If-None-Match: *`), with its content and metadata read
    /// through the sweeper: a copy on the server would replace an upload
    /// made at `to` after the restore looked there, and services do not
    /// check that condition on copies alike (moto ignores it).
    async fn copy_back(
        &self,
        from: &str,
        to: &str,
        version: &ObjectVersion,
    ) -> Result<CopyBack, BucketError> {
        let on_the_server = || async {
            Ok(if self.copy_key(from, to, version).await?.is_some() {
                CopyBack::Written
            } else {
                CopyBack::SourceGone
            })
        };
        if version.size_bytes > RESTORE_THROUGH_MEMORY_MAX || self.writes_unconditionally() {
            return on_the_server().await;
        }
        const READ: &str = "read a trashed object";
        let (target, credentials) = self.target();
        let read = self
            .request(READ, reqwest::Method::GET, || {
                let headers = version
                    .etag
                    .iter()
                    .map(|etag| ("if-match".to_owned(), etag.clone()))
                    .collect();
                (
                    GetObject::new(target, Some(credentials), from).sign(SIGNATURE_LIFETIME),
                    headers,
                )
            })
            .await?;
        if read.not_found() || read.changed() {
            return Ok(CopyBack::SourceGone);
        }
        if !read.status.is_success() {
            return Err(read.into_error(self, READ));
        }
        const WRITE: &str = "write an object back";
        let metadata = read.metadata.clone();
        let written = self
            .request_with_body(
                WRITE,
                reqwest::Method::PUT,
                || {
                    let mut put = PutObject::new(target, Some(credentials), to);
                    // Signed: AWS refuses an x-amz-meta-* header that is not.
                    for (name, value) in &metadata {
                        put.headers_mut().insert(name.clone(), value.clone());
                    }
                    let mut headers = metadata.clone();
                    headers.push(("if-none-match".to_owned(), "*".to_owned()));
                    (put.sign(SIGNATURE_LIFETIME), headers)
                },
                Some(read.body.clone()),
            )
            .await?;
        if written.changed() {
            return Ok(CopyBack::TargetExists);
        }
        if written.unsupported() {
            self.note_unconditional_writes();
            return on_the_server().await;
        }
        if !written.status.is_success() {
            return Err(written.into_error(self, WRITE));
        }
        Ok(CopyBack::Written)
    }

    /// The object at `path`, as it is now; `None` when there is none.
    pub async fn look(&self, path: &str) -> Result<Option<ObjectVersion>, FileError> {
        let key = self.key_of(path)?;
        let found = self.look_key(&key).await;
        found.map_err(failure(path, "look at it"))
    }

    /// Moves `path` into the trash, replacing an older trashed copy of the
    /// same path: the version `listed` when one is given, or the one there now.
    pub async fn trash(
        &self,
        path: &str,
        listed: Option<&ObjectVersion>,
    ) -> Result<RemoveOutcome, FileError> {
        if let Some(version) = listed {
            return self.trash_version(path, version).await;
        }
        match self.look(path).await? {
            Some(version) => self.trash_version(path, &version).await,
            None => Ok(RemoveOutcome::AlreadyGone),
        }
    }

    /// Moves `version` of `path` into the trash; an error, which the sweep
    /// retries, when the object at `path` is another version by then.
    pub async fn trash_version(
        &self,
        path: &str,
        version: &ObjectVersion,
    ) -> Result<RemoveOutcome, FileError> {
        let key = self.key_of(path)?;
        let trash_key = self.trash_key_of(path)?;
        let failed = failure(path, "move it into the trash");
        let Some(copy_etag) = self
            .copy_key(&key, &trash_key, version)
            .await
            .map_err(&failed)?
        else {
            return match self.look_key(&key).await.map_err(&failed)? {
                None => Ok(RemoveOutcome::AlreadyGone),
                Some(_) => Err(replaced(path, "move it into the trash")),
            };
        };
        // Gone after the copy: the trash holds what the deletion was for.
        if self
            .delete_key(&key, Some(version))
            .await
            .map_err(&failed)?
            == Deletion::Refused
        {
            // A service that ignored the copy's condition (moto does) copied
            // the new version: that copy is no deletion's, and goes.
            if copy_etag.is_some() && copy_etag != version.etag {
                let copied = ObjectVersion {
                    size_bytes: 0,
                    etag: copy_etag,
                };
                self.delete_key(&trash_key, Some(&copied))
                    .await
                    .map_err(&failed)?;
            }
            return Err(replaced(path, "move it into the trash"));
        }
        Ok(RemoveOutcome::Removed {
            bytes: version.size_bytes,
        })
    }

    /// Deletes `path` for good, without passing through the trash: the
    /// version `listed` when one is given, or the one there now.
    pub async fn unlink(
        &self,
        path: &str,
        listed: Option<&ObjectVersion>,
    ) -> Result<RemoveOutcome, FileError> {
        if let Some(version) = listed {
            return self.unlink_version(path, version).await;
        }
        match self.look(path).await? {
            Some(version) => self.unlink_version(path, &version).await,
            None => Ok(RemoveOutcome::AlreadyGone),
        }
    }

    /// Deletes `version` of `path` for good; an error, which the sweep
    /// retries, when the object at `path` is another version by then.
    pub async fn unlink_version(
        &self,
        path: &str,
        version: &ObjectVersion,
    ) -> Result<RemoveOutcome, FileError> {
        let key = self.key_of(path)?;
        let deleted = self.delete_key(&key, Some(version)).await;
        match deleted.map_err(failure(path, "delete it"))? {
            Deletion::Done => Ok(RemoveOutcome::Removed {
                bytes: version.size_bytes,
            }),
            Deletion::Gone => Ok(RemoveOutcome::AlreadyGone),
            Deletion::Refused | Deletion::Unsupported => Err(replaced(path, "delete it")),
        }
    }

    /// Moves the trashed copy of `path` back, unless an object is already there.
    pub async fn restore(&self, path: &str) -> Result<RestoreOutcome, FileError> {
        let key = self.key_of(path)?;
        let trash_key = self.trash_key_of(path)?;
        let failed = failure(path, "restore it from the trash");
        let Some(trashed) = self.look_key(&trash_key).await.map_err(&failed)? else {
            return Ok(RestoreOutcome::NotInTrash);
        };
        if self.size_of(&key).await.map_err(&failed)?.is_some() {
            return Ok(RestoreOutcome::TargetExists);
        }
        match self
            .copy_back(&trash_key, &key, &trashed)
            .await
            .map_err(&failed)?
        {
            CopyBack::Written => {}
            CopyBack::TargetExists => return Ok(RestoreOutcome::TargetExists),
            CopyBack::SourceGone => return Ok(RestoreOutcome::NotInTrash),
        }
        // The trashed copy goes only if it is still the one brought back.
        self.delete_key(&trash_key, Some(&trashed))
            .await
            .map_err(&failed)?;
        Ok(RestoreOutcome::Restored {
            bytes: trashed.size_bytes,
        })
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
        self.delete_key(&trash_key, None).await.map_err(&failed)?;
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
            .list_page(ListFrom::next(continuation))
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
            match trash
                .list_page(ListFrom::next(continuation.as_deref()))
                .await
            {
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

/// The error of a deletion whose object was uploaded again at its path after the sweep looked at it.
fn replaced(path: &str, action: &'static str) -> FileError {
    FileError::Io {
        path: path.to_owned(),
        action,
        source: io::Error::other(
            "the object was written again at this path since the listing, or since the sweep looked at it; it stays, and the deletion is tried again at a later sweep (with the version the next scan lists)",
        ),
    }
}

/// Turns a failed request into the error the sweep records for `path`.
fn failure<'a>(path: &'a str, action: &'static str) -> impl Fn(BucketError) -> FileError + 'a {
    move |error| FileError::Io {
        path: path.to_owned(),
        action,
        source: io::Error::other(error.to_string()),
    }
}
