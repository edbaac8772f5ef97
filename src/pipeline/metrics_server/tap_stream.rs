//! `/tap`: who may tap (a bearer token, or a loopback listener), and the
//! stream of one tap's lines.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Response, StatusCode};

use super::{text, Body};
use crate::pipeline::tap::{TapFilter, Taps};

/// The answer that refuses `req` a tap, if it may not tap: with a token
/// set, it needs `Authorization: Bearer TOKEN` (401 otherwise); without
/// one, a loopback listener (404 otherwise: the content is not for
/// everyone who reaches the port).
pub(super) fn tap_refusal<B>(
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
pub(super) fn tap(taps: &Arc<Taps>, query: &str) -> Response<Body> {
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
