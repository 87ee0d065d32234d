//! Every expectation below is nginx 1.22.1's observed answer to the same bytes
//! (`scripts/diff-raw`, see `docs/nginx-front.md`).

use super::*;

fn parse(raw: &[u8]) -> Progress {
    HeadParser::new().advance(raw)
}

fn accepted(raw: &[u8]) -> Head {
    match parse(raw) {
        Progress::Complete(head, len) => {
            assert_eq!(len, raw.len(), "whole head consumed");
            *head
        }
        other => panic!("expected a complete head for {raw:?}, got {other:?}"),
    }
}

fn refused(raw: &[u8]) -> Refusal {
    match parse(raw) {
        Progress::Refused(refusal) => refusal,
        other => panic!("expected a refusal for {raw:?}, got {other:?}"),
    }
}

fn get(extra: &[u8]) -> Vec<u8> {
    [b"GET /dump.php HTTP/1.1\r\nHost: h\r\n", extra, b"\r\n"].concat()
}

#[test]
fn raw_quotes_and_angle_brackets_in_the_target_reach_php() {
    let head = accepted(b"GET /AJ05customer.php?x=> HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(head.request_uri, b"/AJ05customer.php?x=>");
    assert_eq!(head.target.path, b"/AJ05customer.php");
    let head = accepted(b"GET /dump.php?x=\"a\"&y=<z>\x80 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(head.target.args, b"x=\"a\"&y=<z>\x80");
}

#[test]
fn control_bytes_in_the_target_are_refused() {
    for byte in [0x00, 0x01, 0x09, 0x7f] {
        let raw = [
            &b"GET /dump.php?q=a"[..],
            &[byte],
            b"b HTTP/1.1\r\nHost: h\r\n\r\n",
        ]
        .concat();
        assert_eq!(refused(&raw), Refusal::BadRequest, "byte {byte:#x}");
    }
    assert_eq!(
        refused(b"GET /dump.php?q=a b HTTP/1.1\r\nHost: h\r\n\r\n"),
        Refusal::BadRequest
    );
}

#[test]
fn control_bytes_in_header_values_are_kept_except_nul_and_cr() {
    for byte in [0x01, 0x0b, 0x1f, 0x7f, 0x80, 0xff] {
        let head = accepted(&get(
            &[&b"Cookie: username=a"[..], &[byte], b"b\r\n"].concat()
        ));
        assert_eq!(
            head.last("cookie"),
            Some(&[b'u', b's', b'e', b'r', b'n', b'a', b'm', b'e', b'=', b'a', byte, b'b'][..])
        );
    }
    assert_eq!(refused(&get(b"Cookie: a\x00b\r\n")), Refusal::BadRequest);
    assert_eq!(refused(&get(b"Cookie: a=1\rb=2\r\n")), Refusal::BadRequest);
}

#[test]
fn values_lose_spaces_at_both_ends_but_keep_tabs() {
    let head = accepted(&get(b"Cookie: username=x&\t\r\n"));
    assert_eq!(head.last("cookie"), Some(&b"username=x&\t"[..]));
    let head = accepted(&get(b"Cookie: username=x \r\n"));
    assert_eq!(head.last("cookie"), Some(&b"username=x"[..]));
    let head = accepted(&get(b"Cookie:\t\tusername=x\r\n"));
    assert_eq!(head.last("cookie"), Some(&b"\t\tusername=x"[..]));
}

#[test]
fn the_last_cookie_line_is_the_one_php_sees() {
    let head = accepted(&get(b"Cookie: a=1\r\nCookie: b=2\r\n"));
    assert_eq!(head.last("cookie"), Some(&b"b=2"[..]));
    let head = accepted(&get(b"Cookie: a=1\r\nCookie:\r\n"));
    assert_eq!(head.last("cookie"), Some(&b""[..]));
    let head = accepted(&get(b"Cookie\r\n"));
    assert_eq!(head.last("cookie"), Some(&b""[..]));
}

#[test]
fn the_first_content_type_is_the_one_php_sees() {
    let head = accepted(&get(b"Content-Type: a/b\r\nContent-Type: c/d\r\n"));
    assert_eq!(head.first("content-type"), Some(&b"a/b"[..]));
}

#[test]
fn header_lines_up_to_8190_bytes_fit_and_longer_ones_are_refused() {
    for (len, ok) in [
        (1000, true),
        (8190, true),
        (8191, false),
        (8192, false),
        (9000, false),
    ] {
        let line = [&b"Cookie: "[..], &vec![b'a'; len - 8], b"\r\n"].concat();
        match parse(&get(&line)) {
            Progress::Complete(..) => assert!(ok, "{len} accepted"),
            Progress::Refused(refusal) => {
                assert!(!ok, "{len} refused");
                assert_eq!(refusal, Refusal::HeaderTooLarge);
            }
            Progress::Incomplete => panic!("{len} incomplete"),
        }
    }
    // With a bare LF terminator the line may be one byte longer.
    let raw = [
        &b"GET / HTTP/1.1\nHost: h\nCookie: "[..],
        &vec![b'a'; 8183],
        b"\n\n",
    ]
    .concat();
    accepted(&raw);
}

#[test]
fn request_lines_over_8190_bytes_are_414() {
    for (len, ok) in [(8180, true), (8190, true), (8191, false), (9000, false)] {
        let line = [
            &b"GET /dump.php?"[..],
            &vec![b'a'; len - 23],
            b" HTTP/1.1\r\nHost: h\r\n\r\n",
        ]
        .concat();
        match parse(&line) {
            Progress::Complete(..) => assert!(ok, "{len} accepted"),
            Progress::Refused(refusal) => {
                assert!(!ok, "{len} refused");
                assert_eq!(refusal, Refusal::UriTooLarge);
            }
            Progress::Incomplete => panic!("{len} incomplete"),
        }
    }
}

#[test]
fn all_headers_must_fit_four_large_buffers() {
    let lines = |count: usize, len: usize| -> Vec<u8> {
        (0..count)
            .flat_map(|i| {
                [
                    format!("X-A{i}: ").into_bytes(),
                    vec![b'a'; len],
                    b"\r\n".to_vec(),
                ]
                .concat()
            })
            .collect()
    };
    accepted(&get(&lines(4, 7000)));
    assert_eq!(refused(&get(&lines(5, 8000))), Refusal::HeaderTooLarge);
}

#[test]
fn a_trickled_oversized_line_is_refused_before_it_ends() {
    let mut parser = HeadParser::new();
    let mut data = b"GET / HTTP/1.1\r\nHost: h\r\nCookie: ".to_vec();
    assert!(matches!(parser.advance(&data), Progress::Incomplete));
    data.extend(vec![b'a'; 9000]);
    assert!(matches!(
        parser.advance(&data),
        Progress::Refused(Refusal::HeaderTooLarge)
    ));
}

#[test]
fn methods_are_upper_case_letters_underscore_and_dash() {
    assert_eq!(
        refused(b"get / HTTP/1.1\r\nHost: h\r\n\r\n"),
        Refusal::BadRequest
    );
    assert_eq!(
        refused(b"post / HTTP/1.1\r\nHost: h\r\n\r\n"),
        Refusal::BadRequest
    );
    assert_eq!(
        refused(b"G1T / HTTP/1.1\r\nHost: h\r\n\r\n"),
        Refusal::BadRequest
    );
    assert_eq!(accepted(b"FOO / HTTP/1.1\r\nHost: h\r\n\r\n").method, "FOO");
    assert_eq!(
        accepted(b"M_-X / HTTP/1.1\r\nHost: h\r\n\r\n").method,
        "M_-X"
    );
    assert_eq!(
        refused(b"TRACE / HTTP/1.1\r\nHost: h\r\n\r\n"),
        Refusal::NotAllowed
    );
    assert_eq!(
        refused(b"CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n"),
        Refusal::NotAllowed
    );
}

#[test]
fn host_rules() {
    assert_eq!(refused(b"GET / HTTP/1.1\r\n\r\n"), Refusal::BadRequest);
    accepted(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(refused(&get(b"Host: h\r\n")), Refusal::BadRequest);
    for host in [&b""[..], b"a/b", b"a..b", b"A B"] {
        let raw = [&b"GET / HTTP/1.1\r\nHost: "[..], host, b"\r\n\r\n"].concat();
        assert_eq!(refused(&raw), Refusal::BadRequest, "{host:?}");
    }
    accepted(b"GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n");
}

#[test]
fn body_framing_rules() {
    assert_eq!(
        refused(&get(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n")),
        Refusal::BadRequest
    );
    assert_eq!(
        refused(&get(b"Content-Length: 5\r\nContent-Length: 5\r\n")),
        Refusal::BadRequest
    );
    for bad in ["5x", "-1", "+5", ""] {
        let raw = get(format!("Content-Length: {bad}\r\n").as_bytes());
        assert_eq!(refused(&raw), Refusal::BadRequest, "{bad}");
    }
    assert_eq!(
        accepted(&get(b"Content-Length: 005\r\n")).content_length,
        Some(5)
    );
    assert_eq!(
        accepted(&get(b"Content-Length: 5 \r\n")).content_length,
        Some(5)
    );
    assert_eq!(
        refused(&get(b"Transfer-Encoding: identity\r\n")),
        Refusal::NotImplemented
    );
    assert_eq!(
        refused(&get(b"Transfer-Encoding: gzip, chunked\r\n")),
        Refusal::NotImplemented
    );
    assert!(accepted(&get(b"Transfer-Encoding: Chunked \r\n")).chunked);
    assert_eq!(
        refused(&get(
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
        )),
        Refusal::BadRequest
    );
    assert_eq!(
        refused(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Refusal::BadRequest
    );
}

#[test]
fn unique_headers_may_not_repeat_but_others_may() {
    for name in [
        "Expect",
        "Authorization",
        "If-Modified-Since",
        "If-None-Match",
        "If-Match",
        "If-Range",
        "Content-Range",
    ] {
        let raw = get(format!("{name}: a\r\n{name}: b\r\n").as_bytes());
        assert_eq!(refused(&raw), Refusal::BadRequest, "{name}");
    }
    for name in ["User-Agent", "Range", "Accept-Encoding", "Cookie"] {
        accepted(&get(format!("{name}: a\r\n{name}: b\r\n").as_bytes()));
    }
}

#[test]
fn malformed_header_lines() {
    assert_eq!(
        refused(&get(b"Cookie: a=1\r\n b=2\r\n")),
        Refusal::BadRequest
    );
    assert_eq!(refused(&get(b"Cookie : a=1\r\n")), Refusal::BadRequest);
    assert_eq!(refused(&get(b"X\x01Y: 1\r\n")), Refusal::BadRequest);
    assert_eq!(refused(&get(b": 1\r\n")), Refusal::BadRequest);
    // Ignored, not refused: underscores and 8-bit bytes in names.
    let head = accepted(&get(b"Coo_kie: a=1\r\nX\xe9: 1\r\n"));
    assert_eq!(head.headers.len(), 1);
    assert_eq!(head.last("cookie"), None);
}

#[test]
fn versions() {
    assert_eq!(
        refused(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"),
        Refusal::VersionNotSupported
    );
    assert_eq!(accepted(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n").version, 1002);
    for bad in [
        &b"http/1.1"[..],
        b"HTTP/1.1000",
        b"HTTP/01.1",
        b"HTTP/1",
        b"",
    ] {
        let raw = [&b"GET / "[..], bad, b"\r\nHost: h\r\n\r\n"].concat();
        assert_eq!(refused(&raw), Refusal::BadRequest, "{bad:?}");
    }
    accepted(b"GET  /dump.php HTTP/1.1  \r\nHost: h\r\n\r\n");
}

#[test]
fn targets() {
    let head = accepted(b"GET http://other/dump.php?a=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(head.request_uri, b"/dump.php?a=1");
    assert_eq!(head.target.path, b"/dump.php");
    assert_eq!(
        accepted(b"GET http://x HTTP/1.1\r\nHost: h\r\n\r\n")
            .target
            .path,
        b"/"
    );
    assert_eq!(
        refused(b"GET dump.php HTTP/1.1\r\nHost: h\r\n\r\n"),
        Refusal::BadRequest
    );
    assert_eq!(
        refused(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"),
        Refusal::BadRequest
    );
    assert_eq!(
        refused(b"GET /../x HTTP/1.1\r\nHost: h\r\n\r\n"),
        Refusal::BadRequest
    );
    assert_eq!(
        refused(b"GET /x%zz HTTP/1.1\r\nHost: h\r\n\r\n"),
        Refusal::BadRequest
    );
}

#[test]
fn leading_empty_lines_bare_lf_and_keep_alive() {
    let head = accepted(b"\r\n\r\nGET / HTTP/1.1\nHost: h\nCookie: a=1\n\n");
    assert_eq!(head.last("cookie"), Some(&b"a=1"[..]));
    assert!(head.keep_alive);
    assert!(!accepted(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!accepted(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(accepted(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    assert!(accepted(&get(b"Expect: 100-Continue\r\n")).expect_continue);
    assert!(!accepted(b"GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
}

#[test]
fn an_incomplete_head_waits() {
    assert!(matches!(
        parse(b"GET / HTTP/1.1\r\nHost: h\r\n"),
        Progress::Incomplete
    ));
    assert!(matches!(parse(b""), Progress::Incomplete));
}

#[test]
fn header_lines_may_end_in_several_carriage_returns() {
    let head = accepted(&get(b"X-A: 1\r\r\r\nCookie\r\r\n"));
    assert_eq!(head.first("x-a"), Some(&b"1"[..]));
    assert_eq!(head.last("cookie"), Some(&b""[..]));
    assert_eq!(refused(&get(b"X-A: 1\r \r\n")), Refusal::BadRequest);
    assert_eq!(
        refused(b"GET / HTTP/1.1\r\nHost: h\r\n\r\r\n"),
        Refusal::BadRequest
    );
    assert_eq!(
        refused(b"GET / HTTP/1.1\r\r\nHost: h\r\n\r\n"),
        Refusal::BadRequest
    );
}

#[test]
fn head_requests_are_known_from_their_first_bytes() {
    assert!(is_head_request(b"\r\nHEAD /x HTTP/2.0\r\n"));
    assert!(is_head_request(b"HEAD /aaaaaaaa"));
    assert!(!is_head_request(b"head / HTTP/1.1"));
    assert!(!is_head_request(b"GET / HTTP/1.1"));
}
