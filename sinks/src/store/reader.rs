//! Reading entries by id, as a backlog's redelivery does (`pread`, no
//! lock).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self};
use std::path::{Path, PathBuf};

use super::format::*;
use super::*;

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
