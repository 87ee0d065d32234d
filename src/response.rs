//! Responses the endpoints, the hardened mode and the router share: the body type, PHP's default
//! headers, and the legacy nginx's own error pages. A module of its own so that none of them has
//! to import another for these.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE, SET_COOKIE};
use hyper::{Response, StatusCode};

use crate::nginx;
use crate::php;

/// The response body type of every endpoint: a fixed body, a claimed message, or the stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The headers PHP sends for a script's output: optional `Set-Cookie`, then the default
/// Content-type.
pub fn php_response(
    version: php::Version,
    set_cookie: Option<String>,
    body: Body,
) -> Response<Body> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    if let Some(cookie) = set_cookie.and_then(|cookie| HeaderValue::try_from(cookie).ok()) {
        headers.insert(SET_COOKIE, cookie);
    }
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(version.default_content_type()),
    );
    response
}

/// A fixed body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// An error the legacy's web server answered itself (unknown path, directory, method, size):
/// nginx's page, word for word, signed [`nginx::SIGNATURE`] instead of nginx's version.
pub fn error_page(status: StatusCode) -> Response<Body> {
    html(status, nginx::error_page(status.as_u16(), nginx::SIGNATURE))
}

/// nginx's answer to a request it refused while reading it.
pub fn refused(refusal: nginx::Refusal) -> Response<Body> {
    let status = StatusCode::from_u16(refusal.status()).expect("nginx statuses are valid");
    html(status, refusal.page(nginx::SIGNATURE))
}

/// An nginx page, with the status line in nginx's words too (`HTTP/1.1 405 Not Allowed`).
fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut response = Response::new(full(page));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    let reason = nginx::reason(status.as_u16());
    if !reason.is_empty() && Some(reason) != status.canonical_reason() {
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn error_pages_are_nginx_pages_with_our_signature() {
        let response = error_page(StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/html");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("infallible")
            .to_bytes();
        assert_eq!(
            &body[..],
            &b"<html>\r\n<head><title>405 Not Allowed</title></head>\r\n<body>\r\n<center><h1>405 Not Allowed</h1></center>\r\n<hr><center>chat-server</center>\r\n</body>\r\n</html>\r\n"[..]
        );
    }
}
