//! Redelivery of the Kafka backlogs: every member joins the backlog group
//! (`{group_id}.backlog`), subscribed to the backlog topics of the sinks
//! in its config, so any member redelivers any sink's backlog, whoever
//! wrote it, and a member scaled away hands its partitions to the others.
//!
//! # Rounds
//!
//! Each assigned partition is read from a queue of its own (split off the
//! consumer's), in rounds of up to four of its sink's batches. A round is
//! delivered on the runtime (sharing the sink's `max_in_flight` with live
//! traffic) while the next one is read; a partition whose next round is
//! full is simply not read, and librdkafka stops fetching it once its
//! queue holds `queued.max.messages.kbytes`: no pause, and nothing fetched
//! is thrown away. (Pausing per round cost a fresh fetch each time, about
//! a second on a broker that answers a fetch only when its wait runs out:
//! 1,040 messages/s, against 96,766 this way.) The reader sleeps until a
//! round ends or a queue gets a message.
//!
//! When a round ends the group's offset is committed past its leading
//! messages that were delivered or dead-lettered, and no further: a
//! message the sink deferred stops the commit, what was read after it is
//! dropped, and the partition is paused and read again from it (a seek)
//! once the breaker lets a request through. So the commit never passes an
//! undelivered message, and a partition's messages are sent in order, one
//! round at a time. A partition held for an open breaker stops nothing
//! else: each partition is paused and resumed on its own.
//!
//! The reader knows which offset must come next; a message past it (a gap:
//! a partition's messages that came through the consumer's queue before
//! its own queue was split off, or were dropped from a full round) makes
//! it seek back to that offset, unless the partition no longer has it (its
//! low watermark is past it: the messages expired from the topic), which
//! is logged and read past.
//!
//! # Rebalances
//!
//! Each assignment of a partition has its own generation; a round of an
//! earlier generation (the partition was revoked while it was in flight)
//! commits nothing: its next owner reads it again from the group's last
//! commit. Eager and cooperative assignment both work this way, since a
//! round's commit is the only state a partition has.
//!
//! # Measurement
//!
//! Every few seconds the member measures each backlog (the group's
//! committed offsets against the topic's ends, and the age of the oldest
//! message) for the gauges, the bound (`max_mib`) and the warning about a
//! topic's finite retention.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ossnotify_sinks::kafka_store::read;
use ossnotify_sinks::log_limit::LogLimit;
use ossnotify_sinks::{DeadLetterStore, Envelope, GivenUp, Outcome};
use rdkafka::consumer::{
    base_consumer::PartitionQueue, BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance,
};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::kafka_backlog::{envelope_of, Size};
use super::redelivery::{count_redelivered, counter, record_ages, CurrentSinks, Redelivered};
use crate::pipeline::error::PipelineError;
use crate::pipeline::supervisor::Supervisor;

/// The backlog group's fetching. A partition's queue holds up to 16 MiB
/// read ahead (a member's memory for redelivery); a queue that was full is
/// fetched again 10 ms after it has room, not librdkafka's 1 s; and a fetch
/// waits at most 100 ms for data, since a backlog is read in bulk and a
/// broker that answers only when the wait runs out would otherwise set the
/// pace.
const FETCH: &[(&str, &str)] = &[
    ("queued.max.messages.kbytes", "16384"),
    ("max.partition.fetch.bytes", "8388608"),
    ("fetch.queue.backoff.ms", "10"),
    ("fetch.wait.max.ms", "100"),
];

/// One backlog topic being redelivered.
#[derive(Clone)]
pub struct Watched {
    pub sink: String,
    pub size: Arc<Size>,
    /// `retention.ms` of a topic found with a finite one.
    pub retention_ms: Option<i64>,
}

/// The backlog topics to redeliver, by topic; changed on start and reload.
pub type Watching = Arc<Mutex<BTreeMap<String, Watched>>>;

