//! ossnotify: object-storage operation logs in, OSS event notifications out.
//!
//! The data takes one road, and the modules follow it:
//! [`oplog`] decodes a record, [`event`] maps its operation to event types,
//! [`rules`] finds the matching rules in a compiled index, [`encode`] writes
//! the notification JSON and its Base64; [`config`] loads and validates what
//! drives them, [`dry_run`] is `ossnotify match` and [`plan`] is
//! `ossnotify plan`.

pub mod backfill;
pub mod backlog;
pub mod config;
pub mod config_tests;
pub mod dead_letter;
pub mod dry_run;
pub mod encode;
pub mod engine;
pub mod event;
pub mod loadgen;
pub mod oplog;
pub mod pipeline;
pub mod plan;

pub mod rules;
pub mod synth;
pub mod tap_client;
pub mod telemetry;
