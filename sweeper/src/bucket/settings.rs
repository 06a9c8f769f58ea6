//! Where a bucket is and how to reach it: `FILEGC_STORAGE=s3://bucket/prefix/`,
//! with the endpoint and credentials in the variables Railway or AWS provide.

use std::fmt;
use std::num::NonZeroU32;

use filegc_path_rules::{validate_relative, InvalidReason};
use thiserror::Error;
use url::Url;

/// The bucket and the folder within it that filegc manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLocation {
    /// The bucket's name.
    pub bucket: String,
    /// The folder: empty for the whole bucket, else ending with `/`, so that
    /// `images/` never takes in `images2/`.
    pub prefix: String,
}

impl fmt::Display for BucketLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// How a request names the bucket: in the host name (`bucket.endpoint`) or in the path (`endpoint/bucket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `https://bucket.storage.example/key`: AWS, and Railway's newer buckets.
    VirtualHosted,
    /// `https://storage.example/bucket/key`: older buckets and local servers.
    Path,
}

/// Everything needed to reach a bucket, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct BucketSettings {
    /// The bucket and prefix.
    pub location: BucketLocation,
    /// The S3 endpoint: Railway's `ENDPOINT`, or AWS's regional one.
    pub endpoint: Url,
    /// The signing region (`auto` on Railway and R2).
    pub region: String,
    /// How requests name the bucket.
    pub addressing: Addressing,
    /// The access key's id.
    pub access_key_id: String,
    /// The access key's secret; kept out of `Debug`.
    pub secret_access_key: String,
    /// A session token, for temporary AWS credentials.
    pub session_token: Option<String>,
    /// The byte budget the alert levels measure the bucket against; `None`: no levels.
    pub budget_bytes: Option<u64>,
    /// At most this many requests a second (`FILEGC_S3_REQUESTS_PER_SECOND`); `None`: no limit.
    pub requests_per_second: Option<NonZeroU32>,
}

impl fmt::Debug for BucketSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketSettings")
            .field("location", &self.location)
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("addressing", &self.addressing)
            .field("access_key_id", &self.access_key_id)
            .field("budget_bytes", &self.budget_bytes)
            .field("requests_per_second", &self.requests_per_second)
            .finish_non_exhaustive()
    }
}

/// Why the bucket's settings cannot be used; the run stops before any request.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BucketSettingsError {
    /// The storage URL is not `s3://bucket/prefix/`.
    #[error("FILEGC_STORAGE={value:?}: {reason} (give s3://BUCKET/PREFIX/, like s3://my-bucket/facial_evaluations/)")]
    Url {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The prefix is not a plain folder path.
    #[error("FILEGC_STORAGE={value:?}: the prefix is refused: {reason} (give a folder like facial_evaluations/, or none for the whole bucket)")]
    Prefix {
        /// The value given.
        value: String,
        /// What is wrong with the prefix.
        reason: InvalidReason,
    },
    /// No credentials, or half of them.
    #[error("no credentials for the bucket: set ACCESS_KEY_ID and SECRET_ACCESS_KEY (the variables of a Railway bucket) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY{found}")]
    Credentials {
        /// What was found, when something was.
        found: String,
    },
    /// The endpoint is not an `http://` or `https://` URL with a host.
    #[error("{variable}={value:?} is not an S3 endpoint: give a URL like https://storage.railway.app (http:// only for a server on a trusted network)")]
    Endpoint {
        /// The variable that gave it.
        variable: &'static str,
        /// The value given.
        value: String,
    },
    /// `FILEGC_S3_REQUESTS_PER_SECOND` is not a whole number from 1 up.
    #[error("FILEGC_S3_REQUESTS_PER_SECOND={value:?}: give the most requests a second the bucket may get, a whole number such as 50 (unset: no limit)")]
    RequestRate {
        /// The value given.
        value: String,
    },
    /// `FILEGC_S3_ADDRESSING` is neither `path` nor `virtual`.
    #[error("FILEGC_S3_ADDRESSING={value:?}: use path (https://endpoint/bucket/key) or virtual (https://bucket.endpoint/key)")]
    Addressing {
        /// The value given.
        value: String,
    },
}

