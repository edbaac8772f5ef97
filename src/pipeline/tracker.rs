//! The offset tracker's thread: it receives [`Progress`] from the source,
//! the workers and the sink drivers on one channel, applies it to the
//! [`OffsetTracker`], and commits what is safe through the source's
//! [`Committer`] every `commit_interval_ms`, on revocation, and once more
//! (synchronously, checked) at the end.
//!
//! One channel keeps the order that matters: a partition's assignment
//! before its records, a record seen (by the source) before any worker can
//! resolve it, resolved before any of its messages is acknowledged.
//!
//! # Revocation
//! A revocation does not give the partitions up at once: the tracker keeps
//! applying progress until nothing of theirs is in flight, or until the
//! revocation's wait (`[pipeline] revoke_wait_ms`) is over, and only then
//! answers with what can be committed for them. So a rebalance re-delivers
//! only what could not finish in that time.
//!
//! # Failure
//! Once the supervisor has a failure, nothing more is committed: not
//! periodically, not on revocation, not at the end.

use rdkafka::error::KafkaError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::batch::{Coord, Topics};
use super::offsets::{Anomaly, Generation, OffsetTracker};
use super::supervisor::Supervisor;

/// (topic, partition, next offset to read).
pub type Position = (String, i32, i64);

/// What the tracker is told. Not to be confused with OSS events
/// ([`crate::event`]).
pub enum Progress {
    /// Partitions (topic id, partition) now held under a generation.
    Assigned(Vec<(u32, i32, Generation)>),
    /// Records read, in offset order per partition.
    Seen(Vec<Coord>),
    /// How many messages each record yields.
    Resolved(Vec<(Coord, u32)>),
    /// One message each, delivered or dead-lettered.
    Acked(Vec<Coord>),
    /// Partitions being revoked: give them up once idle or after `wait`,
    /// and reply with what can be committed for them.
    Revoke {
        partitions: Vec<(String, i32)>,
        wait: Duration,
        reply: Sender<Vec<Position>>,
    },
    /// Workers and sinks are done (or the drain deadline passed): commit a
    /// last time and stop. (The Kafka consumer's context holds a sender, so
    /// disconnection alone never comes.)
    Finish,
}

/// What commits offsets: the Kafka consumer. A file or stdin has none.
pub trait Committer: Send + Sync {
    /// Commits `offsets`; `sync` waits for the broker's answer.
    fn commit(&self, offsets: &[Position], sync: bool) -> Result<(), KafkaError>;
    /// Whether an asynchronous commit failed since the last call: then
    /// everything is committed again at the next interval.
    fn take_failed(&self) -> bool;
}

/// How often a lasting anomaly is logged again.
const ANOMALY_LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts of what the tracker refused, logged at a limited rate.
#[derive(Default)]
struct Anomalies {
    counts: [u64; Anomaly::ALL.len()],
    logged: [u64; Anomaly::ALL.len()],
    last_log: Option<Instant>,
}

impl Anomalies {
    fn count(&mut self, r: Result<(), Anomaly>, topic: &str, partition: i32) {
        let Err(a) = r else { return };
        let i = Anomaly::ALL.iter().position(|x| *x == a).expect("listed");
        self.counts[i] += 1;
        let due = self
            .last_log
            .is_none_or(|t| t.elapsed() >= ANOMALY_LOG_EVERY);
        if self.logged[i] == 0 || due {
            let new = self.counts[i] - self.logged[i];
            self.logged[i] = self.counts[i];
            self.last_log = Some(Instant::now());
            // Stale events are what rebalances produce; the rest are bugs
            // or broker surprises worth a warning.
            if a == Anomaly::Stale {
                tracing::debug!(
                    kind = a.label(),
                    topic,
                    partition,
                    new,
                    "offset tracker ignored events of a partition no longer held"
                );
            } else {
                tracing::warn!(
                    kind = a.label(),
                    topic,
                    partition,
                    new,
                    "offset tracker refused an event; nothing is committed past it"
                );
            }
        }
    }

