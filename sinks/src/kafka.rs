//! `type = "kafka"`: produce each message to a topic, keyed by bucket/key,
//! with an idempotent producer; librdkafka's delivery reports are the
//! outcomes (it retries transient errors itself).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;

use crate::config::{Encoding, FieldIssue, SinkConfig};
use crate::sink::{Delivery, Envelope, Outcome, Sink};

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: String,
    /// Any librdkafka producer property.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
    #[serde(default)]
    pub encoding: Encoding,
    /// `aliyuneventbusname` with `encoding = "cloudevents"`.
    #[serde(default)]
    pub event_bus: Option<String>,
}

/// Credential properties (`sasl.password`, …) are hidden.
impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field(
                "librdkafka",
                &crate::config::Redacted {
                    map: &self.librdkafka,
                    all: false,
                },
            )
            .field("encoding", &self.encoding)
            .field("event_bus", &self.event_bus)
            .finish()
    }
}

impl SinkConfig for KafkaConfig {
    fn kind(&self) -> &'static str {
        "kafka"
    }
    fn encoding(&self) -> Encoding {
        self.encoding
    }
    fn event_bus(&self) -> Option<&str> {
        self.event_bus.as_deref()
    }
    fn build(&self, name: &str) -> Result<Box<dyn crate::Sink>, crate::config::BuildError> {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "30000");
        // The user's properties win.
        for (k, v) in &self.librdkafka {
            cc.set(k, v);
        }
        let producer: FutureProducer = cc.create()?;
        Ok(Box::new(KafkaSink {
            name: name.to_owned(),
            producer,
            topic: self.topic.clone(),
        }))
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

pub struct KafkaSink {
    name: String,
    producer: FutureProducer,
    topic: String,
}

impl Sink for KafkaSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_batch(&self) -> usize {
        1024
    }

    fn max_in_flight(&self) -> usize {
        4
    }

    fn deliver<'a>(&'a self, batch: &'a [Envelope]) -> Delivery<'a> {
        // All of the batch is enqueued at once (each future enqueues on its
        // first poll); each then waits for its delivery report. A full local
        // queue is waited out for up to 30 s.
        Box::pin(futures_util::future::join_all(batch.iter().map(
            |e| async move {
                let record = FutureRecord::to(&self.topic)
                    .key(e.key.as_bytes())
                    .payload(e.payload.as_bytes());
                match self.producer.send(record, Duration::from_secs(30)).await {
                    Ok(_) => Outcome::Delivered,
                    Err((err, _)) => Outcome::Failed {
                        error: format!("Kafka: {err}"),
                        attempts: 1,
                    },
                }
            },
        )))
    }
}
