//! The run's threads besides the source's: workers, the I/O runtime, the
//! reloader and the offset tracker, which publishes the metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_channel::Receiver;

use super::RunError;
use crate::config::Config;
use crate::pipeline::batch::Batch;
use crate::pipeline::counters::Counters;
use crate::pipeline::offsets::OffsetTracker;
use crate::pipeline::routing::{Drivers, Routing};
use crate::pipeline::supervisor::Supervisor;
use crate::pipeline::tracker::{Position, TrackerThread};
use crate::pipeline::worker::Worker;

/// `n` worker threads, each running the worker `make` gives it.
pub(super) fn spawn_workers(
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
pub(super) fn io_runtime(cpus: &[usize]) -> Result<tokio::runtime::Runtime, RunError> {
    let cpus = cpus.to_vec();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ossnotify-io")
        .on_thread_start(move || crate::pipeline::cpus::pin_or_warn(&cpus))
        .enable_all()
        .build()
        .map_err(RunError::Runtime)
}

/// SIGHUP or an edit of the config file: new rules and sinks, swapped in
/// atomically, until stopped.
pub(super) fn spawn_reloader(
    config: &Config,
    drivers: &Arc<Drivers>,
    routing: &Arc<ArcSwap<Routing>>,
    reloads: &Arc<crate::pipeline::reload::ReloadCounters>,
) -> crate::pipeline::reload::Watcher {
    let (drivers, routing, running) = (drivers.clone(), routing.clone(), config.start_only());
    crate::pipeline::reload::watch(
        config.path.clone(),
        move |new: &Config| {
            let changed = running.changed(&new.start_only());
            if !changed.is_empty() {
                tracing::warn!(sections = %changed.join(", "), "sections a reload cannot change changed: those changes take effect at the next start");
            }
            routing.store(Arc::new(drivers.routing(new.routing())?));
            Ok(())
        },
        reloads.clone(),
    )
}

/// The offset tracker's thread, publishing the metrics as it goes.
pub(super) fn spawn_tracker(
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
            crate::pipeline::cpus::pin_or_warn(&cpus);
            tracker.run(publish)
        })
        .map_err(RunError::Thread)
}

/// Publishes every count as a metric (counters as absolute values: the
/// hot path only bumps atomics).
pub(super) fn publish(
    t: &OffsetTracker,
    c: &Counters,
    drivers: &Drivers,
    reloads: &crate::pipeline::reload::ReloadCounters,
) {
    use crate::metric_names::{COMMITTED, MESSAGES, PENDING, RECORDS, RELOADS};
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
    metrics::gauge!(crate::metric_names::OLDEST_PENDING).set(t.oldest_pending().as_secs_f64());
    for (topic, partition, offset) in t.committable() {
        metrics::gauge!(COMMITTED, "topic" => topic, "partition" => partition.to_string())
            .set(offset as f64);
    }
    metrics::counter!(RELOADS, "result" => "ok").absolute(get(&reloads.succeeded));
    metrics::counter!(RELOADS, "result" => "refused").absolute(get(&reloads.failed));
}

/// Queue depths: batches waiting for a worker, chunks waiting for each sink.
pub(super) fn publish_queues(batches: &Receiver<Batch>, routing: &Routing) {
    use crate::metric_names::QUEUE_DEPTH;
    metrics::gauge!(QUEUE_DEPTH, "queue" => "workers").set(batches.len() as f64);
    for s in &routing.sinks {
        let depth = s.tx.max_capacity() - s.tx.capacity();
        metrics::gauge!(QUEUE_DEPTH, "queue" => format!("sink:{}", s.name)).set(depth as f64);
    }
}
