//! Checks that need the whole config: source settings, rule fields, sink
//! references, duplicate ids, overlapping rules and policy-inert rules.

use std::path::Path;

use rustc_hash::FxHashMap;
use toml::Spanned;

use super::diagnostic::{Diagnostic, Location};
use super::load::{Loaded, SourceText};
use super::model::{Config, RawConfig, RawRule, SinkEntry, SourceConfig, SourceType};
use crate::event::{EventPattern, EventType};
use crate::rules::{find_overlaps, Pattern, RuleSpec, OSS_MAX_KEY_BYTES};

/// How many overlapping pairs are reported at most.
const OVERLAP_REPORT_LIMIT: usize = 50;

/// The files the rules came from.
pub(super) struct RuleSource<'a> {
    pub files: &'a [SourceText],
}

pub(super) fn validate(
    path: &Path,
    raw: RawConfig,
    sinks: Vec<(SinkEntry, Location)>,
    broken_sinks: &[String],
    raw_rules: Vec<(usize, RawRule)>,
    src: &RuleSource<'_>,
    errors: Vec<Diagnostic>,
) -> Result<Loaded, Vec<Diagnostic>> {
    // Loading may have warned already (a deprecated key).
    let (mut warnings, mut errors): (Vec<Diagnostic>, Vec<Diagnostic>) = errors
        .into_iter()
        .partition(|d| d.severity == super::Severity::Warning);
    let main = &src.files[0];
    let source = match raw.source {
        Some(s) => {
            let at = main.location(s.span().start);
            let s = s.into_inner();
            check_source(&s, &at, &mut errors);
            s
        }
        None => SourceConfig::default(),
    };
    check_pipeline(&raw.pipeline, &source, &mut errors);
    check_stores(&raw.dead_letter, &raw.backlog, &source, &mut errors);
    check_metrics(&raw.metrics, &mut warnings);

    let mut sinks: Vec<SinkEntry> = sinks.into_iter().map(|(s, _)| s).collect();
    sinks.sort_by(|a, b| a.name.cmp(&b.name));
    let mut rules = Rules {
        src,
        sink_index: sinks
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i as u32))
            .collect(),
        sinks: &sinks,
        broken_sinks,
        policy: &raw.policy,
        specs: Vec::with_capacity(raw_rules.len()),
        origins: Vec::with_capacity(raw_rules.len()),
        ids: FxHashMap::default(),
        per_file_index: FxHashMap::default(),
    };
    for (file, r) in raw_rules {
        rules.add(file, r, &mut errors, &mut warnings);
    }
    if errors.is_empty() {
        rules.check_overlaps(&mut errors, &mut warnings);
    }
    let specs = rules.specs;

    if !errors.is_empty() {
        errors.extend(warnings);
        return Err(errors);
    }
    Ok(Loaded {
        config: Config {
            path: path.to_path_buf(),
            source,
            pipeline: raw.pipeline,
            dead_letter: raw.dead_letter,
            backlog: raw.backlog,
            metrics: raw.metrics,
            policy: raw.policy,
            sinks,
            rules: specs,
        },
        warnings,
    })
}

fn check_pipeline(
    p: &super::model::PipelineConfig,
    source: &SourceConfig,
    errors: &mut Vec<Diagnostic>,
) {
    for (field, value) in [
        ("pipeline.workers", p.workers as u64),
        ("pipeline.commit_interval_ms", p.commit_interval_ms),
        ("pipeline.queue_capacity", p.queue_capacity as u64),
    ] {
        if value == 0 {
            errors.push(Diagnostic::error(None, field, "must be at least 1"));
        }
    }
    // The revocation callback holds the poll loop for up to this long: it
    // must stay well inside the time librdkafka allows between polls.
    let max_poll_ms: u64 = source
        .librdkafka
        .get("max.poll.interval.ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    if p.revoke_wait_ms.saturating_mul(2) >= max_poll_ms {
        errors.push(Diagnostic::error(
            None,
            "pipeline.revoke_wait_ms",
            format!(
                "is {} ms; keep it under half of max.poll.interval.ms ({max_poll_ms} ms), or the member is dropped from the group while it waits",
                p.revoke_wait_ms
            ),
        ));
    }
}

