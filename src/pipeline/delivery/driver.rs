//! A sink's driver: the task on tokio that feeds one sink from its queue,
//! in batches of up to `max_batch` with at most `max_in_flight` deliveries
//! at once, and settles every message (delivered, in the sink's backlog, or
//! dead-lettered, durably) before acknowledging it to the offset tracker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;
use ossnotify_sinks::breaker::{Isolation, WhenFull};
use ossnotify_sinks::log_limit::LogLimit;
use ossnotify_sinks::{deliver_or_dead_letter, DeadLetterStore, Envelope, GivenUp, Outcome, Sink};

use super::backlog::Backlog;
use super::item::Item;
use super::redelivery::record_ages;
use crate::pipeline::batch::Coord;
use crate::pipeline::counters::Counters;
use crate::pipeline::error::PipelineError;
use crate::pipeline::revoked::Revoked;
use crate::pipeline::supervisor::Supervisor;
use crate::pipeline::tracker::Progress;

/// One sink's counts, kept after the sink is replaced (counters only grow).
#[derive(Default)]
pub struct SinkStats {
    pub name: String,
    pub delivered: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub backlogged: AtomicU64,
}

/// What a driver needs besides its sink and queue.
#[derive(Clone)]
pub struct DriverContext {
    pub store: Arc<DeadLetterStore>,
    pub progress: Sender<Progress>,
    pub counters: Arc<Counters>,
    pub supervisor: Arc<Supervisor>,
    pub revoked: Arc<Revoked>,
    pub stats: Arc<SinkStats>,
    pub isolation: Option<Isolation>,
    pub backlog: Option<Arc<Backlog>>,
    /// "Backlog full" repeats while it stays full.
    pub full_log: Arc<LogLimit>,
    /// The sink's `ossnotify_event_age_seconds`.
    pub event_age: metrics::Histogram,
    /// Topic names, to say where a dead letter's record came from.
    pub topics: Arc<crate::pipeline::batch::Topics>,
}

