//! The operator's PHP-FPM as nginx's `fastcgi_pass` talks to it: a bounded pool of kept-open
//! connections (`FCGI_KEEP_CONN`), one request at a time on each, every read and write bounded by
//! `fastcgi_read_timeout`.
//!
//! Each kept-open connection holds one PHP-FPM worker while it is idle (a worker serves one
//! connection until it closes), so the pool must not be larger than the FPM pool's
//! `pm.max_children`: requests beyond it wait here for a connection instead of queueing in FPM's
//! listen backlog behind workers our idle connections hold. And an idle connection is closed
//! after a short while (`--php-fpm-idle-ms`), so once our traffic stops the workers go back to
//! whoever else shares the FPM pool (nginx during a migration keeps none open); steady traffic
//! reuses its connections long before that.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::record::{self, Header};

/// Where PHP-FPM listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix socket (`/run/php/php8.2-fpm.sock`, or nginx's `unix:/…`).
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl Address {
    /// Reads `--php-fpm`: a path (with or without nginx's `unix:`) or `host:port`.
    pub fn parse(text: &str) -> Address {
        let path = text.strip_prefix("unix:").unwrap_or(text);
        if path.starts_with('/') || path.starts_with('.') {
            Address::Unix(PathBuf::from(path))
        } else {
            Address::Tcp(text.to_owned())
        }
    }
}

/// What went wrong talking to PHP-FPM, as nginx tells the client.
#[derive(Debug)]
pub enum Failure {
    /// Refused, reset, closed early or spoke nonsense: nginx's 502.
    Broken(io::Error),
    /// Nothing within `fastcgi_read_timeout`: nginx's 504.
    TimedOut,
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Failure {
        Failure::Broken(err)
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One FastCGI connection, buffered for reading records.
pub struct Connection {
    stream: BufReader<Box<dyn Io>>,
    timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Connection")
    }
}

/// A record off the wire that matters to the response.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Output (`FCGI_STDOUT`), never empty.
    Stdout(Vec<u8>),
    /// `FCGI_END_REQUEST`: the answer is complete.
    End,
}

impl Connection {
    /// Writes a whole request (records already encoded).
    pub async fn send(&mut self, request: &[u8]) -> Result<(), Failure> {
        let stream = self.stream.get_mut();
        bounded(self.timeout, async {
            stream.write_all(request).await?;
            stream.flush().await
        })
        .await
    }

    /// The next output or the end; PHP's `FCGI_STDERR` is logged, as nginx logs it.
    pub async fn next(&mut self) -> Result<Event, Failure> {
        loop {
            let mut bytes = [0; record::HEADER_LEN];
            bounded(self.timeout, read_exact(&mut self.stream, &mut bytes)).await?;
            let Some(header) = record::header(&bytes) else {
                return Err(broken("unsupported FastCGI protocol version"));
            };
            let mut content = vec![0; header.content_len + header.padding_len];
            bounded(self.timeout, read_exact(&mut self.stream, &mut content)).await?;
            content.truncate(header.content_len);
            if let Some(event) = event(header, content)? {
                return Ok(event);
            }
        }
    }
}

impl Connection {
    /// Whether PHP-FPM closed this idle connection (a worker that ended after
    /// `pm.max_requests`, a reload) or sent something unasked: either way it cannot carry a
    /// request. Looks without waiting.
    fn closed_meanwhile(&mut self) -> bool {
        use futures_util::FutureExt;
        use tokio::io::AsyncBufReadExt;
        match self.stream.fill_buf().now_or_never() {
            None => false,
            Some(Ok(_) | Err(_)) => true,
        }
    }
}

/// `work`, or [`Failure::TimedOut`] after `timeout` (nginx's read and send timeouts both apply
/// to one operation, not to the whole answer).
async fn bounded<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Failure::TimedOut),
    }
}

async fn read_exact(stream: &mut BufReader<Box<dyn Io>>, buf: &mut [u8]) -> io::Result<()> {
    stream.read_exact(buf).await.map(|_| ())
}

fn broken(what: &str) -> Failure {
    Failure::Broken(io::Error::new(io::ErrorKind::InvalidData, what.to_owned()))
}

