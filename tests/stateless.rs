//! No state on a member's disk (SPEC §6) with the default stores of a
//! Kafka source, against the test broker (tansu), real `ossnotify run`
//! processes and mns-dev:
//!
//! - two members share a topic while one of two MNS endpoints fails; both
//!   are killed -9 and their directories deleted; a new member on an empty
//!   directory delivers everything once the endpoint recovers;
//! - a permanent failure's dead letter is a message in the dead-letter
//!   topic with its context in headers, and `ossnotify dead-letter` lists,
//!   shows, replays and purges it there.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ossnotify_sinks::mns::dev_server::{DevConfig, DevServer};
use support::Member;

/// A PutObject whose request id is `seq`.
fn record(seq: u64) -> String {
    format!(
        r#"{{"time":"2026-11-27T10:00:00Z","operation":"PutObject","bucket":"sl","object":"k-{seq}","bucket_location":"oss-cn-shenzhen","owner_id":"1","request_id":"r-{seq}","http_status":200}}"#
    )
}

/// The request id inside a delivered (Base64) message.
fn seq_of(body: &str) -> Option<u64> {
    let json = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&json).ok()?;
    v["events"][0]["responseElements"]["requestId"]
        .as_str()?
        .strip_prefix("r-")?
        .parse()
        .ok()
}

fn arrivals(server: &DevServer) -> HashMap<u64, usize> {
    let mut out = HashMap::new();
    for a in server.accepted() {
        if let Some(s) = seq_of(&a.body) {
            *out.entry(s).or_insert(0) += 1;
        }
    }
    out
}

async fn wait_all(server: &DevServer, n: u64, within: Duration) -> HashMap<u64, usize> {
    let deadline = Instant::now() + within;
    loop {
        let got = arrivals(server);
        if (0..n).all(|s| got.contains_key(&s)) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn missing(got: &HashMap<u64, usize>, n: u64) -> Vec<u64> {
    (0..n).filter(|s| !got.contains_key(s)).take(20).collect()
}

/// mns-dev on `listener`, answering 503 for `outage` from now (or with
/// `code` for good, when given).
fn mns_on(listener: tokio::net::TcpListener, outage: Duration) -> DevServer {
    DevServer::start(
        DevConfig {
            fail_first: outage,
            keep: usize::MAX,
            keep_bytes: usize::MAX,
            ..support::dev_config()
        },
        listener,
    )
    .unwrap()
}

async fn listener() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", l.local_addr().unwrap());
    (l, endpoint)
}

/// A member's config: the default stores (Kafka), its own directory for
/// anything it would keep on disk, two `mns_topic` sinks.
fn config(
    d: &support::Dir,
    name: &str,
    topic: &str,
    healthy: &str,
    failing: &str,
) -> std::path::PathBuf {
    d.write(
        &format!("{name}.toml"),
        &format!(
            r#"{source}
[pipeline]
commit_interval_ms = 200

[dead_letter]
path = "{dl}"

[sinks.healthy]
type = "mns_topic"
endpoint = "{healthy}"
topic = "oss-events"
access_key_id = "AK"
access_key_secret = "SK"

[sinks.failing]
type = "mns_topic"
endpoint = "{failing}"
topic = "oss-events"
access_key_id = "AK"
access_key_secret = "SK"

[[rules]]
id = "all"
bucket = "sl"
events = ["ObjectCreated:PutObject"]
sinks = ["healthy", "failing"]
"#,
            source = support::kafka_source(support::broker::brokers(), topic, topic, "", ""),
            dl = d.path(name).display(),
        ),
    )
}

/// Messages waiting in a backlog topic for the backlog group.
fn backlog_waiting(topic: &str, group: &str) -> u64 {
    let cc = ossnotify_sinks::kafka_store::client_config(
        support::broker::brokers(),
        &Default::default(),
    );
    let c = ossnotify_sinks::kafka_store::read::consumer(&cc, group).unwrap();
    ossnotify_sinks::kafka_store::read::watermarks(&c, topic)
        .map(|m| m.waiting())
        .unwrap_or(0)
}

fn join(member: &Member) {
    assert!(
        member.wait_log("partitions assigned", Duration::from_secs(120)),
        "the member never got partitions:\n{}",
        member.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_scaled_away_during_an_outage_with_their_disks_lose_nothing() {
    let topic = "stateless-down";
    support::broker::create_topic(topic, 6);
    let d = support::Dir::new();
    let healthy = mns_on(listener().await.0, Duration::ZERO);
    let (failing_listener, failing_endpoint) = listener().await;
    let cfg: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|m| config(&d, m, topic, &healthy.endpoint(), &failing_endpoint))
        .collect();
    let a = Member::start(&cfg[0], d.path("a.log"), "info");
    let b = Member::start(&cfg[1], d.path("b.log"), "info");
    tokio::task::block_in_place(|| {
        join(&a);
        join(&b);
    });
    let failing = mns_on(failing_listener, Duration::from_secs(90));
    let outage = Instant::now();
    // 40 records a second for 45 s: half of them meet the open breaker.
    let mut n = 0u64;
    while outage.elapsed() < Duration::from_secs(45) {
        let batch: Vec<String> = (n..n + 40).map(record).collect();
        tokio::task::block_in_place(|| support::broker::produce(topic, &batch));
        n += 40;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The backlog is in Kafka, not in the members' directories.
    let backlog_topic = format!("{topic}.backlog.failing");
    let deadline = Instant::now() + Duration::from_secs(30);
    while backlog_waiting(&backlog_topic, &format!("{topic}.backlog")) == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing reached the backlog topic:\n{}\n{}",
            a.log_text(),
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = backlog_waiting(&backlog_topic, &format!("{topic}.backlog"));
    // Both scaled away: killed, their directories gone with them.
    let (_, log_a) = tokio::task::block_in_place(|| a.signal("-KILL"));
    let (_, log_b) = tokio::task::block_in_place(|| b.signal("-KILL"));
    std::fs::remove_dir_all(d.path("a")).ok();
    std::fs::remove_dir_all(d.path("b")).ok();
    assert!(
        log_a.contains("circuit breaker open") || log_b.contains("circuit breaker open"),
        "{log_a}\n{log_b}"
    );
    // A new member on an empty directory, while the endpoint is still down.
    let c = Member::start(&cfg[2], d.path("c.log"), "info");
    let got_healthy = wait_all(&healthy, n, Duration::from_secs(150)).await;
    let got_failing = wait_all(&failing, n, Duration::from_secs(150)).await;
    let (code, log_c) = tokio::task::block_in_place(|| c.signal("-TERM"));
    let (h, f) = (missing(&got_healthy, n), missing(&got_failing, n));
    eprintln!(
        "{n} records; {waiting} in the backlog topic at the kill; healthy {} distinct, failing {} distinct; outage ended {} s ago",
        got_healthy.len(),
        got_failing.len(),
        outage.elapsed().as_secs().saturating_sub(90)
    );
    assert!(h.is_empty(), "the healthy sink lost {h:?}:\n{log_c}");
    assert!(f.is_empty(), "the failing sink lost {f:?}:\n{log_c}");
    assert_eq!(code, Some(0), "{log_c}");
    assert!(waiting > 0);
    assert!(
        !d.path("c").join("backlog").exists(),
        "a backlog on the member's disk"
    );
    healthy.stop();
    failing.stop();
}
