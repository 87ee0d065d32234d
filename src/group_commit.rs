//! Group commit for sends: messages sent together are written by one multi-row INSERT in one
//! transaction ([`Store::insert_messages`]), each still answered on its own.
//!
//! Why: a send's cost is its round trips and its commit, not its bytes; one commit per send over
//! a handful of connections bounded sends at about half of what MariaDB takes directly. There is
//! no timer: a batch is whatever waits when a writer is free, so an idle server writes a lone
//! send at once, and under load the queue that builds while writers are busy becomes the next
//! batch.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::store::{Insert, NewMessage, Store};

/// Writers at once. Few: each batch's commit costs about the same whatever its size, so fewer,
/// larger batches are what raises the rate; and it leaves the pool's other connections to claims.
const WRITERS: usize = 4;
/// Largest batch, in rows and in bytes of values; a message over the byte bound goes alone.
const MAX_ROWS: usize = 256;
const MAX_BYTES: usize = 1 << 20;

/// Queues sends and writes them in batches.
#[derive(Debug)]
pub struct GroupCommit {
    store: Store,
    metrics: Arc<Metrics>,
    queue: Mutex<VecDeque<Queued>>,
    writers: AtomicUsize,
}

#[derive(Debug)]
struct Queued {
    message: NewMessage,
    answer: oneshot::Sender<Insert>,
}

impl GroupCommit {
    /// Batches for `store`.
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Arc<GroupCommit> {
        Arc::new(GroupCommit {
            store,
            metrics,
            queue: Mutex::new(VecDeque::new()),
            writers: AtomicUsize::new(0),
        })
    }

    /// Stores `message` with whatever else is waiting and answers how it ended. The write goes
    /// on if the caller stops waiting, as PHP's did when the client left.
    pub async fn insert(self: &Arc<Self>, message: NewMessage) -> Insert {
        let (answer, answered) = oneshot::channel();
        self.lock().push_back(Queued { message, answer });
        self.start_writer();
        answered.await.unwrap_or_else(|_| {
            // Only if a writer panicked mid-batch.
            Insert::NotStored(crate::Error::ClaimAbandoned)
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a writer unless [`WRITERS`] are busy (one of them will take the queue).
    fn start_writer(self: &Arc<Self>) {
        let free = self
            .writers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |busy| {
                (busy < WRITERS).then_some(busy + 1)
            });
        if free.is_ok() {
            tokio::spawn(Arc::clone(self).write());
        }
    }

    /// Writes batches until the queue is empty.
    async fn write(self: Arc<Self>) {
        loop {
            let batch = self.next_batch();
            if batch.is_empty() {
                self.writers.fetch_sub(1, Ordering::AcqRel);
                // A send queued between the empty take and the line above found every writer
                // busy; it must not wait for the next send to be written.
                if self.lock().is_empty() {
                    return;
                }
                self.start_writer();
                return;
            }
            let (messages, answers): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|queued| (queued.message, queued.answer))
                .unzip();
            let written = self.store.insert_messages(&messages).await;
            self.metrics.insert_commits(written.commits);
            for (answer, outcome) in answers.into_iter().zip(written.outcomes) {
                let _ = answer.send(outcome);
            }
        }
    }

    fn next_batch(&self) -> Vec<Queued> {
        let mut queue = self.lock();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(next) = queue.front() {
            let size = next.message.recipient.len()
                + next.message.sender.len()
                + next.message.content.len();
            if !batch.is_empty() && (batch.len() == MAX_ROWS || bytes + size > MAX_BYTES) {
                break;
            }
            bytes += size;
            batch.extend(queue.pop_front());
        }
        batch
    }
}
