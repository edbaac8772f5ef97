//! `ossnotify run`: wires the road from record to sink. A source thread
//! (this one) reads records and announces them to the offset tracker;
//! worker threads (bounded crossbeam channels) decode, match and encode,
//! tell the tracker how many messages each record yields, and hand the
//! messages to per-sink drivers on tokio (bounded channels: a slow sink
//! slows the workers, which slow the source); the drivers batch, deliver or
//! dead-letter, and acknowledge; the tracker commits what is done. Every
//! thread and driver is supervised; `shutdown` says how a run ends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, unbounded, Receiver};
use ossnotify_sinks::DeadLetterStore;

use super::batch::{Batch, Topics};
use super::offsets::OffsetTracker;
use super::revoked::Revoked;
use super::routing::{Drivers, Routing};
use super::shutdown::Drain;
use super::source::{self, Handoff, BATCH};
use super::supervisor::{Failure, Supervisor};
use super::tracker::{Position, TrackerThread};
use super::worker::{Counters, Worker};
use crate::config::Config;
use crate::engine::Engine;

/// Where the records come from.
pub enum Input {
    /// One record per line (a file, stdin), named in errors.
    Lines(super::source::lines::LineInput, String),
    /// The configured Kafka source.
    Kafka,
    /// A range of offsets of the source's topics (a backfill).
    Window(super::source::window::KafkaWindow),
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
    /// Messages kept in sinks' backlogs during the run.
    pub backlogged: u64,
    /// Messages redelivered from sinks' backlogs during the run (counted in
    /// `delivered` too).
    pub redelivered: u64,
    /// Messages in the backlogs at the end, redelivered by the next run.
    pub still_backlogged: u64,
    /// Per sink: (name, delivered, dead-lettered, kept in its backlog).
    pub sinks: Vec<(String, u64, u64, u64)>,
    /// Where the input is processed through, as the tracker committed it.
    pub committed: Vec<Position>,
    /// False if the drain deadline cut the drain short.
    pub drained: bool,
}

