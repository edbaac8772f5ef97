//! Load harness (not criterion: a steady stream, not a micro-benchmark):
//! the MNS topic and queue clients against `ossnotify mns-dev` on loopback,
//! in its own process. Prints messages/s and the client's CPU per message.
//!
//! `cargo bench --bench mns_sink`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ossnotify::synth::Workload;
use ossnotify_sinks::mns::client::{self, batches, MnsClient};
use ossnotify_sinks::mns::xml::OutMessage;
use ossnotify_sinks::{RetryConfig, Secret};

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
        let c = MnsClient::new(&endpoint, "AK", Secret::from("SK".to_owned()), Duration::from_secs(10)).unwrap();
        let retry = RetryConfig::default();

        // Topic: one PublishMessage per message, 64 in flight.
        let n = 20_000.min(payloads.len());
        let sem = Arc::new(tokio::sync::Semaphore::new(64));
        let (t0, c0) = (Instant::now(), cpu_time());
        let mut tasks = Vec::with_capacity(n);
        for p in &payloads[..n] {
            let permit = sem.clone().acquire_owned().await.unwrap();
            let (c, retry) = (c.clone(), retry.clone());
            let m = OutMessage { body: p.clone(), ..Default::default() };
            tasks.push(tokio::spawn(async move {
                let r = client::publish_with_retry(&c, "oss-events", &m, &retry).await;
                drop(permit);
                r.is_ok()
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += t.await.unwrap() as usize;
        }
        let (dt, dc) = (t0.elapsed(), cpu_time() - c0);
        println!(
            "mns_topic: {ok}/{n} delivered in {:.2} s = {:.0} messages/s at 64 in flight; client CPU {:.1} µs/message",
            dt.as_secs_f64(), ok as f64 / dt.as_secs_f64(), dc.as_secs_f64() * 1e6 / ok as f64
        );

        // Queue: BatchSendMessage of 16, 16 requests in flight.
        let ms: Vec<OutMessage> = payloads.iter().map(|p| OutMessage { body: p.clone(), ..Default::default() }).collect();
        let ranges = batches(&ms, 16);
        let ms = Arc::new(ms);
        let sem = Arc::new(tokio::sync::Semaphore::new(16));
        let (t0, c0) = (Instant::now(), cpu_time());
        let mut tasks = Vec::with_capacity(ranges.len());
        for r in ranges {
            let permit = sem.clone().acquire_owned().await.unwrap();
            let (c, retry, ms) = (c.clone(), retry.clone(), ms.clone());
            tasks.push(tokio::spawn(async move {
                let res = client::send_with_retry(&c, "oss-queue", &ms[r], &retry).await;
                drop(permit);
                res.iter().filter(|r| r.is_ok()).count()
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += t.await.unwrap();
        }
        let (dt, dc) = (t0.elapsed(), cpu_time() - c0);
        println!(
            "mns_queue: {ok}/{} delivered in {:.2} s = {:.0} messages/s in batches of 16, 16 requests in flight; client CPU {:.1} µs/message",
            ms.len(), dt.as_secs_f64(), ok as f64 / dt.as_secs_f64(), dc.as_secs_f64() * 1e6 / ok as f64
        );
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
