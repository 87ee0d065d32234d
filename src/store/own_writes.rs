//! The ids this instance inserted, noted between each INSERT and its COMMIT, so the binlog
//! follower can tell this instance's own rows (already indexed, their recipients already woken)
//! from other writers' and wake the watcher only for the latter. Without it, every send would
//! cost a watcher query in push mode: under 64 closed-loop senders that was ~940 queries/s and
//! a fifth of the send rate.
//!
//! Noted before the COMMIT because the binlog is written at the COMMIT: the follower may see a
//! row before its writer hears the COMMIT's answer, never before the INSERT's. An id noted for a
//! transaction that then failed never shows up in the binlog and ages out.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// Ids remembered at most; the oldest are forgotten first (a forgotten own row costs one tick).
const CAPACITY: usize = 65_536;

/// Ids inserted by this instance whose binlog event has not been seen yet.
#[derive(Debug, Default)]
pub struct OwnWrites {
    /// Whether a follower reads the binlog at all: in watcher mode nobody takes the ids, so
    /// sends do not note them.
    active: AtomicBool,
    inner: Mutex<Ids>,
}

#[derive(Debug, Default)]
struct Ids {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl OwnWrites {
    /// From now on, sends note their ids: a binlog follower runs.
    pub fn activate(&self) {
        self.active.store(true, Ordering::Relaxed);
    }

    /// Notes ids this instance is about to commit, when a follower will look for them.
    pub fn note(&self, ids: impl IntoIterator<Item = u64>) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        let mut inner = self.lock();
        for mid in ids {
            if inner.set.insert(mid) {
                inner.order.push_back(mid);
            }
        }
        while inner.order.len() > CAPACITY {
            if let Some(old) = inner.order.pop_front() {
                inner.set.remove(&old);
            }
        }
    }

    /// Whether `mid` was this instance's; it is forgotten either way (each row is written to
    /// the binlog once). The order queue keeps it until it ages out, bounded by [`CAPACITY`].
    pub fn take(&self, mid: u64) -> bool {
        self.lock().set.remove(&mid)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ids> {
        // Single inserts and removes: a panic elsewhere cannot leave the sets inconsistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_noted_while_no_follower_runs() {
        let own = OwnWrites::default();
        own.note([3]);
        assert!(!own.take(3));
        assert!(own.lock().order.is_empty());
    }

    #[test]
    fn an_own_id_is_recognised_once() {
        let own = OwnWrites::default();
        own.activate();
        own.note([3, 4]);
        assert!(own.take(3));
        assert!(!own.take(3), "a row is written to the binlog once");
        assert!(!own.take(5), "another writer's row");
        assert!(own.take(4));
    }

    #[test]
    fn the_oldest_ids_are_forgotten_past_the_capacity() {
        let own = OwnWrites::default();
        own.activate();
        own.note(0..(CAPACITY as u64 + 10));
        assert!(!own.take(0));
        assert!(own.take(CAPACITY as u64 + 9));
        assert!(own.lock().order.len() <= CAPACITY);
    }
}
