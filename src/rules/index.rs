//! The compiled rule index: immutable, shared by every worker without locks,
//! swapped whole on reload.
//!
//! A lookup must cost the same with ten rules or a million, and at a million
//! the index no longer fits in cache, so the layout is about cache lines:
//!
//! - an open-addressed table of buckets, one 32-byte slot each, holding the
//!   bucket's name hash and number, the union of its rules' event types,
//!   and the distinct lengths of its prefix and suffix patterns (the name
//!   itself is kept apart, compared only once a rule matched or when two
//!   buckets share a hash);
//! - one global open-addressed table of patterns keyed by (bucket, side,
//!   bytes) — side is exact name, prefix (`p*`, `p*s`, `*` as the empty
//!   prefix) or suffix (`*s`) — whose 64-byte slots hold short patterns
//!   inline for verification and, when the pattern has one rule (the usual
//!   case), that rule's entry itself, else point at their entries;
//! - entries carrying the rule's event masks and region inline, so deciding
//!   a match needs no trip to the rule table.
//!
//! A lookup hashes the key's prefix (and suffix) at each length the bucket
//! uses: two dependent cache lines (bucket, pattern; a third, the entries,
//! only for patterns shared by several rules), which
//! [`RuleIndex::matches_batch`] prefetches in stages for many lookups at
//! once. A bucket whose patterns have more distinct lengths than a slot
//! holds uses radix tries instead, so the cost stays bounded by the key's
//! length either way. The two big tables ask for transparent huge pages:
//! at a million rules every random access would otherwise miss the TLB.

use std::hash::Hasher;

use rustc_hash::{FxHashMap, FxHasher};

use super::pattern::Pattern;
use super::policy::RegionPolicy;
use super::prefetch;
use super::trie::{Arena, TrieRef};
use super::RuleSpec;
use crate::event::{EventMask, EventType};

/// A rule as the index keeps it (what messages and `--explain` need).
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub id: Box<str>,
    pub region: Option<Box<str>>,
    /// Types named directly or by `Category:*`.
    pub direct: EventMask,
    /// Types reached only through a seed `:All` wildcard.
    pub via_all: EventMask,
    pub resources: Box<[Pattern]>,
    pub sinks: Box<[u32]>,
}

/// Each rule's id and sinks, packed for the workers: a 16-byte entry per
/// rule (160 KiB for 10k rules) into one string of ids and one array of sink
/// positions. Reading them through `CompiledRule` cost three cache misses
/// per message (the 72-byte rule, then its id and its sinks, each a heap
/// allocation of its own); `perf` put them at 60 % of the worker loop's own
/// time in the Kafka pipeline.
#[derive(Debug, Default)]
struct Routes {
    spans: Vec<[u32; 4]>,
    ids: String,
    sinks: Vec<u32>,
}

impl Routes {
    fn new(rules: &[CompiledRule]) -> Routes {
        let mut r = Routes {
            spans: Vec::with_capacity(rules.len()),
            ..Routes::default()
        };
        for rule in rules {
            r.spans.push([
                r.ids.len() as u32,
                rule.id.len() as u32,
                r.sinks.len() as u32,
                rule.sinks.len() as u32,
            ]);
            r.ids.push_str(&rule.id);
            r.sinks.extend_from_slice(&rule.sinks);
        }
        r
    }

    #[inline]
    fn get(&self, n: u32) -> (&str, &[u32]) {
        let [id_at, id_len, sinks_at, sinks_len] = self.spans[n as usize];
        (
            &self.ids[id_at as usize..(id_at + id_len) as usize],
            &self.sinks[sinks_at as usize..(sinks_at + sinks_len) as usize],
        )
    }
}

/// One lookup: which rules match this event?
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    pub bucket: &'a str,
    pub region: &'a str,
    pub event: EventType,
    pub key: &'a str,
}

/// How an index is laid out; the default is what production uses, the
/// others exist so tests can force each code path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Most distinct prefix lengths a bucket may have and still be hashed.
    pub max_prefix_lengths: usize,
    /// Most distinct suffix lengths, likewise.
    pub max_suffix_lengths: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            max_prefix_lengths: MAX_PREFIX_LENS,
            max_suffix_lengths: MAX_SUFFIX_LENS,
        }
    }
}

impl Layout {
    /// Every bucket on tries.
    pub fn tries_only() -> Layout {
        Layout {
            max_prefix_lengths: 0,
            max_suffix_lengths: 0,
        }
    }
}

const EMPTY: u32 = u32::MAX;
/// Region id of an entry whose rule has no region.
const ANY_REGION: u32 = u32::MAX;
/// Region id of a record region no rule names.
const UNKNOWN_REGION: u32 = u32::MAX - 1;
/// Lookups whose memory misses are overlapped at once (measured best of
/// 8, 16, 32 and 64 on the benchmark machine).
const GROUP: usize = 16;
const MAX_PREFIX_LENS: usize = 6;
const MAX_SUFFIX_LENS: usize = 2;
/// Pattern bytes kept in a pattern slot; the rest is in `bytes`.
const INLINE_PATTERN: usize = 16;
/// Longest `p*s` suffix a pattern slot's inline entry holds.
const INLINE_SUFFIX: usize = 7;

