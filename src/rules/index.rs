//! The compiled rule index: immutable, shared by every worker without locks,
//! swapped whole on reload. Per bucket: a hash map of exact names, a prefix
//! trie (whose entries may also carry a suffix, for `p*s`), a suffix trie and
//! the rules that match every key; each rule carries its event-type masks.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use rustc_hash::FxHashMap;

use super::pattern::Pattern;
use super::policy::RegionPolicy;
use super::trie::Trie;
use super::RuleSpec;
use crate::event::{EventMask, EventType};

/// A rule as the index keeps it.
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

#[derive(Debug, Default)]
struct BucketIndex {
    /// Every rule of the bucket, in config order (for `--explain`).
    rules: Box<[u32]>,
    /// Union of the rules' types: most lookups stop here.
    mask: EventMask,
    exact: FxHashMap<Box<str>, Box<[u32]>>,
    /// Values index `tails`.
    prefix: Trie,
    tails: Box<[Tail]>,
    /// Values are rule numbers.
    suffix: Trie,
    any: Box<[u32]>,
}

/// A prefix-trie entry: the rule, and the suffix a `p*s` pattern also needs.
#[derive(Debug)]
struct Tail {
    rule: u32,
    suffix: Option<Box<str>>,
}

/// The immutable index of one rule set.
#[derive(Debug)]
pub struct RuleIndex {
    rules: Vec<CompiledRule>,
    buckets: FxHashMap<Box<str>, BucketIndex>,
    policy: RegionPolicy,
}

impl RuleIndex {
    /// Compiles validated rules. Rule numbers are positions in `specs`.
    pub fn build(specs: Vec<RuleSpec>, policy: RegionPolicy) -> RuleIndex {
        let mut by_bucket: FxHashMap<Box<str>, Vec<u32>> = FxHashMap::default();
        let mut rules = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let (direct, via_all) = spec.masks();
            match by_bucket.get_mut(spec.bucket.as_str()) {
                Some(list) => list.push(i as u32),
                None => {
                    by_bucket.insert(spec.bucket.into_boxed_str(), vec![i as u32]);
                }
            }
            rules.push(CompiledRule {
                id: spec.id.into_boxed_str(),
                region: spec.region.map(String::into_boxed_str),
                direct,
                via_all,
                resources: if spec.resources.is_empty() {
                    Box::new([Pattern::Any])
                } else {
                    spec.resources.into_boxed_slice()
                },
                sinks: spec.sinks.into_boxed_slice(),
            });
        }
        let mut buckets = FxHashMap::with_capacity_and_hasher(by_bucket.len(), Default::default());
        for (name, members) in by_bucket {
            let b = build_bucket(&rules, members);
            buckets.insert(name, b);
        }
        RuleIndex {
            rules,
            buckets,
            policy,
        }
    }

    pub fn rule(&self, n: u32) -> &CompiledRule {
        &self.rules[n as usize]
    }

    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    pub fn policy(&self) -> &RegionPolicy {
        &self.policy
    }

    /// Numbers of the rules that match, ascending (config order), each once.
    /// `out` is cleared first; reuse it to avoid allocating.
    #[inline]
    pub fn matches(&self, bucket: &str, region: &str, t: EventType, key: &str, out: &mut Vec<u32>) {
        out.clear();
        if !self.policy.notifies(region) {
            return;
        }
        let Some(b) = self.buckets.get(bucket) else {
            return;
        };
        if !b.mask.contains(t) {
            return;
        }
        let all_ok = self.policy.all_wildcards_apply(region);
        let accept = |r: u32| {
            let rule = &self.rules[r as usize];
            (rule.direct.contains(t) || (all_ok && rule.via_all.contains(t)))
                && rule.region.as_deref().is_none_or(|rr| rr == region)
        };
        if !b.exact.is_empty() {
            if let Some(list) = b.exact.get(key) {
                out.extend(list.iter().copied().filter(|r| accept(*r)));
            }
        }
        let kb = key.as_bytes();
        b.prefix.for_each_match(kb, |v, plen| {
            let tail = &b.tails[v as usize];
            if let Some(s) = &tail.suffix {
                if kb.len() < plen + s.len() || !kb.ends_with(s.as_bytes()) {
                    return;
                }
            }
            if accept(tail.rule) {
                out.push(tail.rule);
            }
        });
        b.suffix.for_each_match(kb, |r, _| {
            if accept(r) {
                out.push(r);
            }
        });
        out.extend(b.any.iter().copied().filter(|r| accept(*r)));
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
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
        let Some(b) = self.buckets.get(bucket) else {
            return format!("no rule is for bucket {bucket:?}");
        };
        let rules: Vec<&CompiledRule> = b.rules.iter().map(|r| self.rule(*r)).collect();
        let typed: Vec<&CompiledRule> = rules
            .into_iter()
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

    /// Approximate heap bytes of the index (rules, tries, maps).
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
        let buckets: usize = self
            .buckets
            .iter()
            .map(|(k, b)| {
                k.len()
                    + std::mem::size_of::<BucketIndex>()
                    + b.rules.len() * 4
                    + b.exact
                        .iter()
                        .map(|(k, v)| k.len() + 40 + v.len() * 4)
                        .sum::<usize>()
                    + b.prefix.heap_bytes()
                    + b.suffix.heap_bytes()
                    + b.tails.len() * std::mem::size_of::<Tail>()
                    + b.any.len() * 4
            })
            .sum();
        rules + buckets
    }
}

