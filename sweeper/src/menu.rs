//! The interactive menu, as the old image management tool had it.
//!
//! The menu's logic (what it shows, what it asks, what it accepts) is kept
//! apart from the terminal and from the work: [`run_menu`] reads answers from
//! any `BufRead`, writes to any `Write`, and calls a [`MenuActions`] for
//! everything that touches the volume or the database. Tests drive it with
//! scripted input and a fake.

use std::io::{self, BufRead, Write};

use crate::exit_codes::ExitCode;
use crate::units::{format_count, format_size};

/// The age limit the days question offers, as the old tool did.
pub const DEFAULT_DAYS: u32 = 30;

const TITLE: &str = "Volume Image Management (filegc)";
const RULE: &str = "==================================================";
const CHOICES: &str = "\
Available actions:
1. List all images
2. List orphaned images (not in database)
3. List old images (older than X days)
4. Delete orphaned images
5. Delete old images
6. Show storage statistics
7. Exit";
const CHOICE_PROMPT: &str = "Choose an action (1-7): ";
const DAYS_PROMPT: &str = "Number of days (default 30): ";
const OLD_IMAGES_WARNING: &str = "Warning: this deletes old images even when the database still \
references them. Consider backing up the database first.";
const BREAKER_WARNING: &str = "This is more than filegc deletes at once without being told to \
(the circuit breaker). Check the list above: in an emergency it may be right.";

/// The work behind the menu's entries; the real one reads the volume and the database.
///
/// Listings and previews are written to `out` by the implementation, so the
/// menu and the commands share one way of printing them.
pub trait MenuActions {
    /// What a confirmed deletion acts on: whatever the implementation needs
    /// to delete exactly what it showed.
    type Pending;

    /// The totals for the header.
    fn summary(&mut self) -> anyhow::Result<VolumeSummary>;

    /// Entry 1: lists every image.
    fn list_all(&mut self, out: &mut dyn Write) -> anyhow::Result<()>;

    /// Entry 2: lists images no row references.
    fn list_orphans(&mut self, out: &mut dyn Write) -> anyhow::Result<()>;

    /// Entry 3: lists images older than `days`.
    fn list_old(&mut self, days: u32, out: &mut dyn Write) -> anyhow::Result<()>;

    /// Entry 4, before asking: shows the orphans a deletion would remove, deleting nothing.
    fn prepare_delete_orphans(
        &mut self,
        out: &mut dyn Write,
    ) -> anyhow::Result<PendingDeletion<Self::Pending>>;

    /// Entry 5, before asking: shows the images older than `days`, referenced or not,
    /// that a deletion would remove, deleting nothing.
    fn prepare_delete_old(
        &mut self,
        days: u32,
        out: &mut dyn Write,
    ) -> anyhow::Result<PendingDeletion<Self::Pending>>;

    /// Entries 4 and 5, once confirmed: deletes what was shown, reporting
    /// each file to `out`; `force` passes the circuit breaker, once the
    /// operator typed the number of images to go ahead anyway.
    fn delete(
        &mut self,
        pending: Self::Pending,
        force: bool,
        out: &mut dyn Write,
    ) -> anyhow::Result<DeletionReport>;

    /// Entry 6: shows the storage statistics.
    fn stats(&mut self, out: &mut dyn Write) -> anyhow::Result<()>;
}

/// What the header shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSummary {
    /// The volume's mount point, as configured.
    pub volume_path: String,
    /// How many images it holds.
    pub total_images: u64,
    /// Their total size.
    pub total_bytes: u64,
}

/// A deletion shown to the user and waiting for the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDeletion<P> {
    /// How many images would be deleted.
    pub images: u64,
    /// Their total size.
    pub total_bytes: u64,
    /// Why the circuit breaker would refuse the deletion, if it would.
    pub breaker_refusal: Option<String>,
    /// What to hand to [`MenuActions::delete`] if the answer is yes.
    pub pending: P,
}

/// How a deletion went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeletionReport {
    /// Images deleted.
    pub deleted: u64,
    /// Images that could not be deleted; each was reported as it failed.
    pub failed: u64,
    /// Space freed.
    pub bytes_freed: u64,
}

