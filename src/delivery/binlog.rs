//! Push from the binary log: a follower task that reads the database's binlog as a replica
//! would and nudges the watcher the moment a row is written into `msg`, so rows from other
//! writers wake their recipients within milliseconds and an idle instance runs no polling query.
//!
//! The binlog only replaces the watcher's timer, not its reading: the watcher still reads new
//! rows by primary key, keeps its holes and the unread index ([`crate::delivery::watcher`]). That keeps
//! one source of truth for what is unread, and a missed or late event costs latency, never a
//! message: whenever the follower is not live (not started yet, connection lost, node switched,
//! binlog purged) the watcher ticks on its interval, and it ticks once each time the follower
//! goes live or stops being live, so rows written in between are read.
//!
//! Only other writers' inserts nudge (write-rows events). A claim is an UPDATE, so nudging on
//! updates would cost a tick per delivery; rows set unread again by hand are left to the rescan,
//! as before. This instance's own inserts are already indexed and woken, so they are recognised
//! by id ([`crate::store::own_writes`]) and cost nothing either.
//!
//! The follower has its own connection, outside the pool (a replication stream never returns
//! to a pool), to the node the store uses; it starts at the binlog's current end (`SHOW MASTER
//! STATUS`) under a random server id (MariaDB ends the older of two dumps with one id) and asks
//! for a heartbeat, so a stream that went silent is noticed and replaced.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::binlog::events::{Event, EventData, RowsEventData};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Row, Value};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{watch, Notify};

use crate::config::Push;
use crate::delivery::hub::Hub;
use crate::shutdown::Shutdown;
use crate::store::own_writes::OwnWrites;
use crate::store::Store;

/// The table whose inserts nudge.
const TABLE: &[u8] = b"msg";
/// What the follower needs of the database before it can follow.
const SETTINGS: &str = "SELECT @@log_bin, @@binlog_format";
/// Where `mid` is among `msg`'s columns: row events carry values by position, not by name.
const MID_COLUMN: &str = "SELECT ORDINAL_POSITION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'msg' AND COLUMN_NAME = 'mid'";
/// The binlog's current end (MariaDB 10.x, MySQL before 8.4).
const MASTER_STATUS: &str = "SHOW MASTER STATUS";
/// The same where `SHOW MASTER STATUS` is gone (MariaDB 11.x also accepts this name).
const BINLOG_STATUS: &str = "SHOW BINARY LOG STATUS";
/// How often the server sends a heartbeat while it has nothing to send (MariaDB reads this user
/// variable, in nanoseconds, when the dump starts).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which the stream is taken for dead: a few heartbeats missed.
const SILENCE: Duration = Duration::from_secs(4);
/// First pause before following again after the stream ended.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// ER_PARSE_ERROR: the server does not know this statement (`SHOW MASTER STATUS` on MySQL 8.4).
const PARSE_ERROR: u16 = 1064;

/// Why the binlog cannot be followed, or stopped being followed.
#[derive(Debug)]
pub enum Error {
    /// The database does not allow it (log_bin off, not ROW, missing privilege): no retry soon
    /// will change that.
    Refused(String),
    /// The connection failed or broke.
    Db(mysql_async::Error),
    /// Connecting or starting the stream took longer than `--db-timeout-ms`.
    Timeout,
    /// Neither an event nor a heartbeat came for [`SILENCE`].
    Silent,
    /// The server ended the stream.
    Ended,
    /// The store moved to another node; the stream follows the old one.
    NodeSwitched,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Refused(why) => f.write_str(why),
            Error::Db(err) => write!(f, "database: {}", crate::error::Redacted(err)),
            Error::Timeout => f.write_str("the database did not answer in time"),
            Error::Silent => write!(f, "no event or heartbeat for {} s", SILENCE.as_secs()),
            Error::Ended => f.write_str("the server ended the stream"),
            Error::NodeSwitched => f.write_str("the database node changed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Db(err) => Some(err),
            _ => None,
        }
    }
}

impl From<mysql_async::Error> for Error {
    fn from(err: mysql_async::Error) -> Self {
        Error::Db(err)
    }
}

/// What passes from the follower to the watcher: nudges, and whether nudges can be relied on.
#[derive(Debug)]
pub struct Feed {
    nudge: Notify,
    /// The highest id the binlog showed written. The binlog is written before the engine
    /// commits (two-phase commit), so a tick may run before the row is visible: the watcher
    /// looks again, soon, until it has read up to here.
    expected: AtomicU64,
    live: watch::Sender<bool>,
    gauge: Gauge,
}

