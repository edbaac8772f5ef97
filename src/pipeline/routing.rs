//! Where matched messages go: the compiled rules together with the sinks
//! they address, swapped whole on reload (rules name sinks by position), and
//! the per-sink drivers on tokio that batch, deliver or dead-letter, and
//! acknowledge.
//!
//! A reload keeps every sink whose table did not change (same name, same
//! fingerprint) with its driver and connections, starts new drivers for new
//! or changed sinks, and lets the drivers of removed or replaced sinks
//! finish: once no worker holds the old routing, their queues close, they
//! deliver what is queued and end. Nothing queued is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use ossnotify_sinks::{deliver_or_dead_letter, DeadLetterStore, Encoding, Envelope, Outcome, Sink};

use super::batch::Coord;
use super::revoked::Revoked;
use super::supervisor::Supervisor;
use super::tracker::Progress;
use super::worker::Counters;
use crate::config::Config;
use crate::rules::RuleIndex;

/// One message on its way to a sink, and the record it came from.
pub struct Item {
    pub envelope: Envelope,
    pub coord: Coord,
}

/// A sink as the workers see it: its queue (of chunks: a worker sends one
/// chunk per sink per batch) and the encoding it wants.
#[derive(Clone)]
pub struct SinkQueue {
    pub name: String,
    pub tx: tokio::sync::mpsc::Sender<Vec<Item>>,
    pub encoding: Encoding,
}

/// The rules and the sinks they address (`CompiledRule::sinks` are
/// positions in `sinks`).
pub struct Routing {
    pub index: RuleIndex,
    pub sinks: Vec<SinkQueue>,
    pub want_base64: bool,
}

/// One sink's counts, kept after the sink is replaced (counters only grow).
#[derive(Default)]
pub struct SinkStats {
    pub name: String,
    pub delivered: AtomicU64,
    pub dead_lettered: AtomicU64,
}

/// Starts and keeps the sink drivers.
pub struct Drivers {
    rt: tokio::runtime::Handle,
    store: Arc<DeadLetterStore>,
    progress: Sender<Progress>,
    counters: Arc<Counters>,
    supervisor: Arc<Supervisor>,
    revoked: Arc<Revoked>,
    /// Chunks per sink queue.
    chunks: usize,
    /// Running sinks by name, with their fingerprint.
    live: Mutex<HashMap<String, (String, SinkQueue)>>,
    /// Each driver's task, ended once its queue is closed and drained;
    /// a driver that fails reports to the supervisor first.
    pub handles: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub stats: Mutex<Vec<Arc<SinkStats>>>,
}

impl Drivers {
    pub fn new(
        rt: tokio::runtime::Handle,
        store: Arc<DeadLetterStore>,
        progress: Sender<Progress>,
        counters: Arc<Counters>,
        supervisor: Arc<Supervisor>,
        revoked: Arc<Revoked>,
        queue_capacity: usize,
    ) -> Drivers {
        Drivers {
            rt,
            store,
            progress,
            counters,
            supervisor,
            revoked,
            // A chunk holds the messages of one worker batch (of
            // `SOURCE_BATCH` records) for one sink: about `queue_capacity`
            // records' messages in all.
            chunks: (queue_capacity / super::source::BATCH).max(1),
            live: Mutex::default(),
            handles: Mutex::default(),
            stats: Mutex::default(),
        }
    }

    /// The routing for `config`: sinks whose table is unchanged are kept,
    /// the others built and started. Nothing changes if a sink cannot be
    /// built.
    pub fn routing(&self, config: &Config) -> Result<Routing, String> {
        let mut live = self.live.lock().expect("not poisoned");
        let mut built = Vec::new();
        for s in &config.sinks {
            let kept = live.get(&s.name).filter(|(f, _)| *f == s.fingerprint);
            if kept.is_none() {
                let _guard = self.rt.enter();
                let sink: Arc<dyn Sink> = Arc::from(s.config.build(&s.name)?);
                built.push((s.name.clone(), sink));
            }
        }
        let mut next = HashMap::new();
        let mut sinks = Vec::new();
        for s in &config.sinks {
            let queue = match built.iter().position(|(n, _)| *n == s.name) {
                Some(i) => {
                    let sink = built.swap_remove(i).1;
                    if live.contains_key(&s.name) {
                        tracing::info!(sink = %s.name, "sink changed: starting it anew; the old one finishes its queue");
                    }
                    self.start(sink, s.config.encoding())
                }
                None => live[&s.name].1.clone(),
            };
            next.insert(s.name.clone(), (s.fingerprint.clone(), queue.clone()));
            sinks.push(queue);
        }
        for name in live.keys().filter(|n| !next.contains_key(*n)) {
            tracing::info!(sink = %name, "sink removed: it finishes its queue");
        }
        // The old queues close once no routing holds them.
        *live = next;
        Ok(Routing {
            index: RuleIndex::build(config.rules.clone(), config.region_policy()),
            want_base64: sinks.iter().any(|s| s.encoding == Encoding::Base64),
            sinks,
        })
    }

