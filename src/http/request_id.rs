//! Request ids: one tracing span per request, so every log line about a request (text or JSON)
//! names it. The id is the proxy's `X-Request-Id` when it sent a usable one (nginx:
//! `proxy_set_header X-Request-Id $request_id;`), so the two logs join; otherwise a number unique
//! within this process.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::nginx::head::Head;

/// The header a proxy may send its own id in.
const HEADER: &str = "x-request-id";
/// Longest proxy id taken as it is.
const MAX_LEN: usize = 64;

/// The span for one request: its id, method, path and client address.
pub fn span(head: &Head, peer: IpAddr) -> tracing::Span {
    let id = from_proxy(head).unwrap_or_else(next);
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %head.method,
        path = %String::from_utf8_lossy(&head.target.path),
        peer = %peer,
    )
}

fn next() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

/// The proxy's id, when it is short and plain (letters, digits, `-`, `_`): a client could send
/// anything in it, and it must not forge log structure.
fn from_proxy(head: &Head) -> Option<String> {
    let value = std::str::from_utf8(head.first(HEADER)?).ok()?;
    let plain = !value.is_empty()
        && value.len() <= MAX_LEN
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    plain.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nginx::head::{HeadParser, Progress};

    fn with_header(header: Option<&str>) -> Head {
        let header = header.map(|value| format!("{HEADER}: {value}\r\n"));
        let raw = format!(
            "GET / HTTP/1.1\r\nHost: h\r\n{}\r\n",
            header.unwrap_or_default()
        );
        match HeadParser::new().advance(raw.as_bytes()) {
            Progress::Complete(head, _) => *head,
            other => panic!("not a head: {other:?}"),
        }
    }

    #[test]
    fn a_plain_proxy_id_is_kept_and_anything_else_replaced() {
        assert_eq!(
            from_proxy(&with_header(Some("5f2b0c9e-aa_01"))).as_deref(),
            Some("5f2b0c9e-aa_01")
        );
        assert_eq!(from_proxy(&with_header(Some("x\" fake=1"))), None);
        assert_eq!(from_proxy(&with_header(Some(&"a".repeat(65)))), None);
        assert_eq!(from_proxy(&with_header(None)), None);
        assert_ne!(next(), next());
    }
}
