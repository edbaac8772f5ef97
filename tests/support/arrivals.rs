//! What arrived at an in-process mns-dev, counted by the record each
//! message came from: the fault tests' records carry `r-SEQ` as their
//! request id, and every record must arrive at least once.

#![allow(dead_code)] // included by test binaries that each use a part

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ossnotify_mns_dev::DevServer;

/// The request id's SEQ inside a delivered (Base64) message.
pub fn seq_of(body: &str) -> Option<u64> {
    let json = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&json).ok()?;
    v["events"][0]["responseElements"]["requestId"]
        .as_str()?
        .strip_prefix("r-")?
        .parse()
        .ok()
}

/// How many times each SEQ arrived.
pub fn arrivals(server: &DevServer) -> HashMap<u64, usize> {
    let mut out = HashMap::new();
    for a in server.accepted() {
        if let Some(s) = seq_of(&a.body) {
            *out.entry(s).or_insert(0) += 1;
        }
    }
    out
}

/// Waits until every SEQ below `n` arrived at `server`, up to `within`.
pub async fn wait_all(server: &DevServer, n: u64, within: Duration) -> HashMap<u64, usize> {
    let deadline = Instant::now() + within;
    loop {
        let got = arrivals(server);
        if (0..n).all(|s| got.contains_key(&s)) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The first SEQs below `n` that did not arrive (at most 20).
pub fn missing(got: &HashMap<u64, usize>, n: u64) -> Vec<u64> {
    (0..n).filter(|s| !got.contains_key(s)).take(20).collect()
}
