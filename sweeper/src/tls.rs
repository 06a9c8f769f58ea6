//! TLS for the database connection, chosen by the URL's `sslmode` as libpq does.
//!
//! `disable` and Unix sockets connect in plain text; `prefer` (the default)
//! and `require` encrypt without checking the certificate, as libpq does
//! without a root certificate (Railway's public URLs need `require`);
//! `verify-full` checks the certificate and the host name against the
//! Mozilla roots. The TLS stack is rustls, so no system OpenSSL is needed.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The `sslmode` values filegc understands, as libpq defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never encrypt.
    Disable,
    /// Encrypt when the server offers it, without checking the certificate; the default.
    Prefer,
    /// Always encrypt, without checking the certificate.
    Require,
    /// Always encrypt, and check the certificate chain and the host name.
    VerifyFull,
}

/// How the connection is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain text: `sslmode=disable`, or a Unix socket.
    Plain,
    /// TLS (refused or optional as the connection string's `sslmode` says).
    Tls {
        /// Whether the certificate and host name are checked.
        verified: bool,
    },
}

/// A connection string ready for tokio-postgres, and how to connect with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The connection string, with `verify-full` spelled as tokio-postgres accepts it.
    pub url: String,
    /// Plain text or TLS.
    pub transport: Transport,
}

/// Reads the `sslmode` of a connection string (URL or `key=value` form); `prefer` when absent.
pub fn ssl_mode(url: &str) -> Result<SslMode, String> {
    match sslmode_value(url) {
        None => Ok(SslMode::Prefer),
        Some(value) => match value.as_str() {
            "disable" => Ok(SslMode::Disable),
            "allow" | "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-full" => Ok(SslMode::VerifyFull),
            "verify-ca" => Err(
                "sslmode=verify-ca is not supported (use sslmode=verify-full to \
                 check the certificate and host name, or sslmode=require to only encrypt)"
                    .into(),
            ),
            other => Err(format!(
                "sslmode={other} is not a known mode (use disable, prefer, require or verify-full)"
            )),
        },
    }
}

/// Decides how to connect to `url`: its `sslmode`, and plain text for Unix sockets.
pub fn plan(url: &str) -> Result<Plan, String> {
    let mode = ssl_mode(url)?;
    let url = if mode == SslMode::VerifyFull {
        // tokio-postgres knows no verify-full; TLS is required, and rustls checks the rest.
        // Only the parameters are rewritten, never a password that happens to match.
        let (head, params) = match url.split_once('?') {
            Some((head, query)) if is_url(url) => (format!("{head}?"), query),
            _ if is_url(url) => (url.to_owned(), ""),
            _ => (String::new(), url),
        };
        head + &params.replace("sslmode=verify-full", "sslmode=require")
    } else {
        url.to_owned()
    };
    let only_sockets = url.parse::<tokio_postgres::Config>().is_ok_and(|config| {
        !config.get_hosts().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|host| matches!(host, Host::Unix(_)))
    });
    let transport = match mode {
        _ if only_sockets => Transport::Plain,
        SslMode::Disable => Transport::Plain,
        SslMode::Prefer | SslMode::Require => Transport::Tls { verified: false },
        SslMode::VerifyFull => Transport::Tls { verified: true },
    };
    Ok(Plan { url, transport })
}

/// The rustls connector for a TLS transport.
pub fn connector(verified: bool) -> MakeRustlsConnect {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls's default protocol versions");
    let config = if verified {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth()
    };
    MakeRustlsConnect::new(config)
}

/// The value of the `sslmode` parameter, if the connection string has one.
fn sslmode_value(url: &str) -> Option<String> {
    let pairs: Vec<&str> = if is_url(url) {
        let query = url.split_once('?')?.1;
        query.split('&').collect()
    } else {
        url.split_whitespace().collect()
    };
    pairs.iter().rev().find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == "sslmode").then(|| value.trim().trim_matches('\'').to_ascii_lowercase())
    })
}

/// Whether the connection string is a URL rather than `key=value` pairs.
fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Accepts any certificate but still checks the handshake's signatures: libpq's `require`.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_comes_from_the_url_or_the_key_value_form() {
        let cases = [
            ("postgres://u:p@db.example:5432/app", SslMode::Prefer),
            (
                "postgresql://u:p@db.example/app?sslmode=require",
                SslMode::Require,
            ),
            (
                "postgres://db.example/app?connect_timeout=5&sslmode=disable",
                SslMode::Disable,
            ),
            (
                "postgres://db.example/app?sslmode=verify-full",
                SslMode::VerifyFull,
            ),
            (
                "host=db.example sslmode=require dbname=app",
                SslMode::Require,
            ),
            ("host=db.example sslmode='disable'", SslMode::Disable),
            ("host=db.example dbname=app", SslMode::Prefer),
        ];
        for (url, mode) in cases {
            assert_eq!(ssl_mode(url), Ok(mode), "{url}");
        }
    }

    #[test]
    fn unknown_and_unsupported_modes_say_what_to_use() {
        let error = ssl_mode("postgres://db/app?sslmode=verify-ca").unwrap_err();
        assert!(error.contains("verify-full"), "{error}");
        let error = ssl_mode("postgres://db/app?sslmode=always").unwrap_err();
        assert!(error.contains("sslmode=always"), "{error}");
        assert!(plan("postgres://db/app?sslmode=always").is_err());
    }

    #[test]
    fn a_password_that_looks_like_a_mode_is_not_read_as_one() {
        assert_eq!(
            ssl_mode("postgres://u:sslmode=disable@db/app?sslmode=require"),
            Ok(SslMode::Require)
        );
        assert_eq!(
            plan("postgres://u:sslmode=verify-full@db/app?sslmode=verify-full")
                .unwrap()
                .url,
            "postgres://u:sslmode=verify-full@db/app?sslmode=require"
        );
    }

    #[test]
    fn disable_and_unix_sockets_connect_in_plain_text() {
        let plain = |url: &str| plan(url).unwrap().transport;
        assert_eq!(plain("postgres://db/app?sslmode=disable"), Transport::Plain);
        assert_eq!(
            plain("host=/run/postgresql dbname=app sslmode=require"),
            Transport::Plain
        );
        assert_eq!(
            plain("postgres://%2Frun%2Fpostgresql/app?sslmode=require"),
            Transport::Plain
        );
    }

    #[test]
    fn tcp_hosts_encrypt_as_the_mode_asks() {
        let transport = |url: &str| plan(url).unwrap().transport;
        let encrypted = Transport::Tls { verified: false };
        assert_eq!(transport("postgres://db/app"), encrypted);
        assert_eq!(
            transport("postgres://app@roundhouse.proxy.rlwy.net:41234/railway?sslmode=require"),
            encrypted
        );
        assert_eq!(
            transport("postgres://db/app?sslmode=verify-full"),
            Transport::Tls { verified: true }
        );
        // tokio-postgres itself refuses a server without TLS under require.
        let config: tokio_postgres::Config = plan("postgres://db/app?sslmode=require")
            .unwrap()
            .url
            .parse()
            .unwrap();
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
    }

    #[test]
    fn verify_full_reaches_tokio_postgres_as_require() {
        let plan = plan("postgres://db/app?sslmode=verify-full").unwrap();
        assert_eq!(plan.url, "postgres://db/app?sslmode=require");
        let config: tokio_postgres::Config = plan.url.parse().unwrap();
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
    }

    #[test]
    fn both_connectors_build() {
        connector(true);
        connector(false);
    }
}
