//! Where matched messages go: the compiled rules together with the sinks
//! they address, swapped whole on reload (rules name sinks by position),
//! and the per-sink drivers that feed them ([`super::delivery::driver`]),
//! each sink's backlog and its redelivery ([`super::delivery`]).
//!
//! A reload keeps every sink whose table did not change (same name, same
//! fingerprint) with its driver and connections, starts new drivers for new
//! or changed sinks, and lets the drivers of removed or replaced sinks
//! finish: once no worker holds the old routing, their queues close, they
//! deliver what is queued and end. Nothing queued is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use ossnotify_sinks::log_limit::LogLimit;
use ossnotify_sinks::{DeadLetterStore, Encoding, Sink};

use super::counters::Counters;
use super::delivery::backlogs::{BacklogStore, Backlogs};
use super::delivery::driver::{drive, DriverContext, SinkStats};
use super::delivery::item::Item;
use super::error::PipelineError;
use super::revoked::Revoked;
use super::supervisor::Supervisor;
use super::tracker::Progress;
use crate::config::RoutingSpec;
use crate::rules::RuleIndex;

/// A sink as the workers see it: its queue (of chunks: a worker sends one
/// chunk per sink per batch) and the encoding it wants.
#[derive(Clone)]
pub struct SinkQueue {
    pub name: String,
    pub tx: tokio::sync::mpsc::Sender<Vec<Item>>,
    pub encoding: Encoding,
    /// The CloudEvents `aliyuneventbusname`.
    pub event_bus: Arc<str>,
}

/// The CloudEvents `aliyuneventbusname` of a sink that names none.
pub const DEFAULT_EVENT_BUS: &str = "ossnotify";

/// The rules and the sinks they address (`CompiledRule::sinks` are
/// positions in `sinks`).
pub struct Routing {
    pub index: RuleIndex,
    pub sinks: Vec<SinkQueue>,
    pub want_base64: bool,
}

/// Starts and keeps the sink drivers.
pub struct Drivers {
    rt: tokio::runtime::Handle,
    store: Arc<DeadLetterStore>,
    /// Each sink's backlog and its redelivery.
    pub backlogs: Backlogs,
    progress: Sender<Progress>,
    counters: Arc<Counters>,
    supervisor: Arc<Supervisor>,
    revoked: Arc<Revoked>,
    /// Chunks per sink queue.
    chunks: usize,
    /// Running sinks by name, with their fingerprint.
    live: Mutex<HashMap<String, (String, SinkQueue)>>,
    /// Each driver's task, ended once its queue is closed and drained;
    /// a driver that fails reports to the supervisor first.
    pub handles: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub stats: Mutex<Vec<Arc<SinkStats>>>,
    /// Probe each new or changed sink's destination before it takes
    /// traffic (`run --no-check-sinks` turns it off).
    pub check_sinks: bool,
    /// Topic names, for where a dead letter's record came from.
    pub topics: Arc<super::batch::Topics>,
}

