//! A producer for the stores: every write returns only once the cluster
//! has it (`acks=all`, idempotent, so a retry inside librdkafka never
//! duplicates or reorders), which is what lets the source commit the offset
//! of a record whose messages went to a store.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

/// One message to write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    /// `None`: the producer's partitioner picks (by key).
    pub partition: Option<i32>,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// An idempotent `acks=all` producer.
pub struct AckedProducer {
    producer: FutureProducer,
}

impl AckedProducer {
    /// A producer on `cc` (see [`super::client_config`]).
    pub fn new(cc: &ClientConfig) -> Result<AckedProducer, KafkaError> {
        let mut cc = cc.clone();
        cc.set("acks", "all")
            .set("enable.idempotence", "true")
            // A store write waits for its acknowledgement: a short linger
            // batches a burst without adding much to one write.
            .set("linger.ms", "2")
            // Longer than a broker restart: a store write that times out
            // fails the run (exit 2), which is worse than waiting.
            .set("message.timeout.ms", "120000");
        Ok(AckedProducer {
            producer: cc.create()?,
        })
    }

    /// Writes `records` and waits until the cluster has every one.
    pub async fn write(&self, records: &[Record]) -> Result<(), KafkaError> {
        let mut waiting = Vec::with_capacity(records.len());
        for r in records {
            waiting.push(self.enqueue(r, true).await?);
        }
        Self::acked(waiting).await
    }

    /// [`AckedProducer::write`] for a caller that is not async (it blocks
    /// this thread, as a synced write to disk does).
    pub fn write_blocking(&self, records: &[Record]) -> Result<(), KafkaError> {
        let mut waiting = Vec::with_capacity(records.len());
        for r in records {
            waiting.push(super::block_on(self.enqueue(r, false))?);
        }
        super::block_on(Self::acked(waiting))
    }

    async fn acked(waiting: Vec<DeliveryFuture>) -> Result<(), KafkaError> {
        let mut first = None;
        for w in waiting {
            let r = match w.await {
                Ok(Ok(_)) => continue,
                Ok(Err((e, _))) => e,
                Err(_) => KafkaError::Canceled,
            };
            first.get_or_insert(r);
        }
        first.map_or(Ok(()), Err)
    }

    /// Hands one record to librdkafka, waiting while its queue is full.
    async fn enqueue(&self, r: &Record, in_runtime: bool) -> Result<DeliveryFuture, KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        loop {
            let mut rec = FutureRecord::<str, [u8]>::to(&r.topic)
                .payload(&r.value)
                .headers(headers.clone());
            if let Some(k) = &r.key {
                rec = rec.key(k.as_str());
            }
            if let Some(p) = r.partition {
                rec = rec.partition(p);
            }
            match self.producer.send_result(rec) {
                Ok(f) => return Ok(f),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    let wait = Duration::from_millis(5);
                    if in_runtime {
                        tokio::time::sleep(wait).await;
                    } else {
                        std::thread::sleep(wait);
                    }
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
}