/// How a menu session went, for the exit status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MenuOutcome {
    /// Files that deletions could not delete.
    pub files_failed: u64,
    /// Entries that stopped with an error.
    pub actions_failed: u64,
}

impl MenuOutcome {
    /// `SomeFilesFailed` when anything failed during the session, `Success` otherwise.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from_failures(self.files_failed + self.actions_failed)
    }
}

/// Runs the menu until the user chooses Exit or the input ends.
///
/// Only failures to read the input or write the output end it early; an
/// entry that fails is reported and the menu comes back.
pub fn run_menu<A: MenuActions>(
    input: impl BufRead,
    output: impl Write,
    actions: &mut A,
) -> io::Result<MenuOutcome> {
    let mut menu = Menu {
        input,
        output,
        outcome: MenuOutcome::default(),
    };
    menu.header(actions)?;
    loop {
        writeln!(menu.output)?;
        writeln!(menu.output, "{CHOICES}")?;
        writeln!(menu.output)?;
        let Some(choice) = menu.ask_choice()? else {
            break;
        };
        let next = match choice {
            1 => menu.report(|out| actions.list_all(out)),
            2 => menu.report(|out| actions.list_orphans(out)),
            3 => match menu.ask_days()? {
                Some(days) => menu.report(|out| actions.list_old(days, out)),
                None => Ok(Next::Exit),
            },
            4 => menu.delete(actions, |actions, out| actions.prepare_delete_orphans(out)),
            5 => {
                writeln!(menu.output)?;
                writeln!(menu.output, "{OLD_IMAGES_WARNING}")?;
                match menu.ask_days()? {
                    Some(days) => menu.delete(actions, |actions, out| {
                        actions.prepare_delete_old(days, out)
                    }),
                    None => Ok(Next::Exit),
                }
            }
            6 => menu.report(|out| actions.stats(out)),
            _ => {
                writeln!(menu.output, "Goodbye.")?;
                Ok(Next::Exit)
            }
        }?;
        if next == Next::Exit {
            break;
        }
    }
    menu.output.flush()?;
    Ok(menu.outcome)
}

/// Whether the menu comes back after an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Menu,
    Exit,
}

struct Menu<R, W> {
    input: R,
    output: W,
    outcome: MenuOutcome,
}

impl<R: BufRead, W: Write> Menu<R, W> {
    fn header(&mut self, actions: &mut impl MenuActions) -> io::Result<()> {
        writeln!(self.output, "{TITLE}")?;
        writeln!(self.output, "{RULE}")?;
        match actions.summary() {
            Ok(summary) => {
                // The old tool's header, which named a volume only.
                let place = if summary.volume_path.starts_with("s3://") {
                    "Bucket"
                } else {
                    "Volume path"
                };
                writeln!(self.output, "{place}: {}", summary.volume_path)?;
                writeln!(
                    self.output,
                    "Total images: {}",
                    format_count(summary.total_images)
                )?;
                writeln!(
                    self.output,
                    "Total size: {}",
                    format_size(summary.total_bytes)
                )
            }
            Err(error) => self.failed(&error),
        }
    }

    /// Runs an entry that only prints, reporting its error if it fails.
    fn report(
        &mut self,
        entry: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
    ) -> io::Result<Next> {
        writeln!(self.output)?;
        if let Err(error) = entry(&mut self.output) {
            self.failed(&error)?;
        }
        Ok(Next::Menu)
    }

