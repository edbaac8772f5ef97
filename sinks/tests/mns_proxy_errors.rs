//! MNS answers that are not MNS XML (a proxy or load balancer in front of
//! the endpoint) are classed by their HTTP status: 429 is throttling, 408
//! and 5xx are retried, any other 4xx fails at once. Against a local server
//! that answers every request with a fixed HTML error.

use std::time::Duration;

use ossnotify_sinks::mns::config::MnsQueueConfig;
use ossnotify_sinks::{Envelope, Outcome, SinkConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers every request with `status` and an HTML body; counts requests.
async fn proxy(status: u16) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                // Read the request head and its body, then answer and close.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = format!("<html><body><h1>{status} from the proxy</h1></body></html>");
                let answer = format!(
                    "HTTP/1.1 {status} Proxy\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), count)
}

fn envelope() -> Vec<Envelope> {
    vec![Envelope {
        payload: "eyJhIjoxfQ==".into(),
        rule_id: "r".into(),
        key: "b/k".into(),
        ..Default::default()
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_xml_answers_are_classed_by_status() {
    for (status, attempts) in [(429, 3), (408, 3), (502, 3), (503, 3), (403, 1), (404, 1)] {
        let (endpoint, requests) = proxy(status).await;
        let cfg: MnsQueueConfig = toml::from_str(&format!(
            "endpoint = \"{endpoint}\"\nqueue = \"q\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\n[batch]\nmax_messages = 1\n[retry]\nmax_attempts = 3\ninitial_backoff_ms = 1\nmax_backoff_ms = 5\n"
        ))
        .unwrap();
        let sink = cfg.build("q").unwrap();
        let out = tokio::time::timeout(Duration::from_secs(30), sink.deliver(&envelope()))
            .await
            .unwrap();
        // Transient answers end deferred (kept in the sink's backlog),
        // permanent ones failed (dead-lettered).
        match &out[0] {
            Outcome::Deferred { error, attempts: n } | Outcome::Failed { error, attempts: n } => {
                assert_eq!(
                    matches!(out[0], Outcome::Failed { .. }),
                    attempts == 1,
                    "HTTP {status}"
                );
                assert_eq!(*n, attempts, "HTTP {status}: {error}");
                assert!(error.contains(&format!("HTTP{status}")), "{error}");
                // A throttled answer's body says nothing more than its code.
                assert!(status == 429 || error.contains("from the proxy"), "{error}");
            }
            other => panic!("HTTP {status}: {other:?}"),
        }
        assert_eq!(
            requests.load(std::sync::atomic::Ordering::SeqCst),
            attempts as usize,
            "HTTP {status}"
        );
    }
}
