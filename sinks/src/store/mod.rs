//! A durable, segmented, append-only store of entries: the dead-letter
//! store and each sink's backlog are one each.
//!
//! A store is a directory:
//! - `NNNNNNNNNNNNNNNNNNNN.seg`: segments, numbered in the order they were
//!   started. Each begins with an 8-byte header (`OSNSEG`, a zero, the
//!   format version), written with its first entries, then entries: magic `u32`, payload length `u32`,
//!   CRC-32 of the rest `u32`, append time in Unix ms `u64`, payload; all
//!   little-endian.
//! - `removed`: the ids (segment, offset) of entries taken out (delivered
//!   by replay or redelivery, purged, moved aside), 24 bytes each with a
//!   checksum. A segment is deleted once every entry in it is removed.
//! - `corrupt/`: entries that failed their checksum, moved aside as
//!   `SEGMENT-OFFSET.bin`; they never block the entries after them.
//! - `writer.lock`, `remover.lock`: advisory locks (`flock`); each
//!   segment being written is locked too.
//!
//! Concurrency is by construction, not by hope. Writers (daemons: several
//! processes may share a dead-letter store) each append only to a segment
//! of their own, created with `O_EXCL` and locked for as long as they
//! write it, and hold `writer.lock` shared. Only a writer that finds no
//! other alive (it gets `writer.lock` exclusively) repairs. Removers
//! (`dead-letter replay` and `purge`, the daemon's redelivery and
//! retention) hold `remover.lock` while they append to `removed` and
//! delete segments, and never delete a segment a writer holds. Readers
//! take no lock: they read `removed`, then the segments, and stop at an
//! entry still being written. Nothing is ever rewritten in place, so a
//! replay beside a running daemon can neither lose its appends nor
//! resurrect what it removed.
//!
//! Every append is `fdatasync`ed before it returns; a new segment, a
//! deleted one and the compacted `removed` file are followed by an fsync
//! of the directory. On open the writer repairs what a crash can leave:
//! a torn tail is cut off, a corrupt entry is moved aside and reported.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SEGMENT_HEADER: [u8; 8] = *b"OSNSEG\x00\x01";
/// The format version, the header's last byte.
pub const FORMAT_VERSION: u8 = 1;
const ENTRY_MAGIC: u32 = 0x4e45_534f; // "OSEN"
const ENTRY_HEADER: usize = 20;
const REMOVED_MAGIC: u32 = 0x4d52_534f; // "OSRM"
const REMOVED_RECORD: usize = 24;
/// No single entry is larger (a message is at most a few MiB).
const MAX_ENTRY: usize = 64 << 20;

/// Milliseconds since the Unix epoch: the time entries are stamped with.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where an entry is: its segment and its byte offset there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId {
    pub segment: u64,
    pub offset: u64,
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: EntryId,
    pub time_ms: u64,
    pub payload: Vec<u8>,
}

/// What reading a store finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Entry(Entry),
    /// Bytes that are not a whole, valid entry, before the next one that is.
    Corrupt {
        id: EntryId,
        len: u64,
    },
}

impl Item {
    /// Where it starts.
    pub fn id(&self) -> EntryId {
        match self {
            Item::Entry(e) => e.id,
            Item::Corrupt { id, .. } => *id,
        }
    }
}

/// Bounds of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Retention: the oldest closed segments are dropped while the store
    /// is larger than this.
    pub max_bytes: Option<u64>,
    /// Retention: closed segments whose newest entry is older are dropped.
    pub max_age: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_bytes: 16 << 20,
            max_bytes: None,
            max_age: None,
        }
    }
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg"))
}

/// The store's segments, ascending.
pub fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        // Only regular files: anything else was not made by a writer.
        if !e.file_type()?.is_file() {
            continue;
        }
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Whether a writer holds segment `n` (it may still append to it).
fn in_use(dir: &Path, n: u64) -> bool {
    match File::open(segment_path(dir, n)) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn lock_file(dir: &Path, name: &str) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(name))
}

mod format;
mod reader;
mod remover;
mod writer;

use format::*;
pub use reader::Reader;
pub use remover::Remover;
pub use writer::{Repairs, Writer};

