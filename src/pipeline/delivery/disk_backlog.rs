//! A sink's backlog on this member's disk (`[backlog] store = "disk"`, the
//! only store for `file` and `stdin` sources): a message is written
//! (synced) here before it is acknowledged; the redelivery task
//! ([`super::redelivery`]) sends it again, oldest first, once the sink
//! answers, and takes out what was delivered.
//!
//! Each sink has its own [`ossnotify_sinks::store`] under `[backlog] path`
//! (a directory per sink), held by this process for its life. Its bound
//! (`[sinks.NAME.backlog] max_mib`) is checked before each write: a full
//! backlog blocks the sink (and so, through the bounded queues, the
//! consumer) or dead-letters, as `when_full` says.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ossnotify_sinks::store::{self, now_ms, EntryId, StoreOptions};
use ossnotify_sinks::Envelope;

use crate::metric_names::{BACKLOG_BYTES, BACKLOG_MESSAGES, BACKLOG_OLDEST_AGE};

pub struct DiskBacklog {
    sink: String,
    dir: PathBuf,
    writer: store::Writer,
    remover: store::Remover,
    reader: Mutex<store::Reader>,
    max_bytes: u64,
    index: Mutex<Index>,
    /// Woken on every write, for the redelivery task.
    pub added: tokio::sync::Notify,
}

/// The live entries, oldest first: (id, append time, bytes on disk).
#[derive(Default)]
struct Index {
    entries: VecDeque<(EntryId, u64, u64)>,
    bytes: u64,
}

/// The directory of sink `name`'s backlog under `root`: the name with
/// every byte but `[A-Za-z0-9_.-]` percent-encoded (sink names are TOML
/// keys, and may hold `/`).
pub fn dir_of(root: &Path, name: &str) -> PathBuf {
    let mut s = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    if s.is_empty() || s == "." || s == ".." {
        s = format!("%{s}");
    }
    root.join(s)
}

impl DiskBacklog {
    /// Opens a backlog of sink `name` under `root` (repairing it), with
    /// what an earlier run left in it. A backlog belongs to one process
    /// (it holds the store's remover lock): when several processes share
    /// `root`, each takes the first free slot, `NAME`, `NAME.1`, …; a slot
    /// a dead process left is taken, and redelivered, by the next to start.
    pub fn open(root: &Path, name: &str, max_bytes: u64) -> io::Result<DiskBacklog> {
        for slot in 0..64 {
            let mut dir = dir_of(root, name);
            if slot > 0 {
                dir.as_mut_os_string().push(format!(".{slot}"));
            }
            if let Some(remover) = store::Remover::try_lock(&dir)? {
                return Self::open_slot(&dir, name, max_bytes, remover);
            }
        }
        Err(io::Error::other(format!(
            "every backlog slot of sink {name} under {} is taken by a running process",
            root.display()
        )))
    }

    fn open_slot(
        dir: &Path,
        name: &str,
        max_bytes: u64,
        remover: store::Remover,
    ) -> io::Result<DiskBacklog> {
        let mut index = Index::default();
        let (writer, repairs) =
            store::Writer::open_reading(dir, StoreOptions::default(), Some(&remover), |e| {
                let bytes = e.payload.len() as u64;
                index.entries.push_back((e.id, e.time_ms, bytes));
                index.bytes += bytes;
            })?;
        ossnotify_sinks::dead_letter::report_repairs("backlog", dir, &repairs);
        if !index.entries.is_empty() {
            tracing::info!(sink = name, messages = index.entries.len(), dir = %dir.display(), "backlog from an earlier run: it will be redelivered");
        }
        let b = DiskBacklog {
            sink: name.to_owned(),
            dir: dir.to_owned(),
            writer,
            remover,
            reader: Mutex::new(store::Reader::new(dir)),
            max_bytes,
            index: Mutex::new(index),
            added: tokio::sync::Notify::new(),
        };
        b.show();
        Ok(b)
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where it is, for messages.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn len(&self) -> usize {
        self.index().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bound leaves room for more.
    pub fn has_room(&self) -> bool {
        self.index().bytes < self.max_bytes
    }

    /// Writes `envelopes` (synced): when this returns Ok they survive a
    /// crash and may be acknowledged.
    pub fn push(&self, envelopes: &[&Envelope]) -> io::Result<()> {
        if envelopes.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let encoded: Vec<Vec<u8>> = envelopes.iter().map(|e| encode(e)).collect();
        let framed: Vec<(u64, &[u8])> = encoded.iter().map(|p| (now, p.as_slice())).collect();
        let ids = self.writer.append(&framed)?;
        {
            let mut ix = self.index();
            for (id, p) in ids.into_iter().zip(&encoded) {
                ix.entries.push_back((id, now, p.len() as u64));
                ix.bytes += p.len() as u64;
            }
        }
        self.show();
        self.added.notify_one();
        Ok(())
    }

    /// The oldest `n` messages (read from disk).
    pub fn head(&self, n: usize) -> io::Result<Vec<(EntryId, Envelope)>> {
        let ids: Vec<EntryId> = self.index().entries.iter().take(n).map(|e| e.0).collect();
        let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(e) = reader.get(id)? else { continue };
            let envelope = decode(&e.payload).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("backlog entry {id} of sink {} is not a message", self.sink),
                )
            })?;
            out.push((id, envelope));
        }
        Ok(out)
    }

    /// Takes messages out for good (synced): delivered, or dead-lettered.
    pub fn remove(&self, ids: &[EntryId]) -> io::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.remover.remove(ids)?;
        let oldest = {
            let gone: HashSet<EntryId> = ids.iter().copied().collect();
            let mut ix = self.index();
            let mut freed = 0;
            ix.entries.retain(|e| {
                let keep = !gone.contains(&e.0);
                if !keep {
                    freed += e.2;
                }
                keep
            });
            ix.bytes -= freed;
            ix.entries.front().map(|e| e.0.segment)
        };
        if let Some(first) = oldest {
            self.reader
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .forget_before(first);
        }
        self.show();
        Ok(())
    }

    /// Updates the sink's backlog gauges.
    pub fn show(&self) {
        let (n, bytes, oldest) = {
            let ix = self.index();
            (ix.entries.len(), ix.bytes, ix.entries.front().map(|e| e.1))
        };
        let sink = self.sink.clone();
        metrics::gauge!(BACKLOG_MESSAGES, "sink" => sink.clone()).set(n as f64);
        metrics::gauge!(BACKLOG_BYTES, "sink" => sink.clone()).set(bytes as f64);
        let age = oldest.map_or(0.0, |t| now_ms().saturating_sub(t) as f64 / 1000.0);
        metrics::gauge!(BACKLOG_OLDEST_AGE, "sink" => sink).set(age);
    }
}

