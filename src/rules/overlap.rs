//! Overlap detection (docs/rules.md): two rules of one bucket overlap when they
//! share an event type, their regions can coincide, and some key matches a
//! resource of each. OSS refuses such rule pairs.
//!
//! Sorting and tries instead of an all-pairs scan: exact names are looked up
//! in the bucket's tries; prefixes (and `p*s`) are compared only with the
//! prefixes that are prefixes of them, found with a stack over the sorted
//! list; suffixes likewise; prefix-vs-suffix and `*` pairs always overlap,
//! so one representative per event type is enough. A degenerate bucket in
//! which thousands of `p*s` resources share one prefix is the one case that
//! costs quadratic time in that group.

use std::collections::HashSet;
use std::fmt;

use rustc_hash::FxHashMap;

use super::pattern::Pattern;
use super::trie::Trie;
use super::RuleSpec;
use crate::event::{EventMask, EventType, ALL_EVENT_TYPES};

/// Two rules that can both match one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// Rule numbers (positions in the rule list), `a < b`.
    pub a: u32,
    pub b: u32,
    pub bucket: String,
    pub event: EventType,
    /// A key both rules match.
    pub example_key: String,
}

impl Overlap {
    /// The sentence `validate` prints, with the rules' ids.
    pub fn describe(&self, rules: &[RuleSpec]) -> String {
        format!(
            "rules {:?} and {:?} of bucket {:?} overlap: both match {} on key {:?}",
            rules[self.a as usize].id,
            rules[self.b as usize].id,
            self.bucket,
            self.event,
            self.example_key
        )
    }
}

impl fmt::Display for Overlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rules #{} and #{} of bucket {:?} overlap on {} for key {:?}",
            self.a, self.b, self.bucket, self.event, self.example_key
        )
    }
}

#[derive(Clone, Copy)]
struct Item<'a> {
    rule: u32,
    pattern: &'a Pattern,
    mask: EventMask,
}

struct Finder<'a> {
    rules: &'a [RuleSpec],
    seen: HashSet<(u32, u32)>,
    out: Vec<Overlap>,
    limit: usize,
}

impl Finder<'_> {
    fn full(&self) -> bool {
        self.out.len() >= self.limit
    }

    fn report(&mut self, x: Item<'_>, y: Item<'_>) {
        if x.rule == y.rule || !x.mask.intersects(y.mask) || self.full() {
            return;
        }
        let (a, b) = if x.rule < y.rule { (x, y) } else { (y, x) };
        if !self.seen.insert((a.rule, b.rule)) {
            return;
        }
        let event = EventMask(a.mask.0 & b.mask.0)
            .types()
            .next()
            .expect("masks intersect");
        let example_key = example_key(a.pattern, b.pattern);
        debug_assert!(a.pattern.matches(&example_key) && b.pattern.matches(&example_key));
        self.out.push(Overlap {
            a: a.rule,
            b: b.rule,
            bucket: self.rules[a.rule as usize].bucket.clone(),
            event,
            example_key,
        });
    }
}

/// A key both (overlapping) patterns match.
fn example_key(a: &Pattern, b: &Pattern) -> String {
    for p in [a, b] {
        if let Pattern::Exact(e) = p {
            return e.to_string();
        }
    }
    fn longer<'s>(x: &'s str, y: &'s str) -> &'s str {
        if x.len() >= y.len() {
            x
        } else {
            y
        }
    }
    let key = format!(
        "{}{}",
        longer(a.prefix(), b.prefix()),
        longer(a.suffix(), b.suffix())
    );
    if key.is_empty() {
        "example-key".to_owned()
    } else {
        key
    }
}

