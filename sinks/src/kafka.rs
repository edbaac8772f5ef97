//! `type = "kafka"`: produce each message to a topic, keyed by bucket/key.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{Encoding, FieldIssue, SinkConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: String,
    /// Any librdkafka producer property.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
    #[serde(default)]
    pub encoding: Encoding,
}

impl SinkConfig for KafkaConfig {
    fn kind(&self) -> &'static str {
        "kafka"
    }
    fn encoding(&self) -> Encoding {
        self.encoding
    }
    fn build(&self, name: &str) -> Result<Box<dyn crate::Sink>, String> {
        Err(format!(
            "sinks.{name}: the kafka sink's producer is not built yet (it comes with the Kafka runtime); use another sink type for now"
        ))
    }
    fn validate(&self) -> Vec<FieldIssue> {
        let mut v = Vec::new();
        if self.brokers.trim().is_empty() {
            v.push(FieldIssue::new("brokers", "is empty"));
        }
        if self.topic.is_empty() {
            v.push(FieldIssue::new("topic", "is empty"));
        }
        v
    }
}
