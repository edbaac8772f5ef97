//! Where matched messages go: the compiled rules together with the sinks
//! they address, swapped whole on reload (rules name sinks by position), and
//! the per-sink drivers on tokio that batch, deliver, keep in the sink's
//! backlog or dead-letter, and acknowledge; and, for each sink with
//! isolation, the task that redelivers its backlog once it answers again.
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
use ossnotify_sinks::breaker::{Isolation, WhenFull};
use ossnotify_sinks::log_limit::LogLimit;
use ossnotify_sinks::{deliver_or_dead_letter, DeadLetterStore, Encoding, Envelope, Outcome, Sink};

use super::batch::Coord;
use super::delivery::backlog::Backlog;
use super::delivery::disk_backlog::{self, DiskBacklog};
use super::delivery::kafka_backlog::{KafkaBacklog, Size};
use super::delivery::kafka_redelivery::{KafkaRedelivery, Watched, Wiring};
use super::delivery::redelivery::{self, record_ages, CurrentSinks, Redelivered, Redelivery};
use super::error::PipelineError;
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
    /// The CloudEvents `aliyuneventbusname`.
    pub event_bus: Arc<str>,
}

/// The CloudEvents `aliyuneventbusname` of a sink that names none.
pub const DEFAULT_EVENT_BUS: &str = "ossnotify";

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
    pub backlogged: AtomicU64,
}

/// Where the sinks' backlogs are kept (`[backlog] store`).
pub enum BacklogStore {
    /// A directory per sink under this one.
    Disk(std::path::PathBuf),
    /// A topic per sink in the source's cluster.
    Kafka(Box<KafkaBacklogs>),
}

/// The Kafka backlog store: how to reach it and name its topics, its
/// producer, and the member's redelivery (started with the first backlog).
pub struct KafkaBacklogs {
    pub client: rdkafka::ClientConfig,
    /// The source's group settings the backlog group follows too.
    pub group_settings: Vec<(String, String)>,
    /// Each sink's topic is this followed by its name.
    pub topic_prefix: String,
    pub group: String,
    pub partitions: i32,
    pub replication_factor: i32,
    producer: Mutex<Option<Arc<ossnotify_sinks::kafka_store::AckedProducer>>>,
    redelivery: Mutex<Option<KafkaRedelivery>>,
    /// Topics found with a finite `retention.ms`.
    retention: Mutex<HashMap<String, i64>>,
}

