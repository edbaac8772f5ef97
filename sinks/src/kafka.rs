//! `type = "kafka"`: produce each message to a topic, keyed by bucket/key,
//! with an idempotent producer; librdkafka's delivery reports are the
//! outcomes (it retries transient errors itself, within `message.timeout.ms`).
//! An error that outlives those retries (a timeout, brokers unreachable) is
//! transient for the breaker: the message waits in the sink's backlog
//! rather than in the dead-letter store. CloudEvents travel as
//! CloudEvents' Kafka binding says: structured (the event as the value,
//! `content-type: application/cloudevents+json`) or binary (`ce_*`
//! headers, `data` as the value).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::Deserialize;

use crate::breaker::{BacklogConfig, BreakerConfig, Isolation};
use crate::cloudevents_binding::{BinaryEvent, CloudEventsMode, STRUCTURED_CONTENT_TYPE};
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
    #[serde(default)]
    pub breaker: BreakerConfig,
    #[serde(default)]
    pub backlog: BacklogConfig,
}

/// How long librdkafka tries a message (`message.timeout.ms`) unless the
/// config says: with a breaker, a dead cluster should reach it soon (the
/// sink's queue waits that long before the backlog takes over); without
/// one, the message is dead-lettered after it, so it tries longer.
const TIMEOUT_ISOLATED_MS: &str = "10000";
const TIMEOUT_MS: &str = "30000";

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
            .field("breaker", &self.breaker)
            .field("backlog", &self.backlog)
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
            .set(
                "message.timeout.ms",
                if self.breaker.enabled {
                    TIMEOUT_ISOLATED_MS
                } else {
                    TIMEOUT_MS
                },
            );
        // A topic the cluster says it lacks fails its messages after this
        // wait (librdkafka's default is 30 s): well before their
        // `message.timeout.ms`, so that it is told from an outage and
        // dead-lettered, not kept in the backlog.
        cc.set("topic.metadata.propagation.max.ms", "5000");
        // The user's properties win.
        for (k, v) in &self.librdkafka {
            cc.set(k, v);
        }
        let producer: FutureProducer = cc.create().map_err(crate::config::BuildError::Kafka)?;
        Ok(Box::new(KafkaSink {
            name: name.to_owned(),
            producer: RwLock::new(Arc::new(producer)),
            client_config: cc,
            topic: self.topic.clone(),
            cloudevents: match self.encoding {
                Encoding::CloudEvents => Some(self.cloudevents_mode),
                _ => None,
            },
            isolation: Isolation::new(name, &self.breaker, &self.backlog),
        }))
    }
    fn isolated(&self) -> bool {
        self.breaker.enabled
    }
    fn validate(&self) -> Vec<FieldIssue> {
        let mut v = Vec::new();
        if self.brokers.trim().is_empty() {
            v.push(FieldIssue::new("brokers", "is empty"));
        }
        if self.topic.is_empty() {
            v.push(FieldIssue::new("topic", "is empty"));
        }
        crate::cloudevents_binding::check_mode(self.cloudevents_mode, self.encoding, &mut v);
        crate::config::check_isolation(&self.breaker, &self.backlog, &mut v);
        v
    }
}

pub struct KafkaSink {
    name: String,
    /// Replaced when it breaks (see [`KafkaSink::replace_if_broken`]).
    producer: RwLock<Arc<FutureProducer>>,
    client_config: ClientConfig,
    topic: String,
    /// The content mode, when the payloads are CloudEvents.
    cloudevents: Option<CloudEventsMode>,
    isolation: Option<Isolation>,
}

/// Whether a produce error that librdkafka gave up on may pass: the
/// cluster or the partition's leader was out of reach, or too slow. Any
/// other error (too large, not authorized, a topic that does not exist)
/// is the message's or the config's, and final.
fn transient(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    match e {
        KafkaError::MessageProduction(code) => matches!(
            code,
            C::MessageTimedOut
                | C::QueueFull
                | C::AllBrokersDown
                | C::BrokerTransportFailure
                | C::RequestTimedOut
                | C::NetworkException
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::NotEnoughReplicas
                | C::NotEnoughReplicasAfterAppend
                | C::BrokerNotAvailable
        ),
        // The producer went away under the message (a reload).
        KafkaError::Canceled => true,
        _ => false,
    }
}