/// Which table side a pattern is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Side {
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
struct Slot {
    hash: u64,
    /// Union of the rules' types: most lookups stop here.
    mask: EventMask,
    /// The bucket's number: part of its patterns' hash, and its place in
    /// `buckets` and `names`; `EMPTY` marks a free slot.
    id: u32,
    /// `EMPTY`: hashed; else the bucket's tries in `tries`.
    tries: u32,
    has_exact: bool,
    n_prefix: u8,
    n_suffix: u8,
    /// Another bucket of the index has the same hash.
    shared_hash: bool,
    prefix_lens: [u8; MAX_PREFIX_LENS],
    suffix_lens: [u8; MAX_SUFFIX_LENS],
}

const _: () = assert!(std::mem::size_of::<Slot>() == 32);

/// Longest pattern a hashed bucket takes (lengths are kept in a byte);
/// buckets with longer patterns use tries.
const MAX_HASHED_LEN: usize = u8::MAX as usize;

/// Longest exact name a hashed bucket takes (a pattern slot's length is a
/// `u16`); keys have no length limit (SPEC §1), longer names go on tries.
const MAX_HASHED_EXACT_LEN: usize = u16::MAX as usize;

const FREE: Slot = Slot {
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
    fn is_free(&self) -> bool {
        self.id == EMPTY
    }
}

/// What only `--explain` needs of a bucket, kept out of the hot slot.
#[derive(Debug, Clone, Copy)]
struct BucketInfo {
    /// The bucket's rules, in config order, in `bucket_rules`.
    rules_start: u32,
    rules_len: u32,
}

/// One (bucket, side, pattern) and its entries, in one cache line. Most
/// patterns have one entry: it is copied in (`one`), suffix and all, so
/// deciding the match needs no further miss.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct PatternSlot {
    hash: u64,
    entries_start: u32,
    /// 0 for a free slot.
    entries_len: u32,
    /// Bytes past `INLINE_PATTERN`, in `bytes`.
    rest_start: u32,
    len: u16,
    /// `one` is the only entry, with its whole suffix in `one_suffix`.
    has_one: bool,
    one_suffix_len: u8,
    one_kind: EntryKind,
    one_suffix: [u8; INLINE_SUFFIX],
    inline: [u8; INLINE_PATTERN],
    one: EntryCore,
}

/// What deciding a match reads of an [`Entry`]: kept in the entry, and
/// copied into a pattern slot whose pattern has one rule.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct EntryCore {
    rule: u32,
    direct: EventMask,
    via_all: EventMask,
    region: u32,
}

// One cache line, not two.
const _: () = assert!(std::mem::size_of::<PatternSlot>() == 64);

