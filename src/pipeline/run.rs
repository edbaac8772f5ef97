//! `ossnotify run` over a file or stdin: the whole road from record to
//! sink. A source thread reads records and tells the offset tracker what it
//! saw; worker threads (bounded crossbeam channels) decode, match and encode,
//! tell the tracker how many messages each record yields, and hand the
//! messages to per-sink drivers on tokio (bounded channels: a slow sink
//! slows the workers, which slow the source); the drivers batch, deliver or
//! dead-letter, and acknowledge. Invalid records are fsynced into the
//! dead-letter store with their line before they count as done.

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use ossnotify_sinks::{
    deliver_or_dead_letter, DeadLetter, DeadLetterStore, Encoding, Envelope, Outcome, Sink,
};

use super::offsets::OffsetTracker;
use crate::config::Config;
use crate::engine::{Engine, RecordOutcome};
use crate::rules::{RuleIndex, SharedIndex};

/// Where a record came from: a Kafka topic/partition/offset, or a file
/// (partition 0) and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coord {
    pub topic: Arc<str>,
    pub partition: i32,
    /// Which assignment of the partition read it (see `OffsetTracker`).
    pub epoch: u64,
    pub offset: i64,
}

impl std::fmt::Display for Coord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.partition < 0 {
            write!(f, "{}:{}", self.topic, self.offset)
        } else {
            write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
        }
    }
}

pub(super) enum Event {
    /// Records read, in offset order per partition (sent before any worker
    /// can see them: one channel keeps the order).
    Seen(Vec<Coord>),
    /// How many messages each record yields.
    Resolved(Vec<(Coord, u32)>),
    /// One message each, delivered or dead-lettered.
    Acked(Vec<Coord>),
    /// Partitions being revoked: give them up, reply with what is done.
    Revoke(Vec<(String, i32)>, Sender<Vec<(String, i32, i64)>>),
    /// Workers and sinks are done: commit a last time and stop. (The Kafka
    /// consumer's context holds a sender, so disconnection never comes.)
    Finish,
}

pub(super) type Batch = Vec<(Coord, Vec<u8>)>;

/// Where the records come from.
pub enum Input {
    /// One record per line (a file, stdin), named in errors.
    Lines(Box<dyn BufRead + Send>, String),
    /// The configured Kafka source.
    Kafka,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub records: u64,
    pub invalid: u64,
    pub skipped: u64,
    pub unmatched: u64,
    pub messages: u64,
    pub delivered: u64,
    pub dead_lettered: u64,
    /// Where the input is processed through, as the tracker would commit it.
    pub committed: Vec<(String, i32, i64)>,
}

#[derive(Default)]
struct Counters {
    records: AtomicU64,
    invalid: AtomicU64,
    skipped: AtomicU64,
    unmatched: AtomicU64,
    messages: AtomicU64,
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
}

/// One sink's counts.
#[derive(Default)]
struct SinkStats {
    name: String,
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
}

struct Item {
    envelope: Envelope,
    coord: Coord,
}

/// How long a driver waits to fill a batch once it has a message.
const LINGER: Duration = Duration::from_millis(5);
/// Records per batch from the source to the workers.
const SOURCE_BATCH: usize = 256;

