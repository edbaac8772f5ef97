//! Delivery's own room, from a sink's queue to the offset tracker:
//!
//! - [`driver`]: the task that feeds one sink, in batches, and settles
//!   every message (delivered, backlogged or dead-lettered) before it is
//!   acknowledged;
//! - [`backlog`]: a sink's durable backlog, in either store, on this
//!   member's disk ([`disk_backlog`]) or in Kafka ([`kafka_backlog`]);
//! - [`backlogs`]: every open backlog of the run, and where they are kept;
//! - redelivery once the sink answers again: [`redelivery`] for the disk
//!   store, [`kafka_redelivery`] for the Kafka store, where any member of
//!   the backlog group redelivers any sink's backlog.

pub mod backlog;
pub mod backlogs;
pub mod disk_backlog;
pub mod driver;
pub mod item;
pub mod kafka_backlog;
pub mod kafka_redelivery;
pub mod redelivery;
