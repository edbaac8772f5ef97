//! The runtime (SPEC §6): the Kafka source (or a file, or stdin), worker
//! threads, sink routing and drivers, dead-lettering, offset tracking for
//! at-least-once commits, hot reload of rules and sinks, and the metrics.

mod batch;
mod cpus;
mod fetch_queue;
mod kafka;
mod offsets;
mod reload;
mod routing;
mod run;

pub use batch::{Batch, Coord, Topics};
pub use kafka::FETCH_DEFAULTS;
pub use offsets::{OffsetTracker, PartitionOffsets};
pub use reload::ReloadCounters;
pub use run::{run, Input, RunSummary};