/// Runs `config` over `input`: lines until they end, or Kafka until `stop`;
/// then drains (every message delivered or dead-lettered, within
/// `[pipeline] drain_timeout_ms`) and commits.
pub fn run(config: &Config, input: Input, stop: Arc<AtomicBool>) -> Result<RunSummary, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let store = Arc::new(
        DeadLetterStore::open(&config.dead_letter.path).map_err(|e| {
            format!(
                "cannot open the dead-letter store {}: {e}",
                config.dead_letter.path.display()
            )
        })?,
    );
    let sinks: Vec<Arc<dyn Sink>> = {
        let _guard = rt.enter();
        config
            .sinks
            .iter()
            .map(|s| s.config.build(&s.name).map(Arc::from))
            .collect::<Result<_, _>>()?
    };
    let encodings: Vec<Encoding> = config.sinks.iter().map(|s| s.config.encoding()).collect();
    let want_base64 = encodings.contains(&Encoding::Base64);
    let index = SharedIndex::new(RuleIndex::build(
        config.rules.clone(),
        config.region_policy(),
    ));
    // SIGHUP or an edit of the config file: new rules, swapped in atomically.
    let reloads = Arc::new(super::reload::ReloadCounters::default());
    let reloader = super::reload::watch(
        config.path.clone(),
        config.sinks.iter().map(|s| s.name.clone()).collect(),
        index.clone(),
        stop.clone(),
        reloads.clone(),
    );
    // /metrics, /health, /ready.
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(listen) = &config.metrics.listen {
        rt.block_on(crate::telemetry::serve(listen, ready.clone()))?;
    }
    let sink_stats: Arc<Vec<SinkStats>> = Arc::new(
        config
            .sinks
            .iter()
            .map(|s| SinkStats {
                name: s.name.clone(),
                ..SinkStats::default()
            })
            .collect(),
    );
    let counters = Arc::new(Counters::default());
    let capacity = config.pipeline.queue_capacity;
    let (events_tx, events_rx) = unbounded::<Event>();

    // Sink drivers.
    let mut sink_txs = Vec::new();
    let mut drivers = Vec::new();
    for (i, sink) in sinks.iter().enumerate() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Item>(capacity);
        sink_txs.push(tx);
        let stats = (counters.clone(), sink_stats.clone(), i);
        drivers.push(rt.spawn(drive(
            sink.clone(),
            rx,
            store.clone(),
            events_tx.clone(),
            stats,
        )));
    }

    // The Kafka consumer, if any: the tracker commits through it.
    let consumer = match &input {
        Input::Kafka => Some(super::kafka::connect(
            &config.source,
            events_tx.clone(),
            ready.clone(),
        )?),
        Input::Lines(..) => {
            ready.store(true, Ordering::SeqCst);
            None
        }
    };
    let latest = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tracker = {
        let (consumer, latest) = (consumer.clone(), latest.clone());
        let (counters, sink_stats, reloads) =
            (counters.clone(), sink_stats.clone(), reloads.clone());
        let publish = move |t: &OffsetTracker| publish(t, &counters, &sink_stats, &reloads);
        std::thread::spawn(move || track(events_rx, consumer.as_deref(), &latest, publish))
    };

    // Workers.
    let (batch_tx, batch_rx) = bounded::<Batch>(config.pipeline.workers * 2);
    let mut workers = Vec::new();
    for _ in 0..config.pipeline.workers {
        let w = Worker {
            rx: batch_rx.clone(),
            sinks: sink_txs.clone(),
            encodings: encodings.clone(),
            index: index.clone(),
            store: store.clone(),
            events: events_tx.clone(),
            counters: counters.clone(),
            engine: Engine::new(config.source.key_encoding, want_base64),
        };
        workers.push(std::thread::spawn(move || w.run()));
    }
    drop((batch_rx, sink_txs));

    // The source, on this thread.
    let read = match input {
        Input::Lines(reader, name) => {
            let topic: Arc<str> = Arc::from(name.as_str());
            read_lines(reader, &topic, &batch_tx, &events_tx, &stop)
        }
        Input::Kafka => {
            let c = consumer.as_ref().expect("connected above");
            let r = super::kafka::consume(c, &stop, &batch_tx, &events_tx);
            // Past the drain deadline: commit what is done and leave (the
            // rest is read again after a restart).
            let (deadline, c, latest) = (
                Duration::from_millis(config.pipeline.drain_timeout_ms),
                c.clone(),
                latest.clone(),
            );
            std::thread::spawn(move || {
                std::thread::sleep(deadline);
                let done = latest.lock().map(|l| l.clone()).unwrap_or_default();
                if let Some(list) = super::kafka::commit_list(&done) {
                    let _ = rdkafka::consumer::Consumer::commit(
                        c.as_ref(),
                        &list,
                        rdkafka::consumer::CommitMode::Sync,
                    );
                }
                tracing::warn!("drain deadline reached: committed what was done, exiting");
                std::process::exit(0);
            });
            r
        }
    };
    drop(batch_tx);
    let finish = events_tx;
    for w in workers {
        w.join()
            .map_err(|_| "a worker thread panicked".to_owned())??;
    }
    for d in drivers {
        rt.block_on(d)
            .map_err(|e| format!("a sink driver failed: {e}"))??;
    }
    // A batch input ends by itself: stop the reload watcher too.
    stop.store(true, Ordering::SeqCst);
    let _ = reloader.join();
    let _ = finish.send(Event::Finish);
    drop(finish);
    let committed = tracker
        .join()
        .map_err(|_| "the offset tracker panicked".to_owned())?;
    read?;
    let c = &counters;
    Ok(RunSummary {
        records: c.records.load(Ordering::Relaxed),
        invalid: c.invalid.load(Ordering::Relaxed),
        skipped: c.skipped.load(Ordering::Relaxed),
        unmatched: c.unmatched.load(Ordering::Relaxed),
        messages: c.messages.load(Ordering::Relaxed),
        delivered: c.delivered.load(Ordering::Relaxed),
        dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
        committed,
    })
}

