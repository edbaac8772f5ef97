//! A sink's backlog in Kafka (`[backlog] store = "kafka"`, the default
//! with a Kafka source): one topic per sink (`{topic_prefix}{sink}`),
//! created at start with `retention.ms = -1`, written with `acks=all` and
//! idempotence before the source offset is committed, and redelivered by
//! whichever member the backlog group (`{group_id}.backlog`) assigns it to
//! ([`super::kafka_redelivery`]). No member's disk holds a message: a
//! member killed and never started again loses nothing.
//!
//! A message keeps its payload as the value, its `bucket/key` as the key
//! (one partition by default, so the whole backlog keeps its order; with
//! more, the order of each object's messages), and the rest in headers:
//! `ossnotify.rule`, `ossnotify.key`, `ossnotify.event_time_ms`.
//!
//! The bound: the cluster alone knows what waits, so each member measures
//! it (the backlog group's committed offsets against the topic's end,
//! every few seconds) and adds what it wrote since; bytes are that count
//! times the mean size of the messages this member wrote (docs/config.md).

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ossnotify_sinks::kafka_store::{read, AckedProducer, Record};
use rdkafka::consumer::BaseConsumer;
use rdkafka::ClientConfig;

use crate::metric_names::{
    BACKLOG_BYTES, BACKLOG_MESSAGES, BACKLOG_OLDEST_AGE, BACKLOG_RETENTION_HEADROOM,
};
use ossnotify_sinks::Envelope;
use rdkafka::message::{Headers, Message};

pub const RULE: &str = "ossnotify.rule";
pub const KEY: &str = "ossnotify.key";
pub const EVENT_TIME: &str = "ossnotify.event_time_ms";
/// One backlog topic being redelivered.
#[derive(Clone)]
pub struct Watched {
    pub sink: String,
    pub size: Arc<Size>,
    /// `retention.ms` of a topic found with a finite one.
    pub retention_ms: Option<i64>,
}

/// The backlog topics to redeliver, by topic; changed on start and reload.
pub type Watching = Arc<Mutex<BTreeMap<String, Watched>>>;

/// Where the message's record came from (`topic/partition/offset`).
pub const SOURCE: &str = "ossnotify.source";

/// What is known of a Kafka backlog's size, shared by its writer and the
/// member's measurement.
#[derive(Debug, Default)]
pub struct Size {
    /// Waiting at the last measurement.
    pub measured: AtomicU64,
    /// Written by this member since.
    pub written_since: AtomicU64,
    /// Written by this member in all: messages and bytes (for the mean).
    pub written: AtomicU64,
    pub written_bytes: AtomicU64,
}

impl Size {
    pub fn waiting(&self) -> u64 {
        self.measured.load(Ordering::Relaxed) + self.written_since.load(Ordering::Relaxed)
    }

    /// `waiting` messages in bytes, at the mean size this member wrote
    /// (1 KiB before it wrote any).
    pub fn bytes(&self, waiting: u64) -> u64 {
        let n = self.written.load(Ordering::Relaxed);
        let mean = self
            .written_bytes
            .load(Ordering::Relaxed)
            .checked_div(n)
            .unwrap_or(1024);
        waiting.saturating_mul(mean)
    }
}

pub struct KafkaBacklog {
    topic: String,
    producer: Arc<AckedProducer>,
    max_bytes: u64,
    pub size: Arc<Size>,
}

