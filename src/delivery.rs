//! Delivery: waiting for, claiming and handing over messages, once each and oldest first, for both
//! the customer long poll and the agent stream.
//!
//! A claim is never lost to a vanished client. The claim runs in its own task, so a request
//! dropped mid-query (client gone) cannot leave a row marked read that nobody received: the
//! finished claim finds no one to hand to and is released. A [`Claimed`] message that is dropped
//! before being handed over is released too.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::error::Error;
use crate::hub::Hub;
use crate::shutdown::Shutdown;
use crate::store::{Message, Store};

/// Waits for messages for a recipient and claims them.
#[derive(Debug, Clone)]
pub struct Mailbox {
    store: Store,
    hub: Arc<Hub>,
    shutdown: Shutdown,
}

/// A message marked read in MySQL but not yet handed to a client.
#[derive(Debug)]
pub struct Claimed {
    message: Option<Message>,
    recipient: Vec<u8>,
    store: Store,
    hub: Arc<Hub>,
}

impl Mailbox {
    /// A mailbox over `store`, woken through `hub`, released by `shutdown`.
    pub fn new(store: Store, hub: Arc<Hub>, shutdown: Shutdown) -> Mailbox {
        Mailbox {
            store,
            hub,
            shutdown,
        }
    }

    /// The hub this mailbox parks on.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Waits until a message for `recipient` is claimed; `None` when the server shuts down.
    /// Waiting costs no query: the request parks on the hub until a send or the watcher wakes it.
    pub async fn next(&self, recipient: &[u8]) -> Option<Claimed> {
        loop {
            // Subscribe first: a message committed after the query below still wakes us.
            let mut woken = self.hub.subscribe(recipient);
            match self.claim(recipient).await {
                Ok(Some(claimed)) => return Some(claimed),
                Ok(None) => {}
                Err(err) => {
                    // Stay parked; the watcher wakes everyone when MySQL answers again.
                    tracing::debug!(%err, "claim failed; waiting for the database");
                    self.hub.report_db_failure();
                }
            }
            tokio::select! {
                () = woken.changed() => {}
                () = self.shutdown.wait() => return None,
            }
        }
    }

    async fn claim(&self, recipient: &[u8]) -> Result<Option<Claimed>, Error> {
        let (reply, result) = oneshot::channel();
        let (store, hub, recipient) = (
            self.store.clone(),
            Arc::clone(&self.hub),
            recipient.to_vec(),
        );
        tokio::spawn(async move {
            let claimed = store.claim_oldest_unread(&recipient).await.map(|message| {
                message.map(|message| Claimed {
                    message: Some(message),
                    recipient,
                    store,
                    hub,
                })
            });
            // When the waiter is gone the claim comes back here, and dropping it releases it.
            let _ = reply.send(claimed);
        });
        result.await.unwrap_or(Ok(None))
    }
}

impl Claimed {
    /// The claimed row.
    pub fn message(&self) -> &Message {
        self.message
            .as_ref()
            .expect("a Claimed holds its message until handed over")
    }

    /// Hands the message over: from now on it counts as delivered.
    pub fn hand_over(mut self) {
        self.message = None;
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let Some(message) = self.message.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(
                mid = message.mid,
                "claimed message dropped outside the runtime; left read"
            );
            return;
        };
        let (store, hub, recipient) = (
            self.store.clone(),
            Arc::clone(&self.hub),
            std::mem::take(&mut self.recipient),
        );
        runtime.spawn(async move {
            match store.release(message.mid).await {
                Ok(()) => hub.notify(&recipient),
                Err(err) => tracing::error!(mid = message.mid, %err, "could not release an undelivered message"),
            }
        });
    }
}
