//! The Kafka source against librdkafka's mock cluster (fast, in-process;
//! the whole-program tests run the real broker): a revocation while the
//! source holds a batch, generations, and pause and resume. A stand-in for
//! the offset tracker answers revocations and keeps the assignments.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::ClientConfig;
use rustc_hash::FxHashMap;

use super::reader::{coord, Reader, TopicIds};
use super::{set_paused, KafkaSource};
use crate::config::{SourceConfig, SourceType};
use crate::pipeline::batch::{Batch, Topics};
use crate::pipeline::offsets::Generation;
use crate::pipeline::revoked::Revoked;
use crate::pipeline::source::fetch_queue::FetchQueue;
use crate::pipeline::tracker::Progress;

const TOPIC: &str = "t";

fn cluster() -> MockCluster<'static, DefaultProducerContext> {
    let c = MockCluster::new(1).unwrap();
    c.create_topic(TOPIC, 2, 1).unwrap();
    c
}

/// `n` records to `partition`, numbered from `from`.
fn produce(brokers: &str, partition: i32, from: usize, n: usize) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for i in from..from + n {
        let payload = format!("r-{partition}-{i}");
        p.send(
            BaseRecord::<(), _>::to(TOPIC)
                .partition(partition)
                .payload(&payload),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
}

/// What the stand-in tracker saw assigned: (topic id, partition) → the
/// generations, in order.
type Assigned = Arc<Mutex<BTreeMap<(u32, i32), Vec<Generation>>>>;

struct Member {
    source: KafkaSource,
    given_up: Arc<Revoked>,
    assigned: Assigned,
}

fn member(brokers: &str, group: &str) -> Member {
    let (tx, rx) = crossbeam_channel::unbounded::<Progress>();
    let assigned = Assigned::default();
    let seen = assigned.clone();
    // Ends when the consumer (whose context holds the sender) is dropped.
    std::thread::spawn(move || {
        for p in rx {
            match p {
                Progress::Assigned(parts) => {
                    let mut a = seen.lock().unwrap();
                    for (t, p, g) in parts {
                        a.entry((t, p)).or_default().push(g);
                    }
                }
                Progress::Revoke { reply, .. } => {
                    let _ = reply.send(Vec::new());
                }
                _ => {}
            }
        }
    });
    let cfg = SourceConfig {
        kind: SourceType::Kafka,
        brokers: Some(brokers.to_owned()),
        topics: vec![TOPIC.to_owned()],
        group_id: Some(group.to_owned()),
        librdkafka: [
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        ..SourceConfig::default()
    };
    let given_up = Arc::new(Revoked::default());
    let source = KafkaSource::connect(
        &cfg,
        100,
        tx,
        Arc::new(AtomicBool::new(false)),
        Arc::new(Topics::default()),
        given_up.clone(),
    )
    .unwrap();
    Member {
        source,
        given_up,
        assigned,
    }
}

fn reader(source: &KafkaSource) -> Reader<'_> {
    Reader {
        consumer: &source.consumer,
        fetch: FetchQueue::new(&source.consumer, 1024),
        topics: TopicIds::default(),
        held: FxHashMap::default(),
        version: u64::MAX,
        dropped: 0,
    }
}

/// Reads into `batch` (taking at most `room` more each time) until `done`,
/// or `secs` pass: whether `done` came.
fn read_until(
    r: &mut Reader<'_>,
    batch: &mut Batch,
    room: usize,
    secs: u64,
    mut done: impl FnMut(&Reader<'_>, &Batch) -> bool,
) -> bool {
    let mut announced = 0;
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        r.read(batch, &mut announced, room, Duration::from_millis(50));
        if done(r, batch) {
            return true;
        }
    }
    false
}

/// A plain consumer joining `group` (cooperative-sticky), polled on a
/// thread until the flag is set; then it leaves the group.
fn second_member(brokers: &str, group: &str) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let b: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap();
    b.subscribe(&[TOPIC]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let polling = std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            let _ = b.poll(Duration::from_millis(50));
        }
        b.unsubscribe();
        for _ in 0..20 {
            let _ = b.poll(Duration::from_millis(50));
        }
    });
    (stop, polling)
}

