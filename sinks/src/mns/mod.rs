//! Alibaba Cloud MNS sinks: `mns_topic` (PublishMessage) and `mns_queue`
//! (SendMessage / BatchSendMessage).

pub mod config;

pub use config::{MnsQueueConfig, MnsTopicConfig};
