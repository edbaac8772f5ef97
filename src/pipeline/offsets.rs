//! At-least-once offset tracking (SPEC §6): a partition's offset N may be
//! committed only when every message derived from records ≤ N has been
//! accepted by its sink or written to the dead-letter store.
//!
//! Records of a partition are *seen* in offset order (by the source), their
//! message counts *resolved* later by whichever worker processed them, and
//! their messages *acknowledged* in any order; each partition keeps a queue
//! of (offset, messages still pending), and the commit point advances over
//! the completed front of the queue. Every step is O(1) amortized.

use std::collections::{HashMap, VecDeque};

/// The count of a record seen but not yet processed.
const UNRESOLVED: u32 = u32::MAX;

/// The offsets of one partition.
#[derive(Debug, Default, Clone)]
pub struct PartitionOffsets {
    /// Offset of `pending[0]`.
    base: i64,
    /// Messages still unacknowledged, per offset from `base` on (gaps in
    /// the offsets, e.g. from compaction or transactions, count as done).
    pending: VecDeque<u32>,
    /// The next offset to read: what Kafka expects to be committed.
    committed: Option<i64>,
    /// Offsets registered but not yet committable.
    in_flight_records: usize,
}

impl PartitionOffsets {
    /// The source read the record at `offset`; how many messages it yields
    /// is not known yet. Offsets must increase.
    pub fn see(&mut self, offset: i64) {
        self.register(offset, UNRESOLVED);
    }

    /// The record at `offset` (already seen) yields `messages` messages.
    pub fn resolve(&mut self, offset: i64, messages: u32) {
        let i = offset - self.base;
        assert!(
            i >= 0 && (i as usize) < self.pending.len() && self.pending[i as usize] == UNRESOLVED,
            "resolve for offset {offset} that was not seen, or was resolved already"
        );
        self.pending[i as usize] = messages;
        self.advance();
    }

    /// Records that the record at `offset` produced `messages` messages to
    /// deliver (0: nothing to wait for). Offsets must increase.
    pub fn register(&mut self, offset: i64, messages: u32) {
        if self.pending.is_empty() && self.in_flight_records == 0 {
            self.base = offset;
        }
        let next = self.base + self.pending.len() as i64;
        assert!(
            offset >= next,
            "offsets of a partition must increase: {offset} after {}",
            next - 1
        );
        // Offsets skipped by the broker have nothing to wait for.
        for _ in next..offset {
            self.pending.push_back(0);
        }
        self.pending.push_back(messages);
        self.in_flight_records += 1;
        self.advance();
    }

    /// One message of the record at `offset` is done (delivered or
    /// dead-lettered).
    pub fn ack(&mut self, offset: i64) {
        let i = offset - self.base;
        assert!(
            i >= 0
                && (i as usize) < self.pending.len()
                && self.pending[i as usize] > 0
                && self.pending[i as usize] != UNRESOLVED,
            "ack for offset {offset} that has no pending message"
        );
        self.pending[i as usize] -= 1;
        self.advance();
    }

    fn advance(&mut self) {
        while let Some(0) = self.pending.front() {
            self.pending.pop_front();
            self.base += 1;
            self.in_flight_records = self.in_flight_records.saturating_sub(1);
            self.committed = Some(self.base);
        }
    }

    /// The offset to commit (the next one to read), if any progress was made.
    pub fn committable(&self) -> Option<i64> {
        self.committed
    }

    /// Messages still unacknowledged (an unresolved record counts as one).
    pub fn pending_messages(&self) -> u64 {
        self.pending
            .iter()
            .map(|n| if *n == UNRESOLVED { 1 } else { *n as u64 })
            .sum()
    }
}

/// The offsets of every assigned partition, by (topic, partition). Each
/// assignment of a partition has an epoch: events of an earlier assignment
/// (acks still in flight when the partition was revoked and assigned again)
/// are ignored, since their records are read again anyway.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// By topic, then partition: looking a topic up by `&str` allocates
    /// nothing (this runs for every record, several times).
    partitions: HashMap<String, HashMap<i32, (u64, PartitionOffsets)>>,
}

