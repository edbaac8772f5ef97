//! `ossnotify plan`: a config and a variant (one rule removed, one added,
//! one narrowed to a deeper prefix) over the same records, from a file and
//! from the test broker. The counts per rule and sink must be what `match`
//! gives with each config over the same records; the exit code is 3 for
//! changes and 0 for a config against itself; the JSON and the table
//! agree.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SINKS: &str = "[sinks.a]\ntype = \"file\"\npath = \"/dev/null\"\n\n[sinks.b]\ntype = \"file\"\npath = \"/dev/null\"\n";

/// OLD: `photos` (all of bucket p) → a, `logs` (bucket l) → a and b,
/// `gone` (bucket g) → b.
const OLD_RULES: &str = r#"
[[rules]]
id = "photos"
bucket = "p"
events = ["ObjectCreated:*"]
resources = ["photos/*"]
sinks = ["a"]

[[rules]]
id = "logs"
bucket = "l"
events = ["ObjectCreated:*", "ObjectRemoved:*"]
sinks = ["a", "b"]

[[rules]]
id = "gone"
bucket = "g"
events = ["ObjectCreated:*"]
sinks = ["b"]
"#;

/// NEW: `photos` narrowed to photos/2026/*, `gone` removed, `thumbs` added.
const NEW_RULES: &str = r#"
[[rules]]
id = "photos"
bucket = "p"
events = ["ObjectCreated:*"]
resources = ["photos/2026/*"]
sinks = ["a"]

[[rules]]
id = "logs"
bucket = "l"
events = ["ObjectCreated:*", "ObjectRemoved:*"]
sinks = ["a", "b"]

[[rules]]
id = "thumbs"
bucket = "p"
events = ["ObjectCreated:PutObject"]
resources = ["thumbs/*"]
sinks = ["b"]
"#;

fn record(i: usize, time: &str) -> String {
    let (bucket, key, op) = match i % 7 {
        0 => ("p", format!("photos/2026/{i}.jpg"), "PutObject"),
        1 => ("p", format!("photos/2025/{i}.jpg"), "PutObject"),
        2 => ("p", format!("thumbs/{i}.jpg"), "PutObject"),
        3 => ("l", format!("app/{i}.log"), "PutObject"),
        4 => ("l", format!("app/{i}.log"), "DeleteObject"),
        5 => ("g", format!("x/{i}"), "PostObject"),
        _ => ("p", format!("thumbs/{i}.png"), "CopyObject"),
    };
    format!(
        r#"{{"time":"{time}","operation":"{op}","bucket":"{bucket}","object":"{key}","bucket_location":"oss-cn-hangzhou","owner_id":"1","request_id":"r{i}","http_status":{},"object_size":10}}"#,
        if op == "DeleteObject" { 204 } else { 200 }
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Messages per (rule, sink) that `match` gives with `config` over `corpus`.
fn matched(config: &Path, corpus: &Path) -> BTreeMap<(String, String), i64> {
    let mut m = BTreeMap::new();
    for v in support::match_lines(config, corpus) {
        for s in v["sinks"].as_array().unwrap() {
            *m.entry((
                v["ruleId"].as_str().unwrap().to_owned(),
                s.as_str().unwrap().to_owned(),
            ))
            .or_insert(0) += 1;
        }
    }
    m
}

/// `plan` with these arguments: exit code, the JSON report.
fn plan(args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut a = vec!["plan"];
    a.extend_from_slice(args);
    let json = support::run(&[a.as_slice(), &["--format", "json"]].concat(), b"");
    let text = support::run(&a, b"");
    assert_eq!(json.status.code(), text.status.code());
    let report = serde_json::from_slice(&json.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            support::text(&json.stdout),
            support::text(&json.stderr)
        )
    });
    (
        json.status.code().unwrap(),
        report,
        support::text(&text.stdout),
    )
}

/// Checks a report against `match`'s counts: NEW minus OLD per (rule,
/// sink) is what starts minus what stops (nothing changes body here), and
/// the table shows the same numbers as the JSON.
fn check(
    report: &serde_json::Value,
    text: &str,
    new: &BTreeMap<(String, String), i64>,
    old: &BTreeMap<(String, String), i64>,
) {
    let mut got: BTreeMap<(String, String), (i64, i64, i64)> = BTreeMap::new();
    for m in report["messages"].as_array().unwrap() {
        let c = |k: &str| m[k]["count"].as_i64().unwrap();
        got.insert(
            (
                m["rule"].as_str().unwrap().to_owned(),
                m["sink"].as_str().unwrap().to_owned(),
            ),
            (c("start"), c("stop"), c("change")),
        );
        let row = format!(
            "{} → {}",
            m["rule"].as_str().unwrap(),
            m["sink"].as_str().unwrap()
        );
        let line = text
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("no row {row} in\n{text}"));
        let nums: Vec<i64> = line[row.len()..]
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(nums, vec![c("start"), c("stop"), c("change")], "{line}");
    }
    let mut want = BTreeMap::new();
    for k in new.keys().chain(old.keys()) {
        let (n, o) = (
            new.get(k).copied().unwrap_or(0),
            old.get(k).copied().unwrap_or(0),
        );
        if n != o {
            want.insert(k.clone(), ((n - o).max(0), (o - n).max(0), 0));
        }
    }
    assert_eq!(got, want, "{report:#}");
    let unchanged: i64 = new
        .iter()
        .map(|(k, n)| *n.min(old.get(k).unwrap_or(&0)))
        .sum();
    assert_eq!(report["unchanged"].as_i64().unwrap(), unchanged);
    let rules = &report["rules"];
    assert_eq!(rules["added"], serde_json::json!(["thumbs"]));
    assert_eq!(rules["removed"], serde_json::json!(["gone"]));
    assert_eq!(
        rules["changed"],
        serde_json::json!([{"id": "photos", "fields": ["resources"]}])
    );
    assert!(text.contains("  + thumbs (added)"), "{text}");
    assert!(text.contains("  ~ photos (changed: resources)"), "{text}");
}