const FREE_PATTERN: PatternSlot = PatternSlot {
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
struct Tries {
    prefix: Option<TrieRef>,
    suffix: Option<TrieRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum EntryKind {
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
struct Entry {
    core: EntryCore,
    kind: EntryKind,
    /// The suffix of a `p*s`, in `bytes`.
    suffix_start: u32,
    suffix_len: u32,
}

/// What the policy says of one record region, computed once per lookup.
#[derive(Debug, Clone, Copy)]
struct RegionView {
    id: u32,
    notifies: bool,
    all_ok: bool,
}

/// The immutable index of one rule set.
#[derive(Debug)]
pub struct RuleIndex {
    rules: Vec<CompiledRule>,
    /// What a message needs of each rule, packed (see [`RuleIndex::route`]).
    routes: Routes,
    slots: Vec<Slot>,
    slot_mask: usize,
    patterns: Vec<PatternSlot>,
    pattern_mask: usize,
    entries: Vec<Entry>,
    /// Long pattern tails and `p*s` suffixes.
    bytes: Vec<u8>,
    arena: Arena,
    tries: Vec<Tries>,
    buckets: Vec<BucketInfo>,
    /// Each bucket's name in `bytes` (start, length), by bucket number.
    names: Vec<(u32, u32)>,
    bucket_rules: Vec<u32>,
    /// Every region a rule or the policy names, with what the policy says
    /// of it; other regions get `other_region`.
    regions: FxHashMap<Box<str>, RegionView>,
    other_region: RegionView,
    policy: RegionPolicy,
}

#[inline]
fn hash_name(name: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(name.as_bytes());
    h.finish()
}

#[inline]
fn hash_pattern(bucket: u32, side: Side, bytes: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write_u32(bucket);
    h.write_u8(side as u8);
    h.write(bytes);
    h.finish()
}

/// The key bytes a probe at (side, len) looks up.
#[inline]
fn probe_bytes(key: &[u8], side: Side, len: usize) -> &[u8] {
    match side {
        Side::Exact => key,
        Side::Prefix => &key[..len],
        Side::Suffix => &key[key.len() - len..],
    }
}

/// One pattern-table probe of a lookup: which side, how many key bytes, and
/// their hash.
#[derive(Debug, Clone, Copy)]
struct Probe {
    side: Side,
    len: u16,
    hash: u64,
}

impl Probe {
    /// Key bytes the pattern's fixed part covers when found.
    #[inline]
    fn matched(&self, key: &[u8]) -> u32 {
        match self.side {
            Side::Exact => key.len() as u32,
            _ => self.len as u32,
        }
    }
}

const NO_PROBE: Probe = Probe {
    side: Side::Exact,
    len: 0,
    hash: 0,
};

/// The probes of one lookup: at most one exact, one per prefix length and
/// one per suffix length.
#[derive(Debug, Clone, Copy)]
struct Probes {
    buf: [Probe; 1 + MAX_PREFIX_LENS + MAX_SUFFIX_LENS],
    n: usize,
}

impl Probes {
    const EMPTY: Probes = Probes {
        buf: [NO_PROBE; 1 + MAX_PREFIX_LENS + MAX_SUFFIX_LENS],
        n: 0,
    };
    #[inline]
    fn push(&mut self, p: Probe) {
        self.buf[self.n] = p;
        self.n += 1;
    }
    #[inline]
    fn as_slice(&self) -> &[Probe] {
        &self.buf[..self.n]
    }
}

/// Pattern slots a lookup found: (slot in `patterns`, matched length).
#[derive(Debug, Clone, Copy)]
struct Hits {
    buf: [(u32, u32); 1 + MAX_PREFIX_LENS + MAX_SUFFIX_LENS],
    n: usize,
}

/// One group's state between the stages of a batched lookup.
struct Group<'s> {
    hashes: [u64; GROUP],
    found: [Option<&'s Slot>; GROUP],
    views: [RegionView; GROUP],
    probes: [Probes; GROUP],
    hits: [Hits; GROUP],
}

impl Group<'_> {
    const EMPTY: Group<'static> = Group {
        hashes: [0; GROUP],
        found: [None; GROUP],
        views: [RegionView {
            id: 0,
            notifies: false,
            all_ok: false,
        }; GROUP],
        probes: [Probes::EMPTY; GROUP],
        hits: [Hits {
            buf: [(0, 0); 1 + MAX_PREFIX_LENS + MAX_SUFFIX_LENS],
            n: 0,
        }; GROUP],
    };
}

/// Distinct values, ascending.
fn distinct_lengths(mut v: Vec<u16>) -> Vec<u16> {
    v.sort_unstable();
    v.dedup();
    v
}

impl RuleIndex {
    /// Compiles validated rules. Rule numbers are positions in `specs`.
    pub fn build(specs: Vec<RuleSpec>, policy: RegionPolicy) -> RuleIndex {
        Self::build_with(specs, policy, Layout::default())
    }

    /// [`RuleIndex::build`] with a chosen layout (tests use it to force the
    /// trie path).
    pub fn build_with(specs: Vec<RuleSpec>, policy: RegionPolicy, layout: Layout) -> RuleIndex {
        let mut by_bucket: FxHashMap<&str, Vec<u32>> = FxHashMap::default();
        for (i, s) in specs.iter().enumerate() {
            by_bucket
                .entry(s.bucket.as_str())
                .or_default()
                .push(i as u32);
        }
        let mut names: Vec<&str> = by_bucket.keys().copied().collect();
        names.sort_unstable();

        let mut regions: FxHashMap<Box<str>, u32> = FxHashMap::default();
        for s in &specs {
            if let Some(r) = &s.region {
                let n = regions.len() as u32;
                regions.entry(r.as_str().into()).or_insert(n);
            }
        }
        let masks: Vec<(EventMask, EventMask)> = specs.iter().map(RuleSpec::masks).collect();
        let mut views: FxHashMap<Box<str>, RegionView> = regions
            .iter()
            .map(|(r, id)| {
                let v = RegionView {
                    id: *id,
                    notifies: policy.notifies(r),
                    all_ok: policy.all_wildcards_apply(r),
                };
                (r.clone(), v)
            })
            .collect();
        for r in policy
            .unsupported_regions
            .iter()
            .chain(&policy.all_wildcard_regions)
        {
            views.entry(r.as_str().into()).or_insert(RegionView {
                id: UNKNOWN_REGION,
                notifies: policy.notifies(r),
                all_ok: policy.all_wildcards_apply(r),
            });
        }
        // A region nobody names is not unsupported, and takes `:All` only
        // where the policy is off or lists "*".
        let other_region = RegionView {
            id: UNKNOWN_REGION,
            notifies: true,
            all_ok: !policy.enabled || policy.all_wildcard_regions.contains("*"),
        };

        let capacity = (names.len() * 2).next_power_of_two().max(16);
        let mut hash_counts: FxHashMap<u64, u32> = FxHashMap::default();
        for name in &names {
            *hash_counts.entry(hash_name(name)).or_default() += 1;
        }
        let mut slots = prefetch::huge_vec(capacity, FREE);
        let slot_mask = capacity - 1;
        let mut entries: Vec<Entry> = Vec::with_capacity(specs.len());
        let mut bytes = Vec::new();
        let mut arena = Arena::default();
        let mut tries = Vec::new();
        let mut buckets = Vec::with_capacity(names.len());
        let mut name_spans = Vec::with_capacity(names.len());
        let mut bucket_rules = Vec::with_capacity(specs.len());
        // (hash, entries start, entries count, bytes in `group_bytes`) of
        // every hashed pattern group, placed at the end. One buffer for all
        // their bytes: a million small allocations would also leave the
        // heap in shreds for whatever the process allocates next.
        let mut groups: Vec<(u64, u32, u32, std::ops::Range<usize>)> = Vec::new();
        let mut group_bytes: Vec<u8> = Vec::new();
        for (id, name) in names.iter().enumerate() {
            let members = &by_bucket[name];
            let mut mask = EventMask::EMPTY;
            // (side, pattern bytes, entry)
            let mut items: Vec<(Side, &[u8], Entry)> = Vec::new();
            for &r in members {
                let spec = &specs[r as usize];
                let (direct, via_all) = masks[r as usize];
                mask = mask.union(direct).union(via_all);
                let region = spec
                    .region
                    .as_deref()
                    .map_or(ANY_REGION, |reg| regions[reg]);
                for p in spec.effective_resources() {
                    let mut e = Entry {
                        core: EntryCore {
                            rule: r,
                            direct,
                            via_all,
                            region,
                        },
                        kind: EntryKind::Prefix,
                        suffix_start: 0,
                        suffix_len: 0,
                    };
                    let item = match p {
                        Pattern::Exact(x) => {
                            e.kind = EntryKind::Exact;
                            (Side::Exact, x.as_bytes())
                        }
                        Pattern::Prefix(x) => (Side::Prefix, x.as_bytes()),
                        Pattern::Any => (Side::Prefix, &b""[..]),
                        Pattern::PrefixSuffix(x, s) => {
                            e.kind = EntryKind::PrefixSuffix;
                            e.suffix_start = bytes.len() as u32;
                            e.suffix_len = s.len() as u32;
                            bytes.extend_from_slice(s.as_bytes());
                            (Side::Prefix, x.as_bytes())
                        }
                        Pattern::Suffix(s) => {
                            e.kind = EntryKind::Suffix;
                            (Side::Suffix, s.as_bytes())
                        }
                    };
                    items.push((item.0, item.1, e));
                }
            }
            let lens = |side: Side| {
                distinct_lengths(
                    items
                        .iter()
                        .filter(|i| i.0 == side)
                        .map(|i| i.1.len().min(u16::MAX as usize) as u16)
                        .collect(),
                )
            };
            let prefix_lens = lens(Side::Prefix);
            let suffix_lens = lens(Side::Suffix);
            let too_long = items.iter().any(|i| match i.0 {
                // A pattern slot keeps its length in a u16.
                Side::Exact => i.1.len() > MAX_HASHED_EXACT_LEN,
                Side::Prefix | Side::Suffix => i.1.len() > MAX_HASHED_LEN,
            });
            let mut slot = FREE;
            if prefix_lens.len() > layout.max_prefix_lengths
                || suffix_lens.len() > layout.max_suffix_lengths
                || too_long
            {
                slot.tries = tries.len() as u32;
                tries.push(build_tries(&items, &mut arena, &mut entries));
            } else {
                slot.n_prefix = prefix_lens.len() as u8;
                for (to, from) in slot.prefix_lens.iter_mut().zip(&prefix_lens) {
                    *to = *from as u8;
                }
                slot.n_suffix = suffix_lens.len() as u8;
                for (to, from) in slot.suffix_lens.iter_mut().zip(&suffix_lens) {
                    *to = *from as u8;
                }
                slot.has_exact = items.iter().any(|i| i.0 == Side::Exact);
                // One group per (side, bytes), its entries contiguous.
                items.sort_by(|a, b| (a.0 as u8, a.1).cmp(&(b.0 as u8, b.1)));
                let mut i = 0;
                while i < items.len() {
                    let (side, pat, _) = items[i];
                    let n = items[i..]
                        .iter()
                        .take_while(|x| x.0 == side && x.1 == pat)
                        .count();
                    let start = entries.len() as u32;
                    entries.extend(items[i..i + n].iter().map(|x| x.2));
                    let at = group_bytes.len();
                    group_bytes.extend_from_slice(pat);
                    groups.push((
                        hash_pattern(id as u32, side, pat),
                        start,
                        n as u32,
                        at..group_bytes.len(),
                    ));
                    i += n;
                }
            }
            buckets.push(BucketInfo {
                rules_start: bucket_rules.len() as u32,
                rules_len: members.len() as u32,
            });
            bucket_rules.extend_from_slice(members);
            slot.hash = hash_name(name);
            slot.mask = mask;
            slot.id = id as u32;
            slot.shared_hash = hash_counts[&slot.hash] > 1;
            name_spans.push((bytes.len() as u32, name.len() as u32));
            bytes.extend_from_slice(name.as_bytes());
            let mut s = slot.hash as usize & slot_mask;
            while !slots[s].is_free() {
                s = (s + 1) & slot_mask;
            }
            slots[s] = slot;
        }

        let pcap = (groups.len() * 2).next_power_of_two().max(16);
        let pattern_mask = pcap - 1;
        let mut patterns = prefetch::huge_vec(pcap, FREE_PATTERN);
        for (h, start, n, range) in groups {
            let pat = &group_bytes[range];
            let keep = pat.len().min(INLINE_PATTERN);
            let mut ps = PatternSlot {
                hash: h,
                entries_start: start,
                entries_len: n,
                rest_start: bytes.len() as u32,
                len: pat.len() as u16,
                ..FREE_PATTERN
            };
            ps.inline[..keep].copy_from_slice(&pat[..keep]);
            bytes.extend_from_slice(&pat[keep..]);
            let e = entries[start as usize];
            if n == 1 && e.suffix_len as usize <= INLINE_SUFFIX {
                ps.has_one = true;
                ps.one = e.core;
                ps.one_kind = e.kind;
                ps.one_suffix_len = e.suffix_len as u8;
                ps.one_suffix[..e.suffix_len as usize].copy_from_slice(
                    &bytes[e.suffix_start as usize..(e.suffix_start + e.suffix_len) as usize],
                );
            }
            let mut s = h as usize & pattern_mask;
            while patterns[s].entries_len != 0 {
                s = (s + 1) & pattern_mask;
            }
            patterns[s] = ps;
        }
        arena.shrink_to_fit();
        bytes.shrink_to_fit();

        let rules: Vec<CompiledRule> = specs
            .into_iter()
            .zip(masks)
            .map(|(spec, (direct, via_all))| CompiledRule {
                id: spec.id.into_boxed_str(),
                region: spec.region.map(String::into_boxed_str),
                direct,
                via_all,
                resources: RuleSpec::into_effective_resources(spec.resources),
                sinks: spec.sinks.into_boxed_slice(),
            })
            .collect();
        RuleIndex {
            routes: Routes::new(&rules),
            rules,
            slots,
            slot_mask,
            patterns,
            pattern_mask,
            entries,
            bytes,
            arena,
            tries,
            buckets,
            names: name_spans,
            bucket_rules,
            regions: views,
            other_region,
            policy,
        }
    }

    /// The name of the bucket in slot `b`.
    #[inline]
    fn bucket_name(&self, b: &Slot) -> &[u8] {
        let (start, len) = self.names[b.id as usize];
        &self.bytes[start as usize..(start + len) as usize]
    }

    pub fn rule(&self, n: u32) -> &CompiledRule {
        &self.rules[n as usize]
    }

    /// Rule `n`'s id and sink positions: what each message needs, from a
    /// table that stays in cache (see [`Routes`]).
    #[inline]
    pub fn route(&self, n: u32) -> (&str, &[u32]) {
        self.routes.get(n)
    }

    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    pub fn policy(&self) -> &RegionPolicy {
        &self.policy
    }

    #[inline]
    fn region_view(&self, region: &str) -> RegionView {
        self.regions
            .get(region)
            .copied()
            .unwrap_or(self.other_region)
    }

    /// The bucket named `name`, whose hash is `h`. Unless `verify`, the
    /// name is compared only where two buckets share the hash: the caller
    /// then checks it (with [`RuleIndex::is_named`]) before trusting a
    /// match, which saves reading the name for every lookup that matches
    /// nothing.
    #[inline]
    fn find_bucket(&self, h: u64, name: &str, verify: bool) -> Option<&Slot> {
        let mut s = h as usize & self.slot_mask;
        loop {
            let slot = &self.slots[s];
            if slot.is_free() {
                return None;
            }
            if slot.hash == h
                && ((!verify && !slot.shared_hash) || self.bucket_name(slot) == name.as_bytes())
            {
                return Some(slot);
            }
            s = (s + 1) & self.slot_mask;
        }
    }

    /// Whether bucket `b` is really `name` (see [`RuleIndex::find_bucket`]).
    #[inline]
    fn is_named(&self, b: &Slot, name: &str) -> bool {
        b.shared_hash || self.bucket_name(b) == name.as_bytes()
    }

    /// The probes a lookup of `key` in (hashed) bucket `b` makes.
    #[inline]
    fn probes(&self, b: &Slot, key: &[u8]) -> Probes {
        let mut out = Probes::EMPTY;
        if b.has_exact {
            out.push(Probe {
                side: Side::Exact,
                len: 0,
                hash: hash_pattern(b.id, Side::Exact, key),
            });
        }
        let sides = [
            (Side::Prefix, &b.prefix_lens[..b.n_prefix as usize]),
            (Side::Suffix, &b.suffix_lens[..b.n_suffix as usize]),
        ];
        for (side, lens) in sides {
            // Ascending: stop at the first length longer than the key.
            for &l in lens.iter().take_while(|l| **l as usize <= key.len()) {
                out.push(Probe {
                    side,
                    len: l as u16,
                    hash: hash_pattern(b.id, side, probe_bytes(key, side, l as usize)),
                });
            }
        }
        out
    }

    /// The pattern slot a probe finds (its place in `patterns`), if its
    /// bytes really are there.
    #[inline]
    fn resolve(&self, p: &Probe, key: &[u8]) -> Option<usize> {
        let want = probe_bytes(key, p.side, p.len as usize);
        let mut s = p.hash as usize & self.pattern_mask;
        loop {
            let ps = &self.patterns[s];
            if ps.entries_len == 0 {
                return None;
            }
            if ps.hash == p.hash && ps.len as usize == want.len() {
                let keep = want.len().min(INLINE_PATTERN);
                let rest =
                    &self.bytes[ps.rest_start as usize..ps.rest_start as usize + want.len() - keep];
                if ps.inline[..keep] == want[..keep] && rest == &want[keep..] {
                    return Some(s);
                }
            }
            s = (s + 1) & self.pattern_mask;
        }
    }

    /// Whether entry `v`, whose fixed part matched `plen` key bytes, matches
    /// in full; its rule if so.
    #[inline]
    fn accepts(&self, v: u32, plen: u32, rv: RegionView, t: EventType, kb: &[u8]) -> Option<u32> {
        let e = &self.entries[v as usize];
        let suffix = &self.bytes[e.suffix_start as usize..(e.suffix_start + e.suffix_len) as usize];
        accepts(&e.core, e.kind, suffix, plen, rv, t, kb)
    }

    /// The rules a found pattern slot gives: its inline entry decided on
    /// the spot, or its entries.
    #[inline]
    fn accept_slot(
        &self,
        ps: &PatternSlot,
        plen: u32,
        rv: RegionView,
        t: EventType,
        kb: &[u8],
        out: &mut Vec<u32>,
    ) {
        if ps.has_one {
            let suffix = &ps.one_suffix[..ps.one_suffix_len as usize];
            out.extend(accepts(&ps.one, ps.one_kind, suffix, plen, rv, t, kb));
            return;
        }
        for v in ps.entries_start..ps.entries_start + ps.entries_len {
            out.extend(self.accepts(v, plen, rv, t, kb));
        }
    }

    /// Calls `f(entry, matched_len)` for every candidate entry of a
    /// bucket on tries.
    #[inline]
    fn walk_tries(&self, b: &Slot, key: &[u8], mut f: impl FnMut(u32, u32)) {
        let t = &self.tries[b.tries as usize];
        if let Some(trie) = t.prefix {
            self.arena.for_each_match(trie, key, |v, n| f(v, n as u32));
        }
        if let Some(trie) = t.suffix {
            self.arena.for_each_match(trie, key, |v, n| f(v, n as u32));
        }
    }

    /// Appends the rules of bucket `b` that match to `out` (unsorted).
    #[inline]
    fn collect(&self, b: &Slot, rv: RegionView, t: EventType, key: &str, out: &mut Vec<u32>) {
        let kb = key.as_bytes();
        if b.tries != EMPTY {
            self.walk_tries(b, kb, |v, n| {
                if let Some(r) = self.accepts(v, n, rv, t, kb) {
                    out.push(r);
                }
            });
            return;
        }
        for p in self.probes(b, kb).as_slice() {
            if let Some(s) = self.resolve(p, kb) {
                self.accept_slot(&self.patterns[s], p.matched(kb), rv, t, kb, out);
            }
        }
    }
}

/// Whether entry `e` (of `kind`, with its `p*s` suffix), whose fixed part
/// matched `plen` key bytes, matches in full; its rule if so.
#[inline]
fn accepts(
    e: &EntryCore,
    kind: EntryKind,
    suffix: &[u8],
    plen: u32,
    rv: RegionView,
    t: EventType,
    kb: &[u8],
) -> Option<u32> {
    let fits = match kind {
        EntryKind::Exact => plen as usize == kb.len(),
        EntryKind::PrefixSuffix => kb.len() >= plen as usize + suffix.len() && kb.ends_with(suffix),
        EntryKind::Prefix | EntryKind::Suffix => true,
    };
    (fits
        && (e.direct.contains(t) || (rv.all_ok && e.via_all.contains(t)))
        && (e.region == ANY_REGION || e.region == rv.id))
        .then_some(e.rule)
}

/// Builds the tries of one bucket, appending its entries in trie order.
fn build_tries(
    items: &[(Side, &[u8], Entry)],
    arena: &mut Arena,
    entries: &mut Vec<Entry>,
) -> Tries {
    let mut side = |pick: &dyn Fn(Side) -> bool, reversed: bool| {
        let list: Vec<(&[u8], u32)> = items
            .iter()
            .enumerate()
            .filter(|(_, i)| pick(i.0))
            .map(|(n, i)| (i.1, n as u32))
            .collect();
        arena
            .add_trie(list, reversed, entries.len() as u32)
            .map(|b| {
                entries.extend(b.order.iter().map(|&i| items[i as usize].2));
                b.trie
            })
    };
    Tries {
        prefix: side(&|s| s != Side::Suffix, false),
        suffix: side(&|s| s == Side::Suffix, true),
    }
}

/// Sorts `out[start..]` and drops repeats (a rule reached by two of its
/// resources gives one message).
#[inline]
fn sort_dedup_from(out: &mut Vec<u32>, start: usize) {
    if out.len() - start > 1 {
        out[start..].sort_unstable();
        let mut w = start + 1;
        for r in start + 1..out.len() {
            if out[r] != out[w - 1] {
                out[w] = out[r];
                w += 1;
            }
        }
        out.truncate(w);
    }
}

impl RuleIndex {
    /// Numbers of the rules that match, ascending (config order), each once.
    /// `out` is cleared first; reuse it to avoid allocating.
    pub fn matches(&self, bucket: &str, region: &str, t: EventType, key: &str, out: &mut Vec<u32>) {
        out.clear();
        let rv = self.region_view(region);
        if !rv.notifies {
            return;
        }
        if let Some(b) = self.find_bucket(hash_name(bucket), bucket, false) {
            if b.mask.contains(t) {
                self.collect(b, rv, t, key, out);
                if !out.is_empty() && !self.is_named(b, bucket) {
                    out.clear();
                }
                sort_dedup_from(out, 0);
            }
        }
    }

    /// Many lookups at once, their memory misses overlapped: lookups go in
    /// groups through four stages (bucket slot; pattern slots; entries;
    /// decision), each stage prefetching what the next one reads for the
    /// whole group before any of it is needed. The rules of `lookups[i]` are
    /// `out[ends[i-1]..ends[i]]` (from 0 for the first), as
    /// [`RuleIndex::matches`] would give them.
    pub fn matches_batch(&self, lookups: &[Lookup<'_>], out: &mut Vec<u32>, ends: &mut Vec<u32>) {
        out.clear();
        ends.clear();
        let mut st = Group::EMPTY;
        for group in lookups.chunks(GROUP) {
            // Stage 1: hash the bucket names; fetch their slots.
            for (i, l) in group.iter().enumerate() {
                let h = hash_name(l.bucket);
                st.hashes[i] = h;
                prefetch::line(&self.slots[h as usize & self.slot_mask]);
            }
            self.find_group(&mut st, group);
            self.resolve_group(&mut st, group);
            self.decide(&st, group, out, ends);
        }
    }

    /// Stage 2: find the buckets; hash each key at the lengths its bucket
    /// uses; fetch those pattern slots (or a trie's first nodes).
    fn find_group<'s>(&'s self, st: &mut Group<'s>, group: &[Lookup<'_>]) {
        let mut last_region: Option<(&str, RegionView)> = None;
        for (i, l) in group.iter().enumerate() {
            st.found[i] = None;
            st.probes[i].n = 0;
            let rv = match last_region {
                Some((r, v)) if r == l.region => v,
                _ => {
                    let v = self.region_view(l.region);
                    last_region = Some((l.region, v));
                    v
                }
            };
            st.views[i] = rv;
            if !rv.notifies {
                continue;
            }
            let Some(b) = self.find_bucket(st.hashes[i], l.bucket, false) else {
                continue;
            };
            if !b.mask.contains(l.event) {
                continue;
            }
            st.found[i] = Some(b);
            if b.tries == EMPTY {
                st.probes[i] = self.probes(b, l.key.as_bytes());
                for p in st.probes[i].as_slice() {
                    prefetch::line(&self.patterns[p.hash as usize & self.pattern_mask]);
                }
            } else {
                let t = &self.tries[b.tries as usize];
                for trie in [t.prefix, t.suffix].into_iter().flatten() {
                    self.arena.prefetch(trie);
                }
            }
        }
    }

    /// Stage 3: resolve the probes; fetch the entries they point at.
    fn resolve_group(&self, st: &mut Group<'_>, group: &[Lookup<'_>]) {
        for (i, l) in group.iter().enumerate() {
            st.hits[i].n = 0;
            if st.found[i].is_none_or(|b| b.tries != EMPTY) {
                continue;
            }
            let kb = l.key.as_bytes();
            let probes = st.probes[i];
            for p in probes.as_slice() {
                if let Some(s) = self.resolve(p, kb) {
                    let ps = &self.patterns[s];
                    if !ps.has_one {
                        prefetch::line(&self.entries[ps.entries_start as usize]);
                    }
                    let h = &mut st.hits[i];
                    h.buf[h.n] = (s as u32, p.matched(kb));
                    h.n += 1;
                }
            }
            // A candidate: its bucket's name will be compared.
            if let (true, Some(b)) = (st.hits[i].n > 0, st.found[i]) {
                prefetch::line(&self.bytes[self.names[b.id as usize].0 as usize]);
            }
        }
    }

    /// Stage 4: decide, appending each lookup's rules in order.
    fn decide(
        &self,
        st: &Group<'_>,
        group: &[Lookup<'_>],
        out: &mut Vec<u32>,
        ends: &mut Vec<u32>,
    ) {
        for (i, l) in group.iter().enumerate() {
            let start = out.len();
            if let Some(b) = st.found[i] {
                let rv = st.views[i];
                if b.tries != EMPTY {
                    self.collect(b, rv, l.event, l.key, out);
                } else {
                    let kb = l.key.as_bytes();
                    let h = &st.hits[i];
                    for &(s, plen) in &h.buf[..h.n] {
                        self.accept_slot(&self.patterns[s as usize], plen, rv, l.event, kb, out);
                    }
                }
                if out.len() > start && !self.is_named(b, l.bucket) {
                    out.truncate(start);
                }
            }
            sort_dedup_from(out, start);
            ends.push(out.len() as u32);
        }
    }

    /// Why no rule matched, in words (for `match --explain`). Slow: scans the
    /// bucket's rules.
    pub fn explain(&self, bucket: &str, region: &str, t: EventType, key: &str) -> String {
        if !self.policy.notifies(region) {
            return format!(
                "region {region} gets no notifications (region policy: [policy] unsupported_regions)"
            );
        }
        let Some(b) = self.find_bucket(hash_name(bucket), bucket, true) else {
            return format!("no rule is for bucket {bucket:?}");
        };
        let info = self.buckets[b.id as usize];
        let members = &self.bucket_rules
            [info.rules_start as usize..(info.rules_start + info.rules_len) as usize];
        let typed: Vec<&CompiledRule> = members
            .iter()
            .map(|r| self.rule(*r))
            .filter(|r| r.direct.union(r.via_all).contains(t))
            .collect();
        if typed.is_empty() {
            return format!("no rule of bucket {bucket:?} subscribes to {}", t.name());
        }
        let in_region: Vec<&CompiledRule> = typed
            .iter()
            .copied()
            .filter(|r| r.region.as_deref().is_none_or(|rr| rr == region))
            .collect();
        if in_region.is_empty() {
            return format!(
                "the rules of bucket {bucket:?} that subscribe to {} are for other regions than {region} ({})",
                t.name(),
                ids(&typed)
            );
        }
        let all_ok = self.policy.all_wildcards_apply(region);
        let live: Vec<&CompiledRule> = in_region
            .iter()
            .copied()
            .filter(|r| r.direct.contains(t) || all_ok)
            .collect();
        if live.is_empty() {
            return format!(
                "rules {} subscribe to {} only through {}:All, which the region policy applies only in [policy] all_wildcard_regions; the bucket's region is {region}",
                ids(&in_region),
                t.name(),
                t.category().name()
            );
        }
        format!(
            "key {key:?} matches no resource of the rules of bucket {bucket:?} for {} ({})",
            t.name(),
            ids(&live)
        )
    }

    /// Heap bytes of the index (rules, tables, tries, entries).
    pub fn heap_bytes(&self) -> usize {
        let rules: usize = self
            .rules
            .iter()
            .map(|r| {
                std::mem::size_of::<CompiledRule>()
                    + r.id.len()
                    + r.region.as_ref().map_or(0, |s| s.len())
                    + r.sinks.len() * 4
                    + r.resources
                        .iter()
                        .map(|p| {
                            std::mem::size_of::<Pattern>() + p.prefix().len() + p.suffix().len()
                        })
                        .sum::<usize>()
            })
            .sum();
        rules
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.patterns.capacity() * std::mem::size_of::<PatternSlot>()
            + self.bytes.capacity()
            + self.arena.heap_bytes()
            + self.tries.capacity() * std::mem::size_of::<Tries>()
            + self.buckets.capacity() * std::mem::size_of::<BucketInfo>()
            + self.names.capacity() * std::mem::size_of::<(u32, u32)>()
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.bucket_rules.capacity() * 4
    }
}

