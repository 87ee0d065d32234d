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

use crate::php::{self, script::Script, vars::Vars};

/// The response body type of every endpoint: a fixed body, a claimed message, or the stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What a PHP script could see of a request.
#[derive(Debug, Default)]
pub struct PhpRequest {
    /// `$_COOKIE`.
    pub cookies: Vars,
    /// `$_POST`.
    pub post: Vars,
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
    full([&script.head[..], output, &script.tail[..]].concat())
}

/// A fixed body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A short plain-text error for requests the legacy had no answer of its own for.
pub fn plain_status(status: StatusCode) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or_default();
    let mut response = Response::new(full(format!("{} {reason}\n", status.as_u16())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
