//! Taking entries out: the `removed` log, deleting whole segments, and
//! retention; one remover at a time (`remover.lock`).

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::format::*;
use super::*;

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