/// The member's redelivery of the Kafka backlogs: a thread that reads the
/// backlog group's partitions, and one that measures the backlogs.
pub struct KafkaRedelivery {
    pub watching: Watching,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What the redelivery needs from the run.
pub struct Wiring {
    pub rt: tokio::runtime::Handle,
    pub current: CurrentSinks,
    pub store: Arc<DeadLetterStore>,
    pub supervisor: Arc<Supervisor>,
    pub redelivered: Redelivered,
}

impl KafkaRedelivery {
    /// Joins `group` on the cluster of `cc` (no topic yet: see `watching`).
    /// `settings`: the source group's timing and assignment properties.
    pub fn start(
        cc: &ClientConfig,
        group: &str,
        settings: &[(String, String)],
        wiring: Wiring,
    ) -> Result<KafkaRedelivery, rdkafka::error::KafkaError> {
        let watching: Watching = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut member = cc.clone();
        member
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        for (k, v) in FETCH {
            member.set(*k, *v);
        }
        for (k, v) in settings {
            member.set(k, v);
        }
        let mut consumer: BaseConsumer<Events> = member.create_with_context(Events::default())?;
        let measurer = read::consumer(cc, group)?;
        let (done_tx, done) = mpsc::channel();
        // Rebalances and messages wake the reader as a round's end does.
        let wake = done_tx.clone();
        consumer.set_nonempty_callback(move || {
            let _ = wake.send(Signal::Wake);
        });
        let consumer = Arc::new(consumer);
        let mut reader = Reader {
            consumer,
            watching: watching.clone(),
            subscribed: Vec::new(),
            parts: HashMap::new(),
            next_epoch: 0,
            done_tx,
            done,
            wiring,
            gone: LogLimit::default(),
        };
        let mut threads = Vec::new();
        let s = stop.clone();
        let supervisor = reader.wiring.supervisor.clone();
        threads.push(
            std::thread::Builder::new()
                .name("ossnotify-backlog".into())
                .spawn(move || {
                    let _watch = supervisor.watch("backlog redelivery");
                    reader.run(&s)
                })
                .map_err(|e| rdkafka::error::KafkaError::ClientCreation(e.to_string()))?,
        );
        let (s, w, cc) = (stop.clone(), watching.clone(), cc.clone());
        threads.push(
            std::thread::Builder::new()
                .name("ossnotify-backlog-size".into())
                .spawn(move || super::kafka_backlog::measure(&measurer, &cc, &w, &s))
                .map_err(|e| rdkafka::error::KafkaError::ClientCreation(e.to_string()))?,
        );
        Ok(KafkaRedelivery {
            watching,
            stop,
            threads,
        })
    }

    /// Stops reading: rounds in flight get a moment to finish and commit;
    /// what they did not is read again by the group.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for KafkaRedelivery {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Rebalances, as the consumer's callbacks see them (handled after the
/// poll that ran them).
#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

enum Event {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for Events {}

impl ConsumerContext for Events {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.0
                .lock()
                .expect("not poisoned")
                .push(Event::Revoked(partitions(tpl)));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.0
                .lock()
                .expect("not poisoned")
                .push(Event::Assigned(partitions(tpl)));
        }
    }
}

type Tp = (String, i32);

/// One assigned partition.
struct Part {
    epoch: u64,
    /// The partition's own queue: read only while its next round has room,
    /// so librdkafka stops fetching it when that queue is full (its
    /// `queued.max.messages.kbytes`), with no pause and no fetch thrown
    /// away. `None` if it could not be split: its messages come through
    /// the consumer's queue.
    queue: Option<PartitionQueue<Events>>,
    /// The offset the next message read must have, once known (the first
    /// message after the assignment tells).
    read_to: Option<i64>,
    /// Where a held partition is read again from: its first undelivered
    /// message.
    resume_at: Option<i64>,
    /// The next round, being read.
    batch: Vec<(i64, Waiting)>,
    /// A round of this partition is being delivered.
    in_flight: bool,
    held: bool,
    paused: bool,
}

/// A backlog message read for a round: the message, where its record came
/// from, and when it was written to the backlog (epoch ms).
struct Waiting {
    envelope: Envelope,
    source: String,
    written_ms: i64,
}

impl Waiting {
    fn of(m: &rdkafka::message::BorrowedMessage<'_>) -> Waiting {
        use rdkafka::message::Headers;
        let source = m
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|h| h.key == super::kafka_backlog::SOURCE)
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
            .unwrap_or_default();
        Waiting {
            envelope: envelope_of(m),
            source,
            written_ms: m.timestamp().to_millis().unwrap_or(0),
        }
    }
}

