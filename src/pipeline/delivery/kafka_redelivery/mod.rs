//! Redelivery of the Kafka backlogs: every member joins the backlog group
//! (`{group_id}.backlog`), subscribed to the backlog topics of the sinks
//! in its config, so any member redelivers any sink's backlog, whoever
//! wrote it, and a member scaled away hands its partitions to the others.
//!
//! # Rounds
//!
//! Each assigned partition is read from a queue of its own (split off the
//! consumer's), in rounds of up to four of its sink's batches. A round is
//! delivered on the runtime (sharing the sink's `max_in_flight` with live
//! traffic) while the next one is read; a partition whose next round is
//! full is simply not read, and librdkafka stops fetching it once its
//! queue holds `queued.max.messages.kbytes`: no pause, and nothing fetched
//! is thrown away. (Pausing per round cost a fresh fetch each time, about
//! a second on a broker that answers a fetch only when its wait runs out:
//! 1,040 messages/s, against 96,766 this way.) The reader sleeps until a
//! round ends or a queue gets a message.
//!
//! When a round ends the group's offset is committed past its leading
//! messages that were delivered or dead-lettered, and no further: a
//! message the sink deferred stops the commit, what was read after it is
//! dropped, and the partition is paused and read again from it (a seek)
//! once the breaker lets a request through. So the commit never passes an
//! undelivered message, and a partition's messages are sent in order, one
//! round at a time. A partition held for an open breaker stops nothing
//! else: each partition is paused and resumed on its own.
//!
//! The reader knows which offset must come next; a message past it (a gap:
//! a partition's messages that came through the consumer's queue before
//! its own queue was split off, or were dropped from a full round) makes
//! it seek back to that offset, unless the partition no longer has it (its
//! low watermark is past it: the messages expired from the topic), which
//! is logged and read past.
//!
//! # Rebalances
//!
//! Each assignment of a partition has its own generation; a round of an
//! earlier generation (the partition was revoked while it was in flight)
//! commits nothing: its next owner reads it again from the group's last
//! commit. Eager and cooperative assignment both work this way, since a
//! round's commit is the only state a partition has.
//!
//! # Measurement
//!
//! Every few seconds the member measures each backlog (the group's
//! committed offsets against the topic's ends, and the age of the oldest
//! message) for the gauges, the bound (`max_mib`) and the warning about a
//! topic's finite retention.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use ossnotify_sinks::kafka_store::read;
use ossnotify_sinks::log_limit::LogLimit;
use ossnotify_sinks::DeadLetterStore;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};

mod holding;
mod reader;
mod round;

use super::kafka_backlog::Watching;
use super::redelivery::{CurrentSinks, Redelivered};
use crate::pipeline::supervisor::Supervisor;
use reader::Reader;
use round::Signal;

/// The backlog group's fetching. A partition's queue holds up to 16 MiB
/// read ahead (a member's memory for redelivery); a queue that was full is
/// fetched again 10 ms after it has room, not librdkafka's 1 s; and a fetch
/// waits at most 100 ms for data, since a backlog is read in bulk and a
/// broker that answers only when the wait runs out would otherwise set the
/// pace.
const FETCH: &[(&str, &str)] = &[
    ("queued.max.messages.kbytes", "16384"),
    ("max.partition.fetch.bytes", "8388608"),
    ("fetch.queue.backoff.ms", "10"),
    ("fetch.wait.max.ms", "100"),
];

/// The member's redelivery of the Kafka backlogs: a thread that reads the
/// backlog group's partitions, and one that measures the backlogs.
pub struct KafkaRedelivery {
    pub watching: Watching,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What the redelivery needs from the run.
pub struct Wiring {
    pub rt: tokio::runtime::Handle,
    pub current: CurrentSinks,
    pub store: Arc<DeadLetterStore>,
    pub supervisor: Arc<Supervisor>,
    pub redelivered: Redelivered,
}

impl KafkaRedelivery {
    /// Joins `group` on the cluster of `cc` (no topic yet: see `watching`).
    /// `settings`: the source group's timing and assignment properties.
    pub fn start(
        cc: &ClientConfig,
        group: &str,
        settings: &[(String, String)],
        wiring: Wiring,
    ) -> Result<KafkaRedelivery, rdkafka::error::KafkaError> {
        let watching: Watching = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut member = cc.clone();
        member
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        for (k, v) in FETCH {
            member.set(*k, *v);
        }
        for (k, v) in settings {
            member.set(k, v);
        }
        let mut consumer: BaseConsumer<Events> = member.create_with_context(Events::default())?;
        let measurer = read::consumer(cc, group)?;
        let (done_tx, done) = mpsc::channel();
        // Rebalances and messages wake the reader as a round's end does.
        let wake = done_tx.clone();
        consumer.set_nonempty_callback(move || {
            let _ = wake.send(Signal::Wake);
        });
        let consumer = Arc::new(consumer);
        let mut reader = Reader {
            consumer,
            watching: watching.clone(),
            subscribed: Vec::new(),
            parts: HashMap::new(),
            next_epoch: 0,
            done_tx,
            done,
            wiring,
            gone: LogLimit::default(),
            seek_failed: LogLimit::default(),
        };
        let mut threads = Vec::new();
        let s = stop.clone();
        let supervisor = reader.wiring.supervisor.clone();
        threads.push(
            std::thread::Builder::new()
                .name("ossnotify-backlog".into())
                .spawn(move || {
                    let _watch = supervisor.watch("backlog redelivery");
                    reader.run(&s)
                })
                .map_err(|e| rdkafka::error::KafkaError::ClientCreation(e.to_string()))?,
        );
        let (s, w, cc) = (stop.clone(), watching.clone(), cc.clone());
        threads.push(
            std::thread::Builder::new()
                .name("ossnotify-backlog-size".into())
                .spawn(move || super::kafka_backlog::measure(&measurer, &cc, &w, &s))
                .map_err(|e| rdkafka::error::KafkaError::ClientCreation(e.to_string()))?,
        );
        Ok(KafkaRedelivery {
            watching,
            stop,
            threads,
        })
    }

    /// Stops reading: rounds in flight get a moment to finish and commit;
    /// what they did not is read again by the group.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for KafkaRedelivery {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Rebalances, as the consumer's callbacks see them (handled after the
/// poll that ran them).
#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

enum Event {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for Events {}

impl ConsumerContext for Events {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.0
                .lock()
                .expect("not poisoned")
                .push(Event::Revoked(partitions(tpl)));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.0
                .lock()
                .expect("not poisoned")
                .push(Event::Assigned(partitions(tpl)));
        }
    }
}

/// A partition: its topic and number.
type Tp = (String, i32);
