//! Load harness (not criterion): the whole pipeline (Kafka → engine → null
//! sink, 10k rules) against a bare rdkafka consumer reading the same topic
//! from the same broker (tansu, in memory, on loopback) in the same run.
//!
//! `cargo bench --bench kafka_pipeline`
//!
//! The pipeline's rate is measured between its first and last offset
//! commits (every 100 ms here), so tansu's consumer-group join (which can
//! take ~25 s) is not counted. Both phases also report the CPU they used,
//! ours and the broker's: on 2 cores the broker's share bounds the rest.

#[path = "../tests/support/broker.rs"]
mod broker;
mod common;

use common::committed;

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// As in the `ossnotify` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RECORDS: u64 = 3_000_000;
const TOPIC: &str = "bench-oplog";

/// CPU seconds (user + system) of process `pid` so far.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// CPU used by us and by the broker from `since` on, in cores.
struct CpuClock {
    broker: String,
    at: (Instant, f64, f64),
}

impl CpuClock {
    fn start(broker: &str) -> CpuClock {
        let b = broker.to_owned();
        let at = (Instant::now(), cpu_seconds("self"), cpu_seconds(&b));
        CpuClock { broker: b, at }
    }
    fn cores(&self) -> (f64, f64) {
        let wall = self.at.0.elapsed().as_secs_f64();
        (
            (cpu_seconds("self") - self.at.1) / wall,
            (cpu_seconds(&self.broker) - self.at.2) / wall,
        )
    }
}

fn main() {
    let brokers = broker::brokers().to_owned();
    broker::create_topic(TOPIC, 3);
    let t = Instant::now();
    ossnotify::loadgen::generate(&ossnotify::loadgen::LoadSpec {
        target: ossnotify::loadgen::Target::Kafka {
            brokers: brokers.clone(),
            topic: TOPIC.into(),
        },
        records: RECORDS,
        rate: 0,
        input: None,
        seed: 42,
    })
    .unwrap();
    println!("produced {RECORDS} synthetic records in {:.1} s; machine: 2-core VM, tansu in memory on loopback", t.elapsed().as_secs_f64());

    let port = brokers.rsplit(':').next().unwrap();
    let broker_pid = std::fs::read_to_string(format!(
        "{}/.tools/tansu-{port}.pid",
        env!("CARGO_MANIFEST_DIR")
    ))
    .map(|s| s.trim().to_owned())
    .unwrap_or_default();

    // Bare consumer: assigned every partition, counts records; the
    // pipeline's consumer settings.
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &brokers)
        .set("group.id", "bench-bare")
        .set("enable.auto.commit", "false")
        .set("statistics.interval.ms", "5000");
    for (k, v) in ossnotify::pipeline::FETCH_DEFAULTS {
        cc.set(*k, *v);
    }
    let bare: BaseConsumer = cc.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    bare.assign(&tpl).unwrap();
    let (mut n, mut first) = (0u64, None);
    let deadline = Instant::now() + Duration::from_secs(300);
    while n < RECORDS && Instant::now() < deadline {
        if let Some(Ok(_)) = bare.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(|| (Instant::now(), CpuClock::start(&broker_pid)));
            n += 1;
        }
    }
    let (t0, cpu) = first.unwrap();
    let bare_rate = n as f64 / t0.elapsed().as_secs_f64();
    let (ours, theirs) = cpu.cores();
    println!("bare rdkafka consumer: {n} records, {bare_rate:.0} records/s; CPU: {ours:.2} cores here, {theirs:.2} in the broker");
    drop(bare);

    // The pipeline, in this process, with 10k rules and a null sink.
    let dir = tempfile::tempdir().unwrap();
    let workers: usize = std::env::var("OSSNOTIFY_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string();
    let mut text = format!(
        "[source]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{TOPIC}\"]\ngroup_id = \"bench-pipeline\"\n\n[pipeline]\nworkers = {workers}\ncommit_interval_ms = 100\n\n[metrics]\nlisten = \"{metrics}\"\n\n[dead_letter]\npath = \"{}\"\n\n[sinks.discard]\ntype = \"null\"\n",
        dir.path().join("dl").display()
    );
    text.push_str(&ossnotify::synth::Workload::standard().rules_toml("discard"));
    let path = dir.path().join("bench.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let config = ossnotify::config::load(&path).unwrap().config;
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let stop = stop.clone();
        // Named as `ossnotify run`'s main thread would be: the source runs on it.
        std::thread::Builder::new()
            .name("ossnotify-source".into())
            .spawn(move || {
                ossnotify::pipeline::run(&config, ossnotify::pipeline::Input::Kafka, stop)
            })
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut start, mut last) = (None, (0i64, Instant::now()));
    let mut cpu = None;
    while Instant::now() < deadline {
        let c = committed(&metrics);
        if c > 0 && start.is_none() {
            start = Some((c, Instant::now()));
            cpu = Some(CpuClock::start(&broker_pid));
        }
        if c > last.0 {
            last = (c, Instant::now());
        }
        if c as u64 >= RECORDS {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ours, theirs) = cpu.expect("the pipeline committed something").cores();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let summary = runner.join().unwrap().unwrap();
    let (c0, t0) = start.expect("the pipeline committed something");
    let rate = (last.0 - c0) as f64 / (last.1 - t0).as_secs_f64();
    println!(
        "pipeline (Kafka → 10k rules → null sink, {workers} workers): {} records ({} messages), {rate:.0} records/s; CPU: {ours:.2} cores here, {theirs:.2} in the broker",
        summary.records, summary.messages
    );
    println!("pipeline / bare consumer = {:.3}", rate / bare_rate);
}
