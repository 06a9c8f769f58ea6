//! The validated configuration: the command line in the program's words.
//!
//! [`Config::from_cli`] is the only place that reads sizes, dates, intervals
//! and the environment's fallbacks; everything after it works with checked
//! values and cannot meet a malformed option.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use filegc_path_rules::{validate_relative, InvalidReason};
use thiserror::Error;

use crate::bucket::{BucketSettings, BucketSettingsError};
use crate::cli::{self, Cli, DeleteArgs, FilterArgs, ListArgs, LogFormatArg};
use crate::filter::Filter;
use crate::units::{
    format_size, parse_date, parse_duration, parse_size, DateError, DurationError, SizeError,
};

/// Everything a run of `filegc` needs to know, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Config {
    /// A command on the volume: every command but the portable install's.
    Volume(Box<VolumeConfig>),
    /// A command on a bucket (`--storage s3://...`): `scan`, `sweep`, `restore` and `run` so far.
    Bucket(Box<BucketConfig>),
    /// A script of the portable install, printed or run: no volume, and the database only to run it.
    Portable(PortableCommand),
}

/// What a command on a bucket needs to know, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketConfig {
    /// The bucket, its prefix and how to reach it.
    pub bucket: BucketSettings,
    /// The database.
    pub database_url: DatabaseUrl,
    /// How, where and which log lines are written.
    pub logging: Logging,
    /// The name this sweeper records in the database.
    pub worker: String,
    /// What to do.
    pub command: Command,
}

/// What a command on the volume needs to know, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeConfig {
    /// The volume's mount point.
    pub volume: PathBuf,
    /// The database, when one is configured; `list`, `old` and `stats` work without it.
    pub database_url: Option<DatabaseUrl>,
    /// How, where and which log lines are written.
    pub logging: Logging,
    /// The name this sweeper records in the database.
    pub worker: String,
    /// What to do.
    pub command: Command,
}

/// A PostgreSQL connection string; its `Debug` form hides it, since it usually holds a password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The connection string, for the database client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseUrl(<hidden>)")
    }
}

/// A command of the portable install (`install-sql`, `uninstall-sql`, `switch-engine`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortableCommand {
    /// Print the script.
    Print(PortableScript),
    /// `install-sql --upgrade-from VERSION`: print the upgrade of a portable install of that version.
    PrintUpgrade {
        /// The version installed.
        from: String,
    },
    /// `--apply`: run the script against the database, in one transaction.
    Apply {
        /// Which script.
        script: PortableScript,
        /// The database to run it in.
        database_url: DatabaseUrl,
    },
}

/// Which script of the portable install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortableScript {
    /// `install-sql`: a new install, or the upgrade of an older portable install.
    Install,
    /// `uninstall-sql`: the removal of a portable install.
    Uninstall,
    /// `switch-engine --to`: the move to the other engine, with the data kept.
    Switch(Engine),
}

/// The two ways filegc can be installed; both provide the same schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `CREATE EXTENSION filegc`: Rust path rules and triggers.
    Extension,
    /// The portable install: PL/pgSQL path rules and triggers.
    Portable,
}

/// How, where and which log lines are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    /// Text or JSON lines.
    pub format: LogFormat,
    /// Which events are written.
    pub filter: LogFilter,
    /// stdout for `filegc run`, stderr for the commands, whose output is on stdout.
    pub destination: LogDestination,
    /// Whether text may be coloured.
    pub colour: Colour,
    /// What to warn about once logging is set up (a `RUST_LOG` that was left out).
    pub warning: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Which events are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFilter {
    /// Every event of this level or more severe, from any target.
    Level(LogLevel),
    /// Directives in `tracing_subscriber::EnvFilter` syntax (`warn,filegc_sweeper::sweep=debug`), checked.
    Directives {
        /// The variable they come from, `FILEGC_LOG` or `RUST_LOG`.
        variable: &'static str,
        /// The directives.
        directives: String,
    },
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDestination {
    /// `filegc run`: a service has no other output, and platforms such as
    /// Railway show stderr as errors.
    Stdout,
    /// The commands: stdout holds their output, which scripts read.
    Stderr,
}

/// Whether text logs may be coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// When the destination is a terminal.
    OnTerminal,
    /// Never: `NO_COLOR` is set.
    Never,
}

/// The least severe log level shown, from `-v` and `-q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Errors only (`-qq`).
    Error,
    /// Warnings and errors (`-q`).
    Warn,
    /// The default.
    Info,
    /// `-v`.
    Debug,
    /// `-vv`.
    Trace,
}

impl LogLevel {
    /// The level as a log filter names it.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Whether log filter `directives` set a level for every target (a bare `warn`).
fn names_a_default_level(directives: &str) -> bool {
    directives.split(',').any(|directive| {
        directive
            .trim()
            .parse::<tracing_subscriber::filter::LevelFilter>()
            .is_ok()
    })
}

/// The checked command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// No command: the interactive menu.
    Menu,
    /// List every file.
    List(Listing),
    /// List orphaned images.
    Orphans(Listing),
    /// List images older than `days`.
    Old {
        /// The age limit in days.
        days: u32,
        /// How and what to list.
        listing: Listing,
    },
    /// Show storage statistics.
    Stats {
        /// Table or JSON.
        output: Output,
        /// Whether to scan first.
        inventory: Inventory,
    },
    /// Delete orphaned images.
    DeleteOrphans(Deletion),
    /// Delete images older than `days`.
    DeleteOld {
        /// The age limit in days.
        days: u32,
        /// Whether images that rows still reference go too.
        referenced: ReferencedImages,
        /// How to confirm and what to delete.
        deletion: Deletion,
    },
    /// Walk the volume into the database's inventory.
    Scan,
    /// Carry out scheduled deletions.
    Sweep {
        /// Into the trash, or for good.
        removal: Removal,
    },
    /// Delete the trash folder's contents for good.
    EmptyTrash {
        /// Whether to ask first.
        confirmation: Confirmation,
    },
    /// Bring one file back from the trash.
    Restore {
        /// The checked relative path.
        path: String,
    },
    /// The long-running mode.
    Run(RunOptions),
}

