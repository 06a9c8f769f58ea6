//! The connection to the application's database: opening it, checking for filegc, and its errors.

use std::fmt::Write as _;
use std::future::{poll_fn, Future};
use std::pin::Pin;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, Connection, IsolationLevel, NoTls};

use crate::tls::{self, Transport};

/// Why the database could not be used.
#[derive(Debug, Error)]
pub enum DbError {
    /// The connection could not be made; the run ends with exit status 3.
    #[error("cannot reach the database at {host}: {cause} (check DATABASE_URL or --database-url, and that the server is up)")]
    Unreachable {
        /// The host (and port) the connection string names.
        host: String,
        /// What went wrong, with the server's explanation if any.
        cause: String,
    },
    /// The database has no `filegc` extension; exit status 2.
    #[error("the database at {host} has no filegc extension and no portable install (run `CREATE EXTENSION filegc` in it first, or `filegc install-sql --apply` where extensions cannot be loaded)")]
    NoExtension {
        /// The host the connection string names.
        host: String,
    },
    /// The role the sweeper logs in as may not use filegc; exit status 2.
    #[error("the role {role} may not use filegc in the database at {host} ({cause}): as the database's owner or a superuser, run `GRANT filegc_sweeper TO {role};`")]
    NotPermitted {
        /// The role the connection logged in as.
        role: String,
        /// The host the connection string names.
        host: String,
        /// PostgreSQL's message.
        cause: String,
    },
    /// The circuit breaker refused a deletion; exit status 2.
    #[error("{0}")]
    Refused(String),
    /// A statement failed; the text carries PostgreSQL's message, detail and hint. Exit status 3.
    #[error("{0}")]
    Query(String),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        if error.is_closed() {
            return DbError::Unreachable {
                host: "the server".into(),
                cause: describe(&error),
            };
        }
        if error
            .as_db_error()
            .is_some_and(|db| db.code().code() == BREAKER_SQLSTATE)
        {
            return DbError::Refused(describe(&error));
        }
        DbError::Query(describe(&error))
    }
}

/// The error as a person needs it: PostgreSQL's message, then its detail and hint.
pub fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = db.message().to_owned();
        if let Some(detail) = db.detail() {
            let _ = write!(text, "\nDETAIL: {detail}");
        }
        // The database's hint speaks SQL (force => true); here the operator
        // is at the command line.
        let hint = if db.code().code() == BREAKER_SQLSTATE {
            Some(BREAKER_HINT)
        } else {
            db.hint()
        };
        if let Some(hint) = hint {
            let _ = write!(text, "\nHINT: {hint}");
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// The SQLSTATE of a refusal by the circuit breaker (`filegc.breaker_sqlstate()`).
pub const BREAKER_SQLSTATE: &str = "FG001";

/// What to do about a refusal by the circuit breaker, at the command line.
pub const BREAKER_HINT: &str = "Check the list first (--dry-run). If it is right, pass --force to filegc delete-orphans or delete-old; \
or raise the limit: UPDATE filegc.settings SET value = '0.5' WHERE name = 'max_delete_fraction'.";

/// A connection to the application's database, which has the extension.
pub struct Db {
    pub(super) client: Client,
}

impl Db {
    /// Connects (with TLS as the URL's `sslmode` says) and checks that the extension is there.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        let client = open(url, None).await?;
        Db::checked(client, url).await
    }

    /// Connects, checks the extension and listens on the `filegc` channel; each notification arrives as one message on the receiver, which closes when the connection ends.
    pub async fn connect_listening(
        url: &str,
    ) -> Result<(Db, mpsc::UnboundedReceiver<String>), DbError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let client = open(url, Some(sender)).await?;
        let db = Db::checked(client, url).await?;
        db.client.batch_execute("LISTEN filegc").await?;
        Ok((db, receiver))
    }

    /// Connects without checking for filegc: for installing it.
    pub async fn connect_unchecked(url: &str) -> Result<Client, DbError> {
        open(url, None).await
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    async fn checked(client: Client, url: &str) -> Result<Db, DbError> {
        // The extension and the portable install both answer filegc.version().
        let engine = client
            .query_one("SELECT engine, version FROM filegc.version()", &[])
            .await;
        match engine {
            Ok(row) => {
                tracing::info!(
                    engine = row.get::<_, &str>(0),
                    version = row.get::<_, &str>(1),
                    "filegc is installed"
                );
                Ok(Db { client })
            }
            Err(error)
                if error
                    .as_db_error()
                    .is_some_and(|db| *db.code() == SqlState::INSUFFICIENT_PRIVILEGE) =>
            {
                let role = client
                    .query_one("SELECT current_user::text", &[])
                    .await
                    .map(|row| row.get::<_, String>(0))
                    .unwrap_or_else(|_| "the sweeper's role".into());
                Err(DbError::NotPermitted {
                    role,
                    host: host_of(url),
                    cause: describe(&error),
                })
            }
            Err(_) => Err(DbError::NoExtension { host: host_of(url) }),
        }
    }

    /// Begins a READ COMMITTED transaction: the sweeper's final checks must
    /// see rows committed after it began.
    pub(super) async fn read_committed(
        &mut self,
    ) -> Result<tokio_postgres::Transaction<'_>, DbError> {
        Ok(self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await?)
    }
}

/// Opens the connection in plain text or TLS, and drives it in a task that
/// hands its notifications to `notifications` when given.
async fn open(
    url: &str,
    notifications: Option<mpsc::UnboundedSender<String>>,
) -> Result<Client, DbError> {
    let host = host_of(url);
    let unreachable = |cause: String| DbError::Unreachable {
        host: host.clone(),
        cause,
    };
    let plan = tls::plan(url).map_err(unreachable)?;
    tracing::debug!(host = %host, transport = ?plan.transport, "connecting to the database");
    let opened = match plan.transport {
        Transport::Plain => tokio_postgres::connect(&plan.url, NoTls)
            .await
            .map(|(client, connection)| (client, drive(connection, notifications, host.clone()))),
        Transport::Tls { verified } => tokio_postgres::connect(&plan.url, tls::connector(verified))
            .await
            .map(|(client, connection)| (client, drive(connection, notifications, host.clone()))),
    };
    let (client, driver) = opened.map_err(|error| unreachable(describe(&error)))?;
    tokio::spawn(driver);
    Ok(client)
}

/// The task that drives a connection: `poll_message` both moves it along and
/// hands out its notifications.
fn drive<S, T>(
    mut connection: Connection<S, T>,
    notifications: Option<mpsc::UnboundedSender<String>>,
    host: String,
) -> Pin<Box<dyn Future<Output = ()> + Send>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    let Some(sender) = &notifications else {
                        continue;
                    };
                    if sender.send(notification.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(host = %host, error = %describe(&error), "database connection lost");
                    break;
                }
            }
        }
    })
}

/// The host and port a connection string names, for messages; never the password.
fn host_of(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return "the configured address".into();
    };
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    match config.get_ports().first() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_named_without_the_password() {
        assert_eq!(
            host_of("postgres://app:secret@db.internal:5433/app"),
            "db.internal:5433"
        );
        assert_eq!(
            host_of("host=/run/postgresql dbname=app"),
            "/run/postgresql"
        );
    }
}
