//! S3-compatible buckets (`FILEGC_STORAGE=s3://bucket/prefix/`): their
//! settings, the requests to them, and their listing for the inventory.
//!
//! A bucket is scanned into the same inventory a volume fills, so every
//! report and listing of the database covers it; the sweep and its trash
//! work on it through the same `Storage` trait as on a volume.

mod client;
mod listing;
mod objects;
mod pace;
mod settings;

pub use self::client::{Bucket, BucketError, ListFrom, ListedObject, ListedPage};
pub use self::objects::ObjectVersion;
pub use self::settings::{
    parse_location, Addressing, BucketLocation, BucketSettings, BucketSettingsError,
};
