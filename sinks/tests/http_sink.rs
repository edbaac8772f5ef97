//! The webhook sink against a local HTTP server: one message per POST or an
//! NDJSON batch, custom headers, retries on 503, no retries on 400.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use ossnotify_sinks::http::HttpConfig;
use ossnotify_sinks::{Envelope, Outcome, SinkConfig};

#[derive(Default)]
struct Hook {
    /// (path, content type, token header, body)
    seen: Mutex<Vec<(String, String, String, String)>>,
    /// Answer 503 to this many requests first.
    fail_first: AtomicUsize,
}

async fn start(hook: Arc<Hook>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let hook = hook.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let hook = hook.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let h = |n: &str| {
                            req.headers()
                                .get(n)
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default()
                        };
                        let (ct, token) = (h("content-type"), h("x-token"));
                        let body = String::from_utf8(
                            req.into_body().collect().await.unwrap().to_bytes().to_vec(),
                        )
                        .unwrap();
                        // Redirects: /moved (301) and /found (302) to /one,
                        // /temp (307) and /perm (308) to /kept.
                        let redirect = match path.as_str() {
                            "/moved" => Some((301, "/one")),
                            "/found" => Some((302, "/one")),
                            "/temp" => Some((307, "/kept")),
                            "/perm" => Some((308, "/kept")),
                            _ => None,
                        };
                        if let Some((status, to)) = redirect {
                            hook.seen.lock().unwrap().push((path, ct, token, body));
                            return Ok(Response::builder()
                                .status(status)
                                .header("Location", to)
                                .body(Full::new(Bytes::new()))
                                .unwrap());
                        }
                        let status = if path == "/bad" {
                            400
                        } else if hook.fail_first.load(Ordering::SeqCst) > 0 {
                            hook.fail_first.fetch_sub(1, Ordering::SeqCst);
                            503
                        } else {
                            hook.seen.lock().unwrap().push((path, ct, token, body));
                            200
                        };
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from("ok")))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

fn envelopes(n: usize) -> Vec<Envelope> {
    (0..n)
        .map(|i| Envelope {
            payload: format!("{{\"n\":{i}}}"),
            rule_id: "r".into(),
            key: "b/k".into(),
            ..Default::default()
        })
        .collect()
}

fn config(toml_text: &str) -> HttpConfig {
    toml::from_str(toml_text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_and_ndjson_batches_with_headers_and_retries() {
    let hook = Arc::new(Hook::default());
    let base = start(hook.clone()).await;
    let single = config(&format!(
        "url = \"{base}/one\"\nencoding = \"json\"\nheaders = {{ x-token = \"t0k\" }}\n[retry]\nmax_attempts = 5\ninitial_backoff_ms = 1\nmax_backoff_ms = 5\n"
    ))
    .build("hook")
    .unwrap();
    assert_eq!(single.max_batch(), 1);
    hook.fail_first.store(2, Ordering::SeqCst);
    let out = single.deliver(&envelopes(3)).await;
    assert_eq!(out, vec![Outcome::Delivered; 3]);
    let ndjson = config(&format!(
        "url = \"{base}/many\"\n[batch]\nmode = \"ndjson\"\nmax_messages = 4\n"
    ))
    .build("hook2")
    .unwrap();
    assert_eq!(ndjson.max_batch(), 4);
    assert_eq!(
        ndjson.deliver(&envelopes(6)).await,
        vec![Outcome::Delivered; 6]
    );
    let seen = hook.seen.lock().unwrap().clone();
    let want: Vec<(String, String, String, String)> = vec![
        (
            "/one".into(),
            "application/json".into(),
            "t0k".into(),
            "{\"n\":0}".into(),
        ),
        (
            "/one".into(),
            "application/json".into(),
            "t0k".into(),
            "{\"n\":1}".into(),
        ),
        (
            "/one".into(),
            "application/json".into(),
            "t0k".into(),
            "{\"n\":2}".into(),
        ),
        (
            "/many".into(),
            "application/x-ndjson".into(),
            "".into(),
            "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}".into(),
        ),
        (
            "/many".into(),
            "application/x-ndjson".into(),
            "".into(),
            "{\"n\":4}\n{\"n\":5}".into(),
        ),
    ];
    assert_eq!(seen, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_permanent() {
    let hook = Arc::new(Hook::default());
    let base = start(hook.clone()).await;
    let sink = config(&format!("url = \"{base}/bad\"\n"))
        .build("hook")
        .unwrap();
    let out = sink.deliver(&envelopes(1)).await;
    assert!(
        matches!(&out[0], Outcome::Failed { error, attempts: 1 } if error.starts_with("HTTP 400")),
        "{out:?}"
    );
}

/// A redirect is not a delivery: 301/302 (which would turn the POST into a
/// GET without its body) fail at once naming the Location; 307/308 are
/// followed with the method and the body kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_redirects_that_keep_the_body_are_followed() {
    let hook = Arc::new(Hook::default());
    let base = start(hook.clone()).await;
    for (path, status) in [("moved", 301), ("found", 302)] {
        let sink = config(&format!("url = \"{base}/{path}\"\n"))
            .build("hook")
            .unwrap();
        let out = sink.deliver(&envelopes(1)).await;
        assert!(
            matches!(&out[0], Outcome::Failed { error, attempts: 1 }
                if error.starts_with(&format!("HTTP {status}")) && error.ends_with("Location: /one")),
            "{out:?}"
        );
    }
    for path in ["temp", "perm"] {
        let sink = config(&format!("url = \"{base}/{path}\"\nencoding = \"json\"\n"))
            .build("hook")
            .unwrap();
        assert_eq!(sink.deliver(&envelopes(1)).await, vec![Outcome::Delivered]);
    }
    let seen = hook.seen.lock().unwrap().clone();
    let paths: Vec<(&str, &str)> = seen
        .iter()
        .map(|(p, _, _, b)| (p.as_str(), b.as_str()))
        .collect();
    // Nothing reached /one (no GET, no body lost); /kept got each POST
    // with its body.
    assert_eq!(
        paths,
        vec![
            ("/moved", "{\"n\":0}"),
            ("/found", "{\"n\":0}"),
            ("/temp", "{\"n\":0}"),
            ("/kept", "{\"n\":0}"),
            ("/perm", "{\"n\":0}"),
            ("/kept", "{\"n\":0}"),
        ]
    );
}
