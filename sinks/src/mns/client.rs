//! One MNS endpoint over HTTP(S) with keep-alive: signs each attempt afresh,
//! sends PublishMessage / SendMessage / BatchSendMessage, checks the
//! returned `MessageBodyMD5`, and classes failures for [`crate::retry`]
//! through MNS's one table of error codes.

use crate::config::BuildError;
use std::time::{Duration, SystemTime};

use super::sign::{self, SignedParts, CONTENT_TYPE, MNS_VERSION};
use super::xml::{self, BatchEntry, OutMessage, Response};
use crate::config::RetryConfig;
use crate::config::Secret;
use crate::retry::{self, status_class, Class, Classify};

/// Why an attempt failed, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth another attempt (network, timeout, 5xx, `TimeExpired`).
    Transient { code: String, message: String },
    /// MNS asked us to slow down: retry, backing off harder.
    Throttled { code: String },
    /// Will never succeed (bad credentials, no such topic/queue, bad request,
    /// a message over 64 KB): straight to the dead-letter store.
    Permanent {
        code: String,
        message: String,
        request_id: String,
    },
}

impl Failure {
    pub fn code(&self) -> &str {
        match self {
            Failure::Transient { code, .. }
            | Failure::Throttled { code }
            | Failure::Permanent { code, .. } => code,
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, Failure::Permanent { .. })
    }
}

impl Classify for Failure {
    fn class(&self) -> Class {
        match self {
            Failure::Transient { .. } => Class::Retry,
            Failure::Throttled { .. } => Class::Throttle,
            Failure::Permanent { .. } => Class::Permanent,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transient { code, message } => write!(f, "{code}: {message}"),
            Failure::Throttled { code } => write!(f, "{code}: throttled"),
            Failure::Permanent {
                code,
                message,
                request_id,
            } => {
                write!(f, "{code}: {message} (request id {request_id})")
            }
        }
    }
}

/// MNS's error codes and their class: the one table, for whole answers and
/// for the entries of a partly failed batch alike. A code not listed is
/// classed by the HTTP status ([`status_class`]).
const CODES: &[(&str, Class)] = &[
    ("QpsLimitExceeded", Class::Throttle),
    ("InternalError", Class::Retry),
    ("InternalServerError", Class::Retry),
    ("ServiceUnavailable", Class::Retry),
    // Re-signed with a fresh Date on the retry.
    ("TimeExpired", Class::Retry),
    ("SignatureDoesNotMatch", Class::Permanent),
    ("InvalidAccessKeyId", Class::Permanent),
    ("AccessDenied", Class::Permanent),
    ("TopicNotExist", Class::Permanent),
    ("QueueNotExist", Class::Permanent),
    ("MalformedXML", Class::Permanent),
    ("InvalidArgument", Class::Permanent),
    ("MessageTooLarge", Class::Permanent),
];

/// Classifies an MNS error answer: by its code, else by its status.
fn classify(status: u16, code: String, message: String, request_id: String) -> Failure {
    let class = CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| status_class(status), |(_, class)| *class);
    match class {
        Class::Throttle => Failure::Throttled { code },
        Class::Retry => Failure::Transient { code, message },
        Class::Permanent => Failure::Permanent {
            code,
            message,
            request_id,
        },
    }
}

/// An HTTP answer's status and body read as MNS's: the parsed answer, or
/// the failure it reports, classed by its code, else by its status (a body
/// that is not MNS XML comes from a proxy or load balancer).
pub fn read_answer(status: u16, text: &str) -> Result<(u16, Response), Failure> {
    match xml::parse_response(text) {
        Ok(Response::Error {
            code,
            message,
            request_id,
            ..
        }) => Err(classify(status, code, message, request_id)),
        Ok(r) => Ok((status, r)),
        Err(e) => Err(classify(
            status,
            format!("HTTP{status}"),
            format!("not an MNS answer ({e}): {}", snippet(text)),
            String::new(),
        )),
    }
}

