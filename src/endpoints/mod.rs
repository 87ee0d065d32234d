//! One file per legacy script. Each turns a decoded PHP request into the bytes that script sent;
//! none builds SQL or escapes JSON itself (that is `store` and `php`).

pub mod files;
pub mod pages;
pub mod poll;
pub mod send;
pub mod stream;

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE, SET_COOKIE};
use hyper::{Response, StatusCode};

use crate::php::{self, json, script::Script, vars::Vars};
use crate::store::Message;

/// The response body type of every endpoint: a fixed body, a claimed message, or the stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What a PHP script could see of a request.
#[derive(Debug, Default)]
pub struct PhpRequest {
    /// `$_COOKIE`.
    pub cookies: Vars,
    /// `$_POST`.
    pub post: Vars,
    /// Which PHP decoded it, and so which PHP answers it.
    pub version: php::Version,
    /// Hardened mode: message values are made inert for the pages' `innerHTML` before encoding.
    pub html_safe: bool,
}

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

/// A script's output when its code echoes `output`: the file's text around the code included.
pub fn around(script: &Script, output: &[u8]) -> Body {
    full(script.around(output))
}

/// `json_encode($row)` of a claimed message; PHP's `false` (invalid UTF-8) prints as nothing.
/// With `html_safe` (hardened mode) the row's values are made inert first.
pub fn message_json(message: &Message, html_safe: bool) -> Vec<u8> {
    let inert;
    let message = match html_safe {
        true => {
            inert = crate::hardening::inert(message);
            &inert
        }
        false => message,
    };
    json::encode_row(
        message
            .columns
            .iter()
            .map(|(name, value)| (&name[..], value.as_deref())),
    )
    .unwrap_or_default()
}

/// A fixed body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// An error the legacy's web server answered itself (unknown path, directory, method, size):
/// nginx's page, word for word, signed with our name instead of nginx's version.
pub fn error_page(status: StatusCode) -> Response<Body> {
    let reason = nginx_reason(status);
    let title = format!("{} {reason}", status.as_u16());
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>chat-server</center>\r\n</body>\r\n</html>\r\n"
    );
    let mut response = Response::new(full(page));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    if Some(reason) != status.canonical_reason() {
        // The status line too: `HTTP/1.1 405 Not Allowed`, as nginx writes it.
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
    }
    response
}

/// nginx words a few reasons its own way.
fn nginx_reason(status: StatusCode) -> &'static str {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => "Not Allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "Request Entity Too Large",
        StatusCode::SERVICE_UNAVAILABLE => "Service Temporarily Unavailable",
        StatusCode::GATEWAY_TIMEOUT => "Gateway Time-out",
        StatusCode::RANGE_NOT_SATISFIABLE => "Requested Range Not Satisfiable",
        other => other.canonical_reason().unwrap_or_default(),
    }
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
