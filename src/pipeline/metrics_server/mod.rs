//! The metrics server (`[metrics] listen`): a Prometheus text endpoint at
//! `/metrics`, `/health` (200 while no component has failed, 503 with the
//! reason once one has), `/ready` (200 while partitions are assigned and
//! nothing has failed) and `/tap` (the messages produced, as NDJSON, for
//! `ossnotify tap`; see [`crate::pipeline::tap`]). The names it exports are
//! in [`crate::metric_names`].

mod health;
mod tap_stream;

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

use crate::metric_names::{EVENT_AGE, EVENT_AGE_BUCKETS, STAGE_BUCKETS, STAGE_SECONDS};
use crate::pipeline::tap::Taps;
use health::health;
use tap_stream::{tap, tap_refusal};

pub(super) type Body = BoxBody<Bytes, Infallible>;

pub(super) fn text(status: StatusCode, body: String) -> Response<Body> {
    typed(status, "text/plain; version=0.0.4", body)
}

pub(super) fn typed(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("static parts")
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
pub enum MetricsServerError {
    /// Another metrics recorder is installed in this process.
    #[error("cannot install the metrics recorder")]
    Recorder,
    #[error("[metrics] listen = {listen:?}: {cause}")]
    Listen {
        listen: String,
        cause: std::io::Error,
    },
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
) -> Result<(), MetricsServerError> {
    let handle = recorder().ok_or(MetricsServerError::Recorder)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| MetricsServerError::Listen {
            listen: listen.to_owned(),
            cause: source,
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

    #[tokio::test]
    async fn a_busy_listen_address_is_a_listen_error_naming_it() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap().to_string();
        let supervisor = crate::pipeline::Supervisor::new(Arc::new(AtomicBool::new(false)));
        let err = serve(&addr, Arc::default(), supervisor, Arc::default(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, MetricsServerError::Listen { listen, .. } if *listen == addr),
            "{err}"
        );
        assert!(err
            .to_string()
            .starts_with(&format!("[metrics] listen = {addr:?}: ")));
    }
}