/// The region AWS's SDKs assume when none is set.
const DEFAULT_AWS_REGION: &str = "us-east-1";

impl BucketSettings {
    /// Reads the settings of the bucket `storage` names from the variables
    /// `variable` looks up (the process's environment, in the binary).
    ///
    /// The endpoint, region and credentials come as a whole from Railway's
    /// bucket variables (`ENDPOINT`, `REGION`, `ACCESS_KEY_ID`,
    /// `SECRET_ACCESS_KEY`) when `ACCESS_KEY_ID` is set, else from AWS's
    /// (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, `AWS_REGION` or
    /// `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`): a key of one with the secret of the other would
    /// be a mistake, never meant. Credentials are never looked up anywhere
    /// else (no instance metadata, which a container would wait on).
    pub fn from_variables(
        storage: &str,
        variable: impl Fn(&str) -> Option<String>,
    ) -> Result<BucketSettings, BucketSettingsError> {
        let location = parse_location(storage)?;
        let railway = variable("ACCESS_KEY_ID").is_some();
        let (key_name, secret_name) = if railway {
            ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY")
        } else {
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        };
        let (access_key_id, secret_access_key) = match (variable(key_name), variable(secret_name)) {
            (Some(key), Some(secret)) => (key, secret),
            (Some(_), None) => {
                return Err(BucketSettingsError::Credentials {
                    found: format!(" ({key_name} is set, {secret_name} is not)"),
                })
            }
            (None, Some(_)) => {
                return Err(BucketSettingsError::Credentials {
                    found: format!(" ({secret_name} is set, {key_name} is not)"),
                })
            }
            (None, None) => {
                return Err(BucketSettingsError::Credentials {
                    found: String::new(),
                })
            }
        };
        let region = if railway {
            variable("REGION")
        } else {
            variable("AWS_REGION").or_else(|| variable("AWS_DEFAULT_REGION"))
        }
        .unwrap_or_else(|| DEFAULT_AWS_REGION.to_owned());
        let endpoint_variable = if railway {
            ["ENDPOINT"].iter()
        } else {
            ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].iter()
        }
        .find_map(|name| variable(name).map(|value| (*name, value)));
        let endpoint = match endpoint_variable {
            Some((name, value)) => parse_endpoint(name, &value)?,
            None => aws_endpoint(&region).map_err(|_| BucketSettingsError::Endpoint {
                variable: "AWS_REGION",
                value: region.clone(),
            })?,
        };
        let addressing = match variable("FILEGC_S3_ADDRESSING") {
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "path" => Addressing::Path,
                "virtual" => Addressing::VirtualHosted,
                _ => return Err(BucketSettingsError::Addressing { value }),
            },
            None => default_addressing(&endpoint),
        };
        let requests_per_second = match variable("FILEGC_S3_REQUESTS_PER_SECOND") {
            Some(value) => Some(
                value
                    .trim()
                    .parse()
                    .map_err(|_| BucketSettingsError::RequestRate { value })?,
            ),
            None => None,
        };
        Ok(BucketSettings {
            location,
            endpoint,
            region,
            addressing,
            access_key_id,
            secret_access_key,
            session_token: if railway {
                None
            } else {
                variable("AWS_SESSION_TOKEN")
            },
            budget_bytes: None,
            requests_per_second,
        })
    }
}