impl KafkaSink {
    fn producer(&self) -> Arc<FutureProducer> {
        self.producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// After a failed send: whether `used` is broken. An idempotent
    /// producer is when librdkafka says it failed fatally, or when the
    /// cluster no longer takes its producer id or epoch (tansu fences it
    /// after an outage outlasted `message.timeout.ms`): it then fails every
    /// later send the same way, so a new producer, with a new id, replaces
    /// it (once, however many sends saw it fail). The message was not
    /// delivered and may be sent again: the failure is transient.
    fn replace_if_broken(&self, used: &Arc<FutureProducer>, err: &KafkaError) -> bool {
        use RDKafkaErrorCode as C;
        let (code, reason) = match (used.client().fatal_error(), err) {
            (Some(fatal), _) => fatal,
            (
                None,
                KafkaError::MessageProduction(
                    code @ (C::ProducerFenced
                    | C::InvalidProducerEpoch
                    | C::UnknownProducerId
                    | C::InvalidProducerIdMapping
                    | C::OutOfOrderSequenceNumber),
                ),
            ) => (*code, err.to_string()),
            _ => return false,
        };
        let mut current = self.producer.write().unwrap_or_else(|p| p.into_inner());
        if Arc::ptr_eq(&current, used) {
            match self.client_config.create::<FutureProducer>() {
                Ok(p) => {
                    tracing::warn!(sink = %self.name, ?code, %reason, "the Kafka producer is broken: a new one takes over");
                    *current = Arc::new(p);
                }
                // The next failure tries again.
                Err(e) => {
                    tracing::error!(sink = %self.name, error = %e, "the Kafka producer is broken and a new one cannot be created")
                }
            }
        }
        true
    }

    async fn send(&self, producer: &Arc<FutureProducer>, e: &Envelope) -> Outcome {
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
        // A full local queue is waited out for up to 30 s.
        let sent = producer.send(record, Duration::from_secs(30)).await;
        let breaker = self.isolation.as_ref().map(|i| &i.breaker);
        match sent {
            Ok(_) => {
                breaker.inspect(|b| b.record_up());
                Outcome::Delivered
            }
            Err((err, _)) => {
                let error = format!("Kafka: {err}");
                // librdkafka retried already: one attempt as we see it.
                let class = if transient(&err) || self.replace_if_broken(producer, &err) {
                    crate::retry::Class::Retry
                } else {
                    crate::retry::Class::Permanent
                };
                match class {
                    crate::retry::Class::Permanent => breaker.inspect(|b| b.record_up()),
                    _ => {
                        crate::log_limit::transient(&self.name, &error);
                        breaker.inspect(|b| b.record_down(&error))
                    }
                };
                Outcome::of_failure(class, error, 1)
            }
        }
    }

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

    /// The topic's metadata: a topic the cluster does not have, or may not
    /// be written by these credentials, is final.
    fn probe(&self) -> crate::sink::Probe<'_> {
        use crate::sink::ProbeFailure;
        use rdkafka::types::RDKafkaRespErr;
        let (producer, topic) = (self.producer(), self.topic.clone());
        Box::pin(async move {
            let asked = tokio::task::spawn_blocking(move || {
                let md = producer
                    .client()
                    .fetch_metadata(Some(&topic), Duration::from_secs(5))?;
                Ok::<_, rdkafka::error::KafkaError>(md.topics().first().and_then(|t| t.error()))
            })
            .await;
            match asked {
                Ok(Ok(None)) => Ok(()),
                Ok(Ok(Some(e))) => Err(ProbeFailure {
                    permanent: matches!(
                        e,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                            | RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED
                            | RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION
                    ),
                    answer: format!("Kafka: {}", rdkafka::types::RDKafkaErrorCode::from(e)),
                }),
                Ok(Err(e)) => Err(ProbeFailure {
                    permanent: false,
                    answer: format!("Kafka: {e}"),
                }),
                Err(e) => Err(ProbeFailure {
                    permanent: false,
                    answer: format!("Kafka: the probe did not finish: {e}"),
                }),
            }
        })
    }

    fn max_batch(&self) -> usize {
        1024
    }

    fn max_in_flight(&self) -> usize {
        4
    }

    fn isolation(&self) -> Option<Isolation> {
        self.isolation.clone()
    }

    fn deliver<'a>(&'a self, batch: &'a [Envelope]) -> Delivery<'a> {
        // All of the batch is enqueued at once (each future enqueues on its
        // first poll); each then waits for its delivery report.
        Box::pin(async move {
            let producer = self.producer();
            futures_util::future::join_all(batch.iter().map(|e| self.send(&producer, e))).await
        })
    }
}
