//! `ossnotify test -c CONFIG TESTS` (docs/commands.md): unit tests of a config's
//! rules, as `vector test` and `rpk connect test` have for pipelines. A
//! tests file (TOML) lists operation-log records and, for each, the
//! notifications it must produce, or that it must produce none:
//!
//! ```toml
//! [[tests]]
//! name = "a JPEG upload notifies photo-uploads"
//! record = '{"time":"2024-05-01T10:00:00Z","operation":"PutObject",…}'
//! [[tests.expect]]
//! rule = "photo-uploads"
//! sinks = ["console"]                      # optional
//! event = "ObjectCreated:PutObject"        # optional
//! key = "uploads/cat.jpg"                  # optional
//! json = '{"events":[…]}'                  # optional: the whole notification
//!
//! [[tests]]
//! name = "a text file notifies nobody"
//! record = '…'
//! expect = []
//! ```
//!
//! The record goes through the same engine as `match` and `run`. Expected
//! and produced notifications are compared as lists in the engine's order
//! (config order of the rules); a field left out of an expectation is not
//! compared, and `json` is compared as JSON values.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::config::Config;
use crate::engine::{Engine, RecordOutcome};
use crate::rules::RuleIndex;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestsFile {
    tests: Vec<toml::Spanned<Test>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Test {
    name: String,
    record: String,
    #[serde(default)]
    expect: Vec<Expect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    rule: String,
    sinks: Option<Vec<String>>,
    event: Option<String>,
    key: Option<String>,
    json: Option<String>,
}

/// A notification the record produced.
#[derive(Debug)]
struct Produced {
    rule: String,
    sinks: Vec<String>,
    event: String,
    key: String,
    json: serde_json::Value,
}

impl std::fmt::Display for Produced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rule {}, sinks [{}], {}, key {:?}",
            self.rule,
            self.sinks.join(", "),
            self.event,
            self.key
        )
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rule {}", self.rule)?;
        if let Some(s) = &self.sinks {
            write!(f, ", sinks [{}]", s.join(", "))?;
        }
        if let Some(e) = &self.event {
            write!(f, ", {e}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ", key {k:?}")?;
        }
        if self.json.is_some() {
            f.write_str(", and its JSON")?;
        }
        Ok(())
    }
}

/// The result of a tests file: how many passed, and a report of each
/// failure (empty when all passed).
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
    pub text: String,
}

/// A tests file that does not parse: where, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{at}: {message}")]
pub struct TestsFileError {
    /// `file:line:col`, or the file.
    pub at: String,
    pub message: String,
}

/// Runs the tests in `text` (the file `path`) against `config`.
pub fn run(config: &Config, path: &Path, text: &str) -> Result<Report, TestsFileError> {
    let file: TestsFile = toml::from_str(text).map_err(|e| TestsFileError {
        at: e
            .span()
            .map(|s| crate::config::Location::at(path, text, s.start).to_string())
            .unwrap_or_else(|| path.display().to_string()),
        message: e.message().to_owned(),
    })?;
    let index = RuleIndex::build(config.rules.clone(), config.region_policy());
    let mut engine = Engine::new(config.source.key_encoding, false);
    let mut report = Report::default();
    for t in &file.tests {
        let at = crate::config::Location::at(path, text, t.span().start);
        let t = t.get_ref();
        match check(config, &index, &mut engine, t) {
            Ok(()) => report.passed += 1,
            Err(diff) => {
                report.failed += 1;
                let _ = writeln!(report.text, "FAIL {:?} ({at})\n{diff}", t.name);
            }
        }
    }
    Ok(report)
}

/// Ok, or what differs.
fn check(config: &Config, index: &RuleIndex, engine: &mut Engine, t: &Test) -> Result<(), String> {
    let mut produced = Vec::new();
    let mut bad_json = None;
    let outcome = engine.process(index, t.record.as_bytes(), |m| {
        let json: serde_json::Value = match serde_json::from_slice(m.json) {
            Ok(v) => v,
            Err(e) => {
                bad_json.get_or_insert(e.to_string());
                return;
            }
        };
        let event = &json["events"][0];
        produced.push(Produced {
            rule: m.rule_id.to_owned(),
            sinks: m
                .sinks
                .iter()
                .map(|s| config.sinks[*s as usize].name.clone())
                .collect(),
            event: event["eventName"].as_str().unwrap_or_default().to_owned(),
            key: event["oss"]["object"]["key"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            json,
        });
    });
    if let Some(e) = bad_json {
        return Err(format!("  the engine wrote JSON that does not parse: {e}"));
    }
    if let RecordOutcome::Invalid(e) = outcome {
        return Err(format!("  the record is invalid: {e}"));
    }
    let same = produced.len() == t.expect.len()
        && produced.iter().zip(&t.expect).all(|(p, e)| matches(p, e));
    if same {
        return Ok(());
    }
    let mut diff = String::from("  expected:\n");
    if t.expect.is_empty() {
        diff.push_str("    (no notification)\n");
    }
    for (i, e) in t.expect.iter().enumerate() {
        let mark = if produced.get(i).is_some_and(|p| matches(p, e)) {
            " "
        } else {
            "-"
        };
        let _ = writeln!(diff, "  {mark} {e}");
    }
    diff.push_str("  produced:\n");
    if produced.is_empty() {
        let why = match outcome {
            RecordOutcome::Skipped(s) => format!(" (skipped: {s})"),
            _ => String::new(),
        };
        let _ = writeln!(diff, "    (no notification){why}");
    }
    for (i, p) in produced.iter().enumerate() {
        let mark = if t.expect.get(i).is_some_and(|e| matches(p, e)) {
            " "
        } else {
            "+"
        };
        let _ = writeln!(diff, "  {mark} {p}");
        if let Some(want) = t.expect.get(i).and_then(|e| e.json.as_deref()) {
            if serde_json::from_str::<serde_json::Value>(want)
                .ok()
                .as_ref()
                != Some(&p.json)
            {
                let _ = writeln!(diff, "      its JSON: {}", p.json);
            }
        }
    }
    Err(diff)
}

fn matches(p: &Produced, e: &Expect) -> bool {
    p.rule == e.rule
        && e.sinks.as_ref().is_none_or(|s| *s == p.sinks)
        && e.event.as_ref().is_none_or(|v| *v == p.event)
        && e.key.as_ref().is_none_or(|k| *k == p.key)
        && e.json.as_deref().is_none_or(|j| {
            serde_json::from_str::<serde_json::Value>(j).ok().as_ref() == Some(&p.json)
        })
}
