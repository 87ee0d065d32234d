//! The mailbox: storing messages, waiting for them, and handing each over once, oldest first, for
//! both the customer long poll and the agent stream.
//!
//! # The claim protocol
//!
//! A claim locks the row and flags it read inside a transaction ([`OpenClaim`]) that stays open
//! until hyper asks for the response's bytes. In that same call the COMMIT is written to the
//! database's socket and then the bytes are handed to hyper, which writes them before it yields.
//! So:
//!
//! - a client that left, a HEAD request, a response hyper never takes: the claim is dropped and
//!   rolls back; the message stays for the next poll;
//! - our process killed before that moment: MySQL rolls the transaction back when the connection
//!   closes, and the client has received nothing;
//! - killed after it: the COMMIT is already in MySQL's socket, which it reads and applies before
//!   it notices the connection closed, and the bytes are in the kernel, which sends them.
//!
//! What remains is the few microseconds between the two writes. A COMMIT that fails after the
//! bytes went out (a dropped connection) is settled by flagging the row read outright, since the
//! client has it ([`Mailbox::settle`]).
//!
//! On a Galera node the claim commits *before* its bytes go out
//! ([`OpenClaim::commits_before_bytes`]): a node that dies with our COMMIT unanswered may have
//! replicated it or not, and only the surviving nodes can say which, so the bytes wait for that
//! answer. A client gone by then gets its message given back (flagged unread again).
//!
//! Claims read the unread index ([`Inbox`]), so each is a primary-key lookup; a failed claim
//! backs off on its own instead of waking anyone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::delivery::binlog::Feed;
use crate::delivery::group_commit::{group_commit, GroupCommit};
use crate::delivery::hub::Hub;
use crate::delivery::inbox::Inbox;
use crate::error::Error;
use crate::metrics::{Metrics, Snapshot};
use crate::shutdown::Shutdown;
use crate::store::{Claim, Insert, Message, NewMessage, OpenClaim, Store};

/// First and longest pause after a failed claim.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest a claim waits for the watcher to read up to its row (one tick, normally a few
/// milliseconds); past it, with the database slow or the watcher not started, it goes ahead.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(1);

/// Stores messages, waits for them and claims them.
#[derive(Debug, Clone)]
pub struct Mailbox {
    store: Store,
    sends: Arc<GroupCommit>,
    hub: Arc<Hub>,
    inbox: Arc<Inbox>,
    /// To ask the watcher for a tick before a claim that could overtake another writer's row.
    feed: Arc<Feed>,
    shutdown: Shutdown,
    metrics: Arc<Metrics>,
}

/// A message claimed for one client: flagged read in a transaction that commits when its bytes
/// are handed to hyper ([`Claimed::commit_and_take`]), or, on Galera, already committed. Dropped
/// before the hand-over, the claim is given back.
#[derive(Debug)]
pub struct Claimed {
    hold: Hold,
    recipient: Vec<u8>,
    mailbox: Mailbox,
}

/// Where a claim stands.
#[derive(Debug)]
enum Hold {
    /// The transaction is open; committing it is the hand-over.
    Open(OpenClaim),
    /// Committed before the hand-over ([`OpenClaim::commits_before_bytes`]); giving them back
    /// takes an UPDATE.
    Committed(Vec<Message>),
    /// Handed over (or given back).
    Done,
}

impl Mailbox {
    /// A mailbox over `store`, indexed by `inbox`, woken through `hub`, released by `shutdown`.
    pub fn new(
        store: Store,
        hub: Arc<Hub>,
        inbox: Arc<Inbox>,
        feed: Arc<Feed>,
        shutdown: Shutdown,
        metrics: Arc<Metrics>,
    ) -> Mailbox {
        Mailbox {
            sends: group_commit(store.clone(), Arc::clone(&metrics)),
            store,
            hub,
            inbox,
            feed,
            shutdown,
            metrics,
        }
    }