impl KafkaBacklog {
    pub fn new(
        topic: String,
        producer: Arc<AckedProducer>,
        max_bytes: u64,
        size: Arc<Size>,
    ) -> KafkaBacklog {
        KafkaBacklog {
            topic,
            producer,
            max_bytes,
            size,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn waiting(&self) -> u64 {
        self.size.waiting()
    }

    pub fn has_room(&self) -> bool {
        self.size.bytes(self.size.waiting()) < self.max_bytes
    }

    /// Writes `envelopes`; returns once the cluster has every one.
    pub async fn push(&self, envelopes: &[&Envelope], sources: &[String]) -> io::Result<()> {
        if envelopes.is_empty() {
            return Ok(());
        }
        let records: Vec<Record> = envelopes
            .iter()
            .enumerate()
            .map(|(i, e)| self.record(e, sources.get(i).map_or("", String::as_str)))
            .collect();
        self.producer
            .write(&records)
            .await
            .map_err(io::Error::other)?;
        let bytes: u64 = envelopes.iter().map(|e| e.payload.len() as u64).sum();
        let n = envelopes.len() as u64;
        self.size.written_since.fetch_add(n, Ordering::Relaxed);
        self.size.written.fetch_add(n, Ordering::Relaxed);
        self.size.written_bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    fn record(&self, e: &Envelope, source: &str) -> Record {
        Record {
            topic: self.topic.clone(),
            partition: None,
            key: Some(e.key.clone()),
            value: e.payload.as_bytes().to_vec(),
            headers: vec![
                (RULE, e.rule_id.clone()),
                (KEY, e.key.clone()),
                (EVENT_TIME, e.event_time_ms.to_string()),
                (SOURCE, source.to_owned()),
            ],
        }
    }
}

/// The envelope a backlog message holds.
pub fn envelope_of(m: &impl Message) -> Envelope {
    let mut headers = Vec::new();
    if let Some(h) = m.headers() {
        for i in 0..h.count() {
            let hd = h.get(i);
            headers.push((hd.key, hd.value.unwrap_or_default()));
        }
    }
    envelope_from(m.payload().unwrap_or_default(), headers)
}

/// The envelope of a backlog message's value and headers.
pub fn envelope_from<'a>(
    payload: &[u8],
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Envelope {
    let mut e = Envelope {
        payload: String::from_utf8_lossy(payload).into_owned(),
        ..Envelope::default()
    };
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v);
        match k {
            RULE => e.rule_id = v.into_owned(),
            KEY => e.key = v.into_owned(),
            EVENT_TIME => e.event_time_ms = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    e
}

/// How often each backlog is measured.
const MEASURE_EVERY: Duration = Duration::from_secs(3);

/// Measures every watched backlog until `stop`.
pub fn measure(c: &BaseConsumer, cc: &ClientConfig, watching: &Watching, stop: &AtomicBool) {
    let mut last = Instant::now() - MEASURE_EVERY;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < MEASURE_EVERY {
            continue;
        }
        last = Instant::now();
        let watched: Vec<(String, Watched)> = watching
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(t, w)| (t.clone(), w.clone()))
            .collect();
        for (topic, w) in watched {
            let marks = match read::watermarks(c, &topic) {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(topic, error = %e, "backlog: cannot measure");
                    continue;
                }
            };
            let waiting = marks.waiting();
            w.size.written_since.store(0, Ordering::Relaxed);
            w.size.measured.store(waiting, Ordering::Relaxed);
            let oldest = if waiting > 0 {
                read::oldest_time(cc, &topic, &marks).ok().flatten()
            } else {
                None
            };
            let age = oldest.map_or(0.0, |t| {
                (ossnotify_sinks::store::now_ms() as i64 - t).max(0) as f64 / 1000.0
            });
            let sink = w.sink.clone();
            metrics::gauge!(BACKLOG_MESSAGES, "sink" => sink.clone()).set(waiting as f64);
            metrics::gauge!(BACKLOG_BYTES, "sink" => sink.clone())
                .set(w.size.bytes(waiting) as f64);
            metrics::gauge!(BACKLOG_OLDEST_AGE, "sink" => sink.clone()).set(age);
            if let Some(r) = w.retention_ms {
                metrics::gauge!(BACKLOG_RETENTION_HEADROOM, "sink" => sink)
                    .set(r as f64 / 1000.0 - age);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_through_value_and_headers() {
        let e = Envelope {
            payload: "eyJhIjoxfQ==".into(),
            rule_id: "r".into(),
            key: "b/k ü".into(),
            event_time_ms: 1_700_000_000_123,
        };
        let size = Arc::new(Size::default());
        let producer = Arc::new(
            AckedProducer::new(&rdkafka::ClientConfig::new()).expect("a producer needs no broker"),
        );
        let r = KafkaBacklog::new("t".into(), producer, 1 << 20, size).record(&e, "t/0/7");
        assert!(r.headers.contains(&(SOURCE, "t/0/7".into())));
        let headers: Vec<(&str, &[u8])> =
            r.headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        assert_eq!(envelope_from(&r.value, headers), e);
        assert_eq!(r.key.as_deref(), Some("b/k ü"));
    }

    #[test]
    fn the_bound_counts_what_was_written_since_the_last_measure() {
        let s = Size::default();
        assert_eq!(s.bytes(10), 10 * 1024, "1 KiB a message before any write");
        s.measured.store(5, Ordering::Relaxed);
        s.written_since.store(3, Ordering::Relaxed);
        s.written.store(4, Ordering::Relaxed);
        s.written_bytes.store(400, Ordering::Relaxed);
        assert_eq!(s.waiting(), 8);
        assert_eq!(s.bytes(s.waiting()), 800);
    }
}
