//! At-least-once through rebalances and failures, against the real test
//! broker (tansu), real `ossnotify run` processes and mns-dev with faults:
//!
//! - a member joins while another has messages in flight on partitions it
//!   keeps, new records arrive on them, and the first member is killed -9
//!   and restarted: with cooperative-sticky and with eager (range)
//!   assignment. Nothing is lost, and all along, every committed offset
//!   covers only records whose messages had arrived (or were dead-lettered);
//!   no member commits a partition it does not hold.
//! - a worker whose dead-letter write fails (the disk is full) stops the
//!   process with exit 2 and that reason, and the committed offset does not
//!   pass the record.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ossnotify_mns_dev::{DevConfig, DevServer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use support::Member;

const PARTITIONS: i32 = 6;
/// The log level the members run at: the tracker's commits are logged at
/// debug, each with its offsets, for the ownership check.
const LOG: &str = "info,ossnotify::pipeline::tracker=debug";

/// One record: a PutObject whose request id names its partition and offset.
fn record(partition: i32, offset: i64) -> String {
    format!(
        r#"{{"time":"2026-11-27T10:00:00Z","operation":"PutObject","bucket":"rb","object":"k-{partition}-{offset}","bucket_location":"oss-cn-shenzhen","owner_id":"1","request_id":"r-{partition}-{offset}","http_status":200}}"#
    )
}