/// The rules checked so far, and what checking the next one needs.
struct Rules<'a> {
    src: &'a RuleSource<'a>,
    sinks: &'a [SinkEntry],
    sink_index: FxHashMap<&'a str, u32>,
    broken_sinks: &'a [String],
    policy: &'a super::model::PolicyConfig,
    specs: Vec<RuleSpec>,
    /// Per rule: (file, index within that file, span of its id).
    origins: Vec<(usize, usize, usize)>,
    ids: FxHashMap<String, usize>,
    per_file_index: FxHashMap<usize, usize>,
}

/// Reports errors on one rule's fields: `rules[N].FIELD` of its file.
struct RuleErrors<'e> {
    file: &'e SourceText,
    idx: usize,
    errors: &'e mut Vec<Diagnostic>,
}

impl RuleErrors<'_> {
    fn field(&self, sub: &str) -> String {
        format!("rules[{}].{sub}", self.idx)
    }
    fn push(&mut self, at: usize, sub: &str, msg: impl Into<String>) {
        let field = self.field(sub);
        self.errors.push(Diagnostic::error(
            Some(self.file.location(at)),
            field,
            msg.into(),
        ));
    }
}

impl Rules<'_> {
    /// Checks rule `r` of `file`; a rule without errors joins the set.
    fn add(
        &mut self,
        file: usize,
        r: RawRule,
        errors: &mut Vec<Diagnostic>,
        warnings: &mut Vec<Diagnostic>,
    ) {
        let n = self.per_file_index.entry(file).or_insert(0);
        let idx = *n;
        *n += 1;
        let f = &self.src.files[file];
        let before = errors.len();
        let mut e = RuleErrors {
            file: f,
            idx,
            errors,
        };
        let id = r.id.get_ref().trim();
        self.check_id(id, r.id.span().start, &mut e);
        if r.bucket.get_ref().is_empty() {
            e.push(r.bucket.span().start, "bucket", "is empty");
        }
        let region = match &r.region {
            Some(reg) if reg.get_ref().is_empty() => {
                e.push(
                    reg.span().start,
                    "region",
                    "is empty; omit it for every region",
                );
                None
            }
            Some(reg) => Some(
                reg.get_ref()
                    .strip_prefix("oss-")
                    .unwrap_or(reg.get_ref())
                    .to_owned(),
            ),
            None => None,
        };
        let events = events_of(&r, &mut e);
        let resources = resources_of(&r, &mut e, warnings);
        let rule_sinks = self.sinks_of(&r, &mut e);
        if errors.len() > before {
            return;
        }
        if !id.is_empty() {
            self.ids.insert(id.to_owned(), self.specs.len());
        }
        check_policy(
            self.policy,
            &r,
            region.as_deref(),
            &events,
            idx,
            f,
            warnings,
        );
        self.origins.push((file, idx, r.id.span().start));
        self.specs.push(RuleSpec {
            id: id.to_owned(),
            bucket: r.bucket.into_inner(),
            region,
            events,
            resources,
            sinks: rule_sinks,
        });
    }

    fn check_id(&self, id: &str, at: usize, e: &mut RuleErrors<'_>) {
        if id.is_empty() {
            e.push(at, "id", "is empty");
        } else if let Some(&first) = self.ids.get(id) {
            let (ff, _, fspan) = self.origins[first];
            e.push(
                at,
                "id",
                format!(
                    "duplicate rule id {id:?}; first defined at {}",
                    self.src.files[ff].location(fspan)
                ),
            );
        }
    }

    /// The rule's sinks as positions in the sorted sink list.
    fn sinks_of(&self, r: &RawRule, e: &mut RuleErrors<'_>) -> Vec<u32> {
        let mut out = Vec::new();
        if r.sinks.get_ref().is_empty() {
            e.push(
                r.sinks.span().start,
                "sinks",
                "is empty; name at least one sink",
            );
        }
        for (j, s) in r.sinks.get_ref().iter().enumerate() {
            let sub = format!("sinks[{j}]");
            match self.sink_index.get(s.get_ref().as_str()) {
                Some(&i) if !out.contains(&i) => out.push(i),
                Some(_) => {}
                // The sink's own error is the one to fix: naming it again
                // for each rule that uses it would only bury it.
                None if self.broken_sinks.contains(s.get_ref()) => {}
                None => e.push(
                    s.span().start,
                    &sub,
                    format!("unknown sink {:?}; {}", s.get_ref(), defined(self.sinks)),
                ),
            }
        }
        out
    }

    /// Overlapping rules: errors, or warnings when the policy allows them.
    fn check_overlaps(&self, errors: &mut Vec<Diagnostic>, warnings: &mut Vec<Diagnostic>) {
        for o in find_overlaps(&self.specs, OVERLAP_REPORT_LIMIT) {
            let (fa, _, sa) = self.origins[o.a as usize];
            let (fb, ib, sb) = self.origins[o.b as usize];
            let msg = format!(
                "{} (the other rule is at {}); OSS refuses overlapping rules — narrow a resource or an event type, or set [policy] allow_overlapping_rules = true",
                o.describe(&self.specs),
                self.src.files[fa].location(sa)
            );
            let at = Some(self.src.files[fb].location(sb));
            let field = format!("rules[{ib}]");
            if self.policy.allow_overlapping_rules {
                warnings.push(Diagnostic::warning(at, field, msg));
            } else {
                errors.push(Diagnostic::error(at, field, msg));
            }
        }
    }
}

