//! The runtime's parts (SPEC §6): offset tracking for at-least-once commits.
//! (The Kafka source, workers, sink drivers, shutdown and reload come next.)

mod offsets;

pub use offsets::{OffsetTracker, PartitionOffsets};
