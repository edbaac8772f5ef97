//! What moves between the pipeline's threads: record coordinates (small and
//! `Copy`, so no reference count is touched per record on any thread) and
//! batches of payloads: lines copied into one buffer (one allocation per
//! batch, not per record), or librdkafka's own messages, not copied.

use std::sync::{Arc, RwLock};

use super::kept_message::KeptMessage;

/// Where a record came from: a Kafka topic/partition/offset, or a file
/// (partition -1) and line. The topic is an id in [`Topics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coord {
    pub topic: u32,
    pub partition: i32,
    /// Which assignment of the partition read it (see `OffsetTracker`).
    pub epoch: u64,
    pub offset: i64,
}

/// Topic names by id, shared by the source (which adds them) and everyone
/// who names a record (dead-letter entries, commits). Topics are few and
/// added rarely, so a lock is fine here; the hot path never takes it.
#[derive(Debug, Default)]
pub struct Topics(RwLock<Vec<Arc<str>>>);

impl Topics {
    /// The id of `name`, added if new.
    pub fn id(&self, name: &str) -> u32 {
        let found = |v: &Vec<Arc<str>>| v.iter().position(|t| &**t == name);
        if let Some(i) = found(&self.0.read().expect("not poisoned")) {
            return i as u32;
        }
        let mut v = self.0.write().expect("not poisoned");
        match found(&v) {
            Some(i) => i as u32,
            None => {
                v.push(Arc::from(name));
                (v.len() - 1) as u32
            }
        }
    }

    pub fn name(&self, id: u32) -> Arc<str> {
        self.0.read().expect("not poisoned")[id as usize].clone()
    }

    /// `topic/partition/offset`, or `file:line`.
    pub fn describe(&self, c: &Coord) -> String {
        let topic = self.name(c.topic);
        if c.partition < 0 {
            format!("{topic}:{}", c.offset)
        } else {
            format!("{topic}/{}/{}", c.partition, c.offset)
        }
    }
}

/// Records from the source to a worker: their coordinates and payloads.
#[derive(Default)]
pub struct Batch {
    coords: Vec<Coord>,
    /// Copied payloads, back to back.
    bytes: Vec<u8>,
    payloads: Vec<Payload>,
    /// When its first record was read: the start of the latency stages
    /// (`ossnotify_stage_seconds`), one clock read per batch.
    pub read_at: Option<std::time::Instant>,
}

/// Where a record's payload is.
enum Payload {
    /// `bytes[start..end]`.
    Copied(usize, usize),
    /// A record over the size limit: `bytes[start..end]` holds its start,
    /// the last field its whole length (it was never held whole).
    TooLarge(usize, usize, usize),
    /// In the fetched message itself, released when the batch is cleared.
    Kept(KeptMessage),
}

impl Batch {
    pub fn with_capacity(records: usize) -> Batch {
        Batch {
            coords: Vec::with_capacity(records),
            bytes: Vec::new(),
            payloads: Vec::with_capacity(records),
            read_at: None,
        }
    }

    fn stamp(&mut self) {
        if self.coords.is_empty() {
            self.read_at = Some(std::time::Instant::now());
        }
    }

    /// Adds a record with a copy of its payload.
    pub fn push(&mut self, coord: Coord, payload: &[u8]) {
        self.stamp();
        self.coords.push(coord);
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.payloads.push(Payload::Copied(start, self.bytes.len()));
    }

    /// Adds a record too large to process: its first bytes and its length.
    pub fn push_too_large(&mut self, coord: Coord, start: &[u8], len: usize) {
        self.stamp();
        self.coords.push(coord);
        let at = self.bytes.len();
        self.bytes.extend_from_slice(start);
        self.payloads
            .push(Payload::TooLarge(at, self.bytes.len(), len));
    }

