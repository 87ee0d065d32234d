//! The only module with SQL in it. Every statement that carries user input is parameterized, so
//! text that broke or injected the legacy's string-built SQL is stored literally.
//!
//! The table is the operator's: extra columns, either engine, utf8 or utf8mb4. Nothing here
//! creates or alters it.

use std::future::Future;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row, Value};

use crate::error::Error;

/// Oldest unread message first: the legacy had no ORDER BY, but its tables returned rows in
/// primary-key order, and "in order" is the promise.
const OLDEST_UNREAD: &str = "SELECT mid FROM msg WHERE rec = ? AND isread = 0 ORDER BY mid LIMIT 1";
/// Conditional, so two waiters (two tabs, two instances) never both claim one row.
const CLAIM: &str = "UPDATE msg SET isread = 1 WHERE mid = ? AND isread = 0";
/// Gives back a claimed message whose client vanished before the answer went out.
const RELEASE: &str = "UPDATE msg SET isread = 0 WHERE mid = ? AND isread = 1";
const INSERT: &str = "INSERT INTO msg (rec, pos, content) VALUES (?, ?, ?)";
/// Also returns the newest row even when it is not newer, so the watcher notices ids going
/// backwards (TRUNCATE) without a second query.
const NEWER_THAN: &str =
    "SELECT mid, rec, isread FROM msg WHERE mid > ? OR mid = (SELECT MAX(mid) FROM msg) ORDER BY mid LIMIT ?";

/// How long an idle pooled connection is kept before the pool trims back to none.
const IDLE_CONNECTION_TTL: Duration = Duration::from_secs(60);

/// A whole `msg` row as `mysql_fetch_assoc` returned it: every column in table order, every value
/// a string as MySQL's text protocol formats it, NULL as `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The row's id.
    pub mid: u64,
    /// Column names and values, in `SELECT *` order.
    pub columns: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// A row the watcher saw: enough to know whom to wake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentRow {
    /// The row's id.
    pub mid: u64,
    /// Its recipient (`NULL` reads as empty).
    pub recipient: Vec<u8>,
    /// Whether someone already claimed it.
    pub is_read: bool,
}

/// A pool of connections to the database holding `msg`.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    timeout: Duration,
}

impl Store {
    /// Prepares a lazy pool; no connection is opened until the first query.
    pub fn new(
        url: &str,
        legacy_charset: bool,
        max_connections: usize,
        timeout: Duration,
    ) -> Result<Store, Error> {
        let opts =
            Opts::from_url(url).map_err(|err| Error::Config(format!("database URL: {err}")))?;
        let constraints = PoolConstraints::new(0, max_connections.max(1))
            .ok_or_else(|| Error::Config("db pool size".into()))?;
        // utf8mb4 keeps emoji intact; `SET NAMES utf8` is what AJconn.php sent.
        let names = if legacy_charset {
            "SET NAMES utf8"
        } else {
            "SET NAMES utf8mb4"
        };
        let opts = OptsBuilder::from_opts(opts).setup(vec![names]).pool_opts(
            PoolOpts::default()
                .with_constraints(constraints)
                // Without an idle TTL the pool keeps only `min` (0) idle connections and closes
                // every other one on return: a new TCP connection and handshake per query.
                .with_inactive_connection_ttl(IDLE_CONNECTION_TTL)
                // No session state is left behind, so skip the reset round trip on every return.
                .with_reset_connection(false),
        );
        Ok(Store {
            pool: Pool::new(opts),
            timeout,
        })
    }

    /// Stores a message as `AJsendmsg.php` did.
    pub async fn insert_message(
        &self,
        recipient: &[u8],
        sender: &[u8],
        content: &[u8],
    ) -> Result<(), Error> {
        self.bounded(async {
            let mut conn = self.pool.get_conn().await?;
            conn.exec_drop(INSERT, (recipient, sender, content)).await?;
            Ok(())
        })
        .await
    }

    /// Marks the oldest unread message for `recipient` as read and returns it as it was before
    /// (`isread` still `0`, as the legacy fetched it before its UPDATE). `None` when there is none.
    pub async fn claim_oldest_unread(&self, recipient: &[u8]) -> Result<Option<Message>, Error> {
        self.bounded(async {
            let mut conn = self.pool.get_conn().await?;
            loop {
                let Some(mid) = conn
                    .exec_first::<u64, _, _>(OLDEST_UNREAD, (recipient,))
                    .await?
                else {
                    return Ok(None);
                };
                // The text protocol formats every value exactly as mysql_fetch_assoc saw it
                // (dates, decimals, floats), which typed binary values would have to imitate.
                // `mid` is an integer we just read, so nothing user-controlled enters this SQL.
                let Some(row) = conn
                    .query_first::<Row, _>(format!("SELECT * FROM msg WHERE mid = {mid}"))
                    .await?
                else {
                    continue;
                };
                conn.exec_drop(CLAIM, (mid,)).await?;
                if conn.affected_rows() == 1 {
                    return Ok(Some(Message {
                        mid,
                        columns: php_strings(row),
                    }));
                }
                // Another waiter claimed it first; try the next one.
            }
        })
        .await
    }

    /// Makes a claimed message unread again.
    pub async fn release(&self, mid: u64) -> Result<(), Error> {
        self.bounded(async {
            let mut conn = self.pool.get_conn().await?;
            conn.exec_drop(RELEASE, (mid,)).await?;
            Ok(())
        })
        .await
    }

    /// Rows with `mid` above `after`, oldest first, at most `limit`; plus the newest row.
    pub async fn rows_after(&self, after: u64, limit: u64) -> Result<Vec<RecentRow>, Error> {
        self.bounded(async {
            let mut conn = self.pool.get_conn().await?;
            let rows = conn
                .exec_map(
                    NEWER_THAN,
                    (after, limit),
                    |(mid, rec, isread): (u64, Option<Vec<u8>>, Option<i64>)| RecentRow {
                        mid,
                        recipient: rec.unwrap_or_default(),
                        is_read: isread.unwrap_or(0) != 0,
                    },
                )
                .await?;
            Ok(rows)
        })
        .await
    }

    /// Closes every pooled connection.
    pub async fn close(self) {
        if let Err(err) = self.pool.disconnect().await {
            tracing::debug!(%err, "closing the database pool");
        }
    }

    async fn bounded<T>(&self, work: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(Error::DbTimeout))
    }
}

/// The one place a fetched row becomes PHP's "every value is a string" array.
fn php_strings(row: Row) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let names: Vec<Vec<u8>> = row
        .columns_ref()
        .iter()
        .map(|column| column.name_ref().to_vec())
        .collect();
    names
        .into_iter()
        .zip(row.unwrap())
        .map(|(name, value)| {
            let value = match value {
                Value::NULL => None,
                Value::Bytes(bytes) => Some(bytes),
                // The text protocol only yields bytes or NULL; anything else is formatted as SQL.
                other => Some(other.as_sql(true).into_bytes()),
            };
            (name, value)
        })
        .collect()
}
