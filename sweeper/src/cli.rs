//! The command line in the user's words, as clap reads it.
//!
//! Values stay as typed here (sizes, dates and intervals are strings);
//! [`crate::config`] checks them and turns them into a [`crate::config::Config`],
//! so nothing past that point ever sees a raw option.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::exit_codes::EXIT_CODES_HELP;

/// What the top-level `--help` says before the commands.
const LONG_ABOUT: &str = "\
Keeps the image volume (or bucket) and the database in step: finds images no row \
references, deletes them safely (through a trash folder), and shows what \
fills the volume.

Run without a command on a terminal for the interactive menu you know from \
the old image management tool.";

/// `filegc`: find and delete the volume's orphaned and old images.
#[derive(Debug, Parser)]
#[command(
    name = "filegc",
    version,
    about = "Find and delete orphaned and old images on the volume",
    long_about = LONG_ABOUT,
    after_help = EXIT_CODES_HELP,
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// What to do; none means the interactive menu.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Where the volume and the database are, and how to log.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// PostgreSQL connection string of the application's database
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        global = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,

    /// Mount point of the image volume [env: FILEGC_VOLUME, then RAILWAY_VOLUME_MOUNT_PATH]
    #[arg(
        long,
        env = "FILEGC_VOLUME",
        hide_env = true,
        global = true,
        value_name = "PATH"
    )]
    pub volume: Option<PathBuf>,

    /// An S3-compatible bucket instead of a volume: s3://BUCKET/PREFIX/, with the endpoint and credentials in Railway's bucket variables (ENDPOINT, REGION, ACCESS_KEY_ID, SECRET_ACCESS_KEY) or AWS's [env: FILEGC_STORAGE]
    #[arg(
        long,
        env = "FILEGC_STORAGE",
        hide_env = true,
        global = true,
        value_name = "URL"
    )]
    pub storage: Option<String>,

    /// The bucket's byte budget, such as 50GB: the prefix and its trash against it give the alert levels a volume's size gives (a bucket has no size) [env: FILEGC_STORAGE_BUDGET; default: none, so no alert levels]
    #[arg(
        long,
        env = "FILEGC_STORAGE_BUDGET",
        hide_env = true,
        global = true,
        value_name = "SIZE"
    )]
    pub storage_budget: Option<String>,

    /// Log format: text for people, json (one object a line) for log collectors such as Railway's [env: FILEGC_LOG_FORMAT; default: json for `run` on Railway, text otherwise]
    #[arg(long, value_enum, global = true, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,

    /// Log more (-v: debug, -vv: trace); overrides FILEGC_LOG and RUST_LOG
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Log less (-q: warnings and errors only, -qq: errors only); overrides FILEGC_LOG and RUST_LOG
    #[arg(short, long, action = ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,

    /// Name this sweeper gives itself in the database's run records [default: the host name]
    #[arg(
        long,
        env = "FILEGC_WORKER",
        hide_env_values = true,
        global = true,
        value_name = "NAME"
    )]
    pub worker: Option<String>,
}

/// The log formats `--log-format` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// One readable line per event
    Text,
    /// One JSON object per event
    Json,
}

/// The two ways filegc can be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// CREATE EXTENSION filegc
    Extension,
    /// The portable install (PL/pgSQL)
    Portable,
}

/// The commands, named as in the old tool's menu where it had them.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every file on the volume or bucket, with its size and modification date
    #[command(after_help = "\
Examples:
  filegc list
  filegc list --user 123 --ext jpg,png
  filegc list --min-size 2MB --since 2024-01-01 --json")]
    List(ListArgs),

    /// List orphaned images: images no database row references
    #[command(after_help = "\
Without --no-scan, the listing is of the volume as it is now, and the
inventory stays as the latest `filegc scan` left it.

Examples:
  filegc orphans
  filegc orphans --no-scan --json")]
    Orphans(ListArgs),

    /// List images older than a number of days
    #[command(after_help = "\
Examples:
  filegc old
  filegc old --days 90 --min-size 1MB")]
    Old {
        /// Age limit: images last modified more than this many days ago
        #[arg(long, default_value_t = 30, value_name = "N")]
        days: u32,

        /// Listing options.
        #[command(flatten)]
        listing: ListArgs,
    },

    /// Show storage statistics: images, their size, oldest and newest, free space
    #[command(after_help = "\
Examples:
  filegc stats
  filegc stats --json")]
    Stats(StatsArgs),

    /// Delete orphaned images, after showing them and asking to confirm
    #[command(after_help = "\
Examples:
  filegc delete-orphans
  filegc delete-orphans --dry-run
  filegc delete-orphans --user 123 --yes

Deleted images go to the trash folder .filegc-trash/ on the volume first;
`filegc restore PATH` brings one back until the trash is purged.")]
    DeleteOrphans(DeleteArgs),

    /// Delete images older than N days that no row references (all of them with --include-referenced)
    #[command(after_help = "\
