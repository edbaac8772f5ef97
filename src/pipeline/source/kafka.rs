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

use super::super::error::SourceError;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};

use super::fetch_queue::{forward, FetchQueue, Fetched};
use super::group_watch::GroupWatch;
use super::{Handoff, Refused, Source, BATCH};
use crate::config::SourceConfig;
use crate::pipeline::batch::{Batch, Coord, Topics};
use crate::pipeline::offsets::Generation;
use crate::pipeline::revoked::Revoked;
use crate::pipeline::supervisor::Supervisor;
use crate::pipeline::tracker::{Committer, Position, Progress};

/// How long the revocation callback waits for the tracker beyond the
/// revocation's own wait (the tracker answers within milliseconds of it).
const REVOKE_ANSWER_SLACK: Duration = Duration::from_secs(5);

/// The partitions held, shared by the rebalance callbacks (which change
/// it) and the source loop (which reads it when `version` moves).
#[derive(Default)]
struct HeldPartitions {
    /// (topic id, partition) → generation.
    partitions: FxHashMap<(u32, i32), Generation>,
    /// Revoked since the source loop last looked: (topic id, partition,
    /// the generation it had).
    revoked: Vec<(u32, i32, Generation)>,
}

pub struct SourceContext {
    progress: Sender<Progress>,
    /// `/ready`: partitions are assigned and a broker is up.
    ready: Arc<AtomicBool>,
    assigned: AtomicBool,
    /// A broker answers (librdkafka's statistics, errors, assignments):
    /// 0 not known yet, 1 up, 2 down.
    link: std::sync::atomic::AtomicU8,
    topics: Arc<Topics>,
    held: Mutex<HeldPartitions>,
    /// Bumped whenever `held` changes.
    version: AtomicU64,
    next_generation: AtomicU64,
    /// The source has paused consumption: partitions assigned meanwhile are
    /// paused too.
    paused: AtomicBool,
    revoke_wait: Duration,
    /// An asynchronous commit failed (see [`Committer::take_failed`]).
    commit_failed: AtomicBool,
    /// Generations given up: their queued work is dropped.
    given_up: Arc<Revoked>,
    log_limit: ossnotify_sinks::log_limit::LogLimit,
    /// The source loop's [`FetchQueue`] while it runs (else null): newly
    /// assigned partitions are forwarded to it.
    fetch_queue: AtomicPtr<rdkafka::bindings::rd_kafka_queue_t>,
    group: Mutex<GroupWatch>,
}

