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

use std::time::{Duration, Instant};

use ossnotify_mns_dev::{DevConfig, DevServer};
use support::arrivals::{arrivals, missing, seq_of, wait_all};
use support::Member;

/// A PutObject whose request id is `seq`.
fn record(seq: u64) -> String {
    format!(
        r#"{{"time":"2026-11-27T10:00:00Z","operation":"PutObject","bucket":"sl","object":"k-{seq}","bucket_location":"oss-cn-shenzhen","owner_id":"1","request_id":"r-{seq}","http_status":200}}"#
    )
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

/// Two members of one group on `topic` with a healthy endpoint and one
/// whose listener is bound but not served yet; `cfg[2]` is a third
/// member's config, for one that joins later.
struct Members {
    d: support::Dir,
    healthy: DevServer,
    failing_listener: tokio::net::TcpListener,
    cfg: Vec<std::path::PathBuf>,
    a: Member,
    b: Member,
}

async fn two_members(topic: &str) -> Members {
    let d = support::Dir::new();
    let healthy = mns_on(listener().await.0, Duration::ZERO);
    let (failing_listener, failing_endpoint) = listener().await;
    let cfg: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|m| config(&d, m, topic, &healthy.endpoint(), &failing_endpoint))
        .collect();
    // Redelivery's and the breaker's debug lines too: the churn test has
    // failed twice in CI with a member holding the backlog partitions and
    // sending nothing, and its logs must say why if it fails again.
    let log =
        "info,ossnotify::pipeline::delivery::kafka_redelivery=debug,ossnotify_sinks::breaker=debug";
    let a = Member::start(&cfg[0], d.path("a.log"), log);
    let b = Member::start(&cfg[1], d.path("b.log"), log);
    tokio::task::block_in_place(|| {
        a.joined();
        b.joined();
    });
    Members {
        d,
        healthy,
        failing_listener,
        cfg,
        a,
        b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_scaled_away_during_an_outage_with_their_disks_lose_nothing() {
    let topic = "stateless-down";
    support::broker::create_topic(topic, 6);
    let Members {
        d,
        healthy,
        failing_listener,
        cfg,
        a,
        b,
    } = two_members(topic).await;
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

/// A config whose sink `q` publishes to MNS topic `mns_topic` on `mns`,
/// with the dead letters in `store`.
fn dl_config(
    d: &support::Dir,
    name: &str,
    topic: &str,
    group: &str,
    store: &str,
    mns: &str,
    mns_topic: &str,
) -> std::path::PathBuf {
    d.write(
        &format!("{name}.toml"),
        &format!(
            r#"{source}
[pipeline]
commit_interval_ms = 100

[dead_letter]
store = "{store}"
path = "{dl}"

[sinks.q]
type = "mns_topic"
endpoint = "{mns}"
topic = "{mns_topic}"
access_key_id = "AK"
access_key_secret = "SK"

[[rules]]
id = "all"
bucket = "sl"
events = ["ObjectCreated:PutObject"]
sinks = ["q"]
"#,
            source = support::kafka_source(support::broker::brokers(), topic, group, "", ""),
            dl = d.path(&format!("dl-{group}")).display(),
        ),
    )
}

/// `ossnotify dead-letter ARGS` (stdout, and it must succeed).
fn dead_letter(args: &[&str]) -> String {
    let mut all = vec!["dead-letter"];
    all.extend_from_slice(args);
    let out = support::run(&all, b"");
    assert!(
        out.status.success(),
        "dead-letter {args:?}: {}",
        support::text(&out.stderr)
    );
    support::text(&out.stdout)
}

/// `dead-letter ls` rows without what differs between stores and runs
/// (the id, the time, the error's text after its code).
fn rows(ls: &str) -> Vec<String> {
    let mut v: Vec<String> = ls
        .lines()
        .filter(|l| !l.starts_with("ID\t"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let code = f.get(7).map_or("", |e| e.split(':').next().unwrap_or(""));
            format!("{}|{code}", f[2..7.min(f.len())].join("|"))
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_in_kafka_carry_their_context_and_the_commands_work_as_on_disk() {
    let topic = "stateless-dl";
    support::broker::create_topic(topic, 1);
    let d = support::Dir::new();
    let mns = mns_on(listener().await.0, Duration::ZERO);
    let endpoint = mns.endpoint();
    let (kafka_group, disk_group) = ("dl-kafka", "dl-disk");
    // MNS has no topic `gone`: TopicNotExist, a permanent failure.
    let broken = |store, group| dl_config(&d, group, topic, group, store, &endpoint, "gone");
    let fixed = |store, group| {
        dl_config(
            &d,
            &format!("{group}-fixed"),
            topic,
            group,
            store,
            &endpoint,
            "oss-events",
        )
    };
    let mut records: Vec<String> = (0..3).map(record).collect();
    records.push("not json".into());
    tokio::task::block_in_place(|| support::broker::produce(topic, &records));
    // Broken on purpose: started without the probe, which would refuse them.
    let unchecked = ["--no-check-sinks"];
    let in_kafka = Member::start_with(
        &broken("kafka", kafka_group),
        d.path("k.log"),
        "info",
        &unchecked,
    );
    let on_disk = Member::start_with(
        &broken("disk", disk_group),
        d.path("d.log"),
        "info",
        &unchecked,
    );
    for group in [kafka_group, disk_group] {
        let deadline = Instant::now() + Duration::from_secs(120);
        while support::committed(&support::group_reader(group), topic, 1)
            .values()
            .sum::<i64>()
            < 4
        {
            assert!(
                Instant::now() < deadline,
                "{group} did not commit:\n{}\n{}",
                in_kafka.log_text(),
                on_disk.log_text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // The topic, as stock tools see it: the value and the context headers.
    let cc = ossnotify_sinks::kafka_store::client_config(
        support::broker::brokers(),
        &Default::default(),
    );
    let dl_topic = format!("{kafka_group}.dead-letter");
    let mut stored = Vec::new();
    ossnotify_sinks::kafka_store::read::read_range(&cc, &dl_topic, "a-reader", |s| stored.push(s))
        .unwrap();
    assert_eq!(stored.len(), 4, "{stored:?}\n{}", in_kafka.log_text());
    let delivery = stored
        .iter()
        .find(|s| s.header("ossnotify.kind") == Some("delivery"))
        .unwrap();
    for (h, want) in [
        ("ossnotify.sink", "q"),
        ("ossnotify.rule", "all"),
        ("ossnotify.error.code", "TopicNotExist"),
        ("ossnotify.attempts", "1"),
    ] {
        assert_eq!(delivery.header(h), Some(want), "{h} in {delivery:?}");
    }
    assert!(delivery
        .header("ossnotify.key")
        .unwrap()
        .starts_with("sl/k-"));
    // Where its record came from, as for an invalid record.
    assert_eq!(delivery.header("ossnotify.source.topic"), Some(topic));
    assert_eq!(delivery.header("ossnotify.source.partition"), Some("0"));
    let offset: i64 = delivery
        .header("ossnotify.source.offset")
        .unwrap()
        .parse()
        .unwrap();
    assert!((0..3).contains(&offset), "{offset}");
    assert!(delivery
        .header("ossnotify.error.message")
        .unwrap()
        .starts_with("TopicNotExist"));
    for h in ["ossnotify.failure.first", "ossnotify.failure.last"] {
        let t: i64 = delivery.header(h).unwrap().parse().unwrap();
        assert!(t > 1_700_000_000_000, "{h} = {t}");
    }
    assert!(seq_of(std::str::from_utf8(&delivery.value).unwrap()).is_some());
    let invalid = stored
        .iter()
        .find(|s| s.header("ossnotify.kind") == Some("invalid_record"))
        .unwrap();
    assert_eq!(invalid.value, b"not json");
    assert_eq!(invalid.header("ossnotify.source.topic"), Some(topic));
    assert_eq!(invalid.header("ossnotify.source.partition"), Some("0"));
    assert_eq!(invalid.header("ossnotify.source.offset"), Some("3"));

    // The commands give the same answers on both stores.
    let (k, dk) = (broken("kafka", kafka_group), broken("disk", disk_group));
    let (k, dk) = (k.to_str().unwrap(), dk.to_str().unwrap());
    for filter in [
        &[][..],
        &["--kind", "invalid_record"],
        &["--sink", "q"],
        &["--rule", "all"],
        &["--since", "1h"],
        &["--until", "1h"],
    ] {
        let ls = |c: &str| {
            let mut a = vec!["ls", "-c", c];
            a.extend_from_slice(filter);
            rows(&dead_letter(&a))
        };
        assert_eq!(ls(k), ls(dk), "ls {filter:?}");
        let stats = |c: &str| {
            let mut a = vec!["stats", "-c", c];
            a.extend_from_slice(filter);
            dead_letter(&a)
        };
        assert_eq!(stats(k), stats(dk), "stats {filter:?}");
    }
    assert_eq!(rows(&dead_letter(&["ls", "-c", k])).len(), 4);
    assert_eq!(
        rows(&dead_letter(&["ls", "-c", k, "--until", "1h"])).len(),
        0
    );
    let shown: Vec<serde_json::Value> =
        serde_json::Deserializer::from_str(&dead_letter(&["show", "-c", k, "--sink", "q"]))
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
    assert_eq!(shown.len(), 3);
    assert_eq!(shown[0]["payload"]["events"][0]["oss"]["ruleId"], "all");

    // Replay (the sink fixed) and purge, beside the running daemons.
    for (store, group, c) in [("kafka", kafka_group, k), ("disk", disk_group, dk)] {
        let fixed = fixed(store, group);
        let f = fixed.to_str().unwrap();
        let out = dead_letter(&["replay", "-c", f, "--sink", "q"]);
        assert!(
            out.contains("replay: 3 delivered, 0 still failing"),
            "{store}: {out}"
        );
        assert_eq!(rows(&dead_letter(&["ls", "-c", c])).len(), 1, "{store}");
        assert!(rows(&dead_letter(&["ls", "-c", c]))[0].starts_with("invalid_record|"));
        let out = dead_letter(&["purge", "-c", c, "--kind", "invalid_record"]);
        assert_eq!(out, "purge: 1 entries taken out\n", "{store}");
        assert!(rows(&dead_letter(&["ls", "-c", c])).is_empty(), "{store}");
    }
    // Both replays arrived.
    assert_eq!(arrivals(&mns).values().sum::<usize>(), 6);
    // In Kafka, the store's group moved past everything taken out.
    let c =
        ossnotify_sinks::kafka_store::read::consumer(&cc, &format!("{kafka_group}.dead-letter"))
            .unwrap();
    assert_eq!(
        ossnotify_sinks::kafka_store::read::watermarks(&c, &dl_topic)
            .unwrap()
            .waiting(),
        0
    );
    for m in [in_kafka, on_disk] {
        let (code, log) = tokio::task::block_in_place(|| m.signal("-TERM"));
        assert_eq!(code, Some(0), "{log}");
    }
    mns.stop();
}

/// A cluster that will not create the store topics: `run` stops at once
/// with one error naming each topic and how to create it; `validate` names
/// the same topics.
#[test]
fn a_cluster_that_refuses_the_store_topics_stops_the_start_naming_them() {
    // TOPIC_AUTHORIZATION_FAILED for every topic.
    let cluster = support::refusing_broker::RefusingBroker::start(29);
    let d = support::Dir::new();
    let cfg = d.write(
        "refused.toml",
        &format!(
            r#"{}
[sinks.q]
type = "mns_queue"
endpoint = "http://127.0.0.1:9"
queue = "q"
access_key_id = "AK"
access_key_secret = "SK"

[[rules]]
id = "all"
bucket = "sl"
events = ["ObjectCreated:*"]
sinks = ["q"]
"#,
            support::kafka_source(&cluster.brokers(), "in", "g", "", "")
        ),
    );
    let started = Instant::now();
    let (code, log) =
        Member::start(&cfg, d.path("run.log"), "info").wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(2), "{log}");
    assert!(started.elapsed() < Duration::from_secs(30), "{log}");
    for want in [
        "did not create the store topics",
        "g.dead-letter",
        "g.backlog.q",
        "kafka-topics.sh --create --topic g.backlog.q --partitions 1 --config retention.ms=-1",
    ] {
        assert!(log.contains(want), "{want:?} in:\n{log}");
    }
    let (code, out) = support::validate(&cfg);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Kafka topic g.dead-letter"), "{out}");
    assert!(
        out.contains(
            "Kafka topic g.backlog.q (1 partitions, replication factor -1, retention.ms -1)"
        ),
        "{out}"
    );
}

/// Redelivery survives churn: while a backlog is being redelivered, the
/// members that hold it are stopped (one SIGTERMed, one killed -9) and a
/// new one joins; every message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_survives_members_stopping_killed_and_joining() {
    let topic = "stateless-churn";
    support::broker::create_topic(topic, 3);
    let Members {
        d,
        healthy,
        failing_listener,
        cfg,
        a,
        b,
    } = two_members(topic).await;
    // Down for 30 s, then slow (500 ms a request, 64 at once: about 128
    // messages a second), so that redelivery takes a while.
    let failing = DevServer::start(
        DevConfig {
            fail_first: Duration::from_secs(30),
            latency: Duration::from_millis(500),
            keep: usize::MAX,
            keep_bytes: usize::MAX,
            ..support::dev_config()
        },
        failing_listener,
    )
    .unwrap();
    let mut n = 0u64;
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(25) {
        let batch: Vec<String> = (n..n + 60).map(record).collect();
        tokio::task::block_in_place(|| support::broker::produce(topic, &batch));
        n += 60;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Redelivery under way: some of the backlog has arrived, not all. (The
    // backlog group's first join on the test broker can take two rounds of
    // ~25 s when its members join a moment apart.)
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let got = arrivals(&failing).len() as u64;
        if got > 50 && got < n - 200 {
            break;
        }
        assert!(
            Instant::now() < deadline && got < n - 200,
            "redelivery never caught mid-way ({got} of {n})\n--- a:\n{}\n--- b:\n{}",
            a.log_text(),
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mid = arrivals(&failing).len();
    let (code_a, log_a) = tokio::task::block_in_place(|| a.signal("-TERM"));
    let (_, log_b) = tokio::task::block_in_place(|| b.signal("-KILL"));
    assert_eq!(code_a, Some(0), "{log_a}");
    let redelivering = |log: &str| log.contains("circuit breaker closed");
    assert!(
        redelivering(&log_a) || redelivering(&log_b),
        "{log_a}\n{log_b}"
    );
    let c = Member::start(&cfg[2], d.path("c.log"), "info");
    let got_healthy = wait_all(&healthy, n, Duration::from_secs(180)).await;
    let got_failing = wait_all(&failing, n, Duration::from_secs(180)).await;
    let (code, log_c) = tokio::task::block_in_place(|| c.signal("-TERM"));
    eprintln!(
        "{n} records; {mid} had reached the failing endpoint at the stop; then healthy {} distinct, failing {} distinct, {} duplicates there",
        got_healthy.len(),
        got_failing.len(),
        got_failing.values().map(|v| v - 1).sum::<usize>()
    );
    let (h, f) = (missing(&got_healthy, n), missing(&got_failing, n));
    assert!(h.is_empty(), "the healthy sink lost {h:?}:\n{log_c}");
    assert!(f.is_empty(), "the failing sink lost {f:?}:\n{log_c}");
    assert_eq!(code, Some(0), "{log_c}");
    healthy.stop();
    failing.stop();
}

/// The broker restarts while messages wait in a Kafka backlog (tansu on S3
/// storage, so its data survives): nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_while_messages_wait_in_the_backlog_loses_nothing() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let d = support::Dir::new();
    let broker = tokio::task::block_in_place(|| support::broker::Durable::start(d.path("broker")));
    let topic = "restart-in";
    tokio::task::block_in_place(|| broker.create_topic(topic, 2));
    let healthy = mns_on(listener().await.0, Duration::ZERO);
    let (failing_listener, failing_endpoint) = listener().await;
    let cfg = config(&d, "m", topic, &healthy.endpoint(), &failing_endpoint);
    // The same member, pointed at the durable broker.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(support::broker::brokers(), &broker.brokers());
    std::fs::write(&cfg, text).unwrap();
    let member = Member::start(&cfg, d.path("m.log"), "info");
    tokio::task::block_in_place(|| member.joined());
    let failing = mns_on(failing_listener, Duration::from_secs(60));
    let outage = Instant::now();
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("message.timeout.ms", "120000")
        .create()
        .unwrap();
    let mut n = 0u64;
    let produce = |from: u64, to: u64| {
        for s in from..to {
            let payload = record(s);
            while producer
                .send(BaseRecord::<(), _>::to(topic).payload(&payload))
                .is_err()
            {
                producer.poll(Duration::from_millis(10));
            }
        }
        tokio::task::block_in_place(|| producer.flush(Duration::from_secs(120)).unwrap());
    };
    while outage.elapsed() < Duration::from_secs(20) {
        produce(n, n + 40);
        n += 40;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let backlog_topic = format!("{topic}.backlog.failing");
    let cc = ossnotify_sinks::kafka_store::client_config(&broker.brokers(), &Default::default());
    let c = ossnotify_sinks::kafka_store::read::consumer(&cc, &format!("{topic}.backlog")).unwrap();
    let waiting = ossnotify_sinks::kafka_store::read::watermarks(&c, &backlog_topic)
        .unwrap()
        .waiting();
    assert!(waiting > 0, "{}", member.log_text());
    drop(c);
    // The restart, with messages waiting in the backlog; then more input.
    tokio::task::block_in_place(|| broker.restart());
    while outage.elapsed() < Duration::from_secs(40) {
        produce(n, n + 40);
        n += 40;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let got_healthy = wait_all(&healthy, n, Duration::from_secs(180)).await;
    let got_failing = wait_all(&failing, n, Duration::from_secs(180)).await;
    let (code, log) = tokio::task::block_in_place(|| member.signal("-TERM"));
    eprintln!(
        "{n} records; {waiting} in the backlog at the restart; healthy {} distinct, failing {} distinct",
        got_healthy.len(),
        got_failing.len()
    );
    let (h, f) = (missing(&got_healthy, n), missing(&got_failing, n));
    assert!(h.is_empty(), "the healthy sink lost {h:?}:\n{log}");
    assert!(f.is_empty(), "the failing sink lost {f:?}:\n{log}");
    assert_eq!(code, Some(0), "{log}");
    healthy.stop();
    failing.stop();
}
