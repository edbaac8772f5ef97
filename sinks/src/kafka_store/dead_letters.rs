//! The dead-letter store as a Kafka topic (`[dead_letter] store = "kafka"`),
//! as Kafka Connect's dead-letter queue: the value is the message as it
//! would have been sent (or the invalid record), and its context is in
//! headers, readable with stock tools (`kcat -C -t TOPIC -f '%h %s\n'`):
//!
//! | header | value |
//! |---|---|
//! | `ossnotify.kind` | `delivery` or `invalid_record` |
//! | `ossnotify.sink`, `ossnotify.rule`, `ossnotify.key` | who gave up on which message (`bucket/key`) |
//! | `ossnotify.error.code`, `ossnotify.error.message` | the last error: its code (what precedes its first `:`) and its text |
//! | `ossnotify.attempts` | attempts made |
//! | `ossnotify.failure.first`, `ossnotify.failure.last` | epoch ms of the first failure (a backlogged message's write) and of the last |
//! | `ossnotify.source` | where the record came from (`topic/partition/offset …`, `file:line`), for an invalid record and a message given up on alike |
//! | `ossnotify.source.topic`, `.partition`, `.offset` | the same, split, for a Kafka source |
//!
//! Kafka cannot delete one message, so taking an entry out (`dead-letter
//! replay`, `purge`) appends a marker to the entry's partition (no value,
//! header `ossnotify.removes = OFFSET`), and moves the store's group
//! (`{group_id}.dead-letter`) past every leading entry that is taken out:
//! readers start there and skip what a marker names. Nothing is rewritten,
//! so a replay beside a running daemon can neither lose its appends nor
//! bring back what it took out. Retention is the topic's `retention.ms`.

use std::collections::HashSet;
use std::io;

use rdkafka::ClientConfig;

use super::{read, AckedProducer, Record};
use crate::dead_letter::{Contents, DeadLetter, DeadLetterKind, Unreadable};
use crate::store::EntryId;

pub const KIND: &str = "ossnotify.kind";
pub const SINK: &str = "ossnotify.sink";
pub const RULE: &str = "ossnotify.rule";
pub const KEY: &str = "ossnotify.key";
pub const ERROR_CODE: &str = "ossnotify.error.code";
pub const ERROR_MESSAGE: &str = "ossnotify.error.message";
pub const ATTEMPTS: &str = "ossnotify.attempts";
pub const FIRST_FAILURE: &str = "ossnotify.failure.first";
pub const LAST_FAILURE: &str = "ossnotify.failure.last";
pub const SOURCE: &str = "ossnotify.source";
pub const SOURCE_TOPIC: &str = "ossnotify.source.topic";
pub const SOURCE_PARTITION: &str = "ossnotify.source.partition";
pub const SOURCE_OFFSET: &str = "ossnotify.source.offset";
/// On a marker: the offset (in its own partition) of the entry it takes out.
pub const REMOVES: &str = "ossnotify.removes";

/// The dead-letter topic: written by the daemon, read and taken from by
/// `ossnotify dead-letter`.
pub struct KafkaDeadLetters {
    cc: ClientConfig,
    producer: AckedProducer,
    topic: String,
    group: String,
}

