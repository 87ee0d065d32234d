//! Claims: rows locked and flagged read in a transaction of our own, handed to delivery open, so
//! the COMMIT can go out with the message's bytes; and the rows as `mysql_fetch_assoc` saw them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::sql::*;
use super::*;
use crate::error::Error;

/// A whole `msg` row as `mysql_fetch_assoc` returned it: every column in table order, every value
/// a string as MySQL's text protocol formats it, NULL as `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The row's id.
    pub mid: u64,
    /// Column names and values, in `SELECT *` order.
    pub columns: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// What a claim attempt on one row found.
#[derive(Debug)]
pub enum Claim {
    /// The row is ours until the claim commits or is abandoned.
    Open(OpenClaim),
    /// Someone else claimed it first (or it is gone).
    Taken,
}

/// A row flagged read inside a transaction that is not yet committed: until
/// [`OpenClaim::commit`], a crash, a lost connection or dropping it (the transaction is rolled
/// back) leaves it unread.
#[derive(Debug)]
pub struct OpenClaim {
    /// The rows as they were before the claim (`isread` still `0`, as the legacy fetched them),
    /// oldest first; never empty.
    pub messages: Vec<Message>,
    tx: ClaimTx,
    store: Store,
    /// Taken on a Galera node: see [`OpenClaim::commits_before_bytes`].
    galera: bool,
}

impl Store {
    /// Opens a claim on the rows among `mids` still unread: locks them, reads them as the legacy
    /// did, flags them read, and keeps the transaction open until the caller commits or abandons
    /// it.
    pub async fn claim(&self, mids: &[u64]) -> Result<Claim, Error> {
        let list = id_list(mids.iter().copied());
        self.bounded(async {
            let current = self.current();
            let mut tx = ClaimTx::new(current.pool.get_conn().await?);
            let lock = if current.galera {
                lock_unread_synced(&list)
            } else {
                lock_unread(&list)
            };
            let (messages, flagged) = if !self.claims_many() {
                // Two round trips: a MyISAM claim must not flag a row it did not read.
                let (rows, _) = tx.run(&[BEGIN, &lock]).await?;
                let messages: Vec<Message> = rows.into_iter().map(Message::from_row).collect();
                if messages.is_empty() {
                    return Ok(Claim::Taken);
                }
                let locked = id_list(messages.iter().map(|message| message.mid));
                let (_, flagged) = tx.run(&[&claim_rows(&locked)]).await?;
                (messages, flagged)
            } else {
                // One round trip: the UPDATE flags exactly the rows the locking read locked.
                let (rows, flagged) = tx.run(&[BEGIN, &lock, &claim_rows(&list)]).await?;
                (rows.into_iter().map(Message::from_row).collect(), flagged)
            };
            if messages.is_empty() || flagged != messages.len() as u64 {
                // Only without row locks (MyISAM, one row at a time): another claimant flagged
                // it in between. Dropping `tx` rolls back.
                return Ok(Claim::Taken);
            }
            Ok(Claim::Open(OpenClaim {
                messages,
                tx,
                store: self.clone(),
                galera: current.galera,
            }))
        })
        .await
    }

    /// Whether claims may take several rows at once: only where a rollback gives them all back.
    pub fn claims_many(&self) -> bool {
        self.transactional.load(Ordering::Relaxed)
    }

    /// Whether row `mid` is read after a Galera claim's COMMIT went unanswered ([`claim_outcome`]).
    pub async fn claim_outcome(&self, mid: u64) -> Result<bool, Error> {
        self.bounded(async {
            let mut conn = self.current().pool.get_conn().await?;
            let isread: Option<Option<i64>> = conn.query_first(claim_outcome(mid)).await?;
            Ok(isread.flatten().is_some_and(|isread| isread != 0))
        })
        .await
    }

    /// Flags row `mid` read outside any claim, saying whether this call did it. Used to settle a
    /// claim whose COMMIT went unanswered.
    pub async fn flag_read(&self, mid: u64) -> Result<bool, Error> {
        self.bounded(async {
            let mut conn = self.current().pool.get_conn().await?;
            conn.exec_drop(CLAIM, (mid,)).await?;
            Ok(conn.affected_rows() == 1)
        })
        .await
    }

    /// Makes row `mid` unread again.
    pub async fn release(&self, mid: u64) -> Result<(), Error> {
        self.bounded(async {
            let mut conn = self.current().pool.get_conn().await?;
            conn.exec_drop(RELEASE, (mid,)).await?;
            Ok(())
        })
        .await
    }
}

impl OpenClaim {
    /// Makes the claim permanent. An error leaves the outcome unknown unless
    /// [`Error::is_definite`] says the transaction certainly did not commit.
    ///
    /// The first poll of the returned future writes the COMMIT to the database's socket (the
    /// packet is tiny and the socket idle, so the write completes at once); the delivery code
    /// relies on that to put the COMMIT on the wire just before the message's bytes.
    pub fn commit(self) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send>> {
        let store = self.store;
        let tx = self.tx;
        Box::pin(async move { store.commit_patiently(tx.commit()).await })
    }

