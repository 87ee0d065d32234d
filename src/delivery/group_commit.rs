//! Group commit for sends: messages sent together are written by one multi-row INSERT in one
//! transaction ([`Store::insert_messages`]), each still answered on its own.
//!
//! Why: a send's cost is its round trips and its commit, not its bytes; one commit per send over
//! a handful of connections bounded sends at about half of what MariaDB takes directly.
//! Batches form without a timer ([`crate::delivery::batching`]).

use std::sync::Arc;

use crate::delivery::batching::{Batcher, Work};
use crate::metrics::Metrics;
use crate::store::{Insert, NewMessage, Store};

/// Batches in flight at once. Few: each batch's commit costs about the same whatever its size,
/// so fewer, larger batches are what raises the rate; and it leaves the pool's other connections
/// to claims.
const WRITERS: usize = 4;

/// The sends' batcher.
pub type GroupCommit = Batcher<Sends>;

/// Writes batches of sends.
#[derive(Debug)]
pub struct Sends {
    store: Store,
    metrics: Arc<Metrics>,
}

/// Batches sends for `store`, counting commits in `metrics`.
pub fn group_commit(store: Store, metrics: Arc<Metrics>) -> Arc<GroupCommit> {
    Batcher::new(Sends { store, metrics }, WRITERS)
}

impl Work for Sends {
    type Item = NewMessage;
    type Outcome = Insert;
    const MAX_ITEMS: usize = 256;
    const MAX_WEIGHT: usize = 1 << 20;

    fn weight(message: &NewMessage) -> usize {
        message.recipient.len() + message.sender.len() + message.content.len()
    }

    async fn run(&self, batch: Vec<NewMessage>) -> Vec<Insert> {
        let written = self.store.insert_messages(&batch).await;
        self.metrics.insert_commits(written.commits);
        written.outcomes
    }

    fn abandoned(&self) -> Insert {
        Insert::NotStored(crate::Error::Abandoned)
    }
}