fn events_of(r: &RawRule, e: &mut RuleErrors<'_>) -> Vec<EventPattern> {
    let mut events = Vec::new();
    if r.events.get_ref().is_empty() {
        e.push(
            r.events.span().start,
            "events",
            "is empty; name at least one event type",
        );
    }
    for (j, ev) in r.events.get_ref().iter().enumerate() {
        match EventPattern::parse(ev.get_ref()) {
            Ok(p) => events.push(p),
            Err(m) => e.push(ev.span().start, &format!("events[{j}]"), m),
        }
    }
    events
}

fn resources_of(
    r: &RawRule,
    e: &mut RuleErrors<'_>,
    warnings: &mut Vec<Diagnostic>,
) -> Vec<Pattern> {
    let mut resources = Vec::new();
    for (j, res) in r.resources.iter().enumerate() {
        let sub = format!("resources[{j}]");
        match Pattern::parse(res.get_ref()) {
            Ok(p) => {
                let len = res.get_ref().len();
                if len > OSS_MAX_KEY_BYTES {
                    warnings.push(Diagnostic::warning(
                        Some(e.file.location(res.span().start)),
                        e.field(&sub),
                        format!("resource is {len} bytes; OSS keys are at most {OSS_MAX_KEY_BYTES}, so only keys from stores that allow longer ones (S3, MinIO, Ceph) can match it"),
                    ));
                }
                resources.push(p)
            }
            Err(m) => e.push(res.span().start, &sub, m),
        }
    }
    resources
}

fn defined(sinks: &[SinkEntry]) -> String {
    if sinks.is_empty() {
        return "no sinks are defined ([sinks.NAME])".into();
    }
    let names: Vec<&str> = sinks.iter().map(|s| s.name.as_str()).collect();
    format!("defined sinks: {}", names.join(", "))
}

fn check_source(s: &SourceConfig, at: &Location, errors: &mut Vec<Diagnostic>) {
    let mut missing = |field: &str, why: &str| {
        errors.push(Diagnostic::error(
            Some(at.clone()),
            format!("source.{field}"),
            why.to_owned(),
        ));
    };
    match s.kind {
        SourceType::Kafka => {
            if s.brokers.as_deref().is_none_or(|b| b.trim().is_empty()) {
                missing("brokers", "required for a kafka source");
            }
            if s.topics.is_empty() {
                missing(
                    "topics",
                    "required for a kafka source: name at least one topic",
                );
            }
            if s.group_id.as_deref().is_none_or(str::is_empty) {
                missing("group_id", "required for a kafka source");
            }
        }
        SourceType::File => {
            if s.path.is_none() {
                missing("path", "required for a file source");
            }
        }
        SourceType::Stdin => {}
    }
}

