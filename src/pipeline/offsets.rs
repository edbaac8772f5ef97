//! At-least-once offset bookkeeping (docs/guarantees.md): a partition's
//! offset N may be committed only when every message derived from records
//! below N has been accepted by its sink or written to the dead-letter
//! store.
//!
//! Records of a partition are *seen* in offset order (by the source), their
//! message counts *resolved* later by whichever worker processed them, and
//! their messages *acknowledged* in any order; each partition keeps a queue
//! of (offset, messages still pending), and the commit point advances over
//! the completed front of the queue.
//!
//! # Generations
//! Every assignment of a partition to this member has a *generation*,
//! handed out by the source. Events carry the generation of the record they
//! are about, and only events of a generation the tracker knows count:
//! late acknowledgements of a revoked assignment, or records the source read
//! before a revocation, can neither resurrect a partition nor move its
//! commit point. A partition kept through an incremental rebalance keeps its
//! generation, and so its state.
//!
//! # Totality
//! Nothing that timing can produce panics here: unknown generations, acks
//! past a record's count, duplicate resolves, offsets going backwards, huge
//! offset gaps. Each is an [`Anomaly`], counted by the caller; none can make
//! a message committable before it is acknowledged. Memory is per record
//! seen, never per offset, so a gap of 10^9 offsets costs nothing.

use std::collections::{HashMap, VecDeque};

/// Which assignment of a partition a record was read under.
pub type Generation = u64;

/// The count of a record seen but not yet processed.
const UNRESOLVED: u32 = u32::MAX;

/// Something that timing, a bug or the broker produced and that the
/// tracker refused to apply. Counted and logged at a limited rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anomaly {
    /// An event of a partition or generation this member does not hold
    /// (revoked, or read before a revocation).
    Stale,
    /// An assignment older than the one held.
    StaleAssign,
    /// A record at or below an offset already seen in the same generation:
    /// the partition's commit point is frozen for that generation.
    OffsetBackwards,
    /// A resolve or ack for an offset that was never seen (or is long done).
    UnknownOffset,
    /// A second resolve of the same record.
    DuplicateResolve,
    /// An ack for a record not resolved yet, or with no message left.
    ExtraAck,
}

impl Anomaly {
    pub const ALL: [Anomaly; 6] = [
        Anomaly::Stale,
        Anomaly::StaleAssign,
        Anomaly::OffsetBackwards,
        Anomaly::UnknownOffset,
        Anomaly::DuplicateResolve,
        Anomaly::ExtraAck,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Anomaly::Stale => "stale",
            Anomaly::StaleAssign => "stale_assign",
            Anomaly::OffsetBackwards => "offset_backwards",
            Anomaly::UnknownOffset => "unknown_offset",
            Anomaly::DuplicateResolve => "duplicate_resolve",
            Anomaly::ExtraAck => "extra_ack",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: i64,
    /// Messages still unacknowledged, or [`UNRESOLVED`].
    pending: u32,
    /// When it was seen, on [`clock_ms`] (fills the entry's padding).
    seen_ms: u32,
}

/// Milliseconds since the first call, wrapping after 49 days: ages are
/// differences (`wrapping_sub`), right for anything younger than that.
pub fn clock_ms() -> u32 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u32
}

/// The offsets of one assignment (generation) of one partition.
#[derive(Debug, Default, Clone)]
pub struct PartitionOffsets {
    /// Records seen and not yet finished, in offset order (the front may be
    /// finished only while a record before it is not).
    entries: VecDeque<Entry>,
    /// The lowest offset the next record may have.
    next: Option<i64>,
    /// The next offset to read: what Kafka expects to be committed.
    committed: Option<i64>,
    /// Offsets went backwards: never commit again in this generation.
    frozen: bool,
}

impl PartitionOffsets {
    /// The source read the record at `offset`; how many messages it yields
    /// is not known yet.
    pub fn see(&mut self, offset: i64) -> Result<(), Anomaly> {
        self.see_at(offset, clock_ms())
    }