impl Feed {
    /// A feed that is not live; `gauge` mirrors whether it is.
    pub fn new(gauge: Gauge) -> Arc<Feed> {
        Arc::new(Feed {
            nudge: Notify::new(),
            expected: AtomicU64::new(0),
            live: watch::Sender::new(false),
            gauge,
        })
    }

    /// Asks the watcher for a tick. Nudges while it is busy coalesce into one more tick (a
    /// stored permit), which is what a row committed during a tick needs.
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// A nudge for rows up to id `mid` (0 when the ids could not be read from the event).
    pub fn nudge_for(&self, mid: u64) {
        self.expected.fetch_max(mid, Ordering::SeqCst);
        self.nudge();
    }

    /// The highest id the binlog showed written.
    pub fn expected(&self) -> u64 {
        self.expected.load(Ordering::SeqCst)
    }

    /// Gives up waiting for ids above `high` that were `expected` (deleted before they were
    /// read, or the table was emptied): they stop making the watcher look again. A newer
    /// nudge is kept.
    pub fn settle(&self, expected: u64, high: u64) {
        let _ = self
            .expected
            .compare_exchange(expected, high, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Resolves at the next nudge.
    pub async fn nudged(&self) {
        self.nudge.notified().await;
    }

    /// Subscribes to whether the feed is live.
    pub fn watch_live(&self) -> watch::Receiver<bool> {
        self.live.subscribe()
    }

    fn set_live(&self, live: bool) {
        self.gauge.set(i64::from(live));
        self.live
            .send_if_modified(|was| std::mem::replace(was, live) != live);
    }
}

/// The feed is live while this is held: dropped when the stream ends, at shutdown, and also if
/// the follower panics, so the watcher is never left waiting for nudges that cannot come.
struct Live<'a>(&'a Feed);

impl<'a> Live<'a> {
    fn on(feed: &'a Feed) -> Live<'a> {
        feed.set_live(true);
        Live(feed)
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.set_live(false);
    }
}

/// Where the follower starts once the mode is binlog.
pub enum Start {
    /// With the stream opened while deciding.
    Streaming(Box<Session>),
    /// The database did not answer yet: with connecting.
    Connecting,
}

/// A stream that has delivered its first event, on node `node`.
pub struct Session {
    stream: BinlogStream,
    node: String,
    /// The store's node switches when the stream was opened.
    switches: u64,
    /// Where `mid` is among the table's columns, if the table was found.
    mid_column: Option<usize>,
}

/// Follows the binlog of the store's node and nudges the watcher.
pub struct Follower {
    store: Store,
    hub: Arc<Hub>,
    feed: Arc<Feed>,
    /// Rows this instance wrote, which need no nudge.
    own: Arc<OwnWrites>,
    /// The database whose `msg` is ours (other databases on the server have theirs).
    database: Vec<u8>,
    timeout: Duration,
}

impl Follower {
    /// A follower for `store`'s database; nothing connects yet.
    pub fn new(store: Store, hub: Arc<Hub>, feed: Arc<Feed>, timeout: Duration) -> Follower {
        let (_, opts) = store.current_node();
        let database = opts.db_name().unwrap_or_default();
        Follower {
            own: store.own_writes(),
            store,
            hub,
            feed,
            database: database.as_bytes().to_vec(),
            timeout,
        }
    }

    /// Decides the mode at start-up and logs it in one line: `None` for the watcher's timer,
    /// else where [`Follower::spawn`] starts. `--push binlog` on a database that answers but
    /// does not allow it is an error (the operator asked for push and would silently get
    /// polling); a database that does not answer yet does not stop the start, as elsewhere: the
    /// follower keeps trying.
    pub async fn decide(&self, push: Push) -> Result<Option<Start>, crate::Error> {
        if push == Push::Watcher {
            tracing::info!("push: watcher (--push watcher)");
            return Ok(None);
        }
        match self.open().await {
            Ok(session) => {
                tracing::info!("push: binlog (ROW) on node {}", session.node);
                Ok(Some(Start::Streaming(Box::new(session))))
            }
            Err(Error::Refused(why)) if push == Push::Auto => {
                tracing::info!("push: watcher ({why})");
                Ok(None)
            }
            Err(Error::Refused(why)) => Err(crate::Error::Config(format!("--push binlog: {why}"))),
            Err(err) => {
                tracing::warn!(%err, "push: binlog not reachable yet; the watcher ticks on its interval until it is");
                Ok(Some(Start::Connecting))
            }
        }
    }

