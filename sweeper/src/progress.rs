//! Progress bars for `scan` and `sweep` on a terminal; never with `--json`, in `run`, or in a pipe.

use std::io::{self, IsTerminal};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Whether a scan or sweep shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing is drawn.
    Hidden,
    /// A spinner with counts is drawn on stderr.
    Shown,
}

impl Progress {
    /// Shown only when stderr is a terminal.
    pub fn on_terminal() -> Progress {
        if io::stderr().is_terminal() {
            Progress::Shown
        } else {
            Progress::Hidden
        }
    }

    /// A spinner that counts files, with `verb` in front; a no-op bar when hidden.
    pub(crate) fn counter(self, verb: &str) -> ProgressBar {
        if self == Progress::Hidden {
            return ProgressBar::hidden();
        }
        let style = ProgressStyle::with_template(&format!(
            "{{spinner}} {verb} {{human_pos}} files, {{msg}} ({{elapsed}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = ProgressBar::new_spinner().with_style(style);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_progress_draws_nothing() {
        assert!(Progress::Hidden.counter("scanned").is_hidden());
    }

    #[test]
    fn a_shown_progress_counts_files() {
        let bar = Progress::Shown.counter("scanned");
        bar.inc(3);
        assert_eq!(bar.position(), 3);
        bar.finish_and_clear();
    }
}
