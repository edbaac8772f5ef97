//! `type = "http"`: a webhook receiving one message per POST or an NDJSON batch.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{
    check_http_url, check_in_flight, default_max_in_flight, default_timeout_ms, Encoding,
    FieldIssue, RetryConfig, SinkConfig,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpBatching {
    /// One message per request.
    #[default]
    Single,
    /// Up to `max_batch` messages per request, one per line.
    Ndjson,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub url: String,
    #[serde(default)]
    pub batch: HttpBatching,
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Extra request headers (e.g. an Authorization token).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    #[serde(default = "default_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub encoding: Encoding,
}

fn default_max_batch() -> usize {
    100
}

impl SinkConfig for HttpConfig {
    fn kind(&self) -> &'static str {
        "http"
    }
    fn encoding(&self) -> Encoding {
        self.encoding
    }
    fn validate(&self) -> Vec<FieldIssue> {
        let mut v = Vec::new();
        check_http_url("url", &self.url, &mut v);
        if self.max_batch == 0 {
            v.push(FieldIssue::new("max_batch", "must be at least 1"));
        }
        check_in_flight(self.max_in_flight, &mut v);
        self.retry.validate(&mut v);
        v
    }
}
