//! How a run ends, in this order (each step waits for the one before):
//!
//! 1. **The source stops reading**: its input ended, SIGTERM/SIGINT set
//!    the stop flag, or a component failed (the supervisor set it). Records
//!    it held but had not handed over are dropped: never resolved, so never
//!    committed, and read again after a restart.
//! 2. **The workers drain**: the batch channel closes, each worker finishes
//!    the batches queued for it and ends.
//! 3. **The sinks drain**: reloads stop, the routing is replaced by an
//!    empty one, so every sink queue closes once no worker holds it; each
//!    driver delivers or dead-letters what is queued, acknowledges, and
//!    ends.
//! 4. **The tracker commits a last time**, synchronously and checked
//!    (nothing after a failure), and ends.
//! 5. **The consumer closes** (it leaves the group; its revocation callback
//!    finds the tracker gone and commits nothing more).
//!
//! Steps 2 and 3 are bounded by `[pipeline] drain_timeout_ms`, counted from
//! the stop signal or the failure (a file run that simply reaches the end
//! of its input waits for every message). Past the deadline, step 4 commits
//! what is done and the run returns at once, leaving the stragglers to the
//! process exit: what they had in flight is read again after a restart.
//! The consumer is then never destroyed while a worker may still hold one
//! of its messages. A second signal (`RunOptions::cut_drain`) makes the
//! deadline pass at once.

use std::time::{Duration, Instant};

use super::supervisor::Supervisor;

/// The drain deadline, which starts when the run is told to stop.
pub struct Drain<'s> {
    supervisor: &'s Supervisor,
    timeout: Duration,
    deadline: Option<Instant>,
}

/// How often a drain looks at what it waits for.
const TICK: Duration = Duration::from_millis(5);

impl<'s> Drain<'s> {
    pub fn new(supervisor: &'s Supervisor, timeout: Duration) -> Drain<'s> {
        Drain {
            supervisor,
            timeout,
            deadline: None,
        }
    }

    /// Whether the deadline has passed (starting it if the run has just
    /// been told to stop).
    pub fn expired(&mut self) -> bool {
        if self.supervisor.drain_cut() {
            return true;
        }
        if self.deadline.is_none() && self.supervisor.stopping() {
            self.deadline = Some(Instant::now() + self.timeout);
        }
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Waits until `done` says so, or the deadline passes: true if done.
    pub fn wait(&mut self, mut done: impl FnMut() -> bool) -> bool {
        loop {
            if done() {
                return true;
            }
            if self.expired() {
                return false;
            }
            std::thread::sleep(TICK);
        }
    }

    /// Joins threads as they finish (their failures were reported by their
    /// watch); true if all finished before the deadline.
    pub fn join<T>(&mut self, threads: &mut Vec<std::thread::JoinHandle<T>>) -> bool {
        self.wait(|| {
            let mut i = 0;
            while i < threads.len() {
                if threads[i].is_finished() {
                    let _ = threads.swap_remove(i).join();
                } else {
                    i += 1;
                }
            }
            threads.is_empty()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn the_deadline_counts_from_the_stop_only() {
        let stop = Arc::new(AtomicBool::new(false));
        let sup = Supervisor::new(stop.clone());
        let mut drain = Drain::new(&sup, Duration::from_millis(30));
        let mut threads = vec![std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(60))
        })];
        // Not stopping: it waits as long as it takes.
        assert!(drain.join(&mut threads));
        let mut threads = vec![std::thread::spawn(|| {
            std::thread::sleep(Duration::from_secs(5))
        })];
        sup.fail("worker-0", "test");
        let t = Instant::now();
        assert!(!drain.join(&mut threads));
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
