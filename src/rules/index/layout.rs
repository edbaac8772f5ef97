//! The index's memory layout: the bucket and pattern slots (one cache line
//! or less each, asserted), the entries they point at, and the hashes that
//! place them. Sizes here are what keep a million-rule lookup to one
//! cache-resident slot and one DRAM miss.

use std::hash::Hasher;

use rustc_hash::FxHasher;

use super::super::trie::TrieRef;
use crate::event::EventMask;

pub(super) const EMPTY: u32 = u32::MAX;
/// Region id of an entry whose rule has no region.
pub(super) const ANY_REGION: u32 = u32::MAX;
/// Region id of a record region no rule names.
pub(super) const UNKNOWN_REGION: u32 = u32::MAX - 1;
/// Lookups whose memory misses are overlapped at once (measured best of
/// 8, 16, 32 and 64 on the benchmark machine).
pub(super) const GROUP: usize = 16;
pub(super) const MAX_PREFIX_LENS: usize = 6;
pub(super) const MAX_SUFFIX_LENS: usize = 2;
/// Pattern bytes kept in a pattern slot; the rest is in `bytes`.
pub(super) const INLINE_PATTERN: usize = 16;
/// Longest `p*s` suffix a pattern slot's inline entry holds.
pub(super) const INLINE_SUFFIX: usize = 7;

/// Which table side a pattern is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Side {
    Exact = 1,
    Prefix = 2,
    Suffix = 3,
}

/// A bucket's header in 32 bytes: the table of them stays small enough to
/// live in cache at a million rules (8 MiB for 100k buckets). The name is
/// elsewhere (`names`): it is compared only once a rule matched, or at
/// once when another bucket shares the hash (`shared_hash`).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
pub(super) struct Slot {
    pub(super) hash: u64,
    /// Union of the rules' types: most lookups stop here.
    pub(super) mask: EventMask,
    /// The bucket's number: part of its patterns' hash, and its place in
    /// `buckets` and `names`; `EMPTY` marks a free slot.
    pub(super) id: u32,
    /// `EMPTY`: hashed; else the bucket's tries in `tries`.
    pub(super) tries: u32,
    pub(super) has_exact: bool,
    pub(super) n_prefix: u8,
    pub(super) n_suffix: u8,
    /// Another bucket of the index has the same hash.
    pub(super) shared_hash: bool,
    pub(super) prefix_lens: [u8; MAX_PREFIX_LENS],
    pub(super) suffix_lens: [u8; MAX_SUFFIX_LENS],
}

const _: () = assert!(std::mem::size_of::<Slot>() == 32);

/// Longest pattern a hashed bucket takes (lengths are kept in a byte);
/// buckets with longer patterns use tries.
pub(super) const MAX_HASHED_LEN: usize = u8::MAX as usize;

/// Longest exact name a hashed bucket takes (a pattern slot's length is a
/// `u16`); keys have no length limit (docs/input.md), longer names go on tries.
pub(super) const MAX_HASHED_EXACT_LEN: usize = u16::MAX as usize;

pub(super) const FREE: Slot = Slot {
    hash: 0,
    mask: EventMask::EMPTY,
    id: EMPTY,
    tries: EMPTY,
    has_exact: false,
    n_prefix: 0,
    n_suffix: 0,
    shared_hash: false,
    prefix_lens: [0; MAX_PREFIX_LENS],
    suffix_lens: [0; MAX_SUFFIX_LENS],
};

impl Slot {
    #[inline]
    pub(super) fn is_free(&self) -> bool {
        self.id == EMPTY
    }
}

/// What only `--explain` needs of a bucket, kept out of the hot slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct BucketInfo {
    /// The bucket's rules, in config order, in `bucket_rules`.
    pub(super) rules_start: u32,
    pub(super) rules_len: u32,
}

/// One (bucket, side, pattern) and its entries, in one cache line. Most
/// patterns have one entry: it is copied in (`one`), suffix and all, so
/// deciding the match needs no further miss.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct PatternSlot {
    pub(super) hash: u64,
    pub(super) entries_start: u32,
    /// 0 for a free slot.
    pub(super) entries_len: u32,
    /// Bytes past `INLINE_PATTERN`, in `bytes`.
    pub(super) rest_start: u32,
    pub(super) len: u16,
    /// `one` is the only entry, with its whole suffix in `one_suffix`.
    pub(super) has_one: bool,
    pub(super) one_suffix_len: u8,
    pub(super) one_kind: EntryKind,
    pub(super) one_suffix: [u8; INLINE_SUFFIX],
    pub(super) inline: [u8; INLINE_PATTERN],
    pub(super) one: EntryCore,
}

/// What deciding a match reads of an [`Entry`]: kept in the entry, and
/// copied into a pattern slot whose pattern has one rule.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(super) struct EntryCore {
    pub(super) rule: u32,
    pub(super) direct: EventMask,
    pub(super) via_all: EventMask,
    pub(super) region: u32,
}

// One cache line, not two.
const _: () = assert!(std::mem::size_of::<PatternSlot>() == 64);

pub(super) const FREE_PATTERN: PatternSlot = PatternSlot {
    hash: 0,
    entries_start: 0,
    entries_len: 0,
    rest_start: 0,
    len: 0,
    has_one: false,
    one_suffix_len: 0,
    one_kind: EntryKind::Prefix,
    one_suffix: [0; INLINE_SUFFIX],
    inline: [0; INLINE_PATTERN],
    one: EntryCore {
        rule: 0,
        direct: EventMask::EMPTY,
        via_all: EventMask::EMPTY,
        region: 0,
    },
};

/// The tries of a bucket with too many distinct pattern lengths to hash.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tries {
    pub(super) prefix: Option<TrieRef>,
    pub(super) suffix: Option<TrieRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum EntryKind {
    /// `p*` (and `*`, as the empty prefix): any key the walk reaches.
    Prefix,
    /// An exact name (on tries: the walk must have consumed the whole key).
    Exact,
    /// `p*s`: the key must also end with the suffix and be long enough.
    PrefixSuffix,
    /// `*s`.
    Suffix,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) core: EntryCore,
    pub(super) kind: EntryKind,
    /// The suffix of a `p*s`, in `bytes`.
    pub(super) suffix_start: u32,
    pub(super) suffix_len: u32,
}

/// What the policy says of one record region, computed once per lookup.
#[derive(Debug, Clone, Copy)]
pub(super) struct RegionView {
    pub(super) id: u32,
    pub(super) notifies: bool,
    pub(super) all_ok: bool,
}

#[inline]
pub(super) fn hash_name(name: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(name.as_bytes());
    h.finish()
}

#[inline]
pub(super) fn hash_pattern(bucket: u32, side: Side, bytes: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write_u32(bucket);
    h.write_u8(side as u8);
    h.write(bytes);
    h.finish()
}
