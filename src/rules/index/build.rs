//! Compiling rules into the index: buckets grouped and hashed, each
//! bucket's patterns placed in the pattern table or on tries, the rules
//! packed for the workers.

use rustc_hash::FxHashMap;

use super::super::pattern::Pattern;
use super::super::policy::RegionPolicy;
use super::super::prefetch;
use super::super::trie::Arena;
use super::super::RuleSpec;
use super::layout::*;
use super::{CompiledRule, Layout, Routes, RuleIndex};
use crate::event::EventMask;

/// One pattern of a bucket being compiled: its side, its bytes, its entry.
type Item<'s> = (Side, &'s [u8], Entry);

/// A hashed pattern group waiting to be placed: (hash, entries start,
/// entries count, its bytes in `group_bytes`).
type PendingGroup = (u64, u32, u32, std::ops::Range<usize>);

impl RuleIndex {
    /// Compiles validated rules. Rule numbers are positions in `specs`.
    pub fn build(specs: Vec<RuleSpec>, policy: RegionPolicy) -> RuleIndex {
        Self::build_with(specs, policy, Layout::default())
    }

    /// [`RuleIndex::build`] with a chosen layout (tests use it to force the
    /// trie path).
    pub fn build_with(specs: Vec<RuleSpec>, policy: RegionPolicy, layout: Layout) -> RuleIndex {
        let (by_bucket, names) = group_by_bucket(&specs);
        let regions = region_ids(&specs);
        let (views, other_region) = region_views(&regions, &policy);
        let masks: Vec<(EventMask, EventMask)> = specs.iter().map(RuleSpec::masks).collect();
        let mut b = Builder::new(&names, specs.len(), layout);
        for (id, name) in names.iter().enumerate() {
            let members = &by_bucket[name];
            let (mask, items) = b.bucket_items(members, &specs, &masks, &regions);
            b.place_bucket(id as u32, name, members, mask, items);
        }
        let (patterns, pattern_mask) = b.place_patterns();
        b.arena.shrink_to_fit();
        b.bytes.shrink_to_fit();
        let rules = compile_rules(specs, masks);
        RuleIndex {
            routes: Routes::new(&rules),
            rules,
            slots: b.slots,
            slot_mask: b.slot_mask,
            patterns,
            pattern_mask,
            entries: b.entries,
            bytes: b.bytes,
            arena: b.arena,
            tries: b.tries,
            buckets: b.buckets,
            names: b.name_spans,
            bucket_rules: b.bucket_rules,
            regions: views,
            other_region,
            policy,
        }
    }
}

/// Step 1: each bucket's rules, in config order, and the bucket names in
/// a fixed (sorted) order, which numbers them.
fn group_by_bucket(specs: &[RuleSpec]) -> (FxHashMap<&str, Vec<u32>>, Vec<&str>) {
    let mut by_bucket: FxHashMap<&str, Vec<u32>> = FxHashMap::default();
    for (i, s) in specs.iter().enumerate() {
        by_bucket
            .entry(s.bucket.as_str())
            .or_default()
            .push(i as u32);
    }
    let mut names: Vec<&str> = by_bucket.keys().copied().collect();
    names.sort_unstable();
    (by_bucket, names)
}

/// Step 2: a number for every region a rule names.
fn region_ids(specs: &[RuleSpec]) -> FxHashMap<Box<str>, u32> {
    let mut regions: FxHashMap<Box<str>, u32> = FxHashMap::default();
    for s in specs {
        if let Some(r) = &s.region {
            let n = regions.len() as u32;
            regions.entry(r.as_str().into()).or_insert(n);
        }
    }
    regions
}