impl OffsetTracker {
    /// The partition's state if `epoch` is its current assignment; with
    /// `create`, a partition not known yet or a newer epoch starts afresh.
    /// An older epoch is ignored.
    pub fn current(
        &mut self,
        topic: &str,
        partition: i32,
        epoch: u64,
        create: bool,
    ) -> Option<&mut PartitionOffsets> {
        if !self.partitions.contains_key(topic) {
            if !create {
                return None;
            }
            self.partitions.insert(topic.to_owned(), HashMap::new());
        }
        let parts = self.partitions.get_mut(topic)?;
        let slot = match parts.entry(partition) {
            std::collections::hash_map::Entry::Occupied(o) => {
                let slot = o.into_mut();
                if slot.0 > epoch || (slot.0 < epoch && !create) {
                    return None;
                }
                if slot.0 < epoch {
                    *slot = (epoch, PartitionOffsets::default());
                }
                slot
            }
            std::collections::hash_map::Entry::Vacant(_) if !create => return None,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert((epoch, PartitionOffsets::default()))
            }
        };
        Some(&mut slot.1)
    }

    pub fn see(&mut self, topic: &str, partition: i32, epoch: u64, offset: i64) {
        if let Some(p) = self.current(topic, partition, epoch, true) {
            p.see(offset);
        }
    }

    pub fn resolve(&mut self, topic: &str, partition: i32, epoch: u64, offset: i64, messages: u32) {
        if let Some(p) = self.current(topic, partition, epoch, false) {
            p.resolve(offset, messages);
        }
    }

    pub fn register(
        &mut self,
        topic: &str,
        partition: i32,
        epoch: u64,
        offset: i64,
        messages: u32,
    ) {
        if let Some(p) = self.current(topic, partition, epoch, true) {
            p.register(offset, messages);
        }
    }

    /// Acknowledges one message; a partition no longer assigned (or assigned
    /// again since) is ignored: its records are read again by its owner.
    pub fn ack(&mut self, topic: &str, partition: i32, epoch: u64, offset: i64) {
        if let Some(p) = self.current(topic, partition, epoch, false) {
            p.ack(offset);
        }
    }

    /// Forgets a revoked partition; returns what could still be committed
    /// for it (commit it before the revocation completes).
    pub fn revoke(&mut self, topic: &str, partition: i32) -> Option<i64> {
        self.partitions
            .get_mut(topic)?
            .remove(&partition)
            .and_then(|(_, p)| p.committable())
    }

    /// (topic, partition, offset) for every partition with progress.
    pub fn committable(&self) -> Vec<(String, i32, i64)> {
        let mut v: Vec<_> = self
            .partitions
            .iter()
            .flat_map(|(t, parts)| {
                parts
                    .iter()
                    .filter_map(move |(p, (_, o))| o.committable().map(|c| (t.clone(), *p, c)))
            })
            .collect();
        v.sort();
        v
    }

    pub fn pending_messages(&self) -> u64 {
        self.partitions
            .values()
            .flat_map(|parts| parts.values())
            .map(|(_, p)| p.pending_messages())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commits_only_past_fully_acknowledged_records() {
        let mut p = PartitionOffsets::default();
        assert_eq!(p.committable(), None);
        p.register(10, 2);
        p.register(11, 0);
        p.register(12, 1);
        assert_eq!(p.committable(), None);
        p.ack(12);
        assert_eq!(p.committable(), None, "10 is still pending");
        p.ack(10);
        assert_eq!(p.committable(), None);
        p.ack(10);
        assert_eq!(
            p.committable(),
            Some(13),
            "10, 11 and 12 are done: read 13 next"
        );
        p.register(20, 0); // a gap (compaction): nothing to wait for
        assert_eq!(p.committable(), Some(21));
        assert_eq!(p.pending_messages(), 0);
    }

    #[test]
    fn seen_records_block_the_commit_until_resolved() {
        let mut p = PartitionOffsets::default();
        p.see(0);
        p.see(1);
        p.see(2);
        p.resolve(1, 0);
        p.resolve(2, 1);
        assert_eq!(p.committable(), None, "0 is not processed yet");
        assert_eq!(p.pending_messages(), 2);
        p.resolve(0, 0);
        assert_eq!(p.committable(), Some(2));
        p.ack(2);
        assert_eq!(p.committable(), Some(3));
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut t = OffsetTracker::default();
        t.register("oplog", 0, 1, 5, 1);
        t.register("oplog", 1, 1, 7, 0);
        assert_eq!(t.committable(), vec![("oplog".into(), 1, 8)]);
        assert_eq!(t.revoke("oplog", 0), None);
        t.ack("oplog", 0, 1, 5); // late ack for a revoked partition: ignored
        assert_eq!(t.committable(), vec![("oplog".into(), 1, 8)]);
        assert_eq!(t.pending_messages(), 0);
    }

    #[test]
    fn acks_of_an_earlier_assignment_do_not_count() {
        let mut t = OffsetTracker::default();
        t.see("oplog", 0, 1, 5);
        t.resolve("oplog", 0, 1, 5, 1);
        t.revoke("oplog", 0);
        // Assigned again: offset 5 is read again, with one message pending.
        t.see("oplog", 0, 2, 5);
        t.resolve("oplog", 0, 2, 5, 1);
        t.ack("oplog", 0, 1, 5); // the first assignment's ack arrives late
        assert_eq!(t.committable(), vec![], "5 is still pending in epoch 2");
        t.ack("oplog", 0, 2, 5);
        assert_eq!(t.committable(), vec![("oplog".into(), 0, 6)]);
    }

    proptest! {
        /// Whatever the order of acknowledgements, the commit point never
        /// passes a record with an unacknowledged message, and reaches the
        /// end once everything is acknowledged.
        #[test]
        fn never_passes_an_unacknowledged_message(
            counts in prop::collection::vec(0u32..4, 1..60),
            gaps in prop::collection::vec(0i64..3, 1..60),
            seed in any::<u64>(),
        ) {
            let mut p = PartitionOffsets::default();
            let mut offset = 100i64;
            let mut acks = Vec::new();
            let mut pending = std::collections::BTreeMap::new();
            for (i, n) in counts.iter().enumerate() {
                offset += gaps[i % gaps.len()];
                p.register(offset, *n);
                pending.insert(offset, *n);
                acks.extend(std::iter::repeat_n(offset, *n as usize));
                offset += 1;
            }
            // A deterministic shuffle of the acks.
            let mut rng = crate::synth::Rng::new(seed);
            for i in (1..acks.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                acks.swap(i, j);
            }
            for a in acks {
                p.ack(a);
                *pending.get_mut(&a).unwrap() -= 1;
                if let Some(c) = p.committable() {
                    let first_unfinished = pending.iter().find(|(_, n)| **n > 0).map(|(o, _)| *o);
                    if let Some(u) = first_unfinished {
                        prop_assert!(c <= u, "committed {c} past unacknowledged offset {u}");
                    }
                }
            }
            prop_assert_eq!(p.committable(), Some(offset));
            prop_assert_eq!(p.pending_messages(), 0);
        }
    }
}
