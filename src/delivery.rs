//! Delivery: storing messages, waiting for them, and handing each over once, oldest first, for
//! both the customer long poll and the agent stream.
//!
//! # The claim protocol
//!
//! A message counts as read only once its bytes are in the connection. A claim locks the row and
//! flags it read inside a transaction ([`crate::store::OpenClaim`]), and the transaction commits
//! only after the response's bytes, all but the last one, were handed to hyper. The last byte
//! follows the COMMIT. So:
//!
//! - a client that left, a HEAD request, a response hyper never takes: the claim rolls back;
//! - our process killed before the COMMIT: MySQL rolls the transaction back with the connection,
//!   and the client holds an incomplete response, which it discards (a JSON body without its
//!   closing `}`, a `<script>` element without the `>` of its end tag never runs);
//! - a COMMIT the database refused (a Galera certification conflict): the client gets no last
//!   byte, the winner delivers;
//! - a COMMIT that went unanswered: asked again until the database answers ([`Mailbox::settle`]).
//!
//! What remains is the time between MySQL applying the COMMIT and the kernel taking the last byte:
//! a crash exactly then loses the message. README.md says so.
//!
//! Claims read the unread index ([`Inbox`]), so each is a primary-key lookup; a failed claim
//! backs off on its own instead of waking anyone.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::Error;
use crate::hub::Hub;
use crate::inbox::Inbox;
use crate::shutdown::Shutdown;
use crate::store::{Claim, Insert, Message, OpenClaim, Store};

/// How long a claimed message waits for hyper to take its bytes before it is given back.
const HANDOVER_DEADLINE: Duration = Duration::from_secs(10);
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
}

/// A message flagged read in a transaction that commits once its bytes are handed over.
/// Dropped before [`Claimed::handed_over`], the claim rolls back.
#[derive(Debug)]
pub struct Claimed {
    message: Message,
    go: oneshot::Sender<()>,
    settled: oneshot::Receiver<bool>,
}

/// Whether a handed-over claim committed: `true` once the message counts as delivered.
pub type Settled = oneshot::Receiver<bool>;

impl Mailbox {
    /// A mailbox over `store`, indexed by `inbox`, woken through `hub`, released by `shutdown`.
    pub fn new(store: Store, hub: Arc<Hub>, inbox: Arc<Inbox>, shutdown: Shutdown) -> Mailbox {
        Mailbox {
            store,
            hub,
            inbox,
            shutdown,
        }
    }

    /// Stores a message and wakes its recipient's waiters on this instance at once (other
    /// instances find it through their watcher). An error means it was certainly not stored.
    pub async fn send(&self, recipient: &[u8], sender: &[u8], content: &[u8]) -> Result<(), Error> {
        match self.store.insert_message(recipient, sender, content).await {
            Insert::Stored(mid) => {
                self.inbox.add(mid, recipient);
                self.hub.notify(recipient);
                Ok(())
            }
            Insert::NotStored(err) => Err(err),
        }
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
            // Its own task: a waiter dropped mid-query (client gone) cannot strand the claim.
            tokio::spawn(self.clone().hold_claim(mid, recipient.to_vec(), reply));
            match answer.await {
                Ok(Ok(Some(claimed))) => return Ok(Some(claimed)),
                Ok(Ok(None)) => continue,
                Ok(Err(err)) => return Err(err),
                Err(_) => return Err(Error::NotCommitted),
            }
        }
        Ok(None)
    }

    /// Opens the claim on `mid`, hands it to the waiter, and commits or gives it back.
    async fn hold_claim(
        self,
        mid: u64,
        recipient: Vec<u8>,
        reply: oneshot::Sender<Result<Option<Claimed>, Error>>,
    ) {
        let open = match self.store.claim(mid).await {
            Ok(Claim::Open(open)) => open,
            Ok(Claim::Taken) => {
                self.inbox.claimed(mid, &recipient);
                let _ = reply.send(Ok(None));
                return;
            }
            Err(err) => {
                self.inbox.unclaimed(mid);
                let _ = reply.send(Err(err));
                return;
            }
        };
        let (go, handed_over) = oneshot::channel();
        let (report, settled) = oneshot::channel();
        let claimed = Claimed {
            message: open.message.clone(),
            go,
            settled,
        };
        if reply.send(Ok(Some(claimed))).is_err() {
            return self.give_back(open, &recipient).await;
        }
        match tokio::time::timeout(HANDOVER_DEADLINE, handed_over).await {
            Ok(Ok(())) => {
                let delivered = self.settle(open).await;
                if delivered {
                    self.inbox.claimed(mid, &recipient);
                    if report.send(true).is_err() {
                        // The response was dropped before its last byte: nobody has the message,
                        // and the row is ours (read), so nobody else can have claimed it since.
                        self.release(mid, &recipient).await;
                    }
                } else {
                    self.inbox.unclaimed(mid);
                    let _ = report.send(false);
                }
            }
            _ => self.give_back(open, &recipient).await,
        }
    }

    /// Commits a handed-over claim; when the COMMIT fails, finds out who holds the row.
    async fn settle(&self, open: OpenClaim) -> bool {
        let mid = open.message.mid;
        let definite = match open.commit().await {
            Ok(()) => return true,
            Err(err) => {
                tracing::warn!(mid, %err, "a claim's COMMIT failed; settling it");
                err.is_definite()
            }
        };
        let mut pause = FIRST_BACKOFF;
        loop {
            match self.store.flag_read(mid).await {
                // Still unread: our transaction did not commit, and the row is ours now.
                Ok(true) => return true,
                // Read: after a refused COMMIT someone else won it; after an unanswered one it
                // was our own COMMIT that landed.
                Ok(false) => return !definite,
                Err(err) => tracing::debug!(mid, %err, "still settling a claim"),
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.shutdown.wait() => {
                    tracing::error!(mid, "shutting down with a claim's outcome unknown");
                    return false;
                }
            }
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }

    async fn give_back(&self, open: OpenClaim, recipient: &[u8]) {
        let mid = open.message.mid;
        if let Err(err) = open.abandon().await {
            // InnoDB rolls back when the broken connection closes; only a table without
            // transactions can keep the flag, and then this is said loudly.
            tracing::warn!(mid, %err, "giving back a claimed message failed");
        }
        self.inbox.unclaimed(mid);
        self.hub.notify(recipient);
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
        self.inbox.add(mid, recipient);
        self.hub.notify(recipient);
    }
}

impl Claimed {
    /// The claimed row.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The response's bytes (all but the last) are in hyper's hands: commit the claim. The
    /// answer says whether to send the last byte.
    pub fn handed_over(self) -> Settled {
        // A send error means the claim task is gone, which the receiver then reports as `Err`.
        let _ = self.go.send(());
        self.settled
    }
}

/// Spreads retries of many waiters that failed together (±25%).
fn jitter(pause: Duration) -> Duration {
    pause.mul_f64(0.75 + fastrand::f64() / 2.0)
}
