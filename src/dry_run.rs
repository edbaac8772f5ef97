//! `ossnotify match`: reads records and prints, per message that would be
//! sent, `{"ruleId":…,"sinks":[…],"message":…}` (docs/commands.md), the
//! message as OSS's notification JSON or as a CloudEvent.

use std::io::{self, BufRead, Write};

use crate::config::Config;
use crate::encode::write_json_string;
use crate::engine::{Engine, Processed};
use crate::rules::RuleIndex;

/// How `message` is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// OSS's notification JSON (`{"events":[…]}`).
    #[default]
    Oss,
    /// The CloudEvent a sink with `encoding = "cloudevents"` sends.
    Cloudevents,
}

/// How to run: say why records matched nothing, and how to print messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub explain: bool,
    pub format: Format,
}

/// Counts of one dry run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub messages: u64,
    pub unmatched: u64,
    pub skipped: u64,
    pub invalid: u64,
}

/// Runs the records of `input` (NDJSON, named `input_name` in messages)
/// through `config`'s rules; messages go to `out`, invalid records (and
/// with `explain`, why a record matched nothing) to `diag`.
pub fn run(
    config: &Config,
    index: &RuleIndex,
    input: &mut dyn BufRead,
    input_name: &str,
    out: &mut dyn Write,
    diag: &mut dyn Write,
    Options { explain, format }: Options,
) -> io::Result<Summary> {
    let mut engine = Engine::new(config.source.key_encoding, false).with_explain(explain);
    let mut summary = Summary::default();
    let mut line = Vec::with_capacity(4096);
    let mut line_no = 0usize;
    let mut buf = Vec::with_capacity(2048);
    let now_ms = ossnotify_sinks::store::now_ms() as i64;
    let mut write_error = None;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        line_no += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        summary.records += 1;
        let outcome = engine.process(index, &line, |m| {
            buf.clear();
            buf.extend_from_slice(b"{\"ruleId\":");
            write_json_string(&mut buf, m.rule_id);
            buf.extend_from_slice(b",\"sinks\":[");
            for (i, s) in m.sinks.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                write_json_string(&mut buf, &config.sinks[*s as usize].name);
            }
            buf.extend_from_slice(b"],\"message\":");
            match format {
                Format::Oss => buf.extend_from_slice(m.json),
                Format::Cloudevents => {
                    m.write_cloudevent(&mut buf, event_bus(config, m.sinks), now_ms)
                }
            }
            buf.extend_from_slice(b"}\n");
            if let Err(e) = out.write_all(&buf) {
                write_error.get_or_insert(e);
            }
        });
        if let Some(e) = write_error.take() {
            return Err(e);
        }
        match outcome {
            Processed::Matched(n) => summary.messages += n as u64,
            Processed::NoMatch(why) => {
                summary.unmatched += 1;
                if let Some(why) = why {
                    writeln!(diag, "{input_name}:{line_no}: no message: {why}")?;
                }
            }
            Processed::Skipped(s) => {
                summary.skipped += 1;
                if explain {
                    writeln!(diag, "{input_name}:{line_no}: no message: skipped: {s}")?;
                }
            }
            Processed::Invalid(e) => {
                summary.invalid += 1;
                writeln!(diag, "{input_name}:{line_no}: invalid record: {e}")?;
            }
        }
    }
    out.flush()?;
    Ok(summary)
}

/// The event bus a CloudEvent of a rule with these sinks names: that of
/// its first sink sending CloudEvents, else of its first sink.
fn event_bus<'c>(config: &'c Config, sinks: &[u32]) -> &'c str {
    let sink = |s: &u32| &config.sinks[*s as usize].config;
    sinks
        .iter()
        .map(sink)
        .find(|c| c.encoding() == ossnotify_sinks::Encoding::CloudEvents)
        .or_else(|| sinks.first().map(sink))
        .and_then(|c| c.event_bus())
        .unwrap_or(crate::pipeline::DEFAULT_EVENT_BUS)
}
