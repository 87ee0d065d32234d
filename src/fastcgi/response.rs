//! How nginx 1.22's fastcgi module turns the CGI header block PHP-FPM writes on `FCGI_STDOUT`
//! into an HTTP response head (`ngx_http_fastcgi_process_header` and the upstream module's header
//! table). Pure: bytes in, a status, headers and a buffering decision out.
//!
//! - `Status: 404 Not Found` sets the status line word for word (the first `Status` line counts,
//!   as nginx 1.22 keeps the first); without `Status`, a `Location` makes it
//!   `302 Moved Temporarily`, anything else `200 OK`. A status that does not start with three
//!   digits is nginx's 502 ("upstream sent invalid status").
//! - `Status` and the `X-Accel-*` headers are hidden (nginx's `fastcgi_hide_header` defaults);
//!   `X-Accel-Buffering: no` turns nginx's response buffering off for this response, so what PHP
//!   flushes leaves at once (`yes` turns it on where `fastcgi_buffering off` is configured). Hop-by-hop lines (`Connection`, `Keep-Alive`,
//!   `Transfer-Encoding`) are nginx's own business and never passed on.
//! - Every other line is passed on in order, several `Set-Cookie` included.
//! - Lines are read as `ngx_http_parse_header_line` reads an upstream's: a line without `:` is a
//!   name with an empty value; a name starting with a blank, a control byte or `:`, or holding a
//!   blank or a control byte, and a value holding NUL or a lone CR, are nginx's 502; spaces (not
//!   tabs) around a value are dropped; `HTTP/…` lines are skipped. So is a head larger than
//!   [`MAX_HEAD`].

/// `fastcgi_buffer_size`'s default (one memory page) holds the CGI head and the 8-byte record
/// header in front of it: a head (blank line included) longer than this is nginx's 502
/// ("upstream sent too big header"; a 4,096-byte head was refused, a 4,088-byte one passed).
pub const MAX_HEAD: usize = 4096 - 8;

/// The head nginx builds from PHP's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiHead {
    /// The status code.
    pub status: u16,
    /// The status line's words after the code as PHP gave them (`Not Found`, or none at all);
    /// `None` where nginx picks the line (`200 OK`, `302 Moved Temporarily`).
    pub reason: Option<Vec<u8>>,
    /// Lines passed to the client, in PHP's order, names as PHP spelled them.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// What `X-Accel-Buffering` said: `Some(false)` for `no` (each read is passed on at once),
    /// `Some(true)` for `yes`; `None` leaves it to `fastcgi_buffering`.
    pub buffering: Option<bool>,
    /// PHP's `Content-Length` (the last line's, when all digits): nginx writes its own line
    /// with it, passes at most that many bytes and cuts the connection when PHP sends fewer.
    /// An unreadable value counts as none (chunked), as `ngx_atoof` failing does.
    pub content_length: Option<u64>,
}

/// Where reading the head stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// The head, and how many bytes of the input it took (the body starts there).
    Complete(CgiHead, usize),
    /// nginx would answer 502.
    Invalid,
}

