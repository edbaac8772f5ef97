//! Delivery's own room: each sink's durable backlog, in either store
//! ([`backlog`]: on this member's disk, or in Kafka), and its redelivery
//! once the sink answers again ([`redelivery`] for the disk store,
//! [`kafka_redelivery`] for the Kafka store, where any member of the
//! group redelivers any sink's backlog).

pub mod backlog;
pub mod disk_backlog;
pub mod kafka_backlog;
pub mod kafka_redelivery;
pub mod redelivery;
