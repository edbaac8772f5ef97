//! `ossnotify mns-dev`: a local MNS endpoint for demos and tests. It
//! implements PublishMessage, SendMessage and BatchSendMessage, verifies
//! signatures exactly as MNS does (with the project's one signer), answers
//! with MNS's XML, records what it accepted, and fails on command.
//!
//! It is a real server that people develop against, so it holds up under
//! abuse: it keeps counts and the record file, and in memory only a
//! bounded window of the newest messages; a client gets [`DevConfig::
//! header_timeout`] to send each request's headers (which also closes
//! idle keep-alive connections) and [`DevConfig::idle_timeout`] between
//! the bytes of a body; at most [`DevConfig::max_connections`] are served
//! at once (the rest wait in the listen backlog); and a failing `accept`
//! (out of file descriptors) backs off instead of spinning.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::sign::{self, SignedParts, MNS_VERSION};
use super::xml::{self, BatchEntry};

/// How `mns-dev` behaves.
#[derive(Debug, Clone)]
pub struct DevConfig {
    pub access_key_id: String,
    pub access_key_secret: String,
    /// When set, requests must carry this STS token (`security-token`).
    pub security_token: Option<String>,
    pub topics: Vec<String>,
    pub queues: Vec<String>,
    /// Append every accepted message here, one JSON object per line.
    pub record: Option<PathBuf>,
    /// Share of requests answered `503 ServiceUnavailable` (of batch
    /// entries: failed with `InternalError`, the batch answered 500).
    pub fail_rate: f64,
    /// Answer every request `503 ServiceUnavailable` for this long after start.
    pub fail_first: Duration,
    /// Share of requests answered `QpsLimitExceeded`.
    pub throttle_rate: f64,
    /// Added to every answer.
    pub latency: Duration,
    /// Share of requests whose connection is closed without an answer.
    pub drop_rate: f64,
    /// The newest accepted messages kept in memory (for [`DevServer::
    /// accepted`]): at most this many, and at most `keep_bytes` of bodies.
    /// Counts and the record file cover every message.
    pub keep: usize,
    pub keep_bytes: usize,
    /// Time to send a request's headers, from when the connection is ready
    /// for them: closes slow clients and idle keep-alive connections.
    pub header_timeout: Duration,
    /// Longest silence while a request body arrives.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for DevConfig {
    fn default() -> Self {
        DevConfig {
            access_key_id: String::new(),
            access_key_secret: String::new(),
            security_token: None,
            topics: Vec::new(),
            queues: Vec::new(),
            record: None,
            fail_rate: 0.0,
            fail_first: Duration::ZERO,
            throttle_rate: 0.0,
            latency: Duration::ZERO,
            drop_rate: 0.0,
            keep: 10_000,
            keep_bytes: 64 << 20,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// The newest accepted messages, bounded by count and body bytes.
#[derive(Default)]
struct Window {
    messages: VecDeque<Accepted>,
    bytes: usize,
}

impl Window {
    fn push(&mut self, a: Accepted, keep: usize, keep_bytes: usize) {
        self.bytes += a.body.len();
        self.messages.push_back(a);
        while self.messages.len() > keep || (self.bytes > keep_bytes && self.messages.len() > 1) {
            let old = self.messages.pop_front().expect("not empty");
            self.bytes -= old.body.len();
        }
    }
}

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `topic` or `queue`.
    pub kind: &'static str,
    pub name: String,
    pub message_id: String,
    pub body: String,
    pub tag: Option<String>,
    /// When it was accepted (for latency measurements).
    pub received: std::time::SystemTime,
}

struct State {
    scheme: &'static str,
    cfg: DevConfig,
    started: Instant,
    next_id: AtomicU64,
    window: Mutex<Window>,
    record: Option<Mutex<std::fs::File>>,
    requests: AtomicU64,
    /// Connections being served now.
    connections: AtomicU64,
    /// The credentials it accepts: (key id, secret, STS token).
    credentials: Mutex<Vec<DevCredential>>,
}

/// Credentials mns-dev accepts: a key id, its secret, and the STS token
/// requests must carry with them, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCredential {
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
}

/// A running `mns-dev`.
pub struct DevServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl DevServer {
    /// Starts serving on a free loopback port: what tests and harnesses
    /// use.
    pub async fn local(cfg: DevConfig) -> std::io::Result<DevServer> {
        Self::start(cfg, TcpListener::bind("127.0.0.1:0").await?)
    }