    /// [`PartitionOffsets::see`] at time `now` (on [`clock_ms`]).
    pub fn see_at(&mut self, offset: i64, now: u32) -> Result<(), Anomaly> {
        if self.next.is_some_and(|n| offset < n) {
            self.frozen = true;
            return Err(Anomaly::OffsetBackwards);
        }
        self.entries.push_back(Entry {
            offset,
            pending: UNRESOLVED,
            seen_ms: now,
        });
        self.next = Some(offset + 1);
        Ok(())
    }

    /// The record at `offset` (already seen) yields `messages` messages.
    pub fn resolve(&mut self, offset: i64, messages: u32) -> Result<(), Anomaly> {
        let i = self.find(offset).ok_or(Anomaly::UnknownOffset)?;
        let e = &mut self.entries[i];
        if e.pending != UNRESOLVED {
            return Err(Anomaly::DuplicateResolve);
        }
        // A record cannot yield u32::MAX messages (the engine caps them far
        // lower); if one did, it stays unresolved rather than wrap.
        e.pending = messages.min(UNRESOLVED - 1);
        self.advance();
        Ok(())
    }

    /// One message of the record at `offset` is done (delivered or
    /// dead-lettered).
    pub fn ack(&mut self, offset: i64) -> Result<(), Anomaly> {
        let i = self.find(offset).ok_or(Anomaly::UnknownOffset)?;
        let e = &mut self.entries[i];
        if e.pending == UNRESOLVED || e.pending == 0 {
            return Err(Anomaly::ExtraAck);
        }
        e.pending -= 1;
        self.advance();
        Ok(())
    }

    /// The entry of `offset`: where it would be if offsets are dense (the
    /// usual case), else by binary search (gaps from compaction or
    /// transactions).
    fn find(&self, offset: i64) -> Option<usize> {
        let front = self.entries.front()?.offset;
        let guess = usize::try_from(offset.checked_sub(front)?).ok()?;
        if self.entries.get(guess).is_some_and(|e| e.offset == offset) {
            return Some(guess);
        }
        self.entries
            .binary_search_by_key(&offset, |e| e.offset)
            .ok()
    }

    fn advance(&mut self) {
        if self.frozen {
            return;
        }
        while let Some(e) = self.entries.front() {
            if e.pending != 0 {
                break;
            }
            self.committed = Some(e.offset + 1);
            self.entries.pop_front();
        }
    }

    /// The offset to commit (the next one to read), if any progress was made.
    pub fn committable(&self) -> Option<i64> {
        self.committed
    }

    /// No record of this generation is waiting for anything.
    pub fn is_idle(&self) -> bool {
        self.entries.iter().all(|e| e.pending == 0)
    }

    /// How long ago (ms, on [`clock_ms`] at `now`) the oldest unfinished
    /// record was seen.
    pub fn oldest_pending_ms(&self, now: u32) -> Option<u32> {
        self.entries
            .iter()
            .find(|e| e.pending != 0)
            .map(|e| now.wrapping_sub(e.seen_ms))
    }

    /// Messages still unacknowledged (an unresolved record counts as one).
    pub fn pending_messages(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| {
                if e.pending == UNRESOLVED {
                    1
                } else {
                    u64::from(e.pending)
                }
            })
            .sum()
    }
}

/// One partition: its current generation and the ones it replaced while
/// they still had records in flight (offsets went backwards: a truncated
/// log, a topic created again). While any of those is unfinished the
/// partition commits nothing, since its offsets mean something else now.
#[derive(Debug)]
struct Partition {
    generation: Generation,
    current: PartitionOffsets,
    retiring: Vec<(Generation, PartitionOffsets)>,
}

impl Partition {
    fn new(generation: Generation) -> Partition {
        Partition {
            generation,
            current: PartitionOffsets::default(),
            retiring: Vec::new(),
        }
    }

    fn get(&mut self, generation: Generation) -> Option<&mut PartitionOffsets> {
        if generation == self.generation {
            return Some(&mut self.current);
        }
        self.retiring
            .iter_mut()
            .find(|(g, _)| *g == generation)
            .map(|(_, p)| p)
    }

    /// Drops retired generations that are done, once the current one has
    /// seen a record (so every record of theirs was announced before).
    fn prune(&mut self) {
        if self.current.next.is_some() {
            self.retiring.retain(|(_, p)| !p.is_idle());
        }
    }

    fn committable(&self) -> Option<i64> {
        if self.retiring.is_empty() {
            self.current.committable()
        } else {
            None
        }
    }

