//! What every sink config shares: the payload encoding, the retry policy,
//! secrets that never print, and the trait the registry returns.

use std::fmt;

use serde::Deserialize;

/// The payload a sink receives (docs/message-format.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Base64 of the notification JSON, as OSS delivers to MNS.
    #[default]
    Base64,
    /// The notification JSON itself.
    Json,
    /// One CloudEvents 1.0 JSON object per event, in the shape Alibaba
    /// Cloud EventBridge gives OSS events (docs/message-format.md).
    CloudEvents,
}

/// Why a sink could not be built from its (valid) config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file the sink needs: its output, a CA bundle.
    #[error("cannot {what} {path}: {cause}")]
    File {
        what: &'static str,
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot read the CA certificates: {}", crate::log_limit::with_sources(.0))]
    Certificates(reqwest::Error),
    #[error("cannot build the HTTP client: {}", crate::log_limit::with_sources(.0))]
    HttpClient(reqwest::Error),
    /// A `credentials_file` that cannot be read or used (the message names
    /// the file and what is wrong).
    #[error("{0}")]
    Credentials(String),
    #[error("cannot create the Kafka producer: {0}")]
    Kafka(rdkafka::error::KafkaError),
}

/// A problem with one field of a sink table, found after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    pub field: &'static str,
    pub message: String,
}

impl FieldIssue {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldIssue {
            field,
            message: message.into(),
        }
    }
}

/// A configured sink.
pub trait SinkConfig: fmt::Debug + Send + Sync {
    /// The registry name (`mns_topic`, …).
    fn kind(&self) -> &'static str;
    fn encoding(&self) -> Encoding;
    /// The CloudEvents `aliyuneventbusname`; `None` means `ossnotify`.
    fn event_bus(&self) -> Option<&str> {
        None
    }
    /// Checks values serde cannot (ranges, URL shapes, lengths).
    fn validate(&self) -> Vec<FieldIssue>;
    /// Whether the sink has a breaker and a backlog (its `Sink::isolation`),
    /// known without building it.
    fn isolated(&self) -> bool {
        false
    }
    /// The sink itself, named `name` (its table key). Needs a tokio runtime.
    fn build(&self, name: &str) -> Result<Box<dyn crate::Sink>, BuildError>;
}

/// A credential: usable by the sink, never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `url` with its user name, password and query values replaced by `***`
/// (webhook tokens travel there): for logs, errors, dead letters, `Debug`.
/// A relative reference (a redirect's `Location: /path?token=…`) stays
/// relative.
pub fn redact_url(url: &str) -> String {
    const BASE: &str = "http://relative.invalid";
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => Some((u, false)),
        Err(_) if !url.contains("://") => reqwest::Url::parse(BASE)
            .and_then(|b| b.join(url))
            .ok()
            .map(|u| (u, true)),
        Err(_) => None,
    };
    let Some((mut u, relative)) = parsed else {
        return "(a URL that does not parse)".to_owned();
    };
    if !u.username().is_empty() {
        let _ = u.set_username("***");
    }
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query().is_some() {
        let keys: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
        u.query_pairs_mut()
            .clear()
            .extend_pairs(keys.iter().map(|k| (k.as_str(), "***")));
    }
    if relative {
        return u.as_str()[BASE.len()..].to_owned();
    }
    u.to_string()
}

/// Whether a librdkafka property holds a credential (`sasl.password`,
/// `ssl.key.password`, `sasl.oauthbearer.client.secret`, …).
pub fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "ssl.key.pem",
        "sasl.oauthbearer.config",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// `Debug` of a property map (librdkafka's, HTTP headers) with the
/// values of credentials hidden; `all` hides every value.
pub struct Redacted<'a> {
    pub map: &'a std::collections::BTreeMap<String, String>,
    pub all: bool,
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.map.iter().map(|(k, v)| {
                let shown = if self.all || is_secret_property(k) {
                    "***"
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}

/// Retries of transient failures, then the dead-letter store (docs/sinks.md):
/// `[sinks.NAME.retry]`, applied by [`crate::retry`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 8,
            initial_backoff_ms: 100,
            max_backoff_ms: 10_000,
        }
    }
}