    /// Whether this claim must commit before its bytes go out, instead of as they go out.
    ///
    /// On a Galera node: if the node dies between a COMMIT written to it and its answer, the
    /// cluster may roll the claim back (the COMMIT never left the node) while the client already
    /// has the bytes, and the next poll, on another node, gets the message again. Committing
    /// first and asking the surviving nodes when the answer is lost ([`Store::claim_outcome`])
    /// trades that for a narrower window: our own process dying between the COMMIT's answer and
    /// the bytes. It is also what keeps two claims of one row on two nodes apart: each locks
    /// only its own node's copy, certification lets the first ordered COMMIT through and fails
    /// the other (a deadlock error, [`Error::is_definite`]), and the loser has sent nothing.
    /// (Claims used to replicate their UPDATE ahead of the COMMIT as a streaming-replication
    /// fragment, to hold the lock on every node; once the bytes wait for the COMMIT that buys
    /// nothing, and a crash test doubled messages with it: README.md, "Scaling out".)
    pub fn commits_before_bytes(&self) -> bool {
        self.galera
    }

    /// Whether giving the claim back needs [`Store::release`] after the rollback that dropping
    /// it causes (a table without transactions keeps the flag).
    pub fn needs_release(&self) -> bool {
        !self.store.transactional.load(Ordering::Relaxed)
    }
}

/// A claim's transaction, begun with [`BEGIN`] inside the claim's first query rather than by
/// `start_transaction`, so the pool does not know it is open and would hand the connection on
/// with it (the next `START TRANSACTION` there would commit our claim). Dropping it uncommitted
/// therefore ends it first:
///
/// - between exchanges, with a ROLLBACK before the connection goes back to the pool (closing the
///   connection if that fails);
/// - in the middle of one (a timeout), by closing the connection, which rolls back: a ROLLBACK
///   sent then would read the interrupted query's answers as its own, and the pool would get the
///   connection back with the transaction open and the ROLLBACK's answer still unread.
#[derive(Debug)]
struct ClaimTx {
    conn: Option<Conn>,
    mid_exchange: bool,
}

impl ClaimTx {
    fn new(conn: Conn) -> ClaimTx {
        ClaimTx {
            conn: Some(conn),
            mid_exchange: false,
        }
    }

    /// Runs `statements` in one round trip and reads all of their answers: the rows of every
    /// statement, and the rows the last one affected.
    async fn run(&mut self, statements: &[&str]) -> Result<(Vec<Row>, u64), mysql_async::Error> {
        let conn = self
            .conn
            .as_mut()
            .expect("a ClaimTx holds its connection until commit or drop");
        self.mid_exchange = true;
        let answers = read_all(conn, statements).await;
        self.mid_exchange = false;
        answers
    }

    /// COMMIT; its first poll writes the statement to the socket ([`OpenClaim::commit`]).
    /// Dropped unfinished, the connection is mid-exchange and mysql_async discards it.
    async fn commit(mut self) -> Result<(), mysql_async::Error> {
        let mut conn = self.conn.take().expect("committed once");
        conn.query_drop("COMMIT").await
    }
}

/// One `collect` per statement, never fewer: when a statement fails (a lock wait timeout),
/// mysql_async keeps its error for the next `collect` and `is_empty` already says "no more", so
/// stopping at `is_empty` would take the failure for an empty answer.
async fn read_all(
    conn: &mut Conn,
    statements: &[&str],
) -> Result<(Vec<Row>, u64), mysql_async::Error> {
    let mut result = conn.query_iter(statements.join("; ")).await?;
    let mut rows = Vec::new();
    for _ in statements {
        rows.extend(result.collect::<Row>().await?);
    }
    Ok((rows, result.affected_rows()))
}

impl Drop for ClaimTx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // The runtime is gone, and with it every user of the pool: the connection closes
            // with the process, which rolls the transaction back.
            drop(conn);
            return;
        };
        let mid_exchange = self.mid_exchange;
        runtime.spawn(async move {
            if mid_exchange || conn.query_drop("ROLLBACK").await.is_err() {
                let _ = conn.disconnect().await;
            }
        });
    }
}

/// Ids for an `IN (…)` list: integers we hold, so safe to inline.
fn id_list(mids: impl Iterator<Item = u64>) -> String {
    mids.map(|mid| mid.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl Message {
    /// The one place a fetched row becomes PHP's "every value is a string" array.
    fn from_row(row: Row) -> Message {
        let names: Vec<Vec<u8>> = row
            .columns_ref()
            .iter()
            .map(|column| column.name_ref().to_vec())
            .collect();
        let columns: Vec<(Vec<u8>, Option<Vec<u8>>)> = names
            .into_iter()
            .zip(row.unwrap())
            .map(|(name, value)| {
                let value = match value {
                    Value::NULL => None,
                    Value::Bytes(bytes) => Some(bytes),
                    // The text protocol only yields bytes or NULL; anything else is formatted as
                    // SQL.
                    other => Some(other.as_sql(true).into_bytes()),
                };
                (name, value)
            })
            .collect();
        let mid = columns
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(b"mid"))
            .and_then(|(_, value)| std::str::from_utf8(value.as_deref()?).ok()?.parse().ok())
            .unwrap_or_default();
        Message { mid, columns }
    }
}
