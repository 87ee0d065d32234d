//! Request ids: one tracing span per request, so every log line about a request (text or JSON)
//! names it. The id is the proxy's `X-Request-Id` when it sent a usable one (nginx:
//! `proxy_set_header X-Request-Id $request_id;`), so the two logs join; otherwise a number unique
//! within this process.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::Request;

/// The header a proxy may send its own id in.
const HEADER: &str = "x-request-id";
/// Longest proxy id taken as it is.
const MAX_LEN: usize = 64;

/// The span for one request: its id, method, path and client address.
pub fn span<B>(request: &Request<B>, peer: IpAddr) -> tracing::Span {
    let id = from_proxy(request).unwrap_or_else(next);
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        peer = %peer,
    )
}

fn next() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

/// The proxy's id, when it is short and plain (letters, digits, `-`, `_`): a client could send
/// anything in it, and it must not forge log structure.
fn from_proxy<B>(request: &Request<B>) -> Option<String> {
    let value = request.headers().get(HEADER)?.to_str().ok()?;
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

    fn with_header(value: &str) -> Request<()> {
        Request::builder()
            .header(HEADER, value)
            .body(())
            .expect("request")
    }

    #[test]
    fn a_plain_proxy_id_is_kept_and_anything_else_replaced() {
        assert_eq!(
            from_proxy(&with_header("5f2b0c9e-aa_01")).as_deref(),
            Some("5f2b0c9e-aa_01")
        );
        assert_eq!(from_proxy(&with_header("x\" fake=1")), None);
        assert_eq!(from_proxy(&with_header(&"a".repeat(65))), None);
        assert_eq!(from_proxy(&Request::new(())), None);
        assert_ne!(next(), next());
    }
}
