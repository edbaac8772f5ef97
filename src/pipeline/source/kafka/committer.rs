//! Commits through the consumer, from the tracker's thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::pipeline::tracker::{Committer, Position};

use super::KafkaConsumer;

/// A list to commit: (topic, partition, next offset to read).
pub fn commit_list(done: &[Position]) -> Option<TopicPartitionList> {
    if done.is_empty() {
        return None;
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in done {
        tpl.add_partition_offset(t, *p, Offset::Offset(*o)).ok()?;
    }
    Some(tpl)
}

/// Commits through the consumer (from the tracker's thread).
pub(crate) struct KafkaCommitter(pub(crate) Arc<KafkaConsumer>);

impl Committer for KafkaCommitter {
    fn commit(&self, offsets: &[Position], sync: bool) -> Result<(), rdkafka::error::KafkaError> {
        let Some(list) = commit_list(offsets) else {
            return Ok(());
        };
        let mode = if sync {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        self.0.commit(&list, mode)
    }

    fn take_failed(&self) -> bool {
        self.0.context().commit_failed.swap(false, Ordering::SeqCst)
    }
}
