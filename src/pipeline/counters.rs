//! The run's counts (records, messages and what became of them), shared by
//! the workers and the sink drivers and published by the tracker's thread.

use std::sync::atomic::AtomicU64;

/// Counts shared by the workers and the sink drivers, published by the
/// tracker's thread.
#[derive(Default)]
pub struct Counters {
    pub records: AtomicU64,
    pub invalid: AtomicU64,
    pub skipped: AtomicU64,
    pub unmatched: AtomicU64,
    pub messages: AtomicU64,
    pub delivered: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Kept in a sink's backlog, to be redelivered.
    pub backlogged: AtomicU64,
}