impl Drivers {
    /// `chunks`: how many worker batches' messages each sink's queue holds.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rt: tokio::runtime::Handle,
        store: Arc<DeadLetterStore>,
        backlog_store: BacklogStore,
        progress: Sender<Progress>,
        counters: Arc<Counters>,
        supervisor: Arc<Supervisor>,
        revoked: Arc<Revoked>,
        chunks: usize,
    ) -> Drivers {
        Drivers {
            backlogs: Backlogs::new(rt.clone(), store.clone(), supervisor.clone(), backlog_store),
            rt,
            store,
            progress,
            counters,
            supervisor,
            revoked,
            // A chunk holds the messages of one worker batch for one sink:
            // `chunks` of them are about `queue_capacity` records' messages.
            chunks,
            live: Mutex::default(),
            handles: Mutex::default(),
            stats: Mutex::default(),
            check_sinks: false,
            topics: Arc::default(),
        }
    }

    /// The routing for `config`: sinks whose table is unchanged are kept,
    /// the others built and started. Nothing changes if a sink cannot be
    /// built.
    /// The routing of the rules over their sinks: a sink whose table did
    /// not change keeps its driver; a new or changed one starts.
    pub fn routing(&self, config: RoutingSpec<'_>) -> Result<Routing, PipelineError> {
        let mut live = self.live.lock().expect("not poisoned");
        let mut built = Vec::new();
        for s in config.sinks {
            let kept = live.get(&s.name).filter(|(f, _)| *f == s.fingerprint);
            if kept.is_none() {
                let _guard = self.rt.enter();
                let sink: Arc<dyn Sink> = Arc::from(s.config.build(&s.name).map_err(|source| {
                    PipelineError::BuildSink {
                        sink: s.name.clone(),
                        cause: source,
                    }
                })?);
                built.push((s.name.clone(), sink));
            }
        }
        if self.check_sinks {
            self.probe(&built)?;
        }
        let isolated: Vec<&str> = built
            .iter()
            .filter(|(_, s)| s.isolation().is_some())
            .map(|(n, _)| n.as_str())
            .collect();
        self.backlogs.ensure_topics(&isolated)?;
        let mut next = HashMap::new();
        let mut sinks = Vec::new();
        for s in config.sinks {
            let queue = match built.iter().position(|(n, _)| *n == s.name) {
                Some(i) => {
                    let sink = built.swap_remove(i).1;
                    if live.contains_key(&s.name) {
                        tracing::info!(sink = %s.name, "sink changed: starting it anew; the old one finishes its queue");
                    }
                    self.start(sink, s.config.encoding(), s.config.event_bus())?
                }
                None => live[&s.name].1.clone(),
            };
            next.insert(s.name.clone(), (s.fingerprint.clone(), queue.clone()));
            sinks.push(queue);
        }
        for name in live.keys().filter(|n| !next.contains_key(*n)) {
            tracing::info!(sink = %name, "sink removed: it finishes its queue");
        }
        // The old queues close once no routing holds them. A removed
        // sink's backlog stays where it is, unsent, until the sink is back.
        self.backlogs.keep_only(|name| next.contains_key(name));
        *live = next;
        Ok(Routing {
            index: RuleIndex::build(config.rules.to_vec(), config.policy),
            want_base64: sinks.iter().any(|s| s.encoding == Encoding::Base64),
            sinks,
        })
    }

    /// Probes the destinations of `sinks` at once: a permanent answer
    /// refuses them all (the start, or the reload: the old routing stays);
    /// a transient one, or none in time, is only said.
    fn probe(&self, sinks: &[(String, Arc<dyn Sink>)]) -> Result<(), PipelineError> {
        let answers = self.rt.block_on(probe_all(sinks));
        for (name, answer) in answers {
            match answer {
                Ok(()) => tracing::info!(sink = %name, "sink probe: the destination answers"),
                Err(f) if f.permanent => {
                    return Err(PipelineError::SinkRefused {
                        sink: name,
                        answer: f.answer,
                    })
                }
                Err(f) => {
                    tracing::warn!(sink = %name, answer = %f.answer, "sink probe: the destination did not answer; going on (its messages wait in its backlog until it does)")
                }
            }
        }
        Ok(())
    }

    /// Forgets every sink: their queues close once the routing is dropped.
    /// Redelivery stops (what it was sending stays in the backlog, to be
    /// sent again by the next run).
    pub fn close(&self) {
        self.live.lock().expect("not poisoned").clear();
        self.backlogs.close();
    }

    fn start(
        &self,
        sink: Arc<dyn Sink>,
        encoding: Encoding,
        event_bus: Option<&str>,
    ) -> Result<SinkQueue, PipelineError> {
        let isolation = sink.isolation();
        // Before its backlog opens: its redelivery finds the sink there
        // (and does not take it for gone).
        self.backlogs.serve(&sink);
        let backlog = match &isolation {
            Some(iso) => Some(self.backlogs.open(sink.name(), iso)?),
            None => None,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(self.chunks);
        let stats = Arc::new(SinkStats {
            name: sink.name().to_owned(),
            ..SinkStats::default()
        });
        self.stats.lock().expect("not poisoned").push(stats.clone());
        let queue = SinkQueue {
            name: sink.name().to_owned(),
            tx,
            encoding,
            event_bus: event_bus.unwrap_or(DEFAULT_EVENT_BUS).into(),
        };
        let ctx = DriverContext {
            store: self.store.clone(),
            progress: self.progress.clone(),
            counters: self.counters.clone(),
            supervisor: self.supervisor.clone(),
            revoked: self.revoked.clone(),
            stats,
            isolation,
            backlog,
            full_log: Arc::new(LogLimit::default()),
            event_age: metrics::histogram!(crate::metric_names::EVENT_AGE, "sink" => sink.name().to_owned()),
            topics: self.topics.clone(),
        };
        let (name, supervisor) = (format!("sink {}", sink.name()), self.supervisor.clone());
        let driver = self.rt.spawn(drive(sink, rx, ctx));
        // Watches the driver: an error or a panic stops the run at once.
        let handle = self.rt.spawn(async move {
            match driver.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => supervisor.fail(&name, e),
                Err(e) => supervisor.fail(&name, format!("panicked: {e}")),
            }
        });
        self.handles.lock().expect("not poisoned").push(handle);
        Ok(queue)
    }
}

