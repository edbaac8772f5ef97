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

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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

fn crc(time_ms: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&time_ms.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn frame(out: &mut Vec<u8>, time_ms: u64, payload: &[u8]) {
    out.extend_from_slice(&ENTRY_MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc(time_ms, payload).to_le_bytes());
    out.extend_from_slice(&time_ms.to_le_bytes());
    out.extend_from_slice(payload);
}

/// What is at `at` in a segment's bytes.
enum Parsed {
    /// A valid entry and where the next one starts.
    Entry {
        time_ms: u64,
        payload: std::ops::Range<usize>,
        next: usize,
    },
    /// The bytes end inside it: being written, or torn by a crash.
    Incomplete,
    Invalid,
}

fn parse_at(buf: &[u8], at: usize) -> Parsed {
    let Some(head) = buf.get(at..at + ENTRY_HEADER) else {
        return Parsed::Incomplete;
    };
    let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
    if word(0) != ENTRY_MAGIC {
        return Parsed::Invalid;
    }
    let len = word(4) as usize;
    if len > MAX_ENTRY {
        return Parsed::Invalid;
    }
    let time_ms = u64::from_le_bytes(head[12..20].try_into().expect("8 bytes"));
    let start = at + ENTRY_HEADER;
    let Some(payload) = buf.get(start..start + len) else {
        return Parsed::Incomplete;
    };
    if crc(time_ms, payload) != word(8) {
        return Parsed::Invalid;
    }
    Parsed::Entry {
        time_ms,
        payload: start..start + len,
        next: start + len,
    }
}

/// A segment's entries and corrupt stretches, and where its valid bytes
/// end (`None` when they run to the end of the file).
struct SegmentScan {
    items: Vec<Item>,
    torn_at: Option<u64>,
    bytes: u64,
}

fn scan_segment(dir: &Path, n: u64) -> io::Result<Option<SegmentScan>> {
    let mut buf = Vec::new();
    match File::open(segment_path(dir, n)) {
        Ok(mut f) => f.read_to_end(&mut buf)?,
        // Deleted by a remover since it was listed: nothing left in it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = SegmentScan {
        items: Vec::new(),
        torn_at: None,
        bytes: buf.len() as u64,
    };
    if buf.len() < SEGMENT_HEADER.len() {
        // Cut before its header was whole: an empty segment.
        out.torn_at = Some(0);
        return Ok(Some(out));
    }
    if buf[..6] != SEGMENT_HEADER[..6] || buf[7] != FORMAT_VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is not a segment of format version {FORMAT_VERSION}",
                segment_path(dir, n).display()
            ),
        ));
    }
    let mut at = SEGMENT_HEADER.len();
    while at < buf.len() {
        match parse_at(&buf, at) {
            Parsed::Entry {
                time_ms,
                payload,
                next,
            } => {
                out.items.push(Item::Entry(Entry {
                    id: EntryId {
                        segment: n,
                        offset: at as u64,
                    },
                    time_ms,
                    payload: buf[payload].to_vec(),
                }));
                at = next;
            }
            Parsed::Incomplete => {
                out.torn_at = Some(at as u64);
                break;
            }
            Parsed::Invalid => {
                // Resynchronize at the next valid entry; if there is none,
                // the rest is one corrupt stretch.
                let next = (at + 1..buf.len())
                    .find(|&i| matches!(parse_at(&buf, i), Parsed::Entry { .. }))
                    .unwrap_or(buf.len());
                out.items.push(Item::Corrupt {
                    id: EntryId {
                        segment: n,
                        offset: at as u64,
                    },
                    len: (next - at) as u64,
                });
                at = next;
            }
        }
    }
    Ok(Some(out))
}