    fn publish(&self) {
        for (a, n) in Anomaly::ALL.iter().zip(self.counts) {
            metrics::counter!(crate::metric_names::TRACKER_ANOMALIES, "kind" => a.label())
                .absolute(n);
        }
    }
}

struct PendingRevoke {
    partitions: Vec<(String, i32)>,
    until: Instant,
    reply: Sender<Vec<Position>>,
}

/// The tracker thread's state.
pub struct TrackerThread {
    pub progress: Receiver<Progress>,
    pub committer: Option<Arc<dyn Committer>>,
    pub topics: Arc<Topics>,
    pub supervisor: Arc<Supervisor>,
    pub interval: Duration,
}

impl TrackerThread {
    /// Applies progress until [`Progress::Finish`] (or every sender is
    /// gone), committing on the way; then commits a last time, synchronously.
    /// Returns the final positions, or why the last commit failed.
    pub fn run(self, mut publish: impl FnMut(&OffsetTracker)) -> Result<Vec<Position>, KafkaError> {
        let mut t = OffsetTracker::default();
        let mut anomalies = Anomalies::default();
        let mut revokes: Vec<PendingRevoke> = Vec::new();
        let mut committed: Vec<Position> = Vec::new();
        let mut last_commit = Instant::now();
        let mut names = TopicNames {
            names: Vec::new(),
            topics: self.topics.clone(),
        };
        loop {
            // While a revocation waits, look at it often.
            let wait = if revokes.is_empty() {
                self.interval
            } else {
                self.interval.min(Duration::from_millis(10))
            };
            match self.progress.recv_timeout(wait) {
                Ok(Progress::Revoke {
                    partitions,
                    wait,
                    reply,
                }) => revokes.push(PendingRevoke {
                    partitions,
                    until: Instant::now() + wait,
                    reply,
                }),
                Ok(Progress::Finish) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(other) => apply(&mut t, &mut anomalies, &mut names, other),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if !revokes.is_empty() {
                let now = Instant::now();
                revokes.retain(|r| {
                    let idle = r.partitions.iter().all(|(topic, p)| t.is_idle(topic, *p));
                    if !idle && now < r.until {
                        return true;
                    }
                    self.give_up(&mut t, r);
                    false
                });
            }
            if last_commit.elapsed() >= self.interval {
                // An asynchronous commit only logs its failure (retried next time).
                let _ = self.commit(&t, false, &mut committed);
                anomalies.publish();
                publish(&t);
                last_commit = Instant::now();
            }
        }
        for r in &revokes {
            self.give_up(&mut t, r);
        }
        // The last commit is synchronous even when an asynchronous one sent
        // the same offsets: that one may still be in flight as the consumer
        // closes, and a broker that has the final offsets means fewer
        // records read twice at the next start.
        committed.clear();
        let result = match self.commit(&t, true, &mut committed) {
            Err(e) if refused_by_rebalance(&e) => {
                tracing::warn!(error = %e, "the last offset commit was refused: the group is rebalancing, and these partitions are no longer this member's to commit; their next owner reads the uncommitted records again (duplicates, nothing lost)");
                Ok(Vec::new())
            }
            other => other.map(|()| t.committable()),
        };
        anomalies.publish();
        publish(&t);
        result
    }

    /// Forgets the revoked partitions and replies with what is done for
    /// them (nothing after a failure).
    fn give_up(&self, t: &mut OffsetTracker, r: &PendingRevoke) {
        let busy: Vec<_> = r
            .partitions
            .iter()
            .filter(|(topic, p)| !t.is_idle(topic, *p))
            .collect();
        if !busy.is_empty() {
            tracing::info!(partitions = ?busy, "revocation: records still in flight after the wait; the next owner reads them again");
        }
        let done: Vec<Position> = r
            .partitions
            .iter()
            .filter_map(|(topic, p)| t.revoke(topic, *p).map(|o| (topic.clone(), *p, o)))
            .collect();
        let _ = r.reply.send(if self.supervisor.failed() {
            Vec::new()
        } else {
            done
        });
    }

    /// Commits what is committable if it changed (or a commit failed since).
    fn commit(
        &self,
        t: &OffsetTracker,
        sync: bool,
        committed: &mut Vec<Position>,
    ) -> Result<(), KafkaError> {
        let Some(c) = &self.committer else {
            return Ok(());
        };
        if self.supervisor.failed() {
            return Ok(());
        }
        if c.take_failed() {
            committed.clear();
        }
        let now = t.committable();
        if now.is_empty() || now == *committed {
            return Ok(());
        }
        match c.commit(&now, sync) {
            Ok(()) => {
                tracing::debug!(offsets = ?now, sync, "committed");
                *committed = now;
                Ok(())
            }
            Err(e) if sync => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "offset commit failed; retrying at the next interval");
                Ok(())
            }
        }
    }
}

