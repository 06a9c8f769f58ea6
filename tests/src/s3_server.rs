//! A real S3 server for the tests of buckets: `moto_server` (PyPI
//! `moto[server]`, which `make test` installs), one per test, on a free port
//! of 127.0.0.1, stopped when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use filegc_sweeper::config::BUCKET_VARIABLES;

use crate::eventually;
use crate::sweeper::filegc_bin;

/// The bucket the tests of buckets create.
pub const BUCKET: &str = "app-uploads";

/// The place the tests give `filegc`: the images' folder in [`BUCKET`].
pub const STORAGE: &str = "s3://app-uploads/facial_evaluations/";

/// The key of the image at `path` under [`STORAGE`].
pub fn object_key(path: &str) -> String {
    format!("facial_evaluations/{path}")
}

/// The key of its copy in the trash.
pub fn trashed_key(path: &str) -> String {
    format!("facial_evaluations/.filegc-trash/{path}")
}

/// An `Authorization` header moto takes: it answers anonymous requests on a
/// private object (a HEAD, an overwrite) with 403, and checks no signature.
const TEST_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=test-key/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

/// A running `moto_server`: any credentials are accepted, buckets and objects live in its memory.
pub struct S3Server {
    child: Child,
    port: u16,
    /// One connection kept open for every request, not one per object.
    agent: ureq::Agent,
}