impl KafkaBacklogs {
    pub fn new(config: &Config) -> KafkaBacklogs {
        KafkaBacklogs {
            client: config.store_client(),
            group_settings: config
                .source
                .librdkafka
                .iter()
                .filter(|(k, _)| GROUP_SETTINGS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            topic_prefix: config.backlog_topic_prefix(),
            group: config.backlog_group(),
            partitions: config.backlog.partitions,
            replication_factor: config.backlog.replication_factor,
            producer: Mutex::default(),
            redelivery: Mutex::default(),
            retention: Mutex::default(),
        }
    }

    fn topic(&self, sink: &str) -> String {
        ossnotify_sinks::kafka_store::topic_name(&self.topic_prefix, sink)
    }

    fn spec(&self, sink: &str) -> ossnotify_sinks::kafka_store::TopicSpec {
        ossnotify_sinks::kafka_store::TopicSpec {
            name: self.topic(sink),
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            retention_ms: Some(-1),
        }
    }

    /// Creates the topics of `sinks` the cluster lacks; warns about those
    /// found with a finite retention.
    fn ensure(&self, sinks: &[&str]) -> Result<(), PipelineError> {
        let specs: Vec<_> = sinks.iter().map(|s| self.spec(s)).collect();
        let finite = ossnotify_sinks::kafka_store::ensure_topics(
            &self.client,
            &specs,
            ossnotify_sinks::kafka_store::ADMIN_TIMEOUT,
        )?;
        let mut retention = self.retention.lock().expect("not poisoned");
        for f in finite {
            tracing::warn!(
                topic = %f.topic,
                retention_ms = f.retention_ms,
                "a backlog topic has a finite retention: messages waiting longer may expire before they are delivered; set retention.ms=-1 on it (see {})",
                super::delivery::backlog::RETENTION_HEADROOM
            );
            retention.insert(f.topic, f.retention_ms);
        }
        Ok(())
    }
}

/// `[source.librdkafka]` properties that say how the source's group
/// behaves; the backlog group takes them too, so that a member that dies
/// gives its backlog partitions up as soon as its source partitions.
const GROUP_SETTINGS: &[&str] = &[
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "group.protocol",
];

/// Starts and keeps the sink drivers.
pub struct Drivers {
    rt: tokio::runtime::Handle,
    store: Arc<DeadLetterStore>,
    backlog_store: BacklogStore,
    /// Open backlogs by sink name, kept across reloads (a backlog belongs
    /// to the name); on disk each has its redelivery task.
    backlogs: Mutex<HashMap<String, Arc<Backlog>>>,
    /// The sink now serving each name, for redelivery.
    current: CurrentSinks,
    redeliveries: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Messages redelivered from backlogs, by sink name.
    pub redelivered: Redelivered,
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
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rt: tokio::runtime::Handle,
        store: Arc<DeadLetterStore>,
        backlog_store: BacklogStore,
        progress: Sender<Progress>,
        counters: Arc<Counters>,
        supervisor: Arc<Supervisor>,
        revoked: Arc<Revoked>,
        queue_capacity: usize,
    ) -> Drivers {
        Drivers {
            rt,
            store,
            backlog_store,
            backlogs: Mutex::default(),
            current: Arc::default(),
            redeliveries: Mutex::default(),
            redelivered: Arc::default(),
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
    pub fn routing(&self, config: &Config) -> Result<Routing, PipelineError> {
        let mut live = self.live.lock().expect("not poisoned");
        let mut built = Vec::new();
        for s in &config.sinks {
            let kept = live.get(&s.name).filter(|(f, _)| *f == s.fingerprint);
            if kept.is_none() {
                let _guard = self.rt.enter();
                let sink: Arc<dyn Sink> = Arc::from(s.config.build(&s.name).map_err(|source| {
                    PipelineError::BuildSink {
                        sink: s.name.clone(),
                        source,
                    }
                })?);
                built.push((s.name.clone(), sink));
            }
        }
        if let BacklogStore::Kafka(k) = &self.backlog_store {
            let isolated: Vec<&str> = built
                .iter()
                .filter(|(_, s)| s.isolation().is_some())
                .map(|(n, _)| n.as_str())
                .collect();
            k.ensure(&isolated)?;
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
                    self.start(sink, s.config.encoding(), s.config.event_bus())?
                }
                None => live[&s.name].1.clone(),
            };
            next.insert(s.name.clone(), (s.fingerprint.clone(), queue.clone()));
            sinks.push(queue);
        }
        for name in live.keys().filter(|n| !next.contains_key(*n)) {
            tracing::info!(sink = %name, "sink removed: it finishes its queue");
        }
        // The old queues close once no routing holds them. A removed
        // sink's backlog stays where it is, unsent, until the sink is back.
        self.current
            .lock()
            .expect("not poisoned")
            .retain(|name, _| next.contains_key(name));
        if let BacklogStore::Kafka(k) = &self.backlog_store {
            if let Some(r) = &*k.redelivery.lock().expect("not poisoned") {
                r.watching
                    .lock()
                    .expect("not poisoned")
                    .retain(|_, w| next.contains_key(&w.sink));
            }
        }
        *live = next;
        Ok(Routing {
            index: RuleIndex::build(config.rules.clone(), config.region_policy()),
            want_base64: sinks.iter().any(|s| s.encoding == Encoding::Base64),
            sinks,
        })
    }

