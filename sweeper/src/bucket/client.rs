//! Requests to an S3-compatible bucket: signed by rusty-s3, sent by reqwest,
//! retried with backoff when the service is busy or the network fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Credentials, S3Action, UrlStyle};
use thiserror::Error;

use super::pace::Pace;
use super::settings::{Addressing, BucketLocation, BucketSettings};

/// How long a signed request stays valid: long enough for a slow answer, short enough that a leaked URL is soon useless.
pub(super) const SIGNATURE_LIFETIME: Duration = Duration::from_secs(300);

/// Keys per listing page: S3's maximum.
const PAGE_KEYS: usize = 1000;

/// How long one request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Attempts at one request before the run gives up on it: with the backoff
/// below, about a minute of a busy or unreachable service.
const ATTEMPTS: usize = 8;

/// An opened bucket: where it is and a client for it.
#[derive(Debug, Clone)]
pub struct Bucket {
    location: BucketLocation,
    target: rusty_s3::Bucket,
    credentials: Credentials,
    http: reqwest::Client,
    /// Set once the service answered a conditional delete with 501: its
    /// deletions are unconditional from then on (logged once).
    unconditional_deletes: Arc<AtomicBool>,
    /// Filled once the bucket's first conditional delete has asked whether
    /// the service checks the condition at all (see `Bucket::probe_conditional_deletes`).
    deletes_probed: Arc<tokio::sync::OnceCell<()>>,
    /// Set once the service answered a write with `If-None-Match: *` with
    /// 501: restores copy on the server from then on (logged once).
    unconditional_writes: Arc<AtomicBool>,
    /// The byte budget the alert levels measure the bucket against.
    budget_bytes: Option<u64>,
    /// The request rate every request (each attempt) keeps to, when one is set.
    pace: Option<Arc<Pace>>,
}

/// Why a request to the bucket failed, after its retries.
#[derive(Debug, Error)]
pub enum BucketError {
    /// The settings do not make a bucket address.
    #[error("{location}: cannot address the bucket at {endpoint}: {reason}")]
    Address {
        /// The bucket.
        location: BucketLocation,
        /// The endpoint.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The service could not be reached, or kept failing.
    #[error("{location}: {action}: {source}")]
    Unreachable {
        /// The bucket.
        location: BucketLocation,
        /// What the sweeper was doing.
        action: &'static str,
        /// The transport's error.
        source: reqwest::Error,
    },
    /// The service answered with an error.
    #[error("{location}: {action}: the service answered {status}{hint}: {body}")]
    Refused {
        /// The bucket.
        location: BucketLocation,
        /// What the sweeper was doing.
        action: &'static str,
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// What the status usually means here.
        hint: &'static str,
        /// The start of the service's answer (an S3 error document).
        body: String,
    },
    /// The answer was not the document S3 sends.
    #[error("{location}: {action}: the answer is not an S3 listing: {reason}")]
    BadAnswer {
        /// The bucket.
        location: BucketLocation,
        /// What the sweeper was doing.
        action: &'static str,
        /// What could not be read.
        reason: String,
    },
}

/// One object of a listing, its key as the bucket spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// The whole key, prefix included.
    pub key: String,
    /// Its size; `None` when the service did not say.
    pub size_bytes: Option<u64>,
    /// When it was last written; `None` when the service did not say or said something unreadable.
    pub modified: Option<DateTime<Utc>>,
    /// Its ETag; `None` when the service did not say.
    pub etag: Option<String>,
}

