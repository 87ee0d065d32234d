//! Batching without a timer, for writes that cost a round trip and a commit each whatever their
//! size (sends, claims): requests queue, a few workers take whatever waits when they are free.
//! An idle server handles a lone request at once; under load, the queue that builds while the
//! workers are busy becomes the next batch.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// What a batch does.
pub trait Work: Send + Sync + 'static {
    /// One request.
    type Item: Send + 'static;
    /// Its answer.
    type Outcome: Send + 'static;

    /// Most items in one batch.
    const MAX_ITEMS: usize;
    /// Most total weight in one batch; an item heavier than this goes alone.
    const MAX_WEIGHT: usize;

    /// An item's weight (its bytes, say).
    fn weight(item: &Self::Item) -> usize;

    /// Does the batch; one outcome per item, in order.
    fn run(&self, batch: Vec<Self::Item>) -> impl Future<Output = Vec<Self::Outcome>> + Send;

    /// The answer of an item whose worker died (panicked) before answering.
    fn abandoned(&self) -> Self::Outcome;
}

/// A queue and at most `workers` tasks draining it.
pub struct Batcher<W: Work> {
    work: W,
    workers: usize,
    busy: AtomicUsize,
    queue: Mutex<VecDeque<Queued<W>>>,
}

type Queued<W> = (<W as Work>::Item, oneshot::Sender<<W as Work>::Outcome>);

impl<W: Work> std::fmt::Debug for Batcher<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("workers", &self.workers)
            .field("busy", &self.busy)
            .finish_non_exhaustive()
    }
}

impl<W: Work> Batcher<W> {
    /// Batches `work` with at most `workers` batches in flight.
    pub fn new(work: W, workers: usize) -> Arc<Batcher<W>> {
        Arc::new(Batcher {
            work,
            workers: workers.max(1),
            busy: AtomicUsize::new(0),
            queue: Mutex::new(VecDeque::new()),
        })
    }

    /// Queues `item` and waits for its outcome. The batch goes on if the caller stops waiting.
    pub async fn submit(self: &Arc<Self>, item: W::Item) -> W::Outcome {
        let (answer, answered) = oneshot::channel();
        self.lock().push_back((item, answer));
        self.start_worker();
        match answered.await {
            Ok(outcome) => outcome,
            Err(_) => self.work.abandoned(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Queued<W>>> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a worker unless all are busy (one of them will take the queue).
    fn start_worker(self: &Arc<Self>) {
        let free = self
            .busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |busy| {
                (busy < self.workers).then_some(busy + 1)
            });
        if free.is_ok() {
            tokio::spawn(Arc::clone(self).drain());
        }
    }

    async fn drain(self: Arc<Self>) {
        loop {
            let (items, answers): (Vec<_>, Vec<_>) = self.next_batch().into_iter().unzip();
            if items.is_empty() {
                self.busy.fetch_sub(1, Ordering::AcqRel);
                // An item queued between the empty take and the line above found every worker
                // busy; it must not wait for the next request.
                if !self.lock().is_empty() {
                    self.start_worker();
                }
                return;
            }
            let outcomes = self.work.run(items).await;
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(outcome);
            }
        }
    }

    fn next_batch(&self) -> Vec<Queued<W>> {
        let mut queue = self.lock();
        let mut batch: Vec<Queued<W>> = Vec::new();
        let mut weight = 0;
        while let Some((next, _)) = queue.front() {
            let next = W::weight(next);
            if !batch.is_empty() && (batch.len() == W::MAX_ITEMS || weight + next > W::MAX_WEIGHT) {
                break;
            }
            weight += next;
            batch.extend(queue.pop_front());
        }
        batch
    }
}
