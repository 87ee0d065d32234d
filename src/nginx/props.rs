//! Property tests: the request parsers never panic, never buffer more than nginx would, and
//! give the same answer however the bytes are split across reads.

use proptest::prelude::*;

use super::chunked::{Decoder, Fed};
use super::head::{HeadParser, Progress, MAX_HEAD_BYTES};
use super::uri;

/// Bytes biased towards what request heads are made of, so the parser gets past its first line.
fn head_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"GET / HTTP/1.1\r\n".to_vec()),
        Just(b"POST /AJsendmsg.php?a=%41 HTTP/1.0\r\n".to_vec()),
        Just(b"Host: h\r\n".to_vec()),
        Just(b"Cookie: username=a\x7f\t\r\n".to_vec()),
        Just(b"Content-Length: 5\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b":".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64),
        (1usize..9000).prop_map(|n| vec![b'a'; n]),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

fn outcome(progress: &Progress) -> String {
    match progress {
        Progress::Incomplete => "incomplete".into(),
        Progress::Complete(head, used) => format!("{head:?} {used}"),
        Progress::Refused(refusal) => format!("{refusal:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn head_parser_is_bounded_and_split_independent(data in head_bytes(), split in any::<prop::sample::Index>()) {
        let whole = HeadParser::new().advance(&data);
        if matches!(whole, Progress::Incomplete) {
            prop_assert!(data.len() < MAX_HEAD_BYTES, "{} bytes buffered", data.len());
        }
        let at = split.index(data.len() + 1);
        let mut parser = HeadParser::new();
        let first = parser.advance(&data[..at]);
        if matches!(first, Progress::Incomplete) {
            prop_assert_eq!(outcome(&parser.advance(&data)), outcome(&whole));
        }
    }

    #[test]
    fn chunked_decoder_is_split_independent(data in proptest::collection::vec(prop_oneof![
        Just(b"5\r\nhello\r\n".to_vec()), Just(b"0\r\n\r\n".to_vec()), Just(b"a;x=y\r\n".to_vec()),
        Just(b"\r\n".to_vec()), proptest::collection::vec(any::<u8>(), 0..16)], 0..10).prop_map(|p| p.concat()),
        split in any::<prop::sample::Index>()) {
        let mut body = Vec::new();
        let whole = Decoder::new(1 << 20).feed(&data, &mut body);
        let at = split.index(data.len() + 1);
        let mut decoder = Decoder::new(1 << 20);
        let mut split_body = Vec::new();
        let first = decoder.feed(&data[..at], &mut split_body);
        if let Ok(Fed::NeedMore) = first {
            let second = decoder.feed(&data[at..], &mut split_body);
            match (&whole, second) {
                (Ok(Fed::Done(n)), Ok(Fed::Done(m))) => prop_assert_eq!(*n, m + at),
                (whole, second) => prop_assert_eq!(format!("{whole:?}"), format!("{second:?}")),
            }
            if whole.is_ok() {
                prop_assert_eq!(body.len() <= data.len(), true);
                prop_assert_eq!(body, split_body);
            }
        }
    }

    #[test]
    fn uri_normalisation_never_panics_and_stays_rooted(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut target = b"/".to_vec();
        target.extend_from_slice(&data);
        if let Some(parsed) = uri::parse(&target) {
            prop_assert!(parsed.path.starts_with(b"/"));
            prop_assert!(!parsed.path.windows(4).any(|w| w == b"/../"));
            prop_assert!(!parsed.path.ends_with(b"/.."));
        }
    }
}

#[test]
fn a_trickled_maximal_head_costs_linear_time() {
    let mut parser = HeadParser::new();
    let mut data = b"GET / HTTP/1.1\r\n".to_vec();
    let started = std::time::Instant::now();
    // 4 × 8k of headers, one byte per call.
    let line = [&b"X-A: "[..], &[b'a'; 8000], b"\r\n"].concat();
    let mut calls = 0;
    for _ in 0..4 {
        for &byte in &line {
            data.push(byte);
            calls += 1;
            assert!(matches!(parser.advance(&data), Progress::Incomplete));
        }
    }
    assert!(calls > 32_000);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