/// Reads the CGI head at the start of PHP's output. Lines end with LF or CRLF; an empty line ends
/// the head.
pub fn parse(output: &[u8]) -> Parsed {
    let mut lines = Vec::new();
    let mut at = 0;
    loop {
        let Some(newline) = output[at..].iter().position(|&byte| byte == b'\n') else {
            return if output.len() > MAX_HEAD {
                Parsed::Invalid
            } else {
                Parsed::Incomplete
            };
        };
        let line = &output[at..at + newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at += newline + 1;
        if at > MAX_HEAD {
            return Parsed::Invalid;
        }
        if line.is_empty() {
            break;
        }
        // IIS-style duplicate status lines: nginx skips them before it looks any further.
        if line.starts_with(b"HTTP/") {
            continue;
        }
        let colon = line.iter().position(|&byte| byte == b':');
        let name = &line[..colon.unwrap_or(line.len())];
        let value = colon.map_or(&b""[..], |colon| &line[colon + 1..]);
        let blank_or_control = |byte: &u8| *byte <= b' ' || *byte == 0x7f;
        if name.is_empty()
            || name.iter().any(blank_or_control)
            || value.iter().any(|&byte| byte == 0 || byte == b'\r')
        {
            return Parsed::Invalid;
        }
        let start = value
            .iter()
            .position(|&byte| byte != b' ')
            .unwrap_or(value.len());
        let end = value
            .iter()
            .rposition(|&byte| byte != b' ')
            .map_or(start, |at| at + 1);
        lines.push((name.to_vec(), value[start..end].to_vec()));
    }
    match head(lines) {
        Some(head) => Parsed::Complete(head, at),
        None => Parsed::Invalid,
    }
}

/// The `Content-Type` line nginx writes for PHP's `Content-Type` values, in order
/// (`ngx_http_upstream_copy_content_type`, then the header filter): the last value, with
/// `; charset=…` added when that value names no charset but an earlier one did (nginx keeps the
/// charset it parsed from an earlier line); none when the last value is empty.
pub fn content_type<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut last: Option<&[u8]> = None;
    let mut charset: &[u8] = b"";
    let mut names_charset = false;
    for value in values {
        last = Some(value);
        names_charset = false;
        let mut at = 0;
        while let Some(semicolon) = value[at..].iter().position(|&b| b == b';') {
            let mut p = at + semicolon + 1;
            while value.get(p) == Some(&b' ') {
                p += 1;
            }
            if p == value.len() {
                break;
            }
            if value.len() - p >= 8 && value[p..p + 8].eq_ignore_ascii_case(b"charset=") {
                let mut found = &value[p + 8..];
                found = found.strip_prefix(b"\"").unwrap_or(found);
                charset = found.strip_suffix(b"\"").unwrap_or(found);
                names_charset = true;
                break;
            }
            // nginx goes on one byte past where its scan stopped.
            at = p + 1;
        }
    }
    let value = last.filter(|value| !value.is_empty())?;
    let mut line = value.to_vec();
    if !names_charset && !charset.is_empty() {
        line.extend_from_slice(b"; charset=");
        line.extend_from_slice(charset);
    }
    Some(line)
}

fn is(name: &[u8], wanted: &str) -> bool {
    name.eq_ignore_ascii_case(wanted.as_bytes())
}