fn ids(rules: &[&CompiledRule]) -> String {
    let v: Vec<&str> = rules.iter().map(|r| &*r.id).collect();
    v.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, bucket: &str, resource: Pattern) -> RuleSpec {
        RuleSpec {
            id: id.into(),
            bucket: bucket.into(),
            region: None,
            events: vec![crate::event::EventPattern::parse("ObjectCreated:*").unwrap()],
            resources: vec![resource],
            sinks: vec![0],
        }
    }

    #[test]
    fn patterns_longer_than_a_slot_length_byte_still_match() {
        // Over 255 bytes: the bucket goes on tries, not hashed lengths.
        let long = "d/".repeat(150);
        let index = RuleIndex::build(
            vec![
                spec("long", "b", Pattern::Prefix(long.clone().into())),
                spec("short", "b", Pattern::Prefix("x/".into())),
            ],
            RegionPolicy::default(),
        );
        let mut out = Vec::new();
        let key = format!("{long}file.jpg");
        index.matches("b", "cn-hangzhou", EventType::PutObject, &key, &mut out);
        assert_eq!(out, vec![0]);
        index.matches("b", "cn-hangzhou", EventType::PutObject, "x/1", &mut out);
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn a_bucket_the_index_does_not_hold_matches_nothing() {
        let index = RuleIndex::build(
            vec![spec("all", "photos", Pattern::Any)],
            RegionPolicy::default(),
        );
        let mut out = Vec::new();
        for bucket in ["photos", "photo", "photos2", ""] {
            index.matches(bucket, "cn-hangzhou", EventType::PutObject, "a", &mut out);
            assert_eq!(out.len(), usize::from(bucket == "photos"), "{bucket}");
            let (mut all, mut ends) = (Vec::new(), Vec::new());
            let l = Lookup {
                bucket,
                region: "cn-hangzhou",
                event: EventType::PutObject,
                key: "a",
            };
            index.matches_batch(&[l], &mut all, &mut ends);
            assert_eq!(all.len(), usize::from(bucket == "photos"), "{bucket}");
        }
    }

    #[test]
    fn each_route_is_its_rules_id_and_sinks() {
        let mut specs = vec![
            spec("a", "b", Pattern::Any),
            spec("", "b", Pattern::Prefix("x/".into())),
            spec("long-rule-id-ü", "c", Pattern::Any),
        ];
        specs[0].sinks = vec![2, 0, 1];
        specs[1].sinks = vec![];
        let index = RuleIndex::build(specs, RegionPolicy::default());
        let routes: Vec<(&str, &[u32])> = (0..3).map(|n| index.route(n)).collect();
        assert_eq!(
            routes,
            vec![
                ("a", &[2, 0, 1][..]),
                ("", &[][..]),
                ("long-rule-id-ü", &[0][..])
            ]
        );
        for (n, r) in index.rules().iter().enumerate() {
            assert_eq!(index.route(n as u32), (&*r.id, &*r.sinks));
        }
    }
}
