//! The metrics of `filegc run` for Prometheus: `GET /metrics` on
//! `FILEGC_METRICS_ADDR` (or `--metrics-addr`), in Prometheus's text format.
//!
//! A scrape only reads [`Metrics`], which the run loop sets after each scan
//! and sweep: it never queries the database, so scraping as often as one
//! likes costs the database nothing. The orphans are counted once after
//! each scan and the pending deletions once after each sweep, and only when
//! the endpoint is on.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use thiserror::Error;

use crate::config::MetricsAddress;
use crate::sweep::SweepReport;
use crate::volume::Capacity;

/// The path Prometheus scrapes.
pub const PATH: &str = "/metrics";

/// The alert levels `filegc.alert_level()` gives, each a series of `filegc_alert_level`.
pub const ALERT_LEVELS: [&str; 5] = ["ok", "warning", "critical", "emergency", "unknown"];

/// The outcomes of a sweep's deletions, each a series of `filegc_deletions_total`.
const OUTCOMES: [&str; 4] = ["removed", "already_gone", "kept", "failed"];

/// How long a client may take to send a request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The pause after a failed accept (out of file descriptors, say), so that it does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// A label set of one label.
type Label = [(&'static str, &'static str); 1];

/// What `filegc run` knows of the volume, the queue and its own work, as Prometheus reads it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    database_up: Gauge,
    inventory_files: Gauge,
    inventory_bytes: Gauge,
    orphaned_files: Gauge,
    orphaned_bytes: Gauge,
    pending_deletions: Gauge,
    deletions: Family<Label, Counter>,
    freed_bytes: Counter,
    last_scan: Gauge<f64, AtomicU64>,
    last_sweep: Gauge<f64, AtomicU64>,
    volume_used_bytes: Gauge,
    volume_total_bytes: Gauge,
    alert_level: Family<Label, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero: nothing scanned, swept or reported yet.
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("filegc"),
            database_up: Gauge::default(),
            inventory_files: Gauge::default(),
            inventory_bytes: Gauge::default(),
            orphaned_files: Gauge::default(),
            orphaned_bytes: Gauge::default(),
            pending_deletions: Gauge::default(),
            deletions: Family::default(),
            freed_bytes: Counter::default(),
            last_scan: Gauge::default(),
            last_sweep: Gauge::default(),
            volume_used_bytes: Gauge::default(),
            volume_total_bytes: Gauge::default(),
            alert_level: Family::default(),
        };
        // Every series exists from the start: a rate over a counter that
        // appears only at its first increment misses that increment.
        for outcome in OUTCOMES {
            metrics
                .deletions
                .get_or_create_owned(&[("outcome", outcome)]);
        }
        for level in ALERT_LEVELS {
            metrics.alert_level.get_or_create_owned(&[("level", level)]);
        }
        metrics.register();
        metrics
    }

    fn register(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "database_up",
            "Whether filegc run is connected to the database (1) or reconnecting (0)",
            self.database_up.clone(),
        );
        registry.register(
            "inventory_files",
            "Files on the volume at the latest scan of this process, managed or not",
            self.inventory_files.clone(),
        );
        registry.register_with_unit(
            "inventory",
            "Total size of the files on the volume at the latest scan of this process",
            Unit::Bytes,
            self.inventory_bytes.clone(),
        );
        registry.register(
            "orphaned_files",
            "Managed files no row references, as filegc.storage_stats counts them; counted once after each scan, not per scrape",
            self.orphaned_files.clone(),
        );
        registry.register_with_unit(
            "orphaned",
            "Total size of the orphaned files; counted once after each scan, not per scrape",
            Unit::Bytes,
            self.orphaned_bytes.clone(),
        );
        registry.register(
            "pending_deletions",
            "Deletions scheduled and not finished yet (filegc.pending); counted after each sweep",
            self.pending_deletions.clone(),
        );
        registry.register(
            "deletions",
            "Deletions the sweeps of this process settled, by outcome: removed (into the trash, or for good), already_gone, kept (referenced again or no longer managed), failed",
            self.deletions.clone(),
        );
        registry.register_with_unit(
            "freed",
            "Bytes the sweeps of this process removed from the volume's files (moved into the trash, freed once it is purged)",
            Unit::Bytes,
            self.freed_bytes.clone(),
        );
        registry.register_with_unit(
            "last_scan_timestamp",
            "When this process last finished a scan, in seconds since the Unix epoch; 0 before the first",
            Unit::Seconds,
            self.last_scan.clone(),
        );
        registry.register_with_unit(
            "last_sweep_timestamp",
            "When this process last finished a sweep, in seconds since the Unix epoch; 0 before the first",
            Unit::Seconds,
            self.last_sweep.clone(),
        );
        registry.register_with_unit(
            "volume_used",
            "Space in use on the volume's file system, the trash included, at the latest scan or sweep",
            Unit::Bytes,
            self.volume_used_bytes.clone(),
        );
        registry.register_with_unit(
            "volume_total",
            "Size of the volume's file system, at the latest scan or sweep",
            Unit::Bytes,
            self.volume_total_bytes.clone(),
        );
        registry.register(
            "alert_level",
            "The volume's alert level at the latest scan or sweep: 1 for the current level (ok, warning, critical, emergency, unknown), 0 for the others; all 0 before the first report",
            self.alert_level.clone(),
        );
    }

    /// Notes whether the run is connected to the database.
    pub fn database_up(&self, up: bool) {
        self.database_up.set(i64::from(up));
    }

    /// Notes a finished scan and what the inventory holds after it.
    pub fn scanned(&self, files: i64, bytes: i64) {
        self.inventory_files.set(files);
        self.inventory_bytes.set(bytes);
        self.last_scan.set(now());
    }

    /// Notes the orphans of the latest scan.
    pub fn orphans(&self, files: i64, bytes: i64) {
        self.orphaned_files.set(files);
        self.orphaned_bytes.set(bytes);
    }

    /// Adds a finished sweep's deletions to the counters.
    pub fn swept(&self, report: &SweepReport) {
        for (outcome, count) in [
            ("removed", report.removed),
            ("already_gone", report.already_gone),
            ("kept", report.kept),
            ("failed", report.failed),
        ] {
            self.deletions
                .get_or_create(&[("outcome", outcome)])
                .inc_by(count);
        }
        self.freed_bytes.inc_by(report.bytes_freed);
        self.last_sweep.set(now());
    }

    /// Notes the deletions still to do.
    pub fn pending(&self, deletions: i64) {
        self.pending_deletions.set(deletions);
    }

    /// Notes the volume's capacity.
    pub fn volume(&self, capacity: &Capacity) {
        let as_i64 = |bytes: u64| i64::try_from(bytes).unwrap_or(i64::MAX);
        self.volume_used_bytes.set(as_i64(capacity.used_bytes));
        self.volume_total_bytes.set(as_i64(capacity.total_bytes));
    }

    /// Notes the volume's alert level, one of [`ALERT_LEVELS`].
    pub fn alert_level(&self, current: &str) {
        for level in ALERT_LEVELS {
            self.alert_level
                .get_or_create(&[("level", level)])
                .set(i64::from(level == current));
        }
    }

    /// Every metric in Prometheus's text format (version 0.0.4).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The time now in seconds since the Unix epoch.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// Why the metrics endpoint cannot listen; `filegc run` does not start.
