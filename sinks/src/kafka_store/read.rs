//! Reads a store topic from a group's committed offsets (what the group has
//! not yet taken out) up to the end it has when the read starts, without
//! joining the group: what `dead-letter` and `backlog` show, and what the
//! daemon measures its backlog with.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::ADMIN_TIMEOUT;

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub partition: i32,
    pub offset: i64,
    /// The message's timestamp (when it was written), epoch ms.
    pub time_ms: i64,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Stored {
    /// The value of header `name` (the last one, if repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|h| h.0 == name)
            .map(|h| h.1.as_str())
    }
}

/// Per partition: where the group stands (its committed offset, or the
/// partition's start when it has none) and the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watermarks {
    /// (partition, from, end)
    pub partitions: Vec<(i32, i64, i64)>,
}

impl Watermarks {
    /// Messages between each partition's `from` and its end.
    pub fn waiting(&self) -> u64 {
        self.partitions
            .iter()
            .map(|(_, from, end)| (end - from).max(0) as u64)
            .sum()
    }
}

/// A consumer that never joins a group: `group` only names whose committed
/// offsets are read (and, for the dead-letter store, moved).
pub fn consumer(cc: &ClientConfig, group: &str) -> Result<BaseConsumer, KafkaError> {
    let mut cc = cc.clone();
    cc.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // A store topic's messages are what matters, from wherever the
        // group stands (or the start).
        .set("auto.offset.reset", "earliest");
    cc.create()
}

/// Where `group` stands on every partition of `topic`, and the ends.
pub fn watermarks(c: &BaseConsumer, topic: &str) -> Result<Watermarks, KafkaError> {
    let md = c.fetch_metadata(Some(topic), ADMIN_TIMEOUT)?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(Watermarks::default());
    };
    if let Some(e) = t.error() {
        return Err(KafkaError::MetadataFetch(e.into()));
    }
    let mut tpl = TopicPartitionList::new();
    for p in t.partitions() {
        tpl.add_partition(topic, p.id());
    }
    let committed = c.committed_offsets(tpl, ADMIN_TIMEOUT)?;
    let mut out = Watermarks::default();
    for p in t.partitions() {
        let (low, high) = c.fetch_watermarks(topic, p.id(), ADMIN_TIMEOUT)?;
        let from = match committed.find_partition(topic, p.id()).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o.max(low),
            _ => low,
        };
        out.partitions.push((p.id(), from, high));
    }
    out.partitions.sort_unstable();
    Ok(out)
}

/// Assigns `c` every partition of `topic` that holds messages between
/// `marks`, each at its start; how many.
fn assign_waiting(c: &BaseConsumer, topic: &str, marks: &Watermarks) -> Result<usize, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for &(p, from, end) in &marks.partitions {
        if end > from {
            tpl.add_partition_offset(topic, p, Offset::Offset(from))?;
        }
    }
    let n = tpl.count();
    if n > 0 {
        c.assign(&tpl)?;
    }
    Ok(n)
}

/// Reads `topic` from where `group` stands to the ends taken now, calling
/// `visit` for each message in offset order per partition; returns the
/// watermarks it read between.
///
/// The ends are where reading stops at the earliest, not exact: a broker
/// may report the end of a partition as one past the first record of its
/// last batch (tansu does), so once every partition reached its end the
/// reader goes on while messages keep coming without a wait (the rest of a
/// batch arrives with its first record), and reports the ends it saw.
pub fn read_range(
    cc: &ClientConfig,
    topic: &str,
    group: &str,
    visit: impl FnMut(Stored),
) -> Result<Watermarks, KafkaError> {
    let c = consumer(cc, group)?;
    let marks = watermarks(&c, topic)?;
    let mut visit = visit;
    read_between(&c, topic, marks, None, |m| visit(stored(m)))
}

/// Reads `topic` between `marks` (each partition from its `from` to its
/// end) with `c`, which joins no group, as [`read_range`] does. With
/// `written_by` (epoch ms), a partition also ends at its first message
/// written after it, which is not visited: reading past a reported end
/// then stops at what was written since, even while a producer writes on.
/// `visit` sees each message in place (nothing copied unless it copies).
pub fn read_between(
    c: &BaseConsumer,
    topic: &str,
    mut marks: Watermarks,
    written_by: Option<i64>,
    mut visit: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<Watermarks, KafkaError> {
    let left = assign_waiting(c, topic, &marks)?;
    if left == 0 {
        return Ok(marks);
    }
    let mut ends: std::collections::HashMap<i32, i64> =
        marks.partitions.iter().map(|&(p, _, e)| (p, e)).collect();
    let mut done = std::collections::HashSet::new();
    let mut last_progress = Instant::now();
    loop {
        // Past the reported ends: only what is already here.
        let wait = if done.len() < left {
            Duration::from_millis(200)
        } else {
            Duration::from_millis(50)
        };
        match c.poll(wait) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                let later = |t: i64| m.timestamp().to_millis().is_some_and(|w| w > t);
                if written_by.is_some_and(later) {
                    if done.insert(m.partition()) {
                        let mut tpl = TopicPartitionList::new();
                        tpl.add_partition(topic, m.partition());
                        let _ = c.pause(&tpl);
                    }
                    continue;
                }
                let end = ends.entry(m.partition()).or_insert(0);
                if m.offset() >= *end {
                    *end = m.offset() + 1;
                }
                visit(&m);
                if m.offset() + 1 >= *end {
                    done.insert(m.partition());
                }
            }
            Some(Err(e)) => return Err(e),
            None if done.len() >= left => break,
            None if last_progress.elapsed() > ADMIN_TIMEOUT => {
                return Err(KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::RequestTimedOut,
                ));
            }
            None => {}
        }
    }
    for p in &mut marks.partitions {
        p.2 = p.2.max(ends.get(&p.0).copied().unwrap_or(0));
    }
    Ok(marks)
}

/// The write time of the oldest message between the watermarks (the first
/// of each partition that has any), epoch ms.
pub fn oldest_time(
    cc: &ClientConfig,
    topic: &str,
    marks: &Watermarks,
) -> Result<Option<i64>, KafkaError> {
    let c = consumer(cc, "ossnotify.measure")?;
    let left = assign_waiting(&c, topic, marks)?;
    if left == 0 {
        return Ok(None);
    }
    let mut oldest: Option<i64> = None;
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.len() < left && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            if seen.insert(m.partition()) {
                if let Some(t) = m.timestamp().to_millis() {
                    oldest = Some(oldest.map_or(t, |o| o.min(t)));
                }
            }
        }
    }
    Ok(oldest)
}

fn stored(m: &rdkafka::message::BorrowedMessage<'_>) -> Stored {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut headers = Vec::new();
    if let Some(h) = m.headers() {
        for i in 0..h.count() {
            let hd = h.get(i);
            headers.push((hd.key.to_owned(), hd.value.map(text).unwrap_or_default()));
        }
    }
    Stored {
        partition: m.partition(),
        offset: m.offset(),
        time_ms: m.timestamp().to_millis().unwrap_or(0),
        key: m.key().map(text),
        value: m.payload().unwrap_or_default().to_vec(),
        headers,
    }
}

/// Moves `group`'s committed offsets of `topic` to `offsets` (partition,
/// next offset to read) without joining the group.
pub fn commit(
    cc: &ClientConfig,
    topic: &str,
    group: &str,
    offsets: &[(i32, i64)],
) -> Result<(), KafkaError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let c = consumer(cc, group)?;
    let mut tpl = TopicPartitionList::new();
    for &(p, o) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
    }
    c.commit(&tpl, rdkafka::consumer::CommitMode::Sync)
}
