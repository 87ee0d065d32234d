//! Failover between database nodes: `--database-url` may name several hosts
//! (`mysql://user@host1:3306,host2:3306/test`), each a node of one cluster (MariaDB Galera) or
//! a primary and its stand-ins. One connection pool per node; every query goes to the node in
//! use; a monitor task probes the nodes in the order given and moves to the first one that is
//! ready, so the instance moves on when its node stops answering and back when it returns.
//!
//! "Ready" is what the node says: a plain MySQL/MariaDB answering at all, a Galera node being
//! Primary and Synced (`wsrep_ready = ON`, `wsrep_local_state = 4`). A Galera node that lost its
//! quorum, or is still joining, answers most queries with "WSREP has not yet prepared node for
//! application use"; it is skipped.
//!
//! The monitor probes once a second, and at once (at most every [`MIN_PROBE_GAP`]) when a query
//! failed for a reason other than the server's own answer. Each probe is bounded by
//! [`PROBE_TIMEOUT`], so a node that hangs instead of refusing costs that long at most.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use tokio::sync::{watch, Notify};

use crate::error::Error;
use crate::shutdown::Shutdown;

/// Pause between probes while nothing goes wrong.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest pause between probes, however often queries fail.
const MIN_PROBE_GAP: Duration = Duration::from_millis(250);
/// Longest a probe of one node may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an idle pooled connection is kept before the pool trims back to none.
const IDLE_CONNECTION_TTL: Duration = Duration::from_secs(60);
/// MariaDB's ER_UNKNOWN_COM_ERROR, which a Galera node that is not ready answers
/// ("WSREP has not yet prepared node for application use").
const WSREP_NOT_READY: u16 = 1047;
/// ER_UNKNOWN_SYSTEM_VARIABLE: a server without `wsrep_on` (MySQL, MariaDB built without Galera).
const UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;

/// How each node's connections are set up.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Statements run on every new connection.
    pub setup: Vec<&'static str>,
    /// Most connections per node.
    pub max_connections: usize,
}

/// One database node.
#[derive(Debug)]
struct Node {
    /// `host:port`, for the logs.
    name: String,
    opts: Opts,
    pool: Pool,
    /// Whether it is a Galera node (learnt by its probe).
    galera: AtomicBool,
}

/// The nodes, the one in use, and whether any is ready.
#[derive(Debug)]
pub struct Nodes {
    nodes: Vec<Node>,
    current: AtomicUsize,
    /// Bumped each time the node in use changes.
    switches: AtomicU64,
    /// Whether the node in use answered its last probe as ready.
    ready: watch::Sender<Option<bool>>,
    trouble: Notify,
}

/// The pool in use and what kind of node it reaches.
#[derive(Debug, Clone)]
pub struct Current {
    /// Its connections.
    pub pool: Pool,
    /// Whether it is a Galera node (claims then replicate their lock before they commit).
    pub galera: bool,
}

impl Nodes {
    /// Pools (lazy: nothing connects until used) for every node `url` names.
    pub fn new(url: &str, settings: &PoolSettings) -> Result<Nodes, Error> {
        let constraints = PoolConstraints::new(0, settings.max_connections.max(1))
            .ok_or_else(|| Error::Config("db pool size".into()))?;
        let mut nodes = Vec::new();
        for url in node_urls(url)? {
            // TLS parameters (`require_ssl`, `ssl_ca`) apply to every node.
            let opts = crate::store::dburl::opts_from_url(&url)?;
            let name = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
            let pooled = OptsBuilder::from_opts(opts.clone())
                .setup(settings.setup.clone())
                .pool_opts(
                    PoolOpts::default()
                        .with_constraints(constraints)
                        // Without an idle TTL the pool keeps only `min` (0) idle connections and
                        // closes every other one on return: a handshake per query.
                        .with_inactive_connection_ttl(IDLE_CONNECTION_TTL)
                        // No session state is left behind, so skip the reset round trip on return.
                        .with_reset_connection(false),
                );
            nodes.push(Node {
                name,
                opts,
                pool: Pool::new(pooled),
                galera: AtomicBool::new(false),
            });
        }
        Ok(Nodes {
            nodes,
            current: AtomicUsize::new(0),
            switches: AtomicU64::new(0),
            ready: watch::Sender::new(None),
            trouble: Notify::new(),
        })
    }

    /// The node in use.
    pub fn current(&self) -> Current {
        let node = &self.nodes[self.current.load(Ordering::Relaxed)];
        Current {
            pool: node.pool.clone(),
            galera: node.galera.load(Ordering::Relaxed),
        }
    }

    /// The node in use: its `host:port` and its options, for a connection outside the pool (the
    /// binlog follower's, which becomes a replication stream and never returns to a pool).
    pub fn current_opts(&self) -> (String, Opts) {
        let node = &self.nodes[self.current.load(Ordering::Relaxed)];
        (node.name.clone(), node.opts.clone())
    }

    /// How many times the node in use has changed.
    pub fn switches(&self) -> u64 {
        self.switches.load(Ordering::Relaxed)
    }

    /// Whether a ready node is in use; `false` until the first probe has answered.
    pub fn is_ready(&self) -> bool {
        self.ready.borrow().unwrap_or(false)
    }

    /// Waits until the first probe round has ended, whatever it found.
    pub async fn probed(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(Option::is_some).await;
    }

