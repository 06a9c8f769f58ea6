//! The bucket's listing as the inventory takes it: keys relative to the
//! prefix, checked by the rules every volume path follows.

use std::io;

use filegc_path_rules::validate_relative;
use tokio::sync::mpsc;

use super::client::{Bucket, BucketError, ListFrom, ListedObject};
use crate::volume::{in_trash, Entry, FileError, WalkItem};

impl Bucket {
    /// Lists every object under the prefix, page by page, into `sender`,
    /// one batch of items per page, from the first key or after the path
    /// `after` (a resumed listing); stops early when the receiver is gone.
    /// An error ends the listing: an inventory missing the rest of the
    /// bucket must not be taken for the whole of it.
    pub async fn list_into(
        &self,
        after: Option<&str>,
        sender: mpsc::Sender<Vec<WalkItem>>,
    ) -> Result<(), BucketError> {
        let start_after = after.map(|path| format!("{}{path}", self.location().prefix));
        let mut continuation: Option<String> = None;
        loop {
            let from = match (&continuation, &start_after) {
                (Some(token), _) => ListFrom::Continuation(token),
                (None, Some(key)) => ListFrom::After(key),
                (None, None) => ListFrom::Start,
            };
            let page = self.list_page(from).await?;
            let items = page
                .objects
                .into_iter()
                .filter_map(|object| self.inventory_item(object))
                .collect();
            if sender.send(items).await.is_err() {
                return Ok(());
            }
            match page.next {
                Some(next) => continuation = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// What the inventory records of one object: an entry, a problem, or
    /// nothing for the trash and for the empty objects consoles create to
    /// show a folder (`photos/`).
    fn inventory_item(&self, object: ListedObject) -> Option<WalkItem> {
        let relative = object.key.strip_prefix(self.location().prefix.as_str())?;
        if relative.ends_with('/') || in_trash(relative) {
            return None;
        }
        if let Err(reason) = validate_relative(relative) {
            return Some(WalkItem::Problem(FileError::Invalid {
                path: object.key,
                reason,
            }));
        }
        let unreadable = |what: &str| {
            WalkItem::Problem(FileError::Io {
                path: relative.to_owned(),
                action: "inventory it",
                source: io::Error::other(format!("the listing gives no {what}")),
            })
        };
        let Some(size_bytes) = object.size_bytes else {
            return Some(unreadable("size"));
        };
        // Its age decides when an orphan may go: a made-up one could let a new upload go early.
        let Some(modified) = object.modified else {
            return Some(unreadable("readable last-modified time"));
        };
        Some(WalkItem::Entry(Entry {
            path: relative.to_owned(),
            size_bytes,
            modified: modified.into(),
            is_symlink: false,
            etag: object.etag,
        }))
    }
}
