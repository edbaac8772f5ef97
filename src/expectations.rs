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
//! partial = '{"events":[{"oss":{"object":{"size":1234}}}]}'  # optional: what it names
//! [tests.expect.fields]                    # optional: dotted paths in the event
//! "oss.object.size" = 1234
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
//! compared, and `json` is compared as JSON values. A failure shows, for
//! each expectation, the fields expected and produced side by side, each
//! that differs marked; a record that produced nothing says why, as
//! `match --explain` does. docs/config-tests.md has every key.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::config::Config;
use crate::engine::{Engine, Processed};
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
    /// The whole notification.
    json: Option<String>,
    /// A part of the notification: what it names must be there, as given.
    partial: Option<String>,
    /// Dotted paths in the event (`oss.object.size`), and their values.
    fields: Option<std::collections::BTreeMap<String, toml::Value>>,
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
        if self.partial.is_some() {
            f.write_str(", and part of its JSON")?;
        }
        if let Some(fields) = &self.fields {
            let names: Vec<&str> = fields.keys().map(String::as_str).collect();
            write!(f, ", and {}", names.join(", "))?;
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
    /// Each test: its name, where it is, and its failure's report.
    pub cases: Vec<(String, String, Option<String>)>,
}

impl Report {
    /// The report as JUnit XML, for CI systems (`--format junit`).
    pub fn junit(&self, suite: &str) -> String {
        use ossnotify_sinks::mns::xml::escape;
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites><testsuite name=\"{}\" tests=\"{}\" failures=\"{}\">\n",
            escape(suite),
            self.cases.len(),
            self.failed
        );
        for (name, at, failure) in &self.cases {
            let _ = write!(
                out,
                "<testcase classname=\"{}\" name=\"{}\"",
                escape(suite),
                escape(name)
            );
            match failure {
                None => out.push_str("/>\n"),
                Some(f) => {
                    let _ = writeln!(
                        out,
                        "><failure message=\"{}\">{}</failure></testcase>",
                        escape(&format!("failed at {at}")),
                        escape(f)
                    );
                }
            }
        }
        out.push_str("</testsuite></testsuites>\n");
        out
    }
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
    let mut engine = Engine::new(config.source.key_encoding, false).with_explain(true);
    let mut report = Report::default();
    for t in &file.tests {
        let at = crate::config::Location::at(path, text, t.span().start);
        let t = t.get_ref();
        let result = check(config, &index, &mut engine, t);
        match &result {
            Ok(()) => report.passed += 1,
            Err(diff) => {
                report.failed += 1;
                let _ = writeln!(report.text, "FAIL {:?} ({at})\n{diff}", t.name);
            }
        }
        report
            .cases
            .push((t.name.clone(), at.to_string(), result.err()));
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
    if let Processed::Invalid(e) = outcome {
        return Err(format!("  the record is invalid: {e}"));
    }
    let same = produced.len() == t.expect.len()
        && produced.iter().zip(&t.expect).all(|(p, e)| matches(p, e));
    if same {
        return Ok(());
    }
    Err(diff(t, &produced, &outcome))
}

/// What differs between the expected notifications and those produced.
fn diff(t: &Test, produced: &[Produced], outcome: &Processed) -> String {
    let mut diff = String::new();
    if produced.is_empty() {
        let why = match &outcome {
            Processed::Skipped(s) => format!("skipped: {s}"),
            Processed::NoMatch(Some(why)) => why.clone(),
            _ => "no rule matched".into(),
        };
        let _ = writeln!(
            diff,
            "  expected {} notifications, produced none: {why}",
            t.expect.len()
        );
        for e in &t.expect {
            let _ = writeln!(diff, "    expected: {e}");
        }
        return diff;
    }
    if produced.len() != t.expect.len() {
        let _ = writeln!(
            diff,
            "  expected {} notifications, produced {}:",
            t.expect.len(),
            produced.len()
        );
    }
    for i in 0..produced.len().max(t.expect.len()) {
        match (t.expect.get(i), produced.get(i)) {
            (Some(e), Some(p)) if matches(p, e) => {
                let _ = writeln!(diff, "  notification {}: as expected ({p})", i + 1);
            }
            (Some(e), Some(p)) => {
                let _ = writeln!(diff, "  notification {}: differs", i + 1);
                side_by_side(&mut diff, e, p);
                let _ = writeln!(diff, "    produced JSON: {}", p.json);
            }
            (Some(e), None) => {
                let _ = writeln!(diff, "  notification {}: missing; expected {e}", i + 1);
            }
            (None, Some(p)) => {
                let _ = writeln!(diff, "  notification {}: not expected; produced {p}", i + 1);
            }
            (None, None) => {}
        }
    }
    diff
}

