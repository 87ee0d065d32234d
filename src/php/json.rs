//! `json_encode()` with default flags, for a row as `mysql_fetch_assoc` returned it.
//!
//! serde_json writes the structure (braces, commas, key order as given, `null`) and escapes `"`,
//! `\\`, `\b \f \n \r \t` and the other control bytes as PHP does (`\u00XX`, lower-case hex).
//! [`PhpFormatter`] adds what PHP escapes beyond that: `/` as `\/` and every non-ASCII code point
//! as lower-case `\uXXXX` (astral ones as a surrogate pair). DEL (0x7F) stays raw in both.
//! Invalid UTF-8 never reaches serde_json: PHP refuses it outright (`false`), and so do we.

use std::io::{self, Write};

use serde::ser::{SerializeMap, Serializer as _};
use serde_json::ser::{Formatter, Serializer};

/// Encodes an associative row `{"col":"value",…}` in column order; NULL becomes `null`.
///
/// Returns `None` where PHP's `json_encode` returns `false` (invalid UTF-8 in a name or value,
/// PHP 5.5 and later), which `echo` prints as nothing.
pub fn encode_row<'a, I>(columns: I) -> Option<Vec<u8>>
where
    I: IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
{
    let mut out = Vec::new();
    let mut serializer = Serializer::with_formatter(&mut out, PhpFormatter);
    let mut row = serializer.serialize_map(None).ok()?;
    for (name, value) in columns {
        let name = std::str::from_utf8(name).ok()?;
        let value = value.map(std::str::from_utf8).transpose().ok()?;
        row.serialize_entry(name, &value).ok()?;
    }
    row.end().ok()?;
    Some(out)
}

/// serde_json's compact output with PHP's extra string escapes.
struct PhpFormatter;

impl Formatter for PhpFormatter {
    /// serde_json hands over the runs of a string between the characters it escapes itself.
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + Write,
    {
        let mut start = 0;
        for (at, ch) in fragment.char_indices() {
            if ch.is_ascii() && ch != '/' {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..at])?;
            if ch == '/' {
                writer.write_all(b"\\/")?;
            } else {
                for unit in ch.encode_utf16(&mut [0u16; 2]) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
            start = at + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
fn encode_string(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    use serde::Serialize;
    let text = std::str::from_utf8(bytes).ok()?;
    text.serialize(&mut Serializer::with_formatter(out, PhpFormatter))
        .ok()
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