fn ids(rules: &[&CompiledRule]) -> String {
    let v: Vec<&str> = rules.iter().map(|r| &*r.id).collect();
    v.join(", ")
}

fn build_bucket(rules: &[CompiledRule], members: Vec<u32>) -> BucketIndex {
    let mut b = BucketIndex::default();
    let mut exact: FxHashMap<Box<str>, Vec<u32>> = FxHashMap::default();
    let mut prefix_entries: Vec<(&[u8], u32)> = Vec::new();
    let mut tails = Vec::new();
    let mut suffix_entries: Vec<(&[u8], u32)> = Vec::new();
    let mut any = Vec::new();
    for &r in &members {
        let rule = &rules[r as usize];
        b.mask = b.mask.union(rule.direct).union(rule.via_all);
        for p in rule.resources.iter() {
            match p {
                Pattern::Exact(e) => exact.entry(e.clone()).or_default().push(r),
                Pattern::Prefix(pre) => {
                    prefix_entries.push((pre.as_bytes(), tails.len() as u32));
                    tails.push(Tail {
                        rule: r,
                        suffix: None,
                    });
                }
                Pattern::PrefixSuffix(pre, suf) => {
                    prefix_entries.push((pre.as_bytes(), tails.len() as u32));
                    tails.push(Tail {
                        rule: r,
                        suffix: Some(suf.clone()),
                    });
                }
                Pattern::Suffix(suf) => suffix_entries.push((suf.as_bytes(), r)),
                Pattern::Any => any.push(r),
            }
        }
    }
    b.exact = exact
        .into_iter()
        .map(|(k, v)| (k, v.into_boxed_slice()))
        .collect();
    b.exact.shrink_to_fit();
    b.prefix = Trie::build(prefix_entries, false);
    b.tails = tails.into_boxed_slice();
    b.suffix = Trie::build(suffix_entries, true);
    any.dedup();
    b.any = any.into_boxed_slice();
    b.rules = members.into_boxed_slice();
    b
}

/// The index the workers read: a pointer swapped atomically on reload, read
/// without locks.
#[derive(Debug, Clone)]
pub struct SharedIndex(Arc<ArcSwap<RuleIndex>>);

impl SharedIndex {
    pub fn new(index: RuleIndex) -> Self {
        SharedIndex(Arc::new(ArcSwap::from_pointee(index)))
    }

    /// The current index; cheap, lock-free.
    #[inline]
    pub fn load(&self) -> Guard<Arc<RuleIndex>> {
        self.0.load()
    }

    /// Replaces the index; readers see the old one until their next `load`.
    pub fn swap(&self, index: RuleIndex) {
        self.0.store(Arc::new(index));
    }
}