Examples:
  filegc delete-old --days 90
  filegc delete-old --days 30 --include-referenced --dry-run

--include-referenced also deletes images the database still points at, as
the old tool's option 5 did: back up the database first.")]
    DeleteOld {
        /// Age limit: images last modified more than this many days ago
        #[arg(long, value_name = "N")]
        days: u32,

        /// Also delete images that database rows still reference
        #[arg(long)]
        include_referenced: bool,

        /// Deletion options.
        #[command(flatten)]
        deletion: DeleteArgs,
    },

    /// Walk the volume (or list the bucket) and record what is on it in the database
    #[command(after_help = "\
Example:
  filegc scan")]
    Scan,

    /// Carry out the deletions the database has scheduled, now
    #[command(after_help = "\
Examples:
  filegc sweep
  filegc sweep --no-trash")]
    Sweep {
        /// Delete files for good instead of moving them into the trash folder
        #[arg(long)]
        no_trash: bool,
    },

    /// Delete everything in the trash folder for good
    #[command(after_help = "\
Examples:
  filegc empty-trash
  filegc empty-trash --yes")]
    EmptyTrash {
        /// Do not ask for confirmation (needed without a terminal)
        #[arg(short, long)]
        yes: bool,
    },

    /// Bring a file back from the trash folder to its place
    #[command(after_help = "\
Example:
  filegc restore user_123_1700000000.jpg")]
    Restore {
        /// The file's path relative to the volume, as it was before deletion
        #[arg(value_name = "PATH")]
        path: String,
    },

    /// Keep running: sweep when the database asks and on an interval, scan on an interval
    #[command(after_help = "\
Examples:
  filegc run
  filegc run --sweep-interval 30s -- node server.js
  FILEGC_METRICS_ADDR=[::]:9464 filegc run -- node server.js

With `-- CMD ARGS...`, filegc starts the application, passes SIGTERM and
SIGINT on to it, and exits with its exit status: this is how it rides along
inside a Railway service. A database that is down never stops the
application; the sweeper retries and says so in its log.

It also applies the maintenance policies set in the database (see
`SELECT name, value, description FROM filegc.settings`): scheduled orphan and
retention cleanups inside maintenance_window, alerts to alert_webhook_url when
the alert level changes (SELECT * FROM filegc.alert_deliveries shows how each
delivery ended), and the emergency cleanup.

With FILEGC_METRICS_ADDR=[::]:9464 (or --metrics-addr), it serves Prometheus
metrics at /metrics on that address: the files, orphans and pending deletions,
the deletions done and failed, the last scan and sweep, the volume's use and
alert level. A scrape reads what the last scan and sweep found, never the
database.")]
    Run(RunArgs),

    /// Print the portable install: filegc for a PostgreSQL that cannot load the extension
    #[command(after_help = "\
Examples:
  filegc install-sql > filegc-portable.sql
  filegc install-sql --apply
  filegc install-sql --upgrade-from 0.1.0 > filegc-upgrade.sql

The portable install creates the same schema filegc as the extension (tables,
views, functions, settings, the role filegc_sweeper), with the path rules and
triggers in PL/pgSQL. Run it as the owner of the application's tables; it
needs CREATEROLE unless the role filegc_sweeper exists already, and a
superuser only for the event triggers that follow the application's schema
(dropped tables and columns, renamed columns, new partitions and children);
without them, run SELECT filegc.sync_tracking() after such a change.

Over an older portable install, --apply upgrades it in place: it runs the
same upgrade scripts as ALTER EXTENSION filegc UPDATE, in one transaction,
and keeps tombstones, settings and history. SELECT * FROM filegc.version()
says which version is installed.")]
    InstallSql {
        /// Run the script against the database, in one transaction, instead of printing it (installs, or upgrades an older portable install)
        #[arg(long)]
        apply: bool,
        /// Print the upgrade of a portable install of VERSION to this version instead of a new install
        #[arg(long, value_name = "VERSION", conflicts_with = "apply")]
        upgrade_from: Option<String>,
    },

    /// Print the removal of a portable install (its schema, triggers and indexes)
    #[command(after_help = "\
Examples:
  filegc uninstall-sql
  filegc uninstall-sql --apply")]
    UninstallSql {
        /// Run the removal against the database instead of printing it
        #[arg(long)]
        apply: bool,
    },

    /// Move between the extension and the portable install, keeping tombstones, settings and history
    #[command(after_help = "\
Examples:
  filegc switch-engine --to extension            (prints the script)
  filegc switch-engine --to extension --apply

Run it in a quiet moment: it saves filegc's data, removes one engine,
installs the other, puts the data back and tracks the same columns again,
all in one transaction that rebuilds the tracked columns' indexes. Moving to
the extension needs it installed on the server (make install).")]
    SwitchEngine {
        /// The engine to move to
        #[arg(long, value_enum)]
        to: EngineArg,
        /// Run the script against the database instead of printing it
        #[arg(long)]
        apply: bool,
    },
}

