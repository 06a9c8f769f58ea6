//! The commands behind `filegc`: listings, statistics and deletions, printed as tables or JSON.

use std::collections::HashSet;
use std::future::ready;
use std::io::{self, BufRead, IsTerminal, Write};
use std::pin::pin;

use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::Value;
use thiserror::Error;

use crate::config::{Confirmation, Deletion, Inventory, Listing, Output, Removal};
use crate::db::{Cleanup, Db, FileRow, ListKind, BREAKER_HINT};
use crate::exit_codes::ExitCode;
use crate::filter::{FileFacts, Filter};
use crate::fresh_orphans::fresh_orphans;
use crate::menu::{DeletionReport, MenuActions, PendingDeletion, VolumeSummary};
use crate::output::{invalid_references_note, print_preview, print_stats, print_table, JsonArray};
use crate::progress::Progress;
use crate::scan::{scan_store, AnotherLister, BucketScanError, ScanOptions};
use crate::storage::{Storage, Store};
use crate::sweep::{
    empty_trash, restore_now, sweep, FileOutcome, RestoreResult, SweepOptions, DEFAULT_BATCH_SIZE,
};
use crate::units::{format_count, format_size};
use crate::volume::TRASH_DIR;

/// A deletion that was not carried out on purpose; the run ends with exit status 2.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The store, the database and the worker name every command works with.
pub struct Context {
    /// The opened volume or bucket.
    pub store: Store,
    /// The connected database.
    pub db: Db,
    /// The worker name.
    pub worker: String,
}

impl Context {
    /// Refreshes the inventory unless `--no-scan`; returns the exit status so far.
    pub async fn refresh(&mut self, inventory: Inventory) -> Result<ExitCode, BucketScanError> {
        if inventory == Inventory::LastScan {
            return Ok(ExitCode::Success);
        }
        let options = ScanOptions {
            worker: self.worker.clone(),
            progress: Progress::Hidden,
            another_lister: AnotherLister::Wait,
        };
        let report = scan_store(&self.store, &mut self.db, &options).await?;
        Ok(ExitCode::from_failures(report.problems))
    }

    /// `list`, `orphans` and `old`.
    pub async fn list(
        &mut self,
        kind: ListKind,
        listing: &Listing,
        out: &mut dyn Write,
    ) -> anyhow::Result<ExitCode> {
        let (code, rows) = match (kind, listing.inventory, &self.store) {
            // A volume's walk is cheap enough to look without a scan; a
            // bucket's listing is the scan.
            (ListKind::Orphans, Inventory::Rescan, Store::Volume(volume)) => {
                let fresh = fresh_orphans(volume, &self.db).await?;
                let code = fresh.exit_code();
                let rows = stream::iter(fresh.rows.into_iter().map(Ok));
                (code, rows.left_stream())
            }
            _ => {
                let code = self.refresh(listing.inventory).await?;
                (code, self.db.listed_files(kind).await?.right_stream())
            }
        };
        let mut shown = pin!(rows.try_filter(|row| ready(shows(&listing.filter, row))));
        match listing.output {
            Output::Json => {
                let mut json = JsonArray::new(out);
                while let Some(row) = shown.try_next().await? {
                    json.push(&row)?;
                }
                json.finish()?;
            }
            Output::Table => {
                let shown: Vec<FileRow> = shown.try_collect().await?;
                print_table(&shown, matches!(kind, ListKind::All), out)?;
            }
        }
        Ok(code)
    }

    /// `stats`.
    pub async fn stats(
        &mut self,
        output: Output,
        inventory: Inventory,
        out: &mut dyn Write,
    ) -> anyhow::Result<ExitCode> {
        let code = self.refresh(inventory).await?;
        let stats = self.db.storage_stats().await?;
        match output {
            Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?,
            Output::Table => print_stats(&stats, out)?,
        }
        Ok(code)
    }

