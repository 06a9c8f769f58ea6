//! The alert webhook: each change of the volume's alert level, POSTed by a
//! background task, so that a slow, failing or hanging receiver never holds
//! up the sweeper. Slack's and Discord's incoming webhooks accept only their
//! own bodies (a `text`, a `content`), anything else a JSON document. How
//! each delivery ended goes back to the run, which records it in the
//! database (`filegc.alert_deliveries`).

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Url;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{Environment, RailwayNames};

/// How many times one alert is tried before it is given up.
pub const ATTEMPTS: u32 = 5;

/// How long one try may take, from connecting to the end of the response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The first wait before the webhook is tried again.
const FIRST_WEBHOOK_RETRY: Duration = Duration::from_secs(1);

/// The longest wait between two tries of the webhook.
const MAX_WEBHOOK_RETRY: Duration = Duration::from_secs(60);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many alerts may wait for delivery; the level changes rarely, so more means the receiver is stuck.
const QUEUE_DEPTH: usize = 32;

/// Discord refuses a `content` longer than this many characters.
const DISCORD_CONTENT_LIMIT: usize = 2000;

/// Where alerts go, and the body the receiver accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The receiver's URL (which often holds a secret: logs name only its host).
    pub url: Url,
    /// The body it accepts.
    pub shape: PayloadShape,
}

impl Webhook {
    /// The receiver's host, for logs.
    pub fn host_str(&self) -> Option<&str> {
        self.url.host_str()
    }
}

/// The body of an alert, as a receiver accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadShape {
    /// Filegc's own document, [`Alert`].
    Json,
    /// A Slack incoming webhook: `{"text": ...}`.
    Slack,
    /// A Discord webhook: `{"content": ...}`, at most 2,000 characters.
    Discord,
}

impl PayloadShape {
    /// As the setting `alert_webhook_format` says; `auto` tells Slack's and
    /// Discord's webhooks by their URL and sends JSON to any other.
    pub fn parse(setting: &str, url: &Url) -> Result<PayloadShape, String> {
        match setting.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(PayloadShape::detect(url)),
            "json" => Ok(PayloadShape::Json),
            "slack" => Ok(PayloadShape::Slack),
            "discord" => Ok(PayloadShape::Discord),
            other => Err(format!("takes auto, json, slack or discord, not {other:?}")),
        }
    }

    fn detect(url: &Url) -> PayloadShape {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if host == "hooks.slack.com" {
            PayloadShape::Slack
        } else if [
            "discord.com",
            "discordapp.com",
            "ptb.discord.com",
            "canary.discord.com",
        ]
        .contains(&host.as_str())
            && url.path().starts_with("/api/webhooks/")
        {
            PayloadShape::Discord
        } else {
            PayloadShape::Json
        }
    }
}

/// What the webhook receives as JSON; Slack and Discord receive [`Alert::summary`].
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

impl Alert {
    /// One line for people: the level, the use, and where.
    pub fn summary(&self, railway: &RailwayNames) -> String {
        let used = self.used_pct.map_or_else(
            || "capacity unknown".to_owned(),
            |pct| format!("{pct:.1} % used"),
        );
        let mut place = Vec::new();
        if let Some(service) = &railway.service {
            place.push(format!("service {service}"));
        }
        if let Some(environment) = &railway.environment {
            place.push(format!("environment {environment}"));
        }
        if let Some(project) = &railway.project {
            place.push(format!("project {project}"));
        }
        let place = if place.is_empty() {
            format!("on {}", self.host)
        } else {
            format!("on Railway: {}", place.join(", "))
        };
        format!(
            "filegc: the volume {} is at alert level {} ({used}; it was {}), {place}",
            self.volume, self.level, self.previous_level
        )
    }

    /// The body for a receiver of `shape`.
    pub fn body(&self, shape: PayloadShape, railway: &RailwayNames) -> serde_json::Value {
        match shape {
            PayloadShape::Json => {
                let mut body = serde_json::to_value(self).unwrap_or_default();
                if *railway != RailwayNames::default() {
                    body["railway"] = serde_json::to_value(railway).unwrap_or_default();
                }
                body
            }
            PayloadShape::Slack => serde_json::json!({ "text": self.summary(railway) }),
            PayloadShape::Discord => {
                let content: String = self
                    .summary(railway)
                    .chars()
                    .take(DISCORD_CONTENT_LIMIT)
                    .collect();
                serde_json::json!({ "content": content })
            }
        }
    }
}

