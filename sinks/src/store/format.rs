//! The bytes on disk: an entry's frame and checksum, parsing a segment
//! back, and the records of `removed`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::*;

pub(super) fn crc(time_ms: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&time_ms.to_le_bytes());
    h.update(payload);
    h.finalize()
}

pub(super) fn frame(out: &mut Vec<u8>, time_ms: u64, payload: &[u8]) {
    out.extend_from_slice(&ENTRY_MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc(time_ms, payload).to_le_bytes());
    out.extend_from_slice(&time_ms.to_le_bytes());
    out.extend_from_slice(payload);
}

/// What is at `at` in a segment's bytes.
pub(super) enum Parsed {
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

pub(super) fn parse_at(buf: &[u8], at: usize) -> Parsed {
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
pub(super) struct SegmentScan {
    pub(super) items: Vec<Item>,
    pub(super) torn_at: Option<u64>,
    pub(super) bytes: u64,
}

pub(super) fn scan_segment(dir: &Path, n: u64) -> io::Result<Option<SegmentScan>> {
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
pub(super) fn read_removed(dir: &Path) -> io::Result<(HashSet<EntryId>, u64)> {
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

pub(super) fn removed_record(out: &mut Vec<u8>, id: EntryId) {
    let mut body = [0u8; 16];
    body[..8].copy_from_slice(&id.segment.to_le_bytes());
    body[8..].copy_from_slice(&id.offset.to_le_bytes());
    out.extend_from_slice(&REMOVED_MAGIC.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
}
