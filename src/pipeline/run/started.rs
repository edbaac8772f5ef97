//! What a run started, and its shutdown (in the order `pipeline::shutdown`
//! states).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::{RunError, RunSummary};
use crate::pipeline::counters::Counters;
use crate::pipeline::routing::{Drivers, Routing};
use crate::pipeline::shutdown::Drain;
use crate::pipeline::source::{self};
use crate::pipeline::supervisor::Supervisor;
use crate::pipeline::tracker::Position;

/// What a run started: what its shutdown stops, in the order `shutdown`
/// states.
pub(super) struct Started {
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) supervisor: Arc<Supervisor>,
    pub(super) workers: Vec<std::thread::JoinHandle<Option<()>>>,
    pub(super) reloader: Option<crate::pipeline::reload::Watcher>,
    pub(super) drivers: Arc<Drivers>,
    pub(super) routing: Arc<ArcSwap<Routing>>,
    pub(super) progress: crossbeam_channel::Sender<crate::pipeline::tracker::Progress>,
    pub(super) tracker: std::thread::JoinHandle<Result<Vec<Position>, rdkafka::error::KafkaError>>,
    pub(super) source: Box<dyn source::Source>,
    pub(super) counters: Arc<Counters>,
}

impl Started {
    /// Stops what the run started; `drain_timeout` bounds the drain
    /// (`[pipeline] drain_timeout_ms`).
    pub(super) fn shut_down(mut self, drain_timeout: Duration) -> Result<RunSummary, RunError> {
        let mut drain = Drain::new(&self.supervisor, drain_timeout);
        let mut drained = drain.join(&mut self.workers);
        if let Some(r) = self.reloader.take() {
            r.stop();
        }
        self.drivers.close();
        self.routing.store(Arc::new(Routing {
            // No rules: no region policy to apply.
            index: crate::rules::RuleIndex::build(Vec::new(), Default::default()),
            sinks: Vec::new(),
            want_base64: false,
        }));
        let handles = std::mem::take(&mut *self.drivers.handles.lock().expect("not poisoned"));
        let still_backlogged = self.drivers.backlogs.waiting();
        drained = drained && drain.wait(|| handles.iter().all(|h| h.is_finished()));
        if !drained {
            tracing::warn!(
                "drain deadline reached: committing what is done; the rest is read again after a restart"
            );
        }
        let _ = self
            .progress
            .send(crate::pipeline::tracker::Progress::Finish);
        drop(self.progress);
        let last_commit = self.tracker.join().unwrap_or_else(|_| Ok(Vec::new()));
        // What failed before the run gave up draining. Stragglers left past
        // the deadline fail when the runtime goes (their sink queues close):
        // that is the shutdown, not a failure of the run.
        let failure = self.supervisor.failure().cloned();
        if drained {
            drop(self.source);
            self.rt.block_on(async {
                for h in handles {
                    let _ = h.await;
                }
            });
        } else {
            // Workers may still hold messages of the consumer's: it must
            // outlive them, so it is never destroyed (the process ends next).
            std::mem::forget(self.source);
            self.rt.shutdown_background();
        }
        if let Some(f) = failure {
            return Err(RunError::Failed(f));
        }
        let committed = last_commit.map_err(RunError::LastCommit)?;
        Ok(summary(
            &self.counters,
            &self.drivers,
            committed,
            still_backlogged,
            drained,
        ))
    }
}

/// What the run did, from its counters and its sinks' drivers.
fn summary(
    counters: &Counters,
    drivers: &Drivers,
    committed: Vec<Position>,
    still_backlogged: u64,
    drained: bool,
) -> RunSummary {
    let c = counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let redelivered: u64 = drivers
        .backlogs
        .redelivered
        .lock()
        .expect("not poisoned")
        .values()
        .map(|n| get(n))
        .sum();
    let sinks = drivers
        .stats
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                get(&s.delivered),
                get(&s.dead_lettered),
                get(&s.backlogged),
            )
        })
        .collect();
    RunSummary {
        sinks,
        records: get(&c.records),
        invalid: get(&c.invalid),
        skipped: get(&c.skipped),
        unmatched: get(&c.unmatched),
        messages: get(&c.messages),
        delivered: get(&c.delivered) + redelivered,
        dead_lettered: get(&c.dead_lettered),
        backlogged: get(&c.backlogged),
        redelivered,
        still_backlogged,
        committed,
        drained,
    }
}