/// How the delivery of one alert ended: what the run records in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// When it arrived, or when the last try failed.
    pub finished_at: DateTime<Utc>,
    /// The level the alert announced.
    pub level: String,
    /// The level before.
    pub previous_level: String,
    /// The receiver's host: never its URL, whose path often holds a secret.
    pub webhook_host: String,
    /// How many tries it took, or were made before giving up.
    pub attempts: u32,
    /// The last try's error, without the URL; `None` when the alert arrived.
    pub error: Option<String>,
}

/// Hands alerts to the delivery task, which posts them one after the other, in order.
#[derive(Debug)]
pub struct Notifier {
    queue: mpsc::Sender<(Webhook, Alert)>,
}

impl Notifier {
    /// Starts the delivery task on the current runtime; it ends once the
    /// notifier is dropped and its queue is done. The receiver hears how
    /// each delivery ended.
    pub fn start() -> (Notifier, mpsc::Receiver<Delivery>) {
        Notifier::start_on_railway(Environment::from_process().railway)
    }

    /// As [`Notifier::start`], with the Railway names each alert carries.
    pub fn start_on_railway(railway: RailwayNames) -> (Notifier, mpsc::Receiver<Delivery>) {
        let (queue, mut alerts) = mpsc::channel::<(Webhook, Alert)>(QUEUE_DEPTH);
        let (ended, deliveries) = mpsc::channel::<Delivery>(QUEUE_DEPTH);
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
            while let Some((webhook, alert)) = alerts.recv().await {
                let delivery = deliver(
                    &client,
                    &webhook,
                    &alert.body(webhook.shape, &railway),
                    &alert,
                )
                .await;
                // Full only while the run cannot reach the database for long;
                // the logs have said how this delivery ended.
                if ended.try_send(delivery).is_err() {
                    tracing::debug!("alert webhook: the run is not taking delivery records; this one is not recorded");
                }
            }
        });
        (Notifier { queue }, deliveries)
    }

    /// Queues an alert for `webhook`; never waits.
    pub fn notify(&self, webhook: Webhook, alert: Alert) {
        if self.queue.try_send((webhook, alert)).is_err() {
            tracing::warn!(
                "alert webhook: earlier alerts are still waiting for the receiver; this one is dropped"
            );
        }
    }
}