impl Command {
    /// The command's name as typed, for messages and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Menu => "menu",
            Command::List(_) => "list",
            Command::Orphans(_) => "orphans",
            Command::Old { .. } => "old",
            Command::Stats { .. } => "stats",
            Command::DeleteOrphans(_) => "delete-orphans",
            Command::DeleteOld { .. } => "delete-old",
            Command::Scan => "scan",
            Command::Sweep { .. } => "sweep",
            Command::EmptyTrash { .. } => "empty-trash",
            Command::Restore { .. } => "restore",
            Command::Run(_) => "run",
        }
    }
}

/// How a listing is printed, from what inventory, and which files it includes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Table or JSON.
    pub output: Output,
    /// Whether to scan first.
    pub inventory: Inventory,
    /// Which files to include.
    pub filter: Filter,
}

/// Where results go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A table for people.
    Table,
    /// One JSON document on stdout.
    Json,
}

/// Which inventory a command reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inventory {
    /// Walk the volume first, so the answer is what is on disk now.
    Rescan,
    /// Use the last scan's inventory (`--no-scan`).
    LastScan,
}

/// A delete command's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// What is shown before deleting, and which files are deleted.
    pub listing: Listing,
    /// Whether to ask first.
    pub confirmation: Confirmation,
    /// Show only; change nothing and never ask.
    pub dry_run: bool,
    /// Pass the safety limit on the share of the volume deleted at once.
    pub force: bool,
}

/// Whether a destructive command asks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// Ask on the terminal; refuse without one.
    Ask,
    /// `--yes`: do not ask.
    AssumeYes,
}

/// Whether an age cleanup spares images that rows still reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferencedImages {
    /// Only unreferenced images are deleted.
    Keep,
    /// `--include-referenced`: referenced images are deleted too.
    Delete,
}

/// What the sweep does with a file it removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Move it into the trash folder, from where it can be restored.
    Trash,
    /// `--no-trash`: delete it for good.
    Unlink,
}

/// The long-running mode's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Time between scans.
    pub scan_interval: Duration,
    /// Time between sweeps when no notification arrives.
    pub sweep_interval: Duration,
    /// The application to start and supervise, if any.
    pub child: Option<ChildCommand>,
    /// Where to serve the Prometheus metrics; none serves none.
    pub metrics: Option<MetricsAddress>,
}

/// Where `filegc run` serves its metrics, and what asked for it, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAddress {
    /// The address and port to listen on.
    pub address: SocketAddr,
    /// `--metrics-addr` or `FILEGC_METRICS_ADDR`.
    pub source: &'static str,
}

/// A program and its arguments, given after `--`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildCommand {
    /// The program to start.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// What the process's surroundings contribute: fallbacks that are not options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `RAILWAY_VOLUME_MOUNT_PATH`, set by Railway for a service with a volume.
    pub railway_volume_mount_path: Option<PathBuf>,
    /// The host name, the default worker name.
    pub host_name: Option<String>,
    /// Whether `RAILWAY_ENVIRONMENT` is set: the process runs on Railway.
    pub on_railway: bool,
    /// `FILEGC_LOG_FORMAT`, unchecked.
    pub log_format: Option<String>,
    /// `FILEGC_LOG`, unchecked.
    pub filegc_log: Option<String>,
    /// `RUST_LOG`, unchecked.
    pub rust_log: Option<String>,
    /// `FILEGC_METRICS_ADDR`, unchecked.
    pub metrics_addr: Option<String>,
    /// Whether `NO_COLOR` is set to anything but the empty string (<https://no-color.org>).
    pub no_color: bool,
    /// The Railway project, service and environment, for the alerts.
    pub railway: RailwayNames,
    /// The variables a bucket's settings come from ([`BUCKET_VARIABLES`]), those set.
    pub bucket_variables: BTreeMap<&'static str, String>,
}

/// The variables [`BucketSettings::from_variables`] reads: Railway's bucket
/// variables, AWS's, and filegc's own.
pub const BUCKET_VARIABLES: &[&str] = &[
    "ACCESS_KEY_ID",
    "SECRET_ACCESS_KEY",
    "REGION",
    "ENDPOINT",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "FILEGC_S3_ADDRESSING",
    "FILEGC_S3_REQUESTS_PER_SECOND",
];

/// Where on Railway the sweeper runs, as Railway's variables name it; all
/// `None` elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RailwayNames {
    /// `RAILWAY_PROJECT_NAME`.
    pub project: Option<String>,
    /// `RAILWAY_SERVICE_NAME`.
    pub service: Option<String>,
    /// `RAILWAY_ENVIRONMENT_NAME`.
    pub environment: Option<String>,
}

impl Environment {
    /// Reads the fallbacks from this process's environment and host.
    pub fn from_process() -> Environment {
        let host_name = rustix::system::uname()
            .nodename()
            .to_str()
            .ok()
            .map(str::to_owned);
        Environment {
            railway_volume_mount_path: std::env::var_os("RAILWAY_VOLUME_MOUNT_PATH")
                .map(PathBuf::from),
            host_name,
            on_railway: variable("RAILWAY_ENVIRONMENT").is_some(),
            log_format: variable("FILEGC_LOG_FORMAT"),
            filegc_log: variable("FILEGC_LOG"),
            rust_log: variable("RUST_LOG"),
            metrics_addr: variable("FILEGC_METRICS_ADDR"),
            no_color: variable("NO_COLOR").is_some(),
            railway: RailwayNames {
                project: variable("RAILWAY_PROJECT_NAME"),
                service: variable("RAILWAY_SERVICE_NAME"),
                environment: variable("RAILWAY_ENVIRONMENT_NAME"),
            },
            bucket_variables: BUCKET_VARIABLES
                .iter()
                .filter_map(|name| variable(name).map(|value| (*name, value)))
                .collect(),
        }
    }
}

/// An environment variable's value, unless it is unset or empty; a value
/// that is not UTF-8 is kept, lossily, so that checking it can refuse it.
fn variable(name: &str) -> Option<String> {
    std::env::var_os(name)
        .map(|value| value.to_string_lossy().into_owned())
        .filter(|value| !value.is_empty())
}