/// Feeds one sink: batches of up to `max_batch`, at most `max_in_flight`
/// deliveries at once; every message ends delivered, in the sink's backlog
/// or dead-lettered (see [`settle`]), then acknowledged. Ends when its
/// queue is closed and empty.
pub async fn drive(
    sink: Arc<dyn Sink>,
    mut rx: tokio::sync::mpsc::Receiver<Vec<Item>>,
    ctx: DriverContext,
) -> Result<(), PipelineError> {
    let permits = Arc::new(tokio::sync::Semaphore::new(sink.max_in_flight().max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let max = sink.max_batch().max(1);
    let in_flight = Arc::new(tokio::sync::watch::Sender::new(0usize));
    let mut idle = in_flight.subscribe();
    let stage = |name: &'static str| metrics::histogram!(crate::metric_names::STAGE_SECONDS, "stage" => name, "sink" => sink.name().to_owned());
    let (sent_stage, settled_stage) = (stage("sent"), stage("settled"));
    let mut pending: Vec<Item> = Vec::new();
    while gather(&mut rx, &mut pending, max, sink.linger(), &mut idle).await {
        // Messages of partitions given up since are their next owner's.
        let mut revoked = ctx.revoked.view();
        pending.retain(|i| !revoked.contains(&i.coord));
        while !pending.is_empty() {
            let rest = pending.split_off(pending.len().min(max));
            let batch = std::mem::replace(&mut pending, rest);
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("the permits are never closed");
            let (sink, ctx) = (sink.clone(), ctx.clone());
            let read_at = batch.iter().find_map(|i| i.read_at);
            if let Some(t) = read_at {
                sent_stage.record(t.elapsed().as_secs_f64());
            }
            let settled_stage = settled_stage.clone();
            in_flight.send_modify(|n| *n += 1);
            let done = InFlight(in_flight.clone());
            tasks.spawn(async move {
                let _done = done;
                let (envelopes, coords): (Vec<Envelope>, Vec<Coord>) =
                    batch.into_iter().map(|i| (i.envelope, i.coord)).unzip();
                let started = std::time::Instant::now();
                let settled = match settle(sink.as_ref(), &envelopes, &coords, &ctx).await {
                    Ok(Some(s)) => s,
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        // Reported at once (the driver would notice only at
                        // its next message); never acknowledged.
                        ctx.supervisor.fail(&format!("sink {}", sink.name()), &e);
                        return Err(e);
                    }
                };
                metrics::histogram!(crate::metric_names::DELIVERY_SECONDS, "sink" => sink.name().to_owned())
                    .record(started.elapsed().as_secs_f64());
                if let Some(t) = read_at {
                    settled_stage.record(t.elapsed().as_secs_f64());
                }
                drop(permit);
                let add = |a: &AtomicU64, n: u64| {
                    a.fetch_add(n, Ordering::Relaxed);
                };
                add(&ctx.counters.delivered, settled.delivered);
                add(&ctx.stats.delivered, settled.delivered);
                add(&ctx.counters.dead_lettered, settled.dead_lettered);
                add(&ctx.stats.dead_lettered, settled.dead_lettered);
                add(&ctx.counters.backlogged, settled.backlogged);
                add(&ctx.stats.backlogged, settled.backlogged);
                let _ = ctx.progress.send(Progress::Acked(coords));
                Ok::<(), PipelineError>(())
            });
            // Reap what has finished, keeping the set small.
            while let Some(done) = tasks.try_join_next() {
                done??;
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// One delivery in flight, counted down when its task ends however it ends.
struct InFlight(Arc<tokio::sync::watch::Sender<usize>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Gathers the next delivery's messages into `pending`; false once the
/// queue is closed and nothing is pending. Adaptive linger, as Nagle's
/// algorithm: with no delivery in flight (`in_flight` at 0) what is queued
/// goes at once, so a lone message never waits; while deliveries are in
/// flight, it waits up to `linger` to fill a batch of `max`, and stops
/// waiting as soon as the last delivery ends. So batches are full when the
/// sink is busy and a quiet sink adds no delay.
async fn gather(
    rx: &mut tokio::sync::mpsc::Receiver<Vec<Item>>,
    pending: &mut Vec<Item>,
    max: usize,
    linger: std::time::Duration,
    in_flight: &mut tokio::sync::watch::Receiver<usize>,
) -> bool {
    if pending.is_empty() {
        match rx.recv().await {
            Some(first) => pending.extend(first),
            None => return false,
        }
    }
    // What is queued already costs no wait.
    while pending.len() < max {
        match rx.try_recv() {
            Ok(more) => pending.extend(more),
            Err(_) => break,
        }
    }
    if pending.len() >= max || *in_flight.borrow() == 0 {
        return true;
    }
    let deadline = tokio::time::Instant::now() + linger;
    while pending.len() < max {
        tokio::select! {
            biased;
            more = rx.recv() => match more {
                Some(more) => pending.extend(more),
                None => break,
            },
            _ = in_flight.wait_for(|n| *n == 0) => break,
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    true
}

/// What became of a batch.
#[derive(Debug, Default)]
struct Settled {
    delivered: u64,
    dead_lettered: u64,
    backlogged: u64,
}

/// Delivers a batch, or, while the sink's breaker is open, keeps it in the
/// sink's backlog without trying. Every message ends delivered, in the
/// backlog (transient failures, with isolation) or in the dead-letter store
/// (permanent failures; transient ones without isolation), synced before
/// this returns. `None`: left unsettled, as the run stops while the backlog
/// is full. An error is a store that cannot be written.
async fn settle(
    sink: &dyn Sink,
    envelopes: &[Envelope],
    coords: &[Coord],
    ctx: &DriverContext,
) -> Result<Option<Settled>, PipelineError> {
    // Where each record came from, said only for what is not delivered
    // (the rare path): `topic/partition/offset`.
    let source = |i: usize| {
        coords
            .get(i)
            .map_or(String::new(), |c| ctx.topics.describe(c))
    };
    let (Some(iso), Some(backlog)) = (&ctx.isolation, &ctx.backlog) else {
        return settle_without_isolation(sink, envelopes, coords, ctx)
            .await
            .map(Some);
    };
    let outcomes = if iso.breaker.admit() {
        sink.deliver(envelopes).await
    } else {
        let open = Outcome::Deferred {
            error: "circuit breaker open".into(),
            attempts: 0,
        };
        vec![open; envelopes.len()]
    };
    record_ages(&ctx.event_age, envelopes, &outcomes);
    let (mut settled, mut failed, mut deferred) = sort_outcomes(&outcomes);
    while !deferred.is_empty() {
        if backlog.has_room() {
            let keep: Vec<&Envelope> = deferred.iter().map(|d| &envelopes[d.0]).collect();
            let sources: Vec<String> = deferred.iter().map(|d| source(d.0)).collect();
            backlog
                .push(&keep, &sources)
                .await
                .map_err(|source| backlog.error("write", sink.name(), source))?;
            settled.backlogged = keep.len() as u64;
            break;
        }
        let max = iso.backlog.max_mib;
        match iso.backlog.when_full {
            WhenFull::Block => {
                if let Some(n) = ctx.full_log.admit("full") {
                    tracing::warn!(
                        sink = sink.name(),
                        max_mib = max,
                        like_this_since_last_logged = n,
                        "backlog full: waiting for room (the consumer pauses)"
                    );
                }
                // Stopping (a signal, or a failure elsewhere): no room will
                // come in time. The batch is left unacknowledged, so its
                // records are read again after a restart, and the drain
                // ends instead of waiting out its deadline.
                if ctx.supervisor.stopping() {
                    return Ok(None);
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            WhenFull::DeadLetter => {
                for (e, error, attempts) in deferred.drain(..) {
                    failed.push((
                        e,
                        format!("BacklogFull: backlog over {max} MiB; {error}"),
                        attempts,
                    ));
                }
            }
        }
    }
    settled.dead_lettered = give_up(sink, envelopes, &failed, &source, ctx)?;
    Ok(Some(settled))
}

/// What was delivered (counted), what failed for good and what was
/// deferred (each with its position, error and attempts).
#[allow(clippy::type_complexity)]
fn sort_outcomes(
    outcomes: &[Outcome],
) -> (Settled, Vec<(usize, String, u32)>, Vec<(usize, &str, u32)>) {
    let mut settled = Settled::default();
    let (mut failed, mut deferred) = (Vec::new(), Vec::new());
    for (i, o) in outcomes.iter().enumerate() {
        match o {
            Outcome::Delivered => settled.delivered += 1,
            Outcome::Failed { error, attempts } => failed.push((i, error.clone(), *attempts)),
            Outcome::Deferred { error, attempts } => deferred.push((i, error.as_str(), *attempts)),
        }
    }
    (settled, failed, deferred)
}

/// A sink without isolation: every message is delivered or dead-lettered.
async fn settle_without_isolation(
    sink: &dyn Sink,
    envelopes: &[Envelope],
    coords: &[Coord],
    ctx: &DriverContext,
) -> Result<Settled, PipelineError> {
    let sources: Vec<String> = (0..envelopes.len())
        .map(|i| {
            coords
                .get(i)
                .map_or(String::new(), |c| ctx.topics.describe(c))
        })
        .collect();
    let outcomes = deliver_or_dead_letter(sink, envelopes, &sources, &ctx.store)
        .await
        .map_err(|e| PipelineError::store(&ctx.store, e))?;
    record_ages(&ctx.event_age, envelopes, &outcomes);
    let delivered = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Delivered))
        .count() as u64;
    Ok(Settled {
        delivered,
        dead_lettered: outcomes.len() as u64 - delivered,
        backlogged: 0,
    })
}

/// Dead-letters the messages that failed for good (positions in
/// `envelopes`, with their error and attempts), synced; how many.
fn give_up(
    sink: &dyn Sink,
    envelopes: &[Envelope],
    failed: &[(usize, String, u32)],
    source: &dyn Fn(usize) -> String,
    ctx: &DriverContext,
) -> Result<u64, PipelineError> {
    let sources: Vec<String> = failed.iter().map(|f| source(f.0)).collect();
    let give_up: Vec<GivenUp<'_>> = failed
        .iter()
        .zip(&sources)
        .map(|((i, error, attempts), source)| GivenUp {
            envelope: &envelopes[*i],
            error,
            attempts: *attempts,
            source,
            first_failure_ms: None,
        })
        .collect();
    ctx.store
        .give_up(sink.name(), &give_up)
        .map_err(|e| PipelineError::store(&ctx.store, e))?;
    Ok(give_up.len() as u64)
}

#[cfg(test)]
mod tests {
    //! The adaptive linger, on tokio's paused clock: time moves only when
    //! every task waits on a timer, so "no time passed" is exact.
    use super::*;
    use std::time::Duration;
    use tokio::sync::{mpsc, watch};
    use tokio::time::Instant;

    const LINGER: Duration = Duration::from_secs(10);

    fn items(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| Item {
                envelope: Envelope {
                    payload: format!("m{i}"),
                    rule_id: "r".into(),
                    key: "b/k".into(),
                    event_time_ms: 0,
                },
                coord: Coord {
                    topic: 0,
                    partition: 0,
                    epoch: 1,
                    offset: i as i64,
                },
                read_at: None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_message_to_an_idle_sink_is_sent_without_waiting_out_the_linger() {
        let (tx, mut rx) = mpsc::channel(8);
        let (_busy, mut in_flight) = watch::channel(0usize);
        tx.send(items(1)).await.unwrap();
        let start = Instant::now();
        let mut pending = Vec::new();
        assert!(gather(&mut rx, &mut pending, 16, LINGER, &mut in_flight).await);
        assert_eq!(pending.len(), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn while_a_delivery_is_in_flight_it_fills_a_batch_and_stops_when_the_sink_goes_idle() {
        let (tx, mut rx) = mpsc::channel(8);
        let (busy, mut in_flight) = watch::channel(1usize);
        tx.send(items(3)).await.unwrap();
        let start = Instant::now();
        let feeder = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            tx.send(items(2)).await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            // The last delivery ends: what is gathered goes now.
            busy.send(0).unwrap();
            (tx, busy)
        });
        let mut pending = Vec::new();
        assert!(gather(&mut rx, &mut pending, 16, LINGER, &mut in_flight).await);
        assert_eq!(pending.len(), 5);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        feeder.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_sink_waits_at_most_the_linger_and_a_full_batch_not_at_all() {
        let (tx, mut rx) = mpsc::channel(8);
        let (_busy, mut in_flight) = watch::channel(4usize);
        tx.send(items(1)).await.unwrap();
        let start = Instant::now();
        let mut pending = Vec::new();
        assert!(gather(&mut rx, &mut pending, 16, LINGER, &mut in_flight).await);
        assert_eq!((pending.len(), start.elapsed()), (1, LINGER));

        pending.clear();
        tx.send(items(20)).await.unwrap();
        let start = Instant::now();
        assert!(gather(&mut rx, &mut pending, 16, LINGER, &mut in_flight).await);
        assert_eq!((pending.len(), start.elapsed()), (20, Duration::ZERO));

        pending.clear();
        drop(tx);
        assert!(!gather(&mut rx, &mut pending, 16, LINGER, &mut in_flight).await);
    }
}
