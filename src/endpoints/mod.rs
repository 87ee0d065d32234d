//! One file per legacy script. Each turns a decoded PHP request into the bytes that script sent;
//! none builds SQL or escapes JSON itself (that is `store` and `php`).

pub mod files;
pub mod pages;
pub mod poll;
pub mod send;
pub mod stream;

use crate::php::{json, script::Script};
use crate::store::Message;

pub use crate::php::request::PhpRequest;
pub use crate::response::{error_page, full, php_response, Body};

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
