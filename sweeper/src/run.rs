//! `filegc run`: the long-running mode that rides along with the application.
//!
//! [`run`] keeps the sweeper going until its `shutdown` future completes: it
//! listens on the `filegc` channel and sweeps on each notification and on an
//! interval, scans on another interval, and reports the volume each time. A
//! database that is down or restarting is retried with backoff and never
//! ends the run. [`supervise`] adds the application as a child process whose
//! signals and exit status pass through.

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, sleep_until, Instant, MissedTickBehavior};

use crate::config::{ChildCommand, DatabaseUrl, Removal, RunOptions};
use crate::db::{Db, DbError};
use crate::progress::Progress;
use crate::scan::{report_capacity, scan, ScanOptions};
use crate::sweep::{sweep, SweepOptions, DEFAULT_BATCH_SIZE};
use crate::units::format_duration;
use crate::volume::Volume;

/// The first wait before reconnecting to the database.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// The longest wait between reconnection attempts.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// How long the sweeper may take to settle its batch once the application has exited.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The exit status when the application cannot be started, as shells use for a missing command.
const CANNOT_START: u8 = 127;

/// What the long-running mode works on.
#[derive(Debug)]
pub struct RunSettings {
    /// The opened volume.
    pub volume: Volume,
    /// The database to listen to and report into.
    pub database_url: DatabaseUrl,
    /// The name the sweeper works under.
    pub worker: String,
    /// Intervals and the application to supervise.
    pub options: RunOptions,
}

/// Runs the sweeper until `shutdown` completes, then settles the batch in hand and returns.
pub async fn run(settings: &RunSettings, shutdown: impl Future<Output = ()>) {
    let (stop_sender, stop) = watch::channel(false);
    let work = Sweeper::new(settings, stop).keep_going();
    tokio::pin!(work);
    tokio::select! {
        () = &mut work => return,
        () = shutdown => {
            tracing::info!("stopping: finishing the batch in hand");
            // The receiver lives in `work`, which is still running.
            let _ = stop_sender.send(true);
        }
    }
    work.await;
}

/// Runs the sweeper, and the application if one is given; returns the exit status for the process.
///
/// Without an application SIGTERM and SIGINT stop the sweeper and the status
/// is 0. With one, they are passed on to it, and its exit status (128 plus the
/// signal's number when a signal ended it) becomes filegc's.
pub async fn supervise(settings: RunSettings) -> std::io::Result<u8> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let Some(command) = settings.options.child.clone() else {
        run(&settings, async {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
            }
        })
        .await;
        return Ok(0);
    };
    let mut child = match tokio::process::Command::new(&command.program)
        .args(&command.args)
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            tracing::error!(
                program = %command.program.to_string_lossy(),
                error = %error,
                "cannot start the application"
            );
            return Ok(CANNOT_START);
        }
    };
    tracing::info!(program = %command.program.to_string_lossy(), pid = child.id(), "application started");
    let (exited_sender, exited) = tokio::sync::oneshot::channel::<()>();
    let sweeper = tokio::spawn(async move {
        run(&settings, async {
            let _ = exited.await;
        })
        .await;
    });
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            _ = terminate.recv() => forward(&child, &command, rustix::process::Signal::TERM),
            _ = interrupt.recv() => forward(&child, &command, rustix::process::Signal::INT),
        }
    };
    let code = exit_code(status);
    tracing::info!(status = code, "application exited");
    let _ = exited_sender.send(());
    if tokio::time::timeout(STOP_GRACE, sweeper).await.is_err() {
        tracing::warn!("the sweeper did not stop in time; leaving its batch to the lease");
    }
    Ok(code)
}

/// Passes a signal on to the application.
fn forward(child: &tokio::process::Child, command: &ChildCommand, sig: rustix::process::Signal) {
    let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    tracing::info!(signal = ?sig, pid = pid.as_raw_nonzero().get(), "passing the signal on to the application");
    if let Err(error) = rustix::process::kill_process(pid, sig) {
        tracing::warn!(
            program = %command.program.to_string_lossy(),
            error = %std::io::Error::from(error),
            "cannot pass the signal on"
        );
    }
}

/// The exit status a shell would report for the application: its code, or 128 plus the signal that ended it.
fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        (None, None) => 1,
    }
}

/// How a connected stretch of the run ended.
enum Served {
    /// The run was asked to stop.
    Stopped,
    /// The connection went away; the cause is logged.
    Lost(String),
}

/// The run's state across reconnections.
struct Sweeper<'a> {
    settings: &'a RunSettings,
    stop: watch::Receiver<bool>,
    next_scan: Instant,
    alert_level: String,
}

impl<'a> Sweeper<'a> {
    fn new(settings: &'a RunSettings, stop: watch::Receiver<bool>) -> Self {
        Sweeper {
            settings,
            stop,
            next_scan: Instant::now(),
            alert_level: "ok".into(),
        }
    }

