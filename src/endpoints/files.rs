//! Everything in the docroot that is not a reimplemented script: static files as nginx serves
//! them, other `.php` files as the text PHP prints.
//!
//! A static file is streamed from disk in small chunks, so its size never becomes the server's
//! memory (ten downloads of a 200 MB file held 2 GB when files were read whole). The headers and
//! conditional answers are nginx's (1.22, default `if_modified_since exact`): `Last-Modified`,
//! `ETag "<mtime hex>-<size hex>"`, `Accept-Ranges: bytes`; `If-None-Match` or an exact
//! `If-Modified-Since` answer 304, `If-Match`/`If-Unmodified-Since` that fail 412; one byte
//! range answers 206 (unless `If-Range` names another version), an unsatisfiable one 416 with
//! `Content-Range: bytes */size`. Several ranges (nginx: `multipart/byteranges`) get the whole
//! file, which HTTP allows. Checked against nginx 1.22.1 (README, compatibility promise).

use std::time::{Duration, UNIX_EPOCH};

use bytes::BytesMut;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::header::{
    HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED,
};
use hyper::{Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{error_page, full, php_response, Body};
use crate::nginx::head::Head;
use crate::php;
use crate::php::script::Printed;

/// How much of a file is read per frame: the most a download holds in memory at once.
const CHUNK: usize = 64 * 1024;

/// A static file; GET and HEAD only, as nginx allows.
pub async fn static_file(
    head: &Head,
    path: &std::path::Path,
    content_type: &'static str,
) -> Response<Body> {
    if head.method != "GET" && head.method != "HEAD" {
        return error_page(StatusCode::METHOD_NOT_ALLOWED);
    }
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return error_page(StatusCode::NOT_FOUND);
    };
    let Ok(meta) = file.metadata().await else {
        return error_page(StatusCode::NOT_FOUND);
    };
    let size = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let validators = Validators {
        last_modified: httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(mtime)),
        etag: format!("\"{mtime:x}-{size:x}\""),
        mtime,
    };
    let (status, start, len) = match conditional(head, &validators) {
        Some(StatusCode::NOT_MODIFIED) => return validators.apply(not_modified()),
        Some(status) => return error_page(status),
        None => match byte_range(validators.range_header(head), size) {
            Range::Whole => (StatusCode::OK, 0, size),
            Range::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end - start),
            Range::Unsatisfiable => {
                let mut response = error_page(StatusCode::RANGE_NOT_SATISFIABLE);
                insert(&mut response, CONTENT_RANGE, format!("bytes */{size}"));
                return response;
            }
        },
    };
    if start > 0 && file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return error_page(StatusCode::NOT_FOUND);
    }
    let mut response = Response::new(stream(file, len));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    insert(&mut response, CONTENT_LENGTH, len.to_string());
    let mut response = validators.apply(response);
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {start}-{}/{size}", start + len - 1);
        insert(&mut response, CONTENT_RANGE, range);
    } else {
        response
            .headers_mut()
            .insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    response
}

/// Another `.php` file, not run: its text when its code is inert; when the code may do anything,
/// an empty 200 (what code that prints nothing answers); PHP-FPM's empty 500 when PHP could not
/// compile it (`display_errors=Off`). All with PHP's default Content-Type.
pub fn other_script(version: php::Version, printed: Printed) -> Response<Body> {
    let (status, text) = match printed {
        Printed::Text(text) => (StatusCode::OK, text),
        Printed::Declined => (StatusCode::OK, Vec::new()),
        Printed::ParseError => (StatusCode::INTERNAL_SERVER_ERROR, Vec::new()),
    };
    let mut response = php_response(version, None, full(text));
    *response.status_mut() = status;
    response
}

struct Validators {
    last_modified: String,
    etag: String,
    mtime: u64,
}

impl Validators {
    fn apply(&self, mut response: Response<Body>) -> Response<Body> {
        insert(&mut response, LAST_MODIFIED, self.last_modified.clone());
        insert(&mut response, ETAG, self.etag.clone());
        response
    }

    /// nginx's `if_modified_since exact`: the date must name the file's time to the second.
    fn same_time(&self, date: &[u8]) -> bool {
        std::str::from_utf8(date)
            .ok()
            .and_then(|date| httpdate::parse_http_date(date.trim()).ok())
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .is_some_and(|since| since.as_secs() == self.mtime)
    }

    /// The `Range` header, unless an `If-Range` names another version of the file.
    fn range_header<'a>(&self, head: &'a Head) -> Option<&'a [u8]> {
        let range = head.first("range")?;
        match head.first("if-range") {
            Some(tag) if tag.starts_with(b"\"") => (tag == self.etag.as_bytes()).then_some(range),
            Some(date) => self.same_time(date).then_some(range),
            None => Some(range),
        }
    }

    fn older_than(&self, date: &[u8]) -> bool {
        std::str::from_utf8(date)
            .ok()
            .and_then(|date| httpdate::parse_http_date(date.trim()).ok())
            .is_some_and(|time| UNIX_EPOCH + Duration::from_secs(self.mtime) <= time)
    }
}

/// nginx's not-modified filter: 412 for a failed `If-Unmodified-Since`/`If-Match`, 304 when
/// `If-Modified-Since` names the file's time or `If-None-Match` names its tag, else `None`.
fn conditional(head: &Head, validators: &Validators) -> Option<StatusCode> {
    if head
        .first("if-unmodified-since")
        .is_some_and(|date| !validators.older_than(date))
    {
        return Some(StatusCode::PRECONDITION_FAILED);
    }
    if head
        .first("if-match")
        .is_some_and(|tags| !matches_tag(tags, &validators.etag, false))
    {
        return Some(StatusCode::PRECONDITION_FAILED);
    }
    let modified_since = head.first("if-modified-since");
    let none_match = head.first("if-none-match");
    if modified_since.is_none() && none_match.is_none() {
        return None;
    }
    if modified_since.is_some_and(|date| !validators.same_time(date)) {
        return None;
    }
    if none_match.is_some_and(|tags| !matches_tag(tags, &validators.etag, true)) {
        return None;
    }
    Some(StatusCode::NOT_MODIFIED)
}

