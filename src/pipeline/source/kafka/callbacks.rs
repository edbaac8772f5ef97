//! The consumer's context: the rebalance callbacks (which run on the
//! source thread, inside `poll`), statistics, errors and logs, and the
//! partitions held, shared with the source loop.

use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, TopicPartitionList};

use crate::pipeline::batch::Topics;
use crate::pipeline::offsets::Generation;
use crate::pipeline::revoked::Revoked;
use crate::pipeline::source::fetch_queue::forward;
use crate::pipeline::source::group_watch::GroupWatch;

use crate::pipeline::tracker::Progress;

use super::commit_list;

/// How long the revocation callback waits for the tracker beyond the
/// revocation's own wait (the tracker answers within milliseconds of it).
pub(crate) const REVOKE_ANSWER_SLACK: Duration = Duration::from_secs(5);

/// The partitions held, shared by the rebalance callbacks (which change
/// it) and the source loop (which reads it when `version` moves).
#[derive(Default)]
pub(crate) struct HeldPartitions {
    /// (topic id, partition) → generation.
    pub(crate) partitions: FxHashMap<(u32, i32), Generation>,
    /// Revoked since the source loop last looked: (topic id, partition,
    /// the generation it had).
    pub(crate) revoked: Vec<(u32, i32, Generation)>,
}

pub struct SourceContext {
    pub(crate) progress: Sender<Progress>,
    /// `/ready`: partitions are assigned and a broker is up.
    pub(crate) ready: Arc<AtomicBool>,
    pub(crate) assigned: AtomicBool,
    /// A broker answers (librdkafka's statistics, errors, assignments):
    /// 0 not known yet, 1 up, 2 down.
    pub(crate) link: std::sync::atomic::AtomicU8,
    pub(crate) topics: Arc<Topics>,
    pub(crate) held: Mutex<HeldPartitions>,
    /// Bumped whenever `held` changes.
    pub(crate) version: AtomicU64,
    pub(crate) next_generation: AtomicU64,
    /// The source has paused consumption: partitions assigned meanwhile are
    /// paused too.
    pub(crate) paused: AtomicBool,
    pub(crate) revoke_wait: Duration,
    /// An asynchronous commit failed (see [`Committer::take_failed`]).
    pub(crate) commit_failed: AtomicBool,
    /// Generations given up: their queued work is dropped.
    pub(crate) given_up: Arc<Revoked>,
    pub(crate) log_limit: ossnotify_sinks::log_limit::LogLimit,
    /// The source loop's [`FetchQueue`] while it runs (else null): newly
    /// assigned partitions are forwarded to it.
    pub(crate) fetch_queue: AtomicPtr<rdkafka::bindings::rd_kafka_queue_t>,
    pub(crate) group: Mutex<GroupWatch>,
}