/// Every field an expectation names, expected and produced side by side;
/// those that differ marked `≠`.
fn side_by_side(out: &mut String, e: &Expect, p: &Produced) {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    rows.push(("rule".into(), e.rule.clone(), p.rule.clone()));
    if let Some(s) = &e.sinks {
        rows.push(("sinks".into(), format!("{s:?}"), format!("{:?}", p.sinks)));
    }
    if let Some(v) = &e.event {
        rows.push(("event".into(), v.clone(), p.event.clone()));
    }
    if let Some(k) = &e.key {
        rows.push(("key".into(), format!("{k:?}"), format!("{:?}", p.key)));
    }
    let event = &p.json["events"][0];
    for (path, want) in e.fields.iter().flatten() {
        let want = toml_to_json(want);
        let got = at_path(event, path)
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        rows.push((path.clone(), want.to_string(), got.to_string()));
    }
    for (label, text, whole) in [("json", &e.json, true), ("partial", &e.partial, false)] {
        let Some(text) = text else { continue };
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(want) => {
                let mut diffs = Vec::new();
                json_diff(&want, &p.json, String::new(), whole, &mut diffs);
                for (path, w, g) in diffs {
                    rows.push((format!("{label} {path}"), w, g));
                }
            }
            Err(err) => rows.push((label.into(), format!("(not JSON: {err})"), String::new())),
        }
    }
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let wide = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .min(60);
    let _ = writeln!(
        out,
        "    {:width$}   {:wide$}   produced",
        "field", "expected"
    );
    for (field, want, got) in rows {
        let mark = if want == got { " " } else { "≠" };
        let _ = writeln!(out, "  {mark} {field:width$}   {want:wide$}   {got}");
    }
}

/// The value at a dotted path (`oss.object.size`; `events.0` for an index).
fn at_path<'v>(v: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    path.split('.')
        .try_fold(v, |v, part| match part.parse::<usize>() {
            Ok(i) if v.is_array() => v.get(i),
            _ => v.get(part),
        })
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Where `got` differs from `want`: (path, expected, produced). With
/// `whole`, keys `want` lacks count too; otherwise only what it names.
fn json_diff(
    want: &serde_json::Value,
    got: &serde_json::Value,
    path: String,
    whole: bool,
    out: &mut Vec<(String, String, String)>,
) {
    use serde_json::Value;
    let at = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => json_diff(wv, gv, at(k), whole, out),
                    None => out.push((at(k), wv.to_string(), "(absent)".into())),
                }
            }
            if whole {
                for (k, gv) in g.iter().filter(|(k, _)| !w.contains_key(*k)) {
                    out.push((at(k), "(absent)".into(), gv.to_string()));
                }
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                json_diff(wv, gv, at(&i.to_string()), whole, out);
            }
        }
        _ if want != got => {
            let p = if path.is_empty() {
                "(all)".into()
            } else {
                path
            };
            out.push((p, want.to_string(), got.to_string()));
        }
        _ => {}
    }
}

fn matches(p: &Produced, e: &Expect) -> bool {
    let event = &p.json["events"][0];
    p.rule == e.rule
        && e.sinks.as_ref().is_none_or(|s| *s == p.sinks)
        && e.event.as_ref().is_none_or(|v| *v == p.event)
        && e.key.as_ref().is_none_or(|k| *k == p.key)
        && e.json.as_deref().is_none_or(|j| {
            serde_json::from_str::<serde_json::Value>(j).ok().as_ref() == Some(&p.json)
        })
        && e.partial.as_deref().is_none_or(|j| {
            serde_json::from_str::<serde_json::Value>(j).is_ok_and(|want| {
                let mut d = Vec::new();
                json_diff(&want, &p.json, String::new(), false, &mut d);
                d.is_empty()
            })
        })
        && e.fields
            .iter()
            .flatten()
            .all(|(path, want)| at_path(event, path) == Some(&toml_to_json(want)))
}
