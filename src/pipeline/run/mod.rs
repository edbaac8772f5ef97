//! `ossnotify run`: wires the road from record to sink. A source thread
//! (this one) reads records and announces them to the offset tracker;
//! worker threads (bounded crossbeam channels) decode, match and encode,
//! tell the tracker how many messages each record yields, and hand the
//! messages to per-sink drivers on tokio (bounded channels: a slow sink
//! slows the workers, which slow the source); the drivers batch, deliver or
//! dead-letter, and acknowledge; the tracker commits what is done. Every
//! thread and driver is supervised; `shutdown` says how a run ends.

mod started;
mod stores;
mod threads;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, unbounded};

use ossnotify_sinks::DeadLetterStore;

use crate::config::Config;
use crate::engine::Engine;
use crate::pipeline::batch::{Batch, Topics};
use crate::pipeline::counters::Counters;
use crate::pipeline::offsets::OffsetTracker;
use crate::pipeline::revoked::Revoked;
use crate::pipeline::routing::{Drivers, Routing};
use crate::pipeline::source::{self, Handoff};
use crate::pipeline::supervisor::{Failure, Supervisor};
use crate::pipeline::tracker::{Position, TrackerThread};
use crate::pipeline::worker::Worker;

use started::Started;
pub use stores::store_topics;
use stores::{backlog_store, ensure_store_topics, open_store};
use threads::{io_runtime, publish, publish_queues, spawn_reloader, spawn_tracker, spawn_workers};

/// Where the records come from.
pub enum Input {
    /// One record per line (a file, stdin), named in errors.
    Lines(crate::pipeline::source::lines::LineInput, String),
    /// The configured Kafka source.
    Kafka,
    /// A range of offsets of the source's topics (a backfill).
    Window(crate::pipeline::source::window::KafkaWindow),
}

