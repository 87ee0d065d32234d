//! The connection's front door: reads requests off the socket the way nginx 1.22 did, and hands
//! hyper only what nginx would have handed PHP.
//!
//! hyper's parser cannot be told to agree with nginx: it refuses bytes nginx passes on (a `"`
//! or `>` in the target, DEL or other control bytes in a header value), it trims a trailing tab
//! nginx keeps, it accepts what nginx refuses (lower-case methods, doubled `Host`,
//! `Content-Length` with `Transfer-Encoding`, `Transfer-Encoding: identity`, …) and it buffers
//! up to ~400 KiB of head where nginx stops at 1k + 4 × 8k. So each connection gets a reader
//! task here that parses with [`crate::nginx`] and keeps at most nginx's buffers of head:
//!
//! - an accepted request is read whole (nginx reads a body before it contacts PHP-FPM; past
//!   16k it goes to a temporary file, see [`crate::http::body`]) and put in the connection's
//!   queue as a [`Ticket`]; hyper then gets a tiny, always-valid stand-in
//!   request (`GET / HTTP/1.1`, `HEAD` for `HEAD`, with the keep-alive decision) and the service
//!   takes the ticket that belongs to it. hyper still writes every response, so framing,
//!   keep-alive and graceful shutdown stay hyper's;
//! - a refused request becomes a ticket carrying nginx's answer, and the connection closes
//!   after it, as nginx closes it.
//!
//! Requests are handled one at a time, like nginx: the next head is parsed only once the answer
//! to the previous one is finished. The socket is still watched meanwhile (bounded), so a client
//! that goes away is noticed by hyper as before.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

use crate::http::body::{RequestBody, Spooler, BODY_BUFFER};
use crate::nginx::chunked::{Decoder, Fed};
use crate::nginx::head::{
    is_head_request, Head, HeadParser, Progress, CLIENT_HEADER_BUFFER, MAX_HEAD_BYTES,
};
use crate::nginx::Refusal;

/// nginx's timeouts and body limit.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `client_max_body_size`.
    pub max_body: u64,
    /// `client_header_timeout`: the whole head must arrive within it (else the connection is
    /// closed without an answer, as nginx does).
    pub header_timeout: Duration,
    /// `client_body_timeout`: the longest pause between two reads of a body; then nginx 1.22
    /// closes the connection without an answer (observed; its 408 is only logged).
    pub body_timeout: Duration,
    /// `keepalive_timeout`: how long an idle kept-alive connection is held.
    pub keepalive_timeout: Duration,
}

impl Limits {
    /// nginx's defaults with the given body limit.
    pub fn nginx(max_body: u64) -> Limits {
        Limits {
            max_body,
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
        }
    }
}

/// A request nginx accepted: its head and its whole body (de-chunked).
#[derive(Debug)]
pub struct Request {
    /// Method, target, headers as nginx passed them on.
    pub head: Head,
    /// The body (`php://input`).
    pub body: RequestBody,
}

/// What the service answers.
#[derive(Debug)]
pub enum Handover {
    /// An accepted request.
    Request(Box<Request>),
    /// nginx's own answer; the connection closes after it.
    Refused(Refusal),
}

/// One request's hand-over. Dropping it (with the response body that holds it) tells the
/// reader the answer is finished, so it may read the next request.
#[derive(Debug)]
pub struct Ticket {
    /// The request or the refusal.
    pub handover: Handover,
    signals: Arc<Signals>,
}

impl Ticket {
    /// A handle that cuts this connection: what nginx does when an upstream fails after the
    /// answer's head was sent, so the client never mistakes a truncated answer for a whole one.
    pub fn cutter(&self) -> Cutter {
        Cutter(Arc::clone(&self.signals))
    }
}

/// Cuts the connection an answer is being written on (see [`Ticket::cutter`]): every later write
/// fails, so hyper drops the connection before the end of the body reaches the client.
#[derive(Debug, Clone)]
pub struct Cutter(Arc<Signals>);

impl Cutter {
    /// Nothing more is written on this connection.
    pub fn cut(&self) {
        self.0.cut.store(true, Ordering::SeqCst);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.signals.finished.fetch_add(1, Ordering::SeqCst);
        self.signals.changed.notify_waiters();
    }
}

#[derive(Debug, Default)]
struct Signals {
    /// Tickets dropped so far.
    finished: AtomicU64,
    /// `finished` as it was at the last completed flush of hyper's writes: every answer up to
    /// this count is entirely on the wire.
    flushed: AtomicU64,
    changed: tokio::sync::Notify,
    /// Set by a [`Cutter`]: the connection is to be dropped, not finished.
    cut: std::sync::atomic::AtomicBool,
}

