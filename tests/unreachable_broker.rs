//! `ossnotify run` against a Kafka cluster that does not work:
//!
//! - a broker that is not there: the member says so once, repeats at a
//!   limited rate instead of about 40 lines a second, is not ready
//!   (`/ready` 503, `ossnotify_source_connected 0`), and still stops
//!   cleanly on SIGTERM;
//! - a consumer group that never settles (librdkafka's mock cluster): the
//!   member says so once the rebalance outlasts `max.poll.interval.ms`.

mod support;

use std::time::{Duration, Instant};

/// A member of group `g` reading topic `t` from `brokers` into a null
/// sink, with librdkafka's statistics every second, its metrics on
/// `metrics`, and `librdkafka` extra lines in `[source.librdkafka]`.
fn config(d: &support::Dir, brokers: &str, metrics: u16, librdkafka: &str) -> std::path::PathBuf {
    d.write(
        "c.toml",
        &format!(
            r#"[source]
type = "kafka"
brokers = "{brokers}"
topics = ["t"]
group_id = "g"
[source.librdkafka]
"statistics.interval.ms" = "1000"
{librdkafka}

[metrics]
listen = "127.0.0.1:{metrics}"

[dead_letter]
store = "disk"
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
    )
}

#[test]
fn an_unreachable_broker_is_reported_without_a_flood() {
    let d = support::Dir::new();
    // A port nobody listens on.
    let closed = support::free_port();
    let metrics = support::free_port();
    let cfg = config(&d, &format!("127.0.0.1:{closed}"), metrics, "");
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

/// A consumer group that never settles: librdkafka's mock cluster answers
/// every SyncGroup with REBALANCE_IN_PROGRESS, as tansu did for 10 minutes
/// in a chaos run after the faults had ended. No
/// error comes from anywhere, yet nothing is consumed: once the rebalance
/// outlasts `max.poll.interval.ms` the member says so, shows it in
/// `ossnotify_group_unsettled_seconds` and `/ready`, and consumes once the
/// group settles.
#[test]
fn a_group_that_never_settles_is_reported() {
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 2, 1).unwrap();
    cluster.request_errors(
        RDKafkaApiKey::SyncGroup,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS; 10_000],
    );
    let d = support::Dir::new();
    let metrics = support::free_port();
    let cfg = config(
        &d,
        &cluster.bootstrap_servers(),
        metrics,
        "\"session.timeout.ms\" = \"6000\"\n\"max.poll.interval.ms\" = \"8000\"",
    );
    let member = support::Member::start(&cfg, d.path("run.log"), "info");
    assert!(
        member.wait_log("has not settled", Duration::from_secs(40)),
        "{}",
        member.log_text()
    );
    let m = support::http_get(metrics, "/metrics");
    let ready = support::http_get(metrics, "/ready");
    assert!(
        support::metric(&m, "ossnotify_group_unsettled_seconds") >= 8.0,
        "{m}"
    );
    assert!(ready.starts_with("HTTP/1.0 503"), "{ready}");
    assert!(!member.log_text().contains("partitions assigned"));

    cluster.clear_request_errors(RDKafkaApiKey::SyncGroup);
    assert!(
        member.wait_log("the consumer group settled", Duration::from_secs(40)),
        "{}",
        member.log_text()
    );
    assert!(member.log_text().contains("partitions assigned"));
    let m = support::http_get(metrics, "/metrics");
    assert_eq!(
        support::metric(&m, "ossnotify_group_unsettled_seconds"),
        0.0,
        "{m}"
    );
    let (code, log) = member.signal("-TERM");
    assert_eq!(code, Some(0), "{log}");
}
