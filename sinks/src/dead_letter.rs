//! The dead-letter store (docs/guarantees.md): messages a sink gave up on for good,
//! and input records that cannot be read, in a [`crate::store`] (segments
//! with a checksum per entry, synced before anything that depends on them
//! is acknowledged). `ossnotify dead-letter` lists, replays and purges it
//! beside the running daemon: it takes entries out, never rewrites them.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::sync::Mutex;

use crate::store::{self, now_ms, EntryId, StoreOptions};

use serde::{Deserialize, Serialize};

/// What a dead letter is (stored as `delivery` or `invalid_record`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterKind {
    /// A message a sink gave up on: replayable.
    Delivery,
    /// An input record that could not be read: kept for the operator.
    InvalidRecord,
}

impl DeadLetterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::Delivery => "delivery",
            DeadLetterKind::InvalidRecord => "invalid_record",
        }
    }
}

impl std::fmt::Display for DeadLetterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DeadLetterKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "delivery" => Ok(DeadLetterKind::Delivery),
            "invalid_record" => Ok(DeadLetterKind::InvalidRecord),
            _ => Err(format!(
                "unknown kind {s:?}; expected delivery or invalid_record"
            )),
        }
    }
}

/// One entry: a message a sink gave up on, or an invalid input record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub kind: DeadLetterKind,
    /// The sink that gave up (delivery entries).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sink: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// The payload as the sink would send it, or the raw invalid record.
    pub payload: String,
    #[serde(default)]
    pub attempts: u32,
    /// The last error, or why the record is invalid.
    pub error: String,
    /// Where the input came from (`topic/partition/offset`, `file:line`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Milliseconds since the epoch: when it was given up on.
    pub time_ms: u64,
    /// When its first failure was, if earlier (a message kept in a backlog
    /// before it failed for good).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure_ms: Option<u64>,
}

impl DeadLetter {
    pub fn delivery(
        sink: &str,
        rule_id: &str,
        key: &str,
        payload: &str,
        attempts: u32,
        error: &str,
    ) -> Self {
        DeadLetter {
            kind: DeadLetterKind::Delivery,
            sink: sink.into(),
            rule_id: rule_id.into(),
            key: key.into(),
            payload: payload.into(),
            attempts,
            error: error.into(),
            source: String::new(),
            time_ms: now_ms(),
            first_failure_ms: None,
        }
    }
}

impl DeadLetter {
    /// An input record that could not be decoded, with where it came from.
    pub fn invalid_record(payload: &str, error: &str, source: &str) -> Self {
        DeadLetter {
            kind: DeadLetterKind::InvalidRecord,
            sink: String::new(),
            rule_id: String::new(),
            key: String::new(),
            payload: payload.into(),
            attempts: 0,
            error: error.into(),
            source: source.into(),
            time_ms: now_ms(),
            first_failure_ms: None,
        }
    }
}

/// The entries of a store's text, in order; `name` says where in errors. A
/// line that does not parse (or is not UTF-8) is an error naming its line
/// number: nothing is dropped silently.
pub fn read_entries(text: impl BufRead, name: &str) -> io::Result<Vec<DeadLetter>> {
    let mut out = Vec::new();
    for (n, line) in text.split(b'\n').enumerate() {
        let line = line?;
        let at = |e: &dyn std::fmt::Display| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{name}:{}: {e}", n + 1))
        };
        let line = std::str::from_utf8(&line).map_err(|e| at(&e))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(line).map_err(|e| at(&e))?);
    }
    Ok(out)
}

/// Delivers `batch` through `sink` and writes every envelope it did not
/// deliver to `store` (synced) before returning (see
/// [`DeadLetterStore::give_up`]). The outcomes are then safe to
/// acknowledge. For sinks without isolation, and for replays.
///
/// `sources` says where each envelope's record came from
/// (`topic/partition/offset`), where known (a replay does not).
pub async fn deliver_or_dead_letter(
    sink: &dyn crate::Sink,
    batch: &[crate::Envelope],
    sources: &[String],
    store: &DeadLetterStore,
) -> io::Result<Vec<crate::Outcome>> {
    let outcomes = sink.deliver(batch).await;
    let failed: Vec<GivenUp<'_>> = batch
        .iter()
        .zip(&outcomes)
        .enumerate()
        .filter_map(|(i, (e, o))| match o {
            crate::Outcome::Failed { error, attempts }
            | crate::Outcome::Deferred { error, attempts } => Some(GivenUp {
                envelope: e,
                error,
                attempts: *attempts,
                source: sources.get(i).map_or("", String::as_str),
                first_failure_ms: None,
            }),
            crate::Outcome::Delivered => None,
        })
        .collect();
    store.give_up(sink.name(), &failed)?;
    Ok(outcomes)
}

