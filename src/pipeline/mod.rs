//! The runtime (SPEC §6): offset tracking for at-least-once commits, and
//! `run` over a file or stdin (workers, sink drivers, dead-lettering). The
//! Kafka source, signals, reload and metrics come next.

mod offsets;
mod run;

pub use offsets::{OffsetTracker, PartitionOffsets};
pub use run::{run_lines, Coord, RunSummary};
