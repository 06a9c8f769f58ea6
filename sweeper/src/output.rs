//! Printing that several commands share: file tables, the storage statistics, and the preview before a deletion.

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::db::FileRow;
use crate::units::{format_count, format_size};

/// How many files a deletion shows before asking.
const PREVIEW_LINES: usize = 20;

/// Prints files as a table with their total.
pub fn print_table(rows: &[FileRow], show_managed: bool, out: &mut dyn Write) -> io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "No files found.");
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    let mut header = vec!["Name", "Size", "Modified", "Referenced"];
    if show_managed {
        header.push("Managed");
    }
    table.set_header(header);
    for row in rows {
        let mut cells = vec![
            Cell::new(&row.path),
            Cell::new(format_size(row.size())).set_alignment(CellAlignment::Right),
            Cell::new(row.modified_at.format("%Y-%m-%d %H:%M")),
            Cell::new(match row.referenced {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            }),
        ];
        if show_managed {
            cells.push(Cell::new(if row.managed { "yes" } else { "no" }));
        }
        table.add_row(cells);
    }
    writeln!(out, "{table}")?;
    let total: u64 = rows.iter().map(FileRow::size).sum();
    writeln!(
        out,
        "{} files, {} in total",
        format_count(rows.len() as u64),
        format_size(total)
    )
}

/// Writes a JSON array one element at a time, laid out as
/// `serde_json::to_string_pretty` lays out the whole array, then a newline:
/// a listing of millions of files goes out as the database sends it,
/// without the rows or the text of all of them in memory at once.
pub struct JsonArray<'a> {
    out: io::BufWriter<&'a mut dyn Write>,
    empty: bool,
}

impl<'a> JsonArray<'a> {
    /// An array written to `out`, buffered (stdout would otherwise be
    /// written line by line).
    pub fn new(out: &'a mut dyn Write) -> Self {
        JsonArray {
            out: io::BufWriter::new(out),
            empty: true,
        }
    }

    /// Writes one element.
    pub fn push(&mut self, element: &impl Serialize) -> io::Result<()> {
        let text = serde_json::to_string_pretty(element).map_err(io::Error::other)?;
        self.out
            .write_all(if self.empty { b"[\n" } else { b",\n" })?;
        self.empty = false;
        // A string's line breaks are escaped: each line of the text is a line of the layout.
        for (index, line) in text.lines().enumerate() {
            if index > 0 {
                self.out.write_all(b"\n")?;
            }
            self.out.write_all(b"  ")?;
            self.out.write_all(line.as_bytes())?;
        }
        Ok(())
    }

    /// Closes the array and flushes it.
    pub fn finish(mut self) -> io::Result<()> {
        self.out
            .write_all(if self.empty { b"[]\n" } else { b"\n]\n" })?;
        self.out.flush()
    }
}

/// What invalid references cost: the images they may mean are never orphans.
pub(crate) fn invalid_references_note(values: &str, images: &str) -> String {
    format!(
        "{values} stored values name no file under the volume; {images} images they may mean are never deleted \
         (SELECT * FROM filegc.invalid_refs lists them; check the prefixes given to filegc.track())"
    )
}

