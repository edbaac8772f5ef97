//! Notification rules (docs/rules.md): resource patterns, the compiled lock-free
//! index, overlap detection and the region policy.

mod index;
mod overlap;
mod pattern;
mod policy;
mod prefetch;
mod trie;

pub use index::{CompiledRule, Layout, Lookup, RuleIndex};
pub use overlap::{find_overlaps, Overlap};
pub use pattern::{Pattern, OSS_MAX_KEY_BYTES};
pub use policy::RegionPolicy;

use crate::event::{EventMask, EventPattern};

/// A validated rule, ready to compile.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub id: String,
    pub bucket: String,
    pub region: Option<String>,
    pub events: Vec<EventPattern>,
    /// Empty means every object.
    pub resources: Vec<Pattern>,
    /// Indices into the config's sink list.
    pub sinks: Vec<u32>,
}

impl RuleSpec {
    /// The patterns a rule's keys must match: its resources, or `*` for a
    /// rule without any (docs/rules.md), the one place that rule is written.
    pub fn effective_resources(&self) -> &[Pattern] {
        const ANY: &[Pattern] = &[Pattern::Any];
        if self.resources.is_empty() {
            ANY
        } else {
            &self.resources
        }
    }

    /// [`RuleSpec::effective_resources`], taking the resources (no copy).
    pub fn into_effective_resources(resources: Vec<Pattern>) -> Box<[Pattern]> {
        if resources.is_empty() {
            Box::new([Pattern::Any])
        } else {
            resources.into_boxed_slice()
        }
    }

    /// Types selected by specific names and `Category:*` (never limited by
    /// region), and those selected only through a seed `:All` wildcard
    /// (subject to the region policy).
    pub fn masks(&self) -> (EventMask, EventMask) {
        let mut direct = EventMask::EMPTY;
        let mut via_all = EventMask::EMPTY;
        for e in &self.events {
            match e {
                EventPattern::All(_) => via_all = via_all.union(e.mask()),
                _ => direct = direct.union(e.mask()),
            }
        }
        (direct, EventMask(via_all.0 & !direct.0))
    }

    /// Every type the rule can ever match, whatever the region.
    pub fn event_mask(&self) -> EventMask {
        let (a, b) = self.masks();
        a.union(b)
    }
}
