//! The Kafka source: a consumer-group member that reads operation logs,
//! commits only what the offset tracker allows (at-least-once), pauses its
//! partitions while the workers are full (so a slow sink neither grows
//! memory nor costs the group membership), and on revocation waits a
//! bounded time for what is in flight on the revoked partitions, then
//! commits it before giving them up.
//!
//! # Generations
//! Every partition assigned gets a fresh generation (a number that only
//! grows); a partition kept through an incremental (cooperative) rebalance
//! keeps its own. Records carry their partition's generation, so the
//! tracker never confuses one assignment of a partition with another, and
//! records the source holds for a partition that was revoked are dropped,
//! not announced. If a partition's offsets go backwards (a truncated log, a
//! topic created again), it moves to a new generation too.
//!
//! # Rebalance callbacks
//! librdkafka runs them on the source thread, inside `poll`: while one
//! runs, the source holds its batch and reads nothing; the workers, the
//! sinks and the tracker go on.

mod callbacks;
mod committer;
mod reader;

use crate::pipeline::error::SourceError;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::Sender;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::config::SourceConfig;
use crate::pipeline::batch::Topics;
use crate::pipeline::revoked::Revoked;
use crate::pipeline::source::fetch_queue::FetchQueue;
use crate::pipeline::source::group_watch::GroupWatch;
use crate::pipeline::source::{Handoff, Refused, Source, BATCH};
use crate::pipeline::supervisor::Supervisor;
use crate::pipeline::tracker::{Committer, Progress};

pub use callbacks::SourceContext;
pub use committer::commit_list;
use committer::KafkaCommitter;
use reader::{Reader, TopicIds};

pub type KafkaConsumer = BaseConsumer<SourceContext>;

/// Fetch sizes (any can be overridden in `[source.librdkafka]`): one fetch
/// request is outstanding per broker, so with librdkafka's 1 MiB per
/// partition a busy broker's latency, not the pipeline, would set the
/// pace; 2 MiB keeps up with a bare consumer. The read-ahead is bounded
/// twice: librdkafka checks `queued.max.messages.kbytes` before it sends a
/// fetch, and the response can add up to `max.partition.fetch.bytes` per
/// partition. Together they were most of the peak RSS (8 MiB and 16 MiB:
/// about 38 MiB live at the start of a backlog, held by glibc's arena
/// after), and smaller bought the same throughput (BENCHMARKS.md, session
/// 14).
pub const FETCH_DEFAULTS: &[(&str, &str)] = &[
    ("max.partition.fetch.bytes", "2097152"),
    ("fetch.queue.backoff.ms", "10"),
    ("queued.max.messages.kbytes", "8192"),
];

/// The consumer-group member.
pub struct KafkaSource {
    consumer: Arc<KafkaConsumer>,
}

impl KafkaSource {
    /// Creates the consumer and subscribes: a new group starts from the
    /// earliest offset unless `auto.offset.reset` says otherwise; offsets
    /// are committed by us, never automatically.
    pub fn connect(
        cfg: &SourceConfig,
        revoke_wait_ms: u64,
        progress: Sender<Progress>,
        ready: Arc<AtomicBool>,
        topics: Arc<Topics>,
        given_up: Arc<Revoked>,
    ) -> Result<KafkaSource, SourceError> {
        let mut cc = ClientConfig::new();
        cc.set(
            "bootstrap.servers",
            cfg.brokers.as_deref().unwrap_or_default(),
        )
        .set("group.id", cfg.group_id.as_deref().unwrap_or_default())
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // For the consumer-lag metric.
        .set("statistics.interval.ms", "5000");
        for (k, v) in FETCH_DEFAULTS {
            cc.set(*k, *v);
        }
        for (k, v) in &cfg.librdkafka {
            cc.set(k, v);
        }
        let ctx = SourceContext {
            progress,
            ready,
            assigned: AtomicBool::new(false),
            link: std::sync::atomic::AtomicU8::new(0),
            topics,
            held: Mutex::default(),
            version: AtomicU64::new(0),
            next_generation: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            revoke_wait: Duration::from_millis(revoke_wait_ms),
            commit_failed: AtomicBool::new(false),
            given_up,
            log_limit: Default::default(),
            fetch_queue: AtomicPtr::new(std::ptr::null_mut()),
            group: Mutex::new(GroupWatch::new(Duration::from_millis(
                cfg.librdkafka
                    .get("max.poll.interval.ms")
                    .and_then(|v| v.parse().ok())
                    // librdkafka's default.
                    .unwrap_or(300_000),
            ))),
        };
        let consumer: KafkaConsumer = cc.create_with_context(ctx).map_err(SourceError::Consumer)?;
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|source| SourceError::Subscribe {
                topics: cfg.topics.clone(),
                cause: source,
            })?;
        Ok(KafkaSource {
            consumer: Arc::new(consumer),
        })
    }
}

