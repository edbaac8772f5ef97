//! Partition generations this member has given up. Once a revocation's
//! wait is over and its commit made, work still queued for the revoked
//! generations is dropped instead of done: the partition's next owner reads
//! those records again from the committed offset, so doing them here too
//! would only deliver them twice. (Dropping is safe for the same reason:
//! nothing at or past the committed offset counts as done.)
//!
//! Workers and sink drivers look each record up here; a list that changes
//! only on rebalances, read without locks, with the last answer cached
//! (records come in runs of one partition).

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::batch::Coord;
use super::offsets::Generation;

/// Per (topic id, partition): the newest generation given up. Every
/// generation at or below it is gone (generations only grow).
#[derive(Default)]
pub struct Revoked {
    list: ArcSwap<Vec<(u32, i32, Generation)>>,
    writer: Mutex<()>,
}

impl Revoked {
    /// Gives up these (topic id, partition, generation).
    pub fn add(&self, parts: &[(u32, i32, Generation)]) {
        if parts.is_empty() {
            return;
        }
        let _one_writer = self.writer.lock().expect("not poisoned");
        let mut next = (**self.list.load()).clone();
        for &(t, p, g) in parts {
            match next.iter_mut().find(|(nt, np, _)| (*nt, *np) == (t, p)) {
                Some(e) => e.2 = e.2.max(g),
                None => next.push((t, p, g)),
            }
        }
        self.list.store(Arc::new(next));
    }

    /// A reader's view, current as of now.
    pub fn view(&self) -> RevokedView {
        RevokedView {
            list: self.list.load_full(),
            last: None,
        }
    }
}

/// A snapshot of [`Revoked`] for one batch of work.
pub struct RevokedView {
    list: Arc<Vec<(u32, i32, Generation)>>,
    last: Option<((u32, i32, Generation), bool)>,
}

impl RevokedView {
    /// Whether `c`'s generation was given up.
    pub fn contains(&mut self, c: &Coord) -> bool {
        if self.list.is_empty() {
            return false;
        }
        let key = (c.topic, c.partition, c.epoch);
        if let Some((k, v)) = self.last {
            if k == key {
                return v;
            }
        }
        let v = self
            .list
            .iter()
            .any(|(t, p, g)| (*t, *p) == (c.topic, c.partition) && c.epoch <= *g);
        self.last = Some((key, v));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(partition: i32, epoch: Generation) -> Coord {
        Coord {
            topic: 0,
            partition,
            epoch,
            offset: 0,
        }
    }

    #[test]
    fn generations_up_to_the_revoked_one_are_gone() {
        let r = Revoked::default();
        let mut before = r.view();
        r.add(&[(0, 1, 3)]);
        assert!(!before.contains(&c(1, 3)), "a view is a snapshot");
        let mut v = r.view();
        assert!(v.contains(&c(1, 3)));
        assert!(v.contains(&c(1, 2)));
        assert!(!v.contains(&c(1, 4)), "assigned again since");
        assert!(!v.contains(&c(2, 3)), "another partition");
        r.add(&[(0, 1, 5)]);
        assert!(r.view().contains(&c(1, 4)));
    }
}