/// The tickets of one connection, in request order.
pub type Queue = Arc<Mutex<VecDeque<Ticket>>>;

/// Takes the ticket hyper's current request stands for.
pub fn take(queue: &Queue) -> Option<Ticket> {
    queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .pop_front()
}

/// Splits a connection: the I/O hyper serves (stand-in requests in, real socket out), the
/// ticket queue its service reads, and the reader task (abort it when hyper is done).
pub fn connect(stream: TcpStream, limits: Limits) -> (FrontIo, Queue, JoinHandle<()>) {
    let (read_half, write_half) = stream.into_split();
    let (hyper_side, our_side) = tokio::io::duplex(1024);
    let signals = Arc::new(Signals::default());
    let writer = Arc::new(Mutex::new(write_half));
    let queue = Queue::default();
    let reader = Reader {
        socket: read_half,
        buf: Vec::new(),
        to_hyper: our_side,
        writer: Arc::clone(&writer),
        queue: Arc::clone(&queue),
        signals: Arc::clone(&signals),
        issued: 0,
        limits,
        head_only: false,
    };
    let task = tokio::spawn(reader.run());
    let io = FrontIo {
        from_reader: hyper_side,
        writer,
        signals,
    };
    (io, queue, task)
}

/// What hyper reads and writes: stand-in requests from the reader, responses to the socket.
#[derive(Debug)]
pub struct FrontIo {
    from_reader: DuplexStream,
    writer: Arc<Mutex<OwnedWriteHalf>>,
    signals: Arc<Signals>,
}

fn lock(writer: &Mutex<OwnedWriteHalf>) -> std::sync::MutexGuard<'_, OwnedWriteHalf> {
    writer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AsyncRead for FrontIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.from_reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for FrontIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.signals.cut.load(Ordering::SeqCst) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the answer was cut",
            )));
        }
        Pin::new(&mut *lock(&self.writer)).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Read before flushing: an answer finished after this point may still have bytes queued.
        let finished = self.signals.finished.load(Ordering::SeqCst);
        let result = Pin::new(&mut *lock(&self.writer)).poll_flush(cx);
        if let Poll::Ready(Ok(())) = result {
            self.signals.flushed.fetch_max(finished, Ordering::SeqCst);
            self.signals.changed.notify_waiters();
        }
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *lock(&self.writer)).poll_shutdown(cx)
    }
}

struct Reader {
    socket: OwnedReadHalf,
    /// Bytes read and not yet used; never more than nginx's header buffers (plus one read)
    /// while a head is parsed.
    buf: Vec<u8>,
    to_hyper: DuplexStream,
    writer: Arc<Mutex<OwnedWriteHalf>>,
    queue: Queue,
    signals: Arc<Signals>,
    issued: u64,
    limits: Limits,
    /// Whether the request being read is a `HEAD` one, as far as nginx would know: its answer,
    /// refusals included, has no body.
    head_only: bool,
}

/// How the reader stops.
enum Stop {
    /// The client closed, timed out or failed: close without an answer.
    Close,
    /// nginx answers this, then closes.
    Refuse(Refusal),
}

const READ_CHUNK: usize = 4096;

impl Reader {
    async fn run(mut self) {
        loop {
            match self.next_request().await {
                Ok(request) => {
                    let keep_alive = request.head.keep_alive;
                    let head_only = request.head.method == "HEAD";
                    let stand_in = stand_in(head_only, request.head.version, keep_alive);
                    if self
                        .hand_over(Handover::Request(Box::new(request)), &stand_in)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if !keep_alive {
                        // Still watch the socket, so hyper learns of a client that left.
                        let _ = self.await_answers().await;
                        return;
                    }
                }
                Err(Stop::Close) => return,
                Err(Stop::Refuse(refusal)) => {
                    let stand_in = stand_in(self.head_only, 1001, false);
                    if self
                        .hand_over(Handover::Refused(refusal), &stand_in)
                        .await
                        .is_ok()
                    {
                        self.wait_finished().await;
                    }
                    return;
                }
            }
        }
    }

    async fn hand_over(&mut self, handover: Handover, stand_in: &[u8]) -> io::Result<()> {
        lock_queue(&self.queue).push_back(Ticket {
            handover,
            signals: Arc::clone(&self.signals),
        });
        self.issued += 1;
        self.to_hyper.write_all(stand_in).await
    }

