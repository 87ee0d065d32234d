//! PHP's URL codecs (`ext/standard/url.c`): byte-wise, lenient about malformed escapes.

/// `urldecode()`: `+` is a space, `%XX` a byte, any other `%` kept literally.
pub fn url_decode(input: &[u8]) -> Vec<u8> {
    decode(input, true)
}

/// `rawurldecode()`: like [`url_decode`] but `+` stays `+`.
pub fn raw_url_decode(input: &[u8]) -> Vec<u8> {
    decode(input, false)
}

fn decode(input: &[u8], plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => match (nibble(input.get(i + 1)), nibble(input.get(i + 2))) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    out
}

fn nibble(byte: Option<&u8>) -> Option<u8> {
    byte.and_then(|&b| (b as char).to_digit(16))
        .map(|d| d as u8)
}

/// `rawurlencode()` (RFC 3986): everything but `A-Za-z0-9-_.~` as upper-case `%XX`.
pub fn raw_url_encode(input: &[u8]) -> String {
    encode(input, false)
}

/// `urlencode()`: like [`raw_url_encode`] but space is `+` and `~` is escaped.
pub fn url_encode(input: &[u8]) -> String {
    encode(input, true)
}

fn encode(input: &[u8], form_style: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for &byte in input {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(byte as char),
            b'~' if !form_style => out.push('~'),
            b' ' if form_style => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_keeps_malformed_escapes_literally() {
        assert_eq!(url_decode(b"%zz%4%"), b"%zz%4%");
        assert_eq!(url_decode(b"100%"), b"100%");
        assert_eq!(url_decode(b"%G1"), b"%G1");
        assert_eq!(url_decode(b"%%41"), b"%A");
        assert_eq!(raw_url_decode(b"%41%4a%zz%4%"), b"AJ%zz%4%");
    }

    #[test]
    fn plus_is_a_space_only_in_url_decode() {
        assert_eq!(url_decode(b"a+b%2Bc"), b"a b+c");
        assert_eq!(raw_url_decode(b"a+b%2Bc"), b"a+b+c");
    }

    #[test]
    fn decoding_is_bytewise() {
        assert_eq!(url_decode(b"%e4%b8%ad%E4%B8%AD"), "中中".as_bytes());
        assert_eq!(url_decode(b"%FF%00"), [0xff, 0]);
    }

    #[test]
    fn encoders_match_php_setcookie_examples() {
        let value = "a b+c/中~!*()'".as_bytes();
        assert_eq!(
            raw_url_encode(value),
            "a%20b%2Bc%2F%E4%B8%AD~%21%2A%28%29%27"
        );
        assert_eq!(url_encode(b"space value~"), "space+value%7E");
        assert_eq!(raw_url_encode(b"admin287"), "admin287");
    }
}