fn event(header: Header, content: Vec<u8>) -> Result<Option<Event>, Failure> {
    if header.request_id != record::REQUEST_ID {
        return Err(broken("unexpected FastCGI request id"));
    }
    match header.kind {
        record::STDOUT if content.is_empty() => Ok(None),
        record::STDOUT => Ok(Some(Event::Stdout(content))),
        record::STDERR => {
            tracing::warn!(stderr = %String::from_utf8_lossy(&content), "FastCGI sent in stderr");
            Ok(None)
        }
        record::END_REQUEST => Ok(Some(Event::End)),
        _ => Err(broken("unexpected FastCGI record type")),
    }
}

/// A connection on loan from the pool; give it back with [`Upstream::give_back`] once its
/// answer ended cleanly, else drop it (it closes).
#[derive(Debug)]
pub struct Lease {
    /// The connection.
    pub connection: Connection,
    /// Whether it served a request before (FPM may have closed it just now; see
    /// [`super::Fpm`]'s one fresh attempt).
    pub reused: bool,
    permit: OwnedSemaphorePermit,
}

/// A connection waiting for the next request.
#[derive(Debug)]
struct Idle {
    connection: Connection,
    permit: OwnedSemaphorePermit,
    since: Instant,
}

/// How many connections and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Most connections open at once (`--php-fpm-connections`).
    pub size: usize,
    /// nginx's `fastcgi_read_timeout`, for every wait.
    pub timeout: Duration,
    /// How long a connection is kept idle (`--php-fpm-idle-ms`); zero closes it after each
    /// answer, as nginx without `fastcgi_keep_conn`.
    pub keep_idle: Duration,
}

/// The pool.
#[derive(Debug)]
pub struct Upstream {
    address: Address,
    timeout: Duration,
    keep_idle: Duration,
    /// One permit per connection that may be open, idle or not.
    permits: Arc<Semaphore>,
    /// Oldest first: leases take the newest, so the oldest are the ones left to time out.
    idle: Mutex<Vec<Idle>>,
    returned: Notify,
    /// Tells the reaper (started with the first idle connection) that one went idle, or that
    /// the pool is gone.
    parked: Arc<Notify>,
    reaper: std::sync::Once,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.parked.notify_one();
    }
}

impl Upstream {
    /// A pool of connections to `address`.
    pub fn new(address: Address, bounds: Bounds) -> Upstream {
        Upstream {
            address,
            timeout: bounds.timeout,
            keep_idle: bounds.keep_idle,
            permits: Arc::new(Semaphore::new(bounds.size.max(1))),
            idle: Mutex::new(Vec::new()),
            returned: Notify::new(),
            parked: Arc::new(Notify::new()),
            reaper: std::sync::Once::new(),
        }
    }

