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
