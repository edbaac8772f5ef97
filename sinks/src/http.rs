//! `type = "http"`: a webhook receiving one message per POST or an NDJSON batch.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::breaker::{BacklogConfig, BreakerConfig, Isolation};
pub use crate::cloudevents_binding::CloudEventsMode;
use crate::cloudevents_binding::{BinaryEvent, STRUCTURED_CONTENT_TYPE};
use crate::config::{
    check_delivery, check_http_url, redact_url, Encoding, FieldIssue, Moved, RequestConfig,
    RetryConfig, SinkConfig, REQUEST_MOVED,
};
use crate::retry::{retry, status_class, Class, Classify};
use crate::sink::{Delivery, Envelope, Outcome, Sink};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpBatching {
    /// One message per request.
    #[default]
    Single,
    /// Up to `batch.max_messages` messages per request, one per line.
    Ndjson,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub url: String,
    #[serde(default)]
    pub batch: HttpBatch,
    /// Extra request headers (e.g. an Authorization token).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
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
    /// With `encoding = "cloudevents"`: structured or binary content mode.
    #[serde(default)]
    pub cloudevents_mode: CloudEventsMode,
    /// `aliyuneventbusname` with `encoding = "cloudevents"`.
    #[serde(default)]
    pub event_bus: Option<String>,
    /// A URL the probe GETs before traffic (with the sink's headers): 401,
    /// 403 and 404 refuse the start. Without it the probe only connects.
    #[serde(default)]
    pub health_url: Option<String>,
}

/// `[sinks.NAME.batch]` of an `http` sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpBatch {
    pub mode: HttpBatching,
    /// Messages per request with `mode = "ndjson"`.
    pub max_messages: usize,
}

impl Default for HttpBatch {
    fn default() -> Self {
        HttpBatch {
            mode: HttpBatching::Single,
            max_messages: 100,
        }
    }
}

/// The keys of an `http` table that moved into nested tables (`batch`, a
/// string, became `batch.mode`).
pub const HTTP_MOVED: [Moved; 4] = [
    Moved {
        flat: "batch",
        table: "batch",
        key: "mode",
    },
    Moved {
        flat: "max_batch",
        table: "batch",
        key: "max_messages",
    },
    REQUEST_MOVED[0],
    REQUEST_MOVED[1],
];

impl SinkConfig for HttpConfig {
    fn kind(&self) -> &'static str {
        "http"
    }
    fn encoding(&self) -> Encoding {
        self.encoding
    }
    fn event_bus(&self) -> Option<&str> {
        self.event_bus.as_deref()
    }
    fn build(&self, name: &str) -> Result<Box<dyn Sink>, crate::config::BuildError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(self.request.timeout_ms))
            // A 301/302/303 turns a POST into a GET without its body, whose
            // 2xx would count as delivered: only 307 and 308 (which keep the
            // method and the body) are followed; any other 3xx comes back
            // and is a permanent failure naming its Location.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let keeps_body = matches!(attempt.status().as_u16(), 307 | 308);
                if keeps_body && attempt.previous().len() < 10 {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .build()
            .map_err(crate::config::BuildError::HttpClient)?;
        Ok(Box::new(HttpSink {
            name: name.to_owned(),
            http,
            cfg: self.clone(),
            isolation: Isolation::new(name, &self.breaker, &self.backlog),
        }))
    }
    fn isolated(&self) -> bool {
        self.breaker.enabled
    }
    fn validate(&self) -> Vec<FieldIssue> {
        let mut v = Vec::new();
        check_http_url("url", &self.url, &mut v);
        if let Some(u) = &self.health_url {
            check_http_url("health_url", u, &mut v);
        }
        if self.batch.max_messages == 0 {
            v.push(FieldIssue::new("batch.max_messages", "must be at least 1"));
        }
        check_delivery(
            &self.request,
            &self.retry,
            &self.breaker,
            &self.backlog,
            &mut v,
        );
        crate::cloudevents_binding::check_mode(self.cloudevents_mode, self.encoding, &mut v);
        if self.cloudevents_mode == CloudEventsMode::Binary
            && self.batch.mode != HttpBatching::Single
        {
            v.push(FieldIssue::new(
                "cloudevents_mode",
                "\"binary\" sends one event per request: it needs batch.mode = \"single\"",
            ));
        }
        v
    }
}

/// Credentials in the URL and every header value are hidden.
impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("url", &redact_url(&self.url))
            .field("batch", &self.batch)
            .field(
                "headers",
                &crate::config::Redacted {
                    map: &self.headers,
                    all: true,
                },
            )
            .field("request", &self.request)
            .field("retry", &self.retry)
            .field("encoding", &self.encoding)
            .field("cloudevents_mode", &self.cloudevents_mode)
            .field("event_bus", &self.event_bus)
            .field("health_url", &self.health_url.as_deref().map(redact_url))
            .finish()
    }
}

impl HttpConfig {
    fn content_type(&self) -> &'static str {
        match (self.batch.mode, self.encoding) {
            (HttpBatching::Ndjson, _) => "application/x-ndjson",
            (HttpBatching::Single, Encoding::Json) => "application/json",
            (HttpBatching::Single, Encoding::Base64) => "text/plain",
            (HttpBatching::Single, Encoding::CloudEvents) => STRUCTURED_CONTENT_TYPE,
        }
    }
}

