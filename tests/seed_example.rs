//! SPEC §4's example: the equivalent record gives exactly that JSON, and its
//! Base64.

mod support;

use ossnotify::config;
use ossnotify::engine::{Engine, Processed};
use ossnotify::oplog::KeyEncoding;
use ossnotify::rules::RuleIndex;

fn expected() -> (String, String) {
    let t = std::fs::read_to_string(support::data("seed-example.txt")).unwrap();
    let mut lines = t.lines();
    (
        lines.next().unwrap().to_owned(),
        lines.next().unwrap().to_owned(),
    )
}

#[test]
fn seed_record_gives_the_seed_message_and_its_base64() {
    let loaded = config::load(&support::data("seed-example.toml")).unwrap();
    let index = RuleIndex::build(loaded.config.rules.clone(), loaded.config.region_policy());
    let record = std::fs::read(support::data("seed-example.ndjson")).unwrap();
    let mut engine = Engine::new(KeyEncoding::Raw, true);
    let mut got = Vec::new();
    let outcome = engine.process(&index, record.trim_ascii_end(), |m| {
        got.push((
            String::from_utf8(m.json.to_vec()).unwrap(),
            String::from_utf8(m.base64.to_vec()).unwrap(),
        ))
    });
    assert_eq!(outcome, Processed::Matched(1));
    let (json, b64) = expected();
    assert_eq!(got, vec![(json, b64)]);
}

#[test]
fn match_prints_the_seed_message() {
    let cfg = support::data("seed-example.toml");
    let input = support::data("seed-example.ndjson");
    let out = support::run(
        &[
            "match",
            "-c",
            cfg.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out.stderr));
    let (json, _) = expected();
    assert_eq!(
        support::text(&out.stdout),
        format!("{{\"ruleId\":\"GetObjectRule\",\"sinks\":[\"oss-events\"],\"message\":{json}}}\n")
    );
}