    /// An idle connection, or a new one when the pool has room; waits (up to the timeout) for
    /// either.
    pub async fn lease(&self) -> Result<Lease, Failure> {
        let wait = async {
            loop {
                let returned = self.returned.notified();
                let idle = self.lock_idle().pop();
                if let Some(Idle {
                    mut connection,
                    permit,
                    ..
                }) = idle
                {
                    if connection.closed_meanwhile() {
                        // Its permit goes with it; the next round opens a new one.
                        continue;
                    }
                    return Ok(Lease {
                        connection,
                        reused: true,
                        permit,
                    });
                }
                tokio::select! {
                    permit = Arc::clone(&self.permits).acquire_owned() => {
                        let permit = permit.expect("the pool never closes its semaphore");
                        return self.open(permit).await;
                    }
                    () = returned => {}
                }
            }
        };
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(Failure::TimedOut),
        }
    }

    /// A new connection, outside the pool's idle list (after a reused one failed).
    pub async fn reopen(&self, lease: Lease) -> Result<Lease, Failure> {
        let permit = lease.permit;
        drop(lease.connection);
        tokio::time::timeout(self.timeout, self.open(permit))
            .await
            .unwrap_or(Err(Failure::TimedOut))
    }

    async fn open(&self, permit: OwnedSemaphorePermit) -> Result<Lease, Failure> {
        let stream: Box<dyn Io> = match &self.address {
            Address::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            Address::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                let _ = stream.set_nodelay(true);
                Box::new(stream)
            }
        };
        Ok(Lease {
            connection: Connection {
                stream: BufReader::with_capacity(16 * 1024, stream),
                timeout: self.timeout,
            },
            reused: false,
            permit,
        })
    }

    /// Keeps a connection whose answer ended cleanly for the next request, for at most
    /// `keep_idle`; with none, it is closed (dropped, its permit with it).
    pub fn give_back(self: &Arc<Self>, lease: Lease) {
        if self.keep_idle.is_zero() {
            return;
        }
        self.reaper.call_once(|| {
            tokio::spawn(reap(Arc::downgrade(self), Arc::clone(&self.parked)));
        });
        self.lock_idle().push(Idle {
            connection: lease.connection,
            permit: lease.permit,
            since: Instant::now(),
        });
        self.returned.notify_one();
        self.parked.notify_one();
    }

    /// Closes the connections idle for `keep_idle` by `now`; when the next one will be due.
    fn close_idle(&self, now: Instant) -> Option<Instant> {
        let (expired, next) = {
            let mut idle = self.lock_idle();
            let fresh = idle
                .iter()
                .position(|entry| entry.since + self.keep_idle > now)
                .unwrap_or(idle.len());
            let expired: Vec<Idle> = idle.drain(..fresh).collect();
            (
                expired,
                idle.first().map(|entry| entry.since + self.keep_idle),
            )
        };
        // Closed outside the lock.
        drop(expired);
        next
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Closes idle connections as they time out, sleeping while there are none; ends with the pool
/// (held weakly, so the pool can end).
async fn reap(pool: Weak<Upstream>, parked: Arc<Notify>) {
    loop {
        let next = match pool.upgrade() {
            Some(pool) => pool.close_idle(Instant::now()),
            None => return,
        };
        match next {
            Some(due) => tokio::time::sleep_until(due).await,
            None => parked.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn pool(
        addr: std::net::SocketAddr,
        size: usize,
        timeout: Duration,
        keep_idle: Duration,
    ) -> Arc<Upstream> {
        Arc::new(Upstream::new(
            Address::Tcp(addr.to_string()),
            Bounds {
                size,
                timeout,
                keep_idle,
            },
        ))
    }

    /// The answer every fake FPM gives: a head, then the end.
    fn answer() -> Vec<u8> {
        let mut answer = Vec::new();
        record::push(&mut answer, record::STDOUT, b"Status: 204\r\n\r\n");
        record::push(&mut answer, record::END_REQUEST, &[0; 8]);
        answer
    }

    /// One request on a lease, read to its end.
    async fn ask(lease: &mut Lease) {
        lease.connection.send(b"go").await.expect("send");
        assert_eq!(
            lease.connection.next().await.expect("stdout"),
            Event::Stdout(b"Status: 204\r\n\r\n".to_vec())
        );
        assert_eq!(lease.connection.next().await.expect("end"), Event::End);
    }

    /// A fake FPM that answers every request on a connection until the client closes it: its
    /// address, the connections it accepted, and a message each time a client closed one.
    async fn keeping_fpm() -> (
        std::net::SocketAddr,
        Arc<AtomicUsize>,
        tokio::sync::mpsc::UnboundedReceiver<()>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepts = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&accepts);
        let (closed_tx, closed) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let closed_tx = closed_tx.clone();
                tokio::spawn(async move {
                    let mut buf = [0; 64];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 || socket.write_all(&answer()).await.is_err() {
                            break;
                        }
                    }
                    let _ = closed_tx.send(());
                });
            }
        });
        (addr, accepts, closed)
    }

    /// A fake FPM that answers one request per connection and then closes it (a worker that
    /// ended): the idle connection is seen closed and a fresh one opened, before any request is
    /// written on the dead one.
    #[tokio::test]
    async fn a_connection_fpm_closed_while_idle_is_not_used() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (closed_tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0; 64];
                if socket.read(&mut buf).await.is_ok() {
                    let _ = socket.write_all(&answer()).await;
                }
                drop(socket);
                let _ = closed_tx.send(());
            }
        });
        let upstream = pool(addr, 1, Duration::from_secs(5), Duration::from_secs(60));
        for _ in 0..2 {
            let mut lease = upstream.lease().await.expect("lease");
            assert!(!lease.reused, "never the closed one");
            ask(&mut lease).await;
            upstream.give_back(lease);
            tokio::time::timeout(Duration::from_secs(5), closed.recv())
                .await
                .expect("the fake FPM closed its side");
        }
    }

    #[test]
    fn addresses_are_paths_or_host_and_port() {
        assert_eq!(
            Address::parse("/run/php/php8.2-fpm.sock"),
            Address::Unix("/run/php/php8.2-fpm.sock".into())
        );
        assert_eq!(
            Address::parse("unix:/run/fpm.sock"),
            Address::Unix("/run/fpm.sock".into())
        );
        assert_eq!(
            Address::parse("127.0.0.1:9000"),
            Address::Tcp("127.0.0.1:9000".into())
        );
    }

    /// The second request reuses the first connection (given back well within the idle time),
    /// and a pool of one makes a second lease wait for it.
    #[tokio::test]
    async fn a_kept_open_connection_is_reused_and_the_pool_is_bounded() {
        let (addr, accepts, _closed) = keeping_fpm().await;
        let upstream = pool(addr, 1, Duration::from_millis(500), Duration::from_secs(60));
        for round in 0..2 {
            let mut lease = upstream.lease().await.expect("lease");
            assert_eq!(lease.reused, round == 1);
            ask(&mut lease).await;
            upstream.give_back(lease);
        }
        assert_eq!(accepts.load(Ordering::SeqCst), 1);
        let held = upstream.lease().await.expect("lease");
        assert!(matches!(upstream.lease().await, Err(Failure::TimedOut)));
        drop(held);
        upstream
            .lease()
            .await
            .expect("room again once the connection is dropped");
    }

    /// Two connections go idle; with nothing asked for, both are closed by the pool (the fake
    /// FPM sees them end, as PHP-FPM's workers would be freed), and the next request opens a
    /// new one.
    #[tokio::test]
    async fn idle_connections_are_closed_after_the_idle_time() {
        let (addr, accepts, mut closed) = keeping_fpm().await;
        let upstream = pool(addr, 2, Duration::from_secs(5), Duration::from_millis(50));
        let mut first = upstream.lease().await.expect("lease");
        let mut second = upstream.lease().await.expect("lease");
        ask(&mut first).await;
        ask(&mut second).await;
        upstream.give_back(first);
        upstream.give_back(second);
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(5), closed.recv())
                .await
                .expect("an idle connection closed by the pool");
        }
        let mut lease = upstream.lease().await.expect("lease");
        assert!(!lease.reused);
        ask(&mut lease).await;
        assert_eq!(accepts.load(Ordering::SeqCst), 3);
    }

    /// With no idle time, a connection is closed as soon as its answer ended.
    #[tokio::test]
    async fn no_idle_time_closes_each_connection_after_its_answer() {
        let (addr, accepts, mut closed) = keeping_fpm().await;
        let upstream = pool(addr, 1, Duration::from_secs(5), Duration::ZERO);
        for round in 1..=2 {
            let mut lease = upstream.lease().await.expect("lease");
            assert!(!lease.reused);
            ask(&mut lease).await;
            upstream.give_back(lease);
            tokio::time::timeout(Duration::from_secs(5), closed.recv())
                .await
                .expect("closed after its answer");
            assert_eq!(accepts.load(Ordering::SeqCst), round);
        }
    }

    /// The reaper holds the pool weakly: once the pool is gone, so is the reaper, closing no
    /// more and keeping nothing alive.
    #[tokio::test]
    async fn the_reaper_ends_with_the_pool() {
        let (addr, _accepts, mut closed) = keeping_fpm().await;
        let upstream = pool(addr, 1, Duration::from_secs(5), Duration::from_secs(60));
        let mut lease = upstream.lease().await.expect("lease");
        ask(&mut lease).await;
        upstream.give_back(lease);
        let weak = Arc::downgrade(&upstream);
        drop(upstream);
        assert!(
            weak.upgrade().is_none(),
            "the reaper held no strong reference"
        );
        tokio::time::timeout(Duration::from_secs(5), closed.recv())
            .await
            .expect("the idle connection closed with the pool");
    }
}
