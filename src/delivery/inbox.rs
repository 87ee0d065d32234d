//! The unread index: which unread rows exist for whom, by primary key, kept in memory so that a
//! claim is a primary-key lookup and a waiting client with nothing unread costs no query at all.
//!
//! The operator's table has no index on `rec` or `isread`, and legacy tables are never purged:
//! asking MySQL "the oldest unread row for X" scans the whole table, once per waiting client per
//! wake-up. Instead the table is scanned once at start-up (and again, rarely, as a safety net:
//! see the watcher), and every row written since is learnt from the watcher or from our own
//! inserts. The index may hold stale entries (a row another instance or the legacy already
//! claimed); a claim finds those out by primary key and drops them. It never misses an unread
//! row for longer than the watcher takes to see it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::collation::Collation;

/// Unread row ids by recipient key ([`Collation::key`]).
#[derive(Debug, Default)]
pub struct Inbox {
    // A std Mutex: never held across an .await; every critical section is a few map operations.
    inner: Mutex<Inner>,
    collation: Arc<Collation>,
    /// Every row with an id up to this one is known to the index (the watcher has read the
    /// table up to it); a claim of a row above it first lets the watcher catch up.
    known: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    unread: HashMap<Vec<u8>, BTreeSet<u64>>,
    /// Rows a claim on this instance is working on, so a second local waiter tries the next.
    claiming: HashSet<u64>,
    /// Rows added while a rescan runs, kept beside the scan's result when it is swapped in.
    added_during_rescan: Option<Vec<(u64, Vec<u8>)>>,
}

impl Inbox {
    /// An empty index keying recipients by `collation`.
    pub fn new(collation: Arc<Collation>) -> Inbox {
        Inbox {
            inner: Mutex::default(),
            collation,
            known: watch::Sender::new(0),
        }
    }

    /// Records an unread row for `recipient`.
    pub fn add(&self, mid: u64, recipient: &[u8]) {
        let key = self.collation.key(recipient);
        let mut inner = self.lock();
        if let Some(added) = inner.added_during_rescan.as_mut() {
            added.push((mid, key.clone()));
        }
        inner.unread.entry(key).or_default().insert(mid);
    }

    /// The oldest unread rows for `recipient` that no local claim is working on, at most `most`,
    /// now marked as being claimed. Pair with [`Inbox::claimed`] or [`Inbox::unclaimed`].
    pub fn next_to_claim(&self, recipient: &[u8], most: usize) -> Vec<u64> {
        let key = self.collation.key(recipient);
        let mut inner = self.lock();
        let Inner {
            unread, claiming, ..
        } = &mut *inner;
        let Some(mids) = unread.get(&key) else {
            return Vec::new();
        };
        let mids: Vec<u64> = mids
            .iter()
            .copied()
            .filter(|mid| !claiming.contains(mid))
            .take(most)
            .collect();
        claiming.extend(mids.iter().copied());
        mids
    }

    /// The row is read (claimed here or elsewhere): forget it.
    pub fn claimed(&self, mid: u64, recipient: &[u8]) {
        let key = self.collation.key(recipient);
        let mut inner = self.lock();
        inner.claiming.remove(&mid);
        if let Some(mids) = inner.unread.get_mut(&key) {
            mids.remove(&mid);
            if mids.is_empty() {
                inner.unread.remove(&key);
            }
        }
    }

    /// The claim did not happen; the row stays unread and claimable.
    pub fn unclaimed(&self, mids: &[u64]) {
        let mut inner = self.lock();
        for mid in mids {
            inner.claiming.remove(mid);
        }
    }

    /// Whether anything unread is known for `recipient`.
    #[cfg(test)]
    pub fn has_unread(&self, recipient: &[u8]) -> bool {
        self.lock()
            .unread
            .contains_key(&self.collation.key(recipient))
    }

