//! Property tests for the PHP emulation: no panic and bounded work on any bytes, and the two
//! rules that protect data: decoded values only hold bytes of the request, and a `.php` file's
//! code is never printed.

use proptest::prelude::*;

use super::script::{Printed, Script};

/// The bytes a file answers when not run (empty when declined or refused).
fn printed_bytes(source: &[u8]) -> Vec<u8> {
    match Script::parse(source).printed() {
        Printed::Text(text) => text,
        Printed::Declined | Printed::ParseError => Vec::new(),
    }
}
use super::{cookie, form, multipart, Version};

fn multipart_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"--XyZ\r\n".to_vec()),
        Just(b"--XyZ--\r\n".to_vec()),
        Just(b"\n--XyZ".to_vec()),
        Just(b"Content-Disposition: form-data; name=\"rec\"\r\n".to_vec()),
        Just(b"Content-Disposition: form-data; name=content; filename=\"f\"\r\n".to_vec()),
        Just(b"Content-Disposition: form-data; name='a[b]'\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b" continued\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
        (1usize..6000).prop_map(|n| vec![b'v'; n]),
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn multipart_values_are_pieces_of_the_body(body in multipart_bytes(), quoted in any::<bool>()) {
        let content_type: &[u8] = if quoted {
            b"multipart/form-data; boundary=\"XyZ\""
        } else {
            b"multipart/form-data; boundary=XyZ"
        };
        let vars = multipart::parse(&body, content_type, &multipart::Limits::default());
        for key in [&b"rec"[..], b"content", b"a"] {
            if let Some(super::vars::Value::Str(value)) = vars.get_bytes(key) {
                prop_assert!(contains(&body, value), "{value:?} is not in the body");
            }
        }
    }

    #[test]
    fn multipart_never_panics_on_any_content_type(body in proptest::collection::vec(any::<u8>(), 0..512),
                                                  content_type in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = multipart::parse(&body, &content_type, &multipart::Limits::default());
        let _ = multipart::boundary(&content_type);
    }

    #[test]
    fn form_and_cookie_decoding_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        for version in [Version::Php8, Version::Php5] {
            let _ = form::parse(&data, version);
            let _ = cookie::parse(&data, version);
        }
    }

    #[test]
    fn code_is_never_printed(text in "[^<]{0,40}", code in proptest::collection::vec(any::<u8>(), 0..200)) {
        // Code without a closing tag runs to the end of the file: only the text before it may
        // be printed, whatever the code holds.
        prop_assume!(!contains(&code, b"?>"));
        let source = [text.as_bytes(), b"<?php ", &code[..]].concat();
        let printed = printed_bytes(&source);
        prop_assert!(printed.is_empty() || printed == text.as_bytes());
    }

    #[test]
    fn printed_text_is_made_of_the_file_in_order(source in proptest::collection::vec(prop_oneof![
        Just(b"<?php ".to_vec()), Just(b"?>".to_vec()), Just(b"\"".to_vec()), Just(b"'".to_vec()),
        Just(b"<<<EOT\n".to_vec()), Just(b"\nEOT;\n".to_vec()), Just(b"#[".to_vec()), Just(b"//".to_vec()),
        Just(b"/*".to_vec()), Just(b"*/".to_vec()), Just(b"{".to_vec()), Just(b"}".to_vec()),
        Just(b"\n".to_vec()), proptest::collection::vec(any::<u8>(), 0..12)], 0..24).prop_map(|p| p.concat())) {
        let printed = printed_bytes(&source);
        // A subsequence of the source: nothing invented, nothing reordered.
        let mut rest = source.iter();
        for byte in &printed {
            prop_assert!(rest.any(|b| b == byte));
        }
    }
}

#[test]
fn adversarial_multipart_bodies_take_bounded_time() {
    let started = std::time::Instant::now();
    let long_boundary = vec![b'-'; 7000];
    let content_type = [&b"multipart/form-data; boundary="[..], &long_boundary].concat();
    for body in [
        vec![b'\n'; 1 << 20],
        [b"\n--".as_slice(), &long_boundary[..6999]]
            .concat()
            .repeat(150),
        b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n"
            .iter()
            .copied()
            .chain(std::iter::repeat_n(b'-', 1 << 20))
            .collect(),
    ] {
        let _ = multipart::parse(&body, &content_type, &multipart::Limits::default());
        let _ = multipart::parse(
            &body,
            b"multipart/form-data; boundary=XyZ",
            &multipart::Limits::default(),
        );
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