    /// Connects, serves, and reconnects with backoff until asked to stop.
    async fn keep_going(mut self) {
        let mut backoff = Backoff::default();
        loop {
            let url = self.settings.database_url.expose();
            let connected = tokio::select! {
                connected = Db::connect_listening(url) => connected,
                () = stopped(&mut self.stop) => return,
            };
            match connected {
                Ok((db, notifications)) => {
                    if backoff.failures > 0 {
                        tracing::info!(
                            attempts = backoff.failures + 1,
                            "the database is reachable again"
                        );
                    }
                    backoff = Backoff::default();
                    tracing::info!("connected; listening for deletions");
                    match self.serve(db, notifications).await {
                        Served::Stopped => return,
                        Served::Lost(cause) => {
                            tracing::warn!(cause = %cause, "lost the database; reconnecting");
                        }
                    }
                }
                Err(error) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(
                        attempt = backoff.failures,
                        retry_in = %format_duration(wait),
                        error = %error,
                        "cannot reach the database; the application keeps running and the sweeper retries"
                    );
                    tokio::select! {
                        () = sleep(wait) => {}
                        () = stopped(&mut self.stop) => return,
                    }
                }
            }
        }
    }

    /// Sweeps and scans on one connection until it is lost or the run stops.
    async fn serve(
        &mut self,
        mut db: Db,
        mut notifications: mpsc::UnboundedReceiver<String>,
    ) -> Served {
        let interval = self.settings.options.sweep_interval;
        let mut sweep_tick = tokio::time::interval_at(Instant::now() + interval, interval);
        sweep_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Notifications sent while disconnected are lost: sweep once at once.
        let mut sweep_due = true;
        loop {
            if *self.stop.borrow() {
                return Served::Stopped;
            }
            if sweep_due {
                sweep_due = false;
                if let Err(lost) = self.sweep(&mut db).await {
                    return lost;
                }
            }
            if Instant::now() >= self.next_scan {
                self.next_scan = Instant::now() + self.settings.options.scan_interval;
                if let Err(lost) = self.scan(&db).await {
                    return lost;
                }
            }
            tokio::select! {
                biased;
                () = stopped(&mut self.stop) => return Served::Stopped,
                notification = notifications.recv() => match notification {
                    Some(payload) => {
                        // A burst of notifications needs one sweep.
                        let mut coalesced = 1u64;
                        while notifications.try_recv().is_ok() {
                            coalesced += 1;
                        }
                        tracing::debug!(payload = %payload, coalesced, "notified");
                        sweep_due = true;
                    }
                    None => return Served::Lost("the connection closed".into()),
                },
                _ = sweep_tick.tick() => sweep_due = true,
                () = sleep_until(self.next_scan) => {}
            }
        }
    }

    /// One sweep and a capacity report; `Err` when the connection is gone.
    async fn sweep(&mut self, db: &mut Db) -> Result<(), Served> {
        let options = SweepOptions {
            worker: self.settings.worker.clone(),
            removal: Removal::Trash,
            batch_size: DEFAULT_BATCH_SIZE,
            progress: Progress::Hidden,
            stop: Some(self.stop.clone()),
        };
        let swept = sweep(&self.settings.volume, db, &options, &mut |_, _| {}).await;
        let reported = match swept {
            Ok(_) => report_capacity(&self.settings.volume, db, &self.settings.worker).await,
            Err(error) => Err(error),
        };
        self.settled(db, reported, "sweep")
    }

    /// One scan (which reports the capacity); `Err` when the connection is gone.
    async fn scan(&mut self, db: &Db) -> Result<(), Served> {
        let options = ScanOptions {
            worker: self.settings.worker.clone(),
            progress: Progress::Hidden,
        };
        let mut stop = self.stop.clone();
        let scanned = tokio::select! {
            scanned = scan(&self.settings.volume, db, &options) => scanned,
            // A walk can be long; dropping it abandons the COPY, and the next run scans again.
            () = stopped(&mut stop) => return Err(Served::Stopped),
        };
        self.settled(db, scanned.map(|report| report.alert_level), "scan")
    }

    /// Notes the alert level of a finished step, or decides whether its error lost the connection.
    fn settled(
        &mut self,
        db: &Db,
        result: Result<String, DbError>,
        step: &'static str,
    ) -> Result<(), Served> {
        match result {
            Ok(level) => {
                if alert_rank(&level) > alert_rank(&self.alert_level) {
                    tracing::warn!(
                        from = %self.alert_level,
                        to = %level,
                        "the volume's alert level rose: free space or delete files"
                    );
                }
                self.alert_level = level;
                Ok(())
            }
            Err(error) if db.is_closed() => Err(Served::Lost(error.to_string())),
            Err(error) => {
                tracing::warn!(step, error = %error, "failed; trying again at the next one");
                Ok(())
            }
        }
    }
}

/// Waits until the run is asked to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens when the run ends.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The order of the alert levels `filegc.storage_stats` reports.
fn alert_rank(level: &str) -> u8 {
    match level {
        "warning" => 2,
        "critical" => 3,
        "emergency" => 4,
        // "ok", and "unknown" before the first capacity report.
        _ => 1,
    }
}

/// Exponential backoff between reconnection attempts, capped at [`MAX_RETRY`].
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Counts a failure and returns how long to wait before the next attempt.
    fn next_wait(&mut self) -> Duration {
        let wait = FIRST_RETRY
            .checked_mul(1 << self.failures.min(16))
            .map_or(MAX_RETRY, |wait| wait.min(MAX_RETRY));
        self.failures += 1;
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..10)
            .map(|_| backoff.next_wait().as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000]
        );
        for _ in 0..100 {
            assert_eq!(backoff.next_wait(), MAX_RETRY);
        }
    }

    #[test]
    fn alert_levels_rise_in_order() {
        let levels = ["ok", "warning", "critical", "emergency"];
        for pair in levels.windows(2) {
            assert!(alert_rank(pair[0]) < alert_rank(pair[1]), "{pair:?}");
        }
        assert_eq!(alert_rank("unknown"), alert_rank("ok"));
    }

    #[test]
    fn the_exit_status_is_the_code_or_128_plus_the_signal() {
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 128 + 15);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
    }
}
