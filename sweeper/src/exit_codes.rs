//! The exit status of `filegc`, so scripts and supervisors can tell outcomes apart.

/// How a run of `filegc` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitCode {
    /// Everything asked for was done.
    Success = 0,
    /// The run finished, but some files could not be listed, moved or deleted; each was reported.
    SomeFilesFailed = 1,
    /// The command line or configuration was wrong (no extension, a missing
    /// grant), or a deletion was refused.
    UsageOrRefused = 2,
    /// The database could not be reached, or a statement failed.
    DatabaseError = 3,
}

/// The exit statuses as `--help` shows them.
pub const EXIT_CODES_HELP: &str = "\
Exit status:
  0  success
  1  some files could not be listed, moved or deleted (each one is reported)
  2  usage or configuration error (no filegc in the database, a missing GRANT), or refused
     (a deletion without a terminal and without --yes, the circuit breaker)
  3  the database could not be reached, or refused a statement (the message says why)";

impl ExitCode {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// `SomeFilesFailed` when any file could not be listed, moved or deleted, `Success` otherwise.
    pub fn from_failures(failures: u64) -> ExitCode {
        if failures > 0 {
            ExitCode::SomeFilesFailed
        } else {
            ExitCode::Success
        }
    }

    /// The status of a run made of parts: the most serious part decides.
    pub fn worst(self, other: ExitCode) -> ExitCode {
        self.max(other)
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_numbers() {
        let all = [
            ExitCode::Success,
            ExitCode::SomeFilesFailed,
            ExitCode::UsageOrRefused,
            ExitCode::DatabaseError,
        ];
        for code in all {
            let line = format!("  {}  ", code.code());
            assert!(
                EXIT_CODES_HELP.contains(&line),
                "{code:?} is not documented"
            );
        }
        assert_eq!(all.map(ExitCode::code), [0, 1, 2, 3]);
    }

    #[test]
    fn one_failed_file_is_enough_for_status_1() {
        assert_eq!(ExitCode::from_failures(0), ExitCode::Success);
        assert_eq!(ExitCode::from_failures(1), ExitCode::SomeFilesFailed);
    }

    #[test]
    fn the_most_serious_part_decides() {
        assert_eq!(
            ExitCode::SomeFilesFailed.worst(ExitCode::Success),
            ExitCode::SomeFilesFailed
        );
        assert_eq!(
            ExitCode::SomeFilesFailed.worst(ExitCode::DatabaseError),
            ExitCode::DatabaseError
        );
    }
}
