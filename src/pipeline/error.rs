//! What stops a pipeline component: each is reported to the supervisor,
//! which stops the run (exit 2) naming the component and this cause.

use ossnotify_sinks::BuildError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Invalid records and given-up messages must be durable before their
    /// offsets commit; without the store nothing more may be committed.
    #[error("cannot write the dead-letter store ({place}): {cause}")]
    DeadLetterStore {
        place: String,
        cause: std::io::Error,
    },
    /// A sink's backlog cannot be opened, written, read or trimmed.
    #[error("cannot {what} the backlog of sink {sink} ({place}): {cause}")]
    Backlog {
        what: &'static str,
        sink: String,
        place: String,
        cause: std::io::Error,
    },
    /// The cluster would not create a Kafka store's topics.
    #[error(transparent)]
    StoreTopics(#[from] ossnotify_sinks::kafka_store::TopicsRefused),
    #[error("sink {sink}: {cause}")]
    BuildSink { sink: String, cause: BuildError },
    /// A sink's destination answered its probe for good: no such queue or
    /// topic, credentials it refuses (SPEC §6).
    #[error("sink {sink}: its destination refused the probe: {answer} (fix the sink, or start anyway with `run --no-check-sinks`)")]
    SinkRefused { sink: String, answer: String },
    /// A worker found a sink's queue closed: its driver ended early.
    #[error("the driver of sink {0} stopped")]
    DriverGone(String),
    /// A delivery task of a sink's driver panicked or was cancelled.
    #[error("a delivery task failed: {0}")]
    Task(tokio::task::JoinError),
}

// Not `#[from]`: the message names the task's error; as the source too, a
// printed chain would say it twice.
impl From<tokio::task::JoinError> for PipelineError {
    fn from(e: tokio::task::JoinError) -> Self {
        PipelineError::Task(e)
    }
}

/// Why the source could not start, or stopped reading.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot create the Kafka consumer: {0}")]
    Consumer(rdkafka::error::KafkaError),
    #[error("cannot subscribe to {topics:?}: {cause}")]
    Subscribe {
        topics: Vec<String>,
        cause: rdkafka::error::KafkaError,
    },
    /// The input of a file or stdin source failed (not an invalid line:
    /// those are dead-lettered).
    #[error("{input}: read failed after line {line}: {cause}")]
    Read {
        input: String,
        line: i64,
        cause: std::io::Error,
    },
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    /// The workers' channel closed under the source: a worker failed.
    #[error("the workers stopped")]
    WorkersGone,
    /// A lines source is read once; `read` was called again.
    #[error("the input was read already")]
    ReadTwice,
    #[error("source type {0} is read as lines, not as Kafka")]
    NotKafka(String),
}

impl PipelineError {
    pub fn store(store: &ossnotify_sinks::DeadLetterStore, source: std::io::Error) -> Self {
        PipelineError::DeadLetterStore {
            place: store.place(),
            cause: source,
        }
    }
}
