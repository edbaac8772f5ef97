//! `ossnotify run` against a Kafka broker that is not there: it says so
//! once, repeats at a limited rate instead of about 40 lines a second, is
//! not ready (`/ready` 503, `ossnotify_source_connected 0`), and still
//! stops cleanly on SIGTERM.

mod support;

use std::time::{Duration, Instant};

#[test]
fn an_unreachable_broker_is_reported_without_a_flood() {
    let d = support::Dir::new();
    // A port nobody listens on.
    let closed = support::free_port();
    let metrics = support::free_port();
    let cfg = d.write(
        "c.toml",
        &format!(
            r#"[source]
type = "kafka"
brokers = "127.0.0.1:{closed}"
topics = ["t"]
group_id = "g"
[source.librdkafka]
"statistics.interval.ms" = "1000"

[metrics]
listen = "127.0.0.1:{metrics}"

[dead_letter]
path = "{dl}"

[sinks.n]
type = "null"

[[rules]]
id = "r"
bucket = "b"
events = ["ObjectCreated:PutObject"]
sinks = ["n"]
"#,
            dl = d.path("dl").display()
        ),
    );
    let member = support::Member::start(&cfg, d.path("run.log"), "info");
    let watched = Duration::from_secs(15);
    std::thread::sleep(watched);
    let ready = support::http_get(metrics, "/ready");
    let m = support::http_get(metrics, "/metrics");
    let t = Instant::now();
    let (code, log) = member.signal("-TERM");
    assert_eq!(code, Some(0), "{log}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "SIGTERM took {:?}",
        t.elapsed()
    );
    assert!(ready.starts_with("HTTP/1.0 503"), "{ready}");
    assert!(m.contains("ossnotify_source_connected 0"), "{m}");
    let lines = log.lines().count();
    // Before: about 40 lines a second (600 here). Now: the state change,
    // each kind of error once, and the start and stop lines.
    assert!(lines <= 20, "{lines} lines in {watched:?}:\n{log}");
    assert!(log.contains("every Kafka broker is unreachable"), "{log}");
}