fn read_lines(
    mut input: Box<dyn BufRead + Send>,
    topic: &Arc<str>,
    batches: &Sender<Batch>,
    events: &Sender<Event>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let mut batch = Vec::with_capacity(SOURCE_BATCH);
    let mut line_no = 0i64;
    while !stop.load(Ordering::SeqCst) {
        let mut line = Vec::new();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("{topic}: read failed after line {line_no}: {e}"))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let coord = Coord {
            topic: topic.clone(),
            partition: -1,
            epoch: 0,
            offset: line_no,
        };
        batch.push((coord, line));
        if batch.len() == SOURCE_BATCH {
            // Seen before any worker can resolve them (one channel keeps the order).
            let _ = events.send(Event::Seen(batch.iter().map(|(c, _)| c.clone()).collect()));
            batches
                .send(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(SOURCE_BATCH),
                ))
                .map_err(|_| "the workers stopped".to_owned())?;
        }
    }
    if !batch.is_empty() {
        let _ = events.send(Event::Seen(batch.iter().map(|(c, _)| c.clone()).collect()));
        batches
            .send(batch)
            .map_err(|_| "the workers stopped".to_owned())?;
    }
    Ok(())
}

struct Worker {
    rx: Receiver<Batch>,
    sinks: Vec<tokio::sync::mpsc::Sender<Item>>,
    encodings: Vec<Encoding>,
    index: SharedIndex,
    store: Arc<DeadLetterStore>,
    events: Sender<Event>,
    counters: Arc<Counters>,
    engine: Engine,
}

