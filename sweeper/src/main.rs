//! `filegc`: the command-line sweeper.
//!
//! For now this checks the command line, the configuration and the volume,
//! and says which command is not built yet; the commands come with the
//! database client.

use std::io::{self, IsTerminal};

use clap::{CommandFactory, Parser};
use filegc_sweeper::cli::Cli;
use filegc_sweeper::config::{Command, Config, Environment};
use filegc_sweeper::exit_codes::ExitCode;
use filegc_sweeper::volume::Volume;

fn main() -> std::process::ExitCode {
    run(Cli::parse()).into()
}

fn run(cli: Cli) -> ExitCode {
    if cli.command.is_none() && !io::stdin().is_terminal() {
        // The menu needs someone to answer it; a script gets the help instead.
        eprintln!("{}", Cli::command().render_help());
        return ExitCode::UsageOrRefused;
    }
    let config = match Config::from_cli(cli, &Environment::from_process()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("filegc: {error}");
            return ExitCode::UsageOrRefused;
        }
    };
    if let Err(error) = Volume::open(&config.volume) {
        eprintln!("filegc: {error}");
        return ExitCode::UsageOrRefused;
    }
    match config.command {
        Command::Menu => eprintln!("filegc: the interactive menu is not available yet"),
        command => eprintln!("filegc: `{}` is not available yet", command.name()),
    }
    ExitCode::UsageOrRefused
}