/// A message as the backlog keeps it: the event time (`i64`), the rule id
/// and key, each after its length (`u32`), then the payload; little-endian.
fn encode(e: &Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + e.rule_id.len() + e.key.len() + e.payload.len());
    out.extend_from_slice(&e.event_time_ms.to_le_bytes());
    for s in [&e.rule_id, &e.key] {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(e.payload.as_bytes());
    out
}

/// The message a backlog entry holds, if it is one.
pub fn decode(b: &[u8]) -> Option<Envelope> {
    let event_time_ms = i64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let mut rest = &b[8..];
    let mut field = || {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let s = std::str::from_utf8(rest.get(4..4 + len)?).ok()?.to_owned();
        rest = &rest[4 + len..];
        Some(s)
    };
    let rule_id = field()?;
    let key = field()?;
    Some(Envelope {
        rule_id,
        key,
        payload: std::str::from_utf8(rest).ok()?.to_owned(),
        event_time_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(i: usize) -> Envelope {
        Envelope {
            payload: format!("payload-{i}"),
            rule_id: "r".into(),
            key: format!("b/k{i}"),
            event_time_ms: 1_700_000_000_000 + i as i64,
        }
    }

    #[test]
    fn push_head_remove_and_survive_a_reopen() {
        let d = tempfile::tempdir().unwrap();
        let b = DiskBacklog::open(d.path(), "a/b", 1 << 20).unwrap();
        assert!(d.path().join("a%2Fb").is_dir());
        let es: Vec<Envelope> = (0..5).map(env).collect();
        b.push(&es.iter().collect::<Vec<_>>()).unwrap();
        let head = b.head(3).unwrap();
        assert_eq!(
            head.iter().map(|h| h.1.clone()).collect::<Vec<_>>(),
            es[..3].to_vec()
        );
        b.remove(&[head[0].0, head[1].0]).unwrap();
        assert_eq!(b.len(), 3);
        drop(b);
        let b = DiskBacklog::open(d.path(), "a/b", 1 << 20).unwrap();
        let head = b.head(10).unwrap();
        assert_eq!(
            head.iter().map(|h| h.1.clone()).collect::<Vec<_>>(),
            es[2..].to_vec()
        );
    }

    #[test]
    fn a_corrupt_entry_is_moved_aside_on_open_and_the_rest_kept() {
        let d = tempfile::tempdir().unwrap();
        let b = DiskBacklog::open(d.path(), "s", 1 << 20).unwrap();
        let es: Vec<Envelope> = (0..3).map(env).collect();
        b.push(&es.iter().collect::<Vec<_>>()).unwrap();
        let second = b.head(3).unwrap()[1].0;
        drop(b);
        let seg = d
            .path()
            .join("s")
            .join(format!("{:020}.seg", second.segment));
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[second.offset as usize + 30] ^= 0x55;
        std::fs::write(&seg, bytes).unwrap();
        let b = DiskBacklog::open(d.path(), "s", 1 << 20).unwrap();
        let head = b.head(10).unwrap();
        assert_eq!(
            head.iter().map(|h| h.1.clone()).collect::<Vec<_>>(),
            vec![es[0].clone(), es[2].clone()]
        );
        assert_eq!(
            std::fs::read_dir(d.path().join("s/corrupt"))
                .unwrap()
                .count(),
            1
        );
    }

    #[test]
    fn the_bound_is_in_bytes() {
        let d = tempfile::tempdir().unwrap();
        let b = DiskBacklog::open(d.path(), "s", 50).unwrap();
        assert!(b.has_room());
        b.push(&[&env(1), &env(2)]).unwrap();
        assert!(!b.has_room());
    }

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let e = env(7);
        assert_eq!(decode(&encode(&e)), Some(e));
        assert_eq!(decode(&[0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, b'a']), None);
    }
}
