//! `ossnotify plan -c NEW --against OLD`: what a rule change would do to
//! real traffic. Both configs' engines run over the same records (the
//! retained operation log in Kafka, or a file), and their messages are
//! compared per record and per (rule, sink) as multisets: a message only
//! NEW sends *starts*, one only OLD sends *stops*, and one both send for
//! the same record, event and key with a different body *changes*.
//!
//! - `window`: reading the records (a time window of the source's topics,
//!   seeking with the broker's time index as a hint; or NDJSON);
//! - `report`: the table and the JSON.

mod report;
mod window;

use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;

use crate::config::Config;
use crate::engine::{Engine, Processed};
use crate::rules::{RuleIndex, RuleSpec};

pub use report::Format;
pub use window::{read_file, read_kafka, At, Record, Seek};

/// Samples kept per kind of change.
const SAMPLES: usize = 3;

/// One config's side of the comparison.
struct Side {
    index: RuleIndex,
    engine: Engine,
    /// The config's sink index → the sink's name's id.
    sinks: Vec<u32>,
}

/// One message of a record: which (rule, sink), what it is about, and
/// its body's hash (equal bodies are the same message).
#[derive(Clone, Copy)]
struct Sent {
    rule: u32,
    sink: u32,
    event: &'static str,
    body: u64,
    /// Ranges in the record's text buffer.
    bucket: (u32, u32),
    key: (u32, u32),
}

impl Sent {
    fn order(&self) -> (u32, u32, &'static str, u64) {
        (self.rule, self.sink, self.event, self.body)
    }
}

/// Names of rules and sinks, each given a number once.
#[derive(Default)]
struct Names {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        id
    }
}

/// A few messages (or records) of one kind of change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    /// By (bucket, event).
    pub by: BTreeMap<(String, &'static str), u64>,
    /// (key, where its record is).
    pub samples: Vec<(String, String)>,
}

impl Tally {
    fn add(&mut self, bucket: &str, event: &'static str, key: &str, at: &str) {
        self.count += 1;
        *self.by.entry((bucket.to_owned(), event)).or_insert(0) += 1;
        if self.samples.len() < SAMPLES {
            self.samples.push((key.to_owned(), at.to_owned()));
        }
    }
}

/// What changes for one (rule, sink).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PairChange {
    pub start: Tally,
    pub stop: Tally,
    pub change: Tally,
}

/// Records invalid under one config only.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InvalidOnly {
    pub count: u64,
    /// (where the record is, why).
    pub samples: Vec<(String, String)>,
}

/// A rule whose definition differs, and in what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleChange {
    pub id: String,
    pub fields: Vec<&'static str>,
}

/// What a plan found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records read, and those compared (in the window).
    pub read: u64,
    pub compared: u64,
    /// Records older than the window (read because the seek fell short).
    pub before_window: u64,
    /// The operation times of the records compared.
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<RuleChange>,
    /// By (rule, sink).
    pub pairs: BTreeMap<(String, String), PairChange>,
    pub invalid_new_only: InvalidOnly,
    pub invalid_old_only: InvalidOnly,
    /// Messages both configs send alike.
    pub unchanged: u64,
    /// How the window was found in Kafka.
    pub seek: Option<Seek>,
}

impl Report {
    /// Whether anything differs: a rule, a message, a record's validity.
    pub fn has_changes(&self) -> bool {
        !(self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.pairs.is_empty()
            && self.invalid_new_only.count == 0
            && self.invalid_old_only.count == 0)
    }
}

/// Runs two configs over records and compares what they send.
pub struct Plan {
    new: Side,
    old: Side,
    names: Names,
    /// Records whose operation time is before this are not compared.
    since_ms: Option<i64>,
    report: Report,
    // Per-record scratch, reused.
    sent_new: Vec<Sent>,
    sent_old: Vec<Sent>,
    text_new: String,
    text_old: String,
}

impl Plan {
    pub fn new(new: &Config, old: &Config, since_ms: Option<i64>) -> Plan {
        let mut names = Names::default();
        let mut side = |c: &Config| Side {
            index: RuleIndex::build(c.rules.clone(), c.region_policy()),
            engine: Engine::new(c.source.key_encoding, false),
            sinks: c.sinks.iter().map(|s| names.id(&s.name)).collect(),
        };
        let (new_side, old_side) = (side(new), side(old));
        let mut report = Report::default();
        compare_rules(new, old, &mut report);
        Plan {
            new: new_side,
            old: old_side,
            names,
            since_ms,
            report,
            sent_new: Vec::new(),
            sent_old: Vec::new(),
            text_new: String::new(),
            text_old: String::new(),
        }
    }

