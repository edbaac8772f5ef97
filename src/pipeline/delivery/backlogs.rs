//! Every open backlog of the run, by sink name, in the store the config
//! names (`[backlog] store`), with its redelivery: a task per sink for the
//! disk store, the member's backlog group for the Kafka store. A backlog
//! belongs to its sink's name and outlives a reload that replaces the
//! sink; a removed sink's backlog waits, unsent, until the sink is back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ossnotify_sinks::breaker::Isolation;
use ossnotify_sinks::kafka_store::AckedProducer;
use ossnotify_sinks::{DeadLetterStore, Sink};

use super::backlog::Backlog;
use super::disk_backlog::{self, DiskBacklog};
use super::kafka_backlog::Watched;
use super::kafka_backlog::{KafkaBacklog, Size};
use super::kafka_redelivery::{KafkaRedelivery, Wiring};
use super::redelivery::{self, CurrentSinks, Redelivered, Redelivery};
use crate::config::Stores;
use crate::pipeline::error::PipelineError;
use crate::pipeline::supervisor::Supervisor;

/// Where the sinks' backlogs are kept (`[backlog] store`).
pub enum BacklogStore {
    /// A directory per sink under this one.
    Disk(std::path::PathBuf),
    /// A topic per sink in the source's cluster.
    Kafka(Box<KafkaBacklogs>),
}

/// The Kafka backlog store: how to reach it and name its topics, its
/// producer, and the member's redelivery (started with the first backlog).
pub struct KafkaBacklogs {
    pub client: rdkafka::ClientConfig,
    /// The source's group settings the backlog group follows too.
    pub group_settings: Vec<(String, String)>,
    /// Each sink's topic is this followed by its name.
    pub topic_prefix: String,
    pub group: String,
    pub partitions: i32,
    pub replication_factor: i32,
    producer: Mutex<Option<Arc<AckedProducer>>>,
    redelivery: Mutex<Option<KafkaRedelivery>>,
    /// Whether this process redelivers (joins the backlog group). A
    /// backfill does not: it would make the live members' backlog group
    /// rebalance as it starts and ends, and they redeliver its backlog.
    pub redeliver: bool,
    /// Topics found with a finite `retention.ms`.
    retention: Mutex<HashMap<String, i64>>,
}

impl KafkaBacklogs {
    pub fn new(stores: Stores<'_>) -> KafkaBacklogs {
        KafkaBacklogs {
            client: stores.store_client(),
            group_settings: stores
                .source
                .librdkafka
                .iter()
                .filter(|(k, _)| GROUP_SETTINGS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            topic_prefix: stores.backlog_topic_prefix(),
            group: stores.backlog_group(),
            partitions: stores.backlog.partitions,
            replication_factor: stores.backlog.replication_factor,
            producer: Mutex::default(),
            redelivery: Mutex::default(),
            redeliver: true,
            retention: Mutex::default(),
        }
    }

    fn topic(&self, sink: &str) -> String {
        ossnotify_sinks::kafka_store::topic_name(&self.topic_prefix, sink)
    }

    fn spec(&self, sink: &str) -> ossnotify_sinks::kafka_store::TopicSpec {
        ossnotify_sinks::kafka_store::TopicSpec {
            name: self.topic(sink),
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            retention_ms: Some(-1),
        }
    }

    /// Creates the topics of `sinks` the cluster lacks; warns about those
    /// found with a finite retention.
    fn ensure(&self, sinks: &[&str]) -> Result<(), PipelineError> {
        let specs: Vec<_> = sinks.iter().map(|s| self.spec(s)).collect();
        let finite = ossnotify_sinks::kafka_store::ensure_topics(
            &self.client,
            &specs,
            ossnotify_sinks::kafka_store::ADMIN_TIMEOUT,
        )?;
        let mut retention = self.retention.lock().expect("not poisoned");
        for f in finite {
            tracing::warn!(
                topic = %f.topic,
                retention_ms = f.retention_ms,
                "a backlog topic has a finite retention: messages waiting longer may expire before they are delivered; set retention.ms=-1 on it (see {})",
                crate::metric_names::BACKLOG_RETENTION_HEADROOM
            );
            retention.insert(f.topic, f.retention_ms);
        }
        Ok(())
    }
}

/// `[source.librdkafka]` properties that say how the source's group
/// behaves; the backlog group takes them too, so that a member that dies
/// gives its backlog partitions up as soon as its source partitions.
const GROUP_SETTINGS: &[&str] = &[
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "group.protocol",
];

/// The run's backlogs.
pub struct Backlogs {
    rt: tokio::runtime::Handle,
    /// Where redelivery dead-letters what fails for good.
    store: Arc<DeadLetterStore>,
    supervisor: Arc<Supervisor>,
    place: BacklogStore,
    /// Open backlogs by sink name, kept across reloads.
    open: Mutex<HashMap<String, Arc<Backlog>>>,
    /// The sink now serving each name, for redelivery.
    current: CurrentSinks,
    /// The disk store's redelivery tasks.
    redeliveries: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Messages redelivered, by sink name.
    pub redelivered: Redelivered,
}

impl Backlogs {
    pub fn new(
        rt: tokio::runtime::Handle,
        store: Arc<DeadLetterStore>,
        supervisor: Arc<Supervisor>,
        place: BacklogStore,
    ) -> Backlogs {
        Backlogs {
            rt,
            store,
            supervisor,
            place,
            open: Mutex::default(),
            current: Arc::default(),
            redeliveries: Mutex::default(),
            redelivered: Arc::default(),
        }
    }