    /// Shows what a deletion would remove, asks, and deletes on yes.
    fn delete<A: MenuActions>(
        &mut self,
        actions: &mut A,
        prepare: impl FnOnce(&mut A, &mut dyn Write) -> anyhow::Result<PendingDeletion<A::Pending>>,
    ) -> io::Result<Next> {
        writeln!(self.output)?;
        let deletion = match prepare(actions, &mut self.output) {
            Ok(deletion) => deletion,
            Err(error) => {
                self.failed(&error)?;
                return Ok(Next::Menu);
            }
        };
        if deletion.images == 0 {
            writeln!(self.output, "No images to delete.")?;
            return Ok(Next::Menu);
        }
        let planned = images(deletion.images);
        writeln!(self.output)?;
        writeln!(self.output, "Found {planned} to delete")?;
        writeln!(
            self.output,
            "Total size: {}",
            format_size(deletion.total_bytes)
        )?;
        writeln!(self.output)?;
        // Past the circuit breaker, yes is not enough: the operator types
        // how many images go, which a hurried "y" cannot do by accident.
        let required_count = deletion
            .breaker_refusal
            .as_ref()
            .map(|_| deletion.images.to_string());
        let question = match (&deletion.breaker_refusal, &required_count) {
            (Some(refusal), Some(count)) => {
                writeln!(self.output, "{refusal}")?;
                writeln!(self.output, "{BREAKER_WARNING}")?;
                format!("To delete them anyway, type the number of images to delete ({count}): ")
            }
            _ => format!("Are you sure you want to delete {planned}? (yes/no): "),
        };
        let Some(answer) = self.ask(&question)? else {
            writeln!(self.output, "Deletion cancelled.")?;
            return Ok(Next::Exit);
        };
        let accepted = match &required_count {
            Some(count) => answer == *count,
            None => matches!(answer.to_ascii_lowercase().as_str(), "yes" | "y"),
        };
        if !accepted {
            writeln!(self.output, "Deletion cancelled.")?;
            return Ok(Next::Menu);
        }
        writeln!(self.output)?;
        let force = deletion.breaker_refusal.is_some();
        match actions.delete(deletion.pending, force, &mut self.output) {
            Ok(report) => {
                self.outcome.files_failed += report.failed;
                writeln!(self.output)?;
                writeln!(
                    self.output,
                    "Deleted {} of {}, freed {}",
                    format_count(report.deleted),
                    planned,
                    format_size(report.bytes_freed)
                )?;
                if report.failed > 0 {
                    writeln!(
                        self.output,
                        "{} could not be deleted; the reasons are above.",
                        images(report.failed)
                    )?;
                }
            }
            Err(error) => self.failed(&error)?,
        }
        Ok(Next::Menu)
    }

    /// Asks for a menu entry until one is valid; `None` when the input ends.
    fn ask_choice(&mut self) -> io::Result<Option<u8>> {
        loop {
            let Some(answer) = self.ask(CHOICE_PROMPT)? else {
                return Ok(None);
            };
            match answer.parse::<u8>() {
                Ok(choice @ 1..=7) => return Ok(Some(choice)),
                _ => writeln!(
                    self.output,
                    "Invalid choice {answer:?}: enter a number from 1 to 7."
                )?,
            }
        }
    }

    /// Asks for the age limit until it is a whole number; empty means the default.
    fn ask_days(&mut self) -> io::Result<Option<u32>> {
        loop {
            let Some(answer) = self.ask(DAYS_PROMPT)? else {
                return Ok(None);
            };
            if answer.is_empty() {
                return Ok(Some(DEFAULT_DAYS));
            }
            match answer.parse::<u32>() {
                Ok(days) => return Ok(Some(days)),
                Err(_) => writeln!(
                    self.output,
                    "Invalid number of days {answer:?}: enter a whole number, like 30."
                )?,
            }
        }
    }

    /// Shows `prompt` and reads one trimmed line; `None` when the input has ended.
    fn ask(&mut self, prompt: &str) -> io::Result<Option<String>> {
        write!(self.output, "{prompt}")?;
        self.output.flush()?;
        let mut line = Vec::new();
        if self.input.read_until(b'\n', &mut line)? == 0 {
            // End the prompt's line, so what follows does not start after it.
            writeln!(self.output)?;
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&line).trim().to_owned()))
    }

    fn failed(&mut self, error: &anyhow::Error) -> io::Result<()> {
        self.outcome.actions_failed += 1;
        writeln!(self.output, "Error: {error:#}")
    }
}