fn head(lines: Vec<(Vec<u8>, Vec<u8>)>) -> Option<CgiHead> {
    let mut status_line = None;
    let mut location = false;
    let mut buffering = None;
    let mut content_length = None;
    let mut headers = Vec::new();
    for (name, value) in lines {
        if is(&name, "status") {
            status_line = status_line.or(Some(value));
        } else if is(&name, "content-length") {
            content_length = Some(&value[..])
                .filter(|v| !v.is_empty() && v.iter().all(u8::is_ascii_digit))
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
        } else if is(&name, "x-accel-buffering") {
            if value.eq_ignore_ascii_case(b"no") {
                buffering = Some(false);
            } else if value.eq_ignore_ascii_case(b"yes") {
                buffering = Some(true);
            }
        } else if name.len() > 8 && name[..8].eq_ignore_ascii_case(b"x-accel-")
            || ["connection", "keep-alive", "transfer-encoding"]
                .iter()
                .any(|hop| is(&name, hop))
        {
        } else {
            location |= is(&name, "location");
            headers.push((name, value));
        }
    }
    let (status, reason) = match status_line {
        Some(line) => {
            let digits = line.get(..3)?;
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            // nginx takes the first three digits and writes the whole line as PHP gave it:
            // `Status: 1000` or `Status: 200x` become the status lines `1000` and `200x`, which
            // HTTP/1.1 (and hyper) cannot carry; such a status is nginx's 502 here.
            if line.get(3).is_some_and(|&byte| byte != b' ') {
                return None;
            }
            let status = digits
                .iter()
                .fold(0u16, |n, &digit| n * 10 + u16::from(digit - b'0'));
            // Word for word: `Status: 299` is the status line `299`, with no reason at all;
            // `Status: 299  Two` keeps both spaces.
            (status, Some(line.get(4..).unwrap_or_default().to_vec()))
        }
        None if location => (302, Some(b"Moved Temporarily".to_vec())),
        None => (200, None),
    };
    Some(CgiHead {
        status,
        reason,
        headers,
        buffering,
        content_length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(output: &[u8]) -> (CgiHead, usize) {
        match parse(output) {
            Parsed::Complete(head, used) => (head, used),
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(output)),
        }
    }

    #[test]
    fn php_default_head_is_a_200_with_its_content_type() {
        let output = b"Content-type: text/html; charset=UTF-8\r\n\r\nhi";
        let (head, used) = complete(output);
        assert_eq!((head.status, head.reason), (200, None));
        assert_eq!(
            head.headers,
            [(
                b"Content-type".to_vec(),
                b"text/html; charset=UTF-8".to_vec()
            )]
        );
        assert_eq!(head.buffering, None);
        assert_eq!(&output[used..], b"hi");
    }

    #[test]
    fn status_lines_are_taken_word_for_word_and_hidden() {
        let (head, _) = complete(b"Status: 404 Not Found\r\nX-Powered-By: PHP\r\n\r\n");
        assert_eq!(head.status, 404);
        assert_eq!(head.reason.as_deref(), Some(&b"Not Found"[..]));
        assert_eq!(head.headers, [(b"X-Powered-By".to_vec(), b"PHP".to_vec())]);
        let (head, _) = complete(b"Status: 299 Fine Indeed\n\n");
        assert_eq!(
            (head.status, head.reason.as_deref()),
            (299, Some(&b"Fine Indeed"[..]))
        );
        let (head, _) = complete(b"Status: 299\r\n\r\n");
        assert_eq!((head.status, head.reason.as_deref()), (299, Some(&b""[..])));
        let (head, _) = complete(b"Status: 299  Two  Spaces\r\n\r\n");
        assert_eq!(head.reason.as_deref(), Some(&b" Two  Spaces"[..]));
        assert_eq!(parse(b"Status: 1000\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse(b"Status: 200x\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse(b"Status: abc\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse(b"Status: 20\r\n\r\n"), Parsed::Invalid);
    }

    #[test]
    fn a_location_without_a_status_is_a_302_moved_temporarily() {
        let (head, _) = complete(b"Location: /x\r\n\r\n");
        assert_eq!(head.status, 302);
        assert_eq!(head.reason.as_deref(), Some(&b"Moved Temporarily"[..]));
        // PHP itself says `Status: 302 Found` with its Location; that wins.
        let (head, _) = complete(b"Status: 302 Found\r\nLocation: /x\r\n\r\n");
        assert_eq!(head.reason.as_deref(), Some(&b"Found"[..]));
    }

    #[test]
    fn several_set_cookies_stay_in_order() {
        let (head, _) = complete(b"Set-Cookie: a=1\r\nX-One: 1\r\nSet-Cookie: b=2\r\n\r\n");
        let names: Vec<_> = head.headers.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        assert_eq!(
            names,
            [
                (&b"Set-Cookie"[..], &b"a=1"[..]),
                (b"X-One", b"1"),
                (b"Set-Cookie", b"b=2")
            ]
        );
    }

    #[test]
    fn accel_buffering_no_turns_buffering_off_and_is_hidden() {
        let (head, _) =
            complete(b"X-Accel-Buffering: no\r\nX-Accel-Expires: 5\r\nConnection: close\r\n\r\n");
        assert_eq!(head.buffering, Some(false));
        assert!(head.headers.is_empty());
    }

    #[test]
    fn lines_are_read_as_nginx_reads_an_upstreams() {
        let (head, _) = complete(
            b"NoColon\r\nX-A:   v  \r\nX-Tab:\tv\t\r\nX-\xfc: 1\r\nHTTP/1.1 200 OK\r\n\r\n",
        );
        assert_eq!(
            head.headers,
            [
                (b"NoColon".to_vec(), Vec::new()),
                (b"X-A".to_vec(), b"v".to_vec()),
                (b"X-Tab".to_vec(), b"\tv\t".to_vec()),
                (b"X-\xfc".to_vec(), b"1".to_vec()),
            ]
        );
        for invalid in [
            &b"X Space: v\r\n\r\n"[..],
            b" X: v\r\n\r\n",
            b": v\r\n\r\n",
            b"X: a\x00b\r\n\r\n",
            b"X: a\rb\r\n\r\n",
        ] {
            assert_eq!(parse(invalid), Parsed::Invalid, "{invalid:?}");
        }
        // The first Status line decides.
        let (head, _) = complete(b"Status: 418\r\nStatus:\r\n\r\n");
        assert_eq!(head.status, 418);
    }

    #[test]
    fn content_type_keeps_an_earlier_lines_charset_as_nginx() {
        let line = |values: &[&str]| {
            content_type(values.iter().map(|v| v.as_bytes()))
                .map(|line| String::from_utf8(line).expect("text"))
        };
        // Found by dynamic_page: `header('Content-Type: text/plain')`, then another with
        // `replace=false`; PHP sends `text/plain;charset=UTF-8`, then `W/"weak"`.
        assert_eq!(
            line(&["text/plain;charset=UTF-8", "W/\"weak\""]).as_deref(),
            Some("W/\"weak\"; charset=UTF-8")
        );
        assert_eq!(
            line(&["text/html; charset=UTF-8"]).as_deref(),
            Some("text/html; charset=UTF-8")
        );
        assert_eq!(
            line(&["a; charset=\"x\"", "b;charset=y"]).as_deref(),
            Some("b;charset=y")
        );
        assert_eq!(
            line(&["text/plain; q=1"]).as_deref(),
            Some("text/plain; q=1")
        );
        assert_eq!(line(&["a; charset=x", ""]), None);
        assert_eq!(line(&[]), None);
    }

    #[test]
    fn content_length_is_nginx_business_and_the_last_line_decides() {
        let (head, _) = complete(b"Content-Length: 3\r\nX-A: 1\r\n\r\n");
        assert_eq!(head.content_length, Some(3));
        assert_eq!(head.headers, [(b"X-A".to_vec(), b"1".to_vec())]);
        let (head, _) = complete(b"Content-Length: 3\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(head.content_length, Some(5));
        for unreadable in [
            &b"Content-Length: 3\r\nContent-Length: x\r\n\r\n"[..],
            b"Content-Length: -1\r\n\r\n",
        ] {
            assert_eq!(complete(unreadable).0.content_length, None);
        }
    }

    #[test]
    fn incomplete_and_oversized_heads() {
        assert_eq!(parse(b"Content-type: text/html\r\n"), Parsed::Incomplete);
        assert_eq!(parse(b"Content-type: text/html\r\n\r"), Parsed::Incomplete);
        let mut big = b"X-Big: ".to_vec();
        big.resize(MAX_HEAD + 1, b'a');
        assert_eq!(parse(&big), Parsed::Invalid);
        assert_eq!(parse(b"no colon here\r\n\r\n"), Parsed::Invalid);
        let mut fits = b"X-Big: ".to_vec();
        fits.resize(MAX_HEAD - 4, b'a');
        fits.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(parse(&fits), Parsed::Complete(..)));
        fits.insert(10, b'a');
        assert_eq!(parse(&fits), Parsed::Invalid);
    }
}
