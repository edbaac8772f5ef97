//! The config's serde model. Unknown keys are errors everywhere.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::oplog::KeyEncoding;
use crate::rules::{RegionPolicy, RuleSpec};
use ossnotify_sinks::SinkConfig;

/// A loaded, validated config.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub source: SourceConfig,
    pub pipeline: PipelineConfig,
    pub dead_letter: DeadLetterConfig,
    pub backlog: BacklogConfig,
    pub metrics: MetricsConfig,
    pub policy: PolicyConfig,
    /// Sorted by name; a rule's `sinks` are indices into this list.
    pub sinks: Vec<SinkEntry>,
    pub rules: Vec<RuleSpec>,
}

impl Config {
    pub fn region_policy(&self) -> RegionPolicy {
        self.policy.region_policy()
    }

    /// What the routing is made of: the rules, the sinks they address, the
    /// region policy.
    pub fn routing(&self) -> RoutingSpec<'_> {
        RoutingSpec {
            rules: &self.rules,
            sinks: &self.sinks,
            policy: self.region_policy(),
        }
    }

    /// The sections a reload cannot change, to compare with a reload's.
    pub fn start_only(&self) -> StartOnly {
        StartOnly {
            source: self.source.clone(),
            pipeline: self.pipeline.clone(),
            dead_letter: self.dead_letter.clone(),
            backlog: self.backlog.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The config's part that the routing takes (`Config::routing`).
pub struct RoutingSpec<'c> {
    pub rules: &'c [RuleSpec],
    pub sinks: &'c [SinkEntry],
    pub policy: RegionPolicy,
}

/// What a reload cannot change: `[source]`, `[pipeline]`, `[dead_letter]`,
/// `[backlog]` and `[metrics]` take effect at the next start.
#[derive(Clone, PartialEq)]
pub struct StartOnly {
    source: SourceConfig,
    pipeline: PipelineConfig,
    dead_letter: DeadLetterConfig,
    backlog: BacklogConfig,
    metrics: MetricsConfig,
}

impl StartOnly {
    /// The sections that differ in `new`, by their table names.
    pub fn changed(&self, new: &StartOnly) -> Vec<&'static str> {
        [
            ("[source]", self.source == new.source),
            ("[pipeline]", self.pipeline == new.pipeline),
            ("[dead_letter]", self.dead_letter == new.dead_letter),
            ("[backlog]", self.backlog == new.backlog),
            ("[metrics]", self.metrics == new.metrics),
        ]
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(section, _)| section)
        .collect()
    }
}

pub struct SinkEntry {
    pub name: String,
    pub config: Box<dyn SinkConfig>,
    /// The table's meaning as text (type included, spans left out): equal
    /// fingerprints mean a reload can keep the running sink.
    pub fingerprint: String,
}

/// The fingerprint is the raw table (credentials included): left out.
impl std::fmt::Debug for SinkEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkEntry")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The document minus `[sinks]` (read through the sink registry) and the
/// rules (read on their own so that each file's errors name that file).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub source: Option<Spanned<SourceConfig>>,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    #[serde(default)]
    pub backlog: BacklogConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Files of `[[rules]]`, relative to this file.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// A directory whose `*.toml` files hold `[[rules]]`, read in name order.
    #[serde(default)]
    pub rules_dir: Option<Spanned<String>>,
}

/// A file holding only rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RulesFile {
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub id: Spanned<String>,
    pub bucket: Spanned<String>,
    #[serde(default)]
    pub region: Option<Spanned<String>>,
    pub events: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub resources: Vec<Spanned<String>>,
    pub sinks: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    Kafka,
    #[default]
    Stdin,
    File,
}

#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(default, rename = "type")]
    pub kind: SourceType,
    #[serde(default)]
    pub brokers: Option<String>,
    #[serde(default)]
    pub topics: Vec<String>,
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(default)]
    pub key_encoding: KeyEncoding,
    /// For `type = "file"`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Any librdkafka consumer property.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
}