/// A commit the group coordinator refused because this member's generation
/// is over or a rebalance is under way: the group's churn (a member joined
/// or left as this one stopped), not a failure of this run. Whatever it
/// would have committed is read again by the partitions' next owner.
fn refused_by_rebalance(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::IllegalGeneration
                | C::RebalanceInProgress
                | C::UnknownMemberId
                | C::FencedInstanceId
        )
    )
}

fn same_partition(a: &Coord, b: &Coord) -> bool {
    (a.topic, a.partition, a.epoch) == (b.topic, b.partition, b.epoch)
}

/// Topic names by id, copied here once each (the lock is not taken per
/// record).
struct TopicNames {
    names: Vec<Arc<str>>,
    topics: Arc<Topics>,
}

impl TopicNames {
    fn get(&mut self, id: u32) -> Arc<str> {
        while self.names.len() <= id as usize {
            self.names.push(self.topics.name(self.names.len() as u32));
        }
        self.names[id as usize].clone()
    }
}

/// Applies what the source, the workers and the sinks reported: one
/// partition lookup per run of records of one partition.
fn apply(t: &mut OffsetTracker, anomalies: &mut Anomalies, names: &mut TopicNames, p: Progress) {
    match p {
        Progress::Assigned(v) => {
            for (topic, partition, generation) in v {
                let topic = names.get(topic);
                let r = t.assign(&topic, partition, generation);
                anomalies.count(r, &topic, partition);
            }
        }
        Progress::Seen(v) => {
            for run in v.chunk_by(same_partition) {
                let (topic, c) = (names.get(run[0].topic), run[0]);
                let r = t.see(&topic, c.partition, c.epoch, run.iter().map(|c| c.offset));
                anomalies.count(r, &topic, c.partition);
            }
        }
        Progress::Resolved(v) => {
            for run in v.chunk_by(|a, b| same_partition(&a.0, &b.0)) {
                let (topic, c) = (names.get(run[0].0.topic), run[0].0);
                let r = t.resolve(
                    &topic,
                    c.partition,
                    c.epoch,
                    run.iter().map(|(c, n)| (c.offset, *n)),
                );
                anomalies.count(r, &topic, c.partition);
            }
        }
        Progress::Acked(v) => {
            for run in v.chunk_by(same_partition) {
                let (topic, c) = (names.get(run[0].topic), run[0]);
                let r = t.ack(&topic, c.partition, c.epoch, run.iter().map(|c| c.offset));
                anomalies.count(r, &topic, c.partition);
            }
        }
        // Handled by the loop.
        Progress::Revoke { .. } | Progress::Finish => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;

    /// Records every commit.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(Vec<Position>, bool)>>);

    impl Committer for Recorder {
        fn commit(&self, offsets: &[Position], sync: bool) -> Result<(), KafkaError> {
            self.0.lock().unwrap().push((offsets.to_vec(), sync));
            Ok(())
        }
        fn take_failed(&self) -> bool {
            false
        }
    }

    /// Takes asynchronous commits, refuses synchronous ones with `code`.
    struct Refusing(rdkafka::types::RDKafkaErrorCode);

    impl Committer for Refusing {
        fn commit(&self, _: &[Position], sync: bool) -> Result<(), KafkaError> {
            if sync {
                Err(KafkaError::ConsumerCommit(self.0))
            } else {
                Ok(())
            }
        }
        fn take_failed(&self) -> bool {
            false
        }
    }

    /// The last commit refused by the coordinator: as the group's churn
    /// (the run ends normally, nothing committed at the end) or as a
    /// failure of the run (the broker out of reach).
    #[test]
    fn a_last_commit_refused_by_a_rebalance_ends_the_run_normally() {
        use rdkafka::types::RDKafkaErrorCode as C;
        for (code, churn) in [
            (C::IllegalGeneration, true),
            (C::RebalanceInProgress, true),
            (C::UnknownMemberId, true),
            (C::AllBrokersDown, false),
            (C::RequestTimedOut, false),
        ] {
            let sup = Supervisor::new(Arc::new(AtomicBool::new(false)));
            let (tx, h) = start_with(sup, Arc::new(Refusing(code)));
            tx.send(Progress::Assigned(vec![(0, 0, 1)])).unwrap();
            tx.send(Progress::Seen(vec![coord(0, 1, 0)])).unwrap();
            tx.send(Progress::Resolved(vec![(coord(0, 1, 0), 0)]))
                .unwrap();
            tx.send(Progress::Finish).unwrap();
            let result = h.join().unwrap();
            if churn {
                assert_eq!(result.unwrap(), vec![], "{code:?}");
            } else {
                assert_eq!(result, Err(KafkaError::ConsumerCommit(code)));
            }
        }
    }

    fn coord(partition: i32, epoch: Generation, offset: i64) -> Coord {
        Coord {
            topic: 0,
            partition,
            epoch,
            offset,
        }
    }

    type Running = std::thread::JoinHandle<Result<Vec<Position>, KafkaError>>;

    fn start(supervisor: Arc<Supervisor>) -> (Sender<Progress>, Arc<Recorder>, Running) {
        let recorder = Arc::new(Recorder::default());
        let (tx, h) = start_with(supervisor, recorder.clone());
        (tx, recorder, h)
    }

    fn start_with(
        supervisor: Arc<Supervisor>,
        committer: Arc<dyn Committer>,
    ) -> (Sender<Progress>, Running) {
        let topics = Arc::new(Topics::default());
        topics.id("oplog");
        let (tx, rx) = crossbeam_channel::unbounded();
        let tracker = TrackerThread {
            progress: rx,
            committer: Some(committer),
            topics,
            supervisor,
            interval: Duration::from_millis(20),
        };
        (tx, std::thread::spawn(move || tracker.run(|_| {})))
    }

    #[test]
    fn a_revocation_waits_for_in_flight_messages_then_commits_them() {
        let sup = Supervisor::new(Arc::new(AtomicBool::new(false)));
        let (tx, _rec, h) = start(sup);
        tx.send(Progress::Assigned(vec![(0, 0, 1), (0, 1, 2)]))
            .unwrap();
        tx.send(Progress::Seen(vec![coord(0, 1, 0), coord(0, 1, 1)]))
            .unwrap();
        tx.send(Progress::Resolved(vec![
            (coord(0, 1, 0), 1),
            (coord(0, 1, 1), 1),
        ]))
        .unwrap();
        let (reply, answer) = crossbeam_channel::bounded(1);
        tx.send(Progress::Revoke {
            partitions: vec![("oplog".into(), 0)],
            wait: Duration::from_secs(10),
            reply,
        })
        .unwrap();
        // Nothing comes while messages are in flight…
        assert!(answer.recv_timeout(Duration::from_millis(100)).is_err());
        tx.send(Progress::Acked(vec![coord(0, 1, 1), coord(0, 1, 0)]))
            .unwrap();
        // …and the answer covers them once they are acknowledged.
        let done = answer.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(done, vec![("oplog".into(), 0, 2)]);
        // Late progress for the revoked partition changes nothing.
        tx.send(Progress::Seen(vec![coord(0, 1, 2)])).unwrap();
        tx.send(Progress::Finish).unwrap();
        assert_eq!(h.join().unwrap().unwrap(), vec![]);
    }

    #[test]
    fn a_revocation_gives_up_after_its_wait() {
        let sup = Supervisor::new(Arc::new(AtomicBool::new(false)));
        let (tx, _rec, h) = start(sup);
        tx.send(Progress::Assigned(vec![(0, 0, 1)])).unwrap();
        tx.send(Progress::Seen(vec![coord(0, 1, 0), coord(0, 1, 1)]))
            .unwrap();
        tx.send(Progress::Resolved(vec![
            (coord(0, 1, 0), 0),
            (coord(0, 1, 1), 1),
        ]))
        .unwrap();
        let (reply, answer) = crossbeam_channel::bounded(1);
        tx.send(Progress::Revoke {
            partitions: vec![("oplog".into(), 0)],
            wait: Duration::from_millis(50),
            reply,
        })
        .unwrap();
        let done = answer.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(done, vec![("oplog".into(), 0, 1)], "1 is still in flight");
        tx.send(Progress::Finish).unwrap();
        h.join().unwrap().unwrap();
    }

    #[test]
    fn nothing_is_committed_after_a_failure() {
        let sup = Supervisor::new(Arc::new(AtomicBool::new(false)));
        let (tx, rec, h) = start(sup.clone());
        tx.send(Progress::Assigned(vec![(0, 0, 1)])).unwrap();
        tx.send(Progress::Seen(vec![coord(0, 1, 0)])).unwrap();
        tx.send(Progress::Resolved(vec![(coord(0, 1, 0), 0)]))
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            rec.0.lock().unwrap().last().unwrap().0,
            vec![("oplog".into(), 0, 1)]
        );
        sup.fail("worker-0", "cannot write the dead-letter store");
        tx.send(Progress::Seen(vec![coord(0, 1, 1)])).unwrap();
        tx.send(Progress::Resolved(vec![(coord(0, 1, 1), 0)]))
            .unwrap();
        tx.send(Progress::Finish).unwrap();
        h.join().unwrap().unwrap();
        let commits = rec.0.lock().unwrap();
        assert!(
            commits
                .iter()
                .all(|(o, _)| *o == vec![("oplog".into(), 0, 1)]),
            "{commits:?}"
        );
    }

    /// The loop itself: periodic commits cover the finished prefix of each
    /// partition and never pass a record still in flight, however the
    /// acknowledgements interleave; the last commit, at `Finish`, waits for
    /// the broker.
    #[test]
    fn commits_only_the_finished_prefix_and_the_last_commit_is_synchronous() {
        let sup = Supervisor::new(Arc::new(AtomicBool::new(false)));
        let (tx, rec, h) = start(sup);
        let last = |rec: &Recorder| rec.0.lock().unwrap().last().cloned();
        let wait_for = |rec: &Recorder, want: i64| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while last(rec).is_none_or(|(o, _)| o != vec![("oplog".into(), 0, want)]) {
                assert!(std::time::Instant::now() < deadline, "{:?}", last(rec));
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        tx.send(Progress::Assigned(vec![(0, 0, 1)])).unwrap();
        tx.send(Progress::Seen((0..4).map(|o| coord(0, 1, o)).collect()))
            .unwrap();
        // Record 0: one message; 1: two; 2: none; 3: one.
        tx.send(Progress::Resolved(vec![
            (coord(0, 1, 0), 1),
            (coord(0, 1, 1), 2),
            (coord(0, 1, 2), 0),
            (coord(0, 1, 3), 1),
        ]))
        .unwrap();
        tx.send(Progress::Acked(vec![
            coord(0, 1, 3),
            coord(0, 1, 1),
            coord(0, 1, 0),
        ]))
        .unwrap();
        // 0 is done; 1 waits for its second message, so 2 and 3 wait too.
        wait_for(&rec, 1);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(last(&rec).unwrap().0, vec![("oplog".into(), 0, 1)]);
        tx.send(Progress::Acked(vec![coord(0, 1, 1)])).unwrap();
        wait_for(&rec, 4);
        assert!(rec.0.lock().unwrap().iter().all(|(_, sync)| !sync));
        tx.send(Progress::Finish).unwrap();
        h.join().unwrap().unwrap();
        let (offsets, sync) = last(&rec).unwrap();
        assert_eq!((offsets, sync), (vec![("oplog".into(), 0, 4)], true));
    }
}
