//! FastCGI pass-through (`--php-fpm`): the `.php` files of the docroot that the server does not
//! reimplement (and, with `--endpoint-to-php`, any of the five it does) run on the operator's
//! PHP-FPM, answered as the legacy's nginx 1.22 answered them.
//!
//! - [`params`]: what nginx tells PHP about the request (pure).
//! - [`response`]: how nginx turns PHP's CGI head into an HTTP head (pure).
//! - `record`: the FastCGI record format (pure).
//! - `upstream`: the bounded pool of kept-open connections (closed once idle a while) and the
//!   timeouts.
//! - [`rollback`]: which of the five go to PHP now (`--endpoint-to-php`, and the file re-read on
//!   SIGHUP).
//!
//! This module joins them: the request (read whole by [`crate::http::front`] within
//! `client_max_body_size`, as nginx reads it before it contacts PHP; past 16k from its temporary
//! file, a [`BODY_PIECE`] at a time) goes out as records; the
//! answer comes back as a streamed body, never held whole: nginx's buffering is kept (output
//! leaves in [`BUFFERED_CHUNK`] pieces, or at the end) unless PHP sends
//! `X-Accel-Buffering: no` or the operator's nginx had `fastcgi_buffering off`
//! (`--fastcgi-buffering off`, as `compat/legacy-up` has it for the agent stream), when each
//! flush leaves at once. A client that reads slowly slows the reads from PHP-FPM (nginx would
//! spill to a temporary file instead).

pub mod params;
mod record;
pub mod response;
pub mod rollback;
mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use crate::http::body::RequestBody;
use crate::http::front::{Cutter, Request};
use crate::php::script::{Printed, Script};
use crate::response::{error_page, Body};
use crate::site::Endpoint;
use response::{CgiHead, Parsed};
use upstream::{Address, Event, Failure, Lease, Upstream};

/// How much buffered output is collected before it is sent: nginx's
/// `fastcgi_busy_buffers_size` (two 4k buffers), after which it starts writing to the client.
pub const BUFFERED_CHUNK: usize = 8 * 1024;

/// How much of a body in a temporary file is read and sent at a time: nginx's
/// `client_body_buffer_size`, the memory the body took while it arrived.
const BODY_PIECE: usize = crate::http::body::BODY_BUFFER;

/// The operator's PHP-FPM and what goes to it.
#[derive(Debug)]
pub struct Fpm {
    upstream: Arc<Upstream>,
    site_root: Vec<u8>,
    base_path: Vec<u8>,
    server_name: String,
    to_php: Arc<rollback::ToPhp>,
    buffering: bool,
}

/// How `--php-fpm` is set up.
#[derive(Debug)]
pub struct Settings<'a> {
    /// `--php-fpm`.
    pub address: &'a str,
    /// `--site`, as nginx's `root` names it (absolute, symlinks not resolved).
    pub site: &'a Path,
    /// `--base-path` without its trailing slash.
    pub base_path: &'a str,
    /// `--server-name`.
    pub server_name: &'a str,
    /// `--endpoint-to-php` and `--endpoint-to-php-file`.
    pub to_php: Arc<rollback::ToPhp>,
    /// `--php-fpm-connections`.
    pub connections: usize,
    /// `--php-fpm-idle-ms`.
    pub keep_idle: Duration,
    /// `--fastcgi-read-timeout-ms`.
    pub read_timeout: Duration,
    /// `--fastcgi-buffering`.
    pub buffering: bool,
}

impl Fpm {
    /// The pass-through; no connection is opened before the first request, as nginx.
    pub fn new(settings: Settings<'_>) -> Fpm {
        let site = std::path::absolute(settings.site).unwrap_or_else(|_| settings.site.into());
        let mut site_root = site.into_os_string().into_encoded_bytes();
        while site_root.len() > 1 && site_root.ends_with(b"/") {
            site_root.pop();
        }
        Fpm {
            upstream: Arc::new(Upstream::new(
                Address::parse(settings.address),
                upstream::Bounds {
                    size: settings.connections,
                    timeout: settings.read_timeout,
                    keep_idle: settings.keep_idle,
                },
            )),
            site_root,
            base_path: settings.base_path.as_bytes().to_vec(),
            server_name: settings.server_name.to_owned(),
            to_php: settings.to_php,
            buffering: settings.buffering,
        }
    }

