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
    mut errors: Vec<Diagnostic>,
) -> Result<Loaded, Vec<Diagnostic>> {
    let mut warnings = Vec::new();
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
    if raw.pipeline.workers == 0 {
        errors.push(Diagnostic::error(
            None,
            "pipeline.workers",
            "must be at least 1",
        ));
    }
    if raw.pipeline.commit_interval_ms == 0 {
        errors.push(Diagnostic::error(
            None,
            "pipeline.commit_interval_ms",
            "must be at least 1",
        ));
    }
    if raw.pipeline.queue_capacity == 0 {
        errors.push(Diagnostic::error(
            None,
            "pipeline.queue_capacity",
            "must be at least 1",
        ));
    }
    // The revocation callback holds the poll loop for up to this long: it
    // must stay well inside the time librdkafka allows between polls.
    let max_poll_ms: u64 = source
        .librdkafka
        .get("max.poll.interval.ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    if raw.pipeline.revoke_wait_ms.saturating_mul(2) >= max_poll_ms {
        errors.push(Diagnostic::error(
            None,
            "pipeline.revoke_wait_ms",
            format!(
                "is {} ms; keep it under half of max.poll.interval.ms ({max_poll_ms} ms), or the member is dropped from the group while it waits",
                raw.pipeline.revoke_wait_ms
            ),
        ));
    }

    let mut sinks: Vec<SinkEntry> = sinks.into_iter().map(|(s, _)| s).collect();
    sinks.sort_by(|a, b| a.name.cmp(&b.name));
    let sink_index: FxHashMap<&str, u32> = sinks
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i as u32))
        .collect();

    let mut specs = Vec::with_capacity(raw_rules.len());
    // Per rule: (file, index within that file, span of its id).
    let mut origins: Vec<(usize, usize, usize)> = Vec::with_capacity(raw_rules.len());
    let mut ids: FxHashMap<String, usize> = FxHashMap::default();
    let mut per_file_index: FxHashMap<usize, usize> = FxHashMap::default();
    for (file, r) in raw_rules {
        let n = per_file_index.entry(file).or_insert(0);
        let idx = *n;
        *n += 1;
        let f = &src.files[file];
        let field = |sub: &str| format!("rules[{idx}].{sub}");
        let err = |errors: &mut Vec<Diagnostic>, at: usize, sub: &str, msg: String| {
            errors.push(Diagnostic::error(Some(f.location(at)), field(sub), msg));
        };
        let before = errors.len();
        let id = r.id.get_ref().trim();
        if id.is_empty() {
            err(&mut errors, r.id.span().start, "id", "is empty".into());
        } else if let Some(&first) = ids.get(id) {
            let (ff, _, fspan) = origins[first];
            err(
                &mut errors,
                r.id.span().start,
                "id",
                format!(
                    "duplicate rule id {id:?}; first defined at {}",
                    src.files[ff].location(fspan)
                ),
            );
        }
        if r.bucket.get_ref().is_empty() {
            err(
                &mut errors,
                r.bucket.span().start,
                "bucket",
                "is empty".into(),
            );
        }
        let region = match &r.region {
            Some(reg) if reg.get_ref().is_empty() => {
                err(
                    &mut errors,
                    reg.span().start,
                    "region",
                    "is empty; omit it for every region".into(),
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
        let mut events = Vec::new();
        if r.events.get_ref().is_empty() {
            err(
                &mut errors,
                r.events.span().start,
                "events",
                "is empty; name at least one event type".into(),
            );
        }
        for (j, e) in r.events.get_ref().iter().enumerate() {
            match EventPattern::parse(e.get_ref()) {
                Ok(p) => events.push(p),
                Err(m) => err(&mut errors, e.span().start, &format!("events[{j}]"), m),
            }
        }
        let mut resources = Vec::new();
        for (j, res) in r.resources.iter().enumerate() {
            match Pattern::parse(res.get_ref()) {
                Ok(p) => {
                    let len = res.get_ref().len();
                    if len > OSS_MAX_KEY_BYTES {
                        warnings.push(Diagnostic::warning(
                            Some(f.location(res.span().start)),
                            field(&format!("resources[{j}]")),
                            format!("resource is {len} bytes; OSS keys are at most {OSS_MAX_KEY_BYTES}, so only keys from stores that allow longer ones (S3, MinIO, Ceph) can match it"),
                        ));
                    }
                    resources.push(p)
                }
                Err(m) => err(&mut errors, res.span().start, &format!("resources[{j}]"), m),
            }
        }
        let mut rule_sinks = Vec::new();
        if r.sinks.get_ref().is_empty() {
            err(
                &mut errors,
                r.sinks.span().start,
                "sinks",
                "is empty; name at least one sink".into(),
            );
        }
        for (j, s) in r.sinks.get_ref().iter().enumerate() {
            match sink_index.get(s.get_ref().as_str()) {
                Some(&i) if !rule_sinks.contains(&i) => rule_sinks.push(i),
                Some(_) => {}
                None if broken_sinks.contains(s.get_ref()) => errors.push(Diagnostic::error(
                    Some(f.location(s.span().start)),
                    field(&format!("sinks[{j}]")),
                    format!("sink {:?} has errors (above)", s.get_ref()),
                )),
                None => err(
                    &mut errors,
                    s.span().start,
                    &format!("sinks[{j}]"),
                    format!("unknown sink {:?}; {}", s.get_ref(), defined(&sinks)),
                ),
            }
        }
        if errors.len() > before {
            continue;
        }
        if !id.is_empty() {
            ids.insert(id.to_owned(), specs.len());
        }
        check_policy(
            &raw.policy,
            &r,
            region.as_deref(),
            &events,
            idx,
            f,
            &mut warnings,
        );
        origins.push((file, idx, r.id.span().start));
        specs.push(RuleSpec {
            id: id.to_owned(),
            bucket: r.bucket.into_inner(),
            region,
            events,
            resources,
            sinks: rule_sinks,
        });
    }

    if errors.is_empty() {
        for o in find_overlaps(&specs, OVERLAP_REPORT_LIMIT) {
            let (fa, _, sa) = origins[o.a as usize];
            let (fb, ib, sb) = origins[o.b as usize];
            let msg = format!(
                "{} (the other rule is at {}); OSS refuses overlapping rules — narrow a resource or an event type, or set [policy] allow_overlapping_rules = true",
                o.describe(&specs),
                src.files[fa].location(sa)
            );
            let at = Some(src.files[fb].location(sb));
            let field = format!("rules[{ib}]");
            if raw.policy.allow_overlapping_rules {
                warnings.push(Diagnostic::warning(at, field, msg));
            } else {
                errors.push(Diagnostic::error(at, field, msg));
            }
        }
    }

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
