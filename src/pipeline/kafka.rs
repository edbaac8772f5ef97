//! The Kafka source: a consumer-group member that reads operation logs,
//! commits only what the offset tracker allows (at-least-once), pauses its
//! partitions while the workers are full (so a slow sink neither grows
//! memory nor costs the group membership), and on revocation commits what
//! is done for the revoked partitions before giving them up.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, SendTimeoutError, Sender};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};

use super::batch::{Batch, Coord, Topics};
use super::fetch_queue::{forward, FetchQueue, Fetched};
use super::run::{Event, SOURCE_BATCH as BATCH};
use crate::config::SourceConfig;

pub struct SourceContext {
    events: Sender<Event>,
    /// Bumped on every assignment (see `OffsetTracker`'s epochs).
    epoch: AtomicU64,
    /// `/ready`: partitions are assigned.
    ready: Arc<AtomicBool>,
    topics: Arc<Topics>,
    /// The source loop's [`FetchQueue`] while it runs (else null): newly
    /// assigned partitions are forwarded to it.
    fetch_queue: AtomicPtr<rdkafka::bindings::rd_kafka_queue_t>,
}

impl ClientContext for SourceContext {
    /// librdkafka's statistics (every `statistics.interval.ms`): the
    /// consumer lag per partition, as librdkafka computes it from the
    /// broker's high watermark and our position.
    fn stats(&self, stats: rdkafka::Statistics) {
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
    /// Where newly assigned partitions are forwarded: set and cleared by
    /// [`FetchQueue`], which clears it before the queue goes.
    pub(super) fn set_fetch_queue(&self, queue: *mut rdkafka::bindings::rd_kafka_queue_t) {
        self.fetch_queue.store(queue, Ordering::SeqCst);
    }
}

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

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let queue = self.fetch_queue.load(Ordering::SeqCst);
            if !queue.is_null() {
                // SAFETY: the client is live (we are in its callback) and so
                // is `queue`: `FetchQueue` clears the pointer before it
                // destroys the queue, on this same thread.
                unsafe { forward(consumer.client().native_ptr(), queue, tpl) };
            }
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

/// Fetch sizes for throughput (any can be overridden in
/// `[source.librdkafka]`): one fetch request is outstanding per broker, so
/// with librdkafka's 1 MiB per partition a busy broker's latency, not the
/// pipeline, would set the pace.
pub const FETCH_DEFAULTS: &[(&str, &str)] = &[
    ("max.partition.fetch.bytes", "8388608"),
    ("fetch.queue.backoff.ms", "10"),
];

/// Creates the consumer and subscribes: a new group starts from the earliest
/// offset unless `auto.offset.reset` says otherwise; offsets are committed
/// by us, never automatically.
pub fn connect(
    cfg: &SourceConfig,
    events: Sender<Event>,
    ready: Arc<AtomicBool>,
    topics: Arc<Topics>,
) -> Result<Arc<KafkaConsumer>, String> {
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
        events,
        epoch: AtomicU64::new(0),
        ready,
        topics,
        fetch_queue: AtomicPtr::new(std::ptr::null_mut()),
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
    spares: &Receiver<Batch>,
    events: &Sender<Event>,
) -> Result<(), String> {
    let mut reader = Reader {
        consumer,
        fetch: FetchQueue::new(consumer, BATCH),
        topics: TopicIds::default(),
    };
    let mut batch = Batch::reuse(spares, BATCH);
    while !stop.load(Ordering::SeqCst) {
        // Wait for records only with nothing in hand; hand the batch over
        // when full, or as soon as no more records are waiting.
        let wait = if batch.is_empty() {
            Duration::from_millis(100)
        } else {
            Duration::ZERO
        };
        let got = reader.read(&mut batch, BATCH, wait);
        if batch.len() >= BATCH || (got == 0 && !batch.is_empty()) {
            batch = send(stop, (batches, spares), events, batch, &mut reader)?;
        }
    }
    Ok(())
}

/// What the source loop reads with: the consumer (for rebalances, errors
/// and statistics) and the queue its partitions' records arrive on.
struct Reader<'c> {
    consumer: &'c KafkaConsumer,
    fetch: FetchQueue<'c>,
    topics: TopicIds,
}