    /// Compares what the two configs send for one record.
    pub fn record(&mut self, r: &Record<'_>) {
        self.report.read += 1;
        let new = messages(
            &mut self.new,
            &mut self.names,
            r.line,
            &mut self.sent_new,
            &mut self.text_new,
        );
        let old = messages(
            &mut self.old,
            &mut self.names,
            r.line,
            &mut self.sent_old,
            &mut self.text_old,
        );
        // The window is by operation time; a record without one goes by
        // when it was written.
        let time = self
            .new
            .engine
            .record_time_ms()
            .or(self.old.engine.record_time_ms())
            .or(r.written_ms);
        if let (Some(since), Some(t)) = (self.since_ms, time) {
            if t < since {
                self.report.before_window += 1;
                return;
            }
        }
        self.report.compared += 1;
        if let Some(t) = time {
            self.report.first_ms = Some(self.report.first_ms.map_or(t, |f| f.min(t)));
            self.report.last_ms = Some(self.report.last_ms.map_or(t, |l| l.max(t)));
        }
        match (&new, &old) {
            (Err(e), Ok(())) => note_invalid(&mut self.report.invalid_new_only, &r.at(), e),
            (Ok(()), Err(e)) => note_invalid(&mut self.report.invalid_old_only, &r.at(), e),
            _ => {}
        }
        self.diff(r);
    }

