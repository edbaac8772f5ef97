//! Alibaba Cloud MNS sinks: `mns_topic` (PublishMessage) and `mns_queue`
//! (SendMessage / BatchSendMessage).

pub mod client;
pub mod config;
pub mod dev_server;
pub mod sign;
pub mod sink;
pub mod xml;

pub use config::{MnsQueueConfig, MnsTopicConfig};