    /// Starts serving on `listener` (bind `127.0.0.1:0` for a free port).
    pub fn start(cfg: DevConfig, listener: TcpListener) -> std::io::Result<DevServer> {
        Self::start_with(cfg, listener, None)
    }

    /// Starts serving HTTPS with `tls` (endpoint `https://…`).
    pub fn start_tls(
        cfg: DevConfig,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<DevServer> {
        Self::start_with(cfg, listener, Some(tokio_rustls::TlsAcceptor::from(tls)))
    }

    fn start_with(
        cfg: DevConfig,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<DevServer> {
        let record = match &cfg.record {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
            None => None,
        };
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let state = Arc::new(State {
            scheme,
            started: Instant::now(),
            next_id: AtomicU64::new(1),
            window: Mutex::default(),
            record,
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            credentials: Mutex::new(vec![DevCredential {
                key_id: cfg.access_key_id.clone(),
                secret: cfg.access_key_secret.clone(),
                token: cfg.security_token.clone(),
            }]),
            cfg,
        });
        let task = tokio::spawn(serve(state.clone(), listener, tls));
        Ok(DevServer { addr, state, task })
    }

    /// The newest accepted messages (all of them unless more than
    /// [`DevConfig::keep`] or [`DevConfig::keep_bytes`]), in order.
    pub fn accepted(&self) -> Vec<Accepted> {
        let w = self.state.window.lock().expect("not poisoned");
        w.messages.iter().cloned().collect()
    }

    /// Messages accepted since start, whether still kept or not.
    pub fn accepted_count(&self) -> u64 {
        self.state.next_id.load(Ordering::Relaxed) - 1
    }

    /// Replaces the credentials it accepts (a rotation: old and new for a
    /// while, then the new only).
    pub fn set_credentials(&self, credentials: Vec<DevCredential>) {
        *self.state.credentials.lock().expect("not poisoned") = credentials;
    }

    /// Connections being served now.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Requests received so far (accepted or not).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// `http://` or `https://` and the address.
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.state.scheme, self.addr)
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

/// Accepts connections, at most `max_connections` served at once, backing
/// off while `accept` fails.
async fn serve(st: Arc<State>, listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(st.cfg.max_connections.max(1)));
    let log_limit = crate::log_limit::LogLimit::default();
    let mut backoff = Duration::ZERO;
    loop {
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff = Duration::ZERO;
                stream
            }
            // Out of file descriptors (EMFILE) and the like: the listener
            // stays readable, so retrying at once would spin a core.
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                if let Some(left_out) = log_limit.admit(&e.to_string()) {
                    tracing::warn!(error = %e, like_this_since_last_logged = left_out, "mns-dev: accept failed; backing off");
                }
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let st = st.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            st.connections.fetch_add(1, Ordering::Relaxed);
            let http = http1::Builder::new()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(st.cfg.header_timeout)
                .clone();
            let service = {
                let st = st.clone();
                service_fn(move |req| handle(st.clone(), req))
            };
            // Errors here are clients going away, timeouts, or drop_rate.
            match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(st.cfg.header_timeout, acceptor.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
            }
            st.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// The TLS settings of `--tls-cert` and `--tls-key` (PEM files: the
/// certificate chain, then the private key).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificates in {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key in {}: {e}", key.display()))?;
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))?;
    Ok(Arc::new(cfg))
}

type Reply = Response<Full<Bytes>>;

/// Why a connection is closed without an answer (the drop fault).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose (--drop-rate)")
    }
}

impl std::error::Error for Dropped {}