    /// Whether this reimplemented script is sent to PHP instead, at this moment (the list can
    /// change on SIGHUP; a request keeps the answer it got).
    pub fn takes(&self, endpoint: Endpoint) -> bool {
        self.to_php.takes(endpoint)
    }

    /// The rollback list, to follow SIGHUP.
    pub fn to_php(&self) -> &Arc<rollback::ToPhp> {
        &self.to_php
    }

    /// Runs the request on PHP-FPM; nginx's 502 or 504 page when that fails before PHP's head.
    pub async fn respond(
        &self,
        request: &Request,
        peer: SocketAddr,
        local: SocketAddr,
        cutter: Cutter,
    ) -> Response<Body> {
        let context = params::Context {
            head: &request.head,
            body_len: request.body.len(),
            site_root: &self.site_root,
            base_path: &self.base_path,
            peer,
            local,
            server_name: &self.server_name,
        };
        let records = encode(&params::params(&context), &request.body);
        match self
            .exchange(&records, &request.body, &request.head.method)
            .await
        {
            Ok((head, lease, rest)) => {
                let buffering = head.buffering.unwrap_or(self.buffering);
                // nginx reads no body for a HEAD, a 204 or a 304, whatever the length says.
                let bodiless = request.head.method == "HEAD" || matches!(head.status, 204 | 304);
                let mut reading = Reading {
                    upstream: Arc::clone(&self.upstream),
                    lease: Some(lease),
                    buffering,
                    pending: rest,
                    cutter,
                    failed: false,
                    left: head.content_length.filter(|_| !bodiless),
                };
                // Buffering, nginx writes nothing, head included, before its first buffers are
                // full or the answer ended. A failure meanwhile still sends the head, then cuts:
                // nginx had already passed PHP's head on.
                if buffering {
                    reading.fail_on(BUFFERED_CHUNK).await;
                }
                http_response(head, body(reading))
            }
            Err(failure) => failed(failure),
        }
    }

    /// Sends the request and reads PHP's head: the head, the connection, and the body bytes that
    /// came with the head. An idle connection FPM closed is noticed before it is used; should
    /// FPM close one just as the request goes out, an idempotent request is tried once more on a
    /// fresh connection (nginx's rule for retries: never a POST, which may have run).
    async fn exchange(
        &self,
        records: &[u8],
        body: &RequestBody,
        method: &str,
    ) -> Result<(CgiHead, Lease, Vec<u8>), Failure> {
        let mut lease = self.upstream.lease().await?;
        let retry = !matches!(method, "POST" | "LOCK" | "PATCH");
        loop {
            match read_head(&mut lease, records, body).await {
                Ok((head, rest)) => return Ok((head, lease, rest)),
                Err((Failure::Broken(_), false)) if lease.reused && retry => {
                    lease = self.upstream.reopen(lease).await?;
                }
                Err((failure, _)) => return Err(failure),
            }
        }
    }
}

/// nginx's page for a failure before anything was sent: 504 for a timeout, else 502.
fn failed(failure: Failure) -> Response<Body> {
    match failure {
        Failure::TimedOut => {
            tracing::error!("PHP-FPM timed out (fastcgi_read_timeout)");
            error_page(StatusCode::GATEWAY_TIMEOUT)
        }
        Failure::Broken(err) => {
            tracing::error!(%err, "PHP-FPM failed");
            error_page(StatusCode::BAD_GATEWAY)
        }
    }
}

/// Sends the request and reads until PHP's head is complete. The error says whether any output
/// arrived (then no second attempt is made).
async fn read_head(
    lease: &mut Lease,
    records: &[u8],
    body: &RequestBody,
) -> Result<(CgiHead, Vec<u8>), (Failure, bool)> {
    send_request(lease, records, body)
        .await
        .map_err(|failure| (failure, false))?;
    let mut output = Vec::new();
    loop {
        match lease.connection.next().await {
            Ok(Event::Stdout(data)) => output.extend_from_slice(&data),
            Ok(Event::End) => {
                return Err((
                    Failure::Broken(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "upstream prematurely closed FastCGI stdout",
                    )),
                    true,
                ))
            }
            Err(failure) => return Err((failure, !output.is_empty())),
        }
        match response::parse(&output) {
            Parsed::Incomplete => {}
            Parsed::Invalid => {
                return Err((
                    Failure::Broken(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "upstream sent invalid header",
                    )),
                    true,
                ))
            }
            Parsed::Complete(head, used) => {
                let rest = output.split_off(used);
                return Ok((head, rest));
            }
        }
    }
}

