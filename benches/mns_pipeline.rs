//! Load harness (not criterion): Kafka → `ossnotify run` (the release
//! binary, in its own process) → the `mns_queue` sink → mns-dev (in this
//! process), with the 10k rules of the engine benchmark, against the test
//! broker (tansu, in memory, on loopback). All on one 2-core VM.
//!
//! `cargo bench --bench mns_pipeline`
//!
//! 1. Sustained rate: a backlog of records is produced first, then read
//!    through the whole pipeline; records/s between the first and the last
//!    offset commit (every 100 ms), as the pipeline's /metrics reports them.
//! 2. Latency at each of `OSSNOTIFY_BENCH_LOADS` (default 1,000 records/s,
//!    50 % and 90 % of that rate), 20 s each: records produced steadily,
//!    each carrying its sequence number as its request id; latency is the
//!    time from the producer's send call to mns-dev accepting the message
//!    (p50, p99, p99.9). Before each, a bare librdkafka consumer with the
//!    pipeline's fetch settings reads the same rate from a topic of its
//!    own: the broker's and client's share. The pipeline starts afresh for
//!    each load (the same group), so its `ossnotify_stage_seconds`
//!    summaries cover that load only: where its own share goes.
//! 3. The pipeline's peak RSS (VmHWM) over all of these.
//! 4. With `OSSNOTIFY_BENCH_OUTAGE_SECONDS=N`, a member's peak RSS while
//!    its sink fails for N seconds at that half rate (see `outage`).

#[path = "../tests/support/mod.rs"]
mod support;

use support::{broker, free_addr, metrics_committed as committed, spawn_run_of, stop_run};

use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use ossnotify::synth::{Rng, Workload};
use ossnotify_mns_dev::{DevConfig, DevServer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const TOPIC: &str = "bench-mns";
const BACKLOG: u64 = 600_000;
/// How long each latency phase produces.
const PHASE_SECONDS: f64 = 20.0;

/// A synthetic record whose request id is `seq` (24 hex digits, as OSS's).
fn record(w: &Workload, rng: &mut Rng, seq: u64) -> Vec<u8> {
    let mut r = w.record(rng, seq);
    let tag = b"\"request_id\":\"";
    let at = r
        .windows(tag.len())
        .position(|x| x == tag)
        .expect("synthetic records have a request id")
        + tag.len();
    r[at..at + 24].copy_from_slice(format!("{seq:024X}").as_bytes());
    r
}

/// The sequence number in a notification's request id.
fn seq_of(body: &str) -> Option<u64> {
    let json = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let text = String::from_utf8(json).ok()?;
    let at = text.find("\"requestId\":\"")? + 13;
    u64::from_str_radix(text.get(at..at + 24)?, 16).ok()
}

fn send(p: &BaseProducer, payload: &[u8]) {
    send_to(p, TOPIC, payload)
}

fn send_to(p: &BaseProducer, topic: &str, payload: &[u8]) {
    let mut rec = BaseRecord::<(), [u8]>::to(topic).payload(payload);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((_, back)) => {
                p.poll(Duration::from_millis(1));
                rec = back;
            }
        }
    }
}

/// The pipeline's config: group `group`, the sink's breaker on or off.
fn config_text(
    brokers: &str,
    group: &str,
    metrics: &str,
    dir: &std::path::Path,
    endpoint: &str,
    w: &Workload,
    breaker: bool,
) -> String {
    let mut text = format!(
        "[source]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{TOPIC}\"]\ngroup_id = \"{group}\"\n\n[source.librdkafka]\n\"fetch.wait.max.ms\" = \"{}\"\n\n[pipeline]\ncommit_interval_ms = 100\n\n[metrics]\nlisten = \"{metrics}\"\n\n[dead_letter]\npath = \"{}\"\n\n[sinks.events]\ntype = \"mns_queue\"\nendpoint = \"{endpoint}\"\nqueue = \"oss-events\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\nbatch = {{ max_messages = 16 }}\nrequest = {{ max_in_flight = 16 }}\n[sinks.events.breaker]\nenabled = {breaker}\n",
        fetch_wait_ms(),
        dir.join(format!("dl-{group}")).display(),
    );
    text.push_str(&w.rules_toml("events"));
    text
}