#[derive(Debug, Error)]
#[error("cannot serve metrics on {address} ({source_name}): {cause}; choose a free port in {source_name}, or unset it to serve no metrics")]
pub struct BindError {
    /// The address asked for.
    pub address: SocketAddr,
    /// The variable or option that asked for it.
    pub source_name: &'static str,
    /// What the system said.
    pub cause: std::io::Error,
}

/// The metrics endpoint's socket, bound at startup so that a port in use stops `filegc run` at once.
#[derive(Debug)]
pub struct MetricsEndpoint {
    listener: std::net::TcpListener,
}

impl MetricsEndpoint {
    /// Binds `address`.
    pub fn bind(address: &MetricsAddress) -> Result<MetricsEndpoint, BindError> {
        let failed = |cause| BindError {
            address: address.address,
            source_name: address.source,
            cause,
        };
        let listener = std::net::TcpListener::bind(address.address).map_err(failed)?;
        // The runtime takes the socket over, and it waits for no one.
        listener.set_nonblocking(true).map_err(failed)?;
        Ok(MetricsEndpoint { listener })
    }

    /// Answers scrapes from `metrics` until the task running it is dropped
    /// or aborted, which ends the connections in hand too.
    pub async fn serve(self, metrics: Arc<Metrics>) {
        let listener = match tokio::net::TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(error = %error, "cannot serve metrics");
                return;
            }
        };
        match listener.local_addr() {
            Ok(address) => tracing::info!(%address, path = PATH, "serving metrics"),
            Err(error) => tracing::info!(error = %error, path = PATH, "serving metrics"),
        }
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(answer_connection(stream, peer, Arc::clone(&metrics)));
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "metrics: cannot accept a connection");
                        tokio::time::sleep(ACCEPT_RETRY).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
}

/// Answers the requests of one connection.
async fn answer_connection(stream: tokio::net::TcpStream, peer: SocketAddr, metrics: Arc<Metrics>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = answer(request.method(), request.uri().path(), &metrics);
        async move { Ok::<_, Infallible>(response) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%peer, error = %error, "metrics: a connection ended with an error");
    }
}

