//! `ossnotify backfill`: a new rule's notifications for operations that
//! happened before it existed, from the retained operation log.
//!
//! # The window
//!
//! A record is backfilled when all of these hold (docs/commands.md):
//! - its offset is below the live group's committed offset on its
//!   partition when the backfill first started (what the live pipeline
//!   has not read yet, it sends itself if the rule is live; a partition
//!   the live group never committed is left to it entirely);
//! - its operation time is at or after `--since`, and before `--until` if
//!   given;
//! - it is not below the backfill's own committed offset (a resumed
//!   backfill goes on where it stopped).
//!
//! Offsets bound the window, and the operation time selects within it:
//! each partition is read from the offset the time index gives for
//! `--since` (a hint; a broker without a usable one is read from its
//! start), and the engine sends nothing for a record outside the times.
//!
//! # Resuming
//!
//! Progress is committed under `{group_id}.backfill.{name}`, never joined.
//! The window's ends are committed, before anything is read, under
//! `{group_id}.backfill.{name}.end` (a group used only to keep them: any
//! broker keeps a committed offset, not every one keeps a commit's
//! metadata), with each partition's start under the first; so a backfill
//! stopped or killed at any point resumes with the window it started
//! with. `--restart` forgets it.
//!
//! # Delivery
//!
//! The run is `ossnotify run`'s, with only the named rules and their
//! sinks: retries, breakers, backlogs, dead letters and CloudEvents ids
//! are the same (an id depends only on the record, so a consumer can
//! de-duplicate a backfilled notification against a live one). Its sinks'
//! backlogs are the live ones' topics: the live members redeliver what
//! the backfill could not send. It does not join their backlog group
//! itself: its start and end would make the group rebalance (measured:
//! a live member's p99 beside a backfill at its own rate fell from 1.6 s
//! to 0.26 s without it).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use ossnotify_sinks::kafka_store::{read, ADMIN_TIMEOUT};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::{Config, SourceType};
use crate::pipeline::window_source as window;
use crate::pipeline::{KafkaWindow, Range};

/// What to backfill.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub rules: Vec<String>,
    /// Operation times `[since, until)`, epoch ms.
    pub since_ms: i64,
    pub until_ms: Option<i64>,
    pub max_rate: Option<f64>,
    /// Names the backfill's group; the rules' ids joined by `+` if absent.
    pub name: Option<String>,
    /// Start again, forgetting a stopped backfill's progress and window.
    pub restart: bool,
    /// Where to serve metrics (the config's `[metrics] listen` is the
    /// daemon's, and not used).
    pub metrics_listen: Option<String>,
}

/// Why a backfill cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("backfill reads the source's Kafka topics, and this config's source is {0}")]
    NotKafka(String),
    #[error("no rule {unknown:?} in the config (its rules: {known})")]
    UnknownRule { unknown: String, known: String },
    #[error("backfill needs at least one --rule")]
    NoRule,
    #[error("reading the topics' offsets: {0}")]
    Kafka(rdkafka::error::KafkaError),
}

// Not `#[from]`: that would make the Kafka error the source too, and a
// printed chain would say it twice (the message names it).
impl From<rdkafka::error::KafkaError> for BackfillError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        BackfillError::Kafka(e)
    }
}

/// A backfill ready to run: the derived config (only the named rules and
/// their sinks, the window's times) and what to read.
pub struct Prepared {
    pub config: Config,
    pub window: KafkaWindow,
    pub name: String,
    pub group: String,
    /// Records in the window's offset ranges (the most it reads).
    pub total: u64,
    /// Partitions whose range came from a stopped backfill.
    pub resumed: usize,
}

/// Finds the window (committing its starts for a new backfill) and derives
/// the config.
pub fn prepare(mut config: Config, req: &Request) -> Result<Prepared, BackfillError> {
    check(&config, req)?;
    let name = req.name.clone().unwrap_or_else(|| req.rules.join("+"));
    let live = config.source.group_id.clone().unwrap_or_default();
    let group = format!("{live}.backfill.{name}");
    let client = reading_client(&config, req.max_rate);
    let c = read::consumer(&client, &group)?;
    let ends_kept = read::consumer(&client, &format!("{group}.end"))?;
    let live_reader = read::consumer(&client, &live)?;
    let readers = Readers {
        ours: &c,
        ends_kept: &ends_kept,
        live: &live_reader,
    };
    let (mut ranges, mut resumed, mut fresh) = (Vec::new(), 0, Vec::new());
    for topic in &config.source.topics {
        for (range, was_stored) in topic_ranges(&readers, topic, req)? {
            if was_stored {
                resumed += 1;
            } else {
                fresh.push(range.clone());
            }
            ranges.push(range);
        }
    }
    // A new window's ends, then its starts, before anything is read.
    if !fresh.is_empty() {
        let at = |f: fn(&Range) -> i64| -> Vec<_> {
            fresh
                .iter()
                .map(|r| (r.topic.clone(), r.partition, f(r)))
                .collect()
        };
        window::commit(&ends_kept, &at(|r| r.end))?;
        window::commit(&c, &at(|r| r.from))?;
    }
    let total = ranges.iter().map(|r| (r.end - r.from).max(0) as u64).sum();
    narrow(&mut config, req);
    Ok(Prepared {
        config,
        window: KafkaWindow {
            client,
            group: group.clone(),
            ranges,
            max_rate: req.max_rate,
            read: Arc::new(AtomicU64::new(0)),
        },
        name,
        group,
        total,
        resumed,
    })
}

