//! The only module with SQL in it. Every statement that carries user input is parameterized, so
//! text that broke or injected the legacy's string-built SQL is stored literally.
//!
//! The table is the operator's: extra columns, either engine, utf8 or utf8mb4. Nothing here
//! creates or alters it.

pub mod collation;
pub mod dburl;
pub mod failover;
pub mod own_writes;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Transaction, TxOpts, Value};

use crate::error::Error;
use crate::shutdown::Shutdown;
use crate::store::failover::{Current, Nodes, PoolSettings};
use crate::store::own_writes::OwnWrites;
use collation::Weights;

/// Locks unread rows for a claim and reads them whole, as the legacy's `select *` saw them
/// (before its UPDATE), oldest first. `mids` are integers we hold, so nothing user-controlled
/// enters this SQL; the text protocol formats every value exactly as mysql_fetch_assoc saw it
/// (dates, decimals, floats).
fn lock_unread(mids: &str) -> String {
    format!("SELECT * FROM msg WHERE mid IN ({mids}) AND isread = 0 ORDER BY mid FOR UPDATE")
}
/// [`lock_unread`] on a Galera node, once the node has applied everything the cluster ordered
/// before it (`wsrep_sync_wait`): another node's claim of these rows, certified but not yet
/// applied here, is then a lock this read waits for (and then sees the rows read), not rows it
/// reads as unread.
fn lock_unread_synced(mids: &str) -> String {
    format!(
        "SET STATEMENT wsrep_sync_wait = 1 FOR {}",
        lock_unread(mids)
    )
}
/// Conditional, so two claimants (two tabs, two instances, a MyISAM table without row locks)
/// never both win one row.
fn claim_rows(mids: &str) -> String {
    format!("UPDATE msg SET isread = 1 WHERE mid IN ({mids}) AND isread = 0")
}
/// Flags one row read outside a claim (settling one whose COMMIT went unanswered).
const CLAIM: &str = "UPDATE msg SET isread = 1 WHERE mid = ? AND isread = 0";
/// Whether row `mid` is read: how a Galera claim whose COMMIT went unanswered (its node died)
/// learns its fate. The claim's write set either reached the group before the node died, and then
/// every survivor commits it, or it never exists for them; `wsrep_sync_wait` makes the read wait
/// until this node has applied everything the cluster ordered before it, which cannot happen
/// until the dead node is evicted (the cluster stalls until then). A missing row reads as unread
/// (nothing to hand over).
fn claim_outcome(mid: u64) -> String {
    format!("SET STATEMENT wsrep_sync_wait = 1 FOR SELECT isread FROM msg WHERE mid = {mid} LOCK IN SHARE MODE")
}
/// Gives back a claimed row whose hand-over failed, where no transaction can do it for us.
const RELEASE: &str = "UPDATE msg SET isread = 0 WHERE mid = ? AND isread = 1";
const INSERT: &str = "INSERT INTO msg (rec, pos, content) VALUES (?, ?, ?)";
/// [`INSERT`] for `rows` messages at once: one statement, one commit.
fn insert_many(rows: usize) -> String {
    let mut sql = String::from(INSERT);
    for _ in 1..rows {
        sql.push_str(", (?, ?, ?)");
    }
    sql
}
/// The spacing of the ids one multi-row INSERT takes (1 unless multi-master).
const ID_STEP: &str = "SELECT @@auto_increment_increment";
/// Whether a multi-row INSERT takes evenly spaced ids: not under the interleaved mode 2 (which
/// Galera requires), where concurrent inserts may take ids in between.
const AUTOINC_MODE: &str = "SELECT @@innodb_autoinc_lock_mode";
/// Whether our row exists: how a send whose COMMIT went unanswered learns whether it was stored.
/// The id alone does not say it: when a Galera node leaves, the others recompute their
/// auto-increment offsets and may hand the id our dead node gave us to another message.
const EXISTS: &str =
    "SELECT COUNT(*) FROM msg WHERE mid = ? AND rec = ? AND pos = ? AND content = ?";
/// [`EXISTS`] on a Galera node, after the node has applied every write committed anywhere before
/// it (another node may have committed the insert just before ours went away).
const EXISTS_SYNCED: &str = "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT COUNT(*) FROM msg WHERE mid = ? AND rec = ? AND pos = ? AND content = ?";
/// Every unread row: the one scan of the table, at start-up and on resync. `rec` and `isread`
/// have no index on the operator's table, so every other lookup goes by primary key.
const UNREAD: &str = "SELECT mid, rec FROM msg WHERE isread = 0";
/// New rows above a mark. Also returns the newest row even when it is not newer, so the watcher
/// notices ids going backwards (TRUNCATE) without a second query.
const NEWER_THAN: &str =
    "SELECT mid, rec, isread FROM msg WHERE mid > ? OR mid = (SELECT MAX(mid) FROM msg) ORDER BY mid LIMIT ?";