impl S3Server {
    /// Starts a server; returns once it answers.
    pub fn start() -> S3Server {
        // The port is free now; moto binds it a moment later, which a test
        // elsewhere on this machine could take first: the start then fails
        // loudly rather than reaching someone else's server, since the
        // readiness check below asks for this child's own answer.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server = S3Server {
            child: S3Server::spawn(port),
            port,
            agent: ureq::Agent::new_with_defaults(),
        };
        server.wait_until_ready();
        server
    }

    /// A `moto_server` on `port`.
    fn spawn(port: u16) -> Child {
        // As a module of the python3 on PATH, which `make test` installed it
        // into: its `moto_server` script may not be on PATH (pyenv's shims).
        Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("filegc-tests: cannot start python3 -m moto.server ({error}): run `make test`, which installs moto[server] from PyPI")
            })
    }

    fn wait_until_ready(&mut self) {
        let ready = eventually(Duration::from_secs(30), || {
            self.exited().is_none() && self.agent.get(self.endpoint()).call().is_ok()
        });
        let exit = self.exited();
        assert!(
            ready,
            "filegc-tests: moto_server on port {} did not answer within 30 s (exit: {exit:?})",
            self.port
        );
    }

    /// Stops the server, first noting the objects of `bucket` (keys and
    /// sizes) for [`S3Server::start_again`]: moto holds everything in its
    /// memory, and a real service keeps its objects across a restart. The
    /// caller makes sure no request is under way (see [`Proxy::pause`]).
    pub fn stop_keeping(&mut self, bucket: &str) -> Vec<(String, usize)> {
        let objects = self.objects(bucket);
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its kept connection died with the server: the next request must not reuse it.
        self.agent = ureq::Agent::new_with_defaults();
        objects
    }

    /// Starts the server again on its port, with `bucket` and the `objects`
    /// [`S3Server::stop_keeping`] noted, each with the tests' filler content,
    /// so that their ETags are the ones they had.
    pub fn start_again(&mut self, bucket: &str, objects: &[(String, usize)]) {
        self.child = S3Server::spawn(self.port);
        self.wait_until_ready();
        self.create_bucket(bucket);
        let mut by_size: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
        for (key, size) in objects {
            by_size.entry(*size).or_default().push(key.clone());
        }
        for (size, keys) in by_size {
            self.put_many(bucket, &keys, size);
        }
    }

    /// Every object of `bucket`, its key and size, as a listing gives them
    /// (the tests' keys need no XML unescaping).
    fn objects(&self, bucket: &str) -> Vec<(String, usize)> {
        let mut objects = Vec::new();
        self.each_listed_page(bucket, "", |page| {
            for contents in page.split("<Contents>").skip(1) {
                let key = between(contents, "<Key>", "</Key>").expect("a listed object's key");
                let size = between(contents, "<Size>", "</Size>")
                    .and_then(|size| size.parse().ok())
                    .expect("a listed object's size");
                objects.push((key, size));
            }
        });
        objects
    }

    /// Lists the keys under `prefix` page by page, as a bare client would
    /// (ListObjectsV2, 1,000 keys a page), giving each page's XML to `on_page`.
    fn each_listed_page(&self, bucket: &str, prefix: &str, mut on_page: impl FnMut(&str)) {
        let mut token: Option<String> = None;
        loop {
            let mut request = self
                .agent
                .get(format!("{}/{bucket}", self.endpoint()))
                .query("list-type", "2")
                .query("prefix", prefix)
                .header("Authorization", TEST_AUTHORIZATION);
            if let Some(token) = &token {
                request = request.query("continuation-token", token);
            }
            let page = request
                .call()
                .and_then(|mut response| response.body_mut().read_to_string())
                .unwrap_or_else(|error| panic!("listing s3://{bucket}/{prefix}: {error}"));
            on_page(&page);
            token = between(&page, "<NextContinuationToken>", "</NextContinuationToken>");
            if token.is_none() {
                return;
            }
        }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The endpoint, for the `ENDPOINT` variable.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        self.agent
            .put(format!("{}/{bucket}", self.endpoint()))
            .send_empty()
            .unwrap_or_else(|error| panic!("creating bucket {bucket}: {error}"));
    }

    /// Removes an empty bucket.
    pub fn remove_bucket(&self, bucket: &str) {
        self.agent
            .delete(format!("{}/{bucket}", self.endpoint()))
            .header("Authorization", TEST_AUTHORIZATION)
            .call()
            .unwrap_or_else(|error| panic!("removing bucket {bucket}: {error}"));
    }

    /// Writes an object of `size` bytes; the key is sent percent-encoded, so
    /// that `..` and `//` reach the server as they are.
    pub fn put(&self, bucket: &str, key: &str, size: usize) {
        let url = format!("{}/{bucket}/{}", self.endpoint(), encode_key(key));
        self.agent
            .put(&url)
            .header("Authorization", TEST_AUTHORIZATION)
            .send(&vec![b'x'; size][..])
            .unwrap_or_else(|error| panic!("writing s3://{bucket}/{key}: {error}"));
    }

    /// Writes an object of `size` bytes with `headers` (its metadata: `Content-Type`, `x-amz-meta-*`).
    pub fn put_with(&self, bucket: &str, key: &str, size: usize, headers: &[(&str, &str)]) {
        let url = format!("{}/{bucket}/{}", self.endpoint(), encode_key(key));
        let mut request = self
            .agent
            .put(&url)
            .header("Authorization", TEST_AUTHORIZATION);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .send(&vec![b'x'; size][..])
            .unwrap_or_else(|error| panic!("writing s3://{bucket}/{key}: {error}"));
    }

    /// A header of the object at `key`, as a HEAD answers it; `None` when it has none.
    pub fn header(&self, bucket: &str, key: &str, name: &str) -> Option<String> {
        let url = format!("{}/{bucket}/{}", self.endpoint(), encode_key(key));
        let response = self
            .agent
            .head(&url)
            .header("Authorization", TEST_AUTHORIZATION)
            .call()
            .unwrap_or_else(|error| panic!("looking at s3://{bucket}/{key}: {error}"));
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    /// Writes an object of `size` bytes at each key, over several connections at once.
    pub fn put_many(&self, bucket: &str, keys: &[String], size: usize) {
        self.each_key(keys, 4, |agent, key| {
            let url = format!("{}/{bucket}/{}", self.endpoint(), encode_key(key));
            agent
                .put(&url)
                .header("Authorization", TEST_AUTHORIZATION)
                .send(&vec![b'x'; size][..])
                .unwrap_or_else(|error| panic!("writing s3://{bucket}/{key}: {error}"));
        });
    }

    /// Deletes the keys one request each, over `connections` connections at
    /// once: the least a client that deletes object by object could spend.
    pub fn delete_each(&self, bucket: &str, keys: &[String], connections: usize) {
        self.each_key(keys, connections, |agent, key| {
            let url = format!("{}/{bucket}/{}", self.endpoint(), encode_key(key));
            agent
                .delete(&url)
                .header("Authorization", TEST_AUTHORIZATION)
                .call()
                .unwrap_or_else(|error| panic!("deleting s3://{bucket}/{key}: {error}"));
        });
    }

    /// Runs `request` for each key, the keys shared out among `connections` threads.
    fn each_key(
        &self,
        keys: &[String],
        connections: usize,
        request: impl Fn(&ureq::Agent, &str) + Sync,
    ) {
        let share = keys.len().div_ceil(connections).max(1);
        std::thread::scope(|scope| {
            for part in keys.chunks(share) {
                let agent = ureq::Agent::new_with_defaults();
                let request = &request;
                scope.spawn(move || {
                    for key in part {
                        request(&agent, key);
                    }
                });
            }
        });
    }

    /// Deletes the keys as a bare client would: DeleteObjects, 1,000 keys a request.
    pub fn delete_batched(&self, bucket: &str, keys: &[String]) {
        for batch in keys.chunks(1000) {
            let mut body = String::from("<Delete><Quiet>true</Quiet>");
            for key in batch {
                let escaped = key
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                body.push_str(&format!("<Object><Key>{escaped}</Key></Object>"));
            }
            body.push_str("</Delete>");
            let url = format!("{}/{bucket}?delete", self.endpoint());
            let answer = self
                .agent
                .post(&url)
                .header("Authorization", TEST_AUTHORIZATION)
                .header("Content-Type", "application/xml")
                .send(body.as_bytes())
                .and_then(|mut response| response.body_mut().read_to_string())
                .unwrap_or_else(|error| panic!("deleting a batch of s3://{bucket}: {error}"));
            assert!(
                !answer.contains("<Error>"),
                "deleting a batch of s3://{bucket}: {answer}"
            );
        }
    }

    /// Lists the keys under `prefix` as a bare client would, page by page; returns how many there are.
    pub fn count_listed(&self, bucket: &str, prefix: &str) -> u64 {
        let mut keys = 0;
        self.each_listed_page(bucket, prefix, |page| {
            keys += page.matches("<Key>").count() as u64;
        });
        keys
    }

    /// The size of the object at `key`; `None` when there is none.
    pub fn size(&self, bucket: &str, key: &str) -> Option<u64> {
        let url = format!("{}/{bucket}/{}", self.endpoint(), encode_key(key));
        let request = self
            .agent
            .head(&url)
            .header("Authorization", TEST_AUTHORIZATION);
        match request.call() {
            Ok(response) => Some(
                response
                    .headers()
                    .get("content-length")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse().ok())
                    .expect("a HEAD answer with a Content-Length"),
            ),
            Err(ureq::Error::StatusCode(404)) => None,
            Err(error) => panic!("looking at s3://{bucket}/{key}: {error}"),
        }
    }

    /// Whether an object stands at `key`.
    pub fn exists(&self, bucket: &str, key: &str) -> bool {
        let url = format!("{}/{bucket}/{}", self.endpoint(), encode_key(key));
        let request = self
            .agent
            .head(&url)
            .header("Authorization", TEST_AUTHORIZATION);
        match request.call() {
            Ok(_) => true,
            Err(ureq::Error::StatusCode(404)) => false,
            Err(error) => panic!("looking at s3://{bucket}/{key}: {error}"),
        }
    }

    /// The environment a `filegc` command needs for this server: Railway's bucket variables, as Railway names them.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ACCESS_KEY_ID", "test-key".to_owned()),
            ("SECRET_ACCESS_KEY", "test-secret".to_owned()),
            ("REGION", "us-east-1".to_owned()),
            ("ENDPOINT", self.endpoint()),
        ]
    }
}

