//! `filegc run`: the long-running mode that rides along with the application.
//!
//! [`run`] keeps the sweeper going until its `shutdown` future completes: it
//! listens on the `filegc` channel and sweeps on each notification, again a
//! moment later for the writers that did not notify again so soon, and on an
//! interval, scans on another interval, and reports the volume each time. A
//! database that is down or restarting is retried with backoff and never
//! ends the run. [`supervise`] adds the application as a child process whose
//! signals and exit status pass through.
//!
//! It also applies the maintenance policies the database's settings hold
//! (decided in [`crate::maintenance`]): scheduled orphan and retention
//! cleanups inside the maintenance window, the alert webhook, and the
//! emergency cleanup when the volume reaches the emergency level, and
//! records in the database how each alert's delivery ended.
//!
//! With a [`MetricsEndpoint`] it serves Prometheus metrics for as long as it
//! runs, from what each scan and sweep noted (see [`crate::metrics`]).

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use rustix::process::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, sleep_until, Instant, MissedTickBehavior};

use chrono::{DateTime, Utc};

use crate::config::{ChildCommand, DatabaseUrl, Environment, Removal, RunOptions};
use crate::db::{Cleanup, Db, DbError, ScheduledCleanup};
use crate::maintenance::{self, LevelChange, Policies};
use crate::metrics::{Metrics, MetricsEndpoint};
use crate::progress::Progress;
use crate::scan::{report_store, scan_store, AnotherLister, BucketScanError, ScanOptions};
use crate::storage::{Storage, Store};
use crate::sweep::{
    purge_trashed, sweep, PurgeReport, SweepOptions, SweepReport, DEFAULT_BATCH_SIZE,
};
use crate::units::format_duration;
use crate::webhook::{Alert, Delivery, Notifier};

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
    /// The opened volume or bucket.
    pub store: Store,
    /// The database to listen to and report into.
    pub database_url: DatabaseUrl,
    /// The name the sweeper works under.
    pub worker: String,
    /// Intervals and the application to supervise.
    pub options: RunOptions,
}

/// Runs the sweeper until `shutdown` completes, then settles the batch in
/// hand and returns; serves the metrics on `endpoint` meanwhile.
pub async fn run(
    settings: &RunSettings,
    endpoint: Option<MetricsEndpoint>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_sender, stop) = watch::channel(false);
    let metrics = endpoint.map(|endpoint| {
        let metrics = Arc::new(Metrics::new());
        let serving = Serving(tokio::spawn(endpoint.serve(Arc::clone(&metrics))));
        (metrics, serving)
    });
    let work = Sweeper::new(
        settings,
        stop,
        metrics.as_ref().map(|(metrics, _)| Arc::clone(metrics)),
    )
    .keep_going();
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

/// The metrics endpoint's task, which ends with the run however it ends.
struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The signals passed on to the application: those that stop it (TERM from
/// a container runtime, INT and QUIT from a terminal) and those applications
/// take as commands (HUP to reload, USR1, USR2).
const FORWARDED: [Signal; 6] = [
    Signal::TERM,
    Signal::INT,
    Signal::HUP,
    Signal::QUIT,
    Signal::USR1,
    Signal::USR2,
];

/// Runs the sweeper, and the application if one is given; returns the exit status for the process.
///
/// Without an application SIGTERM and SIGINT stop the sweeper and the status
/// is 0. With one, filegc does what a container's first process must: it
/// passes the [`FORWARDED`] signals on to the application, reaps every
/// process orphaned below it, and exits with the application's status (128
/// plus the signal's number when a signal ended it). Meanwhile it serves
/// the metrics on `endpoint`, as [`run`] does.
pub async fn supervise(
    settings: RunSettings,
    endpoint: Option<MetricsEndpoint>,
) -> std::io::Result<u8> {
    let Some(command) = settings.options.child.clone() else {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        run(&settings, endpoint, async {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
            }
        })
        .await;
        return Ok(0);
    };
    // As PID 1 filegc inherits every orphan of the container anyway; as a
    // subreaper it inherits those below it anywhere else too, so it behaves
    // the same in a container and out of one.
    if let Err(error) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        tracing::warn!(error = %std::io::Error::from(error), "cannot become the subreaper of the application's orphans; they go to PID 1");
    }
    // Listening starts before the application does, so no signal falls between.
    let (signal_sender, mut signals) = mpsc::unbounded_channel();
    for sig in FORWARDED {
        let mut received = signal(SignalKind::from_raw(sig.as_raw()))?;
        let sender = signal_sender.clone();
        tokio::spawn(async move {
            while received.recv().await.is_some() && sender.send(sig).is_ok() {}
        });
    }
    let mut child_exited = signal(SignalKind::child())?;
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
        run(&settings, endpoint, async {
            let _ = exited.await;
        })
        .await;
    });
    let application = child.id();
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            Some(sig) = signals.recv() => forward(&child, &command, sig),
            _ = child_exited.recv() => reap_orphans(application),
        }
    };
    // The application is reaped now, so whatever exited is an orphan.
    reap_orphans(application);
    let code = exit_code(status);
    tracing::info!(status = code, "application exited");
    let _ = exited_sender.send(());
    if tokio::time::timeout(STOP_GRACE, sweeper).await.is_err() {
        tracing::warn!("the sweeper did not stop in time; leaving its batch to the lease");
    }
    Ok(code)
}

