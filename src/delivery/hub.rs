//! The wake-up hub: where waiting requests park, keyed by recipient, until a message for them may
//! exist. It carries no messages (MySQL does); it only says "look again".
//!
//! A waiter subscribes *before* it queries MySQL, so a message written between its query and its
//! wait still wakes it: a fresh `watch::Receiver` has the current value marked seen, and any later
//! `send_modify` makes `changed()` ready.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::watch;

use crate::store::collation::Collation;

/// Recipients with parked waiters, keyed as the unread index keys them.
#[derive(Debug, Default)]
pub struct Hub {
    // A std Mutex: it is never held across an .await, and every critical section is a map lookup.
    waiters: Mutex<HashMap<Vec<u8>, watch::Sender<u64>>>,
    watching: AtomicBool,
    /// When the watcher last finished a pass over the table (its lag, for the metrics).
    last_pass: Mutex<Option<Instant>>,
    /// How recipients are keyed, shared with the unread index and the limits.
    collation: Arc<Collation>,
}

/// A parked waiter's ticket. Dropping it removes the recipient's entry once nobody else waits.
#[derive(Debug)]
pub(crate) struct Subscription {
    hub: Arc<Hub>,
    key: Vec<u8>,
    receiver: watch::Receiver<u64>,
}

impl Hub {
    /// A new, empty hub.
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// Parks interest in `recipient`: the returned subscription wakes on the next notify.
    pub(crate) fn subscribe(self: &Arc<Self>, recipient: &[u8]) -> Subscription {
        let key = self.collation.key(recipient);
        let receiver = self
            .lock()
            .entry(key.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Subscription {
            hub: Arc::clone(self),
            key,
            receiver,
        }
    }

    /// How recipients are keyed: the unread index and the limits key them the same way.
    pub(crate) fn collation(&self) -> Arc<Collation> {
        Arc::clone(&self.collation)
    }

    /// Wakes everyone waiting for `recipient`. A no-op when nobody waits.
    pub(crate) fn notify(&self, recipient: &[u8]) {
        if let Some(sender) = self.lock().get(&self.collation.key(recipient)) {
            sender.send_modify(|generation| *generation += 1);
        }
    }

    /// Wakes every waiter (a truncated table: whatever they knew is void).
    pub(crate) fn notify_all(&self) {
        for sender in self.lock().values() {
            sender.send_modify(|generation| *generation += 1);
        }
    }

    /// How many requests wait for `recipient` right now.
    pub fn waiter_count(&self, recipient: &[u8]) -> usize {
        self.lock()
            .get(&self.collation.key(recipient))
            .map_or(0, |sender| sender.receiver_count())
    }

    /// How many requests wait, for anyone.
    pub fn waiting(&self) -> usize {
        self.lock()
            .values()
            .map(watch::Sender::receiver_count)
            .sum()
    }

    /// How many recipients have at least one waiter.
    #[cfg(test)]
    pub(crate) fn recipient_count(&self) -> usize {
        self.lock().len()
    }

    /// Records that the watcher has taken its starting mark, so rows from other writers are
    /// noticed from now on.
    pub(crate) fn mark_watching(&self) {
        self.watching.store(true, Ordering::SeqCst);
    }

    /// Records that the watcher finished a pass over the table just now.
    pub fn mark_pass(&self) {
        *self
            .last_pass
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// When the watcher last finished a pass, if it ever did.
    pub fn last_pass(&self) -> Option<Instant> {
        *self
            .last_pass
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the watcher is running (readiness, and tests that need it).
    pub fn is_watching(&self) -> bool {
        self.watching.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Vec<u8>, watch::Sender<u64>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Subscription {
    /// Waits for the next notify for this recipient.
    pub(crate) async fn changed(&mut self) {
        // The hub keeps the sender while any receiver exists, so this cannot see a closed channel.
        let _ = self.receiver.changed().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut waiters = self.hub.lock();
        // Our own receiver is still alive here, so a count of one means we are the last.
        if waiters
            .get(&self.key)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            waiters.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    #[tokio::test]
    async fn notify_after_subscribe_wakes_the_waiter() {
        let hub = Hub::new();
        let mut sub = hub.subscribe(b"admin123");
        hub.notify(b"ADMIN123 ");
        timeout(Duration::from_secs(1), sub.changed())
            .await
            .expect("woken");
    }

    #[tokio::test]
    async fn other_recipients_do_not_wake() {
        let hub = Hub::new();
        let mut sub = hub.subscribe(b"admin123");
        hub.notify(b"admin456");
        assert!(timeout(Duration::from_millis(50), sub.changed())
            .await
            .is_err());
    }

    #[test]
    fn entries_are_removed_with_the_last_waiter() {
        let hub = Hub::new();
        let first = hub.subscribe(b"a");
        let second = hub.subscribe(b"a");
        assert_eq!(hub.waiter_count(b"a"), 2);
        drop(first);
        assert_eq!(hub.waiter_count(b"a"), 1);
        drop(second);
        assert_eq!(hub.recipient_count(), 0);
    }

    #[tokio::test]
    async fn notify_all_wakes_everyone() {
        let hub = Hub::new();
        let mut a = hub.subscribe(b"a");
        let mut b = hub.subscribe(b"b");
        hub.notify_all();
        timeout(Duration::from_secs(1), a.changed())
            .await
            .expect("a woken");
        timeout(Duration::from_secs(1), b.changed())
            .await
            .expect("b woken");
    }
}