/// The charset and collation `rec = ?` compares with (both NULL for a binary column).
const REC_COLLATION: &str = "SELECT CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'msg' AND COLUMN_NAME = 'rec'";

/// `SELECT … n` for the `16^digits` integers from `first`, in any MySQL or MariaDB (no sequence
/// engine, no recursion limit): a cross join of one sixteen-row table per hexadecimal digit.
fn numbers(first: u32, digits: u32) -> String {
    let sixteen = (1..16).fold("SELECT 0 d".to_owned(), |sql, d| {
        sql + &format!(" UNION ALL SELECT {d}")
    });
    let terms: Vec<String> = (0..digits)
        .map(|i| format!("{}*h{i}.d", 16u64.pow(i)))
        .collect();
    let tables: Vec<String> = (0..digits).map(|i| format!("({sixteen}) h{i}")).collect();
    format!(
        "SELECT {first} + {} AS n FROM {}",
        terms.join(" + "),
        tables.join(" CROSS JOIN ")
    )
}

/// Whether the table can roll a claim back (InnoDB) or not (MyISAM).
const ENGINE: &str = "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'msg'";
/// Lock waits end in an error well before `--db-timeout-ms` would cut the connection, so a row
/// locked by someone else costs one clean error, not a broken connection.
const LOCK_WAIT: &str = "SET SESSION innodb_lock_wait_timeout = 1";

