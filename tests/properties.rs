//! Property tests: the encoder's output is always JSON that round-trips the
//! record's values; the compiled index answers like a linear scan.

use std::collections::BTreeMap;

use proptest::prelude::*;

use ossnotify::encode::write_notification;
use ossnotify::event::{events_of, EventPattern, EventType, Mapped, ALL_EVENT_TYPES};
use ossnotify::oplog::{Decoder, KeyEncoding};
use ossnotify::rules::{Layout, Lookup, Pattern, RegionPolicy, RuleIndex, RuleSpec};

const OPERATIONS: &[&str] = &[
    "PutObject",
    "PostObject",
    "CopyObject",
    "InitiateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AppendObject",
    "PutSymlink",
    "GetObject",
    "DeleteObject",
    "AbortMultipartUpload",
    "UpdateObjectMeta",
    "ChangeStorageClass",
    "FinishRestore",
];

/// Any string SLS would not read as "absent".
fn text() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("\"-\" means absent", |s| s != "-")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn encoder_output_is_json_that_round_trips(
        op in prop::sample::select(OPERATIONS),
        bucket in text(), key in text(), owner in text(), requester in text(),
        ip in text(), request_id in text(), etag in text(), location in text(),
        rule_id in any::<String>(),
        size in any::<u64>(), delta in any::<i64>(), position in any::<u64>(),
        time_ms in -62_000_000_000_000i64..253_000_000_000_000,
        x_vars in prop::option::of(prop::collection::btree_map(any::<String>(), any::<String>(), 0..4)),
    ) {
        let mut rec = serde_json::json!({
            "time": time_ms, "operation": op, "bucket": bucket, "object": key,
            "bucket_location": location, "owner_id": owner, "requester_id": requester,
            "client_ip": ip, "request_id": request_id, "http_status": 200,
            "object_size": size, "delta_data_size": delta, "etag": etag,
            "append_position": position,
        });
        if let Some(v) = &x_vars {
            rec["x_vars"] = serde_json::to_value(v).unwrap();
        }
        let line = serde_json::to_vec(&rec).unwrap();
        let mut d = Decoder::default();
        let r = d.decode(&line).unwrap();
        let Mapped::Events(operation) = events_of(&r, KeyEncoding::Raw) else {
            panic!("{op} should produce an event");
        };
        let obj = operation.objects().next().unwrap();
        let mut out = Vec::new();
        write_notification(&mut out, &operation, &obj, &rule_id);

        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        let e = &v["events"][0];
        let region = location.strip_prefix("oss-").unwrap_or(&location);
        prop_assert_eq!(e["eventName"].as_str().unwrap(), operation.event_type.name());
        prop_assert_eq!(e["oss"]["bucket"]["name"].as_str().unwrap(), bucket.as_str());
        prop_assert_eq!(e["oss"]["bucket"]["ownerIdentity"].as_str().unwrap(), owner.as_str());
        prop_assert_eq!(e["oss"]["bucket"]["arn"].as_str().unwrap(), format!("acs:oss:{region}:{owner}:{bucket}"));
        prop_assert_eq!(e["oss"]["object"]["key"].as_str().unwrap(), key.as_str());
        let stripped = if etag.len() >= 2 && etag.starts_with('"') && etag.ends_with('"') { &etag[1..etag.len()-1] } else { &etag[..] };
        prop_assert_eq!(e["oss"]["object"]["eTag"].as_str().unwrap(), stripped);
        prop_assert_eq!(e["oss"]["object"]["size"].as_u64().unwrap(), size);
        let want_delta = if operation.event_type == EventType::GetObject { 0 } else { delta };
        prop_assert_eq!(e["oss"]["object"]["deltaSize"].as_i64().unwrap(), want_delta);
        prop_assert_eq!(e["oss"]["ruleId"].as_str().unwrap(), rule_id.as_str());
        prop_assert_eq!(e["region"].as_str().unwrap(), region);
        prop_assert_eq!(e["requestParameters"]["sourceIPAddress"].as_str().unwrap(), ip.as_str());
        prop_assert_eq!(e["responseElements"]["requestId"].as_str().unwrap(), request_id.as_str());
        prop_assert_eq!(e["userIdentity"]["principalId"].as_str().unwrap(), requester.as_str());
        let t = e["eventTime"].as_str().unwrap();
        prop_assert_eq!(t.len(), 24);
        prop_assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T');
        prop_assert_eq!(e["oss"]["object"].get("position").is_some(), operation.event_type == EventType::AppendObject);
        prop_assert_eq!(e["oss"]["object"].get("readFrom").is_some(), operation.event_type == EventType::GetObject);
        match &x_vars {
            Some(vars) => {
                let got: BTreeMap<String, String> = serde_json::from_value(e["xVars"].clone()).unwrap();
                prop_assert_eq!(&got, vars);
            }
            None => prop_assert!(e.get("xVars").is_none()),
        }
        // Key order is OSS's: the object keys appear in SPEC §4's order.
        let s = String::from_utf8(out).unwrap();
        let pos = |k: &str| s.find(&format!("\"{k}\":"));
        prop_assert!(pos("deltaSize") < pos("eTag") && pos("eTag") < pos("key"));
        prop_assert!(pos("eventName") < pos("eventSource") && pos("oss") < pos("region"));
    }
}

