//! Delivery: storing messages, waiting for them, and handing each over once, oldest first, for
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
//! bytes went out (a dropped connection, a Galera certification conflict) is settled by flagging
//! the row read outright, since the client has it ([`Mailbox::settle`]).
//!
//! Claims read the unread index ([`Inbox`]), so each is a primary-key lookup; a failed claim
//! backs off on its own instead of waking anyone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::Error;
use crate::hub::Hub;
use crate::inbox::Inbox;
use crate::metrics::{Metrics, Snapshot};
use crate::shutdown::Shutdown;
use crate::store::{Claim, Insert, Message, OpenClaim, Store};

/// First and longest pause after a failed claim.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Stores messages, waits for them and claims them.
#[derive(Debug, Clone)]
pub struct Mailbox {
    store: Store,
    hub: Arc<Hub>,
    inbox: Arc<Inbox>,
    shutdown: Shutdown,
    metrics: Arc<Metrics>,
}

/// A message flagged read in a transaction that commits when its bytes are handed to hyper
/// ([`Claimed::commit_and_take`]). Dropped before that, the claim rolls back.
#[derive(Debug)]
pub struct Claimed {
    open: Option<OpenClaim>,
    recipient: Vec<u8>,
    mailbox: Mailbox,
}

impl Mailbox {
    /// A mailbox over `store`, indexed by `inbox`, woken through `hub`, released by `shutdown`.
    pub fn new(
        store: Store,
        hub: Arc<Hub>,
        inbox: Arc<Inbox>,
        shutdown: Shutdown,
        metrics: Arc<Metrics>,
    ) -> Mailbox {
        Mailbox {
            store,
            hub,
            inbox,
            shutdown,
            metrics,
        }
    }

    /// Stores a message and wakes its recipient's waiters on this instance at once (other
    /// instances find it through their watcher). An error means it was certainly not stored.
    pub async fn send(&self, recipient: &[u8], sender: &[u8], content: &[u8]) -> Result<(), Error> {
        let start = std::time::Instant::now();
        match self.store.insert_message(recipient, sender, content).await {
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

    /// Waits until a message for `recipient` is claimed; `None` when the server shuts down.
    /// Waiting costs no query: the request parks on the hub until a send or the watcher wakes
    /// it, or, after a failed claim, until its back-off ends.
    pub async fn next(&self, recipient: &[u8]) -> Option<Claimed> {
        let mut backoff: Option<Duration> = None;
        loop {
            // Subscribe first: a message indexed after the lookup below still wakes us.
            let mut woken = self.hub.subscribe(recipient);
            match self.claim_oldest(recipient).await {
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

    async fn claim_oldest(&self, recipient: &[u8]) -> Result<Option<Claimed>, Error> {
        while let Some(mid) = self.inbox.next_to_claim(recipient) {
            let (reply, answer) = oneshot::channel();
            let (mailbox, recipient) = (self.clone(), recipient.to_vec());
            // Its own task: a waiter dropped mid-query (client gone) cannot strand the claim;
            // the reply then comes back undelivered and dropping it rolls the claim back.
            tokio::spawn(async move {
                let _ = reply.send(mailbox.claim(mid, recipient).await);
            });
            match answer.await {
                Ok(Ok(Some(claimed))) => return Ok(Some(claimed)),
                Ok(Ok(None)) => continue,
                Ok(Err(err)) => return Err(err),
                Err(_) => return Err(Error::NotCommitted),
            }
        }
        Ok(None)
    }

    async fn claim(self, mid: u64, recipient: Vec<u8>) -> Result<Option<Claimed>, Error> {
        match self.store.claim(mid).await {
            Ok(Claim::Open(open)) => Ok(Some(Claimed {
                open: Some(open),
                recipient,
                mailbox: self,
            })),
            Ok(Claim::Taken) => {
                self.inbox.claimed(mid, &recipient);
                Ok(None)
            }
            Err(err) => {
                self.inbox.unclaimed(mid);
                Err(err)
            }
        }
    }

    /// Awaits a COMMIT whose bytes already went out; when it fails, makes the table agree with
    /// what the client received.
    async fn finish(
        self,
        mid: u64,
        recipient: Vec<u8>,
        commit: Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>,
    ) {
        if let Err(err) = commit.await {
            tracing::warn!(mid, %err, "a delivered message's COMMIT failed; flagging it read");
            self.settle(mid, err.is_definite()).await;
        }
        self.metrics.delivered(mid);
        self.inbox.claimed(mid, &recipient);
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
        self.inbox.unclaimed(mid);
        self.hub.notify(recipient);
    }
}

impl Claimed {
    /// The claimed row.
    pub fn message(&self) -> &Message {
        &self
            .open
            .as_ref()
            .expect("a Claimed holds its claim until it commits")
            .message
    }

    /// Call from the body's `poll_frame`, right before returning the message's bytes: writes the
    /// COMMIT to the database's socket in this same poll, and leaves its answer to a task.
    pub fn commit_and_take(mut self, cx: &mut Context<'_>) {
        let open = self.open.take().expect("committed once");
        let mid = open.message.mid;
        let mut commit = open.commit();
        let mailbox = self.mailbox.clone();
        let recipient = std::mem::take(&mut self.recipient);
        match commit.as_mut().poll(cx) {
            Poll::Ready(Ok(())) => {
                mailbox.metrics.delivered(mid);
                mailbox.inbox.claimed(mid, &recipient);
            }
            Poll::Ready(Err(err)) => {
                let done = Box::pin(std::future::ready(Err(err)));
                tokio::spawn(mailbox.finish(mid, recipient, done));
            }
            Poll::Pending => {
                tokio::spawn(mailbox.finish(mid, recipient, commit));
            }
        }
    }

    /// Commits before any byte goes out, for an answer with no bytes to follow the COMMIT
    /// (PHP's empty `json_encode` false). `false` when it certainly did not commit.
    pub async fn commit_now(mut self) -> bool {
        let open = self.open.take().expect("committed once");
        let mid = open.message.mid;
        let recipient = std::mem::take(&mut self.recipient);
        match open.commit().await {
            Ok(()) => {
                self.mailbox.metrics.delivered(mid);
                self.mailbox.inbox.claimed(mid, &recipient);
                true
            }
            Err(err) => {
                self.mailbox.inbox.unclaimed(mid);
                tracing::warn!(mid, %err, "COMMIT failed before an empty answer");
                false
            }
        }
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        let mid = open.message.mid;
        let recipient = std::mem::take(&mut self.recipient);
        if !open.needs_release() {
            // Dropping the transaction returns its connection to the pool, which rolls it back.
            drop(open);
            self.mailbox.inbox.unclaimed(mid);
            self.mailbox.hub.notify(&recipient);
            return;
        }
        drop(open);
        let mailbox = self.mailbox.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { mailbox.release(mid, &recipient).await });
            }
            Err(_) => tracing::error!(
                mid,
                "claimed message dropped outside the runtime; left read"
            ),
        }
    }
}

/// Spreads retries of many waiters that failed together (±25%).
fn jitter(pause: Duration) -> Duration {
    pause.mul_f64(0.75 + fastrand::f64() / 2.0)
}
