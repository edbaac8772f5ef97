//! The window source: a range of offsets of each of some Kafka partitions
//! (a backfill's), read without joining a group and committed under a
//! group of its own, so that a stopped backfill resumes where it stopped.
//!
//! Each partition is assigned at its range's start and read up to (not
//! including) its end; records at or past the end are not read on. The
//! source ends once every partition reached its end: the run then drains
//! and commits, as a file run does. (A backfill keeps its window's ends
//! in a group of their own: see `crate::backfill`.)
//!
//! One process reads a window: two backfills of the same name would
//! commit over each other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::super::error::SourceError;
use super::{Handoff, Refused, Source, BATCH};
use crate::pipeline::batch::{Batch, Coord, Topics};
use crate::pipeline::supervisor::Supervisor;
use crate::pipeline::tracker::{Committer, Position, Progress};

/// One partition's range: `[from, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub topic: String,
    pub partition: i32,
    pub from: i64,
    pub end: i64,
}

/// What a window source reads.
pub struct KafkaWindow {
    /// The cluster (connection and fetch settings).
    pub client: ClientConfig,
    /// The group its progress is committed under (never joined).
    pub group: String,
    pub ranges: Vec<Range>,
    /// Records per second at most.
    pub max_rate: Option<f64>,
    /// Records read so far (for a progress bar).
    pub read: Arc<AtomicU64>,
}

pub struct WindowSource {
    consumer: Arc<BaseConsumer>,
    /// Partitions left, by (topic id, partition): their ends.
    left: HashMap<(u32, i32), i64>,
    ids: HashMap<String, u32>,
    max_rate: Option<f64>,
    read: Arc<AtomicU64>,
}

impl WindowSource {
    /// Assigns every partition with something to read at its start, and
    /// tells the tracker they are held.
    pub fn new(
        w: KafkaWindow,
        topics: &Topics,
        progress: &Sender<Progress>,
    ) -> Result<WindowSource, SourceError> {
        let mut cc = w.client.clone();
        cc.set("group.id", &w.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        let consumer: BaseConsumer = cc.create().map_err(SourceError::Consumer)?;
        let mut tpl = TopicPartitionList::new();
        let (mut left, mut ids, mut assigned) = (HashMap::new(), HashMap::new(), Vec::new());
        for r in &w.ranges {
            let id = *ids
                .entry(r.topic.clone())
                .or_insert_with(|| topics.id(&r.topic));
            if r.from < r.end {
                tpl.add_partition_offset(&r.topic, r.partition, Offset::Offset(r.from))
                    .map_err(SourceError::Consumer)?;
                left.insert((id, r.partition), r.end);
                assigned.push((id, r.partition, 1));
            }
        }
        let _ = progress.send(Progress::Assigned(assigned));
        if tpl.count() > 0 {
            consumer.assign(&tpl).map_err(SourceError::Consumer)?;
        }
        Ok(WindowSource {
            consumer: Arc::new(consumer),
            left,
            ids,
            max_rate: w.max_rate,
            read: w.read,
        })
    }

    /// Stops reading a partition: it reached its end.
    fn finish(&mut self, topic: &str, partition: i32) {
        let id = self.ids[topic];
        if self.left.remove(&(id, partition)).is_some() {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, partition);
            let _ = self.consumer.pause(&tpl);
        }
    }

    /// Partitions whose fetch position reached their end with no record
    /// there (the range ends in a gap: compaction, transaction markers).
    fn finish_passed(&mut self) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        for e in positions.elements() {
            if let (Offset::Offset(at), Some(&id)) = (e.offset(), self.ids.get(e.topic())) {
                if self
                    .left
                    .get(&(id, e.partition()))
                    .is_some_and(|end| at >= *end)
                {
                    let topic = e.topic().to_owned();
                    self.finish(&topic, e.partition());
                }
            }
        }
    }
}

/// Hands `batch` to the workers, waiting as long as they are full (a
/// window never pauses for them); false if stopped or they are gone.
fn hand_over(out: &Handoff, batch: Batch, supervisor: &Supervisor) -> Result<bool, SourceError> {
    let mut announced = 0;
    let mut batch = batch;
    loop {
        match out.offer(batch, &mut announced, Duration::from_secs(1)) {
            Ok(()) => return Ok(true),
            Err(Refused::Gone) => return Err(SourceError::WorkersGone),
            Err(Refused::Full(_)) if supervisor.stopping() => return Ok(false),
            Err(Refused::Full(b)) => batch = b,
        }
    }
}

impl Source for WindowSource {
    fn read(&mut self, out: &Handoff, supervisor: &Supervisor) -> Result<(), SourceError> {
        let start = Instant::now();
        let mut n = 0u64;
        let mut batch = out.fresh();
        while !self.left.is_empty() && !supervisor.stopping() {
            let wait = if batch.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            // The partition a record ended, once its borrow is over.
            let mut ended = None;
            let idle = match self.consumer.poll(wait) {
                Some(Ok(m)) => {
                    let id = self.ids.get(m.topic()).copied();
                    let end = id.and_then(|id| self.left.get(&(id, m.partition())).copied());
                    if let (Some(id), Some(end)) = (id, end) {
                        if m.offset() < end {
                            let coord = Coord {
                                topic: id,
                                partition: m.partition(),
                                epoch: 1,
                                offset: m.offset(),
                            };
                            batch.push(coord, m.payload().unwrap_or_default());
                            n += 1;
                            self.read.fetch_add(1, Ordering::Relaxed);
                        }
                        if m.offset() + 1 >= end {
                            ended = Some((m.topic().to_owned(), m.partition()));
                        }
                    }
                    false
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "backfill: Kafka consumer error");
                    true
                }
                None => true,
            };
            if let Some((topic, partition)) = ended {
                self.finish(&topic, partition);
            }
            if idle {
                self.finish_passed();
            }
            if batch.len() >= BATCH || (!batch.is_empty() && (idle || self.left.is_empty())) {
                let full = std::mem::replace(&mut batch, out.fresh());
                if !hand_over(out, full, supervisor)? {
                    return Ok(());
                }
            }
            if let Some(rate) = self.max_rate {
                let due = start + Duration::from_secs_f64(n as f64 / rate);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
        }
        if !batch.is_empty() && !supervisor.stopping() {
            hand_over(out, batch, supervisor)?;
        }
        Ok(())
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        Some(Arc::new(WindowCommitter {
            consumer: self.consumer.clone(),
        }))
    }
}

/// Commits a window's progress.
struct WindowCommitter {
    consumer: Arc<BaseConsumer>,
}

impl Committer for WindowCommitter {
    fn commit(&self, offsets: &[Position], _sync: bool) -> Result<(), rdkafka::error::KafkaError> {
        commit(&self.consumer, offsets)
    }

    fn take_failed(&self) -> bool {
        false
    }
}

/// Commits `offsets` for `consumer`'s group, synchronously: a window's
/// commits are few, and a failure is then known at once.
pub fn commit(
    consumer: &BaseConsumer,
    offsets: &[Position],
) -> Result<(), rdkafka::error::KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in offsets {
        tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
    }
    if tpl.count() == 0 {
        return Ok(());
    }
    consumer.commit(&tpl, CommitMode::Sync)
}