/// A message a sink gave up on, and what its dead letter says of it.
#[derive(Debug, Clone, Copy)]
pub struct GivenUp<'a> {
    pub envelope: &'a crate::Envelope,
    /// The last error.
    pub error: &'a str,
    pub attempts: u32,
    /// Where its record came from (`topic/partition/offset`), or "".
    pub source: &'a str,
    /// When it first failed, if earlier than now (it waited in a backlog).
    pub first_failure_ms: Option<u64>,
}

/// The dead-letter store: a [`crate::store`] of JSON entries in a
/// directory, or a Kafka topic ([`crate::kafka_store::dead_letters`]);
/// appended to by the daemon, read and replayed by `ossnotify dead-letter`
/// beside it.
pub struct DeadLetterStore {
    backend: Backend,
    /// A dead sink gives up on every message: one line per kind of error
    /// every 30 s, not one per message (every entry is still written).
    log_limit: crate::log_limit::LogLimit,
}

enum Backend {
    Disk {
        writer: store::Writer,
        opts: StoreOptions,
        /// When retention last ran.
        retained: Mutex<std::time::Instant>,
    },
    Kafka(crate::kafka_store::dead_letters::KafkaDeadLetters),
}

/// The file of the store's first format (one NDJSON file), imported into
/// the segments on open.
const LEGACY_FILE: &str = "dead-letter.ndjson";

impl DeadLetterStore {
    /// Opens (creating) the store in `dir` as its one writer.
    pub fn open(dir: &Path) -> io::Result<DeadLetterStore> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// Opens the store with bounds: repairs what a crash left (reported),
    /// imports a store of the first format, applies retention.
    pub fn open_with(dir: &Path, opts: StoreOptions) -> io::Result<DeadLetterStore> {
        let (writer, repairs) = store::Writer::open(dir, opts.clone())?;
        report_repairs("dead-letter", dir, &repairs);
        let store = DeadLetterStore {
            backend: Backend::Disk {
                writer,
                opts,
                retained: Mutex::new(std::time::Instant::now()),
            },
            log_limit: Default::default(),
        };
        store.import_legacy(dir)?;
        store.retain();
        Ok(store)
    }

    /// The store in a Kafka topic.
    pub fn kafka(topic: crate::kafka_store::dead_letters::KafkaDeadLetters) -> DeadLetterStore {
        DeadLetterStore {
            backend: Backend::Kafka(topic),
            log_limit: Default::default(),
        }
    }

    fn import_legacy(&self, dir: &Path) -> io::Result<()> {
        let legacy = dir.join(LEGACY_FILE);
        match std::fs::symlink_metadata(&legacy) {
            Ok(m) if m.is_file() => {}
            _ => return Ok(()),
        }
        let entries = read_entries(
            BufReader::new(File::open(&legacy)?),
            &legacy.display().to_string(),
        )?;
        self.append(&entries)?;
        std::fs::rename(&legacy, legacy.with_extension("ndjson.imported"))?;
        tracing::info!(entries = entries.len(), file = %legacy.display(), "imported a dead-letter file of the first format");
        Ok(())
    }

    /// Where the store is, for messages: `directory D` or `topic T`.
    pub fn place(&self) -> String {
        match &self.backend {
            Backend::Disk { writer, .. } => format!("directory {}", writer.dir().display()),
            Backend::Kafka(k) => format!("topic {}", k.topic()),
        }
    }

    /// Appends entries durably: when this returns Ok they survive a crash
    /// (synced to disk, or acknowledged by every in-sync replica).
    pub fn append(&self, entries: &[DeadLetter]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let (writer, retained) = match &self.backend {
            Backend::Kafka(k) => return k.append(entries),
            Backend::Disk {
                writer, retained, ..
            } => (writer, retained),
        };
        let json: Vec<Vec<u8>> = entries
            .iter()
            .map(|e| serde_json::to_vec(e).map_err(io::Error::other))
            .collect::<io::Result<_>>()?;
        let framed: Vec<(u64, &[u8])> = entries
            .iter()
            .zip(&json)
            .map(|(e, j)| (e.time_ms, j.as_slice()))
            .collect();
        writer.append(&framed)?;
        let due = {
            let mut last = retained.lock().map_err(|_| io::Error::other("poisoned"))?;
            let due = last.elapsed() > std::time::Duration::from_secs(60);
            if due {
                *last = std::time::Instant::now();
            }
            due
        };
        if due {
            self.retain();
        }
        Ok(())
    }