/// The ids in `removed`, and the length of its whole records.
fn read_removed(dir: &Path) -> io::Result<(HashSet<EntryId>, u64)> {
    let mut buf = Vec::new();
    match File::open(dir.join("removed")) {
        Ok(mut f) => {
            f.read_to_end(&mut buf)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut ids = HashSet::new();
    let mut good = 0;
    for rec in buf.chunks_exact(REMOVED_RECORD) {
        let magic = u32::from_le_bytes(rec[0..4].try_into().expect("4"));
        let sum = u32::from_le_bytes(rec[4..8].try_into().expect("4"));
        if magic != REMOVED_MAGIC || crc32fast::hash(&rec[8..]) != sum {
            // A torn or damaged record: what follows is not trusted.
            break;
        }
        ids.insert(EntryId {
            segment: u64::from_le_bytes(rec[8..16].try_into().expect("8")),
            offset: u64::from_le_bytes(rec[16..24].try_into().expect("8")),
        });
        good += REMOVED_RECORD as u64;
    }
    Ok((ids, good))
}

fn removed_record(out: &mut Vec<u8>, id: EntryId) {
    let mut body = [0u8; 16];
    body[..8].copy_from_slice(&id.segment.to_le_bytes());
    body[8..].copy_from_slice(&id.offset.to_le_bytes());
    out.extend_from_slice(&REMOVED_MAGIC.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
}

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

/// Reads entries by id (with `pread`), keeping segment files open.
pub struct Reader {
    dir: PathBuf,
    files: BTreeMap<u64, File>,
}

impl Reader {
    pub fn new(dir: &Path) -> Reader {
        Reader {
            dir: dir.to_owned(),
            files: BTreeMap::new(),
        }
    }

    /// The entry at `id`; `None` if its segment is gone. An entry that
    /// fails its checksum is an `InvalidData` error naming it.
    pub fn get(&mut self, id: EntryId) -> io::Result<Option<Entry>> {
        use std::os::unix::fs::FileExt;
        let f = match self.files.entry(id.segment) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                match File::open(segment_path(&self.dir, id.segment)) {
                    Ok(f) => v.insert(f),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
        };
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: entry {id} is corrupt", self.dir.display()),
            )
        };
        let mut head = [0u8; ENTRY_HEADER];
        f.read_exact_at(&mut head, id.offset).map_err(|_| bad())?;
        let len = u32::from_le_bytes(head[4..8].try_into().expect("4")) as usize;
        if u32::from_le_bytes(head[0..4].try_into().expect("4")) != ENTRY_MAGIC || len > MAX_ENTRY {
            return Err(bad());
        }
        let mut payload = vec![0u8; len];
        f.read_exact_at(&mut payload, id.offset + ENTRY_HEADER as u64)
            .map_err(|_| bad())?;
        let time_ms = u64::from_le_bytes(head[12..20].try_into().expect("8"));
        if crc(time_ms, &payload) != u32::from_le_bytes(head[8..12].try_into().expect("4")) {
            return Err(bad());
        }
        Ok(Some(Entry {
            id,
            time_ms,
            payload,
        }))
    }

    /// Closes the files of segments before `segment` (deleted or about to be).
    pub fn forget_before(&mut self, segment: u64) {
        self.files = self.files.split_off(&segment);
    }
}

/// The one appender of a store, for the life of the process.
pub struct Writer {
    dir: PathBuf,
    opts: StoreOptions,
    _lock: File,
    active: Mutex<Active>,
}

struct Active {
    file: File,
    segment: u64,
    len: u64,
}

/// What opening a store found and repaired.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repairs {
    /// Torn tails cut off: (segment, bytes).
    pub torn: Vec<(u64, u64)>,
    /// Corrupt stretches moved aside to `corrupt/`.
    pub moved_aside: Vec<(EntryId, u64)>,
}

impl Writer {
    /// Opens (creating) the store in `dir` as one of its writers: repairs
    /// it if no other writer is alive, then starts a segment of its own.
    pub fn open(dir: &Path, opts: StoreOptions) -> io::Result<(Writer, Repairs)> {
        Self::open_reading(dir, opts, None, |_| {})
    }