/// Credential properties of `[source.librdkafka]` are hidden.
impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConfig")
            .field("kind", &self.kind)
            .field("brokers", &self.brokers)
            .field("topics", &self.topics)
            .field("group_id", &self.group_id)
            .field("key_encoding", &self.key_encoding)
            .field("path", &self.path)
            .field(
                "librdkafka",
                &ossnotify_sinks::config::Redacted {
                    map: &self.librdkafka,
                    all: false,
                },
            )
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// decode/match/encode threads
    pub workers: usize,
    /// Records queued for the workers, and records' messages queued per
    /// sink (both counted in the source's batches, at least one: 256
    /// records from Kafka, 1,024 lines from a file or stdin).
    pub queue_capacity: usize,
    /// How long SIGTERM waits for in-flight messages.
    pub drain_timeout_ms: u64,
    /// How often offsets are committed (and metrics published).
    pub commit_interval_ms: u64,
    /// On revocation, how long to wait for the revoked partitions' messages
    /// in flight before committing and giving them up.
    pub revoke_wait_ms: u64,
    /// CPUs for the pipeline's own threads; empty: all (see
    /// `pipeline::cpus`).
    pub cpus: Vec<usize>,
    /// Records whose operation time is outside `[from, until)` (epoch ms)
    /// produce no message: a backfill's window, never a config key.
    #[serde(skip)]
    pub operation_window: Option<(i64, i64)>,
    /// Invalid records are counted but not dead-lettered: a backfill reads
    /// records the live pipeline has dead-lettered already. Never a key.
    #[serde(skip)]
    pub invalid_not_dead_lettered: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: 2,
            queue_capacity: 8192,
            drain_timeout_ms: 30_000,
            commit_interval_ms: 500,
            revoke_wait_ms: 3_000,
            cpus: Vec::new(),
            operation_window: None,
            invalid_not_dead_lettered: false,
        }
    }
}

/// Where a store keeps what it holds (`[dead_letter] store`, `[backlog]
/// store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Topics in the source's Kafka cluster: no state on a member's disk.
    Kafka,
    /// Segment stores in a local directory.
    Disk,
}

/// `[dead_letter]`: where the store is, and its retention (none by
/// default: a dead letter stays until replayed or purged).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// `None`: `kafka` with a Kafka source, else `disk`.
    pub store: Option<StoreKind>,
    pub path: PathBuf,
    pub max_mib: Option<u64>,
    pub max_age_hours: Option<u64>,
    /// Segment size: retention drops whole segments.
    pub segment_mib: u64,
    /// The Kafka store's topic; default `{group_id}.dead-letter`.
    pub topic: Option<String>,
    /// The Kafka store's topic is created with these (`-1`: the broker's
    /// `default.replication.factor`).
    pub partitions: i32,
    pub replication_factor: i32,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            store: None,
            path: PathBuf::from("dead-letter"),
            max_mib: None,
            max_age_hours: None,
            segment_mib: 16,
            topic: None,
            partitions: 1,
            replication_factor: -1,
        }
    }
}

impl DeadLetterConfig {
    pub fn store_options(&self) -> ossnotify_sinks::store::StoreOptions {
        ossnotify_sinks::store::StoreOptions {
            max_bytes: self.max_mib.map(|m| m.saturating_mul(1 << 20)),
            max_age: self
                .max_age_hours
                .map(|h| std::time::Duration::from_secs(h.saturating_mul(3600))),
            segment_bytes: self.segment_mib.max(1).saturating_mul(1 << 20),
        }
    }
}

/// `[backlog]`: where the sinks' backlogs are. On disk, a directory per
/// sink, by default `backlog/` inside the dead-letter directory, so that a
/// process keeps all its state in one place and two processes given their
/// own dead-letter directories never share a backlog. In Kafka, a topic
/// per sink (`{topic_prefix}{sink}`), redelivered by a group of its own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BacklogConfig {
    /// `None`: `kafka` with a Kafka source, else `disk`.
    pub store: Option<StoreKind>,
    pub path: Option<PathBuf>,
    /// Default `{group_id}.backlog.`.
    pub topic_prefix: Option<String>,
    /// Each sink's topic is created with these (`-1`: the broker's
    /// `default.replication.factor`). One partition keeps a sink's
    /// backlog in order.
    pub partitions: i32,
    pub replication_factor: i32,
}

impl Default for BacklogConfig {
    fn default() -> Self {
        BacklogConfig {
            store: None,
            path: None,
            topic_prefix: None,
            partitions: 1,
            replication_factor: -1,
        }
    }
}

/// The config's part that the stores take (`Config::stores`): where the
/// dead letters and the backlogs are kept, on the source's cluster or on
/// disk.
#[derive(Clone, Copy)]
pub struct Stores<'c> {
    pub source: &'c SourceConfig,
    pub dead_letter: &'c DeadLetterConfig,
    pub backlog: &'c BacklogConfig,
}

impl Config {
    pub fn stores(&self) -> Stores<'_> {
        Stores {
            source: &self.source,
            dead_letter: &self.dead_letter,
            backlog: &self.backlog,
        }
    }
}

