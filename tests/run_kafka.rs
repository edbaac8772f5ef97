//! `ossnotify run` with the Kafka source, against the real test broker
//! (tansu) and mns-dev: everything `match` predicts arrives; SIGTERM drains
//! and exits 0; the committed offsets reach the end of every partition;
//! invalid records are dead-lettered with topic/partition/offset and line.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ossnotify_sinks::mns::dev_server::{DevConfig, DevServer};
use ossnotify_sinks::DeadLetterStore;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const COPIES: usize = 40;

fn counts(v: impl Iterator<Item = String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in v {
        *m.entry(s).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_mns_with_commits_and_sigterm() {
    let brokers = support::broker::brokers().to_owned();
    support::broker::create_topic("oplog-e2e", 3);
    let d = support::Dir::new();

    // The corpus: the demo logs, COPIES times, 1 to 3 records per message.
    let demo = std::fs::read_to_string(support::repo("configs/demo-oplogs.ndjson")).unwrap();
    let lines: Vec<&str> = demo.lines().collect();
    let mut corpus = String::new();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let mut n = 0;
    for copy in 0..COPIES {
        let mut i = 0;
        while i < lines.len() {
            let take = 1 + (copy + i) % 3;
            let chunk = &lines[i..(i + take).min(lines.len())];
            let payload = chunk.join("\n");
            corpus.push_str(&payload);
            corpus.push('\n');
            let key = format!("k{n}");
            producer
                .send(BaseRecord::to("oplog-e2e").key(&key).payload(&payload))
                .unwrap();
            n += 1;
            i += take;
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let corpus_path = d.write("corpus.ndjson", &corpus);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = DevServer::start(
        DevConfig {
            access_key_id: "AK".into(),
            access_key_secret: "SK".into(),
            queues: vec!["oss-events".into()],
            ..DevConfig::default()
        },
        listener,
    )
    .unwrap();
    let cfg = d.write(
        "kafka.toml",
        &format!(
            r#"rules_dir = "{rules}"

[source]
type = "kafka"
brokers = "{brokers}"
topics = ["oplog-e2e"]
group_id = "ossnotify-e2e"
key_encoding = "url"

[source.librdkafka]
"session.timeout.ms" = "10000"
"max.poll.interval.ms" = "30000"

[pipeline]
workers = 2
queue_capacity = 16
drain_timeout_ms = 600000

[dead_letter]
path = "{dl}"

[sinks.console]
type = "mns_queue"
endpoint = "{endpoint}"
queue = "oss-events"
access_key_id = "AK"
access_key_secret = "SK"
"#,
            rules = support::repo("configs/rules.d").display(),
            dl = d.path("dead-letter").display(),
            endpoint = server.endpoint()
        ),
    );

    // What should arrive: `match` over the same records.
    let out = support::run(
        &[
            "match",
            "-c",
            cfg.to_str().unwrap(),
            corpus_path.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out.stderr));
    let want = counts(support::text(&out.stdout).lines().map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["message"].to_string()
    }));
    let expected: usize = want.values().sum();
    assert_eq!(expected, 7 * COPIES);

    let mut child = support::bin()
        .args(["run", "-c", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A group join on tansu can take ~25 s.
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.accepted().len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the tracker commit, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let stopped = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let s = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        (s, err)
    })
    .await
    .unwrap();
    assert_eq!(status.0.code(), Some(0), "{}", status.1);
    // The drain ends by itself, long before its deadline.
    assert!(!status.1.contains("drain deadline"), "{}", status.1);
    assert!(
        stopped.elapsed() < Duration::from_secs(20),
        "drain took {:?}",
        stopped.elapsed()
    );
    assert!(
        status
            .1
            .contains(&format!("messages: {expected} delivered")),
        "{}",
        status.1
    );

    let got = counts(server.accepted().into_iter().map(|a| {
        let json = base64::engine::general_purpose::STANDARD
            .decode(&a.body)
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&json)
            .unwrap()
            .to_string()
    }));
    assert_eq!(
        got, want,
        "exactly the predicted messages (no restart here, so no duplicates)"
    );

    // Committed offsets reach the end of every partition.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "ossnotify-e2e")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition("oplog-e2e", p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    // Offsets start at 0 and are contiguous, so the committed next-offsets
    // of all partitions add up to every message produced exactly when
    // everything is committed. (tansu's watermarks are not reliable here.)
    let mut total = 0;
    for e in committed.elements() {
        match e.offset() {
            Offset::Offset(o) => total += o,
            other => panic!(
                "partition {} has no committed offset: {other:?}",
                e.partition()
            ),
        }
    }
    assert_eq!(total as usize, n);

    // Invalid records: dead-lettered with their coordinates.
    let store = DeadLetterStore::open(&d.path("dead-letter")).unwrap();
    let invalid: Vec<_> = store
        .read_all()
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "invalid_record")
        .collect();
    assert_eq!(invalid.len(), 2 * COPIES);
    assert!(
        invalid
            .iter()
            .all(|e| e.source.starts_with("oplog-e2e/") && e.source.contains(" line ")),
        "{:?}",
        invalid[0]
    );
    server.stop();
}