const EVENT_NAMES: &[&str] = &[
    "ObjectCreated:PutObject",
    "ObjectCreated:PostObject",
    "ObjectCreated:AppendObject",
    "ObjectDownloaded:GetObject",
    "ObjectRemoved:DeleteObject",
    "ObjectModified:UpdateObjectMeta",
    "ObjectCreated:All",
    "ObjectRemoved:All",
    "ObjectDownloaded:All",
    "ObjectCreated:*",
    "ObjectRemoved:*",
    "ObjectReplication:*",
];
const REGIONS: &[&str] = &["cn-hangzhou", "cn-hongkong", "me-east-1"];

fn pattern() -> impl Strategy<Value = Pattern> {
    "[ab/.]{0,3}\\*?[ab/.]{0,3}"
        .prop_filter("non-empty", |s| !s.is_empty())
        .prop_map(|s| Pattern::parse(&s).unwrap())
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        prop::sample::select(&["b1", "b2"][..]),
        prop::option::of(prop::sample::select(REGIONS)),
        prop::collection::vec(prop::sample::select(EVENT_NAMES), 1..3),
        prop::collection::vec(pattern(), 0..3),
    )
        .prop_map(|(bucket, region, events, resources)| RuleSpec {
            id: String::new(),
            bucket: bucket.into(),
            region: region.map(Into::into),
            events: events
                .iter()
                .map(|e| EventPattern::parse(e).unwrap())
                .collect(),
            resources,
            sinks: vec![0],
        })
}