/// Reads every entry not removed, in order, and every corrupt stretch not
/// moved aside; takes no lock and changes nothing (safe beside a running
/// daemon). An entry still being written is not read.
pub fn read(dir: &Path, mut visit: impl FnMut(Item)) -> io::Result<()> {
    let (removed, _) = read_removed(dir)?;
    for n in segments(dir)? {
        let Some(scan) = scan_segment(dir, n)? else {
            continue;
        };
        for item in scan.items {
            if !removed.contains(&item.id()) {
                visit(item);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Found = (Vec<(EntryId, Vec<u8>)>, Vec<(EntryId, u64)>);

    fn entries(dir: &Path) -> Found {
        let (mut e, mut c) = (Vec::new(), Vec::new());
        read(dir, |i| match i {
            Item::Entry(x) => e.push((x.id, x.payload)),
            Item::Corrupt { id, len } => c.push((id, len)),
        })
        .unwrap();
        (e, c)
    }

    #[test]
    fn append_read_remove_across_segments_and_reopens() {
        let d = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            segment_bytes: 100,
            ..StoreOptions::default()
        };
        let (w, _) = Writer::open(d.path(), opts.clone()).unwrap();
        let mut ids = Vec::new();
        for i in 0..10u8 {
            ids.extend(w.append(&[(i as u64, &[i; 30][..])]).unwrap());
        }
        assert!(segments(d.path()).unwrap().len() >= 3);
        let (got, corrupt) = entries(d.path());
        assert!(corrupt.is_empty());
        assert_eq!(
            got.iter().map(|g| g.1[0]).collect::<Vec<_>>(),
            (0..10).collect::<Vec<u8>>()
        );
        // A second writer gets a segment of its own, after the first's.
        let (w2, repairs) = Writer::open(d.path(), opts.clone()).unwrap();
        assert_eq!(
            repairs,
            Repairs::default(),
            "no repair while a writer lives"
        );
        let other = w2.append(&[(50, b"second writer")]).unwrap();
        assert!(other[0].segment > ids[9].segment);
        {
            // Its segment is held: removing all of it keeps the file.
            let r = Remover::lock(d.path()).unwrap();
            r.remove(&other).unwrap();
            assert!(segment_path(d.path(), other[0].segment).exists());
        }
        drop(w2);
        let r = Remover::lock(d.path()).unwrap();
        r.remove(&ids[..6]).unwrap();
        let (got, _) = entries(d.path());
        assert_eq!(
            got.iter().map(|g| g.1[0]).collect::<Vec<_>>(),
            vec![6, 7, 8, 9]
        );
        // Fully removed closed segments are gone.
        assert!(!segment_path(d.path(), ids[0].segment).exists());
        drop(r);
        drop(w);
        let (w, repairs) = Writer::open(d.path(), opts).unwrap();
        assert_eq!(repairs, Repairs::default());
        w.append(&[(99, b"new")]).unwrap();
        let (got, _) = entries(d.path());
        assert_eq!(got.len(), 5);
        assert_eq!(got[4].1, b"new");
    }

    #[test]
    fn opening_reads_the_entries_with_or_without_a_repair() {
        let d = tempfile::tempdir().unwrap();
        let (w, _) = Writer::open(d.path(), StoreOptions::default()).unwrap();
        let ids = w.append(&[(1, b"one"), (2, b"two")]).unwrap();
        Remover::lock(d.path()).unwrap().remove(&ids[..1]).unwrap();
        let payloads = |alive: bool| {
            let mut got = Vec::new();
            let (_w, repairs) =
                Writer::open_reading(d.path(), StoreOptions::default(), None, |e| {
                    got.push(e.payload)
                })
                .unwrap();
            assert_eq!(repairs, Repairs::default(), "alive: {alive}");
            got
        };
        // Another writer alive: no repair, a plain read.
        assert_eq!(payloads(true), vec![b"two".to_vec()]);
        drop(w);
        // None: the repair's pass visits them.
        assert_eq!(payloads(false), vec![b"two".to_vec()]);
    }

    #[test]
    fn a_torn_tail_is_cut_and_a_corrupt_entry_moved_aside() {
        let d = tempfile::tempdir().unwrap();
        let (w, _) = Writer::open(d.path(), StoreOptions::default()).unwrap();
        let ids = w
            .append(&[(1, b"one"), (2, b"two"), (3, b"three")])
            .unwrap();
        drop(w);
        let path = segment_path(d.path(), ids[0].segment);
        let mut bytes = std::fs::read(&path).unwrap();
        // Damage the second entry's payload, and tear a fourth entry.
        bytes[ids[1].offset as usize + ENTRY_HEADER] ^= 0xff;
        let mut torn = Vec::new();
        frame(&mut torn, 4, b"four");
        bytes.extend_from_slice(&torn[..torn.len() - 2]);
        std::fs::write(&path, &bytes).unwrap();
        // A reader reports the corrupt entry and skips the torn one.
        let (got, corrupt) = entries(d.path());
        assert_eq!(
            got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(),
            vec![b"one".to_vec(), b"three".to_vec()]
        );
        assert_eq!(corrupt, vec![(ids[1], (ENTRY_HEADER + 3) as u64)]);
        // The writer repairs: the tail cut, the corrupt entry moved aside.
        let (_w, repairs) = Writer::open(d.path(), StoreOptions::default()).unwrap();
        assert_eq!(repairs.torn, vec![(ids[0].segment, torn.len() as u64 - 2)]);
        assert_eq!(
            repairs.moved_aside,
            vec![(ids[1], (ENTRY_HEADER + 3) as u64)]
        );
        let (got, corrupt) = entries(d.path());
        assert_eq!(got.len(), 2);
        assert!(corrupt.is_empty());
        let aside = d
            .path()
            .join("corrupt")
            .join(format!("{}-{}.bin", ids[1].segment, ids[1].offset));
        assert_eq!(std::fs::read(aside).unwrap().len(), ENTRY_HEADER + 3);
    }

    #[test]
    fn retention_drops_old_and_excess_segments_and_counts_them() {
        let d = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            segment_bytes: 60,
            max_bytes: Some(200),
            max_age: Some(Duration::from_secs(60)),
        };
        let (w, _) = Writer::open(d.path(), opts.clone()).unwrap();
        for i in 0..12u64 {
            w.append(&[(i * 1000, &[0u8; 40][..])]).unwrap();
        }
        let before = entries(d.path()).0.len();
        let r = Remover::lock(d.path()).unwrap();
        let dropped = r.retain(&opts, 12_000).unwrap();
        let after = entries(d.path()).0.len();
        assert_eq!(before - after, dropped as usize);
        assert!(dropped > 0);
        let total: u64 = segments(d.path())
            .unwrap()
            .iter()
            .map(|n| std::fs::metadata(segment_path(d.path(), *n)).unwrap().len())
            .sum();
        assert!(total <= 200 + 60 + 8, "{total}");
        // Age: everything older than a minute at t = 10 min, but the newest.
        let dropped = r.retain(&opts, 600_000).unwrap();
        assert!(dropped > 0);
        assert_eq!(segments(d.path()).unwrap().len(), 1);
    }
}