/// Bound on a COMMIT (a claim's or a send's), longer than `--db-timeout-ms`: a COMMIT cut short
/// leaves the row's state unknown until it is settled, and cannot be settled while it goes on.
/// A Galera cluster holds every commit until it has evicted a member that died
/// (`evs.inactive_timeout`, 15 s by default); riding that out gives the COMMIT's real answer.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest pause between attempts to learn an insert's outcome while the database is away.
const MAX_RESOLVE_PAUSE: Duration = Duration::from_secs(2);

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

    /// Learns the table's engine (once the database answers). Until then claims assume InnoDB.
    pub async fn detect_engine(&self) -> Result<(), Error> {
        let engine: Option<String> = self
            .bounded(async {
                let mut conn = self.current().pool.get_conn().await?;
                Ok(conn.query_first(ENGINE).await?)
            })
            .await?;
        let transactional = !engine.as_deref().is_some_and(|engine| {
            engine.eq_ignore_ascii_case("MyISAM")
                || engine.eq_ignore_ascii_case("MEMORY")
                || engine.eq_ignore_ascii_case("ARIA")
        });
        if !transactional {
            tracing::warn!(
                ?engine,
                "msg is not transactional: a crash mid-delivery can lose the messages in flight"
            );
        }
        self.transactional.store(transactional, Ordering::Relaxed);
        let mode: Option<u64> = self
            .bounded(async {
                let mut conn = self.current().pool.get_conn().await?;
                Ok(conn.query_first(AUTOINC_MODE).await?)
            })
            .await?;
        self.batches.store(
            transactional && mode.is_some_and(|mode| mode < 2),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// How MariaDB compares `msg.rec` ([`crate::store::collation`]): the column's collation, asked for
    /// the weight of every character; `None` while there is no `msg` table to ask about.
    pub async fn rec_weights(&self) -> Result<Option<Arc<Weights>>, Error> {
        let found: Option<(Option<String>, Option<String>)> = self
            .bounded(async {
                let mut conn = self.current().pool.get_conn().await?;
                Ok(conn.query_first(REC_COLLATION).await?)
            })
            .await?;
        let Some((charset, collation)) = found else {
            return Ok(None);
        };
        let (Some(charset), Some(collation)) = (charset, collation) else {
            return Ok(Some(Arc::new(Weights::bytes())));
        };
        let is_name = |name: &str| name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !is_name(&charset) || !is_name(&collation) {
            return Err(Error::Config(format!(
                "msg.rec has an unexpected collation name {collation:?}"
            )));
        }
        if let Some(known) = collation::cached(&collation) {
            return Ok(Some(known));
        }
        // Every code point once: a scan of numbers, not of the table, but not a request's query.
        let learn = async {
            let mut conn = self.current().pool.get_conn().await?;
            let weigh = format!(
                "WEIGHT_STRING(CONVERT(CHAR(n USING utf32) USING {charset}) COLLATE {collation})"
            );
            let pad_space: Option<bool> = conn
                .query_first(format!(
                    "SELECT CONVERT('a' USING {charset}) COLLATE {collation} = CONVERT('a ' USING {charset})"
                ))
                .await?;
            // A character the column cannot hold converts to `?`, and back it is not itself.
            let weighed = |numbers: String| {
                format!(
                    "SELECT n, IF(CONVERT(CONVERT(CHAR(n USING utf32) USING {charset}) USING utf32) \
                     = CHAR(n USING utf32), {weigh}, NULL) FROM ({numbers}) t ORDER BY n"
                )
            };
            let basic: Vec<(u32, Option<Vec<u8>>)> = conn.query(weighed(numbers(0, 4))).await?;
            let holds_astral: Option<bool> = conn
                .query_first(format!(
                    "SELECT CONVERT(CONVERT(CHAR(128512 USING utf32) USING {charset}) USING utf32) = CHAR(128512 USING utf32)"
                ))
                .await?;
            let astral = match holds_astral.unwrap_or(false) {
                false => None,
                true => {
                    let astral = numbers(0x1_0000, 5);
                    let (distinct, same): (u64, Option<Vec<u8>>) = conn
                        .query_first(format!(
                            "SELECT COUNT(DISTINCT w), MIN(w) FROM (SELECT {weigh} w FROM ({astral}) t) w"
                        ))
                        .await?
                        .unwrap_or_default();
                    Some(match (distinct, same) {
                        (1, Some(same)) => Ok(same),
                        _ => Err(conn.query(weighed(astral)).await?),
                    })
                }
            };
            Ok::<_, Error>(Weights::chars(
                collation.clone(),
                pad_space.unwrap_or(true),
                &basic,
                astral,
            ))
        };
        let weights = tokio::time::timeout(self.timeout * 20, learn)
            .await
            .unwrap_or(Err(Error::DbTimeout))?;
        Ok(Some(collation::remember(weights)))
    }

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
    async fn commit_patiently(
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

    /// Every unread row's id and recipient: one scan of the table.
    pub async fn unread(&self) -> Result<Vec<(u64, Vec<u8>)>, Error> {
        // A large table takes a while to scan; this is not a request's deadline.
        let scan = async {
            let mut conn = self.current().pool.get_conn().await?;
            let rows = conn
                .query_map(UNREAD, |(mid, rec): (u64, Option<Vec<u8>>)| {
                    (mid, rec.unwrap_or_default())
                })
                .await?;
            Ok(rows)
        };
        let result = tokio::time::timeout(self.timeout * 20, scan)
            .await
            .unwrap_or(Err(Error::DbTimeout));
        if let Err(err) = &result {
            self.nodes.report(err);
        }
        result
    }

    /// Rows with `mid` above `after`, oldest first, at most `limit`; plus the newest row.
    pub async fn rows_after(&self, after: u64, limit: u64) -> Result<Vec<RecentRow>, Error> {
        self.bounded(async {
            let mut conn = self.current().pool.get_conn().await?;
            Ok(conn
                .exec_map(NEWER_THAN, (after, limit), recent_row)
                .await?)
        })
        .await
    }

    /// The rows among `mids` (ascending) that exist now: late commits filling holes.
    pub async fn rows_among(&self, mids: &[u64]) -> Result<Vec<RecentRow>, Error> {
        if mids.is_empty() {
            return Ok(Vec::new());
        }
        // Integers we hold, so they are safe to inline. Runs of ids become ranges: one index
        // dive each, however long the run (a bulk insert can leave thousands of ids unused).
        let ranges = id_ranges(mids)
            .into_iter()
            .map(|(first, last)| format!("mid BETWEEN {first} AND {last}"))
            .collect::<Vec<_>>()
            .join(" OR ");
        self.bounded(async {
            let mut conn = self.current().pool.get_conn().await?;
            Ok(conn
                .query_map(
                    format!("SELECT mid, rec, isread FROM msg WHERE {ranges}"),
                    recent_row,
                )
                .await?)
        })
        .await
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

/// Opens a claim's transaction in the same round trip as its first statements: mysql_async's
/// `start_transaction` is a round trip of its own, and the database's cost of a claim is mostly
/// waking its thread once per round trip (a 5,000-poll burst profiled so).
const BEGIN: &str = "START TRANSACTION";

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

/// Ascending ids as runs of consecutive ids, `(first, last)`.
fn id_ranges(mids: &[u64]) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &mid in mids {
        match ranges.last_mut() {
            Some((_, last)) if *last + 1 == mid => *last = mid,
            _ => ranges.push((mid, mid)),
        }
    }
    ranges
}

fn recent_row((mid, rec, isread): (u64, Option<Vec<u8>>, Option<i64>)) -> RecentRow {
    RecentRow {
        mid,
        recipient: rec.unwrap_or_default(),
        is_read: isread.unwrap_or(0) != 0,
    }
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

#[cfg(test)]
mod tests {
    use super::id_ranges;

    #[test]
    fn runs_of_ids_become_ranges() {
        assert_eq!(id_ranges(&[2, 3, 5, 6, 7, 9]), vec![(2, 3), (5, 7), (9, 9)]);
        assert!(id_ranges(&[]).is_empty());
    }
}
