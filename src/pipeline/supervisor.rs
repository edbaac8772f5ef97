//! Supervision: every pipeline thread and sink driver reports here when it
//! ends abnormally (an error it returns, or a panic, caught by a [`Watch`]
//! guard). The first failure wins: it is logged once, `/health` turns
//! unhealthy, the offset tracker commits nothing more, and the source stops,
//! so the shutdown (see `shutdown`) drains what it can and `run` returns the
//! failure for the binary to exit 2 with. Nothing goes on silently without
//! committing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Why the pipeline stopped on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{component} failed: {reason}")]
pub struct Failure {
    /// The thread or task: `worker-1`, `offset tracker`, `sink mns`, …
    pub component: String,
    pub reason: String,
}

/// Shared by every component of one run.
#[derive(Debug)]
pub struct Supervisor {
    failure: OnceLock<Failure>,
    /// The source's stop flag (also set by SIGTERM/SIGINT).
    stop: Arc<AtomicBool>,
    /// Set: the drain is cut short (a second signal).
    cut_drain: Arc<AtomicBool>,
}

impl Supervisor {
    pub fn new(stop: Arc<AtomicBool>) -> Arc<Supervisor> {
        Self::with_cut_drain(stop, Arc::default())
    }

    /// A supervisor whose drain ends as soon as `cut_drain` is set.
    pub fn with_cut_drain(stop: Arc<AtomicBool>, cut_drain: Arc<AtomicBool>) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            failure: OnceLock::new(),
            stop,
            cut_drain,
        })
    }

    /// Whether the drain is to end now, done or not.
    pub fn drain_cut(&self) -> bool {
        self.cut_drain.load(Ordering::SeqCst)
    }

    /// `component` cannot go on: stop everything. Later failures (often
    /// consequences of the first) are logged at a lower level.
    pub fn fail(&self, component: &str, reason: impl std::fmt::Display) {
        let failure = Failure {
            component: component.to_owned(),
            reason: reason.to_string(),
        };
        if self.failure.set(failure.clone()).is_ok() {
            tracing::error!(component, reason = %failure.reason, "a pipeline component failed: stopping; nothing more is committed");
        } else {
            tracing::debug!(component, reason = %failure.reason, "another component failed after the first");
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The first failure, if any.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.get()
    }

    pub fn failed(&self) -> bool {
        self.failure.get().is_some()
    }

    /// Whether the source should stop (a signal, or a failure).
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    /// A guard for a thread's body: if the thread unwinds (panics) while it
    /// is alive, the panic is reported as `component`'s failure.
    pub fn watch(self: &Arc<Self>, component: impl Into<String>) -> Watch {
        Watch {
            supervisor: self.clone(),
            component: component.into(),
        }
    }

    /// Runs `body` as `component`: an error it returns, or a panic, is
    /// reported; the result is passed on.
    pub fn run<T, E: std::fmt::Display>(
        self: &Arc<Self>,
        component: &str,
        body: impl FnOnce() -> Result<T, E>,
    ) -> Option<T> {
        let _watch = self.watch(component);
        match body() {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(component, e);
                None
            }
        }
    }
}

/// Reports a panic of the thread that holds it (see [`Supervisor::watch`]).
pub struct Watch {
    supervisor: Arc<Supervisor>,
    component: String,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.supervisor
                .fail(&self.component, "panicked (see the log above)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_wins_and_stops_the_source() {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Supervisor::new(stop.clone());
        assert!(!s.failed());
        assert_eq!(
            s.run("worker-0", || Err::<(), _>(
                "cannot write the dead-letter store"
            )),
            None
        );
        s.fail("sink a", "later");
        assert!(stop.load(Ordering::SeqCst));
        assert_eq!(
            s.failure().unwrap().to_string(),
            "worker-0 failed: cannot write the dead-letter store"
        );
    }

    #[test]
    fn a_panicking_thread_is_reported() {
        let s = Supervisor::new(Arc::new(AtomicBool::new(false)));
        let t = {
            let s = s.clone();
            std::thread::spawn(move || {
                let _w = s.watch("offset tracker");
                panic!("boom");
            })
        };
        assert!(t.join().is_err());
        assert_eq!(
            s.failure().map(|f| f.component.as_str()),
            Some("offset tracker")
        );
        assert!(s.stopping());
    }
}