/// How long a probe may take before it counts as no answer.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Each sink's probe answer, the probes run at once (`validate
/// --check-sinks` and the drivers).
pub async fn probe_all(
    sinks: &[(String, Arc<dyn Sink>)],
) -> Vec<(String, Result<(), ossnotify_sinks::ProbeFailure>)> {
    let mut set = tokio::task::JoinSet::new();
    for (i, (_, sink)) in sinks.iter().enumerate() {
        let sink = sink.clone();
        set.spawn(async move {
            let answer = match tokio::time::timeout(PROBE_TIMEOUT, sink.probe()).await {
                Ok(a) => a,
                Err(_) => Err(ossnotify_sinks::ProbeFailure {
                    permanent: false,
                    answer: format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
                }),
            };
            (i, answer)
        });
    }
    let mut out: Vec<_> = sinks.iter().map(|(n, _)| (n.clone(), Ok(()))).collect();
    while let Some(done) = set.join_next().await {
        if let Ok((i, answer)) = done {
            out[i].1 = answer;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::sync::atomic::AtomicBool;

    /// A config with `sinks` (name, TOML body) and one rule sending to all.
    fn config(dir: &std::path::Path, sinks: &[(&str, &str)]) -> Config {
        let mut text = format!(
            "[dead_letter]\npath = \"{}\"\n",
            dir.join("dead-letter").display()
        );
        for (name, body) in sinks {
            text.push_str(&format!("[sinks.{name}]\n{body}\n"));
        }
        let names: Vec<String> = sinks.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        text.push_str(&format!(
            "[[rules]]\nid = \"r\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [{}]\n",
            names.join(", ")
        ));
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        crate::config::load(&path).unwrap().config
    }

    /// Drivers on `rt` with their stores in `d` (progress is dropped).
    fn drivers(rt: &tokio::runtime::Runtime, d: &std::path::Path) -> Drivers {
        let (progress, _) = crossbeam_channel::unbounded();
        Drivers::new(
            rt.handle().clone(),
            Arc::new(DeadLetterStore::open(&d.join("dead-letter")).unwrap()),
            BacklogStore::Disk(d.join("backlog")),
            progress,
            Arc::default(),
            Supervisor::new(Arc::new(AtomicBool::new(false))),
            Arc::default(),
            32,
        )
    }

    fn file_sink(dir: &std::path::Path, name: &str) -> String {
        format!("type = \"file\"\npath = \"{}\"", dir.join(name).display())
    }

    #[test]
    fn a_reload_keeps_unchanged_sinks_replaces_changed_ones_and_drops_removed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let drivers = drivers(&rt, d);
        let first = drivers
            .routing(
                config(
                    d,
                    &[
                        ("keep", "type = \"null\""),
                        ("change", &file_sink(d, "a.ndjson")),
                        ("remove", &file_sink(d, "b.ndjson")),
                    ],
                )
                .routing(),
            )
            .unwrap();
        let second = drivers
            .routing(
                config(
                    d,
                    &[
                        ("keep", "type = \"null\""),
                        ("change", &file_sink(d, "c.ndjson")),
                    ],
                )
                .routing(),
            )
            .unwrap();
        // Sinks are kept in name order: change, keep (, remove).
        let names: Vec<&str> = second.sinks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["change", "keep"]);
        assert!(first.sinks[1].tx.same_channel(&second.sinks[1].tx), "kept");
        assert!(
            !first.sinks[0].tx.same_channel(&second.sinks[0].tx),
            "replaced"
        );
        assert_eq!(drivers.handles.lock().unwrap().len(), 4);
        // Once no routing holds them, the old queues close and their
        // drivers (the replaced and the removed sink's) end; the others run.
        drop(first);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let finished = || {
            let h = drivers.handles.lock().unwrap();
            h.iter().map(|h| h.is_finished()).collect::<Vec<_>>()
        };
        // Started: change, keep, remove, then the new change.
        while finished() != [true, false, true, false] {
            assert!(std::time::Instant::now() < deadline, "{:?}", finished());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(second);
    }

    #[test]
    fn a_sink_that_cannot_be_built_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let drivers = drivers(&rt, d);
        let first = drivers
            .routing(config(d, &[("keep", "type = \"null\"")]).routing())
            .unwrap();
        let bad = file_sink(&d.join("no-such-directory"), "x.ndjson");
        let err = drivers
            .routing(config(d, &[("keep", "type = \"null\""), ("bad", &bad)]).routing())
            .err()
            .expect("refused");
        assert!(
            matches!(&err, PipelineError::BuildSink { sink, cause: ossnotify_sinks::BuildError::File { .. } } if sink == "bad"),
            "{err}"
        );
        let again = drivers
            .routing(config(d, &[("keep", "type = \"null\"")]).routing())
            .unwrap();
        assert!(first.sinks[0].tx.same_channel(&again.sinks[0].tx));
        assert_eq!(drivers.handles.lock().unwrap().len(), 1);
    }
}