fn reply(status: StatusCode, body: String) -> Reply {
    Response::builder()
        .status(status)
        .header("Content-Type", "text/xml;charset=utf-8")
        .header("x-mns-request-id", "00000000000000000000DEV0")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    reply(
        status,
        xml::error_response(code, message, "00000000000000000000DEV0", "mns-dev"),
    )
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Reply, Dropped> {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let cfg = &st.cfg;
    if !cfg.latency.is_zero() {
        tokio::time::sleep(cfg.latency).await;
    }
    if cfg.drop_rate > 0.0 && fastrand::f64() < cfg.drop_rate {
        return Err(Dropped);
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(body, cfg.idle_timeout).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "request body over 1 MiB",
            ))
        }
        // A stalled or broken body: close the connection.
        Err(BodyError::Stalled) => return Err(Dropped),
    };
    if st.started.elapsed() < cfg.fail_first {
        return Ok(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "mns-dev: --fail-first-seconds",
        ));
    }
    if cfg.throttle_rate > 0.0 && fastrand::f64() < cfg.throttle_rate {
        return Ok(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "QpsLimitExceeded",
            "mns-dev: --throttle-rate",
        ));
    }
    let credentials = st.credentials.lock().expect("not poisoned").clone();
    if let Err(r) = authenticate(&credentials, &parts, &body) {
        return Ok(*r);
    }
    if parts.method == hyper::Method::GET {
        return Ok(attributes(cfg, &parts));
    }
    let (kind, name) = match target(cfg, &parts) {
        Ok(t) => t,
        Err(r) => return Ok(*r),
    };
    let (messages, batch) = match messages_of(kind, &body) {
        Ok(m) => m,
        Err(r) => return Ok(*r),
    };
    Ok(accept_all(&st, kind, name, &messages, batch))
}

/// GetQueueAttributes (`GET /queues/Q`) and GetTopicAttributes (`GET
/// /topics/T`): the attributes MNS gives (those a dev endpoint has), or
/// its `QueueNotExist` / `TopicNotExist`.
fn attributes(cfg: &DevConfig, parts: &hyper::http::request::Parts) -> Reply {
    const NS: &str = "http://mns.aliyuncs.com/doc/v1/";
    let path = parts.uri.path();
    match path.trim_matches('/').split('/').collect::<Vec<_>>()[..] {
        ["queues", name] if cfg.queues.iter().any(|q| q == name) => reply(
            StatusCode::OK,
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Queue xmlns="{NS}"><QueueName>{}</QueueName><DelaySeconds>0</DelaySeconds><MaximumMessageSize>65536</MaximumMessageSize><MessageRetentionPeriod>345600</MessageRetentionPeriod><VisibilityTimeout>30</VisibilityTimeout><PollingWaitSeconds>0</PollingWaitSeconds></Queue>"#,
                xml::escape(name)
            ),
        ),
        ["topics", name] if cfg.topics.iter().any(|t| t == name) => reply(
            StatusCode::OK,
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Topic xmlns="{NS}"><TopicName>{}</TopicName><MaximumMessageSize>65536</MaximumMessageSize><LoggingEnabled>False</LoggingEnabled></Topic>"#,
                xml::escape(name)
            ),
        ),
        ["queues", _] => error(
            StatusCode::NOT_FOUND,
            "QueueNotExist",
            "The queue name you provided is not exist.",
        ),
        ["topics", _] => error(
            StatusCode::NOT_FOUND,
            "TopicNotExist",
            "The topic you provided is not exist.",
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "InvalidArgument",
            "mns-dev implements GET /queues/{q} and GET /topics/{t}",
        ),
    }
}

