//! SIGTERM and SIGINT for the commands that run the pipeline (`run`,
//! `backfill`): the first stops the source, and the run drains, commits and
//! ends (exit 0); a second cuts the drain short through the same shutdown
//! (exit 2: what was not committed is read again at the next start). One
//! thread waits for them, with no runtime of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The flags the signals set.
pub struct Stop {
    /// The first signal: stop reading, drain, commit.
    pub stop: Arc<AtomicBool>,
    /// The second: end the drain now.
    pub cut_drain: Arc<AtomicBool>,
}

impl Stop {
    /// Whether a second signal cut the drain short.
    pub fn cut(&self) -> bool {
        self.cut_drain.load(Ordering::SeqCst)
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Starts waiting for SIGTERM and SIGINT.
pub fn on_signals() -> Stop {
    let stop = Stop {
        stop: Arc::default(),
        cut_drain: Arc::default(),
    };
    let (first, second) = (stop.stop.clone(), stop.cut_drain.clone());
    let waiting = Signals::new([SIGTERM, SIGINT]).and_then(|mut signals| {
        std::thread::Builder::new()
            .name("ossnotify-signals".into())
            .spawn(move || {
                let mut received = signals.forever();
                if received.next().is_none() {
                    return;
                }
                tracing::info!(
                    "stopping: draining in-flight messages (a second signal ends the drain at once)"
                );
                first.store(true, Ordering::SeqCst);
                if received.next().is_some() {
                    tracing::warn!("a second signal: ending the drain now; what was not committed is read again at the next start");
                    second.store(true, Ordering::SeqCst);
                }
            })
    });
    if let Err(e) = waiting {
        tracing::warn!(error = %e, "cannot wait for SIGTERM and SIGINT: stop the process with SIGKILL");
    }
    stop
}
