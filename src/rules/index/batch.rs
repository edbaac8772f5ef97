//! The batched lookup: many lookups at once in groups of [`GROUP`], each
//! stage prefetching what the next reads for the whole group, so their
//! memory misses overlap.

use super::layout::*;
use super::lookup::{sort_dedup_from, Probes};
use super::{Lookup, RuleIndex};
use crate::rules::prefetch;

/// Pattern slots a lookup found: (slot in `patterns`, matched length).
#[derive(Debug, Clone, Copy)]
pub(super) struct Hits {
    pub(super) buf: [(u32, u32); 1 + MAX_PREFIX_LENS + MAX_SUFFIX_LENS],
    pub(super) n: usize,
}

/// One group's state between the stages of a batched lookup.
pub(super) struct Group<'s> {
    pub(super) hashes: [u64; GROUP],
    pub(super) found: [Option<&'s Slot>; GROUP],
    pub(super) views: [RegionView; GROUP],
    pub(super) probes: [Probes; GROUP],
    pub(super) hits: [Hits; GROUP],
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

impl RuleIndex {
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
}
