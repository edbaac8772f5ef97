//! The reader: one thread that follows the backlog group's assignment, reads
//! each partition's next round, and starts and ends rounds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ossnotify_sinks::log_limit::LogLimit;
use rdkafka::consumer::{base_consumer::PartitionQueue, BaseConsumer, Consumer};
use rdkafka::message::Message;

use super::round::{Signal, Waiting};
use super::{Event, Events, Tp, Watching, Wiring};

/// One assigned partition.
pub(super) struct Part {
    pub(super) epoch: u64,
    /// The partition's own queue: read only while its next round has room,
    /// so librdkafka stops fetching it when that queue is full (its
    /// `queued.max.messages.kbytes`), with no pause and no fetch thrown
    /// away. `None` if it could not be split: its messages come through
    /// the consumer's queue.
    pub(super) queue: Option<PartitionQueue<Events>>,
    /// The offset the next message read must have, once known (the first
    /// message after the assignment tells).
    pub(super) read_to: Option<i64>,
    /// Where a held partition is read again from: its first undelivered
    /// message.
    pub(super) resume_at: Option<i64>,
    /// The next round, being read.
    pub(super) batch: Vec<(i64, Waiting)>,
    /// A round of this partition is being delivered.
    pub(super) in_flight: bool,
    pub(super) held: bool,
    pub(super) paused: bool,
}

pub(super) struct Reader {
    pub(super) consumer: Arc<BaseConsumer<Events>>,
    pub(super) watching: Watching,
    pub(super) subscribed: Vec<String>,
    pub(super) parts: HashMap<Tp, Part>,
    pub(super) next_epoch: u64,
    pub(super) done_tx: mpsc::Sender<Signal>,
    pub(super) done: mpsc::Receiver<Signal>,
    pub(super) wiring: Wiring,
    /// "The sink is gone" once per sink and interval.
    pub(super) gone: LogLimit,
    /// "A seek failed" once per partition and interval.
    pub(super) seek_failed: LogLimit,
}

impl Reader {
    pub(super) fn run(&mut self, stop: &AtomicBool) {
        let mut in_flight_at_stop = Instant::now();
        // Since when this member has had no backlog partition.
        let mut none_since = Instant::now();
        let idle_log = LogLimit::new(Duration::from_secs(60));
        let state_log = LogLimit::new(Duration::from_secs(5));
        loop {
            if stop.load(Ordering::SeqCst) {
                // A short grace for rounds in flight, then leave the group.
                if !self.parts.values().any(|p| p.in_flight)
                    || in_flight_at_stop.elapsed() > Duration::from_secs(5)
                {
                    break;
                }
                if let Ok(Signal::Done(d)) = self.done.recv_timeout(Duration::from_millis(50)) {
                    self.finish(d);
                }
                continue;
            }
            in_flight_at_stop = Instant::now();
            self.subscribe();
            self.poll_consumer();
            self.rebalanced();
            self.release();
            self.read_queues();
            self.launch();
            if !self.parts.is_empty() {
                none_since = Instant::now();
                if tracing::enabled!(tracing::Level::DEBUG) && state_log.admit("state").is_some() {
                    self.say_state();
                }
            } else {
                self.say_if_idle(none_since, &idle_log);
            }
            // Sleeps until a round ends or a queue gets something; the
            // consumer is polled at least this often for its callbacks,
            // and a held partition's breaker looked at.
            match self.done.recv_timeout(Duration::from_millis(100)) {
                Ok(Signal::Done(d)) => self.finish(d),
                Ok(Signal::Wake) | Err(_) => {}
            }
            while let Ok(sig) = self.done.try_recv() {
                if let Signal::Done(d) = sig {
                    self.finish(d);
                }
            }
        }
    }