/// A backfill reads Kafka, and names rules the config has.
fn check(config: &Config, req: &Request) -> Result<(), BackfillError> {
    if config.source.kind != SourceType::Kafka {
        return Err(BackfillError::NotKafka(
            format!("{:?}", config.source.kind).to_lowercase(),
        ));
    }
    if req.rules.is_empty() {
        return Err(BackfillError::NoRule);
    }
    for r in &req.rules {
        if !config.rules.iter().any(|x| &x.id == r) {
            let known: Vec<&str> = config.rules.iter().map(|x| x.id.as_str()).collect();
            return Err(BackfillError::UnknownRule {
                unknown: r.clone(),
                known: known.join(", "),
            });
        }
    }
    Ok(())
}

/// The client the window reads with: as the source reads (its fetch sizes,
/// then its own settings), with a throttled backfill's smaller read-ahead.
fn reading_client(config: &Config, max_rate: Option<f64>) -> ClientConfig {
    let mut client = config.stores().store_client();
    for (k, v) in crate::pipeline::FETCH_DEFAULTS {
        client.set(*k, *v);
    }
    if let Some(rate) = max_rate {
        // A throttled backfill needs little read-ahead: a quarter second of
        // records per fetch and a second's worth queued. Full-speed fetches
        // it does not use made the broker (on the live pipeline's cores)
        // answer the live member's fetches later.
        let per_second = (rate * 1024.0) as u64; // records of up to ~1 KiB
        let fetch = (per_second / 4).clamp(64 << 10, 8 << 20);
        let queued_kib = (per_second / 1024).clamp(1024, 16 << 10);
        client.set("max.partition.fetch.bytes", fetch.to_string());
        client.set("fetch.max.bytes", fetch.max(1 << 20).to_string());
        client.set("queued.max.messages.kbytes", queued_kib.to_string());
    }
    for (k, v) in &config.source.librdkafka {
        client.set(k, v);
    }
    client
}

/// The groups a window is read against: the backfill's own (where it has
/// read to), the one keeping its ends, and the live group.
struct Readers<'c> {
    ours: &'c BaseConsumer,
    ends_kept: &'c BaseConsumer,
    live: &'c BaseConsumer,
}

/// Each partition's range of `topic`, and whether it was stored (a
/// backfill resumed) or is new.
fn topic_ranges(
    r: &Readers<'_>,
    topic: &str,
    req: &Request,
) -> Result<Vec<(Range, bool)>, BackfillError> {
    let c = r.ours;
    let md = c.fetch_metadata(Some(topic), ADMIN_TIMEOUT)?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(Vec::new());
    };
    let mut tpl = TopicPartitionList::new();
    let mut hint = TopicPartitionList::new();
    for p in t.partitions() {
        tpl.add_partition(topic, p.id());
        hint.add_partition_offset(topic, p.id(), Offset::Offset(req.since_ms))?;
    }
    let ours = c.committed_offsets(tpl.clone(), ADMIN_TIMEOUT)?;
    let kept = r.ends_kept.committed_offsets(tpl.clone(), ADMIN_TIMEOUT)?;
    let theirs = r.live.committed_offsets(tpl.clone(), ADMIN_TIMEOUT)?;
    let hints = c.offsets_for_times(hint, ADMIN_TIMEOUT)?;
    let mut out = Vec::new();
    for p in t.partitions() {
        let (low, _) = c.fetch_watermarks(topic, p.id(), ADMIN_TIMEOUT)?;
        let offset = |l: &TopicPartitionList| match l.find_partition(topic, p.id())?.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        };
        let range = |from: i64, end: i64| Range {
            topic: topic.to_owned(),
            partition: p.id(),
            from,
            end,
        };
        match offset(&ours).zip(offset(&kept)).filter(|_| !req.restart) {
            Some((at, end)) => out.push((range(at.max(low).min(end), end), true)),
            None => {
                // Never committed by the live group: it reads it all.
                let end = offset(&theirs).unwrap_or(low);
                let from = match hints.find_partition(topic, p.id()).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o.clamp(low, end.max(low)),
                    Some(Offset::End) => end,
                    _ => low,
                };
                out.push((range(from.min(end), end), false));
            }
        }
    }
    Ok(out)
}

/// Only the named rules, and only their sinks; the operation window; no
/// dead-lettering of invalid records (the live pipeline did) and no
/// metrics address (the daemon's).
fn narrow(config: &mut Config, req: &Request) {
    config.rules.retain(|r| req.rules.contains(&r.id));
    let used: std::collections::BTreeSet<u32> = config
        .rules
        .iter()
        .flat_map(|r| r.sinks.iter().copied())
        .collect();
    let sinks = std::mem::take(&mut config.sinks);
    let mut renumber = HashMap::new();
    for (i, s) in sinks.into_iter().enumerate() {
        if used.contains(&(i as u32)) {
            renumber.insert(i as u32, config.sinks.len() as u32);
            config.sinks.push(s);
        }
    }
    for r in &mut config.rules {
        for s in &mut r.sinks {
            *s = renumber[s];
        }
    }
    config.pipeline.operation_window = Some((req.since_ms, req.until_ms.unwrap_or(i64::MAX)));
    config.pipeline.invalid_not_dead_lettered = true;
    config.metrics.listen = req.metrics_listen.clone();
}
