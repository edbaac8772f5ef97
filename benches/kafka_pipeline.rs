//! Load harness (not criterion): the whole pipeline (`ossnotify run`: Kafka
//! → engine → null sink, 10k rules) against a bare rdkafka consumer reading
//! the same topic from the same broker (tansu, in memory, on loopback) in the
//! same run, in rounds (`OSSNOTIFY_BENCH_ROUNDS`, default 3) of one bare
//! read and one pipeline read each; the result is the median of the rounds'
//! ratios.
//!
//! `cargo bench --bench kafka_pipeline`
//!
//! With `OSSNOTIFY_BENCH_BASELINE=/path/to/an/older/ossnotify`, each round
//! also runs that build's pipeline (alternating which of the two goes
//! first), and both are reported against the same bare reads: a before and
//! after of a change measured in one run, which the spread between runs
//! (0.79 to 0.98 for the same code on this VM) would otherwise hide.
//!
//! With `OSSNOTIFY_BENCH_TAP=1`, each round also runs the current build
//! with an `ossnotify tap` attached for the whole run, taking every
//! message (no filter) and reading as fast as it can ("tapped"): what a
//! tap costs the pipeline, at worst.
//!
//! The pipeline's rate is measured between its first and last offset
//! commits (every 100 ms here), so tansu's consumer-group join (which can
//! take ~25 s) is not counted. Both phases also report the CPU they used,
//! the reader's and the broker's: on 2 cores the broker's share bounds the
//! rest. Each pipeline's peak RSS (`VmHWM`) is reported with its rate.

#[path = "../tests/support/mod.rs"]
mod support;

use support::{broker, free_addr, metrics_committed as committed, spawn_run_of, stop_run};

use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::Offset;

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

/// CPU seconds so far of process `pid`'s own threads and of librdkafka's
/// (`rdk:*`): per record, far steadier from run to run than the rate,
/// which the broker's share of the two cores moves.
fn thread_cpu(pid: &str) -> (f64, f64) {
    let (mut own, mut rdk) = (0.0, 0.0);
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let secs = cpu_seconds(&format!("{pid}/task/{}", t.file_name().to_string_lossy()));
        if comm.starts_with("rdk:") {
            rdk += secs;
        } else {
            own += secs;
        }
    }
    (own, rdk)
}

/// CPU used by the reader (this process or the pipeline's) and by the
/// broker from `start` on, in cores.
struct CpuClock {
    reader: String,
    broker: String,
    at: (Instant, f64, f64),
}

impl CpuClock {
    fn start(reader: &str, broker: &str) -> CpuClock {
        let (r, b) = (reader.to_owned(), broker.to_owned());
        let at = (Instant::now(), cpu_seconds(&r), cpu_seconds(&b));
        CpuClock {
            reader: r,
            broker: b,
            at,
        }
    }
    fn cores(&self) -> (f64, f64) {
        let wall = self.at.0.elapsed().as_secs_f64();
        (
            (cpu_seconds(&self.reader) - self.at.1) / wall,
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

    // Rounds of (bare consumer, pipeline), each with fresh group ids: one
    // run of the bare consumer moves between ~550k and ~760k records/s with
    // nothing changed, so the ratio is judged on the median of the rounds.
    let rounds: usize = std::env::var("OSSNOTIFY_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    // A first read of a topic can be slower on tansu (in one run the bare
    // consumer read 612k/s first, then 750k/s and 762k/s): one uncounted
    // read, so that no round compares a cold read with a warm one.
    println!("warm-up (not counted):");
    bare_phase(&broker_pid, usize::MAX);
    let current = std::path::PathBuf::from(env!("CARGO_BIN_EXE_ossnotify"));
    let baseline = std::env::var_os("OSSNOTIFY_BENCH_BASELINE").map(std::path::PathBuf::from);
    let tapped = std::env::var_os("OSSNOTIFY_BENCH_TAP").is_some_and(|v| v == "1");
    let mut ratios = Vec::new();
    let mut baseline_ratios = Vec::new();
    let mut tapped_ratios = Vec::new();
    for round in 0..rounds {
        println!("round {}:", round + 1);
        let bare_rate = bare_phase(&broker_pid, round);
        let mut order = vec![("current", &current)];
        if tapped {
            order.push(("tapped", &current));
        }
        if let Some(b) = &baseline {
            order.push(("baseline", b));
            if round % 2 == 1 {
                order.reverse();
            }
        }
        for (label, bin) in order {
            let rate = pipeline_phase(&brokers, &broker_pid, round, bin, label);
            println!("{label} pipeline / bare consumer = {:.3}", rate / bare_rate);
            match label {
                "current" => ratios.push(rate / bare_rate),
                "tapped" => tapped_ratios.push(rate / bare_rate),
                _ => baseline_ratios.push(rate / bare_rate),
            }
        }
    }
    report("pipeline", &mut ratios);
    if !baseline_ratios.is_empty() {
        report("baseline pipeline", &mut baseline_ratios);
    }
    if !tapped_ratios.is_empty() {
        report("tapped pipeline", &mut tapped_ratios);
    }
}

/// A tap on the pipeline's metrics server taking every message, read as
/// fast as this thread can; returns (messages read, dropped) once the
/// daemon ends the stream.
fn attach_tap(metrics: String) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        use std::io::BufRead;
        let deadline = Instant::now() + Duration::from_secs(60);
        let stream = loop {
            match std::net::TcpStream::connect(&metrics) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("no metrics server at {metrics}: {e}"),
            }
        };
        let mut w = stream.try_clone().unwrap();
        write!(w, "GET /tap HTTP/1.0\r\n\r\n").unwrap();
        let (mut read, mut dropped) = (0u64, 0u64);
        let mut line = Vec::new();
        let mut r = std::io::BufReader::with_capacity(1 << 20, stream);
        let mut in_body = false;
        while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            if !in_body {
                in_body = line == b"\r\n";
            } else if let Some(n) = line.strip_prefix(b"{\"dropped\":") {
                dropped += std::str::from_utf8(&n[..n.len() - 2])
                    .unwrap()
                    .parse::<u64>()
                    .unwrap();
            } else {
                read += 1;
            }
            line.clear();
        }
        (read, dropped)
    })
}

