//! The one raw HTTP/1.1 client of the workspace, used by the compat tools, the server's tests
//! and the load generator. Requests go out exactly as built (header order, case and bytes);
//! responses are parsed incrementally so a long poll can be watched and an endless agent stream
//! read message by message. Response heads and chunk-size lines are parsed by `httparse`.
//!
//! Every wait is bounded: connecting and writing by [`CONNECT_TIMEOUT`], every read by the
//! deadline or timeout its method requires, so no caller can wait forever.
//!
//! Bodies are de-chunked into [`Exchange::body`]; where each chunk ended is kept in
//! [`Exchange::chunk_ends`] for the tests that check the agent stream's chunk boundaries (the
//! compat comparison itself ignores them; compat/README.md says why).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::CompatError;

/// Bound on connecting and writing the request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response head we accept; nginx and hyper stay far below it.
const MAX_HEAD: usize = 64 * 1024;

/// Most header lines in a response head (nginx and hyper send about ten).
const MAX_HEADERS: usize = 128;

/// A parsed status line and header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// e.g. `HTTP/1.1`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: String,
    /// Header lines in order, names as sent; values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ResponseHead {
    /// All values of the header `name` (case-insensitive), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// How the end of the body is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length: n`; `n` bytes still to come.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked(ChunkState),
    /// Until the server closes the connection.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk; that many data bytes remain.
    Data(usize),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
}

/// One request on its own connection, and what has arrived of its response so far.
#[derive(Debug)]
pub struct Exchange {
    stream: TcpStream,
    /// Received bytes not yet parsed.
    buf: Vec<u8>,
    head_request: bool,
    framing: Option<Framing>,
    /// The response head, once complete.
    pub head: Option<ResponseHead>,
    /// De-chunked body bytes so far.
    pub body: Vec<u8>,
    /// For a chunked body: the offset in [`Exchange::body`] where each complete chunk ends.
    pub chunk_ends: Vec<usize>,
    /// True once the body is complete (or the connection closed).
    pub complete: bool,
    /// Bytes received so far, head and framing included.
    received: usize,
    eof: bool,
}

impl Exchange {
    /// Connects to `authority` (`host:port`) and writes `request` in one go, within
    /// [`CONNECT_TIMEOUT`]. `head_request` says the response has no body whatever it declares.
    pub async fn send(
        authority: &str,
        request: &[u8],
        head_request: bool,
    ) -> Result<Exchange, CompatError> {
        let connect = async {
            let mut stream = TcpStream::connect(authority)
                .await
                .map_err(|e| CompatError::Http(format!("connect {authority}: {e}")))?;
            stream
                .set_nodelay(true)
                .map_err(|e| CompatError::Http(format!("nodelay: {e}")))?;
            stream
                .write_all(request)
                .await
                .map_err(|e| CompatError::Http(format!("write to {authority}: {e}")))?;
            Ok(stream)
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| {
                CompatError::Http(format!(
                    "connect and write to {authority}: no progress within {CONNECT_TIMEOUT:?}"
                ))
            })??;
        Ok(Exchange {
            stream,
            buf: Vec::new(),
            head_request,
            framing: None,
            head: None,
            body: Vec::new(),
            chunk_ends: Vec::new(),
            complete: false,
            received: 0,
            eof: false,
        })
    }

    /// Writes `request` on this same connection, once the previous response is complete and the
    /// server kept the connection open, and reads its response from here on (bytes already
    /// received past the previous response belong to it).
    pub async fn send_again(&mut self, request: &[u8]) -> Result<(), CompatError> {
        self.stream
            .write_all(request)
            .await
            .map_err(|e| CompatError::Http(format!("write again: {e}")))?;
        self.framing = None;
        self.head = None;
        self.body.clear();
        self.chunk_ends.clear();
        self.complete = false;
        Ok(())
    }