/// Why a run did not end well.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `[pipeline] cpus` names CPUs this machine does not let us use.
    #[error(transparent)]
    Cpus(#[from] super::cpus::CpuError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    #[error("cannot open the dead-letter store ({place}): {source}")]
    DeadLetterStore {
        place: String,
        source: std::io::Error,
    },
    /// The cluster would not create a Kafka store's topics.
    #[error(transparent)]
    StoreTopics(#[from] ossnotify_sinks::kafka_store::TopicsRefused),
    /// A sink that cannot be built, a backlog that cannot be opened.
    #[error(transparent)]
    Routing(#[from] super::PipelineError),
    /// The source cannot start (the Kafka consumer cannot be created).
    #[error(transparent)]
    Source(#[from] super::error::SourceError),
    /// A component failed while running (see `supervisor`).
    #[error(transparent)]
    Failed(#[from] Failure),
    /// The last, synchronous offset commit failed: what was done since the
    /// previous commit is read again after a restart.
    #[error("the last offset commit failed: {0}")]
    LastCommit(#[source] rdkafka::error::KafkaError),
}

/// How a run starts.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Probe the sinks' destinations at start and on every reload (SPEC §6).
    pub check_sinks: bool,
    /// Reload on SIGHUP or an edit of the config file. A backfill does
    /// not: its config is derived from the file (only the rules named),
    /// and a reload would bring every rule back.
    pub reload: bool,
    /// Redeliver the Kafka backlogs (join the backlog group). A backfill
    /// does not: the live members redeliver what it kept.
    pub redeliver: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            check_sinks: true,
            reload: true,
            redeliver: true,
        }
    }
}

/// Runs `config` over `input`: lines until they end, or Kafka until `stop`
/// (or a failure); then drains and commits (see `shutdown`).
pub fn run(config: &Config, input: Input, stop: Arc<AtomicBool>) -> Result<RunSummary, RunError> {
    run_with(config, input, stop, RunOptions::default())
}

/// [`run`] with `options`.
pub fn run_with(
    config: &Config,
    input: Input,
    stop: Arc<AtomicBool>,
    options: RunOptions,
) -> Result<RunSummary, RunError> {
    let cpus = config.pipeline.cpus.clone();
    super::cpus::check(&cpus).map_err(RunError::Cpus)?;
    let rt = io_runtime(&cpus)?;
    let supervisor = Supervisor::new(stop);
    // /metrics, /health, /ready.
    let ready = Arc::new(AtomicBool::new(false));
    let taps = Arc::new(super::tap::Taps::default());
    if let Some(listen) = &config.metrics.listen {
        rt.block_on(crate::telemetry::serve(
            listen,
            ready.clone(),
            supervisor.clone(),
            taps.clone(),
            config.metrics.tap_token.clone(),
        ))?;
    }
    if !ensure_store_topics(config, &supervisor)? {
        // Stopped before the cluster answered: nothing was read.
        return Ok(RunSummary {
            drained: true,
            ..RunSummary::default()
        });
    }
    // After the metrics recorder is installed: opening counts repairs and
    // retention.
    let store = Arc::new(open_store(config)?);
    let counters = Arc::new(Counters::default());
    let topics = Arc::new(Topics::default());
    let (progress, progress_rx) = unbounded();
    let revoked = Arc::new(Revoked::default());

    // The rules and the sinks they address, with a driver per sink.
    let mut drivers = Drivers::new(
        rt.handle().clone(),
        store.clone(),
        backlog_store(config, options.redeliver),
        progress.clone(),
        counters.clone(),
        supervisor.clone(),
        revoked.clone(),
        config.pipeline.queue_capacity,
    );
    drivers.check_sinks = options.check_sinks;
    drivers.topics = topics.clone();
    let drivers = Arc::new(drivers);
    let routing = Arc::new(ArcSwap::from_pointee(drivers.routing(config)?));
    // SIGHUP or an edit of the config file: new rules and sinks, swapped in
    // atomically.
    let reloads = Arc::new(super::reload::ReloadCounters::default());
    let reload_stop = Arc::new(AtomicBool::new(false));
    let reloader = if options.reload {
        spawn_reloader(config, &drivers, &routing, &reload_stop, &reloads)
    } else {
        std::thread::spawn(|| {})
    };

    let mut source = source::open(config, input, &topics, &progress, &ready, &revoked)
        .map_err(RunError::Source)?;
    // `queue_capacity` records, in batches; a few per worker at most (more
    // only adds latency).
    let batches = (config.pipeline.queue_capacity / BATCH).clamp(1, config.pipeline.workers * 4);
    let (batch_tx, batch_rx) = bounded::<Batch>(batches);
    // Emptied batches on their way back to the source.
    let (spare_tx, spare_rx) = bounded::<Batch>(batches + config.pipeline.workers + 1);

    let tracker = {
        let tracker = TrackerThread {
            progress: progress_rx,
            committer: source.committer(),
            topics: topics.clone(),
            supervisor: supervisor.clone(),
            interval: Duration::from_millis(config.pipeline.commit_interval_ms),
        };
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
        spawn_tracker(tracker, publish, &cpus, &supervisor)?
    };

    let workers = spawn_workers(config.pipeline.workers, &supervisor, || Worker {
        rx: batch_rx.clone(),
        spares: spare_tx.clone(),
        routing: routing.clone(),
        topics: topics.clone(),
        store: store.clone(),
        progress: progress.clone(),
        counters: counters.clone(),
        revoked: revoked.clone(),
        engine: Engine::new(config.source.key_encoding, false)
            .with_window(config.pipeline.operation_window),
        cpus: cpus.clone(),
        taps: taps.clone(),
        invalid_not_dead_lettered: config.pipeline.invalid_not_dead_lettered,
    })?;
    // The workers hold the receivers now: the channel closes with them.
    drop(batch_rx);

    // The source, on this thread (pinned only now: librdkafka's threads,
    // started with the consumer above, keep every CPU).
    super::cpus::pin_or_warn(&cpus);
    {
        let handoff = Handoff {
            batches: batch_tx,
            spares: spare_rx,
            progress: progress.clone(),
            max_held: config.pipeline.queue_capacity,
        };
        supervisor.run("source", || source.read(&handoff, &supervisor));
        // Dropping the hand-off closes the workers' channel.
    }

    Started {
        rt,
        supervisor,
        workers,
        reloader,
        reload_stop,
        drivers,
        routing,
        progress,
        tracker,
        source,
        counters,
    }
    .shut_down(config)
}

/// What a run started: what its shutdown stops, in the order `shutdown`
/// states.
struct Started {
    rt: tokio::runtime::Runtime,
    supervisor: Arc<Supervisor>,
    workers: Vec<std::thread::JoinHandle<Option<()>>>,
    reloader: std::thread::JoinHandle<()>,
    reload_stop: Arc<AtomicBool>,
    drivers: Arc<Drivers>,
    routing: Arc<ArcSwap<Routing>>,
    progress: crossbeam_channel::Sender<super::tracker::Progress>,
    tracker: std::thread::JoinHandle<Result<Vec<Position>, rdkafka::error::KafkaError>>,
    source: Box<dyn source::Source>,
    counters: Arc<Counters>,
}

impl Started {
    fn shut_down(mut self, config: &Config) -> Result<RunSummary, RunError> {
        let mut drain = Drain::new(
            &self.supervisor,
            Duration::from_millis(config.pipeline.drain_timeout_ms),
        );
        let mut drained = drain.join(&mut self.workers);
        self.reload_stop.store(true, Ordering::SeqCst);
        let _ = self.reloader.join();
        self.drivers.close();
        self.routing.store(Arc::new(Routing {
            index: crate::rules::RuleIndex::build(Vec::new(), config.region_policy()),
            sinks: Vec::new(),
            want_base64: false,
        }));
        let handles = std::mem::take(&mut *self.drivers.handles.lock().expect("not poisoned"));
        let still_backlogged = self.drivers.backlogs.waiting();
        drained = drained && drain.wait(|| handles.iter().all(|h| h.is_finished()));
        if !drained {
            tracing::warn!(
                "drain deadline reached: committing what is done; the rest is read again after a restart"
            );
        }
        let _ = self.progress.send(super::tracker::Progress::Finish);
        drop(self.progress);
        let last_commit = self.tracker.join().unwrap_or_else(|_| Ok(Vec::new()));
        // What failed before the run gave up draining. Stragglers left past
        // the deadline fail when the runtime goes (their sink queues close):
        // that is the shutdown, not a failure of the run.
        let failure = self.supervisor.failure().cloned();
        if drained {
            drop(self.source);
            self.rt.block_on(async {
                for h in handles {
                    let _ = h.await;
                }
            });
        } else {
            // Workers may still hold messages of the consumer's: it must
            // outlive them, so it is never destroyed (the process ends next).
            std::mem::forget(self.source);
            self.rt.shutdown_background();
        }
        if let Some(f) = failure {
            return Err(RunError::Failed(f));
        }
        let committed = last_commit.map_err(RunError::LastCommit)?;
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let redelivered: u64 = self
            .drivers
            .backlogs
            .redelivered
            .lock()
            .expect("not poisoned")
            .values()
            .map(|n| get(n))
            .sum();
        let sinks = self
            .drivers
            .stats
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    get(&s.delivered),
                    get(&s.dead_lettered),
                    get(&s.backlogged),
                )
            })
            .collect();
        Ok(RunSummary {
            sinks,
            records: get(&c.records),
            invalid: get(&c.invalid),
            skipped: get(&c.skipped),
            unmatched: get(&c.unmatched),
            messages: get(&c.messages),
            delivered: get(&c.delivered) + redelivered,
            dead_lettered: get(&c.dead_lettered),
            backlogged: get(&c.backlogged),
            redelivered,
            still_backlogged,
            committed,
            drained,
        })
    }
}

