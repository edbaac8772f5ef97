//! Sink isolation (SPEC §6) against the test broker (tansu), real
//! `ossnotify run` processes and two mns-dev endpoints, one of which fails
//! every request for a minute:
//!
//! - the healthy sink's messages keep arriving at once, consumer lag stays
//!   low, and when the failing endpoint recovers, all of its messages
//!   arrive without any command (the breaker opened, the backlog took them,
//!   redelivery sent them); nothing is lost;
//! - the same with the daemon killed -9 during the outage: the backlog
//!   survives the restart and is delivered;
//! - a full backlog with the default policy (block) pauses the consumer,
//!   and memory stays bounded;
//! - a `kafka` sink whose cluster is out of reach (a proxy in front of a
//!   second tansu cuts every connection) is isolated the same way, and
//!   catches up once the cluster is reachable again.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ossnotify_mns_dev::{DevConfig, DevServer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use support::arrivals::{missing, seq_of, wait_all};
use support::{metric, Member};

/// A PutObject whose request id is `seq`, padded to about `pad` bytes.
fn record(seq: u64, pad: usize) -> String {
    format!(
        r#"{{"time":"2026-11-27T10:00:00Z","operation":"PutObject","bucket":"iso","object":"k-{seq}-{}","bucket_location":"oss-cn-shenzhen","owner_id":"1","request_id":"r-{seq}","http_status":200}}"#,
        "p".repeat(pad)
    )
}

/// A member reading `topic` into `sinks` (their TOML tables), with one
/// rule sending every PutObject of bucket `iso` to `rule_sinks`.
fn member_config(
    d: &support::Dir,
    topic: &str,
    sinks: &str,
    rule_sinks: &str,
) -> std::path::PathBuf {
    d.write(
        "run.toml",
        &format!(
            r#"{source}
[pipeline]
commit_interval_ms = 200

[dead_letter]
store = "disk"
path = "{dl}"

[backlog]
store = "disk"

{sinks}

[[rules]]
id = "all"
bucket = "iso"
events = ["ObjectCreated:PutObject"]
sinks = {rule_sinks}
"#,
            source = support::kafka_source(support::broker::brokers(), topic, topic, "", ""),
            dl = d.path("state").display(),
        ),
    )
}

/// Two `mns_topic` sinks, `healthy` and `failing`, then `extra`.
fn config(
    d: &support::Dir,
    topic: &str,
    healthy: &str,
    failing: &str,
    extra: &str,
) -> std::path::PathBuf {
    member_config(
        d,
        topic,
        &format!(
            r#"[sinks.healthy]
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
{extra}"#
        ),
        r#"["healthy", "failing"]"#,
    )
}

/// Produces `rate` records a second on a thread, recording when each was
/// sent, until stopped; the count so far is in `sent`.
struct Producing {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    times: Arc<Mutex<Vec<SystemTime>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Producing {
    fn start(topic: &str, rate: u64, pad: usize) -> Producing {
        let (stop, sent, times) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(Mutex::new(Vec::new())),
        );
        let topic = topic.to_owned();
        let (s, n, t) = (stop.clone(), sent.clone(), times.clone());
        let thread = std::thread::spawn(move || {
            let producer: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", support::broker::brokers())
                .set("linger.ms", "0")
                .create()
                .unwrap();
            let start = Instant::now();
            let mut seq = 0u64;
            while !s.load(Ordering::SeqCst) {
                let due = start + Duration::from_secs_f64(seq as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    producer.poll(wait);
                    continue;
                }
                let payload = record(seq, pad);
                if producer
                    .send(BaseRecord::<(), _>::to(&topic).payload(&payload))
                    .is_err()
                {
                    producer.poll(Duration::from_millis(10));
                    continue;
                }
                t.lock().unwrap().push(SystemTime::now());
                seq += 1;
                n.store(seq, Ordering::SeqCst);
            }
            producer.flush(Duration::from_secs(30)).unwrap();
        });
        Producing {
            stop,
            sent,
            times,
            thread: Some(thread),
        }
    }

