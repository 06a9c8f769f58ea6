//! The alert webhook: each change of the volume's alert level, POSTed as a
//! small JSON document by a background task, so that a slow, failing or
//! hanging receiver never holds up the sweeper.

use std::fmt::Write as _;
use std::time::Duration;

use reqwest::Url;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::maintenance::webhook_retry_wait;

/// How many times one alert is tried before it is given up.
pub const ATTEMPTS: u32 = 5;

/// How long one try may take, from connecting to the end of the response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many alerts may wait for delivery; the level changes rarely, so more means the receiver is stuck.
const QUEUE_DEPTH: usize = 32;

/// What the webhook receives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The level now: `ok`, `warning`, `critical` or `emergency`.
    pub level: String,
    /// The level before.
    pub previous_level: String,
    /// The share of the volume in use, in percent; `null` when the capacity is unknown.
    pub used_pct: Option<f64>,
    /// The volume's mount point.
    pub volume: String,
    /// The host the sweeper runs on.
    pub host: String,
}

/// Hands alerts to the delivery task, which posts them one after the other, in order.
#[derive(Debug)]
pub struct Notifier {
    queue: mpsc::Sender<(Url, Alert)>,
}

impl Notifier {
    /// Starts the delivery task on the current runtime; it ends once the notifier is dropped and its queue is done.
    pub fn start() -> Notifier {
        let (queue, mut alerts) = mpsc::channel::<(Url, Alert)>(QUEUE_DEPTH);
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(CONNECT_TIMEOUT)
                .user_agent(concat!("filegc/", env!("CARGO_PKG_VERSION")))
                .build();
            let client = match client {
                Ok(client) => client,
                Err(error) => {
                    tracing::error!(error = %describe(error), "cannot start the alert webhook's HTTP client; alerts are only logged");
                    return;
                }
            };
            while let Some((url, alert)) = alerts.recv().await {
                deliver(&client, &url, &alert).await;
            }
        });
        Notifier { queue }
    }

    /// Queues an alert for `url`; never waits.
    pub fn notify(&self, url: Url, alert: Alert) {
        if self.queue.try_send((url, alert)).is_err() {
            tracing::warn!(
                "alert webhook: earlier alerts are still waiting for the receiver; this one is dropped"
            );
        }
    }
}

/// Posts one alert, trying again with a growing pause up to [`ATTEMPTS`] times.
async fn deliver(client: &reqwest::Client, url: &Url, alert: &Alert) {
    // A webhook URL often carries its secret in the path: logs name the host only.
    let receiver = url.host_str().unwrap_or_default();
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(url.clone())
            .json(alert)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match sent {
            Ok(_) => {
                tracing::info!(webhook = %receiver, level = %alert.level, previous_level = %alert.previous_level, attempt, "alert webhook notified");
                return;
            }
            Err(error) => {
                let retry = attempt < ATTEMPTS;
                let wait = webhook_retry_wait(attempt);
                tracing::warn!(
                    webhook = %receiver,
                    level = %alert.level,
                    attempt,
                    attempts = ATTEMPTS,
                    retry_in = ?retry.then_some(wait),
                    error = %describe(error),
                    "alert webhook failed"
                );
                if retry {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    tracing::error!(webhook = %receiver, level = %alert.level, attempts = ATTEMPTS, "alert webhook: giving up on this alert");
}

/// The error and its causes, without the URL.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_is_the_documented_json() {
        let alert = Alert {
            level: "critical".into(),
            previous_level: "warning".into(),
            used_pct: Some(91.5),
            volume: "/app/facial_evaluations".into(),
            host: "web-1".into(),
        };
        assert_eq!(
            serde_json::to_value(&alert).unwrap(),
            serde_json::json!({
                "level": "critical",
                "previous_level": "warning",
                "used_pct": 91.5,
                "volume": "/app/facial_evaluations",
                "host": "web-1",
            })
        );
        let unknown = Alert {
            used_pct: None,
            ..alert
        };
        assert_eq!(
            serde_json::to_value(&unknown).unwrap()["used_pct"],
            serde_json::Value::Null
        );
    }
}
