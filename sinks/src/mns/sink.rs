//! The `mns_topic` and `mns_queue` sinks: the client plus the retry policy,
//! one outcome per envelope.

use crate::config::BuildError;
use std::time::Duration;

use super::client::{self, batches, MnsClient};
use super::config::{MnsQueueConfig, MnsTopicConfig};
use super::xml::OutMessage;
use super::MAX_BYTES;
use crate::breaker::Isolation;
use crate::config::RetryConfig;
use crate::sink::{Delivery, Envelope, Outcome, Sink};

/// The client of sink `name`, its retries counted under the name and
/// stopped by its breaker.
fn client_for(
    name: &str,
    c: &super::config::Connection<'_>,
    isolation: Option<&Isolation>,
) -> Result<MnsClient, BuildError> {
    let credentials = super::config::credentials_of(
        c.access_key_id,
        c.access_key_secret,
        c.security_token,
        c.credentials_file,
    )?;
    let roots = match c.ca_file {
        Some(p) => Some(std::fs::read(p).map_err(|cause| BuildError::File {
            what: "read ca_file",
            path: p.to_owned(),
            cause,
        })?),
        None => None,
    };
    Ok(MnsClient::with_roots(
        c.endpoint,
        "",
        crate::Secret::from(String::new()),
        Duration::from_millis(c.request_timeout_ms),
        roots.as_deref(),
    )?
    .with_credentials(credentials)
    .for_sink(name, isolation.map(|i| i.breaker.clone())))
}

/// MNS refuses bodies over 64 KB: such a message is never sent.
fn too_large(e: &Envelope) -> Option<Outcome> {
    (e.payload.len() > MAX_BYTES).then(|| Outcome::Failed {
        error: format!(
            "MessageTooLarge: {} bytes; MNS accepts at most {MAX_BYTES}",
            e.payload.len()
        ),
        attempts: 0,
    })
}

fn failed(f: client::Failure, attempts: u32) -> Outcome {
    use crate::retry::Classify;
    Outcome::of_failure(f.class(), f.to_string(), attempts)
}

/// A queue's or topic's attributes asked for once: its probe.
async fn probe(client: &MnsClient, resource: String) -> Result<(), crate::sink::ProbeFailure> {
    client
        .attributes(&resource)
        .await
        .map_err(|f| crate::sink::ProbeFailure {
            permanent: f.is_permanent(),
            answer: f.to_string(),
        })
}

pub struct MnsTopicSink {
    name: String,
    client: MnsClient,
    topic: String,
    tag: Option<String>,
    retry: RetryConfig,
    in_flight: usize,
    isolation: Option<Isolation>,
    /// PublishMessage requests under way, across every `deliver` call.
    permits: tokio::sync::Semaphore,
}

impl MnsTopicSink {
    pub fn new(name: &str, c: &MnsTopicConfig) -> Result<Self, BuildError> {
        let isolation = Isolation::new(name, &c.breaker, &c.backlog);
        Ok(MnsTopicSink {
            name: name.to_owned(),
            client: client_for(name, &c.connection(), isolation.as_ref())?,
            isolation,
            topic: c.topic.clone(),
            tag: c.message_tag.clone(),
            retry: c.retry.clone(),
            in_flight: c.request.max_in_flight,
            permits: tokio::sync::Semaphore::new(c.request.max_in_flight),
        })
    }
}

impl Sink for MnsTopicSink {
    fn name(&self) -> &str {
        &self.name
    }

    /// GetTopicAttributes.
    fn probe(&self) -> crate::sink::Probe<'_> {
        Box::pin(probe(&self.client, format!("/topics/{}", self.topic)))
    }

    /// One message per request: a batch is published concurrently, at most
    /// `max_in_flight` requests at a time across all calls.
    fn max_batch(&self) -> usize {
        self.in_flight
    }

    fn max_in_flight(&self) -> usize {
        self.in_flight
    }

    fn isolation(&self) -> Option<Isolation> {
        self.isolation.clone()
    }

    fn deliver<'a>(&'a self, batch: &'a [Envelope]) -> Delivery<'a> {
        Box::pin(futures_util::future::join_all(batch.iter().map(
            |e| async move {
                if let Some(o) = too_large(e) {
                    return o;
                }
                let m = OutMessage {
                    body: e.payload.clone(),
                    tag: self.tag.clone(),
                    ..OutMessage::default()
                };
                // The semaphore is never closed; an error would mean shutdown.
                let Ok(_permit) = self.permits.acquire().await else {
                    return Outcome::Deferred {
                        error: "Closed: sink is shutting down".into(),
                        attempts: 0,
                    };
                };
                match client::publish_with_retry(&self.client, &self.topic, &m, &self.retry).await {
                    Ok(_) => Outcome::Delivered,
                    Err((f, n)) => failed(f, n),
                }
            },
        )))
    }
}