/// The definition of SPEC §3, rule by rule.
fn linear_scan(
    rules: &[RuleSpec],
    policy: &RegionPolicy,
    bucket: &str,
    region: &str,
    t: EventType,
    key: &str,
) -> Vec<u32> {
    if !policy.notifies(region) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let type_ok = r.events.iter().any(|e| match e {
            EventPattern::All(_) => e.mask().contains(t) && policy.all_wildcards_apply(region),
            _ => e.mask().contains(t),
        });
        let region_ok = r.region.as_deref().is_none_or(|rr| rr == region);
        let key_ok = r.resources.is_empty() || r.resources.iter().any(|p| p.matches(key));
        if r.bucket == bucket && type_ok && region_ok && key_ok {
            out.push(i as u32);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn index_agrees_with_a_linear_scan(
        rules in prop::collection::vec(rule_spec(), 0..40),
        policy_on in any::<bool>(),
        queries in prop::collection::vec((
            prop::sample::select(&["b1", "b2", "b3"][..]),
            prop::sample::select(REGIONS),
            prop::sample::select(ALL_EVENT_TYPES),
            "[ab/.]{0,7}",
        ), 1..40),
    ) {
        let policy = if policy_on { RegionPolicy::default() } else { RegionPolicy::off() };
        // Both layouts: hashed pattern lengths (the default) and tries.
        for layout in [Layout::default(), Layout::tries_only(), Layout { max_prefix_lengths: 2, max_suffix_lengths: 1 }] {
        let index = RuleIndex::build_with(rules.clone(), policy.clone(), layout);
        let mut got = Vec::new();
        let mut all_wanted = Vec::new();
        for (bucket, region, t, key) in &queries {
            index.matches(bucket, region, *t, key, &mut got);
            let want = linear_scan(&rules, &policy, bucket, region, *t, key);
            prop_assert_eq!(&got, &want, "bucket {} region {} {} key {:?}", bucket, region, t, key);
            all_wanted.push(want);
        }
        // The batched lookup gives the same answers.
        let lookups: Vec<Lookup> = queries
            .iter()
            .map(|(bucket, region, event, key)| Lookup { bucket, region, event: *event, key })
            .collect();
        let (mut out, mut ends) = (Vec::new(), Vec::new());
        index.matches_batch(&lookups, &mut out, &mut ends);
        prop_assert_eq!(ends.len(), lookups.len());
        let mut start = 0;
        for (i, want) in all_wanted.iter().enumerate() {
            prop_assert_eq!(&out[start..ends[i] as usize], &want[..]);
            start = ends[i] as usize;
        }
        }
    }
}

/// Pieces of patterns and keys: short ones, and runs around the index's
/// limits (255 bytes for hashed prefix and suffix lengths, OSS's 1023-byte
/// keys, 65,535 bytes for hashed exact names).
const PIECES: &[(&str, usize)] = &[
    ("a", 1),
    ("b", 1),
    ("/", 1),
    ("l", 254),
    ("l", 256),
    ("m", 1100),
    ("n", 65_600),
];

fn pieces(n: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), n)
        .prop_map(|v| v.iter().map(|(s, k)| s.repeat(*k)).collect())
}