    /// Serves the consumer's queue: rebalances, and the messages of a
    /// partition not (yet) split off to its own queue.
    pub(super) fn poll_consumer(&mut self) {
        for _ in 0..4096 {
            let got = self.consumer.poll(Duration::ZERO).map(|r| {
                r.map(|m| {
                    let tp = (m.topic().to_owned(), m.partition());
                    (tp, m.offset(), Waiting::of(&m))
                })
            });
            match got {
                Some(Ok((tp, offset, w))) => self.accept(tp, offset, w),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "backlog group: consumer error");
                    break;
                }
                None => break,
            }
        }
    }

    /// Fills each partition's next round from its own queue, as far as
    /// the round has room.
    pub(super) fn read_queues(&mut self) {
        let tps: Vec<Tp> = self
            .parts
            .iter()
            .filter(|(_, p)| p.queue.is_some() && !p.held)
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in tps {
            let cap = self.round_size(&tp.0);
            loop {
                let part = self.parts.get(&tp).expect("listed above");
                if part.held || part.batch.len() >= cap {
                    break;
                }
                let got = part.queue.as_ref().and_then(|q| {
                    q.poll(Duration::ZERO)
                        .map(|r| r.map(|m| (m.offset(), Waiting::of(&m))))
                });
                match got {
                    Some(Ok((offset, w))) => self.accept(tp.clone(), offset, w),
                    Some(Err(e)) => {
                        tracing::debug!(topic = %tp.0, partition = tp.1, error = %e, "backlog group: partition error");
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    /// Each partition's state, for a redelivery that seems stuck (debug).
    pub(super) fn say_state(&self) {
        let positions = self.consumer.position().ok();
        for (tp, p) in &self.parts {
            let position = positions
                .as_ref()
                .and_then(|l| l.find_partition(&tp.0, tp.1))
                .map(|e| format!("{:?}", e.offset()));
            let breaker = self.sink_of(&tp.0).and_then(|s| s.isolation()).map(|i| {
                format!(
                    "{:?}, probe in {:?}",
                    i.breaker.state(),
                    i.breaker.until_probe()
                )
            });
            tracing::debug!(
                topic = %tp.0,
                partition = tp.1,
                held = p.held,
                in_flight = p.in_flight,
                paused = p.paused,
                batch = p.batch.len(),
                read_to = ?p.read_to,
                resume_at = ?p.resume_at,
                position = ?position,
                breaker = ?breaker,
                "backlog partition"
            );
        }
    }

    /// A backlog that waits while this member has had no backlog partition
    /// for a minute is said, once a minute: the group may not have settled
    /// (another member may hold them, or the coordinator may be stuck).
    pub(super) fn say_if_idle(&self, none_since: Instant, log: &LogLimit) {
        if none_since.elapsed() < Duration::from_secs(60) {
            return;
        }
        let waiting: u64 = self
            .watching
            .lock()
            .expect("not poisoned")
            .values()
            .map(|w| w.size.waiting())
            .sum();
        if waiting > 0 && log.admit("idle").is_some() {
            tracing::warn!(
                waiting,
                subscribed = ?self.subscribed,
                seconds = none_since.elapsed().as_secs(),
                "the backlog group has given this member no partition while its backlogs hold messages; another member redelivers them, or the group has not settled"
            );
        }
    }

    /// Follows the watched topics (sinks added or removed on reload).
    pub(super) fn subscribe(&mut self) {
        let want: Vec<String> = self
            .watching
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect();
        if want == self.subscribed {
            return;
        }
        let topics: Vec<&str> = want.iter().map(String::as_str).collect();
        let r = if topics.is_empty() {
            self.consumer.unsubscribe();
            Ok(())
        } else {
            self.consumer.subscribe(&topics)
        };
        match r {
            Ok(()) => self.subscribed = want,
            Err(e) => tracing::warn!(error = %e, topics = ?want, "backlog group: cannot subscribe"),
        }
    }

    pub(super) fn rebalanced(&mut self) {
        let events = std::mem::take(&mut *self.consumer.context().0.lock().expect("not poisoned"));
        for e in events {
            match e {
                Event::Revoked(tps) => {
                    tracing::info!(partitions = ?tps, "backlog partitions given up");
                    for tp in tps {
                        self.parts.remove(&tp);
                    }
                }
                Event::Assigned(tps) => {
                    tracing::info!(partitions = ?tps, "backlog partitions assigned: this member redelivers them");
                    for tp in tps {
                        self.next_epoch += 1;
                        // librdkafka keeps a pause across assignments: a
                        // partition held, revoked and assigned again would
                        // never be fetched.
                        self.resume(&tp);
                        let queue = self.split(&tp);
                        self.parts.insert(
                            tp,
                            Part {
                                epoch: self.next_epoch,
                                queue,
                                read_to: None,
                                resume_at: None,
                                batch: Vec::new(),
                                in_flight: false,
                                held: false,
                                paused: false,
                            },
                        );
                    }
                }
            }
        }
    }

    /// The partition's own queue, waking the reader when it gets a message.
    pub(super) fn split(&self, tp: &Tp) -> Option<PartitionQueue<Events>> {
        let mut q = self.consumer.split_partition_queue(&tp.0, tp.1)?;
        let wake = self.done_tx.clone();
        q.set_nonempty_callback(move || {
            let _ = wake.send(Signal::Wake);
        });
        Some(q)
    }

    /// Takes a message into its partition's next round.
    pub(super) fn accept(&mut self, tp: Tp, offset: i64, envelope: Waiting) {
        if !self.parts.contains_key(&tp) {
            // Assigned in the poll that returned it: the partition's first
            // message must not be dropped, since it sets where reading
            // starts.
            self.rebalanced();
        }
        let cap = self.round_size(&tp.0);
        let Some(part) = self.parts.get_mut(&tp) else {
            return;
        };
        // Held: read again from its first undelivered message on release.
        // A full round drops a message only if it came through the
        // consumer's queue: it is read again after the pause (a gap).
        if part.held || part.batch.len() >= cap {
            return;
        }
        match part.read_to {
            // Read before a seek: it comes again.
            Some(n) if offset < n => return,
            Some(n) if offset > n => {
                let low = self
                    .consumer
                    .fetch_watermarks(&tp.0, tp.1, Duration::from_secs(5))
                    .map_or(0, |w| w.0);
                if low <= n {
                    if !self.seek(&tp, n) {
                        // Read again from the round being read, if any:
                        // holding drops it.
                        let from = self.parts[&tp].batch.first().map_or(n, |b| b.0);
                        self.hold(&tp, from);
                    }
                    return;
                }
                tracing::warn!(topic = %tp.0, partition = tp.1, from = n, to = offset, "backlog messages missing from the topic (expired by its retention): read past them");
            }
            _ => {}
        }
        let part = self.parts.get_mut(&tp).expect("found above");
        part.read_to = Some(offset + 1);
        part.batch.push((offset, envelope));
        // A partition with a queue of its own is left unread instead.
        if part.queue.is_none() && part.batch.len() >= cap && !part.paused {
            part.paused = true;
            self.pause(&tp);
        }
    }

    /// Messages per round for the sink of `topic`: four of its batches.
    pub(super) fn round_size(&self, topic: &str) -> usize {
        self.sink_of(topic)
            .map_or(64, |s| (s.max_batch() * 4).clamp(1, 4096))
    }

    pub(super) fn sink_name(&self, topic: &str) -> Option<String> {
        self.watching
            .lock()
            .expect("not poisoned")
            .get(topic)
            .map(|w| w.sink.clone())
    }

    pub(super) fn sink_of(&self, topic: &str) -> Option<Arc<dyn ossnotify_sinks::Sink>> {
        let name = self.sink_name(topic)?;
        self.wiring
            .current
            .lock()
            .expect("not poisoned")
            .get(&name)
            .cloned()
    }
}
