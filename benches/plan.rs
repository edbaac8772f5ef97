//! Load harness (not criterion): how fast `ossnotify plan` compares two
//! configs (the engine benchmark's 10k rules, and the same less one rule)
//! over a retained topic on the test broker (tansu, in memory, on
//! loopback), against a bare rdkafka consumer reading the same topic with
//! the same fetch settings in the same run; and over the same records in
//! a file. The release binary runs in its own process; its rate is the
//! records it read over its whole run (start-up and two rule indexes
//! included), with its peak RSS.
//!
//! `cargo bench --bench plan` (`OSSNOTIFY_BENCH_RECORDS`, default 1,000,000)

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use rdkafka::Offset;

const TOPIC: &str = "bench-plan";
const PARTITIONS: i32 = 3;

fn main() {
    let records: u64 = std::env::var("OSSNOTIFY_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let brokers = support::broker::brokers().to_owned();
    support::broker::create_topic(TOPIC, PARTITIONS as u32);
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.ndjson");
    for target in [
        ossnotify::loadgen::Target::Kafka {
            brokers: brokers.clone(),
            topic: TOPIC.into(),
        },
        ossnotify::loadgen::Target::File(corpus.clone()),
    ] {
        ossnotify::loadgen::generate(&ossnotify::loadgen::LoadSpec {
            target,
            records,
            rate: 0,
            input: None,
            seed: 42,
        })
        .unwrap();
    }
    println!("{records} synthetic records in the topic and in a file; machine: 2-core VM, tansu in memory on loopback");

    let rules = ossnotify::synth::Workload::standard().rules_toml("discard");
    let head = format!(
        "[source]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{TOPIC}\"]\ngroup_id = \"bench-plan\"\n\n[sinks.discard]\ntype = \"null\"\n"
    );
    let old = dir.path().join("old.toml");
    let new = dir.path().join("new.toml");
    std::fs::write(&old, format!("{head}{rules}")).unwrap();
    // The same rules less the last one.
    let less = &rules[..rules.rfind("[[rules]]").unwrap()];
    std::fs::write(&new, format!("{head}{less}")).unwrap();

    let bare = bare_read(records);
    println!("bare rdkafka consumer: {records} records, {bare:.0} records/s");
    let (read, rate, peak) = plan(&[
        "-c",
        new.to_str().unwrap(),
        "--against",
        old.to_str().unwrap(),
        "--since",
        "30d",
    ]);
    println!(
        "plan over the topic (10k rules vs 10k less one): {read} records, {rate:.0} records/s ({:.2} of the bare consumer); peak RSS {peak:.1} MiB",
        rate / bare
    );
    let (read, rate, peak) = plan(&[
        "-c",
        new.to_str().unwrap(),
        "--against",
        old.to_str().unwrap(),
        corpus.to_str().unwrap(),
    ]);
    println!("plan over the file: {read} records, {rate:.0} records/s; peak RSS {peak:.1} MiB");
}

/// Runs the release binary's plan; (records read, records/s over its run,
/// its peak RSS in MiB).
fn plan(args: &[&str]) -> (u64, f64, f64) {
    let t = Instant::now();
    let (out, peak) = support::output_with_peak_rss(
        std::process::Command::new(env!("CARGO_BIN_EXE_ossnotify"))
            .arg("plan")
            .args(args)
            .args(["--format", "json"]),
    );
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let read = v["records"]["read"].as_u64().unwrap();
    (read, read as f64 / secs, peak as f64 / 1024.0)
}

/// A consumer assigned every partition, with the plan's fetch settings;
/// records/s from its first record to its last.
fn bare_read(records: u64) -> f64 {
    let c = support::bare_consumer("bench-plan-bare", TOPIC, PARTITIONS, Offset::Beginning, &[]);
    let (mut n, mut first) = (0u64, None);
    let deadline = Instant::now() + Duration::from_secs(300);
    while n < records && Instant::now() < deadline {
        if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            n += 1;
        }
    }
    n as f64 / first.unwrap().elapsed().as_secs_f64()
}
