//! `ossnotify match`: reads records and prints, per message that would be
//! sent, `{"ruleId":…,"sinks":[…],"message":{"events":[…]}}` (SPEC §8).

use std::io::{self, BufRead, Write};

use crate::config::Config;
use crate::encode::write_json_string;
use crate::engine::{Engine, RecordOutcome};
use crate::rules::RuleIndex;

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
    explain: bool,
) -> io::Result<Summary> {
    let mut engine = Engine::new(config.source.key_encoding, false).with_explain(explain);
    let mut summary = Summary::default();
    let mut line = Vec::with_capacity(4096);
    let mut line_no = 0usize;
    let mut buf = Vec::with_capacity(2048);
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
            buf.extend_from_slice(m.json);
            buf.extend_from_slice(b"}\n");
            if let Err(e) = out.write_all(&buf) {
                write_error.get_or_insert(e);
            }
        });
        if let Some(e) = write_error.take() {
            return Err(e);
        }
        match outcome {
            RecordOutcome::Matched(n) => summary.messages += n as u64,
            RecordOutcome::NoMatch(why) => {
                summary.unmatched += 1;
                if let Some(why) = why {
                    writeln!(diag, "{input_name}:{line_no}: no message: {why}")?;
                }
            }
            RecordOutcome::Skipped(s) => {
                summary.skipped += 1;
                if explain {
                    writeln!(diag, "{input_name}:{line_no}: no message: skipped: {s}")?;
                }
            }
            RecordOutcome::Invalid(e) => {
                summary.invalid += 1;
                writeln!(diag, "{input_name}:{line_no}: invalid record: {e}")?;
            }
        }
    }
    out.flush()?;
    Ok(summary)
}
