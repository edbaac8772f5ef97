//! `type = "kafka"`: produce each message to a topic, keyed by bucket/key,
//! with an idempotent producer; librdkafka's delivery reports are the
//! outcomes (it retries transient errors itself). CloudEvents travel as
//! CloudEvents' Kafka binding says: structured (the event as the value,
//! `content-type: application/cloudevents+json`) or binary (`ce_*`
//! headers, `data` as the value).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;

use crate::cloudevents::{BinaryEvent, CloudEventsMode, STRUCTURED_CONTENT_TYPE};
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
    /// With `encoding = "cloudevents"`: structured or binary content mode.
    #[serde(default)]
    pub cloudevents_mode: CloudEventsMode,
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
            .field("cloudevents_mode", &self.cloudevents_mode)
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
            cloudevents: match self.encoding {
                Encoding::CloudEvents => Some(self.cloudevents_mode),
                _ => None,
            },
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
        crate::cloudevents::check_mode(self.cloudevents_mode, self.encoding, &mut v);
        v
    }
}

pub struct KafkaSink {
    name: String,
    producer: FutureProducer,
    topic: String,
    /// The content mode, when the payloads are CloudEvents.
    cloudevents: Option<CloudEventsMode>,
}

impl KafkaSink {
    /// The record's value and headers for one payload; a payload binary
    /// mode cannot split is a permanent failure.
    fn value_and_headers<'p>(
        &self,
        payload: &'p str,
    ) -> Result<(&'p str, Option<OwnedHeaders>), String> {
        fn one<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a [u8]> {
            Header {
                key,
                value: Some(value.as_bytes()),
            }
        }
        match self.cloudevents {
            None => Ok((payload, None)),
            Some(CloudEventsMode::Structured) => Ok((
                payload,
                Some(OwnedHeaders::new().insert(one("content-type", STRUCTURED_CONTENT_TYPE))),
            )),
            Some(CloudEventsMode::Binary) => {
                let ev = BinaryEvent::from_structured(payload)?;
                let mut headers = OwnedHeaders::new_with_capacity(ev.attributes.len() + 1)
                    .insert(one("content-type", &ev.content_type));
                for (key, value) in ev.kafka_headers() {
                    headers = headers.insert(one(&key, value));
                }
                Ok((ev.data, Some(headers)))
            }
        }
    }
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
                let (value, headers) = match self.value_and_headers(&e.payload) {
                    Ok(v) => v,
                    Err(error) => return Outcome::Failed { error, attempts: 1 },
                };
                let mut record = FutureRecord::to(&self.topic)
                    .key(e.key.as_bytes())
                    .payload(value.as_bytes());
                if let Some(headers) = headers {
                    record = record.headers(headers);
                }
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
