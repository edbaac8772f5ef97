//! The run's stores: the dead-letter store, the sinks' backlogs, and the
//! Kafka topics either keeps its messages in.

use std::time::Duration;

use ossnotify_sinks::DeadLetterStore;

use super::RunError;
use crate::config::{Config, SinkEntry, Stores};
use crate::pipeline::supervisor::Supervisor;

/// The dead-letter store `config` names: in Kafka, its topic created at
/// start if missing.
pub(super) fn open_store(stores: Stores<'_>) -> Result<DeadLetterStore, RunError> {
    use crate::config::StoreKind;
    use ossnotify_sinks::kafka_store::dead_letters::KafkaDeadLetters;
    match stores.dead_letter_store() {
        StoreKind::Disk => {
            DeadLetterStore::open_with(&stores.dead_letter.path, stores.dead_letter.store_options())
                .map_err(|source| RunError::DeadLetterStore {
                    place: format!("directory {}", stores.dead_letter.path.display()),
                    cause: source,
                })
        }
        StoreKind::Kafka => {
            let client = stores.store_client();
            let topic = stores.dead_letter_topic();
            let k = KafkaDeadLetters::new(&client, &topic, &stores.dead_letter_group()).map_err(
                |source| RunError::DeadLetterStore {
                    place: format!("topic {topic}"),
                    cause: source,
                },
            )?;
            Ok(DeadLetterStore::kafka(k))
        }
    }
}

/// The Kafka dead-letter topic `config` asks for.
pub(super) fn dead_letter_topic(stores: Stores<'_>) -> ossnotify_sinks::kafka_store::TopicSpec {
    ossnotify_sinks::kafka_store::TopicSpec {
        name: stores.dead_letter_topic(),
        partitions: stores.dead_letter.partitions,
        replication_factor: stores.dead_letter.replication_factor,
        // The cluster's default: a dead letter is kept as long as the
        // cluster keeps messages, unless the topic says otherwise.
        retention_ms: None,
    }
}

/// The Kafka topics `config`'s stores use, each with what it holds.
pub(super) fn store_topic_specs(
    stores: Stores<'_>,
    sinks: &[SinkEntry],
) -> Vec<(String, ossnotify_sinks::kafka_store::TopicSpec)> {
    use crate::config::StoreKind;
    let mut out = Vec::new();
    if stores.dead_letter_store() == StoreKind::Kafka {
        out.push(("dead letters".into(), dead_letter_topic(stores)));
    }
    if stores.backlog_store() == StoreKind::Kafka {
        for s in sinks.iter().filter(|s| s.config.isolated()) {
            let spec = ossnotify_sinks::kafka_store::TopicSpec {
                name: stores.backlog_topic(&s.name),
                partitions: stores.backlog.partitions,
                replication_factor: stores.backlog.replication_factor,
                retention_ms: Some(-1),
            };
            out.push((format!("sink {}'s backlog messages", s.name), spec));
        }
    }
    out
}

/// The Kafka topics `config`'s stores use, each described for a person:
/// what it holds, its name and its settings.
pub fn store_topics(config: &Config) -> Vec<String> {
    store_topic_specs(config.stores(), &config.sinks)
        .into_iter()
        .map(|(what, spec)| {
            format!(
                "{what} go to Kafka topic {} ({} partitions, replication factor {}{})",
                spec.name,
                spec.partitions,
                spec.replication_factor,
                spec.retention_ms
                    .map_or(String::new(), |r| format!(", retention.ms {r}"))
            )
        })
        .collect()
}

/// Creates every store topic the cluster lacks, in one request: a cluster
/// that refuses gets one error naming them all. A cluster that does not
/// answer is asked again, with backoff, until it does or the run is
/// stopped (false), as the source waits for it: said at a limited rate,
/// not ready meanwhile.
pub(super) fn ensure_store_topics(
    stores: Stores<'_>,
    sinks: &[SinkEntry],
    supervisor: &Supervisor,
) -> Result<bool, RunError> {
    let specs: Vec<_> = store_topic_specs(stores, sinks)
        .into_iter()
        .map(|s| s.1)
        .collect();
    if specs.is_empty() {
        return Ok(true);
    }
    let log = ossnotify_sinks::log_limit::LogLimit::default();
    let mut wait = Duration::from_secs(1);
    loop {
        // What exists with a finite retention is warned about by the drivers.
        // A short request, so that a stop is not kept waiting.
        let timeout = Duration::from_secs(5);
        match ossnotify_sinks::kafka_store::ensure_topics(&stores.store_client(), &specs, timeout) {
            Ok(_) => return Ok(true),
            Err(e) if e.unreachable => {
                metrics::gauge!(crate::metric_names::SOURCE_CONNECTED).set(0.0);
                if let Some(n) = log.admit("unreachable") {
                    let cause = e.refused.first().map(|r| r.1.clone()).unwrap_or_default();
                    tracing::warn!(cause, like_this_since_last_logged = n, "every Kafka broker is unreachable: the store topics cannot be checked or created yet; retrying (logged at most every 30 s)");
                }
            }
            Err(e) => return Err(e.into()),
        }
        let until = std::time::Instant::now() + wait;
        while std::time::Instant::now() < until {
            if supervisor.stopping() {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// Where `config` keeps the sinks' backlogs.
pub(super) fn backlog_store(
    stores: Stores<'_>,
    redeliver: bool,
) -> crate::pipeline::delivery::backlogs::BacklogStore {
    use crate::pipeline::delivery::backlogs::{BacklogStore, KafkaBacklogs};
    match stores.backlog_store() {
        crate::config::StoreKind::Disk => BacklogStore::Disk(stores.backlog_path()),
        crate::config::StoreKind::Kafka => {
            let mut k = KafkaBacklogs::new(stores);
            k.redeliver = redeliver;
            BacklogStore::Kafka(Box::new(k))
        }
    }
}