    /// Forgets every sink: their queues close once the routing is dropped.
    pub fn close(&self) {
        self.live.lock().expect("not poisoned").clear();
    }

    fn start(&self, sink: Arc<dyn Sink>, encoding: Encoding) -> SinkQueue {
        let (tx, rx) = tokio::sync::mpsc::channel(self.chunks);
        let stats = Arc::new(SinkStats {
            name: sink.name().to_owned(),
            ..SinkStats::default()
        });
        self.stats.lock().expect("not poisoned").push(stats.clone());
        let queue = SinkQueue {
            name: sink.name().to_owned(),
            tx,
            encoding,
        };
        let ctx = DriverContext {
            store: self.store.clone(),
            progress: self.progress.clone(),
            counters: self.counters.clone(),
            supervisor: self.supervisor.clone(),
            revoked: self.revoked.clone(),
            stats,
        };
        let (name, supervisor) = (format!("sink {}", sink.name()), self.supervisor.clone());
        let driver = self.rt.spawn(drive(sink, rx, ctx));
        // Watches the driver: an error or a panic stops the run at once.
        let handle = self.rt.spawn(async move {
            match driver.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => supervisor.fail(&name, e),
                Err(e) => supervisor.fail(&name, format!("panicked: {e}")),
            }
        });
        self.handles.lock().expect("not poisoned").push(handle);
        queue
    }
}

#[derive(Clone)]
struct DriverContext {
    store: Arc<DeadLetterStore>,
    progress: Sender<Progress>,
    counters: Arc<Counters>,
    supervisor: Arc<Supervisor>,
    revoked: Arc<Revoked>,
    stats: Arc<SinkStats>,
}

/// Feeds one sink: batches of up to `max_batch`, at most `max_in_flight`
/// deliveries at once; every message ends delivered or dead-lettered, then
/// acknowledged. Ends when its queue is closed and empty.
async fn drive(
    sink: Arc<dyn Sink>,
    mut rx: tokio::sync::mpsc::Receiver<Vec<Item>>,
    ctx: DriverContext,
) -> Result<(), String> {
    let permits = Arc::new(tokio::sync::Semaphore::new(sink.max_in_flight().max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let max = sink.max_batch().max(1);
    let mut pending: Vec<Item> = Vec::new();
    while let Some(first) = rx.recv().await {
        pending.extend(first);
        // How long to wait to fill a batch once there is a message.
        let deadline = tokio::time::Instant::now() + sink.linger();
        while pending.len() < max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(more)) => pending.extend(more),
                _ => break,
            }
        }
        // Messages of partitions given up since are their next owner's.
        let mut revoked = ctx.revoked.view();
        pending.retain(|i| !revoked.contains(&i.coord));
        while !pending.is_empty() {
            let rest = pending.split_off(pending.len().min(max));
            let batch = std::mem::replace(&mut pending, rest);
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| e.to_string())?;
            let (sink, ctx) = (sink.clone(), ctx.clone());
            tasks.spawn(async move {
                let (envelopes, coords): (Vec<Envelope>, Vec<Coord>) =
                    batch.into_iter().map(|i| (i.envelope, i.coord)).unzip();
                let started = std::time::Instant::now();
                let outcomes = match deliver_or_dead_letter(sink.as_ref(), &envelopes, &ctx.store).await {
                    Ok(o) => o,
                    Err(e) => {
                        // Reported at once (the driver would notice only at
                        // its next message); never acknowledged.
                        let e = format!(
                            "cannot write the dead-letter store {}: {e}",
                            ctx.store.path().display()
                        );
                        ctx.supervisor.fail(&format!("sink {}", sink.name()), &e);
                        return Err(e);
                    }
                };
                metrics::histogram!(crate::telemetry::DELIVERY_SECONDS, "sink" => sink.name().to_owned())
                    .record(started.elapsed().as_secs_f64());
                drop(permit);
                let delivered = outcomes
                    .iter()
                    .filter(|o| matches!(o, Outcome::Delivered))
                    .count() as u64;
                let failed = outcomes.len() as u64 - delivered;
                ctx.counters
                    .delivered
                    .fetch_add(delivered, Ordering::Relaxed);
                ctx.stats.delivered.fetch_add(delivered, Ordering::Relaxed);
                ctx.counters
                    .dead_lettered
                    .fetch_add(failed, Ordering::Relaxed);
                ctx.stats.dead_lettered.fetch_add(failed, Ordering::Relaxed);
                let _ = ctx.progress.send(Progress::Acked(coords));
                Ok::<(), String>(())
            });
            // Reap what has finished, keeping the set small.
            while let Some(done) = tasks.try_join_next() {
                done.map_err(|e| e.to_string())??;
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}