/// Options of the listing commands.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print one JSON document on stdout instead of a table
    #[arg(long)]
    pub json: bool,

    /// Use the last scan's inventory instead of walking the volume first
    #[arg(long)]
    pub no_scan: bool,

    /// Which files to include.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Options of `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one JSON document on stdout instead of a table
    #[arg(long)]
    pub json: bool,

    /// Use the last scan's inventory instead of walking the volume first
    #[arg(long)]
    pub no_scan: bool,
}

/// Options of the delete commands.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Do not ask for confirmation (needed without a terminal)
    #[arg(short, long)]
    pub yes: bool,

    /// Show what would be deleted and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Delete even when it is a larger share of the volume than the safety limit allows
    #[arg(long)]
    pub force: bool,

    /// Listing options, for the list shown before deleting.
    #[command(flatten)]
    pub listing: ListArgs,
}

/// Filters every listing and delete command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Filters")]
pub struct FilterArgs {
    /// Only images of this user (from names like user_123_1700000000.jpg)
    #[arg(long, value_name = "ID")]
    pub user: Option<u64>,

    /// Only files with these extensions, comma-separated (case does not matter)
    #[arg(long, value_name = "EXT,...", value_delimiter = ',')]
    pub ext: Vec<String>,

    /// Only files at least this large: 500KB, 2MB, 1.5GiB (KB = 1000 bytes, KiB = 1024)
    #[arg(long, value_name = "SIZE")]
    pub min_size: Option<String>,

    /// Only files at most this large
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,

    /// Only files modified on or after this day (YYYY-MM-DD, UTC) or time (RFC 3339)
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,

    /// Only files modified before the end of this day (YYYY-MM-DD, UTC) or before this time
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
}

/// Options of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// How often to walk the volume and refresh the inventory: 30m, 1h, 1d
    #[arg(long, default_value = "1h", value_name = "INTERVAL")]
    pub scan_interval: String,

    /// How often to sweep when no notification arrives: 30s, 1m, 5m
    #[arg(long, default_value = "1m", value_name = "INTERVAL")]
    pub sweep_interval: String,

    /// Serve Prometheus metrics at http://ADDRESS/metrics: 0.0.0.0:9464, or [::]:9464 for IPv6 too [env: FILEGC_METRICS_ADDR; default: no metrics]
    #[arg(long, value_name = "ADDRESS")]
    pub metrics_addr: Option<String>,

    /// The application to start and supervise, after `--`
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("filegc").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_means_the_menu() {
        let cli = parse(&[]).unwrap();
        assert!(cli.command.is_none());
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let cli = parse(&["orphans", "--volume", "/data", "-vv"]).unwrap();
        assert_eq!(cli.global.volume, Some(PathBuf::from("/data")));
        assert_eq!(cli.global.verbose, 2);
        let cli = parse(&["--volume", "/data", "orphans"]).unwrap();
        assert_eq!(cli.global.volume, Some(PathBuf::from("/data")));
    }

    #[test]
    fn old_defaults_to_thirty_days_but_delete_old_needs_them() {
        match parse(&["old"]).unwrap().command {
            Some(Command::Old { days, .. }) => assert_eq!(days, 30),
            other => panic!("{other:?}"),
        }
        let error = parse(&["delete-old"]).unwrap_err();
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn extensions_are_comma_separated() {
        let Some(Command::List(listing)) = parse(&["list", "--ext", "jpg,PNG"]).unwrap().command
        else {
            panic!("expected list");
        };
        assert_eq!(listing.filter.ext, ["jpg", "PNG"]);
    }

    #[test]
    fn run_takes_the_application_after_a_double_dash() {
        let cli = parse(&[
            "run",
            "--sweep-interval",
            "30s",
            "--",
            "node",
            "server.js",
            "--port",
            "3000",
        ]);
        let Some(Command::Run(run)) = cli.unwrap().command else {
            panic!("expected run");
        };
        assert_eq!(run.sweep_interval, "30s");
        assert_eq!(run.scan_interval, "1h");
        assert_eq!(run.command, ["node", "server.js", "--port", "3000"]);
    }

    #[test]
    fn verbose_and_quiet_exclude_each_other() {
        let error = parse(&["-v", "-q", "stats"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn help_documents_the_exit_codes_and_each_command_has_an_example() {
        let mut cli = Cli::command();
        let help = cli.render_long_help().to_string();
        assert!(
            help.contains("3  the database could not be reached"),
            "{help}"
        );
        // clap's own `help` subcommand needs no example.
        for sub in cli
            .get_subcommands_mut()
            .filter(|sub| sub.get_name() != "help")
        {
            let name = sub.get_name().to_owned();
            let help = sub.render_long_help().to_string();
            assert!(
                help.contains(&format!("filegc {name}")),
                "{name} has no example:\n{help}"
            );
        }
    }
}