/// Why the command line or environment cannot be used; the run stops with exit status 2.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Neither the option nor either variable names the volume.
    #[error(
        "no volume given: pass --volume PATH, or set FILEGC_VOLUME or RAILWAY_VOLUME_MOUNT_PATH"
    )]
    MissingVolume,
    /// Both a volume and a bucket were named.
    #[error("both a volume ({volume}) and a bucket ({storage}) given: filegc manages one place, so give --volume (FILEGC_VOLUME) or --storage (FILEGC_STORAGE), not both")]
    VolumeAndBucket {
        /// The volume given.
        volume: String,
        /// The bucket given.
        storage: String,
    },
    /// The bucket's settings cannot be used.
    #[error(transparent)]
    Bucket(#[from] BucketSettingsError),
    /// A command on a bucket without the database.
    #[error("filegc on a bucket works through the database (its listings, statistics and deletions all come from it): pass --database-url URL or set DATABASE_URL")]
    BucketWithoutDatabase,
    /// A byte budget of nothing.
    #[error("--storage-budget (FILEGC_STORAGE_BUDGET) is 0: give the bucket's budget, such as 50GB, or unset it for no alert levels")]
    ZeroBudget,
    /// A byte budget for a volume.
    #[error("--storage-budget (FILEGC_STORAGE_BUDGET) gives a bucket its alert levels; a volume's come from its size: unset it")]
    BudgetOnVolume,
    /// No worker name was given and the host name is unknown.
    #[error(
        "no worker name: the host name is unknown, so pass --worker NAME or set FILEGC_WORKER"
    )]
    MissingWorker,
    /// A size option could not be read.
    #[error("{option}: {source}")]
    Size {
        /// The option.
        option: &'static str,
        /// What is wrong with its value.
        source: SizeError,
    },
    /// A date option could not be read.
    #[error("{option}: {source}")]
    Date {
        /// The option.
        option: &'static str,
        /// What is wrong with its value.
        source: DateError,
    },
    /// An interval option could not be read.
    #[error("{option}: {source}")]
    Interval {
        /// The option.
        option: &'static str,
        /// What is wrong with its value.
        source: DurationError,
    },
    /// An `--ext` entry is not a file extension.
    #[error("--ext: {value:?} is not a file extension (example: --ext jpg,png)")]
    Extension {
        /// The entry as given.
        value: String,
    },
    /// `--min-size` is above `--max-size`.
    #[error("--min-size {min} is larger than --max-size {max}, so no file could match")]
    SizeRange {
        /// The lower bound, as shown.
        min: String,
        /// The upper bound, as shown.
        max: String,
    },
    /// `--since` is not before `--until`.
    #[error("--since {since} is not before --until {until}, so no file could match")]
    DateRange {
        /// The lower bound, as given.
        since: String,
        /// The upper bound, as given.
        until: String,
    },
    /// `--apply` was given, but no database to run the script in.
    #[error("--apply needs the database: pass --database-url URL or set DATABASE_URL")]
    ApplyWithoutDatabase,
    /// `FILEGC_LOG_FORMAT` names no log format.
    #[error(
        "FILEGC_LOG_FORMAT={value:?} is not a log format: set it to json or text, or unset it"
    )]
    LogFormatVariable {
        /// The value as set.
        value: String,
    },
    /// `FILEGC_LOG` or `RUST_LOG` holds a directive that cannot be read.
    #[error("{variable}={directives:?} is not a log filter ({reason}): give levels, optionally by target, like FILEGC_LOG=warn,filegc_sweeper::sweep=debug (FILEGC_LOG is read before RUST_LOG)")]
    LogFilter {
        /// `FILEGC_LOG` or `RUST_LOG`.
        variable: &'static str,
        /// The value as set.
        directives: String,
        /// What the filter's parser said.
        reason: String,
    },
    /// `--metrics-addr` or `FILEGC_METRICS_ADDR` is not an address to listen on.
    #[error("{source_name}={value:?} is not an address to listen on: give an IP address and a port, like 0.0.0.0:9464, or [::]:9464 to take IPv6 too")]
    MetricsAddress {
        /// `--metrics-addr` or `FILEGC_METRICS_ADDR`.
        source_name: &'static str,
        /// The value as given.
        value: String,
    },
    /// The path given to `restore` could leave the volume.
    #[error("restore {path:?}: {reason} (give the path relative to the volume, like user_123_1700000000.jpg)")]
    RestorePath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: InvalidReason,
    },
}

impl Config {
    /// Checks the command line and fills in what the environment provides.
    pub fn from_cli(cli: Cli, environment: &Environment) -> Result<Config, ConfigError> {
        // The portable install's scripts need neither a volume nor a worker name.
        let (script, apply) = match cli.command {
            Some(cli::Command::InstallSql {
                apply: false,
                upgrade_from: Some(from),
            }) => return Ok(Config::Portable(PortableCommand::PrintUpgrade { from })),
            Some(cli::Command::InstallSql { apply, .. }) => (PortableScript::Install, apply),
            Some(cli::Command::UninstallSql { apply }) => (PortableScript::Uninstall, apply),
            Some(cli::Command::SwitchEngine { to, apply }) => {
                let to = match to {
                    cli::EngineArg::Extension => Engine::Extension,
                    cli::EngineArg::Portable => Engine::Portable,
                };
                (PortableScript::Switch(to), apply)
            }
            _ if cli.global.storage.as_deref().is_some_and(|s| !s.is_empty()) => {
                return BucketConfig::from_cli(cli, environment)
                    .map(|config| Config::Bucket(Box::new(config)))
            }
            _ => {
                return VolumeConfig::from_cli(cli, environment)
                    .map(|config| Config::Volume(Box::new(config)))
            }
        };
        if !apply {
            return Ok(Config::Portable(PortableCommand::Print(script)));
        }
        let database_url =
            database_url(cli.global.database_url).ok_or(ConfigError::ApplyWithoutDatabase)?;
        Ok(Config::Portable(PortableCommand::Apply {
            script,
            database_url,
        }))
    }
}

impl BucketConfig {
    fn from_cli(cli: Cli, environment: &Environment) -> Result<BucketConfig, ConfigError> {
        let global = cli.global;
        let storage = global.storage.unwrap_or_default();
        // RAILWAY_VOLUME_MOUNT_PATH is Railway's, set whenever the service has
        // a volume; only a volume named for filegc conflicts with the bucket.
        if let Some(volume) = global.volume.filter(|path| !path.as_os_str().is_empty()) {
            return Err(ConfigError::VolumeAndBucket {
                volume: volume.display().to_string(),
                storage,
            });
        }
        let command = cli
            .command
            .map_or(Ok(Command::Menu), |given| command(given, environment))?;
        let mut bucket = BucketSettings::from_variables(&storage, |name| {
            environment.bucket_variables.get(name).cloned()
        })?;
        bucket.budget_bytes = match global.storage_budget.as_deref() {
            None | Some("") => None,
            Some(budget) => match parse_size(budget) {
                Ok(0) => return Err(ConfigError::ZeroBudget),
                Ok(bytes) => Some(bytes),
                Err(source) => {
                    return Err(ConfigError::Size {
                        option: "--storage-budget (FILEGC_STORAGE_BUDGET)",
                        source,
                    })
                }
            },
        };
        let worker = worker_name(global.worker, environment)?;
        Ok(BucketConfig {
            bucket,
            database_url: database_url(global.database_url)
                .ok_or(ConfigError::BucketWithoutDatabase)?,
            logging: logging(
                &command,
                global.log_format,
                (global.quiet, global.verbose),
                environment,
            )?,
            worker,
            command,
        })
    }
}