    /// Forgets every sink: their queues close once the routing is dropped.
    /// Redelivery stops (what it was sending stays in the backlog, to be
    /// sent again by the next run).
    pub fn close(&self) {
        self.live.lock().expect("not poisoned").clear();
        for h in self.redeliveries.lock().expect("not poisoned").drain(..) {
            h.abort();
        }
        if let BacklogStore::Kafka(k) = &self.backlog_store {
            if let Some(mut r) = k.redelivery.lock().expect("not poisoned").take() {
                r.stop();
            }
        }
    }

    /// Messages in the backlogs now.
    pub fn backlogged(&self) -> u64 {
        let b = self.backlogs.lock().expect("not poisoned");
        b.values().map(|b| b.len()).sum()
    }

    /// Sink `name`'s backlog, opened (with its redelivery) the first time.
    fn backlog(&self, name: &str, iso: &Isolation) -> Result<Arc<Backlog>, PipelineError> {
        let mut backlogs = self.backlogs.lock().expect("not poisoned");
        let max = iso.backlog.max_mib.saturating_mul(1 << 20);
        let b = match backlogs.get(name) {
            Some(b) => b.clone(),
            None => {
                let b = match &self.backlog_store {
                    BacklogStore::Disk(root) => self.open_disk(root, name, max)?,
                    BacklogStore::Kafka(k) => Arc::new(self.open_kafka(k, name, max)?),
                };
                backlogs.insert(name.to_owned(), b.clone());
                b
            }
        };
        // On Kafka, (again) among the topics the member redelivers.
        if let (BacklogStore::Kafka(k), Backlog::Kafka(kb)) = (&self.backlog_store, &*b) {
            let redelivery = k.redelivery.lock().expect("not poisoned");
            if let Some(r) = &*redelivery {
                let retention_ms = k
                    .retention
                    .lock()
                    .expect("not poisoned")
                    .get(kb.topic())
                    .copied();
                r.watching.lock().expect("not poisoned").insert(
                    kb.topic().to_owned(),
                    Watched {
                        sink: name.to_owned(),
                        size: kb.size.clone(),
                        retention_ms,
                    },
                );
            }
        }
        Ok(b)
    }

    fn open_disk(
        &self,
        root: &std::path::Path,
        name: &str,
        max: u64,
    ) -> Result<Arc<Backlog>, PipelineError> {
        let disk = DiskBacklog::open(root, name, max).map_err(|source| PipelineError::Backlog {
            what: "open",
            sink: name.to_owned(),
            place: format!("directory {}", disk_backlog::dir_of(root, name).display()),
            source,
        })?;
        let b = Arc::new(Backlog::Disk(Box::new(disk)));
        let task = Redelivery {
            name: name.to_owned(),
            event_age: metrics::histogram!(crate::telemetry::EVENT_AGE, "sink" => name.to_owned()),
            backlog: b.clone(),
            current: self.current.clone(),
            store: self.store.clone(),
            redelivered: redelivery::counter(&self.redelivered, name),
        };
        let supervisor = self.supervisor.clone();
        let label = format!("redelivery of sink {name}");
        let handle = self.rt.spawn(async move {
            if let Err(e) = task.run().await {
                supervisor.fail(&label, e);
            }
        });
        self.redeliveries.lock().expect("not poisoned").push(handle);
        Ok(b)
    }