/// Finds up to `limit` overlapping rule pairs.
pub fn find_overlaps(rules: &[RuleSpec], limit: usize) -> Vec<Overlap> {
    let mut by_bucket: FxHashMap<&str, Vec<u32>> = FxHashMap::default();
    for (i, r) in rules.iter().enumerate() {
        by_bucket.entry(&r.bucket).or_default().push(i as u32);
    }
    let mut buckets: Vec<(&str, Vec<u32>)> = by_bucket.into_iter().collect();
    buckets.sort_unstable_by_key(|(b, _)| *b);
    let mut f = Finder {
        rules,
        seen: HashSet::new(),
        out: Vec::new(),
        limit,
    };
    for (_, members) in buckets {
        if members.len() < 2 {
            continue;
        }
        // Rules with different regions never see the same record; rules
        // without a region see every region's records.
        let mut by_region: FxHashMap<Option<&str>, Vec<u32>> = FxHashMap::default();
        for &r in &members {
            by_region
                .entry(rules[r as usize].region.as_deref())
                .or_default()
                .push(r);
        }
        let unregioned = by_region.remove(&None).unwrap_or_default();
        if by_region.is_empty() {
            check_group(&mut f, &unregioned);
        }
        let mut regions: Vec<_> = by_region.into_iter().collect();
        regions.sort_unstable();
        for (_, mut group) in regions {
            group.extend_from_slice(&unregioned);
            check_group(&mut f, &group);
        }
        if f.full() {
            break;
        }
    }
    f.out.sort_unstable_by_key(|o| (o.a, o.b));
    f.out
}

fn check_group(f: &mut Finder<'_>, group: &[u32]) {
    let rules = f.rules;
    let mut items = Vec::new();
    for &r in group {
        let spec = &rules[r as usize];
        let mask = spec.event_mask();
        for p in spec.effective_resources() {
            items.push(Item {
                rule: r,
                pattern: p,
                mask,
            });
        }
    }
    let prefixed: Vec<Item> = items
        .iter()
        .copied()
        .filter(|i| matches!(i.pattern, Pattern::Prefix(_) | Pattern::PrefixSuffix(..)))
        .collect();
    let suffixed: Vec<Item> = items
        .iter()
        .copied()
        .filter(|i| matches!(i.pattern, Pattern::Suffix(_) | Pattern::PrefixSuffix(..)))
        .collect();
    exact_names(f, &items, &prefixed, &suffixed);
    if !f.full() {
        prefix_family(f, &prefixed);
    }
    if !f.full() {
        suffix_family(f, suffixed);
    }
    if !f.full() {
        always_overlapping(f, &items);
    }
}

/// Exact names against everything: each looked up like a key.
fn exact_names(f: &mut Finder<'_>, items: &[Item], prefixed: &[Item], suffixed: &[Item]) {
    let prefix_trie = Trie::build(
        prefixed
            .iter()
            .enumerate()
            .map(|(n, i)| (i.pattern.prefix().as_bytes(), n as u32))
            .collect(),
        false,
    );
    let suffix_only: Vec<Item> = suffixed
        .iter()
        .copied()
        .filter(|i| matches!(i.pattern, Pattern::Suffix(_)))
        .collect();
    let suffix_trie = Trie::build(
        suffix_only
            .iter()
            .enumerate()
            .map(|(n, i)| (i.pattern.suffix().as_bytes(), n as u32))
            .collect(),
        true,
    );
    let mut exact: FxHashMap<&str, Vec<Item>> = FxHashMap::default();
    for i in items {
        if let Pattern::Exact(e) = i.pattern {
            exact.entry(e).or_default().push(*i);
        }
    }
    let mut exact_keys: Vec<&str> = exact.keys().copied().collect();
    exact_keys.sort_unstable();
    for key in exact_keys {
        let same = &exact[key];
        for (n, x) in same.iter().enumerate() {
            for y in &same[n + 1..] {
                f.report(*x, *y);
            }
            let mut hits = Vec::new();
            prefix_trie.for_each_match(key.as_bytes(), |v, _| {
                let y = prefixed[v as usize];
                if y.pattern.matches(key) {
                    hits.push(y);
                }
            });
            suffix_trie.for_each_match(key.as_bytes(), |v, _| hits.push(suffix_only[v as usize]));
            for y in hits {
                f.report(*x, y);
            }
            if f.full() {
                return;
            }
        }
    }
}