impl Source for KafkaSource {
    /// Reads until stopped. A batch is handed over when full, or as soon as
    /// no more records are waiting. Workers are briefly full all the time
    /// at full speed: a hand-over waits for room up to a second (librdkafka
    /// heartbeats from its own thread). Longer than that means a stalled
    /// sink: pause every assigned partition and keep polling (staying in
    /// the group, serving rebalances, fetching nothing) until there is room.
    fn read(&mut self, out: &Handoff, supervisor: &Supervisor) -> Result<(), SourceError> {
        let consumer = &*self.consumer;
        let mut reader = Reader {
            consumer,
            fetch: FetchQueue::new(consumer, out.max_held.max(BATCH)),
            topics: TopicIds::default(),
            held: FxHashMap::default(),
            version: u64::MAX,
            dropped: 0,
        };
        let mut batch = out.fresh();
        let mut announced = 0;
        let mut paused = false;
        while !supervisor.stopping() {
            // Room: a batch's worth more per read (so a batch holds 256 to
            // 511 records: with at most 256, every thread did twice the
            // per-batch work, and the pipeline read 4-5 % less); while
            // paused, up to `max_held` in all (what was fetched before the
            // pause still arrives).
            let room = if paused {
                out.max_held.max(BATCH).saturating_sub(batch.len())
            } else {
                BATCH
            };
            let wait = if batch.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            let got = reader.read(&mut batch, &mut announced, room, wait);
            if batch.is_empty() {
                // A revocation can empty what was held: nothing to wait for.
                if paused {
                    paused = set_paused(consumer, false);
                }
                continue;
            }
            if batch.len() < BATCH && got > 0 && !paused {
                continue;
            }
            let wait = if paused {
                Duration::from_millis(100)
            } else {
                Duration::from_secs(1)
            };
            match out.offer(batch, &mut announced, wait) {
                Ok(()) => {
                    batch = out.fresh();
                    if paused {
                        paused = set_paused(consumer, false);
                    }
                }
                Err(Refused::Gone) => return Err(SourceError::WorkersGone),
                Err(Refused::Full(b)) => {
                    batch = b;
                    if !paused {
                        paused = set_paused(consumer, true);
                    }
                }
            }
        }
        if reader.dropped > 0 {
            tracing::info!(
                records = reader.dropped,
                "dropped records of revoked partitions (their next owner reads them)"
            );
        }
        Ok(())
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        Some(Arc::new(KafkaCommitter(self.consumer.clone())))
    }
}

/// Pauses (or resumes) every assigned partition; returns `paused`. The
/// context learns of it first, so that a partition assigned from then on
/// is paused by the assignment callback too.
fn set_paused(consumer: &KafkaConsumer, paused: bool) -> bool {
    consumer.context().paused.store(paused, Ordering::SeqCst);
    if let Ok(p) = consumer.assignment() {
        let r = if paused {
            tracing::info!(
                partitions = p.count(),
                "workers are full: pausing consumption"
            );
            consumer.pause(&p)
        } else {
            tracing::info!("resuming consumption");
            consumer.resume(&p)
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, paused, "cannot pause or resume the partitions");
        }
    }
    paused
}

#[cfg(test)]
mod tests;