impl Input {
    /// The most records a batch of this input holds: what the workers' and
    /// the sinks' queues, sized in records, are counted in.
    fn batch_records(&self) -> usize {
        match self {
            Input::Lines(..) => source::lines::LINE_BATCH,
            Input::Kafka | Input::Window(_) => source::BATCH,
        }
    }
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
    Cpus(#[from] crate::pipeline::cpus::CpuError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    MetricsServer(#[from] crate::pipeline::metrics_server::MetricsServerError),
    #[error("cannot open the dead-letter store ({place}): {cause}")]
    DeadLetterStore {
        place: String,
        cause: std::io::Error,
    },
    /// The cluster would not create a Kafka store's topics.
    #[error(transparent)]
    StoreTopics(#[from] ossnotify_sinks::kafka_store::TopicsRefused),
    /// A sink that cannot be built, a backlog that cannot be opened.
    #[error(transparent)]
    Routing(#[from] super::PipelineError),
    /// The source cannot start (the Kafka consumer cannot be created).
    #[error(transparent)]
    Source(#[from] crate::pipeline::error::SourceError),
    /// A component failed while running (see `supervisor`).
    #[error(transparent)]
    Failed(#[from] Failure),
    /// The last, synchronous offset commit failed: what was done since the
    /// previous commit is read again after a restart.
    #[error("the last offset commit failed: {0}")]
    LastCommit(rdkafka::error::KafkaError),
}

/// How a run starts.
#[derive(Debug, Clone)]
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
    /// Set (by a second signal): the drain ends at once. What is settled
    /// is committed; the rest is read again at the next start.
    pub cut_drain: Arc<AtomicBool>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            check_sinks: true,
            reload: true,
            redeliver: true,
            cut_drain: Arc::default(),
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
    crate::pipeline::cpus::check(&cpus).map_err(RunError::Cpus)?;
    let rt = io_runtime(&cpus)?;
    let supervisor = Supervisor::with_cut_drain(stop, options.cut_drain.clone());
    let (ready, taps) = serve_metrics(config, &rt, &supervisor)?;
    if !ensure_store_topics(config.stores(), &config.sinks, &supervisor)? {
        // Stopped before the cluster answered: nothing was read.
        return Ok(RunSummary {
            drained: true,
            ..RunSummary::default()
        });
    }
    let (progress, progress_rx) = unbounded();
    let shared = Shared {
        // After the metrics recorder is installed: opening counts repairs
        // and retention.
        store: Arc::new(open_store(config.stores())?),
        counters: Arc::default(),
        topics: Arc::default(),
        progress,
        revoked: Arc::default(),
        supervisor,
    };
    let batch_records = input.batch_records();
    let (drivers, routing) = start_routing(config, &options, &rt, &shared, batch_records)?;
    // SIGHUP or an edit of the config file: new rules and sinks, swapped in
    // atomically.
    let reloads = Arc::new(crate::pipeline::reload::ReloadCounters::default());
    let reloader = options
        .reload
        .then(|| spawn_reloader(config, &drivers, &routing, &reloads));

    let mut source = source::open(
        &config.source,
        config.pipeline.revoke_wait_ms,
        input,
        &shared.topics,
        &shared.progress,
        &ready,
        &shared.revoked,
    )
    .map_err(RunError::Source)?;
    let ((batch_tx, batch_rx), (spare_tx, spare_rx)) = batch_channels(config, batch_records);

    let published = Published {
        counters: shared.counters.clone(),
        drivers: drivers.clone(),
        reloads,
        routing: routing.clone(),
        batches: batch_rx.clone(),
    };
    let tracker = start_tracker(config, source.committer(), progress_rx, &shared, published)?;
    let workers = start_workers(config, &shared, &routing, &taps, (&batch_rx, &spare_tx))?;
    // The workers hold the receivers now: the channel closes with them.
    drop(batch_rx);

    read_source(source.as_mut(), config, &shared, batch_tx, spare_rx);

    Started {
        rt,
        supervisor: shared.supervisor,
        workers,
        reloader,
        drivers,
        routing,
        progress: shared.progress,
        tracker,
        source,
        counters: shared.counters,
    }
    .shut_down(Duration::from_millis(config.pipeline.drain_timeout_ms))
}

/// The offset tracker's thread, which also publishes the metrics.
fn start_tracker(
    config: &Config,
    committer: Option<Arc<dyn crate::pipeline::tracker::Committer>>,
    progress: crossbeam_channel::Receiver<crate::pipeline::tracker::Progress>,
    shared: &Shared,
    published: Published,
) -> Result<std::thread::JoinHandle<Result<Vec<Position>, rdkafka::error::KafkaError>>, RunError> {
    let tracker = TrackerThread {
        progress,
        committer,
        topics: shared.topics.clone(),
        supervisor: shared.supervisor.clone(),
        interval: Duration::from_millis(config.pipeline.commit_interval_ms),
    };
    spawn_tracker(
        tracker,
        move |t| published.publish(t),
        &config.pipeline.cpus,
        &shared.supervisor,
    )
}

/// The source, on this thread (pinned only now: librdkafka's threads,
/// started with the consumer, keep every CPU), until it ends or is
/// stopped. Dropping the hand-off closes the workers' channel.
fn read_source(
    source: &mut dyn source::Source,
    config: &Config,
    shared: &Shared,
    batches: crossbeam_channel::Sender<Batch>,
    spares: crossbeam_channel::Receiver<Batch>,
) {
    crate::pipeline::cpus::pin_or_warn(&config.pipeline.cpus);
    let handoff = Handoff {
        batches,
        spares,
        progress: shared.progress.clone(),
        max_held: config.pipeline.queue_capacity,
    };
    shared
        .supervisor
        .run("source", || source.read(&handoff, &shared.supervisor));
}

/// The batches' channel to the workers, `queue_capacity` records in
/// batches of `batch_records` (a few per worker at most: more only adds
/// latency), and the channel of emptied batches on their way back to the
/// source.
#[allow(clippy::type_complexity)]
fn batch_channels(
    config: &Config,
    batch_records: usize,
) -> (
    (
        crossbeam_channel::Sender<Batch>,
        crossbeam_channel::Receiver<Batch>,
    ),
    (
        crossbeam_channel::Sender<Batch>,
        crossbeam_channel::Receiver<Batch>,
    ),
) {
    let workers = config.pipeline.workers;
    let batches = (config.pipeline.queue_capacity / batch_records).clamp(1, workers * 4);
    (bounded(batches), bounded(batches + workers + 1))
}

/// What the parts of a run share.
struct Shared {
    supervisor: Arc<Supervisor>,
    store: Arc<DeadLetterStore>,
    counters: Arc<Counters>,
    topics: Arc<Topics>,
    progress: crossbeam_channel::Sender<crate::pipeline::tracker::Progress>,
    /// Generations given up.
    revoked: Arc<Revoked>,
}

/// The rules and the sinks they address, with a driver per sink.
fn start_routing(
    config: &Config,
    options: &RunOptions,
    rt: &tokio::runtime::Runtime,
    shared: &Shared,
    batch_records: usize,
) -> Result<(Arc<Drivers>, Arc<ArcSwap<Routing>>), RunError> {
    let mut drivers = Drivers::new(
        rt.handle().clone(),
        shared.store.clone(),
        backlog_store(config.stores(), options.redeliver),
        shared.progress.clone(),
        shared.counters.clone(),
        shared.supervisor.clone(),
        shared.revoked.clone(),
        (config.pipeline.queue_capacity / batch_records).max(1),
    );
    drivers.check_sinks = options.check_sinks;
    drivers.topics = shared.topics.clone();
    let drivers = Arc::new(drivers);
    let routing = Arc::new(ArcSwap::from_pointee(drivers.routing(config.routing())?));
    Ok((drivers, routing))
}

/// `[pipeline] workers` threads, reading batches from `channels.0` and
/// returning them emptied to `channels.1`.
fn start_workers(
    config: &Config,
    shared: &Shared,
    routing: &Arc<ArcSwap<Routing>>,
    taps: &Arc<crate::pipeline::tap::Taps>,
    channels: (
        &crossbeam_channel::Receiver<Batch>,
        &crossbeam_channel::Sender<Batch>,
    ),
) -> Result<Vec<std::thread::JoinHandle<Option<()>>>, RunError> {
    spawn_workers(config.pipeline.workers, &shared.supervisor, || Worker {
        rx: channels.0.clone(),
        spares: channels.1.clone(),
        routing: routing.clone(),
        topics: shared.topics.clone(),
        store: shared.store.clone(),
        progress: shared.progress.clone(),
        counters: shared.counters.clone(),
        revoked: shared.revoked.clone(),
        engine: Engine::new(config.source.key_encoding, false)
            .with_window(config.pipeline.operation_window),
        cpus: config.pipeline.cpus.clone(),
        taps: taps.clone(),
        invalid_not_dead_lettered: config.pipeline.invalid_not_dead_lettered,
    })
}

/// What the tracker's thread publishes as metrics, besides its own.
struct Published {
    counters: Arc<Counters>,
    drivers: Arc<Drivers>,
    reloads: Arc<crate::pipeline::reload::ReloadCounters>,
    routing: Arc<ArcSwap<Routing>>,
    batches: crossbeam_channel::Receiver<Batch>,
}

impl Published {
    fn publish(&self, t: &OffsetTracker) {
        publish(t, &self.counters, &self.drivers, &self.reloads);
        publish_queues(&self.batches, &self.routing.load());
    }
}

/// `/metrics`, `/health`, `/ready` and `/tap` when `[metrics] listen` is
/// set: the readiness flag and the taps the run keeps up.
fn serve_metrics(
    config: &Config,
    rt: &tokio::runtime::Runtime,
    supervisor: &Arc<Supervisor>,
) -> Result<(Arc<AtomicBool>, Arc<crate::pipeline::tap::Taps>), RunError> {
    let ready = Arc::new(AtomicBool::new(false));
    let taps = Arc::new(crate::pipeline::tap::Taps::default());
    if let Some(listen) = &config.metrics.listen {
        rt.block_on(crate::pipeline::metrics_server::serve(
            listen,
            ready.clone(),
            supervisor.clone(),
            taps.clone(),
            config.metrics.tap_token.clone(),
        ))?;
    }
    Ok((ready, taps))
}
