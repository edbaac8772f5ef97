//! Load harness (not criterion: a steady stream, not a micro-benchmark):
//! the MNS topic and queue clients against `ossnotify mns-dev` on loopback,
//! in its own process. Prints messages/s and the client's CPU per message.
//!
//! `cargo bench --bench mns_sink`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ossnotify::synth::Workload;
use ossnotify_sinks::mns::config::{MnsQueueConfig, MnsTopicConfig};
use ossnotify_sinks::{Envelope, Outcome, Sink, SinkConfig};

/// Feeds a sink as the pipeline does: calls of `max_batch` envelopes, two
/// at a time so the sink always has the next call waiting. Returns
/// (delivered, wall time, CPU time).
async fn drive(sink: &dyn Sink, envelopes: &[Envelope]) -> (usize, Duration, Duration) {
    let (t0, c0) = (Instant::now(), cpu_time());
    let mut ok = 0;
    let mut chunks = envelopes.chunks(sink.max_batch());
    loop {
        let (a, b) = (chunks.next(), chunks.next());
        let Some(a) = a else { break };
        let (ra, rb) = tokio::join!(sink.deliver(a), async {
            match b {
                Some(b) => sink.deliver(b).await,
                None => Vec::new(),
            }
        });
        ok += ra
            .iter()
            .chain(&rb)
            .filter(|o| **o == Outcome::Delivered)
            .count();
    }
    (ok, t0.elapsed(), cpu_time() - c0)
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 here.
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn main() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ossnotify"))
        .args([
            "mns-dev",
            "--listen",
            "127.0.0.1:0",
            "--access-key-id",
            "AK",
            "--access-key-secret",
            "SK",
        ])
        .args(["--topics", "oss-events", "--queues", "oss-queue"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start mns-dev");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let endpoint = first.split_whitespace().nth(3).unwrap().to_owned();

    // Real payloads: Base64 notifications of the engine's corpus.
    let w = Workload::standard();
    let index =
        ossnotify::rules::RuleIndex::build(w.rules(), ossnotify::rules::RegionPolicy::default());
    let mut engine = ossnotify::engine::Engine::new(ossnotify::oplog::KeyEncoding::Raw, true);
    let mut payloads = Vec::new();
    for r in w.records(120_000) {
        engine.process(&index, &r, |m| {
            payloads.push(String::from_utf8(m.base64.to_vec()).unwrap())
        });
    }
    let avg = payloads.iter().map(String::len).sum::<usize>() / payloads.len();
    println!("payloads: {} Base64 notifications, {avg} bytes on average; machine: 2-core VM, mns-dev in its own process", payloads.len());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let envelopes: Vec<Envelope> = payloads
            .iter()
            .map(|p| Envelope { payload: p.clone(), rule_id: "r".into(), key: "b/k".into(), ..Default::default() })
            .collect();
        let common = format!("endpoint = \"{endpoint}\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\nrequest = {{ max_in_flight = 64 }}\n");

        // Topic: one PublishMessage per message, 64 in flight (the sink's bound).
        let topic: MnsTopicConfig = toml::from_str(&format!("{common}topic = \"oss-events\"\n")).unwrap();
        let sink = topic.build("topic").unwrap();
        let n = 20_000.min(envelopes.len());
        let (ok, dt, dc) = drive(sink.as_ref(), &envelopes[..n]).await;
        println!(
            "mns_topic sink: {ok}/{n} delivered in {:.2} s = {:.0} messages/s at 64 in flight; client CPU {:.1} µs/message",
            dt.as_secs_f64(), ok as f64 / dt.as_secs_f64(), dc.as_secs_f64() * 1e6 / ok as f64
        );

        // Queue: BatchSendMessage of 16, 16 requests in flight.
        let queue: MnsQueueConfig = toml::from_str(&format!(
            "endpoint = \"{endpoint}\"\naccess_key_id = \"AK\"\naccess_key_secret = \"SK\"\nrequest = {{ max_in_flight = 16 }}\nbatch = {{ max_messages = 16 }}\nqueue = \"oss-queue\"\n"
        ))
        .unwrap();
        let sink = queue.build("queue").unwrap();
        let (ok, dt, dc) = drive(sink.as_ref(), &envelopes).await;
        println!(
            "mns_queue sink: {ok}/{} delivered in {:.2} s = {:.0} messages/s in batches of 16, 16 requests in flight; client CPU {:.1} µs/message",
            envelopes.len(), dt.as_secs_f64(), ok as f64 / dt.as_secs_f64(), dc.as_secs_f64() * 1e6 / ok as f64
        );
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