/// `n` worker threads, each running the worker `make` gives it.
fn spawn_workers(
    n: usize,
    supervisor: &Arc<Supervisor>,
    make: impl Fn() -> Worker,
) -> Result<Vec<std::thread::JoinHandle<Option<()>>>, RunError> {
    let mut workers = Vec::new();
    for i in 0..n {
        let w = make();
        let supervisor = supervisor.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ossnotify-worker-{i}"))
            .spawn(move || supervisor.run(&format!("worker-{i}"), || w.run()));
        workers.push(spawned.map_err(RunError::Thread)?);
    }
    Ok(workers)
}

/// The runtime of the sinks' I/O and the metrics server: one thread, on
/// the pipeline's CPUs.
fn io_runtime(cpus: &[usize]) -> Result<tokio::runtime::Runtime, RunError> {
    let cpus = cpus.to_vec();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ossnotify-io")
        .on_thread_start(move || super::cpus::pin_or_warn(&cpus))
        .enable_all()
        .build()
        .map_err(RunError::Runtime)
}

/// The dead-letter store `config` names: in Kafka, its topic created at
/// start if missing.
pub fn open_store(config: &Config) -> Result<DeadLetterStore, RunError> {
    use crate::config::StoreKind;
    use ossnotify_sinks::kafka_store::dead_letters::KafkaDeadLetters;
    match config.dead_letter_store() {
        StoreKind::Disk => {
            DeadLetterStore::open_with(&config.dead_letter.path, config.dead_letter.store_options())
                .map_err(|source| RunError::DeadLetterStore {
                    place: format!("directory {}", config.dead_letter.path.display()),
                    source,
                })
        }
        StoreKind::Kafka => {
            let client = config.store_client();
            let topic = config.dead_letter_topic();
            let k = KafkaDeadLetters::new(&client, &topic, &config.dead_letter_group()).map_err(
                |source| RunError::DeadLetterStore {
                    place: format!("topic {topic}"),
                    source,
                },
            )?;
            Ok(DeadLetterStore::kafka(k))
        }
    }
}