    /// Waits until every answer handed over is finished, without reading the socket (the
    /// connection ends after it anyway).
    async fn wait_finished(&self) {
        loop {
            let changed = self.signals.changed.notified();
            if self.signals.finished.load(Ordering::SeqCst) >= self.issued {
                return;
            }
            changed.await;
        }
    }

    /// Reads more bytes into `buf`; `Ok(0)` at the end of the stream.
    async fn read_more(&mut self) -> io::Result<usize> {
        read_into(&mut self.socket, &mut self.buf).await
    }

    /// Waits until every answer handed over is finished while watching the socket (so hyper
    /// learns of a client that left) and keeping what a pipelining client sends, up to nginx's
    /// header buffers. `Err` when the client closed.
    async fn await_answers(&mut self) -> Result<(), Stop> {
        let signals = Arc::clone(&self.signals);
        loop {
            let changed = signals.changed.notified();
            if signals.finished.load(Ordering::SeqCst) >= self.issued {
                break;
            }
            tokio::select! {
                () = changed => {}
                read = read_into(&mut self.socket, &mut self.buf), if self.buf.len() < MAX_HEAD_BYTES => match read {
                    Ok(0) | Err(_) => return Err(Stop::Close),
                    Ok(_) => {}
                },
            }
        }
        Ok(())
    }

    async fn next_request(&mut self) -> Result<Request, Stop> {
        // One request at a time, as nginx.
        self.await_answers().await?;
        // Between requests nginx gives its large header buffers back; so do we.
        self.buf.shrink_to(self.buf.len());
        let first = self.issued == 0;
        let idle_deadline = Instant::now()
            + if first {
                self.limits.header_timeout
            } else {
                self.limits.keepalive_timeout
            };
        let mut head_deadline =
            (!self.buf.is_empty() || first).then(|| Instant::now() + self.limits.header_timeout);
        let mut parser = HeadParser::new();
        let (head, used) = loop {
            match parser.advance(&self.buf) {
                Progress::Complete(head, used) => break (*head, used),
                Progress::Refused(refusal) => {
                    self.head_only = is_head_request(&self.buf);
                    return Err(Stop::Refuse(refusal));
                }
                Progress::Incomplete => {}
            }
            let deadline = head_deadline.unwrap_or(idle_deadline);
            match timeout_at(deadline, self.read_more()).await {
                Ok(Ok(n)) if n > 0 => {
                    head_deadline
                        .get_or_insert_with(|| Instant::now() + self.limits.header_timeout);
                }
                _ => return Err(Stop::Close),
            }
        };
        self.buf.drain(..used);
        self.head_only = head.method == "HEAD";
        if head
            .content_length
            .is_some_and(|length| length > self.limits.max_body)
        {
            return Err(Stop::Refuse(Refusal::EntityTooLarge));
        }
        if head.expect_continue {
            self.send_continue().await;
        }
        let body = if head.chunked {
            // nginx holds a chunked body to `client_max_body_size` only as it reads it for PHP
            // (`location ~ \.php$`); elsewhere (a static file, its 404 or 405) it discards the
            // body, however long, and answers as the location does.
            if head.target.path.ends_with(b".php") {
                self.read_chunked(self.limits.max_body, true).await?
            } else {
                self.read_chunked(u64::MAX, false).await?
            }
        } else {
            let length = head.content_length.unwrap_or(0);
            self.read_exact_body(usize::try_from(length).unwrap_or(usize::MAX))
                .await?
        };
        Ok(Request { head, body })
    }

    async fn read_body_bytes(&mut self) -> Result<(), Stop> {
        let deadline = Instant::now() + self.limits.body_timeout;
        match timeout_at(deadline, self.read_more()).await {
            Ok(Ok(n)) if n > 0 => Ok(()),
            _ => Err(Stop::Close),
        }
    }

    async fn read_exact_body(&mut self, length: usize) -> Result<RequestBody, Stop> {
        if length <= BODY_BUFFER {
            while self.buf.len() < length {
                self.read_body_bytes().await?;
            }
            let rest = self.buf.split_off(length);
            let body = std::mem::replace(&mut self.buf, rest);
            return Ok(RequestBody::Memory(Bytes::from(body)));
        }
        let mut spooler = Spooler::default();
        let mut left = length;
        loop {
            let take = left.min(self.buf.len());
            spooler.push(&self.buf[..take]).map_err(spool_failed)?;
            self.buf.drain(..take);
            left -= take;
            if left == 0 {
                return spooler.finish().map_err(spool_failed);
            }
            self.read_body_bytes().await?;
        }
    }