    /// Follows from `start` until shutdown.
    pub fn spawn(self, start: Start, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        self.own.activate();
        let first = match start {
            Start::Streaming(session) => Some(*session),
            Start::Connecting => None,
        };
        tokio::spawn(self.run(first, shutdown))
    }

    /// Follows until shutdown, reconnecting with backoff; the feed is live only while a stream is.
    async fn run(self, mut session: Option<Session>, shutdown: Shutdown) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let opened = match session.take() {
                Some(session) => Ok(session),
                None => tokio::select! {
                    opened = self.open() => opened,
                    () = shutdown.wait() => return,
                },
            };
            let ended = match opened {
                Ok(session) => {
                    if backoff > MIN_BACKOFF {
                        tracing::info!("push: binlog (ROW) on node {} again", session.node);
                    }
                    backoff = MIN_BACKOFF;
                    let _live = Live::on(&self.feed);
                    tokio::select! {
                        ended = self.follow(session) => ended,
                        () = shutdown.wait() => return,
                    }
                }
                Err(err) => err,
            };
            // One warning per outage; the retries that follow are debug lines.
            if backoff == MIN_BACKOFF {
                tracing::warn!(err = %ended, "push: binlog not followed; the watcher ticks on its interval meanwhile");
            } else {
                tracing::debug!(err = %ended, "push: binlog still not followed");
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.wait() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Connects to the node in use, checks it allows following, and starts at the binlog's end,
    /// all within `--db-timeout-ms`.
    async fn open(&self) -> Result<Session, Error> {
        tokio::time::timeout(self.timeout, self.open_unbounded())
            .await
            .map_err(|_| Error::Timeout)?
    }

    async fn open_unbounded(&self) -> Result<Session, Error> {
        let switches = self.store.switches();
        let (node, opts) = self.store.current_node();
        let mut conn = Conn::new(opts).await?;
        let (file, position) = end_of_binlog(&mut conn).await?;
        let mid_column: Option<u64> = conn
            .exec_first(
                MID_COLUMN,
                (String::from_utf8_lossy(&self.database).as_ref(),),
            )
            .await?;
        conn.query_drop(format!(
            "SET @master_heartbeat_period = {}",
            HEARTBEAT.as_nanos()
        ))
        .await?;
        // Far from the ids replicas are given by hand, and random: two instances (or an old
        // stream not yet ended) never share one.
        let server_id = fastrand::u32(1 << 24..u32::MAX);
        let request = BinlogStreamRequest::new(server_id)
            .with_filename(&file)
            .with_pos(position);
        let mut stream = conn.get_binlog_stream(request).await.map_err(refusal)?;
        // The server answers a dump it refuses with an error as its first packet; the first
        // event (a rotate to our file) says it is streaming.
        match stream.next().await {
            None => return Err(Error::Ended),
            Some(Err(err)) => return Err(refusal(err)),
            Some(Ok(_)) => {}
        }
        Ok(Session {
            stream,
            node,
            switches,
            mid_column: mid_column.and_then(|at| usize::try_from(at.checked_sub(1)?).ok()),
        })
    }

    /// Reads events until the stream fails; nudges the watcher for each write into our `msg`.
    async fn follow(&self, mut session: Session) -> Error {
        loop {
            let event = match tokio::time::timeout(SILENCE, session.stream.next()).await {
                Err(_) => return Error::Silent,
                Ok(None) => return Error::Ended,
                Ok(Some(Err(err))) => return Error::Db(err),
                Ok(Some(Ok(event))) => event,
            };
            if self.store.switches() != session.switches {
                return Error::NodeSwitched;
            }
            // The table is known current up to this event: the watcher's lag stays honest while
            // it runs no query.
            self.hub.mark_pass();
            if let Some(mid) = self.written(&session, &event) {
                self.feed.nudge_for(mid);
            }
        }
    }

    /// For a write into our `msg` by another writer: the highest id it wrote (0 if unreadable);
    /// `None` for anything else, this instance's own rows included (already indexed and woken).
    fn written(&self, session: &Session, event: &Event) -> Option<u64> {
        let Ok(Some(EventData::RowsEvent(
            rows @ (RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_)),
        ))) = event.read_data()
        else {
            return None;
        };
        let table = session.stream.get_tme(rows.table_id())?;
        if table.table_name_raw() != TABLE || table.database_name_raw() != self.database {
            return None;
        }
        let Some(column) = session.mid_column else {
            return Some(0);
        };
        let mut others = None;
        for row in rows.rows(table) {
            let mid = match row.ok().and_then(|(_, after)| mid_of(after?, column)) {
                Some(mid) => mid,
                // An id we cannot read may be anyone's: wake the watcher, expect nothing.
                None => return Some(0),
            };
            if !self.own.take(mid) {
                others = others.max(Some(mid));
            }
        }
        tracing::trace!(mid = others, "binlog: rows written into msg by others");
        others
    }
}

/// The `mid` of a written row, `column` being its position.
fn mid_of(row: BinlogRow, column: usize) -> Option<u64> {
    match row.as_ref(column)? {
        BinlogValue::Value(Value::Int(mid)) => u64::try_from(*mid).ok(),
        BinlogValue::Value(Value::UInt(mid)) => Some(*mid),
        _ => None,
    }
}

/// The binlog's current file and position, or why it cannot be followed.
async fn end_of_binlog(conn: &mut Conn) -> Result<(Vec<u8>, u64), Error> {
    let settings: Option<(Option<u64>, Option<String>)> = conn.query_first(SETTINGS).await?;
    let (log_bin, format) = settings.unwrap_or_default();
    if log_bin != Some(1) {
        return Err(Error::Refused("log_bin is off".into()));
    }
    let format = format.unwrap_or_default();
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(Error::Refused(format!(
            "binlog_format is {format}, not ROW"
        )));
    }
    let status: Option<Row> = match conn.query_first(MASTER_STATUS).await {
        Err(mysql_async::Error::Server(err)) if err.code == PARSE_ERROR => {
            conn.query_first(BINLOG_STATUS).await.map_err(refusal)?
        }
        other => other.map_err(refusal)?,
    };
    status
        .and_then(|row| Some((row.get::<Vec<u8>, _>(0)?, row.get::<u64, _>(1)?)))
        .ok_or_else(|| Error::Refused("the server reports no binlog position".into()))
}

/// A server's answer to a binlog request is "not allowed" (a missing privilege, a purged log);
/// anything else (a broken connection) may pass.
fn refusal(err: mysql_async::Error) -> Error {
    match err {
        mysql_async::Error::Server(err) => Error::Refused(format!(
            "not allowed to read the binlog ({} {}): grant REPLICATION SLAVE and REPLICATION CLIENT",
            err.code,
            crate::error::without_user(&err.message)
        )),
        other => Error::Db(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nudges_coalesce_and_remember_the_highest_id() {
        let feed = Feed::new(Gauge::default());
        feed.nudge_for(7);
        feed.nudge_for(5);
        assert_eq!(feed.expected(), 7);
        // Both nudges came while nobody waited: one stored permit, one tick.
        tokio::time::timeout(Duration::from_secs(1), feed.nudged())
            .await
            .expect("a stored nudge");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), feed.nudged())
                .await
                .is_err(),
            "a second tick for the same nudges"
        );
    }

    #[test]
    fn settling_never_forgets_a_newer_nudge() {
        let feed = Feed::new(Gauge::default());
        feed.nudge_for(9);
        feed.settle(9, 4);
        assert_eq!(feed.expected(), 4);
        feed.nudge_for(12);
        feed.settle(9, 4);
        assert_eq!(feed.expected(), 12, "settled from a stale value");
    }

    #[test]
    fn live_changes_reach_the_watcher_and_the_gauge() {
        let gauge = Gauge::default();
        let feed = Feed::new(gauge.clone());
        let mut live = feed.watch_live();
        feed.set_live(true);
        assert!(live.has_changed().expect("sender alive"));
        assert!(*live.borrow_and_update());
        assert_eq!(gauge.get(), 1);
        feed.set_live(true);
        assert!(
            !live.has_changed().expect("sender alive"),
            "no change, no tick"
        );
        feed.set_live(false);
        assert_eq!(gauge.get(), 0);
    }
}
