//! The runtime (SPEC §6): the Kafka source (or a file, or stdin), worker
//! threads, sink drivers, dead-lettering, and offset tracking for
//! at-least-once commits, and hot reload of the rules. Metrics come next.

mod kafka;
mod offsets;
mod reload;
mod run;

pub use offsets::{OffsetTracker, PartitionOffsets};
pub use reload::ReloadCounters;
pub use run::{run, Coord, Input, RunSummary};