    /// Adds a fetched record, keeping librdkafka's message instead of
    /// copying its payload (the source's largest per-record cost).
    pub fn push_kept(&mut self, coord: Coord, message: KeptMessage) {
        self.stamp();
        self.coords.push(coord);
        self.payloads.push(Payload::Kept(message));
    }

    /// A spare batch the workers gave back (emptied, its buffers kept), or
    /// a new one: batches go round without being allocated each time.
    pub fn reuse(spares: &crossbeam_channel::Receiver<Batch>, records: usize) -> Batch {
        spares
            .try_recv()
            .unwrap_or_else(|_| Batch::with_capacity(records))
    }

    /// Empties the batch, keeping its buffers (and releasing the messages
    /// it held).
    pub fn clear(&mut self) {
        self.coords.clear();
        self.bytes.clear();
        self.payloads.clear();
        self.read_at = None;
    }

    /// Keeps the records `keep` says yes to, in order, releasing the rest.
    /// `announced` counts the first records already announced to the
    /// tracker; it is adjusted to count those kept.
    pub fn retain(&mut self, announced: &mut usize, mut keep: impl FnMut(&Coord) -> bool) {
        let (mut kept, mut kept_announced) = (0, 0);
        for i in 0..self.coords.len() {
            if keep(&self.coords[i]) {
                if i < *announced {
                    kept_announced += 1;
                }
                self.coords.swap(kept, i);
                self.payloads.swap(kept, i);
                kept += 1;
            }
        }
        self.coords.truncate(kept);
        self.payloads.truncate(kept);
        *announced = kept_announced;
    }

    pub fn len(&self) -> usize {
        self.coords.len()
    }

    pub fn is_empty(&self) -> bool {
        self.coords.is_empty()
    }

    pub fn coords(&self) -> &[Coord] {
        &self.coords
    }

    /// Each record's coordinate and payload (for a record over the size
    /// limit: its first bytes, and `Some` of its whole length).
    pub fn iter(&self) -> impl Iterator<Item = (Coord, &[u8], Option<usize>)> {
        self.coords
            .iter()
            .zip(&self.payloads)
            .map(|(c, p)| match p {
                Payload::Copied(s, e) => (*c, &self.bytes[*s..*e], None),
                Payload::Kept(m) => (*c, m.payload(), None),
                Payload::TooLarge(s, e, len) => (*c, &self.bytes[*s..*e], Some(*len)),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_gives_back_each_payload_with_its_coordinate() {
        let topics = Topics::default();
        let (a, b) = (topics.id("logs"), topics.id("other"));
        assert_eq!((a, b, topics.id("logs")), (0, 1, 0));
        let mut batch = Batch::with_capacity(2);
        let c = |topic, offset| Coord {
            topic,
            partition: 2,
            epoch: 1,
            offset,
        };
        batch.push(c(a, 7), b"{\"x\":1}");
        batch.push(c(b, 3), b"");
        batch.push(c(a, 8), b"z");
        let got: Vec<(Coord, &[u8])> = batch.iter().map(|(c, p, _)| (c, p)).collect();
        assert_eq!(
            got,
            vec![
                (c(a, 7), &b"{\"x\":1}"[..]),
                (c(b, 3), &b""[..]),
                (c(a, 8), &b"z"[..])
            ]
        );
        assert_eq!(topics.describe(&c(b, 3)), "other/2/3");
        let file = Coord {
            partition: -1,
            ..c(a, 12)
        };
        assert_eq!(topics.describe(&file), "logs:12");

        // Dropping a partition's records keeps the rest in order, and
        // counts how many of the announced ones are left.
        let mut announced = 2;
        batch.retain(&mut announced, |c| c.topic != b);
        let got: Vec<(Coord, &[u8])> = batch.iter().map(|(c, p, _)| (c, p)).collect();
        assert_eq!(
            got,
            vec![(c(a, 7), &b"{\"x\":1}"[..]), (c(a, 8), &b"z"[..])]
        );
        assert_eq!(announced, 1);
    }
}