fn partitions_in(batch: &Batch) -> BTreeMap<i32, usize> {
    let mut by = BTreeMap::new();
    for c in batch.coords() {
        *by.entry(c.partition).or_default() += 1;
    }
    by
}

/// A second member joins while the first holds a batch of both partitions:
/// the records of the partition given up are dropped from the batch (its
/// next owner reads them), the kept partition's stay, and the revoked
/// generation is given up. When the second member leaves, the partition
/// comes back under a new generation, and its records are read again
/// under it.
#[test]
fn a_revocation_drops_the_held_records_of_the_partitions_given_up() {
    let c = cluster();
    let brokers = c.bootstrap_servers();
    produce(&brokers, 0, 0, 5);
    produce(&brokers, 1, 0, 5);
    let a = member(&brokers, "g-revoke");
    let mut r = reader(&a.source);
    let mut batch = Batch::default();
    assert!(
        read_until(&mut r, &mut batch, 1024, 60, |_, b| b.len() == 10),
        "read {:?}",
        partitions_in(&batch)
    );
    let first: BTreeMap<i32, Generation> = batch
        .coords()
        .iter()
        .map(|c| (c.partition, c.epoch))
        .collect();

    // The batch is held (never handed over) while a second member joins.
    let (stop, polling) = second_member(&brokers, "g-revoke");
    // No room: only the rebalance is served, nothing more is read.
    assert!(
        read_until(&mut r, &mut batch, 0, 60, |r, _| r.dropped > 0),
        "nothing was dropped; the batch holds {:?}",
        partitions_in(&batch)
    );
    let kept = partitions_in(&batch);
    assert_eq!(kept.len(), 1, "one partition each: {kept:?}");
    assert_eq!(r.dropped, 5);
    let (&kept_p, &n) = kept.iter().next().unwrap();
    assert_eq!(n, 5, "the kept partition's records stay");
    let gone_p = 1 - kept_p;
    let mut view = a.given_up.view();
    let gone = crate::pipeline::batch::Coord {
        topic: 0,
        partition: gone_p,
        epoch: first[&gone_p],
        offset: 0,
    };
    assert!(view.contains(&gone), "the revoked generation is given up");

    // The second member leaves: the partition comes back, newer.
    stop.store(true, Ordering::SeqCst);
    polling.join().unwrap();
    let mut again = Batch::default();
    assert!(
        read_until(&mut r, &mut again, 1024, 60, |_, b| b
            .coords()
            .iter()
            .filter(|c| c.partition == gone_p)
            .count()
            == 5),
        "the partition given up was not read again: {:?}",
        partitions_in(&again)
    );
    let back = again
        .coords()
        .iter()
        .find(|c| c.partition == gone_p)
        .unwrap();
    assert!(back.epoch > first[&gone_p], "a new generation");
    let gens = a.assigned.lock().unwrap()[&(0, gone_p)].clone();
    assert_eq!(gens.len(), 2, "assigned twice: {gens:?}");
    assert_eq!(gens[1], back.epoch);
}

/// Offsets that go backwards within one assignment (a topic truncated or
/// made again) start a new generation; a partition not held is dropped.
#[test]
fn offsets_going_backwards_start_a_new_generation() {
    let c = cluster();
    let a = member(&c.bootstrap_servers(), "g-back");
    let consumer = &*a.source.consumer;
    let generation = consumer.context().new_generation();
    let mut held = FxHashMap::default();
    held.insert(
        (0, 0),
        super::reader::Partition {
            generation,
            next: i64::MIN,
        },
    );
    let mut dropped = 0;
    consumer.context().topics.id(TOPIC);
    let first = coord(consumer, &mut held, &mut dropped, 0, 0, 10).unwrap();
    let next = coord(consumer, &mut held, &mut dropped, 0, 0, 11).unwrap();
    assert_eq!((first.epoch, next.epoch), (generation, generation));
    let back = coord(consumer, &mut held, &mut dropped, 0, 0, 3).unwrap();
    assert!(back.epoch > generation, "a new generation: {}", back.epoch);
    assert_eq!(held[&(0, 0)].generation, back.epoch, "and it is kept");
    assert_eq!(back.offset, 3);
    assert!(coord(consumer, &mut held, &mut dropped, 0, 1, 0).is_none());
    assert_eq!(dropped, 1);
}

