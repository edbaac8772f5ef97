//! The per-sink circuit breaker (docs/guarantees.md, isolation). A sink that keeps
//! failing with transient errors is opened: its in-flight retries stop at
//! once, and the pipeline sends its messages to the sink's durable backlog
//! instead of waiting on it, so the other sinks keep flowing. While open,
//! one probe at a time goes out, with backoff; the first answer closes it.
//!
//! Every attempt is recorded: a success, or any answer that shows the peer
//! is up (a permanent failure), resets the count; a transient failure
//! (network, timeout, 5xx) adds to it. Throttling is neither: the sink is
//! up, only slow, and backs off in its retries; a throttled probe waits
//! its turn again, at the same backoff.
//!
//! A probe whose answer is never recorded (its request dropped before it
//! ended) must not keep the breaker half-open for ever: after
//! `probe_max_ms` another probe may go.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::FieldIssue;

/// `[sinks.NAME.breaker]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Isolation (the breaker and the backlog) is on by default.
    pub enabled: bool,
    /// Transient failures in a row, over all requests, that open it.
    pub failures: u32,
    /// Wait before the first probe; doubled after each failed probe.
    pub probe_initial_ms: u64,
    pub probe_max_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            failures: 10,
            probe_initial_ms: 1_000,
            probe_max_ms: 30_000,
        }
    }
}

impl BreakerConfig {
    pub fn validate(&self, issues: &mut Vec<FieldIssue>) {
        if self.failures == 0 {
            issues.push(FieldIssue::new("breaker.failures", "must be at least 1"));
        }
        if self.probe_initial_ms == 0 || self.probe_initial_ms > self.probe_max_ms {
            issues.push(FieldIssue::new(
                "breaker.probe_initial_ms",
                "must be at least 1 and at most breaker.probe_max_ms",
            ));
        }
    }
}

/// `[sinks.NAME.backlog]`: the bound of the sink's durable backlog.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BacklogConfig {
    pub max_mib: u64,
    pub when_full: WhenFull,
}

impl Default for BacklogConfig {
    fn default() -> Self {
        BacklogConfig {
            max_mib: 1024,
            when_full: WhenFull::Block,
        }
    }
}

/// What a full backlog does with more messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room: the sink's queue fills and the consumer pauses
    /// (backpressure, as without isolation).
    Block,
    /// Write them to the dead-letter store.
    DeadLetter,
}

impl BacklogConfig {
    pub fn validate(&self, issues: &mut Vec<FieldIssue>) {
        if self.max_mib == 0 {
            issues.push(FieldIssue::new("backlog.max_mib", "must be at least 1"));
        }
    }
}

/// A sink's isolation: its breaker and its backlog's bound.
#[derive(Debug, Clone)]
pub struct Isolation {
    pub breaker: std::sync::Arc<Breaker>,
    pub backlog: BacklogConfig,
}

impl Isolation {
    /// The isolation of sink `name`, unless its breaker is disabled.
    pub fn new(name: &str, breaker: &BreakerConfig, backlog: &BacklogConfig) -> Option<Isolation> {
        breaker.enabled.then(|| Isolation {
            breaker: std::sync::Arc::new(Breaker::new(name, breaker.clone())),
            backlog: backlog.clone(),
        })
    }
}

/// The state, as the `ossnotify_sink_breaker_state` gauge shows it
/// ([`crate::metric_names::BREAKER_STATE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

#[derive(Debug)]
pub struct Breaker {
    sink: String,
    cfg: BreakerConfig,
    state: AtomicU8,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    /// The last transient failure's cause.
    last_cause: String,
    probe_wait: Duration,
    /// Open: when the next probe may go; half-open: when the probe out is
    /// taken for lost.
    next_probe: Instant,
}

impl Breaker {
    pub fn new(sink: &str, cfg: BreakerConfig) -> Breaker {
        let b = Breaker {
            sink: sink.to_owned(),
            inner: Mutex::new(Inner {
                failures: 0,
                last_cause: String::new(),
                probe_wait: Duration::from_millis(cfg.probe_initial_ms),
                next_probe: Instant::now(),
            }),
            cfg,
            state: AtomicU8::new(State::Closed as u8),
        };
        b.show(State::Closed);
        b
    }

