//! `ossnotify run`: the daemon (or a file or stdin run to its end).

use std::io::{self, BufReader};
use std::path::Path;
use std::process::ExitCode;

use super::{invalid, load_for_run, signals, CliError, IntoCliError};

pub(super) fn run(config_path: &Path, check_sinks: bool) -> Result<ExitCode, CliError> {
    use ossnotify::config::SourceType;
    use ossnotify::pipeline::Input;
    let config = load_for_run(config_path)?;
    let input = match config.source.kind {
        SourceType::Stdin => Input::Lines(
            BufReader::new(Box::new(io::stdin()) as Box<dyn io::Read + Send>),
            "<stdin>".into(),
        ),
        SourceType::File => {
            let path = config.source.path.clone().unwrap_or_default();
            let f =
                std::fs::File::open(&path).invalid(format!("cannot read {}", path.display()))?;
            Input::Lines(
                BufReader::with_capacity(1 << 16, Box::new(f) as Box<dyn io::Read + Send>),
                path.display().to_string(),
            )
        }
        SourceType::Kafka => Input::Kafka,
    };
    let signals = signals::on_signals();
    let options = ossnotify::pipeline::RunOptions {
        check_sinks,
        cut_drain: signals.cut_drain.clone(),
        ..Default::default()
    };
    let s = match ossnotify::pipeline::run_with(&config, input, signals.stop.clone(), options) {
        Ok(s) => s,
        Err(e) => return Err(run_failed(e)),
    };
    if signals.cut() {
        return Err(cut_short());
    }
    if !s.drained {
        eprintln!("run: the drain deadline cut the drain short; what was in flight is read again at the next start");
    }
    eprintln!(
        "run: {} records ({} invalid, {} skipped, {} without a matching rule); {} messages: {} delivered ({} of them from a backlog), {} dead-lettered",
        s.records,
        s.invalid,
        s.skipped,
        s.unmatched,
        s.messages,
        s.delivered,
        s.redelivered,
        s.dead_lettered
    );
    if s.backlogged > 0 || s.still_backlogged > 0 {
        eprintln!(
            "run: {} kept in sink backlogs while their sinks failed; {} still there, sent again by the next run",
            s.backlogged, s.still_backlogged
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A run that failed: a destination that refused its probe is a config to
/// fix (exit 1); anything else failed while running (exit 2).
pub(super) fn run_failed(e: ossnotify::pipeline::RunError) -> CliError {
    use ossnotify::pipeline::{PipelineError, RunError};
    match e {
        e @ RunError::Routing(PipelineError::SinkRefused { .. }) => invalid(e),
        e => CliError::Runtime(anyhow::Error::new(e)),
    }
}

/// A second signal ended the drain (exit 2).
pub(super) fn cut_short() -> CliError {
    CliError::Runtime(anyhow::anyhow!(
        "a second signal: exiting without draining; uncommitted records are read again at the next start"
    ))
}