/// Step 3: what the policy says of every region a rule or the policy
/// names, and of any other region.
fn region_views(
    regions: &FxHashMap<Box<str>, u32>,
    policy: &RegionPolicy,
) -> (FxHashMap<Box<str>, RegionView>, RegionView) {
    let view = |r: &str, id: u32| RegionView {
        id,
        notifies: policy.notifies(r),
        all_ok: policy.all_wildcards_apply(r),
    };
    let mut views: FxHashMap<Box<str>, RegionView> = regions
        .iter()
        .map(|(r, id)| (r.clone(), view(r, *id)))
        .collect();
    for r in policy
        .unsupported_regions
        .iter()
        .chain(&policy.all_wildcard_regions)
    {
        views
            .entry(r.as_str().into())
            .or_insert_with(|| view(r, UNKNOWN_REGION));
    }
    // A region nobody names is not unsupported, and takes `:All` only
    // where the policy is off or lists "*".
    let other_region = RegionView {
        id: UNKNOWN_REGION,
        notifies: true,
        all_ok: !policy.enabled || policy.all_wildcard_regions.contains("*"),
    };
    (views, other_region)
}

/// Step 7: the rules as the index keeps them.
fn compile_rules(specs: Vec<RuleSpec>, masks: Vec<(EventMask, EventMask)>) -> Vec<CompiledRule> {
    specs
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
        .collect()
}

/// The tables being filled, bucket by bucket (steps 4 and 5).
struct Builder {
    layout: Layout,
    hash_counts: FxHashMap<u64, u32>,
    slots: Vec<Slot>,
    slot_mask: usize,
    entries: Vec<Entry>,
    bytes: Vec<u8>,
    arena: Arena,
    tries: Vec<Tries>,
    buckets: Vec<BucketInfo>,
    name_spans: Vec<(u32, u32)>,
    bucket_rules: Vec<u32>,
    /// Every hashed pattern group, placed at the end (step 5). One buffer
    /// for all their bytes: a million small allocations would also leave
    /// the heap in shreds for whatever the process allocates next.
    groups: Vec<PendingGroup>,
    group_bytes: Vec<u8>,
}

impl Builder {
    fn new(names: &[&str], rules: usize, layout: Layout) -> Builder {
        let capacity = (names.len() * 2).next_power_of_two().max(16);
        let mut hash_counts: FxHashMap<u64, u32> = FxHashMap::default();
        for name in names {
            *hash_counts.entry(hash_name(name)).or_default() += 1;
        }
        Builder {
            layout,
            hash_counts,
            slots: prefetch::huge_vec(capacity, FREE),
            slot_mask: capacity - 1,
            entries: Vec::with_capacity(rules),
            bytes: Vec::new(),
            arena: Arena::default(),
            tries: Vec::new(),
            buckets: Vec::with_capacity(names.len()),
            name_spans: Vec::with_capacity(names.len()),
            bucket_rules: Vec::with_capacity(rules),
            groups: Vec::new(),
            group_bytes: Vec::new(),
        }
    }