/// `filegc --storage STORAGE ARGS` on this server, with the database at
/// `database_url`: Railway's bucket variables set, no volume, and none of the
/// variables that would point it elsewhere.
pub fn filegc_on_bucket(
    server: &S3Server,
    database_url: &str,
    storage: &str,
    args: &[&str],
) -> Command {
    bucket_command(filegc_bin(), server, database_url, storage, args)
}

/// Runs `filegc ARGS` on [`STORAGE`] to its end; returns its stdout, and fails the test if it failed.
pub fn filegc_on_bucket_ok(server: &S3Server, database_url: &str, args: &[&str]) -> String {
    let output = filegc_on_bucket(server, database_url, STORAGE, args)
        .output()
        .unwrap_or_else(|error| panic!("running filegc {args:?}: {error}"));
    crate::sweeper::succeeded(args, &output)
}

/// Like [`filegc_on_bucket`], with another build of `filegc` (the benchmark's release build).
pub fn bucket_command(
    program: &Path,
    server: &S3Server,
    database_url: &str,
    storage: &str,
    args: &[&str],
) -> Command {
    let mut command = Command::new(program);
    command
        .args(["--storage", storage, "--database-url", database_url])
        .args(args)
        .stdin(Stdio::null());
    for name in BUCKET_VARIABLES.iter().chain(&[
        "DATABASE_URL",
        "FILEGC_VOLUME",
        "FILEGC_STORAGE",
        "RAILWAY_VOLUME_MOUNT_PATH",
        "RAILWAY_ENVIRONMENT",
        "FILEGC_LOG_FORMAT",
        "FILEGC_LOG",
        "RUST_LOG",
    ]) {
        command.env_remove(name);
    }
    command.envs(server.variables());
    command
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes every byte of a key but the unreserved ones and `/`.
fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' | b'/' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// What a [`Proxy`] does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passage {
    /// Passes it on to the server.
    Forward,
    /// Answers 503 SlowDown, as a busy service does.
    SlowDown,
    /// Answers 501 NotImplemented when the request carries a condition on
    /// the object (`If-Match`, `If-None-Match`), as a service that does not
    /// implement them; passes it on otherwise.
    RefuseConditions,
    /// Passes it on without its conditions on the object (`If-Match`,
    /// `If-None-Match`), as a service that ignores them without a word.
    IgnoreConditions,
    /// Passes it on, then closes the connection without the answer: the
    /// server did the work and the client never hears of it (a connection
    /// cut, a restart after the write).
    LoseAnswer,
}

