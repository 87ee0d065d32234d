//! Pure emulation of the PHP behaviour the legacy scripts depend on: no sockets, no MySQL.
//!
//! Everything that decides response bytes or stored values the way PHP did lives here, so it can
//! be tested against PHP's own observed output without a server (`docs/php-compat.md` states
//! the rules): request decoding (`$_COOKIE`, `$_POST`, `empty()`), `setcookie()`,
//! `json_encode()` of a fetched row, and the text a `.php` file prints outside its
//! `<?php … ?>` blocks.

pub mod cookie;
pub mod form;
pub mod json;
pub mod multipart;
#[cfg(test)]
mod props;
pub mod request;
pub mod script;
pub mod url;
pub mod vars;

/// Which PHP the server imitates where versions differ.
///
/// PHP 8.2 is the default because it is the one that can be run and recorded here; `5` gives the
/// PHP 5.4/5.5 request decoding and headers that older legacy installs had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Version {
    /// PHP 8.2 (and 7.4.11+): cookies raw-url-decoded, `rawurlencode` in `setcookie`.
    #[default]
    #[value(name = "8")]
    Php8,
    /// PHP 5.4/5.5: `+` in cookie values is a space, cookie names are decoded, `urlencode` in
    /// `setcookie`, a form segment without `=` is ignored, `Content-type` has no charset.
    #[value(name = "5")]
    Php5,
}

impl Version {
    /// The `Content-type` PHP adds when a script sets none (`default_mimetype` + `default_charset`).
    pub fn default_content_type(self) -> &'static str {
        match self {
            // default_charset became "UTF-8" in 5.6; before it was empty, so no charset parameter.
            Version::Php8 => "text/html; charset=UTF-8",
            Version::Php5 => "text/html",
        }
    }
}