/// Produces offsets `from..to` of every partition (the topic is new, so a
/// record's offset is its index).
fn produce(topic: &str, from: i64, to: i64) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", support::broker::brokers())
        .create()
        .unwrap();
    for o in from..to {
        for p in 0..PARTITIONS {
            let payload = record(p, o);
            loop {
                match producer.send(
                    BaseRecord::<(), _>::to(topic)
                        .partition(p)
                        .payload(&payload),
                ) {
                    Ok(()) => break,
                    Err(_) => {
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn config(d: &support::Dir, name: &str, topic: &str, strategy: &str, endpoint: &str) -> PathBuf {
    d.write(
        &format!("{name}.toml"),
        &format!(
            r#"{source}
[pipeline]
workers = 2
queue_capacity = 16
drain_timeout_ms = 60000

[dead_letter]
store = "disk"
path = "{dl}"

[backlog]
store = "disk"

[sinks.q]
type = "mns_queue"
endpoint = "{endpoint}"
queue = "oss-events"
access_key_id = "AK"
access_key_secret = "SK"
batch = {{ max_messages = 4 }}
request = {{ max_in_flight = 2 }}
[sinks.q.retry]
max_attempts = 1000
initial_backoff_ms = 20
max_backoff_ms = 200

[[rules]]
id = "puts"
bucket = "rb"
events = ["ObjectCreated:PutObject"]
sinks = ["q"]
"#,
            source = support::kafka_source(
                support::broker::brokers(),
                topic,
                topic,
                "",
                &format!("\"partition.assignment.strategy\" = \"{strategy}\""),
            ),
            dl = d.path(&format!("dead-letter-{name}")).display(),
        ),
    )
}

/// The request id in a delivered (Base64) notification.
fn request_id(body: &str) -> String {
    let json = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["events"][0]["responseElements"]["requestId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Request ids delivered to mns-dev, with how often each arrived, plus
/// those dead-lettered in the stores under `dir`.
fn done(server: &DevServer, dir: &Path) -> HashMap<String, usize> {
    let mut got = HashMap::new();
    for a in server.accepted() {
        *got.entry(request_id(&a.body)).or_insert(0) += 1;
    }
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        for d in ossnotify_sinks::dead_letter::read_all(&entry.path()).unwrap_or_default() {
            *got.entry(request_id(&d.payload)).or_insert(0) += 1;
        }
    }
    got
}

/// Waits (up to 240 s) until the message of every record at offsets
/// `0..upto` of every partition has arrived or was dead-lettered; on
/// timeout, fails with how many are missing and `logs()`.
async fn wait_all_arrived(server: &DevServer, dir: &Path, upto: i64, logs: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(240);
    let all: Vec<String> = (0..PARTITIONS)
        .flat_map(|p| (0..upto).map(move |o| format!("r-{p}-{o}")))
        .collect();
    loop {
        let got = done(server, dir);
        let missing = all.iter().filter(|r| !got.contains_key(*r)).count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} messages never arrived:\n{}",
            all.len(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Stops each member with SIGTERM (one after the other); each must exit 0.
/// Their logs.
fn stop_all<const N: usize>(members: [Member; N]) -> [String; N] {
    members.map(|m| {
        let (code, log) = m.signal("-TERM");
        assert_eq!(code, Some(0), "{log}");
        log
    })
}

/// Every member's log: no commit of a partition it did not hold, no panic.
fn assert_clean_logs(topic: &str, logs: &[(&str, &str)]) {
    for (name, log) in logs {
        let bad = commits_outside_ownership(log, topic);
        assert!(bad.is_empty(), "{name}: {bad:?}");
        assert!(!log.contains("panicked"), "{name}:\n{log}");
    }
}

/// The group committed every partition up to `end`.
fn assert_committed_to(topic: &str, end: i64) {
    let got = tokio::task::block_in_place(|| {
        support::committed(&support::group_reader(topic), topic, PARTITIONS)
    });
    let want: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, end)).collect();
    assert_eq!(got, want);
}

/// Watches the group's commits while the test runs: each time, the
/// committed offsets first, then what had arrived; every record below a
/// committed offset must be among what had arrived.
struct CommitWatch {
    stop: Arc<AtomicBool>,
    violations: Arc<Mutex<Vec<String>>>,
    thread: std::thread::JoinHandle<u64>,
}

impl CommitWatch {
    fn start(topic: &str, server: Arc<DevServer>, dir: &Path) -> CommitWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let (topic, dir) = (topic.to_owned(), dir.to_owned());
        let thread = {
            let (stop, violations) = (stop.clone(), violations.clone());
            std::thread::spawn(move || {
                let consumer = support::group_reader(&topic);
                let mut checks = 0;
                while !stop.load(Ordering::SeqCst) {
                    let c = support::committed(&consumer, &topic, PARTITIONS);
                    let arrived = done(&server, &dir);
                    for (p, upto) in c {
                        for o in 0..upto {
                            if !arrived.contains_key(&format!("r-{p}-{o}")) {
                                violations.lock().unwrap().push(format!(
                                    "partition {p} committed at {upto} but offset {o} had not arrived"
                                ));
                                break;
                            }
                        }
                    }
                    checks += 1;
                    std::thread::sleep(Duration::from_millis(300));
                }
                checks
            })
        };
        CommitWatch {
            stop,
            violations,
            thread,
        }
    }

    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let checks = self.thread.join().unwrap();
        (checks, self.violations.lock().unwrap().clone())
    }
}

/// Reads a member's log in order: partitions assigned and given up, and
/// every commit. A commit of a partition not held at that point is a
/// violation.
fn commits_outside_ownership(log: &str, topic: &str) -> Vec<String> {
    let parts = |line: &str, key: &str| -> Vec<i32> {
        let Some(rest) = line.split(key).nth(1) else {
            return Vec::new();
        };
        let list = &rest[..rest.find(']').unwrap_or(rest.len())];
        list.split(&format!("(\"{topic}\", "))
            .skip(1)
            .filter_map(|s| {
                s.split([',', ')'])
                    .next()
                    .and_then(|n| n.trim().parse().ok())
            })
            .collect()
    };
    let mut held: HashSet<i32> = HashSet::new();
    let mut bad = Vec::new();
    for line in log.lines() {
        if line.contains("partitions assigned") {
            held.extend(parts(line, "partitions=["));
        } else if line.contains("partitions given up") {
            for p in parts(line, "partitions=[") {
                held.remove(&p);
            }
        } else if line.contains(" committed") && line.contains("offsets=[") {
            for p in parts(line, "offsets=[") {
                if !held.contains(&p) {
                    bad.push(format!(
                        "committed partition {p} while not holding it: {line}"
                    ));
                }
            }
        }
    }
    bad
}

/// The scenario of the issue that found the losses: member A consumes with
/// a slow endpoint failing 30 % of requests; B joins; new records arrive on
/// every partition, A's kept ones included; A is killed -9 and restarted.
async fn join_kill_restart(strategy: &str, topic: &str) {
    support::broker::create_topic(topic, PARTITIONS as u32);
    let d = support::Dir::new();
    let server = Arc::new(
        support::mns_dev(DevConfig {
            latency: Duration::from_millis(40),
            fail_rate: 0.3,
            ..support::dev_config()
        })
        .await,
    );
    let (first, second) = (150, 250);
    produce(topic, 0, first);
    let cfg_a = config(&d, "a", topic, strategy, &server.endpoint());
    let cfg_b = config(&d, "b", topic, strategy, &server.endpoint());
    let watch = CommitWatch::start(topic, server.clone(), d.dir.path());

    let a = Member::start(&cfg_a, d.path("a1.log"), LOG);
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.accepted().len() < 50 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        server.accepted().len() >= 50,
        "A made no progress:\n{}",
        a.log_text()
    );

    let b = Member::start(&cfg_b, d.path("b.log"), LOG);
    let joined =
        tokio::task::block_in_place(|| b.wait_log("partitions assigned", Duration::from_secs(120)));
    assert!(joined, "B never got partitions:\n{}", b.log_text());
    // New records on every partition, those A kept included.
    tokio::task::block_in_place(|| produce(topic, first, second));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, a_log) = tokio::task::block_in_place(|| a.signal("-KILL"));
    let at_kill = server.accepted().len();
    let expected = (PARTITIONS as i64 * second) as usize;
    assert!(
        at_kill < expected,
        "killed too late to test anything: {at_kill}/{expected}"
    );
    let a2 = Member::start(&cfg_a, d.path("a2.log"), LOG);

    wait_all_arrived(&server, d.dir.path(), second, || {
        format!(
            "A:\n{a_log}\nA again:\n{}\nB:\n{}",
            a2.log_text(),
            b.log_text()
        )
    })
    .await;
    // Let the last commits land, then stop both.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let [a2_log, b_log] = tokio::task::block_in_place(|| stop_all([a2, b]));
    let (checks, violations) = tokio::task::block_in_place(|| watch.finish());
    assert!(checks > 10, "the commit watch ran only {checks} times");
    assert!(
        violations.is_empty(),
        "commits passed undelivered records: {violations:?}"
    );
    assert_clean_logs(topic, &[("A", &a_log), ("A again", &a2_log), ("B", &b_log)]);
    // Everything was committed in the end.
    assert_committed_to(topic, second);
    let got = done(&server, d.dir.path());
    let duplicates: usize = got.values().map(|n| n - 1).sum();
    println!(
        "{strategy}: {expected} expected, 0 lost, {duplicates} duplicates ({:.1} %), {checks} commit checks",
        100.0 * duplicates as f64 / expected as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_join_kill_restart_loses_nothing() {
    join_kill_restart("cooperative-sticky", "rb-coop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_join_kill_restart_loses_nothing() {
    join_kill_restart("range", "rb-eager").await;
}

/// A filesystem of its own, mounted for a test (tmpfs of `size`), and
/// unmounted when dropped.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill a disk for real, which needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(at.to_owned())
    }

    /// Fills it: every later write fails with ENOSPC.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The dead-letter store's disk is full: the first invalid record cannot
/// be written, and the process must stop, not go on without committing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_write_failure_stops_with_exit_2_and_commits_nothing_past_it() {
    let topic = "rb-full";
    support::broker::create_topic(topic, 1);
    let d = support::Dir::new();
    let dl = d.path("dead-letter");
    let disk = Mount::tmpfs(&dl, "256k");
    let out = d.path("out.ndjson");
    let cfg = d.write(
        "full.toml",
        &format!(
            r#"[source]
type = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{topic}"

[pipeline]
commit_interval_ms = 100

[dead_letter]
store = "disk"
path = "{dl}"

[backlog]
store = "disk"

[sinks.f]
type = "file"
path = "{out}"

[[rules]]
id = "puts"
bucket = "rb"
events = ["ObjectCreated:PutObject"]
sinks = ["f"]
"#,
            brokers = support::broker::brokers(),
            dl = dl.display(),
            out = out.display(),
        ),
    );
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", support::broker::brokers())
        .create()
        .unwrap();
    let send = |payload: &str| {
        producer
            .send(BaseRecord::<(), _>::to(topic).partition(0).payload(payload))
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
    };
    for o in 0..20 {
        send(&record(0, o));
    }
    let member = Member::start(&cfg, d.path("run.log"), "info");
    let consumer = support::group_reader(topic);
    let deadline = Instant::now() + Duration::from_secs(120);
    while support::committed(&consumer, topic, 1).get(&0) != Some(&20) {
        assert!(
            Instant::now() < deadline,
            "the valid records were never committed:\n{}",
            member.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The disk fills up. Offset 20: not JSON. Then more valid records.
    disk.fill();
    send("this is not an operation log");
    for o in 21..40 {
        send(&record(0, o));
    }
    let (code, log) = tokio::task::block_in_place(|| member.wait_exit(Duration::from_secs(60)));
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("worker-")
            && log.contains("cannot write the dead-letter store")
            && log.contains("No space left on device"),
        "{log}"
    );
    assert_eq!(
        support::committed(&consumer, topic, 1).get(&0),
        Some(&20),
        "the commit passed the record that could not be dead-lettered:\n{log}"
    );
}

/// A revocation while the source holds records of the revoked partitions:
/// the sink fails every request for a while, so the workers fill up and
/// consumption pauses with a batch in hand; then a second member joins
/// (cooperative-sticky). The held records of the partitions given up are
/// dropped, nothing panics, the first member commits nothing of them
/// afterwards, and everything arrives once the sink is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_while_records_are_held_drops_them_and_loses_nothing() {
    let topic = "rb-held";
    support::broker::create_topic(topic, PARTITIONS as u32);
    let d = support::Dir::new();
    let server = Arc::new(
        support::mns_dev(DevConfig {
            fail_first: Duration::from_secs(90),
            ..support::dev_config()
        })
        .await,
    );
    // More than the workers and their queue hold (batches of up to 511),
    // so that the source must pause with a batch in hand.
    let per_partition = 500;
    produce(topic, 0, per_partition);
    let strategy = "cooperative-sticky";
    let cfg_a = config(&d, "a", topic, strategy, &server.endpoint());
    let cfg_b = config(&d, "b", topic, strategy, &server.endpoint());
    // Without isolation, so that the failing sink holds its queue and the
    // source must pause (with it, the sink's backlog would take them). Small
    // fetches per partition, so that every batch the source holds mixes
    // all six partitions: whichever three are revoked, it holds some of
    // theirs (with librdkafka's 8 MiB a batch could be one partition's).
    for cfg in [&cfg_a, &cfg_b] {
        let strategy_line = format!("\"partition.assignment.strategy\" = \"{strategy}\"");
        let mut text = std::fs::read_to_string(cfg).unwrap().replace(
            &strategy_line,
            &format!("{strategy_line}\n\"max.partition.fetch.bytes\" = \"16384\""),
        );
        assert!(text.contains("max.partition.fetch.bytes"), "{text}");
        text.push_str("\n[sinks.q.breaker]\nenabled = false\n");
        std::fs::write(cfg, text).unwrap();
    }
    let a = Member::start(&cfg_a, d.path("a.log"), LOG);
    let paused = tokio::task::block_in_place(|| {
        a.wait_log(
            "workers are full: pausing consumption",
            Duration::from_secs(120),
        )
    });
    assert!(paused, "A never paused:\n{}", a.log_text());
    let b = Member::start(&cfg_b, d.path("b.log"), LOG);
    let dropped = tokio::task::block_in_place(|| {
        a.wait_log(
            "dropped held records of revoked partitions",
            Duration::from_secs(120),
        )
    });
    assert!(
        dropped,
        "A gave up no held records:\nA:\n{}\nB:\n{}",
        a.log_text(),
        b.log_text()
    );
    wait_all_arrived(&server, d.dir.path(), per_partition, || {
        format!("A:\n{}\nB:\n{}", a.log_text(), b.log_text())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let [a_log, b_log] = tokio::task::block_in_place(|| stop_all([a, b]));
    assert_clean_logs(topic, &[("A", &a_log), ("B", &b_log)]);
    assert_committed_to(topic, per_partition);
}