impl Worker {
    fn run(mut self) -> Result<(), String> {
        let mut out: Vec<(u32, Envelope)> = Vec::new();
        while let Ok(batch) = self.rx.recv() {
            // One index per batch: a reload takes effect at the next one.
            let index = self.index.load();
            let mut invalid = Vec::new();
            let mut resolved = Vec::with_capacity(batch.len());
            let mut items: Vec<(u32, Item)> = Vec::new();
            for (coord, payload) in batch {
                out.clear();
                // A Kafka message may hold several records, one per line.
                for (line_no, line) in crate::oplog::Lines::new(&payload) {
                    self.counters.records.fetch_add(1, Ordering::Relaxed);
                    let encodings = &self.encodings;
                    let outcome = self.engine.process(&index, line, |m| {
                        for &s in m.rule.sinks.iter() {
                            let bytes = match encodings[s as usize] {
                                Encoding::Json => m.json,
                                Encoding::Base64 => m.base64,
                            };
                            out.push((
                                s,
                                Envelope {
                                    // The engine writes ASCII Base64 or UTF-8 JSON.
                                    payload: String::from_utf8_lossy(bytes).into_owned(),
                                    rule_id: m.rule.id.to_string(),
                                    key: format!("{}/{}", m.bucket, m.key),
                                },
                            ));
                        }
                    });
                    match outcome {
                        RecordOutcome::Invalid(e) => {
                            self.counters.invalid.fetch_add(1, Ordering::Relaxed);
                            let source = if coord.partition < 0 {
                                coord.to_string()
                            } else {
                                format!("{coord} line {line_no}")
                            };
                            invalid.push(DeadLetter::invalid_record(
                                &String::from_utf8_lossy(line.trim_ascii_end()),
                                &e.to_string(),
                                &source,
                            ));
                        }
                        RecordOutcome::Skipped(_) => {
                            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                        }
                        RecordOutcome::NoMatch(_) => {
                            self.counters.unmatched.fetch_add(1, Ordering::Relaxed);
                        }
                        RecordOutcome::Matched(_) => {}
                    }
                }
                self.counters
                    .messages
                    .fetch_add(out.len() as u64, Ordering::Relaxed);
                resolved.push((coord.clone(), out.len() as u32));
                for (s, envelope) in out.drain(..) {
                    items.push((
                        s,
                        Item {
                            envelope,
                            coord: coord.clone(),
                        },
                    ));
                }
            }
            // Invalid records are durable before they count as done.
            self.store
                .append(&invalid)
                .map_err(|e| format!("cannot write the dead-letter store: {e}"))?;
            let _ = self.events.send(Event::Resolved(resolved));
            for (s, item) in items {
                // Blocks while the sink's queue is full: backpressure.
                self.sinks[s as usize]
                    .blocking_send(item)
                    .map_err(|_| "a sink driver stopped".to_owned())?;
            }
        }
        Ok(())
    }
}

