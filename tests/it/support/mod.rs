//! Shared test harness: a fresh database per test on the real MariaDB, a real server on an
//! ephemeral port, a raw HTTP/1.1 client that sees exact bytes, and a cuttable TCP proxy in front
//! of MySQL for outage tests.
//!
//! The database server comes from `TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`).
//! When it is unreachable the tests fail loudly; they never skip.

pub mod mariadb;
pub mod php_fpm;
pub mod process;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_compat::http::Exchange;
use chat_server::{Config, Hub};
use clap::Parser;
use mysql_async::prelude::Queryable;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The database server the tests use, without a database (`TEST_MYSQL_URL`).
pub fn mysql_base_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// The repository's own copy of the legacy site.
pub fn legacy_site() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/compat/legacy-site"))
}

/// The schema file shipped in `sql/`.
pub fn schema_sql() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/schema.sql"))
        .expect("sql/schema.sql")
}

/// A uniquely named database, dropped when the value is.
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// `mysql://…/name`.
    pub url: String,
    /// The server's URL without a database.
    base: String,
    pool: mysql_async::Pool,
}

impl TestDb {
    /// An empty database (no table).
    pub async fn create() -> TestDb {
        Self::create_on(&mysql_base_url()).await
    }

    /// An empty database on the server at `base` (`mysql://user@host:port`).
    pub async fn create_on(base: &str) -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "chat_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let base = base.to_owned();
        let mut admin = mysql_async::Conn::from_url(&base)
            .await
            .unwrap_or_else(|err| panic!("MariaDB must be running at {base} for the tests: {err}"));
        admin
            .query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .await
            .expect("create database");
        admin.disconnect().await.expect("disconnect");
        let url = format!("{base}/{name}");
        let pool = mysql_async::Pool::new(
            mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&url).expect("url"))
                .setup(vec!["SET NAMES utf8mb4"]),
        );
        TestDb {
            name,
            url,
            base,
            pool,
        }
    }

    /// A database with the shipped `msg` table.
    pub async fn with_schema() -> TestDb {
        Self::with_schema_on(&mysql_base_url()).await
    }

    /// A database with the shipped `msg` table on the server at `base`.
    pub async fn with_schema_on(base: &str) -> TestDb {
        let db = TestDb::create_on(base).await;
        db.exec(&schema_sql()).await;
        db
    }

    /// Runs SQL on a connection of its own (another writer, from the server's point of view).
    pub async fn exec(&self, sql: &str) {
        let mut conn = self.conn().await;
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// A fresh connection to this database.
    pub async fn conn(&self) -> mysql_async::Conn {
        self.pool.get_conn().await.expect("test connection")
    }

    /// The table as `(mid, rec, pos, content, isread)` rows, in id order, once the claims still
    /// committing have committed (a locking read waits for them: the server sends a message's
    /// COMMIT together with its bytes, so a client can hold the answer a moment before).
    pub async fn messages(&self) -> Vec<(u64, String, String, Option<String>, i64)> {
        let mut conn = self.conn().await;
        conn.query("SELECT mid, rec, pos, content, isread FROM msg ORDER BY mid LOCK IN SHARE MODE")
            .await
            .expect("select messages")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        clean_up(
            &self.base,
            format!("DROP DATABASE IF EXISTS `{}`", self.name),
        );
    }
}

/// Runs `sql` on the server at `base`, from a `Drop` (outside async context: a short-lived
/// runtime on its own thread); failures are ignored, as a clean-up's should be.
pub fn clean_up(base: &str, sql: String) {
    let base = base.to_owned();
    let _ = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            if let Ok(mut conn) = mysql_async::Conn::from_url(&base).await {
                let _ = conn.query_drop(sql).await;
                let _ = conn.disconnect().await;
            }
        });
    })
    .join();
}

/// A real server on 127.0.0.1:0.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Its hub, to see who is waiting.
    pub hub: Arc<Hub>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), chat_server::Error>>>,
}

impl TestServer {
    /// Starts a server on `db` with the bundled legacy site.
    pub async fn start(db: &TestDb) -> TestServer {
        Self::start_with(db, |_| {}).await
    }

    /// Starts a server, letting the test add or override flags.
    pub async fn start_with(db: &TestDb, adjust: impl FnOnce(&mut Vec<String>)) -> TestServer {
        Self::start_on_url(&db.url, adjust).await
    }