    /// Writes the envelopes `sink` gave up on, with their last error and
    /// attempts (synced), logging them at a limited rate: one line per
    /// sink and error code every 30 s (the rest of an error may vary per
    /// message: a request id), saying how many like it were left out.
    pub fn give_up(&self, sink: &str, failed: &[GivenUp<'_>]) -> io::Result<()> {
        let mut entries = Vec::with_capacity(failed.len());
        for g in failed {
            let (e, error, attempts) = (g.envelope, g.error, g.attempts);
            let code = error.split(':').next().unwrap_or_default();
            if let Some(left_out) = self.log_limit.admit(&format!("{sink} {code}")) {
                tracing::warn!(
                    sink,
                    rule = %e.rule_id,
                    key = %e.key,
                    attempts,
                    error = %error,
                    like_this_since_last_logged = left_out,
                    "giving up on a message: dead-lettered"
                );
            }
            let mut d = DeadLetter::delivery(sink, &e.rule_id, &e.key, &e.payload, attempts, error);
            g.source.clone_into(&mut d.source);
            d.first_failure_ms = g.first_failure_ms;
            entries.push(d);
        }
        self.append(&entries)
    }

    /// Applies retention unless a replay or purge holds the store (a
    /// topic's retention is the cluster's).
    fn retain(&self) {
        let Backend::Disk { writer, opts, .. } = &self.backend else {
            return;
        };
        let dir = writer.dir();
        let (Ok(Some(remover)), true) = (
            store::Remover::try_lock(dir),
            opts.max_bytes.is_some() || opts.max_age.is_some(),
        ) else {
            return;
        };
        match remover.retain(opts, now_ms()) {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!(crate::metric_names::STORE_RETENTION_DROPPED, "store" => "dead-letter").increment(n);
                tracing::warn!(entries = n, dir = %dir.display(), "dead-letter retention dropped entries");
            }
            Err(e) => tracing::warn!(error = %e, "dead-letter retention failed"),
        }
    }
}

/// Logs and counts what opening a store repaired.
pub fn report_repairs(name: &'static str, dir: &Path, r: &store::Repairs) {
    for (segment, bytes) in &r.torn {
        tracing::warn!(store = name, dir = %dir.display(), segment, bytes, "cut a torn tail (a write cut short by a crash)");
    }
    for (id, len) in &r.moved_aside {
        tracing::warn!(store = name, dir = %dir.display(), entry = %id, bytes = len, "moved a corrupt entry aside to corrupt/");
    }
    if !r.moved_aside.is_empty() {
        metrics::counter!(crate::metric_names::STORE_CORRUPT, "store" => name)
            .increment(r.moved_aside.len() as u64);
    }
}

/// A stored entry that cannot be used: its checksum fails, or it is not a
/// dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub id: EntryId,
    pub bytes: u64,
    pub why: String,
}

/// A store's dead letters with their ids, in order, and its unreadable
/// entries.
pub type Contents = (Vec<(EntryId, DeadLetter)>, Vec<Unreadable>);

/// Every entry of the store in `dir`, in order, with its id, and every
/// unreadable one; changes nothing and takes no lock.
pub fn read_store(dir: &Path) -> io::Result<Contents> {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    store::read(dir, |item| match item {
        store::Item::Entry(e) => match serde_json::from_slice(&e.payload) {
            Ok(d) => good.push((e.id, d)),
            Err(err) => bad.push(Unreadable {
                id: e.id,
                bytes: e.payload.len() as u64,
                why: format!("not a dead letter: {err}"),
            }),
        },
        store::Item::Corrupt { id, len } => bad.push(Unreadable {
            id,
            bytes: len,
            why: "checksum mismatch".into(),
        }),
    })?;
    Ok((good, bad))
}

/// The dead letters in `dir`, in order (unreadable entries left out).
pub fn read_all(dir: &Path) -> io::Result<Vec<DeadLetter>> {
    Ok(read_store(dir)?.0.into_iter().map(|(_, d)| d).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_remove_and_import_the_first_format() {
        let dir = tempfile::tempdir().unwrap();
        let a = DeadLetter::delivery("s", "r", "b/k", "eyJ9", 8, "TopicNotExist: no");
        let mut b = a.clone();
        b.payload = "second".into();
        std::fs::write(
            dir.path().join(LEGACY_FILE),
            format!("{}\n", serde_json::to_string(&a).unwrap()),
        )
        .unwrap();
        let store = DeadLetterStore::open(dir.path()).unwrap();
        assert!(dir.path().join("dead-letter.ndjson.imported").exists());
        store.append(std::slice::from_ref(&b)).unwrap();
        let (got, bad) = read_store(dir.path()).unwrap();
        assert!(bad.is_empty());
        assert_eq!(
            got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(),
            vec![a.clone(), b.clone()]
        );
        let r = store::Remover::lock(dir.path()).unwrap();
        r.remove(&[got[0].0]).unwrap();
        assert_eq!(read_all(dir.path()).unwrap(), vec![b]);
    }
}
