//! Metrics and health (`[metrics] listen`): a Prometheus text endpoint at
//! `/metrics`, `/health` (200 while no component has failed, 503 with the
//! reason once one has), `/ready` (200 while partitions are assigned and
//! nothing has failed) and `/tap` (the messages produced, as NDJSON, for
//! `ossnotify tap`; see [`crate::pipeline::tap`]). Metric names live here, in one place. No label
//! is per rule: a million rules must not mean a million series.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::pipeline::tap::{TapFilter, Taps};

pub const RECORDS: &str = "ossnotify_records_total";
pub const MESSAGES: &str = "ossnotify_messages_total";
pub const DELIVERY_SECONDS: &str = "ossnotify_sink_delivery_seconds";
pub const PENDING: &str = "ossnotify_pending_messages";
pub const COMMITTED: &str = "ossnotify_committed_offset";
pub const RELOADS: &str = "ossnotify_reloads_total";
pub const QUEUE_DEPTH: &str = "ossnotify_queue_depth";
pub const CONSUMER_LAG: &str = "ossnotify_consumer_lag";
/// 1 while a Kafka broker is reachable, else 0 (`/ready` follows it).
pub const SOURCE_CONNECTED: &str = "ossnotify_source_connected";
/// Events the offset tracker refused (stale, duplicate, out of range),
/// labelled `kind`.
pub const TRACKER_ANOMALIES: &str = "ossnotify_tracker_anomalies_total";
/// How stale notifications are when a sink accepts them: acceptance time
/// minus the operation's time (`eventTime`), a histogram labelled `sink`.
pub const EVENT_AGE: &str = "ossnotify_event_age_seconds";
/// Where a record's time in the pipeline goes: seconds from reading its
/// batch's first record to each stage, labelled `stage` (`queued`: handed
/// to the workers; `encoded`: its messages made and queued for the sinks;
/// `sent`: a delivery of its messages started; `settled`: that delivery
/// ended) and, from `sent` on, `sink`. Sampled once per batch; a histogram.
pub const STAGE_SECONDS: &str = "ossnotify_stage_seconds";
/// The age of the oldest record read and not yet committable.
pub const OLDEST_PENDING: &str = "ossnotify_oldest_pending_seconds";
/// How long this member's consumer group has been rebalancing (0 while it
/// is settled): nothing is consumed or committed meanwhile.
pub const GROUP_UNSETTLED: &str = "ossnotify_group_unsettled_seconds";

/// The event-age histogram's buckets, in seconds: from a quick pipeline to
/// an hour-long outage.
const EVENT_AGE_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
/// The stage histogram's buckets, in seconds: a millisecond apart at the
/// bottom, up to a backlog's worth.
const STAGE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];
/// Counted by the sinks themselves.
pub const RETRIES: &str = ossnotify_sinks::RETRIES;

type Body = BoxBody<Bytes, Infallible>;

fn text(status: StatusCode, body: String) -> Response<Body> {
    typed(status, "text/plain; version=0.0.4", body)
}

fn typed(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("static parts")
}

/// The answer that refuses `req` a tap, if it may not tap: with a token
/// set, it needs `Authorization: Bearer TOKEN` (401 otherwise); without
/// one, a loopback listener (404 otherwise: the content is not for
/// everyone who reaches the port).
fn tap_refusal<B>(
    req: &hyper::Request<B>,
    loopback: bool,
    token: Option<&str>,
) -> Option<Response<Body>> {
    match token {
        None if loopback => None,
        None => Some(text(
            StatusCode::NOT_FOUND,
            "tap: off on a listener that is not loopback; set [metrics] tap_token to turn it on\n"
                .into(),
        )),
        Some(want) => {
            let given = req
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if same(given.as_bytes(), want.as_bytes()) {
                None
            } else {
                let mut res = text(
                    StatusCode::UNAUTHORIZED,
                    "tap: missing or wrong bearer token (ossnotify tap --token-env VAR)\n".into(),
                );
                res.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    hyper::header::HeaderValue::from_static("Bearer"),
                );
                Some(res)
            }
        }
    }
}

/// Compares in time that depends on the length only, not on where the
/// first difference is: a wrong token teaches an attacker nothing byte by
/// byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// `GET /tap?rule=&bucket=&sink=&event=&sample=&limit=&full=`: one NDJSON
/// line per message produced while the request lasts (at most `limit`),
/// and `{"dropped":N}` whenever the tap lost messages for being read too
/// slowly.
fn tap(taps: &Arc<Taps>, query: &str) -> Response<Body> {
    let filter = match TapFilter::from_query(query) {
        Ok(f) => f,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("tap: {e}\n")),
    };
    let mut tap = match taps.attach(filter) {
        Ok(t) => t,
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("tap: {e}\n")),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let (mut sent, limit) = (0u64, tap.limit());
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        while sent < limit {
            // A message, or half a second without one: either way, say
            // first what was dropped since the last notice.
            let line = tokio::select! {
                line = tap.rx.recv() => match line {
                    Some(line) => Some(line),
                    None => break,
                },
                _ = tick.tick() => None,
            };
            if tx.is_closed() {
                break;
            }
            let dropped = tap.take_dropped();
            if dropped > 0 {
                let notice = Bytes::from(format!("{{\"dropped\":{dropped}}}\n"));
                if tx.send(notice).await.is_err() {
                    break;
                }
            }
            if let Some(line) = line {
                if tx.send(line).await.is_err() {
                    break;
                }
                sent += 1;
            }
        }
        // Dropping `tap` detaches it: the workers stop offering.
    });
    Response::builder()
        .header("Content-Type", "application/x-ndjson")
        .body(BodyExt::boxed(LineBody(rx)))
        .expect("static parts")
}