    /// Stores a message and wakes its recipient's waiters on this instance at once (other
    /// instances find it through their watcher). An error means it was certainly not stored.
    pub async fn send(&self, recipient: &[u8], sender: &[u8], content: &[u8]) -> Result<(), Error> {
        let start = std::time::Instant::now();
        let message = NewMessage {
            recipient: recipient.to_vec(),
            sender: sender.to_vec(),
            content: content.to_vec(),
        };
        match self.sends.submit(message).await {
            Insert::Stored(mid) => {
                self.metrics.stored(mid, start.elapsed());
                self.inbox.add(mid, recipient);
                self.hub.notify(recipient);
                Ok(())
            }
            Insert::NotStored(err) => {
                self.metrics.send_failed(start.elapsed());
                Err(err)
            }
        }
    }

    /// This instance's metrics, to count open polls and streams.
    pub fn meters(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether a ready database node is in use; the health probe says 503 otherwise, so a load
    /// balancer routes around this instance.
    pub fn database_ready(&self) -> bool {
        self.store.is_ready()
    }

    /// Every metric in the OpenMetrics text format.
    pub fn metrics(&self) -> String {
        let pool = self.store.pool_metrics();
        let load = |value: &std::sync::atomic::AtomicUsize| {
            value.load(std::sync::atomic::Ordering::Relaxed)
        };
        self.metrics.render(Snapshot {
            waiting_requests: self.hub.waiting(),
            unread_indexed: self.inbox.unread_count(),
            pool_in_use: load(&pool.connections_in_use),
            pool_connections: load(&pool.connection_count),
            watcher_lag: self
                .hub
                .last_pass()
                .map_or(self.metrics.age(), |at| at.elapsed()),
        })
    }

    /// Waits until messages for `recipient` are claimed, the oldest first and at most `most` of
    /// them; `None` when the server shuts down. Waiting costs no query: the request parks on the
    /// hub until a send or the watcher wakes it, or, after a failed claim, until its back-off
    /// ends.
    pub async fn next(&self, recipient: &[u8], most: usize) -> Option<Claimed> {
        let mut backoff: Option<Duration> = None;
        loop {
            // Subscribe first: a message indexed after the lookup below still wakes us.
            let mut woken = self.hub.subscribe(recipient);
            match self.claim_oldest(recipient, most).await {
                Ok(Some(claimed)) => return Some(claimed),
                Ok(None) => backoff = None,
                Err(err) => {
                    let pause = backoff.map_or(FIRST_BACKOFF, |pause| (pause * 2).min(MAX_BACKOFF));
                    tracing::debug!(%err, ?pause, "claim failed; backing off");
                    backoff = Some(jitter(pause));
                }
            }
            tokio::select! {
                () = woken.changed() => {}
                () = tokio::time::sleep(backoff.unwrap_or_default()), if backoff.is_some() => {}
                () = self.shutdown.wait() => return None,
            }
        }
    }

    async fn claim_oldest(&self, recipient: &[u8], most: usize) -> Result<Option<Claimed>, Error> {
        let most = if self.store.claims_many() { most } else { 1 };
        let mut caught_up = false;
        loop {
            let mids = self.inbox.next_to_claim(recipient, most);
            let Some(&newest) = mids.last() else {
                return Ok(None);
            };
            if !caught_up && !self.inbox.knows_below(newest) {
                // A row this instance wrote is known at once, another writer's only once the
                // watcher reads it: an older row of theirs for the same recipient may not be
                // indexed yet, below any of the rows picked (the oldest picked may be a stale
                // entry, a row deleted meanwhile). The legacy answered the oldest row; so do we,
                // once the watcher has read up to the newest picked (one tick, asked for now;
                // bounded, should it be down).
                self.inbox.unclaimed(&mids);
                self.feed.nudge();
                self.inbox.wait_known_below(newest, CATCH_UP_LIMIT).await;
                caught_up = true;
                continue;
            }
            let (reply, answer) = oneshot::channel();
            let (mailbox, recipient) = (self.clone(), recipient.to_vec());
            // Its own task: a waiter dropped mid-query (client gone) cannot strand the claim;
            // the reply then comes back undelivered and dropping it rolls the claim back.
            tokio::spawn(async move {
                let _ = reply.send(mailbox.claim(mids, recipient).await);
            });
            match answer.await {
                Ok(Ok(Some(claimed))) => return Ok(Some(claimed)),
                Ok(Ok(None)) => continue,
                Ok(Err(err)) => return Err(err),
                Err(_) => return Err(Error::Abandoned),
            }
        }
    }

    async fn claim(self, mids: Vec<u64>, recipient: Vec<u8>) -> Result<Option<Claimed>, Error> {
        let open = match self.store.claim(&mids).await {
            Ok(Claim::Open(open)) => open,
            Ok(Claim::Taken) => {
                self.forget(&mids, &recipient);
                return Ok(None);
            }
            Err(err) => {
                self.inbox.unclaimed(&mids);
                return Err(err);
            }
        };
        // Rows asked for but not locked were read by someone else meanwhile.
        let taken: Vec<u64> = mids
            .iter()
            .copied()
            .filter(|mid| !open.messages.iter().any(|message| message.mid == *mid))
            .collect();
        self.forget(&taken, &recipient);
        let hold = if open.commits_before_bytes() {
            let ours = ids_of(&open.messages);
            let Some(messages) = self.commit_first(open).await else {
                self.inbox.unclaimed(&ours);
                return Ok(None);
            };
            Hold::Committed(messages)
        } else {
            Hold::Open(open)
        };
        Ok(Some(Claimed {
            hold,
            recipient,
            mailbox: self,
        }))
    }

    /// Rows read elsewhere: out of the index.
    fn forget(&self, mids: &[u64], recipient: &[u8]) {
        for &mid in mids {
            self.inbox.claimed(mid, recipient);
        }
    }

    /// Commits a claim before its bytes go out; its messages when they are ours. A COMMIT
    /// refused (a certification conflict) is not ours; one left unanswered (the node died) is
    /// asked of the node in use after failover until the cluster has settled it.
    async fn commit_first(&self, open: OpenClaim) -> Option<Vec<Message>> {
        let messages = open.messages.clone();
        let mid = messages[0].mid;
        let err = match open.commit().await {
            Ok(()) => return Some(messages),
            Err(err) if err.is_definite() => {
                tracing::debug!(mid, %err, "a claim lost at COMMIT; not ours");
                return None;
            }
            Err(err) => err,
        };
        tracing::warn!(mid, %err, "a claim's COMMIT went unanswered; asking the cluster");
        let mut pause = FIRST_BACKOFF;
        loop {
            // One transaction: its first row tells for all of them.
            match self.store.claim_outcome(mid).await {
                Ok(true) => return Some(messages),
                Ok(false) => return None,
                Err(err) => tracing::debug!(mid, %err, "still asking how a claim ended"),
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                // The rows stay read (ours, most likely) until an operator or a rescan sees them.
                () = self.shutdown.wait() => return None,
            }
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }

    /// Awaits a COMMIT whose bytes already went out; when it fails, makes the table agree with
    /// what the client received.
    async fn finish(
        self,
        mids: Vec<u64>,
        recipient: Vec<u8>,
        commit: Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>,
    ) {
        if let Err(err) = commit.await {
            tracing::warn!(?mids, %err, "a delivered claim's COMMIT failed; flagging it read");
            for &mid in &mids {
                self.settle(mid, err.is_definite()).await;
            }
        }
        self.handed_over(&mids, &recipient);
    }

    /// Flags row `mid` read outside any transaction, retrying until the database answers.
    async fn settle(&self, mid: u64, refused: bool) {
        let mut pause = FIRST_BACKOFF;
        loop {
            match self.store.flag_read(mid).await {
                Ok(true) => return,
                // Already read: after an unanswered COMMIT, most likely ours; after a refused
                // one (a Galera conflict), the winner's, whose client has it too.
                Ok(false) if refused => {
                    tracing::warn!(mid, "a message was claimed twice; it reached two clients");
                    return;
                }
                Ok(false) => return,
                Err(err) => tracing::debug!(mid, %err, "still settling a claim"),
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.shutdown.wait() => {
                    tracing::error!(mid, "shutting down with a delivered message's claim unsettled");
                    return;
                }
            }
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }

    async fn release(&self, mid: u64, recipient: &[u8]) {
        let mut pause = FIRST_BACKOFF;
        while let Err(err) = self.store.release(mid).await {
            tracing::warn!(mid, %err, "could not release an undelivered message; retrying");
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.shutdown.wait() => return,
            }
            pause = (pause * 2).min(MAX_BACKOFF);
        }
        self.inbox.unclaimed(&[mid]);
        self.hub.notify(recipient);
    }
}

impl Claimed {
    /// The claimed rows, oldest first; never empty.
    pub fn messages(&self) -> &[Message] {
        match &self.hold {
            Hold::Open(open) => &open.messages,
            Hold::Committed(messages) => messages,
            Hold::Done => unreachable!("a Claimed holds its messages until they are handed over"),
        }
    }

    fn take(&mut self) -> (Hold, Vec<u8>) {
        let hold = std::mem::replace(&mut self.hold, Hold::Done);
        (hold, std::mem::take(&mut self.recipient))
    }

    /// Call from the body's `poll_frame`, right before returning the messages' bytes: writes the
    /// COMMIT to the database's socket in this same poll, and leaves its answer to a task.
    pub fn commit_and_take(mut self, cx: &mut Context<'_>) {
        let mailbox = self.mailbox.clone();
        let (hold, recipient) = self.take();
        let open = match hold {
            Hold::Open(open) => open,
            Hold::Committed(messages) => {
                return mailbox.handed_over(&ids_of(&messages), &recipient)
            }
            Hold::Done => unreachable!("handed over once"),
        };
        let mids = ids_of(&open.messages);
        let mut commit = open.commit();
        match commit.as_mut().poll(cx) {
            Poll::Ready(Ok(())) => mailbox.handed_over(&mids, &recipient),
            Poll::Ready(Err(err)) => {
                let done = Box::pin(std::future::ready(Err(err)));
                tokio::spawn(mailbox.finish(mids, recipient, done));
            }
            Poll::Pending => {
                tokio::spawn(mailbox.finish(mids, recipient, commit));
            }
        }
    }

    /// Commits before any byte goes out, for an answer with no bytes to follow the COMMIT
    /// (PHP's empty `json_encode` false). `false` when it certainly did not commit.
    pub async fn commit_now(mut self) -> bool {
        let (hold, recipient) = self.take();
        let open = match hold {
            Hold::Open(open) => open,
            Hold::Committed(messages) => {
                self.mailbox.handed_over(&ids_of(&messages), &recipient);
                return true;
            }
            Hold::Done => unreachable!("handed over once"),
        };
        let mids = ids_of(&open.messages);
        match open.commit().await {
            Ok(()) => {
                self.mailbox.handed_over(&mids, &recipient);
                true
            }
            Err(err) => {
                self.mailbox.inbox.unclaimed(&mids);
                tracing::warn!(?mids, %err, "COMMIT failed before an empty answer");
                false
            }
        }
    }
}

impl Mailbox {
    fn handed_over(&self, mids: &[u64], recipient: &[u8]) {
        for &mid in mids {
            self.metrics.delivered(mid);
            self.inbox.claimed(mid, recipient);
        }
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let (hold, recipient) = self.take();
        let mids = match hold {
            Hold::Done => return,
            Hold::Open(open) if !open.needs_release() => {
                // Dropping the transaction returns its connection to the pool, which rolls it
                // back.
                let mids = ids_of(&open.messages);
                drop(open);
                self.mailbox.inbox.unclaimed(&mids);
                self.mailbox.hub.notify(&recipient);
                return;
            }
            // A table without transactions keeps the flag through the rollback.
            Hold::Open(open) => ids_of(&open.messages),
            Hold::Committed(messages) => ids_of(&messages),
        };
        let mailbox = self.mailbox.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    for mid in mids {
                        mailbox.release(mid, &recipient).await;
                    }
                });
            }
            Err(_) => tracing::error!(
                ?mids,
                "claimed messages dropped outside the runtime; left read"
            ),
        }
    }
}

fn ids_of(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|message| message.mid).collect()
}

/// Spreads retries of many waiters that failed together (±25%).
fn jitter(pause: Duration) -> Duration {
    pause.mul_f64(0.75 + fastrand::f64() / 2.0)
}
