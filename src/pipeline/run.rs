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

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use ossnotify_sinks::{DeadLetter, DeadLetterStore, Encoding, Envelope};

use super::batch::{Batch, Coord, Topics};
use super::offsets::OffsetTracker;
use super::routing::{Drivers, Item, Routing};
use crate::config::Config;
use crate::engine::{Engine, RecordOutcome};

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
pub(super) struct Counters {
    records: AtomicU64,
    invalid: AtomicU64,
    skipped: AtomicU64,
    unmatched: AtomicU64,
    messages: AtomicU64,
    pub delivered: AtomicU64,
    pub dead_lettered: AtomicU64,
}

/// A worker's counts for one batch, added to the shared counters once per
/// batch (shared atomics bumped per record would bounce between cores).
#[derive(Default)]
struct Tally {
    records: u64,
    invalid: u64,
    skipped: u64,
    unmatched: u64,
    messages: u64,
}

impl Tally {
    fn add_to(&self, c: &Counters) {
        for (n, a) in [
            (self.records, &c.records),
            (self.invalid, &c.invalid),
            (self.skipped, &c.skipped),
            (self.unmatched, &c.unmatched),
            (self.messages, &c.messages),
        ] {
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// Records per batch from the source to the workers.
pub(super) const SOURCE_BATCH: usize = 256;

/// Runs `config` over `input`: lines until they end, or Kafka until `stop`;
/// then drains (every message delivered or dead-lettered, within
/// `[pipeline] drain_timeout_ms`) and commits.
pub fn run(config: &Config, input: Input, stop: Arc<AtomicBool>) -> Result<RunSummary, String> {
    let cpus = config.pipeline.cpus.clone();
    super::cpus::check(&cpus)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ossnotify-io")
        .on_thread_start({
            let cpus = cpus.clone();
            move || super::cpus::pin_or_warn(&cpus)
        })
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
    // /metrics, /health, /ready.
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(listen) = &config.metrics.listen {
        rt.block_on(crate::telemetry::serve(listen, ready.clone()))?;
    }
    let counters = Arc::new(Counters::default());
    let topics = Arc::new(Topics::default());
    let (events_tx, events_rx) = unbounded::<Event>();

    // The rules and the sinks they address, with a driver per sink.
    let drivers = Arc::new(Drivers::new(
        rt.handle().clone(),
        store.clone(),
        events_tx.clone(),
        counters.clone(),
        config.pipeline.queue_capacity,
    ));
    let routing = Arc::new(ArcSwap::from_pointee(drivers.routing(config)?));
    // SIGHUP or an edit of the config file: new rules and sinks, swapped in
    // atomically.
    let reloads = Arc::new(super::reload::ReloadCounters::default());
    let reload_stop = Arc::new(AtomicBool::new(false));
    let reloader = {
        let (drivers, routing, running) = (drivers.clone(), routing.clone(), config.fixed_parts());
        super::reload::watch(
            config.path.clone(),
            move |new: &Config| {
                if new.fixed_parts() != running {
                    tracing::warn!("[source], [pipeline], [dead_letter] and [metrics] changed: those changes take effect at the next start");
                }
                routing.store(Arc::new(drivers.routing(new)?));
                Ok(())
            },
            reload_stop.clone(),
            reloads.clone(),
        )
    };

    // The Kafka consumer, if any: the tracker commits through it.
    let consumer = match &input {
        Input::Kafka => Some(super::kafka::connect(
            &config.source,
            events_tx.clone(),
            ready.clone(),
            topics.clone(),
        )?),
        Input::Lines(..) => {
            ready.store(true, Ordering::SeqCst);
            None
        }
    };
    // `queue_capacity` records, in batches; a few per worker at most (more
    // only adds latency).
    let batches =
        (config.pipeline.queue_capacity / SOURCE_BATCH).clamp(1, config.pipeline.workers * 4);
    let (batch_tx, batch_rx) = bounded::<Batch>(batches);
    // Emptied batches on their way back to the source.
    let (spare_tx, spare_rx) = bounded::<Batch>(batches + config.pipeline.workers + 1);
    let latest = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tracker = {
        let (consumer, latest, topics) = (consumer.clone(), latest.clone(), topics.clone());
        let interval = config.pipeline.commit_interval_ms;
        let cpus = cpus.clone();
        let publish = {
            let (counters, drivers, reloads, routing, batches) = (
                counters.clone(),
                drivers.clone(),
                reloads.clone(),
                routing.clone(),
                batch_rx.clone(),
            );
            move |t: &OffsetTracker| {
                publish(t, &counters, &drivers, &reloads);
                publish_queues(&batches, &routing.load());
            }
        };
        std::thread::Builder::new()
            .name("ossnotify-offsets".into())
            .spawn(move || {
                super::cpus::pin_or_warn(&cpus);
                track(
                    events_rx,
                    consumer.as_deref(),
                    &topics,
                    &latest,
                    Duration::from_millis(interval),
                    publish,
                )
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?
    };

    // Workers.
    let mut workers = Vec::new();
    for i in 0..config.pipeline.workers {
        let w = Worker {
            rx: batch_rx.clone(),
            spares: spare_tx.clone(),
            routing: routing.clone(),
            topics: topics.clone(),
            store: store.clone(),
            events: events_tx.clone(),
            counters: counters.clone(),
            engine: Engine::new(config.source.key_encoding, false),
            cpus: cpus.clone(),
        };
        workers.push(
            std::thread::Builder::new()
                .name(format!("ossnotify-worker-{i}"))
                .spawn(move || w.run())
                .map_err(|e| format!("cannot start a thread: {e}"))?,
        );
    }
    drop(batch_rx);

    // The source, on this thread (pinned only now: librdkafka's threads,
    // started with the consumer above, keep every CPU).
    super::cpus::pin_or_warn(&cpus);
    let read = match input {
        Input::Lines(reader, name) => {
            let topic = topics.id(&name);
            read_lines(
                reader,
                topic,
                &name,
                (&batch_tx, &spare_rx),
                &events_tx,
                &stop,
            )
        }
        Input::Kafka => {
            let c = consumer.as_ref().expect("connected above");
            let r = super::kafka::consume(c, &stop, &batch_tx, &spare_rx, &events_tx);
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
    // No more reloads; then close every sink queue (the routing held the
    // last senders) and let the drivers finish.
    reload_stop.store(true, Ordering::SeqCst);
    let _ = reloader.join();
    drivers.close();
    routing.store(Arc::new(Routing {
        index: crate::rules::RuleIndex::build(Vec::new(), config.region_policy()),
        sinks: Vec::new(),
        want_base64: false,
    }));
    let handles = std::mem::take(&mut *drivers.handles.lock().expect("not poisoned"));
    for d in handles {
        rt.block_on(d)
            .map_err(|e| format!("a sink driver failed: {e}"))??;
    }
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
    topic: u32,
    name: &str,
    (batches, spares): (&Sender<Batch>, &Receiver<Batch>),
    events: &Sender<Event>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let mut batch = Batch::reuse(spares, SOURCE_BATCH);
    let mut line = Vec::new();
    let mut line_no = 0i64;
    let hand_over = |batch: Batch| {
        // Seen before any worker can resolve them (one channel keeps the order).
        let _ = events.send(Event::Seen(batch.coords().to_vec()));
        batches
            .send(batch)
            .map_err(|_| "the workers stopped".to_owned())
    };
    while !stop.load(Ordering::SeqCst) {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("{name}: read failed after line {line_no}: {e}"))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let coord = Coord {
            topic,
            partition: -1,
            epoch: 0,
            offset: line_no,
        };
        batch.push(coord, &line);
        if batch.len() == SOURCE_BATCH {
            hand_over(std::mem::replace(
                &mut batch,
                Batch::reuse(spares, SOURCE_BATCH),
            ))?;
        }
    }
    if !batch.is_empty() {
        hand_over(batch)?;
    }
    Ok(())
}

struct Worker {
    rx: Receiver<Batch>,
    spares: Sender<Batch>,
    routing: Arc<ArcSwap<Routing>>,
    topics: Arc<Topics>,
    store: Arc<DeadLetterStore>,
    events: Sender<Event>,
    counters: Arc<Counters>,
    engine: Engine,
    cpus: Vec<usize>,
}

impl Worker {
    fn run(mut self) -> Result<(), String> {
        super::cpus::pin_or_warn(&self.cpus);
        let mut out: Vec<(u32, Envelope)> = Vec::new();
        while let Ok(mut batch) = self.rx.recv() {
            // One routing per batch: a reload takes effect at the next one.
            let routing = self.routing.load_full();
            self.engine.set_want_base64(routing.want_base64);
            let mut tally = Tally::default();
            let mut invalid = Vec::new();
            let mut resolved = Vec::with_capacity(batch.len());
            let mut chunks: Vec<Vec<Item>> = routing.sinks.iter().map(|_| Vec::new()).collect();
            for (coord, payload) in batch.iter() {
                out.clear();
                // A Kafka message may hold several records, one per line.
                for (line_no, line) in crate::oplog::Lines::new(payload) {
                    tally.records += 1;
                    let sinks = &routing.sinks;
                    let outcome = self.engine.process(&routing.index, line, |m| {
                        for &s in m.sinks {
                            let bytes = match sinks[s as usize].encoding {
                                Encoding::Json => m.json,
                                Encoding::Base64 => m.base64,
                            };
                            out.push((
                                s,
                                Envelope {
                                    // The engine writes ASCII Base64 or UTF-8 JSON
                                    // (checked anyway, with SIMD: no `unsafe` for this).
                                    payload: match simdutf8::basic::from_utf8(bytes) {
                                        Ok(text) => text.to_owned(),
                                        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
                                    },
                                    rule_id: m.rule_id.to_owned(),
                                    key: [m.bucket, "/", m.key].concat(),
                                },
                            ));
                        }
                    });
                    match outcome {
                        RecordOutcome::Invalid(e) => {
                            tally.invalid += 1;
                            let source = if coord.partition < 0 {
                                self.topics.describe(&coord)
                            } else {
                                format!("{} line {line_no}", self.topics.describe(&coord))
                            };
                            invalid.push(DeadLetter::invalid_record(
                                &String::from_utf8_lossy(line.trim_ascii_end()),
                                &e.to_string(),
                                &source,
                            ));
                        }
                        RecordOutcome::Skipped(_) => tally.skipped += 1,
                        RecordOutcome::NoMatch(_) => tally.unmatched += 1,
                        RecordOutcome::Matched(_) => {}
                    }
                }
                tally.messages += out.len() as u64;
                resolved.push((coord, out.len() as u32));
                for (s, envelope) in out.drain(..) {
                    chunks[s as usize].push(Item { envelope, coord });
                }
            }
            tally.add_to(&self.counters);
            batch.clear();
            let _ = self.spares.try_send(batch);
            // Invalid records are durable before they count as done.
            self.store
                .append(&invalid)
                .map_err(|e| format!("cannot write the dead-letter store: {e}"))?;
            let _ = self.events.send(Event::Resolved(resolved));
            for (queue, chunk) in routing.sinks.iter().zip(chunks) {
                if !chunk.is_empty() {
                    // Blocks while the sink's queue is full: backpressure.
                    queue
                        .tx
                        .blocking_send(chunk)
                        .map_err(|_| format!("the driver of sink {} stopped", queue.name))?;
                }
            }
        }
        Ok(())
    }
}

/// Applies events to the offset tracker until every sender is gone,
/// committing through `consumer` (if any) every `interval` and at the end;
/// `latest` always holds what is committable. Returns the final positions.
fn track(
    events: Receiver<Event>,
    consumer: Option<&super::kafka::KafkaConsumer>,
    topics: &Topics,
    latest: &std::sync::Mutex<Vec<(String, i32, i64)>>,
    interval: Duration,
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
    // Topic names by id, copied here once each (the lock is not taken per record).
    let mut names: Vec<Arc<str>> = Vec::new();
    let mut name = |id: u32| -> Arc<str> {
        while names.len() <= id as usize {
            names.push(topics.name(names.len() as u32));
        }
        names[id as usize].clone()
    };
    loop {
        match events.recv_timeout(interval) {
            // One partition lookup per run of records of the same partition.
            Ok(Event::Seen(v)) => {
                for run in v.chunk_by(same_partition) {
                    if let Some(p) =
                        t.current(&name(run[0].topic), run[0].partition, run[0].epoch, true)
                    {
                        run.iter().for_each(|c| p.see(c.offset));
                    }
                }
            }
            Ok(Event::Resolved(v)) => {
                for run in v.chunk_by(|a, b| same_partition(&a.0, &b.0)) {
                    if let Some(p) = t.current(
                        &name(run[0].0.topic),
                        run[0].0.partition,
                        run[0].0.epoch,
                        false,
                    ) {
                        run.iter().for_each(|(c, n)| p.resolve(c.offset, *n));
                    }
                }
            }
            Ok(Event::Acked(v)) => {
                for run in v.chunk_by(same_partition) {
                    if let Some(p) =
                        t.current(&name(run[0].topic), run[0].partition, run[0].epoch, false)
                    {
                        run.iter().for_each(|c| p.ack(c.offset));
                    }
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
        if last_commit.elapsed() >= interval {
            commit(&t, CommitMode::Async, &mut committed);
            publish(&t);
            last_commit = std::time::Instant::now();
        }
    }
    commit(&t, CommitMode::Sync, &mut committed);
    publish(&t);
    t.committable()
}

fn same_partition(a: &Coord, b: &Coord) -> bool {
    (a.topic, a.partition, a.epoch) == (b.topic, b.partition, b.epoch)
}

/// Publishes every count as a metric (counters as absolute values: the
/// hot path only bumps atomics).
fn publish(
    t: &OffsetTracker,
    c: &Counters,
    drivers: &Drivers,
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
    // Per sink name, summed over its replaced incarnations.
    let mut per_sink: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for s in drivers.stats.lock().expect("not poisoned").iter() {
        let e = per_sink.entry(s.name.clone()).or_default();
        e.0 += get(&s.delivered);
        e.1 += get(&s.dead_lettered);
    }
    for (name, (delivered, dead)) in per_sink {
        metrics::counter!(MESSAGES, "sink" => name.clone(), "outcome" => "delivered")
            .absolute(delivered);
        metrics::counter!(MESSAGES, "sink" => name, "outcome" => "dead_lettered").absolute(dead);
    }
    metrics::gauge!(PENDING).set(t.pending_messages() as f64);
    for (topic, partition, offset) in t.committable() {
        metrics::gauge!(COMMITTED, "topic" => topic, "partition" => partition.to_string())
            .set(offset as f64);
    }
    metrics::counter!(RELOADS, "result" => "ok").absolute(get(&reloads.succeeded));
    metrics::counter!(RELOADS, "result" => "refused").absolute(get(&reloads.failed));
}

/// Queue depths: batches waiting for a worker, chunks waiting for each sink.
fn publish_queues(batches: &Receiver<Batch>, routing: &Routing) {
    use crate::telemetry::QUEUE_DEPTH;
    metrics::gauge!(QUEUE_DEPTH, "queue" => "workers").set(batches.len() as f64);
    for s in &routing.sinks {
        let depth = s.tx.max_capacity() - s.tx.capacity();
        metrics::gauge!(QUEUE_DEPTH, "queue" => format!("sink:{}", s.name)).set(depth as f64);
    }
}
