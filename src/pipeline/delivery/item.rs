//! What a sink's queue carries: one message and the record it came from.

use ossnotify_sinks::Envelope;

use crate::pipeline::batch::Coord;

/// One message on its way to a sink, and the record it came from.
pub struct Item {
    pub envelope: Envelope,
    pub coord: Coord,
    /// When its record was read, on the first message of a batch's chunk
    /// only: the latency stages are sampled once per batch.
    pub read_at: Option<std::time::Instant>,
}