impl ClientContext for SourceContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown) {
            self.set_connected(false);
        }
        self.warn_limited("Kafka client error", &format!("{error}: {reason}"));
    }

    /// librdkafka's own log lines, at their level, repeats limited.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        let Some(left_out) = self.log_limit.admit(&format!("{fac} {message}")) else {
            return;
        };
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "librdkafka", fac, left_out, "{message}")
            }
            L::Warning => tracing::warn!(target: "librdkafka", fac, left_out, "{message}"),
            L::Notice | L::Info => tracing::info!(target: "librdkafka", fac, left_out, "{message}"),
            L::Debug => tracing::debug!(target: "librdkafka", fac, left_out, "{message}"),
        }
    }

    /// librdkafka's statistics (every `statistics.interval.ms`): the
    /// consumer lag per partition, as librdkafka computes it from the
    /// broker's high watermark and our position.
    fn stats(&self, stats: rdkafka::Statistics) {
        let up = stats.brokers.values().any(|b| b.state == "UP");
        self.set_connected(up);
        if let Some(g) = &stats.cgrp {
            self.watch_group(g);
        }
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(crate::telemetry::CONSUMER_LAG, "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl SourceContext {
    fn watch_group(&self, g: &rdkafka::statistics::ConsumerGroup) {
        let mut watch = self.group.lock().unwrap_or_else(|p| p.into_inner());
        let was_stuck = watch.warned();
        let (age, warn) = watch.observe(&g.join_state, std::time::Instant::now());
        metrics::gauge!(crate::telemetry::GROUP_UNSETTLED).set(age.as_secs_f64());
        if warn {
            tracing::warn!(
                seconds = age.as_secs(),
                join_state = %g.join_state,
                reason = %g.rebalance_reason,
                "the consumer group has not settled for longer than max.poll.interval.ms: nothing is consumed or committed until it does; if it lasts, the group coordinator may be stuck (see the broker)"
            );
        } else if was_stuck && age.is_zero() {
            tracing::info!("the consumer group settled");
        }
    }

    /// Logs a change of the brokers' reachability once; `/ready` and
    /// `ossnotify_source_connected` follow it.
    fn set_connected(&self, up: bool) {
        let now = if up { 1 } else { 2 };
        if self.link.swap(now, Ordering::SeqCst) != now {
            if up {
                tracing::info!("connected to the Kafka cluster");
            } else {
                tracing::warn!("every Kafka broker is unreachable; retrying (repeated errors are logged at most every 30 s)");
            }
        }
        metrics::gauge!(crate::telemetry::SOURCE_CONNECTED).set(if up { 1.0 } else { 0.0 });
        self.update_ready();
    }

    /// A warning whose repeats are limited (see [`ossnotify_sinks::log_limit`]).
    pub(super) fn warn_limited(&self, what: &str, text: &str) {
        if let Some(left_out) = self.log_limit.admit(text) {
            tracing::warn!(error = text, left_out, "{what}");
        }
    }

    fn update_ready(&self) {
        let ready = self.assigned.load(Ordering::SeqCst) && self.link.load(Ordering::SeqCst) == 1;
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Where newly assigned partitions are forwarded: set and cleared by
    /// [`FetchQueue`], which clears it before the queue goes.
    pub(super) fn set_fetch_queue(&self, queue: *mut rdkafka::bindings::rd_kafka_queue_t) {
        self.fetch_queue.store(queue, Ordering::SeqCst);
    }

    fn new_generation(&self) -> Generation {
        self.next_generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A partition still held moves to a new generation (its offsets went
    /// backwards). The tracker hears of it before any record of it.
    fn regenerate(&self, topic: u32, partition: i32) -> Generation {
        let generation = self.new_generation();
        self.held
            .lock()
            .expect("not poisoned")
            .partitions
            .insert((topic, partition), generation);
        let _ = self
            .progress
            .send(Progress::Assigned(vec![(topic, partition, generation)]));
        generation
    }

    fn ids(&self, tpl: &TopicPartitionList) -> Vec<(String, u32, i32)> {
        tpl.elements()
            .iter()
            .map(|e| {
                (
                    e.topic().to_owned(),
                    self.topics.id(e.topic()),
                    e.partition(),
                )
            })
            .collect()
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let parts = self.ids(tpl);
        let mut gone = Vec::new();
        {
            // From here on the source drops what it holds of them.
            let mut held = self.held.lock().expect("not poisoned");
            for (_, topic, p) in &parts {
                if let Some(g) = held.partitions.remove(&(*topic, *p)) {
                    held.revoked.push((*topic, *p, g));
                    gone.push((*topic, *p, g));
                }
            }
            self.assigned
                .store(!held.partitions.is_empty(), Ordering::SeqCst);
            self.update_ready();
            self.version.fetch_add(1, Ordering::SeqCst);
        }
        let names: Vec<(String, i32)> = parts.into_iter().map(|(t, _, p)| (t, p)).collect();
        // A lost assignment (session timed out) cannot commit: the group
        // has moved on already.
        let lost = consumer.assignment_lost();
        let given_up = names.clone();
        let wait = if lost {
            Duration::ZERO
        } else {
            self.revoke_wait
        };
        let (reply, answer) = bounded(1);
        let revoke = Progress::Revoke {
            partitions: names,
            wait,
            reply,
        };
        if self.progress.send(revoke).is_err() {
            return; // the tracker is gone: the run is over
        }
        match answer.recv_timeout(wait + REVOKE_ANSWER_SLACK) {
            Err(_) => tracing::warn!(
                "the offset tracker did not answer the revocation: nothing committed for it"
            ),
            Ok(_) if lost => {}
            Ok(done) => {
                if let Some(list) = commit_list(&done) {
                    match consumer.commit(&list, CommitMode::Sync) {
                        Ok(()) => tracing::debug!(offsets = ?done, "committed on revocation"),
                        Err(e) => {
                            tracing::warn!(error = %e, "commit on revocation failed; the next owner reads those records again")
                        }
                    }
                }
            }
        }
        // The wait is over: what is still queued for them is the next
        // owner's to do.
        self.given_up.add(&gone);
        // Logged once the tracker has forgotten them: no commit of ours
        // names them from here on.
        tracing::info!(partitions = ?given_up, lost, "partitions given up");
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else {
            return;
        };
        let queue = self.fetch_queue.load(Ordering::SeqCst);
        if !queue.is_null() {
            // SAFETY: the client is live (we are in its callback) and so
            // is `queue`: `FetchQueue` clears the pointer before it
            // destroys the queue, on this same thread.
            unsafe { forward(consumer.client().native_ptr(), queue, tpl) };
        }
        let parts = self.ids(tpl);
        // Logged before the tracker can commit any of them.
        let names: Vec<(&str, i32)> = parts.iter().map(|(n, _, p)| (n.as_str(), *p)).collect();
        tracing::info!(partitions = ?names, "partitions assigned");
        let assigned: Vec<(u32, i32, Generation)> = parts
            .iter()
            .map(|(_, t, p)| (*t, *p, self.new_generation()))
            .collect();
        {
            let mut held = self.held.lock().expect("not poisoned");
            for (t, p, g) in &assigned {
                held.partitions.insert((*t, *p), *g);
            }
            // Before any record of theirs is announced (same channel).
            let _ = self.progress.send(Progress::Assigned(assigned));
            self.version.fetch_add(1, Ordering::SeqCst);
        }
        if self.paused.load(Ordering::SeqCst) {
            if let Err(e) = consumer.pause(tpl) {
                tracing::warn!(error = %e, "cannot pause newly assigned partitions");
            }
        }
        // An assignment came from the group coordinator: a broker is up.
        self.assigned.store(true, Ordering::SeqCst);
        self.set_connected(true);
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "asynchronous offset commit failed; committing again");
            self.commit_failed.store(true, Ordering::SeqCst);
        }
    }
}

/// A list to commit: (topic, partition, next offset to read).
pub fn commit_list(done: &[Position]) -> Option<TopicPartitionList> {
    if done.is_empty() {
        return None;
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in done {
        tpl.add_partition_offset(t, *p, Offset::Offset(*o)).ok()?;
    }
    Some(tpl)
}

pub type KafkaConsumer = BaseConsumer<SourceContext>;

/// Fetch sizes for throughput (any can be overridden in
/// `[source.librdkafka]`): one fetch request is outstanding per broker, so
/// with librdkafka's 1 MiB per partition a busy broker's latency, not the
/// pipeline, would set the pace.
pub const FETCH_DEFAULTS: &[(&str, &str)] = &[
    ("max.partition.fetch.bytes", "8388608"),
    ("fetch.queue.backoff.ms", "10"),
    // librdkafka's 64 MiB of read-ahead was a third of the peak RSS and
    // bought no throughput: 16 MiB is 70 ms of records at full speed.
    ("queued.max.messages.kbytes", "16384"),
];

/// Commits through the consumer (from the tracker's thread).
struct KafkaCommitter(Arc<KafkaConsumer>);

impl Committer for KafkaCommitter {
    fn commit(&self, offsets: &[Position], sync: bool) -> Result<(), rdkafka::error::KafkaError> {
        let Some(list) = commit_list(offsets) else {
            return Ok(());
        };
        let mode = if sync {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        self.0.commit(&list, mode)
    }

    fn take_failed(&self) -> bool {
        self.0.context().commit_failed.swap(false, Ordering::SeqCst)
    }
}

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
                source,
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

/// A held partition as the source loop sees it.
#[derive(Clone, Copy)]
struct Partition {
    generation: Generation,
    /// The lowest offset the next record may have.
    next: i64,
}

/// What the source loop reads with: the consumer (for rebalances, errors
/// and statistics) and the queue its partitions' records arrive on, with
/// its own copy of the partitions held (no lock per record).
struct Reader<'c> {
    consumer: &'c KafkaConsumer,
    fetch: FetchQueue<'c>,
    topics: TopicIds,
    held: FxHashMap<(u32, i32), Partition>,
    /// The context's `version` that `held` reflects.
    version: u64,
    /// Records of revoked partitions dropped.
    dropped: u64,
}

impl Reader<'_> {
    /// Serves the consumer's own queue (rebalances run in there), drops
    /// what `batch` holds of partitions revoked meanwhile, then moves up to
    /// `room` records into `batch`, waiting up to `wait` for the first.
    /// Returns how many records were added.
    fn read(
        &mut self,
        batch: &mut Batch,
        announced: &mut usize,
        room: usize,
        wait: Duration,
    ) -> usize {
        let mut got = 0;
        let mut changed = self.sync();
        // A record can arrive here if it was fetched before its partition
        // was forwarded to `fetch`.
        while let Some(r) = self.consumer.poll(Duration::ZERO) {
            changed |= self.sync();
            match r {
                Ok(m) => {
                    let topic = self.topics.get(self.consumer, m.topic());
                    let Reader {
                        consumer,
                        held,
                        dropped,
                        ..
                    } = self;
                    if let Some(c) =
                        coord(consumer, held, dropped, topic, m.partition(), m.offset())
                    {
                        batch.push(c, m.payload().unwrap_or_default());
                        got += 1;
                    }
                }
                Err(e) => self
                    .consumer
                    .context()
                    .warn_limited("Kafka consumer error", &e.to_string()),
            }
        }
        changed |= self.sync();
        if changed {
            let revoked = std::mem::take(
                &mut self
                    .consumer
                    .context()
                    .held
                    .lock()
                    .expect("not poisoned")
                    .revoked,
            );
            if !revoked.is_empty() {
                let before = batch.len();
                batch.retain(announced, |c| {
                    !revoked
                        .iter()
                        .any(|(t, p, g)| (*t, *p) == (c.topic, c.partition) && c.epoch <= *g)
                });
                let dropped = before - batch.len();
                if dropped > 0 {
                    tracing::info!(
                        records = dropped,
                        "dropped held records of revoked partitions (their next owner reads them)"
                    );
                }
                self.dropped += dropped as u64;
                got = got.min(batch.len());
            }
        }
        let wait = if got > 0 { Duration::ZERO } else { wait };
        let Reader {
            consumer,
            fetch,
            topics,
            held,
            dropped,
            ..
        } = self;
        fetch.read(room.saturating_sub(got), wait, |m: Fetched| {
            let topic = topics.by_handle(consumer, m.topic_handle);
            if let Some(c) = coord(consumer, held, dropped, topic, m.partition, m.offset) {
                batch.push_kept(c, m.message);
                got += 1;
            }
        });
        got
    }

    /// Takes the context's partitions if they changed; true if they did.
    fn sync(&mut self) -> bool {
        let ctx = self.consumer.context();
        let version = ctx.version.load(Ordering::SeqCst);
        if version == self.version {
            return false;
        }
        let held = ctx.held.lock().expect("not poisoned");
        self.version = ctx.version.load(Ordering::SeqCst);
        let old = std::mem::take(&mut self.held);
        self.held = held
            .partitions
            .iter()
            .map(|(k, g)| {
                let next = old
                    .get(k)
                    .filter(|p| p.generation == *g)
                    .map_or(i64::MIN, |p| p.next);
                (
                    *k,
                    Partition {
                        generation: *g,
                        next,
                    },
                )
            })
            .collect();
        true
    }
}

/// The coordinate of a fetched record, or None if its partition is not
/// held (revoked: dropped, counted in `dropped`). Offsets going backwards
/// start a new generation.
fn coord(
    consumer: &KafkaConsumer,
    held: &mut FxHashMap<(u32, i32), Partition>,
    dropped: &mut u64,
    topic: u32,
    partition: i32,
    offset: i64,
) -> Option<Coord> {
    let Some(p) = held.get_mut(&(topic, partition)) else {
        *dropped += 1;
        return None;
    };
    if offset < p.next {
        let ctx = consumer.context();
        tracing::warn!(topic = %ctx.topics.name(topic), partition, offset, expected = p.next, "offsets went backwards: the partition starts a new generation");
        p.generation = ctx.regenerate(topic, partition);
    }
    p.next = offset + 1;
    Some(Coord {
        topic,
        partition,
        epoch: p.generation,
        offset,
    })
}

/// The source's own copy of topic ids: no lock, no allocation per message.
/// Topics are looked up by name (records from `poll`) or by librdkafka's
/// topic handle (records from the fetch queue).
#[derive(Default)]
struct TopicIds {
    by_name: Vec<(Box<str>, u32)>,
    by_handle: Vec<(usize, u32)>,
}

impl TopicIds {
    fn get(&mut self, consumer: &KafkaConsumer, name: &str) -> u32 {
        if let Some((_, id)) = self.by_name.iter().find(|(n, _)| &**n == name) {
            return *id;
        }
        let id = consumer.context().topics.id(name);
        self.by_name.push((name.into(), id));
        id
    }

    fn by_handle(&mut self, consumer: &KafkaConsumer, handle: usize) -> u32 {
        if let Some((_, id)) = self.by_handle.iter().find(|(h, _)| *h == handle) {
            return *id;
        }
        let id = self.get(consumer, &FetchQueue::topic_name(handle));
        self.by_handle.push((handle, id));
        id
    }
}
