//! The store: the only module with SQL in it. Every statement that carries user input is
//! parameterized, so text that broke or injected the legacy's string-built SQL is stored literally.
//!
//! The table is the operator's: extra columns, either engine, utf8 or utf8mb4. Nothing here
//! creates or alters it.
//!
//! - `sql`: every statement, with the reason for its shape.
//! - `insert`: sends, single or batched, committed patiently.
//! - `claim`: claims, open until delivery commits them; rows as `mysql_fetch_assoc` saw them.
//! - `scan`: reading without claiming (the unread scan, new rows, rows by id).
//! - `table`: what the operator's table is like (engine, auto-increment, `rec`'s collation).
//! - `collation`: recipients keyed as `rec`'s collation compares them.
//! - `failover`, `dburl`: the nodes and how to reach them; `own_writes`: ids inserted here.

mod claim;
pub mod collation;
pub mod dburl;
pub mod failover;
mod insert;
pub mod own_writes;
mod scan;
mod sql;
mod table;

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::shutdown::Shutdown;
use crate::store::failover::{Current, Nodes, PoolSettings};
use crate::store::own_writes::OwnWrites;

pub use claim::{Claim, Message, OpenClaim};
pub use insert::{Insert, NewMessage};
pub use scan::RecentRow;
use sql::LOCK_WAIT;

/// Bound on a COMMIT (a claim's or a send's), longer than `--db-timeout-ms`: a COMMIT cut short
/// leaves the row's state unknown until it is settled, and cannot be settled while it goes on.
/// A Galera cluster holds every commit until it has evicted a member that died
/// (`evs.inactive_timeout`, 15 s by default); riding that out gives the COMMIT's real answer.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections to the database holding `msg`: one pool per node, one node in use.
#[derive(Debug, Clone)]
pub struct Store {
    nodes: Arc<Nodes>,
    timeout: Duration,
    /// Whether the table's engine rolls back (InnoDB); MyISAM needs explicit releases.
    transactional: Arc<AtomicBool>,
    /// Whether a multi-row INSERT's ids can be known ([`AUTOINC_MODE`]); until learnt, no.
    batches: Arc<AtomicBool>,
    /// Ids inserted here, noted before their COMMIT (for the binlog follower).
    own: Arc<OwnWrites>,
}

impl Store {
    /// Prepares lazy pools, one per node `url` names; no connection is opened until the first
    /// query or probe.
    pub fn new(
        url: &str,
        legacy_charset: bool,
        max_connections: usize,
        timeout: Duration,
    ) -> Result<Store, Error> {
        // utf8mb4 keeps emoji intact; `SET NAMES utf8` is what AJconn.php sent.
        let names = if legacy_charset {
            "SET NAMES utf8"
        } else {
            "SET NAMES utf8mb4"
        };
        let settings = PoolSettings {
            setup: vec![names, LOCK_WAIT],
            max_connections,
        };
        Ok(Store {
            nodes: Arc::new(Nodes::new(url, &settings)?),
            timeout,
            transactional: Arc::new(AtomicBool::new(true)),
            batches: Arc::new(AtomicBool::new(false)),
            own: Arc::new(OwnWrites::default()),
        })
    }

    /// Probes the nodes until shutdown, keeping the store on the first ready one
    /// ([`crate::store::failover`]).
    pub async fn monitor(self, shutdown: Shutdown) {
        self.nodes.monitor(shutdown).await;
    }

    /// Waits until the nodes were probed once.
    pub async fn probed(&self) {
        self.nodes.probed().await;
    }

    /// Whether a ready database node is in use (what the health probe reports).
    pub fn is_ready(&self) -> bool {
        self.nodes.is_ready()
    }

    /// How many times the node in use has changed: a change means rows may have been claimed or
    /// written meanwhile where this instance did not look, so the watcher rescans.
    pub fn switches(&self) -> u64 {
        self.nodes.switches()
    }

    /// The node in use (`host:port`) and how to reach it on a connection of one's own.
    pub fn current_node(&self) -> (String, mysql_async::Opts) {
        self.nodes.current_opts()
    }

    /// The ids this instance inserted ([`crate::store::own_writes`]).
    pub fn own_writes(&self) -> Arc<OwnWrites> {
        Arc::clone(&self.own)
    }

    /// The pool's own counters (connections open, in use) for the node in use, for the metrics.
    pub fn pool_metrics(&self) -> Arc<mysql_async::Metrics> {
        self.current().pool.metrics()
    }

    fn current(&self) -> Current {
        self.nodes.current()
    }

    /// Closes every pooled connection.
    pub async fn close(self) {
        self.nodes.close().await;
    }

    /// Runs `work` within the timeout; a failure that may mean the node is gone sets the
    /// failover monitor probing.
    async fn bounded<T>(&self, work: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        let result = tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(Error::DbTimeout));
        if let Err(err) = &result {
            self.nodes.report(err);
        }
        result
    }
}