    /// How many unread rows are known.
    pub fn unread_count(&self) -> usize {
        self.lock().unread.values().map(BTreeSet::len).sum()
    }

    /// Starts a rescan: rows added from now on survive the swap in [`Inbox::finish_rescan`].
    pub fn begin_rescan(&self) {
        self.lock().added_during_rescan = Some(Vec::new());
    }

    /// Replaces the index with a full scan's result (plus rows added meanwhile); returns the
    /// recipients that gained a row the index did not know, who may be waiting for it.
    pub fn finish_rescan(&self, scanned: Vec<(u64, Vec<u8>)>) -> Vec<Vec<u8>> {
        let mut fresh: HashMap<Vec<u8>, BTreeSet<u64>> = HashMap::new();
        // One recipient as the table spells it per key, to wake: keys are not recipients.
        let mut names: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for (mid, recipient) in scanned {
            let key = self.collation.key(&recipient);
            fresh.entry(key.clone()).or_default().insert(mid);
            names.entry(key).or_insert(recipient);
        }
        let mut inner = self.lock();
        for (mid, key) in inner.added_during_rescan.take().unwrap_or_default() {
            fresh.entry(key).or_default().insert(mid);
        }
        let gained = fresh
            .iter()
            .filter(|(key, mids)| {
                inner
                    .unread
                    .get(*key)
                    .is_none_or(|known| !mids.is_subset(known))
            })
            // A key only rows added meanwhile have was woken by whoever added them.
            .filter_map(|(key, _)| names.remove(key))
            .collect();
        inner.unread = fresh;
        gained
    }

    /// The watcher has read every committed row with an id up to `mid` (it may go down: a
    /// truncated table starts again).
    pub fn known_up_to(&self, mid: u64) {
        self.known.send_replace(mid);
    }

    /// Whether every row below `mid` is known: if not, another writer's older row for the same
    /// recipient may exist that the watcher has not read yet.
    pub fn knows_below(&self, mid: u64) -> bool {
        *self.known.borrow() + 1 >= mid
    }

    /// Waits, at most `limit`, until every row below `mid` is known.
    pub async fn wait_known_below(&self, mid: u64, limit: Duration) {
        let mut known = self.known.subscribe();
        let _ = tokio::time::timeout(limit, known.wait_for(|&known| known + 1 >= mid)).await;
    }

    /// Abandons a rescan that failed.
    pub fn cancel_rescan(&self) {
        self.lock().added_during_rescan = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent, so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_first_and_each_row_to_one_local_claimant() {
        let inbox = Inbox::default();
        inbox.add(7, b"bob");
        inbox.add(3, b"Bob ");
        assert_eq!(inbox.next_to_claim(b"bob", 1), vec![3]);
        assert_eq!(
            inbox.next_to_claim(b"BOB", 5),
            vec![7],
            "3 is being claimed"
        );
        assert!(inbox.next_to_claim(b"bob", 1).is_empty());
        inbox.unclaimed(&[3, 7]);
        assert_eq!(inbox.next_to_claim(b"bob", 5), vec![3, 7], "oldest first");
        inbox.claimed(3, b"bob");
        inbox.claimed(7, b"bob");
        assert!(!inbox.has_unread(b"bob"));
        assert_eq!(inbox.unread_count(), 0);
    }

    #[test]
    fn a_rescan_keeps_rows_added_meanwhile_and_names_who_gained() {
        let inbox = Inbox::default();
        inbox.add(1, b"stale");
        inbox.add(2, b"kept");
        inbox.begin_rescan();
        inbox.add(9, b"new");
        let gained = inbox.finish_rescan(vec![(2, b"kept".to_vec()), (5, b"late".to_vec())]);
        assert_eq!(gained, vec![b"late".to_vec()]);
        assert!(!inbox.has_unread(b"stale"));
        assert!(inbox.has_unread(b"new"));
        assert_eq!(inbox.unread_count(), 3);
    }
}
