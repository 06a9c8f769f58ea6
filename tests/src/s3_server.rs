//! A real S3 server for the tests of buckets: `moto_server` (PyPI
//! `moto[server]`, which `make test` installs), one per test, on a free port
//! of 127.0.0.1, stopped when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
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
        // As a module of the python3 on PATH, which `make test` installed it
        // into: its `moto_server` script may not be on PATH (pyenv's shims).
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("filegc-tests: cannot start python3 -m moto.server ({error}): run `make test`, which installs moto[server] from PyPI")
            });
        let mut server = S3Server {
            child,
            port,
            agent: ureq::Agent::new_with_defaults(),
        };
        let ready = eventually(Duration::from_secs(30), || {
            server.exited().is_none() && server.agent.get(server.endpoint()).call().is_ok()
        });
        assert!(
            ready,
            "filegc-tests: moto_server on port {port} did not answer within 30 s (exit: {:?})",
            server.exited()
        );
        server
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

    /// Writes an object of `size` bytes at each key, over several connections at once.
    pub fn put_many(&self, bucket: &str, keys: &[String], size: usize) {
        const CONNECTIONS: usize = 4;
        let share = keys.len().div_ceil(CONNECTIONS).max(1);
        std::thread::scope(|scope| {
            for part in keys.chunks(share) {
                let agent = ureq::Agent::new_with_defaults();
                scope.spawn(move || {
                    for key in part {
                        let url = format!("{}/{bucket}/{}", self.endpoint(), encode_key(key));
                        agent
                            .put(&url)
                            .header("Authorization", TEST_AUTHORIZATION)
                            .send(&vec![b'x'; size][..])
                            .unwrap_or_else(|error| panic!("writing s3://{bucket}/{key}: {error}"));
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
            keys += page.matches("<Key>").count() as u64;
            token = page
                .split_once("<NextContinuationToken>")
                .and_then(|(_, rest)| rest.split_once("</NextContinuationToken>"))
                .map(|(token, _)| token.to_owned());
            if token.is_none() {
                return keys;
            }
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

/// A proxy in front of an [`S3Server`] that answers the first `failures`
/// requests with 503 SlowDown, as a busy service does, then passes every
/// request on. Its connections to the server each carry one request.
pub struct BusyProxy {
    port: u16,
    refused: Arc<AtomicUsize>,
}

impl BusyProxy {
    /// Starts the proxy; it serves until the test process ends.
    pub fn start(server: &S3Server, failures: usize) -> BusyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let upstream = server.port;
        let to_refuse = Arc::new(AtomicUsize::new(failures));
        let refused = Arc::new(AtomicUsize::new(0));
        let counters = (to_refuse, refused.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (to_refuse, refused) = (counters.0.clone(), counters.1.clone());
                std::thread::spawn(move || {
                    // A connection the client dropped ends here; nothing to report.
                    let _ = serve_busy(client, upstream, &to_refuse, &refused);
                });
            }
        });
        BusyProxy { port, refused }
    }

    /// The endpoint to give `filegc` instead of the server's (`ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many requests it answered with 503 so far.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

/// Serves one client connection of a [`BusyProxy`], request by request.
fn serve_busy(
    client: TcpStream,
    upstream: u16,
    to_refuse: &AtomicUsize,
    refused: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    loop {
        let mut head = Vec::new();
        let mut content_length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                content_length = value.trim().parse().unwrap_or(0);
            }
            // The server closes its connection after the answer, so the proxy knows where it ends.
            if !lower.starts_with("connection:") {
                head.extend_from_slice(line.as_bytes());
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body)?;
        let busy = to_refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if busy {
            refused.fetch_add(1, Ordering::SeqCst);
            let error = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            write!(
                client,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{error}",
                error.len()
            )?;
            continue;
        }
        let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
        server.write_all(&head)?;
        server.write_all(b"Connection: close\r\n\r\n")?;
        server.write_all(&body)?;
        let mut answer = Vec::new();
        server.read_to_end(&mut answer)?;
        client.write_all(&answer)?;
        // The answer says `Connection: close`: the client opens a new connection.
        return Ok(());
    }
}