    /// Walks the record's two sorted message lists: equal messages cancel;
    /// what is left pairs up by (rule, sink, event, key) as changes, and
    /// the rest starts or stops.
    fn diff(&mut self, r: &Record<'_>) {
        self.sent_new.sort_unstable_by_key(Sent::order);
        self.sent_old.sort_unstable_by_key(Sent::order);
        let (mut i, mut j) = (0, 0);
        let (mut only_new, mut only_old) = (Vec::new(), Vec::new());
        while i < self.sent_new.len() || j < self.sent_old.len() {
            let (a, b) = (self.sent_new.get(i), self.sent_old.get(j));
            match (a, b) {
                (Some(a), Some(b)) if a.order() == b.order() => {
                    self.report.unchanged += 1;
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a.order() < b.order() => {
                    only_new.push(*a);
                    i += 1;
                }
                (Some(a), None) => {
                    only_new.push(*a);
                    i += 1;
                }
                (_, Some(b)) => {
                    only_old.push(*b);
                    j += 1;
                }
                (None, None) => unreachable!("the loop's condition"),
            }
        }
        if only_new.is_empty() && only_old.is_empty() {
            return;
        }
        let at = &r.at();
        let text = |t: &str, r: (u32, u32)| t[r.0 as usize..r.1 as usize].to_owned();
        for n in &only_new {
            let key = text(&self.text_new, n.key);
            let changed = only_old.iter().position(|o| {
                (o.rule, o.sink, o.event) == (n.rule, n.sink, n.event)
                    && text(&self.text_old, o.key) == key
            });
            let pair = self
                .report
                .pairs
                .entry((
                    self.names.names[n.rule as usize].clone(),
                    self.names.names[n.sink as usize].clone(),
                ))
                .or_default();
            let tally = match changed {
                Some(k) => {
                    only_old.swap_remove(k);
                    &mut pair.change
                }
                None => &mut pair.start,
            };
            tally.add(&text(&self.text_new, n.bucket), n.event, &key, at);
        }
        for o in &only_old {
            let pair = self
                .report
                .pairs
                .entry((
                    self.names.names[o.rule as usize].clone(),
                    self.names.names[o.sink as usize].clone(),
                ))
                .or_default();
            pair.stop.add(
                &text(&self.text_old, o.bucket),
                o.event,
                &text(&self.text_old, o.key),
                at,
            );
        }
    }

    /// Notes how the window was found (Kafka input).
    pub fn seek(&mut self, seek: Seek) {
        self.report.seek = Some(seek);
    }

    pub fn report(self) -> Report {
        self.report
    }
}

fn note_invalid(to: &mut InvalidOnly, at: &str, why: &str) {
    to.count += 1;
    if to.samples.len() < SAMPLES {
        to.samples.push((at.to_owned(), why.to_owned()));
    }
}

/// The messages one config sends for `line`, into `out` (their buckets
/// and keys into `text`); the error if the record is invalid under it.
fn messages(
    side: &mut Side,
    names: &mut Names,
    line: &[u8],
    out: &mut Vec<Sent>,
    text: &mut String,
) -> Result<(), String> {
    out.clear();
    text.clear();
    let Side {
        index,
        engine,
        sinks,
    } = side;
    let outcome = engine.process(index, line, |m| {
        let rule = names.id(m.rule_id);
        let mut h = rustc_hash::FxHasher::default();
        h.write(m.json);
        let body = h.finish();
        let span = |text: &mut String, s: &str| {
            let from = text.len() as u32;
            text.push_str(s);
            (from, text.len() as u32)
        };
        let bucket = span(text, m.bucket);
        let key = span(text, m.key);
        for &s in m.sinks {
            out.push(Sent {
                rule,
                sink: sinks[s as usize],
                event: m.event_name,
                body,
                bucket,
                key,
            });
        }
    });
    match outcome {
        Processed::Invalid(e) => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// Rules added, removed and changed (by id; sinks compared by name).
fn compare_rules(new: &Config, old: &Config, report: &mut Report) {
    let by_id = |c: &Config| -> BTreeMap<String, RuleSpec> {
        c.rules.iter().map(|r| (r.id.clone(), r.clone())).collect()
    };
    let sink_names = |c: &Config, r: &RuleSpec| -> Vec<String> {
        let mut v: Vec<String> = r
            .sinks
            .iter()
            .map(|s| c.sinks[*s as usize].name.clone())
            .collect();
        v.sort();
        v
    };
    let (n, o) = (by_id(new), by_id(old));
    for (id, nr) in &n {
        let Some(or) = o.get(id) else {
            report.added.push(id.clone());
            continue;
        };
        let mut fields = Vec::new();
        if nr.bucket != or.bucket {
            fields.push("bucket");
        }
        if nr.region != or.region {
            fields.push("region");
        }
        if nr.events != or.events {
            fields.push("events");
        }
        if nr.resources != or.resources {
            fields.push("resources");
        }
        if sink_names(new, nr) != sink_names(old, or) {
            fields.push("sinks");
        }
        if !fields.is_empty() {
            report.changed.push(RuleChange {
                id: id.clone(),
                fields,
            });
        }
    }
    report.removed = o
        .keys()
        .filter(|id| !n.contains_key(*id))
        .cloned()
        .collect();
}

pub use report::write;

/// Records on their way from the reading thread to the comparing one.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    /// (end in `bytes`, where, written_ms); names index `names`.
    recs: Vec<(usize, usize, Where, Option<i64>)>,
    names: Vec<String>,
}

#[derive(Clone, Copy)]
enum Where {
    Line(u64),
    Kafka(i32, i64),
}

impl Chunk {
    fn push(&mut self, r: &Record<'_>) {
        let (name, at) = match r.at {
            window::At::Line(f, n) => (f, Where::Line(n)),
            window::At::Kafka(t, p, o) => (t, Where::Kafka(p, o)),
        };
        if self.names.last().is_none_or(|n| n != name) {
            self.names.push(name.to_owned());
        }
        self.bytes.extend_from_slice(r.line);
        self.recs
            .push((self.bytes.len(), self.names.len() - 1, at, r.written_ms));
    }

    fn each(&self, mut f: impl FnMut(&Record<'_>)) {
        let mut start = 0;
        for &(end, name, at, written_ms) in &self.recs {
            let name = &self.names[name];
            f(&Record {
                line: &self.bytes[start..end],
                at: match at {
                    Where::Line(n) => window::At::Line(name, n),
                    Where::Kafka(p, o) => window::At::Kafka(name, p, o),
                },
                written_ms,
            });
            start = end;
        }
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.recs.clear();
        self.names.clear();
    }
}

/// Records per chunk handed between the threads.
const CHUNK: usize = 1024;

/// Runs `read`, which calls its argument for each record, on this thread
/// and the comparison on another: reading (Kafka's polling, a file's
/// lines) and running two engines then share the two cores.
pub fn compare_while_reading<R>(
    plan: &mut Plan,
    read: impl FnOnce(&mut dyn FnMut(&Record<'_>)) -> R,
) -> R {
    let (tx, rx) = crossbeam_channel::bounded::<Chunk>(8);
    let (spare_tx, spare_rx) = crossbeam_channel::bounded::<Chunk>(10);
    std::thread::scope(|s| {
        let compare = s.spawn(move || {
            for mut c in rx {
                c.each(|r| plan.record(r));
                c.clear();
                let _ = spare_tx.try_send(c);
            }
        });
        let mut chunk = Chunk::default();
        let out = read(&mut |r| {
            chunk.push(r);
            if chunk.recs.len() >= CHUNK {
                let next = spare_rx.try_recv().unwrap_or_default();
                // The comparing thread only ends when this sender goes.
                let _ = tx.send(std::mem::replace(&mut chunk, next));
            }
        });
        if !chunk.recs.is_empty() {
            let _ = tx.send(chunk);
        }
        drop(tx);
        compare.join().expect("the comparing thread does not panic");
        out
    })
}
