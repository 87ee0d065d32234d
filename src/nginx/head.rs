//! Request heads as nginx 1.22 reads them (`ngx_http_parse_request_line`,
//! `ngx_http_parse_header_line`, `ngx_http_process_request_headers`), with its buffer limits:
//! `client_header_buffer_size 1k` and `large_client_header_buffers 4 8k`.
//!
//! The parser is incremental: call [`HeadParser::advance`] with everything received so far; it
//! looks at each complete line once, so a head trickled byte by byte costs linear time, and it
//! refuses as soon as nginx would (a line that cannot fit a buffer, a malformed line).

use super::uri::{self, Target};
use super::Refusal;

/// nginx's `client_header_buffer_size`: the first buffer of every request.
pub const CLIENT_HEADER_BUFFER: usize = 1024;
/// nginx's `large_client_header_buffers` size: the longest line, terminator included.
pub const LARGE_HEADER_BUFFER: usize = 8192;
/// nginx's `large_client_header_buffers` number.
pub const LARGE_HEADER_BUFFERS: usize = 4;
/// The most bytes a request head can take in nginx's buffers; nothing longer is ever buffered.
pub const MAX_HEAD_BYTES: usize = CLIENT_HEADER_BUFFER + LARGE_HEADER_BUFFERS * LARGE_HEADER_BUFFER;

/// A header line as passed on: name as sent, value trimmed of spaces.
pub type Header = (Vec<u8>, Vec<u8>);

/// HTTP/1.1 as nginx numbers versions (`major * 1000 + minor`).
pub const HTTP_11: u32 = 1001;

/// Headers nginx refuses to see twice (`ngx_http_process_unique_header_line`, `Host`).
const UNIQUE: [&str; 11] = [
    "host",
    "content-length",
    "transfer-encoding",
    "expect",
    "authorization",
    "if-modified-since",
    "if-unmodified-since",
    "if-match",
    "if-none-match",
    "content-range",
    "if-range",
];

/// An accepted request head: what nginx hands over to PHP (or serves a file for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method, exactly as sent (nginx only accepts `A-Z`, `_`, `-`).
    pub method: String,
    /// `REQUEST_URI`: the target as sent, from its path on (an absolute-form target loses its
    /// scheme and host).
    pub request_uri: Vec<u8>,
    /// The decoded path and the raw arguments.
    pub target: Target,
    /// `major * 1000 + minor`.
    pub version: u32,
    /// Every valid header line in order, name as sent, value with leading and trailing spaces
    /// removed (tabs and other bytes are kept, as nginx keeps them). Lines nginx ignores (a name
    /// with `_` or other invalid characters) are not here.
    pub headers: Vec<Header>,
    /// A valid `Content-Length`.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1: nginx sends `100 Continue` before reading the body.
    pub expect_continue: bool,
}

impl Head {
    /// The first header with this (lower-case) name: what nginx keeps for `Content-Type`.
    pub fn first(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &v[..])
    }

    /// The last header with this name: nginx 1.22 passes every `Cookie` line to PHP-FPM as its
    /// own `HTTP_COOKIE` parameter, and PHP keeps the last one.
    pub fn last(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &v[..])
    }
}

/// Where parsing stands.
#[derive(Debug)]
pub enum Progress {
    /// More bytes are needed.
    Incomplete,
    /// The head is complete; it took this many bytes (the body, if any, follows).
    Complete(Box<Head>, usize),
    /// nginx answers this itself.
    Refused(Refusal),
}

struct RequestLine {
    method: String,
    request_uri: Vec<u8>,
    target: Target,
    version: u32,
}

/// Whether nginx would know this request as `HEAD` (its answers then have no body): the method
/// is read first, so even a request refused later in its head counts.
pub fn is_head_request(data: &[u8]) -> bool {
    let start = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(data.len());
    data[start..].starts_with(b"HEAD ")
}