/// Where a page of a listing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFrom<'a> {
    /// At the first key.
    Start,
    /// At the first key after this one (a listing resumed after the last key it kept).
    After(&'a str),
    /// Where the page that gave this token left off.
    Continuation(&'a str),
}

impl<'a> ListFrom<'a> {
    /// The page a listing asks next: the first, or the one `token` names.
    pub fn next(token: Option<&'a str>) -> ListFrom<'a> {
        token.map_or(ListFrom::Start, ListFrom::Continuation)
    }
}

/// One page of a listing and where the next one starts.
#[derive(Debug, Clone)]
pub struct ListedPage {
    /// The page's objects, in the bucket's (byte) order.
    pub objects: Vec<ListedObject>,
    /// The token for the next page; `None` on the last one.
    pub next: Option<String>,
}

/// Whether an answer is worth asking again: the service was busy (429, S3's
/// 503 SlowDown) or failed on its side (5xx).
fn is_transient(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

impl Bucket {
    /// A client for the bucket the settings name; sends nothing yet.
    pub fn open(settings: &BucketSettings) -> Result<Bucket, BucketError> {
        let style = match settings.addressing {
            Addressing::VirtualHosted => UrlStyle::VirtualHost,
            Addressing::Path => UrlStyle::Path,
        };
        let address_error = |reason: String| BucketError::Address {
            location: settings.location.clone(),
            endpoint: settings.endpoint.to_string(),
            reason,
        };
        let target = rusty_s3::Bucket::new(
            settings.endpoint.clone(),
            style,
            settings.location.bucket.clone(),
            settings.region.clone(),
        )
        .map_err(|error| address_error(format!("{error:?}")))?;
        let credentials = match &settings.session_token {
            Some(token) => Credentials::new_with_token(
                settings.access_key_id.clone(),
                settings.secret_access_key.clone(),
                token.clone(),
            ),
            None => Credentials::new(
                settings.access_key_id.clone(),
                settings.secret_access_key.clone(),
            ),
        };
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|error| address_error(error.to_string()))?;
        Ok(Bucket {
            location: settings.location.clone(),
            target,
            credentials,
            http,
            unconditional_deletes: Arc::new(AtomicBool::new(false)),
            deletes_probed: Arc::new(tokio::sync::OnceCell::new()),
            unconditional_writes: Arc::new(AtomicBool::new(false)),
            budget_bytes: settings.budget_bytes,
            pace: settings
                .requests_per_second
                .map(|rate| Arc::new(Pace::new(rate))),
        })
    }

    /// The bucket and prefix.
    pub fn location(&self) -> &BucketLocation {
        &self.location
    }

    /// The byte budget the alert levels measure the bucket against; `None`: no levels.
    pub fn budget_bytes(&self) -> Option<u64> {
        self.budget_bytes
    }

    /// One page of the keys under the prefix: the first, or the first after
    /// the key `from` names, or the one a page's `next` token names.
    pub async fn list_page(&self, from: ListFrom<'_>) -> Result<ListedPage, BucketError> {
        const ACTION: &str = "list the objects";
        let body = self
            .send(ACTION, || {
                let mut list = ListObjectsV2::new(&self.target, Some(&self.credentials));
                if !self.location.prefix.is_empty() {
                    list.with_prefix(self.location.prefix.as_str());
                }
                list.with_max_keys(PAGE_KEYS);
                match from {
                    ListFrom::Start => {}
                    ListFrom::After(key) => list.with_start_after(key),
                    ListFrom::Continuation(token) => list.with_continuation_token(token),
                }
                list.sign(SIGNATURE_LIFETIME)
            })
            .await?;
        let page =
            ListObjectsV2::parse_response(&body).map_err(|error| BucketError::BadAnswer {
                location: self.location.clone(),
                action: ACTION,
                reason: error.to_string(),
            })?;
        let objects = page
            .contents
            .into_iter()
            .map(|object| ListedObject {
                modified: object
                    .last_modified
                    .as_deref()
                    .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
                    .map(|time| time.with_timezone(&Utc)),
                size_bytes: object.size,
                etag: object.etag,
                key: object.key,
            })
            .collect();
        Ok(ListedPage {
            objects,
            next: page.next_continuation_token,
        })
    }

    /// Sends the GET `sign` builds and returns the answer's body.
    async fn send(
        &self,
        action: &'static str,
        sign: impl Fn() -> url::Url,
    ) -> Result<String, BucketError> {
        let answer = self
            .request(action, reqwest::Method::GET, || (sign(), Vec::new()))
            .await?;
        if answer.status.is_success() {
            Ok(answer.text())
        } else {
            Err(answer.refused(self, action))
        }
    }

    /// Sends the request `sign` builds (signed anew for each attempt, with
    /// the headers it signed); retries transient failures with exponential
    /// backoff. An answer of 404 is returned, for the caller to read: for an
    /// object it means "not there", a normal outcome.
    pub(super) async fn request(
        &self,
        action: &'static str,
        method: reqwest::Method,
        sign: impl Fn() -> (url::Url, Vec<(String, String)>),
    ) -> Result<Answer, BucketError> {
        self.request_with_body(action, method, sign, None).await
    }

    /// [`Bucket::request`] with a body, sent again with each attempt.
    pub(super) async fn request_with_body(
        &self,
        action: &'static str,
        method: reqwest::Method,
        sign: impl Fn() -> (url::Url, Vec<(String, String)>),
        body: Option<bytes::Bytes>,
    ) -> Result<Answer, BucketError> {
        let attempt = || async {
            if let Some(pace) = &self.pace {
                pace.wait().await;
            }
            let (url, headers) = sign();
            // Tigris (Railway's buckets) evaluates conditions, and answers
            // reads, on the region's leader only with this header; other
            // services ignore a header they do not know (it needs no
            // signature: it is not an x-amz-* header).
            let mut request = self
                .http
                .request(method.clone(), url)
                .header("X-Tigris-Consistent", "true");
            for (name, value) in headers {
                request = request.header(name, value);
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let unreachable = |source| BucketError::Unreachable {
                location: self.location.clone(),
                action,
                source,
            };
            let response = request.send().await.map_err(unreachable)?;
            let status = response.status();
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned)
            };
            let content_length =
                header(reqwest::header::CONTENT_LENGTH).and_then(|value| value.parse().ok());
            let etag = header(reqwest::header::ETAG);
            let metadata = response
                .headers()
                .iter()
                .filter(|(name, _)| is_object_metadata(name.as_str()))
                .filter_map(|(name, value)| {
                    Some((name.to_string(), value.to_str().ok()?.to_owned()))
                })
                .collect();
            let body = response.bytes().await.map_err(unreachable)?;
            let answer = Answer {
                status,
                content_length,
                etag,
                metadata,
                body,
            };
            if status.is_success()
                || status == reqwest::StatusCode::NOT_FOUND
                || status == reqwest::StatusCode::PRECONDITION_FAILED
                || status == reqwest::StatusCode::NOT_IMPLEMENTED
            {
                return Ok(answer);
            }
            Err(answer.refused(self, action))
        };
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(15))
                    .with_max_times(ATTEMPTS - 1)
                    .with_jitter(),
            )
            .when(|error| match error {
                BucketError::Unreachable { .. } => true,
                BucketError::Refused { status, .. } => is_transient(*status),
                _ => false,
            })
            .notify(|error, delay| {
                tracing::warn!(error = %error, retry_in = ?delay, "the bucket's service failed a request; trying again");
            })
            .await
    }

    /// The same bucket with another prefix: its trash folder, to list it.
    pub(super) fn with_prefix(&self, prefix: &str) -> Bucket {
        let mut bucket = self.clone();
        bucket.location.prefix = prefix.to_owned();
        bucket
    }

    /// Whether the service turned down conditional deletes (see [`Bucket::note_unconditional_deletes`]).
    pub(super) fn deletes_unconditionally(&self) -> bool {
        self.unconditional_deletes.load(Ordering::Relaxed)
    }

    /// Runs `probe` unless it ran already for this bucket.
    pub(super) async fn once_deletes_probed<F: std::future::Future<Output = ()>>(
        &self,
        probe: impl FnOnce() -> F,
    ) {
        self.deletes_probed.get_or_init(probe).await;
    }

    /// Notes that the service does not implement conditional deletes; warns the first time.
    pub(super) fn note_unconditional_deletes(&self) {
        if !self.unconditional_deletes.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                bucket = %self.location,
                "the service does not implement conditional deletes (If-Match): each deletion looks at the object just before, and an object replaced between that look and the deletion can be deleted; see docs/buckets.md"
            );
        }
    }

    /// Whether the service turned down writes that must not replace an object.
    pub(super) fn writes_unconditionally(&self) -> bool {
        self.unconditional_writes.load(Ordering::Relaxed)
    }

    /// Notes that the service does not implement `If-None-Match` on writes; warns the first time.
    pub(super) fn note_unconditional_writes(&self) {
        if !self.unconditional_writes.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                bucket = %self.location,
                "the service does not implement writes that refuse to replace an object (If-None-Match): a restore copies on the server, and replaces an upload made at the path during it; see docs/buckets.md"
            );
        }
    }

    /// The signing target and credentials, for the object requests.
    pub(super) fn target(&self) -> (&rusty_s3::Bucket, &Credentials) {
        (&self.target, &self.credentials)
    }
}