    /// [`Writer::open`], also visiting every entry the store holds (as
    /// [`read`] would after the repair): in the repair's own pass over the
    /// segments when it repairs, so that a large store is read once. A
    /// caller that already holds the store's remover (a backlog) passes it,
    /// so that corrupt entries can still be moved aside.
    pub fn open_reading(
        dir: &Path,
        opts: StoreOptions,
        held: Option<&Remover>,
        mut visit: impl FnMut(Entry),
    ) -> io::Result<(Writer, Repairs)> {
        std::fs::create_dir_all(dir)?;
        let lock = lock_file(dir, "writer.lock")?;
        let mut repairs = Repairs::default();
        match lock.try_lock() {
            // No other writer: every segment's writer is gone, so a torn
            // tail will never be finished and can be cut.
            Ok(()) => {
                repairs = Self::repair(dir, held, &mut visit)?;
                lock.lock_shared()?;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                lock.lock_shared()?;
                read(dir, |item| {
                    if let Item::Entry(e) = item {
                        visit(e);
                    }
                })?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let active = Self::start_segment(dir)?;
        Ok((
            Writer {
                dir: dir.to_owned(),
                opts,
                _lock: lock,
                active: Mutex::new(active),
            },
            repairs,
        ))
    }

    /// Cuts torn tails and moves corrupt entries aside (the latter unless a
    /// replay or purge holds the remover lock: then at the next open).
    fn repair(
        dir: &Path,
        held: Option<&Remover>,
        visit: &mut dyn FnMut(Entry),
    ) -> io::Result<Repairs> {
        let mut repairs = Repairs::default();
        let taken = match held {
            Some(_) => None,
            None => Remover::try_lock(dir)?,
        };
        let remover = held.or(taken.as_ref());
        let (removed, _) = read_removed(dir)?;
        let mut aside = Vec::new();
        for n in segments(dir)? {
            let Some(scan) = scan_segment(dir, n)? else {
                continue;
            };
            if let Some(at) = scan.torn_at {
                let f = OpenOptions::new().write(true).open(segment_path(dir, n))?;
                if at == 0 {
                    drop(f);
                    std::fs::remove_file(segment_path(dir, n))?;
                } else {
                    f.set_len(at)?;
                    f.sync_all()?;
                }
                if scan.bytes > at {
                    repairs.torn.push((n, scan.bytes - at));
                }
            }
            for item in scan.items {
                if removed.contains(&item.id()) {
                    continue;
                }
                match item {
                    Item::Entry(e) => visit(e),
                    Item::Corrupt { id, len } => aside.push((id, len)),
                }
            }
        }
        if let (Some(remover), false) = (remover, aside.is_empty()) {
            let cdir = dir.join("corrupt");
            std::fs::create_dir_all(&cdir)?;
            for &(id, len) in &aside {
                let mut f = File::open(segment_path(dir, id.segment))?;
                let mut bytes = vec![0; len as usize];
                std::io::Seek::seek(&mut f, io::SeekFrom::Start(id.offset))?;
                f.read_exact(&mut bytes)?;
                let mut out = File::create(cdir.join(format!("{}-{}.bin", id.segment, id.offset)))?;
                out.write_all(&bytes)?;
                out.sync_all()?;
            }
            sync_dir(&cdir)?;
            let ids: Vec<EntryId> = aside.iter().map(|a| a.0).collect();
            remover.remove(&ids)?;
            repairs.moved_aside = aside;
        }
        sync_dir(dir)?;
        Ok(repairs)
    }

    /// Creates a segment of this writer's own, after every existing one
    /// (`O_EXCL`: two writers never get the same), and locks it: a locked
    /// segment is never cut, moved or deleted. It starts empty; its header
    /// goes out with its first entries, in the same write.
    fn start_segment(dir: &Path) -> io::Result<Active> {
        let mut n = segments(dir)?.last().map_or(1, |n| n + 1);
        loop {
            match OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(segment_path(dir, n))
            {
                Ok(file) => {
                    file.lock()?;
                    sync_dir(dir)?;
                    return Ok(Active {
                        file,
                        segment: n,
                        len: 0,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `(time_ms, payload)` entries and syncs them: when this
    /// returns Ok they survive a crash. Their ids, in order.
    pub fn append(&self, entries: &[(u64, &[u8])]) -> io::Result<Vec<EntryId>> {
        let mut active = self
            .active
            .lock()
            .map_err(|_| io::Error::other("store lock poisoned"))?;
        if active.len >= self.opts.segment_bytes {
            *active = Self::start_segment(&self.dir)?;
        }
        let mut buf = Vec::new();
        if active.len == 0 {
            buf.extend_from_slice(&SEGMENT_HEADER);
        }
        let mut ids = Vec::with_capacity(entries.len());
        for (time_ms, payload) in entries {
            if payload.len() > MAX_ENTRY {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "an entry of {} bytes is over the store's limit of {MAX_ENTRY}",
                        payload.len()
                    ),
                ));
            }
            ids.push(EntryId {
                segment: active.segment,
                offset: active.len + buf.len() as u64,
            });
            frame(&mut buf, *time_ms, payload);
        }
        // One write of whole entries: a reader sees an entry whole or not
        // yet, and a crash leaves at most a torn tail.
        if let Err(e) = active
            .file
            .write_all(&buf)
            .and_then(|_| active.file.sync_data())
        {
            // What was written is unknown: later appends go to a new segment.
            if let Ok(a) = Self::start_segment(&self.dir) {
                *active = a;
            }
            return Err(e);
        }
        active.len += buf.len() as u64;
        Ok(ids)
    }
}

/// A segment's entry offsets, and those of them removed.
type Offsets = (HashSet<u64>, HashSet<u64>);

/// The right to take entries out of a store (held while a replay, purge,
/// redelivery or retention runs).
pub struct Remover {
    dir: PathBuf,
    /// Held (flock) until the remover is dropped.
    _lock: File,
    /// Per closed segment: its entries, and those removed.
    seen: Mutex<BTreeMap<u64, Offsets>>,
}

impl Remover {
    /// Waits for the remover lock of the store in `dir`.
    pub fn lock(dir: &Path) -> io::Result<Remover> {
        std::fs::create_dir_all(dir)?;
        let lock = lock_file(dir, "remover.lock")?;
        lock.lock()?;
        Self::with_lock(dir, lock)
    }

    /// The remover lock if it is free now.
    pub fn try_lock(dir: &Path) -> io::Result<Option<Remover>> {
        std::fs::create_dir_all(dir)?;
        let lock = lock_file(dir, "remover.lock")?;
        match lock.try_lock() {
            Ok(()) => Self::with_lock(dir, lock).map(Some),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn with_lock(dir: &Path, lock: File) -> io::Result<Remover> {
        // A torn record left by a crashed remover is cut off first.
        let (_, good) = read_removed(dir)?;
        if let Ok(f) = OpenOptions::new().write(true).open(dir.join("removed")) {
            if f.metadata()?.len() != good {
                f.set_len(good)?;
                f.sync_all()?;
            }
        }
        Ok(Remover {
            dir: dir.to_owned(),
            _lock: lock,
            seen: Mutex::default(),
        })
    }

    /// Takes entries out (synced), then deletes every segment but the
    /// newest whose entries are all removed.
    pub fn remove(&self, ids: &[EntryId]) -> io::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(ids.len() * REMOVED_RECORD);
        for &id in ids {
            removed_record(&mut buf, id);
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("removed"))?;
        f.write_all(&buf)?;
        f.sync_data()?;
        let mut seen = self.seen.lock().map_err(|_| io::Error::other("poisoned"))?;
        let mut done = Vec::new();
        for &id in ids {
            if let std::collections::btree_map::Entry::Vacant(slot) = seen.entry(id.segment) {
                let Some(scan) = scan_segment(&self.dir, id.segment)? else {
                    continue;
                };
                let all: HashSet<u64> = scan.items.iter().map(|i| i.id().offset).collect();
                let (removed, _) = read_removed(&self.dir)?;
                let gone = all
                    .iter()
                    .copied()
                    .filter(|o| {
                        removed.contains(&EntryId {
                            segment: id.segment,
                            offset: *o,
                        })
                    })
                    .collect();
                slot.insert((all, gone));
            }
            let (all, gone) = seen.get_mut(&id.segment).expect("inserted");
            gone.insert(id.offset);
            if gone.len() >= all.len() && !done.contains(&id.segment) {
                done.push(id.segment);
            }
        }
        // A segment a writer still appends to stays (and is looked at again
        // after its writer moved on).
        done.retain(|n| !in_use(&self.dir, *n));
        for n in &done {
            seen.remove(n);
        }
        drop(seen);
        self.delete_segments(&done)
    }

    /// Deletes whole segments, then drops their ids from `removed`.
    fn delete_segments(&self, ns: &[u64]) -> io::Result<()> {
        if ns.is_empty() {
            return Ok(());
        }
        for &n in ns {
            match std::fs::remove_file(segment_path(&self.dir, n)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        sync_dir(&self.dir)?;
        self.compact_removed()
    }

    /// Rewrites `removed` with only the ids of segments that still exist
    /// (a new file renamed over the old: readers see one or the other).
    fn compact_removed(&self) -> io::Result<()> {
        let (ids, _) = read_removed(&self.dir)?;
        let live: HashSet<u64> = segments(&self.dir)?.into_iter().collect();
        let mut keep: Vec<EntryId> = ids
            .into_iter()
            .filter(|i| live.contains(&i.segment))
            .collect();
        keep.sort_unstable();
        let mut buf = Vec::with_capacity(keep.len() * REMOVED_RECORD);
        for id in keep {
            removed_record(&mut buf, id);
        }
        let tmp = self.dir.join("removed.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join("removed"))?;
        sync_dir(&self.dir)
    }

    /// Applies retention: drops the oldest segments no writer holds while
    /// the store is over `max_bytes`, and those whose newest entry is older
    /// than `max_age`. The entries dropped that were not yet removed.
    pub fn retain(&self, opts: &StoreOptions, now_ms: u64) -> io::Result<u64> {
        if opts.max_bytes.is_none() && opts.max_age.is_none() {
            return Ok(0);
        }
        let all = segments(&self.dir)?;
        let closed: Vec<u64> = all
            .iter()
            .copied()
            .filter(|n| !in_use(&self.dir, *n))
            .collect();
        let mut total: u64 = all
            .iter()
            .filter_map(|n| std::fs::metadata(segment_path(&self.dir, *n)).ok())
            .map(|m| m.len())
            .sum();
        let (removed, _) = read_removed(&self.dir)?;
        let mut drop = Vec::new();
        let mut dropped = 0;
        for &n in &closed {
            let Some(scan) = scan_segment(&self.dir, n)? else {
                continue;
            };
            let newest = scan
                .items
                .iter()
                .filter_map(|i| match i {
                    Item::Entry(e) => Some(e.time_ms),
                    Item::Corrupt { .. } => None,
                })
                .max()
                .unwrap_or(0);
            let too_big = opts.max_bytes.is_some_and(|m| total > m);
            let too_old = opts
                .max_age
                .is_some_and(|a| now_ms.saturating_sub(newest) > a.as_millis() as u64);
            if !too_big && !too_old {
                break;
            }
            dropped += scan
                .items
                .iter()
                .filter(|i| matches!(i, Item::Entry(e) if !removed.contains(&e.id)))
                .count() as u64;
            total = total.saturating_sub(scan.bytes);
            drop.push(n);
        }
        self.delete_segments(&drop)?;
        Ok(dropped)
    }
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