pub struct HttpSink {
    name: String,
    http: reqwest::Client,
    cfg: HttpConfig,
    isolation: Option<Isolation>,
}

/// Why one POST failed: its class for [`crate::retry`], and the error.
#[derive(Debug, Clone)]
struct PostFailure {
    class: Class,
    error: String,
}

impl std::fmt::Display for PostFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)
    }
}

impl Classify for PostFailure {
    fn class(&self) -> Class {
        self.class
    }
}

impl HttpSink {
    /// One POST, one attempt.
    async fn post(&self, body: &str) -> Result<(), PostFailure> {
        let binary = match self.cfg.cloudevents_mode {
            CloudEventsMode::Binary => Some(BinaryEvent::from_structured(body).map_err(
                |error| PostFailure {
                    class: Class::Permanent,
                    error,
                },
            )?),
            CloudEventsMode::Structured => None,
        };
        let mut req = self.http.post(&self.cfg.url);
        req = match &binary {
            Some(ev) => {
                let mut req = req
                    .header("Content-Type", &ev.content_type)
                    .body(ev.data.to_owned());
                for (k, v) in ev.http_headers() {
                    req = req.header(k, v);
                }
                req
            }
            None => req
                .header("Content-Type", self.cfg.content_type())
                .body(body.to_owned()),
        };
        for (k, v) in &self.cfg.headers {
            req = req.header(k, v);
        }
        let res = match req.send().await {
            Ok(res) => res,
            // reqwest's errors quote the URL, which may hold a token.
            Err(e) => {
                return Err(PostFailure {
                    class: Class::Retry,
                    error: format!(
                        "network: {}",
                        crate::log_limit::with_sources(&e.without_url())
                    ),
                })
            }
        };
        let status = res.status().as_u16();
        if res.status().is_success() {
            return Ok(());
        }
        if res.status().is_redirection() {
            let location = res
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("(none)");
            return Err(PostFailure {
                class: Class::Permanent,
                error: format!(
                    "HTTP {status}: a redirect is not a delivery (only 307 and 308 are followed); Location: {}",
                    redact_url(location)
                ),
            });
        }
        let text: String = res
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        Err(PostFailure {
            class: status_class(status),
            error: format!("HTTP {status}: {text}"),
        })
    }
}

impl Sink for HttpSink {
    fn name(&self) -> &str {
        &self.name
    }

    /// A GET of `health_url` when set (401, 403, 404 are final); else a
    /// connection to the URL's host.
    fn probe(&self) -> crate::sink::Probe<'_> {
        use crate::sink::ProbeFailure;
        Box::pin(async move {
            let transient = |answer: String| ProbeFailure {
                permanent: false,
                answer,
            };
            if let Some(health) = &self.cfg.health_url {
                let mut req = self.http.get(health);
                for (k, v) in &self.cfg.headers {
                    req = req.header(k, v);
                }
                let res = req.send().await.map_err(|e| {
                    transient(format!(
                        "network: {}",
                        crate::log_limit::with_sources(&e.without_url())
                    ))
                })?;
                let status = res.status().as_u16();
                return match status {
                    200..=299 => Ok(()),
                    401 | 403 | 404 => Err(ProbeFailure {
                        permanent: true,
                        answer: format!("HTTP {status} from health_url"),
                    }),
                    _ => Err(transient(format!("HTTP {status} from health_url"))),
                };
            }
            let url = reqwest::Url::parse(&self.cfg.url).map_err(|e| ProbeFailure {
                permanent: true,
                answer: format!("url: {e}"),
            })?;
            let host = url.host_str().unwrap_or_default().to_owned();
            let port = url.port_or_known_default().unwrap_or(80);
            let timeout = std::time::Duration::from_millis(self.cfg.request.timeout_ms);
            match tokio::time::timeout(
                timeout,
                tokio::net::TcpStream::connect((host.as_str(), port)),
            )
            .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(transient(format!("network: {host}:{port}: {e}"))),
                Err(_) => Err(transient(format!(
                    "network: {host}:{port}: no connection within {} ms",
                    timeout.as_millis()
                ))),
            }
        })
    }

    fn max_batch(&self) -> usize {
        match self.cfg.batch.mode {
            HttpBatching::Single => 1,
            HttpBatching::Ndjson => self.cfg.batch.max_messages,
        }
    }

    fn max_in_flight(&self) -> usize {
        self.cfg.request.max_in_flight
    }

    fn isolation(&self) -> Option<Isolation> {
        self.isolation.clone()
    }

    fn deliver<'a>(&'a self, batch: &'a [Envelope]) -> Delivery<'a> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(batch.len());
            for group in batch.chunks(self.max_batch().max(1)) {
                let body = group
                    .iter()
                    .map(|e| e.payload.as_str())
                    .collect::<Vec<_>>()
                    .join("\n");
                let breaker = self.isolation.as_ref().map(|i| &*i.breaker);
                let posted = retry(&self.cfg.retry, &self.name, breaker, || self.post(&body)).await;
                let outcome = match posted {
                    Ok(()) => Outcome::Delivered,
                    Err((f, attempts)) => Outcome::of_failure(f.class, f.error, attempts),
                };
                out.extend(std::iter::repeat_n(outcome, group.len()));
            }
            out
        })
    }
}