/// Prints the ratios of the rounds and their median.
fn report(what: &str, ratios: &mut [f64]) {
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "{what} / bare consumer over {} rounds: {}; median {:.3}",
        ratios.len(),
        shown.join(", "),
        ratios[ratios.len() / 2]
    );
}

/// The bare consumer: assigned every partition, counting records; the
/// pipeline's consumer settings. Returns records/s.
fn bare_phase(broker_pid: &str, round: usize) -> f64 {
    let bare = support::bare_consumer(
        &format!("bench-bare-{round}"),
        TOPIC,
        3,
        Offset::Beginning,
        &[("statistics.interval.ms", "5000")],
    );
    let (mut n, mut first) = (0u64, None);
    let deadline = Instant::now() + Duration::from_secs(300);
    while n < RECORDS && Instant::now() < deadline {
        if let Some(Ok(_)) = bare.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(|| (Instant::now(), CpuClock::start("self", broker_pid)));
            n += 1;
        }
    }
    let (t0, cpu) = first.unwrap();
    let bare_rate = n as f64 / t0.elapsed().as_secs_f64();
    let (ours, theirs) = cpu.cores();
    println!("bare rdkafka consumer: {n} records, {bare_rate:.0} records/s; CPU: {ours:.2} cores here, {theirs:.2} in the broker");
    bare_rate
}

/// The pipeline, in this process, with 10k rules and a null sink. Returns
/// records/s between its first and last offset commits.
fn pipeline_phase(
    brokers: &str,
    broker_pid: &str,
    round: usize,
    bin: &std::path::Path,
    label: &str,
) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let workers: usize = std::env::var("OSSNOTIFY_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    // The pipeline's own threads on the last CPU, librdkafka's and the
    // broker's free (`[pipeline] cpus`, README "Sharing a machine with the
    // broker"); `OSSNOTIFY_BENCH_CPUS=""` leaves every thread free.
    let cpus = std::env::var("OSSNOTIFY_BENCH_CPUS").unwrap_or_else(|_| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        if n > 1 {
            (n - 1).to_string()
        } else {
            String::new()
        }
    });
    let metrics = free_addr();
    let mut text = format!(
        "[source]\ntype = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{TOPIC}\"]\ngroup_id = \"bench-pipeline-{round}-{label}\"\n\n[pipeline]\nworkers = {workers}\ncommit_interval_ms = 100\ncpus = [{cpus}]\n\n[metrics]\nlisten = \"{metrics}\"\n\n[dead_letter]\npath = \"{}\"\n\n[sinks.discard]\ntype = \"null\"\n",
        dir.path().join("dl").display()
    );
    text.push_str(&ossnotify::synth::Workload::standard().rules_toml("discard"));
    let path = dir.path().join("bench.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    // The release binary in its own process: a process holds one metrics
    // exporter, and each round needs a fresh pipeline.
    let child = spawn_run_of(bin, &path, &dir.path().join("run.log"), "info");
    let pid = child.id().to_string();
    let tap = (label == "tapped").then(|| attach_tap(metrics.clone()));
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut start, mut last) = (None, (0i64, Instant::now()));
    let mut cpu = None;
    while Instant::now() < deadline {
        let c = committed(&metrics);
        if c > 0 && start.is_none() {
            start = Some((c, Instant::now()));
            cpu = Some(CpuClock::start(&pid, broker_pid));
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
    let (own, rdk) = thread_cpu(&pid);
    let peak = support::peak_rss_kib(child.id());
    stop_run(child);
    if let Some(tap) = tap {
        let (read, dropped) = tap.join().unwrap();
        println!("the tap read {read} messages and was told of {dropped} dropped");
    }
    println!(
        "{label} pipeline CPU per record, whole run: {:.3} µs in its own threads, {:.3} µs in librdkafka's",
        own * 1e6 / RECORDS as f64,
        rdk * 1e6 / RECORDS as f64
    );
    let (c0, t0) = start.expect("the pipeline committed something");
    let rate = (last.0 - c0) as f64 / (last.1 - t0).as_secs_f64();
    println!(
        "{label} pipeline (`ossnotify run`: Kafka → 10k rules → null sink, {workers} workers, cpus = [{cpus}]): {} records committed, {rate:.0} records/s; CPU: {ours:.2} cores in it, {theirs:.2} in the broker; peak RSS {:.1} MiB",
        last.0,
        peak as f64 / 1024.0
    );
    rate
}