/// `1 image`, `1,247 images`.
fn images(count: u64) -> String {
    let noun = if count == 1 { "image" } else { "images" };
    format!("{} {noun}", format_count(count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::anyhow;

    /// Records every call and answers from its fields.
    #[derive(Default)]
    struct FakeActions {
        calls: Vec<String>,
        orphans: u64,
        old: u64,
        report: DeletionReport,
        fail_listings: bool,
        breaker_refusal: Option<String>,
    }

    impl FakeActions {
        fn with_candidates(orphans: u64, old: u64) -> FakeActions {
            FakeActions {
                orphans,
                old,
                report: DeletionReport {
                    deleted: orphans.max(old),
                    failed: 0,
                    bytes_freed: 45_200_000,
                },
                ..FakeActions::default()
            }
        }

        fn listing(&mut self, call: String, out: &mut dyn Write) -> anyhow::Result<()> {
            writeln!(out, "<{call}>")?;
            self.calls.push(call);
            if self.fail_listings {
                return Err(anyhow!("database unreachable"));
            }
            Ok(())
        }
    }

    impl MenuActions for FakeActions {
        type Pending = String;

        fn summary(&mut self) -> anyhow::Result<VolumeSummary> {
            Ok(VolumeSummary {
                volume_path: "/app/facial_evaluations".into(),
                total_images: 1247,
                total_bytes: 2_300_000_000,
            })
        }

        fn list_all(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
            self.listing("list_all".into(), out)
        }

        fn list_orphans(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
            self.listing("list_orphans".into(), out)
        }

        fn list_old(&mut self, days: u32, out: &mut dyn Write) -> anyhow::Result<()> {
            self.listing(format!("list_old({days})"), out)
        }

        fn prepare_delete_orphans(
            &mut self,
            out: &mut dyn Write,
        ) -> anyhow::Result<PendingDeletion<String>> {
            self.calls.push("prepare_delete_orphans".into());
            writeln!(out, "<orphan preview>")?;
            Ok(PendingDeletion {
                images: self.orphans,
                total_bytes: 45_200_000,
                breaker_refusal: self.breaker_refusal.clone(),
                pending: "orphans".into(),
            })
        }

        fn prepare_delete_old(
            &mut self,
            days: u32,
            out: &mut dyn Write,
        ) -> anyhow::Result<PendingDeletion<String>> {
            self.calls.push(format!("prepare_delete_old({days})"));
            writeln!(out, "<old preview>")?;
            Ok(PendingDeletion {
                images: self.old,
                total_bytes: 45_200_000,
                breaker_refusal: self.breaker_refusal.clone(),
                pending: format!("old({days})"),
            })
        }

        fn delete(
            &mut self,
            pending: String,
            force: bool,
            _out: &mut dyn Write,
        ) -> anyhow::Result<DeletionReport> {
            let forced = if force { " forced" } else { "" };
            self.calls.push(format!("delete {pending}{forced}"));
            Ok(self.report)
        }

        fn stats(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
            self.listing("stats".into(), out)
        }
    }

    /// Runs the menu on `input` and returns what it printed and how it ended.
    fn session(input: &str, actions: &mut FakeActions) -> (String, MenuOutcome) {
        let mut output = Vec::new();
        let outcome = run_menu(input.as_bytes(), &mut output, actions).unwrap();
        (String::from_utf8(output).unwrap(), outcome)
    }

    #[test]
    fn the_header_shows_the_volume_and_its_totals() {
        let (output, _) = session("7\n", &mut FakeActions::default());
        assert!(output.contains(
            "Volume path: /app/facial_evaluations\nTotal images: 1,247\nTotal size: 2.3 GB\n"
        ));
    }

    #[test]
    fn the_menu_offers_the_old_tools_seven_entries() {
        let (output, _) = session("7\n", &mut FakeActions::default());
        assert!(output.contains(CHOICES));
        assert!(output.contains("Choose an action (1-7): "));
    }

    #[test]
    fn exit_ends_the_session_without_touching_anything() {
        let mut actions = FakeActions::default();
        let (output, outcome) = session("7\n1\n", &mut actions);
        assert!(actions.calls.is_empty(), "{:?}", actions.calls);
        assert!(output.ends_with("Goodbye.\n"));
        assert_eq!(outcome.exit_code(), ExitCode::Success);
    }

    #[test]
    fn the_end_of_input_ends_the_session() {
        let mut actions = FakeActions::default();
        let (output, _) = session("1\n", &mut actions);
        assert_eq!(actions.calls, ["list_all"]);
        assert_eq!(output.matches(CHOICE_PROMPT).count(), 2);
    }

    #[test]
    fn listing_entries_call_their_action_and_come_back_to_the_menu() {
        let mut actions = FakeActions::default();
        session("1\n2\n6\r\n 2 \n7\n", &mut actions);
        assert_eq!(
            actions.calls,
            ["list_all", "list_orphans", "stats", "list_orphans"]
        );
    }

    #[test]
    fn an_invalid_choice_is_asked_again() {
        let mut actions = FakeActions::default();
        let (output, _) = session("9\nabc\n\n0\n2\n7\n", &mut actions);
        assert_eq!(actions.calls, ["list_orphans"]);
        assert!(output.contains("Invalid choice \"9\": enter a number from 1 to 7."));
        assert!(output.contains("Invalid choice \"\": enter a number from 1 to 7."));
        let menus_shown = output.matches("Available actions:").count();
        assert_eq!(menus_shown, 2, "an invalid choice repeats only the prompt");
    }

    #[test]
    fn old_images_default_to_thirty_days() {
        let mut actions = FakeActions::default();
        let (output, _) = session("3\n\n3\n90\n7\n", &mut actions);
        assert_eq!(actions.calls, ["list_old(30)", "list_old(90)"]);
        assert_eq!(output.matches("Number of days (default 30): ").count(), 2);
    }

    #[test]
    fn an_invalid_number_of_days_is_asked_again() {
        let mut actions = FakeActions::default();
        let (output, _) = session("3\nthirty\n-1\n7\n7\n", &mut actions);
        assert_eq!(actions.calls, ["list_old(7)"]);
        assert!(output.contains("Invalid number of days \"thirty\""));
    }

    #[test]
    fn deleting_orphans_asks_first_and_deletes_on_yes() {
        let mut actions = FakeActions::with_candidates(23, 0);
        let (output, outcome) = session("4\nyes\n7\n", &mut actions);
        assert_eq!(actions.calls, ["prepare_delete_orphans", "delete orphans"]);
        assert!(
            output.contains("<orphan preview>\n\nFound 23 images to delete\nTotal size: 45.2 MB\n")
        );
        assert!(output.contains("Are you sure you want to delete 23 images? (yes/no): "));
        assert!(output.contains("Deleted 23 of 23 images, freed 45.2 MB\n"));
        assert_eq!(outcome.exit_code(), ExitCode::Success);
    }

    #[test]
    fn y_in_any_case_is_yes() {
        for answer in ["y", "Y", "YES", " yes "] {
            let mut actions = FakeActions::with_candidates(2, 0);
            session(&format!("4\n{answer}\n7\n"), &mut actions);
            assert_eq!(
                actions.calls.last().unwrap(),
                "delete orphans",
                "{answer:?}"
            );
        }
    }

    #[test]
    fn anything_but_yes_cancels() {
        for answer in ["no", "n", "", "yess", "sure", "oui"] {
            let mut actions = FakeActions::with_candidates(2, 0);
            let (output, _) = session(&format!("4\n{answer}\n7\n"), &mut actions);
            assert_eq!(actions.calls, ["prepare_delete_orphans"], "{answer:?}");
            assert!(output.contains("Deletion cancelled."));
        }
    }

    #[test]
    fn the_end_of_input_at_the_question_deletes_nothing_and_exits() {
        let mut actions = FakeActions::with_candidates(2, 0);
        let (output, _) = session("4\n", &mut actions);
        assert_eq!(actions.calls, ["prepare_delete_orphans"]);
        assert!(output.ends_with("Deletion cancelled.\n"));
    }

    #[test]
    fn nothing_to_delete_asks_nothing() {
        let mut actions = FakeActions::with_candidates(0, 0);
        let (output, _) = session("4\n7\n", &mut actions);
        assert_eq!(actions.calls, ["prepare_delete_orphans"]);
        assert!(output.contains("No images to delete."));
        assert!(!output.contains("Are you sure"));
    }

    #[test]
    fn deleting_old_images_warns_that_referenced_images_go_too() {
        let mut actions = FakeActions::with_candidates(0, 1);
        let (output, _) = session("5\n90\ny\n7\n", &mut actions);
        assert_eq!(actions.calls, ["prepare_delete_old(90)", "delete old(90)"]);
        let warning = output
            .find(OLD_IMAGES_WARNING)
            .expect("the warning is shown");
        let days = output.find(DAYS_PROMPT).unwrap();
        assert!(warning < days, "the warning comes before the question");
        assert!(output.contains("Are you sure you want to delete 1 image? (yes/no): "));
    }

    #[test]
    fn the_end_of_input_at_the_days_question_exits() {
        let mut actions = FakeActions::with_candidates(0, 3);
        session("5\n", &mut actions);
        assert!(actions.calls.is_empty(), "{:?}", actions.calls);
    }

    #[test]
    fn failed_files_are_counted_and_set_the_exit_status() {
        let mut actions = FakeActions::with_candidates(3, 0);
        actions.report = DeletionReport {
            deleted: 2,
            failed: 1,
            bytes_freed: 4_500_000,
        };
        let (output, outcome) = session("4\nyes\n7\n", &mut actions);
        assert!(output.contains("Deleted 2 of 3 images, freed 4.5 MB\n"));
        assert!(output.contains("1 image could not be deleted"));
        assert_eq!(outcome.files_failed, 1);
        assert_eq!(outcome.exit_code(), ExitCode::SomeFilesFailed);
    }

    fn refused_by_the_breaker(old: u64) -> FakeActions {
        FakeActions {
            breaker_refusal: Some("filegc: circuit breaker: too many".into()),
            ..FakeActions::with_candidates(0, old)
        }
    }

    #[test]
    fn past_the_breaker_the_menu_says_so_before_it_asks() {
        let mut actions = refused_by_the_breaker(40);
        let (output, _) = session(
            "5
7
yes
7
",
            &mut actions,
        );
        let refusal = output.find("filegc: circuit breaker: too many").unwrap();
        let question = output
            .find("To delete them anyway, type the number of images to delete (40): ")
            .expect("the question asks for the number");
        assert!(refusal < question);
        assert!(!output.contains("(yes/no)"));
        assert_eq!(
            actions.calls,
            ["prepare_delete_old(7)"],
            "yes is not enough"
        );
        assert!(output.contains("Deletion cancelled."));
    }

    #[test]
    fn typing_the_number_goes_past_the_breaker() {
        let mut actions = refused_by_the_breaker(40);
        let (output, _) = session(
            "5
7
40
7
",
            &mut actions,
        );
        assert_eq!(
            actions.calls,
            ["prepare_delete_old(7)", "delete old(7) forced"]
        );
        assert!(output.contains("Deleted 40 of 40 images"));
    }

    #[test]
    fn a_wrong_number_cancels() {
        for answer in ["39", "41", "", "forty", "y"] {
            let mut actions = refused_by_the_breaker(40);
            let (output, _) = session(
                &format!(
                    "5
7
{answer}
7
"
                ),
                &mut actions,
            );
            assert_eq!(actions.calls, ["prepare_delete_old(7)"], "{answer:?}");
            assert!(output.contains("Deletion cancelled."));
        }
    }

    #[test]
    fn a_failing_entry_is_reported_and_the_menu_comes_back() {
        let mut actions = FakeActions {
            fail_listings: true,
            ..FakeActions::default()
        };
        let (output, outcome) = session("2\n1\n7\n", &mut actions);
        assert_eq!(actions.calls, ["list_orphans", "list_all"]);
        assert_eq!(output.matches("Error: database unreachable").count(), 2);
        assert_eq!(outcome.actions_failed, 2);
        assert_eq!(outcome.exit_code(), ExitCode::SomeFilesFailed);
    }
}