    fn open_kafka(
        &self,
        k: &KafkaBacklogs,
        name: &str,
        max: u64,
    ) -> Result<Backlog, PipelineError> {
        let topic = k.topic(name);
        let place_error = |source: std::io::Error| PipelineError::Backlog {
            what: "open",
            sink: name.to_owned(),
            place: format!("topic {topic}"),
            source,
        };
        let producer = {
            let mut p = k.producer.lock().expect("not poisoned");
            match &*p {
                Some(p) => p.clone(),
                None => {
                    let made = Arc::new(
                        ossnotify_sinks::kafka_store::AckedProducer::new(&k.client)
                            .map_err(|e| place_error(std::io::Error::other(e)))?,
                    );
                    *p = Some(made.clone());
                    made
                }
            }
        };
        let mut redelivery = k.redelivery.lock().expect("not poisoned");
        if redelivery.is_none() {
            let wiring = Wiring {
                rt: self.rt.clone(),
                current: self.current.clone(),
                store: self.store.clone(),
                supervisor: self.supervisor.clone(),
                redelivered: self.redelivered.clone(),
            };
            *redelivery = Some(
                KafkaRedelivery::start(&k.client, &k.group, &k.group_settings, wiring)
                    .map_err(|e| place_error(std::io::Error::other(e)))?,
            );
        }
        Ok(Backlog::Kafka(KafkaBacklog::new(
            topic.clone(),
            producer,
            max,
            Arc::new(Size::default()),
        )))
    }

