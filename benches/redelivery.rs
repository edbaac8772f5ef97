//! Load harness (not criterion): how fast a sink's backlog is written and
//! redelivered, in each store. A release `ossnotify run` (its own process)
//! reads records while mns-dev (in this process) fails every request, so
//! every message ends in the `mns_queue` sink's backlog; then a second run
//! starts with mns-dev healthy and redelivers the backlog by itself. The
//! redelivery rate is the messages mns-dev accepted between the first and
//! the last arrival.
//!
//! - disk store: the records come on stdin;
//! - Kafka store (the default with a Kafka source): the records are first
//!   produced to a topic of the test broker; the backlog write rate is the
//!   source group's committed progress (each committed record's message
//!   is in the backlog topic), and
//!   the first run's peak RSS is reported.
//!
//! `cargo bench --bench redelivery` (`OSSNOTIFY_BENCH_MESSAGES`, default
//! 300,000; `OSSNOTIFY_BENCH_STORE`: `disk`, `kafka` or `both`, the default;
//! `OSSNOTIFY_BENCH_RUST_LOG`: the redelivering member's log filter)

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ossnotify_mns_dev::{DevConfig, DevServer};

fn config(dir: &std::path::Path, endpoint: &str) -> std::path::PathBuf {
    let cfg = dir.join(format!("run-{}.toml", endpoint.rsplit(':').next().unwrap()));
    std::fs::write(
        &cfg,
        format!(
            "[source]\ntype = \"stdin\"\n\n[dead_letter]\npath = \"{}\"\n\n[sinks.q]\ntype = \"mns_queue\"\nendpoint = \"{endpoint}\"\nqueue = \"oss-events\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\nbatch = {{ max_messages = 16 }}\nrequest = {{ max_in_flight = 16 }}\n\n[sinks.q.backlog]\nmax_mib = 4096\n\n[[rules]]\nid = \"all\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"q\"]\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    cfg
}

fn start(cfg: &std::path::Path, log: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ossnotify"))
        .args(["run", "-c", cfg.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

async fn mns(fail: bool) -> DevServer {
    DevServer::local(DevConfig {
        access_key_id: "AK".into(),
        access_key_secret: "SK".into(),
        queues: vec!["oss-events".into()],
        fail_first: if fail {
            Duration::from_secs(3600)
        } else {
            Duration::ZERO
        },
        keep: 0,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn main() {
    let n: u64 = std::env::var("OSSNOTIFY_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let store = std::env::var("OSSNOTIFY_BENCH_STORE").unwrap_or_else(|_| "both".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    if store == "disk" || store == "both" {
        disk(&rt, n);
    }
    if store == "kafka" || store == "both" {
        kafka(&rt, n);
    }
}

/// One operation log record, `i`.
fn record(i: u64) -> String {
    format!(
        r#"{{"time":"2026-11-27T10:00:00Z","operation":"PutObject","bucket":"b","object":"photos/2026/11/27/img-{i:08}.jpg","bucket_location":"oss-cn-hangzhou","owner_id":"1148912345646818","request_id":"{i:024X}","http_status":200,"object_size":48213,"etag":"\"5EB63BBBE01EEED093CB22BB8F5ACDC3\""}}"#
    )
}

/// Waits until `up` has accepted `n` messages; the rate between the first
/// arrival and the last.
fn redelivery_rate(up: &DevServer, n: u64) -> (u64, f64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut t0, mut t1) = (None, Instant::now());
    let mut last = 0;
    while Instant::now() < deadline {
        let c = up.accepted_count();
        if c > 0 && t0.is_none() {
            t0 = Some((c, Instant::now()));
        }
        if c > last {
            (last, t1) = (c, Instant::now());
        }
        if c >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (c0, t0) = t0.expect("nothing was redelivered");
    (last, (last - c0) as f64 / (t1 - t0).as_secs_f64())
}

fn kafka(rt: &tokio::runtime::Runtime, n: u64) {
    use ossnotify_sinks::kafka_store::{client_config, read};
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("redelivery-{}", std::process::id());
    support::broker::create_topic(&topic, 6);
    let records: Vec<String> = (0..n).map(record).collect();
    support::broker::produce(&topic, &records);
    let cfg = |endpoint: &str| {
        let path = dir.path().join(format!(
            "kafka-{}.toml",
            endpoint.rsplit(':').next().unwrap()
        ));
        std::fs::write(
            &path,
            format!(
                "{}\n[sinks.q]\ntype = \"mns_queue\"\nendpoint = \"{endpoint}\"\nqueue = \"oss-events\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\nbatch = {{ max_messages = 16 }}\nrequest = {{ max_in_flight = 16 }}\n\n[sinks.q.backlog]\nmax_mib = 4096\n\n[[rules]]\nid = \"all\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"q\"]\n",
                support::kafka_source(support::broker::brokers(), &topic, &topic, "", "")
            ),
        )
        .unwrap();
        path
    };

    // 1. Fill the backlog topic: every request fails.
    let down = rt.block_on(mns(true));
    let first =
        support::Member::start(&cfg(&down.endpoint()), dir.path().join("first.log"), "info");
    // The fill is over once the source group has committed every record
    // (each one's message is then in the backlog topic). The backlog's size
    // is read from the topic itself: tansu reports a partition's end short
    // of a batch's tail.
    let cc = client_config(support::broker::brokers(), &Default::default());
    let reader = support::group_reader(&topic);
    let (mut t0, mut peak) = (None, 0u64);
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut committed = 0;
    while committed < n as i64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(support::status_kib(first.child.id(), "VmRSS"));
        committed = support::committed(&reader, &topic, 6).values().sum();
        if committed > 0 && t0.is_none() {
            t0 = Some((committed, Instant::now()));
        }
    }
    let t1 = Instant::now();
    let (c0, t0) = t0.unwrap_or_else(|| panic!("nothing backlogged:\n{}", first.log_text()));
    let write_rate = (committed - c0) as f64 / (t1 - t0).as_secs_f64();
    let backlog = format!("{topic}.backlog.q");
    let mut last = 0u64;
    read::read_range(&cc, &backlog, "redelivery-bench", |_| last += 1).unwrap();
    let (code, log) = first.signal("-TERM");
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(last, n, "{log}");
    down.stop();
    println!(
        "kafka store: {n} messages written to the backlog topic at {write_rate:.0} messages/s; the member's peak RSS {} MiB",
        peak / 1024
    );

    // 2. Redeliver: mns-dev healthy, a new member with nothing new to read.
    let up = rt.block_on(mns(false));
    let second = support::Member::start(
        &cfg(&up.endpoint()),
        dir.path().join("second.log"),
        &std::env::var("OSSNOTIFY_BENCH_RUST_LOG").unwrap_or_else(|_| "info".into()),
    );
    let (last, rate) = redelivery_rate(&up, n);
    println!("kafka store: redelivered {last} of {n} messages to the mns_queue sink (batches of 16, 16 in flight): {rate:.0} messages/s");
    let (code, log) = second.signal("-TERM");
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(last, n, "{log}");
    up.stop();
}

fn disk(rt: &tokio::runtime::Runtime, n: u64) {
    let dir = tempfile::tempdir().unwrap();

    // 1. Fill the backlog: every request fails.
    let down = rt.block_on(mns(true));
    let mut first = start(
        &config(dir.path(), &down.endpoint()),
        &dir.path().join("first.log"),
    );
    {
        let mut stdin = std::io::BufWriter::new(first.stdin.take().unwrap());
        for i in 0..n {
            writeln!(stdin, "{}", record(i)).unwrap();
        }
    }
    let t = Instant::now();
    assert!(first.wait().unwrap().success());
    let log = std::fs::read_to_string(dir.path().join("first.log")).unwrap();
    let kept = log
        .lines()
        .find_map(|l| {
            l.strip_prefix("run: ")?
                .split(" kept in sink backlogs")
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("nothing backlogged:\n{log}"));
    assert_eq!(kept, n, "{log}");
    down.stop();
    println!(
        "disk store: {n} messages backlogged (the first run ended {:.1} s after its input)",
        t.elapsed().as_secs_f64()
    );

    // 2. Redeliver: mns-dev healthy, a second run with nothing to read.
    let up = rt.block_on(mns(false));
    let mut second = start(
        &config(dir.path(), &up.endpoint()),
        &dir.path().join("second.log"),
    );
    let (last, rate) = redelivery_rate(&up, n);
    println!("disk store: redelivered {last} of {n} messages to the mns_queue sink (batches of 16, 16 in flight): {rate:.0} messages/s");
    drop(second.stdin.take());
    assert!(second.wait().unwrap().success());
    assert_eq!(
        last,
        n,
        "{}",
        std::fs::read_to_string(dir.path().join("second.log")).unwrap()
    );
    up.stop();
}