/// What the service answered: a success, 404, 412 (a condition failed) or
/// 501 (a condition the service does not implement).
#[derive(Debug)]
pub(super) struct Answer {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// The `Content-Length` header: an object's size, for HEAD.
    pub content_length: Option<u64>,
    /// The `ETag` header: which version of an object, for HEAD.
    pub etag: Option<String>,
    /// The object's metadata among the headers, for GET: what a write of
    /// its content elsewhere must send to make the same object.
    pub metadata: Vec<(String, String)>,
    /// The body.
    pub body: bytes::Bytes,
}

impl Answer {
    fn refused(self, bucket: &Bucket, action: &'static str) -> BucketError {
        BucketError::Refused {
            location: bucket.location.clone(),
            action,
            status: self.status,
            hint: hint(self.status),
            body: self.text().chars().take(500).collect(),
        }
    }

    /// The body as text (an S3 document), any bytes that are not UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the object asked about is not there.
    pub fn not_found(&self) -> bool {
        self.status == reqwest::StatusCode::NOT_FOUND
    }

    /// Whether a condition of the request (`If-Match`) failed: the object changed.
    pub fn changed(&self) -> bool {
        self.status == reqwest::StatusCode::PRECONDITION_FAILED
    }

    /// Whether the service does not implement a condition the request carried.
    pub fn unsupported(&self) -> bool {
        self.status == reqwest::StatusCode::NOT_IMPLEMENTED
    }

    /// The answer as an error, for a status the caller does not expect.
    pub fn into_error(self, bucket: &Bucket, action: &'static str) -> BucketError {
        self.refused(bucket, action)
    }
}

/// Whether an answer's header is part of the object (S3 keeps these with its
/// content and gives them back), as opposed to the answer's own.
fn is_object_metadata(name: &str) -> bool {
    matches!(
        name,
        "content-type"
            | "cache-control"
            | "content-disposition"
            | "content-encoding"
            | "content-language"
            | "expires"
    ) || name.starts_with("x-amz-meta-")
}

/// What an error status usually means for a bucket the sweeper was configured for.
fn hint(status: reqwest::StatusCode) -> &'static str {
    match status.as_u16() {
        301 | 307 | 400 => {
            " (a wrong REGION, or an endpoint that wants the other addressing: try FILEGC_S3_ADDRESSING=path or virtual)"
        }
        403 => " (the credentials are wrong or may not list this bucket)",
        404 => " (no such bucket at this endpoint)",
        _ => "",
    }
}