/// Records/s between the first and the last commit of the backlog.
fn sustained(metrics: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut start, mut last) = (None, (0i64, Instant::now()));
    while Instant::now() < deadline {
        let c = committed(metrics);
        if c > 0 && start.is_none() {
            start = Some((c, Instant::now()));
        }
        if c > last.0 {
            last = (c, Instant::now());
        }
        if c as u64 >= BACKLOG {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (c0, t0) = start.expect("the pipeline committed something");
    (last.0 - c0) as f64 / (last.1 - t0).as_secs_f64()
}

/// With `OSSNOTIFY_BENCH_AB_ROUNDS=N`: the sustained rate over the same
/// backlog (a new group each round), alternately of two variants: the
/// breaker on and off or, with `OSSNOTIFY_BENCH_BASELINE=/path/to/an/older/ossnotify`,
/// this build and that one (a before and after in one run).
fn ab(brokers: &str, dir: &std::path::Path, endpoint: &str, w: &Workload) {
    let rounds: usize = std::env::var("OSSNOTIFY_BENCH_AB_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let baseline = std::env::var_os("OSSNOTIFY_BENCH_BASELINE").map(std::path::PathBuf::from);
    let this = std::path::PathBuf::from(env!("CARGO_BIN_EXE_ossnotify"));
    let (a_label, b_label) = if baseline.is_some() {
        ("this build", "baseline")
    } else {
        ("breaker on", "breaker off")
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let first = round % 2 == 0;
        let (bin, breaker) = match &baseline {
            Some(base) => (if first { &this } else { base }, true),
            None => (&this, first),
        };
        let metrics = free_addr();
        let text = config_text(
            brokers,
            &format!("bench-ab-{round}"),
            &metrics,
            dir,
            endpoint,
            w,
            breaker,
        );
        let cfg = dir.join(format!("ab-{round}.toml"));
        std::fs::write(&cfg, text).unwrap();
        let child = support::spawn_run_of(bin, &cfg, &dir.join(format!("ab-{round}.log")), "info");
        let rate = sustained(&metrics);
        let hwm = support::peak_rss_kib(child.id());
        stop_run(child);
        let label = if first { a_label } else { b_label };
        println!(
            "round {round}: {label}: {rate:.0} records/s, peak RSS {:.1} MiB",
            hwm as f64 / 1024.0
        );
        if first {
            a.push(rate)
        } else {
            b.push(rate)
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    if !a.is_empty() && !b.is_empty() {
        let (x, y) = (median(&mut a), median(&mut b));
        println!(
            "{a_label}: median {x:.0} records/s; {b_label}: median {y:.0} records/s; ratio {:.3}",
            x / y
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(async {
        DevServer::local(DevConfig {
            access_key_id: "AK".into(),
            access_key_secret: "SK".into(),
            queues: vec!["oss-events".into()],
            // Every message's arrival time is measured.
            keep: usize::MAX,
            keep_bytes: usize::MAX,
            ..Default::default()
        })
        .await
        .unwrap()
    });
    let brokers = broker::brokers().to_owned();
    broker::create_topic(TOPIC, 3);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "1")
        .create()
        .unwrap();
    let w = Workload::standard();
    let mut rng = Rng::new(7);
    for seq in 0..BACKLOG {
        send(&producer, &record(&w, &mut rng, seq));
        if seq % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    println!("machine: 2-core VM; tansu in memory, mns-dev and the pipeline on loopback; backlog of {BACKLOG} synthetic records produced");

    // The pipeline, its own process.
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_addr();
    let text = config_text(
        &brokers,
        "bench-mns",
        &metrics,
        dir.path(),
        &server.endpoint(),
        &w,
        true,
    );
    let cfg = dir.path().join("bench.toml");
    std::fs::write(&cfg, text).unwrap();
    let child = spawn_run_of(&bin(), &cfg, &dir.path().join("run.log"), "info");

    // 1. Sustained rate over the backlog.
    let max_rate = sustained(&metrics);
    let backlog_messages = server.accepted_count();
    println!(
        "sustained: {max_rate:.0} records/s ({backlog_messages} messages accepted by mns-dev for {BACKLOG} records)"
    );

    // 3. (peak RSS of the sustained run), then a clean stop.
    let mut hwm = support::peak_rss_kib(child.id());
    stop_run(child);

    // 2. Latency at each load, against a bare consumer at the same rate.
    for load in loads() {
        let rate = match load {
            Load::PerSecond(r) => r,
            Load::Share(f) => max_rate * f,
        };
        let seconds = PHASE_SECONDS;
        let bare = bare_latency(&producer, &w, &mut rng, rate, seconds);
        let child = spawn_run_of(&bin(), &cfg, &dir.path().join("run.log"), "info");
        wait_ready(&metrics);
        let (piped, stages) =
            pipeline_latency(&producer, &w, &mut rng, rate, seconds, &metrics, &server);
        hwm = hwm.max(support::peak_rss_kib(child.id()));
        stop_run(child);
        println!(
            "at {load} ({rate:.0} records/s for {seconds} s): produce → mns-dev accept {piped}; bare consumer, same settings, produce → received {bare}"
        );
        for (stage, q) in stages {
            println!("    stage {stage:<9} (since the batch was read) {q}");
        }
    }
    println!(
        "pipeline peak RSS (VmHWM, over all phases): {:.1} MiB",
        hwm as f64 / 1024.0
    );
    let rate = max_rate * 0.5;
    ab(&brokers, dir.path(), &server.endpoint(), &w);
    server.stop();
    outage(&rt, &brokers, dir.path(), rate, &w);
}

/// `fetch.wait.max.ms` for the pipeline and the bare consumer
/// (`OSSNOTIFY_BENCH_FETCH_WAIT_MS`, default 10): tansu answers a fetch only
/// when it runs out, so it sets a floor under every latency here.
fn fetch_wait_ms() -> String {
    std::env::var("OSSNOTIFY_BENCH_FETCH_WAIT_MS").unwrap_or_else(|_| "10".into())
}

/// The build measured by the sustained and latency phases: this one, or
/// `OSSNOTIFY_BENCH_BIN` (an older build, to compare in one run).
fn bin() -> std::path::PathBuf {
    std::env::var_os("OSSNOTIFY_BENCH_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ossnotify").into())
}

/// A load to measure latency at: records/s, or a share of the sustained rate.
#[derive(Clone, Copy)]
enum Load {
    PerSecond(f64),
    Share(f64),
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Load::PerSecond(r) => write!(f, "{r:.0} records/s"),
            Load::Share(s) => write!(f, "{:.0} % of sustained", s * 100.0),
        }
    }
}

/// `OSSNOTIFY_BENCH_LOADS`: a comma list of `N/s` and shares of the
/// sustained rate; by default 1000/s (a typical bucket), 0.5 and 0.9.
fn loads() -> Vec<Load> {
    let text = std::env::var("OSSNOTIFY_BENCH_LOADS").unwrap_or_else(|_| "1000/s,0.5,0.9".into());
    text.split(',')
        .map(|l| match l.trim().strip_suffix("/s") {
            Some(r) => Load::PerSecond(r.parse().expect("N/s")),
            None => Load::Share(l.trim().parse().expect("a share such as 0.5")),
        })
        .collect()
}

/// p50, p99, p99.9 and max of latencies in ms.
struct Quantiles(Vec<f64>);

impl std::fmt::Display for Quantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = &self.0;
        if v.is_empty() {
            return write!(f, "(no samples)");
        }
        let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
        write!(
            f,
            "p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms ({} samples)",
            q(0.5),
            q(0.99),
            q(0.999),
            q(1.0),
            v.len()
        )
    }
}

fn quantiles(mut v: Vec<f64>) -> Quantiles {
    v.sort_by(f64::total_cmp);
    Quantiles(v)
}

/// Produces `rate` records/s for `seconds` to `topic`, numbered from
/// `first`; returns each one's send time, by number.
fn produce_steadily(
    producer: &BaseProducer,
    topic: &str,
    w: &Workload,
    rng: &mut Rng,
    first: u64,
    rate: f64,
    seconds: f64,
) -> Vec<SystemTime> {
    let total = (rate * seconds) as u64;
    let mut sent_at = Vec::with_capacity(total as usize);
    let t = Instant::now();
    for i in 0..total {
        let due = t + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now {
            producer.poll(due - now);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        sent_at.push(SystemTime::now());
        send_to(producer, topic, &record(w, rng, first + i));
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    sent_at
}

/// Where the next latency phase numbers its records from.
static NEXT_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(BACKLOG);

/// The same rate into a topic of its own, read by a bare librdkafka
/// consumer with the pipeline's fetch settings: what the broker and the
/// client cost, so that the pipeline's own share can be told apart.
fn bare_latency(
    producer: &BaseProducer,
    w: &Workload,
    rng: &mut Rng,
    rate: f64,
    seconds: f64,
) -> Quantiles {
    use rdkafka::Message;
    const BARE: &str = "bench-mns-bare";
    static CREATED: std::sync::Once = std::sync::Once::new();
    CREATED.call_once(|| broker::create_topic(BARE, 3));
    let first = NEXT_SEQ.fetch_add(
        (rate * seconds) as u64 + 1,
        std::sync::atomic::Ordering::SeqCst,
    );
    let consumer = support::bare_consumer(
        "bench-mns-bare",
        BARE,
        3,
        rdkafka::Offset::End,
        &[("fetch.wait.max.ms", &fetch_wait_ms())],
    );
    // Settle on the end before producing.
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        consumer.poll(Duration::from_millis(50));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut got: Vec<(u64, SystemTime)> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    let at = SystemTime::now();
                    let text = std::str::from_utf8(m.payload().unwrap_or_default()).unwrap_or("");
                    if let Some(i) = text.find("\"request_id\":\"") {
                        if let Ok(seq) = u64::from_str_radix(&text[i + 14..i + 38], 16) {
                            got.push((seq, at));
                        }
                    }
                }
            }
            got
        })
    };
    let sent_at = produce_steadily(producer, BARE, w, rng, first, rate, seconds);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let got = reader.join().unwrap();
    quantiles(
        got.into_iter()
            .filter_map(|(seq, at)| {
                let sent = sent_at.get(seq.checked_sub(first)? as usize)?;
                Some(at.duration_since(*sent).ok()?.as_secs_f64() * 1000.0)
            })
            .collect(),
    )
}