    /// Starts a server on an arbitrary database URL (e.g. through a [`DbProxy`]).
    pub async fn start_on_url(url: &str, adjust: impl FnOnce(&mut Vec<String>)) -> TestServer {
        let mut args: Vec<String> = [
            "chat-server",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            url,
            "--site",
            legacy_site().to_str().expect("utf8 path"),
            "--watch-interval-ms",
            "50",
            "--db-timeout-ms",
            "2000",
            "--shutdown-grace-ms",
            "2000",
        ]
        .map(String::from)
        .to_vec();
        adjust(&mut args);
        let config = Config::parse_from(args);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hub = Hub::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(chat_server::run_with_hub(
            listener,
            config,
            Arc::clone(&hub),
            async move {
                let _ = stopped.await;
            },
        ));
        let server = TestServer {
            addr,
            base_url: format!("http://{addr}"),
            hub,
            stop: Some(stop),
            handle: Some(handle),
        };
        wait_until("the watcher's first successful query", || {
            server.hub.is_watching()
        })
        .await;
        server
    }

    /// Fires the shutdown signal and waits for the server to finish.
    pub async fn stop(mut self) {
        self.stop.take().map(|stop| stop.send(()));
        let handle = self.handle.take().expect("running");
        tokio::time::timeout(DEADLINE, handle)
            .await
            .expect("server did not stop within the deadline")
            .expect("server task panicked")
            .expect("server returned an error");
    }

    /// Sends one raw request and reads the whole response.
    pub async fn send(&self, raw: impl AsRef<[u8]>) -> RawResponse {
        within(
            DEADLINE,
            "response",
            RawResponse::exchange(self.addr, raw.as_ref()),
        )
        .await
    }

    /// A GET with optional cookie header.
    pub async fn get(&self, path: &str, cookie: Option<&str>) -> RawResponse {
        self.send(get_request(path, cookie)).await
    }

    /// A form POST to a path.
    pub async fn post_form(&self, path: &str, cookie: Option<&str>, body: &[u8]) -> RawResponse {
        self.send(form_request(path, cookie, body)).await
    }

    /// Waits until `count` requests wait for `recipient`.
    pub async fn wait_for_waiters(&self, recipient: &str, count: usize) {
        wait_until(&format!("{count} waiter(s) for {recipient}"), || {
            self.hub.waiter_count(recipient.as_bytes()) == count
        })
        .await;
    }
}

/// `GET path` with `Connection: close` and an optional cookie.
pub fn get_request(path: &str, cookie: Option<&str>) -> Vec<u8> {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Connection: close\r\n\r\n")
        .into_bytes()
}

/// A form POST as jQuery sends it.
pub fn form_request(path: &str, cookie: Option<&str>, body: &[u8]) -> Vec<u8> {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Content-Type: application/x-www-form-urlencoded; charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// The one wait loop of the tests: asks `check` every few milliseconds until it answers `Ok`;
/// past `limit`, panics naming `what` and the last `Err` (what was seen instead).
pub async fn eventually<T, F: Future<Output = Result<T, String>>>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`eventually`] for a condition on state the test holds, within [`DEADLINE`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    eventually(DEADLINE, what, || {
        std::future::ready(condition().then_some(()).ok_or_else(|| "false".to_owned()))
    })
    .await
}

/// Awaits `future` or panics naming `what` after `limit`.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A response as it came off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header names as sent, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The de-chunked body.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Writes `raw` on a new connection and reads one response (within [`DEADLINE`]).
    pub async fn exchange(addr: SocketAddr, raw: &[u8]) -> RawResponse {
        let mut conn = ResponseReader::open(addr, raw).await;
        conn.read_response().await
    }

    /// The first header of that name (case-insensitive), as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Every header of that name.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The body as text (lossy), for assertions on readable bodies.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A connection with a request written, read incrementally (long polls, streams), through the
/// workspace's one raw HTTP/1.1 client. Every read fails the test after [`DEADLINE`] at most.
pub struct ResponseReader {
    exchange: Exchange,
    /// Chunks already handed out by [`ResponseReader::read_chunk`].
    chunks_read: usize,
}

impl ResponseReader {
    /// Connects and writes `raw` (a `HEAD` request expects no body).
    pub async fn open(addr: SocketAddr, raw: &[u8]) -> ResponseReader {
        let exchange = Exchange::send(&addr.to_string(), raw, raw.starts_with(b"HEAD "))
            .await
            .unwrap_or_else(|err| panic!("sending the request: {err}"));
        ResponseReader {
            exchange,
            chunks_read: 0,
        }
    }

    /// Reads until `done` holds; panics naming `what` at the deadline or on a protocol error.
    async fn read_until(&mut self, what: &str, done: impl Fn(&Exchange) -> bool) -> bool {
        self.exchange
            .read_until(Instant::now() + DEADLINE, done)
            .await
            .unwrap_or_else(|err| panic!("reading {what}: {err}"))
    }