/// What wakes the reader.
enum Signal {
    /// A round ended.
    Done(Done),
    /// A queue it reads from got something (a message, a rebalance).
    Wake,
}

/// What a round did.
struct Done {
    tp: Tp,
    epoch: u64,
    /// The offset to commit: past the leading messages delivered or
    /// dead-lettered.
    commit_to: i64,
    /// Whether a message was deferred (the breaker decides when the
    /// partition is read again).
    deferred: bool,
}

struct Reader {
    consumer: Arc<BaseConsumer<Events>>,
    watching: Watching,
    subscribed: Vec<String>,
    parts: HashMap<Tp, Part>,
    next_epoch: u64,
    done_tx: mpsc::Sender<Signal>,
    done: mpsc::Receiver<Signal>,
    wiring: Wiring,
    /// "The sink is gone" once per sink and interval.
    gone: LogLimit,
}

impl Reader {
    fn run(&mut self, stop: &AtomicBool) {
        let mut in_flight_at_stop = Instant::now();
        // Since when this member has had no backlog partition.
        let mut none_since = Instant::now();
        let idle_log = LogLimit::new(Duration::from_secs(60));
        loop {
            if stop.load(Ordering::SeqCst) {
                // A short grace for rounds in flight, then leave the group.
                if !self.parts.values().any(|p| p.in_flight)
                    || in_flight_at_stop.elapsed() > Duration::from_secs(5)
                {
                    break;
                }
                if let Ok(Signal::Done(d)) = self.done.recv_timeout(Duration::from_millis(50)) {
                    self.finish(d);
                }
                continue;
            }
            in_flight_at_stop = Instant::now();
            self.subscribe();
            self.poll_consumer();
            self.rebalanced();
            self.release();
            self.read_queues();
            self.launch();
            if !self.parts.is_empty() {
                none_since = Instant::now();
            } else {
                self.say_if_idle(none_since, &idle_log);
            }
            // Sleeps until a round ends or a queue gets something; the
            // consumer is polled at least this often for its callbacks,
            // and a held partition's breaker looked at.
            match self.done.recv_timeout(Duration::from_millis(100)) {
                Ok(Signal::Done(d)) => self.finish(d),
                Ok(Signal::Wake) | Err(_) => {}
            }
            while let Ok(sig) = self.done.try_recv() {
                if let Signal::Done(d) = sig {
                    self.finish(d);
                }
            }
        }
    }

