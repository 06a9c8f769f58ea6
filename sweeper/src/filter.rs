//! Which files a listing or deletion includes, and the image names the application writes.

use chrono::{DateTime, Utc};
use filegc_path_rules::file_name;

/// Which files a listing or deletion includes; the default includes every file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only images whose name carries this user id.
    pub user_id: Option<u64>,
    /// Only these extensions, lowercase and without the dot; empty means any.
    pub extensions: Vec<String>,
    /// Only files at least this large.
    pub min_size: Option<u64>,
    /// Only files at most this large.
    pub max_size: Option<u64>,
    /// Only files modified at or after this instant.
    pub modified_since: Option<DateTime<Utc>>,
    /// Only files modified before this instant.
    pub modified_before: Option<DateTime<Utc>>,
}

/// What a filter looks at in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts<'a> {
    /// The path relative to the volume root.
    pub path: &'a str,
    /// The file's size.
    pub size_bytes: u64,
    /// Its last modification.
    pub modified: DateTime<Utc>,
}

impl Filter {
    /// Whether `file` passes every condition of the filter.
    pub fn matches(&self, file: &FileFacts<'_>) -> bool {
        let name = file_name(file.path);
        let user_matches = self.user_id.is_none_or(|wanted| {
            ImageName::parse(name).is_some_and(|image| image.user_id == wanted)
        });
        let extension_matches = self.extensions.is_empty()
            || name.rsplit_once('.').is_some_and(|(_, extension)| {
                self.extensions
                    .iter()
                    .any(|wanted| wanted.eq_ignore_ascii_case(extension))
            });
        user_matches
            && extension_matches
            && self.min_size.is_none_or(|min| file.size_bytes >= min)
            && self.max_size.is_none_or(|max| file.size_bytes <= max)
            && self
                .modified_since
                .is_none_or(|since| file.modified >= since)
            && self
                .modified_before
                .is_none_or(|before| file.modified < before)
    }
}

/// The parts of an image name `user_{id}_{unix_ts}.{ext}` or `user_{id}_{unix_ts}_2.{ext}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageName<'a> {
    /// The user the image belongs to.
    pub user_id: u64,
    /// The upload time, in seconds since 1970, as the application wrote it.
    pub timestamp: u64,
    /// Whether this is the secondary image (`_2`) of the upload.
    pub secondary: bool,
    /// The extension as written, without the dot.
    pub extension: &'a str,
}

impl<'a> ImageName<'a> {
    /// Reads a file name (not a path); `None` when it does not follow the naming convention.
    pub fn parse(name: &'a str) -> Option<ImageName<'a>> {
        let (stem, extension) = name.strip_prefix("user_")?.rsplit_once('.')?;
        if extension.is_empty() || !extension.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let mut parts = stem.split('_');
        let user_id = parse_digits(parts.next()?)?;
        let timestamp = parse_digits(parts.next()?)?;
        let secondary = match parts.next() {
            None => false,
            Some("2") => true,
            Some(_) => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(ImageName {
            user_id,
            timestamp,
            secondary,
            extension,
        })
    }
}

/// Digits only: `u64::from_str` would also take a leading `+`.
fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    fn facts(path: &str, size_bytes: u64, modified: &str) -> (String, u64, DateTime<Utc>) {
        (path.to_owned(), size_bytes, at(modified))
    }

    fn passes(filter: &Filter, file: &(String, u64, DateTime<Utc>)) -> bool {
        filter.matches(&FileFacts {
            path: &file.0,
            size_bytes: file.1,
            modified: file.2,
        })
    }

    #[test]
    fn image_names_follow_the_applications_convention() {
        assert_eq!(
            ImageName::parse("user_123_1700000000.jpg"),
            Some(ImageName {
                user_id: 123,
                timestamp: 1_700_000_000,
                secondary: false,
                extension: "jpg",
            })
        );
        assert_eq!(
            ImageName::parse("user_7_1700000001_2.WEBP"),
            Some(ImageName {
                user_id: 7,
                timestamp: 1_700_000_001,
                secondary: true,
                extension: "WEBP",
            })
        );
        for name in [
            "user_123.jpg",
            "user_123_1700000000",
            "user_123_1700000000.",
            "user_123_1700000000_3.jpg",
            "user_123_1700000000_2_2.jpg",
            "user_+1_1700000000.jpg",
            "user_x_1700000000.jpg",
            "user__1700000000.jpg",
            "avatar_123_1700000000.jpg",
            "user_123_1700000000.tar.gz",
            "user_99999999999999999999_1.jpg",
        ] {
            assert_eq!(ImageName::parse(name), None, "{name}");
        }
    }

    #[test]
    fn the_filter_checks_every_condition() {
        let primary = facts("user_7_1700000000.jpg", 2_000_000, "2024-01-15T12:00:00Z");
        let secondary = facts("sub/user_7_1700000000_2.PNG", 500, "2024-01-31T23:59:59Z");
        let other_user = facts("user_8_1700000000.jpg", 2_000_000, "2024-01-15T12:00:00Z");
        let unrelated = facts("notes.txt", 10, "2024-01-15T12:00:00Z");

        assert!(passes(&Filter::default(), &unrelated));

        let by_user = Filter {
            user_id: Some(7),
            ..Filter::default()
        };
        assert!(passes(&by_user, &primary));
        assert!(
            passes(&by_user, &secondary),
            "the secondary image belongs to the user too"
        );
        assert!(!passes(&by_user, &other_user));
        assert!(!passes(&by_user, &unrelated));

        let by_extension = Filter {
            extensions: vec!["png".into()],
            ..Filter::default()
        };
        assert!(passes(&by_extension, &secondary));
        assert!(!passes(&by_extension, &primary));

        let by_size = Filter {
            min_size: Some(1000),
            max_size: Some(2_000_000),
            ..Filter::default()
        };
        assert!(passes(&by_size, &primary), "the bounds are inclusive");
        assert!(!passes(&by_size, &secondary));

        let january = Filter {
            modified_since: Some(at("2024-01-15T12:00:00Z")),
            modified_before: Some(at("2024-02-01T00:00:00Z")),
            ..Filter::default()
        };
        assert!(passes(&january, &primary), "since is inclusive");
        assert!(passes(&january, &secondary));
        let early_january = Filter {
            modified_before: Some(at("2024-01-15T12:00:00Z")),
            ..Filter::default()
        };
        assert!(!passes(&early_january, &primary), "before is exclusive");
    }

    proptest! {
        #[test]
        fn a_written_image_name_reads_back(
            user_id in any::<u64>(),
            timestamp in any::<u64>(),
            secondary in any::<bool>(),
            extension in prop::sample::select(vec!["png", "jpg", "jpeg", "webp", "JPG"]),
        ) {
            let name = format!(
                "user_{user_id}_{timestamp}{}.{extension}",
                if secondary { "_2" } else { "" }
            );
            prop_assert_eq!(
                ImageName::parse(&name),
                Some(ImageName { user_id, timestamp, secondary, extension })
            );
        }
    }
}