    /// Step 4: a bucket's patterns with their entries, and the union of
    /// its rules' types. A `p*s` suffix goes into `bytes`.
    fn bucket_items<'s>(
        &mut self,
        members: &[u32],
        specs: &'s [RuleSpec],
        masks: &[(EventMask, EventMask)],
        regions: &FxHashMap<Box<str>, u32>,
    ) -> (EventMask, Vec<Item<'s>>) {
        let mut mask = EventMask::EMPTY;
        let mut items = Vec::new();
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
                let (side, bytes) = match p {
                    Pattern::Exact(x) => {
                        e.kind = EntryKind::Exact;
                        (Side::Exact, x.as_bytes())
                    }
                    Pattern::Prefix(x) => (Side::Prefix, x.as_bytes()),
                    Pattern::Any => (Side::Prefix, &b""[..]),
                    Pattern::PrefixSuffix(x, s) => {
                        e.kind = EntryKind::PrefixSuffix;
                        e.suffix_start = self.bytes.len() as u32;
                        e.suffix_len = s.len() as u32;
                        self.bytes.extend_from_slice(s.as_bytes());
                        (Side::Prefix, x.as_bytes())
                    }
                    Pattern::Suffix(s) => {
                        e.kind = EntryKind::Suffix;
                        (Side::Suffix, s.as_bytes())
                    }
                };
                items.push((side, bytes, e));
            }
        }
        (mask, items)
    }

    /// Step 5: the bucket's slot, its patterns on tries or queued for the
    /// pattern table, and its name.
    fn place_bucket(
        &mut self,
        id: u32,
        name: &str,
        members: &[u32],
        mask: EventMask,
        mut items: Vec<Item<'_>>,
    ) {
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
        if prefix_lens.len() > self.layout.max_prefix_lengths
            || suffix_lens.len() > self.layout.max_suffix_lengths
            || too_long
        {
            slot.tries = self.tries.len() as u32;
            let t = build_tries(&items, &mut self.arena, &mut self.entries);
            self.tries.push(t);
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
            self.queue_groups(id, &mut items);
        }
        self.buckets.push(BucketInfo {
            rules_start: self.bucket_rules.len() as u32,
            rules_len: members.len() as u32,
        });
        self.bucket_rules.extend_from_slice(members);
        slot.hash = hash_name(name);
        slot.mask = mask;
        slot.id = id;
        slot.shared_hash = self.hash_counts[&slot.hash] > 1;
        self.name_spans
            .push((self.bytes.len() as u32, name.len() as u32));
        self.bytes.extend_from_slice(name.as_bytes());
        let mut s = slot.hash as usize & self.slot_mask;
        while !self.slots[s].is_free() {
            s = (s + 1) & self.slot_mask;
        }
        self.slots[s] = slot;
    }

    /// One group per (side, bytes) of a hashed bucket, its entries
    /// contiguous.
    fn queue_groups(&mut self, id: u32, items: &mut [Item<'_>]) {
        items.sort_by(|a, b| (a.0 as u8, a.1).cmp(&(b.0 as u8, b.1)));
        let mut i = 0;
        while i < items.len() {
            let (side, pat, _) = items[i];
            let n = items[i..]
                .iter()
                .take_while(|x| x.0 == side && x.1 == pat)
                .count();
            let start = self.entries.len() as u32;
            self.entries.extend(items[i..i + n].iter().map(|x| x.2));
            let at = self.group_bytes.len();
            self.group_bytes.extend_from_slice(pat);
            self.groups.push((
                hash_pattern(id, side, pat),
                start,
                n as u32,
                at..self.group_bytes.len(),
            ));
            i += n;
        }
    }

    /// Step 6: the pattern table, every queued group in its slot, the
    /// entry of a one-rule pattern copied in.
    fn place_patterns(&mut self) -> (Vec<PatternSlot>, usize) {
        let pcap = (self.groups.len() * 2).next_power_of_two().max(16);
        let pattern_mask = pcap - 1;
        let mut patterns = prefetch::huge_vec(pcap, FREE_PATTERN);
        for (h, start, n, range) in std::mem::take(&mut self.groups) {
            let pat = &self.group_bytes[range];
            let keep = pat.len().min(INLINE_PATTERN);
            let mut ps = PatternSlot {
                hash: h,
                entries_start: start,
                entries_len: n,
                rest_start: self.bytes.len() as u32,
                len: pat.len() as u16,
                ..FREE_PATTERN
            };
            ps.inline[..keep].copy_from_slice(&pat[..keep]);
            self.bytes.extend_from_slice(&pat[keep..]);
            let e = self.entries[start as usize];
            if n == 1 && e.suffix_len as usize <= INLINE_SUFFIX {
                ps.has_one = true;
                ps.one = e.core;
                ps.one_kind = e.kind;
                ps.one_suffix_len = e.suffix_len as u8;
                ps.one_suffix[..e.suffix_len as usize].copy_from_slice(
                    &self.bytes[e.suffix_start as usize..(e.suffix_start + e.suffix_len) as usize],
                );
            }
            let mut s = h as usize & pattern_mask;
            while patterns[s].entries_len != 0 {
                s = (s + 1) & pattern_mask;
            }
            patterns[s] = ps;
        }
        self.group_bytes = Vec::new();
        (patterns, pattern_mask)
    }
}

/// Builds the tries of one bucket, appending its entries in trie order.
fn build_tries(items: &[Item<'_>], arena: &mut Arena, entries: &mut Vec<Entry>) -> Tries {
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

/// Distinct values, ascending.
fn distinct_lengths(mut v: Vec<u16>) -> Vec<u16> {
    v.sort_unstable();
    v.dedup();
    v
}