/// Waits until the pipeline at `metrics` says it is ready (partitions
/// assigned).
fn wait_ready(metrics: &str) {
    let port: u16 = metrics.rsplit(':').next().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let answer = support::http_get(port, "/ready");
        if answer.lines().next().is_some_and(|l| l.contains(" 200")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the pipeline was not ready within 120 s");
}

/// The rate through the pipeline (ready, idle): produce → mns-dev accept
/// per message, and the pipeline's own stage quantiles from its /metrics
/// (`ossnotify_stage_seconds`, one sample per batch; the summaries cover
/// this process's life, which is this phase).
fn pipeline_latency(
    producer: &BaseProducer,
    w: &Workload,
    rng: &mut Rng,
    rate: f64,
    seconds: f64,
    metrics: &str,
    server: &DevServer,
) -> (Quantiles, Vec<(String, String)>) {
    let first = NEXT_SEQ.fetch_add(
        (rate * seconds) as u64 + 1,
        std::sync::atomic::Ordering::SeqCst,
    );
    let sent_at = produce_steadily(producer, TOPIC, w, rng, first, rate, seconds);
    // Everything read and committed (or 60 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (committed(metrics), Instant::now());
    while Instant::now() < deadline && last.1.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(200));
        let c = committed(metrics);
        if c != last.0 {
            last = (c, Instant::now());
        }
    }
    let port: u16 = metrics.rsplit(':').next().unwrap().parse().unwrap();
    let text = support::http_get(port, "/metrics");
    let stages = ["queued", "encoded", "sent", "settled"]
        .iter()
        .map(|s| (s.to_string(), stage_quantiles(&text, s)))
        .collect();
    let lat = server
        .accepted()
        .iter()
        .filter_map(|a| {
            let seq = seq_of(&a.body)?.checked_sub(first)?;
            let sent = sent_at.get(seq as usize)?;
            Some(a.received.duration_since(*sent).ok()?.as_secs_f64() * 1000.0)
        })
        .collect();
    (quantiles(lat), stages)
}