pub struct MnsQueueSink {
    name: String,
    client: MnsClient,
    queue: String,
    batch_size: usize,
    delay_seconds: Option<u32>,
    priority: Option<u32>,
    retry: RetryConfig,
    in_flight: usize,
    isolation: Option<Isolation>,
    linger: std::time::Duration,
    /// Requests under way, across every `deliver` call.
    permits: tokio::sync::Semaphore,
}

impl MnsQueueSink {
    pub fn new(name: &str, c: &MnsQueueConfig) -> Result<Self, BuildError> {
        let isolation = Isolation::new(name, &c.breaker, &c.backlog);
        Ok(MnsQueueSink {
            name: name.to_owned(),
            client: client_for(name, &c.connection(), isolation.as_ref())?,
            isolation,
            queue: c.queue.clone(),
            batch_size: c.batch.max_messages,
            delay_seconds: c.delay_seconds,
            priority: c.priority,
            linger: std::time::Duration::from_millis(c.batch.linger_ms),
            retry: c.retry.clone(),
            in_flight: c.request.max_in_flight,
            permits: tokio::sync::Semaphore::new(c.request.max_in_flight),
        })
    }
}

impl Sink for MnsQueueSink {
    fn name(&self) -> &str {
        &self.name
    }

    /// GetQueueAttributes.
    fn probe(&self) -> crate::sink::Probe<'_> {
        Box::pin(probe(&self.client, format!("/queues/{}", self.queue)))
    }

    /// A whole request's worth for every permit: one call keeps them all busy.
    fn max_batch(&self) -> usize {
        self.batch_size * self.in_flight
    }

    fn max_in_flight(&self) -> usize {
        self.in_flight
    }

    fn isolation(&self) -> Option<Isolation> {
        self.isolation.clone()
    }

    fn linger(&self) -> std::time::Duration {
        self.linger
    }

    fn deliver<'a>(&'a self, batch: &'a [Envelope]) -> Delivery<'a> {
        Box::pin(async move {
            let mut out: Vec<Option<Outcome>> = batch.iter().map(too_large).collect();
            let sendable: Vec<usize> = (0..batch.len()).filter(|i| out[*i].is_none()).collect();
            let ms: Vec<OutMessage> = sendable
                .iter()
                .map(|&i| OutMessage {
                    body: batch[i].payload.clone(),
                    delay_seconds: self.delay_seconds,
                    priority: self.priority,
                    tag: None,
                })
                .collect();
            // Requests go out concurrently, at most `max_in_flight` at once.
            let requests = batches(&ms, self.batch_size).into_iter().map(|r| {
                let ms = &ms;
                async move {
                    let results = match self.permits.acquire().await {
                        Ok(_permit) => {
                            client::send_with_retry(
                                &self.client,
                                &self.queue,
                                &ms[r.clone()],
                                &self.retry,
                            )
                            .await
                        }
                        // The semaphore is never closed; an error would mean shutdown.
                        Err(_) => (0..r.len())
                            .map(|_| {
                                Err((
                                    client::Failure::Transient {
                                        code: "Closed".into(),
                                        message: "sink is shutting down".into(),
                                    },
                                    0,
                                ))
                            })
                            .collect(),
                    };
                    (r, results)
                }
            });
            for (r, results) in futures_util::future::join_all(requests).await {
                for (j, res) in r.zip(results) {
                    out[sendable[j]] = Some(match res {
                        Ok(_) => Outcome::Delivered,
                        Err((f, n)) => failed(f, n),
                    });
                }
            }
            out.into_iter()
                .map(|o| o.expect("every envelope has an outcome"))
                .collect()
        })
    }
}
