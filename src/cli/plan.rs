//! `ossnotify plan`: what a rule change would do to real traffic.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use super::{invalid, load_read_only, progress_bar, CliError, IntoCliError, EXIT_CHANGES};

pub(super) fn plan(
    new_path: &Path,
    old_path: &Path,
    since: Option<&str>,
    input: Option<&Path>,
    format: ossnotify::plan::Format,
) -> Result<ExitCode, CliError> {
    use ossnotify::plan::{self, Plan};
    let new = load_read_only(new_path)?;
    let old = load_read_only(old_path)?;
    let since_ms = since
        .map(ossnotify::dead_letter_admin::parse_time)
        .transpose()
        .invalid("--since")?
        .map(|t| t as i64);
    let mut planned = Plan::new(&new, &old, since_ms);
    let bar = progress_bar(0);
    // The bar is moved every so many records, not per record.
    let mut since_tick = 0u64;
    let mut tick = || {
        since_tick += 1;
        if since_tick == 4096 {
            bar.inc(since_tick);
            since_tick = 0;
        }
    };
    match (input, since_ms) {
        (Some(path), _) => plan::compare_while_reading(&mut planned, |compare| {
            plan::read_file(path, |r| {
                compare(r);
                tick();
            })
        })
        .invalid(format!("cannot read {}", path.display()))?,
        (None, Some(since)) => {
            if new.source.kind != ossnotify::config::SourceType::Kafka {
                return Err(invalid(format!(
                    "{}: plan --since reads the source's Kafka topics, and this config's source is not Kafka; give an NDJSON file instead",
                    new_path.display()
                )));
            }
            let seek = plan::compare_while_reading(&mut planned, |compare| {
                plan::read_kafka(
                    &new,
                    since,
                    |n| bar.set_length(n),
                    |r| {
                        compare(r);
                        tick();
                    },
                )
            })
            .runtime("reading the source's topics")?;
            planned.seek(seek);
        }
        (None, None) => {
            return Err(invalid(
                "plan reads the source's topics (--since TIME) or an NDJSON file (INPUT): give one",
            ))
        }
    }
    bar.finish_and_clear();
    let report = planned.report();
    write_report(&report, new_path, old_path, format)?;
    Ok(if report.has_changes() {
        ExitCode::from(EXIT_CHANGES)
    } else {
        ExitCode::SUCCESS
    })
}

/// The report on standard output (a closed pipe is no error).
fn write_report(
    report: &ossnotify::plan::Report,
    new_path: &Path,
    old_path: &Path,
    format: ossnotify::plan::Format,
) -> Result<(), CliError> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = ossnotify::plan::write(
        report,
        &new_path.display().to_string(),
        &old_path.display().to_string(),
        format,
        &mut out,
    )
    .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(CliError::Runtime(
            anyhow::Error::new(e).context("writing the plan"),
        )),
        _ => Ok(()),
    }
}
