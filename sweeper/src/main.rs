//! `filegc`: the command-line sweeper.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory, Parser};
use filegc_sweeper::cli::{self, Cli};
use filegc_sweeper::commands::{Context, ListKind, MenuBackend, Refused};
use filegc_sweeper::config::{Command, Config, Environment, LogFormat, LogLevel};
use filegc_sweeper::db::{Cleanup, Db, DbError};
use filegc_sweeper::exit_codes::ExitCode;
use filegc_sweeper::menu::run_menu;
use filegc_sweeper::offline;
use filegc_sweeper::portable::{self, Engine, Installed};
use filegc_sweeper::progress::Progress;
use filegc_sweeper::run::{supervise, RunSettings};
use filegc_sweeper::scan::{scan, ScanOptions};
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
    match error.downcast_ref::<DbError>() {
        Some(DbError::Unreachable { .. }) => ExitCode::DatabaseUnreachable,
        Some(DbError::NoExtension { .. }) => ExitCode::UsageOrRefused,
        _ => ExitCode::SomeFilesFailed,
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let refused = Ok(ExitCode::UsageOrRefused.into());
    // These touch only the database, so they need no volume.
    match cli.command {
        Some(cli::Command::InstallSql {
            apply,
            upgrade_from: Some(from),
        }) if !apply => {
            return match portable::upgrade_script(&from) {
                Ok(script) => {
                    io::stdout().write_all(script.as_bytes())?;
                    Ok(ExitCode::Success.into())
                }
                Err(why) => {
                    eprintln!("filegc: {why}");
                    refused
                }
            }
        }
        Some(cli::Command::InstallSql { apply, .. }) => {
            return portable_sql(cli.global.database_url, PortableScript::Install, apply)
                .map(Into::into)
        }
        Some(cli::Command::UninstallSql { apply }) => {
            return portable_sql(cli.global.database_url, PortableScript::Uninstall, apply)
                .map(Into::into)
        }
        Some(cli::Command::SwitchEngine { to, apply }) => {
            let to = match to {
                cli::EngineArg::Extension => Engine::Extension,
                cli::EngineArg::Portable => Engine::Portable,
            };
            return portable_sql(cli.global.database_url, PortableScript::Switch(to), apply)
                .map(Into::into);
        }
        _ => {}
    }
    if cli.command.is_none() && !io::stdin().is_terminal() {
        // The menu needs someone to answer it; a script gets the help instead.
        eprintln!("{}", Cli::command().render_help());
        return refused;
    }
    let config = match Config::from_cli(cli, &Environment::from_process()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("filegc: {error}");
            return refused;
        }
    };
    init_logging(config.log_format, config.log_level);
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
        Command::Menu => menu(&config, volume, &runtime).map(Into::into),
        Command::Run(options) => {
            let Some(database_url) = config.database_url else {
                eprintln!(
                    "filegc: `run` needs the database: pass --database-url URL or set DATABASE_URL"
                );
                return refused;
            };
            let settings = RunSettings {
                volume,
                database_url,
                worker: config.worker,
                options,
            };
            let code = runtime.block_on(supervise(settings))?;
            // A walk or a connection still winding down must not hold up the exit.
            runtime.shutdown_timeout(Duration::from_secs(1));
            Ok(code.into())
        }
        _ => runtime.block_on(execute(config, volume)).map(Into::into),
    }
}

/// Which script of the portable install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortableScript {
    Install,
    Uninstall,
    Switch(Engine),
}

