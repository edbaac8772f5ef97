//! Appending: each writer to a segment of its own, and the repair a
//! writer that finds no other alive makes on open.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::format::*;
use super::*;

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
