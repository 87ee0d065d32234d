//! Sends: one message or a batch in one transaction, committed patiently, and the outcome of a
//! COMMIT that went unanswered learnt from the table.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Transaction, TxOpts, Value};

use super::sql::*;
use super::*;
use crate::error::Error;

/// Longest pause between attempts to learn an insert's outcome while the database is away.
const MAX_RESOLVE_PAUSE: Duration = Duration::from_secs(2);

/// A message to store, as `AJsendmsg.php` received it.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// `rec`: whom it is for.
    pub recipient: Vec<u8>,
    /// `pos`: who sent it.
    pub sender: Vec<u8>,
    /// `content`.
    pub content: Vec<u8>,
}

/// How an insert ended.
#[derive(Debug)]
pub enum Insert {
    /// Committed, with this id.
    Stored(u64),
    /// Certainly not stored.
    NotStored(Error),
}

/// How a batch of inserts ended.
#[derive(Debug)]
pub struct Written {
    /// One per message, in order.
    pub outcomes: Vec<Insert>,
    /// Transactions that stored them: 1 for a batch written together.
    pub commits: usize,
}

impl Store {
    /// Stores `batch` in one transaction, one answer per message in order. A batch the
    /// database refuses (one value too long in strict mode fails the statement) is stored
    /// message by message, so each gets the answer it would have had alone.
    pub async fn insert_messages(&self, batch: &[NewMessage]) -> Written {
        if batch.len() > 1 && self.batches.load(Ordering::Relaxed) && !self.current().galera {
            match self.insert_together(batch).await {
                Ok(outcomes) => {
                    let commits = usize::from(matches!(outcomes[0], Insert::Stored(_)));
                    return Written { outcomes, commits };
                }
                Err(err) => tracing::debug!(%err, rows = batch.len(), "batch refused; one by one"),
            }
        }
        let each = batch.iter().map(|message| {
            self.insert_message(&message.recipient, &message.sender, &message.content)
        });
        let outcomes = futures_util::future::join_all(each).await;
        let commits = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Insert::Stored(_)))
            .count();
        Written { outcomes, commits }
    }

    /// One multi-row INSERT and its COMMIT. `Err` when the database refused it, so nothing was
    /// stored and each message may be tried alone.
    async fn insert_together(&self, batch: &[NewMessage]) -> Result<Vec<Insert>, Error> {
        let params: Vec<Value> = batch
            .iter()
            .flat_map(|message| {
                [&message.recipient, &message.sender, &message.content]
                    .map(|value| Value::Bytes(value.clone()))
            })
            .collect();
        let written = self
            .write_then_commit(|mut tx| async move {
                tx.exec_drop(insert_many(batch.len()), params).await?;
                let first = tx.last_insert_id();
                let step: Option<u64> = tx.query_first(ID_STEP).await?;
                let ids = first.map(|first| (first, step.unwrap_or(1).max(1)));
                if let Some((first, step)) = ids {
                    self.own
                        .note((0..batch.len() as u64).map(|k| first + k * step));
                }
                Ok((ids, tx))
            })
            .await;
        let all = |outcome: &dyn Fn(u64) -> Insert| -> Vec<Insert> {
            (0..batch.len() as u64).map(outcome).collect()
        };
        match written {
            Ok((Some((first, step)), Ok(()))) => Ok(all(&|k| Insert::Stored(first + k * step))),
            Ok((None, Ok(()))) => Ok(all(&|_| {
                Insert::NotStored(Error::Config("msg has no AUTO_INCREMENT id".into()))
            })),
            Err(err) | Ok((_, Err(err))) if err.is_definite() => Err(err),
            // No COMMIT was sent: the transaction died with its connection.
            Err(err) | Ok((None, Err(err))) => {
                tracing::warn!(%err, rows = batch.len(), "batch not stored");
                Ok(all(&|_| Insert::NotStored(Error::NotCommitted)))
            }
            // One transaction: its first row tells for all of them.
            Ok((Some((first, step)), Err(err))) => {
                tracing::warn!(first, %err, "outcome of a batch unknown; asking the database");
                let head = &batch[0];
                let values = (&head.recipient[..], &head.sender[..], &head.content[..]);
                Ok(match self.resolve_insert(first, values).await {
                    Insert::Stored(_) => all(&|k| Insert::Stored(first + k * step)),
                    Insert::NotStored(_) => all(&|_| Insert::NotStored(Error::NotCommitted)),
                })
            }
        }
    }

    /// Stores a message as `AJsendmsg.php` did, inside a transaction so that only the COMMIT can
    /// leave the outcome unknown; then the new id tells whether it was stored. The statements
    /// have `--db-timeout-ms`; the COMMIT waits for its own answer ([`Store::commit_patiently`]).
    pub async fn insert_message(&self, recipient: &[u8], sender: &[u8], content: &[u8]) -> Insert {
        let written = self
            .write_then_commit(|mut tx| async move {
                tx.exec_drop(INSERT, (recipient, sender, content)).await?;
                let mid = tx.last_insert_id();
                self.own.note(mid);
                Ok((mid, tx))
            })
            .await;
        match written {
            // No COMMIT was sent: the transaction died with its connection.
            Err(err) => Insert::NotStored(err),
            Ok((Some(mid), Ok(()))) => Insert::Stored(mid),
            Ok((None, Ok(()))) => {
                Insert::NotStored(Error::Config("msg has no AUTO_INCREMENT id".into()))
            }
            Ok((None, Err(err))) => Insert::NotStored(err),
            Ok((Some(_), Err(err))) if err.is_definite() => Insert::NotStored(err),
            Ok((Some(mid), Err(err))) => {
                tracing::warn!(mid, %err, "outcome of an insert unknown; asking the database");
                self.resolve_insert(mid, (recipient, sender, content)).await
            }
        }
    }

    /// Runs `write` in a new transaction on the node in use, within `--db-timeout-ms`, then
    /// commits it ([`Store::commit_patiently`]). `Err` means no COMMIT was sent, so dropping the
    /// transaction rolled it back; otherwise what `write` returned and how the COMMIT went.
    async fn write_then_commit<T, W>(
        &self,
        write: impl FnOnce(Transaction<'static>) -> W,
    ) -> Result<(T, Result<(), Error>), Error>
    where
        W: Future<Output = Result<(T, Transaction<'static>), Error>>,
    {
        let (value, tx) = self
            .bounded(async {
                let tx = self
                    .current()
                    .pool
                    .start_transaction(TxOpts::default())
                    .await?;
                write(tx).await
            })
            .await?;
        Ok((value, self.commit_patiently(tx.commit()).await))
    }

    /// Commits `tx`, waiting for the answer up to [`COMMIT_TIMEOUT`] rather than `--db-timeout-ms`.
    ///
    /// Asking whether a row exists tells whether its COMMIT happened only once that COMMIT is
    /// over. A COMMIT cut short by our own timeout is not over: the server goes on with it after
    /// we hang up, and a Galera node holds every commit while the cluster evicts a dead member
    /// (seconds). Asked meanwhile, the table said "not there", the send answered `FIAL`, and the
    /// row landed a moment later (`scripts/cluster crashes` caught 8 in 24 node crashes). So the
    /// COMMIT gets its real answer: done, refused, or the connection lost with its node, after
    /// which the surviving nodes know.
    pub(super) async fn commit_patiently(
        &self,
        commit: impl Future<Output = Result<(), mysql_async::Error>>,
    ) -> Result<(), Error> {
        let result = match tokio::time::timeout(self.timeout.max(COMMIT_TIMEOUT), commit).await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::DbTimeout),
        };
        if let Err(err) = &result {
            self.nodes.report(err);
        }
        result
    }

    /// Asks, until the database answers, whether row `mid` exists with our values.
    async fn resolve_insert(&self, mid: u64, values: (&[u8], &[u8], &[u8])) -> Insert {
        let (recipient, sender, content) = values;
        let mut pause = Duration::from_millis(50);
        loop {
            let found = self
                .bounded(async {
                    let current = self.current();
                    let exists = if current.galera {
                        EXISTS_SYNCED
                    } else {
                        EXISTS
                    };
                    let mut conn = current.pool.get_conn().await?;
                    let params = (mid, recipient, sender, content);
                    Ok(conn.exec_first::<u64, _, _>(exists, params).await?)
                })
                .await;
            match found {
                Ok(Some(count)) if count > 0 => return Insert::Stored(mid),
                Ok(_) => return Insert::NotStored(Error::NotCommitted),
                Err(err) => tracing::debug!(mid, %err, "still asking whether an insert landed"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RESOLVE_PAUSE);
        }
    }
}
