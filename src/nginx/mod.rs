//! What nginx 1.22 (the legacy's front server, with its compiled-in defaults) decides about a
//! request before PHP sees it: which request heads it accepts and what it hands over, which it
//! refuses and with which page. Pure functions over bytes; the I/O lives in [`crate::http::front`].
//!
//! Every rule here was checked against the real nginx 1.22.1 + PHP-FPM 8.2 with
//! `scripts/diff-raw` (the request bytes and nginx's answers are listed in `docs/nginx-front.md`).

pub mod chunked;
pub mod head;
#[cfg(test)]
mod props;
pub mod uri;

/// Where nginx prints its version in its pages, the server prints its name.
pub const SIGNATURE: &str = "chat-server";

/// A request nginx answers itself, with one of its own error pages, and then closes the
/// connection (nginx turns keep-alive off for these statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: a malformed request line, header line, `Host`, `Content-Length` or chunk.
    BadRequest,
    /// nginx's internal 494: a header line (or all of them) does not fit its buffers. Sent as
    /// status 400 with its own page.
    HeaderTooLarge,
    /// 405: `TRACE`, `CONNECT`.
    NotAllowed,
    /// 413: the body is larger than `client_max_body_size`.
    EntityTooLarge,
    /// 414: the request line does not fit a large header buffer.
    UriTooLarge,
    /// 501: a `Transfer-Encoding` other than `chunked`.
    NotImplemented,
    /// 505: HTTP major version above 1.
    VersionNotSupported,
}

impl Refusal {
    /// The status code nginx sends.
    pub fn status(self) -> u16 {
        match self {
            Refusal::BadRequest | Refusal::HeaderTooLarge => 400,
            Refusal::NotAllowed => 405,
            Refusal::EntityTooLarge => 413,
            Refusal::UriTooLarge => 414,
            Refusal::NotImplemented => 501,
            Refusal::VersionNotSupported => 505,
        }
    }

    /// nginx's page for it, signed `signature` where nginx prints its version.
    pub fn page(self, signature: &str) -> String {
        match self {
            Refusal::HeaderTooLarge => format!(
                "<html>\r\n<head><title>400 Request Header Or Cookie Too Large</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>Request Header Or Cookie Too Large</center>\r\n<hr><center>{signature}</center>\r\n</body>\r\n</html>\r\n"
            ),
            other => error_page(other.status(), signature),
        }
    }
}

/// nginx's generic error page for `status` (`ngx_http_error_pages`), signed `signature`.
pub fn error_page(status: u16, signature: &str) -> String {
    let title = format!("{status} {}", reason(status));
    format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>{signature}</center>\r\n</body>\r\n</html>\r\n"
    )
}

/// The reason phrases nginx prints in its pages (some differ from the RFC's).
pub fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        408 => "Request Time-out",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        416 => "Requested Range Not Satisfiable",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_nginx_word_for_word() {
        assert_eq!(
            Refusal::HeaderTooLarge.page("nginx/1.22.1"),
            "<html>\r\n<head><title>400 Request Header Or Cookie Too Large</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>Request Header Or Cookie Too Large</center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n"
        );
        assert_eq!(
            Refusal::UriTooLarge.page("nginx/1.22.1"),
            "<html>\r\n<head><title>414 Request-URI Too Large</title></head>\r\n<body>\r\n<center><h1>414 Request-URI Too Large</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n"
        );
        assert_eq!(
            Refusal::VersionNotSupported.page("x"),
            "<html>\r\n<head><title>505 HTTP Version Not Supported</title></head>\r\n<body>\r\n<center><h1>505 HTTP Version Not Supported</h1></center>\r\n<hr><center>x</center>\r\n</body>\r\n</html>\r\n"
        );
        assert_eq!(Refusal::HeaderTooLarge.status(), 400);
        assert_eq!(Refusal::NotImplemented.status(), 501);
    }
}