impl Stores<'_> {
    /// The directory of the sinks' backlogs.
    pub fn backlog_path(&self) -> PathBuf {
        self.backlog
            .path
            .clone()
            .unwrap_or_else(|| self.dead_letter.path.join("backlog"))
    }

    /// Where the dead letters are kept.
    pub fn dead_letter_store(&self) -> StoreKind {
        self.dead_letter.store.unwrap_or(self.default_store())
    }

    /// Where the backlogs are kept.
    pub fn backlog_store(&self) -> StoreKind {
        self.backlog.store.unwrap_or(self.default_store())
    }

    fn default_store(&self) -> StoreKind {
        match self.source.kind {
            SourceType::Kafka => StoreKind::Kafka,
            _ => StoreKind::Disk,
        }
    }

    fn group_id(&self) -> &str {
        self.source.group_id.as_deref().unwrap_or("ossnotify")
    }

    /// The Kafka dead-letter store's topic.
    pub fn dead_letter_topic(&self) -> String {
        self.dead_letter
            .topic
            .clone()
            .unwrap_or_else(|| format!("{}.dead-letter", self.group_id()))
    }

    /// The group whose committed offsets say where the Kafka dead-letter
    /// store's live entries start.
    pub fn dead_letter_group(&self) -> String {
        format!("{}.dead-letter", self.group_id())
    }

    /// The Kafka backlog topics' prefix: a sink's topic is this followed
    /// by its name ([`ossnotify_sinks::kafka_store::topic_name`]).
    pub fn backlog_topic_prefix(&self) -> String {
        self.backlog
            .topic_prefix
            .clone()
            .unwrap_or_else(|| format!("{}.backlog.", self.group_id()))
    }

    /// The Kafka backlog topic of sink `name`.
    pub fn backlog_topic(&self, name: &str) -> String {
        ossnotify_sinks::kafka_store::topic_name(&self.backlog_topic_prefix(), name)
    }

    /// The consumer group that redelivers the Kafka backlogs.
    pub fn backlog_group(&self) -> String {
        format!("{}.backlog", self.group_id())
    }

    /// A client config for the stores' topics: the source's cluster, with
    /// its connection and security properties.
    pub fn store_client(&self) -> rdkafka::ClientConfig {
        ossnotify_sinks::kafka_store::client_config(
            self.source.brokers.as_deref().unwrap_or_default(),
            &self.source.librdkafka,
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `host:port` for `/metrics`, `/health` and `/ready`; none when absent.
    pub listen: Option<String>,
    /// The bearer token `/tap` asks for (a `${VAR}`): required on a
    /// listener that is not loopback, where `/tap` is off without it.
    pub tap_token: Option<ossnotify_sinks::Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub region_restrictions: bool,
    pub unsupported_regions: Vec<String>,
    pub all_wildcard_regions: Vec<String>,
    pub allow_overlapping_rules: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        let p = RegionPolicy::default();
        let mut unsupported: Vec<String> = p.unsupported_regions.into_iter().collect();
        unsupported.sort();
        let mut all: Vec<String> = p.all_wildcard_regions.into_iter().collect();
        all.sort();
        PolicyConfig {
            region_restrictions: true,
            unsupported_regions: unsupported,
            all_wildcard_regions: all,
            allow_overlapping_rules: false,
        }
    }
}

impl PolicyConfig {
    pub fn region_policy(&self) -> RegionPolicy {
        RegionPolicy {
            enabled: self.region_restrictions,
            unsupported_regions: self.unsupported_regions.iter().cloned().collect(),
            all_wildcard_regions: self.all_wildcard_regions.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// A reload names the start-only sections it changed, a secret's
    /// change included (which `Debug` would hide), and nothing else.
    #[test]
    fn a_reload_names_the_start_only_sections_it_changed() {
        let env = |v: &str| match v {
            "T1" => Some("one".to_owned()),
            "T2" => Some("two".to_owned()),
            _ => None,
        };
        let load = |metrics: &str, workers: usize| {
            let text = format!(
                "[pipeline]\nworkers = {workers}\n[metrics]\n{metrics}\n[sinks.n]\ntype = \"null\"\n[[rules]]\nid = \"r\"\nbucket = \"b\"\nevents = [\"ObjectCreated:*\"]\nsinks = [\"n\"]\n"
            );
            super::super::load_str(Path::new("c.toml"), &text, &env)
                .unwrap_or_else(|d| panic!("{d:?}"))
                .config
                .start_only()
        };
        let running = load("tap_token = \"${T1}\"", 2);
        assert!(running
            .changed(&load("tap_token = \"${T1}\"", 2))
            .is_empty());
        assert_eq!(
            running.changed(&load("tap_token = \"${T2}\"", 2)),
            ["[metrics]"]
        );
        assert_eq!(
            running.changed(&load("tap_token = \"${T2}\"", 3)),
            ["[pipeline]", "[metrics]"]
        );
    }
}
