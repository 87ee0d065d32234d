//! Delivery: everything between a message stored and a message handed over once, oldest first.
//!
//! - `mailbox`: sends, waits and claims for the endpoints ([`Mailbox`], [`Claimed`]).
//! - `hub`: where waiting requests park, by recipient, until a message may exist for them.
//! - `inbox`: the unread index, so a claim is a primary-key lookup on the operator's table.
//! - `watcher`: one background task that keeps the index in step and wakes recipients.
//! - `binlog`: follows the database's binary log and nudges the watcher when a row is written.
//! - `batching`: requests that arrive together handled as one batch, without a timer.
//! - `group_commit`: sends that arrive together written in one transaction.
//!
//! The endpoints see only the mailbox; the rest is wired once in [`crate::run_with_hub`].

pub mod batching;
pub mod binlog;
pub mod group_commit;
pub mod hub;
pub mod inbox;
mod mailbox;
pub mod watcher;

pub use mailbox::{Claimed, Mailbox};