    fn start(
        &self,
        sink: Arc<dyn Sink>,
        encoding: Encoding,
        event_bus: Option<&str>,
    ) -> Result<SinkQueue, PipelineError> {
        let isolation = sink.isolation();
        // Before its backlog opens: its redelivery finds the sink there
        // (and does not take it for gone).
        self.current
            .lock()
            .expect("not poisoned")
            .insert(sink.name().to_owned(), sink.clone());
        let backlog = match &isolation {
            Some(iso) => Some(self.backlog(sink.name(), iso)?),
            None => None,
        };
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
            event_bus: event_bus.unwrap_or(DEFAULT_EVENT_BUS).into(),
        };
        let ctx = DriverContext {
            store: self.store.clone(),
            progress: self.progress.clone(),
            counters: self.counters.clone(),
            supervisor: self.supervisor.clone(),
            revoked: self.revoked.clone(),
            stats,
            isolation,
            backlog,
            full_log: Arc::new(LogLimit::default()),
            event_age: metrics::histogram!(crate::telemetry::EVENT_AGE, "sink" => sink.name().to_owned()),
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
        Ok(queue)
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
    isolation: Option<Isolation>,
    backlog: Option<Arc<Backlog>>,
    /// "Backlog full" repeats while it stays full.
    full_log: Arc<LogLimit>,
    /// The sink's `ossnotify_event_age_seconds`.
    event_age: metrics::Histogram,
}

/// Feeds one sink: batches of up to `max_batch`, at most `max_in_flight`
/// deliveries at once; every message ends delivered, in the sink's backlog
/// or dead-lettered (see [`settle`]), then acknowledged. Ends when its
/// queue is closed and empty.
async fn drive(
    sink: Arc<dyn Sink>,
    mut rx: tokio::sync::mpsc::Receiver<Vec<Item>>,
    ctx: DriverContext,
) -> Result<(), PipelineError> {
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
                .expect("the permits are never closed");
            let (sink, ctx) = (sink.clone(), ctx.clone());
            tasks.spawn(async move {
                let (envelopes, coords): (Vec<Envelope>, Vec<Coord>) =
                    batch.into_iter().map(|i| (i.envelope, i.coord)).unzip();
                let started = std::time::Instant::now();
                let settled = match settle(sink.as_ref(), &envelopes, &ctx).await {
                    Ok(Some(s)) => s,
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        // Reported at once (the driver would notice only at
                        // its next message); never acknowledged.
                        ctx.supervisor.fail(&format!("sink {}", sink.name()), &e);
                        return Err(e);
                    }
                };
                metrics::histogram!(crate::telemetry::DELIVERY_SECONDS, "sink" => sink.name().to_owned())
                    .record(started.elapsed().as_secs_f64());
                drop(permit);
                let add = |a: &AtomicU64, n: u64| {
                    a.fetch_add(n, Ordering::Relaxed);
                };
                add(&ctx.counters.delivered, settled.delivered);
                add(&ctx.stats.delivered, settled.delivered);
                add(&ctx.counters.dead_lettered, settled.dead_lettered);
                add(&ctx.stats.dead_lettered, settled.dead_lettered);
                add(&ctx.counters.backlogged, settled.backlogged);
                add(&ctx.stats.backlogged, settled.backlogged);
                let _ = ctx.progress.send(Progress::Acked(coords));
                Ok::<(), PipelineError>(())
            });
            // Reap what has finished, keeping the set small.
            while let Some(done) = tasks.try_join_next() {
                done??;
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// What became of a batch.
#[derive(Debug, Default)]
struct Settled {
    delivered: u64,
    dead_lettered: u64,
    backlogged: u64,
}

/// Delivers a batch, or, while the sink's breaker is open, keeps it in the
/// sink's backlog without trying. Every message ends delivered, in the
/// backlog (transient failures, with isolation) or in the dead-letter store
/// (permanent failures; transient ones without isolation), synced before
/// this returns. `None`: left unsettled, as the run stops while the backlog
/// is full. An error is a store that cannot be written.
async fn settle(
    sink: &dyn Sink,
    envelopes: &[Envelope],
    ctx: &DriverContext,
) -> Result<Option<Settled>, PipelineError> {
    let (Some(iso), Some(backlog)) = (&ctx.isolation, &ctx.backlog) else {
        let outcomes = deliver_or_dead_letter(sink, envelopes, &ctx.store)
            .await
            .map_err(|e| PipelineError::store(&ctx.store, e))?;
        record_ages(&ctx.event_age, envelopes, &outcomes);
        let delivered = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Delivered))
            .count() as u64;
        return Ok(Some(Settled {
            delivered,
            dead_lettered: outcomes.len() as u64 - delivered,
            backlogged: 0,
        }));
    };
    let outcomes = if iso.breaker.admit() {
        sink.deliver(envelopes).await
    } else {
        let open = Outcome::Deferred {
            error: "circuit breaker open".into(),
            attempts: 0,
        };
        vec![open; envelopes.len()]
    };
    record_ages(&ctx.event_age, envelopes, &outcomes);
    let mut settled = Settled::default();
    let mut failed: Vec<(&Envelope, String, u32)> = Vec::new();
    let mut deferred: Vec<(&Envelope, &str, u32)> = Vec::new();
    for (e, o) in envelopes.iter().zip(&outcomes) {
        match o {
            Outcome::Delivered => settled.delivered += 1,
            Outcome::Failed { error, attempts } => failed.push((e, error.clone(), *attempts)),
            Outcome::Deferred { error, attempts } => deferred.push((e, error, *attempts)),
        }
    }
    while !deferred.is_empty() {
        if backlog.has_room() {
            let keep: Vec<&Envelope> = deferred.iter().map(|d| d.0).collect();
            backlog
                .push(&keep)
                .await
                .map_err(|source| backlog.error("write", sink.name(), source))?;
            settled.backlogged = keep.len() as u64;
            break;
        }
        let max = iso.backlog.max_mib;
        match iso.backlog.when_full {
            WhenFull::Block => {
                if let Some(n) = ctx.full_log.admit("full") {
                    tracing::warn!(
                        sink = sink.name(),
                        max_mib = max,
                        like_this_since_last_logged = n,
                        "backlog full: waiting for room (the consumer pauses)"
                    );
                }
                // Stopping (a signal, or a failure elsewhere): no room will
                // come in time. The batch is left unacknowledged, so its
                // records are read again after a restart, and the drain
                // ends instead of waiting out its deadline.
                if ctx.supervisor.stopping() {
                    return Ok(None);
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            WhenFull::DeadLetter => {
                for (e, error, attempts) in deferred.drain(..) {
                    failed.push((
                        e,
                        format!("BacklogFull: backlog over {max} MiB; {error}"),
                        attempts,
                    ));
                }
            }
        }
    }
    let give_up: Vec<(&Envelope, &str, u32)> = failed
        .iter()
        .map(|(e, s, a)| (*e, s.as_str(), *a))
        .collect();
    ctx.store
        .give_up(sink.name(), &give_up)
        .map_err(|e| PipelineError::store(&ctx.store, e))?;
    settled.dead_lettered = give_up.len() as u64;
    Ok(Some(settled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A config with `sinks` (name, TOML body) and one rule sending to all.
    fn config(dir: &std::path::Path, sinks: &[(&str, &str)]) -> Config {
        let mut text = format!(
            "[dead_letter]\npath = \"{}\"\n",
            dir.join("dead-letter").display()
        );
        for (name, body) in sinks {
            text.push_str(&format!("[sinks.{name}]\n{body}\n"));
        }
        let names: Vec<String> = sinks.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        text.push_str(&format!(
            "[[rules]]\nid = \"r\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [{}]\n",
            names.join(", ")
        ));
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        crate::config::load(&path).unwrap().config
    }

    /// Drivers on `rt` with their stores in `d` (progress is dropped).
    fn drivers(rt: &tokio::runtime::Runtime, d: &std::path::Path) -> Drivers {
        let (progress, _) = crossbeam_channel::unbounded();
        Drivers::new(
            rt.handle().clone(),
            Arc::new(DeadLetterStore::open(&d.join("dead-letter")).unwrap()),
            BacklogStore::Disk(d.join("backlog")),
            progress,
            Arc::default(),
            Supervisor::new(Arc::new(AtomicBool::new(false))),
            Arc::default(),
            8192,
        )
    }

    fn file_sink(dir: &std::path::Path, name: &str) -> String {
        format!("type = \"file\"\npath = \"{}\"", dir.join(name).display())
    }

    #[test]
    fn a_reload_keeps_unchanged_sinks_replaces_changed_ones_and_drops_removed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let drivers = drivers(&rt, d);
        let first = drivers
            .routing(&config(
                d,
                &[
                    ("keep", "type = \"null\""),
                    ("change", &file_sink(d, "a.ndjson")),
                    ("remove", &file_sink(d, "b.ndjson")),
                ],
            ))
            .unwrap();
        let second = drivers
            .routing(&config(
                d,
                &[
                    ("keep", "type = \"null\""),
                    ("change", &file_sink(d, "c.ndjson")),
                ],
            ))
            .unwrap();
        // Sinks are kept in name order: change, keep (, remove).
        let names: Vec<&str> = second.sinks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["change", "keep"]);
        assert!(first.sinks[1].tx.same_channel(&second.sinks[1].tx), "kept");
        assert!(
            !first.sinks[0].tx.same_channel(&second.sinks[0].tx),
            "replaced"
        );
        assert_eq!(drivers.handles.lock().unwrap().len(), 4);
        // Once no routing holds them, the old queues close and their
        // drivers (the replaced and the removed sink's) end; the others run.
        drop(first);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let finished = || {
            let h = drivers.handles.lock().unwrap();
            h.iter().map(|h| h.is_finished()).collect::<Vec<_>>()
        };
        // Started: change, keep, remove, then the new change.
        while finished() != [true, false, true, false] {
            assert!(std::time::Instant::now() < deadline, "{:?}", finished());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(second);
    }

    #[test]
    fn a_sink_that_cannot_be_built_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let drivers = drivers(&rt, d);
        let first = drivers
            .routing(&config(d, &[("keep", "type = \"null\"")]))
            .unwrap();
        let bad = file_sink(&d.join("no-such-directory"), "x.ndjson");
        let err = drivers
            .routing(&config(d, &[("keep", "type = \"null\""), ("bad", &bad)]))
            .err()
            .expect("refused");
        assert!(
            matches!(&err, PipelineError::BuildSink { sink, source: ossnotify_sinks::BuildError::File { .. } } if sink == "bad"),
            "{err}"
        );
        let again = drivers
            .routing(&config(d, &[("keep", "type = \"null\"")]))
            .unwrap();
        assert!(first.sinks[0].tx.same_channel(&again.sinks[0].tx));
        assert_eq!(drivers.handles.lock().unwrap().len(), 1);
    }
}