/// The prefix family: each against the entries whose prefix is a prefix
/// of its own.
fn prefix_family(f: &mut Finder<'_>, prefixed: &[Item]) {
    let mut sorted = prefixed.to_vec();
    sorted.sort_by(|a, b| a.pattern.prefix().cmp(b.pattern.prefix()));
    let mut stack: Vec<Item> = Vec::new();
    for x in sorted {
        while stack
            .last()
            .is_some_and(|top| !x.pattern.prefix().starts_with(top.pattern.prefix()))
        {
            stack.pop();
        }
        for y in &stack {
            let both_suffixed = !x.pattern.suffix().is_empty() && !y.pattern.suffix().is_empty();
            if !both_suffixed || suffix_compatible(x.pattern.suffix(), y.pattern.suffix()) {
                f.report(x, *y);
            }
        }
        if f.full() {
            return;
        }
        stack.push(x);
    }
}

/// The suffix family: suffix-only against suffixes it extends or that
/// extend it (`p*s` against `p*s` was settled with the prefixes).
fn suffix_family(f: &mut Finder<'_>, suffixed: Vec<Item>) {
    let mut stack: Vec<Item> = Vec::new();
    let mut sorted = suffixed;
    sorted.sort_by(|a, b| {
        a.pattern
            .suffix()
            .bytes()
            .rev()
            .cmp(b.pattern.suffix().bytes().rev())
    });
    for x in sorted {
        while stack
            .last()
            .is_some_and(|top| !x.pattern.suffix().ends_with(top.pattern.suffix()))
        {
            stack.pop();
        }
        for y in &stack {
            if matches!(x.pattern, Pattern::Suffix(_)) || matches!(y.pattern, Pattern::Suffix(_)) {
                f.report(x, *y);
            }
        }
        if f.full() {
            return;
        }
        stack.push(x);
    }
}

/// Pairs that always overlap: prefix vs suffix, and `*` vs anything. Two
/// representatives (of different rules) per event type suffice.
fn always_overlapping(f: &mut Finder<'_>, items: &[Item]) {
    for &t in ALL_EVENT_TYPES {
        let reps = |filter: &dyn Fn(&Pattern) -> bool| -> Vec<Item> {
            let mut v: Vec<Item> = Vec::new();
            for i in items
                .iter()
                .filter(|i| i.mask.contains(t) && filter(i.pattern))
            {
                if v.iter().all(|o| o.rule != i.rule) {
                    v.push(*i);
                    if v.len() == 2 {
                        break;
                    }
                }
            }
            v
        };
        let prefixes = reps(&|p| matches!(p, Pattern::Prefix(_)));
        let suffixes = reps(&|p| matches!(p, Pattern::Suffix(_)));
        for x in &prefixes {
            for y in &suffixes {
                f.report(*x, *y);
            }
        }
        let any = reps(&|p| matches!(p, Pattern::Any));
        if !any.is_empty() {
            let all = reps(&|_| true);
            for x in &any {
                for y in &all {
                    f.report(*x, *y);
                }
            }
        }
        if f.full() {
            return;
        }
    }
}