/// A streamed body: the lines a tap's task sends, until it ends.
struct LineBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for LineBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|l| Ok(hyper::body::Frame::data(l))))
    }
}

/// Installs the process-wide recorder (once) and returns its handle.
pub fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(EVENT_AGE.into()),
                    EVENT_AGE_BUCKETS,
                )
                .ok()?
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(STAGE_SECONDS.into()),
                    STAGE_BUCKETS,
                )
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}

/// Why the metrics server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Another metrics recorder is installed in this process.
    #[error("cannot install the metrics recorder")]
    Recorder,
    #[error("[metrics] listen = {listen:?}: {source}")]
    Listen {
        listen: String,
        source: std::io::Error,
    },
}

/// The answer of `/health` (or `/ready`, with `readiness`): a short JSON
/// body that names what is wrong, for a person at `curl` as much as for a
/// probe. Health is failed only when a component has failed (the run is
/// stopping, exit 2); readiness also waits for the source's partitions.
fn health(
    readiness: bool,
    failure: Option<String>,
    assigned: bool,
) -> (StatusCode, serde_json::Value) {
    use serde_json::json;
    match failure {
        Some(f) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "failed", "failure": f}),
        ),
        None if !readiness => (StatusCode::OK, json!({"status": "ok"})),
        None if assigned => (StatusCode::OK, json!({"status": "ready"})),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "status": "not ready",
                "not_ready": ["source: no partitions assigned yet (joining the consumer group, or no broker reachable: see ossnotify_source_connected and the log)"],
            }),
        ),
    }
}

/// Serves `/metrics`, `/health`, `/ready` and `/tap` on `listen` from the
/// current tokio runtime.
///
/// `/tap` streams message content (keys, IPs, principals, xVars), so it
/// asks for `tap_token` as a bearer token when one is set, and is off (404)
/// on a listener that is not loopback without one.
pub async fn serve(
    listen: &str,
    ready: Arc<AtomicBool>,
    supervisor: Arc<crate::pipeline::Supervisor>,
    taps: Arc<Taps>,
    tap_token: Option<ossnotify_sinks::Secret>,
) -> Result<(), TelemetryError> {
    let handle = recorder().ok_or(TelemetryError::Recorder)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| TelemetryError::Listen {
            listen: listen.to_owned(),
            source,
        })?;
    tracing::info!(listen, "metrics at /metrics, health at /health and /ready");
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    let tap_token: Option<Arc<str>> = tap_token.map(|t| Arc::from(t.expose()));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (handle, ready, supervisor) = (handle.clone(), ready.clone(), supervisor.clone());
            let (taps, tap_token) = (taps.clone(), tap_token.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let failure = supervisor.failure();
                    if req.uri().path() == "/tap" {
                        let res = tap_refusal(&req, loopback, tap_token.as_deref())
                            .unwrap_or_else(|| tap(&taps, req.uri().query().unwrap_or("")));
                        return std::future::ready(Ok::<_, Infallible>(res));
                    }
                    let path = req.uri().path();
                    if path == "/health" || path == "/ready" {
                        let (status, body) = health(
                            path == "/ready",
                            failure.map(|f| f.to_string()),
                            ready.load(Ordering::SeqCst),
                        );
                        let res = typed(status, "application/json", body.to_string() + "\n");
                        return std::future::ready(Ok::<_, Infallible>(res));
                    }
                    let (status, body) = match path {
                        "/metrics" => (StatusCode::OK, handle.render()),
                        _ => (
                            StatusCode::NOT_FOUND,
                            "see /metrics, /health, /ready, /tap\n".to_owned(),
                        ),
                    };
                    std::future::ready(Ok::<_, Infallible>(text(status, body)))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_readiness_say_what_is_wrong() {
        let (s, b) = health(false, None, false);
        assert_eq!(
            (s, b.to_string()),
            (StatusCode::OK, r#"{"status":"ok"}"#.into())
        );
        let (s, b) = health(true, None, false);
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(b["not_ready"][0]
            .as_str()
            .unwrap()
            .starts_with("source: no partitions assigned"));
        let (s, b) = health(true, None, true);
        assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ready")));
        let (s, b) = health(false, Some("sink q: cannot write".into()), true);
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            b,
            serde_json::json!({"status": "failed", "failure": "sink q: cannot write"})
        );
    }

    #[tokio::test]
    async fn a_busy_listen_address_is_a_listen_error_naming_it() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap().to_string();
        let supervisor = crate::pipeline::Supervisor::new(Arc::new(AtomicBool::new(false)));
        let err = serve(&addr, Arc::default(), supervisor, Arc::default(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, TelemetryError::Listen { listen, .. } if *listen == addr),
            "{err}"
        );
        assert!(err
            .to_string()
            .starts_with(&format!("[metrics] listen = {addr:?}: ")));
    }
}