impl VolumeConfig {
    fn from_cli(cli: Cli, environment: &Environment) -> Result<VolumeConfig, ConfigError> {
        let global = cli.global;
        let volume = global
            .volume
            .filter(|path| !path.as_os_str().is_empty())
            .or_else(|| environment.railway_volume_mount_path.clone())
            .filter(|path| !path.as_os_str().is_empty())
            .ok_or(ConfigError::MissingVolume)?;
        if global
            .storage_budget
            .as_deref()
            .is_some_and(|b| !b.is_empty())
        {
            return Err(ConfigError::BudgetOnVolume);
        }
        let worker = worker_name(global.worker, environment)?;
        let command = cli
            .command
            .map_or(Ok(Command::Menu), |given| command(given, environment))?;
        Ok(VolumeConfig {
            volume,
            database_url: database_url(global.database_url),
            logging: logging(
                &command,
                global.log_format,
                (global.quiet, global.verbose),
                environment,
            )?,
            worker,
            command,
        })
    }
}

/// The name the sweeper records in the database: `--worker`, else the host name.
fn worker_name(given: Option<String>, environment: &Environment) -> Result<String, ConfigError> {
    given
        .or_else(|| environment.host_name.clone())
        .filter(|name| !name.trim().is_empty())
        .ok_or(ConfigError::MissingWorker)
}

/// How `command` logs: the command line first, then the environment.
///
/// The format is `--log-format`, else `FILEGC_LOG_FORMAT`, else JSON for
/// `run` on Railway (whose log view reads JSON lines), else text; commands
/// on Railway keep text, for the operator in `railway ssh`. The filter is
/// `-v`/`-q` when given, else `FILEGC_LOG`, else `RUST_LOG`, else the
/// command's default level.
fn logging(
    command: &Command,
    format: Option<LogFormatArg>,
    (quiet, verbose): (u8, u8),
    environment: &Environment,
) -> Result<Logging, ConfigError> {
    let service = matches!(command, Command::Run(_));
    let format = match (format, environment.log_format.as_deref()) {
        (Some(LogFormatArg::Text), _) => LogFormat::Text,
        (Some(LogFormatArg::Json), _) => LogFormat::Json,
        (None, Some(value)) => match value.trim().to_ascii_lowercase().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => {
                return Err(ConfigError::LogFormatVariable {
                    value: value.to_owned(),
                })
            }
        },
        (None, None) if service && environment.on_railway => LogFormat::Json,
        (None, None) => LogFormat::Text,
    };
    let level = match (quiet, verbose) {
        // The menu draws its own screen: info lines would land in the middle of it.
        (0, 0) if *command == Command::Menu => LogLevel::Warn,
        (0, 0) => LogLevel::Info,
        (0, 1) => LogLevel::Debug,
        (0, _) => LogLevel::Trace,
        (1, _) => LogLevel::Warn,
        _ => LogLevel::Error,
    };
    let mut warning = None;
    let filter = match (&environment.filegc_log, &environment.rust_log) {
        _ if (quiet, verbose) != (0, 0) => LogFilter::Level(level),
        (Some(directives), _) => {
            if let Err(error) = tracing_subscriber::EnvFilter::builder().parse(directives) {
                return Err(ConfigError::LogFilter {
                    variable: "FILEGC_LOG",
                    directives: directives.clone(),
                    reason: error.to_string(),
                });
            }
            LogFilter::Directives {
                variable: "FILEGC_LOG",
                directives: directives.clone(),
            }
        }
        // In the application's container RUST_LOG is often the
        // application's: written for its own targets, or for another
        // logger's syntax. What it does not name keeps filegc's level, and
        // one filegc cannot read is left out with a warning: a sweeper that
        // refused to start would keep the application from starting.
        (None, Some(directives)) => {
            let widened = if names_a_default_level(directives) {
                directives.clone()
            } else {
                format!("{},{directives}", level.name())
            };
            match tracing_subscriber::EnvFilter::builder().parse(&widened) {
                Ok(_) => LogFilter::Directives {
                    variable: "RUST_LOG",
                    directives: widened,
                },
                Err(error) => {
                    warning = Some(format!(
                        "RUST_LOG={directives:?} is not a log filter filegc can read ({error}); it is left out (FILEGC_LOG is filegc's own and is read first)"
                    ));
                    LogFilter::Level(level)
                }
            }
        }
        (None, None) => LogFilter::Level(level),
    };
    Ok(Logging {
        format,
        filter,
        warning,
        destination: if service {
            LogDestination::Stdout
        } else {
            LogDestination::Stderr
        },
        colour: if environment.no_color {
            Colour::Never
        } else {
            Colour::OnTerminal
        },
    })
}

/// A connection string, unless it is missing or blank.
fn database_url(given: Option<String>) -> Option<DatabaseUrl> {
    given.filter(|url| !url.trim().is_empty()).map(DatabaseUrl)
}

