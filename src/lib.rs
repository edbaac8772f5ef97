//! ossnotify: object-storage operation logs in, OSS event notifications out.
//!
//! The data takes one road, and the modules follow it:
//! [`oplog`] decodes a record, [`event`] maps its operation to event types,
//! [`rules`] finds the matching rules in a compiled index, [`encode`] writes
//! the notification JSON and its Base64; [`engine`] runs those four steps
//! for one record. [`config`] loads and validates what drives them.
//! [`pipeline`] is the daemon around the engine (sources, workers, sink
//! drivers, backlogs, offsets, and the metrics server); [`metric_names`]
//! names every metric it exports.
//!
//! Each of the other commands has a module of its own: [`dry_run`] is
//! `ossnotify match`, [`plan`] `plan`, [`backfill`] `backfill`,
//! [`expectations`] `test` (a config's expected notifications),
//! [`dead_letter_admin`] `dead-letter` and `replay`, [`backlog_admin`]
//! `backlog`, [`tap_client`] `tap` and [`loadgen`] `loadgen`;
//! [`synth`] makes the synthetic records and rules that `loadgen`, the
//! benchmarks and the tests use.

pub mod backfill;
pub mod backlog_admin;
pub mod config;
pub mod dead_letter_admin;
pub mod dry_run;
pub mod encode;
pub mod engine;
pub mod event;
pub mod expectations;
pub mod loadgen;
pub mod metric_names;
pub mod oplog;
pub mod pipeline;
pub mod plan;

pub mod rules;
pub mod synth;
pub mod tap_client;