impl KafkaDeadLetters {
    /// The store in `topic` of the cluster `cc` reaches; `group` holds
    /// where its live entries start.
    pub fn new(cc: &ClientConfig, topic: &str, group: &str) -> io::Result<KafkaDeadLetters> {
        Ok(KafkaDeadLetters {
            producer: AckedProducer::new(cc).map_err(io::Error::other)?,
            cc: cc.clone(),
            topic: topic.to_owned(),
            group: group.to_owned(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes the entries; when this returns Ok the cluster has them.
    pub fn append(&self, entries: &[DeadLetter]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let records: Vec<Record> = entries.iter().map(|e| self.record(e)).collect();
        self.producer
            .write_blocking(&records)
            .map_err(|e| io::Error::other(format!("topic {}: {e}", self.topic)))
    }

    fn record(&self, e: &DeadLetter) -> Record {
        let code = e.error.split(':').next().unwrap_or_default().trim();
        let mut headers = vec![
            (KIND, e.kind.as_str().to_owned()),
            (SINK, e.sink.clone()),
            (RULE, e.rule_id.clone()),
            (KEY, e.key.clone()),
            (ERROR_CODE, code.to_owned()),
            (ERROR_MESSAGE, e.error.clone()),
            (ATTEMPTS, e.attempts.to_string()),
            (
                FIRST_FAILURE,
                e.first_failure_ms.unwrap_or(e.time_ms).to_string(),
            ),
            (LAST_FAILURE, e.time_ms.to_string()),
            (SOURCE, e.source.clone()),
        ];
        // `topic/partition/offset`, then maybe ` line N`.
        let coords = e.source.split(' ').next().unwrap_or_default();
        let mut parts = coords.rsplitn(3, '/');
        if let (Some(o), Some(p), Some(t)) = (parts.next(), parts.next(), parts.next()) {
            if o.parse::<i64>().is_ok() && p.parse::<i32>().is_ok() {
                headers.push((SOURCE_TOPIC, t.to_owned()));
                headers.push((SOURCE_PARTITION, p.to_owned()));
                headers.push((SOURCE_OFFSET, o.to_owned()));
            }
        }
        Record {
            topic: self.topic.clone(),
            partition: None,
            key: (!e.key.is_empty()).then(|| e.key.clone()),
            value: e.payload.as_bytes().to_vec(),
            headers,
        }
    }

    /// Every live entry, in order (by partition, then offset), with its id
    /// (`partition:offset`), and every message that is not a dead letter.
    pub fn read(&self) -> io::Result<Contents> {
        let (entries, _) = self.scan()?;
        Ok(entries)
    }

    /// The live entries, and per partition the offset of its first live
    /// entry (or its end): where the group may move.
    fn scan(&self) -> io::Result<(Contents, Vec<(i32, i64)>)> {
        let mut all = Vec::new();
        let mut removed = HashSet::new();
        let marks = read::read_range(&self.cc, &self.topic, &self.group, |s| {
            match s.header(REMOVES).and_then(|o| o.parse::<i64>().ok()) {
                Some(o) => {
                    removed.insert((s.partition, o));
                }
                None => all.push(s),
            }
        })
        .map_err(|e| io::Error::other(format!("topic {}: {e}", self.topic)))?;
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        let mut floor: Vec<(i32, i64)> = marks.partitions.iter().map(|p| (p.0, p.2)).collect();
        for s in all {
            if removed.contains(&(s.partition, s.offset)) {
                continue;
            }
            if let Some(f) = floor.iter_mut().find(|f| f.0 == s.partition) {
                f.1 = f.1.min(s.offset);
            }
            let id = EntryId {
                segment: s.partition as u64,
                offset: s.offset as u64,
            };
            match from_stored(&s) {
                Some(d) => good.push((id, d)),
                None => bad.push(Unreadable {
                    id,
                    bytes: s.value.len() as u64,
                    why: format!("no valid {KIND} header: not a dead letter"),
                }),
            }
        }
        Ok(((good, bad), floor))
    }

    /// Takes entries out for good: a marker for each, then the group moves
    /// past the entries taken out at the head of each partition.
    pub fn remove(&self, ids: &[EntryId]) -> io::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let markers: Vec<Record> = ids
            .iter()
            .map(|id| Record {
                topic: self.topic.clone(),
                partition: Some(id.segment as i32),
                key: None,
                value: Vec::new(),
                headers: vec![(REMOVES, id.offset.to_string())],
            })
            .collect();
        self.producer
            .write_blocking(&markers)
            .map_err(|e| io::Error::other(format!("topic {}: {e}", self.topic)))?;
        let (_, floor) = self.scan()?;
        read::commit(&self.cc, &self.topic, &self.group, &floor)
            .map_err(|e| io::Error::other(format!("group {}: {e}", self.group)))
    }
}

/// A dead letter from its message, if it is one.
pub fn from_stored(s: &read::Stored) -> Option<DeadLetter> {
    let kind: DeadLetterKind = s.header(KIND)?.parse().ok()?;
    let text = |h: &str| s.header(h).unwrap_or_default().to_owned();
    Some(DeadLetter {
        kind,
        sink: text(SINK),
        rule_id: text(RULE),
        key: text(KEY),
        payload: String::from_utf8_lossy(&s.value).into_owned(),
        attempts: s.header(ATTEMPTS).and_then(|a| a.parse().ok()).unwrap_or(0),
        error: text(ERROR_MESSAGE),
        source: text(SOURCE),
        time_ms: s
            .header(LAST_FAILURE)
            .and_then(|t| t.parse().ok())
            .unwrap_or(s.time_ms.max(0) as u64),
        first_failure_ms: s.header(FIRST_FAILURE).and_then(|t| t.parse().ok()),
    })
}
