//! The region policy of OSS's service notes (docs/events.md).

use rustc_hash::FxHashSet;

/// Where notifications are sent at all, and where the seed's `:All`
/// wildcards take effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionPolicy {
    pub enabled: bool,
    pub unsupported_regions: FxHashSet<String>,
    /// `"*"` in the list means every region.
    pub all_wildcard_regions: FxHashSet<String>,
}

pub const DEFAULT_UNSUPPORTED: &[&str] =
    &["cn-heyuan", "cn-huhehaote", "me-east-1", "ap-southeast-3"];
pub const DEFAULT_ALL_WILDCARD: &[&str] = &[
    "cn-hongkong",
    "us-west-1",
    "us-east-1",
    "eu-central-1",
    "ap-southeast-2",
    "ap-southeast-1",
    "eu-west-1",
];

impl Default for RegionPolicy {
    fn default() -> Self {
        RegionPolicy {
            enabled: true,
            unsupported_regions: DEFAULT_UNSUPPORTED.iter().map(|s| s.to_string()).collect(),
            all_wildcard_regions: DEFAULT_ALL_WILDCARD.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl RegionPolicy {
    /// No restrictions at all.
    pub fn off() -> Self {
        RegionPolicy {
            enabled: false,
            ..RegionPolicy::default()
        }
    }

    /// Buckets in this region get notifications.
    #[inline]
    pub fn notifies(&self, region: &str) -> bool {
        !self.enabled || !self.unsupported_regions.contains(region)
    }

    /// The seed's `:All` wildcards take effect for buckets in this region.
    #[inline]
    pub fn all_wildcards_apply(&self, region: &str) -> bool {
        !self.enabled
            || self.all_wildcard_regions.contains(region)
            || self.all_wildcard_regions.contains("*")
    }
}
