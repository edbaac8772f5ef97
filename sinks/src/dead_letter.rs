//! The dead-letter store (SPEC §6): an append-only NDJSON file, fsynced
//! before anything that depends on it is acknowledged; rewritten only by
//! `replay`, through a temporary file and an atomic rename, so an
//! interrupted replay loses nothing.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One entry: a message a sink gave up on, or an invalid input record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// `delivery` or `invalid_record`.
    pub kind: String,
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
    /// Milliseconds since the epoch.
    pub time_ms: u64,
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
            kind: "delivery".into(),
            sink: sink.into(),
            rule_id: rule_id.into(),
            key: key.into(),
            payload: payload.into(),
            attempts,
            error: error.into(),
            source: String::new(),
            time_ms: now_ms(),
        }
    }
}

impl DeadLetter {
    /// An input record that could not be decoded, with where it came from.
    pub fn invalid_record(payload: &str, error: &str, source: &str) -> Self {
        DeadLetter {
            kind: "invalid_record".into(),
            sink: String::new(),
            rule_id: String::new(),
            key: String::new(),
            payload: payload.into(),
            attempts: 0,
            error: error.into(),
            source: source.into(),
            time_ms: now_ms(),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Delivers `batch` through `sink` and writes every envelope it gave up on
/// to `store` (fsynced) before returning, logging it with its error (MNS
/// code and request id included) at a limited rate. The outcomes are then safe to acknowledge.
pub async fn deliver_or_dead_letter(
    sink: &dyn crate::Sink,
    batch: &[crate::Envelope],
    store: &DeadLetterStore,
) -> io::Result<Vec<crate::Outcome>> {
    let outcomes = sink.deliver(batch).await;
    let failed: Vec<DeadLetter> = batch
        .iter()
        .zip(&outcomes)
        .filter_map(|(e, o)| match o {
            crate::Outcome::Failed { error, attempts } => {
                // By the error's code (what precedes its first ':'): the
                // rest may vary per message (a request id).
                let code = error.split(':').next().unwrap_or_default();
                let kind = format!("{} {code}", sink.name());
                if let Some(left_out) = store.log_limit.admit(&kind) {
                    tracing::warn!(
                        sink = sink.name(),
                        rule = %e.rule_id,
                        key = %e.key,
                        attempts,
                        error = %error,
                        like_this_since_last_logged = left_out,
                        "giving up on a message: dead-lettered"
                    );
                }
                Some(DeadLetter::delivery(
                    sink.name(),
                    &e.rule_id,
                    &e.key,
                    &e.payload,
                    *attempts,
                    error,
                ))
            }
            crate::Outcome::Delivered => None,
        })
        .collect();
    store.append(&failed)?;
    Ok(outcomes)
}

/// The store in a directory.
pub struct DeadLetterStore {
    path: PathBuf,
    file: Mutex<File>,
    /// A dead sink gives up on every message: one line per kind of error
    /// every 30 s, not one per message (every entry is still written).
    log_limit: crate::log_limit::LogLimit,
}

const FILE: &str = "dead-letter.ndjson";

impl DeadLetterStore {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path) -> io::Result<DeadLetterStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(DeadLetterStore {
            path,
            file: Mutex::new(file),
            log_limit: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends entries and fsyncs: when this returns Ok they survive a crash.
    pub fn append(&self, entries: &[DeadLetter]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut buf, e).map_err(io::Error::other)?;
            buf.push(b'\n');
        }
        let mut f = self
            .file
            .lock()
            .map_err(|_| io::Error::other("dead-letter lock poisoned"))?;
        f.write_all(&buf)?;
        f.sync_data()
    }

    /// Every entry, in order. A line that does not parse is an error naming
    /// its line number (nothing is dropped silently).
    pub fn read_all(&self) -> io::Result<Vec<DeadLetter>> {
        let f = File::open(&self.path)?;
        let mut out = Vec::new();
        for (n, line) in BufReader::new(f).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let e = serde_json::from_str(&line).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}:{}: {e}", self.path.display(), n + 1),
                )
            })?;
            out.push(e);
        }
        Ok(out)
    }

    /// Replaces the whole store with `keep`, atomically (write a temporary
    /// file, fsync, rename over, fsync the directory).
    pub fn replace_all(&self, keep: &[DeadLetter]) -> io::Result<()> {
        let mut f = self
            .file
            .lock()
            .map_err(|_| io::Error::other("dead-letter lock poisoned"))?;
        let tmp = self.path.with_extension("ndjson.tmp");
        {
            let mut t = File::create(&tmp)?;
            for e in keep {
                serde_json::to_writer(&mut t, e).map_err(io::Error::other)?;
                t.write_all(b"\n")?;
            }
            t.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        *f = OpenOptions::new().append(true).open(&self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_replace() {
        let dir = tempfile::tempdir().unwrap();
        let store = DeadLetterStore::open(dir.path()).unwrap();
        let a = DeadLetter::delivery("s", "r", "b/k", "eyJ9", 8, "TopicNotExist: no");
        let mut b = a.clone();
        b.payload = "second".into();
        store.append(&[a.clone(), b.clone()]).unwrap();
        // Reopening sees the same entries (they were synced).
        let again = DeadLetterStore::open(dir.path()).unwrap();
        assert_eq!(again.read_all().unwrap(), vec![a.clone(), b.clone()]);
        store.replace_all(&[b.clone()]).unwrap();
        store.append(std::slice::from_ref(&a)).unwrap();
        assert_eq!(store.read_all().unwrap(), vec![b, a]);
        std::fs::write(store.path(), "{\"broken\n").unwrap();
        let err = store.read_all().unwrap_err().to_string();
        assert!(
            err.ends_with("dead-letter.ndjson:1: EOF while parsing a string at line 1 column 8"),
            "{err}"
        );
    }
}
