//! A partition's pause, seek and resume: held while its sink's breaker
//! takes no requests, read again from its first undelivered message after.

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::reader::Reader;
use super::round::Done;
use super::Tp;

impl Reader {
    pub(super) fn tpl(tp: &Tp) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&tp.0, tp.1);
        tpl
    }

    pub(super) fn pause(&self, tp: &Tp) {
        if let Err(e) = self.consumer.pause(&Self::tpl(tp)) {
            tracing::debug!(topic = %tp.0, partition = tp.1, error = %e, "backlog group: pause failed");
        }
    }

    /// Fetching starts again at `offset` (what was fetched is dropped).
    /// Whether it did: librdkafka refuses a seek while the partition's
    /// fetch is not started, and a refused seek must not be read past (the
    /// partition would wait for messages that never come again).
    pub(super) fn seek(&self, tp: &Tp, offset: i64) -> bool {
        match self
            .consumer
            .seek(&tp.0, tp.1, Offset::Offset(offset), Duration::from_secs(5))
        {
            Ok(()) => true,
            Err(e) => {
                if let Some(n) = self.seek_failed.admit(&format!("{}\u{0}{}", tp.0, tp.1)) {
                    tracing::warn!(topic = %tp.0, partition = tp.1, offset, error = %e, like_this_since_last_logged = n, "backlog group: seek failed; the partition is held and the seek tried again");
                }
                false
            }
        }
    }

    pub(super) fn resume(&self, tp: &Tp) {
        if let Err(e) = self.consumer.resume(&Self::tpl(tp)) {
            tracing::debug!(topic = %tp.0, partition = tp.1, error = %e, "backlog group: resume failed");
        }
    }

    /// Holds a partition until its sink takes requests: it is read again
    /// from `from`.
    pub(super) fn hold(&mut self, tp: &Tp, from: i64) {
        let part = self
            .parts
            .get_mut(tp)
            .expect("held partitions are assigned");
        part.held = true;
        part.resume_at = Some(from);
        part.batch.clear();
        if !part.paused {
            part.paused = true;
            self.pause(tp);
        }
    }

    /// A round ended: commit what it settled, then read on (or hold).
    pub(super) fn finish(&mut self, d: Done) {
        let Some(part) = self.parts.get_mut(&d.tp) else {
            return;
        };
        if part.epoch != d.epoch {
            return;
        }
        part.in_flight = false;
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(&d.tp.0, d.tp.1, Offset::Offset(d.commit_to))
            .is_ok()
        {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                // Read again by the group: duplicates, never a loss.
                tracing::debug!(topic = %d.tp.0, error = %e, "backlog group: commit failed");
            }
        }
        if d.deferred {
            self.hold(&d.tp, d.commit_to);
        } else if part.paused {
            // Its next round was full; reading goes on where it stopped
            // (a gap after the pause makes it seek back, see `accept`).
            part.paused = false;
            self.resume(&d.tp);
        }
    }

    /// Reads held partitions again once their sink takes requests.
    pub(super) fn release(&mut self) {
        let held: Vec<Tp> = self
            .parts
            .iter()
            .filter(|(_, p)| p.held)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in held {
            let Some(sink) = self.sink_of(&tp.0) else {
                continue;
            };
            let ready = sink
                .isolation()
                .is_none_or(|iso| iso.breaker.is_closed() || iso.breaker.until_probe().is_zero());
            if !ready {
                continue;
            }
            let from = self.parts.get(&tp).expect("listed above").resume_at;
            if from.is_some_and(|from| !self.seek(&tp, from)) {
                // Still held: the seek is tried again on the next turn.
                continue;
            }
            let part = self.parts.get_mut(&tp).expect("listed above");
            part.held = false;
            part.paused = false;
            part.read_to = part.resume_at.take();
            self.resume(&tp);
        }
    }
}
