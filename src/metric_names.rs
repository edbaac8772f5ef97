//! Every metric the process exports, by name, in one table (the sinks
//! crate records a few of its own: they are listed here too). No label is
//! per rule: a million rules must not mean a million series. The HTTP
//! server that exports them is `pipeline::metrics_server`.

pub const RECORDS: &str = "ossnotify_records_total";
pub const MESSAGES: &str = "ossnotify_messages_total";
pub const DELIVERY_SECONDS: &str = "ossnotify_sink_delivery_seconds";
pub const PENDING: &str = "ossnotify_pending_messages";
pub const COMMITTED: &str = "ossnotify_committed_offset";
pub const RELOADS: &str = "ossnotify_reloads_total";
pub const QUEUE_DEPTH: &str = "ossnotify_queue_depth";
pub const CONSUMER_LAG: &str = "ossnotify_consumer_lag";
/// 1 while a Kafka broker is reachable, else 0 (`/ready` follows it).
pub const SOURCE_CONNECTED: &str = "ossnotify_source_connected";
/// Events the offset tracker refused (stale, duplicate, out of range),
/// labelled `kind`.
pub const TRACKER_ANOMALIES: &str = "ossnotify_tracker_anomalies_total";
/// How stale notifications are when a sink accepts them: acceptance time
/// minus the operation's time (`eventTime`), a histogram labelled `sink`.
pub const EVENT_AGE: &str = "ossnotify_event_age_seconds";
/// Where a record's time in the pipeline goes: seconds from reading its
/// batch's first record to each stage, labelled `stage` (`queued`: handed
/// to the workers; `encoded`: its messages made and queued for the sinks;
/// `sent`: a delivery of its messages started; `settled`: that delivery
/// ended) and, from `sent` on, `sink`. Sampled once per batch; a histogram.
pub const STAGE_SECONDS: &str = "ossnotify_stage_seconds";
/// The age of the oldest record read and not yet committable.
pub const OLDEST_PENDING: &str = "ossnotify_oldest_pending_seconds";
/// How long this member's consumer group has been rebalancing (0 while it
/// is settled): nothing is consumed or committed meanwhile.
pub const GROUP_UNSETTLED: &str = "ossnotify_group_unsettled_seconds";

/// The event-age histogram's buckets, in seconds: from a quick pipeline to
/// an hour-long outage.
pub const EVENT_AGE_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
/// The stage histogram's buckets, in seconds: a millisecond apart at the
/// bottom, up to a backlog's worth.
pub const STAGE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Backlog metrics, labelled `sink`.
pub const BACKLOG_MESSAGES: &str = "ossnotify_sink_backlog_messages";
pub const BACKLOG_BYTES: &str = "ossnotify_sink_backlog_bytes";
pub const BACKLOG_OLDEST_AGE: &str = "ossnotify_sink_backlog_oldest_age_seconds";
pub const REDELIVERED: &str = "ossnotify_sink_redelivered_total";
/// Kafka store only, for a topic found with a finite `retention.ms`: how
/// long until its oldest undelivered message may expire.
pub const BACKLOG_RETENTION_HEADROOM: &str = "ossnotify_sink_backlog_retention_headroom_seconds";

/// Recorded by the sinks crate: retries (attempts after the first), the
/// breaker's state (0 closed, 1 open, 2 half-open), both labelled `sink`;
/// entries the dead-letter store's retention dropped, and corrupt entries
/// it found, labelled `store`.
pub use ossnotify_sinks::metric_names::{
    BREAKER_STATE, RETRIES, STORE_CORRUPT, STORE_RETENTION_DROPPED,
};
