//! A round: up to four of its sink's batches of one partition, delivered on
//! the runtime while the next is read; what it settled is committed.

use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc};

use ossnotify_sinks::{DeadLetterStore, Envelope, GivenUp, Outcome, Sink};
use rdkafka::message::Message;

use super::super::kafka_backlog::envelope_of;
use super::super::redelivery::{count_redelivered, counter, record_ages};
use super::reader::Reader;
use super::Tp;
use crate::pipeline::error::PipelineError;
use crate::pipeline::supervisor::Supervisor;

/// A backlog message read for a round: the message, where its record came
/// from, and when it was written to the backlog (epoch ms).
pub(super) struct Waiting {
    pub(super) envelope: Envelope,
    pub(super) source: String,
    pub(super) written_ms: i64,
}

impl Waiting {
    pub(super) fn of(m: &rdkafka::message::BorrowedMessage<'_>) -> Waiting {
        use rdkafka::message::Headers;
        let source = m
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|h| h.key == super::super::kafka_backlog::SOURCE)
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
            .unwrap_or_default();
        Waiting {
            envelope: envelope_of(m),
            source,
            written_ms: m.timestamp().to_millis().unwrap_or(0),
        }
    }
}

/// What wakes the reader.
pub(super) enum Signal {
    /// A round ended.
    Done(Done),
    /// A queue it reads from got something (a message, a rebalance).
    Wake,
}

/// What a round did.
pub(super) struct Done {
    pub(super) tp: Tp,
    pub(super) epoch: u64,
    /// The offset to commit: past the leading messages delivered or
    /// dead-lettered.
    pub(super) commit_to: i64,
    /// Whether a message was deferred (the breaker decides when the
    /// partition is read again).
    pub(super) deferred: bool,
}

impl Reader {
    /// Starts a round for every partition that has read something and
    /// whose sink takes requests; holds the others.
    pub(super) fn launch(&mut self) {
        let ready: Vec<Tp> = self
            .parts
            .iter()
            .filter(|(_, p)| !p.held && !p.in_flight && !p.batch.is_empty())
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in ready {
            let sink = self.sink_of(&tp.0);
            let admitted = match &sink {
                None => {
                    let name = self.sink_name(&tp.0).unwrap_or_default();
                    if self.gone.admit(&name).is_some() {
                        tracing::warn!(sink = %name, topic = %tp.0, "the sink is gone from the config: its backlog waits in its topic");
                    }
                    false
                }
                Some(s) => s.isolation().is_none_or(|iso| iso.breaker.admit()),
            };
            let part = self.parts.get_mut(&tp).expect("listed above");
            if !admitted {
                let from = part.batch[0].0;
                self.hold(&tp, from);
                continue;
            }
            part.in_flight = true;
            let batch = std::mem::take(&mut part.batch);
            let epoch = part.epoch;
            let sink = sink.expect("admitted");
            let round = Round {
                redelivered: counter(&self.wiring.redelivered, sink.name()),
                sink,
                store: self.wiring.store.clone(),
                supervisor: self.wiring.supervisor.clone(),
                done: self.done_tx.clone(),
                tp,
                epoch,
            };
            self.wiring.rt.spawn(round.deliver(batch));
        }
    }
}

/// A round on its way: what delivering it needs, and where it says it ended.
struct Round {
    sink: Arc<dyn Sink>,
    redelivered: Arc<AtomicU64>,
    store: Arc<DeadLetterStore>,
    supervisor: Arc<Supervisor>,
    done: mpsc::Sender<Signal>,
    tp: Tp,
    epoch: u64,
}

impl Round {
    /// Delivers the round, dead-letters what failed for good, and tells the
    /// reader what to commit. Only the leading messages that are settled
    /// count: the partition is read again from the first deferred one.
    async fn deliver(self, batch: Vec<(i64, Waiting)>) {
        let name = self.sink.name().to_owned();
        let mut offsets = Vec::with_capacity(batch.len());
        let mut envelopes = Vec::with_capacity(batch.len());
        let mut origins = Vec::with_capacity(batch.len());
        for (offset, w) in batch {
            offsets.push(offset);
            envelopes.push(w.envelope);
            origins.push((w.source, w.written_ms));
        }
        let outcomes = self.sink.deliver(&envelopes).await;
        let age = metrics::histogram!(crate::metric_names::EVENT_AGE, "sink" => name.clone());
        record_ages(&age, &envelopes, &outcomes);
        let settled = outcomes
            .iter()
            .position(|o| matches!(o, Outcome::Deferred { .. }))
            .unwrap_or(outcomes.len());
        let mut failed = Vec::new();
        let mut delivered = 0;
        for ((e, o), (source, written)) in
            envelopes.iter().zip(&outcomes).zip(&origins).take(settled)
        {
            match o {
                Outcome::Delivered => delivered += 1,
                Outcome::Failed { error, attempts } => failed.push(GivenUp {
                    envelope: e,
                    error,
                    attempts: *attempts,
                    source,
                    // It first failed when it went to the backlog.
                    first_failure_ms: u64::try_from(*written).ok(),
                }),
                Outcome::Deferred { .. } => {}
            }
        }
        if let Err(e) = self.store.give_up(&name, &failed) {
            // Not committed: read again by the group.
            self.supervisor.fail(
                &format!("redelivery of sink {name}"),
                PipelineError::store(&self.store, e),
            );
            return;
        }
        count_redelivered(&name, &self.redelivered, delivered);
        let commit_to = offsets
            .get(settled)
            .copied()
            .unwrap_or_else(|| offsets.last().map_or(0, |o| o + 1));
        let _ = self.done.send(Signal::Done(Done {
            tp: self.tp,
            epoch: self.epoch,
            commit_to,
            deferred: settled < outcomes.len(),
        }));
    }
}