    /// `delete-orphans` and `delete-old`: show, confirm, schedule, sweep, summarise.
    pub async fn delete(
        &mut self,
        cleanup: Cleanup,
        deletion: &Deletion,
        out: &mut dyn Write,
    ) -> anyhow::Result<ExitCode> {
        let filtered_run = deletion.listing.filter != Filter::default();
        if let (
            true,
            Cleanup::OlderThan {
                include_referenced: true,
                ..
            },
        ) = (filtered_run, cleanup)
        {
            return Err(Refused(
                "--include-referenced deletes every old image and cannot be combined with filters \
                 (drop --user, --ext, --min-size, --max-size, --since and --until)"
                    .into(),
            )
            .into());
        }
        let mut code = self.refresh(deletion.listing.inventory).await?;
        let candidates = filtered(
            self.db.cleanup(cleanup, true, deletion.force).await?,
            &deletion.listing.filter,
        );
        let json = deletion.listing.output == Output::Json;
        let total: u64 = candidates.iter().map(FileRow::size).sum();
        if !json {
            print_preview(&candidates, total, out)?;
        }
        // Said before any question: a refusal after a "yes" wastes the
        // operator's attention, and a dry run should tell the whole story.
        let breaker_refusal = if deletion.force {
            None
        } else {
            let what = if filtered_run {
                format!("deleting {} given paths", candidates.len())
            } else {
                cleanup.description()
            };
            self.db
                .breaker_refusal(candidates.len(), total, &what)
                .await?
        };
        if let (Some(refusal), false) = (&breaker_refusal, deletion.dry_run) {
            return Err(Refused(format!("{refusal}\nHINT: {BREAKER_HINT}")).into());
        }
        if candidates.is_empty() || deletion.dry_run {
            if json {
                let summary = serde_json::json!({
                    "scheduled": 0, "deleted": 0, "failed": 0, "bytes_freed": 0,
                    "would_delete": candidates.len(), "would_free_bytes": total,
                    "breaker_refusal": breaker_refusal,
                });
                writeln!(out, "{summary}")?;
            } else if deletion.dry_run && !candidates.is_empty() {
                if let Some(refusal) = &breaker_refusal {
                    writeln!(out, "{refusal}")?;
                    writeln!(
                        out,
                        "Without --dry-run this deletion is refused unless you pass --force."
                    )?;
                }
                writeln!(out, "Dry run: nothing was deleted.")?;
            } else {
                writeln!(out, "No images to delete.")?;
                if matches!(cleanup, Cleanup::Orphans) {
                    let stats = self.db.storage_stats().await?;
                    let number = |key: &str| stats.get(key).and_then(Value::as_u64).unwrap_or(0);
                    if number("invalid_refs") > 0 {
                        let why = invalid_references_note(
                            &number("invalid_refs").to_string(),
                            &number("protected_files").to_string(),
                        );
                        writeln!(out, "Invalid references: {why}")?;
                    }
                }
            }
            return Ok(code);
        }
        let question = format!(
            "Are you sure you want to delete {} images?",
            candidates.len()
        );
        let refusal = "refusing to delete without confirmation: there is no terminal to ask on \
                       (pass --yes to delete, or --dry-run to only look)";
        if deletion.confirmation == Confirmation::Ask && !confirm(&question, refusal, out)? {
            writeln!(out, "Deletion cancelled.")?;
            return Ok(code);
        }
        let outcome = self
            .carry_out(cleanup, filtered_run, &candidates, deletion.force)
            .await?;
        if outcome.report.failed > 0 {
            code = code.worst(ExitCode::SomeFilesFailed);
        }
        let (scheduled, deleted, failed, bytes_freed) = (
            outcome.scheduled,
            outcome.report.deleted,
            outcome.report.failed,
            outcome.report.bytes_freed,
        );
        if json {
            let summary = serde_json::json!({
                "scheduled": scheduled, "deleted": deleted,
                "failed": failed, "bytes_freed": bytes_freed,
            });
            writeln!(out, "{summary}")?;
        } else {
            writeln!(
                out,
                "Deleted {} of {} images, freed {}",
                format_count(deleted),
                format_count(scheduled),
                format_size(bytes_freed)
            )?;
        }
        Ok(code)
    }
    /// `empty-trash`: show what the trash holds, confirm, delete it all for good.
    pub async fn empty_trash(
        &mut self,
        confirmation: Confirmation,
        out: &mut dyn Write,
    ) -> anyhow::Result<ExitCode> {
        let usage = self.store.trash_usage().await;
        if usage.files == 0 && usage.problems.is_empty() {
            writeln!(out, "The trash is empty.")?;
            return Ok(ExitCode::Success);
        }
        let question = format!(
            "Empty the trash: {} files, {}?",
            format_count(usage.files),
            format_size(usage.bytes)
        );
        let refusal = "refusing to empty the trash without confirmation: there is no terminal \
                       to ask on (pass --yes to empty it)";
        if confirmation == Confirmation::Ask && !confirm(&question, refusal, out)? {
            writeln!(out, "The trash was left as it is.")?;
            return Ok(ExitCode::Success);
        }
        let report = empty_trash(&self.store, &mut self.db).await?;
        writeln!(
            out,
            "Emptied the trash: deleted {} files, freed {}",
            format_count(report.purged.files),
            format_size(report.purged.bytes)
        )?;
        if report.kept > 0 {
            writeln!(
                out,
                "Kept {} files in the trash: asked back or referenced again, held by a writer, or \
                 moved there by a deletion not recorded yet (a sweep at work, or a stopped \
                 sweeper's; the next sweep records them, or brings back the referenced ones)",
                format_count(report.kept)
            )?;
        }
        if report.purged.problems > 0 {
            writeln!(
                out,
                "{} files could not be deleted (see the log)",
                format_count(report.purged.problems)
            )?;
            return Ok(ExitCode::SomeFilesFailed);
        }
        Ok(ExitCode::Success)
    }