/// The request as records: begin (keep the connection), the parameters, and the body when it
/// is in memory (see [`send_request`] for one in a file).
fn encode(params: &[(Vec<u8>, Vec<u8>)], body: &RequestBody) -> Vec<u8> {
    let in_memory = match body {
        RequestBody::Memory(bytes) => bytes.len(),
        RequestBody::Spooled { .. } => 0,
    };
    let mut out = Vec::with_capacity(1024 + in_memory + in_memory / record::MAX_CONTENT * 16);
    record::begin_request(&mut out, true);
    record::params(
        &mut out,
        params.iter().map(|(name, value)| (&name[..], &value[..])),
    );
    if let RequestBody::Memory(bytes) = body {
        record::push_stream(&mut out, record::STDIN, bytes);
        record::push(&mut out, record::STDIN, b"");
    }
    out
}

/// Writes `records` ([`encode`]); a body in a temporary file follows, read and sent a
/// [`BODY_PIECE`] at a time, then the end of stdin.
async fn send_request(
    lease: &mut Lease,
    records: &[u8],
    body: &RequestBody,
) -> Result<(), Failure> {
    lease.connection.send(records).await?;
    if let RequestBody::Memory(_) = body {
        return Ok(());
    }
    let mut out = Vec::with_capacity(BODY_PIECE + 64);
    let mut offset = 0;
    while offset < body.len() {
        let piece = body.chunk(offset, BODY_PIECE).await?;
        offset += piece.len();
        out.clear();
        record::push_stream(&mut out, record::STDIN, &piece);
        lease.connection.send(&out).await?;
    }
    out.clear();
    record::push(&mut out, record::STDIN, b"");
    lease.connection.send(&out).await
}

