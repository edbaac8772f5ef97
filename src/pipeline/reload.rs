//! Hot reload: on SIGHUP, or when the config file's modification time
//! changes, the config is loaded and validated again and handed to the
//! runtime, which compiles the new rules, builds new or changed sinks off
//! the hot path and swaps both in atomically (workers pick them up at their
//! next batch). A config that fails validation, or whose sinks cannot be
//! built, is refused, logged and counted; the running rules and sinks stay.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_channel::RecvTimeoutError;

use crate::config::{self, Config};

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new config does not validate: its errors, located.
    #[error("{0}")]
    Invalid(String),
    /// Its sinks cannot be built or their backlogs opened.
    #[error(transparent)]
    Apply(#[from] super::PipelineError),
}

/// Reload outcomes so far.
#[derive(Debug, Default)]
pub struct ReloadCounters {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
}

/// The watcher's thread, stopped (at once, not at its next look) by
/// [`Watcher::stop`].
pub struct Watcher {
    stop: crossbeam_channel::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Watcher {
    pub fn stop(self) {
        // Dropping the sender wakes the thread from its wait.
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// Watches for reload triggers until stopped.
/// `apply` puts a loaded, valid config into effect (or says why not).
pub fn watch(
    path: PathBuf,
    apply: impl Fn(&Config) -> Result<(), super::PipelineError> + Send + 'static,
    counters: Arc<ReloadCounters>,
) -> Watcher {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    // SIGHUP sets `hup` (signal-hook: a flag, no thread or runtime of its
    // own); the watcher below looks at it with the file's time.
    let hup = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    let registered = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(|e| tracing::warn!(error = %e, "cannot watch for SIGHUP: reloads follow the config file's changes only"))
        .ok();
    let thread = std::thread::spawn(move || {
        let mtime = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut seen: Option<SystemTime> = mtime(&path);
        // Every 250 ms a look at the file and the SIGHUP flag; a stop ends
        // the wait at once (a file job's run must not outlast its input by
        // up to a quarter second).
        while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(Duration::from_millis(250))
        {
            let now = mtime(&path);
            let changed = now != seen;
            if !(changed || hup.swap(false, Ordering::SeqCst)) {
                continue;
            }
            seen = now;
            let reloaded = load(&path).and_then(|new| {
                apply(&new)
                    .map(|()| new.rules.len())
                    .map_err(ReloadError::from)
            });
            match reloaded {
                Ok(n) => {
                    counters.succeeded.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(rules = n, config = %path.display(), "reloaded");
                }
                Err(why) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(config = %path.display(), "reload refused, the running rules and sinks stay: {why}");
                }
            }
        }
        #[cfg(unix)]
        if let Some(id) = registered {
            signal_hook::low_level::unregister(id);
        }
    });
    Watcher { stop, thread }
}

fn load(path: &std::path::Path) -> Result<Config, ReloadError> {
    config::load(path)
        .map(|loaded| loaded.config)
        .map_err(|diags| {
            ReloadError::Invalid(
                diags
                    .iter()
                    .filter(|d| d.severity == config::Severity::Error)
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
}