    /// Creates the Kafka topics of the backlogs of `sinks` (nothing on disk).
    pub fn ensure_topics(&self, sinks: &[&str]) -> Result<(), PipelineError> {
        match &self.place {
            BacklogStore::Kafka(k) if !sinks.is_empty() => k.ensure(sinks),
            _ => Ok(()),
        }
    }

    /// `sink` now serves its name: redelivery sends through it. Before its
    /// backlog opens, so that redelivery never takes it for gone.
    pub fn serve(&self, sink: &Arc<dyn Sink>) {
        self.current
            .lock()
            .expect("not poisoned")
            .insert(sink.name().to_owned(), sink.clone());
    }

    /// Only the sinks `keep` names are served; the others' backlogs wait.
    pub fn keep_only(&self, keep: impl Fn(&str) -> bool) {
        self.current
            .lock()
            .expect("not poisoned")
            .retain(|name, _| keep(name));
        if let BacklogStore::Kafka(k) = &self.place {
            if let Some(r) = &*k.redelivery.lock().expect("not poisoned") {
                r.watching
                    .lock()
                    .expect("not poisoned")
                    .retain(|_, w| keep(&w.sink));
            }
        }
    }

    /// Stops redelivery (what it was sending stays in the backlog, to be
    /// sent again).
    pub fn close(&self) {
        for h in self.redeliveries.lock().expect("not poisoned").drain(..) {
            h.abort();
        }
        if let BacklogStore::Kafka(k) = &self.place {
            if let Some(mut r) = k.redelivery.lock().expect("not poisoned").take() {
                r.stop();
            }
        }
    }

    /// Messages in the backlogs now.
    pub fn waiting(&self) -> u64 {
        let b = self.open.lock().expect("not poisoned");
        b.values().map(|b| b.len()).sum()
    }

    /// Sink `name`'s backlog, opened (with its redelivery) the first time.
    pub fn open(&self, name: &str, iso: &Isolation) -> Result<Arc<Backlog>, PipelineError> {
        let mut backlogs = self.open.lock().expect("not poisoned");
        let max = iso.backlog.max_mib.saturating_mul(1 << 20);
        let b = match backlogs.get(name) {
            Some(b) => b.clone(),
            None => {
                let b = match &self.place {
                    BacklogStore::Disk(root) => self.open_disk(root, name, max)?,
                    BacklogStore::Kafka(k) => Arc::new(self.open_kafka(k, name, max)?),
                };
                backlogs.insert(name.to_owned(), b.clone());
                b
            }
        };
        // On Kafka, (again) among the topics the member redelivers.
        if let (BacklogStore::Kafka(k), Backlog::Kafka(kb)) = (&self.place, &*b) {
            let redelivery = k.redelivery.lock().expect("not poisoned");
            if let Some(r) = &*redelivery {
                let retention_ms = k
                    .retention
                    .lock()
                    .expect("not poisoned")
                    .get(kb.topic())
                    .copied();
                r.watching.lock().expect("not poisoned").insert(
                    kb.topic().to_owned(),
                    Watched {
                        sink: name.to_owned(),
                        size: kb.size.clone(),
                        retention_ms,
                    },
                );
            }
        }
        Ok(b)
    }

    fn open_disk(
        &self,
        root: &std::path::Path,
        name: &str,
        max: u64,
    ) -> Result<Arc<Backlog>, PipelineError> {
        let disk = DiskBacklog::open(root, name, max).map_err(|source| PipelineError::Backlog {
            what: "open",
            sink: name.to_owned(),
            place: format!("directory {}", disk_backlog::dir_of(root, name).display()),
            cause: source,
        })?;
        let b = Arc::new(Backlog::Disk(Box::new(disk)));
        let task = Redelivery {
            name: name.to_owned(),
            event_age: metrics::histogram!(crate::metric_names::EVENT_AGE, "sink" => name.to_owned()),
            backlog: b.clone(),
            current: self.current.clone(),
            store: self.store.clone(),
            redelivered: redelivery::counter(&self.redelivered, name),
        };
        let supervisor = self.supervisor.clone();
        let label = format!("redelivery of sink {name}");
        let handle = self.rt.spawn(async move {
            if let Err(e) = task.run().await {
                supervisor.fail(&label, e);
            }
        });
        self.redeliveries.lock().expect("not poisoned").push(handle);
        Ok(b)
    }

    fn open_kafka(
        &self,
        k: &KafkaBacklogs,
        name: &str,
        max: u64,
    ) -> Result<Backlog, PipelineError> {
        let topic = k.topic(name);
        let place_error = |source: std::io::Error| PipelineError::Backlog {
            what: "open",
            sink: name.to_owned(),
            place: format!("topic {topic}"),
            cause: source,
        };
        let producer = {
            let mut p = k.producer.lock().expect("not poisoned");
            match &*p {
                Some(p) => p.clone(),
                None => {
                    let made = Arc::new(
                        AckedProducer::new(&k.client)
                            .map_err(|e| place_error(std::io::Error::other(e)))?,
                    );
                    *p = Some(made.clone());
                    made
                }
            }
        };
        let mut redelivery = k.redelivery.lock().expect("not poisoned");
        if redelivery.is_none() && k.redeliver {
            let wiring = Wiring {
                rt: self.rt.clone(),
                current: self.current.clone(),
                store: self.store.clone(),
                supervisor: self.supervisor.clone(),
                redelivered: self.redelivered.clone(),
            };
            *redelivery = Some(
                KafkaRedelivery::start(&k.client, &k.group, &k.group_settings, wiring)
                    .map_err(|e| place_error(std::io::Error::other(e)))?,
            );
        }
        Ok(Backlog::Kafka(KafkaBacklog::new(
            topic.clone(),
            producer,
            max,
            Arc::new(Size::default()),
        )))
    }
}
