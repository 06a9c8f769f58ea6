//! `filegc`: the command-line sweeper.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("filegc: the sweeper's commands are not built yet");
    ExitCode::from(2)
}
