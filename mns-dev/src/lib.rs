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
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use ossnotify_sinks::log_limit::LogLimit;

mod auth;
mod requests;

use requests::handle;

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
    let log_limit = LogLimit::default();
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