/// Incremental parser of one request head.
#[derive(Default)]
pub struct HeadParser {
    /// Start of the first line not yet looked at.
    pos: usize,
    /// How far the line starting at `pos` has been searched for its `\n`.
    scanned: usize,
    buffers: Buffers,
    request_line: Option<RequestLine>,
    /// Where each valid header's name and value lie in the data: nothing is copied until the
    /// head is complete, so a head costs its buffer and no more (nginx keeps pointers too).
    headers: Vec<(Span, Span)>,
}

type Span = std::ops::Range<usize>;

impl HeadParser {
    /// A parser for a new request.
    pub fn new() -> HeadParser {
        HeadParser::default()
    }

    /// Looks at the lines of `data` (everything received for this request so far) not yet seen.
    pub fn advance(&mut self, data: &[u8]) -> Progress {
        loop {
            let from = self.scanned.max(self.pos);
            let Some(found) = data[from..].iter().position(|&b| b == b'\n') else {
                self.scanned = data.len();
                break;
            };
            let newline = from + found - self.pos;
            let line_len = newline + 1;
            let is_request_line = self.request_line.is_none();
            if let Err(refusal) = self.buffers.fit(line_len, is_request_line) {
                return Progress::Refused(refusal);
            }
            let line_start = self.pos;
            let mut line = &data[self.pos..self.pos + newline];
            self.pos += line_len;
            // A line ends in LF, after one CR; a header line after any number of CRs
            // (`sw_almost_done` skips them), but the empty line ending the head after one only.
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if !is_request_line && !line.is_empty() && !line.iter().all(|&b| b == b'\r') {
                while let Some(stripped) = line.strip_suffix(b"\r") {
                    line = stripped;
                }
            }
            if line.contains(&b'\r') {
                return Progress::Refused(Refusal::BadRequest);
            }
            if is_request_line {
                // Empty lines before the request line are skipped.
                if line.is_empty() {
                    continue;
                }
                match parse_request_line(line) {
                    Ok(request_line) => self.request_line = Some(request_line),
                    Err(refusal) => return Progress::Refused(refusal),
                }
            } else if line.is_empty() {
                return match self.finish(data) {
                    Ok(head) => Progress::Complete(Box::new(head), self.pos),
                    Err(refusal) => Progress::Refused(refusal),
                };
            } else {
                match parse_header_line(line) {
                    Ok(Some((name, value))) => {
                        let name = line_start + name.start..line_start + name.end;
                        let value = line_start + value.start..line_start + value.end;
                        if let Err(refusal) = self.check_header(data, &name, &value) {
                            return Progress::Refused(refusal);
                        }
                        self.headers.push((name, value));
                    }
                    Ok(None) => {}
                    Err(refusal) => return Progress::Refused(refusal),
                }
            }
        }
        let partial = data.len() - self.pos;
        match self
            .buffers
            .check_partial(partial, self.request_line.is_none())
        {
            Ok(()) => Progress::Incomplete,
            Err(refusal) => Progress::Refused(refusal),
        }
    }

    /// Refusals nginx makes while reading each header line.
    fn check_header(&self, data: &[u8], name: &Span, value: &Span) -> Result<(), Refusal> {
        let (name, value) = (&data[name.clone()], &data[value.clone()]);
        let unique = UNIQUE
            .iter()
            .any(|unique| name.eq_ignore_ascii_case(unique.as_bytes()));
        if unique
            && self
                .headers
                .iter()
                .any(|(seen, _)| data[seen.clone()].eq_ignore_ascii_case(name))
        {
            return Err(Refusal::BadRequest);
        }
        if name.eq_ignore_ascii_case(b"host") && !valid_host(value) {
            return Err(Refusal::BadRequest);
        }
        Ok(())
    }

