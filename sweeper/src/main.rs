//! `filegc`: the command-line sweeper.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory, Parser};
use filegc_sweeper::bucket::Bucket;
use filegc_sweeper::cli::Cli;
use filegc_sweeper::commands::{Context, MenuBackend, Refused};
use filegc_sweeper::config::{
    BucketConfig, Command, Config, Environment, PortableCommand, PortableScript, Removal,
    VolumeConfig,
};
use filegc_sweeper::db::{Cleanup, Db, DbError, ListKind};
use filegc_sweeper::exit_codes::ExitCode;
use filegc_sweeper::menu::run_menu;
use filegc_sweeper::metrics::MetricsEndpoint;
use filegc_sweeper::offline;
use filegc_sweeper::portable::{self, PortablePlan};
use filegc_sweeper::progress::Progress;
use filegc_sweeper::run::{supervise, RunSettings};
use filegc_sweeper::scan::{scan_store, AnotherLister, BucketScanError, ScanOptions};
use filegc_sweeper::storage::{Storage, Store};
use filegc_sweeper::sweep::{sweep, SweepOptions, DEFAULT_BATCH_SIZE};
use filegc_sweeper::volume::Volume;

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("filegc: {error:#}");
            exit_code_of(&error).into()
        }
    }
}

/// The exit status an error ends the run with.
fn exit_code_of(error: &anyhow::Error) -> ExitCode {
    if error.downcast_ref::<Refused>().is_some() {
        return ExitCode::UsageOrRefused;
    }
    let db_error = match error.downcast_ref::<BucketScanError>() {
        Some(BucketScanError::Bucket(_) | BucketScanError::AnotherLister) => {
            return ExitCode::SomeFilesFailed
        }
        Some(BucketScanError::Db(db_error)) => Some(db_error),
        None => error.downcast_ref::<DbError>(),
    };
    match db_error {
        Some(DbError::Unreachable { .. } | DbError::Query(_)) => ExitCode::DatabaseError,
        Some(DbError::NoExtension { .. } | DbError::NotPermitted { .. } | DbError::Refused(_)) => {
            ExitCode::UsageOrRefused
        }
        None => ExitCode::SomeFilesFailed,
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let refused = Ok(ExitCode::UsageOrRefused.into());
    if cli.command.is_none() && !io::stdin().is_terminal() {
        // The menu needs someone to answer it; a script gets the help instead.
        eprintln!("{}", Cli::command().render_help());
        return refused;
    }
    let config = match Config::from_cli(cli, &Environment::from_process()) {
        Ok(Config::Volume(config)) => *config,
        Ok(Config::Bucket(config)) => return bucket_command(*config),
        // These touch only the database, so they need no volume (and log nothing).
        Ok(Config::Portable(command)) => return portable_sql(command).map(Into::into),
        Err(error) => {
            eprintln!("filegc: {error}");
            return refused;
        }
    };
    filegc_sweeper::logging::init(&config.logging);
    let volume = match Volume::open(&config.volume) {
        Ok(volume) => volume,
        Err(error) => {
            eprintln!("filegc: {error}");
            return refused;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match config.command {
        Command::Menu => {
            let context = runtime.block_on(async {
                anyhow::Ok(Context {
                    store: Store::Volume(volume),
                    db: connect_db(&config).await?,
                    worker: config.worker.clone(),
                })
            })?;
            menu(context, &runtime).map(Into::into)
        }
        Command::Run(options) => {
            let Some(database_url) = config.database_url else {
                eprintln!(
                    "filegc: `run` needs the database: pass --database-url URL or set DATABASE_URL"
                );
                return refused;
            };
            let settings = RunSettings {
                store: Store::Volume(volume),
                database_url,
                worker: config.worker,
                options,
            };
            run_sweeper(settings, runtime)
        }
        _ => runtime.block_on(execute(config, volume)).map(Into::into),
    }
}

/// `filegc run`: serves until the application exits or a signal comes.
fn run_sweeper(
    settings: RunSettings,
    runtime: tokio::runtime::Runtime,
) -> anyhow::Result<std::process::ExitCode> {
    // Bound before anything starts, so that a port in use stops the run at once.
    let metrics = match settings
        .options
        .metrics
        .as_ref()
        .map(MetricsEndpoint::bind)
        .transpose()
    {
        Ok(metrics) => metrics,
        Err(error) => {
            eprintln!("filegc: {error}");
            return Ok(ExitCode::UsageOrRefused.into());
        }
    };
    let code = runtime.block_on(supervise(settings, metrics))?;
    // A walk or a connection still winding down must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(code.into())
}

/// `filegc sweep` on a volume or a bucket: every due deletion now, with a
/// progress bar on a terminal; prints what it did and returns the exit status.
async fn sweep_now<S: Storage>(
    storage: &S,
    db: &mut Db,
    worker: &str,
    removal: Removal,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let options = SweepOptions {
        worker: worker.to_owned(),
        removal,
        batch_size: DEFAULT_BATCH_SIZE,
        progress: Progress::on_terminal(),
        stop: None,
    };
    let report = sweep(storage, db, &options, &mut |_, _| {}).await?;
    writeln!(
        out,
        "Swept {} deletions: {} removed, {} already gone, {} kept (referenced again, named \
         by an invalid reference, or no longer managed), {} failed; {} restored, {} purged \
         from the trash",
        report.claimed,
        report.removed,
        report.already_gone,
        report.kept,
        report.failed,
        report.restored,
        report.purged
    )?;
    Ok(ExitCode::from_failures(report.failed + report.trash_errors))
}

/// Every command on a bucket; unlike a volume, a bucket has nothing to show without the database.
fn bucket_command(config: BucketConfig) -> anyhow::Result<std::process::ExitCode> {
    filegc_sweeper::logging::init(&config.logging);
    let bucket = match Bucket::open(&config.bucket) {
        Ok(bucket) => bucket,
        Err(error) => {
            eprintln!("filegc: {error}");
            return Ok(ExitCode::UsageOrRefused.into());
        }
    };
    let store = Store::Bucket(Box::new(bucket));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if let Command::Run(options) = config.command {
        let settings = RunSettings {
            store,
            database_url: config.database_url,
            worker: config.worker,
            options,
        };
        return run_sweeper(settings, runtime);
    }
    let context = runtime.block_on(async {
        anyhow::Ok(Context {
            store,
            db: Db::connect(config.database_url.expose()).await?,
            worker: config.worker.clone(),
        })
    })?;
    let code = match config.command {
        Command::Menu => menu(context, &runtime)?,
        command => runtime.block_on(dispatch(context, &command))?,
    };
    Ok(code.into())
}

/// `filegc install-sql`, `uninstall-sql` and `switch-engine`: print the script, or run it in one transaction.
fn portable_sql(command: PortableCommand) -> anyhow::Result<ExitCode> {
    let (script, url) = match command {
        PortableCommand::PrintUpgrade { from } => {
            return match portable::upgrade_script(&from) {
                Ok(script) => {
                    io::stdout().write_all(script.as_bytes())?;
                    Ok(ExitCode::Success)
                }
                Err(why) => {
                    eprintln!("filegc: {why}");
                    Ok(ExitCode::UsageOrRefused)
                }
            };
        }
        PortableCommand::Print(script) => {
            let text = match script {
                PortableScript::Install => portable::install_script(),
                PortableScript::Uninstall => portable::UNINSTALL_SCRIPT.to_owned(),
                PortableScript::Switch(to) => portable::switch_script(to),
            };
            io::stdout().write_all(text.as_bytes())?;
            return Ok(ExitCode::Success);
        }
        PortableCommand::Apply {
            script,
            database_url,
        } => (script, database_url),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut client = Db::connect_unchecked(url.expose()).await?;
        let installed = portable::installed(&client).await?;
        let (text, done) = match portable::portable_plan(script, &installed) {
            PortablePlan::Run { script, done } => (script, done),
            PortablePlan::NothingToDo(why) => {
                println!("{why}");
                return Ok(ExitCode::Success);
            }
            PortablePlan::Refuse(reason) => {
                eprintln!("filegc: {reason}");
                return Ok(ExitCode::UsageOrRefused);
            }
        };
        let transaction = client.transaction().await.map_err(DbError::from)?;
        transaction
            .batch_execute(&text)
            .await
            .map_err(DbError::from)?;
        transaction.commit().await.map_err(DbError::from)?;
        println!("{done}");
        Ok(ExitCode::Success)
    })
}

/// The interactive menu on the terminal.
fn menu(context: Context, runtime: &tokio::runtime::Runtime) -> anyhow::Result<ExitCode> {
    let mut backend = MenuBackend { context, runtime };
    let outcome = run_menu(io::stdin().lock(), io::stdout().lock(), &mut backend)?;
    Ok(outcome.exit_code())
}

/// Connects to the database alone.
async fn connect_db(config: &VolumeConfig) -> Result<Db, DbError> {
    let Some(url) = &config.database_url else {
        return Err(DbError::Unreachable {
            host: "(none)".into(),
            cause: "no database given: pass --database-url URL or set DATABASE_URL".into(),
        });
    };
    Db::connect(url.expose()).await
}

/// `list`, `old` and `stats` from the disk alone, after a warning naming the database's trouble.
async fn from_disk(
    command: &Command,
    volume: &Volume,
    unreachable: &DbError,
    out: &mut dyn Write,
) -> Option<anyhow::Result<ExitCode>> {
    let warn = || {
        eprintln!(
            "filegc: warning: {unreachable}
filegc: warning: showing what is on disk only; \
             whether files are referenced or orphaned needs the database"
        );
    };
    match command {
        Command::List(listing) => {
            warn();
            Some(offline::list(volume, ListKind::All, listing, out).await)
        }
        Command::Old { days, listing } => {
            warn();
            Some(offline::list(volume, ListKind::Old(*days), listing, out).await)
        }
        Command::Stats { output, .. } => {
            warn();
            Some(offline::stats(volume, *output, out).await)
        }
        _ => None,
    }
}

async fn execute(config: VolumeConfig, volume: Volume) -> anyhow::Result<ExitCode> {
    let db = match connect_db(&config).await {
        Ok(db) => db,
        Err(error @ DbError::Unreachable { .. }) => {
            let stdout = io::stdout();
            return match from_disk(&config.command, &volume, &error, &mut stdout.lock()).await {
                Some(result) => result,
                None => Err(error.into()),
            };
        }
        Err(error) => return Err(error.into()),
    };
    let context = Context {
        store: Store::Volume(volume),
        db,
        worker: config.worker.clone(),
    };
    dispatch(context, &config.command).await
}

/// Runs one command on the store and prints what it did.
async fn dispatch(mut context: Context, command: &Command) -> anyhow::Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let code = match command {
        Command::Scan => {
            let options = ScanOptions {
                worker: context.worker.clone(),
                progress: Progress::on_terminal(),
                another_lister: AnotherLister::Wait,
            };
            let report = scan_store(&context.store, &mut context.db, &options).await?;
            match &context.store {
                Store::Volume(_) => writeln!(
                    out,
                    "Scanned {} files ({} bytes); volume alert level: {}",
                    report.files, report.bytes, report.alert_level
                )?,
                Store::Bucket(bucket) => writeln!(
                    out,
                    "Scanned {} files ({} bytes) in {}",
                    report.files,
                    report.bytes,
                    bucket.location()
                )?,
            }
            ExitCode::from_failures(report.problems)
        }
        Command::Sweep { removal } => {
            sweep_now(
                &context.store,
                &mut context.db,
                &context.worker,
                *removal,
                &mut out,
            )
            .await?
        }
        Command::List(listing) => context.list(ListKind::All, listing, &mut out).await?,
        Command::Orphans(listing) => context.list(ListKind::Orphans, listing, &mut out).await?,
        Command::Old { days, listing } => {
            context
                .list(ListKind::Old(*days), listing, &mut out)
                .await?
        }
        Command::Stats { output, inventory } => {
            context.stats(*output, *inventory, &mut out).await?
        }
        Command::DeleteOrphans(deletion) => {
            context.delete(Cleanup::Orphans, deletion, &mut out).await?
        }
        Command::DeleteOld {
            days,
            referenced,
            deletion,
        } => {
            let cleanup = Cleanup::OlderThan {
                days: *days,
                include_referenced: *referenced == filegc_sweeper::config::ReferencedImages::Delete,
            };
            context.delete(cleanup, deletion, &mut out).await?
        }
        Command::EmptyTrash { confirmation } => {
            context.empty_trash(*confirmation, &mut out).await?
        }
        Command::Restore { path } => context.restore(path, &mut out).await?,
        Command::Menu | Command::Run(_) => {
            unreachable!("the menu and run are dispatched before connecting")
        }
    };
    Ok(code)
}