/// The HTTP head nginx writes for PHP's: `Content-Type` first (nginx writes it in its fixed
/// place, before the other lines), then PHP's lines in order.
fn http_response(head: CgiHead, body: Body) -> Response<Body> {
    // A 1xx status is no final answer in HTTP/1.1: nginx writes PHP's head under it anyway,
    // hyper cannot; nginx's 502 page stands in (README.md, `--php-fpm` differences).
    let status = match StatusCode::from_u16(head.status) {
        Ok(status) if !status.is_informational() => status,
        _ => {
            tracing::error!(
                status = head.status,
                "PHP-FPM sent a status HTTP/1.1 cannot answer with"
            );
            return error_page(StatusCode::BAD_GATEWAY);
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Some(reason) = head
        .reason
        .filter(|reason| status.canonical_reason().map(str::as_bytes) != Some(&reason[..]))
    {
        if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason) {
            response.extensions_mut().insert(reason);
        }
    }
    let (content_type, others): (Vec<_>, Vec<_>) = head
        .headers
        .into_iter()
        .partition(|(name, _)| name.eq_ignore_ascii_case(b"content-type"));
    let headers = response.headers_mut();
    if let Some(line) = response::content_type(content_type.iter().map(|(_, v)| &v[..])) {
        if let Ok(value) = HeaderValue::from_bytes(&line) {
            headers.insert(CONTENT_TYPE, value);
        }
    }
    if let Some(length) = head.content_length {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    for (name, value) in others {
        match (
            HeaderName::from_bytes(&name),
            HeaderValue::from_bytes(&value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => tracing::warn!(
                header = %String::from_utf8_lossy(&name),
                "a header line from PHP-FPM that HTTP cannot carry was left out"
            ),
        }
    }
    response
}

/// What the body stream carries between reads.
struct Reading {
    upstream: Arc<Upstream>,
    /// The connection until PHP's answer ended (or failed).
    lease: Option<Lease>,
    buffering: bool,
    pending: Vec<u8>,
    /// Cuts the client's connection when PHP-FPM fails midway, as nginx closes it.
    cutter: Cutter,
    /// PHP-FPM failed: what is pending is sent, then the connection is cut.
    failed: bool,
    /// With PHP's `Content-Length`, the bytes still to pass: nginx passes no more ("upstream
    /// sent more data than specified") and cuts the connection when PHP ends short of it
    /// ("upstream prematurely closed FastCGI request").
    left: Option<u64>,
}

impl Reading {
    /// Reads until `want` bytes are pending or the answer ended. At the end the connection goes
    /// back to the pool; on a failure it is dropped (closed) and the failure returned.
    async fn fill(&mut self, want: usize) -> Result<(), Failure> {
        while self.pending.len() < want {
            let Some(lease) = self.lease.as_mut() else {
                return Ok(());
            };
            match lease.connection.next().await {
                Ok(Event::Stdout(data)) => self.pending.extend_from_slice(&data),
                Ok(Event::End) => {
                    if let Some(lease) = self.lease.take() {
                        self.upstream.give_back(lease);
                    }
                }
                Err(failure) => {
                    self.lease = None;
                    return Err(failure);
                }
            }
        }
        Ok(())
    }

    /// [`Reading::fill`], noting a failure (logged) instead of returning it.
    async fn fail_on(&mut self, want: usize) {
        if let Err(failure) = self.fill(want).await {
            tracing::error!(
                ?failure,
                "PHP-FPM failed after its head; closing the connection, as nginx"
            );
            self.failed = true;
            // nginx passes its buffers on only once full: output in a partly filled one is lost
            // with the connection (observed: the head, then nothing).
            self.pending.clear();
        }
    }

    /// How much output makes a piece worth sending.
    fn want(&self) -> usize {
        if self.buffering {
            BUFFERED_CHUNK
        } else {
            1
        }
    }
}

/// PHP's output after its head, read as the client takes it. If PHP-FPM fails midway, the
/// connection is cut (as nginx closes it), so the client sees no end of the body.
fn body(state: Reading) -> Body {
    let chunks = futures_util::stream::unfold(state, |mut state| async move {
        if !state.failed {
            state.fail_on(state.want()).await;
        }
        if let Some(left) = state.left {
            if state.pending.len() as u64 >= left {
                // The declared length is reached: the rest of PHP's output goes with its
                // connection, as nginx closes it.
                state.pending.truncate(left as usize);
                state.lease = None;
            } else if state.pending.is_empty() && state.lease.is_none() && !state.failed {
                tracing::error!(
                    left,
                    "PHP-FPM ended short of its Content-Length; closing the connection, as nginx"
                );
                state.failed = true;
            }
            state.left = Some(left - state.pending.len() as u64);
        }
        if !state.pending.is_empty() {
            let data = std::mem::take(&mut state.pending);
            return Some((Ok(Frame::data(Bytes::from(data))), state));
        }
        if state.failed {
            // Pending once, so hyper flushes what it holds (the head, at least) first: nginx
            // sent that before it closed.
            tokio::task::yield_now().await;
            state.cutter.cut();
        }
        None
    });
    StreamBody::new(chunks).boxed_unsync()
}

/// The `.php` files under `root` (dot-directories skipped) that today's server answers without
/// running: everything but the five reimplemented scripts whose code is not provably inert.
/// Logged at start-up without `--php-fpm`, so the operator knows what would change with it.
pub fn declined_scripts(root: &Path) -> Vec<PathBuf> {
    const MOST_FILES: usize = 100_000;
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MOST_FILES {
                return found;
            }
            let name = entry.file_name();
            if name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if name.as_encoded_bytes().ends_with(b".php") {
                let top_level = dir == root;
                if top_level && Endpoint::named(&name.to_string_lossy()).is_some() {
                    continue;
                }
                let runs = std::fs::read(&path)
                    .map(|source| !matches!(Script::parse(&source).printed(), Printed::Text(_)))
                    .unwrap_or(false);
                if runs {
                    found.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
                }
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_site_declines_only_its_connection_script() {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/compat/legacy-site"));
        assert_eq!(declined_scripts(root), [PathBuf::from("AJconn.php")]);
    }

    #[tokio::test]
    async fn php_head_becomes_nginx_head() {
        let head = CgiHead {
            status: 404,
            reason: Some(b"Gone Fishing".to_vec()),
            headers: vec![
                (b"Set-Cookie".to_vec(), b"a=1".to_vec()),
                (
                    b"Content-type".to_vec(),
                    b"text/html; charset=UTF-8".to_vec(),
                ),
                (b"Set-Cookie".to_vec(), b"b=2".to_vec()),
            ],
            buffering: None,
            content_length: None,
        };
        let response = http_response(head, crate::response::full(""));
        assert_eq!(response.status(), 404);
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .expect("PHP's own words");
        assert_eq!(reason.as_bytes(), b"Gone Fishing");
        let names: Vec<_> = response
            .headers()
            .keys()
            .map(|name| name.as_str())
            .collect();
        assert_eq!(names, ["content-type", "set-cookie"]);
        assert_eq!(response.headers().get_all("set-cookie").iter().count(), 2);
    }
}
