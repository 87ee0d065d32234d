//! `json_encode()` with default flags, for a row as `mysql_fetch_assoc` returned it.
//!
//! serde_json cannot produce these bytes: PHP escapes `/` as `\/`, every non-ASCII code point
//! as lower-case `\uXXXX` (astral ones as surrogate pairs), and refuses invalid UTF-8 outright.

/// Encodes an associative row `{"col":"value",…}` in column order; NULL becomes `null`.
///
/// Returns `None` where PHP's `json_encode` returns `false` (invalid UTF-8 in a name or value,
/// PHP 5.5 and later), which `echo` prints as nothing.
pub fn encode_row<'a, I>(columns: I) -> Option<Vec<u8>>
where
    I: IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
{
    let mut out = vec![b'{'];
    for (index, (name, value)) in columns.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        encode_string(name, &mut out)?;
        out.push(b':');
        match value {
            Some(value) => encode_string(value, &mut out)?,
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
    Some(out)
}

fn encode_string(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let text = std::str::from_utf8(bytes).ok()?;
    out.push(b'"');
    for ch in text.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '/' => out.extend_from_slice(b"\\/"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            // DEL (0x7F) is ASCII and not a control character to PHP: it stays raw.
            ' '..='\u{7f}' => out.push(ch as u8),
            _ => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
        }
    }
    out.push(b'"');
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(bytes: &[u8]) -> Option<String> {
        let mut out = Vec::new();
        encode_string(bytes, &mut out)
            .map(|()| String::from_utf8(out).expect("encoder emits ASCII"))
    }

    #[test]
    fn escapes_match_php_observed_table() {
        let cases: &[(&[u8], &str)] = &[
            (b"admin123", r#""admin123""#),
            (b"a/b", r#""a\/b""#),
            (b"</script>", r#""<\/script>""#),
            (b"say \"hi\"", r#""say \"hi\"""#),
            (b"back\\slash", r#""back\\slash""#),
            (b"\x08\x0c\n\r\t", r#""\b\f\n\r\t""#),
            (b"\0", r#""\u0000""#),
            (b"\x01\x1f\x0b", r#""\u0001\u001f\u000b""#),
            (b"'<>&", r#""'<>&""#),
            (
                "é\u{80}中文€".as_bytes(),
                r#""\u00e9\u0080\u4e2d\u6587\u20ac""#,
            ),
            (
                "\u{2028}\u{2029}\u{feff}".as_bytes(),
                r#""\u2028\u2029\ufeff""#,
            ),
            ("😀\u{10ffff}".as_bytes(), r#""\ud83d\ude00\udbff\udfff""#),
            (b"007", r#""007""#),
            (b"", r#""""#),
        ];
        for (input, expected) in cases {
            assert_eq!(string(input).as_deref(), Some(*expected), "{input:?}");
        }
        assert_eq!(
            string(b"\x7f").map(String::into_bytes),
            Some(b"\"\x7f\"".to_vec())
        );
    }

    #[test]
    fn invalid_utf8_makes_the_whole_row_false() {
        for bad in [
            &b"\xff"[..],
            b"a\xc3\x28b",
            b"\xc3",
            b"\xed\xa0\x80",
            b"\xc0\xaf",
            b"\xf4\x90\x80\x80",
        ] {
            assert_eq!(
                encode_row([(&b"k"[..], Some(&b"ok"[..])), (b"v", Some(bad))]),
                None
            );
        }
        assert_eq!(encode_row([(&b"\xff"[..], Some(&b"ok"[..]))]), None);
    }

    #[test]
    fn row_keeps_column_order_and_null() {
        let row = [
            (&b"id"[..], Some(&b"1"[..])),
            (b"name", Some(b"admin123")),
            (b"content", None),
            (b"time", Some(b"2012-01-01 10:00:00")),
            (b"url", Some(b"http://x/y")),
        ];
        assert_eq!(
            encode_row(row).as_deref(),
            Some(&br#"{"id":"1","name":"admin123","content":null,"time":"2012-01-01 10:00:00","url":"http:\/\/x\/y"}"#[..])
        );
    }
}
