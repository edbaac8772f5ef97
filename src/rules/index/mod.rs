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
//! only for patterns shared by several rules). A bucket whose patterns have
//! more distinct lengths than a slot holds uses radix tries instead, so the
//! cost stays bounded by the key's length either way. The two big tables
//! ask for transparent huge pages: at a million rules every random access
//! would otherwise miss the TLB.
//!
//! Rooms: [`layout`] (the slot types and their sizes), [`build`] (compiling
//! rules, in named steps), [`lookup`] (one lookup: [`RuleIndex::matches`]),
//! [`batch`] (many at once), [`explain`] (why nothing matched).
//!
//! **Which lookup runs where.** The workers, `match` and `test` call
//! [`RuleIndex::matches`], one event at a time, between decoding a record
//! and encoding its messages. [`RuleIndex::matches_batch`] overlaps the
//! memory misses of many lookups and is the index's throughput ceiling (the
//! `rule_index` benchmark: 8 M lookups/s at a million rules against 5.4 M
//! single); nothing in the pipeline calls it today, because a worker would
//! have to decode a whole batch of records and keep their events alive
//! before matching any of them. At the 10k rules of the pipeline benchmark
//! the index is in cache and a single lookup is not the bottleneck.

mod batch;
mod build;
mod explain;
mod layout;
mod lookup;

use rustc_hash::FxHashMap;

use super::pattern::Pattern;
use super::policy::RegionPolicy;
use super::trie::Arena;
use crate::event::{EventMask, EventType};
use layout::*;

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

impl RuleIndex {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSpec;

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