/// `/tap` streams message content: on a listener others can reach it is off
/// unless a token guards it, which deserves a word.
fn check_metrics(m: &super::model::MetricsConfig, warnings: &mut Vec<Diagnostic>) {
    let Some(listen) = &m.listen else { return };
    let host = listen.rsplit_once(':').map_or(listen.as_str(), |h| h.0);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && m.tap_token.is_none() {
        warnings.push(Diagnostic::warning(
            None,
            "metrics.listen",
            format!("{listen:?} is not loopback and [metrics] tap_token is not set: /tap (which streams message content) is off there; set tap_token = \"${{VAR}}\" to use `ossnotify tap --token-env VAR`"),
        ));
    }
}

/// A Kafka store keeps its topics in the source's cluster: there is none
/// without a Kafka source.
fn check_stores(
    dead_letter: &super::model::DeadLetterConfig,
    backlog: &super::model::BacklogConfig,
    source: &SourceConfig,
    errors: &mut Vec<Diagnostic>,
) {
    use super::model::StoreKind;
    for (field, store, partitions) in [
        ("dead_letter", dead_letter.store, dead_letter.partitions),
        ("backlog", backlog.store, backlog.partitions),
    ] {
        if store == Some(StoreKind::Kafka) && source.kind != SourceType::Kafka {
            errors.push(Diagnostic::error(
                None,
                format!("{field}.store"),
                "is \"kafka\", which keeps its topics in the source's Kafka cluster; with a file or stdin source use \"disk\"",
            ));
        }
        if partitions < 1 {
            errors.push(Diagnostic::error(
                None,
                format!("{field}.partitions"),
                "must be at least 1",
            ));
        }
    }
}

/// Warnings about rules the region policy makes inert (docs/events.md).
fn check_policy(
    policy: &super::model::PolicyConfig,
    r: &RawRule,
    region: Option<&str>,
    events: &[EventPattern],
    idx: usize,
    f: &SourceText,
    warnings: &mut Vec<Diagnostic>,
) {
    let policy = policy.region_policy();
    if !policy.enabled {
        return;
    }
    let id = r.id.get_ref();
    if let (Some(region), Some(span)) = (region, r.region.as_ref().map(Spanned::span)) {
        if !policy.notifies(region) {
            warnings.push(Diagnostic::warning(
                Some(f.location(span.start)),
                format!("rules[{idx}].region"),
                format!("region {region} gets no notifications under the region policy; rule {id:?} is inert"),
            ));
            return;
        }
    }
    for (j, e) in events.iter().enumerate() {
        let EventPattern::All(cat) = e else { continue };
        // Types also named directly are unaffected.
        let direct_only = events
            .iter()
            .filter(|o| !matches!(o, EventPattern::All(_)))
            .fold(crate::event::EventMask::EMPTY, |m, o| m.union(o.mask()));
        if cat
            .mask()
            .types()
            .all(|t: EventType| direct_only.contains(t))
        {
            continue;
        }
        let at = Some(f.location(r.events.get_ref()[j].span().start));
        let field = format!("rules[{idx}].events[{j}]");
        let name = cat.name();
        match region {
            Some(region) if !policy.all_wildcards_apply(region) => warnings.push(Diagnostic::warning(
                at,
                field,
                format!("{name}:All takes no effect in region {region} under the region policy; rule {id:?} must list the specific types (or use {name}:*)"),
            )),
            None => warnings.push(Diagnostic::warning(
                at,
                field,
                format!("{name}:All takes effect only for buckets in [policy] all_wildcard_regions; elsewhere rule {id:?} matches nothing through it (set region, list the specific types, or use {name}:*)"),
            )),
            Some(_) => {}
        }
    }
}