/// Whether a tag list (`*`, or tags separated by commas) names `etag`; `weak` lets `W/"…"` match.
fn matches_tag(list: &[u8], etag: &str, weak: bool) -> bool {
    let list = String::from_utf8_lossy(list);
    list.trim() == "*"
        || list.split(',').map(str::trim).any(|tag| {
            tag == etag || (weak && tag.strip_prefix("W/").is_some_and(|tag| tag == etag))
        })
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    Whole,
    /// `start..end`, end exclusive.
    Part(u64, u64),
    Unsatisfiable,
}

/// nginx's `ngx_http_range_parse` for one range; several ranges, or a header nginx ignores,
/// mean the whole file.
fn byte_range(header: Option<&[u8]>, size: u64) -> Range {
    let Some(spec) = header
        .and_then(|h| (h.len() >= 6 && h[..6].eq_ignore_ascii_case(b"bytes=")).then(|| &h[6..]))
    else {
        return Range::Whole;
    };
    let mut ranges = Vec::new();
    for part in spec.split(|&b| b == b',') {
        match one_range(part, size) {
            Some(Some(range)) => ranges.push(range),
            Some(None) => {}
            None => return Range::Unsatisfiable,
        }
    }
    match ranges.as_slice() {
        [] => Range::Unsatisfiable,
        [(start, end)] => Range::Part(*start, *end),
        _ => Range::Whole,
    }
}

/// One `start-end`, `start-` or `-suffix`: `None` when malformed (416), `Some(None)` when it
/// selects nothing.
fn one_range(part: &[u8], size: u64) -> Option<Option<(u64, u64)>> {
    let text = std::str::from_utf8(part).ok()?.trim_matches(' ');
    let (first, last) = text.split_once('-')?;
    let (first, last) = (first.trim_end_matches(' '), last.trim_start_matches(' '));
    let number = |digits: &str| {
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<u64>().ok())
            .flatten()
    };
    let (start, end) = if first.is_empty() {
        let suffix = number(last)?;
        (size.saturating_sub(suffix), size)
    } else {
        let start = number(first)?;
        let end = if last.is_empty() {
            size
        } else {
            number(last)?.saturating_add(1).min(size)
        };
        (start, end)
    };
    Some((start < end).then_some((start, end)))
}

/// `len` bytes of `file` from where it stands, one chunk per frame.
fn stream(file: tokio::fs::File, len: u64) -> Body {
    let chunks = futures_util::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
        let mut buffer = BytesMut::zeroed(want);
        match file.read(&mut buffer).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(Frame::data(buffer.freeze())), (file, left - n as u64)))
            }
        }
    });
    StreamBody::new(chunks).boxed_unsync()
}

fn not_modified() -> Response<Body> {
    let mut response = Response::new(full(""));
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    response
}

fn insert(response: &mut Response<Body>, name: hyper::header::HeaderName, value: String) {
    if let Ok(value) = HeaderValue::try_from(value) {
        response.headers_mut().insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_nginx_parses_them() {
        let size = 3000;
        assert_eq!(byte_range(None, size), Range::Whole);
        assert_eq!(byte_range(Some(b"bytes=10-19"), size), Range::Part(10, 20));
        assert_eq!(byte_range(Some(b"BYTES=10-"), size), Range::Part(10, 3000));
        assert_eq!(
            byte_range(Some(b"bytes=-100"), size),
            Range::Part(2900, 3000)
        );
        assert_eq!(
            byte_range(Some(b"bytes=2990-9999"), size),
            Range::Part(2990, 3000)
        );
        assert_eq!(byte_range(Some(b"bytes=0-"), size), Range::Part(0, 3000));
        assert_eq!(
            byte_range(Some(b"bytes= 10 - 19 "), size),
            Range::Part(10, 20)
        );
        assert_eq!(byte_range(Some(b"bytes=-5000"), size), Range::Part(0, 3000));
        assert_eq!(byte_range(Some(b"bytes=5-2"), size), Range::Unsatisfiable);
        assert_eq!(byte_range(Some(b"bytes=5000-"), size), Range::Unsatisfiable);
        assert_eq!(byte_range(Some(b"bytes=-0"), size), Range::Unsatisfiable);
        assert_eq!(byte_range(Some(b"bytes=x-1"), size), Range::Unsatisfiable);
        assert_eq!(byte_range(Some(b"items=1-2"), size), Range::Whole);
        assert_eq!(byte_range(Some(b"bytes=0-1,5-6"), size), Range::Whole);
    }

    #[test]
    fn tags_match_as_nginx_compares_them() {
        assert!(matches_tag(b"*", "\"a-1\"", false));
        assert!(matches_tag(b"\"b-2\", \"a-1\"", "\"a-1\"", false));
        assert!(matches_tag(b"W/\"a-1\"", "\"a-1\"", true));
        assert!(!matches_tag(b"W/\"a-1\"", "\"a-1\"", false));
        assert!(!matches_tag(b"\"a-2\"", "\"a-1\"", true));
    }

    #[test]
    fn last_modified_is_an_http_date() {
        assert_eq!(
            httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_796_108_957)),
            "Tue, 01 Dec 2026 07:09:17 GMT"
        );
    }
}