    /// The checks of `ngx_http_process_request_header`, in nginx's order.
    fn finish(&mut self, data: &[u8]) -> Result<Head, Refusal> {
        let line = self.request_line.take().ok_or(Refusal::BadRequest)?;
        let mut head = Head {
            method: line.method,
            request_uri: line.request_uri,
            target: line.target,
            version: line.version,
            headers: self
                .headers
                .drain(..)
                .map(|(name, value)| (data[name].to_vec(), data[value].to_vec()))
                .collect(),
            content_length: None,
            chunked: false,
            keep_alive: line.version >= HTTP_11,
            expect_continue: false,
        };
        if head.version >= HTTP_11 && head.first("host").is_none() {
            return Err(Refusal::BadRequest);
        }
        if let Some(length) = head.first("content-length") {
            head.content_length = Some(parse_length(length).ok_or(Refusal::BadRequest)?);
        }
        if let Some(encoding) = head.first("transfer-encoding") {
            if head.version < HTTP_11 {
                return Err(Refusal::BadRequest);
            }
            if !encoding.eq_ignore_ascii_case(b"chunked") {
                return Err(Refusal::NotImplemented);
            }
            if head.content_length.is_some() {
                return Err(Refusal::BadRequest);
            }
            head.chunked = true;
        }
        if head.method == "TRACE" || head.method == "CONNECT" {
            return Err(Refusal::NotAllowed);
        }
        if let Some(connection) = head.first("connection") {
            if contains_ignore_case(connection, b"close") {
                head.keep_alive = false;
            } else if contains_ignore_case(connection, b"keep-alive") {
                head.keep_alive = true;
            }
        }
        head.expect_continue = head.version >= HTTP_11
            && head
                .first("expect")
                .is_some_and(|expect| expect.eq_ignore_ascii_case(b"100-continue"));
        Ok(head)
    }
}

/// Where lines land in nginx's header buffers: the 1k buffer first, then up to four 8k ones. A
/// line that does not fit the rest of the current buffer moves whole to a fresh large one.
#[derive(Debug)]
struct Buffers {
    capacity: usize,
    used: usize,
    large: usize,
}

impl Default for Buffers {
    fn default() -> Self {
        Buffers {
            capacity: CLIENT_HEADER_BUFFER,
            used: 0,
            large: 0,
        }
    }
}

impl Buffers {
    fn too_large(request_line: bool) -> Refusal {
        if request_line {
            Refusal::UriTooLarge
        } else {
            Refusal::HeaderTooLarge
        }
    }

    /// A complete line of `len` bytes (terminator included).
    fn fit(&mut self, len: usize, request_line: bool) -> Result<(), Refusal> {
        if self.used + len <= self.capacity {
            self.used += len;
            return Ok(());
        }
        if len > LARGE_HEADER_BUFFER || self.large == LARGE_HEADER_BUFFERS {
            return Err(Self::too_large(request_line));
        }
        self.large += 1;
        self.capacity = LARGE_HEADER_BUFFER;
        self.used = len;
        Ok(())
    }

    /// A line still arriving, `len` bytes so far: refused once it fills its buffer and no
    /// larger one can take it.
    fn check_partial(&self, len: usize, request_line: bool) -> Result<(), Refusal> {
        if len > 0
            && self.used + len >= self.capacity
            && (len >= LARGE_HEADER_BUFFER || self.large == LARGE_HEADER_BUFFERS)
        {
            return Err(Self::too_large(request_line));
        }
        Ok(())
    }
}

fn parse_request_line(line: &[u8]) -> Result<RequestLine, Refusal> {
    let bad = Refusal::BadRequest;
    let method_len = line.iter().position(|&b| b == b' ').ok_or(bad)?;
    let method = &line[..method_len];
    if method.is_empty()
        || !method
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b == b'_' || b == b'-')
    {
        return Err(bad);
    }
    let mut rest = &line[method_len..];
    while let Some(r) = rest.strip_prefix(b" ") {
        rest = r;
    }
    let target_len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let (raw_target, mut rest) = rest.split_at(target_len);
    if raw_target.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(bad);
    }
    let request_uri = match raw_target.first() {
        Some(b'/') => raw_target.to_vec(),
        Some(b) if b.is_ascii_alphabetic() => absolute_form_path(raw_target).ok_or(bad)?,
        _ => return Err(bad),
    };
    while let Some(r) = rest.strip_prefix(b" ") {
        rest = r;
    }
    // A request line without a version is HTTP/0.9, whose answer has no status line: not
    // something the legacy's clients send; refused rather than answered in another form.
    let version = parse_version(rest)?;
    let target = uri::parse(&request_uri).ok_or(bad)?;
    Ok(RequestLine {
        method: String::from_utf8(method.to_vec()).map_err(|_| bad)?,
        request_uri,
        target,
        version,
    })
}

