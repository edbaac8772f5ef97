//! Where records come from: the Kafka consumer-group member ([`kafka`]),
//! a range of offsets of Kafka partitions ([`window`], a backfill) or
//! lines of a file or stdin ([`lines`]), behind one interface. A source
//! reads records into batches and hands them to the workers, announcing
//! every record to the offset tracker before any worker can see it; it says
//! which partitions it holds (and under which generation) before it
//! announces their records; and it may offer a [`Committer`] through which
//! the tracker commits. Pausing, resuming and revocation are the source's
//! own business: the rest of the pipeline sees only their effects (fewer
//! batches; [`Progress::Revoke`]).
//!
//! Adding a source means a module here and one arm in [`open`].

pub mod fetch_queue;
pub mod group_watch;
pub mod kafka;
pub mod lines;
pub mod window;

use super::error::SourceError;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender};

use super::batch::{Batch, Topics};
use super::supervisor::Supervisor;
use super::tracker::{Committer, Progress};
use crate::config::{SourceConfig, SourceType};

/// Records per batch from the source to the workers.
pub const BATCH: usize = 256;

/// A source of records.
pub trait Source: Send {
    /// Reads until the input ends or the supervisor says stop. Records
    /// held but not handed over when it returns are dropped: never
    /// resolved, so never committed (read again after a restart).
    fn read(&mut self, out: &Handoff, supervisor: &Supervisor) -> Result<(), SourceError>;

    /// What commits this source's offsets, if anything does.
    fn committer(&self) -> Option<Arc<dyn Committer>>;
}

/// Where a source hands its records.
pub struct Handoff {
    /// Batches for the workers (bounded: backpressure).
    pub batches: Sender<Batch>,
    /// Emptied batches coming back (their buffers reused).
    pub spares: Receiver<Batch>,
    /// The offset tracker.
    pub progress: Sender<Progress>,
    /// Records a source may hold while the workers are full.
    pub max_held: usize,
}

/// Why a hand-over did not happen.
pub enum Refused {
    /// The workers are full: the batch comes back.
    Full(Batch),
    /// The workers are gone.
    Gone,
}

impl Handoff {
    /// A spare batch, or a new one.
    pub fn fresh(&self) -> Batch {
        Batch::reuse(&self.spares, BATCH)
    }

    /// Announces the records of `batch` from `announced` on, then offers
    /// the batch to the workers for up to `wait`.
    pub fn offer(
        &self,
        batch: Batch,
        announced: &mut usize,
        wait: Duration,
    ) -> Result<(), Refused> {
        if *announced < batch.len() {
            // A send fails only once the tracker is gone, at the very end.
            let _ = self
                .progress
                .send(Progress::Seen(batch.coords()[*announced..].to_vec()));
            *announced = batch.len();
        }
        let read_at = batch.read_at;
        match self.batches.send_timeout(batch, wait) {
            Ok(()) => {
                *announced = 0;
                if let Some(t) = read_at {
                    metrics::histogram!(crate::metric_names::STAGE_SECONDS, "stage" => "queued")
                        .record(t.elapsed().as_secs_f64());
                }
                Ok(())
            }
            Err(SendTimeoutError::Timeout(b)) => Err(Refused::Full(b)),
            Err(SendTimeoutError::Disconnected(_)) => Err(Refused::Gone),
        }
    }
}

/// Opens the configured source (`input` overrides it with lines, for tests
/// and `-`), connected and ready to read.
pub fn open(
    source: &SourceConfig,
    revoke_wait_ms: u64,
    input: super::Input,
    topics: &Arc<Topics>,
    progress: &Sender<Progress>,
    ready: &Arc<std::sync::atomic::AtomicBool>,
    revoked: &Arc<super::revoked::Revoked>,
) -> Result<Box<dyn Source>, SourceError> {
    Ok(match (input, source.kind) {
        (super::Input::Lines(reader, name), _) => {
            ready.store(true, std::sync::atomic::Ordering::SeqCst);
            Box::new(lines::LinesSource::new(reader, name, topics, progress))
        }
        (super::Input::Kafka, SourceType::Kafka) => Box::new(kafka::KafkaSource::connect(
            source,
            revoke_wait_ms,
            progress.clone(),
            ready.clone(),
            topics.clone(),
            revoked.clone(),
        )?),
        (super::Input::Window(w), _) => {
            ready.store(true, std::sync::atomic::Ordering::SeqCst);
            Box::new(window::WindowSource::new(w, topics, progress)?)
        }
        (super::Input::Kafka, other) => return Err(SourceError::NotKafka(format!("{other:?}"))),
    })
}
