//! `list`, `old` and `stats` from the disk alone, for when the database cannot be reached.
//!
//! The volume is walked as a scan would walk it; whatever only the database
//! knows (references, orphans, pending deletions, the runs) is `null`.

use std::io::Write;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use crate::commands::filtered;
use crate::config::{Listing, Output};
use crate::db::{FileRow, ListKind};
use crate::exit_codes::ExitCode;
use crate::output::{print_stats, print_table, JsonArray};
use crate::volume::{Volume, WalkItem};

/// The extensions of `managed_patterns`' default; the setting itself lives in the database.
const DEFAULT_MANAGED_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "webp"];

/// What the walk found: every file, and how many paths could not be read.
#[derive(Debug, Default)]
pub struct DiskFiles {
    /// The files, by path; `referenced` is unknown.
    pub rows: Vec<FileRow>,
    /// Paths that could not be read, each logged.
    pub problems: u64,
}

impl DiskFiles {
    /// The exit status so far: 1 when some paths could not be read.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from_failures(self.problems)
    }
}

/// Walks the volume (off the async threads) into file rows, by path.
pub async fn disk_files(volume: &Volume) -> DiskFiles {
    let walk = volume.walk();
    let mut files = tokio::task::spawn_blocking(move || {
        let mut files = DiskFiles::default();
        for item in walk {
            match item {
                WalkItem::Entry(entry) => files.rows.push(FileRow {
                    managed: managed_by_default(&entry.path),
                    path: entry.path,
                    size_bytes: i64::try_from(entry.size_bytes).unwrap_or(i64::MAX),
                    modified_at: DateTime::<Utc>::from(entry.modified),
                    referenced: None,
                }),
                WalkItem::Problem(problem) => {
                    files.problems += 1;
                    tracing::warn!(path = %problem.path(), error = %problem, "cannot list a file");
                }
            }
        }
        files
    })
    .await
    .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
    files.rows.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// `list` and `old` from the disk: every file, or managed files older than the days, oldest first.
pub async fn list(
    volume: &Volume,
    kind: ListKind,
    listing: &Listing,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let files = disk_files(volume).await;
    let code = files.exit_code();
    let rows = match kind {
        ListKind::Old(days) => {
            let limit = Utc::now() - Duration::days(i64::from(days));
            let mut old: Vec<FileRow> = files
                .rows
                .into_iter()
                .filter(|row| row.managed && row.modified_at < limit)
                .collect();
            old.sort_by_key(|row| row.modified_at);
            old
        }
        ListKind::All | ListKind::Orphans => files.rows,
    };
    let rows = filtered(rows, &listing.filter);
    match listing.output {
        Output::Json => {
            let mut json = JsonArray::new(out);
            for row in &rows {
                json.push(row)?;
            }
            json.finish()?;
        }
        Output::Table => print_table(&rows, matches!(kind, ListKind::All), out)?,
    }
    Ok(code)
}

/// `stats` from the disk: the keys of `filegc.storage_stats`, `null` where only the database knows.
pub async fn stats(
    volume: &Volume,
    output: Output,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let files = disk_files(volume).await;
    let stats = disk_stats(volume, &files);
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?,
        Output::Table => print_stats(&stats, out)?,
    }
    Ok(files.exit_code())
}

/// The statistics the disk alone can tell, keyed as `filegc.storage_stats`.
fn disk_stats(volume: &Volume, files: &DiskFiles) -> Map<String, Value> {
    let (managed, unmanaged): (Vec<&FileRow>, Vec<&FileRow>) =
        files.rows.iter().partition(|row| row.managed);
    let bytes = |rows: &[&FileRow]| rows.iter().map(|row| row.size_bytes).sum::<i64>();
    let oldest = managed.iter().map(|row| row.modified_at).min();
    let newest = managed.iter().map(|row| row.modified_at).max();
    let trash = volume.trash_usage();
    let capacity = volume
        .capacity()
        .map_err(|error| tracing::warn!(error = %error, "cannot read the volume's capacity"))
        .ok();
    let used_pct = capacity
        .filter(|c| c.total_bytes > 0)
        .map(|c| (1000.0 * c.used_bytes as f64 / c.total_bytes as f64).round() / 10.0);
    let json = json!({
        "volume_path": volume.root().display().to_string(),
        "total_files": managed.len(),
        "total_bytes": bytes(&managed),
        "referenced_files": null,
        "referenced_bytes": null,
        "orphaned_files": null,
        "orphaned_bytes": null,
        "eligible_orphan_files": null,
        "missing_refs": null,
        "invalid_refs": null,
        "protected_files": null,
        "pending_deletions": null,
        "pending_bytes": null,
        "trash_files": trash.files,
        "trash_bytes": trash.bytes,
        "unmanaged_files": unmanaged.len(),
        "unmanaged_bytes": bytes(&unmanaged),
        "oldest_modified_at": oldest.map(|at| at.to_rfc3339()),
        "newest_modified_at": newest.map(|at| at.to_rfc3339()),
        "capacity_bytes": capacity.map(|c| c.total_bytes),
        "used_bytes": capacity.map(|c| c.used_bytes),
        "used_pct": used_pct,
        // The alert thresholds are settings in the database.
        "alert_level": null,
        "last_scan_at": null,
        "last_sweep_at": null,
    });
    match json {
        Value::Object(map) => map,
        _ => unreachable!("a json! object literal is an object"),
    }
}

/// Whether the default `managed_patterns` (`*.png,*.jpg,*.jpeg,*.webp`, any case) match the name.
fn managed_by_default(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once('.').is_some_and(|(stem, extension)| {
        !stem.is_empty()
            && DEFAULT_MANAGED_EXTENSIONS
                .iter()
                .any(|managed| managed.eq_ignore_ascii_case(extension))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_managed_by_default_whatever_their_case() {
        for path in ["a.png", "sub/user_1_1700000000.JPG", "x.jpeg", "y.WebP"] {
            assert!(managed_by_default(path), "{path}");
        }
        for path in [
            "notes.txt",
            "png",
            "dir.png/readme",
            "archive.jpg.gz",
            ".jpg",
        ] {
            assert!(!managed_by_default(path), "{path}");
        }
    }

    #[tokio::test]
    async fn stats_from_disk_count_images_apart_and_leave_references_unknown() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("a.jpg"), b"12345").unwrap();
        std::fs::write(root.path().join("notes.txt"), b"12").unwrap();
        let volume = Volume::open(root.path()).unwrap();
        let files = disk_files(&volume).await;
        assert_eq!(files.rows.len(), 2);
        assert!(files.rows.iter().all(|row| row.referenced.is_none()));
        let stats = disk_stats(&volume, &files);
        assert_eq!(stats["total_files"], 1);
        assert_eq!(stats["total_bytes"], 5);
        assert_eq!(stats["unmanaged_files"], 1);
        assert_eq!(stats["unmanaged_bytes"], 2);
        assert_eq!(stats["orphaned_files"], Value::Null);
        assert!(stats["oldest_modified_at"].is_string());
    }
}