    /// `restore PATH`: asks the database for the file back and moves it out of the trash now.
    pub async fn restore(&mut self, path: &str, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
        restore_path(&self.store, &mut self.db, path, out).await
    }

    /// Schedules `candidates` (exactly them when `filtered`, else through the
    /// cleanup function and its breaker) and sweeps at once into the trash.
    pub async fn carry_out(
        &mut self,
        cleanup: Cleanup,
        filtered: bool,
        candidates: &[FileRow],
        force: bool,
    ) -> anyhow::Result<Carried> {
        let scheduled: HashSet<String> = if filtered {
            let paths: Vec<String> = candidates.iter().map(|row| row.path.clone()).collect();
            let reason = match cleanup {
                Cleanup::Orphans => "orphan",
                Cleanup::OlderThan { .. } => "expired",
            };
            self.db.schedule_delete(&paths, reason, force).await?;
            paths.into_iter().collect()
        } else {
            self.db
                .cleanup(cleanup, false, force)
                .await?
                .into_iter()
                .map(|row| row.path)
                .collect()
        };
        let mut report = DeletionReport::default();
        let options = SweepOptions {
            worker: self.worker.clone(),
            removal: Removal::Trash,
            batch_size: DEFAULT_BATCH_SIZE,
            progress: Progress::Hidden,
            stop: None,
        };
        let mut on_file = |path: &str, outcome: &FileOutcome| {
            if !scheduled.contains(path) {
                return;
            }
            match outcome {
                FileOutcome::Trashed { bytes } | FileOutcome::Deleted { bytes } => {
                    report.deleted += 1;
                    report.bytes_freed += bytes;
                }
                FileOutcome::AlreadyGone => report.deleted += 1,
                FileOutcome::Kept => {}
                FileOutcome::Failed(_) => report.failed += 1,
            }
        };
        sweep(&self.store, &mut self.db, &options, &mut on_file).await?;
        Ok(Carried {
            scheduled: scheduled.len() as u64,
            report,
        })
    }
}

/// What a carried-out deletion scheduled and did.
#[derive(Debug, Clone, Copy)]
pub struct Carried {
    /// Deletions scheduled.
    pub scheduled: u64,
    /// What became of them.
    pub report: DeletionReport,
}

/// The rows the filter lets through.
pub fn filtered(rows: Vec<FileRow>, filter: &Filter) -> Vec<FileRow> {
    rows.into_iter().filter(|row| shows(filter, row)).collect()
}

/// Whether a listing with `filter` shows `row`.
fn shows(filter: &Filter, row: &FileRow) -> bool {
    filter.matches(&FileFacts {
        path: &row.path,
        size_bytes: row.size(),
        modified: row.modified_at,
    })
}

/// Asks on the terminal whether to go ahead; without one, refuses with `refusal`.
fn confirm(question: &str, refusal: &str, out: &mut dyn Write) -> anyhow::Result<bool> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return Err(Refused(refusal.into()).into());
    }
    write!(out, "{question} (yes/no): ")?;
    out.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "yes" | "y"
    ))
}

/// The interactive menu's work: the commands, driven from the menu's thread.
pub struct MenuBackend<'a> {
    /// The store and database.
    pub context: Context,
    /// The runtime the database calls run on.
    pub runtime: &'a tokio::runtime::Runtime,
}

/// A deletion the menu showed and may carry out.
#[derive(Debug, Clone)]
pub struct MenuPending {
    cleanup: Cleanup,
    candidates: Vec<FileRow>,
}