/// Which topic or queue a request is for (`kind` is `topic` or `queue`),
/// or MNS's answer when it is none that exists.
fn target<'p>(
    cfg: &DevConfig,
    parts: &'p hyper::http::request::Parts,
) -> Result<(&'static str, &'p str), Box<Reply>> {
    let path = parts.uri.path();
    let (kind, name) = match path.trim_matches('/').split('/').collect::<Vec<_>>()[..] {
        ["topics", name, "messages"] => ("topic", name),
        ["queues", name, "messages"] => ("queue", name),
        _ => {
            return Err(Box::new(error(
                StatusCode::NOT_FOUND,
                "InvalidArgument",
                "mns-dev implements POST /topics/{t}/messages and POST /queues/{q}/messages",
            )))
        }
    };
    if parts.method != hyper::Method::POST {
        return Err(Box::new(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "InvalidArgument",
            "only POST is implemented",
        )));
    }
    let known = match kind {
        "topic" => cfg.topics.iter().any(|t| t == name),
        _ => cfg.queues.iter().any(|q| q == name),
    };
    if !known {
        return Err(Box::new(match kind {
            "topic" => error(
                StatusCode::NOT_FOUND,
                "TopicNotExist",
                "The topic you provided is not exist.",
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                "QueueNotExist",
                "The queue name you provided is not exist.",
            ),
        }));
    }
    Ok((kind, name))
}

/// The messages of a request body, and whether it was a batch; or MNS's
/// answer to a malformed one.
fn messages_of(kind: &str, body: &[u8]) -> Result<(Vec<xml::OutMessage>, bool), Box<Reply>> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "MalformedXML",
            "body is not UTF-8",
        )));
    };
    let messages = match xml::parse_request(text) {
        Ok(m) if !m.is_empty() => m,
        Ok(_) => {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "MalformedXML",
                "no Message",
            )))
        }
        Err(e) => return Err(Box::new(error(StatusCode::BAD_REQUEST, "MalformedXML", &e))),
    };
    let batch = text.contains("<Messages");
    if kind == "topic" && (batch || messages.len() != 1) {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "MalformedXML",
            "PublishMessage takes one Message",
        )));
    }
    if messages.len() > 16 {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "a batch holds at most 16 messages",
        )));
    }
    if let Some(m) = messages.iter().find(|m| m.body.len() > super::MAX_BYTES) {
        let why = format!(
            "message body is {} bytes; the limit is {}",
            m.body.len(),
            super::MAX_BYTES
        );
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            &why,
        )));
    }
    Ok((messages, batch))
}

/// Accepts the messages (but those `--fail-rate` fails) and answers as
/// MNS does: one message's id, or a batch's entries.
fn accept_all(
    st: &Arc<State>,
    kind: &'static str,
    name: &str,
    messages: &[xml::OutMessage],
    batch: bool,
) -> Reply {
    let cfg = &st.cfg;
    if !batch {
        if cfg.fail_rate > 0.0 && fastrand::f64() < cfg.fail_rate {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "mns-dev: --fail-rate",
            );
        }
        let m = &messages[0];
        let id = accept(st, kind, name, m);
        return reply(
            StatusCode::CREATED,
            xml::sent_response(&id, &sign::md5_hex(m.body.as_bytes()).to_uppercase()),
        );
    }
    let mut any_failed = false;
    let entries: Vec<BatchEntry> = messages
        .iter()
        .map(|m| {
            if cfg.fail_rate > 0.0 && fastrand::f64() < cfg.fail_rate {
                any_failed = true;
                BatchEntry::Failed {
                    code: "InternalError".into(),
                    message: "mns-dev: --fail-rate".into(),
                }
            } else {
                BatchEntry::Sent {
                    message_id: accept(st, kind, name, m),
                    body_md5: sign::md5_hex(m.body.as_bytes()).to_uppercase(),
                }
            }
        })
        .collect();
    // MNS answers a partly failed batch with 500 and the per-entry results.
    let status = if any_failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::CREATED
    };
    reply(status, xml::batch_response(&entries))
}

enum BodyError {
    TooLarge,
    Stalled,
}

/// The request body, at most 1 MiB, with at most `idle` between its frames.
async fn read_body(body: Incoming, idle: Duration) -> Result<Bytes, BodyError> {
    let mut body = Limited::new(body, 1 << 20);
    let mut out = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(BodyError::Stalled),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(e))) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(BodyError::TooLarge)
            }
            Ok(Some(Err(_))) => return Err(BodyError::Stalled),
        }
    }
}