/// Paused before the group assigns anything: the assignment callback
/// pauses the new partitions too, so nothing is read until the source
/// resumes; then everything is.
#[test]
fn partitions_assigned_while_paused_stay_paused_until_resumed() {
    let c = cluster();
    let brokers = c.bootstrap_servers();
    produce(&brokers, 0, 0, 3);
    produce(&brokers, 1, 0, 3);
    let a = member(&brokers, "g-pause");
    let consumer = &*a.source.consumer;
    set_paused(consumer, true);
    let mut r = reader(&a.source);
    let mut batch = Batch::default();
    // Until both partitions are assigned (the stand-in tracker saw them),
    // and then two seconds more: nothing arrives.
    assert!(read_until(&mut r, &mut batch, 1024, 60, |_, _| a
        .assigned
        .lock()
        .unwrap()
        .len()
        == 2));
    let settled = Instant::now();
    read_until(&mut r, &mut batch, 1024, 2, |_, _| false);
    assert!(settled.elapsed() >= Duration::from_secs(2));
    assert_eq!(
        batch.len(),
        0,
        "read while paused: {:?}",
        partitions_in(&batch)
    );
    set_paused(consumer, false);
    assert!(
        read_until(&mut r, &mut batch, 1024, 30, |_, b| b.len() == 6),
        "after resuming: {:?}",
        partitions_in(&batch)
    );
    let payloads: Vec<String> = batch
        .iter()
        .map(|(_, p, _)| String::from_utf8_lossy(p).into_owned())
        .collect();
    assert!(payloads.contains(&"r-0-2".to_owned()) && payloads.contains(&"r-1-0".to_owned()));
}

/// librdkafka keeps a partition's pause across assignments. A partition
/// paused, then revoked (another member joins), then assigned again after
/// the source resumed (the member leaves) must be read, not left paused
/// for ever.
#[test]
fn a_partition_paused_revoked_and_assigned_again_is_read() {
    let c = cluster();
    let brokers = c.bootstrap_servers();
    produce(&brokers, 0, 0, 2);
    produce(&brokers, 1, 0, 2);
    let a = member(&brokers, "g-repause");
    let consumer = &*a.source.consumer;
    let mut r = reader(&a.source);
    let mut batch = Batch::default();
    assert!(read_until(&mut r, &mut batch, 1024, 60, |_, b| b.len() == 4));
    set_paused(consumer, true);
    let (stop, polling) = second_member(&brokers, "g-repause");
    // One partition is given up while paused; the source then resumes
    // what it still holds.
    let mut held = Batch::default();
    assert!(read_until(&mut r, &mut held, 0, 60, |_, _| consumer
        .assignment()
        .map_or(0, |l| l.count())
        == 1));
    set_paused(consumer, false);
    // The second member leaves: the partition comes back, and records
    // produced to it now are read.
    stop.store(true, Ordering::SeqCst);
    polling.join().unwrap();
    produce(&brokers, 0, 2, 3);
    produce(&brokers, 1, 2, 3);
    let mut after = Batch::default();
    assert!(
        read_until(&mut r, &mut after, 1024, 60, |_, b| {
            let by = partitions_in(b);
            by.get(&0).copied().unwrap_or(0) >= 3 && by.get(&1).copied().unwrap_or(0) >= 3
        }),
        "a partition stayed paused: {:?}",
        partitions_in(&after)
    );
}