/// `http://host[:port]/path` → `/path` (`/` when there is none); the host must be valid.
fn absolute_form_path(target: &[u8]) -> Option<Vec<u8>> {
    let scheme_end = target.iter().position(|&b| !b.is_ascii_alphabetic())?;
    let rest = target[scheme_end..].strip_prefix(b"://")?;
    let host_end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    if !valid_host(&rest[..host_end]) {
        return None;
    }
    Some(if host_end == rest.len() {
        b"/".to_vec()
    } else {
        rest[host_end..].to_vec()
    })
}

/// `HTTP/major.minor`, then optional spaces. Major 1-99 without leading zero, minor 0-99.
fn parse_version(text: &[u8]) -> Result<u32, Refusal> {
    let bad = Refusal::BadRequest;
    let rest = text.strip_prefix(b"HTTP/").ok_or(bad)?;
    let (major, rest) = digits(rest).ok_or(bad)?;
    if rest.first() != Some(&b'.') || text[5] == b'0' {
        return Err(bad);
    }
    let (minor, rest) = digits(&rest[1..]).ok_or(bad)?;
    if major > 99 || minor > 99 || rest.iter().any(|&b| b != b' ') {
        return Err(bad);
    }
    if major > 1 {
        return Err(Refusal::VersionNotSupported);
    }
    Ok(major * 1000 + minor)
}

fn digits(text: &[u8]) -> Option<(u32, &[u8])> {
    let len = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 {
        return None;
    }
    let value = text[..len]
        .iter()
        .try_fold(0u32, |acc, &b| {
            acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
        })
        .unwrap_or(u32::MAX);
    Some((value, &text[len..]))
}

/// `Ok(None)` for a line nginx ignores (`ignore_invalid_headers on`, `underscores_in_headers off`).
fn parse_header_line(line: &[u8]) -> Result<Option<(Span, Span)>, Refusal> {
    let bad = Refusal::BadRequest;
    let name_end = line.iter().position(|&b| b == b':').unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return Err(bad);
    }
    let mut valid = true;
    for &b in name {
        if b <= 0x20 || b == 0x7f {
            return Err(bad);
        }
        if !(b.is_ascii_alphanumeric() || b == b'-') {
            valid = false;
        }
    }
    let (mut start, mut end) = ((name_end + 1).min(line.len()), line.len());
    if line[start..].contains(&0) {
        return Err(bad);
    }
    while start < end && line[start] == b' ' {
        start += 1;
    }
    while end > start && line[end - 1] == b' ' {
        end -= 1;
    }
    Ok(valid.then_some((0..name_end, start..end)))
}

/// `ngx_http_validate_host`.
fn valid_host(host: &[u8]) -> bool {
    let mut host_len = host.len();
    let mut dot_pos: Option<usize> = None;
    let mut in_port = false;
    let mut in_literal = false;
    for (i, &b) in host.iter().enumerate() {
        match b {
            b'.' => {
                if i > 0 && dot_pos == Some(i - 1) {
                    return false;
                }
                dot_pos = Some(i);
            }
            b':' if !in_port && !in_literal => {
                host_len = i;
                in_port = true;
            }
            b'[' if i == 0 => in_literal = true,
            b']' if in_literal => {
                host_len = i + 1;
                in_literal = false;
                in_port = true;
            }
            b'/' | 0 => return false,
            b if b <= 0x20 || b == 0x7f => return false,
            _ => {}
        }
    }
    if host_len > 0 && dot_pos == Some(host_len - 1) {
        host_len -= 1;
    }
    host_len > 0
}

/// `ngx_atoof`: digits only.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        let next = acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        (next <= i64::MAX as u64).then_some(next)
    })
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests;