/// The Kafka dead-letter topic `config` asks for.
pub fn dead_letter_topic(config: &Config) -> ossnotify_sinks::kafka_store::TopicSpec {
    ossnotify_sinks::kafka_store::TopicSpec {
        name: config.dead_letter_topic(),
        partitions: config.dead_letter.partitions,
        replication_factor: config.dead_letter.replication_factor,
        // The cluster's default: a dead letter is kept as long as the
        // cluster keeps messages, unless the topic says otherwise.
        retention_ms: None,
    }
}

/// The Kafka topics `config`'s stores use, each with what it holds.
fn store_topic_specs(config: &Config) -> Vec<(String, ossnotify_sinks::kafka_store::TopicSpec)> {
    use crate::config::StoreKind;
    let mut out = Vec::new();
    if config.dead_letter_store() == StoreKind::Kafka {
        out.push(("dead letters".into(), dead_letter_topic(config)));
    }
    if config.backlog_store() == StoreKind::Kafka {
        for s in config.sinks.iter().filter(|s| s.config.isolated()) {
            let spec = ossnotify_sinks::kafka_store::TopicSpec {
                name: config.backlog_topic(&s.name),
                partitions: config.backlog.partitions,
                replication_factor: config.backlog.replication_factor,
                retention_ms: Some(-1),
            };
            out.push((format!("sink {}'s backlog messages", s.name), spec));
        }
    }
    out
}

/// The Kafka topics `config`'s stores use, each described for a person:
/// what it holds, its name and its settings.
pub fn store_topics(config: &Config) -> Vec<String> {
    store_topic_specs(config)
        .into_iter()
        .map(|(what, spec)| {
            format!(
                "{what} go to Kafka topic {} ({} partitions, replication factor {}{})",
                spec.name,
                spec.partitions,
                spec.replication_factor,
                spec.retention_ms
                    .map_or(String::new(), |r| format!(", retention.ms {r}"))
            )
        })
        .collect()
}