fn accept(st: &State, kind: &'static str, name: &str, m: &xml::OutMessage) -> String {
    let id = format!("{:016X}", st.next_id.fetch_add(1, Ordering::Relaxed));
    let a = Accepted {
        kind,
        name: name.to_owned(),
        message_id: id.clone(),
        body: m.body.clone(),
        tag: m.tag.clone(),
        received: std::time::SystemTime::now(),
    };
    if let Some(file) = &st.record {
        let line = serde_json::json!({
            "kind": a.kind, "name": a.name, "message_id": a.message_id, "body": a.body, "tag": a.tag,
            "received_ms": a.received.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        });
        // One write of the whole line: a process stopped between two
        // small writes would leave a torn line that the next one appends to.
        let mut text = line.to_string();
        text.push('\n');
        let mut f = file.lock().expect("not poisoned");
        // A recording failure must not fail the request: MNS accepted it.
        let _ = f.write_all(text.as_bytes());
    }
    let mut w = st.window.lock().expect("not poisoned");
    w.push(a, st.cfg.keep, st.cfg.keep_bytes);
    id
}

/// Checks the headers and signature as MNS does; the error reply if wrong.
fn authenticate(
    credentials: &[DevCredential],
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Result<(), Box<Reply>> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if header("x-mns-version") != MNS_VERSION {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "x-mns-version must be 2015-06-06",
        )));
    }
    let date = header("date");
    if date.is_empty() {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Date is missing",
        )));
    }
    if let Ok(t) = httpdate::parse_http_date(date) {
        let skew = t
            .duration_since(std::time::SystemTime::now())
            .or_else(|e| Ok::<_, Infallible>(e.duration()))
            .unwrap_or_default();
        if skew > Duration::from_secs(900) {
            return Err(Box::new(error(
                StatusCode::REQUEST_TIMEOUT,
                "TimeExpired",
                "Date is more than 15 minutes off",
            )));
        }
    } else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Date is not an RFC 1123 date",
        )));
    }
    let md5 = header("content-md5");
    if !md5.is_empty() && md5 != sign::content_md5(body) {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidDigest",
            "Content-MD5 does not match the body",
        )));
    }
    let Some(auth) = header("authorization").strip_prefix("MNS ") else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Authorization must be MNS AccessKeyId:Signature",
        )));
    };
    let (key_id, got) = auth.split_once(':').unwrap_or((auth, ""));
    let Some(cred) = credentials.iter().find(|c| c.key_id == key_id) else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
            "The access key id you provided does not exist.",
        )));
    };
    // STS credentials are valid only with their token (sent unsigned).
    if let Some(token) = &cred.token {
        if header("security-token") != token {
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                "SecurityTokenMismatch",
                "The security token you provided is not valid for this access key id.",
            )));
        }
    }
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let resource = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let want = sign::signature(
        &cred.secret,
        &sign::string_to_sign(&SignedParts {
            verb: parts.method.as_str(),
            content_md5: md5,
            content_type: header("content-type"),
            date,
            headers: &headers,
            resource,
        }),
    );
    if got != want {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_the_newest_by_count_and_bytes() {
        let a = |body: &str| Accepted {
            kind: "topic",
            name: "t".into(),
            message_id: String::new(),
            body: body.into(),
            tag: None,
            received: std::time::SystemTime::UNIX_EPOCH,
        };
        let mut w = Window::default();
        for b in ["a", "bb", "ccc", "dddd"] {
            w.push(a(b), 3, 100);
        }
        let bodies: Vec<&str> = w.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!((bodies, w.bytes), (vec!["bb", "ccc", "dddd"], 9));
        w.push(a("eeeeee"), 3, 10);
        let bodies: Vec<&str> = w.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!((bodies, w.bytes), (vec!["dddd", "eeeeee"], 10));
        // One message larger than the byte budget is still kept.
        w.push(a(&"f".repeat(50)), 3, 10);
        assert_eq!((w.messages.len(), w.bytes), (1, 50));
    }
}
