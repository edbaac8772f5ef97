//! `[sinks.NAME]` tables of `type = "mns_topic"` and `type = "mns_queue"`.

use serde::Deserialize;

use crate::breaker::{BacklogConfig, BreakerConfig};
use crate::config::{
    check_delivery, check_http_url, Encoding, FieldIssue, Moved, RequestConfig, RetryConfig,
    Secret, SinkConfig, REQUEST_MOVED,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MnsTopicConfig {
    /// `https://{account}.mns.{region}.aliyuncs.com`
    pub endpoint: String,
    pub topic: String,
    #[serde(default)]
    pub access_key_id: String,
    #[serde(default = "no_secret")]
    pub access_key_secret: Secret,
    /// The STS token of temporary credentials (`security-token` header).
    #[serde(default)]
    pub security_token: Option<Secret>,
    /// Short-lived credentials from a file a sidecar rewrites, instead of
    /// the three fields above (see [`super::credentials`]).
    #[serde(default)]
    pub credentials_file: Option<std::path::PathBuf>,
    /// Extra CA certificates (PEM) to trust, besides the system's.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// `<MessageTag>`, at most 16 characters.
    #[serde(default)]
    pub message_tag: Option<String>,
    #[serde(default)]
    pub request: RequestConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub breaker: BreakerConfig,
    #[serde(default)]
    pub backlog: BacklogConfig,
    #[serde(default)]
    pub encoding: Encoding,
    /// `aliyuneventbusname` with `encoding = "cloudevents"`.
    #[serde(default)]
    pub event_bus: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MnsQueueConfig {
    pub endpoint: String,
    pub queue: String,
    #[serde(default)]
    pub access_key_id: String,
    #[serde(default = "no_secret")]
    pub access_key_secret: Secret,
    /// The STS token of temporary credentials (`security-token` header).
    #[serde(default)]
    pub security_token: Option<Secret>,
    /// Short-lived credentials from a file a sidecar rewrites, instead of
    /// the three fields above (see [`super::credentials`]).
    #[serde(default)]
    pub credentials_file: Option<std::path::PathBuf>,
    /// Extra CA certificates (PEM) to trust, besides the system's.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub batch: QueueBatch,
    #[serde(default)]
    pub delay_seconds: Option<u32>,
    #[serde(default)]
    pub priority: Option<u32>,
    #[serde(default)]
    pub request: RequestConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub breaker: BreakerConfig,
    #[serde(default)]
    pub backlog: BacklogConfig,
    #[serde(default)]
    pub encoding: Encoding,
    /// `aliyuneventbusname` with `encoding = "cloudevents"`.
    #[serde(default)]
    pub event_bus: Option<String>,
}

/// `[sinks.NAME.batch]` of an `mns_queue` sink.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueBatch {
    /// Messages per request, 1..=16; 1 means SendMessage.
    pub max_messages: usize,
    /// How long a batch may wait to fill while the sink is busy.
    pub linger_ms: u64,
}

impl Default for QueueBatch {
    fn default() -> Self {
        QueueBatch {
            max_messages: 16,
            linger_ms: 5,
        }
    }
}

/// The keys of an `mns_queue` table that moved into nested tables.
pub const QUEUE_MOVED: [Moved; 4] = [
    REQUEST_MOVED[0],
    REQUEST_MOVED[1],
    Moved {
        flat: "batch_size",
        table: "batch",
        key: "max_messages",
    },
    Moved {
        flat: "linger_ms",
        table: "batch",
        key: "linger_ms",
    },
];

/// MNS names: a letter, then letters, digits and hyphens, 1 to 256 in all.
fn check_name(field: &'static str, name: &str, issues: &mut Vec<FieldIssue>) {
    let ok = (1..=256).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !ok {
        issues.push(FieldIssue::new(
            field,
            format!(
                "{name:?} is not an MNS name (a letter, then letters, digits or '-', at most 256)"
            ),
        ));
    }
}

fn no_secret() -> Secret {
    Secret::from(String::new())
}

/// The credentials of a sink: fixed (an AccessKey, with its STS token if
/// temporary) or from `credentials_file`.
pub(super) fn credentials_of(
    key_id: &str,
    secret: &Secret,
    token: &Option<Secret>,
    file: &Option<std::path::PathBuf>,
) -> Result<super::credentials::Source, crate::config::BuildError> {
    use super::credentials::{Credentials, FileSource, Source};
    Ok(match file {
        Some(path) => Source::File(std::sync::Arc::new(
            FileSource::open(path).map_err(crate::config::BuildError::Credentials)?,
        )),
        None => Source::Fixed(std::sync::Arc::new(Credentials {
            key_id: key_id.to_owned(),
            secret: secret.clone(),
            token: token.clone(),
        })),
    })
}

/// What both MNS sinks need to reach MNS, borrowed from their configs.
pub(super) struct Connection<'a> {
    pub endpoint: &'a str,
    pub access_key_id: &'a str,
    pub access_key_secret: &'a Secret,
    pub security_token: &'a Option<Secret>,
    pub credentials_file: &'a Option<std::path::PathBuf>,
    pub ca_file: Option<&'a std::path::Path>,
    pub request_timeout_ms: u64,
}