    pub fn sink(&self) -> &str {
        &self.sink
    }

    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            0 => State::Closed,
            1 => State::Open,
            _ => State::HalfOpen,
        }
    }

    /// Whether live requests go to the sink (always, when disabled).
    pub fn is_closed(&self) -> bool {
        !self.cfg.enabled || self.state() == State::Closed
    }

    /// Moves to `s`, saying so: the "open" line names the failures in a
    /// row and the last cause; a probe that fails (half-open to open) is
    /// said by the transient-failure line ([`crate::log_limit::transient`]),
    /// not by the "open" line again.
    fn set(&self, s: State, inner: &Inner) {
        let old = self.state.swap(s as u8, Ordering::AcqRel);
        if old != s as u8 {
            self.show(s);
            match s {
                State::Open if old == State::Closed as u8 => {
                    tracing::warn!(sink = %self.sink, failures = inner.failures, last_cause = %inner.last_cause, "circuit breaker open: the sink keeps failing; its messages go to its backlog")
                }
                State::Open => {
                    tracing::debug!(sink = %self.sink, cause = %inner.last_cause, next_probe_in = ?inner.probe_wait, "circuit breaker: the probe failed")
                }
                State::Closed => {
                    tracing::info!(sink = %self.sink, "circuit breaker closed: the sink answers again; its backlog is redelivered")
                }
                State::HalfOpen => {}
            }
        }
    }

    fn show(&self, s: State) {
        metrics::gauge!(crate::metric_names::BREAKER_STATE, "sink" => self.sink.clone())
            .set(s as u8 as f64);
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an attempt the peer answered (a success or a permanent
    /// failure): the sink is up.
    pub fn record_up(&self) {
        if !self.cfg.enabled {
            return;
        }
        let mut i = self.inner();
        i.failures = 0;
        i.probe_wait = Duration::from_millis(self.cfg.probe_initial_ms);
        self.set(State::Closed, &i);
    }

    /// Records a throttled attempt: the sink is up but busy. A throttled
    /// probe reopens the breaker with the same wait, neither closing it
    /// (its backlog would rush a busy sink) nor doubling the wait.
    pub fn record_throttled(&self, cause: &str) {
        if !self.cfg.enabled {
            return;
        }
        let mut i = self.inner();
        if self.state() == State::HalfOpen {
            // Said by the "probe failed" line; not a failure in a row.
            cause.clone_into(&mut i.last_cause);
            i.next_probe = Instant::now() + i.probe_wait;
            self.set(State::Open, &i);
        }
    }

    /// Records a transient failure and its cause.
    pub fn record_down(&self, cause: &str) {
        if !self.cfg.enabled {
            return;
        }
        let mut i = self.inner();
        i.failures = i.failures.saturating_add(1);
        cause.clone_into(&mut i.last_cause);
        match self.state() {
            State::Closed if i.failures >= self.cfg.failures => {
                i.next_probe = Instant::now() + i.probe_wait;
                self.set(State::Open, &i);
            }
            State::HalfOpen => {
                // The probe failed: wait longer before the next.
                i.probe_wait = (i.probe_wait * 2).min(Duration::from_millis(self.cfg.probe_max_ms));
                i.next_probe = Instant::now() + i.probe_wait;
                self.set(State::Open, &i);
            }
            _ => {}
        }
    }

    /// The last transient failure's cause ("" before any).
    pub fn last_cause(&self) -> String {
        self.inner().last_cause.clone()
    }

    /// Whether a request may go out now: always while closed; while open,
    /// one probe once its wait is over (the breaker is then half-open
    /// until the probe's answer is recorded, or for `probe_max_ms` if it
    /// never is: then the probe is taken for lost and another goes).
    pub fn admit(&self) -> bool {
        if self.is_closed() {
            return true;
        }
        let mut i = self.inner();
        let now = Instant::now();
        if now < i.next_probe {
            return false;
        }
        if self.state() == State::HalfOpen {
            tracing::debug!(sink = %self.sink, "circuit breaker: the probe out got no answer; another goes");
        }
        i.next_probe = now + Duration::from_millis(self.cfg.probe_max_ms);
        self.set(State::HalfOpen, &i);
        true
    }

    /// How long until a probe may go (zero when closed; half-open, until
    /// the probe out is taken for lost).
    pub fn until_probe(&self) -> Duration {
        if self.is_closed() {
            return Duration::ZERO;
        }
        self.inner()
            .next_probe
            .saturating_duration_since(Instant::now())
    }

    /// Starts afresh, closed (the sink's table changed on reload).
    pub fn reset(&self) {
        let mut i = self.inner();
        i.failures = 0;
        i.probe_wait = Duration::from_millis(self.cfg.probe_initial_ms);
        self.set(State::Closed, &i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(failures: u32) -> Breaker {
        Breaker::new(
            "s",
            BreakerConfig {
                failures,
                probe_initial_ms: 20,
                probe_max_ms: 40,
                ..BreakerConfig::default()
            },
        )
    }

    #[test]
    fn opens_after_failures_in_a_row_and_probes_with_backoff() {
        let b = breaker(3);
        b.record_down("x");
        b.record_down("x");
        b.record_up();
        b.record_down("x");
        b.record_down("x");
        assert_eq!(b.state(), State::Closed);
        b.record_down("x");
        assert_eq!(b.state(), State::Open);
        assert!(!b.admit(), "no probe before its wait");
        std::thread::sleep(Duration::from_millis(25));
        assert!(b.admit());
        assert_eq!(b.state(), State::HalfOpen);
        assert!(!b.admit(), "one probe at a time");
        b.record_down("x");
        assert_eq!(b.state(), State::Open);
        assert!(
            b.until_probe() > Duration::from_millis(25),
            "the wait doubled"
        );
        std::thread::sleep(Duration::from_millis(45));
        assert!(b.admit());
        b.record_up();
        assert_eq!(b.state(), State::Closed);
        assert!(b.admit());
    }

    /// A probe whose answer never comes (its request was dropped) holds the
    /// breaker half-open only until `probe_max_ms`; a throttled probe
    /// reopens it at the same wait.
    #[test]
    fn a_lost_probe_is_replaced_and_a_throttled_one_waits_its_turn() {
        let b = breaker(1);
        b.record_down("x");
        std::thread::sleep(Duration::from_millis(25));
        assert!(b.admit(), "the first probe");
        assert!(!b.admit() && b.until_probe() > Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(45));
        assert!(b.admit(), "the first probe is taken for lost");
        assert_eq!(b.state(), State::HalfOpen);
        b.record_throttled("QpsLimitExceeded");
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.last_cause(), "QpsLimitExceeded");
        let wait = b.until_probe();
        assert!(
            wait <= Duration::from_millis(20),
            "the same wait, not doubled: {wait:?}"
        );
        b.record_throttled("QpsLimitExceeded");
        assert_eq!(b.state(), State::Open, "throttling does not close it");
        std::thread::sleep(Duration::from_millis(25));
        assert!(b.admit());
        b.record_up();
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn disabled_never_opens() {
        let b = Breaker::new(
            "s",
            BreakerConfig {
                enabled: false,
                ..BreakerConfig::default()
            },
        );
        for _ in 0..100 {
            b.record_down("x");
        }
        assert!(b.is_closed() && b.admit());
    }
}
