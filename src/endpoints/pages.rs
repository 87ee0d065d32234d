//! `AJ04custserv.php` and `AJ05customer.php`: the two HTML pages and their `username` cookies.
//!
//! ```php
//! setcookie('username','admin');                      // AJ04custserv.php
//! if(empty($_COOKIE['username'])){                      // AJ05customer.php
//! setcookie('username','admin'.rand(100,999));
//! }
//! ```

use hyper::Response;

use super::{around, php_response, Body, PhpRequest};
use crate::php::{cookie::set_cookie, script::Script};

/// The agent page: always (re)sets `username=admin`.
pub fn agent(script: &Script, request: &PhpRequest) -> Response<Body> {
    php_response(
        request.version,
        Some(set_cookie("username", b"admin", request.version)),
        around(script, b""),
    )
}

/// The customer page: a newcomer (PHP's `empty()`: no cookie, `""` or `"0"`) gets `admin` plus
/// `rand(100,999)`. Three digits, so two customers share a name one time in 900, as they did.
pub fn customer(script: &Script, request: &PhpRequest) -> Response<Body> {
    let cookie = request.cookies.is_empty("username").then(|| {
        let name = format!("admin{}", fastrand::u32(100..=999));
        set_cookie("username", name.as_bytes(), request.version)
    });
    php_response(request.version, cookie, around(script, b""))
}