impl Reader<'_> {
    /// Serves the consumer's own queue, then moves up to `room` records
    /// into `batch`, waiting up to `wait` for the first. Returns how many.
    fn read(&mut self, batch: &mut Batch, room: usize, wait: Duration) -> usize {
        let Reader {
            consumer,
            fetch,
            topics,
        } = self;
        let mut got = 0;
        // Rebalances run in here. A record can also arrive here if it was
        // fetched before its partition was forwarded to `fetch`.
        while let Some(r) = consumer.poll(Duration::ZERO) {
            match r {
                Ok(m) => {
                    push(consumer, &m, batch, topics);
                    got += 1;
                }
                Err(e) => tracing::warn!(error = %e, "Kafka consumer error"),
            }
        }
        // After the poll: an assignment there bumps the epoch.
        let epoch = consumer.context().epoch.load(Ordering::Relaxed);
        let wait = if got > 0 { Duration::ZERO } else { wait };
        got + fetch.read(room.saturating_sub(got), wait, |m: Fetched| {
            let coord = Coord {
                topic: topics.by_handle(consumer, m.topic_handle),
                partition: m.partition,
                epoch,
                offset: m.offset,
            };
            batch.push_held(coord, m.message);
        })
    }
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

fn push(
    consumer: &KafkaConsumer,
    m: &rdkafka::message::BorrowedMessage<'_>,
    batch: &mut Batch,
    topics: &mut TopicIds,
) {
    let coord = Coord {
        topic: topics.get(consumer, m.topic()),
        partition: m.partition(),
        epoch: consumer.context().epoch.load(Ordering::Relaxed),
        offset: m.offset(),
    };
    batch.push(coord, m.payload().unwrap_or_default());
}

/// Hands a batch to the workers. Workers are briefly full all the time at
/// full speed: wait for room up to a second (librdkafka heartbeats from its
/// own thread, and `max.poll.interval.ms` allows far longer). Longer than
/// that means a stalled sink: pause the assigned partitions and keep
/// polling (staying in the group, fetching nothing) until there is room.
fn send(
    stop: &AtomicBool,
    (batches, spares): (&Sender<Batch>, &Receiver<Batch>),
    events: &Sender<Event>,
    batch: Batch,
    reader: &mut Reader<'_>,
) -> Result<Batch, String> {
    let consumer = reader.consumer;
    // Every record is announced to the tracker once, before any worker can
    // see it: the ones not announced yet go right before each hand-over.
    let mut announced = 0;
    let mut announce = |batch: &Batch| {
        if announced < batch.len() {
            let _ = events.send(Event::Seen(batch.coords()[announced..].to_vec()));
            announced = batch.len();
        }
    };
    announce(&batch);
    let mut batch = match batches.send_timeout(batch, Duration::from_secs(1)) {
        Ok(()) => return Ok(Batch::reuse(spares, BATCH)),
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
        reader.read(&mut batch, BATCH, Duration::ZERO);
        announce(&batch);
        match batches.send_timeout(batch, Duration::from_millis(100)) {
            Ok(()) => break,
            Err(SendTimeoutError::Disconnected(_)) => return Err("the workers stopped".into()),
            Err(SendTimeoutError::Timeout(b)) => batch = b,
        }
        if stop.load(Ordering::SeqCst) {
            // Not handed over: never resolved, so never committed; read again
            // after a restart.
            return Ok(Batch::reuse(spares, BATCH));
        }
    }
    if let Some(p) = &paused {
        tracing::info!("resuming consumption");
        let _ = consumer.resume(p);
    }
    Ok(Batch::reuse(spares, BATCH))
}