/// The response to a request for `path`: the metrics at [`PATH`], 404 elsewhere.
fn answer(method: &Method, path: &str, metrics: &Metrics) -> Response<String> {
    let status = |status: StatusCode, body: &str| {
        let mut response = Response::new(body.to_owned());
        *response.status_mut() = status;
        response
    };
    if path != PATH {
        return status(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        );
    }
    if method != Method::GET && method != Method::HEAD {
        let mut response = status(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match metrics.encode() {
        Ok(text) => {
            let mut response = Response::new(text);
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(prometheus_text::CONTENT_TYPE),
            );
            response
        }
        Err(error) => {
            tracing::warn!(error = %error, "metrics: cannot encode them");
            status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics\n",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `series` in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == series).then(|| value.parse().ok())?
            })
    }

    #[test]
    fn every_metric_has_its_help_type_and_a_sample_at_zero() {
        let text = Metrics::new().encode().unwrap();
        for (name, kind) in [
            ("filegc_database_up", "gauge"),
            ("filegc_inventory_files", "gauge"),
            ("filegc_inventory_bytes", "gauge"),
            ("filegc_orphaned_files", "gauge"),
            ("filegc_orphaned_bytes", "gauge"),
            ("filegc_pending_deletions", "gauge"),
            ("filegc_deletions_total", "counter"),
            ("filegc_freed_bytes_total", "counter"),
            ("filegc_last_scan_timestamp_seconds", "gauge"),
            ("filegc_last_sweep_timestamp_seconds", "gauge"),
            ("filegc_volume_used_bytes", "gauge"),
            ("filegc_volume_total_bytes", "gauge"),
            ("filegc_alert_level", "gauge"),
        ] {
            assert!(
                text.lines()
                    .any(|line| line.starts_with(&format!("# HELP {name} "))),
                "{name}:\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}:\n{text}"
            );
        }
        assert_eq!(sample(&text, "filegc_database_up"), Some(0.0));
        assert_eq!(
            sample(&text, r#"filegc_deletions_total{outcome="failed"}"#),
            Some(0.0)
        );
        for level in ALERT_LEVELS {
            assert_eq!(
                sample(&text, &format!(r#"filegc_alert_level{{level="{level}"}}"#)),
                Some(0.0),
                "no level is known before the first report"
            );
        }
    }

    #[test]
    fn samples_carry_what_the_run_noted() {
        let metrics = Metrics::new();
        metrics.database_up(true);
        metrics.scanned(3, 600);
        metrics.orphans(1, 100);
        metrics.pending(2);
        let sweep = SweepReport {
            removed: 2,
            already_gone: 1,
            failed: 1,
            bytes_freed: 300,
            ..SweepReport::default()
        };
        metrics.swept(&sweep);
        metrics.swept(&sweep);
        metrics.volume(&Capacity {
            total_bytes: 1000,
            used_bytes: 850,
            free_bytes: 150,
        });
        metrics.alert_level("warning");
        let text = metrics.encode().unwrap();
        for (series, value) in [
            ("filegc_database_up", 1.0),
            ("filegc_inventory_files", 3.0),
            ("filegc_inventory_bytes", 600.0),
            ("filegc_orphaned_files", 1.0),
            ("filegc_orphaned_bytes", 100.0),
            ("filegc_pending_deletions", 2.0),
            (r#"filegc_deletions_total{outcome="removed"}"#, 4.0),
            (r#"filegc_deletions_total{outcome="already_gone"}"#, 2.0),
            (r#"filegc_deletions_total{outcome="kept"}"#, 0.0),
            (r#"filegc_deletions_total{outcome="failed"}"#, 2.0),
            ("filegc_freed_bytes_total", 600.0),
            ("filegc_volume_used_bytes", 850.0),
            ("filegc_volume_total_bytes", 1000.0),
            (r#"filegc_alert_level{level="warning"}"#, 1.0),
            (r#"filegc_alert_level{level="ok"}"#, 0.0),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series}:\n{text}");
        }
        assert!(sample(&text, "filegc_last_scan_timestamp_seconds").unwrap() > 1.7e9);
        assert!(sample(&text, "filegc_last_sweep_timestamp_seconds").unwrap() > 1.7e9);
        metrics.alert_level("ok");
        let text = metrics.encode().unwrap();
        assert_eq!(
            sample(&text, r#"filegc_alert_level{level="warning"}"#),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, r#"filegc_alert_level{level="ok"}"#),
            Some(1.0)
        );
    }

    #[test]
    fn only_a_get_of_the_metrics_path_answers_with_them() {
        let metrics = Metrics::new();
        let ok = answer(&Method::GET, "/metrics", &metrics);
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(
            ok.headers()[CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert!(
            ok.body().contains("filegc_database_up 0\n"),
            "{}",
            ok.body()
        );
        for path in ["/", "/other", "/metrics/"] {
            assert_eq!(
                answer(&Method::GET, path, &metrics).status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let post = answer(&Method::POST, "/metrics", &metrics);
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[ALLOW], "GET, HEAD");
    }
}