impl MenuBackend<'_> {
    fn listing(&mut self, kind: ListKind, out: &mut dyn Write) -> anyhow::Result<()> {
        let listing = Listing {
            output: Output::Table,
            inventory: Inventory::Rescan,
            filter: Filter::default(),
        };
        self.runtime
            .block_on(self.context.list(kind, &listing, out))
            .map(drop)
    }

    fn prepare(
        &mut self,
        cleanup: Cleanup,
        out: &mut dyn Write,
    ) -> anyhow::Result<PendingDeletion<MenuPending>> {
        let context = &mut self.context;
        let candidates = self.runtime.block_on(async {
            context.refresh(Inventory::Rescan).await?;
            anyhow::Ok(context.db.cleanup(cleanup, true, false).await?)
        })?;
        let total_bytes = candidates.iter().map(FileRow::size).sum();
        let breaker_refusal = self.runtime.block_on(context.db.breaker_refusal(
            candidates.len(),
            total_bytes,
            &cleanup.description(),
        ))?;
        print_preview(&candidates, total_bytes, out)?;
        Ok(PendingDeletion {
            images: candidates.len() as u64,
            total_bytes,
            breaker_refusal,
            pending: MenuPending {
                cleanup,
                candidates,
            },
        })
    }
}

impl MenuActions for MenuBackend<'_> {
    type Pending = MenuPending;

    fn summary(&mut self) -> anyhow::Result<VolumeSummary> {
        let context = &mut self.context;
        let stats = self.runtime.block_on(async {
            context.refresh(Inventory::Rescan).await?;
            anyhow::Ok(context.db.storage_stats().await?)
        })?;
        let number = |key: &str| stats.get(key).and_then(|v| v.as_u64()).unwrap_or_default();
        Ok(VolumeSummary {
            volume_path: context.store.location(),
            total_images: number("total_files"),
            total_bytes: number("total_bytes"),
        })
    }

    fn list_all(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        self.listing(ListKind::All, out)
    }

    fn list_orphans(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        self.listing(ListKind::Orphans, out)
    }

    fn list_old(&mut self, days: u32, out: &mut dyn Write) -> anyhow::Result<()> {
        self.listing(ListKind::Old(days), out)
    }

    fn prepare_delete_orphans(
        &mut self,
        out: &mut dyn Write,
    ) -> anyhow::Result<PendingDeletion<MenuPending>> {
        self.prepare(Cleanup::Orphans, out)
    }

    fn prepare_delete_old(
        &mut self,
        days: u32,
        out: &mut dyn Write,
    ) -> anyhow::Result<PendingDeletion<MenuPending>> {
        let cleanup = Cleanup::OlderThan {
            days,
            include_referenced: true,
        };
        self.prepare(cleanup, out)
    }

    fn delete(
        &mut self,
        pending: MenuPending,
        force: bool,
        _out: &mut dyn Write,
    ) -> anyhow::Result<DeletionReport> {
        let carried = self.runtime.block_on(self.context.carry_out(
            pending.cleanup,
            false,
            &pending.candidates,
            force,
        ))?;
        Ok(carried.report)
    }

    fn stats(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        self.runtime
            .block_on(self.context.stats(Output::Table, Inventory::Rescan, out))
            .map(drop)
    }
}

/// `restore PATH` on a volume or a bucket: asks the database for the file
/// back and moves it out of the trash now.
pub async fn restore_path<S: Storage>(
    storage: &S,
    db: &mut Db,
    path: &str,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    match restore_now(storage, db, path).await? {
        RestoreResult::Restored { bytes } => {
            writeln!(out, "Restored {path} ({})", format_size(bytes))?;
            Ok(ExitCode::Success)
        }
        RestoreResult::AlreadyBack => {
            writeln!(
                out,
                "{path} is already back at its path (recorded as restored)"
            )?;
            Ok(ExitCode::Success)
        }
        RestoreResult::NotInTrash => {
            eprintln!(
                "filegc: cannot restore {path}: it is not in the trash (it was never \
                 deleted, was restored already, or the trash was purged)"
            );
            Ok(ExitCode::SomeFilesFailed)
        }
        RestoreResult::TargetExists => {
            eprintln!(
                "filegc: cannot restore {path}: a file already stands there; the trashed \
                 copy stays in {TRASH_DIR}/{path} (move the file away, then run \
                 `filegc restore {path}` again)"
            );
            Ok(ExitCode::SomeFilesFailed)
        }
        RestoreResult::Failed(error) => {
            eprintln!("filegc: cannot restore {path}: {error}");
            Ok(ExitCode::SomeFilesFailed)
        }
        RestoreResult::Busy => {
            writeln!(
                out,
                "Asked for {path} back: a sweep or the application is changing it right now, \
                 so the next sweep restores it (`filegc sweep` to do it now)"
            )?;
            Ok(ExitCode::Success)
        }
    }
}
