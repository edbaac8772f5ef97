//! Redelivery of a sink's backlog on this member's disk: sends it again,
//! oldest first, whenever the sink's breaker lets a request through;
//! delivered and permanently failed (dead-lettered) messages are taken
//! out, the rest wait for the next round. One round at a time: its
//! requests queue for the sink's `max_in_flight` permits with live
//! traffic's, first come first served, so live messages keep about half
//! the sink's capacity while a backlog drains.
//!
//! The Kafka store's redelivery is [`super::kafka_redelivery`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ossnotify_sinks::{DeadLetterStore, Envelope, Outcome, Sink};

use super::backlog::Backlog;
use super::disk_backlog::DiskBacklog;
use crate::pipeline::error::PipelineError;

/// The sinks now serving each name: redelivery sends through the sink of
/// the current config (a reload may have replaced it).
pub type CurrentSinks = Arc<Mutex<HashMap<String, Arc<dyn Sink>>>>;

/// Messages redelivered, by sink name: they count as delivered
/// (`ossnotify_messages_total`, a run's summary).
pub type Redelivered = Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>;

/// The counter of sink `name` in `r`.
pub fn counter(r: &Redelivered, name: &str) -> Arc<AtomicU64> {
    r.lock()
        .expect("not poisoned")
        .entry(name.to_owned())
        .or_default()
        .clone()
}

pub struct Redelivery {
    pub name: String,
    pub event_age: metrics::Histogram,
    pub backlog: Arc<Backlog>,
    pub current: CurrentSinks,
    pub store: Arc<DeadLetterStore>,
    pub redelivered: Arc<AtomicU64>,
}

impl Redelivery {
    pub async fn run(self) -> Result<(), PipelineError> {
        let Backlog::Disk(disk) = &*self.backlog else {
            return Ok(());
        };
        let mut gone_logged = false;
        loop {
            if disk.is_empty() {
                let _ = tokio::time::timeout(Duration::from_secs(1), disk.added.notified()).await;
                disk.show();
                continue;
            }
            let sink = self
                .current
                .lock()
                .expect("not poisoned")
                .get(&self.name)
                .cloned();
            let Some(sink) = sink else {
                if !gone_logged {
                    tracing::warn!(sink = %self.name, messages = disk.len(), "the sink is gone from the config: its backlog waits on disk");
                    gone_logged = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            gone_logged = false;
            if let Some(iso) = sink.isolation() {
                if !iso.breaker.admit() {
                    let wait = iso
                        .breaker
                        .until_probe()
                        .clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tokio::time::sleep(wait).await;
                    disk.show();
                    continue;
                }
            }
            if !self.round(disk, sink.as_ref()).await? {
                // All deferred: the breaker decides when to try again.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// One round; whether anything was taken out.
    async fn round(&self, disk: &DiskBacklog, sink: &dyn Sink) -> Result<bool, PipelineError> {
        // Four batches' worth per round: the sink spreads them over its
        // `max_in_flight` requests, shared fairly (first come, first
        // served) with live traffic, and one sync takes them out.
        let head = disk
            .head((sink.max_batch() * 4).clamp(1, 4096))
            .map_err(|source| self.backlog.error("read", &self.name, source))?;
        let envelopes: Vec<Envelope> = head.iter().map(|h| h.1.clone()).collect();
        let outcomes = sink.deliver(&envelopes).await;
        record_ages(&self.event_age, &envelopes, &outcomes);
        let (mut done, mut failed, mut delivered) = (Vec::new(), Vec::new(), 0u64);
        for ((id, e), o) in head.iter().zip(&outcomes) {
            match o {
                Outcome::Delivered => {
                    done.push(*id);
                    delivered += 1;
                }
                Outcome::Failed { error, attempts } => {
                    // The disk backlog keeps no source: its format has no
                    // room for it.
                    failed.push(ossnotify_sinks::GivenUp {
                        envelope: e,
                        error,
                        attempts: *attempts,
                        source: "",
                        first_failure_ms: None,
                    });
                    done.push(*id);
                }
                Outcome::Deferred { .. } => {}
            }
        }
        self.store
            .give_up(&self.name, &failed)
            .map_err(|e| PipelineError::store(&self.store, e))?;
        disk.remove(&done)
            .map_err(|source| self.backlog.error("trim", &self.name, source))?;
        count_redelivered(&self.name, &self.redelivered, delivered);
        Ok(!done.is_empty())
    }
}

/// Counts `n` messages of sink `name` redelivered.
pub fn count_redelivered(name: &str, counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
    metrics::counter!(crate::metric_names::REDELIVERED, "sink" => name.to_owned()).increment(n);
}

/// Records how stale the delivered messages were on arrival.
pub fn record_ages(age: &metrics::Histogram, envelopes: &[Envelope], outcomes: &[Outcome]) {
    let now = ossnotify_sinks::store::now_ms() as i64;
    for (e, o) in envelopes.iter().zip(outcomes) {
        if matches!(o, Outcome::Delivered) && e.event_time_ms > 0 {
            age.record((now - e.event_time_ms).max(0) as f64 / 1000.0);
        }
    }
}