fn long_or_short_pattern() -> impl Strategy<Value = Pattern> {
    (pieces(0..3), any::<bool>(), pieces(0..3))
        .prop_filter("non-empty", |(h, star, t)| {
            *star || !h.is_empty() || !t.is_empty()
        })
        .prop_map(|(h, star, t)| {
            Pattern::parse(&if star {
                format!("{h}*{t}")
            } else {
                format!("{h}{t}")
            })
            .unwrap()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Resources have no length limit (SPEC §3): long patterns send a
    /// bucket to tries, or to long exact names, and still agree with the
    /// definition beside short ones.
    #[test]
    fn long_and_short_patterns_agree_with_a_linear_scan(
        resources in prop::collection::vec(
            prop::collection::vec(long_or_short_pattern(), 1..3), 1..8),
        keys in prop::collection::vec(pieces(0..5), 1..12),
    ) {
        let rules: Vec<RuleSpec> = resources
            .into_iter()
            .map(|resources| RuleSpec {
                id: String::new(),
                bucket: "b".into(),
                region: None,
                events: vec![EventPattern::parse("ObjectCreated:*").unwrap()],
                resources,
                sinks: vec![0],
            })
            .collect();
        let policy = RegionPolicy::default();
        for layout in [Layout::default(), Layout::tries_only()] {
            let index = RuleIndex::build_with(rules.clone(), policy.clone(), layout);
            let mut got = Vec::new();
            for key in &keys {
                let t = EventType::PutObject;
                index.matches("b", "cn-hangzhou", t, key, &mut got);
                let want = linear_scan(&rules, &policy, "b", "cn-hangzhou", t, key);
                prop_assert_eq!(&got, &want, "key of {} bytes", key.len());
                let l = Lookup { bucket: "b", region: "cn-hangzhou", event: t, key };
                let (mut out, mut ends) = (Vec::new(), Vec::new());
                index.matches_batch(&[l], &mut out, &mut ends);
                prop_assert_eq!(&out, &want);
            }
        }
    }
}

/// Every key over the test alphabet up to 6 bytes: long enough to witness
/// any overlap of patterns with at most 3 bytes on each side of the `*`.
fn all_short_keys() -> Vec<String> {
    let mut keys = vec![String::new()];
    let mut frontier = vec![String::new()];
    for _ in 0..6 {
        let mut next = Vec::new();
        for k in &frontier {
            for c in ['a', 'b', '/', '.'] {
                next.push(format!("{k}{c}"));
            }
        }
        keys.extend(next.iter().cloned());
        frontier = next;
    }
    keys
}

fn rule_matches_key(r: &RuleSpec, key: &str) -> bool {
    r.resources.is_empty() || r.resources.iter().any(|p| p.matches(key))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn overlaps_found_iff_they_exist_and_examples_are_real(
        rules in prop::collection::vec(rule_spec(), 0..8),
    ) {
        let keys = all_short_keys();
        let mut exists = false;
        for i in 0..rules.len() {
            for j in i + 1..rules.len() {
                let (a, b) = (&rules[i], &rules[j]);
                let regions_meet = match (&a.region, &b.region) {
                    (Some(x), Some(y)) => x == y,
                    _ => true,
                };
                if a.bucket == b.bucket && regions_meet && a.event_mask().intersects(b.event_mask())
                    && keys.iter().any(|k| rule_matches_key(a, k) && rule_matches_key(b, k))
                {
                    exists = true;
                }
            }
        }
        let found = ossnotify::rules::find_overlaps(&rules, 1000);
        prop_assert_eq!(!found.is_empty(), exists, "{:?}", found);
        for o in &found {
            let (a, b) = (&rules[o.a as usize], &rules[o.b as usize]);
            prop_assert_eq!(&a.bucket, &b.bucket);
            prop_assert!(a.event_mask().contains(o.event) && b.event_mask().contains(o.event));
            prop_assert!(rule_matches_key(a, &o.example_key) && rule_matches_key(b, &o.example_key), "{:?}", o);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The fuzz target's property on stable: arbitrary bytes never panic the
    /// hot path, and anything emitted is JSON.
    #[test]
    fn arbitrary_bytes_never_panic_the_engine(
        data in prop::collection::vec(any::<u8>(), 0..400),
        json_like in "\\{(\"[a-z_]{1,12}\":(\"[^\"]{0,12}\"|[0-9-]{1,22}|null|true|\\[\\]|\\{\\}),?){0,8}\\}",
    ) {
        let index = RuleIndex::build(
            ossnotify::synth::Workload { buckets: 2, rules_per_bucket: 4, ruled_bucket_percent: 100, seed: 3 }.rules(),
            RegionPolicy::default(),
        );
        let mut engine = ossnotify::engine::Engine::new(KeyEncoding::Url, true);
        for input in [&data[..], json_like.as_bytes()] {
            for (_, line) in ossnotify::oplog::Lines::new(input) {
                engine.process(&index, line, |m| {
                    assert!(serde_json::from_slice::<serde_json::Value>(m.json).is_ok());
                });
            }
        }
    }

    /// Arbitrary config text gives a config or located errors, never a panic.
    #[test]
    fn arbitrary_config_text_never_panics(
        text in "(\\[\\[?[a-z._-]{1,12}\\]\\]?\n|[a-z_]{1,10} = (\"[^\"\n]{0,10}\"|[0-9]{1,4}|\\[\\]|true)\n){0,10}",
    ) {
        let _ = ossnotify::config::load_str(std::path::Path::new("p.toml"), &text, &|_| None);
    }
}