    /// A chunked body of at most `limit` bytes; kept (past 16k in a temporary file), or decoded
    /// and dropped as it comes.
    async fn read_chunked(&mut self, limit: u64, keep: bool) -> Result<RequestBody, Stop> {
        let mut decoder = Decoder::new(limit);
        let mut spooler = Spooler::default();
        loop {
            match decoder
                .feed(&self.buf, spooler.buffer_mut())
                .map_err(Stop::Refuse)?
            {
                Fed::Done(used) => {
                    self.buf.drain(..used);
                    if !keep {
                        return Ok(RequestBody::default());
                    }
                    return spooler.finish().map_err(spool_failed);
                }
                Fed::NeedMore => self.buf.clear(),
            }
            if keep {
                spooler.settle().map_err(spool_failed)?;
            } else {
                spooler.buffer_mut().clear();
            }
            self.read_body_bytes().await?;
        }
    }

    /// nginx's `100 Continue`, sent before it reads a body. It is written straight to the
    /// socket, so only once every earlier answer is entirely written (hyper flushed after it
    /// finished); if that does not happen within a second, it is left out and the client sends
    /// its body after its own wait, as clients do when no `100` comes.
    async fn send_continue(&mut self) {
        let signals = Arc::clone(&self.signals);
        let issued = self.issued;
        let wait = async {
            loop {
                let changed = signals.changed.notified();
                if signals.flushed.load(Ordering::SeqCst) >= issued {
                    return;
                }
                changed.await;
            }
        };
        if self.issued > 0
            && tokio::time::timeout(Duration::from_secs(1), wait)
                .await
                .is_err()
        {
            return;
        }
        let mut rest: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
        let writer = Arc::clone(&self.writer);
        let _ = std::future::poll_fn(|cx| {
            while !rest.is_empty() {
                match Pin::new(&mut *lock(&writer)).poll_write(cx, rest) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => rest = &rest[n..],
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Poll::Ready(Ok(()))
        })
        .await;
    }
}

/// A body that could not be written to its temporary file: nginx logs it and answers 500; the
/// connection is closed here instead (a full or broken temporary directory).
fn spool_failed(err: io::Error) -> Stop {
    tracing::error!(%err, "a request body could not be written to a temporary file");
    Stop::Close
}

/// Reads what is available into `buf`. The buffer grows as nginx's do: first 1 KiB
/// (`client_header_buffer_size`), then doubling, never past nginx's header buffers plus one
/// read while a head is parsed, so a connection's buffer stays close to the bytes it holds.
async fn read_into(socket: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() == buf.len() {
        let grown = (buf.capacity() * 2)
            .clamp(CLIENT_HEADER_BUFFER, MAX_HEAD_BYTES + READ_CHUNK)
            .max(buf.len() + READ_CHUNK.min(CLIENT_HEADER_BUFFER));
        buf.reserve_exact(grown - buf.len());
    }
    socket.read_buf(buf).await
}

fn lock_queue(queue: &Queue) -> std::sync::MutexGuard<'_, VecDeque<Ticket>> {
    queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The request hyper parses in place of the real one: only the method that matters to framing
/// (`HEAD` has no body), the HTTP version (an HTTP/1.0 client gets no chunked answer) and
/// whether the connection stays open.
pub fn stand_in(head_only: bool, version: u32, keep_alive: bool) -> Vec<u8> {
    let method = if head_only { "HEAD" } else { "GET" };
    let (version, connection) = match (version >= 1001, keep_alive) {
        (true, true) => ("1.1", ""),
        (true, false) => ("1.1", "Connection: close\r\n"),
        (false, true) => ("1.0", "Connection: keep-alive\r\n"),
        (false, false) => ("1.0", ""),
    };
    format!("{method} / HTTP/{version}\r\nHost: front\r\n{connection}\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    const DEADLINE: Duration = Duration::from_secs(10);

    /// A front on a real loopback connection, with short timeouts.
    async fn front(limits: Limits) -> (TcpStream, FrontIo, Queue, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let (io, queue, task) = connect(server, limits);
        (client, io, queue, task)
    }

    fn short() -> Limits {
        Limits {
            max_body: 1024,
            header_timeout: Duration::from_millis(300),
            body_timeout: Duration::from_millis(300),
            keepalive_timeout: Duration::from_millis(300),
        }
    }

    /// nginx 1.22 with `client_body_timeout 2s`, `client_header_timeout 2s` closed such
    /// connections after 2 s without sending a byte (checked with scripts/diff-raw's method).
    #[tokio::test]
    async fn a_stalled_head_or_body_is_closed_without_an_answer() {
        for partial in [
            &b"GET / HTTP/1.1\r\nHost: h\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"",
        ] {
            let (mut client, mut io, queue, task) = front(short()).await;
            client.write_all(partial).await.expect("write");
            let mut seen = Vec::new();
            tokio::time::timeout(DEADLINE, io.read_to_end(&mut seen))
                .await
                .expect("the front gives up within its timeout")
                .expect("read");
            assert!(seen.is_empty(), "nothing handed to hyper for {partial:?}");
            assert!(take(&queue).is_none());
            drop(io);
            let mut answer = Vec::new();
            tokio::time::timeout(DEADLINE, client.read_to_end(&mut answer))
                .await
                .expect("closed")
                .expect("read");
            assert!(answer.is_empty(), "no answer for {partial:?}");
            task.await.expect("reader ends by itself");
        }
    }

    /// Writes `request` (HTTP/1.1, keep-alive); the stand-in hyper reads and the queued ticket.
    async fn hand_over(
        client: &mut TcpStream,
        io: &mut FrontIo,
        queue: &Queue,
        request: &[u8],
    ) -> (Vec<u8>, Ticket) {
        client.write_all(request).await.expect("write");
        let mut stand_in = vec![0; stand_in(false, 1001, true).len()];
        tokio::time::timeout(DEADLINE, io.read_exact(&mut stand_in))
            .await
            .expect("stand-in")
            .expect("read");
        (stand_in, take(queue).expect("ticket"))
    }

    #[tokio::test]
    async fn a_whole_request_is_handed_over_with_its_body() {
        let (mut client, mut io, queue, _task) = front(short()).await;
        let (stand_in, ticket) = hand_over(
            &mut client,
            &mut io,
            &queue,
            b"POST /a?b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz",
        )
        .await;
        assert_eq!(stand_in, b"GET / HTTP/1.1\r\nHost: front\r\n\r\n");
        match &ticket.handover {
            Handover::Request(request) => {
                assert_eq!(request.head.request_uri, b"/a?b");
                assert!(matches!(&request.body, RequestBody::Memory(body) if &body[..] == b"xyz"));
            }
            Handover::Refused(refusal) => panic!("refused: {refusal:?}"),
        }
    }

    /// Found by `chat-compat fuzz --class dynamic_page`: a 1.1 MB chunked POST to a path nginx
    /// serves statically (`/x.php/no-php`) was nginx's 404 and our 413.
    #[tokio::test]
    async fn only_php_paths_hold_a_chunked_body_to_the_limit() {
        let big = format!("{:x}\r\n{}\r\n0\r\n\r\n", 2000, "a".repeat(2000));
        for (path, refused) in [
            ("/a.php", true),
            ("/a.php/no-php", false),
            ("/x.txt", false),
        ] {
            let (mut client, mut io, queue, _task) = front(short()).await;
            let request = format!(
                "POST {path} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{big}"
            );
            let (_, ticket) = hand_over(&mut client, &mut io, &queue, request.as_bytes()).await;
            match (&ticket.handover, refused) {
                (Handover::Refused(Refusal::EntityTooLarge), true) => {}
                // Read and dropped: nothing there would use it.
                (Handover::Request(request), false) => assert!(request.body.len() == 0),
                (other, _) => panic!("{path}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_cut_connection_takes_no_more_writes() {
        let (mut client, mut io, queue, _task) = front(short()).await;
        let (_, ticket) = hand_over(
            &mut client,
            &mut io,
            &queue,
            b"GET /a.php HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        .await;
        io.write_all(b"HTTP/1.1 200 OK\r\n")
            .await
            .expect("before the cut");
        ticket.cutter().cut();
        let err = io.write_all(b"0\r\n\r\n").await.expect_err("after the cut");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn stand_ins_keep_only_framing() {
        assert_eq!(
            stand_in(false, 1001, true),
            b"GET / HTTP/1.1\r\nHost: front\r\n\r\n"
        );
        assert_eq!(
            stand_in(true, 1001, false),
            b"HEAD / HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            stand_in(false, 1000, false),
            b"GET / HTTP/1.0\r\nHost: front\r\n\r\n"
        );
        assert_eq!(
            stand_in(false, 1000, true),
            b"GET / HTTP/1.0\r\nHost: front\r\nConnection: keep-alive\r\n\r\n"
        );
    }
}