/// Posts one alert's `body`, trying again with a growing pause up to [`ATTEMPTS`] times; says how it ended.
async fn deliver(
    client: &reqwest::Client,
    webhook: &Webhook,
    body: &serde_json::Value,
    alert: &Alert,
) -> Delivery {
    // A webhook URL often carries its secret in the path: logs name the host only.
    let receiver = webhook.host_str().unwrap_or_default();
    let ended = |attempts, error| Delivery {
        finished_at: Utc::now(),
        level: alert.level.clone(),
        previous_level: alert.previous_level.clone(),
        webhook_host: receiver.to_owned(),
        attempts,
        error,
    };
    let mut last_error = String::new();
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(webhook.url.clone())
            .json(body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match sent {
            Ok(_) => {
                tracing::info!(webhook = %receiver, level = %alert.level, previous_level = %alert.previous_level, attempt, "alert webhook notified");
                return ended(attempt, None);
            }
            Err(error) => {
                let retry = attempt < ATTEMPTS;
                let wait = webhook_retry_wait(attempt);
                last_error = describe(error);
                tracing::warn!(
                    webhook = %receiver,
                    level = %alert.level,
                    attempt,
                    attempts = ATTEMPTS,
                    retry_in = ?retry.then_some(wait),
                    error = %last_error,
                    "alert webhook failed"
                );
                if retry {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    tracing::error!(webhook = %receiver, level = %alert.level, attempts = ATTEMPTS, "alert webhook: giving up on this alert");
    ended(ATTEMPTS, Some(last_error))
}

/// How long to wait before trying the webhook again after `failures` failed tries.
pub fn webhook_retry_wait(failures: u32) -> Duration {
    FIRST_WEBHOOK_RETRY
        .checked_mul(1 << failures.saturating_sub(1).min(16))
        .map_or(MAX_WEBHOOK_RETRY, |wait| wait.min(MAX_WEBHOOK_RETRY))
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
    fn webhook_retries_back_off_exponentially_up_to_a_cap() {
        let waits: Vec<u64> = (1..=9).map(|n| webhook_retry_wait(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(webhook_retry_wait(u32::MAX), MAX_WEBHOOK_RETRY);
    }

    fn alert() -> Alert {
        Alert {
            level: "critical".into(),
            previous_level: "warning".into(),
            used_pct: Some(91.5),
            volume: "/app/facial_evaluations".into(),
            host: "web-1".into(),
        }
    }

    fn on_railway() -> RailwayNames {
        RailwayNames {
            project: Some("shop".into()),
            service: Some("web".into()),
            environment: Some("production".into()),
        }
    }

    #[test]
    fn auto_tells_slack_and_discord_webhooks_by_their_urls() {
        let shape =
            |setting: &str, url: &str| PayloadShape::parse(setting, &Url::parse(url).unwrap());
        assert_eq!(
            shape("auto", "https://hooks.slack.com/services/T0/B0/x"),
            Ok(PayloadShape::Slack)
        );
        assert_eq!(
            shape("auto", "https://discord.com/api/webhooks/1/x"),
            Ok(PayloadShape::Discord)
        );
        assert_eq!(
            shape("auto", "https://discordapp.com/api/webhooks/1/x"),
            Ok(PayloadShape::Discord)
        );
        assert_eq!(
            shape("auto", "https://discord.com/channels/1"),
            Ok(PayloadShape::Json)
        );
        assert_eq!(
            shape("auto", "https://hooks.example.com/filegc"),
            Ok(PayloadShape::Json)
        );
        assert_eq!(
            shape(" Slack ", "http://127.0.0.1:9/"),
            Ok(PayloadShape::Slack)
        );
        assert_eq!(
            shape("json", "https://hooks.slack.com/services/T0/B0/x"),
            Ok(PayloadShape::Json)
        );
        assert!(shape("xml", "https://hooks.example.com/").is_err());
    }

    /// Receives one request on a local port and answers 200; returns its body.
    async fn receive_one(listener: tokio::net::TcpListener) -> serde_json::Value {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "the request ended early");
            request.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .expect("a Content-Length");
                if request.len() >= end + 4 + length {
                    stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await
                        .unwrap();
                    return serde_json::from_slice(&request[end + 4..end + 4 + length]).unwrap();
                }
            }
        }
    }

    async fn delivered(shape: PayloadShape, railway: &RailwayNames) -> serde_json::Value {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = tokio::spawn(receive_one(listener));
        let webhook = Webhook {
            url: Url::parse(&format!("http://127.0.0.1:{port}/hook")).unwrap(),
            shape,
        };
        let alert = alert();
        let client = reqwest::Client::new();
        let delivery = deliver(&client, &webhook, &alert.body(shape, railway), &alert).await;
        assert_eq!(
            (delivery.attempts, delivery.error, delivery.webhook_host),
            (1, None, "127.0.0.1".to_owned())
        );
        receiver.await.unwrap()
    }

    #[tokio::test]
    async fn each_shape_reaches_its_receiver_as_the_receiver_expects() {
        let railway = on_railway();
        let json = delivered(PayloadShape::Json, &railway).await;
        assert_eq!(json["level"], "critical");
        assert_eq!(json["used_pct"], 91.5);
        assert_eq!(
            json["railway"],
            serde_json::json!({"project": "shop", "service": "web", "environment": "production"})
        );
        let slack = delivered(PayloadShape::Slack, &railway).await;
        let text = slack["text"].as_str().expect("Slack takes a text");
        assert_eq!(slack.as_object().unwrap().len(), 1, "{slack}");
        for part in [
            "critical",
            "91.5 %",
            "warning",
            "/app/facial_evaluations",
            "service web",
            "environment production",
            "project shop",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
        let discord = delivered(PayloadShape::Discord, &RailwayNames::default()).await;
        let content = discord["content"]
            .as_str()
            .expect("Discord takes a content");
        assert_eq!(discord.as_object().unwrap().len(), 1, "{discord}");
        assert!(
            content.contains("on web-1"),
            "off Railway, the host: {content}"
        );
    }

    #[test]
    fn a_discord_content_stays_within_its_limit() {
        let long = Alert {
            volume: "v".repeat(3 * DISCORD_CONTENT_LIMIT),
            ..alert()
        };
        let body = long.body(PayloadShape::Discord, &RailwayNames::default());
        assert_eq!(
            body["content"].as_str().unwrap().chars().count(),
            DISCORD_CONTENT_LIMIT
        );
    }

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