#[test]
fn plan_over_a_file_counts_what_match_gives_with_each_config() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.toml", &format!("{SINKS}{OLD_RULES}"));
    let new = write(dir.path(), "new.toml", &format!("{SINKS}{NEW_RULES}"));
    let mut corpus: String = (0..700)
        .map(|i| record(i, "2026-12-01T10:00:00Z") + "\n")
        .collect();
    corpus.push_str("not json\n");
    let corpus = write(dir.path(), "corpus.ndjson", &corpus);
    let (m_new, m_old) = (matched(&new, &corpus), matched(&old, &corpus));
    let c = corpus.to_str().unwrap();

    let (code, report, text) = plan(&[
        "-c",
        new.to_str().unwrap(),
        "--against",
        old.to_str().unwrap(),
        c,
    ]);
    assert_eq!(code, 3, "{text}");
    check(&report, &text, &m_new, &m_old);
    assert_eq!(report["records"]["compared"], 701);
    assert_eq!(report["changes"], true);
    // Samples name the record's line.
    let thumbs = report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["rule"] == "thumbs")
        .unwrap();
    let sample = &thumbs["start"]["samples"][0];
    assert_eq!(sample["key"], "thumbs/2.jpg");
    assert_eq!(sample["at"], format!("{c}:3"));
    assert_eq!(
        thumbs["start"]["by"],
        serde_json::json!([{"bucket": "p", "event": "ObjectCreated:PutObject", "count": 100}])
    );
    assert!(text.contains("changes found (exit 3)"), "{text}");

    // A config against itself: nothing changes, exit 0.
    let (code, report, text) = plan(&[
        "-c",
        new.to_str().unwrap(),
        "--against",
        new.to_str().unwrap(),
        c,
    ]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(report["changes"], false);
    assert!(report["messages"].as_array().unwrap().is_empty());
    assert!(text.contains("no changes (exit 0)"), "{text}");

    // Neither a window nor a file: told what to give, exit 1.
    let out = support::run(
        &[
            "plan",
            "-c",
            new.to_str().unwrap(),
            "--against",
            old.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        support::text(&out.stderr).contains("--since TIME"),
        "{}",
        support::text(&out.stderr)
    );
}

#[test]
fn plan_over_the_source_topics_reads_only_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("plan-{}", std::process::id());
    support::broker::create_topic(&topic, 3);
    let source = support::kafka_source(support::broker::brokers(), &topic, &topic, "", "");
    let old = write(
        dir.path(),
        "old.toml",
        &format!("{source}\n{SINKS}{OLD_RULES}"),
    );
    let new = write(
        dir.path(),
        "new.toml",
        &format!("{source}\n{SINKS}{NEW_RULES}"),
    );
    // 300 operations three days old, then 700 from the last minutes.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let at = |age_s: i64| {
        let secs = now - age_s;
        // RFC 3339 from epoch seconds (UTC), by the civil-from-days method.
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    };
    // Written when their operations happened: a broker's time index can
    // skip the old ones (tansu's cannot).
    let old_records: Vec<String> = (0..300).map(|i| record(i, &at(3 * 86_400))).collect();
    let recent: Vec<String> = (300..1000).map(|i| record(i, &at(120))).collect();
    produce_at(&topic, &old_records, (now - 3 * 86_400) * 1000);
    produce_at(&topic, &recent, (now - 120) * 1000);
    let corpus = write(dir.path(), "recent.ndjson", &(recent.join("\n") + "\n"));
    let (m_new, m_old) = (matched(&new, &corpus), matched(&old, &corpus));

    let (code, report, text) = plan(&[
        "-c",
        new.to_str().unwrap(),
        "--against",
        old.to_str().unwrap(),
        "--since",
        "1h",
    ]);
    assert_eq!(code, 3, "{text}");
    check(&report, &text, &m_new, &m_old);
    assert_eq!(report["records"]["compared"], 700, "{report:#}");
    assert_eq!(
        report["records"]["read"].as_i64().unwrap() - 700,
        report["records"]["before_window"].as_i64().unwrap()
    );
    assert_eq!(report["seek"]["partitions"], 3);
    assert_eq!(report["seek"]["topics"], serde_json::json!([topic]));
    // Records from before the window are read only where the time index
    // did not find its start (tansu answers offset 0 for every time), and
    // the plan then says so; the answer is the same either way.
    let before = report["records"]["before_window"].as_i64().unwrap();
    let scanned = report["seek"]["scanned"].as_i64().unwrap();
    assert_eq!(before > 0, scanned > 0, "{report:#}");
    assert_eq!(
        text.contains("did not find the window's start"),
        scanned > 0,
        "{text}"
    );
    // Nothing was committed for the live group, nor joined.
    let reader = support::group_reader(&topic);
    assert!(support::committed(&reader, &topic, 3)
        .values()
        .all(|c| *c <= 0));

    let (code, _, text) = plan(&[
        "-c",
        old.to_str().unwrap(),
        "--against",
        old.to_str().unwrap(),
        "--since",
        "1h",
    ]);
    assert_eq!(code, 0, "{text}");
}

/// Produces `payloads` to `topic`, written at `ts_ms`.
fn produce_at(topic: &str, payloads: &[String], ts_ms: i64) {
    support::broker::produce_each(topic, payloads, |n| support::broker::Shape {
        key: Some(format!("{ts_ms}-{n}")),
        partition: None,
        timestamp: Some(ts_ms),
    });
}
