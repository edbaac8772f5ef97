//! Whether the consumer group settles (librdkafka's statistics give the
//! member's join state). A rebalance may take up to `max.poll.interval.ms`,
//! the rebalance timeout a member gives the coordinator; one that outlasts
//! it is stuck (a coordinator waiting for a dead leader's SyncGroup, members
//! joining faster than it completes), and meanwhile nothing is consumed or
//! committed, with no error anywhere. The source says so out loud, again
//! every such interval while it lasts.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct GroupWatch {
    limit: Duration,
    since: Option<Instant>,
    warned: Option<Instant>,
}

impl GroupWatch {
    pub fn new(limit: Duration) -> GroupWatch {
        GroupWatch {
            limit,
            since: None,
            warned: None,
        }
    }

    /// Whether it was said to be stuck and has not settled since.
    pub fn warned(&self) -> bool {
        self.warned.is_some()
    }

    /// The member's join state at `now`: how long the group has been
    /// unsettled, and whether to say so now.
    pub fn observe(&mut self, join_state: &str, now: Instant) -> (Duration, bool) {
        if join_state == "steady" {
            self.since = None;
            self.warned = None;
            return (Duration::ZERO, false);
        }
        let age = now - *self.since.get_or_insert(now);
        let due = age >= self.limit && self.warned.is_none_or(|w| now - w >= self.limit);
        if due {
            self.warned = Some(now);
        }
        (age, due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_per_limit_while_unsettled_and_forgets_once_steady() {
        let mut w = GroupWatch::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(w.observe("wait-join", at(0)), (Duration::ZERO, false));
        assert_eq!(
            w.observe("wait-sync", at(29)),
            (Duration::from_secs(29), false)
        );
        assert_eq!(
            w.observe("wait-join", at(30)),
            (Duration::from_secs(30), true)
        );
        assert!(w.warned());
        assert_eq!(
            w.observe("wait-join", at(45)),
            (Duration::from_secs(45), false)
        );
        assert_eq!(
            w.observe("wait-sync", at(60)),
            (Duration::from_secs(60), true)
        );
        assert_eq!(w.observe("steady", at(61)), (Duration::ZERO, false));
        assert!(!w.warned());
        // A later rebalance is timed afresh.
        assert_eq!(w.observe("wait-join", at(70)), (Duration::ZERO, false));
        assert_eq!(
            w.observe("wait-join", at(99)),
            (Duration::from_secs(29), false)
        );
    }
}