/// Feeds one sink: batches of up to `max_batch`, at most `max_in_flight`
/// deliveries at once; every message ends delivered or dead-lettered, then
/// acknowledged.
async fn drive(
    sink: Arc<dyn Sink>,
    mut rx: tokio::sync::mpsc::Receiver<Item>,
    store: Arc<DeadLetterStore>,
    events: Sender<Event>,
    (counters, sink_stats, me): (Arc<Counters>, Arc<Vec<SinkStats>>, usize),
) -> Result<(), String> {
    let permits = Arc::new(tokio::sync::Semaphore::new(sink.max_in_flight().max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let max = sink.max_batch().max(1);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(item)) => batch.push(item),
                _ => break,
            }
        }
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let (sink, store, events) = (sink.clone(), store.clone(), events.clone());
        let (counters, sink_stats) = (counters.clone(), sink_stats.clone());
        tasks.spawn(async move {
            let envelopes: Vec<Envelope> = batch.iter().map(|i| i.envelope.clone()).collect();
            let started = std::time::Instant::now();
            let outcomes = deliver_or_dead_letter(sink.as_ref(), &envelopes, &store)
                .await
                .map_err(|e| format!("cannot write the dead-letter store: {e}"))?;
            metrics::histogram!(crate::telemetry::DELIVERY_SECONDS, "sink" => sink.name().to_owned())
                .record(started.elapsed().as_secs_f64());
            drop(permit);
            let stats = &sink_stats[me];
            let mut acked = Vec::with_capacity(batch.len());
            for (item, o) in batch.into_iter().zip(outcomes) {
                let (all, mine) = match o {
                    Outcome::Delivered => (&counters.delivered, &stats.delivered),
                    Outcome::Failed { .. } => (&counters.dead_lettered, &stats.dead_lettered),
                };
                all.fetch_add(1, Ordering::Relaxed);
                mine.fetch_add(1, Ordering::Relaxed);
                acked.push(item.coord);
            }
            let _ = events.send(Event::Acked(acked));
            Ok::<(), String>(())
        });
        // Reap what has finished, keeping the set small.
        while let Some(done) = tasks.try_join_next() {
            done.map_err(|e| e.to_string())??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Applies events to the offset tracker until every sender is gone,
/// committing through `consumer` (if any) every half second and at the end;
/// `latest` always holds what is committable. Returns the final positions.
fn track(
    events: Receiver<Event>,
    consumer: Option<&super::kafka::KafkaConsumer>,
    latest: &std::sync::Mutex<Vec<(String, i32, i64)>>,
    mut publish: impl FnMut(&OffsetTracker),
) -> Vec<(String, i32, i64)> {
    use rdkafka::consumer::{CommitMode, Consumer};
    let mut t = OffsetTracker::default();
    let mut last_commit = std::time::Instant::now();
    let mut committed: Vec<(String, i32, i64)> = Vec::new();
    let commit = |t: &OffsetTracker, mode: CommitMode, committed: &mut Vec<(String, i32, i64)>| {
        let now = t.committable();
        if let Ok(mut l) = latest.lock() {
            l.clone_from(&now);
        }
        if let (Some(c), true) = (consumer, now != *committed) {
            if let Some(list) = super::kafka::commit_list(&now) {
                match c.commit(&list, mode) {
                    Ok(()) => *committed = now,
                    Err(e) => tracing::warn!(error = %e, "offset commit failed; will retry"),
                }
            }
        }
    };
    loop {
        match events.recv_timeout(Duration::from_millis(500)) {
            Ok(Event::Seen(v)) => {
                for c in v {
                    t.see(&c.topic, c.partition, c.epoch, c.offset);
                }
            }
            Ok(Event::Resolved(v)) => {
                for (c, n) in v {
                    t.resolve(&c.topic, c.partition, c.epoch, c.offset, n);
                }
            }
            Ok(Event::Acked(v)) => {
                for c in v {
                    t.ack(&c.topic, c.partition, c.epoch, c.offset);
                }
            }
            Ok(Event::Revoke(parts, reply)) => {
                let done = parts
                    .iter()
                    .filter_map(|(topic, p)| t.revoke(topic, *p).map(|o| (topic.clone(), *p, o)))
                    .collect();
                let _ = reply.send(done);
            }
            Ok(Event::Finish) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
        if last_commit.elapsed() >= Duration::from_millis(500) {
            commit(&t, CommitMode::Async, &mut committed);
            publish(&t);
            last_commit = std::time::Instant::now();
        }
    }
    commit(&t, CommitMode::Sync, &mut committed);
    publish(&t);
    t.committable()
}

/// Publishes every count as a metric (counters as absolute values: the
/// hot path only bumps atomics).
fn publish(
    t: &OffsetTracker,
    c: &Counters,
    sinks: &[SinkStats],
    reloads: &super::reload::ReloadCounters,
) {
    use crate::telemetry::{COMMITTED, MESSAGES, PENDING, RECORDS, RELOADS};
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (records, invalid, skipped, unmatched) = (
        get(&c.records),
        get(&c.invalid),
        get(&c.skipped),
        get(&c.unmatched),
    );
    let matched = records.saturating_sub(invalid + skipped + unmatched);
    for (outcome, v) in [
        ("matched", matched),
        ("unmatched", unmatched),
        ("skipped", skipped),
        ("invalid", invalid),
    ] {
        metrics::counter!(RECORDS, "outcome" => outcome).absolute(v);
    }
    for s in sinks {
        metrics::counter!(MESSAGES, "sink" => s.name.clone(), "outcome" => "delivered")
            .absolute(get(&s.delivered));
        metrics::counter!(MESSAGES, "sink" => s.name.clone(), "outcome" => "dead_lettered")
            .absolute(get(&s.dead_lettered));
    }
    metrics::gauge!(PENDING).set(t.pending_messages() as f64);
    for (topic, partition, offset) in t.committable() {
        metrics::gauge!(COMMITTED, "topic" => topic, "partition" => partition.to_string())
            .set(offset as f64);
    }
    metrics::counter!(RELOADS, "result" => "ok").absolute(get(&reloads.succeeded));
    metrics::counter!(RELOADS, "result" => "refused").absolute(get(&reloads.failed));
}