    /// Reads status line and headers.
    pub async fn read_head(&mut self) -> (u16, Vec<(String, Vec<u8>)>) {
        self.read_until("the response head", |x| x.head.is_some())
            .await;
        let head = self.exchange.head.as_ref().unwrap_or_else(|| {
            panic!("no response head within {DEADLINE:?} (or the connection closed)")
        });
        (head.status, head.headers.clone())
    }

    /// Reads a whole response (Content-Length, chunked, or until close).
    pub async fn read_response(&mut self) -> RawResponse {
        let (status, headers) = self.read_head().await;
        if !self.read_until("the response body", |x| x.complete).await {
            panic!("the response body did not complete within {DEADLINE:?}");
        }
        RawResponse {
            status,
            headers,
            body: self.exchange.body.clone(),
        }
    }

    /// Reads the next chunk of a chunked body; `None` once the last chunk has arrived.
    pub async fn read_chunk(&mut self) -> Option<Vec<u8>> {
        let want = self.chunks_read + 1;
        self.read_until("a chunk", |x| x.chunk_ends.len() >= want)
            .await;
        let ends = &self.exchange.chunk_ends;
        if ends.len() >= want {
            let start = if want == 1 { 0 } else { ends[want - 2] };
            self.chunks_read = want;
            return Some(self.exchange.body[start..ends[want - 1]].to_vec());
        }
        assert!(
            self.exchange.complete,
            "no chunk within {DEADLINE:?}, and the body did not end either"
        );
        None
    }

    /// Whether nothing at all arrives within `quiet` (for "still waiting" checks).
    pub async fn is_silent_for(&mut self, quiet: Duration) -> bool {
        let before = self.exchange.received();
        let arrived = self
            .exchange
            .read_until(Instant::now() + quiet, |x| x.received() > before)
            .await
            .unwrap_or_else(|err| panic!("reading: {err}"));
        !arrived && !self.exchange.closed() && self.exchange.received() == before
    }
}

/// A TCP proxy in front of MySQL that a test can cut (refuse and reset everything) and restore,
/// to play a database outage without touching the shared server.
pub struct DbProxy {
    /// The proxy's address.
    pub addr: SocketAddr,
    target: SocketAddr,
    running: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
    accepted: Arc<AtomicU32>,
}

impl DbProxy {
    /// Starts forwarding to the test MariaDB.
    pub async fn start() -> DbProxy {
        let target: SocketAddr = mysql_base_url()
            .trim_start_matches("mysql://")
            .rsplit('@')
            .next()
            .and_then(|host| host.split('/').next())
            .and_then(|host| host.parse().ok())
            .expect("TEST_MYSQL_URL must name host:port as an IP address for the proxy tests");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let proxy = DbProxy {
            addr,
            target,
            running: Mutex::new(None),
            accepted: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    /// A database URL for `db` that goes through the proxy. mysql_async would otherwise switch a
    /// 127.0.0.1 connection to MariaDB's Unix socket, around the proxy.
    pub fn url_for(&self, db: &TestDb) -> String {
        format!("mysql://root@{}/{}?prefer_socket=false", self.addr, db.name)
    }

    /// Connections accepted so far (each probe of the failover monitor opens one).
    pub fn connections(&self) -> u32 {
        self.accepted.load(Ordering::SeqCst)
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target;
        let counted = Arc::clone(&self.accepted);
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut links = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { continue };
                        counted.fetch_add(1, Ordering::SeqCst);
                        links.spawn(async move {
                            if let Ok(mut server) = TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        });
                    }
                    _ = &mut stopped => break,
                }
            }
            drop(listener);
            // Aborts every link and waits until their sockets are closed.
            links.shutdown().await;
        });
        *self.running.lock().expect("proxy state") = Some((stop, task));
    }

    /// Outage: closes every proxied connection and refuses new ones; returns once both hold.
    pub async fn cut(&self) {
        let running = self.running.lock().expect("proxy state").take();
        if let Some((stop, task)) = running {
            let _ = stop.send(());
            within(DEADLINE, "proxy shutdown", task)
                .await
                .expect("proxy task");
        }
    }

    /// Ends the outage on the same port.
    pub async fn restore(&self) {
        let addr = self.addr;
        let listener = eventually(DEADLINE, "proxy rebind", || async move {
            TcpListener::bind(addr).await.map_err(|err| err.to_string())
        })
        .await;
        self.serve(listener);
    }
}
