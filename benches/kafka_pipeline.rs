//! Load harness (not criterion): the whole pipeline (Kafka → engine → null
//! sink, 10k rules) against a bare rdkafka consumer reading the same topic
//! from the same broker (tansu, in memory, on loopback) in the same run.
//!
//! `cargo bench --bench kafka_pipeline`
//!
//! The pipeline's rate is measured between its first and last offset
//! commits, so tansu's consumer-group join (which can take ~25 s) is not
//! counted; commits come every 0.5 s, so use enough records for that to be
//! small.

#[path = "../tests/support/broker.rs"]
mod broker;

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const RECORDS: u64 = 2_000_000;
const TOPIC: &str = "bench-oplog";

fn committed(c: &BaseConsumer) -> i64 {
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(TOPIC, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .map(|l| {
            l.elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum()
        })
        .unwrap_or(0)
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

    // Bare consumer: assigned every partition, counts records.
    let bare: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "bench-bare")
        .create()
        .unwrap();
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
            first.get_or_insert_with(Instant::now);
            n += 1;
        }
    }
    let bare_rate = n as f64 / first.unwrap().elapsed().as_secs_f64();
    println!("bare rdkafka consumer: {n} records, {bare_rate:.0} records/s");
    drop(bare);

    // The pipeline, in this process, with 10k rules and a null sink.
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        "[source]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{TOPIC}\"]\ngroup_id = \"bench-pipeline\"\n\n[pipeline]\nworkers = 2\n\n[dead_letter]\npath = \"{}\"\n\n[sinks.discard]\ntype = \"null\"\n",
        dir.path().join("dl").display()
    );
    for r in ossnotify::synth::Workload::standard().rules() {
        let events: Vec<String> = r
            .events
            .iter()
            .map(|e| format!("\"{}\"", event_name(e)))
            .collect();
        let res: Vec<String> = r.resources.iter().map(|p| format!("\"{p}\"")).collect();
        text.push_str(&format!(
            "[[rules]]\nid = \"{}\"\nbucket = \"{}\"\nevents = [{}]\nresources = [{}]\nsinks = [\"discard\"]\n",
            r.id,
            r.bucket,
            events.join(", "),
            res.join(", ")
        ));
    }
    let path = dir.path().join("bench.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let config = ossnotify::config::load(&path).unwrap().config;
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            ossnotify::pipeline::run(&config, ossnotify::pipeline::Input::Kafka, stop)
        })
    };
    // One monitor, reused: creating consumers in a loop would steal CPU.
    let monitor: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "bench-pipeline")
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut start, mut last) = (None, (0i64, Instant::now()));
    while Instant::now() < deadline {
        let c = committed(&monitor);
        if c > 0 && start.is_none() {
            start = Some((c, Instant::now()));
        }
        if c > last.0 {
            last = (c, Instant::now());
        }
        if c as u64 >= RECORDS {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let summary = runner.join().unwrap().unwrap();
    let (c0, t0) = start.expect("the pipeline committed something");
    let rate = (last.0 - c0) as f64 / (last.1 - t0).as_secs_f64();
    println!(
        "pipeline (Kafka → 10k rules → null sink, 2 workers): {} records ({} messages), {rate:.0} records/s",
        summary.records, summary.messages
    );
    println!("pipeline / bare consumer = {:.3}", rate / bare_rate);
}

/// The event name a rule wrote (the synthetic rules use specific names and `Category:*`).
fn event_name(e: &ossnotify::event::EventPattern) -> String {
    use ossnotify::event::EventPattern;
    match e {
        EventPattern::Specific(t) => t.name().to_owned(),
        EventPattern::All(c) => format!("{}:All", c.name()),
        EventPattern::Star(c) => format!("{}:*", c.name()),
    }
}