/// Reads `s3://bucket/prefix`; the prefix gets its trailing `/`.
pub fn parse_location(value: &str) -> Result<BucketLocation, BucketSettingsError> {
    let url_error = |reason: &str| BucketSettingsError::Url {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = value
        .strip_prefix("s3://")
        .ok_or_else(|| url_error("only s3:// URLs name a bucket"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if !is_bucket_name(bucket) {
        return Err(url_error(
            "the bucket's name must be 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit",
        ));
    }
    let folder = prefix.strip_suffix('/').unwrap_or(prefix);
    if folder.is_empty() {
        if !prefix.is_empty() {
            return Err(BucketSettingsError::Prefix {
                value: value.to_owned(),
                reason: InvalidReason::DotOrEmptySegment,
            });
        }
        return Ok(BucketLocation {
            bucket: bucket.to_owned(),
            prefix: String::new(),
        });
    }
    validate_relative(folder).map_err(|reason| BucketSettingsError::Prefix {
        value: value.to_owned(),
        reason,
    })?;
    Ok(BucketLocation {
        bucket: bucket.to_owned(),
        prefix: format!("{folder}/"),
    })
}

/// S3's rule for bucket names, which every compatible service follows.
fn is_bucket_name(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.chars().all(allowed)
        && edge(name.chars().next())
        && edge(name.chars().last())
}

fn parse_endpoint(variable: &'static str, value: &str) -> Result<Url, BucketSettingsError> {
    let error = || BucketSettingsError::Endpoint {
        variable,
        value: value.to_owned(),
    };
    let url = Url::parse(value.trim()).map_err(|_| error())?;
    let plain = url.query().is_none() && url.fragment().is_none() && url.username().is_empty();
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || !plain {
        return Err(error());
    }
    Ok(url)
}

fn aws_endpoint(region: &str) -> Result<Url, url::ParseError> {
    Url::parse(&format!("https://s3.{region}.amazonaws.com"))
}

/// Virtual-hosted for a named HTTPS host (AWS, Railway's newer buckets);
/// path-style for an IP address, `localhost` or plain HTTP, where a bucket
/// cannot be a subdomain.
fn default_addressing(endpoint: &Url) -> Addressing {
    let named_host =
        matches!(endpoint.host(), Some(url::Host::Domain(host)) if host != "localhost");
    if endpoint.scheme() == "https" && named_host {
        Addressing::VirtualHosted
    } else {
        Addressing::Path
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(
        storage: &str,
        variables: &[(&str, &str)],
    ) -> Result<BucketSettings, BucketSettingsError> {
        let variables: HashMap<String, String> = variables
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        BucketSettings::from_variables(storage, |name| variables.get(name).cloned())
    }

    const RAILWAY: &[(&str, &str)] = &[
        ("ACCESS_KEY_ID", "tid_key"),
        ("SECRET_ACCESS_KEY", "tsec_secret"),
        ("REGION", "auto"),
        ("ENDPOINT", "https://storage.railway.app"),
    ];

    #[test]
    fn the_prefix_always_ends_with_a_slash() {
        for (given, prefix) in [
            ("s3://my-bucket/facial_evaluations", "facial_evaluations/"),
            ("s3://my-bucket/facial_evaluations/", "facial_evaluations/"),
            ("s3://my-bucket/app/images", "app/images/"),
            ("s3://my-bucket", ""),
            ("s3://my-bucket/", ""),
        ] {
            let location = parse_location(given).unwrap();
            assert_eq!(location.bucket, "my-bucket");
            assert_eq!(location.prefix, prefix, "{given}");
        }
    }

    #[test]
    fn a_prefix_that_is_not_a_plain_folder_is_refused() {
        for given in [
            "s3://my-bucket//images/",
            "s3://my-bucket/images//x/",
            "s3://my-bucket/../images/",
            "s3://my-bucket/./images/",
            "s3://my-bucket/images\\x/",
            "s3://my-bucket//",
        ] {
            let error = parse_location(given).unwrap_err();
            assert!(
                matches!(error, BucketSettingsError::Prefix { .. }),
                "{given}: {error:?}"
            );
        }
    }

    #[test]
    fn only_s3_urls_with_a_valid_bucket_name_are_taken() {
        for given in [
            "/app/facial_evaluations",
            "https://my-bucket/images/",
            "s3://",
            "s3://ab/",
            "s3://My-Bucket/images/",
            "s3://-bucket/images/",
            "s3://bucket_name/images/",
        ] {
            let error = parse_location(given).unwrap_err();
            assert!(
                matches!(error, BucketSettingsError::Url { .. }),
                "{given}: {error:?}"
            );
            assert!(error.to_string().contains("s3://BUCKET/PREFIX/"), "{error}");
        }
    }

    #[test]
    fn railways_bucket_variables_are_read_as_railway_sets_them() {
        let settings = settings("s3://my-bucket/images/", RAILWAY).unwrap();
        assert_eq!(settings.endpoint.as_str(), "https://storage.railway.app/");
        assert_eq!(settings.region, "auto");
        assert_eq!(settings.access_key_id, "tid_key");
        assert_eq!(settings.secret_access_key, "tsec_secret");
        assert_eq!(settings.addressing, Addressing::VirtualHosted);
        assert!(!format!("{settings:?}").contains("tsec_secret"));
    }

    #[test]
    fn aws_variables_are_read_when_railways_are_absent() {
        let settings = settings(
            "s3://my-bucket/images/",
            &[
                ("AWS_ACCESS_KEY_ID", "AKIA"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
                ("AWS_SESSION_TOKEN", "token"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
            ],
        )
        .unwrap();
        assert_eq!(
            settings.endpoint.as_str(),
            "https://s3.eu-west-1.amazonaws.com/"
        );
        assert_eq!(settings.region, "eu-west-1");
        assert_eq!(settings.session_token.as_deref(), Some("token"));
        assert_eq!(settings.addressing, Addressing::VirtualHosted);
    }

    #[test]
    fn credentials_are_never_mixed_between_railway_and_aws() {
        let error = settings(
            "s3://my-bucket/images/",
            &[
                ("ACCESS_KEY_ID", "tid_key"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
            ],
        )
        .unwrap_err();
        assert_eq!(
            error,
            BucketSettingsError::Credentials {
                found: " (ACCESS_KEY_ID is set, SECRET_ACCESS_KEY is not)".to_owned()
            }
        );
        let none = settings("s3://my-bucket/images/", &[]).unwrap_err();
        for name in ["ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"] {
            assert!(none.to_string().contains(name), "{none}");
        }
    }

    #[test]
    fn a_local_http_server_gets_path_style_requests() {
        let mut local = RAILWAY.to_vec();
        local.retain(|(name, _)| *name != "ENDPOINT");
        local.push(("ENDPOINT", "http://127.0.0.1:5000"));
        let settings = settings("s3://my-bucket/images/", &local).unwrap();
        assert_eq!(settings.endpoint.scheme(), "http");
        assert_eq!(settings.addressing, Addressing::Path);
    }

    #[test]
    fn a_request_rate_is_a_whole_number_from_one_up() {
        let with_rate = |rate: &str| {
            let mut variables = RAILWAY.to_vec();
            variables.push(("FILEGC_S3_REQUESTS_PER_SECOND", rate));
            settings("s3://my-bucket/images/", &variables)
        };
        assert_eq!(
            with_rate(" 50 ").unwrap().requests_per_second,
            NonZeroU32::new(50)
        );
        for refused in ["0", "-1", "2.5", "fast", ""] {
            assert_eq!(
                with_rate(refused).unwrap_err(),
                BucketSettingsError::RequestRate {
                    value: refused.to_owned()
                },
                "{refused:?}"
            );
        }
        let unlimited = settings("s3://my-bucket/images/", RAILWAY).unwrap();
        assert_eq!(unlimited.requests_per_second, None);
    }

    #[test]
    fn the_addressing_can_be_chosen_and_a_typo_is_refused() {
        let mut older = RAILWAY.to_vec();
        older.push(("FILEGC_S3_ADDRESSING", "path"));
        assert_eq!(
            settings("s3://my-bucket/", &older).unwrap().addressing,
            Addressing::Path
        );
        let mut typo = RAILWAY.to_vec();
        typo.push(("FILEGC_S3_ADDRESSING", "pth"));
        assert!(matches!(
            settings("s3://my-bucket/", &typo).unwrap_err(),
            BucketSettingsError::Addressing { .. }
        ));
    }

    #[test]
    fn an_endpoint_that_is_not_a_plain_http_url_is_refused() {
        for endpoint in [
            "storage.railway.app",
            "ftp://host",
            "https://user@host",
            "https://host/?x=1",
        ] {
            let mut variables = RAILWAY.to_vec();
            variables.retain(|(name, _)| *name != "ENDPOINT");
            variables.push(("ENDPOINT", endpoint));
            let error = settings("s3://my-bucket/", &variables).unwrap_err();
            assert!(
                matches!(
                    error,
                    BucketSettingsError::Endpoint {
                        variable: "ENDPOINT",
                        ..
                    }
                ),
                "{endpoint}: {error:?}"
            );
        }
    }
}