/// A proxy in front of an [`S3Server`] that shows each request's first line
/// (`PUT /bucket/key?... HTTP/1.1`) to a hook, which decides its passage and
/// may act on the server first. Its connections to the server each carry
/// one request. It serves until the test process ends.
pub struct Proxy {
    port: u16,
    state: Arc<ProxyState>,
}

/// What a [`Proxy`]'s connections share.
#[derive(Default)]
struct ProxyState {
    /// Requests wait before going on while set.
    paused: AtomicBool,
    /// Requests between the hook and the end of their answer.
    under_way: AtomicUsize,
    /// Requests the proxy could not pass on: the server was down.
    unreachable: AtomicUsize,
}

impl Proxy {
    /// Starts a proxy whose `hook` sees every request.
    pub fn start(
        server: &S3Server,
        hook: impl Fn(&str) -> Passage + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let upstream = server.port;
        let hook = Arc::new(hook);
        let state = Arc::new(ProxyState::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (hook, state) = (hook.clone(), shared.clone());
                std::thread::spawn(move || {
                    // A connection the client dropped ends here; nothing to report.
                    let _ = serve(client, upstream, &*hook, &state);
                });
            }
        });
        Proxy { port, state }
    }

    /// Holds every request from now on until [`Proxy::resume`]; returns
    /// once none is under way, so the server is left alone.
    pub fn pause(&self) {
        self.state.paused.store(true, Ordering::SeqCst);
        assert!(
            eventually(Duration::from_secs(30), || self
                .state
                .under_way
                .load(Ordering::SeqCst)
                == 0),
            "requests through the proxy still under way after 30 s"
        );
    }

    /// Lets requests go on again.
    pub fn resume(&self) {
        self.state.paused.store(false, Ordering::SeqCst);
    }

    /// How many requests found the server down (their connection was closed unanswered).
    pub fn unreachable(&self) -> usize {
        self.state.unreachable.load(Ordering::SeqCst)
    }

    /// A proxy that answers the first `failures` requests with 503
    /// SlowDown, then passes every request on; the count is of those refused.
    pub fn busy(server: &S3Server, failures: usize) -> (Proxy, Arc<AtomicUsize>) {
        let to_refuse = AtomicUsize::new(failures);
        let refused = Arc::new(AtomicUsize::new(0));
        let counted = refused.clone();
        let proxy = Proxy::start(server, move |_| {
            let busy = to_refuse
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok();
            if busy {
                counted.fetch_add(1, Ordering::SeqCst);
                Passage::SlowDown
            } else {
                Passage::Forward
            }
        });
        (proxy, refused)
    }

    /// A proxy in front of a service that does not implement conditional
    /// deletes: a DELETE with `If-Match` is answered 501 NotImplemented.
    pub fn without_conditional_deletes(server: &S3Server) -> Proxy {
        Proxy::start(server, |request_line| {
            if request_line.starts_with("DELETE ") {
                Passage::RefuseConditions
            } else {
                Passage::Forward
            }
        })
    }

    /// A proxy in front of a service that ignores the condition of a
    /// conditional delete: a DELETE goes on without its `If-Match`.
    pub fn ignoring_conditional_deletes(server: &S3Server) -> Proxy {
        Proxy::start(server, |request_line| {
            if request_line.starts_with("DELETE ") {
                Passage::IgnoreConditions
            } else {
                Passage::Forward
            }
        })
    }

    /// A proxy that, the first time a request writes `key` (a PUT, or a
    /// copy there), uploads `size` bytes there itself first: an
    /// application's upload racing the request.
    pub fn racing_upload(server: &S3Server, bucket: &str, key: &str, size: usize) -> Proxy {
        // As the sweeper's requests spell it: a plain key goes as it is.
        let path = format!("/{bucket}/{key}");
        let url = format!("{}/{bucket}/{}", server.endpoint(), encode_key(key));
        let raced = AtomicBool::new(false);
        Proxy::start(server, move |request_line| {
            let writes_the_key = ["PUT ", "COPY "].iter().any(|method| {
                request_line
                    .strip_prefix(method)
                    .and_then(|target| target.strip_prefix(path.as_str()))
                    .is_some_and(|rest| rest.starts_with(['?', ' ']))
            });
            if writes_the_key && !raced.swap(true, Ordering::SeqCst) {
                ureq::Agent::new_with_defaults()
                    .put(&url)
                    .header("Authorization", TEST_AUTHORIZATION)
                    .send(&vec![b'u'; size][..])
                    .unwrap_or_else(|error| panic!("the racing upload to {url}: {error}"));
            }
            Passage::Forward
        })
    }

    /// The endpoint to give `filegc` instead of the server's (`ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Serves one client connection of a [`Proxy`], request by request.
