//! A sink's durable backlog (docs/guarantees.md, isolation): where its
//! messages wait while its circuit breaker is open, or after their retries
//! ran out on transient failures. A message is written here (synced to
//! disk, or acknowledged by the cluster) before it is acknowledged, so
//! offsets move on and the other sinks keep flowing; redelivery sends it
//! again once the sink answers.
//!
//! Two stores (`[backlog] store`): a Kafka topic per sink, redelivered by
//! any member of the group ([`super::kafka_backlog`], the default with a
//! Kafka source), or a directory per sink on this member's disk
//! ([`super::disk_backlog`]). The bound (`[sinks.NAME.backlog] max_mib`)
//! is checked before each write: a full backlog blocks the sink (and so,
//! through the bounded queues, the consumer) or dead-letters, as
//! `when_full` says.

use std::io;

use ossnotify_sinks::Envelope;

use super::disk_backlog::DiskBacklog;
use super::kafka_backlog::KafkaBacklog;
use crate::pipeline::error::PipelineError;

/// One sink's backlog, in either store.
pub enum Backlog {
    Disk(Box<DiskBacklog>),
    Kafka(KafkaBacklog),
}

impl Backlog {
    /// Whether the bound leaves room for more.
    pub fn has_room(&self) -> bool {
        match self {
            Backlog::Disk(b) => b.has_room(),
            Backlog::Kafka(b) => b.has_room(),
        }
    }

    /// Writes `envelopes` durably: when this returns Ok they survive a
    /// crash of this member (and, in Kafka, its disk) and may be
    /// acknowledged.
    ///
    /// `sources` says where each message's record came from; the Kafka
    /// store keeps it (for the dead letter of one that later fails for
    /// good), the disk store's format has no room for it.
    pub async fn push(&self, envelopes: &[&Envelope], sources: &[String]) -> io::Result<()> {
        match self {
            Backlog::Disk(b) => b.push(envelopes),
            Backlog::Kafka(b) => b.push(envelopes, sources).await,
        }
    }

    /// Messages waiting (in Kafka, as last measured plus what this member
    /// wrote since).
    pub fn len(&self) -> u64 {
        match self {
            Backlog::Disk(b) => b.len() as u64,
            Backlog::Kafka(b) => b.waiting(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The failure to `what` (write, read, trim) the backlog of `sink`.
    pub fn error(&self, what: &'static str, sink: &str, source: io::Error) -> PipelineError {
        PipelineError::Backlog {
            what,
            sink: sink.to_owned(),
            place: match self {
                Backlog::Disk(b) => format!("directory {}", b.dir().display()),
                Backlog::Kafka(b) => format!("topic {}", b.topic()),
            },
            cause: source,
        }
    }
}
