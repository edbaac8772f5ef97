//! The source loop's reading: a batch at a time from the fetch queue (or
//! the consumer's own, for a partition not yet forwarded), each record's
//! coordinate with its partition's generation.

use rustc_hash::FxHashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::Message;

use crate::pipeline::batch::{Batch, Coord};
use crate::pipeline::offsets::Generation;
use crate::pipeline::source::fetch_queue::{FetchQueue, Fetched};

use super::KafkaConsumer;

/// A held partition as the source loop sees it.
#[derive(Clone, Copy)]
pub(crate) struct Partition {
    pub(crate) generation: Generation,
    /// The lowest offset the next record may have.
    pub(crate) next: i64,
}

/// What the source loop reads with: the consumer (for rebalances, errors
/// and statistics) and the queue its partitions' records arrive on, with
/// its own copy of the partitions held (no lock per record).
pub(crate) struct Reader<'c> {
    pub(crate) consumer: &'c KafkaConsumer,
    pub(crate) fetch: FetchQueue<'c>,
    pub(crate) topics: TopicIds,
    pub(crate) held: FxHashMap<(u32, i32), Partition>,
    /// The context's `version` that `held` reflects.
    pub(crate) version: u64,
    /// Records of revoked partitions dropped.
    pub(crate) dropped: u64,
}

impl Reader<'_> {
    /// Serves the consumer's own queue (rebalances run in there), drops
    /// what `batch` holds of partitions revoked meanwhile, then moves up to
    /// `room` records into `batch`, waiting up to `wait` for the first.
    /// Returns how many records were added.
    pub(crate) fn read(
        &mut self,
        batch: &mut Batch,
        announced: &mut usize,
        room: usize,
        wait: Duration,
    ) -> usize {
        let mut got = 0;
        let mut changed = self.sync();
        // A record can arrive here if it was fetched before its partition
        // was forwarded to `fetch`.
        while let Some(r) = self.consumer.poll(Duration::ZERO) {
            changed |= self.sync();
            match r {
                Ok(m) => {
                    let topic = self.topics.get(self.consumer, m.topic());
                    let Reader {
                        consumer,
                        held,
                        dropped,
                        ..
                    } = self;
                    if let Some(c) =
                        coord(consumer, held, dropped, topic, m.partition(), m.offset())
                    {
                        batch.push(c, m.payload().unwrap_or_default());
                        got += 1;
                    }
                }
                Err(e) => self
                    .consumer
                    .context()
                    .warn_limited("Kafka consumer error", &e.to_string()),
            }
        }
        changed |= self.sync();
        if changed {
            let kept = self.drop_revoked(batch, announced);
            got = got.min(kept);
        }
        let wait = if got > 0 { Duration::ZERO } else { wait };
        let Reader {
            consumer,
            fetch,
            topics,
            held,
            dropped,
            ..
        } = self;
        fetch.read(room.saturating_sub(got), wait, |m: Fetched| {
            let topic = topics.by_handle(consumer, m.topic_handle);
            if let Some(c) = coord(consumer, held, dropped, topic, m.partition, m.offset) {
                batch.push_kept(c, m.message);
                got += 1;
            }
        });
        got
    }

    /// Drops from `batch` what it holds of partitions revoked since the
    /// last look (their next owner reads them); returns what is left.
    pub(crate) fn drop_revoked(&mut self, batch: &mut Batch, announced: &mut usize) -> usize {
        let revoked = std::mem::take(
            &mut self
                .consumer
                .context()
                .held
                .lock()
                .expect("not poisoned")
                .revoked,
        );
        if revoked.is_empty() {
            return batch.len();
        }
        let before = batch.len();
        batch.retain(announced, |c| {
            !revoked
                .iter()
                .any(|(t, p, g)| (*t, *p) == (c.topic, c.partition) && c.epoch <= *g)
        });
        let dropped = before - batch.len();
        if dropped > 0 {
            tracing::info!(
                records = dropped,
                "dropped held records of revoked partitions (their next owner reads them)"
            );
        }
        self.dropped += dropped as u64;
        batch.len()
    }

    /// Takes the context's partitions if they changed; true if they did.
    pub(crate) fn sync(&mut self) -> bool {
        let ctx = self.consumer.context();
        let version = ctx.version.load(Ordering::SeqCst);
        if version == self.version {
            return false;
        }
        let held = ctx.held.lock().expect("not poisoned");
        self.version = ctx.version.load(Ordering::SeqCst);
        let old = std::mem::take(&mut self.held);
        self.held = held
            .partitions
            .iter()
            .map(|(k, g)| {
                let next = old
                    .get(k)
                    .filter(|p| p.generation == *g)
                    .map_or(i64::MIN, |p| p.next);
                (
                    *k,
                    Partition {
                        generation: *g,
                        next,
                    },
                )
            })
            .collect();
        true
    }
}

/// The coordinate of a fetched record, or None if its partition is not
/// held (revoked: dropped, counted in `dropped`). Offsets going backwards
/// start a new generation.
pub(crate) fn coord(
    consumer: &KafkaConsumer,
    held: &mut FxHashMap<(u32, i32), Partition>,
    dropped: &mut u64,
    topic: u32,
    partition: i32,
    offset: i64,
) -> Option<Coord> {
    let Some(p) = held.get_mut(&(topic, partition)) else {
        *dropped += 1;
        return None;
    };
    if offset < p.next {
        let ctx = consumer.context();
        tracing::warn!(topic = %ctx.topics.name(topic), partition, offset, expected = p.next, "offsets went backwards: the partition starts a new generation");
        p.generation = ctx.regenerate(topic, partition);
    }
    p.next = offset + 1;
    Some(Coord {
        topic,
        partition,
        epoch: p.generation,
        offset,
    })
}

/// The source's own copy of topic ids: no lock, no allocation per message.
/// Topics are looked up by name (records from `poll`) or by librdkafka's
/// topic handle (records from the fetch queue).
#[derive(Default)]
pub(crate) struct TopicIds {
    pub(crate) by_name: Vec<(Box<str>, u32)>,
    pub(crate) by_handle: Vec<(usize, u32)>,
}

impl TopicIds {
    pub(crate) fn get(&mut self, consumer: &KafkaConsumer, name: &str) -> u32 {
        if let Some((_, id)) = self.by_name.iter().find(|(n, _)| &**n == name) {
            return *id;
        }
        let id = consumer.context().topics.id(name);
        self.by_name.push((name.into(), id));
        id
    }

    pub(crate) fn by_handle(&mut self, consumer: &KafkaConsumer, handle: usize) -> u32 {
        if let Some((_, id)) = self.by_handle.iter().find(|(h, _)| *h == handle) {
            return *id;
        }
        let id = self.get(consumer, &FetchQueue::topic_name(handle));
        self.by_handle.push((handle, id));
        id
    }
}
