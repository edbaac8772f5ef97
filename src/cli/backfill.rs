//! `ossnotify backfill`: a new rule's notifications for past records.

use std::path::Path;
use std::process::ExitCode;

use super::run::{cut_short, run_failed};
use super::{invalid, load_for_run, progress_bar, signals, CliError, IntoCliError};

pub(super) fn backfill(
    config_path: &Path,
    req: &ossnotify::backfill::Request,
) -> Result<ExitCode, CliError> {
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
    let read = p.window.read.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let (bar, done) = (bar.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                bar.set_position(read.load(std::sync::atomic::Ordering::Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
    };
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
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = ticker.join();
    bar.finish_and_clear();
    let s = match ran {
        Ok(s) => s,
        Err(e) => return Err(run_failed(e)),
    };
    if signals.cut() {
        return Err(cut_short());
    }
    let rules: Vec<&str> = p.config.rules.iter().map(|r| r.id.as_str()).collect();
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
        p.name,
        s.records,
        ossnotify::oplog::time::utc(req.since_ms),
        s.messages,
        rules.join(", "),
        per_sink.join("; ")
    );
    if signals.stopped() {
        eprintln!(
            "backfill {}: stopped; the same command resumes it where it stopped",
            p.name
        );
    }
    Ok(ExitCode::SUCCESS)
}