/// `filegc install-sql` and `uninstall-sql`: print the script, or run it in one transaction.
fn portable_sql(
    database_url: Option<String>,
    script: PortableScript,
    apply: bool,
) -> anyhow::Result<ExitCode> {
    if !apply {
        let text = match script {
            PortableScript::Install => portable::install_script(),
            PortableScript::Uninstall => portable::UNINSTALL_SCRIPT.to_owned(),
            PortableScript::Switch(to) => portable::switch_script(to),
        };
        io::stdout().write_all(text.as_bytes())?;
        return Ok(ExitCode::Success);
    }
    let Some(url) = database_url.filter(|url| !url.trim().is_empty()) else {
        eprintln!(
            "filegc: --apply needs the database: pass --database-url URL or set DATABASE_URL"
        );
        return Ok(ExitCode::UsageOrRefused);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut client = Db::connect_unchecked(&url).await?;
        let installed = portable::installed(&client).await?;
        let (text, done) = match portable_plan(script, &installed) {
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

/// What `--apply` does, given what the database has.
#[derive(Debug, PartialEq)]
enum PortablePlan {
    Run { script: String, done: String },
    NothingToDo(String),
    Refuse(String),
}

fn portable_plan(script: PortableScript, installed: &Installed) -> PortablePlan {
    let run = |script: String, done: String| PortablePlan::Run { script, done };
    match (script, installed) {
        (_, Installed::EmptySchema) => PortablePlan::Refuse(
            "this database has a schema filegc without filegc in it (DROP EXTENSION leaves the schema behind): \
             if it holds nothing you need, run DROP SCHEMA filegc CASCADE and try again"
                .into(),
        ),
        (PortableScript::Switch(Engine::Portable), Installed::Extension(_)) => run(
            portable::switch_script(Engine::Portable),
            "filegc now runs as the portable install, with its data kept".into(),
        ),
        (PortableScript::Switch(Engine::Extension), Installed::Portable(version)) if version == portable::VERSION => run(
            portable::switch_script(Engine::Extension),
            "filegc now runs as the extension, with its data kept".into(),
        ),
        (PortableScript::Switch(Engine::Extension), Installed::Portable(version)) => PortablePlan::Refuse(format!(
            "the portable install is at {version}: upgrade it first with `filegc install-sql --apply`, then switch"
        )),
        (PortableScript::Switch(_), Installed::Nothing) => PortablePlan::Refuse(
            "filegc is not installed in this database: there is nothing to move".into(),
        ),
        (PortableScript::Switch(_), _) => {
            PortablePlan::NothingToDo("filegc already runs on that engine here; nothing to do".into())
        }
        (_, Installed::Extension(version)) => PortablePlan::Refuse(format!(
            "the filegc extension {version} is installed in this database; the portable install is for databases that cannot load it \
             (upgrade the extension with ALTER EXTENSION filegc UPDATE, or move with `filegc switch-engine --to portable`)"
        )),
        (PortableScript::Install, Installed::Nothing) => run(
            portable::install_script(),
            format!("installed filegc {} (portable)", portable::VERSION),
        ),
        (PortableScript::Install, Installed::Portable(version)) if version == portable::VERSION => {
            PortablePlan::NothingToDo(format!("filegc {version} (portable) is installed already; nothing to do"))
        }
        (PortableScript::Install, Installed::Portable(version)) => match portable::upgrade_script(version) {
            Ok(script) => run(
                script,
                format!(
                    "upgraded the portable filegc from {version} to {}, with its data kept",
                    portable::VERSION
                ),
            ),
            Err(why) => PortablePlan::Refuse(why.to_string()),
        },
        (PortableScript::Uninstall, Installed::Nothing) => {
            PortablePlan::NothingToDo("filegc is not installed in this database; nothing to do".into())
        }
        (PortableScript::Uninstall, Installed::Portable(_)) => run(
            portable::UNINSTALL_SCRIPT.to_owned(),
            "removed the portable filegc install".into(),
        ),
    }
}

/// The interactive menu on the terminal.
fn menu(
    config: &Config,
    volume: Volume,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let context = runtime.block_on(connect(config, volume))?;
    let mut backend = MenuBackend { context, runtime };
    let outcome = run_menu(io::stdin().lock(), io::stdout().lock(), &mut backend)?;
    Ok(outcome.exit_code())
}

/// Connects to the database the configuration names.
async fn connect(config: &Config, volume: Volume) -> anyhow::Result<Context> {
    Ok(Context {
        volume,
        db: connect_db(config).await?,
        worker: config.worker.clone(),
    })
}

/// Connects to the database alone.
async fn connect_db(config: &Config) -> Result<Db, DbError> {
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

async fn execute(config: Config, volume: Volume) -> anyhow::Result<ExitCode> {
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
    let mut context = Context {
        volume,
        db,
        worker: config.worker.clone(),
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let code = match &config.command {
        Command::Scan => {
            let options = ScanOptions {
                worker: config.worker.clone(),
                progress: Progress::on_terminal(),
            };
            let report = scan(&context.volume, &context.db, &options).await?;
            writeln!(
                out,
                "Scanned {} files ({} bytes); volume alert level: {}",
                report.files, report.bytes, report.alert_level
            )?;
            if report.problems > 0 {
                ExitCode::SomeFilesFailed
            } else {
                ExitCode::Success
            }
        }
        Command::Sweep { removal } => {
            let options = SweepOptions {
                worker: config.worker.clone(),
                removal: *removal,
                batch_size: DEFAULT_BATCH_SIZE,
                progress: Progress::on_terminal(),
                stop: None,
            };
            let report = sweep(&context.volume, &mut context.db, &options, &mut |_, _| {}).await?;
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
            if report.failed + report.trash_errors > 0 {
                ExitCode::SomeFilesFailed
            } else {
                ExitCode::Success
            }
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

/// Sends tracing's events to stderr, as text or JSON lines.
fn init_logging(format: LogFormat, level: LogLevel) {
    let level = match level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_max_level(level);
    match format {
        LogFormat::Text => builder.with_ansi(io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_portable_install_is_upgraded_and_a_newer_one_refused() {
        let PortablePlan::Run { script, done } = portable_plan(
            PortableScript::Install,
            &Installed::Portable("0.1.0".into()),
        ) else {
            panic!("an older portable install must be upgraded");
        };
        assert_eq!(script, portable::upgrade_script("0.1.0").unwrap());
        assert!(done.contains("from 0.1.0"), "{done}");

        let PortablePlan::Refuse(why) = portable_plan(
            PortableScript::Install,
            &Installed::Portable("9.0.0".into()),
        ) else {
            panic!("a newer install must be left alone");
        };
        assert!(why.contains("newer"), "{why}");
    }

    #[test]
    fn nothing_is_installed_over_the_extension_or_a_leftover_schema() {
        for installed in [Installed::Extension("0.2.0".into()), Installed::EmptySchema] {
            for script in [PortableScript::Install, PortableScript::Uninstall] {
                assert!(
                    matches!(portable_plan(script, &installed), PortablePlan::Refuse(_)),
                    "{script:?} over {installed:?}"
                );
            }
        }
    }

    #[test]
    fn a_switch_to_the_extension_waits_for_the_portable_upgrade() {
        let plan = portable_plan(
            PortableScript::Switch(Engine::Extension),
            &Installed::Portable("0.1.0".into()),
        );
        assert!(
            matches!(&plan, PortablePlan::Refuse(why) if why.contains("install-sql --apply")),
            "{plan:?}"
        );
    }
}