fn command(command: cli::Command, environment: &Environment) -> Result<Command, ConfigError> {
    Ok(match command {
        cli::Command::List(args) => Command::List(listing(args)?),
        cli::Command::Orphans(args) => Command::Orphans(listing(args)?),
        cli::Command::Old {
            days,
            listing: args,
        } => Command::Old {
            days,
            listing: listing(args)?,
        },
        cli::Command::Stats(args) => Command::Stats {
            output: output(args.json),
            inventory: inventory(args.no_scan),
        },
        cli::Command::DeleteOrphans(args) => Command::DeleteOrphans(deletion(args)?),
        cli::Command::DeleteOld {
            days,
            include_referenced,
            deletion: args,
        } => Command::DeleteOld {
            days,
            referenced: if include_referenced {
                ReferencedImages::Delete
            } else {
                ReferencedImages::Keep
            },
            deletion: deletion(args)?,
        },
        cli::Command::Scan => Command::Scan,
        cli::Command::Sweep { no_trash } => Command::Sweep {
            removal: if no_trash {
                Removal::Unlink
            } else {
                Removal::Trash
            },
        },
        cli::Command::EmptyTrash { yes } => Command::EmptyTrash {
            confirmation: confirmation(yes),
        },
        cli::Command::Restore { path } => match validate_relative(&path) {
            Ok(()) => Command::Restore { path },
            Err(reason) => return Err(ConfigError::RestorePath { path, reason }),
        },
        cli::Command::InstallSql { .. }
        | cli::Command::UninstallSql { .. }
        | cli::Command::SwitchEngine { .. } => {
            unreachable!("Config::from_cli takes the portable install's commands first")
        }
        cli::Command::Run(args) => {
            let mut child = args.command.into_iter();
            Command::Run(RunOptions {
                scan_interval: interval("--scan-interval", &args.scan_interval)?,
                sweep_interval: interval("--sweep-interval", &args.sweep_interval)?,
                child: child.next().map(|program| ChildCommand {
                    program,
                    args: child.collect(),
                }),
                metrics: metrics_address(args.metrics_addr, environment)?,
            })
        }
    })
}

fn listing(args: ListArgs) -> Result<Listing, ConfigError> {
    Ok(Listing {
        output: output(args.json),
        inventory: inventory(args.no_scan),
        filter: filter(args.filter)?,
    })
}

fn deletion(args: DeleteArgs) -> Result<Deletion, ConfigError> {
    Ok(Deletion {
        listing: listing(args.listing)?,
        confirmation: confirmation(args.yes),
        dry_run: args.dry_run,
        force: args.force,
    })
}

