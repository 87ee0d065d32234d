//! Everything in the docroot that is not a reimplemented script: static files as nginx serves
//! them, other `.php` files as the text PHP prints.

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::{error_page, full, php_response, Body};
use crate::php;

/// A static file; GET and HEAD only, as nginx allows.
pub async fn static_file(
    method: &str,
    path: &std::path::Path,
    content_type: &'static str,
) -> Response<Body> {
    if method != "GET" && method != "HEAD" {
        return error_page(StatusCode::METHOD_NOT_ALLOWED);
    }
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            let mut response = Response::new(full(bytes));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        Err(_) => error_page(StatusCode::NOT_FOUND),
    }
}

/// Another `.php` file: its printed text with PHP's headers.
pub fn other_script(version: php::Version, printed: Vec<u8>) -> Response<Body> {
    php_response(version, None, full(printed))
}
