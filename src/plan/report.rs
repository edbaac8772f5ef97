//! A plan's report: a table for people (rules, then per rule and sink the
//! messages that start, stop or change, by bucket and event, with
//! samples), or JSON for machines (docs/commands.md gives its shape).

use std::io::{self, Write};

use serde_json::{json, Value};

use super::{InvalidOnly, Report, Tally};
use crate::oplog::time::utc;

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Writes `r`, comparing `new` (the config planned) with `old`.
pub fn write(
    r: &Report,
    new: &str,
    old: &str,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &to_json(r, new, old))?;
            writeln!(out)
        }
        Format::Text => text(r, new, old, out),
    }
}

fn text(r: &Report, new: &str, old: &str, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "plan: {new} against {old}")?;
    let span = match (r.first_ms, r.last_ms) {
        (Some(f), Some(l)) => format!(", operation times {} to {}", utc(f), utc(l)),
        _ => String::new(),
    };
    writeln!(out, "records: {} compared{span}", r.compared)?;
    if r.before_window > 0 {
        writeln!(
            out,
            "         {} more read before the window, not compared",
            r.before_window
        )?;
    }
    if let Some(s) = &r.seek {
        write!(
            out,
            "source: {} ({} partitions)",
            s.topics.join(", "),
            s.partitions
        )?;
        if s.scanned > 0 {
            write!(
                out,
                "; the broker's time index did not find the window's start on {} of them: read from an older record and selected by operation time",
                s.scanned
            )?;
        }
        writeln!(out)?;
    }
    writeln!(out)?;
    rules_and_messages(r, out)?;
    writeln!(out, "unchanged: {} messages", r.unchanged)?;
    for (which, i) in [("NEW", &r.invalid_new_only), ("OLD", &r.invalid_old_only)] {
        if i.count > 0 {
            writeln!(out, "invalid under {which} only: {} records", i.count)?;
            for (at, why) in &i.samples {
                writeln!(out, "    {at}: {why}")?;
            }
        }
    }
    writeln!(out)?;
    if r.has_changes() {
        writeln!(out, "changes found (exit 3)")
    } else {
        writeln!(out, "no changes (exit 0)")
    }
}

/// The rules added, removed and changed; then the messages per rule and
/// sink that would start, stop or change, with samples.
fn rules_and_messages(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    if r.added.is_empty() && r.removed.is_empty() && r.changed.is_empty() {
        writeln!(out, "rules: no rule added, removed or changed")?;
    } else {
        writeln!(out, "rules:")?;
        for id in &r.added {
            writeln!(out, "  + {id} (added)")?;
        }
        for id in &r.removed {
            writeln!(out, "  - {id} (removed)")?;
        }
        for c in &r.changed {
            writeln!(out, "  ~ {} (changed: {})", c.id, c.fields.join(", "))?;
        }
    }
    writeln!(out)?;
    if r.pairs.is_empty() {
        writeln!(out, "messages: none would start, stop or change")?;
    } else {
        writeln!(
            out,
            "{:<40} {:>10} {:>10} {:>10}",
            "rule → sink", "start", "stop", "change"
        )?;
        for ((rule, sink), p) in &r.pairs {
            writeln!(
                out,
                "{:<40} {:>10} {:>10} {:>10}",
                format!("{rule} → {sink}"),
                p.start.count,
                p.stop.count,
                p.change.count
            )?;
            for (what, t) in [
                ("start", &p.start),
                ("stop", &p.stop),
                ("change", &p.change),
            ] {
                tally_lines(what, t, out)?;
            }
        }
    }
    Ok(())
}

fn tally_lines(what: &str, t: &Tally, out: &mut dyn Write) -> io::Result<()> {
    if t.count == 0 {
        return Ok(());
    }
    for ((bucket, event), n) in &t.by {
        writeln!(out, "    {what:<6} {n:>10}  {bucket} {event}")?;
    }
    for (key, at) in &t.samples {
        writeln!(out, "    {what:<6} e.g. {key} ({at})")?;
    }
    Ok(())
}

fn tally_json(t: &Tally) -> Value {
    json!({
        "count": t.count,
        "by": t.by.iter().map(|((bucket, event), n)| json!({"bucket": bucket, "event": event, "count": n})).collect::<Vec<_>>(),
        "samples": t.samples.iter().map(|(key, at)| json!({"key": key, "at": at})).collect::<Vec<_>>(),
    })
}

fn invalid_json(i: &InvalidOnly) -> Value {
    json!({
        "count": i.count,
        "samples": i.samples.iter().map(|(at, why)| json!({"at": at, "error": why})).collect::<Vec<_>>(),
    })
}

fn to_json(r: &Report, new: &str, old: &str) -> Value {
    json!({
        "new": new,
        "old": old,
        "records": {
            "compared": r.compared,
            "read": r.read,
            "before_window": r.before_window,
            "first_time": r.first_ms.map(utc),
            "last_time": r.last_ms.map(utc),
        },
        "seek": r.seek.as_ref().map(|s| json!({
            "topics": s.topics,
            "partitions": s.partitions,
            "scanned": s.scanned,
        })),
        "rules": {
            "added": r.added,
            "removed": r.removed,
            "changed": r.changed.iter().map(|c| json!({"id": c.id, "fields": c.fields})).collect::<Vec<_>>(),
        },
        "messages": r.pairs.iter().map(|((rule, sink), p)| json!({
            "rule": rule,
            "sink": sink,
            "start": tally_json(&p.start),
            "stop": tally_json(&p.stop),
            "change": tally_json(&p.change),
        })).collect::<Vec<_>>(),
        "unchanged": r.unchanged,
        "invalid": {
            "new_only": invalid_json(&r.invalid_new_only),
            "old_only": invalid_json(&r.invalid_old_only),
        },
        "changes": r.has_changes(),
    })
}