/// Reaps every child that has exited, except the application.
///
/// The application's status belongs to tokio: `Child::wait` collects it by
/// its PID (or through a pidfd), and a `waitpid(-1)` here could take it
/// first and leave `wait` with nothing but ECHILD. So each exited child is
/// first looked at without being reaped (`waitid` with `WNOWAIT`), and only
/// one that is not the application is then reaped, by its own PID, which
/// nothing else waits for. When the one looked at is the application, the
/// rest wait: the application has exited, so `wait` returns at once and
/// [`supervise`] calls this again, when the application is no longer there
/// to be looked at.
fn reap_orphans(application: Option<u32>) {
    while let Some(pid) = exited_child() {
        if u32::try_from(pid).ok() == application {
            return;
        }
        let Some(orphan) = rustix::process::Pid::from_raw(pid) else {
            return;
        };
        match rustix::process::waitpid(Some(orphan), rustix::process::WaitOptions::NOHANG) {
            Ok(status) => tracing::debug!(pid, status = ?status, "reaped an orphaned process"),
            Err(error) => {
                tracing::warn!(pid, error = %std::io::Error::from(error), "cannot reap an orphaned process");
                return;
            }
        }
    }
}

/// The PID of a child that has exited and is not reaped yet, left unreaped.
fn exited_child() -> Option<i32> {
    // SAFETY: all zeroes is a valid siginfo_t, which waitid only writes to.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let options = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: `info` is valid for writes; P_ALL ignores the ID.
    if unsafe { libc::waitid(libc::P_ALL, 0, &mut info, options) } != 0 {
        // ECHILD: no children at all.
        return None;
    }
    // SAFETY: waitid filled in a child's siginfo, or left it zeroed when
    // none had exited (WNOHANG), and si_pid is then 0.
    let pid = unsafe { info.si_pid() };
    (pid != 0).then_some(pid)
}

/// Passes a signal on to the application.
fn forward(child: &tokio::process::Child, command: &ChildCommand, sig: Signal) {
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
    /// The maintenance policies as last read; none before the first read.
    policies: Option<Policies>,
    /// The database's clock when the policies were last read.
    policies_read_at: DateTime<Utc>,
    /// Why the policies could not be read last time, so that it is said once.
    policy_problem: Option<String>,
    /// Whether this run has finished a scan: the cleanups work on the inventory it made.
    scanned: bool,
    /// The level reached emergency and its cleanup waits for a scan of this run.
    emergency_pending: bool,
    notifier: Notifier,
    /// How each alert's delivery ended, to record in the database.
    deliveries: mpsc::Receiver<Delivery>,
    /// A delivery whose record the lost connection took along: recorded on the next one.
    unrecorded_delivery: Option<Delivery>,
    /// The host name the alerts carry.
    host: String,
    /// What the metrics endpoint serves, when there is one.
    metrics: Option<Arc<Metrics>>,
}

