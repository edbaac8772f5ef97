//! Alibaba Cloud MNS sinks: `mns_topic` (PublishMessage) and `mns_queue`
//! (SendMessage / BatchSendMessage).

pub mod client;
pub mod config;
pub mod credentials;
pub mod sign;
pub mod sink;
pub mod xml;

pub use config::{MnsQueueConfig, MnsTopicConfig};

/// MNS's one size limit, 64 KB: of a message body, and of a request's XML
/// (PublishMessage, SendMessage, BatchSendMessage). A message over it can
/// never be delivered (`MessageTooLarge`).
pub const MAX_BYTES: usize = 64 * 1024;