/// Some key ends with both.
fn suffix_compatible(a: &str, b: &str) -> bool {
    a.ends_with(b) || b.ends_with(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventPattern;

    fn rule(
        id: &str,
        bucket: &str,
        region: Option<&str>,
        events: &[&str],
        resources: &[&str],
    ) -> RuleSpec {
        RuleSpec {
            id: id.into(),
            bucket: bucket.into(),
            region: region.map(Into::into),
            events: events
                .iter()
                .map(|e| EventPattern::parse(e).unwrap())
                .collect(),
            resources: resources
                .iter()
                .map(|r| Pattern::parse(r).unwrap())
                .collect(),
            sinks: vec![0],
        }
    }

    fn pairs(rules: &[RuleSpec]) -> Vec<(String, String, String)> {
        find_overlaps(rules, 100)
            .into_iter()
            .map(|o| {
                (
                    rules[o.a as usize].id.clone(),
                    rules[o.b as usize].id.clone(),
                    o.example_key,
                )
            })
            .collect()
    }

    const PUT: &[&str] = &["ObjectCreated:PutObject"];

    #[test]
    fn each_pattern_pair_kind() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("a/b", "a/b", Some("a/b")),
            ("a/b", "a/c", None),
            ("a/b", "a/*", Some("a/b")),
            ("a/b", "b/*", None),
            ("x.jpg", "*.jpg", Some("x.jpg")),
            ("x.png", "*.jpg", None),
            ("a/x.jpg", "a/*.jpg", Some("a/x.jpg")),
            ("a/.jpg", "a/*.jpg", Some("a/.jpg")),
            ("ab.jpg", "ab*b.jpg", None), // too short for both parts
            ("a/*", "a/b/*", Some("a/b/")),
            ("a/*", "b/*", None),
            ("a/*", "*.jpg", Some("a/.jpg")),
            ("*.jpg", "*x.jpg", Some("x.jpg")),
            ("*.jpg", "*.png", None),
            ("a/*.jpg", "a/b/*x.jpg", Some("a/b/x.jpg")),
            ("a/*.jpg", "a/b/*.png", None),
            ("a/*.jpg", "b/*.jpg", None),
            ("a/*", "a/b/*.png", Some("a/b/.png")),
            ("b/*", "a/*.png", None),
            ("*.png", "a/*x.png", Some("a/x.png")),
            ("*.png", "a/*.jpg", None),
            ("*", "a/b", Some("a/b")),
            ("*", "*", Some("example-key")),
        ];
        for (x, y, want) in cases {
            let rules = vec![
                rule("A", "b", None, PUT, &[x]),
                rule("B", "b", None, PUT, &[y]),
            ];
            let got = pairs(&rules);
            match want {
                Some(k) => {
                    assert_eq!(
                        got,
                        vec![("A".into(), "B".into(), k.to_string())],
                        "{x} vs {y}"
                    );
                }
                None => assert!(got.is_empty(), "{x} vs {y}: {got:?}"),
            }
            // and the other way round
            let rules = vec![
                rule("A", "b", None, PUT, &[y]),
                rule("B", "b", None, PUT, &[x]),
            ];
            assert_eq!(pairs(&rules).is_empty(), want.is_none(), "{y} vs {x}");
        }
    }

    #[test]
    fn no_resources_means_every_key() {
        let rules = vec![
            rule("A", "b", None, PUT, &[]),
            rule("B", "b", None, PUT, &["k"]),
        ];
        assert_eq!(pairs(&rules), vec![("A".into(), "B".into(), "k".into())]);
    }

    #[test]
    fn disjoint_types_buckets_or_regions_do_not_overlap() {
        let get = &["ObjectDownloaded:GetObject"][..];
        let rules = vec![
            rule("A", "b", None, PUT, &["*"]),
            rule("B", "b", None, get, &["*"]),
        ];
        assert!(pairs(&rules).is_empty());
        let rules = vec![
            rule("A", "b1", None, PUT, &["*"]),
            rule("B", "b2", None, PUT, &["*"]),
        ];
        assert!(pairs(&rules).is_empty());
        let rules = vec![
            rule("A", "b", Some("cn-hangzhou"), PUT, &["*"]),
            rule("B", "b", Some("cn-beijing"), PUT, &["*"]),
        ];
        assert!(pairs(&rules).is_empty());
        let rules = vec![
            rule("A", "b", Some("cn-hangzhou"), PUT, &["*"]),
            rule("B", "b", None, PUT, &["*"]),
        ];
        assert_eq!(pairs(&rules).len(), 1);
    }

    #[test]
    fn wildcards_overlap_their_members() {
        let rules = vec![
            rule("A", "b", None, &["ObjectCreated:All"], &["a/*"]),
            rule("B", "b", None, &["ObjectCreated:PutSymlink"], &["a/x"]),
        ];
        let o = find_overlaps(&rules, 10);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].event, EventType::PutSymlink);
        assert_eq!(
            o[0].describe(&rules),
            "rules \"A\" and \"B\" of bucket \"b\" overlap: both match ObjectCreated:PutSymlink on key \"a/x\""
        );
    }

    #[test]
    fn one_rule_never_overlaps_itself() {
        let rules = vec![rule("A", "b", None, PUT, &["a/*", "a/b/*", "*"])];
        assert!(pairs(&rules).is_empty());
    }

    #[test]
    fn limit_bounds_the_work() {
        let rules: Vec<_> = (0..1000)
            .map(|i| rule(&format!("r{i}"), "b", None, PUT, &["a/*"]))
            .collect();
        assert_eq!(find_overlaps(&rules, 5).len(), 5);
    }
}
