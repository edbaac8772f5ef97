//! `ossnotify backfill`: a new rule's notifications for past records.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::args::BackfillArgs;
use super::run::{cut_short, run_failed};
use super::{invalid, load_for_run, progress_bar, signals, CliError, IntoCliError};

/// `ossnotify backfill`: the request from its arguments, then the run.
pub(super) fn run(a: BackfillArgs) -> Result<ExitCode, CliError> {
    let time = |flag: &'static str, t: &str| {
        ossnotify::dead_letter_admin::parse_time(t)
            .map(|t| t as i64)
            .invalid(flag)
    };
    let req = ossnotify::backfill::Request {
        rules: a.rules,
        since_ms: time("--since", &a.since)?,
        until_ms: a.until.as_deref().map(|u| time("--until", u)).transpose()?,
        max_rate: a.max_rate,
        name: a.name,
        restart: a.restart,
        metrics_listen: a.metrics_listen,
    };
    backfill(&a.config, &req)
}

fn backfill(config_path: &Path, req: &ossnotify::backfill::Request) -> Result<ExitCode, CliError> {
    let config = load_for_run(config_path)?;
    let p = match ossnotify::backfill::prepare(config, req) {
        Ok(p) => p,
        Err(e @ ossnotify::backfill::BackfillError::Kafka(_)) => return Err(e).failed(),
        Err(e) => return Err(invalid(e)),
    };
    eprintln!(
        "backfill {}: up to {} records to read (group {}{})",
        p.name,
        p.total,
        p.group,
        if p.resumed > 0 {
            format!("; resumed on {} partitions", p.resumed)
        } else {
            String::new()
        }
    );
    let bar = progress_bar(p.total);
    let ticker = Ticker::start(bar.clone(), p.window.read.clone());
    let signals = signals::on_signals();
    let options = ossnotify::pipeline::RunOptions {
        reload: false,
        redeliver: false,
        cut_drain: signals.cut_drain.clone(),
        ..Default::default()
    };
    let ran = ossnotify::pipeline::run_with(
        &p.config,
        ossnotify::pipeline::Input::Window(p.window),
        signals.stop.clone(),
        options,
    );
    ticker.stop();
    bar.finish_and_clear();
    let s = match ran {
        Ok(s) => s,
        Err(e) => return Err(run_failed(e)),
    };
    if signals.cut() {
        return Err(cut_short());
    }
    say_done(&p.name, &p.config, &s, req);
    if signals.stopped() {
        eprintln!(
            "backfill {}: stopped; the same command resumes it where it stopped",
            p.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Moves the bar to the records read, five times a second, until stopped.
struct Ticker {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Ticker {
    fn start(bar: indicatif::ProgressBar, read: Arc<AtomicU64>) -> Ticker {
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                bar.set_position(read.load(Ordering::Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
        Ticker { done, thread }
    }

    fn stop(self) {
        self.done.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// The closing summary: records read, the window, messages per sink.
fn say_done(
    name: &str,
    config: &ossnotify::config::Config,
    s: &ossnotify::pipeline::RunSummary,
    req: &ossnotify::backfill::Request,
) {
    let rules: Vec<&str> = config.rules.iter().map(|r| r.id.as_str()).collect();
    let per_sink: Vec<String> = s
        .sinks
        .iter()
        .map(|(name, delivered, dead, kept)| {
            format!(
                "{name}: {delivered} delivered, {dead} dead-lettered, {kept} kept in its backlog"
            )
        })
        .collect();
    let until = req
        .until_ms
        .map(|u| format!(" and before {}", ossnotify::oplog::time::utc(u)))
        .unwrap_or_default();
    eprintln!(
        "backfill {}: {} records read (operation times from {}{until}, up to where the live group had read); {} messages of rules {}: {}",
        name,
        s.records,
        ossnotify::oplog::time::utc(req.since_ms),
        s.messages,
        rules.join(", "),
        per_sink.join("; ")
    );
}
