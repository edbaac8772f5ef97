//! Load harness (not criterion): `ossnotify backfill` into mns-dev, and
//! what it does to a live pipeline beside it. On the test broker (tansu,
//! in memory) and mns-dev (in this process), all on one 2-core VM.
//!
//! 1. Unthrottled: a topic of records the live group has read already
//!    (its offsets committed at the end); `backfill --rule all` sends
//!    every record's message to an `mns_queue` sink; messages/s between
//!    the first and the last arrival, and the backfill's peak RSS.
//! 2. Beside a live member: the member reads another topic at a steady
//!    rate and delivers to its own mns-dev queue; its latency from produce
//!    to accept (p50, p99) over the same span, with no backfill, with an
//!    unthrottled one, and with one at `--max-rate` (its records/s). The
//!    member has an mns-dev of its own (`OSSNOTIFY_BENCH_SHARED_MNS=1`:
//!    the backfill's, one thread serving both). Beside each, the member's
//!    own share: its `ossnotify_stage_seconds{stage="settled"}` over the
//!    phase, from reading a batch's first record to MNS's accept (bucket
//!    bounds). What the end-to-end figure adds to it is the broker's and
//!    the machine's. With `OSSNOTIFY_BENCH_BARE=1` a bare librdkafka
//!    consumer with the member's fetch settings also reads the live topic
//!    through all three phases (on tansu it stalls the throttled phase:
//!    both it and the member then wait seconds for records).
//!    The member's peak RSS over all three phases is reported at the end.
//!
//! `cargo bench --bench backfill` (`OSSNOTIFY_BENCH_RECORDS`, default
//! 300,000; `OSSNOTIFY_BENCH_LIVE_RATE`, default 2,000 records/s;
//! `OSSNOTIFY_BENCH_MAX_RATE`, default 20,000;
//! `OSSNOTIFY_BENCH_BACKFILL_COMMIT_MS`, the backfill's commit interval,
//! default 100)

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use ossnotify_mns_dev::{DevConfig, DevServer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn record(tag: &str, i: u64, time: u64) -> String {
    format!(
        r#"{{"__time__":{time},"operation":"PutObject","bucket":"b","object":"photos/{i:08}.jpg","bucket_location":"oss-cn-hangzhou","owner_id":"1","request_id":"{tag}-{i}","http_status":200,"object_size":48213}}"#
    )
}

fn config(topic: &str, endpoint: &str, queue: &str) -> String {
    format!(
        "{}\n[pipeline]\ncommit_interval_ms = 100\n\n[sinks.q]\ntype = \"mns_queue\"\nendpoint = \"{endpoint}\"\nqueue = \"{queue}\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\nbatch = {{ max_messages = 16 }}\nrequest = {{ max_in_flight = 16 }}\n\n[[rules]]\nid = \"all\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"q\"]\n",
        support::kafka_source(
            support::broker::brokers(),
            topic,
            topic,
            "",
            "\"fetch.wait.max.ms\" = \"20\""
        )
    )
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The request id of an accepted message.
fn request_id(body: &str) -> Option<String> {
    let json = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let text = String::from_utf8(json).ok()?;
    let at = text.find("\"requestId\":\"")? + 13;
    Some(text[at..].split('"').next()?.to_owned())
}

fn main() {
    let records: u64 = env_or("OSSNOTIFY_BENCH_RECORDS", 300_000);
    let live_rate: f64 = env_or("OSSNOTIFY_BENCH_LIVE_RATE", 2_000.0);
    let max_rate: u64 = env_or("OSSNOTIFY_BENCH_MAX_RATE", 20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(DevServer::local(DevConfig {
            access_key_id: "AK".into(),
            access_key_secret: "SK".into(),
            queues: vec!["past".into(), "live".into()],
            keep: usize::MAX,
            keep_bytes: usize::MAX,
            ..Default::default()
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    println!("machine: 2-core VM; tansu in memory, mns-dev and the processes on loopback");

    // The past: records the live group has read already.
    let past = "bench-backfill-past";
    support::broker::create_topic(past, 3);
    let t = now_s() - 600;
    let lines: Vec<String> = (0..records).map(|i| record("past", i, t)).collect();
    support::broker::produce(past, &lines);
    let reader = support::group_reader(past);
    let ends = {
        use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
        // Where each partition really ends (tansu reports a partition's
        // end short of a batch's tail): read it.
        let cc = ossnotify_sinks::kafka_store::client_config(
            support::broker::brokers(),
            &Default::default(),
        );
        let mut ends = [0i64; 3];
        ossnotify_sinks::kafka_store::read_range(&cc, past, "bench-count", |s| {
            ends[s.partition as usize] = ends[s.partition as usize].max(s.offset + 1);
        })
        .unwrap();
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", support::broker::brokers())
            .set("group.id", past)
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (p, e) in ends.iter().enumerate() {
            tpl.add_partition_offset(past, p as i32, rdkafka::Offset::Offset(*e))
                .unwrap();
        }
        c.commit(&tpl, CommitMode::Sync).unwrap();
        ends
    };
    drop(reader);
    assert_eq!(ends.iter().sum::<i64>() as u64, records);
    let past_cfg = dir.path().join("past.toml");
    // The backfill's commit interval (`OSSNOTIFY_BENCH_BACKFILL_COMMIT_MS`,
    // default 100 ms as the live member's).
    let commit_ms: u64 = env_or("OSSNOTIFY_BENCH_BACKFILL_COMMIT_MS", 100);
    std::fs::write(
        &past_cfg,
        config(past, &server.endpoint(), "past").replace(
            "commit_interval_ms = 100",
            &format!("commit_interval_ms = {commit_ms}"),
        ),
    )
    .unwrap();

    // 1. Unthrottled, alone.
    let (rate, secs, peak) = backfill(&server, &past_cfg, "alone", &[], records);
    println!("backfill alone, unthrottled: {records} messages into mns-dev at {rate:.0} messages/s ({secs:.1} s); peak RSS {peak:.1} MiB");

    // 2. Beside a live member.
    let live = "bench-backfill-live";
    support::broker::create_topic(live, 3);
    // The live member's MNS: its own mns-dev on its own thread (two
    // queues of a real MNS do not share one thread), or with
    // `OSSNOTIFY_BENCH_SHARED_MNS=1` the backfill's.
    let live_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let own = std::env::var_os("OSSNOTIFY_BENCH_SHARED_MNS").is_none_or(|v| v != "1");
    let own_server = own.then(|| {
        live_rt
            .block_on(DevServer::local(DevConfig {
                access_key_id: "AK".into(),
                access_key_secret: "SK".into(),
                queues: vec!["live".into()],
                keep: usize::MAX,
                keep_bytes: usize::MAX,
                ..Default::default()
            }))
            .unwrap()
    });
    let live_server = own_server.as_ref().unwrap_or(&server);
    println!(
        "the live member's mns-dev: {}",
        if own { "its own" } else { "the backfill's" }
    );
    let live_cfg = dir.path().join("live.toml");
    let metrics_port = support::free_port();
    std::fs::write(
        &live_cfg,
        format!(
            "{}\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            config(live, &live_server.endpoint(), "live")
        ),
    )
    .unwrap();
    let member = support::Member::start(&live_cfg, dir.path().join("live.log"), "info");
    member.joined();
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", support::broker::brokers())
        .set("linger.ms", "1")
        .create()
        .unwrap();
    let bare =
        (std::env::var("OSSNOTIFY_BENCH_BARE").as_deref() == Ok("1")).then(|| Bare::start(live));
    let mut seq = 0u64;
    let mut phase = |label: &str, with: Option<&[&str]>| {
        let start_seq = seq;
        let settled_before = settled(metrics_port);
        let mut running = with.map(|extra| {
            let name = format!("{label}-{seq}");
            let mut args = vec![
                "backfill",
                "-c",
                past_cfg.to_str().unwrap(),
                "--rule",
                "all",
                "--since",
                "1d",
                "--name",
                &name,
            ];
            args.extend_from_slice(extra);
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            Command::new(env!("CARGO_BIN_EXE_ossnotify"))
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        });
        // While the backfill runs (at most 30 s), or 10 s without one.
        let mut sent = Vec::new();
        let t0 = Instant::now();
        let span = Duration::from_secs(if running.is_some() { 30 } else { 10 });
        while t0.elapsed() < span
            && running
                .as_mut()
                .is_none_or(|c| c.try_wait().unwrap().is_none())
        {
            let due = t0 + Duration::from_secs_f64((seq - start_seq) as f64 / live_rate);
            let now = Instant::now();
            if due > now {
                producer.poll(due - now);
            }
            sent.push(SystemTime::now());
            let r = record("live", seq, now_s());
            while producer
                .send(BaseRecord::<(), _>::to(live).payload(&r))
                .is_err()
            {
                producer.poll(Duration::from_millis(1));
            }
            seq += 1;
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        std::thread::sleep(Duration::from_secs(3));
        let mut lat: Vec<f64> = live_server
            .accepted()
            .iter()
            .filter(|a| a.name == "live")
            .filter_map(|a| {
                let id: u64 = request_id(&a.body)?.strip_prefix("live-")?.parse().ok()?;
                let i = id.checked_sub(start_seq)? as usize;
                Some(a.received.duration_since(*sent.get(i)?).ok()?.as_secs_f64() * 1000.0)
            })
            .collect();
        if let Some(mut c) = running {
            let _ = c.wait();
        }
        let mut bare_lat: Vec<f64> = bare
            .as_ref()
            .map(Bare::received)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(id, at)| {
                let i = id.checked_sub(start_seq)? as usize;
                Some(at.duration_since(*sent.get(i)?).ok()?.as_secs_f64() * 1000.0)
            })
            .collect();
        lat.sort_by(f64::total_cmp);
        bare_lat.sort_by(f64::total_cmp);
        let q = |v: &[f64], p: f64| {
            v.get(((v.len().max(1) - 1) as f64 * p) as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        let own = settled_since(&settled_before, &settled(metrics_port));
        println!(
            "live member at {live_rate:.0} records/s, {label} ({:.1} s): {} messages, produce → accept p50 {:.1} ms, p99 {:.1} ms; in the member, read → accept: {own}",
            t0.elapsed().as_secs_f64(),
            lat.len(),
            q(&lat, 0.5),
            q(&lat, 0.99),
        );
        if bare.is_some() {
            println!(
                "  bare consumer, same records: {} read, produce → poll p50 {:.1} ms, p99 {:.1} ms",
                bare_lat.len(),
                q(&bare_lat, 0.5),
                q(&bare_lat, 0.99)
            );
        }
    };
    phase("no backfill", None);
    phase("beside an unthrottled backfill", Some(&[]));
    let limit = max_rate.to_string();
    phase(
        &format!("beside a backfill at --max-rate {max_rate}"),
        Some(&["--max-rate", &limit]),
    );
    drop(bare);
    println!(
        "the live member's peak RSS over all phases: {:.1} MiB",
        support::peak_rss_kib(member.child.id()) as f64 / 1024.0
    );
    let (code, log) = member.signal("-TERM");
    assert_eq!(code, Some(0), "{log}");
    server.stop();
    if let Some(s) = own_server {
        s.stop();
    }
}

/// The member's `ossnotify_stage_seconds{stage="settled"}` buckets.
fn settled(port: u16) -> Vec<(f64, f64)> {
    support::stage_buckets(&support::http_get(port, "/metrics"), "settled")
}

/// p50 and p99 of what `after` counted beyond `before` (bucket bounds).
fn settled_since(before: &[(f64, f64)], after: &[(f64, f64)]) -> String {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, n)| {
            let was = before.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1);
            (le, n - was)
        })
        .collect();
    support::bucket_quantiles(&diff, &[("p50", 0.5), ("p99", 0.99)])
        .unwrap_or_else(|| "(no metrics)".into())
}

/// A bare librdkafka consumer on the live topic, with the member's fetch
/// settings, noting when it got each live record.
struct Bare {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    got: std::sync::Arc<std::sync::Mutex<Vec<(u64, SystemTime)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bare {
    fn start(topic: &str) -> Bare {
        use rdkafka::Message;
        let consumer = support::bare_consumer(
            "bench-backfill-bare",
            topic,
            3,
            rdkafka::Offset::End,
            &[("fetch.wait.max.ms", "20")],
        );
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let thread = {
            let (stop, got) = (stop.clone(), got.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                        let at = SystemTime::now();
                        let text =
                            std::str::from_utf8(m.payload().unwrap_or_default()).unwrap_or("");
                        let id = text
                            .split_once("\"request_id\":\"live-")
                            .and_then(|(_, rest)| rest.split('"').next()?.parse().ok());
                        if let Some(id) = id {
                            got.lock().unwrap().push((id, at));
                        }
                    }
                }
            })
        };
        // Settle on the end before anything is produced.
        std::thread::sleep(Duration::from_secs(2));
        Bare {
            stop,
            got,
            thread: Some(thread),
        }
    }

    /// What it got since the last call.
    fn received(&self) -> Vec<(u64, SystemTime)> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs a backfill of every past record to completion: messages/s into
/// the "past" queue between the first and the last arrival, seconds, and
/// its peak RSS in MiB.
fn backfill(
    server: &DevServer,
    cfg: &std::path::Path,
    name: &str,
    extra: &[&str],
    records: u64,
) -> (f64, f64, f64) {
    let before = server
        .accepted()
        .iter()
        .filter(|a| a.name == "past")
        .count() as u64;
    let mut args = vec![
        "backfill",
        "-c",
        cfg.to_str().unwrap(),
        "--rule",
        "all",
        "--since",
        "1d",
        "--name",
        name,
    ];
    args.extend_from_slice(extra);
    let (out, peak) =
        support::output_with_peak_rss(Command::new(env!("CARGO_BIN_EXE_ossnotify")).args(&args));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut times: Vec<SystemTime> = server
        .accepted()
        .iter()
        .filter(|a| a.name == "past")
        .map(|a| a.received)
        .collect();
    assert_eq!(
        times.len() as u64 - before,
        records,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    times.sort();
    let span = times
        .last()
        .unwrap()
        .duration_since(times[before as usize])
        .unwrap()
        .as_secs_f64();
    (records as f64 / span, span, peak as f64 / 1024.0)
}