    fn finish(&mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        self.sent.load(Ordering::SeqCst)
    }
}

/// The failing endpoint's listener, bound now so that the config can name
/// it; its outage is timed from [`fail_for`], once the member has its
/// partitions.
async fn failing_listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    (listener, endpoint)
}

/// mns-dev on `listener`, answering 503 to everything for `outage`.
fn fail_for(listener: tokio::net::TcpListener, outage: Duration) -> DevServer {
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

/// mns-dev, answering 503 to everything for `outage` from now.
async fn mns(outage: Duration) -> DevServer {
    fail_for(failing_listener().await.0, outage)
}

fn committed_total(topic: &str) -> i64 {
    support::committed(&support::group_reader(topic), topic, 2)
        .values()
        .sum()
}

/// Every one of `n` records' messages arrived at both sinks.
fn assert_nothing_lost(
    n: u64,
    healthy: &HashMap<u64, usize>,
    failing: &HashMap<u64, usize>,
    log: &str,
) {
    let (h, f) = (missing(healthy, n), missing(failing, n));
    assert!(h.is_empty(), "the healthy sink lost {h:?}");
    assert!(f.is_empty(), "the failing sink lost {f:?}:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_does_not_stall_the_healthy_one_and_catches_up_by_itself() {
    let topic = "iso-outage";
    support::broker::create_topic(topic, 2);
    let d = support::Dir::new();
    let healthy = mns(Duration::ZERO).await;
    let (listener, failing_endpoint) = failing_listener().await;
    let metrics_port = support::free_port();
    let cfg = config(
        &d,
        topic,
        &healthy.endpoint(),
        &failing_endpoint,
        &format!("\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"),
    );
    let member = Member::start(&cfg, d.path("run.log"), "info");
    tokio::task::block_in_place(|| member.joined());
    let failing = fail_for(listener, Duration::from_secs(60));
    let outage_start = Instant::now();
    let outage_wall = SystemTime::now();
    let rate = 50;
    let mut producing = Producing::start(topic, rate, 0);
    // During the outage: the lag (records produced but not committed).
    let mut max_lag = 0i64;
    let mut during_outage = String::new();
    while outage_start.elapsed() < Duration::from_secs(58) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if outage_start.elapsed() > Duration::from_secs(5) {
            let lag = producing.sent.load(Ordering::SeqCst) as i64 - committed_total(topic);
            max_lag = max_lag.max(lag);
        }
        if during_outage.is_empty() && outage_start.elapsed() > Duration::from_secs(30) {
            during_outage = support::http_get(metrics_port, "/metrics");
        }
    }
    // The breaker is open, the backlog holds about 25 s of messages.
    assert_isolated(&during_outage, rate);
    // Then after it, once the backlog is redelivered: the baseline, both
    // sinks healthy.
    while outage_start.elapsed() < Duration::from_secs(85) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let n = producing.finish();
    // The healthy sink's latency (produce to accept), by when it was sent.
    let sent_at = producing.times.lock().unwrap().clone();
    let (mut during, mut after) = latencies(&healthy, &sent_at, outage_wall);
    let got_healthy = wait_all(&healthy, n, Duration::from_secs(30)).await;
    let got_failing = wait_all(&failing, n, Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let at_end = support::http_get(metrics_port, "/metrics");
    let (code, log) = tokio::task::block_in_place(|| member.signal("-TERM"));
    assert!(
        metric(
            &at_end,
            "ossnotify_sink_redelivered_total{sink=\"failing\"}"
        ) > (rate * 40) as f64,
        "{at_end}"
    );
    assert_eq!(
        metric(&at_end, "ossnotify_sink_backlog_messages{sink=\"failing\"}"),
        0.0
    );
    // A redelivered message counts as delivered: the failing sink delivered
    // every record's message, live or from its backlog.
    assert_eq!(
        metric(
            &at_end,
            "ossnotify_messages_total{sink=\"failing\",outcome=\"delivered\"}"
        ),
        n as f64,
        "{at_end}"
    );
    during.sort();
    after.sort();
    let p99 = during[during.len() * 99 / 100];
    let p99_after = after[after.len() * 99 / 100];
    eprintln!(
        "{n} records; healthy sink during the outage: p50 {:?}, p99 {p99:?} over {} messages; after it: p50 {:?}, p99 {p99_after:?} over {}; max lag {max_lag}",
        during[during.len() / 2],
        during.len(),
        after[after.len() / 2],
        after.len()
    );
    assert_eq!(code, Some(0), "{log}");
    assert_nothing_lost(n, &got_healthy, &got_failing, &log);
    assert!(
        during.len() as u64 > rate * 40,
        "{} healthy messages during the outage",
        during.len()
    );
    assert!(
        p99 < Duration::from_secs(1),
        "healthy p99 {p99:?} during the outage"
    );
    assert!(
        max_lag < (rate * 5) as i64,
        "consumer lag reached {max_lag} records"
    );
    assert!(log.contains("circuit breaker open"), "{log}");
    assert!(log.contains("circuit breaker closed"), "{log}");
    assert!(ossnotify_sinks::dead_letter::read_all(&d.path("state"))
        .unwrap()
        .is_empty());
    healthy.stop();
    failing.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_survives_a_kill_9_during_the_outage() {
    let topic = "iso-kill";
    support::broker::create_topic(topic, 2);
    let d = support::Dir::new();
    let healthy = mns(Duration::ZERO).await;
    let (listener, failing_endpoint) = failing_listener().await;
    let cfg = config(&d, topic, &healthy.endpoint(), &failing_endpoint, "");
    let first = Member::start(&cfg, d.path("first.log"), "info");
    tokio::task::block_in_place(|| first.joined());
    let failing = fail_for(listener, Duration::from_secs(50));
    let mut producing = Producing::start(topic, 40, 0);
    assert!(
        tokio::task::block_in_place(
            || first.wait_log("circuit breaker open", Duration::from_secs(30))
        ),
        "{}",
        first.log_text()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let committed_at_kill = committed_total(topic);
    let (_, log) = tokio::task::block_in_place(|| first.signal("-KILL"));
    assert!(committed_at_kill > 0, "{log}");
    let second = Member::start(&cfg, d.path("second.log"), "info");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let n = producing.finish();
    let got_healthy = wait_all(&healthy, n, Duration::from_secs(120)).await;
    let got_failing = wait_all(&failing, n, Duration::from_secs(120)).await;
    let (code, log) = tokio::task::block_in_place(|| second.signal("-TERM"));
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("backlog from an earlier run"), "{log}");
    assert_nothing_lost(n, &got_healthy, &got_failing, &log);
    healthy.stop();
    failing.stop();
}

/// The RSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_blocks_and_pauses_the_consumer_with_bounded_memory() {
    let topic = "iso-full";
    support::broker::create_topic(topic, 2);
    let d = support::Dir::new();
    let healthy = mns(Duration::ZERO).await;
    let failing = mns(Duration::from_secs(3600)).await;
    let cfg = config(
        &d,
        topic,
        &healthy.endpoint(),
        &failing.endpoint(),
        "[sinks.failing.backlog]\nmax_mib = 1\n",
    );
    // 40,000 records of about 1 KiB of message each: 40 MiB for a 1 MiB
    // backlog, and more than the queues hold (8,192 records each).
    let mut producing = Producing::start(topic, 1_000_000, 300);
    while producing.sent.load(Ordering::SeqCst) < 40_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let n = producing.finish();
    let member = Member::start(&cfg, d.path("run.log"), "info");
    tokio::task::block_in_place(|| member.joined());
    assert!(
        tokio::task::block_in_place(
            || member.wait_log("backlog full: waiting for room", Duration::from_secs(60))
        ),
        "{}",
        member.log_text()
    );
    let pid = member.child.id();
    let mut peak = 0;
    let mut seen = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(rss_kib(pid));
        seen.push(committed_total(topic));
    }
    let (code, log) = tokio::task::block_in_place(|| member.signal("-TERM"));
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("pausing consumption"), "{log}");
    // SIGTERM ends the wait for room: the drain does not run out its
    // deadline (what waited is read again after a restart).
    assert!(!log.contains("drain deadline reached"), "{log}");
    let last = *seen.last().unwrap();
    assert!(
        last < n as i64 / 2,
        "committed {last} of {n} with a full backlog"
    );
    assert_eq!(
        seen[seen.len() - 3..],
        [last, last, last],
        "commits moved on while blocked: {seen:?}"
    );
    assert!(peak < 200 * 1024, "RSS {peak} KiB");
    let backlog: u64 = std::fs::read_dir(d.path("state/backlog/failing"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(
        backlog < 2 << 20,
        "backlog of {backlog} bytes for a 1 MiB bound"
    );
    healthy.stop();
    failing.stop();
}

/// The failing sink's breaker is open and its backlog holds about 25 s of
/// messages at `rate`; the healthy sink's breaker is closed.
fn assert_isolated(during_outage: &str, rate: u64) {
    assert_eq!(
        metric(
            during_outage,
            "ossnotify_sink_breaker_state{sink=\"failing\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            during_outage,
            "ossnotify_sink_breaker_state{sink=\"healthy\"}"
        ),
        0.0
    );
    assert!(
        metric(
            during_outage,
            "ossnotify_sink_backlog_messages{sink=\"failing\"}"
        ) > (rate * 20) as f64
    );
    assert!(
        metric(
            during_outage,
            "ossnotify_sink_backlog_bytes{sink=\"failing\"}"
        ) > 0.0
    );
    assert!(
        metric(
            during_outage,
            "ossnotify_sink_backlog_oldest_age_seconds{sink=\"failing\"}"
        ) > 20.0
    );
}

/// The healthy sink's produce-to-accept latencies of the messages sent in
/// the outage's first 55 s, and of those sent after 75 s.
fn latencies(
    healthy: &DevServer,
    sent_at: &[SystemTime],
    outage_wall: SystemTime,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut during, mut after) = (Vec::new(), Vec::new());
    for a in healthy.accepted() {
        let Some(t) = seq_of(&a.body).and_then(|s| sent_at.get(s as usize)) else {
            continue;
        };
        let Ok(at) = t.duration_since(outage_wall) else {
            continue;
        };
        let latency = a.received.duration_since(*t).unwrap_or_default();
        if at < Duration::from_secs(55) {
            during.push(latency);
        } else if at > Duration::from_secs(75) {
            after.push(latency);
        }
    }
    (during, after)
}

/// How many times each seq arrived in `topic` of `broker` (read from the
/// beginning, by assignment), once `n` distinct seqs are there or `within`
/// is over.
fn kafka_arrivals(broker: u16, topic: &str, n: u64, within: Duration) -> HashMap<u64, usize> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{broker}"))
        .set("group.id", "iso-check")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = HashMap::new();
    let deadline = Instant::now() + within;
    while (got.len() as u64) < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let body = std::str::from_utf8(m.payload().unwrap_or_default()).unwrap();
            *got.entry(seq_of(body).expect(body)).or_insert(0) += 1;
        }
    }
    got
}

