//! A cloneable shutdown signal for long-running handlers (long polls, the agent stream, the
//! watcher), so SIGTERM releases them instead of waiting for clients that never leave.

use tokio::sync::watch;

/// Fires once; every clone sees it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

/// The side that fires the signal.
#[derive(Debug)]
pub struct Trigger {
    sender: watch::Sender<bool>,
}

/// A new untriggered signal.
pub fn channel() -> (Trigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (Trigger { sender }, Shutdown { receiver })
}

impl Trigger {
    /// Tells every [`Shutdown`] clone to stop.
    pub fn fire(&self) {
        // send_modify, not send: send fails when no handler is listening at the moment.
        self.sender.send_modify(|fired| *fired = true);
    }
}

impl Shutdown {
    /// Resolves once the signal has fired (at once if it already has).
    pub async fn wait(&self) {
        let mut receiver = self.receiver.clone();
        // An Err means the trigger was dropped, which only happens when the server is gone.
        let _ = receiver.wait_for(|fired| *fired).await;
    }
}