    /// Reads until `done(self)` holds, the response is complete, the connection closes, or
    /// `deadline` passes. Returns whether `done` held. Cancel-safe: nothing read is lost when
    /// the future is dropped.
    pub async fn read_until(
        &mut self,
        deadline: Instant,
        done: impl Fn(&Exchange) -> bool,
    ) -> Result<bool, CompatError> {
        loop {
            self.parse()?;
            if done(self) {
                return Ok(true);
            }
            if self.complete || self.eof {
                return Ok(false);
            }
            let mut chunk = [0u8; 16 * 1024];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await;
            match read {
                Err(_elapsed) => return Ok(false),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => self.eof = true,
                Ok(Err(e)) => return Err(CompatError::Http(format!("read: {e}"))),
                Ok(Ok(0)) => self.eof = true,
                Ok(Ok(n)) => {
                    self.received += n;
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
            if self.eof {
                self.parse()?;
                if self.head.is_some() && self.framing == Some(Framing::UntilClose) {
                    self.complete = true;
                }
            }
        }
    }

    /// Waits (up to `timeout`) for the whole response; returns whether it arrived.
    pub async fn finish(&mut self, timeout: Duration) -> Result<bool, CompatError> {
        self.read_until(Instant::now() + timeout, |x| x.complete)
            .await
    }

    /// Bytes received so far, head and framing included (to tell "nothing arrived").
    pub fn received(&self) -> usize {
        self.received
    }

    /// Whether the server closed the connection (or reset it).
    pub fn closed(&self) -> bool {
        self.eof
    }

    fn parse(&mut self) -> Result<(), CompatError> {
        if self.head.is_none() {
            let Some((head, len)) = parse_head(&self.buf)? else {
                if self.buf.len() > MAX_HEAD {
                    return Err(CompatError::Http("response head larger than 64 KiB".into()));
                }
                if self.eof && !self.buf.is_empty() {
                    return Err(CompatError::Http(format!(
                        "connection closed inside the response head: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    )));
                }
                return Ok(());
            };
            self.buf.drain(..len);
            self.framing = Some(framing_of(&head, self.head_request)?);
            self.head = Some(head);
        }
        loop {
            match self.framing {
                None => return Ok(()),
                Some(Framing::None) => {
                    self.complete = true;
                    return Ok(());
                }
                Some(Framing::UntilClose) => {
                    self.body.append(&mut self.buf);
                    return Ok(());
                }
                Some(Framing::Length(rest)) => {
                    let take = rest.min(self.buf.len());
                    self.body.extend(self.buf.drain(..take));
                    self.framing = Some(Framing::Length(rest - take));
                    if rest == take {
                        self.complete = true;
                        self.framing = Some(Framing::None);
                    }
                    return Ok(());
                }
                Some(Framing::Chunked(state)) => {
                    let next = match state {
                        ChunkState::Size => match httparse::parse_chunk_size(&self.buf) {
                            Ok(httparse::Status::Partial) => return Ok(()),
                            Ok(httparse::Status::Complete((len, size))) => {
                                self.buf.drain(..len);
                                match usize::try_from(size) {
                                    Ok(0) => ChunkState::Trailer,
                                    Ok(size) => ChunkState::Data(size),
                                    Err(_) => {
                                        return Err(CompatError::Http(format!(
                                            "chunk of {size} bytes"
                                        )))
                                    }
                                }
                            }
                            Err(httparse::InvalidChunkSize) => {
                                return Err(CompatError::Http(format!(
                                    "bad chunk size line in {:?}",
                                    String::from_utf8_lossy(&self.buf[..self.buf.len().min(40)])
                                )))
                            }
                        },
                        ChunkState::Data(rest) => {
                            if self.buf.is_empty() {
                                return Ok(());
                            }
                            let take = rest.min(self.buf.len());
                            self.body.extend(self.buf.drain(..take));
                            if take == rest {
                                ChunkState::DataEnd
                            } else {
                                ChunkState::Data(rest - take)
                            }
                        }
                        ChunkState::DataEnd => {
                            if self.buf.len() < 2 {
                                return Ok(());
                            }
                            if &self.buf[..2] != b"\r\n" {
                                return Err(CompatError::Http(
                                    "chunk data not followed by CRLF".into(),
                                ));
                            }
                            self.buf.drain(..2);
                            self.chunk_ends.push(self.body.len());
                            ChunkState::Size
                        }
                        ChunkState::Trailer => {
                            let Some(eol) = find(&self.buf, b"\r\n") else {
                                return Ok(());
                            };
                            self.buf.drain(..eol + 2);
                            if eol == 0 {
                                self.complete = true;
                                self.framing = Some(Framing::None);
                                return Ok(());
                            }
                            ChunkState::Trailer
                        }
                    };
                    self.framing = Some(Framing::Chunked(next));
                }
            }
        }
    }
}

fn framing_of(head: &ResponseHead, head_request: bool) -> Result<Framing, CompatError> {
    if head_request || head.status / 100 == 1 || head.status == 204 || head.status == 304 {
        return Ok(Framing::None);
    }
    let chunked = head.values("transfer-encoding").any(|v| {
        String::from_utf8_lossy(v)
            .to_ascii_lowercase()
            .contains("chunked")
    });
    if chunked {
        return Ok(Framing::Chunked(ChunkState::Size));
    }
    if let Some(v) = head.values("content-length").next() {
        let n = String::from_utf8_lossy(v)
            .trim()
            .parse::<usize>()
            .map_err(|_| {
                CompatError::Http(format!(
                    "bad Content-Length {:?}",
                    String::from_utf8_lossy(v)
                ))
            })?;
        return Ok(if n == 0 {
            Framing::None
        } else {
            Framing::Length(n)
        });
    }
    Ok(Framing::UntilClose)
}

/// The response head at the start of `buf` and its length, or `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, CompatError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            let end = find(buf, b"\r\n\r\n").unwrap_or(buf.len()).min(200);
            return Err(CompatError::Http(format!(
                "bad response head ({e}): {:?}",
                String::from_utf8_lossy(&buf[..end])
            )));
        }
    };
    let head = ResponseHead {
        version: format!("HTTP/1.{}", response.version.unwrap_or(1)),
        status: response.code.unwrap_or_default(),
        reason: response.reason.unwrap_or_default().to_owned(),
        headers: response
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
    };
    Ok(Some((head, len)))
}

/// Position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Builds the request bytes: request line, `Host` (when the headers have none), the given
/// headers in order, `Content-Length` (when there is a body and neither it nor
/// `Transfer-Encoding` is given), `Connection: close` (when no `Connection` is given), body.
pub fn build_request(
    method: &str,
    target: &str,
    authority: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut out = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
    if !has("host") {
        out.extend_from_slice(format!("Host: {authority}\r\n").as_bytes());
    }
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() && !has("content-length") && !has("transfer-encoding") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    if !has("connection") {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The request headers [`build_request`] actually sends, in order (for recordings).
pub fn sent_headers(
    authority: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
) -> Vec<(String, Vec<u8>)> {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut out = Vec::new();
    if !has("host") {
        out.push(("Host".to_owned(), authority.as_bytes().to_vec()));
    }
    out.extend(headers.iter().cloned());
    if !body.is_empty() && !has("content-length") && !has("transfer-encoding") {
        out.push((
            "Content-Length".to_owned(),
            body.len().to_string().into_bytes(),
        ));
    }
    if !has("connection") {
        out.push(("Connection".to_owned(), b"close".to_vec()));
    }
    out
}

/// Splits `http://host:port/prefix` into the authority and the path prefix (without a trailing
/// `/`). Only plain `http` is supported: the servers under test listen locally.
pub fn split_base_url(base: &str) -> Result<(String, String), CompatError> {
    let rest = base.strip_prefix("http://").ok_or_else(|| {
        CompatError::Http(format!("only http:// URLs are supported, got {base:?}"))
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    Ok((authority.to_owned(), path.trim_end_matches('/').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(reply: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address").to_string();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut req = [0u8; 1024];
            let _ = sock.read(&mut req).await;
            let _ = sock.write_all(reply).await;
        });
        addr
    }

    #[tokio::test]
    async fn chunked_bodies_are_dechunked_and_trailers_end_them() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
            .await;
        let req = build_request("GET", "/", &addr, &[], b"");
        let mut ex = Exchange::send(&addr, &req, false).await.expect("send");
        assert!(ex.finish(Duration::from_secs(5)).await.expect("read"));
        assert_eq!(ex.body, b"abcde");
        assert_eq!(ex.head.expect("head").status, 200);
    }

    #[tokio::test]
    async fn chunk_boundaries_are_kept_beside_the_body() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .await;
        let req = build_request("GET", "/", &addr, &[], b"");
        let mut ex = Exchange::send(&addr, &req, false).await.expect("send");
        assert!(ex.finish(Duration::from_secs(5)).await.expect("read"));
        assert_eq!(ex.chunk_ends, vec![3, 5]);
    }

    #[tokio::test]
    async fn header_values_lose_surrounding_blanks_and_keep_their_bytes() {
        let addr = serve_once(
            b"HTTP/1.0 404 Not  Found\r\nSet-Cookie:  a=\xe4 \r\nX-Empty:\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        let req = build_request("GET", "/", &addr, &[], b"");
        let mut ex = Exchange::send(&addr, &req, false).await.expect("send");
        assert!(ex.finish(Duration::from_secs(5)).await.expect("read"));
        let head = ex.head.expect("head");
        assert_eq!(
            (head.version.as_str(), head.status, head.reason.as_str()),
            ("HTTP/1.0", 404, "Not  Found")
        );
        assert_eq!(
            head.headers,
            vec![
                ("Set-Cookie".to_owned(), b"a=\xe4".to_vec()),
                ("X-Empty".to_owned(), Vec::new()),
                ("Content-Length".to_owned(), b"0".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn a_silent_server_ends_the_read_at_its_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let _held = tokio::spawn(async move { listener.accept().await });
        let req = build_request("GET", "/", &addr, &[], b"");
        let mut ex = Exchange::send(&addr, &req, false).await.expect("send");
        assert!(!ex
            .finish(Duration::from_millis(50))
            .await
            .expect("no error"));
        assert_eq!((ex.received(), ex.closed()), (0, false));
    }

    #[tokio::test]
    async fn head_responses_have_no_body_even_with_a_length() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n").await;
        let req = build_request("HEAD", "/", &addr, &[], b"");
        let mut ex = Exchange::send(&addr, &req, true).await.expect("send");
        assert!(ex.finish(Duration::from_secs(5)).await.expect("read"));
        assert!(ex.body.is_empty());
    }

    #[test]
    fn requests_keep_header_order_and_add_only_missing_framing() {
        let headers = vec![
            ("cookie".to_owned(), b"a=1".to_vec()),
            ("X-Y".to_owned(), b"z".to_vec()),
        ];
        let req = build_request("POST", "/p", "h:1", &headers, b"xy");
        assert_eq!(
            req,
            b"POST /p HTTP/1.1\r\nHost: h:1\r\ncookie: a=1\r\nX-Y: z\r\nContent-Length: 2\r\nConnection: close\r\n\r\nxy"
        );
    }
}