/// Creates every store topic the cluster lacks, in one request: a cluster
/// that refuses gets one error naming them all. A cluster that does not
/// answer is asked again, with backoff, until it does or the run is
/// stopped (false), as the source waits for it: said at a limited rate,
/// not ready meanwhile.
fn ensure_store_topics(config: &Config, supervisor: &Supervisor) -> Result<bool, RunError> {
    let specs: Vec<_> = store_topic_specs(config).into_iter().map(|s| s.1).collect();
    if specs.is_empty() {
        return Ok(true);
    }
    let log = ossnotify_sinks::log_limit::LogLimit::default();
    let mut wait = Duration::from_secs(1);
    loop {
        // What exists with a finite retention is warned about by the drivers.
        // A short request, so that a stop is not kept waiting.
        let timeout = Duration::from_secs(5);
        match ossnotify_sinks::kafka_store::ensure_topics(&config.store_client(), &specs, timeout) {
            Ok(_) => return Ok(true),
            Err(e) if e.unreachable => {
                metrics::gauge!(crate::telemetry::SOURCE_CONNECTED).set(0.0);
                if let Some(n) = log.admit("unreachable") {
                    let cause = e.refused.first().map(|r| r.1.clone()).unwrap_or_default();
                    tracing::warn!(cause, like_this_since_last_logged = n, "every Kafka broker is unreachable: the store topics cannot be checked or created yet; retrying (logged at most every 30 s)");
                }
            }
            Err(e) => return Err(e.into()),
        }
        let until = std::time::Instant::now() + wait;
        while std::time::Instant::now() < until {
            if supervisor.stopping() {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// Where `config` keeps the sinks' backlogs.
fn backlog_store(config: &Config, redeliver: bool) -> super::delivery::backlogs::BacklogStore {
    use super::delivery::backlogs::{BacklogStore, KafkaBacklogs};
    match config.backlog_store() {
        crate::config::StoreKind::Disk => BacklogStore::Disk(config.backlog_path()),
        crate::config::StoreKind::Kafka => {
            let mut k = KafkaBacklogs::new(config);
            k.redeliver = redeliver;
            BacklogStore::Kafka(Box::new(k))
        }
    }
}

/// SIGHUP or an edit of the config file: new rules and sinks, swapped in
/// atomically, until `stop`.
fn spawn_reloader(
    config: &Config,
    drivers: &Arc<Drivers>,
    routing: &Arc<ArcSwap<Routing>>,
    stop: &Arc<AtomicBool>,
    reloads: &Arc<super::reload::ReloadCounters>,
) -> std::thread::JoinHandle<()> {
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
        stop.clone(),
        reloads.clone(),
    )
}

/// The offset tracker's thread, publishing the metrics as it goes.
fn spawn_tracker(
    tracker: TrackerThread,
    publish: impl FnMut(&OffsetTracker) + Send + 'static,
    cpus: &[usize],
    supervisor: &Arc<Supervisor>,
) -> Result<std::thread::JoinHandle<Result<Vec<Position>, rdkafka::error::KafkaError>>, RunError> {
    let (cpus, supervisor) = (cpus.to_vec(), supervisor.clone());
    std::thread::Builder::new()
        .name("ossnotify-offsets".into())
        .spawn(move || {
            let _watch = supervisor.watch("offset tracker");
            super::cpus::pin_or_warn(&cpus);
            tracker.run(publish)
        })
        .map_err(RunError::Thread)
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
    let mut per_sink: std::collections::BTreeMap<String, [u64; 3]> = Default::default();
    for s in drivers.stats.lock().expect("not poisoned").iter() {
        let e = per_sink.entry(s.name.clone()).or_default();
        e[0] += get(&s.delivered);
        e[1] += get(&s.dead_lettered);
        e[2] += get(&s.backlogged);
    }
    // A redelivered message is a delivered one (it was counted as
    // backlogged when it went to the backlog).
    for (name, n) in drivers
        .backlogs
        .redelivered
        .lock()
        .expect("not poisoned")
        .iter()
    {
        per_sink.entry(name.clone()).or_default()[0] += get(n);
    }
    for (name, counts) in per_sink {
        for (outcome, n) in ["delivered", "dead_lettered", "backlogged"]
            .into_iter()
            .zip(counts)
        {
            metrics::counter!(MESSAGES, "sink" => name.clone(), "outcome" => outcome).absolute(n);
        }
    }
    metrics::gauge!(PENDING).set(t.pending_messages() as f64);
    metrics::gauge!(crate::telemetry::OLDEST_PENDING).set(t.oldest_pending().as_secs_f64());
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