impl RetryConfig {
    pub fn validate(&self, issues: &mut Vec<FieldIssue>) {
        if self.max_attempts == 0 {
            issues.push(FieldIssue::new("retry.max_attempts", "must be at least 1"));
        }
        if self.initial_backoff_ms == 0 || self.initial_backoff_ms > self.max_backoff_ms {
            issues.push(FieldIssue::new(
                "retry.initial_backoff_ms",
                "must be at least 1 and at most retry.max_backoff_ms",
            ));
        }
    }
}

/// `[sinks.NAME.request]`: how the sink's requests go out (the MNS and
/// `http` sinks).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestConfig {
    /// Requests under way at once, live traffic and redelivery together.
    pub max_in_flight: usize,
    /// One request's deadline, connecting included.
    pub timeout_ms: u64,
}

impl Default for RequestConfig {
    fn default() -> Self {
        RequestConfig {
            max_in_flight: 64,
            timeout_ms: 5_000,
        }
    }
}

impl RequestConfig {
    pub fn validate(&self, issues: &mut Vec<FieldIssue>) {
        if self.max_in_flight == 0 {
            issues.push(FieldIssue::new(
                "request.max_in_flight",
                "must be at least 1",
            ));
        }
        if self.timeout_ms == 0 {
            issues.push(FieldIssue::new("request.timeout_ms", "must be at least 1"));
        }
    }
}

/// A key that moved from a sink's table into one of its nested tables
/// (`max_in_flight` → `[sinks.NAME.request] max_in_flight`). The flat
/// spelling still loads, with a warning naming the new one.
#[derive(Debug, Clone, Copy)]
pub struct Moved {
    pub flat: &'static str,
    pub table: &'static str,
    pub key: &'static str,
}

/// The keys that moved into `[sinks.NAME.request]`.
pub const REQUEST_MOVED: [Moved; 2] = [
    Moved {
        flat: "max_in_flight",
        table: "request",
        key: "max_in_flight",
    },
    Moved {
        flat: "request_timeout_ms",
        table: "request",
        key: "timeout_ms",
    },
];

/// `http://` or `https://` followed by a host.
pub(crate) fn check_http_url(field: &'static str, url: &str, issues: &mut Vec<FieldIssue>) {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => {}
        _ => issues.push(FieldIssue::new(
            field,
            format!("{url:?} is not an http:// or https:// URL"),
        )),
    }
}

/// What every network sink checks alike: its concurrency, retries,
/// breaker and backlog.
pub(crate) fn check_delivery(
    request: &RequestConfig,
    retry: &RetryConfig,
    breaker: &crate::breaker::BreakerConfig,
    backlog: &crate::breaker::BacklogConfig,
    issues: &mut Vec<FieldIssue>,
) {
    request.validate(issues);
    retry.validate(issues);
    check_isolation(breaker, backlog, issues);
}

/// The breaker and backlog tables of a sink that has them.
pub(crate) fn check_isolation(
    breaker: &crate::breaker::BreakerConfig,
    backlog: &crate::breaker::BacklogConfig,
    issues: &mut Vec<FieldIssue>,
) {
    breaker.validate(issues);
    backlog.validate(issues);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_credential_properties_are_redacted() {
        assert_eq!(redact_url("/next?token=t0k"), "/next?token=***");
        assert_eq!(
            redact_url("https://bob:pw0rd@hooks.example.com/x?token=t0k&team=ops"),
            "https://***:***@hooks.example.com/x?token=***&team=***"
        );
        assert_eq!(redact_url("http://h:8080/p"), "http://h:8080/p");
        let mut m = std::collections::BTreeMap::new();
        m.insert("sasl.password".to_owned(), "pw0rd".to_owned());
        m.insert("acks".to_owned(), "all".to_owned());
        let shown = format!(
            "{:?}",
            Redacted {
                map: &m,
                all: false
            }
        );
        assert_eq!(shown, r#"{"acks": "all", "sasl.password": "***"}"#);
    }
}
