//! Metrics and health (`[metrics] listen`): a Prometheus text endpoint at
//! `/metrics`, `/health` (200 while no component has failed, 503 with the
//! reason once one has) and `/ready` (200 while partitions are assigned and
//! nothing has failed). Metric names live here, in one place. No label
//! is per rule: a million rules must not mean a million series.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

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
/// The age of the oldest record read and not yet committable.
pub const OLDEST_PENDING: &str = "ossnotify_oldest_pending_seconds";

/// The event-age histogram's buckets, in seconds: from a quick pipeline to
/// an hour-long outage.
const EVENT_AGE_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
/// Counted by the sinks themselves.
pub const RETRIES: &str = ossnotify_sinks::RETRIES;

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
                .install_recorder()
                .ok()
        })
        .clone()
}

/// Serves `/metrics`, `/health` and `/ready` on `listen` from the current
/// tokio runtime.
pub async fn serve(
    listen: &str,
    ready: Arc<AtomicBool>,
    supervisor: Arc<crate::pipeline::Supervisor>,
) -> Result<(), String> {
    let handle = recorder().ok_or("cannot install the metrics recorder")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("[metrics] listen = {listen:?}: {e}"))?;
    tracing::info!(listen, "metrics at /metrics, health at /health and /ready");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (handle, ready, supervisor) = (handle.clone(), ready.clone(), supervisor.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let failure = supervisor.failure();
                    let (status, body) = match req.uri().path() {
                        "/metrics" => (StatusCode::OK, handle.render()),
                        "/health" | "/ready" if failure.is_some() => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("failed: {}\n", failure.expect("checked")),
                        ),
                        "/health" => (StatusCode::OK, "ok\n".to_owned()),
                        "/ready" if ready.load(Ordering::SeqCst) => {
                            (StatusCode::OK, "ready\n".to_owned())
                        }
                        "/ready" => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned()),
                        _ => (
                            StatusCode::NOT_FOUND,
                            "see /metrics, /health, /ready\n".to_owned(),
                        ),
                    };
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .header("Content-Type", "text/plain; version=0.0.4")
                                .body(Full::new(Bytes::from(body)))
                                .expect("static parts"),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(())
}