/// Prints `filegc.storage_stats` (or the disk's share of it) as the old tool's statistics did.
pub fn print_stats(stats: &Map<String, Value>, out: &mut dyn Write) -> io::Result<()> {
    const UNKNOWN: &str = "unknown (needs the database)";
    let number = |key: &str| stats.get(key).and_then(Value::as_u64);
    let count = |key: &str| number(key).map(format_count);
    let size = |key: &str| number(key).map(format_size);
    let with_size = |files: &str, bytes: &str| match (count(files), size(bytes)) {
        (Some(files), Some(bytes)) => Some(format!("{files} ({bytes})")),
        _ => None,
    };
    let date = |key: &str| match stats.get(key) {
        Some(Value::String(text)) => Some(DateTime::parse_from_rfc3339(text).map_or_else(
            |_| text.clone(),
            |at| {
                at.with_timezone(&Utc)
                    .format("%Y-%m-%d %H:%M UTC")
                    .to_string()
            },
        )),
        _ => None,
    };
    let text = |key: &str| stats.get(key).and_then(Value::as_str).map(str::to_owned);
    let orphaned = with_size("orphaned_files", "orphaned_bytes").map(|orphans| {
        match count("eligible_orphan_files") {
            Some(eligible) => format!("{orphans}, {eligible} old enough to delete"),
            None => orphans,
        }
    });
    let is_bucket = text("volume_path").is_some_and(|location| location.starts_with("s3://"));
    // A report of no capacity: a bucket has none, a volume's could not be read.
    let no_capacity = if is_bucket {
        "none: a bucket has no fixed size (set FILEGC_STORAGE_BUDGET for alert levels)"
    } else {
        "unknown: the volume's size could not be read (see the sweeper's log)"
    };
    let capacity = size("capacity_bytes").map(|total| {
        if number("capacity_bytes") == Some(0) {
            return no_capacity.to_owned();
        }
        let total = if is_bucket {
            format!("{total} budget")
        } else {
            total
        };
        let used = stats
            .get("used_pct")
            .and_then(Value::as_f64)
            .map_or_else(|| "?".into(), |pct| format!("{pct:.1}"));
        let level = text("alert_level").unwrap_or_else(|| UNKNOWN.into());
        format!("{total}, {used}% used, alert level {level}")
    });
    let invalid = count("invalid_refs").map(|values| match number("invalid_refs") {
        Some(0) => values,
        _ => invalid_references_note(
            &values,
            &count("protected_files").unwrap_or_else(|| "the".into()),
        ),
    });
    let (place, missing) = if is_bucket {
        ("Bucket", "(rows point at files not in the bucket)")
    } else {
        ("Volume path", "(rows point at files not on the volume)")
    };
    let lines: [(&str, Option<String>, &str); 15] = [
        (place, text("volume_path"), "not reported yet"),
        ("Total images", count("total_files"), "0"),
        ("Total size", size("total_bytes"), "0 B"),
        ("Oldest image", date("oldest_modified_at"), "-"),
        ("Newest image", date("newest_modified_at"), "-"),
        (
            "Referenced images",
            with_size("referenced_files", "referenced_bytes"),
            UNKNOWN,
        ),
        ("Orphaned images", orphaned, UNKNOWN),
        (
            "Missing images",
            count("missing_refs").map(|n| format!("{n} {missing}")),
            UNKNOWN,
        ),
        ("Invalid references", invalid, UNKNOWN),
        (
            "Pending deletions",
            with_size("pending_deletions", "pending_bytes"),
            UNKNOWN,
        ),
        ("Trash", with_size("trash_files", "trash_bytes"), "-"),
        (
            "Unmanaged files",
            with_size("unmanaged_files", "unmanaged_bytes"),
            "0",
        ),
        ("Capacity", capacity, "not reported yet"),
        ("Last scan", date("last_scan_at"), "never"),
        ("Last sweep", date("last_sweep_at"), "never"),
    ];
    writeln!(out, "Storage statistics")?;
    for (label, value, otherwise) in lines {
        let value = value.unwrap_or_else(|| otherwise.to_owned());
        writeln!(out, "{label}: {value}")?;
    }
    Ok(())
}

/// Shows the first files of a deletion, how many there are and their size.
pub(crate) fn print_preview(rows: &[FileRow], total: u64, out: &mut dyn Write) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let shown = &rows[..rows.len().min(PREVIEW_LINES)];
    print_table(shown, false, out)?;
    if rows.len() > shown.len() {
        writeln!(
            out,
            "... and {} more",
            format_count((rows.len() - shown.len()) as u64)
        )?;
    }
    writeln!(
        out,
        "{} images to delete, {} in total",
        format_count(rows.len() as u64),
        format_size(total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(rows: &[FileRow]) -> String {
        let mut out = Vec::new();
        let mut json = JsonArray::new(&mut out);
        for row in rows {
            json.push(row).unwrap();
        }
        json.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_bucket_reports_no_capacity_rather_than_an_empty_one() {
        let stats = |location: &str, capacity: u64| {
            let stats = serde_json::json!({
                "volume_path": location, "capacity_bytes": capacity,
                "used_pct": null, "alert_level": "unknown",
            });
            let mut out = Vec::new();
            print_stats(stats.as_object().unwrap(), &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let bucket = stats("s3://uploads/images/", 0);
        assert!(
            bucket.contains("Capacity: none: a bucket has no fixed size"),
            "{bucket}"
        );
        let unread = stats("/data", 0);
        assert!(unread.contains("Capacity: unknown"), "{unread}");
        let volume = stats("/data", 1_000_000_000);
        assert!(volume.contains("Capacity: 1.0 GB, ?% used"), "{volume}");
    }

    #[test]
    fn a_streamed_array_reads_as_the_whole_array_printed_at_once() {
        let row = |path: &str| FileRow {
            path: path.into(),
            size_bytes: 1234,
            modified_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            referenced: Some(false),
            managed: true,
        };
        let rows = [
            row("user_1_1700000000.jpg"),
            row("odd \"name\"\nwith a line break.png"),
            row("sub/user_2_1700000000.webp"),
        ];
        for count in 0..=rows.len() {
            let whole = format!(
                "{}\n",
                serde_json::to_string_pretty(&rows[..count]).unwrap()
            );
            assert_eq!(streamed(&rows[..count]), whole, "{count} rows");
        }
    }
}
