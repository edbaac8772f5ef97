//! The metrics this crate records. The process's whole table is the root
//! crate's `metric_names`, which lists these too.

/// Retries (attempts after the first), labelled `sink`.
pub const RETRIES: &str = "ossnotify_sink_retries_total";
/// The breaker's state: 0 closed, 1 open, 2 half-open; labelled `sink`.
pub const BREAKER_STATE: &str = "ossnotify_sink_breaker_state";
/// Entries the dead-letter store's retention dropped, labelled `store`.
pub const STORE_RETENTION_DROPPED: &str = "ossnotify_store_retention_dropped_total";
/// Corrupt entries the dead-letter store found, labelled `store`.
pub const STORE_CORRUPT: &str = "ossnotify_store_corrupt_entries_total";