impl ClientContext for SourceContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown) {
            self.set_connected(false);
        }
        self.warn_limited("Kafka client error", &format!("{error}: {reason}"));
    }

    /// librdkafka's own log lines, at their level, repeats limited.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        let Some(left_out) = self.log_limit.admit(&format!("{fac} {message}")) else {
            return;
        };
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "librdkafka", fac, left_out, "{message}")
            }
            L::Warning => tracing::warn!(target: "librdkafka", fac, left_out, "{message}"),
            L::Notice | L::Info => tracing::info!(target: "librdkafka", fac, left_out, "{message}"),
            L::Debug => tracing::debug!(target: "librdkafka", fac, left_out, "{message}"),
        }
    }

    /// librdkafka's statistics (every `statistics.interval.ms`): the
    /// consumer lag per partition, as librdkafka computes it from the
    /// broker's high watermark and our position.
    fn stats(&self, stats: rdkafka::Statistics) {
        let up = stats.brokers.values().any(|b| b.state == "UP");
        self.set_connected(up);
        if let Some(g) = &stats.cgrp {
            self.watch_group(g);
        }
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(crate::metric_names::CONSUMER_LAG, "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl SourceContext {
    pub(crate) fn watch_group(&self, g: &rdkafka::statistics::ConsumerGroup) {
        let mut watch = self.group.lock().unwrap_or_else(|p| p.into_inner());
        let was_stuck = watch.warned();
        let (age, warn) = watch.observe(&g.join_state, std::time::Instant::now());
        metrics::gauge!(crate::metric_names::GROUP_UNSETTLED).set(age.as_secs_f64());
        if warn {
            tracing::warn!(
                seconds = age.as_secs(),
                join_state = %g.join_state,
                reason = %g.rebalance_reason,
                "the consumer group has not settled for longer than max.poll.interval.ms: nothing is consumed or committed until it does; if it lasts, the group coordinator may be stuck (see the broker)"
            );
        } else if was_stuck && age.is_zero() {
            tracing::info!("the consumer group settled");
        }
    }

    /// Logs a change of the brokers' reachability once; `/ready` and
    /// `ossnotify_source_connected` follow it.
    pub(crate) fn set_connected(&self, up: bool) {
        let now = if up { 1 } else { 2 };
        if self.link.swap(now, Ordering::SeqCst) != now {
            if up {
                tracing::info!("connected to the Kafka cluster");
            } else {
                tracing::warn!("every Kafka broker is unreachable; retrying (repeated errors are logged at most every 30 s)");
            }
        }
        metrics::gauge!(crate::metric_names::SOURCE_CONNECTED).set(if up { 1.0 } else { 0.0 });
        self.update_ready();
    }

    /// A warning whose repeats are limited (see [`ossnotify_sinks::log_limit`]).
    pub(crate) fn warn_limited(&self, what: &str, text: &str) {
        if let Some(left_out) = self.log_limit.admit(text) {
            tracing::warn!(error = text, left_out, "{what}");
        }
    }

    pub(crate) fn update_ready(&self) {
        let ready = self.assigned.load(Ordering::SeqCst) && self.link.load(Ordering::SeqCst) == 1;
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Where newly assigned partitions are forwarded: set and cleared by
    /// [`FetchQueue`], which clears it before the queue goes.
    pub(crate) fn set_fetch_queue(&self, queue: *mut rdkafka::bindings::rd_kafka_queue_t) {
        self.fetch_queue.store(queue, Ordering::SeqCst);
    }

    pub(crate) fn new_generation(&self) -> Generation {
        self.next_generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A partition still held moves to a new generation (its offsets went
    /// backwards). The tracker hears of it before any record of it.
    pub(crate) fn regenerate(&self, topic: u32, partition: i32) -> Generation {
        let generation = self.new_generation();
        self.held
            .lock()
            .expect("not poisoned")
            .partitions
            .insert((topic, partition), generation);
        let _ = self
            .progress
            .send(Progress::Assigned(vec![(topic, partition, generation)]));
        generation
    }

    pub(crate) fn ids(&self, tpl: &TopicPartitionList) -> Vec<(String, u32, i32)> {
        tpl.elements()
            .iter()
            .map(|e| {
                (
                    e.topic().to_owned(),
                    self.topics.id(e.topic()),
                    e.partition(),
                )
            })
            .collect()
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let parts = self.ids(tpl);
        let mut gone = Vec::new();
        {
            // From here on the source drops what it holds of them.
            let mut held = self.held.lock().expect("not poisoned");
            for (_, topic, p) in &parts {
                if let Some(g) = held.partitions.remove(&(*topic, *p)) {
                    held.revoked.push((*topic, *p, g));
                    gone.push((*topic, *p, g));
                }
            }
            self.assigned
                .store(!held.partitions.is_empty(), Ordering::SeqCst);
            self.update_ready();
            self.version.fetch_add(1, Ordering::SeqCst);
        }
        let names: Vec<(String, i32)> = parts.into_iter().map(|(t, _, p)| (t, p)).collect();
        // A lost assignment (session timed out) cannot commit: the group
        // has moved on already.
        let lost = consumer.assignment_lost();
        let given_up = names.clone();
        let wait = if lost {
            Duration::ZERO
        } else {
            self.revoke_wait
        };
        let (reply, answer) = bounded(1);
        let revoke = Progress::Revoke {
            partitions: names,
            wait,
            reply,
        };
        if self.progress.send(revoke).is_err() {
            return; // the tracker is gone: the run is over
        }
        match answer.recv_timeout(wait + REVOKE_ANSWER_SLACK) {
            Err(_) => tracing::warn!(
                "the offset tracker did not answer the revocation: nothing committed for it"
            ),
            Ok(_) if lost => {}
            Ok(done) => {
                if let Some(list) = commit_list(&done) {
                    match consumer.commit(&list, CommitMode::Sync) {
                        Ok(()) => tracing::debug!(offsets = ?done, "committed on revocation"),
                        Err(e) => {
                            tracing::warn!(error = %e, "commit on revocation failed; the next owner reads those records again")
                        }
                    }
                }
            }
        }
        // The wait is over: what is still queued for them is the next
        // owner's to do.
        self.given_up.add(&gone);
        // Logged once the tracker has forgotten them: no commit of ours
        // names them from here on.
        tracing::info!(partitions = ?given_up, lost, "partitions given up");
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else {
            return;
        };
        let queue = self.fetch_queue.load(Ordering::SeqCst);
        if !queue.is_null() {
            // SAFETY: the client is live (we are in its callback) and so
            // is `queue`: `FetchQueue` clears the pointer before it
            // destroys the queue, on this same thread.
            unsafe { forward(consumer.client().native_ptr(), queue, tpl) };
        }
        let parts = self.ids(tpl);
        // Logged before the tracker can commit any of them.
        let names: Vec<(&str, i32)> = parts.iter().map(|(n, _, p)| (n.as_str(), *p)).collect();
        tracing::info!(partitions = ?names, "partitions assigned");
        let assigned: Vec<(u32, i32, Generation)> = parts
            .iter()
            .map(|(_, t, p)| (*t, *p, self.new_generation()))
            .collect();
        {
            let mut held = self.held.lock().expect("not poisoned");
            for (t, p, g) in &assigned {
                held.partitions.insert((*t, *p), *g);
            }
            // Before any record of theirs is announced (same channel).
            let _ = self.progress.send(Progress::Assigned(assigned));
            self.version.fetch_add(1, Ordering::SeqCst);
        }
        // librdkafka keeps a partition's pause across assignments: one
        // paused, revoked and assigned again would stay paused for ever
        // unless told otherwise here.
        let paused = self.paused.load(Ordering::SeqCst);
        let r = if paused {
            consumer.pause(tpl)
        } else {
            consumer.resume(tpl)
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, paused, "cannot pause or resume newly assigned partitions");
        }
        // An assignment came from the group coordinator: a broker is up.
        self.assigned.store(true, Ordering::SeqCst);
        self.set_connected(true);
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "asynchronous offset commit failed; committing again");
            self.commit_failed.store(true, Ordering::SeqCst);
        }
    }
}