/// A client of one MNS endpoint (one account and region).
#[derive(Debug, Clone)]
pub struct MnsClient {
    http: reqwest::Client,
    endpoint: String,
    credentials: super::credentials::Source,
    /// The sink this client serves, for the retry metric.
    sink: std::sync::Arc<str>,
    /// The sink's breaker: told of every answer, and ends retries once open.
    breaker: Option<std::sync::Arc<crate::breaker::Breaker>>,
}

impl MnsClient {
    pub fn new(
        endpoint: &str,
        key_id: &str,
        secret: Secret,
        timeout: Duration,
    ) -> Result<Self, BuildError> {
        Self::with_roots(endpoint, key_id, secret, timeout, None)
    }

    /// Like [`MnsClient::new`], also trusting the PEM certificates in
    /// `extra_roots` (a TLS-inspecting proxy's, a test CA).
    pub fn with_roots(
        endpoint: &str,
        key_id: &str,
        secret: Secret,
        timeout: Duration,
        extra_roots: Option<&[u8]>,
    ) -> Result<Self, BuildError> {
        // HTTPS needs a crypto provider; ring is the one we build.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true);
        if let Some(pem) = extra_roots {
            for cert in
                reqwest::Certificate::from_pem_bundle(pem).map_err(BuildError::Certificates)?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(BuildError::HttpClient)?;
        Ok(MnsClient {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            credentials: super::credentials::Source::Fixed(std::sync::Arc::new(
                super::credentials::Credentials {
                    key_id: key_id.to_owned(),
                    secret,
                    token: None,
                },
            )),
            sink: std::sync::Arc::from(""),
            breaker: None,
        })
    }

    /// Signs with credentials from `source` instead (an STS token, a
    /// credentials file).
    pub fn with_credentials(mut self, source: super::credentials::Source) -> Self {
        self.credentials = source;
        self
    }

    /// Names the sink this client serves (its retries are counted under
    /// it) and the sink's breaker.
    pub fn for_sink(
        mut self,
        name: &str,
        breaker: Option<std::sync::Arc<crate::breaker::Breaker>>,
    ) -> Self {
        self.sink = std::sync::Arc::from(name);
        self.breaker = breaker;
        self
    }

    /// One signed POST of `body` to `resource`; the parsed answer or why not.
    async fn post(&self, resource: &str, body: String) -> Result<(u16, Response), Failure> {
        let (status, text) = self.request("POST", resource, body).await?;
        read_answer(status, &text)
    }

    /// GetQueueAttributes (`/queues/Q`) or GetTopicAttributes (`/topics/T`),
    /// one attempt: Ok when it exists and these credentials may read it;
    /// else MNS's answer (`QueueNotExist`, `InvalidAccessKeyId`, …), classed.
    pub async fn attributes(&self, resource: &str) -> Result<(), Failure> {
        let (status, text) = self.request("GET", resource, String::new()).await?;
        if status == 200 {
            return Ok(());
        }
        let (status, answer) = read_answer(status, &text)?;
        Err(unexpected(status, answer))
    }

    /// One signed request; the status and body, or a network failure.
    async fn request(
        &self,
        verb: &'static str,
        resource: &str,
        body: String,
    ) -> Result<(u16, String), Failure> {
        let date = sign::http_date(SystemTime::now());
        let md5 = sign::content_md5(body.as_bytes());
        let headers = [("x-mns-version", MNS_VERSION)];
        let credentials = self.credentials.current();
        let auth = sign::authorization(
            &credentials.key_id,
            &credentials.secret,
            &SignedParts {
                verb,
                content_md5: &md5,
                content_type: CONTENT_TYPE,
                date: &date,
                headers: &headers,
                resource,
            },
        );
        let url = format!("{}{resource}", self.endpoint);
        let mut req = match verb {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        // STS: the token goes unsigned (it is not an x-mns- header), as
        // MNS's own SDKs send it.
        if let Some(token) = &credentials.token {
            req = req.header("security-token", token.expose());
        }
        let res = req
            .header("Date", &date)
            .header("Content-Type", CONTENT_TYPE)
            .header("Content-MD5", &md5)
            .header("x-mns-version", MNS_VERSION)
            .header("Authorization", auth)
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::Transient {
                code: if e.is_timeout() {
                    "Timeout".into()
                } else {
                    "NetworkError".into()
                },
                message: crate::log_limit::with_sources(&e),
            })?;
        let status = res.status().as_u16();
        let text = res.text().await.map_err(|e| Failure::Transient {
            code: "NetworkError".into(),
            message: e.to_string(),
        })?;
        Ok((status, text))
    }

    /// PublishMessage, one attempt. The message id on success.
    pub async fn publish(&self, topic: &str, m: &OutMessage) -> Result<String, Failure> {
        let resource = format!("/topics/{topic}/messages");
        match self.post(&resource, xml::message_request(m)).await? {
            (
                201,
                Response::Sent {
                    message_id,
                    body_md5,
                },
            ) => {
                check_md5(&m.body, &body_md5)?;
                Ok(message_id)
            }
            (status, other) => Err(unexpected(status, other)),
        }
    }

    /// SendMessage (one) or BatchSendMessage (several), one attempt. The
    /// whole request may fail; otherwise each message has its own result.
    pub async fn send(
        &self,
        queue: &str,
        ms: &[OutMessage],
    ) -> Result<Vec<Result<String, Failure>>, Failure> {
        let resource = format!("/queues/{queue}/messages");
        if let [m] = ms {
            return match self.post(&resource, xml::message_request(m)).await? {
                (
                    201,
                    Response::Sent {
                        message_id,
                        body_md5,
                    },
                ) => Ok(vec![check_md5(&m.body, &body_md5).map(|_| message_id)]),
                (status, other) => Err(unexpected(status, other)),
            };
        }
        match self.post(&resource, xml::batch_request(ms)).await? {
            (_, Response::Batch(entries)) if entries.len() == ms.len() => Ok(entries
                .into_iter()
                .zip(ms)
                .map(|(e, m)| match e {
                    BatchEntry::Sent {
                        message_id,
                        body_md5,
                    } => check_md5(&m.body, &body_md5).map(|_| message_id),
                    BatchEntry::Failed { code, message } => {
                        Err(classify(500, code, message, String::new()))
                    }
                })
                .collect()),
            (status, other) => Err(unexpected(status, other)),
        }
    }
}

/// The start of an answer's body, for an error message.
fn snippet(text: &str) -> String {
    let t: String = text.chars().take(120).collect();
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_md5(body: &str, returned: &str) -> Result<(), Failure> {
    let sent = sign::md5_hex(body.as_bytes());
    if returned.eq_ignore_ascii_case(&sent) {
        Ok(())
    } else {
        Err(Failure::Transient {
            code: "MessageBodyMD5Mismatch".into(),
            message: format!("sent MD5 {sent}, MNS returned {returned:?}"),
        })
    }
}

fn unexpected(status: u16, r: Response) -> Failure {
    Failure::Transient {
        code: format!("HTTP{status}"),
        message: format!("unexpected answer {r:?}"),
    }
}

/// MNS's limit on the messages of one BatchSendMessage request (its size
/// limit is [`crate::mns::MAX_BYTES`]).
pub const MAX_BATCH_MESSAGES: usize = 16;

/// Splits messages into consecutive batches of at most `max_count` (≤ 16)
/// whose request XML stays within 64 KB. A message too large to send at
/// all gets a batch of its own (and fails as `InvalidArgument`).
pub fn batches(ms: &[OutMessage], max_count: usize) -> Vec<std::ops::Range<usize>> {
    let max_count = max_count.clamp(1, MAX_BATCH_MESSAGES);
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = xml::batch_overhead();
    for (i, m) in ms.iter().enumerate() {
        let len = xml::batch_entry_len(m);
        if i > start && (i - start == max_count || bytes + len > crate::mns::MAX_BYTES) {
            out.push(start..i);
            start = i;
            bytes = xml::batch_overhead();
        }
        bytes += len;
    }
    if start < ms.len() {
        out.push(start..ms.len());
    }
    out
}

/// Publishes under the sink's retry policy: the message id, or the last
/// failure and the attempts made.
pub async fn publish_with_retry(
    client: &MnsClient,
    topic: &str,
    m: &OutMessage,
    policy: &RetryConfig,
) -> Result<String, (Failure, u32)> {
    retry::retry(policy, &client.sink, client.breaker.as_deref(), || {
        client.publish(topic, m)
    })
    .await
}

/// Sends a batch under the sink's retry policy, sending again only the
/// entries that failed transiently. Per message: its id, or its last
/// failure and the attempts made.
pub async fn send_with_retry(
    client: &MnsClient,
    queue: &str,
    ms: &[OutMessage],
    policy: &RetryConfig,
) -> Vec<Result<String, (Failure, u32)>> {
    retry::retry_each(
        policy,
        &client.sink,
        client.breaker.as_deref(),
        ms.len(),
        |pending| {
            let batch: Vec<OutMessage> = pending.iter().map(|&i| ms[i].clone()).collect();
            async move { client.send(queue, &batch).await }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_by_code_then_status() {
        let c = |s, code: &str| classify(s, code.into(), String::new(), String::new());
        assert!(matches!(
            c(503, "QpsLimitExceeded"),
            Failure::Throttled { .. }
        ));
        assert!(matches!(
            c(403, "QpsLimitExceeded"),
            Failure::Throttled { .. }
        ));
        assert!(matches!(c(500, "InternalError"), Failure::Transient { .. }));
        assert!(matches!(c(408, "TimeExpired"), Failure::Transient { .. }));
        assert!(matches!(c(503, "Whatever"), Failure::Transient { .. }));
        assert!(matches!(c(429, "TooMany"), Failure::Throttled { .. }));
        // A batch entry is classed by its code whatever the batch's status.
        assert!(c(500, "InvalidArgument").is_permanent());
        assert!(matches!(c(500, "SomethingNew"), Failure::Transient { .. }));
        for code in [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "AccessDenied",
            "TopicNotExist",
            "QueueNotExist",
            "MalformedXML",
            "InvalidArgument",
        ] {
            assert!(
                c(if code.ends_with("NotExist") { 404 } else { 403 }, code).is_permanent(),
                "{code}"
            );
        }
    }

    #[test]
    fn batches_split_at_sixteen_and_at_64_kb() {
        let small: Vec<OutMessage> = (0..40)
            .map(|i| OutMessage {
                body: format!("m{i}"),
                ..Default::default()
            })
            .collect();
        assert_eq!(batches(&small, 16), vec![0..16, 16..32, 32..40]);
        assert_eq!(batches(&small, 5).len(), 8);
        let big: Vec<OutMessage> = (0..20)
            .map(|_| OutMessage {
                body: "x".repeat(10_000),
                ..Default::default()
            })
            .collect();
        let b = batches(&big, 16);
        assert!(b.iter().all(|r| r.len() == 6 || r.end == 20), "{b:?}");
        for r in &b {
            assert!(xml::batch_request(&big[r.clone()]).len() <= crate::mns::MAX_BYTES);
        }
        assert_eq!(b.iter().map(|r| r.len()).sum::<usize>(), 20);
        let huge = vec![
            OutMessage {
                body: "y".repeat(70_000),
                ..Default::default()
            },
            small[0].clone(),
        ];
        assert_eq!(batches(&huge, 16), vec![0..1, 1..2]);
        assert!(batches(&[], 16).is_empty());
    }
}
