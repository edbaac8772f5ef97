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
//! 2. Latency at half that rate: records produced at a steady 50 % of it,
//!    each carrying its sequence number as its request id; latency is the
//!    time from the producer's send call to mns-dev accepting the message.
//! 3. The pipeline's peak RSS (VmHWM) over both.
//! 4. With `OSSNOTIFY_BENCH_OUTAGE_SECONDS=N`, a member's peak RSS while
//!    its sink fails for N seconds at that half rate (see `outage`).

#[path = "../tests/support/mod.rs"]
mod support;

use support::{broker, free_addr, metrics_committed as committed, spawn_run, stop_run};

use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use ossnotify::synth::{Rng, Workload};
use ossnotify_sinks::mns::dev_server::{DevConfig, DevServer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const TOPIC: &str = "bench-mns";
const BACKLOG: u64 = 600_000;
const HALF_LOAD_SECONDS: f64 = 20.0;

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
    let mut rec = BaseRecord::<(), [u8]>::to(TOPIC).payload(payload);
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
        "[source]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{TOPIC}\"]\ngroup_id = \"{group}\"\n\n[source.librdkafka]\n\"fetch.wait.max.ms\" = \"20\"\n\n[pipeline]\ncommit_interval_ms = 100\n\n[metrics]\nlisten = \"{metrics}\"\n\n[dead_letter]\npath = \"{}\"\n\n[sinks.events]\ntype = \"mns_queue\"\nendpoint = \"{endpoint}\"\nqueue = \"oss-events\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\nbatch_size = 16\nmax_in_flight = 16\n[sinks.events.breaker]\nenabled = {breaker}\n",
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
        stop_run(child);
        let label = if first { a_label } else { b_label };
        println!("round {round}: {label}: {rate:.0} records/s");
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

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
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
    let child = spawn_run(&cfg, &dir.path().join("run.log"));

    // 1. Sustained rate over the backlog.
    let max_rate = sustained(&metrics);
    let backlog_messages = server.accepted_count();
    println!(
        "sustained: {max_rate:.0} records/s ({backlog_messages} messages accepted by mns-dev for {BACKLOG} records)"
    );

    // 2. Half of that rate, steadily, with the send time of every record.
    // `OSSNOTIFY_BENCH_LOAD` picks another fraction of the sustained rate.
    let load: f64 = std::env::var("OSSNOTIFY_BENCH_LOAD")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.5);
    let rate = max_rate * load;
    let total = (rate * HALF_LOAD_SECONDS) as u64;
    let mut sent_at: Vec<SystemTime> = Vec::with_capacity(total as usize);
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
        send(&producer, &record(&w, &mut rng, BACKLOG + i));
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let want = BACKLOG + total;
    let deadline = Instant::now() + Duration::from_secs(120);
    while (committed(&metrics) as u64) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut lat: Vec<f64> = server
        .accepted()
        .iter()
        .filter_map(|a| {
            let seq = seq_of(&a.body)?.checked_sub(BACKLOG)?;
            let sent = sent_at.get(seq as usize)?;
            Some(a.received.duration_since(*sent).ok()?.as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    println!(
        "at {:.0} % ({rate:.0} records/s for {HALF_LOAD_SECONDS} s, {total} records, {} messages): latency from produce to mns-dev accept p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        load * 100.0,
        lat.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );

    // 3. Peak RSS, then a clean stop.
    let hwm = vm_hwm_kib(child.id());
    println!("pipeline peak RSS (VmHWM): {:.1} MiB", hwm as f64 / 1024.0);
    stop_run(child);
    ab(&brokers, dir.path(), &server.endpoint(), &w);
    server.stop();
    outage(&rt, &brokers, dir.path(), rate, &w);
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
    let hwm = vm_hwm_kib(member.child.id());
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