    /// Reports a failed query: unless the server itself answered (a constraint, a deadlock), the
    /// node may be gone, so the monitor probes at once.
    pub fn report(&self, err: &Error) {
        let node_answered = match err {
            Error::Db(mysql_async::Error::Server(server)) => server.code != WSREP_NOT_READY,
            Error::Config(_) | Error::NotCommitted | Error::Abandoned => true,
            _ => false,
        };
        if !node_answered {
            self.trouble.notify_one();
        }
    }

    /// Probes until shutdown, moving to the first ready node.
    pub async fn monitor(&self, shutdown: Shutdown) {
        loop {
            self.probe_round().await;
            tokio::select! {
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
                () = self.trouble.notified() => tokio::time::sleep(MIN_PROBE_GAP).await,
                () = shutdown.wait() => return,
            }
        }
    }

    async fn probe_round(&self) {
        let mut chosen = None;
        for (index, node) in self.nodes.iter().enumerate() {
            match tokio::time::timeout(PROBE_TIMEOUT, probe(&node.opts)).await {
                Ok(Ok(Probe::Ready { galera })) => {
                    node.galera.store(galera, Ordering::Relaxed);
                    chosen = Some(index);
                    break;
                }
                Ok(Ok(Probe::NotReady(state))) => {
                    tracing::debug!(node = %node.name, %state, "database node not ready")
                }
                Ok(Err(err)) => tracing::debug!(node = %node.name, %err, "database node down"),
                Err(_) => tracing::debug!(node = %node.name, "database node did not answer"),
            }
        }
        let was_ready = *self.ready.borrow();
        match chosen {
            Some(index) => {
                let previous = self.current.swap(index, Ordering::Relaxed);
                if previous != index {
                    self.switches.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        from = %self.nodes[previous].name,
                        to = %self.nodes[index].name,
                        "switched database node"
                    );
                }
                if was_ready == Some(false) {
                    tracing::info!(node = %self.nodes[index].name, "a database node is ready again");
                }
                self.ready.send_replace(Some(true));
            }
            None => {
                if was_ready != Some(false) {
                    tracing::warn!("no database node is ready; health says 503");
                }
                self.ready.send_replace(Some(false));
            }
        }
    }

    /// Closes every pool.
    pub async fn close(&self) {
        for node in &self.nodes {
            if let Err(err) = node.pool.clone().disconnect().await {
                tracing::debug!(node = %node.name, %err, "closing a database pool");
            }
        }
    }
}

enum Probe {
    Ready { galera: bool },
    NotReady(String),
}

/// Asks one node, on a connection of its own, whether it can take queries.
async fn probe(opts: &Opts) -> Result<Probe, Error> {
    let mut conn = Conn::new(opts.clone()).await?;
    let result = async {
        // Not `SHOW VARIABLES`: that scans every variable, once a second per instance.
        let wsrep = match conn.query_first::<i64, _>("SELECT @@wsrep_on").await {
            Ok(on) => on.unwrap_or(0) != 0,
            // ER_UNKNOWN_SYSTEM_VARIABLE: MySQL, or MariaDB built without Galera.
            Err(mysql_async::Error::Server(err)) if err.code == UNKNOWN_SYSTEM_VARIABLE => false,
            Err(err) => return Err(err.into()),
        };
        if !wsrep {
            return Ok(Probe::Ready { galera: false });
        }
        let status: Vec<(String, String)> = conn
            .query("SHOW STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state')")
            .await?;
        let value = |name: &str| {
            status
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map_or("", |(_, value)| value.as_str())
        };
        // 4 = Synced. A donor or a joiner is left alone until it is back in sync.
        if value("wsrep_ready") == "ON" && value("wsrep_local_state") == "4" {
            Ok(Probe::Ready { galera: true })
        } else {
            Ok(Probe::NotReady(format!(
                "wsrep_ready={} wsrep_local_state={}",
                value("wsrep_ready"),
                value("wsrep_local_state")
            )))
        }
    }
    .await;
    let _ = conn.disconnect().await;
    result
}

/// One URL per node: `mysql://u:p@h1:1,h2:2/db?o` becomes `mysql://u:p@h1:1/db?o` and
/// `mysql://u:p@h2:2/db?o`. Several URLs separated by whitespace are also a list.
pub fn node_urls(url: &str) -> Result<Vec<String>, Error> {
    let mut urls = Vec::new();
    for one in url.split_whitespace() {
        let (scheme, rest) = one
            .split_once("://")
            .ok_or_else(|| Error::Config(format!("database URL without scheme: {one}")))?;
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let (user, hosts) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (format!("{user}@"), hosts),
            None => (String::new(), authority),
        };
        for host in hosts.split(',').filter(|host| !host.is_empty()) {
            urls.push(format!("{scheme}://{user}{host}{tail}"));
        }
    }
    if urls.is_empty() {
        return Err(Error::Config("empty database URL".into()));
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::node_urls;

    #[test]
    fn comma_separated_hosts_become_one_url_each() {
        assert_eq!(
            node_urls("mysql://root:pw@a:1,b:2/test?prefer_socket=false").expect("valid"),
            vec![
                "mysql://root:pw@a:1/test?prefer_socket=false",
                "mysql://root:pw@b:2/test?prefer_socket=false"
            ]
        );
        assert_eq!(
            node_urls("mysql://root@127.0.0.1:3306/test").expect("valid"),
            vec!["mysql://root@127.0.0.1:3306/test"]
        );
        assert_eq!(
            node_urls("mysql://a:1/x mysql://u@b/y").expect("valid"),
            vec!["mysql://a:1/x", "mysql://u@b/y"]
        );
        assert!(node_urls(" ").is_err());
        assert!(node_urls("a:1").is_err());
    }
}
