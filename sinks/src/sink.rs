//! The one trait every sink implements, and what goes through it.

use std::future::Future;
use std::pin::Pin;

/// One message for one sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The payload in the sink's encoding (Base64 or JSON; both UTF-8).
    pub payload: String,
    pub rule_id: String,
    /// `bucket/key`: the Kafka message key, and context in the dead-letter store.
    pub key: String,
    /// The operation's time (`eventTime`), epoch ms, for the event-age
    /// metric; 0 when unknown (a replayed dead letter).
    pub event_time_ms: i64,
}

/// What became of one envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Given up for good: a permanent failure. The caller writes it to
    /// the dead-letter store.
    Failed {
        error: String,
        attempts: u32,
    },
    /// Not delivered, but not for good: transient failures until the
    /// attempts were spent or the sink's breaker opened. With isolation
    /// the caller keeps it in the sink's backlog; without (the breaker
    /// disabled) it dead-letters it.
    Deferred {
        error: String,
        attempts: u32,
    },
}

impl Outcome {
    /// What a failure that outlasted the sink's retries (or met its open
    /// breaker) becomes, by its class: a permanent one is given up on
    /// (`Failed`, dead-lettered), any other kept for later (`Deferred`, the
    /// backlog). Every sink maps its failures through this one place.
    pub fn of_failure(class: crate::retry::Class, error: String, attempts: u32) -> Outcome {
        match class {
            crate::retry::Class::Permanent => Outcome::Failed { error, attempts },
            crate::retry::Class::Retry | crate::retry::Class::Throttle => {
                Outcome::Deferred { error, attempts }
            }
        }
    }
}

pub type Delivery<'a> = Pin<Box<dyn Future<Output = Vec<Outcome>> + Send + 'a>>;

/// Why a sink's destination did not pass its probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    /// Whether the answer is final (no such queue, bad credentials): the
    /// start or the reload is refused. Otherwise (unreachable, a timeout,
    /// 5xx) it only warns: the backlog holds what cannot be sent yet.
    pub permanent: bool,
    /// The answer, or why there was none.
    pub answer: String,
}

pub type Probe<'a> = Pin<Box<dyn Future<Output = Result<(), ProbeFailure>> + Send + 'a>>;

/// A destination. `deliver` retries transient failures itself and returns
/// one outcome per envelope, in order; it never panics on remote errors.
pub trait Sink: Send + Sync {
    fn name(&self) -> &str;
    fn deliver<'a>(&'a self, batch: &'a [Envelope]) -> Delivery<'a>;
    /// Envelopes per `deliver` call the sink makes best use of.
    fn max_batch(&self) -> usize {
        1
    }
    /// `deliver` calls that may run at once.
    fn max_in_flight(&self) -> usize {
        1
    }
    /// How long the pipeline may wait for more messages to fill a batch
    /// while deliveries are in flight (`linger_ms` where a sink has it); a
    /// sink with none in flight gets what is there at once.
    fn linger(&self) -> std::time::Duration {
        std::time::Duration::from_millis(5)
    }
    /// Checks the destination before traffic (SPEC §6): that it exists and
    /// these credentials reach it. Sinks with nothing to check pass.
    fn probe(&self) -> Probe<'_> {
        Box::pin(async { Ok(()) })
    }
    /// The sink's breaker and backlog bound, for sinks that have them
    /// (`None`: no isolation, every failure is final).
    fn isolation(&self) -> Option<crate::breaker::Isolation> {
        None
    }
}