    /// Serves the consumer's queue: rebalances, and the messages of a
    /// partition not (yet) split off to its own queue.
    fn poll_consumer(&mut self) {
        for _ in 0..4096 {
            let got = self.consumer.poll(Duration::ZERO).map(|r| {
                r.map(|m| {
                    let tp = (m.topic().to_owned(), m.partition());
                    (tp, m.offset(), Waiting::of(&m))
                })
            });
            match got {
                Some(Ok((tp, offset, w))) => self.accept(tp, offset, w),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "backlog group: consumer error");
                    break;
                }
                None => break,
            }
        }
    }

    /// Fills each partition's next round from its own queue, as far as
    /// the round has room.
    fn read_queues(&mut self) {
        let tps: Vec<Tp> = self
            .parts
            .iter()
            .filter(|(_, p)| p.queue.is_some() && !p.held)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in tps {
            let cap = self.round_size(&tp.0);
            loop {
                let part = self.parts.get(&tp).expect("listed above");
                if part.held || part.batch.len() >= cap {
                    break;
                }
                let got = part.queue.as_ref().and_then(|q| {
                    q.poll(Duration::ZERO)
                        .map(|r| r.map(|m| (m.offset(), Waiting::of(&m))))
                });
                match got {
                    Some(Ok((offset, w))) => self.accept(tp.clone(), offset, w),
                    Some(Err(e)) => {
                        tracing::debug!(topic = %tp.0, partition = tp.1, error = %e, "backlog group: partition error");
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    /// A backlog that waits while this member has had no backlog partition
    /// for a minute is said, once a minute: the group may not have settled
    /// (another member may hold them, or the coordinator may be stuck).
    fn say_if_idle(&self, none_since: Instant, log: &LogLimit) {
        if none_since.elapsed() < Duration::from_secs(60) {
            return;
        }
        let waiting: u64 = self
            .watching
            .lock()
            .expect("not poisoned")
            .values()
            .map(|w| w.size.waiting())
            .sum();
        if waiting > 0 && log.admit("idle").is_some() {
            tracing::warn!(
                waiting,
                subscribed = ?self.subscribed,
                seconds = none_since.elapsed().as_secs(),
                "the backlog group has given this member no partition while its backlogs hold messages; another member redelivers them, or the group has not settled"
            );
        }
    }

    /// Follows the watched topics (sinks added or removed on reload).
    fn subscribe(&mut self) {
        let want: Vec<String> = self
            .watching
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect();
        if want == self.subscribed {
            return;
        }
        let topics: Vec<&str> = want.iter().map(String::as_str).collect();
        let r = if topics.is_empty() {
            self.consumer.unsubscribe();
            Ok(())
        } else {
            self.consumer.subscribe(&topics)
        };
        match r {
            Ok(()) => self.subscribed = want,
            Err(e) => tracing::warn!(error = %e, topics = ?want, "backlog group: cannot subscribe"),
        }
    }

    fn rebalanced(&mut self) {
        let events = std::mem::take(&mut *self.consumer.context().0.lock().expect("not poisoned"));
        for e in events {
            match e {
                Event::Revoked(tps) => {
                    tracing::info!(partitions = ?tps, "backlog partitions given up");
                    for tp in tps {
                        self.parts.remove(&tp);
                    }
                }
                Event::Assigned(tps) => {
                    tracing::info!(partitions = ?tps, "backlog partitions assigned: this member redelivers them");
                    for tp in tps {
                        self.next_epoch += 1;
                        let queue = self.split(&tp);
                        self.parts.insert(
                            tp,
                            Part {
                                epoch: self.next_epoch,
                                queue,
                                read_to: None,
                                resume_at: None,
                                batch: Vec::new(),
                                in_flight: false,
                                held: false,
                                paused: false,
                            },
                        );
                    }
                }
            }
        }
    }

    /// The partition's own queue, waking the reader when it gets a message.
    fn split(&self, tp: &Tp) -> Option<PartitionQueue<Events>> {
        let mut q = self.consumer.split_partition_queue(&tp.0, tp.1)?;
        let wake = self.done_tx.clone();
        q.set_nonempty_callback(move || {
            let _ = wake.send(Signal::Wake);
        });
        Some(q)
    }

    /// Takes a message into its partition's next round.
    fn accept(&mut self, tp: Tp, offset: i64, envelope: Waiting) {
        if !self.parts.contains_key(&tp) {
            // Assigned in the poll that returned it: the partition's first
            // message must not be dropped, since it sets where reading
            // starts.
            self.rebalanced();
        }
        let cap = self.round_size(&tp.0);
        let Some(part) = self.parts.get_mut(&tp) else {
            return;
        };
        // Held: read again from its first undelivered message on release.
        // A full round drops a message only if it came through the
        // consumer's queue: it is read again after the pause (a gap).
        if part.held || part.batch.len() >= cap {
            return;
        }
        match part.read_to {
            // Read before a seek: it comes again.
            Some(n) if offset < n => return,
            Some(n) if offset > n => {
                let low = self
                    .consumer
                    .fetch_watermarks(&tp.0, tp.1, Duration::from_secs(5))
                    .map_or(0, |w| w.0);
                if low <= n {
                    self.seek(&tp, n);
                    return;
                }
                tracing::warn!(topic = %tp.0, partition = tp.1, from = n, to = offset, "backlog messages missing from the topic (expired by its retention): read past them");
            }
            _ => {}
        }
        let part = self.parts.get_mut(&tp).expect("found above");
        part.read_to = Some(offset + 1);
        part.batch.push((offset, envelope));
        // A partition with a queue of its own is left unread instead.
        if part.queue.is_none() && part.batch.len() >= cap && !part.paused {
            part.paused = true;
            self.pause(&tp);
        }
    }

    /// Messages per round for the sink of `topic`: four of its batches.
    fn round_size(&self, topic: &str) -> usize {
        self.sink_of(topic)
            .map_or(64, |s| (s.max_batch() * 4).clamp(1, 4096))
    }

    fn sink_name(&self, topic: &str) -> Option<String> {
        self.watching
            .lock()
            .expect("not poisoned")
            .get(topic)
            .map(|w| w.sink.clone())
    }

    fn sink_of(&self, topic: &str) -> Option<Arc<dyn ossnotify_sinks::Sink>> {
        let name = self.sink_name(topic)?;
        self.wiring
            .current
            .lock()
            .expect("not poisoned")
            .get(&name)
            .cloned()
    }

    fn tpl(tp: &Tp) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&tp.0, tp.1);
        tpl
    }

    fn pause(&self, tp: &Tp) {
        if let Err(e) = self.consumer.pause(&Self::tpl(tp)) {
            tracing::debug!(topic = %tp.0, partition = tp.1, error = %e, "backlog group: pause failed");
        }
    }

    /// Fetching starts again at `offset` (what was fetched is dropped).
    fn seek(&self, tp: &Tp, offset: i64) {
        if let Err(e) =
            self.consumer
                .seek(&tp.0, tp.1, Offset::Offset(offset), Duration::from_secs(5))
        {
            tracing::debug!(topic = %tp.0, partition = tp.1, error = %e, "backlog group: seek failed");
        }
    }

    fn resume(&self, tp: &Tp) {
        if let Err(e) = self.consumer.resume(&Self::tpl(tp)) {
            tracing::debug!(topic = %tp.0, partition = tp.1, error = %e, "backlog group: resume failed");
        }
    }

    /// Holds a partition until its sink takes requests: it is read again
    /// from `from`.
    fn hold(&mut self, tp: &Tp, from: i64) {
        let part = self
            .parts
            .get_mut(tp)
            .expect("held partitions are assigned");
        part.held = true;
        part.resume_at = Some(from);
        part.batch.clear();
        if !part.paused {
            part.paused = true;
            self.pause(tp);
        }
    }

    /// Starts a round for every partition that has read something and
    /// whose sink takes requests; holds the others.
    fn launch(&mut self) {
        let ready: Vec<Tp> = self
            .parts
            .iter()
            .filter(|(_, p)| !p.held && !p.in_flight && !p.batch.is_empty())
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in ready {
            let sink = self.sink_of(&tp.0);
            let admitted = match &sink {
                None => {
                    let name = self.sink_name(&tp.0).unwrap_or_default();
                    if self.gone.admit(&name).is_some() {
                        tracing::warn!(sink = %name, topic = %tp.0, "the sink is gone from the config: its backlog waits in its topic");
                    }
                    false
                }
                Some(s) => s.isolation().is_none_or(|iso| iso.breaker.admit()),
            };
            let part = self.parts.get_mut(&tp).expect("listed above");
            if !admitted {
                let from = part.batch[0].0;
                self.hold(&tp, from);
                continue;
            }
            part.in_flight = true;
            let batch = std::mem::take(&mut part.batch);
            let epoch = part.epoch;
            let sink = sink.expect("admitted");
            let name = sink.name().to_owned();
            let redelivered = counter(&self.wiring.redelivered, &name);
            let (store, supervisor, done) = (
                self.wiring.store.clone(),
                self.wiring.supervisor.clone(),
                self.done_tx.clone(),
            );
            self.wiring.rt.spawn(async move {
                let mut offsets = Vec::with_capacity(batch.len());
                let mut envelopes = Vec::with_capacity(batch.len());
                let mut origins = Vec::with_capacity(batch.len());
                for (offset, w) in batch {
                    offsets.push(offset);
                    envelopes.push(w.envelope);
                    origins.push((w.source, w.written_ms));
                }
                let outcomes = sink.deliver(&envelopes).await;
                let age = metrics::histogram!(crate::telemetry::EVENT_AGE, "sink" => name.clone());
                record_ages(&age, &envelopes, &outcomes);
                // Only the leading messages that are settled count: the
                // partition is read again from the first deferred one.
                let settled = outcomes
                    .iter()
                    .position(|o| matches!(o, Outcome::Deferred { .. }))
                    .unwrap_or(outcomes.len());
                let mut failed = Vec::new();
                let mut delivered = 0;
                for ((e, o), (source, written)) in
                    envelopes.iter().zip(&outcomes).zip(&origins).take(settled)
                {
                    match o {
                        Outcome::Delivered => delivered += 1,
                        Outcome::Failed { error, attempts } => failed.push(GivenUp {
                            envelope: e,
                            error,
                            attempts: *attempts,
                            source,
                            // It first failed when it went to the backlog.
                            first_failure_ms: u64::try_from(*written).ok(),
                        }),
                        Outcome::Deferred { .. } => {}
                    }
                }
                if let Err(e) = store.give_up(&name, &failed) {
                    // Not committed: read again by the group.
                    supervisor.fail(
                        &format!("redelivery of sink {name}"),
                        PipelineError::store(&store, e),
                    );
                    return;
                }
                count_redelivered(&name, &redelivered, delivered);
                let commit_to = offsets
                    .get(settled)
                    .copied()
                    .unwrap_or_else(|| offsets.last().map_or(0, |o| o + 1));
                let _ = done.send(Signal::Done(Done {
                    tp,
                    epoch,
                    commit_to,
                    deferred: settled < outcomes.len(),
                }));
            });
        }
    }

    /// A round ended: commit what it settled, then read on (or hold).
    fn finish(&mut self, d: Done) {
        let Some(part) = self.parts.get_mut(&d.tp) else {
            return;
        };
        if part.epoch != d.epoch {
            return;
        }
        part.in_flight = false;
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(&d.tp.0, d.tp.1, Offset::Offset(d.commit_to))
            .is_ok()
        {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                // Read again by the group: duplicates, never a loss.
                tracing::debug!(topic = %d.tp.0, error = %e, "backlog group: commit failed");
            }
        }
        if d.deferred {
            self.hold(&d.tp, d.commit_to);
        } else if part.paused {
            // Its next round was full; reading goes on where it stopped
            // (a gap after the pause makes it seek back, see `accept`).
            part.paused = false;
            self.resume(&d.tp);
        }
    }

    /// Reads held partitions again once their sink takes requests.
    fn release(&mut self) {
        let held: Vec<Tp> = self
            .parts
            .iter()
            .filter(|(_, p)| p.held)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in held {
            let Some(sink) = self.sink_of(&tp.0) else {
                continue;
            };
            let ready = sink
                .isolation()
                .is_none_or(|iso| iso.breaker.is_closed() || iso.breaker.until_probe().is_zero());
            if ready {
                let part = self.parts.get_mut(&tp).expect("listed above");
                part.held = false;
                part.paused = false;
                part.read_to = part.resume_at.take();
                if let Some(from) = part.read_to {
                    self.seek(&tp, from);
                }
                self.resume(&tp);
            }
        }
    }
}
