//! Why a lookup matched nothing, in words (`match --explain`): slow, it
//! scans the bucket's rules.

use super::layout::hash_name;
use super::{CompiledRule, RuleIndex};
use crate::event::EventType;

impl RuleIndex {
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
}

fn ids(rules: &[&CompiledRule]) -> String {
    let v: Vec<&str> = rules.iter().map(|r| &*r.id).collect();
    v.join(", ")
}