/// How many times each seq is a line of the file sink's output.
fn file_arrivals(path: &std::path::Path) -> HashMap<u64, usize> {
    let mut got = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        if let Some(s) = seq_of(line) {
            *got.entry(s).or_insert(0) += 1;
        }
    }
    got
}

/// The `kafka` sink's cluster out of reach (a proxy in front of a second
/// tansu cuts every connection): the file sink keeps receiving, offsets
/// move on, the Kafka sink's breaker opens and its messages wait in its
/// backlog; once the cluster is reachable again they all arrive without
/// any command, and none is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_sink_whose_cluster_is_out_of_reach_backlogs_and_catches_up() {
    let topic = "iso-kafka-in";
    support::broker::create_topic(topic, 2);
    let target = support::free_port();
    let proxy = support::proxy::Proxy::start(target).await;
    let cluster = support::broker::Another::start(target, proxy.port);
    cluster.create_topic("iso-kafka-out", 1);
    let d = support::Dir::new();
    let out = d.path("file-sink.ndjson");
    let metrics_port = support::free_port();
    let cfg = member_config(
        &d,
        topic,
        &format!(
            r#"[metrics]
listen = "127.0.0.1:{metrics_port}"

[sinks.file]
type = "file"
path = "{out}"

[sinks.kafka]
type = "kafka"
brokers = "127.0.0.1:{proxy}"
topic = "iso-kafka-out"
librdkafka = {{ "message.timeout.ms" = "3000" }}
breaker = {{ failures = 3, probe_initial_ms = 500, probe_max_ms = 2000 }}"#,
            out = out.display(),
            proxy = proxy.port,
        ),
        r#"["file", "kafka"]"#,
    );
    let batch = |seqs: std::ops::Range<u64>| seqs.map(|s| record(s, 0)).collect::<Vec<_>>();
    support::broker::produce(topic, &batch(0..100));
    let member = Member::start(&cfg, d.path("run.log"), "info");
    tokio::task::block_in_place(|| member.joined());
    // Healthy: the first 100 reach both.
    let got = tokio::task::block_in_place(|| {
        kafka_arrivals(proxy.port, "iso-kafka-out", 100, Duration::from_secs(60))
    });
    assert_eq!(got.len(), 100, "{}", member.log_text());

    // The cluster goes out of reach; 300 more records.
    proxy.cut();
    support::broker::produce(topic, &batch(100..400));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut metrics = String::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        metrics = support::http_get(metrics_port, "/metrics");
        let backlogged = metric(&metrics, "ossnotify_sink_backlog_messages{sink=\"kafka\"}");
        if file_arrivals(&out).len() == 400 && committed_total(topic) == 400 && backlogged > 0.0 {
            break;
        }
    }
    assert_eq!(
        file_arrivals(&out).len(),
        400,
        "the file sink stalled behind the Kafka sink:\n{}",
        member.log_text()
    );
    assert_eq!(committed_total(topic), 400, "offsets stopped moving");
    // Open, or half-open while a probe is out.
    assert_ne!(
        metric(&metrics, "ossnotify_sink_breaker_state{sink=\"kafka\"}"),
        0.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "ossnotify_sink_backlog_messages{sink=\"kafka\"}") > 0.0,
        "{metrics}"
    );

    // Reachable again: everything arrives, without any command.
    proxy.heal();
    let got = tokio::task::block_in_place(|| {
        kafka_arrivals(proxy.port, "iso-kafka-out", 400, Duration::from_secs(90))
    });
    let lost: Vec<u64> = (0..400).filter(|s| !got.contains_key(s)).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        metrics = support::http_get(metrics_port, "/metrics");
        if metric(&metrics, "ossnotify_sink_backlog_messages{sink=\"kafka\"}") == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (code, log) = tokio::task::block_in_place(|| member.signal("-TERM"));
    eprintln!(
        "kafka sink: {} of 400 distinct, {} duplicates, {} redelivered from the backlog; producer replaced: {}",
        got.len(),
        got.values().map(|c| c - 1).sum::<usize>(),
        metric(&metrics, "ossnotify_sink_redelivered_total{sink=\"kafka\"}"),
        log.contains("a new one takes over"),
    );
    assert!(lost.is_empty(), "the Kafka sink lost {lost:?}:\n{log}");
    assert_eq!(
        metric(&metrics, "ossnotify_sink_backlog_messages{sink=\"kafka\"}"),
        0.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "ossnotify_sink_redelivered_total{sink=\"kafka\"}") > 0.0,
        "{metrics}"
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("circuit breaker open"), "{log}");
    assert!(log.contains("circuit breaker closed"), "{log}");
    assert!(ossnotify_sinks::dead_letter::read_all(&d.path("state"))
        .unwrap()
        .is_empty());
}
