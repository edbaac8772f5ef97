//! Hot reload of the rules: on SIGHUP, or when the config file's
//! modification time changes, the config is loaded and validated again, a
//! new index is compiled off the hot path and swapped in atomically (workers
//! pick it up at their next batch). A config that fails validation is
//! refused and logged; the running rules stay. Sinks are not rebuilt yet: a
//! reload that changes the set of sinks is refused too (rules address sinks
//! by position).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config;
use crate::rules::{RuleIndex, SharedIndex};

/// Reload outcomes so far.
#[derive(Debug, Default)]
pub struct ReloadCounters {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
}

/// Watches for reload triggers until `stop`.
pub fn watch(
    path: PathBuf,
    sink_names: Vec<String>,
    index: SharedIndex,
    stop: Arc<AtomicBool>,
    counters: Arc<ReloadCounters>,
) -> std::thread::JoinHandle<()> {
    let hup = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    {
        let hup = hup.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(mut sig) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                else {
                    return;
                };
                while !stop.load(Ordering::SeqCst) {
                    if tokio::time::timeout(Duration::from_millis(500), sig.recv())
                        .await
                        .is_ok()
                    {
                        hup.store(true, Ordering::SeqCst);
                    }
                }
            });
        });
    }
    std::thread::spawn(move || {
        let mtime = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut seen: Option<SystemTime> = mtime(&path);
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(250));
            let now = mtime(&path);
            let changed = now != seen;
            if !(changed || hup.swap(false, Ordering::SeqCst)) {
                continue;
            }
            seen = now;
            match load(&path, &sink_names) {
                Ok(new) => {
                    let n = new.rules().len();
                    index.swap(new);
                    counters.succeeded.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(rules = n, config = %path.display(), "reloaded");
                }
                Err(why) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(config = %path.display(), "reload refused, the running rules stay: {why}");
                }
            }
        }
    })
}

fn load(path: &std::path::Path, sink_names: &[String]) -> Result<RuleIndex, String> {
    let loaded = config::load(path).map_err(|diags| {
        diags
            .iter()
            .filter(|d| d.severity == config::Severity::Error)
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let names: Vec<String> = loaded.config.sinks.iter().map(|s| s.name.clone()).collect();
    if names != sink_names {
        return Err(format!(
            "the sinks changed ({} → {}); changing sinks needs a restart for now",
            sink_names.join(","),
            names.join(",")
        ));
    }
    Ok(RuleIndex::build(
        loaded.config.rules.clone(),
        loaded.config.region_policy(),
    ))
}
