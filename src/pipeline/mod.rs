//! The runtime (docs/guarantees.md): a source (Kafka, a file, stdin),
//! worker threads, sink routing and drivers, sink backlogs and their
//! redelivery, dead-lettering, offset
//! tracking for at-least-once commits, supervision, hot reload of rules and
//! sinks, and the metrics. `run` wires them; `shutdown` says how a run ends.

mod batch;
mod counters;
mod cpus;
pub mod delivery;
mod error;
mod kept_message;
mod metrics_server;
mod offsets;
mod reload;
mod revoked;
mod routing;
mod run;
mod shutdown;
mod source;
mod supervisor;
pub mod tap;
mod tracker;
mod worker;

pub use batch::{Batch, Coord, Topics};
pub use error::{PipelineError, SourceError};
pub use offsets::{Anomaly, Generation, OffsetTracker, PartitionOffsets};
pub use reload::ReloadCounters;
pub use routing::probe_all;
pub use routing::DEFAULT_EVENT_BUS;
pub use run::{run, run_with, store_topics, Input, RunError, RunOptions, RunSummary};
pub use source::kafka::FETCH_DEFAULTS;
pub use source::lines::LineInput;
pub use source::window::{self as window_source, KafkaWindow, Range};
pub use supervisor::{Failure, Supervisor};