    fn is_idle(&self) -> bool {
        self.current.is_idle() && self.retiring.iter().all(|(_, p)| p.is_idle())
    }

    fn oldest_pending_ms(&self, now: u32) -> Option<u32> {
        std::iter::once(&self.current)
            .chain(self.retiring.iter().map(|(_, p)| p))
            .filter_map(|p| p.oldest_pending_ms(now))
            .max()
    }

    fn pending_messages(&self) -> u64 {
        self.current.pending_messages()
            + self
                .retiring
                .iter()
                .map(|(_, p)| p.pending_messages())
                .sum::<u64>()
    }
}

/// The offsets of every assigned partition, by (topic, partition).
#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// By topic, then partition: looking a topic up by `&str` allocates
    /// nothing (this runs for every run of records, several times).
    partitions: HashMap<String, HashMap<i32, Partition>>,
}

impl OffsetTracker {
    /// The partition is (now) assigned to this member under `generation`.
    /// A newer generation of a partition still held replaces it; what the
    /// old one had in flight still has to finish before anything commits.
    pub fn assign(
        &mut self,
        topic: &str,
        partition: i32,
        generation: Generation,
    ) -> Result<(), Anomaly> {
        if !self.partitions.contains_key(topic) {
            self.partitions.insert(topic.to_owned(), HashMap::new());
        }
        let parts = self.partitions.get_mut(topic).expect("inserted above");
        let p = parts
            .entry(partition)
            .or_insert_with(|| Partition::new(generation));
        match p.generation.cmp(&generation) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Greater => Err(Anomaly::StaleAssign),
            std::cmp::Ordering::Less => {
                let old = std::mem::take(&mut p.current);
                p.retiring.push((p.generation, old));
                p.generation = generation;
                Ok(())
            }
        }
    }

    /// The state of `generation` of a held partition, if it is current or
    /// retiring.
    fn get(
        &mut self,
        topic: &str,
        partition: i32,
        generation: Generation,
    ) -> Option<&mut Partition> {
        let p = self.partitions.get_mut(topic)?.get_mut(&partition)?;
        p.get(generation)?;
        Some(p)
    }

    /// Records read, in offset order.
    pub fn see(
        &mut self,
        topic: &str,
        partition: i32,
        generation: Generation,
        offsets: impl IntoIterator<Item = i64>,
    ) -> Result<(), Anomaly> {
        let p = self
            .get(topic, partition, generation)
            .ok_or(Anomaly::Stale)?;
        let state = p.get(generation).expect("checked by get");
        let mut result = Ok(());
        let now = clock_ms();
        for o in offsets {
            if let Err(a) = state.see_at(o, now) {
                result = Err(a);
            }
        }
        p.prune();
        result
    }

    /// How many messages each record yields.
    pub fn resolve(
        &mut self,
        topic: &str,
        partition: i32,
        generation: Generation,
        counts: impl IntoIterator<Item = (i64, u32)>,
    ) -> Result<(), Anomaly> {
        self.apply(topic, partition, generation, counts, |s, (o, n)| {
            s.resolve(o, n)
        })
    }

    /// One message each, done.
    pub fn ack(
        &mut self,
        topic: &str,
        partition: i32,
        generation: Generation,
        offsets: impl IntoIterator<Item = i64>,
    ) -> Result<(), Anomaly> {
        self.apply(topic, partition, generation, offsets, |s, o| s.ack(o))
    }

    fn apply<T>(
        &mut self,
        topic: &str,
        partition: i32,
        generation: Generation,
        items: impl IntoIterator<Item = T>,
        mut f: impl FnMut(&mut PartitionOffsets, T) -> Result<(), Anomaly>,
    ) -> Result<(), Anomaly> {
        let p = self
            .get(topic, partition, generation)
            .ok_or(Anomaly::Stale)?;
        let state = p.get(generation).expect("checked by get");
        let mut result = Ok(());
        for item in items {
            if let Err(a) = f(state, item) {
                result = Err(a);
            }
        }
        if generation != p.generation {
            p.prune();
        }
        result
    }

    /// Forgets a revoked partition; returns what can still be committed for
    /// it (commit it before the revocation completes). Its late events are
    /// [`Anomaly::Stale`] from now on.
    pub fn revoke(&mut self, topic: &str, partition: i32) -> Option<i64> {
        self.partitions
            .get_mut(topic)?
            .remove(&partition)
            .and_then(|p| p.committable())
    }

    /// Nothing of the partition is in flight (or it is not held).
    pub fn is_idle(&self, topic: &str, partition: i32) -> bool {
        self.partitions
            .get(topic)
            .and_then(|t| t.get(&partition))
            .is_none_or(Partition::is_idle)
    }

    /// (topic, partition, offset) for every partition with progress.
    pub fn committable(&self) -> Vec<(String, i32, i64)> {
        let mut v: Vec<_> = self
            .partitions
            .iter()
            .flat_map(|(t, parts)| {
                parts
                    .iter()
                    .filter_map(move |(p, o)| o.committable().map(|c| (t.clone(), *p, c)))
            })
            .collect();
        v.sort();
        v
    }

    pub fn pending_messages(&self) -> u64 {
        self.partitions
            .values()
            .flat_map(|parts| parts.values())
            .map(Partition::pending_messages)
            .sum()
    }

    /// How long ago the oldest record not yet finished was seen (zero when
    /// nothing is pending): what keeps the commit from moving.
    pub fn oldest_pending(&self) -> std::time::Duration {
        let now = clock_ms();
        let ms = self
            .partitions
            .values()
            .flat_map(|parts| parts.values())
            .filter_map(|p| p.oldest_pending_ms(now))
            .max()
            .unwrap_or(0);
        std::time::Duration::from_millis(u64::from(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seen(p: &mut PartitionOffsets, offsets: &[i64]) {
        for o in offsets {
            p.see(*o).unwrap();
        }
    }

    #[test]
    fn the_oldest_pending_record_is_timed_from_when_it_was_seen() {
        let mut p = PartitionOffsets::default();
        assert_eq!(p.oldest_pending_ms(1000), None);
        p.see_at(10, 100).unwrap();
        p.see_at(11, 400).unwrap();
        assert_eq!(p.oldest_pending_ms(1000), Some(900));
        p.resolve(10, 0).unwrap();
        assert_eq!(p.oldest_pending_ms(1000), Some(600));
        p.resolve(11, 1).unwrap();
        p.ack(11).unwrap();
        assert_eq!(p.oldest_pending_ms(1000), None);
        // Across the clock's wrap.
        p.see_at(12, u32::MAX - 5).unwrap();
        assert_eq!(p.oldest_pending_ms(10), Some(16));
    }

    #[test]
    fn commits_only_past_fully_acknowledged_records() {
        let mut p = PartitionOffsets::default();
        assert_eq!(p.committable(), None);
        seen(&mut p, &[10, 11, 12]);
        p.resolve(10, 2).unwrap();
        p.resolve(11, 0).unwrap();
        p.resolve(12, 1).unwrap();
        assert_eq!(p.committable(), None);
        p.ack(12).unwrap();
        assert_eq!(p.committable(), None, "10 is still pending");
        p.ack(10).unwrap();
        assert_eq!(p.committable(), None);
        p.ack(10).unwrap();
        assert_eq!(
            p.committable(),
            Some(13),
            "10, 11 and 12 are done: read 13 next"
        );
        // A gap (compaction): nothing to wait for in it.
        p.see(20).unwrap();
        p.resolve(20, 0).unwrap();
        assert_eq!(p.committable(), Some(21));
        assert_eq!(p.pending_messages(), 0);
    }

    #[test]
    fn seen_records_block_the_commit_until_resolved() {
        let mut p = PartitionOffsets::default();
        seen(&mut p, &[0, 1, 2]);
        p.resolve(1, 0).unwrap();
        p.resolve(2, 1).unwrap();
        assert_eq!(p.committable(), None, "0 is not processed yet");
        assert_eq!(p.pending_messages(), 2);
        p.resolve(0, 0).unwrap();
        assert_eq!(p.committable(), Some(2));
        p.ack(2).unwrap();
        assert_eq!(p.committable(), Some(3));
    }

    #[test]
    fn what_timing_produces_is_refused_not_fatal() {
        let mut p = PartitionOffsets::default();
        seen(&mut p, &[5, 6]);
        assert_eq!(p.ack(5), Err(Anomaly::ExtraAck), "not resolved yet");
        assert_eq!(p.resolve(4, 1), Err(Anomaly::UnknownOffset));
        assert_eq!(p.resolve(99, 1), Err(Anomaly::UnknownOffset));
        p.resolve(5, 1).unwrap();
        assert_eq!(p.resolve(5, 0), Err(Anomaly::DuplicateResolve));
        p.ack(5).unwrap();
        assert_eq!(p.ack(5), Err(Anomaly::UnknownOffset), "5 is done and gone");
        assert_eq!(p.committable(), Some(6), "5 is done; 6 is unresolved");
        p.resolve(6, 1).unwrap();
        assert_eq!(p.committable(), Some(6), "6 is in flight");
        // Offsets going backwards freeze the commit point.
        assert_eq!(p.see(3), Err(Anomaly::OffsetBackwards));
        p.ack(6).unwrap();
        assert_eq!(p.committable(), Some(6), "frozen");
    }

    #[test]
    fn a_gap_of_a_billion_offsets_costs_one_entry() {
        let mut p = PartitionOffsets::default();
        p.see(1).unwrap();
        p.see(1_000_000_001).unwrap();
        assert_eq!(p.entries.len(), 2);
        p.resolve(1_000_000_001, 1).unwrap();
        p.resolve(1, 0).unwrap();
        assert_eq!(p.committable(), Some(2));
        p.ack(1_000_000_001).unwrap();
        assert_eq!(p.committable(), Some(1_000_000_002));
    }

    #[test]
    fn revoked_partitions_are_forgotten_and_not_resurrected() {
        let mut t = OffsetTracker::default();
        t.assign("oplog", 0, 1).unwrap();
        t.assign("oplog", 1, 2).unwrap();
        t.see("oplog", 0, 1, [5]).unwrap();
        t.resolve("oplog", 0, 1, [(5, 1)]).unwrap();
        t.see("oplog", 1, 2, [7]).unwrap();
        t.resolve("oplog", 1, 2, [(7, 0)]).unwrap();
        assert_eq!(t.committable(), vec![("oplog".into(), 1, 8)]);
        assert_eq!(t.revoke("oplog", 0), None);
        // Late events for the revoked partition: refused, nothing created.
        assert_eq!(t.ack("oplog", 0, 1, [5]), Err(Anomaly::Stale));
        assert_eq!(t.see("oplog", 0, 1, [9]), Err(Anomaly::Stale));
        assert_eq!(t.committable(), vec![("oplog".into(), 1, 8)]);
        assert_eq!(t.pending_messages(), 0);
    }

    #[test]
    fn a_kept_partition_keeps_its_state_through_another_assignment() {
        let mut t = OffsetTracker::default();
        t.assign("oplog", 0, 1).unwrap();
        t.see("oplog", 0, 1, [0, 1]).unwrap();
        t.resolve("oplog", 0, 1, [(0, 1), (1, 1)]).unwrap();
        // An incremental assignment of another partition changes nothing here.
        t.assign("oplog", 3, 2).unwrap();
        t.see("oplog", 0, 1, [2]).unwrap();
        t.resolve("oplog", 0, 1, [(2, 0)]).unwrap();
        t.ack("oplog", 0, 1, [1]).unwrap();
        assert_eq!(t.committable(), vec![], "0 is still in flight");
        t.ack("oplog", 0, 1, [0]).unwrap();
        assert_eq!(t.committable(), vec![("oplog".into(), 0, 3)]);
    }

    #[test]
    fn a_new_generation_waits_for_the_old_one_before_committing() {
        let mut t = OffsetTracker::default();
        t.assign("oplog", 0, 1).unwrap();
        t.see("oplog", 0, 1, [100]).unwrap();
        t.resolve("oplog", 0, 1, [(100, 1)]).unwrap();
        // Offsets went back (the topic was created again): generation 2.
        t.assign("oplog", 0, 2).unwrap();
        assert_eq!(t.assign("oplog", 0, 1), Err(Anomaly::StaleAssign));
        t.see("oplog", 0, 2, [0]).unwrap();
        t.resolve("oplog", 0, 2, [(0, 0)]).unwrap();
        assert_eq!(t.committable(), vec![], "100 of generation 1 is in flight");
        assert!(!t.is_idle("oplog", 0));
        t.ack("oplog", 0, 1, [100]).unwrap();
        assert_eq!(t.committable(), vec![("oplog".into(), 0, 1)]);
        assert!(t.is_idle("oplog", 0));
    }

    #[test]
    fn a_record_read_before_offsets_went_back_holds_the_commit() {
        let mut t = OffsetTracker::default();
        t.assign("oplog", 1, 1).unwrap();
        t.assign("oplog", 1, 2).unwrap();
        // The source read offset 7 under generation 1 before it saw the
        // offsets go back; the retiring generation takes it.
        t.see("oplog", 1, 1, [7]).unwrap();
        t.see("oplog", 1, 2, [0]).unwrap();
        t.resolve("oplog", 1, 2, [(0, 0)]).unwrap();
        assert_eq!(t.committable(), vec![], "7 of generation 1 is unresolved");
        t.resolve("oplog", 1, 1, [(7, 0)]).unwrap();
        assert_eq!(t.resolve("oplog", 1, 1, [(7, 0)]), Err(Anomaly::Stale));
        assert_eq!(t.committable(), vec![("oplog".into(), 1, 1)]);
    }

    /// One step of a random history: what the source, the workers and the
    /// sinks do, in any interleaving, plus events that only bugs or stale
    /// timing produce.
    #[derive(Debug, Clone)]
    enum Step {
        /// (Re)assign a partition: a revocation first if `revoke`.
        Assign { partition: i32, revoke: bool },
        /// The source reads `n` records of a partition, after `gap` offsets.
        Read { partition: i32, n: u8, gap: u8 },
        /// A worker resolves the oldest unresolved record it has.
        Resolve { pick: u8, messages: u8 },
        /// A sink acknowledges one message.
        Ack { pick: u8 },
        /// Junk: an event with an arbitrary generation and offset.
        Junk {
            kind: u8,
            partition: i32,
            generation: u8,
            offset: u16,
        },
        /// Offsets go backwards: the source moves to a new generation.
        Backwards { partition: i32 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..3i32, any::<bool>())
                .prop_map(|(partition, revoke)| Step::Assign { partition, revoke }),
            (0..3i32, 1..5u8, 0..3u8).prop_map(|(partition, n, gap)| Step::Read {
                partition,
                n,
                gap
            }),
            (any::<u8>(), 0..3u8).prop_map(|(pick, messages)| Step::Resolve { pick, messages }),
            any::<u8>().prop_map(|pick| Step::Ack { pick }),
            (0..4u8, 0..3i32, 0..8u8, 0..64u16).prop_map(
                |(kind, partition, generation, offset)| Step::Junk {
                    kind,
                    partition,
                    generation,
                    offset
                }
            ),
            (0..3i32).prop_map(|partition| Step::Backwards { partition }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Whatever the interleaving of assign, revoke, see, resolve and ack
        /// across generations, stale, duplicate and out-of-range events
        /// included: no panic, and no commit past a record with a message
        /// not yet acknowledged (or not yet resolved).
        #[test]
        fn never_commits_past_an_unacknowledged_message(steps in prop::collection::vec(step(), 1..300)) {
            let mut t = OffsetTracker::default();
            let mut generation: Generation = 0;
            // The model: per partition, its generation and next offset; per
            // record still unfinished (partition, generation, offset):
            // Some(messages left) or None (unresolved).
            let mut held: HashMap<i32, (Generation, i64)> = HashMap::new();
            let mut unresolved: Vec<(i32, Generation, i64)> = Vec::new();
            let mut unacked: Vec<(i32, Generation, i64)> = Vec::new();
            // Every record ever seen and not finished, by partition.
            let mut open: HashMap<i32, Vec<(Generation, i64)>> = HashMap::new();
            for s in steps {
                match s {
                    Step::Assign { partition, revoke } => {
                        if revoke {
                            let done = t.revoke("t", partition);
                            if let Some(c) = done {
                                for (_, o) in open.get(&partition).into_iter().flatten() {
                                    prop_assert!(c <= *o, "revoke committed {c} past open {o}");
                                }
                            }
                            held.remove(&partition);
                            open.remove(&partition);
                        }
                        generation += 1;
                        let next = held.get(&partition).map_or(0, |h| h.1);
                        t.assign("t", partition, generation).unwrap();
                        held.insert(partition, (generation, next));
                    }
                    Step::Backwards { partition } => {
                        if held.contains_key(&partition) {
                            generation += 1;
                            t.assign("t", partition, generation).unwrap();
                            held.insert(partition, (generation, 0));
                        }
                    }
                    Step::Read { partition, n, gap } => {
                        if let Some((g, next)) = held.get_mut(&partition) {
                            let start = *next + i64::from(gap);
                            let offsets: Vec<i64> = (start..start + i64::from(n)).collect();
                            t.see("t", partition, *g, offsets.iter().copied()).unwrap();
                            for o in &offsets {
                                unresolved.push((partition, *g, *o));
                                open.entry(partition).or_default().push((*g, *o));
                            }
                            *next = start + i64::from(n);
                        }
                    }
                    Step::Resolve { pick, messages } => {
                        if !unresolved.is_empty() {
                            let (p, g, o) = unresolved.remove(pick as usize % unresolved.len());
                            let live = held.get(&p).is_some_and(|_| open.get(&p).is_some_and(|v| v.contains(&(g, o))));
                            let r = t.resolve("t", p, g, [(o, u32::from(messages))]);
                            if live {
                                prop_assert!(r.is_ok(), "{r:?}");
                                for _ in 0..messages {
                                    unacked.push((p, g, o));
                                }
                                if messages == 0 {
                                    open.get_mut(&p).unwrap().retain(|x| *x != (g, o));
                                }
                            }
                        }
                    }
                    Step::Ack { pick } => {
                        if !unacked.is_empty() {
                            let (p, g, o) = unacked.remove(pick as usize % unacked.len());
                            let _ = t.ack("t", p, g, [o]);
                            if !unacked.contains(&(p, g, o)) {
                                if let Some(v) = open.get_mut(&p) {
                                    v.retain(|x| *x != (g, o));
                                }
                            }
                        }
                    }
                    Step::Junk { kind, partition, generation: g, offset } => {
                        let (g, o) = (Generation::from(g), i64::from(offset));
                        let current = held.get(&partition).map(|h| h.0);
                        let real = open.get(&partition).is_some_and(|v| v.contains(&(g, o)));
                        match kind {
                            // An ack no message is owed for (a late one of a
                            // revoked generation, or a duplicate).
                            0 if !real => {
                                let _ = t.ack("t", partition, g, [o]);
                            }
                            // A second resolve of a record, or one never seen.
                            1 if !unresolved.contains(&(partition, g, o)) => {
                                let r = t.resolve("t", partition, g, [(o, 0)]);
                                prop_assert!(r.is_err(), "a resolve of a record not awaiting one was applied");
                            }
                            // A record read under a generation that is not
                            // current (held back over a revocation).
                            // A retiring generation still takes it (the
                            // source read it before offsets went backwards),
                            // and then it is a record like any other: it
                            // awaits its resolve and holds the commit.
                            2 if current != Some(g) => {
                                let taken = t.see("t", partition, g, [o]).is_ok();
                                if taken {
                                    unresolved.push((partition, g, o));
                                    open.entry(partition).or_default().push((g, o));
                                }
                            }
                            // An assignment older than the one held.
                            3 if current.is_some_and(|c| g < c) => {
                                prop_assert_eq!(t.assign("t", partition, g), Err(Anomaly::StaleAssign));
                            }
                            _ => {}
                        }
                    }
                }
                // The invariant, after every step.
                for (topic, p, c) in t.committable() {
                    prop_assert_eq!(topic, "t");
                    let (g, _) = held[&p];
                    for (og, o) in open.get(&p).into_iter().flatten() {
                        // A record of the current generation at or past the
                        // commit point, or any record of an older one, may
                        // be open; nothing below the commit point of the
                        // current generation may be.
                        if *og == g {
                            prop_assert!(*o >= c, "committed {c} past open record {o} (generation {g})");
                        } else {
                            prop_assert!(false, "partition {p} commits {c} while generation {og} has record {o} open");
                        }
                    }
                }
            }
        }
    }
}
