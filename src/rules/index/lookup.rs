//! One lookup at a time: the probes a key makes in a hashed bucket, the
//! pattern slots they find, the entries that decide, and the walk of a
//! bucket on tries.

use super::layout::*;
use super::RuleIndex;
use crate::event::EventType;

/// The key bytes a probe at (side, len) looks up.
#[inline]
pub(super) fn probe_bytes(key: &[u8], side: Side, len: usize) -> &[u8] {
    match side {
        Side::Exact => key,
        Side::Prefix => &key[..len],
        Side::Suffix => &key[key.len() - len..],
    }
}

/// One pattern-table probe of a lookup: which side, how many key bytes, and
/// their hash.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    pub(super) side: Side,
    pub(super) len: u16,
    pub(super) hash: u64,
}

impl Probe {
    /// Key bytes the pattern's fixed part covers when found.
    #[inline]
    pub(super) fn matched(&self, key: &[u8]) -> u32 {
        match self.side {
            Side::Exact => key.len() as u32,
            _ => self.len as u32,
        }
    }
}

pub(super) const NO_PROBE: Probe = Probe {
    side: Side::Exact,
    len: 0,
    hash: 0,
};

/// The probes of one lookup: at most one exact, one per prefix length and
/// one per suffix length.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probes {
    pub(super) buf: [Probe; 1 + MAX_PREFIX_LENS + MAX_SUFFIX_LENS],
    pub(super) n: usize,
}

impl Probes {
    pub(super) const EMPTY: Probes = Probes {
        buf: [NO_PROBE; 1 + MAX_PREFIX_LENS + MAX_SUFFIX_LENS],
        n: 0,
    };
    #[inline]
    pub(super) fn push(&mut self, p: Probe) {
        self.buf[self.n] = p;
        self.n += 1;
    }
    #[inline]
    pub(super) fn as_slice(&self) -> &[Probe] {
        &self.buf[..self.n]
    }
}

impl RuleIndex {
    /// The probes a lookup of `key` in (hashed) bucket `b` makes.
    #[inline]
    pub(super) fn probes(&self, b: &Slot, key: &[u8]) -> Probes {
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
    pub(super) fn resolve(&self, p: &Probe, key: &[u8]) -> Option<usize> {
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
    pub(super) fn accepts(
        &self,
        v: u32,
        plen: u32,
        rv: RegionView,
        t: EventType,
        kb: &[u8],
    ) -> Option<u32> {
        let e = &self.entries[v as usize];
        let suffix = &self.bytes[e.suffix_start as usize..(e.suffix_start + e.suffix_len) as usize];
        accepts(&e.core, e.kind, suffix, plen, rv, t, kb)
    }

    /// The rules a found pattern slot gives: its inline entry decided on
    /// the spot, or its entries.
    #[inline]
    pub(super) fn accept_slot(
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
    pub(super) fn walk_tries(&self, b: &Slot, key: &[u8], mut f: impl FnMut(u32, u32)) {
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
    pub(super) fn collect(
        &self,
        b: &Slot,
        rv: RegionView,
        t: EventType,
        key: &str,
        out: &mut Vec<u32>,
    ) {
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
}

/// Whether entry `e` (of `kind`, with its `p*s` suffix), whose fixed part
/// matched `plen` key bytes, matches in full; its rule if so.
#[inline]
pub(super) fn accepts(
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

/// Sorts `out[start..]` and drops repeats (a rule reached by two of its
/// resources gives one message).
#[inline]
pub(super) fn sort_dedup_from(out: &mut Vec<u32>, start: usize) {
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