/// p50, p99 and p99.9 of one stage of `ossnotify_stage_seconds` (a
/// histogram): the upper bound of the bucket each falls in.
fn stage_quantiles(text: &str, stage: &str) -> String {
    support::bucket_quantiles(
        &support::stage_buckets(text, stage),
        &[("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)],
    )
    .unwrap_or_else(|| "(no samples)".into())
}

/// With `OSSNOTIFY_BENCH_OUTAGE_SECONDS=N`: a member (a topic and group of
/// its own) takes the half-load rate while its MNS endpoint fails every
/// request for the first N seconds (mns-dev's `fail_first`, counted from
/// when the member has joined), then 30 s more; its peak RSS over the
/// outage and the redelivery of its backlog (the Kafka store, the default).
fn outage(
    rt: &tokio::runtime::Runtime,
    brokers: &str,
    dir: &std::path::Path,
    rate: f64,
    w: &Workload,
) {
    let Some(secs) = std::env::var("OSSNOTIFY_BENCH_OUTAGE_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let topic = "bench-mns-outage";
    broker::create_topic(topic, 3);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let metrics = free_addr();
    let cfg = dir.join("outage.toml");
    std::fs::write(
        &cfg,
        config_text(brokers, "bench-outage", &metrics, dir, &endpoint, w, true).replace(
            &format!("topics = [\"{TOPIC}\"]"),
            &format!("topics = [\"{topic}\"]"),
        ),
    )
    .unwrap();
    let member = support::Member::start(&cfg, dir.join("outage.log"), "info");
    member.joined();
    listener.set_nonblocking(true).unwrap();
    let server = rt.block_on(async {
        DevServer::start(
            DevConfig {
                access_key_id: "AK".into(),
                access_key_secret: "SK".into(),
                queues: vec!["oss-events".into()],
                fail_first: Duration::from_secs(secs),
                ..Default::default()
            },
            tokio::net::TcpListener::from_std(listener).unwrap(),
        )
        .unwrap()
    });
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "1")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let mut rng = Rng::new(11);
    let total = (rate * (secs + 30) as f64) as u64;
    let start = Instant::now();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now {
            producer.poll(due - now);
        }
        let rec = record(w, &mut rng, i);
        while producer
            .send(BaseRecord::<(), _>::to(topic).payload(&rec))
            .is_err()
        {
            producer.poll(Duration::from_millis(1));
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    // Drained: every record committed, and mns-dev has taken nothing new
    // for 3 s.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last = (server.accepted_count(), Instant::now());
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let c = server.accepted_count();
        if c != last.0 {
            last = (c, Instant::now());
        } else if committed(&metrics) as u64 >= total && last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let hwm = support::peak_rss_kib(member.child.id());
    println!(
        "outage: {secs} s of failures at {rate:.0} records/s ({total} records in {:.0} s): member peak RSS (VmHWM) {:.1} MiB; {} messages accepted, the last {:.0} s after the outage ended",
        (secs + 30) as f64,
        hwm as f64 / 1024.0,
        last.0,
        (last.1 - start).as_secs_f64() - secs as f64
    );
    let (code, log) = member.signal("-TERM");
    assert_eq!(code, Some(0), "{log}");
    server.stop();
}
