//! The Kafka source: a consumer-group member that reads operation logs,
//! commits only what the offset tracker allows (at-least-once), pauses its
//! partitions while the workers are full (so a slow sink neither grows
//! memory nor costs the group membership), and on revocation commits what
//! is done for the revoked partitions before giving them up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, SendTimeoutError, Sender};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};

use super::run::{Batch, Coord, Event};
use crate::config::SourceConfig;

/// Records per batch from the source to the workers.
const BATCH: usize = 256;

pub struct SourceContext {
    events: Sender<Event>,
    /// Bumped on every assignment (see `OffsetTracker`'s epochs).
    epoch: AtomicU64,
    /// `/ready`: partitions are assigned.
    ready: Arc<AtomicBool>,
}

impl ClientContext for SourceContext {}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        // Give the partitions up in the tracker and commit what is done
        // for them now, while they are still ours.
        let parts: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let (tx, rx) = bounded(1);
        if self.events.send(Event::Revoke(parts, tx)).is_err() {
            return;
        }
        if let Ok(done) = rx.recv_timeout(Duration::from_secs(10)) {
            if let Some(list) = commit_list(&done) {
                if let Err(e) = consumer.commit(&list, CommitMode::Sync) {
                    tracing::warn!(error = %e, "commit on revocation failed; those records will be read again");
                }
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            self.ready.store(true, Ordering::SeqCst);
            tracing::info!(partitions = tpl.count(), "partitions assigned");
        }
    }
}

/// A list to commit: (topic, partition, next offset to read).
pub fn commit_list(done: &[(String, i32, i64)]) -> Option<TopicPartitionList> {
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

/// Creates the consumer and subscribes: a new group starts from the earliest
/// offset unless `auto.offset.reset` says otherwise; offsets are committed
/// by us, never automatically.
pub fn connect(
    cfg: &SourceConfig,
    events: Sender<Event>,
    ready: Arc<AtomicBool>,
) -> Result<Arc<KafkaConsumer>, String> {
    let mut cc = ClientConfig::new();
    cc.set(
        "bootstrap.servers",
        cfg.brokers.as_deref().unwrap_or_default(),
    )
    .set("group.id", cfg.group_id.as_deref().unwrap_or_default())
    .set("enable.auto.commit", "false")
    .set("auto.offset.reset", "earliest");
    for (k, v) in &cfg.librdkafka {
        cc.set(k, v);
    }
    let ctx = SourceContext {
        events,
        epoch: AtomicU64::new(0),
        ready,
    };
    let consumer: KafkaConsumer = cc
        .create_with_context(ctx)
        .map_err(|e| format!("cannot create the Kafka consumer: {e}"))?;
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))?;
    Ok(Arc::new(consumer))
}

/// Reads until `stop`; every record is announced to the tracker (`Seen`)
/// before a worker can see it.
pub fn consume(
    consumer: &KafkaConsumer,
    stop: &AtomicBool,
    batches: &Sender<Batch>,
    events: &Sender<Event>,
) -> Result<(), String> {
    let mut batch: Batch = Vec::with_capacity(BATCH);
    let mut topics: std::collections::HashMap<String, Arc<str>> = Default::default();
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if !batch.is_empty() {
                    batch = send(consumer, stop, batches, events, batch, &mut topics)?;
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "Kafka consumer error"),
            Some(Ok(m)) => {
                push(consumer, &m, &mut batch, &mut topics);
                if batch.len() >= BATCH {
                    batch = send(consumer, stop, batches, events, batch, &mut topics)?;
                }
            }
        }
    }
    Ok(())
}

fn push(
    consumer: &KafkaConsumer,
    m: &rdkafka::message::BorrowedMessage<'_>,
    batch: &mut Batch,
    topics: &mut std::collections::HashMap<String, Arc<str>>,
) {
    // Looked up by &str first: no allocation per message once interned.
    let topic = match topics.get(m.topic()) {
        Some(t) => t.clone(),
        None => {
            let t: Arc<str> = Arc::from(m.topic());
            topics.insert(m.topic().to_owned(), t.clone());
            t
        }
    };
    let coord = Coord {
        topic,
        partition: m.partition(),
        epoch: consumer.context().epoch.load(Ordering::SeqCst),
        offset: m.offset(),
    };
    batch.push((coord, m.payload().unwrap_or_default().to_vec()));
}

/// Hands a batch to the workers. Workers are briefly full all the time at
/// full speed: wait for room up to a second (librdkafka heartbeats from its
/// own thread, and `max.poll.interval.ms` allows far longer). Longer than
/// that means a stalled sink: pause the assigned partitions and keep
/// polling (staying in the group, fetching nothing) until there is room.
fn send(
    consumer: &KafkaConsumer,
    stop: &AtomicBool,
    batches: &Sender<Batch>,
    events: &Sender<Event>,
    batch: Batch,
    topics: &mut std::collections::HashMap<String, Arc<str>>,
) -> Result<Batch, String> {
    // Every record is announced to the tracker once, before any worker can
    // see it: the ones not announced yet go right before each hand-over.
    let mut announced = 0;
    let mut announce = |batch: &Batch| {
        if announced < batch.len() {
            let _ = events.send(Event::Seen(
                batch[announced..].iter().map(|(c, _)| c.clone()).collect(),
            ));
            announced = batch.len();
        }
    };
    announce(&batch);
    let mut batch = match batches.send_timeout(batch, Duration::from_secs(1)) {
        Ok(()) => return Ok(Vec::with_capacity(BATCH)),
        Err(SendTimeoutError::Disconnected(_)) => return Err("the workers stopped".into()),
        Err(SendTimeoutError::Timeout(b)) => b,
    };
    let paused = consumer.assignment().ok();
    if let Some(p) = &paused {
        tracing::info!(
            partitions = p.count(),
            "workers are full: pausing consumption"
        );
        let _ = consumer.pause(p);
    }
    loop {
        // Records fetched before the pause may still come: keep them.
        if let Some(Ok(m)) = consumer.poll(Duration::ZERO) {
            push(consumer, &m, &mut batch, topics);
        }
        announce(&batch);
        match batches.send_timeout(batch, Duration::from_millis(100)) {
            Ok(()) => break,
            Err(SendTimeoutError::Disconnected(_)) => return Err("the workers stopped".into()),
            Err(SendTimeoutError::Timeout(b)) => batch = b,
        }
        if stop.load(Ordering::SeqCst) {
            // Not handed over: never resolved, so never committed; read again
            // after a restart.
            return Ok(Vec::with_capacity(BATCH));
        }
    }
    if let Some(p) = &paused {
        tracing::info!("resuming consumption");
        let _ = consumer.resume(p);
    }
    Ok(Vec::with_capacity(BATCH))
}
