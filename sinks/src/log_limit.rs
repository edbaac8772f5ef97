//! Repeated log lines, limited. A lasting condition repeats itself: with an
//! unreachable broker, librdkafka's errors came about 40 a second, forever;
//! a dead sink gives up on every message it is handed. Each kind of line
//! (its text without the digits, which vary) is logged the first time, then
//! at most once every [`EVERY`], saying how many were left out meanwhile.
//! Changes of state (broker lost, broker back) are logged by their owner,
//! once each.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a repeating line is logged again.
pub const EVERY: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    /// Per kind: when it was last logged, and how many were left out since.
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit::new(EVERY)
    }
}

impl LogLimit {
    pub fn new(every: Duration) -> LogLimit {
        LogLimit {
            every,
            seen: Mutex::default(),
        }
    }

    /// Whether a line like `text` is to be logged now: `Some(n)` with the
    /// number of its kind left out since it was last logged.
    pub fn admit(&self, text: &str) -> Option<u64> {
        let kind: String = text
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .take(120)
            .collect();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match seen.get_mut(&kind) {
            Some((last, left_out)) if now.duration_since(*last) < self.every => {
                *left_out += 1;
                None
            }
            Some((last, left_out)) => {
                *last = now;
                Some(std::mem::take(left_out))
            }
            None => {
                // Bounded: a flood of distinct lines must not grow this.
                if seen.len() >= 1024 {
                    seen.clear();
                }
                seen.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

/// Logs the cause of a transient failure of sink `sink` (one that is
/// retried, or kept in the backlog): one line per sink and kind of cause
/// (its code, what precedes the first `:`) every 30 s, with how many like
/// it were left out since. A timeout, a refused connection and a 503 of the
/// same sink are each said.
pub fn transient(sink: &str, cause: &str) {
    static LIMIT: std::sync::LazyLock<LogLimit> = std::sync::LazyLock::new(LogLimit::default);
    let code = cause.split(':').next().unwrap_or_default();
    // The key keeps the network error's kind (refused, reset, timed out).
    let kind = if code == "NetworkError" || code == "network" {
        cause.rsplit(": ").next().unwrap_or(code)
    } else {
        code
    };
    if let Some(n) = LIMIT.admit(&format!("{sink}\u{0}{kind}")) {
        tracing::warn!(
            sink,
            cause,
            like_this_since_last_logged = n,
            "transient failure: retried, then kept in the sink's backlog if it lasts"
        );
    }
}

/// An error with its sources, `top: source: source's source`, each said
/// once: what a network error's top level leaves out ("error sending
/// request") is in its sources ("Connection refused (os error 111)").
pub fn with_sources(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_line_is_logged_once_per_period_with_a_count() {
        let limit = LogLimit::new(Duration::from_millis(50));
        assert_eq!(
            limit.admit("Connect to ipv4#127.0.0.1:1 failed (after 0ms)"),
            Some(0)
        );
        // The same kind, other numbers: left out.
        assert_eq!(
            limit.admit("Connect to ipv4#127.0.0.1:1 failed (after 3ms)"),
            None
        );
        assert_eq!(
            limit.admit("Connect to ipv4#127.0.0.1:1 failed (after 9ms)"),
            None
        );
        // Another kind is not held back.
        assert_eq!(limit.admit("All broker connections are down"), Some(0));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            limit.admit("Connect to ipv4#127.0.0.1:1 failed (after 1ms)"),
            Some(2)
        );
    }
}