impl<'a> Sweeper<'a> {
    fn new(
        settings: &'a RunSettings,
        stop: watch::Receiver<bool>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        let (notifier, deliveries) = Notifier::start();
        Sweeper {
            settings,
            stop,
            next_scan: Instant::now(),
            // A sweeper that starts on a full volume says so, and alerts, at its first report.
            alert_level: "ok".into(),
            policies: None,
            policies_read_at: DateTime::<Utc>::MIN_UTC,
            policy_problem: None,
            scanned: false,
            emergency_pending: false,
            notifier,
            deliveries,
            unrecorded_delivery: None,
            host: Environment::from_process()
                .host_name
                .unwrap_or_else(|| settings.worker.clone()),
            metrics,
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
                    self.database_up(true);
                    let served = self.serve(db, notifications).await;
                    self.database_up(false);
                    match served {
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

    /// Notes for the metrics whether the run is connected.
    fn database_up(&self, up: bool) {
        if let Some(metrics) = &self.metrics {
            metrics.database_up(up);
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
        // The first sweep's capacity report may change the alert level, which the policies act on.
        if let Err(lost) = self.read_policies(&db).await {
            return lost;
        }
        let mut maintenance_due = true;
        // A writer that woke the sweeper lets its next released paths wait
        // out a pause instead of waking it again (sql/notes.sql): looking
        // again twice that long after each wake-up takes them in.
        let follow_up_after = match db.release_wake_pause().await {
            Ok(pause) => Some(pause * 2),
            Err(error) if db.is_closed() => return Served::Lost(error.to_string()),
            Err(error) => {
                tracing::warn!(error = %error, "cannot read filegc.release_wake_pause(); paths released moments after a wake-up wait for the timed sweep");
                None
            }
        };
        let mut follow_up: Option<Instant> = None;
        if let Some(delivery) = self.unrecorded_delivery.take() {
            if let Err(lost) = self.record_delivery(&db, delivery).await {
                return lost;
            }
        }
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
                if let Err(lost) = self.scan(&mut db).await {
                    return lost;
                }
            }
            if self.emergency_pending && self.scanned {
                if let Err(lost) = self.emergency(&mut db).await {
                    return lost;
                }
            }
            if maintenance_due && self.scanned {
                maintenance_due = false;
                match self.maintain(&mut db).await {
                    // Sweep what they scheduled now, without waiting for the notification.
                    Ok(true) => {
                        sweep_due = true;
                        continue;
                    }
                    Ok(false) => {}
                    Err(lost) => return lost,
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
                        follow_up = follow_up_after.map(|after| Instant::now() + after);
                    }
                    None => return Served::Lost("the connection closed".into()),
                },
                () = sleep_until(follow_up.unwrap_or_else(Instant::now)), if follow_up.is_some() => {
                    follow_up = None;
                    sweep_due = true;
                }
                _ = sweep_tick.tick() => {
                    sweep_due = true;
                    maintenance_due = true;
                }
                () = sleep_until(self.next_scan) => {}
                Some(delivery) = self.deliveries.recv() => {
                    if let Err(lost) = self.record_delivery(&db, delivery).await {
                        return lost;
                    }
                }
            }
        }
    }

    /// Records how an alert's delivery ended; when the connection is gone,
    /// keeps it for the next one.
    async fn record_delivery(&mut self, db: &Db, delivery: Delivery) -> Result<(), Served> {
        match db
            .record_alert_delivery(&self.settings.worker, &delivery)
            .await
        {
            Ok(()) => Ok(()),
            Err(error) => {
                if db.is_closed() {
                    self.unrecorded_delivery = Some(delivery);
                }
                failed(db, error, "recording an alert delivery")
            }
        }
    }

    /// One sweep and a capacity report; `Err` when the connection is gone.
    async fn sweep(&mut self, db: &mut Db) -> Result<(), Served> {
        let swept = self.sweep_now(db).await;
        let finished = swept.is_ok();
        let reported = match (swept, &self.settings.store) {
            (Ok(_), Store::Volume(_)) => self.report_capacity(db).await,
            // A bucket's report lists its trash: after every sweep, that is
            // a listing per deletion the application makes when it is busy.
            // Its level moves with its scans instead.
            (Ok(_), Store::Bucket(_)) => Ok(self.alert_level.clone()),
            (Err(error), _) => Err(error),
        };
        self.settled(db, reported, "sweep")?;
        if finished {
            self.count_pending(db).await?;
        }
        Ok(())
    }

    /// Counts the pending deletions for the metrics, when they are served.
    async fn count_pending(&self, db: &Db) -> Result<(), Served> {
        let Some(metrics) = &self.metrics else {
            return Ok(());
        };
        match db.pending_deletions().await {
            Ok(pending) => {
                metrics.pending(pending);
                Ok(())
            }
            Err(error) => failed(db, error, "counting the pending deletions for the metrics"),
        }
    }

    /// Counts the orphans for the metrics, when they are served: a pass
    /// over every path, as long as `filegc.storage_stats`, so once per scan.
    async fn count_orphans(&self, db: &Db) -> Result<(), Served> {
        let Some(metrics) = &self.metrics else {
            return Ok(());
        };
        let mut stop = self.stop.clone();
        let counted = tokio::select! {
            counted = db.orphan_totals() => counted,
            () = stopped(&mut stop) => return Err(Served::Stopped),
        };
        match counted {
            Ok((files, bytes)) => {
                metrics.orphans(files, bytes);
                Ok(())
            }
            Err(error) => failed(db, error, "counting the orphans for the metrics"),
        }
    }

    /// One scan (which reports the capacity); `Err` when the connection is gone.
    async fn scan(&mut self, db: &mut Db) -> Result<(), Served> {
        let options = ScanOptions {
            worker: self.settings.worker.clone(),
            progress: Progress::Hidden,
            another_lister: AnotherLister::Skip,
        };
        let mut stop = self.stop.clone();
        let scanned = tokio::select! {
            scanned = scan_store(&self.settings.store, db, &options) => scanned,
            // A walk can be long; dropping it abandons the COPY, and the next run scans again.
            () = stopped(&mut stop) => return Err(Served::Stopped),
        };
        let scanned = match scanned {
            Ok(report) => Ok(report),
            Err(BucketScanError::Db(error)) => Err(error),
            Err(BucketScanError::Bucket(error)) => {
                tracing::warn!(error = %error, "the bucket's listing failed; the next scan tries again");
                return Ok(());
            }
            Err(BucketScanError::AnotherLister) => {
                tracing::info!(
                    "another sweeper is listing the bucket; this one leaves the listing to it"
                );
                return Ok(());
            }
        };
        let finished = scanned.is_ok();
        let scanned = scanned.map(|report| {
            self.scanned = true;
            if let Some(metrics) = &self.metrics {
                metrics.scanned(report.files, report.bytes);
            }
            report.alert_level
        });
        self.settled(db, scanned, "scan")?;
        if finished {
            self.count_orphans(db).await?;
        }
        Ok(())
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
                if let Some(metrics) = &self.metrics {
                    metrics.alert_level(&level);
                    if let Some(capacity) = self.settings.store.capacity() {
                        metrics.volume(&capacity);
                    }
                }
                let previous = std::mem::replace(&mut self.alert_level, level);
                if let Some(change) = maintenance::level_change(&previous, &self.alert_level) {
                    self.level_changed(change, previous);
                }
                Ok(())
            }
            Err(error) => failed(db, error, step),
        }
    }

    /// Logs a change of the alert level, posts it to the webhook, and notes a move into emergency.
    fn level_changed(&mut self, change: LevelChange, previous: String) {
        let level = self.alert_level.clone();
        match change {
            LevelChange::Rose => tracing::warn!(
                from = %previous,
                to = %level,
                "the volume's alert level rose: free space or delete files"
            ),
            LevelChange::Fell => {
                tracing::info!(from = %previous, to = %level, "the volume's alert level fell")
            }
        }
        if maintenance::entered_emergency(&previous, &level) {
            self.emergency_pending = true;
        }
        let Some(url) = self.policies.as_ref().and_then(|p| p.webhook.clone()) else {
            return;
        };
        let used_pct =
            self.settings.store.capacity().and_then(|capacity| {
                maintenance::used_pct(capacity.used_bytes, capacity.total_bytes)
            });
        self.notifier.notify(
            url,
            Alert {
                level,
                previous_level: previous,
                used_pct,
                volume: self.settings.store.location(),
                host: self.host.clone(),
            },
        );
    }

    /// Reads the maintenance policies; keeps the last ones when they cannot be
    /// read. `Ok(false)` when the settings could not be read at all.
    async fn read_policies(&mut self, db: &Db) -> Result<bool, Served> {
        let snapshot = match db.settings(&maintenance::SETTINGS).await {
            Ok(snapshot) => snapshot,
            Err(error) => {
                return failed(db, error, "reading the maintenance policies").map(|()| false)
            }
        };
        self.policies_read_at = snapshot.now;
        match Policies::from_settings(&snapshot.values) {
            Ok(policies) => {
                if self.policies.as_ref() != Some(&policies) {
                    tracing::info!(
                        cleanup_interval = ?policies.cleanup_interval.map(format_duration),
                        retention_days = ?policies.retention.map(|r| r.days),
                        retention_include_referenced = policies.retention.is_some_and(|r| r.include_referenced),
                        maintenance_window = %policies.window,
                        alert_webhook = ?policies.webhook.as_ref().and_then(|url| url.host_str()),
                        emergency_cleanup = policies.emergency_cleanup,
                        "maintenance policies"
                    );
                }
                self.policies = Some(policies);
                self.policy_problem = None;
            }
            Err(error) => {
                let problem = error.to_string();
                if self.policy_problem.as_ref() != Some(&problem) {
                    tracing::warn!(error = %problem, "cannot apply the maintenance policies; keeping the last ones");
                }
                self.policy_problem = Some(problem);
            }
        }
        Ok(true)
    }

    /// Runs the scheduled cleanups that are due, inside the maintenance window; true when they scheduled deletions.
    async fn maintain(&mut self, db: &mut Db) -> Result<bool, Served> {
        // The window is judged by the clock of this read.
        if !self.read_policies(db).await? {
            return Ok(false);
        }
        let Some(policies) = self.policies.clone() else {
            return Ok(false);
        };
        let Some(every) = policies.cleanup_interval else {
            return Ok(false);
        };
        if !policies.window.contains(self.policies_read_at.time()) {
            tracing::debug!(
                window = %policies.window,
                "outside the maintenance window: the scheduled cleanups wait"
            );
            return Ok(false);
        }
        let volume = self.settings.store.location();
        let mut scheduled_any = false;
        for job in policies.jobs() {
            let cleanup = job.kind();
            let done = db
                .scheduled_cleanup(
                    cleanup,
                    job.cleanup(),
                    &self.settings.worker,
                    &volume,
                    |last, now| maintenance::cleanup_due(last, now, every),
                )
                .await;
            match done {
                Ok(ScheduledCleanup::Busy) => {
                    tracing::debug!(cleanup, "another sweeper is running a scheduled cleanup")
                }
                Ok(ScheduledCleanup::NotDue { last }) => tracing::debug!(
                    cleanup,
                    last = ?last,
                    every = %format_duration(every),
                    "scheduled cleanup not due"
                ),
                Ok(ScheduledCleanup::Scheduled(files)) => {
                    let bytes: i64 = files.iter().map(|file| file.size_bytes).sum();
                    tracing::info!(
                        cleanup,
                        files = files.len(),
                        bytes,
                        "scheduled cleanup: deletions scheduled"
                    );
                    scheduled_any |= !files.is_empty();
                }
                Ok(ScheduledCleanup::Refused(error)) => tracing::warn!(
                    cleanup,
                    error = %error,
                    "scheduled cleanup refused; it is tried again after orphan_cleanup_interval"
                ),
                Err(error) => failed(db, error, cleanup)?,
            }
        }
        Ok(scheduled_any)
    }

    /// Frees space once the volume reached the emergency level: empties the
    /// trash, then deletes the eligible orphans for good. Referenced files
    /// stay: the orphan cleanup never picks them and the sweep checks each.
    async fn emergency(&mut self, db: &mut Db) -> Result<(), Served> {
        self.emergency_pending = false;
        if !self.policies.as_ref().is_some_and(|p| p.emergency_cleanup) {
            tracing::warn!("the volume reached the emergency level; emergency_cleanup is off, so nothing is deleted on its own");
            return Ok(());
        }
        tracing::warn!("the volume reached the emergency level: emptying the trash, then deleting the eligible orphans");
        match purge_trash(&self.settings.store, db).await {
            Ok(purged) => tracing::warn!(
                files = purged.files,
                bytes_freed = purged.bytes,
                problems = purged.problems,
                "emergency cleanup: emptied the trash"
            ),
            Err(error) => failed(db, error, "emergency cleanup: emptying the trash")?,
        }
        match db.cleanup(Cleanup::Orphans, false, false).await {
            Ok(orphans) if orphans.is_empty() => {
                tracing::warn!("emergency cleanup: no eligible orphans to delete")
            }
            Ok(orphans) => {
                // The cleanup's deletions are due at once; the sweep moves
                // them into the trash, and only purging it frees the space.
                let swept = self.sweep_now(db).await;
                let purged = purge_trash(&self.settings.store, db).await;
                match (swept, purged) {
                    (Ok(swept), Ok(purged)) => tracing::warn!(
                        scheduled = orphans.len(),
                        files = swept.removed,
                        bytes_freed = purged.bytes,
                        "emergency cleanup: deleted the eligible orphans"
                    ),
                    (Err(error), _) | (_, Err(error)) => {
                        failed(db, error, "emergency cleanup: deleting the orphans")?
                    }
                }
            }
            Err(error) if db.is_closed() => return Err(Served::Lost(error.to_string())),
            Err(error) => tracing::warn!(
                error = %error,
                "emergency cleanup: the orphan cleanup refused; referenced files are never deleted on their own"
            ),
        }
        let reported = self.report_capacity(db).await;
        self.settled(db, reported, "emergency cleanup")
    }

    /// Reports the store and its trash; a bucket's level comes from its byte budget (`unknown` without one).
    async fn report_capacity(&self, db: &Db) -> Result<String, DbError> {
        report_store(&self.settings.store, db, &self.settings.worker).await
    }

    /// One sweep into the trash, with the run's stop signal.
    async fn sweep_now(&self, db: &mut Db) -> Result<SweepReport, DbError> {
        let options = SweepOptions {
            worker: self.settings.worker.clone(),
            removal: Removal::Trash,
            batch_size: DEFAULT_BATCH_SIZE,
            progress: Progress::Hidden,
            stop: Some(self.stop.clone()),
        };
        let swept = sweep(&self.settings.store, db, &options, &mut |_, _| {}).await;
        if let (Ok(report), Some(metrics)) = (&swept, &self.metrics) {
            metrics.swept(report);
        }
        swept
    }
}

/// Decides whether a step's error lost the connection (`Err`), or logs it and lets the run go on.
fn failed(db: &Db, error: DbError, step: &str) -> Result<(), Served> {
    if db.is_closed() {
        return Err(Served::Lost(error.to_string()));
    }
    tracing::warn!(step, error = %error, "failed; trying again at the next one");
    Ok(())
}

/// Deletes for good every trashed file the database knows of, whatever its
/// age, except those asked back or referenced again. Unlike `filegc
/// empty-trash` it leaves what the database does not know of: a sweeper that
/// died mid-batch may have left a file there that a row references again.
async fn purge_trash(store: &Store, db: &mut Db) -> Result<PurgeReport, DbError> {
    let trashed = db.trashed().await?;
    Ok(purge_trashed(store, db, &trashed).await?.0)
}

/// Waits until the run is asked to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens when the run ends.
    let _ = stop.wait_for(|stop| *stop).await;
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
    fn the_exit_status_is_the_code_or_128_plus_the_signal() {
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 128 + 15);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
    }
}