fn filter(args: FilterArgs) -> Result<Filter, ConfigError> {
    let extensions = args
        .ext
        .iter()
        .map(|value| {
            let extension = value.trim().trim_start_matches('.');
            if extension.is_empty() || !extension.chars().all(|c| c.is_alphanumeric()) {
                return Err(ConfigError::Extension {
                    value: value.clone(),
                });
            }
            Ok(extension.to_lowercase())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let size = |option, value: &Option<String>| {
        value
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(|source| ConfigError::Size { option, source })
    };
    let date = |option, value: &Option<String>| {
        value
            .as_deref()
            .map(parse_date)
            .transpose()
            .map_err(|source| ConfigError::Date { option, source })
    };
    let min_size = size("--min-size", &args.min_size)?;
    let max_size = size("--max-size", &args.max_size)?;
    if let (Some(min), Some(max)) = (min_size, max_size) {
        if min > max {
            return Err(ConfigError::SizeRange {
                min: format_size(min),
                max: format_size(max),
            });
        }
    }
    let modified_since = date("--since", &args.since)?.map(|spec| spec.start());
    let modified_before = date("--until", &args.until)?.map(|spec| spec.end());
    if let (Some(since), Some(before)) = (modified_since, modified_before) {
        if since >= before {
            return Err(ConfigError::DateRange {
                since: args.since.unwrap_or_default(),
                until: args.until.unwrap_or_default(),
            });
        }
    }
    Ok(Filter {
        user_id: args.user,
        extensions,
        min_size,
        max_size,
        modified_since,
        modified_before,
    })
}

/// Where to serve the metrics: `--metrics-addr`, else `FILEGC_METRICS_ADDR`, else nowhere.
fn metrics_address(
    option: Option<String>,
    environment: &Environment,
) -> Result<Option<MetricsAddress>, ConfigError> {
    let (source, value) = match (option, &environment.metrics_addr) {
        (Some(value), _) => ("--metrics-addr", value),
        (None, Some(value)) => ("FILEGC_METRICS_ADDR", value.clone()),
        (None, None) => return Ok(None),
    };
    match value.trim().parse() {
        Ok(address) => Ok(Some(MetricsAddress { address, source })),
        Err(_) => Err(ConfigError::MetricsAddress {
            source_name: source,
            value,
        }),
    }
}

fn interval(option: &'static str, value: &str) -> Result<Duration, ConfigError> {
    parse_duration(value).map_err(|source| ConfigError::Interval { option, source })
}

fn output(json: bool) -> Output {
    if json {
        Output::Json
    } else {
        Output::Table
    }
}

fn inventory(no_scan: bool) -> Inventory {
    if no_scan {
        Inventory::LastScan
    } else {
        Inventory::Rescan
    }
}

fn confirmation(yes: bool) -> Confirmation {
    if yes {
        Confirmation::AssumeYes
    } else {
        Confirmation::Ask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use clap::Parser;

    fn environment() -> Environment {
        Environment {
            railway_volume_mount_path: None,
            host_name: Some("web-1".into()),
            ..Environment::default()
        }
    }

    fn parsed(environment: &Environment, args: &[&str]) -> Result<Config, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("filegc").chain(args.iter().copied()))
            .expect("the command line parses");
        Config::from_cli(cli, environment)
    }

    fn config_with(environment: &Environment, args: &[&str]) -> Result<VolumeConfig, ConfigError> {
        match parsed(environment, args)? {
            Config::Volume(config) => Ok(*config),
            Config::Bucket(config) => panic!("expected a command on the volume, got {config:?}"),
            Config::Portable(command) => {
                panic!("expected a command on the volume, got {command:?}")
            }
        }
    }

    fn with_bucket_variables() -> Environment {
        Environment {
            bucket_variables: BTreeMap::from([
                ("ACCESS_KEY_ID", "key".to_owned()),
                ("SECRET_ACCESS_KEY", "secret".to_owned()),
                ("ENDPOINT", "https://storage.railway.app".to_owned()),
                ("REGION", "auto".to_owned()),
            ]),
            railway_volume_mount_path: Some("/railway".into()),
            ..environment()
        }
    }

    #[test]
    fn a_bucket_is_scanned_even_where_railway_mounts_a_volume() {
        let args = [
            "--storage",
            "s3://my-bucket/images",
            "--database-url",
            "postgres://db",
            "scan",
        ];
        let Config::Bucket(config) = parsed(&with_bucket_variables(), &args).unwrap() else {
            panic!("expected a command on the bucket");
        };
        assert_eq!(config.bucket.location.to_string(), "s3://my-bucket/images/");
        assert_eq!(config.command, Command::Scan);
        assert_eq!(config.worker, "web-1");
    }

    #[test]
    fn a_volume_and_a_bucket_named_together_are_refused() {
        let args = [
            "--volume",
            "/data",
            "--storage",
            "s3://my-bucket/images/",
            "scan",
        ];
        let error = parsed(&with_bucket_variables(), &args).unwrap_err();
        assert!(
            matches!(error, ConfigError::VolumeAndBucket { .. }),
            "{error:?}"
        );
        for named in [
            "/data",
            "s3://my-bucket/images/",
            "FILEGC_VOLUME",
            "FILEGC_STORAGE",
        ] {
            assert!(error.to_string().contains(named), "{error}");
        }
    }

    #[test]
    fn a_byte_budget_is_read_for_a_bucket_and_refused_for_a_volume() {
        let bucket = |budget: &str| {
            parsed(
                &with_bucket_variables(),
                &[
                    "--storage",
                    "s3://my-bucket/images/",
                    "--database-url",
                    "postgres://db",
                    "--storage-budget",
                    budget,
                    "stats",
                ],
            )
        };
        match bucket("1.5GiB") {
            Ok(Config::Bucket(config)) => {
                assert_eq!(config.bucket.budget_bytes, Some(1_610_612_736))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(bucket("0").unwrap_err(), ConfigError::ZeroBudget);
        assert!(matches!(
            bucket("50 gigs").unwrap_err(),
            ConfigError::Size { .. }
        ));
        assert_eq!(
            config(&["--storage-budget", "50GB", "stats"]).unwrap_err(),
            ConfigError::BudgetOnVolume
        );
    }

    #[test]
    fn every_command_works_on_a_bucket_with_the_database_and_none_without() {
        for command in [
            &["orphans", "--json"][..],
            &["stats"],
            &["delete-old", "--days", "90", "--yes"],
            &["empty-trash", "--yes"],
            &[],
        ] {
            let mut args = vec![
                "--storage",
                "s3://my-bucket/images/",
                "--database-url",
                "postgres://db",
            ];
            args.extend_from_slice(command);
            match parsed(&with_bucket_variables(), &args) {
                Ok(Config::Bucket(_)) => {}
                other => panic!("{command:?}: {other:?}"),
            }
            let without_database = [&args[..2], command].concat();
            assert_eq!(
                parsed(&with_bucket_variables(), &without_database).unwrap_err(),
                ConfigError::BucketWithoutDatabase,
                "{command:?}"
            );
        }
    }

    fn config(args: &[&str]) -> Result<VolumeConfig, ConfigError> {
        let mut with_volume = vec!["--volume", "/data"];
        with_volume.extend_from_slice(args);
        config_with(&environment(), &with_volume)
    }

    fn listing_filter(args: &[&str]) -> Result<Filter, ConfigError> {
        let mut list = vec!["list"];
        list.extend_from_slice(args);
        match config(&list)?.command {
            Command::List(listing) => Ok(listing.filter),
            other => panic!("expected list, got {other:?}"),
        }
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    #[test]
    fn the_volume_comes_from_the_option_then_railway() {
        let railway = Environment {
            railway_volume_mount_path: Some("/railway".into()),
            ..environment()
        };
        let from_option = config_with(&railway, &["--volume", "/data", "scan"]).unwrap();
        assert_eq!(from_option.volume, PathBuf::from("/data"));
        let from_railway = config_with(&railway, &["scan"]).unwrap();
        assert_eq!(from_railway.volume, PathBuf::from("/railway"));
    }

    #[test]
    fn without_a_volume_the_error_names_every_way_to_give_one() {
        let error = config_with(&environment(), &["scan"]).unwrap_err();
        assert_eq!(error, ConfigError::MissingVolume);
        let message = error.to_string();
        for way in ["--volume", "FILEGC_VOLUME", "RAILWAY_VOLUME_MOUNT_PATH"] {
            assert!(message.contains(way), "{message}");
        }
    }

    #[test]
    fn the_worker_defaults_to_the_host_name() {
        assert_eq!(config(&["scan"]).unwrap().worker, "web-1");
        assert_eq!(config(&["--worker", "w2", "scan"]).unwrap().worker, "w2");
        let nameless = Environment {
            host_name: None,
            ..environment()
        };
        let error = config_with(&nameless, &["--volume", "/data", "scan"]).unwrap_err();
        assert_eq!(error, ConfigError::MissingWorker);
    }

    #[test]
    fn the_database_url_is_optional_and_never_printed_by_debug() {
        assert_eq!(config(&["list"]).unwrap().database_url, None);
        let secret = "postgres://app:s3cret@db/app";
        let config = config(&["--database-url", secret, "list"]).unwrap();
        assert_eq!(
            config.database_url.as_ref().map(DatabaseUrl::expose),
            Some(secret)
        );
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn verbosity_sets_the_log_level() {
        let level = |args: &[&str]| config(args).unwrap().logging.filter;
        assert_eq!(level(&["scan"]), LogFilter::Level(LogLevel::Info));
        assert_eq!(
            level(&[]),
            LogFilter::Level(LogLevel::Warn),
            "the menu keeps its screen free of info lines"
        );
        assert_eq!(level(&["-v"]), LogFilter::Level(LogLevel::Debug));
        assert_eq!(level(&["-v", "scan"]), LogFilter::Level(LogLevel::Debug));
        assert_eq!(level(&["-vvv", "scan"]), LogFilter::Level(LogLevel::Trace));
        assert_eq!(level(&["-q", "scan"]), LogFilter::Level(LogLevel::Warn));
        assert_eq!(level(&["-qq", "scan"]), LogFilter::Level(LogLevel::Error));
    }

    fn logging_with(environment: &Environment, args: &[&str]) -> Result<Logging, ConfigError> {
        let mut with_volume = vec!["--volume", "/data"];
        with_volume.extend_from_slice(args);
        config_with(environment, &with_volume).map(|config| config.logging)
    }

    #[test]
    fn run_logs_json_on_stdout_on_railway_and_commands_keep_text_on_stderr() {
        let railway = Environment {
            on_railway: true,
            ..environment()
        };
        let run = logging_with(&railway, &["run"]).unwrap();
        assert_eq!(
            (run.format, run.destination),
            (LogFormat::Json, LogDestination::Stdout)
        );
        let scan = logging_with(&railway, &["scan"]).unwrap();
        assert_eq!(
            (scan.format, scan.destination),
            (LogFormat::Text, LogDestination::Stderr)
        );
        let off_railway = logging_with(&environment(), &["run"]).unwrap();
        assert_eq!(
            (off_railway.format, off_railway.destination),
            (LogFormat::Text, LogDestination::Stdout)
        );
    }

    #[test]
    fn the_log_format_is_the_flag_then_filegc_log_format_then_railway() {
        let format = |environment: &Environment, args: &[&str]| {
            logging_with(environment, args).unwrap().format
        };
        let railway = Environment {
            on_railway: true,
            ..environment()
        };
        let text_by_variable = Environment {
            log_format: Some("text".into()),
            ..railway.clone()
        };
        let json_by_variable = Environment {
            log_format: Some("JSON".into()),
            ..environment()
        };
        assert_eq!(
            format(&railway, &["--log-format", "text", "run"]),
            LogFormat::Text
        );
        assert_eq!(format(&text_by_variable, &["run"]), LogFormat::Text);
        assert_eq!(
            format(&text_by_variable, &["--log-format", "json", "run"]),
            LogFormat::Json
        );
        assert_eq!(format(&json_by_variable, &["scan"]), LogFormat::Json);
        assert_eq!(format(&json_by_variable, &["run"]), LogFormat::Json);
    }

    #[test]
    fn an_invalid_filegc_log_format_names_the_variable_and_the_accepted_values() {
        let xml = Environment {
            log_format: Some("xml".into()),
            ..environment()
        };
        let error = logging_with(&xml, &["run"]).unwrap_err();
        assert_eq!(
            error,
            ConfigError::LogFormatVariable {
                value: "xml".into()
            }
        );
        let message = error.to_string();
        for word in ["FILEGC_LOG_FORMAT", "\"xml\"", "json", "text"] {
            assert!(message.contains(word), "{message}");
        }
        assert_eq!(
            logging_with(&xml, &["--log-format", "json", "run"])
                .unwrap()
                .format,
            LogFormat::Json,
            "the flag wins, so the variable is not read"
        );
    }

    #[test]
    fn an_applications_rust_log_leaves_filegcs_level_alone_and_never_stops_it() {
        let with_rust_log = |value: &str| Environment {
            rust_log: Some(value.into()),
            ..environment()
        };
        let only_the_application = logging_with(&with_rust_log("myapp=debug"), &["run"]).unwrap();
        assert_eq!(
            only_the_application.filter,
            LogFilter::Directives {
                variable: "RUST_LOG",
                directives: "info,myapp=debug".into()
            },
            "targets RUST_LOG does not name keep filegc's level"
        );
        assert_eq!(only_the_application.warning, None);
        let unreadable = logging_with(&with_rust_log("myapp=loud"), &["run"])
            .expect("an unreadable RUST_LOG does not stop filegc run, nor the application with it");
        assert_eq!(unreadable.filter, LogFilter::Level(LogLevel::Info));
        assert!(
            unreadable
                .warning
                .as_deref()
                .is_some_and(|warning| warning.contains("RUST_LOG")),
            "{:?}",
            unreadable.warning
        );
        let own = Environment {
            filegc_log: Some("myapp=loud".into()),
            ..environment()
        };
        assert!(
            logging_with(&own, &["run"]).is_err(),
            "FILEGC_LOG is filegc's own: a typo in it is refused"
        );
    }

    #[test]
    fn the_filter_is_verbosity_then_filegc_log_then_rust_log() {
        let filter = |environment: &Environment, args: &[&str]| {
            logging_with(environment, args).unwrap().filter
        };
        let both = Environment {
            filegc_log: Some("warn,filegc_sweeper::sweep=debug".into()),
            rust_log: Some("trace".into()),
            ..environment()
        };
        let rust_log_only = Environment {
            filegc_log: None,
            ..both.clone()
        };
        assert_eq!(
            filter(&both, &["run"]),
            LogFilter::Directives {
                variable: "FILEGC_LOG",
                directives: "warn,filegc_sweeper::sweep=debug".into()
            }
        );
        assert_eq!(
            filter(&rust_log_only, &["run"]),
            LogFilter::Directives {
                variable: "RUST_LOG",
                directives: "trace".into()
            }
        );
        assert_eq!(
            filter(&both, &["-v", "run"]),
            LogFilter::Level(LogLevel::Debug)
        );
        assert_eq!(
            filter(&both, &["-q", "run"]),
            LogFilter::Level(LogLevel::Warn)
        );
    }

    #[test]
    fn an_invalid_log_filter_names_its_variable() {
        let loud = Environment {
            filegc_log: Some("filegc_sweeper=loud".into()),
            ..environment()
        };
        let error = logging_with(&loud, &["scan"]).unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::LogFilter {
                    variable: "FILEGC_LOG",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("FILEGC_LOG=\"filegc_sweeper=loud\""),
            "{error}"
        );
    }

    #[test]
    fn no_color_turns_colour_off() {
        assert_eq!(
            logging_with(&environment(), &["scan"]).unwrap().colour,
            Colour::OnTerminal
        );
        let no_color = Environment {
            no_color: true,
            ..environment()
        };
        assert_eq!(
            logging_with(&no_color, &["scan"]).unwrap().colour,
            Colour::Never
        );
    }

    #[test]
    fn no_command_is_the_menu() {
        assert_eq!(config(&[]).unwrap().command, Command::Menu);
    }

    #[test]
    fn delete_options_become_the_programs_words() {
        let config = config(&[
            "delete-old",
            "--days",
            "90",
            "--include-referenced",
            "--yes",
            "--json",
            "--no-scan",
        ])
        .unwrap();
        let Command::DeleteOld {
            days,
            referenced,
            deletion,
        } = config.command
        else {
            panic!("expected delete-old");
        };
        assert_eq!((days, referenced), (90, ReferencedImages::Delete));
        assert_eq!(deletion.confirmation, Confirmation::AssumeYes);
        assert!(!deletion.dry_run && !deletion.force);
        assert_eq!(deletion.listing.output, Output::Json);
        assert_eq!(deletion.listing.inventory, Inventory::LastScan);
    }

    #[test]
    fn sizes_dates_and_extensions_are_parsed_into_the_filter() {
        let filter = listing_filter(&[
            "--user",
            "123",
            "--ext",
            ".JPG,png",
            "--min-size",
            "2MB",
            "--max-size",
            "1GiB",
            "--since",
            "2024-01-01",
            "--until",
            "2024-01-31",
        ])
        .unwrap();
        assert_eq!(
            filter,
            Filter {
                user_id: Some(123),
                extensions: vec!["jpg".into(), "png".into()],
                min_size: Some(2_000_000),
                max_size: Some(1 << 30),
                modified_since: Some(at("2024-01-01T00:00:00Z")),
                modified_before: Some(at("2024-02-01T00:00:00Z")),
            }
        );
    }

    #[test]
    fn bad_filter_values_name_the_option() {
        let error = listing_filter(&["--min-size", "2XB"]).unwrap_err();
        assert!(
            error.to_string().starts_with("--min-size: unknown unit"),
            "{error}"
        );
        let error = listing_filter(&["--until", "tomorrow"]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("--until: \"tomorrow\" is not a date"),
            "{error}"
        );
        let error = listing_filter(&["--ext", "jpg,"]).unwrap_err();
        assert_eq!(
            error,
            ConfigError::Extension {
                value: String::new()
            }
        );
        let error = listing_filter(&["--ext", "tar/gz"]).unwrap_err();
        assert!(matches!(error, ConfigError::Extension { .. }));
    }

    #[test]
    fn ranges_that_no_file_can_match_are_refused() {
        let error = listing_filter(&["--min-size", "2MB", "--max-size", "1MB"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "--min-size 2.0 MB is larger than --max-size 1.0 MB, so no file could match"
        );
        let error =
            listing_filter(&["--since", "2024-02-01", "--until", "2024-01-31"]).unwrap_err();
        assert!(matches!(error, ConfigError::DateRange { .. }));
        assert!(listing_filter(&["--since", "2024-01-31", "--until", "2024-01-31"]).is_ok());
    }

    #[test]
    fn run_intervals_and_the_child_command_are_checked() {
        let config = config(&["run", "--scan-interval", "30m", "--", "node", "server.js"]).unwrap();
        let Command::Run(run) = config.command else {
            panic!("expected run");
        };
        assert_eq!(run.scan_interval, Duration::from_secs(1800));
        assert_eq!(run.sweep_interval, Duration::from_secs(60));
        let child = run.child.unwrap();
        assert_eq!(
            (child.program, child.args),
            ("node".into(), vec!["server.js".into()])
        );
        let Command::Run(run) = super::tests::config(&["run"]).unwrap().command else {
            panic!("expected run");
        };
        assert_eq!(run.child, None);
        let error = super::tests::config(&["run", "--sweep-interval", "0s"]).unwrap_err();
        assert!(
            error.to_string().starts_with("--sweep-interval: "),
            "{error}"
        );
    }

    #[test]
    fn the_metrics_address_is_the_flag_then_filegc_metrics_addr() {
        let metrics = |environment: &Environment, args: &[&str]| {
            let mut with_volume = vec!["--volume", "/data"];
            with_volume.extend_from_slice(args);
            config_with(environment, &with_volume).map(|config| match config.command {
                Command::Run(run) => run.metrics,
                other => panic!("expected run, got {other:?}"),
            })
        };
        assert_eq!(metrics(&environment(), &["run"]), Ok(None));
        let by_variable = Environment {
            metrics_addr: Some("[::]:9464".into()),
            ..environment()
        };
        assert_eq!(
            metrics(&by_variable, &["run"]),
            Ok(Some(MetricsAddress {
                address: "[::]:9464".parse().unwrap(),
                source: "FILEGC_METRICS_ADDR",
            }))
        );
        assert_eq!(
            metrics(&by_variable, &["run", "--metrics-addr", "127.0.0.1:9100"]),
            Ok(Some(MetricsAddress {
                address: "127.0.0.1:9100".parse().unwrap(),
                source: "--metrics-addr",
            }))
        );
        let unreadable = Environment {
            metrics_addr: Some("localhost:9464".into()),
            ..environment()
        };
        let error = metrics(&unreadable, &["run"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "FILEGC_METRICS_ADDR=\"localhost:9464\" is not an address to listen on: give an IP address and a port, like 0.0.0.0:9464, or [::]:9464 to take IPv6 too"
        );
        let error = metrics(&environment(), &["run", "--metrics-addr", "9464"]).unwrap_err();
        assert!(
            error.to_string().starts_with("--metrics-addr=\"9464\""),
            "{error}"
        );
    }

    #[test]
    fn the_portable_install_needs_no_volume_and_its_apply_needs_the_database() {
        let nowhere = Environment::default();
        let portable = |args: &[&str]| match parsed(&nowhere, args) {
            Ok(Config::Portable(command)) => Ok(command),
            Ok(other) => panic!("expected a portable install command, got {other:?}"),
            Err(error) => Err(error),
        };
        assert_eq!(
            portable(&["install-sql"]),
            Ok(PortableCommand::Print(PortableScript::Install))
        );
        assert_eq!(
            portable(&["install-sql", "--upgrade-from", "0.1.0"]),
            Ok(PortableCommand::PrintUpgrade {
                from: "0.1.0".into()
            })
        );
        assert_eq!(
            portable(&["switch-engine", "--to", "extension"]),
            Ok(PortableCommand::Print(PortableScript::Switch(
                Engine::Extension
            )))
        );
        for blank in [
            &["uninstall-sql", "--apply"][..],
            &["install-sql", "--apply", "--database-url", " "],
        ] {
            let error = portable(blank).unwrap_err();
            assert_eq!(error, ConfigError::ApplyWithoutDatabase);
            assert_eq!(
                error.to_string(),
                "--apply needs the database: pass --database-url URL or set DATABASE_URL"
            );
        }
        assert_eq!(
            portable(&[
                "switch-engine",
                "--to",
                "portable",
                "--apply",
                "--database-url",
                "postgres://db/app"
            ]),
            Ok(PortableCommand::Apply {
                script: PortableScript::Switch(Engine::Portable),
                database_url: DatabaseUrl("postgres://db/app".into()),
            })
        );
    }

    #[test]
    fn restore_refuses_paths_that_leave_the_volume() {
        for path in ["../etc/passwd", "/etc/passwd", "a/../b.jpg"] {
            let error = config(&["restore", path]).unwrap_err();
            assert!(
                matches!(error, ConfigError::RestorePath { .. }),
                "{path}: {error}"
            );
        }
        let restore = config(&["restore", "sub/user_1_2.jpg"]).unwrap().command;
        assert_eq!(
            restore,
            Command::Restore {
                path: "sub/user_1_2.jpg".into()
            }
        );
    }
}