macro_rules! connection_of {
    ($c:expr) => {
        Connection {
            endpoint: &$c.endpoint,
            access_key_id: &$c.access_key_id,
            access_key_secret: &$c.access_key_secret,
            security_token: &$c.security_token,
            credentials_file: &$c.credentials_file,
            ca_file: $c.ca_file.as_deref(),
            request_timeout_ms: $c.request.timeout_ms,
        }
    };
}

impl MnsTopicConfig {
    pub(super) fn connection(&self) -> Connection<'_> {
        connection_of!(self)
    }
}

impl MnsQueueConfig {
    pub(super) fn connection(&self) -> Connection<'_> {
        connection_of!(self)
    }
}

fn check_common(c: &Connection<'_>, issues: &mut Vec<FieldIssue>) {
    let (endpoint, key_id, secret, file) = (
        c.endpoint,
        c.access_key_id,
        c.access_key_secret,
        c.credentials_file,
    );
    check_http_url("endpoint", endpoint, issues);
    if file.is_some() {
        if !key_id.is_empty() || !secret.expose().is_empty() {
            issues.push(FieldIssue::new(
                "credentials_file",
                "takes the place of access_key_id and access_key_secret: set one or the other",
            ));
        }
        return;
    }
    if key_id.is_empty() {
        issues.push(FieldIssue::new(
            "access_key_id",
            "is empty (or set credentials_file)",
        ));
    }
    if secret.expose().is_empty() {
        issues.push(FieldIssue::new(
            "access_key_secret",
            "is empty (or set credentials_file)",
        ));
    }
}

impl SinkConfig for MnsTopicConfig {
    fn isolated(&self) -> bool {
        self.breaker.enabled
    }
    fn build(&self, name: &str) -> Result<Box<dyn crate::Sink>, crate::config::BuildError> {
        Ok(Box::new(super::sink::MnsTopicSink::new(name, self)?))
    }
    fn kind(&self) -> &'static str {
        "mns_topic"
    }
    fn encoding(&self) -> Encoding {
        self.encoding
    }
    fn event_bus(&self) -> Option<&str> {
        self.event_bus.as_deref()
    }
    fn validate(&self) -> Vec<FieldIssue> {
        let mut v = Vec::new();
        check_common(&self.connection(), &mut v);
        check_name("topic", &self.topic, &mut v);
        if let Some(tag) = &self.message_tag {
            if tag.is_empty() || tag.chars().count() > 16 {
                v.push(FieldIssue::new("message_tag", "must be 1 to 16 characters"));
            }
        }
        check_delivery(
            &self.request,
            &self.retry,
            &self.breaker,
            &self.backlog,
            &mut v,
        );
        v
    }
}

impl SinkConfig for MnsQueueConfig {
    fn isolated(&self) -> bool {
        self.breaker.enabled
    }
    fn build(&self, name: &str) -> Result<Box<dyn crate::Sink>, crate::config::BuildError> {
        Ok(Box::new(super::sink::MnsQueueSink::new(name, self)?))
    }
    fn kind(&self) -> &'static str {
        "mns_queue"
    }
    fn encoding(&self) -> Encoding {
        self.encoding
    }
    fn event_bus(&self) -> Option<&str> {
        self.event_bus.as_deref()
    }
    fn validate(&self) -> Vec<FieldIssue> {
        let mut v = Vec::new();
        check_common(&self.connection(), &mut v);
        check_name("queue", &self.queue, &mut v);
        if !(1..=16).contains(&self.batch.max_messages) {
            v.push(FieldIssue::new(
                "batch.max_messages",
                "must be 1 to 16 (MNS's batch limit)",
            ));
        }
        if self.delay_seconds.is_some_and(|d| d > 604_800) {
            v.push(FieldIssue::new("delay_seconds", "must be 0 to 604800"));
        }
        if self.priority.is_some_and(|p| !(1..=16).contains(&p)) {
            v.push(FieldIssue::new("priority", "must be 1 to 16"));
        }
        check_delivery(
            &self.request,
            &self.retry,
            &self.breaker,
            &self.backlog,
            &mut v,
        );
        v
    }
}