fn serve(
    client: TcpStream,
    upstream: u16,
    hook: &dyn Fn(&str) -> Passage,
    state: &ProxyState,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    loop {
        let mut head: Vec<String> = Vec::new();
        let mut request_line = None;
        let mut copies = false;
        let mut conditional = false;
        let mut content_length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            if request_line.is_none() {
                request_line = Some(line.clone());
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                content_length = value.trim().parse().unwrap_or(0);
            }
            copies |= lower.starts_with("x-amz-copy-source:");
            conditional |= lower.starts_with("if-match:") || lower.starts_with("if-none-match:");
            // The server closes its connection after the answer, so the proxy knows where it ends.
            if !lower.starts_with("connection:") {
                head.push(line);
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;
        // Counted as under way before the pause is looked at, so that
        // [`Proxy::pause`] never returns with a request slipping past it.
        let _under_way = UnderWay::enter(state);
        let request_line = request_line.unwrap_or_default();
        // A copy names its target in a PUT too; the hook sees it as `COPY`.
        let shown = if copies {
            request_line.replacen("PUT ", "COPY ", 1)
        } else {
            request_line
        };
        let passage = hook(&shown);
        if passage == Passage::SlowDown {
            let error = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            write!(
                client,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{error}",
                error.len()
            )?;
            continue;
        }
        if passage == Passage::RefuseConditions && conditional {
            let error = "<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented.</Message></Error>";
            write!(
                client,
                "HTTP/1.1 501 Not Implemented\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{error}",
                error.len()
            )?;
            continue;
        }
        let mut server = TcpStream::connect(("127.0.0.1", upstream)).inspect_err(|_| {
            state.unreachable.fetch_add(1, Ordering::SeqCst);
        })?;
        for line in &head {
            let lower = line.to_ascii_lowercase();
            let a_condition = lower.starts_with("if-match:") || lower.starts_with("if-none-match:");
            if !(passage == Passage::IgnoreConditions && a_condition) {
                server.write_all(line.as_bytes())?;
            }
        }
        server.write_all(b"Connection: close\r\n\r\n")?;
        server.write_all(&body)?;
        let mut answer = Vec::new();
        server.read_to_end(&mut answer)?;
        if passage == Passage::LoseAnswer {
            return Ok(());
        }
        client.write_all(&answer)?;
        // The answer says `Connection: close`: the client opens a new connection.
        return Ok(());
    }
}

/// A request under way through a [`Proxy`]: counted from its hook to the
/// end of its answer, and held there while the proxy is paused.
struct UnderWay<'a>(&'a ProxyState);

impl<'a> UnderWay<'a> {
    fn enter(state: &'a ProxyState) -> UnderWay<'a> {
        loop {
            state.under_way.fetch_add(1, Ordering::SeqCst);
            if !state.paused.load(Ordering::SeqCst) {
                return UnderWay(state);
            }
            state.under_way.fetch_sub(1, Ordering::SeqCst);
            eventually(Duration::from_secs(60), || {
                !state.paused.load(Ordering::SeqCst)
            });
        }
    }
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        self.0.under_way.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The text between the first `open` and the `close` after it.
fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let (_, rest) = text.split_once(open)?;
    Some(rest.split_once(close)?.0.to_owned())
}
